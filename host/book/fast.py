"""The order-by-order book at full speed: ITCH decode and book in numba.

``FastBook`` has exactly the semantics of ``host.book.reference.ReferenceBook``
(same update rows, trades, tops and counters, bit for bit -- the tests hold
it to that) but decodes the ITCH 5.0 bytes of a ``MessageBatch`` itself, one
compiled loop per batch.

Data structures
---------------
Orders live in an open-addressing hash table (linear probing, deletion by
backward shift so no tombstones pile up during a day of adds and deletes)
keyed by order reference number.  One slot is four words of a flat int64
array -- key, price, shares, and ``locate << 8 | side`` with an occupied bit
-- so a probe touches one 32-byte, cache-line-aligned slot.  The table starts
small (``order_capacity`` slots, a power of two, 4096 by default) and doubles by
rehash before the load factor would pass ``MAX_LOAD`` (1/2): with order
references handed out in increasing order and a Fibonacci multiplicative
hash, probe runs stay short at that load, and a table no larger than the
live orders need stays in cache (on a generated day with ~5 000 live orders
a sparse 64 Ki-slot table ran markedly slower than an 8 Ki-slot one).

Each (locate, side) owns a run of a shared level arena: parallel arrays of
price, aggregate shares and order count, sorted so the best price is at the
end of the run.  Activity clusters near the touch, so finding a level scans a
few entries back from the end (falling back to binary search after
``LINEAR_SCAN`` steps) and inserting or removing a level near the touch moves
only the few levels above it.  A run starts at ``INITIAL_LEVELS`` and doubles
when full by moving to the end of the arena; the arena itself grows (and is
compacted) from Python when its free space runs low.  Because the top
``DEPTH`` levels are the last ``DEPTH`` entries of a run, whether a message
changed them follows from the rank of the level it touched: a change at rank
below ``DEPTH`` changes the top, and a level opened or closed there also
moves the ranks under it; deeper changes cannot reach the top.  Order
Replace, which touches two levels, compares a snapshot of the side's top
instead.  Orders do not remember their level's index (inserting or removing
a level moves the ones above it); they find it again by price from the touch.

Each locate also keeps the top ``DEPTH`` levels of both sides as the u32
words of a BOOK_UPDATE row (``tops``), rewritten from the changed rank on
when a side's top changes, so that writing a row copies 120 bytes instead of
gathering thirty values from both sides' level arrays.

Where the time goes
-------------------
A message takes a few hundred instructions, and much of its time goes to
waiting for memory.  The order table is probed at random (Fibonacci hashing
spreads the increasing references over it), and between two visits to the
same slot the capture, the message arrays and the output rows stream through
the caches and evict it.  So the kernel prefetches: the bytes of the message
``BYTES_AHEAD`` places ahead, and the order-table slots of the one
``SLOT_AHEAD`` places ahead, whose bytes are in cache by then.  Rows are
written as 64-bit words, halving the stores that wait in the store queue for
output lines to arrive.  The compiled code takes no reference counts and
makes no calls (see ``_kernel`` and ``_int_reader`` below).  On the
project's 2-core machine, with other work running, this took
``FastBook.process`` on a 2 M-message generated day from about 5 M to about
10.5 M messages/s (``fastbook_msgs_per_s`` of ``python -m host.book.bench``).

Decoding checks each message the way ``host.protocols.itch50`` does -- length
against the declared size (``truncated`` / ``length_mismatch``), unknown type,
non-ASCII bytes in alpha fields (``bad_field``) -- using tables built from
the itch50 declarations, and reads the book fields at the offsets in
``FIELD_OFFSETS`` (pinned against those declarations by the tests).
"""
from __future__ import annotations

import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from host.book.records import (
    BOOK_UPDATE_DTYPE,
    DEPTH,
    FLAG_CROSSED,
    FLAG_NO_DIRECTORY,
    FLAG_NOT_TRADING,
    FLAG_STALE,
    SHARES_SATURATE,
    TRADE_DTYPE,
)
from host.book.reference import COUNTER_NAMES
from host.protocols.itch50 import MESSAGE_CLASSES

MAX_LOAD = 0.5
INITIAL_LEVELS = 8
LINEAR_SCAN = 16
N_LOCATES = 1 << 16

# (message type, field name) -> byte offset read by the kernel below.
FIELD_OFFSETS = {
    ("A", "stock_locate"): 1,
    ("A", "timestamp"): 5,
    ("A", "order_reference_number"): 11,
    ("A", "buy_sell_indicator"): 19,
    ("A", "shares"): 20,
    ("A", "price"): 32,
    ("F", "order_reference_number"): 11,
    ("F", "buy_sell_indicator"): 19,
    ("F", "shares"): 20,
    ("F", "price"): 32,
    ("E", "order_reference_number"): 11,
    ("E", "executed_shares"): 19,
    ("E", "match_number"): 23,
    ("C", "order_reference_number"): 11,
    ("C", "executed_shares"): 19,
    ("C", "match_number"): 23,
    ("C", "printable"): 31,
    ("C", "execution_price"): 32,
    ("X", "order_reference_number"): 11,
    ("X", "canceled_shares"): 19,
    ("D", "order_reference_number"): 11,
    ("U", "original_order_reference_number"): 11,
    ("U", "new_order_reference_number"): 19,
    ("U", "shares"): 27,
    ("U", "price"): 31,
    ("P", "order_reference_number"): 11,
    ("P", "buy_sell_indicator"): 19,
    ("P", "shares"): 20,
    ("P", "price"): 32,
    ("P", "match_number"): 36,
    ("Q", "shares"): 11,
    ("Q", "cross_price"): 27,
    ("Q", "match_number"): 31,
    ("R", "stock"): 11,
    ("H", "trading_state"): 19,
}
OFF_LOCATE = 1
OFF_TIMESTAMP = 5
OFF_REF = 11
OFF_SIDE = 19
OFF_ADD_SHARES = 20
OFF_ADD_PRICE = 32
OFF_EXEC_SHARES = 19
OFF_EXEC_MATCH = 23
OFF_EXEC_PRINTABLE = 31
OFF_EXEC_PRICE = 32
OFF_CANCEL_SHARES = 19
OFF_REPLACE_NEW = 19
OFF_REPLACE_SHARES = 27
OFF_REPLACE_PRICE = 31
OFF_TRADE_MATCH = 36
OFF_CROSS_SHARES = 11
OFF_CROSS_PRICE = 27
OFF_CROSS_MATCH = 31
OFF_STOCK = 11
OFF_TRADING_STATE = 19

T_ADD, T_ADD_MPID, T_EXEC, T_EXEC_PRICE = ord("A"), ord("F"), ord("E"), ord("C")
T_CANCEL, T_DELETE, T_REPLACE = ord("X"), ord("D"), ord("U")
T_TRADE, T_CROSS, T_DIRECTORY, T_ACTION = ord("P"), ord("Q"), ord("R"), ord("H")
B_BUY, B_SELL, B_YES, B_TRADING = ord("B"), ord("S"), ord("Y"), ord("T")

_C = {name: i for i, name in enumerate(COUNTER_NAMES)}
C_MESSAGES = _C["messages"]
C_TRUNCATED = _C["decode_truncated"]
C_LENGTH_MISMATCH = _C["decode_length_mismatch"]
C_UNKNOWN_TYPE = _C["decode_unknown_type"]
C_BAD_FIELD = _C["decode_bad_field"]
C_ADDS = _C["adds"]
C_EXECUTIONS = _C["executions"]
C_CANCELS = _C["cancels"]
C_DELETES = _C["deletes"]
C_REPLACES = _C["replaces"]
C_TRADES = _C["trades"]
C_UPDATES = _C["book_updates"]
C_DIRECTORY = _C["stock_directory"]
C_ACTIONS = _C["trading_actions"]
C_UNKNOWN_REF = _C["unknown_order_reference"]
C_DUPLICATE_REF = _C["duplicate_order_reference"]
C_OVER_EXECUTION = _C["over_execution"]
C_OVER_CANCEL = _C["over_cancel"]
C_BAD_SIDE = _C["bad_side"]
C_ZERO_SHARES = _C["zero_shares"]
C_UNKNOWN_LOCATE = _C["unknown_locate"]
C_LOCATE_MISMATCH = _C["locate_mismatch"]
C_SEQ_GAPS = _C["seq_gaps"]
C_SEQ_REGRESSIONS = _C["seq_regressions"]

# Kernel exit codes: done, or stopped before a message to let Python grow a table.
DONE, NEED_ORDERS, NEED_LEVELS = 0, 1, 2

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_OCCUPIED = np.int64(1) << np.int64(40)
_SATURATE = np.int64(SHARES_SATURATE)
_ONE = np.uint64(1)


def _alpha_words(positions: list[int], size: int) -> list[tuple[int, int]]:
    """8-byte windows inside a ``size``-byte message covering the alpha byte
    ``positions``: (offset, mask with 0x80 in the lanes of alpha bytes), lanes
    in little-endian order.  A message is non-ASCII iff some window's
    little-endian word ANDed with its mask is non-zero."""
    words = []
    todo = sorted(positions)
    while todo:
        start = min(todo[0], size - 8)   # every ITCH message is at least 8 bytes
        inside = [p for p in todo if start <= p < start + 8]
        words.append((start, sum(0x80 << (8 * (p - start)) for p in inside)))
        todo = [p for p in todo if p not in inside]
    return words


def _decode_tables():
    """Per type byte: declared size (0 = unknown) and its alpha-byte windows."""
    sizes = np.zeros(256, np.int64)
    per_type: list[list[tuple[int, int]]] = [[] for _ in range(256)]
    for cls in MESSAGE_CLASSES:
        t = ord(cls.TYPE)
        sizes[t] = cls.fixed_size()
        alpha = [p for f in cls.LAYOUT.fields if f.is_alpha
                 for p in range(f.offset, f.offset + f.size)]
        per_type[t] = _alpha_words(alpha, int(sizes[t]))
    starts = np.zeros(257, np.int64)
    offsets: list[int] = []
    masks: list[int] = []
    for t in range(256):
        starts[t] = len(offsets)
        offsets.extend(w for w, _ in per_type[t])
        masks.extend(m for _, m in per_type[t])
    starts[256] = len(offsets)
    # the masks as int64 bit patterns, to stay in the kernel's integer type
    return (sizes, starts, np.array(offsets, np.int64),
            np.array(masks, np.uint64).view(np.int64))


MESSAGE_SIZE_TABLE, ALPHA_STARTS, ALPHA_OFFSETS, ALPHA_MASKS = _decode_tables()


# -- compiled code ------------------------------------------------------------------
# Reference counting is off for every kernel here.  Nothing in them allocates,
# and with it on, numba increfs and decrefs the array arguments of each helper
# call that has more than one exit -- atomic instructions that cost more than
# the book work of a message.  (numba refuses to compile an allocation in a
# function without reference counting, so this cannot go wrong silently.)
_kernel = njit(cache=True, _nrt=False)
# The kernel's helpers are inlined by numba itself: left to LLVM, some stay
# calls inside the large kernel, and a call there passes every array as seven
# words on the stack and saves and restores vector registers around it.
_inline = njit(cache=True, _nrt=False, inline="always")


@intrinsic
def _prefetch(typingctx, array, index):
    """Hint that ``array.flat[index]`` will be read soon.

    A prefetch retires at once and never faults, so the kernel can fetch the
    cache lines of messages a few places ahead while it works on the current
    one instead of stalling on each order lookup in turn.
    """
    if (not isinstance(array, types.Array) or array.layout != "C"
            or not isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        offset = context.cast(builder, args[1], sig.args[1], types.intp)
        byte_ptr = ir.IntType(8).as_pointer()
        address = builder.bitcast(builder.gep(data, [offset]), byte_ptr)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [byte_ptr], fnty)
        # operands: read, keep in every cache level, data
        builder.call(fn, [address, ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


# -- byte readers ---------------------------------------------------------------
def _int_reader(bits: int, big_endian: bool = True):
    """An intrinsic reading the ``bits``-wide unsigned integer at
    ``buf[offset]`` as an int64 (for 64 bits, the u64's bit pattern).

    One unaligned load (and a byte swap), emitted in place: as functions,
    readers were sometimes left as calls by LLVM inside the large kernel, and
    a call there costs more than the read (arguments on the stack, vector
    registers saved and restored around it).  The caller keeps the bytes
    inside the buffer.
    """
    @intrinsic
    def reader(typingctx, buf, offset):
        if (not isinstance(buf, types.Array) or buf.dtype != types.uint8
                or buf.layout != "C" or not isinstance(offset, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            start = context.cast(builder, args[1], sig.args[1], types.intp)
            word = ir.IntType(bits)
            address = builder.bitcast(builder.gep(data, [start]), word.as_pointer())
            value = builder.load(address, align=1)
            if big_endian:
                value = builder.bswap(value)
            return value if bits == 64 else builder.zext(value, ir.IntType(64))

        return types.int64(buf, offset), codegen

    return reader


_be16 = _int_reader(16)
_be32 = _int_reader(32)
_be64 = _int_reader(64)
_le64 = _int_reader(64, big_endian=False)


@_inline
def _be48(buf, o):
    return (_be16(buf, o) << 32) | _be32(buf, o + 2)


# -- order table ------------------------------------------------------------------
# One flat int64 array; slot s is words 4s..4s+3.  The kernels address slots
# by their first word, so a probe step is "+4" and no index is multiplied.
SLOT_WORDS = 4
O_KEY, O_PRICE, O_SHARES, O_INFO = 0, 1, 2, 3


@_inline
def _home(key, shift):
    """First word of ``key``'s home slot (Fibonacci hashing)."""
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(shift)) * SLOT_WORDS


@_inline
def _find_slot(otab, shift, wmask, key):
    """The slot holding ``key``, or the empty slot where it would go."""
    w = _home(key, shift)
    while True:
        if otab[w + O_INFO] == 0 or otab[w + O_KEY] == key:
            return w
        w = (w + SLOT_WORDS) & wmask


@_inline
def _delete_slot(otab, shift, wmask, i):
    j = i
    while True:
        j = (j + SLOT_WORDS) & wmask
        if otab[j + O_INFO] == 0:
            break
        k = _home(otab[j + O_KEY], shift)
        # The entry at j may fill the hole at i only if its home is not in (i, j].
        if i <= j:
            if i < k and k <= j:
                continue
        elif i < k or k <= j:
            continue
        for c in range(SLOT_WORDS):
            otab[i + c] = otab[j + c]
        i = j
    otab[i + O_INFO] = 0


@_kernel
def _rehash(old, new, shift, wmask):
    for i in range(0, old.shape[0], SLOT_WORDS):
        if old[i + O_INFO] != 0:
            j = _find_slot(new, shift, wmask, old[i + O_KEY])
            for c in range(SLOT_WORDS):
                new[j + c] = old[i + c]


# -- price levels --------------------------------------------------------------------
@_inline
def _better(x, price, side):
    if side == 0:
        return x > price
    return x < price


@_inline
def _level_position(lv_price, base, n, price, side):
    """(j, found): levels after j are strictly better than ``price``."""
    j = n - 1
    steps = 0
    while j >= 0 and _better(lv_price[base + j], price, side):
        j -= 1
        steps += 1
        if steps == LINEAR_SCAN:
            lo = 0
            hi = j + 1
            while lo < hi:
                mid = (lo + hi) >> 1
                if _better(lv_price[base + mid], price, side):
                    hi = mid
                else:
                    lo = mid + 1
            j = lo - 1
            break
    found = j >= 0 and lv_price[base + j] == price
    return j, found


@_inline
def _level_add(b, price, shares, side, bk_base, bk_len, bk_cap,
               lv_price, lv_shares, lv_count, astate):
    """Add one order's shares.

    Returns (rank, moved): the rank of the level it joined or opened (0 is
    the best), and whether the levels from that rank on moved (a new level).
    The side's top DEPTH changed iff rank < DEPTH.
    """
    n = bk_len[b]
    base = bk_base[b]
    j, found = _level_position(lv_price, base, n, price, side)
    if found:
        lv_shares[base + j] += shares
        lv_count[base + j] += 1
        return n - 1 - j, False
    if n == bk_cap[b]:
        cap = max(INITIAL_LEVELS, 2 * n)
        new_base = astate[0]
        for k in range(n):
            lv_price[new_base + k] = lv_price[base + k]
            lv_shares[new_base + k] = lv_shares[base + k]
            lv_count[new_base + k] = lv_count[base + k]
        astate[0] = new_base + cap
        if cap > astate[1]:
            astate[1] = cap
        bk_base[b] = new_base
        bk_cap[b] = cap
        base = new_base
    pos = j + 1
    for k in range(n, pos, -1):
        lv_price[base + k] = lv_price[base + k - 1]
        lv_shares[base + k] = lv_shares[base + k - 1]
        lv_count[base + k] = lv_count[base + k - 1]
    lv_price[base + pos] = price
    lv_shares[base + pos] = shares
    lv_count[base + pos] = 1
    bk_len[b] = n + 1
    return n - pos, True


@_inline
def _level_reduce(b, price, shares, gone, side, bk_base, bk_len, lv_price, lv_shares,
                  lv_count):
    """Take shares (and the order, if ``gone``) off a level; (rank, moved) as
    for ``_level_add``, moved meaning the level went away."""
    n = bk_len[b]
    base = bk_base[b]
    j, found = _level_position(lv_price, base, n, price, side)
    if not found:
        return DEPTH, False  # unreachable while the order table and levels agree
    lv_shares[base + j] -= shares
    if gone:
        lv_count[base + j] -= 1
        if lv_count[base + j] == 0:
            for k in range(j, n - 1):
                lv_price[base + k] = lv_price[base + k + 1]
                lv_shares[base + k] = lv_shares[base + k + 1]
                lv_count[base + k] = lv_count[base + k + 1]
            bk_len[b] = n - 1
            return n - 1 - j, True
    return n - 1 - j, False


@_inline
def _snapshot_side(scratch, b, bk_base, bk_len, lv_price, lv_shares, lv_count):
    n = bk_len[b]
    base = bk_base[b]
    for j in range(DEPTH):
        if j < n:
            k = base + n - 1 - j
            scratch[3 * j] = lv_price[k]
            scratch[3 * j + 1] = lv_shares[k]
            scratch[3 * j + 2] = lv_count[k]
        else:
            scratch[3 * j] = 0
            scratch[3 * j + 1] = 0
            scratch[3 * j + 2] = 0


@_inline
def _side_differs(scratch, b, bk_base, bk_len, lv_price, lv_shares, lv_count):
    n = bk_len[b]
    base = bk_base[b]
    for j in range(DEPTH):
        if j < n:
            k = base + n - 1 - j
            if (scratch[3 * j] != lv_price[k] or scratch[3 * j + 1] != lv_shares[k]
                    or scratch[3 * j + 2] != lv_count[k]):
                return True
        elif scratch[3 * j + 2] != 0:
            return True
    return False


# -- output rows ----------------------------------------------------------------------
# The kernel writes records through flat 64-bit views of the structured output
# arrays (both record sizes are multiples of 8 and every field is naturally
# aligned): half as many stores as 32-bit words, which matters because
# stores to output lines not yet in cache occupy the store queue until their
# lines arrive.  These are the 64-bit word indexes of the fields; a u32 pair
# (stock_locate/flags/reserved and msg_index, or price and reserved) shares
# one word, low half first.
W_UPDATE = BOOK_UPDATE_DTYPE.itemsize // 8
W_TRADE = TRADE_DTYPE.itemsize // 8
_U = {name: BOOK_UPDATE_DTYPE.fields[name][1] for name in BOOK_UPDATE_DTYPE.names}
_T = {name: TRADE_DTYPE.fields[name][1] for name in TRADE_DTYPE.names}
assert _U["msg_index"] == _T["msg_index"] == 4 and _T["reserved"] == _T["price"] + 4
UW_HEAD, UW_SEQ, UW_TIMESTAMP, UW_LEVELS = (_U[f] // 8 for f in (
    "stock_locate", "seq", "timestamp", "bid_price"))
TW_HEAD, TW_SEQ, TW_TIMESTAMP, TW_REF, TW_MATCH, TW_SHARES, TW_PRICE = (_T[f] // 8 for f in (
    "stock_locate", "seq", "timestamp", "order_reference_number", "match_number", "shares",
    "price"))
_MASK32 = np.int64(0xFFFFFFFF)

# Each locate keeps its top DEPTH levels of both sides exactly as a row
# carries them (u32 words from bid_price to ask_orders), refreshed side by
# side whenever a side's top changes.  A row is then a straight copy, and
# writing one never reads the untouched side's levels, which are likely to
# have left the cache.
LEVEL_WORDS = 3 * DEPTH                       # u32 price, shares, orders of one side
TOP_WORDS = 32                                # both sides' 2 * LEVEL_WORDS, padded to 128 bytes
ROW_LEVELS64 = 2 * LEVEL_WORDS * 4 // 8       # both sides' levels in a row, in u64 words
T_BID_PRICE, T_BID_ORDERS = 0, 2 * DEPTH
T_ASK_PRICE, T_ASK_ORDERS = LEVEL_WORDS, LEVEL_WORDS + 2 * DEPTH
assert [_U[f] - _U["bid_price"] for f in ("bid_price", "bid_shares", "bid_orders",
                                           "ask_price", "ask_shares", "ask_orders")] == \
    [4 * k * DEPTH for k in range(6)], "rows must hold the six level columns back to back"
assert _U["bid_price"] % 8 == 0 and TOP_WORDS % 2 == 0


@_inline
def _refresh_top(tops, locate, side, first, last, base, n, lv_price, lv_shares, lv_count):
    """Rewrite ranks ``first..last-1`` of one side's image in ``tops`` (u32
    words) from its levels."""
    r = locate * TOP_WORDS + side * LEVEL_WORDS
    top = base + n - 1
    for j in range(first, last):
        if j < n:
            s = top - j
            tops[r + j] = lv_price[s]
            tops[r + DEPTH + j] = min(lv_shares[s], _SATURATE)
            tops[r + 2 * DEPTH + j] = lv_count[s]
        else:
            tops[r + j] = 0
            tops[r + DEPTH + j] = 0
            tops[r + 2 * DEPTH + j] = 0


@_inline
def _write_update(words, k, locate, q, index, timestamp, tops, tops64, loc_state, loc_dir,
                  sstate):
    r = locate * TOP_WORDS
    flags = 0
    if loc_state[locate] != B_TRADING:
        flags |= FLAG_NOT_TRADING
    if sstate[1] != 0:
        flags |= FLAG_STALE
    # A side has levels iff its best level has orders; prices are u32 values.
    if (tops[r + T_BID_ORDERS] != 0 and tops[r + T_ASK_ORDERS] != 0
            and tops[r + T_BID_PRICE] >= tops[r + T_ASK_PRICE]):
        flags |= FLAG_CROSSED
    if loc_dir[locate] == 0:
        flags |= FLAG_NO_DIRECTORY
    # stock_locate (u16), flags (u8), reserved (u8), msg_index (u32)
    words[k, UW_HEAD] = locate | (flags << 16) | ((np.int64(index) & _MASK32) << 32)
    words[k, UW_SEQ] = q
    words[k, UW_TIMESTAMP] = timestamp
    r64 = r // 2
    for w in range(ROW_LEVELS64):
        words[k, UW_LEVELS + w] = tops64[r64 + w]


@_inline
def _write_trade(words, k, locate, kind, side, index, q, timestamp, ref, match, shares,
                 price):
    # stock_locate (u16), kind (u8), side (u8), msg_index (u32)
    words[k, TW_HEAD] = (locate | (np.int64(kind) << 16) | (np.int64(side) << 24)
                         | ((np.int64(index) & _MASK32) << 32))
    words[k, TW_SEQ] = q
    words[k, TW_TIMESTAMP] = timestamp
    words[k, TW_REF] = ref
    words[k, TW_MATCH] = match
    words[k, TW_SHARES] = shares
    words[k, TW_PRICE] = price & _MASK32  # reserved, the high half, stays zero


# -- the kernel -------------------------------------------------------------------------
# How far ahead of the message being applied the kernel prefetches: its bytes
# first, then (once they are in cache) the order-table slot it will probe.
BYTES_AHEAD = 16
SLOT_AHEAD = 8


@_inline
def _look_ahead(buf, msg_off, n, idx, otab, shift, wmask):
    nbuf = buf.shape[0]
    j = idx + BYTES_AHEAD
    if j < n:
        o = msg_off[j]
        # Order messages are at most 36 bytes: two lines cover any of them.
        if o >= 0 and o + 36 <= nbuf:
            _prefetch(buf, o)
            _prefetch(buf, o + 35)
    j = idx + SLOT_AHEAD
    if j < n:
        o = msg_off[j]
        if o >= 0 and o + OFF_REPLACE_SHARES <= nbuf:
            t = buf[o]
            if (t == T_ADD or t == T_ADD_MPID or t == T_EXEC or t == T_EXEC_PRICE
                    or t == T_CANCEL or t == T_DELETE or t == T_REPLACE):
                # The home slot and the next one, which a probe or a deletion's
                # backward shift reads next and which may start the next line.
                w = _home(_be64(buf, o + OFF_REF), shift)
                _prefetch(otab, w)
                _prefetch(otab, (w + SLOT_WORDS) & wmask)
                if t == T_REPLACE:
                    _prefetch(otab, _home(_be64(buf, o + OFF_REPLACE_NEW), shift))


@_kernel
def _process(buf, msg_off, msg_len, seq, msg_index, start,
             sizes, alpha_starts, alpha_offsets, alpha_masks,
             otab, ostate,
             bk_base, bk_len, bk_cap, lv_price, lv_shares, lv_count, astate,
             loc_state, loc_dir, loc_symbol, tops, tops64,
             counters, sstate, scratch, upd, trd, nout):
    """Apply messages ``start..`` of a batch; (exit code, index reached).

    ``ostate`` = [orders, hash shift, slot mask, max orders before a rehash];
    ``astate`` = [arena slots used, largest run capacity];
    ``sstate`` = [last sequence number, stale]; ``nout`` = [updates, trades].
    """
    n = msg_off.shape[0]
    nbuf = buf.shape[0]
    arena = lv_price.shape[0]
    shift = ostate[1]
    wmask = ostate[2] * SLOT_WORDS + (SLOT_WORDS - 1)
    i = start
    while i < n:
        if ostate[0] >= ostate[3]:
            return NEED_ORDERS, i
        if astate[0] + 2 * astate[1] + 2 * INITIAL_LEVELS > arena:
            return NEED_LEVELS, i
        idx = i
        i += 1
        _look_ahead(buf, msg_off, n, idx, otab, shift, wmask)
        q = seq[idx]
        counters[C_MESSAGES] += 1
        if q != 0:
            last = sstate[0]
            if last != 0:
                if q > last + _ONE:
                    counters[C_SEQ_GAPS] += 1
                    sstate[1] = 1
                elif q <= last:
                    counters[C_SEQ_REGRESSIONS] += 1
            if q > last:
                sstate[0] = q

        # Same checks in the same order as itch50's decoder, so that a bad
        # message is counted under the same reason by both books.
        o = msg_off[idx]
        length = np.int64(msg_len[idx])
        if o < 0 or length <= 0 or o + length > nbuf:
            counters[C_TRUNCATED] += 1
            continue
        t = buf[o]
        size = sizes[t]
        if size == 0:
            counters[C_UNKNOWN_TYPE] += 1
            continue
        if length < size:
            counters[C_TRUNCATED] += 1
            continue
        # Alpha fields must be ASCII: eight bytes per load, high bits only.
        # (o + size <= nbuf here, and every window lies inside the message.)
        high = 0
        for k in range(alpha_starts[t], alpha_starts[t + 1]):
            high |= _le64(buf, o + alpha_offsets[k]) & alpha_masks[k]
        if high != 0:
            counters[C_BAD_FIELD] += 1
            continue
        if length > size:
            counters[C_LENGTH_MISMATCH] += 1
            continue

        locate = _be16(buf, o + OFF_LOCATE)
        index = msg_index[idx]

        if t == T_ADD or t == T_ADD_MPID:
            if loc_dir[locate] == 0:
                counters[C_UNKNOWN_LOCATE] += 1
            side_byte = buf[o + OFF_SIDE]
            if side_byte == B_BUY:
                side = 0
            elif side_byte == B_SELL:
                side = 1
            else:
                counters[C_BAD_SIDE] += 1
                continue
            shares = _be32(buf, o + OFF_ADD_SHARES)
            if shares == 0:
                counters[C_ZERO_SHARES] += 1
                continue
            ref = _be64(buf, o + OFF_REF)
            slot = _find_slot(otab, shift, wmask, ref)
            if otab[slot + O_INFO] != 0:
                counters[C_DUPLICATE_REF] += 1
                continue
            price = _be32(buf, o + OFF_ADD_PRICE)
            otab[slot + O_KEY] = ref
            otab[slot + O_PRICE] = price
            otab[slot + O_SHARES] = shares
            otab[slot + O_INFO] = _OCCUPIED | (locate << 8) | side
            ostate[0] += 1
            counters[C_ADDS] += 1
            b = locate * 2 + side
            rank, moved = _level_add(b, price, shares, side, bk_base, bk_len, bk_cap,
                                     lv_price, lv_shares, lv_count, astate)
            if rank < DEPTH:
                _refresh_top(tops, locate, side, rank, DEPTH if moved else rank + 1,
                             bk_base[b], bk_len[b], lv_price, lv_shares, lv_count)
                _write_update(upd, nout[0], locate, q, index, _be48(buf, o + OFF_TIMESTAMP),
                              tops, tops64, loc_state, loc_dir, sstate)
                nout[0] += 1
                counters[C_UPDATES] += 1
            continue

        if (t == T_EXEC or t == T_EXEC_PRICE or t == T_CANCEL or t == T_DELETE
                or t == T_REPLACE):
            if loc_dir[locate] == 0:
                counters[C_UNKNOWN_LOCATE] += 1
            ref = _be64(buf, o + OFF_REF)
            slot = _find_slot(otab, shift, wmask, ref)
            info = otab[slot + O_INFO]
            if info == 0:
                counters[C_UNKNOWN_REF] += 1
                continue
            book_locate = (info >> 8) & 0xFFFF
            side = info & 1
            price = otab[slot + O_PRICE]
            remaining = otab[slot + O_SHARES]
            if book_locate != locate:
                counters[C_LOCATE_MISMATCH] += 1
            b = book_locate * 2 + side
            timestamp = _be48(buf, o + OFF_TIMESTAMP)

            if t == T_REPLACE:
                _snapshot_side(scratch, b, bk_base, bk_len, lv_price, lv_shares, lv_count)
                _delete_slot(otab, shift, wmask, slot)
                ostate[0] -= 1
                _level_reduce(b, price, remaining, True, side, bk_base, bk_len, lv_price,
                              lv_shares, lv_count)
                counters[C_REPLACES] += 1
                new_shares = _be32(buf, o + OFF_REPLACE_SHARES)
                if new_shares == 0:
                    counters[C_ZERO_SHARES] += 1
                else:
                    new_ref = _be64(buf, o + OFF_REPLACE_NEW)
                    new_slot = _find_slot(otab, shift, wmask, new_ref)
                    if otab[new_slot + O_INFO] != 0:
                        counters[C_DUPLICATE_REF] += 1
                    else:
                        new_price = _be32(buf, o + OFF_REPLACE_PRICE)
                        otab[new_slot + O_KEY] = new_ref
                        otab[new_slot + O_PRICE] = new_price
                        otab[new_slot + O_SHARES] = new_shares
                        otab[new_slot + O_INFO] = info
                        ostate[0] += 1
                        counters[C_ADDS] += 1
                        _level_add(b, new_price, new_shares, side, bk_base, bk_len, bk_cap,
                                   lv_price, lv_shares, lv_count, astate)
                changed = _side_differs(scratch, b, bk_base, bk_len, lv_price, lv_shares,
                                        lv_count)
                first, last = 0, DEPTH
            else:
                if t == T_DELETE:
                    cut = remaining
                    counters[C_DELETES] += 1
                else:
                    if t == T_CANCEL:
                        cut = _be32(buf, o + OFF_CANCEL_SHARES)
                    else:
                        cut = _be32(buf, o + OFF_EXEC_SHARES)
                    asked = cut
                    if cut > remaining:
                        if t == T_CANCEL:
                            counters[C_OVER_CANCEL] += 1
                        else:
                            counters[C_OVER_EXECUTION] += 1
                        cut = remaining
                    if t == T_CANCEL:
                        counters[C_CANCELS] += 1
                    else:
                        counters[C_EXECUTIONS] += 1
                        side_byte = B_BUY if side == 0 else B_SELL
                        if t == T_EXEC:
                            _write_trade(trd, nout[1], book_locate, t, side_byte, index, q,
                                         timestamp, ref, _be64(buf, o + OFF_EXEC_MATCH),
                                         asked, price)
                            nout[1] += 1
                            counters[C_TRADES] += 1
                        elif buf[o + OFF_EXEC_PRINTABLE] == B_YES:
                            _write_trade(trd, nout[1], book_locate, t, side_byte, index, q,
                                         timestamp, ref, _be64(buf, o + OFF_EXEC_MATCH),
                                         asked, _be32(buf, o + OFF_EXEC_PRICE))
                            nout[1] += 1
                            counters[C_TRADES] += 1
                gone = cut == remaining
                if gone:
                    _delete_slot(otab, shift, wmask, slot)
                    ostate[0] -= 1
                else:
                    otab[slot + O_SHARES] = remaining - cut
                first, last = DEPTH, DEPTH  # ranks of the top to rewrite: none
                if cut > 0:
                    first, moved = _level_reduce(b, price, cut, gone, side, bk_base, bk_len,
                                                 lv_price, lv_shares, lv_count)
                    last = DEPTH if moved else first + 1
                changed = first < DEPTH
            if changed:
                _refresh_top(tops, book_locate, side, first, last, bk_base[b], bk_len[b],
                             lv_price, lv_shares, lv_count)
                _write_update(upd, nout[0], book_locate, q, index, timestamp, tops, tops64,
                              loc_state, loc_dir, sstate)
                nout[0] += 1
                counters[C_UPDATES] += 1
            continue

        if t == T_TRADE:
            if loc_dir[locate] == 0:
                counters[C_UNKNOWN_LOCATE] += 1
            _write_trade(trd, nout[1], locate, t, buf[o + OFF_SIDE], index, q,
                         _be48(buf, o + OFF_TIMESTAMP), _be64(buf, o + OFF_REF),
                         _be64(buf, o + OFF_TRADE_MATCH), _be32(buf, o + OFF_ADD_SHARES),
                         _be32(buf, o + OFF_ADD_PRICE))
            nout[1] += 1
            counters[C_TRADES] += 1
        elif t == T_CROSS:
            if loc_dir[locate] == 0:
                counters[C_UNKNOWN_LOCATE] += 1
            _write_trade(trd, nout[1], locate, t, 0, index, q,
                         _be48(buf, o + OFF_TIMESTAMP), 0, _be64(buf, o + OFF_CROSS_MATCH),
                         _be64(buf, o + OFF_CROSS_SHARES), _be32(buf, o + OFF_CROSS_PRICE))
            nout[1] += 1
            counters[C_TRADES] += 1
        elif t == T_DIRECTORY:
            loc_dir[locate] = 1
            loc_symbol[locate] = _be64(buf, o + OFF_STOCK)
            counters[C_DIRECTORY] += 1
        elif t == T_ACTION:
            loc_state[locate] = buf[o + OFF_TRADING_STATE]
            counters[C_ACTIONS] += 1
    return DONE, i


@_kernel
def _compact_levels(bk_base, bk_cap, lv_price, lv_shares, lv_count,
                    new_price, new_shares, new_count):
    """Copy every run to the front of a new arena; returns the slots used."""
    used = 0
    for b in range(bk_base.shape[0]):
        cap = bk_cap[b]
        if cap == 0:
            continue
        base = bk_base[b]
        for k in range(cap):
            new_price[used + k] = lv_price[base + k]
            new_shares[used + k] = lv_shares[base + k]
            new_count[used + k] = lv_count[base + k]
        bk_base[b] = used
        used += cap
    return used


class _OutputPool:
    """Reusable output arrays for ``FastBook.process``.

    Each batch returns slices of a (updates, trades) pair.  Writing into
    freshly mapped memory every batch costs a page fault per 4 KiB -- a
    measurable share of the per-message budget -- so pairs are recycled, but
    only once nothing outside the pool refers to them any more: every slice
    handed out holds a reference to its base array, so a pair whose reference
    count is back at its idle value cannot be seen by anyone.
    """

    SLOTS = 3

    def __init__(self):
        self._pairs: list[list] = []

    @staticmethod
    def _free(pair) -> bool:
        # No local names for the arrays here: each would add a reference.
        return (sys.getrefcount(pair[0]) == pair[4][0]
                and sys.getrefcount(pair[1]) == pair[4][1])

    def acquire(self, n: int):
        for pair in self._pairs:
            if len(pair[0]) >= n and self._free(pair):
                return pair[0], pair[1], pair[2], pair[3]
        # Headroom, so that the next batch, a little larger, still fits.
        size = max(n + n // 4, 1024)
        upd = np.empty(size, BOOK_UPDATE_DTYPE)
        trd = np.empty(size, TRADE_DTYPE)
        pair = [upd, trd, upd.view(np.uint64).reshape(size, W_UPDATE),
                trd.view(np.uint64).reshape(size, W_TRADE), None]
        del upd, trd
        pair[4] = (sys.getrefcount(pair[0]), sys.getrefcount(pair[1]))
        if len(self._pairs) == self.SLOTS:
            # A free pair that is too small goes first; otherwise the oldest
            # busy one, which then simply belongs to whoever holds it.
            free = [k for k, p in enumerate(self._pairs) if self._free(p)]
            del self._pairs[free[0] if free else 0]
        self._pairs.append(pair)
        return pair[0], pair[1], pair[2], pair[3]


# The records are declared little-endian and written through native u64 views.
assert sys.byteorder == "little", "FastBook writes little-endian records natively"


class FastBook:
    """Order-by-order book over every stock locate, decoding ITCH itself."""

    def __init__(self, order_capacity: int = 1 << 12, level_capacity: int = 1 << 14):
        if order_capacity < 4 or order_capacity & (order_capacity - 1):
            raise ValueError("order_capacity must be a power of two >= 4")
        self._otab = np.zeros(order_capacity * SLOT_WORDS, np.int64)
        bits = order_capacity.bit_length() - 1
        self._ostate = np.array([0, 64 - bits, order_capacity - 1,
                                 int(order_capacity * MAX_LOAD)], np.int64)
        self._bk_base = np.zeros(2 * N_LOCATES, np.int64)
        self._bk_len = np.zeros(2 * N_LOCATES, np.int64)
        self._bk_cap = np.zeros(2 * N_LOCATES, np.int64)
        size = max(level_capacity, 8 * INITIAL_LEVELS)
        self._lv_price = np.zeros(size, np.int64)
        self._lv_shares = np.zeros(size, np.int64)
        self._lv_count = np.zeros(size, np.int64)
        self._astate = np.zeros(2, np.int64)
        self._loc_state = np.full(N_LOCATES, B_TRADING, np.uint8)
        self._loc_dir = np.zeros(N_LOCATES, np.uint8)
        self._loc_symbol = np.zeros(N_LOCATES, np.int64)
        # 8 MiB of address space; only the pages of locates in use are ever touched.
        self._tops = np.zeros(N_LOCATES * TOP_WORDS, np.uint32)
        self._tops64 = self._tops.view(np.uint64)
        self._counters = np.zeros(len(COUNTER_NAMES), np.int64)
        self._sstate = np.zeros(2, np.uint64)
        self._scratch = np.zeros(3 * DEPTH, np.int64)
        self._outputs = _OutputPool()

    # -- input -----------------------------------------------------------------
    def process(self, batch):
        """Apply a MessageBatch; (updates, trades) arrays for this batch."""
        return self.process_arrays(batch.buf, batch.msg_off, batch.msg_len, batch.seq,
                                   batch.msg_index)

    def process_arrays(self, buf, msg_off, msg_len, seq=None, msg_index=None):
        buf = np.ascontiguousarray(buf, dtype=np.uint8)
        msg_off = np.ascontiguousarray(msg_off, dtype=np.int64)
        msg_len = np.ascontiguousarray(msg_len, dtype=np.int32)
        n = msg_off.shape[0]
        seq = (np.zeros(n, np.uint64) if seq is None
               else np.ascontiguousarray(seq, dtype=np.uint64))
        msg_index = (np.zeros(n, np.int32) if msg_index is None
                     else np.ascontiguousarray(msg_index, dtype=np.int32))
        if not (msg_len.shape[0] == seq.shape[0] == msg_index.shape[0] == n):
            raise ValueError("message arrays differ in length")
        upd, trd, upd_words, trd_words = self._outputs.acquire(n)
        nout = np.zeros(2, np.int64)
        i = 0
        while True:
            code, i = _process(buf, msg_off, msg_len, seq, msg_index, i,
                               MESSAGE_SIZE_TABLE, ALPHA_STARTS, ALPHA_OFFSETS, ALPHA_MASKS,
                               self._otab, self._ostate,
                               self._bk_base, self._bk_len, self._bk_cap, self._lv_price,
                               self._lv_shares, self._lv_count, self._astate,
                               self._loc_state, self._loc_dir, self._loc_symbol, self._tops,
                               self._tops64, self._counters, self._sstate, self._scratch,
                               upd_words, trd_words, nout)
            if code == NEED_ORDERS:
                self._grow_orders()
            elif code == NEED_LEVELS:
                self._grow_levels()
            else:
                break
        return upd[:nout[0]], trd[:nout[1]]

    def _grow_orders(self) -> None:
        cap = self.order_capacity * 2
        bits = cap.bit_length() - 1
        new = np.zeros(cap * SLOT_WORDS, np.int64)
        _rehash(self._otab, new, 64 - bits, cap * SLOT_WORDS - 1)
        self._otab = new
        self._ostate[1:] = (64 - bits, cap - 1, int(cap * MAX_LOAD))

    def _grow_levels(self) -> None:
        live = int(self._bk_cap.sum())
        need = live + 4 * (int(self._astate[1]) + INITIAL_LEVELS)
        size = max(2 * self._lv_price.shape[0], need)
        arrays = [np.zeros(size, np.int64) for _ in range(3)]
        used = _compact_levels(self._bk_base, self._bk_cap, self._lv_price,
                               self._lv_shares, self._lv_count, *arrays)
        self._lv_price, self._lv_shares, self._lv_count = arrays
        self._astate[0] = used

    # -- queries ---------------------------------------------------------------
    def top(self, locate: int):
        """(bids, asks): up to DEPTH (price, shares, orders) each, best first."""
        sides = []
        for b in (2 * locate, 2 * locate + 1):
            n = int(self._bk_len[b])
            base = int(self._bk_base[b])
            levels = []
            for k in range(base + n - 1, max(base + n - 1 - DEPTH, base - 1), -1):
                levels.append((int(self._lv_price[k]), int(self._lv_shares[k]),
                               int(self._lv_count[k])))
            sides.append(levels)
        return sides[0], sides[1]

    def levels(self, locate: int, side: str):
        """Every level of one side, best first (for invariants and debugging)."""
        b = 2 * locate + (0 if side == "B" else 1)
        n = int(self._bk_len[b])
        base = int(self._bk_base[b])
        sl = slice(base, base + n)
        return [(int(p), int(s), int(c)) for p, s, c in zip(
            self._lv_price[sl][::-1], self._lv_shares[sl][::-1], self._lv_count[sl][::-1])]

    def symbol(self, locate: int) -> str | None:
        if not self._loc_dir[locate]:
            return None
        raw = int(self._loc_symbol[locate]) & 0xFFFFFFFFFFFFFFFF
        return raw.to_bytes(8, "big").decode("ascii").rstrip(" ")

    def symbols(self) -> dict[int, str]:
        """locate -> symbol, from the Stock Directory messages seen."""
        return {int(loc): self.symbol(int(loc)) for loc in np.flatnonzero(self._loc_dir)}

    def orders(self) -> dict[int, tuple[int, str, int, int]]:
        """Live orders: reference -> (locate, side, price, shares)."""
        slots = self._otab.reshape(-1, SLOT_WORDS)
        t = slots[slots[:, O_INFO] != 0]
        out = {}
        for key, price, shares, info in t.tolist():
            out[key & 0xFFFFFFFFFFFFFFFF] = ((info >> 8) & 0xFFFF, "BS"[info & 1], price, shares)
        return out

    @property
    def order_count(self) -> int:
        return int(self._ostate[0])

    @property
    def order_capacity(self) -> int:
        return int(self._otab.shape[0]) // SLOT_WORDS

    @property
    def counters(self) -> dict[str, int]:
        return dict(zip(COUNTER_NAMES, (int(v) for v in self._counters)))

    @property
    def stale(self) -> bool:
        return bool(self._sstate[1])

    def clear_stale(self) -> None:
        self._sstate[1] = 0


__all__ = ["FastBook", "FIELD_OFFSETS", "MAX_LOAD", "INITIAL_LEVELS"]

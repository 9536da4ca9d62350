"""The order-by-order book at full speed: ITCH decode and book in numba.

``FastBook`` has exactly the semantics of ``host.book.reference.ReferenceBook``
(same update rows, trades, tops and counters, bit for bit -- the tests hold
it to that) but decodes the ITCH 5.0 bytes of a ``MessageBatch`` itself, one
compiled loop per batch.

Data structures
---------------
Orders live in an open-addressing hash table (linear probing, deletion by
backward shift so no tombstones pile up during a day of adds and deletes)
keyed by order reference number.  One slot is four int64 words -- key, price,
shares, and ``locate << 8 | side`` with an occupied bit -- so a probe touches
one 32-byte, cache-line-aligned slot.  The table starts small
(``order_capacity`` slots, a power of two, 4096 by default) and doubles by
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
changed them follows from the index of the level it touched; Order Replace,
which touches two levels, compares a snapshot of the side's top instead.
Orders do not remember their level's index (inserting or removing a level
moves the ones above it); they find it again by price from the touch.

Decoding checks each message the way ``host.protocols.itch50`` does -- length
against the declared size (``truncated`` / ``length_mismatch``), unknown type,
non-ASCII bytes in alpha fields (``bad_field``) -- using tables built from
the itch50 declarations, and reads the book fields at the offsets in
``FIELD_OFFSETS`` (pinned against those declarations by the tests).
"""
from __future__ import annotations

import sys

import numpy as np
from numba import njit

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


def _decode_tables():
    """Per type byte: declared size (0 = unknown) and the offsets of alpha bytes."""
    sizes = np.zeros(256, np.int64)
    per_type: list[list[int]] = [[] for _ in range(256)]
    for cls in MESSAGE_CLASSES:
        t = ord(cls.TYPE)
        sizes[t] = cls.fixed_size()
        for f in cls.LAYOUT.fields:
            if f.is_alpha:
                per_type[t].extend(range(f.offset, f.offset + f.size))
    starts = np.zeros(257, np.int64)
    positions: list[int] = []
    for t in range(256):
        starts[t] = len(positions)
        positions.extend(per_type[t])
    starts[256] = len(positions)
    return sizes, starts, np.array(positions, np.int64)


MESSAGE_SIZE_TABLE, ALPHA_STARTS, ALPHA_POSITIONS = _decode_tables()


# -- byte readers ---------------------------------------------------------------
@njit(cache=True)
def _be16(buf, o):
    return (np.int64(buf[o]) << 8) | np.int64(buf[o + 1])


@njit(cache=True)
def _be32(buf, o):
    return ((np.int64(buf[o]) << 24) | (np.int64(buf[o + 1]) << 16)
            | (np.int64(buf[o + 2]) << 8) | np.int64(buf[o + 3]))


@njit(cache=True)
def _be48(buf, o):
    return (_be16(buf, o) << 32) | _be32(buf, o + 2)


@njit(cache=True)
def _be64(buf, o):
    # The high bit lands in the sign: the int64 holds the u64's bit pattern.
    return (_be32(buf, o) << 32) | _be32(buf, o + 4)


# -- order table ------------------------------------------------------------------
@njit(cache=True)
def _home(key, shift):
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(shift))


@njit(cache=True)
def _find_slot(otab, shift, mask, key):
    """The slot holding ``key``, or the empty slot where it would go."""
    i = _home(key, shift)
    while True:
        if otab[i, 3] == 0 or otab[i, 0] == key:
            return i
        i = (i + 1) & mask


@njit(cache=True)
def _delete_slot(otab, shift, mask, i):
    j = i
    while True:
        j = (j + 1) & mask
        if otab[j, 3] == 0:
            break
        k = _home(otab[j, 0], shift)
        # The entry at j may fill the hole at i only if its home is not in (i, j].
        if i <= j:
            if i < k and k <= j:
                continue
        elif i < k or k <= j:
            continue
        for c in range(4):
            otab[i, c] = otab[j, c]
        i = j
    otab[i, 3] = 0


@njit(cache=True)
def _rehash(old, new, shift, mask):
    for i in range(old.shape[0]):
        if old[i, 3] != 0:
            j = _find_slot(new, shift, mask, old[i, 0])
            for c in range(4):
                new[j, c] = old[i, c]


# -- price levels --------------------------------------------------------------------
@njit(cache=True)
def _better(x, price, side):
    if side == 0:
        return x > price
    return x < price


@njit(cache=True)
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


@njit(cache=True)
def _level_add(b, price, shares, side, bk_base, bk_len, bk_cap,
               lv_price, lv_shares, lv_count, astate):
    """Add one order's shares; True if the side's top DEPTH changed."""
    n = bk_len[b]
    base = bk_base[b]
    j, found = _level_position(lv_price, base, n, price, side)
    if found:
        lv_shares[base + j] += shares
        lv_count[base + j] += 1
        return j >= n - DEPTH
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
    return pos >= n + 1 - DEPTH


@njit(cache=True)
def _level_reduce(b, price, shares, gone, side, bk_base, bk_len, lv_price, lv_shares,
                  lv_count):
    """Take shares (and the order, if ``gone``) off a level; True if the top changed."""
    n = bk_len[b]
    base = bk_base[b]
    j, found = _level_position(lv_price, base, n, price, side)
    if not found:
        return False  # unreachable while the order table and levels agree
    lv_shares[base + j] -= shares
    if gone:
        lv_count[base + j] -= 1
        if lv_count[base + j] == 0:
            for k in range(j, n - 1):
                lv_price[base + k] = lv_price[base + k + 1]
                lv_shares[base + k] = lv_shares[base + k + 1]
                lv_count[base + k] = lv_count[base + k + 1]
            bk_len[b] = n - 1
    return j >= n - DEPTH


@njit(cache=True)
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


@njit(cache=True)
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
# The kernel writes records through flat little-endian u32 views of the
# structured output arrays; these are the word indexes of their fields.
W_UPDATE = BOOK_UPDATE_DTYPE.itemsize // 4
W_TRADE = TRADE_DTYPE.itemsize // 4
_U = {name: BOOK_UPDATE_DTYPE.fields[name][1] // 4 for name in BOOK_UPDATE_DTYPE.names}
_T = {name: TRADE_DTYPE.fields[name][1] // 4 for name in TRADE_DTYPE.names}
UW_HEAD, UW_MSG_INDEX = _U["stock_locate"], _U["msg_index"]
UW_SEQ, UW_TIMESTAMP = _U["seq"], _U["timestamp"]
UW_BID_PRICE, UW_BID_SHARES, UW_BID_ORDERS = _U["bid_price"], _U["bid_shares"], _U["bid_orders"]
UW_ASK_PRICE, UW_ASK_SHARES, UW_ASK_ORDERS = _U["ask_price"], _U["ask_shares"], _U["ask_orders"]
TW_HEAD, TW_MSG_INDEX = _T["stock_locate"], _T["msg_index"]
TW_SEQ, TW_TIMESTAMP = _T["seq"], _T["timestamp"]
TW_REF, TW_MATCH = _T["order_reference_number"], _T["match_number"]
TW_SHARES, TW_PRICE = _T["shares"], _T["price"]
TW_RESERVED = _T["reserved"]
_MASK32 = np.int64(0xFFFFFFFF)


@njit(cache=True)
def _put64(words, k, w, v):
    v = np.int64(v)
    words[k, w] = v & _MASK32
    words[k, w + 1] = (v >> 32) & _MASK32


@njit(cache=True)
def _write_side(words, k, w_price, w_shares, w_orders, base, n, lv_price, lv_shares,
                lv_count):
    top = base + n - 1
    for j in range(DEPTH):
        if j < n:
            s = top - j
            words[k, w_price + j] = lv_price[s]
            words[k, w_shares + j] = min(lv_shares[s], _SATURATE)
            words[k, w_orders + j] = lv_count[s]
        else:
            words[k, w_price + j] = 0
            words[k, w_shares + j] = 0
            words[k, w_orders + j] = 0


@njit(cache=True)
def _write_update(words, k, locate, q, index, timestamp, bk_base, bk_len, lv_price,
                  lv_shares, lv_count, loc_state, loc_dir, sstate):
    b = locate * 2
    nb = bk_len[b]
    na = bk_len[b + 1]
    flags = 0
    if loc_state[locate] != B_TRADING:
        flags |= FLAG_NOT_TRADING
    if sstate[1] != 0:
        flags |= FLAG_STALE
    if nb > 0 and na > 0:
        if lv_price[bk_base[b] + nb - 1] >= lv_price[bk_base[b + 1] + na - 1]:
            flags |= FLAG_CROSSED
    if loc_dir[locate] == 0:
        flags |= FLAG_NO_DIRECTORY
    # stock_locate (u16), flags (u8) and reserved (u8) share the first word
    words[k, UW_HEAD] = locate | (flags << 16)
    words[k, UW_MSG_INDEX] = index
    _put64(words, k, UW_SEQ, q)
    _put64(words, k, UW_TIMESTAMP, timestamp)
    _write_side(words, k, UW_BID_PRICE, UW_BID_SHARES, UW_BID_ORDERS, bk_base[b], nb,
                lv_price, lv_shares, lv_count)
    _write_side(words, k, UW_ASK_PRICE, UW_ASK_SHARES, UW_ASK_ORDERS, bk_base[b + 1], na,
                lv_price, lv_shares, lv_count)


@njit(cache=True)
def _write_trade(words, k, locate, kind, side, index, q, timestamp, ref, match, shares,
                 price):
    words[k, TW_HEAD] = locate | (np.int64(kind) << 16) | (np.int64(side) << 24)
    words[k, TW_MSG_INDEX] = index
    _put64(words, k, TW_SEQ, q)
    _put64(words, k, TW_TIMESTAMP, timestamp)
    _put64(words, k, TW_REF, ref)
    _put64(words, k, TW_MATCH, match)
    _put64(words, k, TW_SHARES, shares)
    words[k, TW_PRICE] = price
    words[k, TW_RESERVED] = 0


# -- the kernel -------------------------------------------------------------------------
@njit(cache=True)
def _process(buf, msg_off, msg_len, seq, msg_index, start,
             sizes, alpha_starts, alpha_positions,
             otab, ostate,
             bk_base, bk_len, bk_cap, lv_price, lv_shares, lv_count, astate,
             loc_state, loc_dir, loc_symbol,
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
    mask = ostate[2]
    i = start
    while i < n:
        if ostate[0] >= ostate[3]:
            return NEED_ORDERS, i
        if astate[0] + 2 * astate[1] + 2 * INITIAL_LEVELS > arena:
            return NEED_LEVELS, i
        idx = i
        i += 1
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
        high = 0
        for k in range(alpha_starts[t], alpha_starts[t + 1]):
            high |= buf[o + alpha_positions[k]]
        if high >= 128:
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
            slot = _find_slot(otab, shift, mask, ref)
            if otab[slot, 3] != 0:
                counters[C_DUPLICATE_REF] += 1
                continue
            price = _be32(buf, o + OFF_ADD_PRICE)
            otab[slot, 0] = ref
            otab[slot, 1] = price
            otab[slot, 2] = shares
            otab[slot, 3] = _OCCUPIED | (locate << 8) | side
            ostate[0] += 1
            counters[C_ADDS] += 1
            if _level_add(locate * 2 + side, price, shares, side, bk_base, bk_len, bk_cap,
                          lv_price, lv_shares, lv_count, astate):
                _write_update(upd, nout[0], locate, q, index, _be48(buf, o + OFF_TIMESTAMP),
                              bk_base, bk_len, lv_price, lv_shares, lv_count, loc_state,
                              loc_dir, sstate)
                nout[0] += 1
                counters[C_UPDATES] += 1
            continue

        if (t == T_EXEC or t == T_EXEC_PRICE or t == T_CANCEL or t == T_DELETE
                or t == T_REPLACE):
            if loc_dir[locate] == 0:
                counters[C_UNKNOWN_LOCATE] += 1
            ref = _be64(buf, o + OFF_REF)
            slot = _find_slot(otab, shift, mask, ref)
            if otab[slot, 3] == 0:
                counters[C_UNKNOWN_REF] += 1
                continue
            info = otab[slot, 3]
            book_locate = (info >> 8) & 0xFFFF
            side = info & 1
            price = otab[slot, 1]
            remaining = otab[slot, 2]
            if book_locate != locate:
                counters[C_LOCATE_MISMATCH] += 1
            b = book_locate * 2 + side
            timestamp = _be48(buf, o + OFF_TIMESTAMP)

            if t == T_REPLACE:
                _snapshot_side(scratch, b, bk_base, bk_len, lv_price, lv_shares, lv_count)
                _delete_slot(otab, shift, mask, slot)
                ostate[0] -= 1
                _level_reduce(b, price, remaining, True, side, bk_base, bk_len, lv_price,
                              lv_shares, lv_count)
                counters[C_REPLACES] += 1
                new_shares = _be32(buf, o + OFF_REPLACE_SHARES)
                if new_shares == 0:
                    counters[C_ZERO_SHARES] += 1
                else:
                    new_ref = _be64(buf, o + OFF_REPLACE_NEW)
                    new_slot = _find_slot(otab, shift, mask, new_ref)
                    if otab[new_slot, 3] != 0:
                        counters[C_DUPLICATE_REF] += 1
                    else:
                        new_price = _be32(buf, o + OFF_REPLACE_PRICE)
                        otab[new_slot, 0] = new_ref
                        otab[new_slot, 1] = new_price
                        otab[new_slot, 2] = new_shares
                        otab[new_slot, 3] = info
                        ostate[0] += 1
                        counters[C_ADDS] += 1
                        _level_add(b, new_price, new_shares, side, bk_base, bk_len, bk_cap,
                                   lv_price, lv_shares, lv_count, astate)
                changed = _side_differs(scratch, b, bk_base, bk_len, lv_price, lv_shares,
                                        lv_count)
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
                    _delete_slot(otab, shift, mask, slot)
                    ostate[0] -= 1
                else:
                    otab[slot, 2] = remaining - cut
                changed = False
                if cut > 0:
                    changed = _level_reduce(b, price, cut, gone, side, bk_base, bk_len,
                                            lv_price, lv_shares, lv_count)
            if changed:
                _write_update(upd, nout[0], book_locate, q, index, timestamp, bk_base,
                              bk_len, lv_price, lv_shares, lv_count, loc_state, loc_dir,
                              sstate)
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


@njit(cache=True)
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
        size = max(n, 1)
        upd = np.empty(size, BOOK_UPDATE_DTYPE)
        trd = np.empty(size, TRADE_DTYPE)
        pair = [upd, trd, upd.view(np.uint32).reshape(size, W_UPDATE),
                trd.view(np.uint32).reshape(size, W_TRADE), None]
        del upd, trd
        pair[4] = (sys.getrefcount(pair[0]), sys.getrefcount(pair[1]))
        if len(self._pairs) == self.SLOTS:
            # A free pair that is too small goes first; otherwise the oldest
            # busy one, which then simply belongs to whoever holds it.
            free = [k for k, p in enumerate(self._pairs) if self._free(p)]
            del self._pairs[free[0] if free else 0]
        self._pairs.append(pair)
        return pair[0], pair[1], pair[2], pair[3]


# The records are declared little-endian and written through u32 views.
assert sys.byteorder == "little", "FastBook writes little-endian records natively"


class FastBook:
    """Order-by-order book over every stock locate, decoding ITCH itself."""

    def __init__(self, order_capacity: int = 1 << 12, level_capacity: int = 1 << 14):
        if order_capacity < 4 or order_capacity & (order_capacity - 1):
            raise ValueError("order_capacity must be a power of two >= 4")
        self._otab = np.zeros((order_capacity, 4), np.int64)
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
                               MESSAGE_SIZE_TABLE, ALPHA_STARTS, ALPHA_POSITIONS,
                               self._otab, self._ostate,
                               self._bk_base, self._bk_len, self._bk_cap, self._lv_price,
                               self._lv_shares, self._lv_count, self._astate,
                               self._loc_state, self._loc_dir, self._loc_symbol,
                               self._counters, self._sstate, self._scratch, upd_words, trd_words,
                               nout)
            if code == NEED_ORDERS:
                self._grow_orders()
            elif code == NEED_LEVELS:
                self._grow_levels()
            else:
                break
        return upd[:nout[0]], trd[:nout[1]]

    def _grow_orders(self) -> None:
        cap = self._otab.shape[0] * 2
        bits = cap.bit_length() - 1
        new = np.zeros((cap, 4), np.int64)
        _rehash(self._otab, new, 64 - bits, cap - 1)
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
        t = self._otab[self._otab[:, 3] != 0]
        out = {}
        for key, price, shares, info in t.tolist():
            out[key & 0xFFFFFFFFFFFFFFFF] = ((info >> 8) & 0xFFFF, "BS"[info & 1], price, shares)
        return out

    @property
    def order_count(self) -> int:
        return int(self._ostate[0])

    @property
    def order_capacity(self) -> int:
        return int(self._otab.shape[0])

    @property
    def counters(self) -> dict[str, int]:
        return dict(zip(COUNTER_NAMES, (int(v) for v in self._counters)))

    @property
    def stale(self) -> bool:
        return bool(self._sstate[1])

    def clear_stale(self) -> None:
        self._sstate[1] = 0


__all__ = ["FastBook", "FIELD_OFFSETS", "MAX_LOAD", "INITIAL_LEVELS"]

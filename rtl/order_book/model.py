"""Bit-accurate model of the order book block; this is the block's specification.

The block consumes internal ITCH events (``rtl.common.events``) and keeps an
order-by-order book for up to ``slots`` stock locates.  It emits a
BOOK_UPDATE record (``host.book.records``) whenever the top ``DEPTH`` levels
of either side of a tracked locate change, and a TRADE record for every
execution of a tracked order (E, and C when printable) and every Trade (P)
on a tracked locate.  What it emits is what the golden book
(``host.book.reference``) emits for the same locates, except where the
block says in the record that it cannot be exact (``FLAG_DEGRADED``).

Book slots
----------
A slot is one tracked locate.  With ``auto_assign`` on (the default), the
first Stock Directory (R) message of a locate without a slot takes the
lowest free slot; once all are taken further locates stay untracked
(``no_free_slot``).  The host can also assign and release slots itself with
commands (``CMD_*``); assigning or releasing a slot empties its book and
purges its orders from the order table.  Events of a locate without a slot
are counted (``untracked``) and otherwise ignored.

Order table
-----------
Orders of tracked locates live in a set-associative table of
``order_sets`` x ``order_ways`` entries (reference, slot, side, price,
shares).  The set is the order reference folded to ``log2(order_sets)``
bits by XOR of its chunks, so references handed out in increasing order
fill the sets evenly; a lookup compares all ways of one set at once.  An
add whose set is full is not booked: the order is dropped and its slot is
marked lost (``order_table_full``).  An add that reuses a live reference
(``duplicate_reference``) or has zero shares (``zero_shares``) is not
booked, as in the golden book.  Execute, cancel, delete and replace find
their order by reference alone and apply to the book the order was added
on, whatever locate the message names.  The table holds tracked orders
only, so a reference reused on a tracked locate while still live on an
untracked one is booked here but refused by the golden book, and so is a
reference reused after its first add was dropped for a full set (the
table never held it, so nothing can tell the reuse apart from a new
order); ITCH order references are unique for the day, so a valid feed
never does either.

Price levels
------------
Each side of a slot is a sorted array of ``levels`` price levels (best
first), each holding price, aggregate shares and order count.  When a new
level is better than the worst tracked one of a full array, the worst is
evicted; a new level worse than all of a full array is not tracked.  Either
way the side is then *truncated*: it remembers the best price it no longer
tracks (``boundary``) and how many live orders sit at or beyond it
(``beyond``).  Orders at or beyond the boundary are kept in the order table
but not in the levels; prices better than the boundary are always tracked
exactly.  When the last order beyond the boundary leaves, the side is exact
again.  A truncated side with fewer than ``DEPTH`` tracked levels cannot
tell its top ``DEPTH`` levels: it is *depth degraded*.

Refill: with the ``refill`` control bit on (the default), a side that is
depth degraded at the end of an event is rebuilt before the record goes
out: its truncation is forgotten and every order of that slot and side at
or beyond the old boundary is added again from the order table (one scan
of all sets; the result does not depend on the order of the adds).  The
side then holds its best ``levels`` levels again, exactly.  The scan costs
about ``order_sets`` cycles, during which no event is taken; with
``refill`` off the block never stalls for it and flags the side instead.

Degradation
-----------
``FLAG_DEGRADED`` (bit 4 of ``flags``, the first bit ``host.book.records``
leaves free) is set in a record when the slot is *lost* or one of its sides
is depth degraded (only possible with ``refill`` off).  A slot becomes
lost, for good until the host clears it (``CMD_CLEAR_DEGRADED``) or
reassigns the slot, when

* ``order_table_full``: an add for it was dropped (its set was full);
* ``unknown_reference``: an execute/cancel/delete/replace naming the slot's
  locate referred to an order the table does not hold (it may be one the
  table dropped, or one added before the slot was assigned);
* ``level_missing``: an order's level was not found among the tracked ones
  although its price is better than the boundary (cannot happen while the
  invariants hold; checked so that it can never go unnoticed).

Depth degradation clears itself when the side has ``DEPTH`` tracked levels
again or its last order beyond the boundary leaves.  A record is emitted
when the top ``DEPTH`` levels of the slot changed *or* its degraded state
changed, so the host always learns of both the start and the end of a
degraded stretch; while a slot is not degraded its records are exactly the
golden book's.  Each such change also goes to the feed event stream
(``host.feed.records``): ``EVENT_BOOK_DEGRADED`` with the first reason the
message caused (``depth`` when it was only the depth), or
``EVENT_BOOK_RESTORED``, with the slot's locate and the message's ``seq``
and ``msg_index`` (:attr:`OrderBookModel.feed_events`).  The fabric queues
them in front of the stream (:data:`FEED_EVENT_QUEUE` records); this model
is a host that keeps up, so it never drops one (the block counts any it
drops under ``feed_events_lost`` and flags the next).  A host command that
clears a lost slot makes no event: the host did it.

Flags: ``FLAG_NOT_TRADING`` from the slot's last Trading Action (H) event
(a new slot counts as trading), ``FLAG_STALE`` from the ``stale`` control
bit (software's) or the event's own ``stale`` bit (the sequencer's sideband:
a stream gap was seen and software has not cleared it yet),
``FLAG_CROSSED`` from the best levels, ``FLAG_NO_DIRECTORY`` until the slot
has seen its locate's Stock Directory event (a slot assigned by a directory
event has).

Records go out on one stream, a trade before the book update of the same
event; ``TDEST_UPDATE``/``TDEST_TRADE`` tell them apart (as do their sizes).
A trade carries the order's locate, side and (E) price; a Trade (P) record
takes its buy/sell indicator from the event's ``side`` bit, so the decoder
must fill ``side`` for P as it does for adds.  Cross trades (Q) are not
events and are not printed.  Counters are 32 bits wide and wrap; ``refills``
counts table scans (one scan rebuilds both sides if both need it).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import numpy as np

from host.book.records import (BOOK_UPDATE_DTYPE, DEPTH, FLAG_CROSSED, FLAG_NO_DIRECTORY,
                               FLAG_NOT_TRADING, FLAG_STALE, SHARES_SATURATE, SIDE_BUY,
                               SIDE_SELL, TRADE_DTYPE)
from host.feed.records import (DEGRADE_REASONS, EVENT_BOOK_DEGRADED, EVENT_BOOK_RESTORED,
                               feed_event)
from rtl.common.events import (EV_ADD, EV_CANCEL, EV_DELETE, EV_DIRECTORY, EV_EXECUTE,
                               EV_EXECUTE_PRICE, EV_REPLACE, EV_SYSTEM, EV_TRADE,
                               EV_TRADING_STATE, ITCH_EVENT_DTYPE)

FLAG_DEGRADED = 0x10

SLOTS = 64
LEVELS = 16
ORDER_SETS = 1024
ORDER_WAYS = 8
MAX_SLOTS = 256          # the command's slot field is 8 bits

TDEST_UPDATE = 0
TDEST_TRADE = 1

# Host commands (COMMAND.cmd_op).
CMD_NONE = 0             # nothing; selects the slot SLOT_INFO shows
CMD_ASSIGN = 1           # slot <- locate (refused if another slot holds it)
CMD_RELEASE = 2          # slot untracked
CMD_CLEAR_DEGRADED = 3   # forget the slot's lost state
CMD_RESET_BOOK = 4       # every slot released, order table emptied
CMD_OPS = (CMD_NONE, CMD_ASSIGN, CMD_RELEASE, CMD_CLEAR_DEGRADED, CMD_RESET_BOOK)

# Feed event records the block holds while the event stream is busy.
FEED_EVENT_QUEUE = 4

EVENT_KIND_NAMES = {
    EV_ADD: "add", EV_EXECUTE: "execute", EV_EXECUTE_PRICE: "execute_price",
    EV_CANCEL: "cancel", EV_DELETE: "delete", EV_REPLACE: "replace", EV_TRADE: "trade",
    EV_DIRECTORY: "directory", EV_TRADING_STATE: "trading_state", EV_SYSTEM: "system",
}
# Counter names in register order.
COUNTERS = (
    *(f"ev_{name}" for name in EVENT_KIND_NAMES.values()),
    "ev_other",              # kind 0 or above the last known one: bad input, ignored
    "untracked",             # an event whose locate (or order) has no slot
    "book_updates",
    "trades",
    "duplicate_reference",
    "zero_shares",
    "over_execution",
    "over_cancel",
    "no_free_slot",
    "bad_command",
    "refills",
    *(f"degraded_{reason}" for reason in DEGRADE_REASONS),
    "feed_events_lost",      # degraded/restored records dropped: the event stream was backed up
)
COUNTER_MASK = 0xFFFF_FFFF
_EVENT_COUNTERS = {kind: f"ev_{name}" for kind, name in EVENT_KIND_NAMES.items()}

CHAR_T = ord("T")
CHAR_Y = ord("Y")


def _optional_field(event, name: str) -> int:
    """A field of an event row, or 0 when a mapping leaves it out."""
    try:
        return int(event[name])
    except (KeyError, ValueError, IndexError):
        return 0


@dataclass(frozen=True)
class BookConfig:
    """Build parameters of the block."""

    slots: int = SLOTS
    levels: int = LEVELS
    order_sets: int = ORDER_SETS
    order_ways: int = ORDER_WAYS

    def __post_init__(self):
        if not 1 <= self.slots <= MAX_SLOTS:
            raise ValueError(f"slots must be 1..{MAX_SLOTS}, got {self.slots}")
        if self.levels < DEPTH:
            raise ValueError(f"levels must be at least {DEPTH}, got {self.levels}")
        if self.order_sets < 2 or self.order_sets & (self.order_sets - 1):
            raise ValueError(f"order_sets must be a power of two >= 2, got {self.order_sets}")
        if self.order_ways < 1:
            raise ValueError("order_ways must be at least 1")

    @property
    def capacity(self) -> int:
        return self.order_sets * self.order_ways

    @property
    def set_bits(self) -> int:
        return self.order_sets.bit_length() - 1

    @property
    def count_bits(self) -> int:
        """Bits of an order count that can never overflow: 0..capacity."""
        return self.capacity.bit_length()

    @property
    def shares_bits(self) -> int:
        """Aggregate shares of a level: up to ``capacity`` orders of 2**32-1."""
        return 32 + self.count_bits


def order_set(ref: int, set_bits: int) -> int:
    """The order table set of reference ``ref``: its 64 bits XOR-folded to
    ``set_bits`` bits."""
    mask = (1 << set_bits) - 1
    folded = 0
    if 0 <= ref < 1 << 64:
        # Chunks above the reference's highest set bit are zero: stop there.
        while ref:
            folded ^= ref & mask
            ref >>= set_bits
        return folded
    for lsb in range(0, 64, set_bits):
        folded ^= (ref >> lsb) & mask
    return folded


class Ladder:
    """One side of one slot: tracked levels best first, plus truncation."""

    __slots__ = ("is_bid", "levels", "truncated", "boundary", "beyond")

    def __init__(self, is_bid: bool):
        self.is_bid = is_bid
        self.levels: list[list[int]] = []   # [price, shares, orders]
        self.truncated = False
        self.boundary = 0
        self.beyond = 0

    def better(self, a: int, b: int) -> bool:
        return a > b if self.is_bid else a < b

    def is_beyond(self, price: int) -> bool:
        return self.truncated and not self.better(price, self.boundary)

    def add(self, price: int, shares: int, max_levels: int) -> None:
        if self.is_beyond(price):
            self.beyond += 1
            return
        levels = self.levels
        count = len(levels)
        pos = 0
        if self.is_bid:
            while pos < count and levels[pos][0] > price:
                pos += 1
        else:
            while pos < count and levels[pos][0] < price:
                pos += 1
        if pos < len(levels) and levels[pos][0] == price:
            levels[pos][1] += shares
            levels[pos][2] += 1
        elif pos < max_levels:
            levels.insert(pos, [price, shares, 1])
            if len(levels) > max_levels:
                evicted = levels.pop()
                self.truncated = True
                self.boundary = evicted[0]
                self.beyond += evicted[2]
        else:
            self.truncated = True
            self.boundary = price
            self.beyond += 1

    def reduce(self, price: int, shares: int, gone: bool) -> bool:
        """Take ``shares`` (and the order, if ``gone``) off the level at
        ``price``; False if a tracked price has no level (inconsistent)."""
        if self.is_beyond(price):
            if gone:
                self.beyond -= 1
                if self.beyond == 0:
                    self.truncated = False
                    self.boundary = 0
            return True
        for pos, level in enumerate(self.levels):
            if level[0] == price:
                level[1] -= shares
                if gone:
                    level[2] -= 1
                    if level[2] == 0:
                        del self.levels[pos]
                return True
        return False

    def top(self) -> tuple:
        return tuple(map(tuple, self.levels[:DEPTH]))

    def depth_degraded(self) -> bool:
        return self.truncated and len(self.levels) < DEPTH

    def columns(self) -> tuple:
        """(prices, shares, orders) of the top DEPTH levels, zero padded,
        shares saturated as in the record."""
        top = self.levels[:DEPTH]
        if not top:
            return _EMPTY_COLUMNS
        prices, shares, orders = zip(*top)
        if len(top) < DEPTH:
            pad = (0,) * (DEPTH - len(top))
            prices, shares, orders = prices + pad, shares + pad, orders + pad
        if max(shares) > SHARES_SATURATE:
            shares = tuple(min(s, SHARES_SATURATE) for s in shares)
        return prices, shares, orders


_EMPTY_COLUMNS = ((0,) * DEPTH,) * 3


def _record_struct(dtype: np.dtype) -> struct.Struct:
    """The packed little-endian layout of a record dtype as a struct, so a
    record packs without a numpy array per record; the same bytes as numpy
    for every value the dtype holds."""
    codes = {1: "B", 2: "H", 4: "I", 8: "Q"}
    fmt, offset = "<", 0
    for name in dtype.names:
        base, field_offset = dtype.fields[name][:2]
        sub = base.subdtype
        scalar, shape = (sub[0], sub[1]) if sub else (base, ())
        if scalar.kind != "u" or field_offset != offset or scalar.byteorder == ">":
            raise ValueError(f"{name}: only packed little-endian unsigned fields")
        count = int(np.prod(shape)) if shape else 1
        fmt += f"{count}{codes[scalar.itemsize]}" if shape else codes[scalar.itemsize]
        offset += base.itemsize
    packed = struct.Struct(fmt)
    if packed.size != dtype.itemsize:
        raise ValueError("record layout has padding")
    return packed


_UPDATE_STRUCT = _record_struct(BOOK_UPDATE_DTYPE)
_TRADE_STRUCT = _record_struct(TRADE_DTYPE)


class Slot:
    __slots__ = ("valid", "locate", "symbol", "directory", "not_trading", "lost", "depth",
                 "bids", "asks")

    def __init__(self):
        self.valid = False
        self.locate = 0
        self.clear()

    def clear(self) -> None:
        self.symbol = 0
        self.directory = False
        self.not_trading = False
        self.lost = False
        self.depth = False          # depth degraded as of its last book event
        self.bids = Ladder(True)
        self.asks = Ladder(False)

    def ladder(self, side: int) -> Ladder:
        return self.asks if side else self.bids

    @property
    def degraded(self) -> bool:
        return self.lost or self.depth


class Order(NamedTuple):
    slot: int
    side: int
    price: int
    shares: int


class Output(NamedTuple):
    """One record on the output stream."""

    dest: int      # TDEST_UPDATE or TDEST_TRADE
    row: tuple     # in BOOK_UPDATE_DTYPE or TRADE_DTYPE field order

    def to_bytes(self) -> bytes:
        row = self.row
        if self.dest == TDEST_UPDATE:
            try:
                return _UPDATE_STRUCT.pack(*row[:6], *row[6], *row[7], *row[8], *row[9],
                                           *row[10], *row[11])
            except (struct.error, TypeError, IndexError):
                # A value the record cannot hold: numpy's conversion decides.
                return np.array([row], dtype=BOOK_UPDATE_DTYPE).tobytes()
        try:
            return _TRADE_STRUCT.pack(*row)
        except struct.error:
            return np.array([row], dtype=TRADE_DTYPE).tobytes()


class SlotInfo(NamedTuple):
    locate: int
    valid: bool
    directory: bool
    not_trading: bool
    lost: bool
    degraded: bool
    symbol: int


class OrderBookModel:
    """The block: slots, order table, ladders, counters; events in, records out."""

    def __init__(self, config: BookConfig = BookConfig(), auto_assign: bool = True,
                 stale: bool = False, refill: bool = True):
        self.config = config
        self.auto_assign = auto_assign
        self.stale = stale
        self.event_stale = False
        self.refill = refill
        self.slots = [Slot() for _ in range(config.slots)]
        # locate -> its slot, the lowest valid one holding it; slots are
        # assigned and released only by command() and directory events,
        # which rebuild it.
        self._slot_index: dict[int, int] = {}
        self.sets: list[dict[int, Order]] = [{} for _ in range(config.order_sets)]
        self.occupancy = 0
        self.occupancy_high = 0
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.feed_events: list = []
        self._first_loss: str | None = None

    # -- host side -------------------------------------------------------------
    def command(self, op: int, slot: int = 0, locate: int = 0) -> None:
        """Run one host command (COMMAND register)."""
        if op == CMD_NONE:
            return
        if op == CMD_RESET_BOOK:
            for entry in self.slots:
                entry.valid = False
                entry.locate = 0
                entry.clear()
            self._reindex()
            self._purge(None)
            return
        if op not in CMD_OPS or slot >= self.config.slots:
            self._count("bad_command")
            return
        target = self.slots[slot]
        if op == CMD_ASSIGN:
            holder = self._slot_of(locate)
            if holder is not None and holder != slot:
                self._count("bad_command")
                return
            target.valid, target.locate = True, locate
            target.clear()
            self._reindex()
            self._purge(slot)
        elif op == CMD_RELEASE:
            target.valid = False
            target.clear()
            self._reindex()
            self._purge(slot)
        else:
            target.lost = False

    def slot_info(self, slot: int) -> SlotInfo:
        s = self.slots[slot]
        return SlotInfo(s.locate, s.valid, s.directory, s.not_trading, s.lost, s.degraded,
                        s.symbol)

    def degraded_mask(self) -> int:
        return sum(1 << i for i, s in enumerate(self.slots) if s.degraded)

    def slots_used(self) -> int:
        return sum(s.valid for s in self.slots)

    # -- events ----------------------------------------------------------------
    def process(self, event) -> list[Output]:
        """Apply one event (a row of ITCH_EVENT_DTYPE or a mapping); the
        records it produces, in output order."""
        self.event_stale = bool(_optional_field(event, "stale"))
        self._first_loss = None
        kind = int(event["kind"])
        self._count(_EVENT_COUNTERS.get(kind, "ev_other"))
        locate = int(event["stock_locate"])
        header = self._slot_of(locate)
        if kind == EV_DIRECTORY:
            self._directory(header, locate, int(event["aux"]))
            return []
        if kind == EV_TRADING_STATE:
            if header is None:
                self._count("untracked")
            else:
                self.slots[header].not_trading = (int(event["aux"]) & 0xFF) != CHAR_T
            return []
        if kind == EV_TRADE:
            if header is None:
                self._count("untracked")
                return []
            side = SIDE_SELL if int(event["side"]) else SIDE_BUY
            return [self._trade(event, locate, ord("P"), side, int(event["order_ref"]),
                                int(event["price"]))]
        if kind == EV_ADD:
            return self._add_event(event, header)
        if kind in (EV_EXECUTE, EV_EXECUTE_PRICE, EV_CANCEL, EV_DELETE, EV_REPLACE):
            return self._order_event(event, kind, header)
        return []

    def run(self, events: Iterable) -> list[Output]:
        out: list[Output] = []
        for event in events:
            out.extend(self.process(event))
        return out

    # -- internals -------------------------------------------------------------
    def _count(self, name: str) -> None:
        self.counters[name] = (self.counters[name] + 1) & COUNTER_MASK

    def _slot_of(self, locate: int) -> int | None:
        return self._slot_index.get(locate)

    def _reindex(self) -> None:
        self._slot_index = {slot.locate: index
                            for index, slot in reversed(list(enumerate(self.slots)))
                            if slot.valid}

    def _purge(self, slot: int | None) -> None:
        for entries in self.sets:
            for ref in [r for r, o in entries.items() if slot is None or o.slot == slot]:
                del entries[ref]
                self.occupancy -= 1

    def _directory(self, header: int | None, locate: int, stock: int) -> None:
        if header is None:
            if not self.auto_assign:
                self._count("untracked")
                return
            free = next((i for i, s in enumerate(self.slots) if not s.valid), None)
            if free is None:
                self._count("no_free_slot")
                return
            # A free slot's orders were purged when it was released.
            header = free
            slot = self.slots[free]
            slot.valid, slot.locate = True, locate
            slot.clear()
            self._reindex()
        slot = self.slots[header]
        slot.directory = True
        slot.symbol = stock

    def _lookup(self, ref: int) -> tuple[dict, Order | None]:
        entries = self.sets[order_set(ref, self.config.set_bits)]
        return entries, entries.get(ref)

    def _insert(self, entries: dict, ref: int, order: Order) -> bool:
        if len(entries) >= self.config.order_ways:
            return False
        entries[ref] = order
        self.occupancy += 1
        self.occupancy_high = max(self.occupancy_high, self.occupancy)
        return True

    def _add_event(self, event, header: int | None) -> list[Output]:
        if header is None:
            self._count("untracked")
            return []
        shares = int(event["shares"])
        if shares == 0:
            self._count("zero_shares")
            return []
        ref = int(event["order_ref"])
        entries, order = self._lookup(ref)
        if order is not None:
            self._count("duplicate_reference")
            return []
        slot = self.slots[header]
        before = self._snapshot(slot)
        side, price = int(event["side"]), int(event["price"])
        if self._insert(entries, ref, Order(header, side, price, shares)):
            slot.ladder(side).add(price, shares, self.config.levels)
        else:
            self._lose(slot, "order_table_full")
        return self._finish(event, header, before, [])

    def _order_event(self, event, kind: int, header: int | None) -> list[Output]:
        ref = int(event["order_ref"])
        entries, order = self._lookup(ref)
        if order is None:
            if header is None:
                self._count("untracked")
                return []
            slot = self.slots[header]
            before = self._snapshot(slot)
            self._lose(slot, "unknown_reference")
            return self._finish(event, header, before, [])
        slot = self.slots[order.slot]
        before = self._snapshot(slot)
        ladder = slot.ladder(order.side)
        trades: list[Output] = []
        if kind == EV_REPLACE:
            del entries[ref]
            self.occupancy -= 1
            self._reduce(slot, ladder, order.price, order.shares, True)
            self._replace_new(event, slot, order)
        else:
            if kind == EV_DELETE:
                amount = order.shares
            else:
                amount = int(event["shares"])
                if amount > order.shares:
                    self._count("over_cancel" if kind == EV_CANCEL else "over_execution")
                    amount = order.shares
            left = order.shares - amount
            if left:
                entries[ref] = order._replace(shares=left)
            else:
                del entries[ref]
                self.occupancy -= 1
            self._reduce(slot, ladder, order.price, amount, left == 0)
            side = SIDE_SELL if order.side else SIDE_BUY
            if kind == EV_EXECUTE:
                trades.append(self._trade(event, slot.locate, ord("E"), side, ref, order.price))
            elif kind == EV_EXECUTE_PRICE and (int(event["aux"]) & 0xFF) == CHAR_Y:
                trades.append(self._trade(event, slot.locate, ord("C"), side, ref,
                                          int(event["price"])))
        return self._finish(event, order.slot, before, trades)

    def _replace_new(self, event, slot: Slot, original: Order) -> None:
        shares = int(event["shares"])
        if shares == 0:
            self._count("zero_shares")
            return
        ref = int(event["new_order_ref"])
        entries, existing = self._lookup(ref)
        if existing is not None:
            self._count("duplicate_reference")
            return
        price = int(event["price"])
        if self._insert(entries, ref, Order(original.slot, original.side, price, shares)):
            slot.ladder(original.side).add(price, shares, self.config.levels)
        else:
            self._lose(slot, "order_table_full")

    def _reduce(self, slot: Slot, ladder: Ladder, price: int, shares: int, gone: bool) -> None:
        if not ladder.reduce(price, shares, gone):
            self._lose(slot, "level_missing")

    def _lose(self, slot: Slot, reason: str) -> None:
        slot.lost = True
        self._count(f"degraded_{reason}")
        if self._first_loss is None:
            self._first_loss = reason

    @staticmethod
    def _snapshot(slot: Slot):
        return slot.bids.top(), slot.asks.top(), slot.degraded

    def _refill(self, index: int, side: int) -> None:
        ladder = self.slots[index].ladder(side)
        beyond = [o for entries in self.sets for o in entries.values()
                  if o.slot == index and o.side == side and ladder.is_beyond(o.price)]
        ladder.truncated, ladder.boundary, ladder.beyond = False, 0, 0
        for order in beyond:
            ladder.add(order.price, order.shares, self.config.levels)

    def _finish(self, event, index: int, before, out: list[Output]) -> list[Output]:
        slot = self.slots[index]
        bids, asks = slot.bids, slot.asks
        # `before` is _snapshot's: (bids top, asks top, degraded).
        if self.refill and (bids.truncated or asks.truncated):
            sides = [side for side in (0, 1) if slot.ladder(side).depth_degraded()]
            for side in sides:
                self._refill(index, side)
            if sides:
                # One scan of the table rebuilds both sides.
                self._count("refills")
        depth = bids.depth_degraded() or asks.depth_degraded()
        if depth and not slot.depth:
            self._count("degraded_depth")
        slot.depth = depth
        after = (bids.top(), asks.top(), slot.degraded)
        if after[2] != before[2]:
            self._feed_event(event, slot)
        if after != before:
            out.append(self._update(event, slot))
        return out

    def _feed_event(self, event, slot: Slot) -> None:
        if slot.degraded:
            kind = EVENT_BOOK_DEGRADED
            reason = 1 + DEGRADE_REASONS.index(self._first_loss or "depth")
        else:
            kind, reason = EVENT_BOOK_RESTORED, 0
        self.feed_events.append(feed_event(kind, reason=reason, stock_locate=slot.locate,
                                           msg_index=int(event["msg_index"]),
                                           seq=int(event["seq"])))

    def _flags(self, slot: Slot) -> int:
        flags = FLAG_DEGRADED if slot.degraded else 0
        if slot.not_trading:
            flags |= FLAG_NOT_TRADING
        if self.stale or self.event_stale:
            flags |= FLAG_STALE
        bids, asks = slot.bids.levels, slot.asks.levels
        if bids and asks and bids[0][0] >= asks[0][0]:
            flags |= FLAG_CROSSED
        if not slot.directory:
            flags |= FLAG_NO_DIRECTORY
        return flags

    def _update(self, event, slot: Slot) -> Output:
        self._count("book_updates")
        row = (slot.locate, self._flags(slot), 0, int(event["msg_index"]), int(event["seq"]),
               int(event["timestamp"]), *slot.bids.columns(), *slot.asks.columns())
        return Output(TDEST_UPDATE, row)

    def _trade(self, event, locate: int, kind: int, side: int, ref: int, price: int) -> Output:
        self._count("trades")
        row = (locate, kind, side, int(event["msg_index"]), int(event["seq"]),
               int(event["timestamp"]), ref, int(event["match_number"]), int(event["shares"]),
               price, 0)
        return Output(TDEST_TRADE, row)


def split_outputs(outputs: Iterable[Output]) -> tuple[np.ndarray, np.ndarray]:
    """(BOOK_UPDATE_DTYPE array, TRADE_DTYPE array) of a record stream."""
    outputs = list(outputs)
    updates = np.array([o.row for o in outputs if o.dest == TDEST_UPDATE], BOOK_UPDATE_DTYPE)
    trades = np.array([o.row for o in outputs if o.dest == TDEST_TRADE], TRADE_DTYPE)
    return updates, trades


def events_array(rows: Iterable[dict]) -> np.ndarray:
    """ITCH_EVENT_DTYPE array from mappings (missing fields are zero)."""
    rows = list(rows)
    out = np.zeros(len(rows), ITCH_EVENT_DTYPE)
    for i, row in enumerate(rows):
        for name, value in row.items():
            out[i][name] = value
    return out

"""The golden order-by-order book: plain Python, written to be read.

This is the specification every faster book (``host.book.fast``, the fabric's
model and its RTL) is checked against, and the pure-Python baseline of the
benchmarks.  It consumes decoded ITCH 5.0 messages (``host.protocols.itch50``)
and keeps, per stock locate, every displayed order and the price levels they
form.

What each message does
----------------------
* Add Order (A, F): books a new order on its locate and side.
* Order Executed (E): reduces the order by the executed shares and prints a
  trade at the order's price.
* Order Executed With Price (C): reduces the order the same way; prints a
  trade at the execution price only when ``printable`` is ``Y``.
* Order Cancel (X): reduces the order by the canceled shares.
* Order Delete (D): removes the order.
* Order Replace (U): removes the original order and books the new reference
  number with the new price and shares on the same locate and side.
* Trade (P), Cross Trade (Q): print a trade; the book does not change.
* Stock Directory (R): records the symbol of a locate.
* Stock Trading Action (H): records the trading state (``FLAG_NOT_TRADING``).
An order whose shares reach zero leaves the book; a level whose last order
leaves disappears.  Orders are always booked on the locate they were added
on: a later message naming the order under another locate changes that book
(and is counted as ``locate_mismatch``).

Output
------
After each message the top ``DEPTH`` levels (price, aggregate shares, order
count) of both sides of the book the message touched are compared with
their values before it; if anything changed, ``apply`` returns one
BOOK_UPDATE row (see ``host.book.records``).  Trades accumulate in
``trades`` until taken with ``take_trades()``.

Anomalies never raise; each is counted (``counters``) and handled so:

=========================  ==================================================
counter                    what happened, and what the book does
=========================  ==================================================
decode_<reason>            the bytes did not decode (reason of the
                           DecodeError: truncated, length_mismatch,
                           unknown_type, bad_field); message skipped
unknown_order_reference    E/C/X/D/U for an order the book does not hold;
                           skipped (no trade is printed for E/C)
duplicate_order_reference  A/F (or the new side of U) reuses a live order
                           reference; the new order is not booked
over_execution             E/C executes more than the order's remaining
                           shares; the order is removed (clamped at zero),
                           the trade prints the executed shares as sent
over_cancel                X cancels more than remaining; order removed
bad_side                   A/F whose buy_sell_indicator is not B or S;
                           not booked
zero_shares                A/F or U with zero shares; not booked (for U the
                           original is still removed)
unknown_locate             an order or trade message whose header locate had
                           no Stock Directory message; still processed
locate_mismatch            E/C/X/D/U whose header locate differs from the
                           order's; applied to the order's own book
seq_gaps                   the input's sequence number jumped forward; the
                           book is flagged stale (``FLAG_STALE``)
seq_regressions            a sequence number not above the previous one
=========================  ==================================================

Sequence numbers of 0 (tests, hand-fed messages) are not tracked.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from typing import Iterable

from host.book.records import (
    DEPTH,
    FLAG_CROSSED,
    FLAG_NO_DIRECTORY,
    FLAG_NOT_TRADING,
    FLAG_STALE,
    SHARES_SATURATE,
)
from host.protocols.errors import DecodeError
from host.protocols.itch50 import decode_message

# The counters every book implementation keeps, in this order.
COUNTER_NAMES = (
    "messages",
    "decode_truncated",
    "decode_length_mismatch",
    "decode_unknown_type",
    "decode_bad_field",
    "adds",
    "executions",
    "cancels",
    "deletes",
    "replaces",
    "trades",
    "book_updates",
    "stock_directory",
    "trading_actions",
    "unknown_order_reference",
    "duplicate_order_reference",
    "over_execution",
    "over_cancel",
    "bad_side",
    "zero_shares",
    "unknown_locate",
    "locate_mismatch",
    "seq_gaps",
    "seq_regressions",
)
# The counters that mean the input was not what a consistent feed sends.
ANOMALY_COUNTERS = tuple(
    name for name in COUNTER_NAMES
    if name.startswith("decode_") or COUNTER_NAMES.index(name) >= COUNTER_NAMES.index("unknown_order_reference")
)

BUY, SELL = "B", "S"
_TRADING = "T"
_SIDE_BYTE = {BUY: ord(BUY), SELL: ord(SELL)}


class Order:
    __slots__ = ("locate", "side", "price", "shares")

    def __init__(self, locate: int, side: str, price: int, shares: int):
        self.locate, self.side, self.price, self.shares = locate, side, price, shares


class Ladder:
    """The price levels of one side: price -> [shares, orders]."""

    def __init__(self, side: str):
        self.side = side
        self.levels: dict[int, list[int]] = {}
        self.prices: list[int] = []  # ascending

    def add(self, price: int, shares: int) -> None:
        level = self.levels.get(price)
        if level is None:
            self.levels[price] = [shares, 1]
            insort(self.prices, price)
        else:
            level[0] += shares
            level[1] += 1

    def reduce(self, price: int, shares: int, order_gone: bool) -> None:
        level = self.levels[price]
        level[0] -= shares
        if order_gone:
            level[1] -= 1
            if level[1] == 0:
                del self.levels[price]
                del self.prices[bisect_left(self.prices, price)]

    def top(self) -> list[tuple[int, int, int]]:
        """Best DEPTH levels, best first."""
        if self.side == BUY:
            best = self.prices[:-DEPTH - 1:-1]
        else:
            best = self.prices[:DEPTH]
        return [(p, self.levels[p][0], self.levels[p][1]) for p in best]


class StockBook:
    __slots__ = ("bids", "asks")

    def __init__(self):
        self.bids = Ladder(BUY)
        self.asks = Ladder(SELL)

    def ladder(self, side: str) -> Ladder:
        return self.bids if side == BUY else self.asks


def _columns(levels: list[tuple[int, int, int]]):
    """(prices, shares, orders) padded with zero levels to DEPTH."""
    pad = [(0, 0, 0)] * (DEPTH - len(levels))
    full = levels + pad
    return (
        tuple(p for p, _, _ in full),
        tuple(min(s, SHARES_SATURATE) for _, s, _ in full),
        tuple(n for _, _, n in full),
    )


class ReferenceBook:
    """Order-by-order book over every stock locate of one ITCH stream."""

    def __init__(self):
        self.orders: dict[int, Order] = {}
        self.books: dict[int, StockBook] = {}
        self._symbols: dict[int, str] = {}
        self.trading_states: dict[int, str] = {}
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self.trades: list[tuple] = []
        self.stale = False
        self.last_seq = 0

    # -- queries ---------------------------------------------------------------
    def top(self, locate: int):
        """(bids, asks): up to DEPTH (price, shares, orders) each, best first."""
        book = self.books.get(locate)
        if book is None:
            return [], []
        return book.bids.top(), book.asks.top()

    def symbol(self, locate: int) -> str | None:
        return self._symbols.get(locate)

    def symbols(self) -> dict[int, str]:
        """locate -> symbol, from the Stock Directory messages seen."""
        return dict(self._symbols)

    def take_trades(self) -> list[tuple]:
        trades, self.trades = self.trades, []
        return trades

    def clear_stale(self) -> None:
        """Forget an earlier sequence gap (after the caller has resynchronised)."""
        self.stale = False

    # -- input -----------------------------------------------------------------
    def apply(self, msg, seq: int = 0, msg_index: int = 0):
        """Apply one decoded ITCH message; the BOOK_UPDATE row tuple or None."""
        self._note_message(seq)
        return self._apply(msg, seq, msg_index)

    def process_messages(self, buf, msg_off: Iterable[int], msg_len: Iterable[int],
                         seq: Iterable[int], msg_index: Iterable[int]):
        """Decode (itch50) and apply a batch of raw messages.

        Returns (update rows, trade rows) produced by this batch.
        """
        data = bytes(buf)
        updates = []
        for off, length, q, idx in zip(msg_off, msg_len, seq, msg_index):
            off, q, idx = int(off), int(q), int(idx)
            self._note_message(q)
            try:
                msg = decode_message(data, off, off + int(length))
            except DecodeError as exc:
                key = "decode_" + exc.reason
                self.counters[key] = self.counters.get(key, 0) + 1
                continue
            row = self._apply(msg, q, idx)
            if row is not None:
                updates.append(row)
        return updates, self.take_trades()

    # -- internals ---------------------------------------------------------------
    def _note_message(self, seq: int) -> None:
        self.counters["messages"] += 1
        if seq == 0:
            return
        if self.last_seq != 0:
            if seq > self.last_seq + 1:
                self.counters["seq_gaps"] += 1
                self.stale = True
            elif seq <= self.last_seq:
                self.counters["seq_regressions"] += 1
        self.last_seq = max(self.last_seq, seq)

    def _book(self, locate: int) -> StockBook:
        book = self.books.get(locate)
        if book is None:
            book = self.books[locate] = StockBook()
        return book

    def _check_locate(self, locate: int) -> None:
        if locate not in self._symbols:
            self.counters["unknown_locate"] += 1

    def _apply(self, msg, seq: int, msg_index: int):
        kind = msg.TYPE
        locate = msg.stock_locate
        if kind in "AF":
            self._check_locate(locate)
            before = self.top(locate)
            self._add(locate, msg.order_reference_number, msg.buy_sell_indicator,
                      msg.price, msg.shares)
        elif kind in "ECXDU":
            self._check_locate(locate)
            ref = msg.original_order_reference_number if kind == "U" else msg.order_reference_number
            order = self.orders.get(ref)
            if order is None:
                self.counters["unknown_order_reference"] += 1
                return None
            if order.locate != locate:
                self.counters["locate_mismatch"] += 1
            locate = order.locate
            before = self.top(locate)
            if kind in "EC":
                self._execute(msg, ref, order, seq, msg_index)
            elif kind == "X":
                self._reduce(ref, order, msg.canceled_shares, "over_cancel")
                self.counters["cancels"] += 1
            elif kind == "D":
                self._reduce(ref, order, order.shares, "")
                self.counters["deletes"] += 1
            else:
                self._reduce(ref, order, order.shares, "")
                self.counters["replaces"] += 1
                self._add(locate, msg.new_order_reference_number, order.side,
                          msg.price, msg.shares)
        elif kind == "P":
            self._check_locate(locate)
            self._trade(locate, "P", ord(msg.buy_sell_indicator), msg.price, msg.shares,
                        msg.match_number, msg.order_reference_number, msg, seq, msg_index)
            return None
        elif kind == "Q":
            self._check_locate(locate)
            self._trade(locate, "Q", 0, msg.cross_price, msg.shares, msg.match_number, 0,
                        msg, seq, msg_index)
            return None
        elif kind == "R":
            self._symbols[locate] = msg.stock
            self.counters["stock_directory"] += 1
            return None
        elif kind == "H":
            self.trading_states[locate] = msg.trading_state
            self.counters["trading_actions"] += 1
            return None
        else:
            return None
        after = self.top(locate)
        if after == before:
            return None
        self.counters["book_updates"] += 1
        return self._row(locate, after, seq, msg_index, msg.timestamp)

    def _add(self, locate: int, ref: int, side: str, price: int, shares: int) -> None:
        if side not in (BUY, SELL):
            self.counters["bad_side"] += 1
            return
        if shares == 0:
            self.counters["zero_shares"] += 1
            return
        if ref in self.orders:
            self.counters["duplicate_order_reference"] += 1
            return
        self.orders[ref] = Order(locate, side, price, shares)
        self._book(locate).ladder(side).add(price, shares)
        self.counters["adds"] += 1

    def _reduce(self, ref: int, order: Order, shares: int, over_counter: str) -> None:
        """Take ``shares`` off an order, clamping at its remaining shares."""
        if shares > order.shares:
            self.counters[over_counter] += 1
            shares = order.shares
        order.shares -= shares
        gone = order.shares == 0
        self.books[order.locate].ladder(order.side).reduce(order.price, shares, gone)
        if gone:
            del self.orders[ref]

    def _execute(self, msg, ref: int, order: Order, seq: int, msg_index: int) -> None:
        # Capture before the order may leave the book.
        locate, side, price = order.locate, order.side, order.price
        self._reduce(ref, order, msg.executed_shares, "over_execution")
        self.counters["executions"] += 1
        if msg.TYPE == "E":
            self._trade(locate, "E", _SIDE_BYTE[side], price, msg.executed_shares,
                        msg.match_number, ref, msg, seq, msg_index)
        elif msg.printable == "Y":
            self._trade(locate, "C", _SIDE_BYTE[side], msg.execution_price,
                        msg.executed_shares, msg.match_number, ref, msg, seq, msg_index)

    def _trade(self, locate, kind, side, price, shares, match_number, ref, msg, seq,
               msg_index) -> None:
        self.counters["trades"] += 1
        self.trades.append((locate, ord(kind), side, msg_index, seq, msg.timestamp,
                            ref, match_number, shares, price, 0))

    def _flags(self, locate: int, bids, asks) -> int:
        flags = 0
        if self.trading_states.get(locate, _TRADING) != _TRADING:
            flags |= FLAG_NOT_TRADING
        if self.stale:
            flags |= FLAG_STALE
        if bids and asks and bids[0][0] >= asks[0][0]:
            flags |= FLAG_CROSSED
        if locate not in self._symbols:
            flags |= FLAG_NO_DIRECTORY
        return flags

    def _row(self, locate: int, top, seq: int, msg_index: int, timestamp: int) -> tuple:
        bids, asks = top
        return (locate, self._flags(locate, bids, asks), 0, msg_index, seq, timestamp,
                *_columns(bids), *_columns(asks))


__all__ = ["ReferenceBook", "COUNTER_NAMES", "ANOMALY_COUNTERS", "Order", "Ladder", "StockBook"]

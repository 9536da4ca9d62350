"""The external market the simulator's orders can trade against.

A market maker's quotes rest on the exchange while the rest of the market
moves.  The simulator models "the rest of the market" as displayed price
levels per symbol, from one of two sources:

* :class:`BboMarket`: a best bid and offer per symbol, set through
  :meth:`BboMarket.set_market` (tests, scripted demos);
* :class:`ItchMarket`: the golden order-by-order book
  (:class:`host.book.reference.ReferenceBook`) fed with ITCH 5.0 messages,
  e.g. a replayed capture; its top :data:`~host.book.records.DEPTH` levels
  per side are the displayed market, and a symbol whose Stock Trading
  Action state is not ``T`` is halted.

Displayed size is finite: what our orders take from a level is remembered
and subtracted until the source changes that level's displayed size (a new
quote from :meth:`BboMarket.set_market`, or an ITCH message that changes the
level's aggregate shares).  So one displayed 500 shares fill at most 500 of
our shares, however many orders chase them.

Prices are integers with 4 implied decimals, as in ITCH ``Price(4)`` and
OUCH prices, so levels compare with OUCH limit prices directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from host.book.reference import ReferenceBook
from host.protocols.errors import DecodeError
from host.protocols.itch50 import decode_message


@dataclass(frozen=True)
class Quote:
    """Top of the displayed market; a missing side has price and size 0."""

    bid: int
    bid_size: int
    ask: int
    ask_size: int

    @property
    def two_sided(self) -> bool:
        return self.bid > 0 and self.ask > 0 and self.bid_size > 0 and self.ask_size > 0

    def midpoint(self) -> tuple[int, bool] | None:
        """(midpoint rounded down, True when it was not exact); None unless
        the market is two-sided and not locked or crossed."""
        if not self.two_sided or self.bid >= self.ask:
            return None
        total = self.bid + self.ask
        return total // 2, bool(total % 2)


class ExternalMarket:
    """Displayed levels per symbol with the taken-size bookkeeping."""

    def __init__(self):
        # (symbol, is_bid, price) -> (displayed size when taken, size taken)
        self._taken: dict[tuple[str, bool, int], tuple[int, int]] = {}

    # -- what a source provides ------------------------------------------------------
    def displayed(self, symbol: str, is_bid: bool) -> list[tuple[int, int]]:
        """(price, displayed size) best first."""
        raise NotImplementedError

    def halted(self, symbol: str) -> bool:
        return False

    def symbols(self) -> Iterable[str]:
        raise NotImplementedError

    # -- what the exchange uses ------------------------------------------------------
    def quote(self, symbol: str) -> Quote | None:
        bids, asks = self.displayed(symbol, True), self.displayed(symbol, False)
        if not bids and not asks:
            return None
        bid, bid_size = bids[0] if bids else (0, 0)
        ask, ask_size = asks[0] if asks else (0, 0)
        return Quote(bid, bid_size, ask, ask_size)

    def available(self, symbol: str, is_bid: bool) -> Iterator[tuple[int, int]]:
        """(price, size still there for us) best first, empty levels skipped."""
        for price, size in self.displayed(symbol, is_bid):
            left = size - self._taken_from(symbol, is_bid, price, size)
            if left > 0:
                yield price, left

    def best_available(self, symbol: str, is_bid: bool) -> tuple[int, int] | None:
        return next(self.available(symbol, is_bid), None)

    def take(self, symbol: str, is_bid: bool, price: int, quantity: int) -> None:
        for level_price, size in self.displayed(symbol, is_bid):
            if level_price == price:
                taken = self._taken_from(symbol, is_bid, price, size) + quantity
                if taken > size:
                    raise ValueError(f"{symbol}: taking {quantity} at {price} exceeds the "
                                     f"displayed {size}")
                self._taken[(symbol, is_bid, price)] = (size, taken)
                return
        raise ValueError(f"{symbol}: no displayed level at {price}")

    def _taken_from(self, symbol: str, is_bid: bool, price: int, size: int) -> int:
        seen = self._taken.get((symbol, is_bid, price))
        if seen is None:
            return 0
        if seen[0] != size:
            # The source changed the level since we traded there: fresh size.
            del self._taken[(symbol, is_bid, price)]
            return 0
        return seen[1]


class BboMarket(ExternalMarket):
    """One displayed level per side, per symbol, set by hand."""

    def __init__(self):
        super().__init__()
        self._quotes: dict[str, Quote] = {}

    def set_market(self, symbol: str, bid: int, bid_size: int, ask: int, ask_size: int) -> None:
        for name, value in (("bid", bid), ("bid_size", bid_size), ("ask", ask),
                            ("ask_size", ask_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{symbol}: {name} must be a non-negative integer, got {value!r}")
        if (bid == 0) != (bid_size == 0) or (ask == 0) != (ask_size == 0):
            raise ValueError(f"{symbol}: a side needs both a price and a size, or neither")
        self._quotes[symbol] = Quote(bid, bid_size, ask, ask_size)
        # A new quote is new displayed interest on both sides.
        for key in [k for k in self._taken if k[0] == symbol]:
            del self._taken[key]

    def displayed(self, symbol: str, is_bid: bool) -> list[tuple[int, int]]:
        q = self._quotes.get(symbol)
        if q is None:
            return []
        price, size = (q.bid, q.bid_size) if is_bid else (q.ask, q.ask_size)
        return [(price, size)] if size > 0 else []

    def symbols(self) -> Iterable[str]:
        return list(self._quotes)


class ItchMarket(ExternalMarket):
    """The market as the golden ITCH book sees it."""

    def __init__(self, book: ReferenceBook | None = None):
        super().__init__()
        self.book = book or ReferenceBook()
        self._locate_of: dict[str, int] = {}
        self._directory_seen = -1
        self.decode_errors = 0

    def _locate(self, symbol: str) -> int | None:
        directory = self.book.counters["stock_directory"]
        if directory != self._directory_seen:
            self._locate_of = {sym: loc for loc, sym in self.book.symbols().items()}
            self._directory_seen = directory
        return self._locate_of.get(symbol)

    def displayed(self, symbol: str, is_bid: bool) -> list[tuple[int, int]]:
        locate = self._locate(symbol)
        if locate is None:
            return []
        bids, asks = self.book.top(locate)
        return [(price, shares) for price, shares, _ in (bids if is_bid else asks)]

    def halted(self, symbol: str) -> bool:
        locate = self._locate(symbol)
        return locate is not None and self.book.trading_states.get(locate, "T") != "T"

    def symbols(self) -> Iterable[str]:
        return list(self.book.symbols().values())

    def apply(self, msg) -> str | None:
        """Apply one decoded ITCH message; the symbol whose market it may
        have changed, or None."""
        self.book.apply(msg)
        locate = getattr(msg, "stock_locate", 0)
        return self.book.symbol(locate) if locate else None

    def apply_raw(self, raw: bytes) -> str | None:
        """Decode and apply one ITCH message; a message that does not decode
        is counted in ``decode_errors`` and skipped."""
        try:
            msg = decode_message(raw)
        except DecodeError:
            self.decode_errors += 1
            return None
        return self.apply(msg)

    def process_batch(self, batch) -> set[str]:
        """Apply a :class:`host.feed.fastpath.MessageBatch`; the symbols touched."""
        states_before = dict(self.book.trading_states)
        updates, _ = self.book.process_messages(batch.buf, batch.msg_off, batch.msg_len,
                                                batch.seq, batch.msg_index)
        locates = {row[0] for row in updates}
        locates.update(loc for loc, state in self.book.trading_states.items()
                       if states_before.get(loc) != state)
        return {sym for sym in (self.book.symbol(loc) for loc in locates) if sym}


def iter_capture_batches(path: str):
    """The ITCH messages of a capture as MessageBatch objects: pcap and
    pcapng feeds go through the A/B arbiter (first copy of each sequence
    number wins), length-prefixed ITCH files are read in order."""
    from host.pcap import detect_format

    if detect_format(path) == "itch":
        from host.feed.fastpath import itch_batch_to_messages
        from host.pcap.itchfile import iter_itch_batches

        first_seq = 1
        for batch in iter_itch_batches(path):
            messages = itch_batch_to_messages(batch, first_seq=first_seq)
            first_seq += len(messages)
            yield messages
    else:
        from host.feed.fastpath import FeedArbiter
        from host.pcap.fast import CaptureReader

        arbiter = FeedArbiter()
        for batch in CaptureReader(path).udp_batches():
            yield arbiter.process(batch)


def iter_capture_messages(path: str) -> Iterator[bytes]:
    """Every ITCH message of a capture, in feed order, as raw bytes."""
    for batch in iter_capture_batches(path):
        for i in range(len(batch)):
            yield batch.message(i)

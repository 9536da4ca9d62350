"""What the risk engine measures, kept current between requests.

:class:`WorkingOrders` follows our non-terminal orders per symbol (as the
order manager holds them).  :class:`Exposure` keeps, per symbol with a
position or working orders, the working quantities, the worst-case gross
contracts, the capital used and the Greeks of the position, and their sums
per underlying and in total.  An entry is recomputed only after something it
depends on changed: an order message for that symbol (sent or received), a
fill, or a mark of its underlying.  Sums are kept by difference (an entry's
old contribution out, its new one in) and rebuilt from the entries whenever
a mark of the underlying changes, which is every tick, so rounding cannot
accumulate.

The rules themselves (what counts as working, how capital is used) are
described in :mod:`host.risk.engine`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from host.gateway.orders import Order, OrderManager
from host.positions.book import Greeks, PositionBook, greeks_of, side_sign
from host.positions.instruments import Instrument, Instruments, normalize_symbol
from host.positions.marks import PRICE_SCALE, Marks


def working_exposure(order: Order) -> tuple[int, int, int, int, int] | None:
    """(side sign, working quantity, cost, lowest price, highest price) of an
    order, or None once it is terminal.  A pending replace counts at the
    larger of its open and requested quantity (and cost), and at both prices."""
    if order.state.terminal:
        return None
    quantity = order.open_quantity
    cost = quantity * order.price
    low = high = order.price
    if order.pending_replace is not None:
        _, new_quantity, new_price = order.pending_replace
        quantity = max(quantity, new_quantity)
        cost = max(cost, new_quantity * new_price)
        low, high = min(low, new_price), max(high, new_price)
    if quantity <= 0:
        return None
    return side_sign(order.side), quantity, cost, low, high


@dataclass
class SideTotals:
    buy_quantity: int = 0
    sell_quantity: int = 0
    buy_cost: int = 0          # price units * quantity of working buys

    def add(self, sign: int, quantity: int, cost: int) -> None:
        if sign > 0:
            self.buy_quantity += quantity
            self.buy_cost += cost
        elif sign < 0:
            self.sell_quantity += quantity

    def copy(self) -> "SideTotals":
        return SideTotals(self.buy_quantity, self.sell_quantity, self.buy_cost)

    def worst(self, held: int) -> tuple[int, int]:
        """(worst long, worst short) position if one side's orders all fill."""
        return held + self.buy_quantity, held - self.sell_quantity


class WorkingOrders:
    """Our non-terminal orders per symbol."""

    def __init__(self, orders: OrderManager):
        self.orders = orders
        self._by_symbol: dict[str, dict[int, Order]] = {}
        self._unresolved: list[int] = []
        self.not_sent = 0      # accepted requests the order manager never saw
        for order in orders.unique_orders():
            if not order.state.terminal:
                self._track(order)

    def _track(self, order: Order) -> str:
        symbol = normalize_symbol(order.symbol)
        self._by_symbol.setdefault(symbol, {})[order.user_ref_nums[0]] = order
        return symbol

    def expect(self, user_ref_num: int) -> None:
        """An accepted Enter Order: its order appears once the gateway has sent it."""
        self._unresolved.append(user_ref_num)

    def resolve(self) -> list[str]:
        """Pick up the orders of accepted enters; returns their symbols."""
        if not self._unresolved:
            return []
        symbols = []
        for ref in self._unresolved:
            order = self.orders.orders.get(ref)
            if order is None:
                self.not_sent += 1
            else:
                symbols.append(self._track(order))
        self._unresolved.clear()
        return symbols

    def discard_unresolved(self) -> None:
        self._unresolved.clear()

    def of(self, symbol: str) -> list[Order]:
        book = self._by_symbol.get(symbol)
        if not book:
            return []
        done = [key for key, order in book.items() if order.state.terminal]
        for key in done:
            del book[key]
        if not book:
            del self._by_symbol[symbol]
        return list(book.values())

    def symbols(self) -> list[str]:
        return list(self._by_symbol)

    def totals(self, symbol: str, exclude: Order | None = None) -> SideTotals:
        totals = SideTotals()
        for order in self.of(symbol):
            if order is exclude:
                continue
            exposure = working_exposure(order)
            if exposure is not None:
                totals.add(exposure[0], exposure[1], exposure[2])
        return totals


@dataclass
class Entry:
    """One symbol's measures (from positions, working orders and marks)."""

    symbol: str
    underlying: str
    instrument: Instrument | None
    held: int = 0
    totals: SideTotals = field(default_factory=SideTotals)
    gross: int = 0                     # options: max(|P + B|, |P - S|)
    usage: float | None = 0.0          # None: cannot be margined (no spot)
    greeks: Greeks | None = Greeks()   # None: the position has no mark
    missing: str = ""                  # what mark is missing

    @property
    def active(self) -> bool:
        return bool(self.held or self.totals.buy_quantity or self.totals.sell_quantity)


@dataclass
class Aggregate:
    gross: int = 0
    usage: float | None = 0.0
    greeks: Greeks | None = Greeks()
    missing: str = ""


_GREEK_FIELDS = ("delta", "gamma", "vega", "theta", "delta_dollars", "gamma_dollars")


class _Sums:
    """Running sums of entries; entries lacking a measure are counted apart."""

    __slots__ = ("gross", "usage", "greeks", "usage_missing", "greeks_missing")

    def __init__(self):
        self.gross = 0
        self.usage = 0.0
        self.greeks = [0.0] * len(_GREEK_FIELDS)
        self.usage_missing: dict[str, str] = {}
        self.greeks_missing: dict[str, str] = {}

    def add(self, entry: Entry, sign: int) -> None:
        self.gross += sign * entry.gross
        if entry.usage is None:
            self._missing(self.usage_missing, entry, sign)
        else:
            self.usage += sign * entry.usage
        if entry.greeks is None:
            self._missing(self.greeks_missing, entry, sign)
        else:
            greeks = entry.greeks
            sums = self.greeks
            for i, name in enumerate(_GREEK_FIELDS):
                sums[i] += sign * getattr(greeks, name)

    @staticmethod
    def _missing(table: dict, entry: Entry, sign: int) -> None:
        if sign > 0:
            table[entry.symbol] = entry.missing
        else:
            table.pop(entry.symbol, None)

    def view(self) -> Aggregate:
        missing = next(iter(self.usage_missing.values()), "") or \
            next(iter(self.greeks_missing.values()), "")
        return Aggregate(
            gross=self.gross,
            usage=None if self.usage_missing else self.usage,
            greeks=None if self.greeks_missing else Greeks(*self.greeks),
            missing=missing)


class Exposure:
    def __init__(self, instruments: Instruments, marks: Marks, positions: PositionBook,
                 working: WorkingOrders, *, short_option_margin: float,
                 short_stock_margin: float):
        self.instruments = instruments
        self.marks = marks
        self.positions = positions
        self.working = working
        self.short_option_margin = short_option_margin
        self.short_stock_margin = short_stock_margin
        self.entries: dict[str, Entry] = {}
        self._members: dict[str, set[str]] = {}       # underlying -> active symbols
        self._sums: dict[str, _Sums] = {}
        self._total = _Sums()
        self._dirty: set[str] = set()
        self._dirty_underlyings: set[str] = set()
        self.recomputed = 0
        positions.listeners.append(self.touch)
        marks.listeners.append(self.touch_underlying)
        self.touch_all()

    # -- invalidation -------------------------------------------------------------
    def touch(self, symbol: str) -> None:
        self._dirty.add(normalize_symbol(symbol))

    def touch_underlying(self, underlying: str) -> None:
        self._dirty_underlyings.add(underlying)

    def touch_all(self) -> None:
        self._dirty.update(self.entries)
        self._dirty.update(s for s, p in self.positions.positions.items() if p.quantity)
        self._dirty.update(self.working.symbols())

    # -- recomputation --------------------------------------------------------------
    def _underlying_of(self, symbol: str) -> tuple[str, Instrument | None]:
        instrument = self.instruments.get(symbol)
        if instrument is not None:
            return instrument.underlying, instrument
        position = self.positions.position(symbol)
        return (position.underlying if position is not None else symbol), None

    def margin(self, instrument: Instrument, short: int) -> float | None:
        if short <= 0:
            return 0.0
        spot = self.marks.spot(instrument.underlying)
        if spot is None:
            return None
        fraction = (self.short_option_margin if instrument.option is not None
                    else self.short_stock_margin)
        return short * instrument.multiplier * spot * fraction

    def usage(self, instrument: Instrument, held: int, totals: SideTotals) -> float | None:
        """Capital used by one symbol: the worse of all working buys filling
        and all working sells filling; None when a short cannot be margined."""
        position = self.positions.position(instrument.symbol)
        long_cost = float(position.open_cost) if (position is not None and held > 0) else 0.0
        after_buys, after_sells = totals.worst(held)
        if after_buys > 0 and totals.buy_quantity:
            opened = after_buys - max(held, 0)
            premium_buys = long_cost + totals.buy_cost * opened / totals.buy_quantity
        else:
            premium_buys = long_cost if after_buys > 0 else 0.0
        premium_sells = long_cost * after_sells / held if held > 0 and after_sells > 0 else 0.0
        margin_buys = self.margin(instrument, -after_buys)
        margin_sells = self.margin(instrument, -after_sells)
        if margin_buys is None or margin_sells is None:
            return None
        scale = instrument.multiplier / PRICE_SCALE
        return max(premium_buys * scale + margin_buys, premium_sells * scale + margin_sells)

    def compute(self, symbol: str) -> Entry:
        underlying, instrument = self._underlying_of(symbol)
        entry = Entry(symbol, underlying, instrument, self.positions.quantity(symbol),
                      self.working.totals(symbol))
        if instrument is None:
            if entry.held:
                entry.usage = entry.greeks = None
                entry.missing = f"{symbol} is not a configured instrument"
            return entry
        long_, short = entry.totals.worst(entry.held)
        if instrument.option is not None:
            entry.gross = max(abs(long_), abs(short))
        entry.usage = self.usage(instrument, entry.held, entry.totals)
        if entry.usage is None:
            entry.missing = f"no spot for {underlying}"
        if entry.held:
            theo = self.marks.theo(symbol)
            spot = self.marks.spot(underlying)
            if theo is None or spot is None:
                entry.greeks = None
                entry.missing = f"no {'theo' if theo is None else 'spot'} for {symbol}"
            else:
                entry.greeks = greeks_of(instrument, entry.held, theo, spot)
        return entry

    def refresh(self) -> None:
        for symbol in self.working.resolve():
            self._dirty.add(symbol)
        rebuild = self._dirty_underlyings
        if rebuild:
            for underlying in rebuild:
                self._dirty.update(self._members.get(underlying, ()))
        for symbol in self._dirty:
            old = self.entries.pop(symbol, None)
            if old is not None:
                self._members[old.underlying].discard(symbol)
                self._sums[old.underlying].add(old, -1)
                self._total.add(old, -1)
            entry = self.compute(symbol)
            self.recomputed += 1
            if entry.active:
                self.entries[symbol] = entry
                self._members.setdefault(entry.underlying, set()).add(symbol)
                sums = self._sums.get(entry.underlying)
                if sums is None:
                    sums = self._sums[entry.underlying] = _Sums()
                sums.add(entry, +1)
                self._total.add(entry, +1)
        self._dirty.clear()
        if rebuild:
            # Start the touched underlyings' sums, and the total, afresh.
            for underlying in rebuild:
                sums = self._sums[underlying] = _Sums()
                for symbol in self._members.get(underlying, ()):
                    sums.add(self.entries[symbol], +1)
            self._total = _Sums()
            for entry in self.entries.values():
                self._total.add(entry, +1)
            rebuild.clear()

    # -- views (call refresh first) -------------------------------------------------
    def entry(self, symbol: str) -> Entry:
        entry = self.entries.get(symbol)
        return entry if entry is not None else self.compute(symbol)

    def underlying(self, underlying: str) -> Aggregate:
        sums = self._sums.get(underlying)
        return Aggregate() if sums is None else sums.view()

    def total(self) -> Aggregate:
        return self._total.view()

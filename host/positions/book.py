"""Positions, P&L and Greeks from the exchange's executions.

Fills
-----
A fill is one OUCH Order Executed message for one of our orders, resolved
through the order manager to the order's symbol and side
(:meth:`PositionBook.on_message`, a listener of the order gateway).  It is
identified by the order's first UserRefNum (stable across replaces) and the
exchange's match number: match numbers are unique per trade, but a trade
between two of our own orders reaches both, so the match number alone is
not a key.  An execution the order manager refused (duplicate, more than the
open quantity, unknown order) is not a fill and is counted instead.  A
Broken Trade takes its fill back out.

Positions are a pure function of the list of fills: :meth:`PositionBook.from_journal`
replays the gateway's journal through a fresh order manager and gets exactly
the live book.

Accounting (average cost)
-------------------------
Per symbol the book keeps the signed quantity (contracts; shares for the
underlying), the cost of the open quantity and the realised P&L, exactly
(integers and fractions of OUCH price units, 4 implied decimals):

* a fill that opens or adds to the position adds ``quantity * price`` to the
  open cost; the average price is ``open cost / |quantity|``;
* a fill against the position closes ``c = min(fill, |position|)`` at the
  average price: realised P&L grows by ``c * (price - average) * sign(position)``
  and the open cost shrinks by ``c * average`` (the average does not move);
  what is left of the fill opens a new position at the fill price;
* unrealised P&L at a mark M is ``quantity * M - sign(quantity) * open cost``.

So realised + unrealised always equals the cash flow of the fills plus the
position valued at the mark.  Dollars are price units / 10**4 times the
instrument's multiplier.  Marks are the options' theos and the underlying's
spot (:class:`host.positions.marks.Marks`).

Greeks
------
Per underlying, for ``units = quantity * multiplier`` of each instrument:
delta in shares (``units * delta``; the underlying's shares count one each),
gamma in shares per 1.00 of spot, vega in dollars per 1.00 of volatility and
theta in dollars per year (the pricer's conventions).  For totals across
underlyings shares do not add up, so the book also gives dollar delta
(``delta * S``) and dollar gamma (``gamma * S**2 / 100``: the change of
dollar delta when the underlying moves 1%), S being the underlying's spot.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Iterable

from host.gateway.gateway import rebuild
from host.positions.instruments import (
    DEFAULT_MULTIPLIER, Instrument, Instruments, normalize_symbol,
)
from host.positions.marks import PRICE_SCALE, Marks
from host.positions.theo import Theo
from host.protocols import ouch50

BUY = "B"
SELL_SIDES = frozenset("STE")


def side_sign(side: str) -> int:
    """+1 for a buy, -1 for any sell flavour (sell, short, short exempt), 0 otherwise."""
    if side == BUY:
        return 1
    return -1 if side in SELL_SIDES else 0


class MissingMark(LookupError):
    """A position cannot be valued or risked: no theo or spot for it."""

    def __init__(self, symbol: str, what: str = "theo"):
        super().__init__(f"no {what} for {symbol}")
        self.symbol, self.what = symbol, what


@dataclass(frozen=True)
class Fill:
    order_key: int        # the order's first UserRefNum
    match_number: int
    symbol: str
    side: str             # OUCH side code of the order
    quantity: int
    price: int            # OUCH price units (4 implied decimals)
    timestamp: int = 0    # exchange timestamp, ns since midnight

    @property
    def key(self) -> tuple[int, int]:
        return self.order_key, self.match_number

    @property
    def signed_quantity(self) -> int:
        return side_sign(self.side) * self.quantity


@dataclass(frozen=True)
class Greeks:
    delta: float = 0.0          # shares of the underlying
    gamma: float = 0.0          # shares per 1.00 of spot
    vega: float = 0.0           # dollars per 1.00 of volatility
    theta: float = 0.0          # dollars per year
    delta_dollars: float = 0.0  # delta * S
    gamma_dollars: float = 0.0  # gamma * S**2 / 100

    def __add__(self, other: "Greeks") -> "Greeks":
        return Greeks(self.delta + other.delta, self.gamma + other.gamma,
                      self.vega + other.vega, self.theta + other.theta,
                      self.delta_dollars + other.delta_dollars,
                      self.gamma_dollars + other.gamma_dollars)

    def as_dict(self) -> dict[str, float]:
        return {"delta": self.delta, "gamma": self.gamma, "vega": self.vega,
                "theta": self.theta, "delta_dollars": self.delta_dollars,
                "gamma_dollars": self.gamma_dollars}


def greeks_of(instrument: Instrument, quantity: int, theo: Theo, spot: float) -> Greeks:
    """The Greeks of ``quantity`` contracts (shares) of one instrument."""
    units = quantity * instrument.multiplier
    if instrument.option is None:
        return Greeks(delta=float(units), delta_dollars=units * spot)
    delta = units * theo.delta
    gamma = units * (theo.gamma or 0.0)
    return Greeks(delta=delta, gamma=gamma, vega=units * (theo.vega or 0.0),
                  theta=units * (theo.theta or 0.0), delta_dollars=delta * spot,
                  gamma_dollars=gamma * spot * spot / 100.0)


@dataclass
class Position:
    symbol: str
    underlying: str
    multiplier: int
    quantity: int = 0
    open_cost: Fraction = Fraction(0)   # price units * quantity, >= 0
    realised: Fraction = Fraction(0)    # price units * quantity
    fills: list[Fill] = field(default_factory=list)

    def apply(self, fill: Fill) -> None:
        self._account(fill.signed_quantity, fill.price)
        self.fills.append(fill)

    def _account(self, signed: int, price: int) -> None:
        held = self.quantity
        if held == 0 or (held > 0) == (signed > 0):
            self.open_cost += abs(signed) * price
            self.quantity = held + signed
            return
        closing = min(abs(signed), abs(held))
        average = self.open_cost / abs(held)
        direction = 1 if held > 0 else -1
        self.realised += closing * (price - average) * direction
        self.open_cost -= closing * average
        self.quantity = held + signed
        opened = abs(signed) - closing
        if opened:
            self.open_cost = Fraction(opened * price)

    def replay(self) -> None:
        """Recompute from the fill list (after one was taken out)."""
        fills, self.fills = self.fills, []
        self.quantity, self.open_cost, self.realised = 0, Fraction(0), Fraction(0)
        for fill in fills:
            self.apply(fill)

    @property
    def average_price(self) -> Fraction | None:
        """Average cost of the open quantity in price units (None when flat)."""
        return self.open_cost / abs(self.quantity) if self.quantity else None

    def _dollars(self, price_units: Fraction) -> Fraction:
        return price_units * self.multiplier / PRICE_SCALE

    @property
    def realised_dollars(self) -> Fraction:
        return self._dollars(self.realised)

    def unrealised_dollars(self, mark: float | Fraction) -> Fraction:
        """Unrealised P&L at ``mark`` (dollars per share)."""
        if self.quantity == 0:
            return Fraction(0)
        mark_units = Fraction(mark) * PRICE_SCALE
        direction = 1 if self.quantity > 0 else -1
        return self._dollars(self.quantity * mark_units - direction * self.open_cost)

    def snapshot(self) -> dict:
        average = self.average_price
        return {
            "symbol": self.symbol, "underlying": self.underlying,
            "multiplier": self.multiplier, "quantity": self.quantity,
            "open_cost": str(self.open_cost), "realised": str(self.realised),
            "average_price": None if average is None else float(average) / PRICE_SCALE,
            "realised_dollars": float(self.realised_dollars),
            "fills": [(f.order_key, f.match_number, f.side, f.quantity, f.price)
                      for f in self.fills],
        }


class PositionBook:
    def __init__(self, instruments: Instruments, *,
                 default_multiplier: int = DEFAULT_MULTIPLIER):
        self.instruments = instruments
        self.default_multiplier = default_multiplier
        self.positions: dict[str, Position] = {}
        self.counts: Counter = Counter()
        self.anomalies: list[str] = []
        self._applied: set[tuple[int, int]] = set()
        self._fill_symbol: dict[tuple[int, int], str] = {}
        #: called with the symbol whenever a position changes
        self.listeners: list[Callable[[str], None]] = []

    def _changed(self, symbol: str) -> None:
        for listener in self.listeners:
            listener(symbol)

    # -- building -----------------------------------------------------------------
    @classmethod
    def from_fills(cls, instruments: Instruments, fills: Iterable[Fill]) -> "PositionBook":
        book = cls(instruments)
        for fill in fills:
            book.apply_fill(fill)
        return book

    @classmethod
    def from_journal(cls, journal, instruments: Instruments) -> "PositionBook":
        """Replay an order gateway journal: the same book the live gateway built."""
        book = cls(instruments)
        rebuild(journal, on_received=(book.on_message,))
        return book

    def _position(self, symbol: str) -> Position:
        position = self.positions.get(symbol)
        if position is None:
            instrument = self.instruments.get(symbol)
            if instrument is None:
                self.counts["unknown_instrument_positions"] += 1
                self.anomalies.append(f"fill in {symbol!r}, which is not a known instrument")
                underlying, multiplier = symbol, self.default_multiplier
            else:
                underlying, multiplier = instrument.underlying, instrument.multiplier
            position = self.positions[symbol] = Position(symbol, underlying, multiplier)
        return position

    def apply_fill(self, fill: Fill) -> bool:
        """Book one fill; False (and counted) for a repeat or a malformed fill."""
        if fill.key in self._applied:
            self.counts["duplicate_fills"] += 1
            return False
        if side_sign(fill.side) == 0 or fill.quantity <= 0 or fill.price <= 0:
            self.counts["bad_fills"] += 1
            self.anomalies.append(f"unusable fill {fill}")
            return False
        symbol = normalize_symbol(fill.symbol)
        if symbol != fill.symbol:
            fill = Fill(fill.order_key, fill.match_number, symbol, fill.side, fill.quantity,
                        fill.price, fill.timestamp)
        self._position(symbol).apply(fill)
        self._applied.add(fill.key)
        self._fill_symbol[fill.key] = symbol
        self.counts["fills"] += 1
        self._changed(symbol)
        return True

    def break_trade(self, order_key: int, match_number: int) -> bool:
        """Take a broken trade's fill back out; False (and counted) if unknown."""
        key = (order_key, match_number)
        symbol = self._fill_symbol.pop(key, None)
        if symbol is None:
            self.counts["unknown_broken_trades"] += 1
            return False
        position = self.positions[symbol]
        position.fills = [f for f in position.fills if f.key != key]
        if position.fills:
            position.replay()
        else:
            del self.positions[symbol]
        self.counts["broken_trades"] += 1
        self._changed(symbol)
        # The key stays in _applied: a late repeat of the execution must not come back.
        return True

    def on_message(self, msg, orders) -> None:
        """Order gateway listener: called after the order manager has seen ``msg``."""
        if isinstance(msg, ouch50.OrderExecuted):
            order = orders.orders.get(msg.user_ref_num)
            if order is None:
                self.counts["executions_for_unknown_orders"] += 1
                return
            if (msg.match_number, msg.quantity, msg.price) not in order.fills:
                self.counts["executions_refused_by_order_manager"] += 1
                return
            self.apply_fill(Fill(order.user_ref_nums[0], msg.match_number, order.symbol,
                                 order.side, msg.quantity, msg.price, msg.timestamp))
        elif isinstance(msg, ouch50.BrokenTrade):
            order = orders.orders.get(msg.user_ref_num)
            if order is None:
                self.counts["unknown_broken_trades"] += 1
                return
            self.break_trade(order.user_ref_nums[0], msg.match_number)

    # -- views --------------------------------------------------------------------
    def quantity(self, symbol: str) -> int:
        position = self.positions.get(normalize_symbol(symbol))
        return 0 if position is None else position.quantity

    def position(self, symbol: str) -> Position | None:
        return self.positions.get(normalize_symbol(symbol))

    def fills(self) -> list[Fill]:
        return [f for p in self.positions.values() for f in p.fills]

    def open_positions(self, underlying: str | None = None) -> list[Position]:
        return [p for p in self.positions.values()
                if p.quantity and (underlying is None or p.underlying == underlying)]

    def mark(self, position: Position, marks: Marks) -> float:
        """Mark price of a position (dollars per share); raises :class:`MissingMark`."""
        theo = marks.theo(position.symbol)
        if theo is None:
            raise MissingMark(position.symbol)
        return theo.price

    def greeks(self, underlying: str, marks: Marks) -> Greeks:
        """Greeks of the open positions on one underlying; raises :class:`MissingMark`."""
        total = Greeks()
        positions = self.open_positions(underlying)
        if not positions:
            return total
        spot = marks.spot(underlying)
        if spot is None:
            raise MissingMark(underlying, "spot")
        for position in positions:
            instrument = self.instruments.get(position.symbol)
            if instrument is None:
                raise MissingMark(position.symbol, "instrument definition")
            theo = marks.theo(position.symbol)
            if theo is None:
                raise MissingMark(position.symbol)
            total = total + greeks_of(instrument, position.quantity, theo, spot)
        return total

    def greeks_by_underlying(self, marks: Marks) -> dict[str, Greeks]:
        underlyings = sorted({p.underlying for p in self.open_positions()})
        return {u: self.greeks(u, marks) for u in underlyings}

    def total_greeks(self, marks: Marks) -> Greeks:
        total = Greeks()
        for greeks in self.greeks_by_underlying(marks).values():
            total = total + greeks
        return total

    def pnl(self, marks: Marks) -> dict:
        """Realised and unrealised P&L (dollars) per symbol, per underlying and
        in total; positions without a mark are listed under ``unmarked`` and
        left out of the unrealised sums."""
        symbols: dict[str, dict] = {}
        underlyings: dict[str, dict] = {}
        unmarked: list[str] = []
        total = {"realised": 0.0, "unrealised": 0.0}
        for symbol, position in sorted(self.positions.items()):
            try:
                mark = self.mark(position, marks) if position.quantity else None
            except MissingMark:
                mark = None
                unmarked.append(symbol)
            realised = float(position.realised_dollars)
            unrealised = 0.0 if mark is None else float(position.unrealised_dollars(mark))
            symbols[symbol] = {"quantity": position.quantity, "mark": mark,
                               "realised": realised, "unrealised": unrealised}
            group = underlyings.setdefault(position.underlying,
                                           {"realised": 0.0, "unrealised": 0.0})
            for bucket in (group, total):
                bucket["realised"] += realised
                bucket["unrealised"] += unrealised
        return {"symbols": symbols, "underlyings": underlyings, "total": total,
                "unmarked": unmarked}

    def snapshot(self) -> dict:
        return {"positions": {s: p.snapshot() for s, p in sorted(self.positions.items())},
                "counts": dict(self.counts), "anomalies": list(self.anomalies)}

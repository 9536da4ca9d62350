"""What the risk engine measures, kept current between requests.

:class:`WorkingOrders` follows our non-terminal orders per symbol (as the
order manager holds them).  :class:`Exposure` keeps, per symbol with a
position or working orders, the working quantities, the worst-case gross
contracts, the capital used, the Greeks of the position and the extreme
prices of the working orders on each side, and their sums per underlying
and in total.

A symbol's measures are updated in place, and only after something they
depend on changed.  Two kinds of change are told apart because they cost
very different amounts: an order message for the symbol (sent or received;
:meth:`Exposure.touch_orders`) changes only the working quantities and what
follows from them (gross contracts, capital), while a fill
(:meth:`Exposure.touch`, the position book's listener) or a mark of the
underlying (:meth:`Exposure.touch_underlying`) also changes the position's
cost and Greeks.  A replace the engine accepts is the one change made
without measuring again (:meth:`Exposure.replace_sent`): what it does to the
working quantities is known exactly, and the order manager is asked
afterwards whether it happened.  Sums are kept by difference (a symbol's old contribution
out, its new one in) and rebuilt from the symbols whenever a mark of the
underlying changes, which is every tick, so rounding cannot accumulate.

The rules themselves (what counts as working, how capital is used) are
described in :mod:`host.risk.engine`; :func:`working_exposure` and
:func:`capital_usage` are their definitions.
"""
from __future__ import annotations

from dataclasses import dataclass

from host.gateway.orders import TERMINAL_STATES, Order, OrderManager
from host.positions.book import SELL_SIDES, Greeks, PositionBook, side_sign
from host.positions.instruments import Instrument, Instruments, normalize_symbol
from host.positions.marks import PRICE_SCALE, Marks
from host.positions.theo import Theo

_INFINITY = float("inf")
_UNKNOWN = object()


def working_exposure(order: Order) -> tuple[int, int, int, int, int] | None:
    """(side sign, working quantity, cost, lowest price, highest price) of an
    order, or None once it is terminal.  A pending replace counts at the
    larger of its open and requested quantity (and cost), and at both prices."""
    if order.state in TERMINAL_STATES:
        return None
    quantity = order.quantity - order.filled - order.canceled
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


def capital_usage(held: int, long_cost: float, buy_quantity: int, sell_quantity: int,
                  buy_cost: int, multiplier: int, spot: float | None,
                  margin_fraction: float) -> float | None:
    """Dollars of premium plus margin one symbol uses: the worse of all its
    working buys filling and all its working sells filling (see
    :mod:`host.risk.engine`, step 11).  ``long_cost`` is the open cost of a
    long position in price units (0.0 unless ``held > 0``); ``spot`` is only
    needed when an outcome is short, and None then means it cannot be
    margined (the result is None)."""
    after_buys = held + buy_quantity
    after_sells = held - sell_quantity
    if after_buys > 0 and buy_quantity:
        opened = after_buys - max(held, 0)
        premium_buys = long_cost + buy_cost * opened / buy_quantity
    else:
        premium_buys = long_cost if after_buys > 0 else 0.0
    premium_sells = long_cost * after_sells / held if held > 0 and after_sells > 0 else 0.0
    if after_buys < 0:
        if spot is None:
            return None
        margin_buys = -after_buys * multiplier * spot * margin_fraction
    else:
        margin_buys = 0.0
    if after_sells < 0:
        if spot is None:
            return None
        margin_sells = -after_sells * multiplier * spot * margin_fraction
    else:
        margin_sells = 0.0
    scale = multiplier / PRICE_SCALE
    return max(premium_buys * scale + margin_buys, premium_sells * scale + margin_sells)


#: The Greeks of a symbol without a position (all zero), shared.  Greeks are
#: kept as tuples in the order delta, gamma, vega, theta, dollar delta,
#: dollar gamma (the fields of :class:`host.positions.book.Greeks`).
NO_GREEKS = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def greeks_tuple(instrument: Instrument, quantity: int, theo: Theo, spot: float) -> tuple:
    """:func:`host.positions.book.greeks_of` as a tuple (no object built)."""
    units = quantity * instrument.multiplier
    if instrument.option is None:
        return float(units), 0.0, 0.0, 0.0, units * spot, 0.0
    delta = units * theo.delta
    gamma = units * (theo.gamma or 0.0)
    return (delta, gamma, units * (theo.vega or 0.0), units * (theo.theta or 0.0),
            delta * spot, gamma * spot * spot / 100.0)


@dataclass(slots=True)
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
        orders = list(book.values())
        for order in orders:
            if order.state in TERMINAL_STATES:
                break
        else:
            return orders
        done = [key for key, order in book.items() if order.state in TERMINAL_STATES]
        for key in done:
            del book[key]
        if not book:
            del self._by_symbol[symbol]
        return list(book.values())

    def follow(self, order: Order) -> None:
        """Track a non-terminal order the manager holds that was never
        accepted here (one the exchange told us of after a restart)."""
        if order.state not in TERMINAL_STATES:
            book = self._by_symbol.get(normalize_symbol(order.symbol))
            if book is None or order.user_ref_nums[0] not in book:
                self._track(order)

    def symbols(self) -> list[str]:
        return list(self._by_symbol)

    def totals(self, symbol: str, exclude: Order | None = None) -> SideTotals:
        totals = SideTotals()
        for order in self.of(symbol):
            if order is exclude:
                continue
            exposure = working_exposure(order)
            if exposure is not None:
                sign, quantity, cost = exposure[0], exposure[1], exposure[2]
                if sign > 0:
                    totals.buy_quantity += quantity
                    totals.buy_cost += cost
                elif sign < 0:
                    totals.sell_quantity += quantity
        return totals


class Entry:
    """One symbol's measures (from positions, working orders and marks)."""

    __slots__ = ("symbol", "underlying", "instrument", "held", "totals", "gross", "usage",
                 "greeks", "missing", "long_cost", "buy_high", "sell_low", "greeks_missing",
                 "in_sums", "is_option", "multiplier", "margin_fraction")

    def __init__(self, symbol: str, underlying: str, instrument: Instrument | None,
                 margin_fraction: float = 0.0):
        self.symbol = symbol
        self.underlying = underlying
        self.instrument = instrument
        # The instrument's constants, as the capital rule reads them.
        self.is_option = instrument is not None and instrument.option is not None
        self.multiplier = instrument.multiplier if instrument is not None else 1
        self.margin_fraction = margin_fraction
        self.held = 0
        self.totals = SideTotals()
        self.gross = 0                  # options: max(|P + B|, |P - S|)
        self.usage: float | None = 0.0  # None: cannot be margined (no spot)
        self.greeks: tuple | None = NO_GREEKS   # None: the position has no mark
        self.missing = ""               # what mark is missing
        self.greeks_missing = ""
        self.long_cost = 0.0            # open cost of a long position, price units
        # Highest price a working buy may trade at, lowest a working sell
        # may (both prices of a pending replace count).
        self.buy_high: float | int = -_INFINITY
        self.sell_low: float | int = _INFINITY
        self.in_sums = False            # counted in the sums (active when last counted)

    @property
    def active(self) -> bool:
        return bool(self.held or self.totals.buy_quantity or self.totals.sell_quantity)


@dataclass
class Aggregate:
    gross: int = 0
    usage: float | None = 0.0
    greeks: Greeks | None = Greeks()
    missing: str = ""


class _Sums:
    """Running sums of entries; entries lacking a measure are counted apart."""

    __slots__ = ("gross", "usage", "greeks", "usage_missing", "greeks_missing", "_view")

    def __init__(self):
        self._view: Aggregate | None = None
        self.gross = 0
        self.usage = 0.0
        self.greeks = [0.0] * len(NO_GREEKS)
        self.usage_missing: dict[str, str] = {}
        self.greeks_missing: dict[str, str] = {}

    def add(self, entry: Entry, sign: int) -> None:
        """Count ``entry`` in (sign +1) or out (-1)."""
        self.account(entry.symbol, entry.gross, entry.usage, entry.greeks, entry.missing,
                     sign, True)

    def account(self, symbol: str, gross: int, usage: float | None, greeks: tuple | None,
                missing: str, sign: int, with_greeks: bool) -> None:
        """Count one symbol's measures in or out; ``with_greeks=False``
        leaves its Greeks where they are (they did not change)."""
        self._view = None
        self.gross += sign * gross
        if usage is None:
            self._missing(self.usage_missing, symbol, missing, sign)
        else:
            self.usage += sign * usage
        if not with_greeks:
            return
        if greeks is None:
            self._missing(self.greeks_missing, symbol, missing, sign)
        elif greeks is not NO_GREEKS:
            sums = self.greeks
            for i in range(6):
                sums[i] += sign * greeks[i]

    @property
    def missing(self) -> str:
        """What mark is missing, when one is."""
        return next(iter(self.usage_missing.values()), "") or \
            next(iter(self.greeks_missing.values()), "")

    @staticmethod
    def _missing(table: dict, symbol: str, missing: str, sign: int) -> None:
        if sign > 0:
            table[symbol] = missing
        else:
            table.pop(symbol, None)

    def view(self) -> Aggregate:
        """The sums as an :class:`Aggregate` (kept until the sums change)."""
        view = self._view
        if view is None:
            view = self._view = Aggregate(
                gross=self.gross,
                usage=None if self.usage_missing else self.usage,
                greeks=None if self.greeks_missing else Greeks(*self.greeks),
                missing=self.missing)
        return view


_EMPTY_SUMS = _Sums()


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
        #: the active symbols' entries (a position or working orders)
        self.entries: dict[str, Entry] = {}
        self._states: dict[str, Entry] = {}           # every symbol measured so far
        self._members: dict[str, set[str]] = {}       # underlying -> active symbols
        self._sums: dict[str, _Sums] = {}
        self._total = _Sums()
        self._dirty: set[str] = set()                 # positions (and everything) changed
        self._dirty_orders: set[str] = set()          # only working orders changed
        self._dirty_underlyings: set[str] = set()
        self._spots: dict[str, float | None] = {}     # marks.spot per underlying, until it moves
        # Replaces applied in place, to confirm against the order manager:
        # (order, its pending_replace once sent, symbol).
        self._expected: list[tuple[Order, tuple, str]] = []
        self.recomputed = 0
        self.applied_in_place = 0
        positions.listeners.append(self.touch)
        marks.listeners.append(self.touch_underlying)
        self.touch_all()

    # -- invalidation -------------------------------------------------------------
    def touch(self, symbol: str) -> None:
        """Anything of ``symbol`` may have changed (its position, for one)."""
        self._dirty.add(normalize_symbol(symbol))

    def touch_orders(self, symbol: str) -> None:
        """Only ``symbol``'s working orders may have changed (``symbol`` as
        normalized)."""
        self._dirty_orders.add(symbol)

    def touch_underlying(self, underlying: str) -> None:
        self._dirty_underlyings.add(underlying)
        self._spots.pop(underlying, None)

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

    def _spot(self, underlying: str) -> float | None:
        try:
            return self._spots[underlying]
        except KeyError:
            spot = self._spots[underlying] = self.marks.spot(underlying)
            return spot

    def _fraction(self, instrument: Instrument) -> float:
        return (self.short_option_margin if instrument.option is not None
                else self.short_stock_margin)

    def margin(self, instrument: Instrument, short: int) -> float | None:
        if short <= 0:
            return 0.0
        spot = self.marks.spot(instrument.underlying)
        if spot is None:
            return None
        return short * instrument.multiplier * spot * self._fraction(instrument)

    def usage(self, instrument: Instrument, held: int, totals: SideTotals) -> float | None:
        """Capital used by one symbol: the worse of all working buys filling
        and all working sells filling; None when a short cannot be margined."""
        position = self.positions.position(instrument.symbol)
        long_cost = float(position.open_cost) if (position is not None and held > 0) else 0.0
        after_buys, after_sells = totals.worst(held)
        spot = (self.marks.spot(instrument.underlying) if after_buys < 0 or after_sells < 0
                else None)
        return capital_usage(held, long_cost, totals.buy_quantity, totals.sell_quantity,
                             totals.buy_cost, instrument.multiplier, spot,
                             self._fraction(instrument))

    def _measure_position(self, entry: Entry) -> None:
        """Held quantity, its cost and Greeks (after a fill or a new mark)."""
        symbol = entry.symbol
        position = self.positions.positions.get(symbol)
        held = entry.held = 0 if position is None else position.quantity
        entry.long_cost = float(position.open_cost) if held > 0 else 0.0
        instrument = entry.instrument
        entry.greeks_missing = ""
        if instrument is None:
            if held:
                entry.greeks = None
                entry.greeks_missing = f"{symbol} is not a configured instrument"
            else:
                entry.greeks = NO_GREEKS
        elif held:
            theo = self.marks.theo(symbol)
            spot = self._spot(entry.underlying)
            if theo is None or spot is None:
                entry.greeks = None
                entry.greeks_missing = f"no {'theo' if theo is None else 'spot'} for {symbol}"
            else:
                entry.greeks = greeks_tuple(instrument, held, theo, spot)
        else:
            entry.greeks = NO_GREEKS

    def _measure_orders(self, entry: Entry) -> None:
        """Working quantities, price extremes, gross contracts and capital."""
        symbol = entry.symbol
        buy_quantity = sell_quantity = buy_cost = 0
        buy_high, sell_low = -_INFINITY, _INFINITY
        book = self.working._by_symbol.get(symbol)
        if book:
            done = None
            # The rule of working_exposure, inline: this runs on every
            # change of one of the symbol's orders.
            for key, order in book.items():
                if order.state in TERMINAL_STATES:
                    if done is None:
                        done = []
                    done.append(key)
                    continue
                quantity = order.quantity - order.filled - order.canceled
                low = high = order.price
                cost = quantity * low
                replace = order.pending_replace
                if replace is not None:
                    _, new_quantity, new_price = replace
                    if new_quantity > quantity:
                        quantity = new_quantity
                    new_cost = new_quantity * new_price
                    if new_cost > cost:
                        cost = new_cost
                    if new_price < low:
                        low = new_price
                    elif new_price > high:
                        high = new_price
                if quantity <= 0:
                    continue
                side = order.side
                if side == "B":
                    buy_quantity += quantity
                    buy_cost += cost
                    if high > buy_high:
                        buy_high = high
                else:
                    sign = side_sign(side)
                    if sign < 0:
                        sell_quantity += quantity
                    # An order of no known side counts on neither side's
                    # quantity but is in the way of both (as in the checks).
                    if low < sell_low:
                        sell_low = low
                    if sign == 0 and high > buy_high:
                        buy_high = high
            if done is not None:
                for key in done:
                    del book[key]
                if not book:
                    del self.working._by_symbol[symbol]
        totals = entry.totals
        totals.buy_quantity, totals.sell_quantity, totals.buy_cost = \
            buy_quantity, sell_quantity, buy_cost
        entry.buy_high, entry.sell_low = buy_high, sell_low
        self._derive(entry)

    def _derive(self, entry: Entry) -> None:
        """Gross contracts, capital and what is missing, from the entry's
        position and working totals."""
        totals = entry.totals
        buy_quantity, sell_quantity = totals.buy_quantity, totals.sell_quantity
        if entry.instrument is None:
            entry.gross = 0
            entry.usage = None if entry.held else 0.0
            entry.missing = entry.greeks_missing
            return
        held = entry.held
        long_ = held + buy_quantity
        short = held - sell_quantity
        if entry.is_option:
            entry.gross = max(abs(long_), abs(short))
        if long_ < 0 or short < 0:
            spot = self._spots.get(entry.underlying, _UNKNOWN)
            if spot is _UNKNOWN:
                spot = self._spot(entry.underlying)
        else:
            spot = None
        usage = entry.usage = capital_usage(held, entry.long_cost, buy_quantity, sell_quantity,
                                            totals.buy_cost, entry.multiplier, spot,
                                            entry.margin_fraction)
        if usage is None:
            entry.missing = entry.greeks_missing or f"no spot for {entry.underlying}"
        else:
            entry.missing = entry.greeks_missing

    def _new_entry(self, symbol: str) -> Entry:
        underlying, instrument = self._underlying_of(symbol)
        return Entry(symbol, underlying, instrument,
                     0.0 if instrument is None else self._fraction(instrument))

    def compute(self, symbol: str) -> Entry:
        """A fresh entry for ``symbol`` (not kept)."""
        entry = self._new_entry(symbol)
        self._measure_position(entry)
        self._measure_orders(entry)
        return entry

    def _update(self, symbol: str, position_changed: bool, rebuilding=()) -> Entry:
        """Measure ``symbol`` again and move its contribution in the sums
        (not for the underlyings in ``rebuilding``: their sums start afresh)."""
        entry = self._states.get(symbol)
        if entry is None:
            entry = self._states[symbol] = self._new_entry(symbol)
            position_changed = True
        underlying = entry.underlying
        was_counted = entry.in_sums
        counting = underlying not in rebuilding
        old = (entry.gross, entry.usage, entry.greeks, entry.missing) \
            if was_counted and counting else None
        if position_changed:
            self._measure_position(entry)
        self._measure_orders(entry)
        self.recomputed += 1
        self._settle(entry, old, was_counted, position_changed, counting)
        return entry

    def _settle(self, entry: Entry, old: tuple | None, was_counted: bool,
                position_changed: bool, counting: bool) -> None:
        """Move a re-measured entry's contribution in the sums: ``old`` is
        (gross, usage, Greeks, missing) as counted before, None when it was
        not counted (or its underlying's sums start afresh)."""
        symbol, underlying = entry.symbol, entry.underlying
        active = bool(entry.held or entry.totals.buy_quantity or entry.totals.sell_quantity)
        if active and not was_counted:
            self.entries[symbol] = entry
            self._members.setdefault(underlying, set()).add(symbol)
        elif was_counted and not active:
            del self.entries[symbol]
            self._members[underlying].discard(symbol)
        entry.in_sums = active
        if not counting:
            return
        total = self._total
        if old is not None:
            old_gross, old_usage, old_greeks, old_missing = old
            usage = entry.usage
            if active and not position_changed and old_usage is not None and usage is not None:
                # The common change (one of our orders moved): gross
                # contracts and capital move, the Greeks cannot.
                gross = entry.gross - old_gross
                for sums in (self._sums[underlying], total):
                    sums._view = None
                    sums.gross += gross
                    sums.usage -= old_usage
                    sums.usage += usage
                return
            for sums in (self._sums[underlying], total):
                sums.account(symbol, old_gross, old_usage, old_greeks, old_missing, -1,
                             position_changed)
        if active:
            sums = self._sums.get(underlying)
            if sums is None:
                sums = self._sums[underlying] = _Sums()
            # Greeks unchanged and still counted: leave them.
            greeks = position_changed or not was_counted
            for sums in (sums, total):
                sums.account(symbol, entry.gross, entry.usage, entry.greeks, entry.missing, +1,
                             greeks)

    def replace_sent(self, symbol: str, order: Order, user_ref_num: int, quantity: int,
                     price: int) -> None:
        """A Replace Order Request of ``order`` (the new ``user_ref_num``,
        ``quantity`` and ``price``) was accepted and is being sent: once the
        order manager has it, the order works at the larger of its open and
        the new quantity, and at both prices (:func:`working_exposure`).
        The change is made to the symbol's measures now, from what they are
        (the checks have just brought them up to date), instead of measuring
        the symbol again at the next request.  The next refresh confirms that
        the order manager holds the replace as told, and measures the symbol
        again if not (a request that was never sent).  Anything less plain
        (a replace already pending, other changes waiting) is left to that
        measuring."""
        entry = self._states.get(symbol)
        if (entry is None or not entry.in_sums or entry.instrument is None
                or order.pending_replace is not None or self._dirty or self._dirty_orders
                or self._dirty_underlyings or self.working._unresolved):
            self._dirty_orders.add(symbol)
            return
        open_quantity = order.quantity - order.filled - order.canceled
        side = order.side
        totals = entry.totals
        # The order's contribution goes from (open, its cost, its price) to
        # (the larger quantity, the larger cost, both prices).
        if open_quantity <= 0:
            self._dirty_orders.add(symbol)
            return
        added = quantity - open_quantity if quantity > open_quantity else 0
        if side == "B":
            old_cost = open_quantity * order.price
            new_cost = quantity * price
            totals.buy_quantity += added
            if new_cost > old_cost:
                totals.buy_cost += new_cost - old_cost
            if price > entry.buy_high:
                entry.buy_high = price
        elif side in SELL_SIDES:
            totals.sell_quantity += added
            if price < entry.sell_low:
                entry.sell_low = price
        else:
            self._dirty_orders.add(symbol)
            return
        old_gross, old_usage, old_missing = entry.gross, entry.usage, entry.missing
        self._derive(entry)
        usage = entry.usage
        if old_usage is not None and usage is not None:
            # _settle's common change, inline: still counted, Greeks unchanged.
            gross = entry.gross - old_gross
            for sums in (self._sums[entry.underlying], self._total):
                sums._view = None
                sums.gross += gross
                sums.usage -= old_usage
                sums.usage += usage
        else:
            self._settle(entry, (old_gross, old_usage, entry.greeks, old_missing), True, False,
                         True)
        self._expected.append((order, (user_ref_num, quantity, price), symbol))
        self.applied_in_place += 1

    def _confirm_expected(self) -> None:
        for order, replace, symbol in self._expected:
            if order.pending_replace != replace:
                self._dirty_orders.add(symbol)
        self._expected.clear()

    def refresh(self) -> None:
        if self._expected:
            self._confirm_expected()
        working = self.working
        if working._unresolved:
            self._dirty_orders.update(working.resolve())
        rebuild = self._dirty_underlyings
        dirty = self._dirty
        if rebuild:
            for underlying in rebuild:
                dirty.update(self._members.get(underlying, ()))
        if dirty:
            for symbol in dirty:
                self._update(symbol, True, rebuild)
            self._dirty_orders.difference_update(dirty)
            dirty.clear()
        if self._dirty_orders:
            for symbol in self._dirty_orders:
                self._update(symbol, False, rebuild)
            self._dirty_orders.clear()
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
        entry = self._states.get(symbol)
        return entry if entry is not None else self.compute(symbol)

    def current(self, symbol: str) -> Entry:
        """``symbol``'s entry, everything refreshed first (``symbol`` normalized)."""
        if self._expected:
            self._confirm_expected()
        if self._dirty or self._dirty_orders or self._dirty_underlyings \
                or self.working._unresolved:
            self.refresh()
        entry = self._states.get(symbol)
        if entry is None:
            entry = self._update(symbol, True)
        return entry

    def underlying(self, underlying: str) -> Aggregate:
        sums = self._sums.get(underlying)
        return Aggregate() if sums is None else sums.view()

    def total(self) -> Aggregate:
        return self._total.view()

    # The running sums themselves, for the checks (no view built per request).
    # Greeks in the order of NO_GREEKS; read only.
    def underlying_sums(self, underlying: str) -> _Sums:
        sums = self._sums.get(underlying)
        return _EMPTY_SUMS if sums is None else sums

    def total_sums(self) -> _Sums:
        return self._total

"""The pre-trade risk engine: the last word on every OUCH request before it
is journaled and sent.

:meth:`RiskEngine.check` judges one request and returns a
:class:`~host.risk.events.RiskDecision`.  An accepted request is committed to
the engine's state (rate windows, duplicate memory, UserRefNums, working
orders) on the assumption that it is sent; every decision is counted by
reason in :attr:`RiskEngine.counts` and handed to :attr:`RiskEngine.listeners`
as a :class:`~host.risk.events.RiskEvent`.  The engine does no I/O; the
breach actions that send cancels are carried out by :class:`host.risk.guard.RiskGuard`.

What is checked, per request (first failure wins, in this order)
-----------------------------------------------------------------
Enter Order and Replace Order Request (a replace is judged as the order it
would leave working: the original's symbol and side, the new price and
quantity):

1. ``killed``: after a kill nothing new goes out until :meth:`RiskEngine.reset_kill`.
2. ``duplicate_user_ref_num``: the new UserRefNum must be above every one
   sent (OUCH requires them to increase per port).
3. Replace only: ``unknown_order`` / ``order_not_working``: the original must
   be known by its current UserRefNum and be live or partially filled.
4. ``unknown_symbol``, ``restricted_symbol`` (the symbol or its underlying is
   listed in ``restricted_symbols``), ``invalid_order`` (side, zero quantity,
   price outside 1..MAX_LIMIT_PRICE).
5. ``duplicate_cl_ord_id``: a non-blank ClOrdID already used by another order.
   Enter only: ``duplicate_order``: the same symbol, side, price and quantity
   entered less than ``duplicate_window_seconds`` ago.
6. ``order_size``: quantity above ``max_order_quantity``;
   ``order_notional``: price * quantity * multiplier above ``max_order_notional``.
7. Marks and price bands.  The underlying needs a two-sided, uncrossed BBO
   (``no_underlying_bbo``).  Underlying orders may not go more than
   ``stock_band_fraction`` through the far side of the BBO
   (``price_band_underlying``).  Options must respect the European
   no-arbitrage bounds at the BBO (:func:`host.positions.theo.no_arbitrage_bounds`)
   within ``bound_tolerance`` dollars (``price_band_underlying``); need a theo
   (``no_theo``) priced at a spot within ``max_theo_spot_drift`` of the mid
   (``stale_theo``); and may not be more aggressive than the theo moved to the
   mid by its delta, ``fair = theo + delta * (mid - theo spot)``, by more
   than ``max(theo_band_min, theo_band_fraction * fair)``: a buy above
   ``fair + band`` or a sell below ``fair - band`` is ``price_band_theo``.
   Passive prices (a bid far below fair) are never refused.
8. ``self_trade``: a buy at or above the price of any of our working sells in
   the same symbol (or a sell at or below any working buy) is refused.
   Pending orders count, at both prices while a replace is pending.
9. Positions, worst case over working orders.  For one symbol with position
   P (signed), working buy quantity B and working sell quantity S, the
   worst long is ``P + B`` and the worst short ``P - S``.  The working
   quantity of an order is its open quantity; while a replace is pending it
   is the larger of the open and the requested quantity (a fill that races a
   replace can exceed this by the old open quantity for one round trip).
   The request is added on its side (a replace first takes its original
   out).  ``position_option`` (``max_option_position``) and
   ``position_stock`` (``max_stock_position``) bound the worst long and
   short of the symbol; ``position_underlying`` bounds the sum over the
   underlying's options of ``max(|P + B|, |P - S|)`` (``max_underlying_contracts``).
10. Greeks: positions plus this request as if it filled
    (:func:`host.positions.book.greeks_of`): per underlying ``|delta|``,
    ``|gamma|``, ``|vega|`` and over all underlyings ``|dollar delta|``,
    ``|dollar gamma|``, ``|vega|`` (``delta_underlying`` ... ``vega_total``).
    A held position without a mark is ``no_mark`` (so is, in step 11, a
    short that cannot be margined for want of a spot).
11. ``capital``: premium plus margin must stay within ``capital``.  A
    holding of Q uses: for Q > 0 the premium paid for it, for Q < 0 margin of
    ``|Q| * multiplier * spot * short_option_margin`` (``short_stock_margin``
    for the underlying's shares).  Per symbol the engine takes the worse of
    two outcomes: every working buy fills (Q = P + B; the existing long at
    its average cost, contracts bought beyond covering a short at the
    working buys' average price) or every working sell fills (Q = P - S; the
    long left at its average cost), and sums over symbols.  The request is
    added to its side first.  Dollars are price * multiplier.
12. ``throttle_orders``, ``throttle_messages``: the sliding windows of
    :class:`~host.risk.limits.ThrottleLimits`.

Position, Greek and capital limits refuse a request only when it takes a
measure beyond its limit *and* further from zero than it was: a request that
brings every measure closer to zero always passes, so the book can always be
brought back inside limits that were lowered or breached by the market.

Cancel Order, Modify Order and Mass Cancel: only ``throttle_cancels`` and
``throttle_messages`` (Mass Cancel also ``duplicate_user_ref_num``); a kill
never blocks them.  Other requests: ``duplicate_user_ref_num`` where they
open a UserRefNum, then ``throttle_messages``.  Requests the guard sends as
a breach action skip the throttles (taking risk off outranks the rate) but
still count in the windows.

Working orders come from the order manager: the engine follows every order
it accepted (and, when built, every non-terminal order the manager already
holds) until the order reaches a terminal state.  What it measures is cached
(:mod:`host.risk.exposure`) and recomputed per symbol when told of a change:
by the position book, by the marks, and by :meth:`RiskEngine.on_message`,
which must see every message the order manager receives (the guard registers
it with the gateway).
"""
from __future__ import annotations

import time
from collections import Counter, deque
from typing import Callable

from host.gateway.orders import Order, OrderManager, OrderState
from host.positions.book import PositionBook, greeks_of, side_sign
from host.positions.instruments import Instrument, Instruments, normalize_symbol
from host.positions.marks import PRICE_SCALE, Marks
from host.positions.theo import no_arbitrage_bounds
from host.protocols import ouch50
from host.protocols.layout import Message
from host.risk.events import KILL_RESET, REASONS, RiskDecision, RiskEvent
from host.risk.exposure import (
    Aggregate, Exposure, SideTotals, WorkingOrders, working_exposure,
)
from host.risk.limits import Action, RiskLimits
from host.risk.throttle import NS_PER_SECOND, RateLimit

_WORKING_STATES = frozenset({OrderState.LIVE, OrderState.PARTIALLY_FILLED})
_CANCEL_TYPES = (ouch50.CancelOrderRequest, ouch50.ModifyOrderRequest,
                 ouch50.MassCancelRequest)
# Requests that open a new UserRefNum (Cancel and Modify name an existing one).
_NEW_REF_TYPES = (ouch50.EnterOrder, ouch50.ReplaceOrderRequest, ouch50.MassCancelRequest,
                  ouch50.DisableOrderEntryRequest, ouch50.EnableOrderEntryRequest)


class _Refused(Exception):
    """Internal: a check failed (reason, detail)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


class RiskEngine:
    def __init__(self, limits: RiskLimits, instruments: Instruments, marks: Marks,
                 positions: PositionBook, orders: OrderManager, *,
                 clock: Callable[[], int] = time.monotonic_ns):
        self.limits = limits
        self.instruments = instruments
        self.marks = marks
        self.positions = positions
        self.orders = orders
        self.clock = clock
        self.counts: Counter = Counter()
        self.listeners: list[Callable[[RiskEvent], None]] = []
        self.killed = False
        self._sequence = 0
        self._last_user_ref_num = orders.next_user_ref_num - 1
        self._cl_ord_ids: dict[str, int] = {}          # ClOrdID -> order's first UserRefNum
        self._recent: dict[tuple, int] = {}            # duplicate key -> last time entered
        self._recent_times: deque[tuple[int, tuple]] = deque()
        self.working = WorkingOrders(orders)
        self.exposure = Exposure(instruments, marks, positions, self.working,
                                 short_option_margin=limits.short_option_margin,
                                 short_stock_margin=limits.short_stock_margin)
        throttle = limits.throttle
        window_ns = int(throttle.window_seconds * NS_PER_SECOND)
        self._order_rate = RateLimit("orders", throttle.orders_per_second,
                                     throttle.orders_per_window, window_ns)
        self._cancel_rate = RateLimit("cancels", throttle.cancels_per_second,
                                      throttle.cancels_per_window, window_ns)
        self._message_rate = RateLimit("messages", throttle.messages_per_second,
                                       throttle.messages_per_window, window_ns)
        for order in orders.unique_orders():
            if order.cl_ord_id.strip():
                self._cl_ord_ids.setdefault(order.cl_ord_id.strip(), order.user_ref_nums[0])

    # -- working orders -----------------------------------------------------------
    def _resolve(self) -> None:
        for symbol in self.working.resolve():
            self.exposure.touch(symbol)

    def working_orders(self, symbol: str) -> list[Order]:
        """Our non-terminal orders in ``symbol``."""
        self._resolve()
        return self.working.of(normalize_symbol(symbol))

    def on_message(self, msg: Message, orders: OrderManager) -> None:
        """Order gateway listener: an exchange message may have changed an order."""
        ref = getattr(msg, "orig_user_ref_num", getattr(msg, "user_ref_num", None))
        order = orders.orders.get(ref) if ref is not None else None
        if order is not None:
            self.exposure.touch(order.symbol)

    # -- the entry point ----------------------------------------------------------
    def check(self, msg: Message, *, risk_action: bool = False) -> RiskDecision:
        """Judge one request; ``risk_action`` marks the guard's own pulls."""
        now = self.clock()
        try:
            if isinstance(msg, ouch50.EnterOrder):
                self._enter(msg, now)
            elif isinstance(msg, ouch50.ReplaceOrderRequest):
                self._replace(msg, now)
            else:
                self._other(msg, now, risk_action)
        except _Refused as refused:
            check = REASONS[refused.reason]
            decision = RiskDecision(False, refused.reason, check,
                                    self.limits.action_for(check), refused.detail)
            if decision.action is Action.KILL:
                self.killed = True
        else:
            decision = RiskDecision.accept()
        self._emit(decision, msg, now)
        return decision

    def _emit(self, decision: RiskDecision, msg: Message | None, now: int) -> None:
        self._sequence += 1
        if decision.accepted:
            self.counts[decision.reason] += 1
        else:
            self.counts[f"rejected_{decision.reason}"] += 1
            self.counts[f"action_{decision.action.value}"] += 1
        if not self.listeners:
            return
        symbol, side, quantity, price = self._describe(msg)
        event = RiskEvent(
            sequence=self._sequence, clock_ns=now, accepted=decision.accepted,
            reason=decision.reason,
            check=None if decision.check is None else decision.check.value,
            action=None if decision.action is None else decision.action.value,
            message_type=(msg.TYPE or "") if msg is not None else "",
            user_ref_num=getattr(msg, "user_ref_num", None),
            symbol=symbol, side=side, quantity=quantity, price=price, detail=decision.detail)
        for listener in self.listeners:
            listener(event)

    def _describe(self, msg) -> tuple[str, str, int | None, int | None]:
        if msg is None:
            return "", "", None, None
        if isinstance(msg, ouch50.EnterOrder):
            return normalize_symbol(msg.symbol), msg.side, msg.quantity, msg.price
        if isinstance(msg, ouch50.ReplaceOrderRequest):
            order = self.orders.orders.get(msg.orig_user_ref_num)
            symbol, side = (order.symbol, order.side) if order is not None else ("", "")
            return normalize_symbol(symbol), side, msg.quantity, msg.price
        if isinstance(msg, (ouch50.CancelOrderRequest, ouch50.ModifyOrderRequest)):
            order = self.orders.orders.get(msg.user_ref_num)
            symbol = normalize_symbol(order.symbol) if order is not None else ""
            side = getattr(msg, "side", order.side if order is not None else "")
            return symbol, side, msg.quantity, None
        if isinstance(msg, ouch50.MassCancelRequest):
            return normalize_symbol(msg.symbol), "", None, None
        return "", "", None, None

    # -- kill switch --------------------------------------------------------------
    def reset_kill(self, note: str = "") -> None:
        """Allow new orders again after a kill (an operator's decision)."""
        if not self.killed:
            return
        self.killed = False
        self._sequence += 1
        self.counts[KILL_RESET] += 1
        event = RiskEvent(self._sequence, self.clock(), True, KILL_RESET, None, None, "",
                          None, "", "", None, None, note)
        for listener in self.listeners:
            listener(event)

    def restore(self, events) -> None:
        """Take the kill state (and the event numbering) from recorded events."""
        for event in events:
            if event.kill:
                self.killed = True
            elif event.reason == KILL_RESET:
                self.killed = False
            self._sequence = max(self._sequence, event.sequence)

    # -- per request type ---------------------------------------------------------
    def _new_user_ref_num(self, ref: int) -> None:
        if ref <= self._last_user_ref_num:
            raise _Refused("duplicate_user_ref_num",
                           f"UserRefNum {ref} is not above {self._last_user_ref_num}")

    def _instrument(self, symbol: str) -> Instrument:
        instrument = self.instruments.get(symbol)
        if instrument is None:
            raise _Refused("unknown_symbol", f"{symbol!r} is not a configured instrument")
        restricted = self.limits.restricted_symbols
        if instrument.symbol in restricted or instrument.underlying in restricted:
            raise _Refused("restricted_symbol", f"{instrument.symbol} ({instrument.underlying}) "
                                                f"is restricted")
        return instrument

    @staticmethod
    def _valid(sign: int, side: str, quantity: int, price: int) -> None:
        if sign == 0:
            raise _Refused("invalid_order", f"side {side!r}")
        if quantity <= 0:
            raise _Refused("invalid_order", "quantity 0")
        if not 0 < price <= ouch50.MAX_LIMIT_PRICE:
            raise _Refused("invalid_order", f"price {price} outside 1..{ouch50.MAX_LIMIT_PRICE}")

    def _cl_ord_id_free(self, cl_ord_id: str, order_key: int | None) -> str:
        token = cl_ord_id.strip()
        if token:
            owner = self._cl_ord_ids.get(token)
            if owner is not None and owner != order_key:
                raise _Refused("duplicate_cl_ord_id",
                               f"ClOrdID {token!r} belongs to order {owner}")
        return token

    def _throttled(self, rate: RateLimit | None, now: int, exempt: bool) -> None:
        if exempt:
            return
        if rate is not None and not rate.allows(now):
            raise _Refused(f"throttle_{rate.name}", rate.describe(now))
        if not self._message_rate.allows(now):
            raise _Refused("throttle_messages", self._message_rate.describe(now))

    def _count_rate(self, rate: RateLimit | None, now: int) -> None:
        if rate is not None:
            rate.add(now)
        self._message_rate.add(now)

    def _duplicate_key_fresh(self, key: tuple, now: int) -> bool:
        window = int(self.limits.duplicate_window_seconds * NS_PER_SECOND)
        if window <= 0:
            return True
        horizon = now - window
        while self._recent_times and self._recent_times[0][0] <= horizon:
            t, old = self._recent_times.popleft()
            if self._recent.get(old) == t:
                del self._recent[old]
        seen = self._recent.get(key)
        return seen is None or seen <= horizon

    def _remember_duplicate_key(self, key: tuple, now: int) -> None:
        if self.limits.duplicate_window_seconds > 0:
            self._recent[key] = now
            self._recent_times.append((now, key))

    def _enter(self, msg, now: int) -> None:
        if self.killed:
            raise _Refused("killed", "the kill switch is on")
        self._new_user_ref_num(msg.user_ref_num)
        instrument = self._instrument(normalize_symbol(msg.symbol))
        sign = side_sign(msg.side)
        self._valid(sign, msg.side, msg.quantity, msg.price)
        token = self._cl_ord_id_free(msg.cl_ord_id, None)
        key = (instrument.symbol, sign, msg.price, msg.quantity)
        if not self._duplicate_key_fresh(key, now):
            raise _Refused("duplicate_order", f"{instrument.symbol} {msg.side} {msg.quantity} @ "
                                              f"{msg.price} entered within the window")
        self._order_checks(instrument, sign, msg.quantity, msg.price, None)
        self._throttled(self._order_rate, now, False)
        # Accepted: commit.
        self._last_user_ref_num = msg.user_ref_num
        if token:
            self._cl_ord_ids[token] = msg.user_ref_num
        self._remember_duplicate_key(key, now)
        self.working.expect(msg.user_ref_num)
        self._count_rate(self._order_rate, now)

    def _replace(self, msg, now: int) -> None:
        if self.killed:
            raise _Refused("killed", "the kill switch is on")
        self._new_user_ref_num(msg.user_ref_num)
        order = self.orders.orders.get(msg.orig_user_ref_num)
        if order is None:
            raise _Refused("unknown_order", f"no order with UserRefNum {msg.orig_user_ref_num}")
        if order.state not in _WORKING_STATES or order.user_ref_num != msg.orig_user_ref_num:
            raise _Refused("order_not_working",
                           f"order {order.user_ref_nums[0]} is {order.state.value} under "
                           f"UserRefNum {order.user_ref_num}")
        instrument = self._instrument(normalize_symbol(order.symbol))
        sign = side_sign(order.side)
        self._valid(sign, order.side, msg.quantity, msg.price)
        token = self._cl_ord_id_free(msg.cl_ord_id, order.user_ref_nums[0])
        self._order_checks(instrument, sign, msg.quantity, msg.price, order)
        self._throttled(self._order_rate, now, False)
        self._last_user_ref_num = msg.user_ref_num
        if token:
            self._cl_ord_ids.setdefault(token, order.user_ref_nums[0])
        self.exposure.touch(order.symbol)
        self._count_rate(self._order_rate, now)

    def _other(self, msg, now: int, risk_action: bool) -> None:
        opens_ref = isinstance(msg, _NEW_REF_TYPES)
        if opens_ref:
            self._new_user_ref_num(msg.user_ref_num)
        rate = self._cancel_rate if isinstance(msg, _CANCEL_TYPES) else None
        self._throttled(rate, now, risk_action)
        if opens_ref:
            self._last_user_ref_num = msg.user_ref_num
        if isinstance(msg, (ouch50.CancelOrderRequest, ouch50.ModifyOrderRequest)):
            self.on_message(msg, self.orders)
        self._count_rate(rate, now)
        if risk_action:
            self.counts["risk_action_messages"] += 1

    # -- the order checks (steps 6 to 11) -----------------------------------------
    def _order_checks(self, instrument: Instrument, sign: int, quantity: int, price: int,
                      replacing: Order | None) -> None:
        limits = self.limits
        if quantity > limits.max_order_quantity:
            raise _Refused("order_size", f"{quantity} > {limits.max_order_quantity}")
        notional = price * quantity * instrument.multiplier / PRICE_SCALE
        if notional > limits.max_order_notional:
            raise _Refused("order_notional",
                           f"${notional:,.2f} > ${limits.max_order_notional:,.2f}")
        theo = self._price_bands(instrument, sign, price)
        self._resolve()
        self._self_trade(instrument.symbol, sign, price, replacing)
        self.exposure.refresh()
        entry = self.exposure.entry(instrument.symbol)
        base = (self.working.totals(instrument.symbol, replacing) if replacing is not None
                else entry.totals)
        projected = base.copy()
        projected.add(sign, quantity, quantity * price)
        mine = self.exposure.underlying(instrument.underlying)
        total = self.exposure.total()
        self._positions(instrument, sign, entry, projected, mine)
        self._greeks(instrument, sign * quantity, theo, mine, total)
        self._capital(instrument, entry, projected, total)

    def _price_bands(self, instrument: Instrument, sign: int, price: int):
        limits = self.limits
        underlying = instrument.underlying
        quote = self.marks.bbo(underlying)
        if quote is None:
            raise _Refused("no_underlying_bbo", f"{underlying} has no two-sided BBO")
        bid, ask = quote[0] / PRICE_SCALE, quote[1] / PRICE_SCALE
        mid = (bid + ask) / 2
        dollars = price / PRICE_SCALE
        if instrument.option is None:
            band = limits.stock_band_fraction
            if sign > 0 and dollars > ask * (1 + band):
                raise _Refused("price_band_underlying", f"buy {dollars} above ask {ask} + {band:.2%}")
            if sign < 0 and dollars < bid * (1 - band):
                raise _Refused("price_band_underlying", f"sell {dollars} below bid {bid} - {band:.2%}")
            return self.marks.theo(instrument.symbol)
        low, high = no_arbitrage_bounds(instrument.option, bid, ask)
        tolerance = limits.bound_tolerance
        if sign > 0 and dollars > high + tolerance:
            raise _Refused("price_band_underlying",
                           f"buy {dollars} above the option's upper bound {high:.4f}")
        if sign < 0 and dollars < low - tolerance:
            raise _Refused("price_band_underlying",
                           f"sell {dollars} below the option's lower bound {low:.4f}")
        theo = self.marks.theo(instrument.symbol)
        if theo is None:
            raise _Refused("no_theo", f"no theo for {instrument.symbol}")
        if abs(mid - theo.spot) > limits.max_theo_spot_drift * mid:
            raise _Refused("stale_theo", f"theo priced at spot {theo.spot}, mid is {mid}")
        fair = theo.price + theo.delta * (mid - theo.spot)
        band = max(limits.theo_band_min, limits.theo_band_fraction * max(fair, 0.0))
        if sign > 0 and dollars > fair + band:
            raise _Refused("price_band_theo", f"buy {dollars} above fair {fair:.4f} + {band:.4f}")
        if sign < 0 and dollars < fair - band:
            raise _Refused("price_band_theo", f"sell {dollars} below fair {fair:.4f} - {band:.4f}")
        return theo

    def _self_trade(self, symbol: str, sign: int, price: int, replacing: Order | None) -> None:
        for order in self.working.of(symbol):
            if order is replacing:
                continue
            exposure = working_exposure(order)
            if exposure is None or exposure[0] == sign:
                continue
            _, _, _, low, high = exposure
            if (sign > 0 and low <= price) or (sign < 0 and high >= price):
                raise _Refused("self_trade", f"would cross our order {order.user_ref_nums[0]} "
                                             f"({order.side} @ {low}..{high})")

    def _positions(self, instrument: Instrument, sign: int, entry, projected: SideTotals,
                   mine: Aggregate) -> None:
        symbol, underlying = instrument.symbol, instrument.underlying
        cur_long, cur_short = entry.totals.worst(entry.held)
        new_long, new_short = projected.worst(entry.held)
        if instrument.option is None:
            limit = self.limits.for_underlying(underlying, "max_stock_position")
            reason = "position_stock"
        else:
            limit = self.limits.for_underlying(underlying, "max_option_position")
            reason = "position_option"
        if sign > 0 and new_long > limit and new_long > cur_long:
            raise _Refused(reason, f"{symbol}: worst long {new_long} > {limit}")
        if sign < 0 and -new_short > limit and new_short < cur_short:
            raise _Refused(reason, f"{symbol}: worst short {-new_short} > {limit}")
        if instrument.option is None:
            return
        current = mine.gross
        projected_gross = current - entry.gross + max(abs(new_long), abs(new_short))
        limit = self.limits.for_underlying(underlying, "max_underlying_contracts")
        if projected_gross > limit and projected_gross > current:
            raise _Refused("position_underlying",
                           f"{underlying}: worst gross {projected_gross} contracts > {limit}")

    def _greeks(self, instrument: Instrument, signed_quantity: int, theo, mine: Aggregate,
                total: Aggregate) -> None:
        underlying = instrument.underlying
        if mine.greeks is None or total.greeks is None:
            raise _Refused("no_mark", mine.missing or total.missing)
        spot = self.marks.spot(underlying)
        if theo is None or spot is None:
            raise _Refused("no_mark", f"no theo or spot for {instrument.symbol}")
        order = greeks_of(instrument, signed_quantity, theo, spot)
        for name, limit_name, reason in (("delta", "max_delta", "delta_underlying"),
                                         ("gamma", "max_gamma", "gamma_underlying"),
                                         ("vega", "max_vega", "vega_underlying")):
            before = getattr(mine.greeks, name)
            after = before + getattr(order, name)
            limit = self.limits.for_underlying(underlying, limit_name)
            if abs(after) > limit and abs(after) > abs(before):
                raise _Refused(reason, f"{underlying} {name} {after:,.1f} beyond {limit:,.1f}")
        for name, limit_name, reason in (
                ("delta_dollars", "max_total_delta_dollars", "delta_total"),
                ("gamma_dollars", "max_total_gamma_dollars", "gamma_total"),
                ("vega", "max_total_vega", "vega_total")):
            before = getattr(total.greeks, name)
            after = before + getattr(order, name)
            limit = getattr(self.limits, limit_name)
            if abs(after) > limit and abs(after) > abs(before):
                raise _Refused(reason, f"total {name} {after:,.1f} beyond {limit:,.1f}")

    def _capital(self, instrument: Instrument, entry, projected: SideTotals,
                 total: Aggregate) -> None:
        if total.usage is None or entry.usage is None:
            raise _Refused("no_mark", total.missing or entry.missing)
        usage = self.exposure.usage(instrument, entry.held, projected)
        if usage is None:
            raise _Refused("no_mark", f"no spot for {instrument.underlying} to margin "
                                      f"short {instrument.symbol}")
        after = total.usage - entry.usage + usage
        if after > self.limits.capital and after > total.usage:
            raise _Refused("capital", f"premium + margin ${after:,.2f} > capital "
                                      f"${self.limits.capital:,.2f}")

    # -- views --------------------------------------------------------------------
    def capital_usage(self) -> float | None:
        """Premium plus margin (dollars) of positions and working orders now
        (None when a short cannot be margined for want of a spot)."""
        self._resolve()
        self.exposure.refresh()
        return self.exposure.total().usage

    def snapshot(self) -> dict:
        self._resolve()
        return {"killed": self.killed, "counts": dict(self.counts),
                "last_user_ref_num": self._last_user_ref_num,
                "working": {s: len(self.working.of(s)) for s in sorted(self.working.symbols())}}


__all__ = ["RiskEngine", "working_exposure"]

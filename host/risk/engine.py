"""The pre-trade risk engine: the last word on every OUCH request before it
is journaled and sent.

:meth:`RiskEngine.check` judges one request and returns a
:class:`~host.risk.events.RiskDecision`.  An accepted request is committed to
the engine's state (rate windows, duplicate memory, UserRefNums, working
orders) on the assumption that it is sent; every decision is counted by
reason in :attr:`RiskEngine.counts` and handed to :attr:`RiskEngine.listeners`
as a :class:`~host.risk.events.RiskEvent` (refusals and kill resets also to
:attr:`RiskEngine.refusal_listeners`; with no listener for every decision an
accepted request builds no event).  The engine does no I/O; the
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
it with the gateway).  The recomputing is done by :meth:`RiskEngine.settle`
when the exchange's answers arrive (the guard has the gateway call it after
each read), so a check seldom has any left to do; an accepted Replace Order
Request is added to its symbol's measures in place
(:meth:`host.risk.exposure.Exposure.replace_sent`).

The fast path
-------------
The checks above are the specification, written to be read.  Enter and
Replace Orders are first put to a second implementation of the same checks
(:meth:`RiskEngine._fast_order`) that can only accept: it works on
per-instrument slots (:mod:`host.risk.slots`) holding the instrument's
limits and its price band as exact integer thresholds, on the measures
:mod:`host.risk.exposure` keeps current, and on the throttles' rings.  When
every check passes it accepts with exactly the effects the checks above
would have had; otherwise the request is judged by the checks above, which
then also name the reason.  Both read the same state, and the decisions are
identical (a property test holds them to it); ``fast_path = False`` turns
the fast path off.
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
from host.risk.events import ACCEPTED, KILL_RESET, REASONS, RiskDecision, RiskEvent
from host.risk.exposure import (
    Exposure, SideTotals, WorkingOrders, capital_usage, working_exposure,
)
from host.risk.limits import Action, RiskLimits
from host.risk.slots import (
    NO_BUY, NO_SELL, InstrumentSlot, MarksVersion, highest_price_not_above,
    lowest_price_not_below, notional_cap,
)
from host.risk.throttle import NS_PER_SECOND, RateLimit

_WORKING_STATES = frozenset({OrderState.LIVE, OrderState.PARTIALLY_FILLED})
_SELL_SIDES = frozenset("STE")
_ACCEPT = RiskDecision.accept()
_MAX_LIMIT_PRICE = ouch50.MAX_LIMIT_PRICE
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
        #: told of every decision (and kill reset)
        self.listeners: list[Callable[[RiskEvent], None]] = []
        #: told of refusals and kill resets only: an accepted request costs
        #: no event when nobody listens to every decision
        self.refusal_listeners: list[Callable[[RiskEvent], None]] = []
        # Per symbol and per underlying, what the checks look up on every
        # request (instrument, limits, no-arbitrage bounds at the last BBO),
        # kept for as long as ``limits`` is the same object (it is frozen).
        self._instruments: dict[str, Instrument] = {}
        self._underlying_limits: dict[str, tuple] = {}
        self._bounds: dict[str, tuple] = {}
        self._cached_for = limits
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
        #: judge Enter and Replace Orders on the fast path first
        self.fast_path = True
        #: requests the fast path accepted (the rest were judged by the checks)
        self.fast_accepts = 0
        self._slots: dict[str, InstrumentSlot] = {}        # by symbol, as sent and normalized
        self._marks_versions: dict[str, MarksVersion] = {}
        marks.listeners.append(self._marks_changed)
        # The windows an Enter or Replace must fit (orders, then all messages).
        self._order_windows = tuple(self._order_rate.windows + self._message_rate.windows)

    # -- working orders -----------------------------------------------------------
    def _resolve(self) -> None:
        for symbol in self.working.resolve():
            self.exposure.touch_orders(symbol)

    def working_orders(self, symbol: str) -> list[Order]:
        """Our non-terminal orders in ``symbol``."""
        self._resolve()
        return self.working.of(normalize_symbol(symbol))

    def on_message(self, msg: Message, orders: OrderManager) -> None:
        """Order gateway listener: an exchange message may have changed an
        order (its symbol is measured again by :meth:`settle`, or else by
        the next check).  An order the manager adopted from the exchange
        (one a restart's journal had lost) is followed from then on."""
        ref = getattr(msg, "orig_user_ref_num", None)
        if ref is None:
            ref = getattr(msg, "user_ref_num", None)
        order = orders.orders.get(ref) if ref is not None else None
        if order is not None:
            if type(msg) is ouch50.OrderAccepted:
                self.working.follow(order)
            self.exposure.touch_orders(normalize_symbol(order.symbol))

    def settle(self) -> None:
        """Bring every measure up to date now, while no request waits, so
        that the next check need not: the order gateway calls it once the
        answers of one read from the exchange are all in
        (``after_received``)."""
        self.exposure.refresh()

    # -- the entry point ----------------------------------------------------------
    def check(self, msg: Message, *, risk_action: bool = False) -> RiskDecision:
        """Judge one request; ``risk_action`` marks the guard's own pulls."""
        now = self.clock()
        if self._cached_for is not self.limits:
            self._forget_limits()
        if self.fast_path and not self.killed:
            cls = type(msg)
            if cls is ouch50.ReplaceOrderRequest:
                accepted = self._fast_replace(msg, now)
            elif cls is ouch50.EnterOrder:
                accepted = self._fast_enter(msg, now)
            else:
                accepted = False
            if accepted:
                self.fast_accepts += 1
                if self.listeners:
                    self._emit(_ACCEPT, msg, now)
                else:
                    self._sequence += 1
                    self.counts[ACCEPTED] += 1
                return _ACCEPT
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
            decision = _ACCEPT
        self._emit(decision, msg, now)
        return decision

    def _forget_limits(self) -> None:
        self._instruments.clear()
        self._underlying_limits.clear()
        self._slots.clear()
        self._cached_for = self.limits

    def _marks_changed(self, underlying: str) -> None:
        version = self._marks_versions.get(underlying)
        if version is not None:
            version.value += 1

    def _emit(self, decision: RiskDecision, msg: Message | None, now: int) -> None:
        self._sequence += 1
        if decision.accepted:
            self.counts[decision.reason] += 1
            if not self.listeners:
                return
        else:
            self.counts[f"rejected_{decision.reason}"] += 1
            self.counts[f"action_{decision.action.value}"] += 1
            if not self.listeners and not self.refusal_listeners:
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
        if not decision.accepted:
            for listener in self.refusal_listeners:
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
        for listener in self.listeners + self.refusal_listeners:
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
        instrument = self._instruments.get(symbol)
        if instrument is not None:
            return instrument
        instrument = self.instruments.get(symbol)
        if instrument is None:
            raise _Refused("unknown_symbol", f"{symbol!r} is not a configured instrument")
        restricted = self.limits.restricted_symbols
        if instrument.symbol in restricted or instrument.underlying in restricted:
            raise _Refused("restricted_symbol", f"{instrument.symbol} ({instrument.underlying}) "
                                                f"is restricted")
        # Only instruments that pass are remembered: the restriction is part
        # of the (frozen) limits, and instruments are never removed.
        self._instruments[symbol] = instrument
        return instrument

    def _limits_of(self, underlying: str) -> tuple:
        """(max_option_position, max_underlying_contracts, max_stock_position,
        max_delta, max_gamma, max_vega) for one underlying."""
        limits = self._underlying_limits.get(underlying)
        if limits is None:
            limits = self._underlying_limits[underlying] = tuple(
                self.limits.for_underlying(underlying, name) for name in (
                    "max_option_position", "max_underlying_contracts", "max_stock_position",
                    "max_delta", "max_gamma", "max_vega"))
        return limits

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
        self._commit_enter(msg, token, key, now)

    def _commit_enter(self, msg, token: str, key: tuple, now: int) -> None:
        self._last_user_ref_num = msg.user_ref_num
        if token:
            self._cl_ord_ids[token] = msg.user_ref_num
        self._remember_duplicate_key(key, now)
        self.working.expect(msg.user_ref_num)
        for window in self._order_windows:
            window.add(now)

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
        self._commit_replace(msg, token, order, instrument.symbol, now)

    def _commit_replace(self, msg, token: str, order: Order, symbol: str, now: int) -> None:
        self._last_user_ref_num = msg.user_ref_num
        if token:
            self._cl_ord_ids.setdefault(token, order.user_ref_nums[0])
        # The checks have just measured the symbol: the replace is added to
        # the measures in place (confirmed at the next refresh).
        self.exposure.replace_sent(symbol, order, msg.user_ref_num, msg.quantity, msg.price)
        for window in self._order_windows:
            window.add(now)

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

    # -- the fast path (same checks, only the accepting answer) ---------------------
    def _slot(self, symbol: str) -> InstrumentSlot | None:
        """The slot of a known, unrestricted instrument (``symbol`` as sent)."""
        slot = self._slots.get(symbol)
        if slot is not None:
            return slot
        instrument = self.instruments.get(symbol)
        if instrument is None:
            return None
        restricted = self.limits.restricted_symbols
        if instrument.symbol in restricted or instrument.underlying in restricted:
            return None
        underlying = instrument.underlying
        version = self._marks_versions.get(underlying)
        if version is None:
            version = self._marks_versions[underlying] = MarksVersion()
        (max_option_position, max_underlying_contracts, max_stock_position, max_delta,
         max_gamma, max_vega) = self._limits_of(underlying)
        is_option = instrument.option is not None
        slot = InstrumentSlot(
            instrument, version,
            notional_cap=notional_cap(instrument.multiplier, self.limits.max_order_notional,
                                      self.limits.max_order_quantity),
            position_limit=max_option_position if is_option else max_stock_position,
            underlying_limit=max_underlying_contracts, max_delta=max_delta,
            max_gamma=max_gamma, max_vega=max_vega,
            margin_fraction=(self.exposure.short_option_margin if is_option
                             else self.exposure.short_stock_margin))
        self._slots[symbol] = self._slots[instrument.symbol] = slot
        return slot

    def _price_slot(self, slot: InstrumentSlot) -> None:
        """The slot's price band and marks (step 7) at the current marks: a
        buy passes when ``price <= buy_max``, a sell when ``price >= sell_min``."""
        slot.priced_at = slot.marks_version.value
        slot.buy_max, slot.sell_min, slot.theo = NO_BUY, NO_SELL, None
        limits, marks = self.limits, self.marks
        quote = marks.bbo(slot.underlying)
        if quote is None:
            return
        bid, ask = quote[0] / PRICE_SCALE, quote[1] / PRICE_SCALE
        theo = marks.theo(slot.symbol)
        if theo is None:
            return
        if not slot.is_option:
            band = limits.stock_band_fraction
            buy_max = highest_price_not_above(ask * (1 + band))
            sell_min = lowest_price_not_below(bid * (1 - band))
        else:
            mid = (bid + ask) / 2
            if abs(mid - theo.spot) > limits.max_theo_spot_drift * mid:
                return
            low, high = no_arbitrage_bounds(slot.instrument.option, bid, ask)
            tolerance = limits.bound_tolerance
            fair = theo.price + theo.delta * (mid - theo.spot)
            band = max(limits.theo_band_min, limits.theo_band_fraction * max(fair, 0.0))
            buy_max = min(highest_price_not_above(high + tolerance),
                          highest_price_not_above(fair + band))
            sell_min = max(lowest_price_not_below(low - tolerance),
                           lowest_price_not_below(fair - band))
        slot.buy_max, slot.sell_min, slot.theo = buy_max, sell_min, theo
        slot.spot = marks.spot(slot.underlying)
        slot.theo_delta = theo.delta
        slot.theo_gamma = theo.gamma or 0.0
        slot.theo_vega = theo.vega or 0.0

    def price_band(self, symbol: str) -> tuple[int, int] | None:
        """(highest buy price, lowest sell price) that pass the marks and
        price band checks (step 7) for ``symbol`` now, in OUCH price units;
        None for an unknown or restricted symbol.  Without the marks to judge
        by no price passes: (-1, MAX_LIMIT_PRICE + 1)."""
        if self._cached_for is not self.limits:
            self._forget_limits()
        slot = self._slot(symbol)
        if slot is None:
            return None
        if slot.priced_at != slot.marks_version.value:
            self._price_slot(slot)
        return slot.buy_max, slot.sell_min

    def _fast_placement(self, symbol, side, quantity: int, price: int):
        """``(slot, sign)`` for an order the fast path may judge: a priced
        instrument, a known side, size and price inside the hard bounds;
        None sends the order to the full checks."""
        slot = self._slots.get(symbol) or self._slot(symbol)
        if slot is None:
            return None
        sign = 1 if side == "B" else -1 if side in _SELL_SIDES else 0
        if sign == 0 or not 0 < quantity <= self.limits.max_order_quantity \
                or not 0 < price <= _MAX_LIMIT_PRICE:
            return None
        return slot, sign

    def _fast_enter(self, msg, now: int) -> bool:
        """Accept ``msg`` (committing it) if every check passes; False: not
        known to pass, judge it by the checks."""
        if msg.user_ref_num <= self._last_user_ref_num:
            return False
        placed = self._fast_placement(msg.symbol, msg.side, msg.quantity, msg.price)
        if placed is None:
            return False
        slot, sign = placed
        quantity, price = msg.quantity, msg.price
        token = msg.cl_ord_id.strip()
        if token and token in self._cl_ord_ids:
            return False
        key = (slot.symbol, sign, price, quantity)
        if not self._duplicate_key_fresh(key, now):
            return False
        if not self._fast_order(slot, sign, quantity, price, None, now):
            return False
        self._commit_enter(msg, token, key, now)
        return True

    def _fast_replace(self, msg, now: int) -> bool:
        if msg.user_ref_num <= self._last_user_ref_num:
            return False
        original = msg.orig_user_ref_num
        order = self.orders.orders.get(original)
        if order is None or order.user_ref_num != original \
                or order.state not in _WORKING_STATES:
            return False
        placed = self._fast_placement(order.symbol, order.side, msg.quantity, msg.price)
        if placed is None:
            return False
        slot, sign = placed
        quantity, price = msg.quantity, msg.price
        token = msg.cl_ord_id.strip()
        if token:
            owner = self._cl_ord_ids.get(token)
            if owner is not None and owner != order.user_ref_nums[0]:
                return False
        if not self._fast_order(slot, sign, quantity, price, order, now):
            return False
        self._commit_replace(msg, token, order, slot.symbol, now)
        return True

    def _fast_order(self, slot: InstrumentSlot, sign: int, quantity: int, price: int,
                    replacing: Order | None, now: int) -> bool:
        """Steps 6 to 12 of the checks for a valid order: True when all pass.
        Every float expression is the checks' own, in the same order, so the
        two cannot round differently."""
        if price * quantity > slot.notional_cap:
            return False
        if slot.priced_at != slot.marks_version.value:
            self._price_slot(slot)
        if sign > 0:
            if price > slot.buy_max:
                return False
        elif price < slot.sell_min:
            return False
        exposure = self.exposure
        entry = exposure.current(slot.symbol)
        # Self-trade: the far price of our working orders on the other side.
        if sign > 0:
            if entry.sell_low <= price:
                return False
        elif entry.buy_high >= price:
            return False
        # Positions: the worst cases before and after.
        held = entry.held
        totals = entry.totals
        buy_quantity, sell_quantity, buy_cost = \
            totals.buy_quantity, totals.sell_quantity, totals.buy_cost
        current_long, current_short = held + buy_quantity, held - sell_quantity
        if replacing is not None:
            # The replaced order's own working quantity comes out (it is
            # working, on the request's side; working_exposure, inline).
            if replacing.pending_replace is None:
                open_quantity = replacing.quantity - replacing.filled - replacing.canceled
                if open_quantity > 0:
                    if sign > 0:
                        buy_quantity -= open_quantity
                        buy_cost -= open_quantity * replacing.price
                    else:
                        sell_quantity -= open_quantity
            else:
                working = working_exposure(replacing)
                if working is not None:
                    if sign > 0:
                        buy_quantity -= working[1]
                        buy_cost -= working[2]
                    else:
                        sell_quantity -= working[1]
        if sign > 0:
            buy_quantity += quantity
            buy_cost += quantity * price
            new_long, new_short = held + buy_quantity, held - sell_quantity
            if new_long > slot.position_limit and new_long > current_long:
                return False
        else:
            sell_quantity += quantity
            new_long, new_short = held + buy_quantity, held - sell_quantity
            if -new_short > slot.position_limit and new_short < current_short:
                return False
        mine = exposure._sums.get(slot.underlying)
        if mine is None:
            mine = exposure.underlying_sums(slot.underlying)
        if slot.is_option:
            current = mine.gross
            gross = current - entry.gross + max(abs(new_long), abs(new_short))
            if gross > slot.underlying_limit and gross > current:
                return False
        # Greeks of the order as if it filled (greeks_of, term by term).
        total = exposure._total
        if mine.greeks_missing or total.greeks_missing:
            return False
        spot = slot.spot
        if spot is None:
            return False
        units = sign * quantity * slot.multiplier
        if slot.is_option:
            delta = units * slot.theo_delta
            gamma = units * slot.theo_gamma
            vega = units * slot.theo_vega
            delta_dollars = delta * spot
            gamma_dollars = gamma * spot * spot / 100.0
        else:
            delta = float(units)
            gamma = vega = gamma_dollars = 0.0
            delta_dollars = units * spot
        sums = mine.greeks
        before = sums[0]
        after = before + delta
        if abs(after) > slot.max_delta and abs(after) > abs(before):
            return False
        before = sums[1]
        after = before + gamma
        if abs(after) > slot.max_gamma and abs(after) > abs(before):
            return False
        before = sums[2]
        after = before + vega
        if abs(after) > slot.max_vega and abs(after) > abs(before):
            return False
        limits = self.limits
        sums = total.greeks
        before = sums[4]
        after = before + delta_dollars
        if abs(after) > limits.max_total_delta_dollars and abs(after) > abs(before):
            return False
        before = sums[5]
        after = before + gamma_dollars
        if abs(after) > limits.max_total_gamma_dollars and abs(after) > abs(before):
            return False
        before = sums[2]
        after = before + vega
        if abs(after) > limits.max_total_vega and abs(after) > abs(before):
            return False
        # Capital.
        if total.usage_missing or entry.usage is None:
            return False
        usage = capital_usage(held, entry.long_cost, buy_quantity, sell_quantity, buy_cost,
                              slot.multiplier,
                              spot if new_long < 0 or new_short < 0 else None,
                              slot.margin_fraction)
        if usage is None:
            return False
        after = total.usage - entry.usage + usage
        if after > limits.capital and after > total.usage:
            return False
        for window in self._order_windows:
            if not window.allows(now):
                return False
        return True

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
        mine = self.exposure.underlying_sums(instrument.underlying)
        total = self.exposure.total_sums()
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
        bounds = self._bounds.get(instrument.symbol)
        if bounds is None or bounds[0] != quote:
            bounds = self._bounds[instrument.symbol] = (
                quote, *no_arbitrage_bounds(instrument.option, bid, ask))
        _, low, high = bounds
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
                   mine) -> None:
        symbol, underlying = instrument.symbol, instrument.underlying
        cur_long, cur_short = entry.totals.worst(entry.held)
        new_long, new_short = projected.worst(entry.held)
        limits = self._limits_of(underlying)
        if instrument.option is None:
            limit = limits[2]
            reason = "position_stock"
        else:
            limit = limits[0]
            reason = "position_option"
        if sign > 0 and new_long > limit and new_long > cur_long:
            raise _Refused(reason, f"{symbol}: worst long {new_long} > {limit}")
        if sign < 0 and -new_short > limit and new_short < cur_short:
            raise _Refused(reason, f"{symbol}: worst short {-new_short} > {limit}")
        if instrument.option is None:
            return
        current = mine.gross
        projected_gross = current - entry.gross + max(abs(new_long), abs(new_short))
        limit = limits[1]
        if projected_gross > limit and projected_gross > current:
            raise _Refused("position_underlying",
                           f"{underlying}: worst gross {projected_gross} contracts > {limit}")

    def _greeks(self, instrument: Instrument, signed_quantity: int, theo, mine, total) -> None:
        """``mine`` and ``total``: the exposure's running sums (Greeks in
        the order delta, gamma, vega, theta, dollar delta, dollar gamma)."""
        underlying = instrument.underlying
        if mine.greeks_missing or total.greeks_missing:
            raise _Refused("no_mark", mine.missing or total.missing)
        spot = self.marks.spot(underlying)
        if theo is None or spot is None:
            raise _Refused("no_mark", f"no theo or spot for {instrument.symbol}")
        order = greeks_of(instrument, signed_quantity, theo, spot)
        _, _, _, max_delta, max_gamma, max_vega = self._limits_of(underlying)
        mine, total, limits = mine.greeks, total.greeks, self.limits
        for name, before, change, limit, reason in (
                ("delta", mine[0], order.delta, max_delta, "delta_underlying"),
                ("gamma", mine[1], order.gamma, max_gamma, "gamma_underlying"),
                ("vega", mine[2], order.vega, max_vega, "vega_underlying")):
            after = before + change
            if abs(after) > limit and abs(after) > abs(before):
                raise _Refused(reason, f"{underlying} {name} {after:,.1f} beyond {limit:,.1f}")
        for name, before, change, limit, reason in (
                ("delta_dollars", total[4], order.delta_dollars,
                 limits.max_total_delta_dollars, "delta_total"),
                ("gamma_dollars", total[5], order.gamma_dollars,
                 limits.max_total_gamma_dollars, "gamma_total"),
                ("vega", total[2], order.vega, limits.max_total_vega, "vega_total")):
            after = before + change
            if abs(after) > limit and abs(after) > abs(before):
                raise _Refused(reason, f"total {name} {after:,.1f} beyond {limit:,.1f}")

    def _capital(self, instrument: Instrument, entry, projected: SideTotals, total) -> None:
        if total.usage_missing or entry.usage is None:
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

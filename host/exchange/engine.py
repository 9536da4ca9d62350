"""The exchange's OUCH 5.0 order handling, independent of any connection.

``OuchExchange.handle(user, message)`` takes one inbound OUCH message from a
user's port and returns the outbound messages it causes, each addressed to
the user that must receive it (an execution reaches both sides of the trade).
The SoupBinTCP server sequences, journals and delivers them.  Operator and
market events (:meth:`~OuchExchange.set_market`, :meth:`~OuchExchange.market_changed`,
:meth:`~OuchExchange.halt`, :meth:`~OuchExchange.resume`,
:meth:`~OuchExchange.break_trade`, :meth:`~OuchExchange.disconnected`) return
their outbound messages the same way.

Rules the simulator applies (after the OUCH 5.0 specification)
----------------------------------------------------------------
* UserRefNum is a per-port transaction id that must strictly increase.  A
  request that opens a new UserRefNum (Enter, Replace, Mass Cancel, Disable
  and Enable Order Entry) with a number not above the last one processed is
  ignored as a retransmission and counted under ``stale_user_ref_num``.
  Cancel, Modify and Account Query name no new UserRefNum.
* Enter Order is validated, first failure wins: side (Rejected 0x09 Invalid
  side), quantity 1 to ``max_quantity`` (0x13 Invalid quantity), price 1 to
  :data:`~host.protocols.ouch50.MAX_LIMIT_PRICE` (0x1D Invalid price), symbol
  (0x17 Invalid symbol, when the symbol list is set), display (0x03 Invalid
  display), time in force (0x0F Other), the Price Type option: limit ``L`` or
  midpoint peg ``M`` (0x05 Invalid peg type), the AIQ Strategy option ``N``,
  ``Y``, ``D``, ``O`` or ``W`` (0x40 Invalid AIQ), the firm: the Firm option
  or the port's default firm must be one the port may use and its order
  entry must be enabled (0x0C Firm not authorized), the symbol must not be
  halted (0x07 Halted), a midpoint peg needs a two-sided external market
  (0x01 Quote unavailable), and the port's order rate (below).
* Throttle: at most ``throttle`` orders (Enter and Replace that are accepted)
  per port in any one second; the next is rejected with 0x29 "Risk: port
  message rate restriction".  Cancels are never throttled: a market maker
  must always be able to pull quotes.
* Replace of an order that is not live is rejected with 0x15 Replace not
  allowed under the new UserRefNum, as is a replace of an order whose cancel
  is pending; the replacement gets a new order reference number and loses
  time priority.  Its quantity is the new open quantity.
* Cancel's quantity is the order's intended remaining open quantity (0 for
  all); Order Canceled carries the decrement.  Cancels and modifies of
  orders that are not live are ignored (counted under ``not_live``).
* Modify may only shrink the open quantity and move between the sell
  flavours (S, T, E); anything else is ignored (``bad_modify``).
* Immediate-or-cancel orders are canceled (reason ``I``) for what does not
  trade.
* Halted symbols (:meth:`OuchExchange.halt`, or an ITCH trading state other
  than ``T`` in an :class:`~host.exchange.market.ItchMarket`): nothing
  trades; new orders and replaces are rejected 0x07; a full cancel (and mass
  cancel or cancel-on-disconnect) answers Cancel Pending and the order is
  canceled (reason ``U``) when trading resumes; a partial cancel or a modify
  answers Cancel Reject.
* Disable Order Entry stops new orders and replaces for one firm of the port
  (blank: the port's default firm); resting orders stay.  Enable Order Entry
  lifts it.  Both answer with their Response, echoing UserRefNum and firm.
* Self-match prevention (AIQ), when the incoming order carries an AIQ
  Strategy other than ``N`` and would trade with a resting order of the same
  firm: ``O`` cancels the resting order, ``W`` the incoming one (Order
  Canceled, reason ``Q``); ``Y`` decrements both by the overlap (Order
  Canceled, reason ``Q``), ``D`` does the same and reports it with AIQ
  Canceled messages (quantity prevented from trading, the price it would
  have traded at, liquidity flag).
* Broken trades (:meth:`OuchExchange.break_trade`): Broken Trade to each of
  our parties of the match; the order is not restored.

Matching and the external market
---------------------------------
Each symbol has a price-time book of our users' orders.  When the exchange
is given an external market (:mod:`host.exchange.market`), that market's
displayed levels are liquidity too:

* An incoming order (Enter, Replace, a re-priced peg) trades at the best
  price available, resting orders of the book first when the price is
  equal, else the external level: against the book at the resting order's
  price (liquidity flags ``R`` for the incoming order, ``A`` for the resting
  one), against the external market at the level's price up to the size
  displayed there (flag ``R``; only our user receives an execution).
* When the external market moves through a resting order (an ask at or
  below a resting bid, a bid at or above a resting ask), that order is
  executed at its own limit price (flag ``A``), as the contra flow that moved
  the market would have hit it, up to the displayed size at prices through
  it.  Best-priced, oldest orders go first.
* A midpoint peg rests at the external midpoint, rounded away from the
  contra side, never beyond its limit price; it is not displayed.  When the
  market moves the peg price, the order gets a new price and order reference
  number (Order Priority Update), loses time priority and may trade.
"""
from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable

from host.exchange.market import BboMarket, ExternalMarket
from host.exchange.matching import RestingOrder, SymbolBook
from host.protocols import ouch50
from host.protocols.layout import Message

QUOTE_UNAVAILABLE = 0x01
INVALID_DISPLAY = 0x03
INVALID_PEG_TYPE = 0x05
HALTED = 0x07
INVALID_SIDE = 0x09
FIRM_NOT_AUTHORIZED = 0x0C
OTHER = 0x0F
INVALID_QUANTITY = 0x13
REPLACE_NOT_ALLOWED = 0x15
INVALID_SYMBOL = 0x17
INVALID_PRICE = 0x1D
PORT_RATE_RESTRICTION = 0x29
INVALID_AIQ = 0x40

IMMEDIATE_OR_CANCEL = "3"
SELL_SIDES = frozenset("STE")
PRICE_TYPES = frozenset("LM")
AIQ_STRATEGIES = frozenset("NYDOW")
DEFAULT_MAX_QUANTITY = 1_000_000
#: Reason of the cancels sent when a port with cancel-on-disconnect drops.
DISCONNECT_CANCEL_REASON = "Z"
SELF_MATCH_REASON = "Q"
THROTTLE_WINDOW_SECONDS = 1.0

Outbound = list[tuple[str, Message]]


def ns_since_midnight() -> int:
    now = time.time_ns()
    return now % (86_400 * 10**9)


@dataclass
class PortSettings:
    """What the operator configures for one user's port."""

    firm: str = ""                          # default firm ("" = the user name)
    firms: frozenset[str] | None = None     # firms the port may use (None = any)
    throttle: int | None = None             # orders per second (None = exchange default)


class _Port:
    """What the exchange remembers about one user's port."""

    def __init__(self, user: str, settings: PortSettings):
        self.user = user
        self.settings = settings
        self.last_user_ref_num = 0
        self.live: dict[int, RestingOrder] = {}
        self.disabled_firms: set[str] = set()
        self.recent_orders: deque[float] = deque()

    @property
    def firm(self) -> str:
        return self.settings.firm or self.user


class OuchExchange:
    def __init__(self, symbols=None, *, max_quantity: int = DEFAULT_MAX_QUANTITY,
                 clock: Callable[[], int] = ns_since_midnight,
                 monotonic: Callable[[], float] = time.monotonic,
                 throttle: int | None = None, market: ExternalMarket | None = None,
                 first_order_reference: int = 1, first_match_number: int = 1):
        if throttle is not None and throttle < 1:
            raise ValueError(f"throttle must be at least 1 order per second, got {throttle}")
        self.symbols = None if symbols is None else frozenset(symbols)
        self.max_quantity = max_quantity
        self.clock = clock
        self.monotonic = monotonic
        self.throttle = throttle
        self.market = market
        self.books: dict[str, SymbolBook] = {}
        self.ports: dict[str, _Port] = {}
        self.settings: dict[str, PortSettings] = {}
        self.halted_symbols: set[str] = set()
        self.counts: Counter = Counter()
        # match number -> [(owner, UserRefNum, ClOrdID)] of our parties
        self.trades: dict[int, list[tuple[str, int, str]]] = {}
        self._next_order_reference = first_order_reference
        self._next_match = first_match_number

    # -- configuration ------------------------------------------------------------
    def configure_port(self, user: str, settings: PortSettings) -> None:
        if settings.throttle is not None and settings.throttle < 1:
            raise ValueError(f"{user}: throttle must be at least 1 order per second")
        self.settings[user] = settings
        if user in self.ports:
            self.ports[user].settings = settings

    def port(self, user: str) -> _Port:
        port = self.ports.get(user)
        if port is None:
            port = self.ports[user] = _Port(user, self.settings.get(user, PortSettings()))
        return port

    def book(self, symbol: str) -> SymbolBook:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = SymbolBook(symbol)
        return book

    def halted(self, symbol: str) -> bool:
        return symbol in self.halted_symbols or (
            self.market is not None and self.market.halted(symbol))

    # -- helpers ------------------------------------------------------------------
    def _order_reference(self) -> int:
        ref = self._next_order_reference
        self._next_order_reference += 1
        return ref

    def _match_number(self) -> int:
        match = self._next_match
        self._next_match += 1
        return match

    def _claim(self, port: _Port, user_ref_num: int) -> bool:
        if user_ref_num <= port.last_user_ref_num:
            self.counts["stale_user_ref_num"] += 1
            return False
        port.last_user_ref_num = user_ref_num
        return True

    def _reject(self, user: str, user_ref_num: int, reason: int, cl_ord_id: str = "") -> Outbound:
        self.counts[f"rejected_{reason:#04x}"] += 1
        return [(user, ouch50.OrderRejected(timestamp=self.clock(), user_ref_num=user_ref_num,
                                            reason=reason, cl_ord_id=cl_ord_id,
                                            appendage=ouch50.Appendage()))]

    def _validate(self, side, quantity, price, display, tif, symbol=None) -> int | None:
        if side not in ouch50.SIDES:
            return INVALID_SIDE
        if not 1 <= quantity <= self.max_quantity:
            return INVALID_QUANTITY
        if not 1 <= price <= ouch50.MAX_LIMIT_PRICE:
            return INVALID_PRICE
        if symbol is not None and (not symbol or (self.symbols is not None
                                                  and symbol not in self.symbols)):
            return INVALID_SYMBOL
        if display not in ouch50.DISPLAY:
            return INVALID_DISPLAY
        if tif not in ouch50.TIME_IN_FORCE:
            return OTHER
        return None

    @staticmethod
    def _check_options(appendage: ouch50.Appendage) -> int | None:
        if appendage.get("price_type", "L") not in PRICE_TYPES:
            return INVALID_PEG_TYPE
        if appendage.get("aiq_strategy", "N") not in AIQ_STRATEGIES:
            return INVALID_AIQ
        return None

    def _firm_refused(self, port: _Port, firm: str) -> bool:
        allowed = port.settings.firms
        if allowed is not None and firm not in allowed and firm != port.firm:
            return True
        return firm in port.disabled_firms

    def _throttled(self, port: _Port) -> bool:
        """True when the port used up its order rate; otherwise the order
        counts towards it."""
        limit = port.settings.throttle or self.throttle
        if limit is None:
            return False
        now = self.monotonic()
        recent = port.recent_orders
        while recent and recent[0] <= now - THROTTLE_WINDOW_SECONDS:
            recent.popleft()
        if len(recent) >= limit:
            self.counts["throttled"] += 1
            return True
        recent.append(now)
        return False

    def _peg_price(self, symbol: str, is_buy: bool, limit: int) -> int | None:
        quote = self.market.quote(symbol) if self.market is not None else None
        mid = quote.midpoint() if quote is not None else None
        if mid is None:
            return None
        price, inexact = mid
        if is_buy:
            return min(limit, price)
        return max(limit, price + inexact)

    def _canceled(self, order: RestingOrder, decrement: int, reason: str) -> tuple[str, Message]:
        self.counts[f"canceled_{reason}"] += 1
        return (order.owner, ouch50.OrderCanceled(timestamp=self.clock(),
                                                  user_ref_num=order.user_ref_num,
                                                  quantity=decrement, reason=reason,
                                                  appendage=ouch50.Appendage()))

    def _kill(self, order: RestingOrder, reason: str) -> tuple[str, Message]:
        """Cancel everything left of a live order."""
        self.book(order.symbol).remove(order)
        self.ports[order.owner].live.pop(order.user_ref_num, None)
        decrement, order.open_quantity = order.open_quantity, 0
        order.cancel_pending = False
        return self._canceled(order, decrement, reason)

    def _executed(self, order: RestingOrder, quantity: int, price: int, flag: str,
                  match: int) -> tuple[str, Message]:
        self.trades.setdefault(match, []).append(
            (order.owner, order.user_ref_num, order.cl_ord_id))
        return (order.owner, ouch50.OrderExecuted(
            timestamp=self.clock(), user_ref_num=order.user_ref_num, quantity=quantity,
            price=price, liquidity_flag=flag, match_number=match, appendage=ouch50.Appendage()))

    def _retire_if_done(self, order: RestingOrder) -> None:
        if order.open_quantity == 0:
            self.book(order.symbol).remove(order)
            self.ports[order.owner].live.pop(order.user_ref_num, None)

    # -- matching -----------------------------------------------------------------
    @staticmethod
    def _crosses(taker: RestingOrder, price: int) -> bool:
        return price <= taker.price if taker.is_buy else price >= taker.price

    def _match(self, taker: RestingOrder) -> Outbound:
        """Trade ``taker`` against the book and the external market, best
        price first, the book first at equal prices."""
        out: Outbound = []
        book = self.book(taker.symbol)
        contra_is_bid = not taker.is_buy
        while taker.open_quantity > 0:
            maker = book.front(contra_is_bid)
            external = (self.market.best_available(taker.symbol, contra_is_bid)
                        if self.market is not None else None)
            if maker is not None and (external is None or not (
                    external[0] > maker.price if contra_is_bid else external[0] < maker.price)):
                if not self._crosses(taker, maker.price):
                    break
                if self._is_self_match(taker, maker):
                    out += self._prevent_self_match(taker, maker)
                    continue
                quantity = min(taker.open_quantity, maker.open_quantity)
                taker.open_quantity -= quantity
                maker.open_quantity -= quantity
                match = self._match_number()
                out.append(self._executed(taker, quantity, maker.price, "R", match))
                out.append(self._executed(maker, quantity, maker.price, "A", match))
                self._retire_if_done(maker)
                self.counts["executions"] += 1
            elif external is not None:
                price, size = external
                if not self._crosses(taker, price):
                    break
                quantity = min(taker.open_quantity, size)
                self.market.take(taker.symbol, contra_is_bid, price, quantity)
                taker.open_quantity -= quantity
                out.append(self._executed(taker, quantity, price, "R", self._match_number()))
                self.counts["market_executions"] += 1
            else:
                break
        return out

    @staticmethod
    def _is_self_match(taker: RestingOrder, maker: RestingOrder) -> bool:
        return taker.aiq_strategy != "N" and taker.firm == maker.firm

    def _prevent_self_match(self, taker: RestingOrder, maker: RestingOrder) -> Outbound:
        strategy = taker.aiq_strategy
        self.counts[f"self_match_{strategy}"] += 1
        if strategy == "O":
            return [self._kill(maker, SELF_MATCH_REASON)]
        if strategy == "W":
            self.ports[taker.owner].live.pop(taker.user_ref_num, None)
            decrement, taker.open_quantity = taker.open_quantity, 0
            return [self._canceled(taker, decrement, SELF_MATCH_REASON)]
        overlap = min(taker.open_quantity, maker.open_quantity)
        taker.open_quantity -= overlap
        maker.open_quantity -= overlap
        if strategy == "Y":
            out = [self._canceled(maker, overlap, SELF_MATCH_REASON),
                   self._canceled(taker, overlap, SELF_MATCH_REASON)]
        else:
            out = [self._aiq_canceled(order, overlap, maker.price, flag, strategy)
                   for order, flag in ((maker, "A"), (taker, "R"))]
        self._retire_if_done(maker)
        if taker.open_quantity == 0:
            self.ports[taker.owner].live.pop(taker.user_ref_num, None)
        return out

    def _aiq_canceled(self, order: RestingOrder, quantity: int, price: int, flag: str,
                      strategy: str) -> tuple[str, Message]:
        self.counts["aiq_canceled"] += 1
        return (order.owner, ouch50.AiqCanceled(
            timestamp=self.clock(), user_ref_num=order.user_ref_num, decrement_shares=quantity,
            reason=SELF_MATCH_REASON, quantity_prevented_from_trading=quantity,
            execution_price=price, liquidity_flag=flag, aiq_strategy=strategy,
            appendage=ouch50.Appendage()))

    def _place(self, order: RestingOrder) -> Outbound:
        """Match a newly accepted order, then rest it or cancel what is left."""
        out = self._match(order)
        port = self.ports[order.owner]
        if order.open_quantity == 0:
            port.live.pop(order.user_ref_num, None)
        elif order.time_in_force == IMMEDIATE_OR_CANCEL:
            port.live.pop(order.user_ref_num, None)
            out.append(self._canceled(order, order.open_quantity, "I"))
            order.open_quantity = 0
        else:
            self.book(order.symbol).rest(order)
        return out

    # -- requests -----------------------------------------------------------------
    def handle(self, user: str, msg: Message) -> Outbound:
        handler = self._HANDLERS.get(type(msg))
        if handler is None:
            self.counts["unsupported_request"] += 1
            return []
        return handler(self, user, msg)

    def _enter(self, user: str, msg) -> Outbound:
        port = self.port(user)
        if not self._claim(port, msg.user_ref_num):
            return []
        appendage = msg.appendage or ouch50.Appendage()
        firm = appendage.get("firm") or port.firm
        peg = appendage.get("price_type", "L") == "M"
        reason = (self._validate(msg.side, msg.quantity, msg.price, msg.display,
                                 msg.time_in_force, msg.symbol)
                  or self._check_options(appendage))
        if reason is None and self._firm_refused(port, firm):
            reason = FIRM_NOT_AUTHORIZED
        if reason is None and self.halted(msg.symbol):
            reason = HALTED
        price = msg.price
        if reason is None and peg:
            price = self._peg_price(msg.symbol, msg.side == "B", msg.price)
            if price is None:
                reason = QUOTE_UNAVAILABLE
        if reason is None and self._throttled(port):
            reason = PORT_RATE_RESTRICTION
        if reason is not None:
            return self._reject(user, msg.user_ref_num, reason, msg.cl_ord_id)
        order = RestingOrder(
            owner=user, user_ref_num=msg.user_ref_num, side=msg.side, symbol=msg.symbol,
            price=price, open_quantity=msg.quantity,
            order_reference_number=self._order_reference(), firm=firm,
            time_in_force=msg.time_in_force, display="N" if peg else msg.display,
            capacity=msg.capacity, cl_ord_id=msg.cl_ord_id, price_type="M" if peg else "L",
            limit_price=msg.price, aiq_strategy=appendage.get("aiq_strategy", "N"))
        port.live[order.user_ref_num] = order
        self.counts["accepted"] += 1
        accepted = ouch50.OrderAccepted(
            timestamp=self.clock(), user_ref_num=order.user_ref_num, side=order.side,
            quantity=order.open_quantity, symbol=order.symbol, price=order.price,
            time_in_force=order.time_in_force, display=order.display,
            order_reference_number=order.order_reference_number, capacity=order.capacity,
            intermarket_sweep_eligibility=msg.intermarket_sweep_eligibility,
            cross_type=msg.cross_type, order_state="L", cl_ord_id=order.cl_ord_id,
            appendage=ouch50.Appendage(appendage))
        return [(user, accepted)] + self._place(order)

    def _replace(self, user: str, msg) -> Outbound:
        port = self.port(user)
        if not self._claim(port, msg.user_ref_num):
            return []
        old = port.live.get(msg.orig_user_ref_num)
        if old is None or old.cancel_pending:
            return self._reject(user, msg.user_ref_num, REPLACE_NOT_ALLOWED, msg.cl_ord_id)
        reason = self._validate(old.side, msg.quantity, msg.price, msg.display,
                                msg.time_in_force)
        if reason is None and self._firm_refused(port, old.firm):
            reason = FIRM_NOT_AUTHORIZED
        if reason is None and self.halted(old.symbol):
            reason = HALTED
        price = msg.price
        if reason is None and old.price_type == "M":
            price = self._peg_price(old.symbol, old.is_buy, msg.price)
            if price is None:
                reason = QUOTE_UNAVAILABLE
        if reason is None and self._throttled(port):
            reason = PORT_RATE_RESTRICTION
        if reason is not None:
            return self._reject(user, msg.user_ref_num, reason, msg.cl_ord_id)
        self.book(old.symbol).remove(old)
        del port.live[old.user_ref_num]
        new = RestingOrder(
            owner=user, user_ref_num=msg.user_ref_num, side=old.side, symbol=old.symbol,
            price=price, open_quantity=msg.quantity,
            order_reference_number=self._order_reference(), firm=old.firm,
            time_in_force=msg.time_in_force,
            display="N" if old.price_type == "M" else msg.display, capacity=old.capacity,
            cl_ord_id=msg.cl_ord_id, price_type=old.price_type, limit_price=msg.price,
            aiq_strategy=old.aiq_strategy)
        port.live[new.user_ref_num] = new
        self.counts["replaced"] += 1
        replaced = ouch50.OrderReplaced(
            timestamp=self.clock(), orig_user_ref_num=old.user_ref_num,
            user_ref_num=new.user_ref_num, side=new.side, quantity=new.open_quantity,
            symbol=new.symbol, price=new.price, time_in_force=new.time_in_force,
            display=new.display, order_reference_number=new.order_reference_number,
            capacity=new.capacity,
            intermarket_sweep_eligibility=msg.intermarket_sweep_eligibility,
            cross_type="N", order_state="L", cl_ord_id=new.cl_ord_id,
            appendage=ouch50.Appendage(msg.appendage or {}))
        return [(user, replaced)] + self._place(new)

    def _pending_cancel(self, order: RestingOrder) -> Outbound:
        """A full cancel of an order that cannot be canceled now."""
        if order.cancel_pending:
            self.counts["cancel_already_pending"] += 1
            return []
        order.cancel_pending = True
        self.counts["cancel_pending"] += 1
        return [(order.owner, ouch50.CancelPending(timestamp=self.clock(),
                                                   user_ref_num=order.user_ref_num,
                                                   appendage=ouch50.Appendage()))]

    def _cancel_rejected(self, order: RestingOrder) -> Outbound:
        self.counts["cancel_rejected"] += 1
        return [(order.owner, ouch50.CancelReject(timestamp=self.clock(),
                                                  user_ref_num=order.user_ref_num,
                                                  appendage=ouch50.Appendage()))]

    def _cancel(self, user: str, msg) -> Outbound:
        order = self.port(user).live.get(msg.user_ref_num)
        if order is None:
            self.counts["not_live"] += 1
            return []
        if msg.quantity >= order.open_quantity:
            self.counts["cancel_nothing"] += 1
            return []
        if self.halted(order.symbol):
            if msg.quantity == 0:
                return self._pending_cancel(order)
            return self._cancel_rejected(order)
        decrement = order.open_quantity - msg.quantity
        order.open_quantity = msg.quantity
        self._retire_if_done(order)
        self.counts["canceled"] += 1
        return [self._canceled(order, decrement, "U")]

    def _modify(self, user: str, msg) -> Outbound:
        order = self.port(user).live.get(msg.user_ref_num)
        if order is None:
            self.counts["not_live"] += 1
            return []
        side_ok = msg.side == order.side or (msg.side in SELL_SIDES and order.side in SELL_SIDES)
        if not side_ok or not 1 <= msg.quantity <= order.open_quantity:
            self.counts["bad_modify"] += 1
            return []
        if self.halted(order.symbol):
            return self._cancel_rejected(order)
        order.side = msg.side
        order.open_quantity = msg.quantity
        self.counts["modified"] += 1
        return [(user, ouch50.OrderModified(timestamp=self.clock(), user_ref_num=order.user_ref_num,
                                            side=order.side, quantity=order.open_quantity,
                                            appendage=ouch50.Appendage()))]

    def _mass_cancel(self, user: str, msg) -> Outbound:
        port = self.port(user)
        if not self._claim(port, msg.user_ref_num):
            return []
        out: Outbound = []
        for order in list(port.live.values()):
            if msg.symbol and order.symbol != msg.symbol:
                continue
            if msg.firm and order.firm != msg.firm:
                continue
            if self.halted(order.symbol):
                out += self._pending_cancel(order)
            else:
                out.append(self._kill(order, "U"))
        self.counts["mass_cancels"] += 1
        out.append((user, ouch50.MassCancelResponse(
            timestamp=self.clock(), user_ref_num=msg.user_ref_num, firm=msg.firm,
            symbol=msg.symbol, appendage=ouch50.Appendage())))
        return out

    def _entry_switch(self, user: str, msg, disable: bool) -> Outbound:
        port = self.port(user)
        if not self._claim(port, msg.user_ref_num):
            return []
        firm = msg.firm or port.firm
        allowed = port.settings.firms
        if allowed is not None and firm not in allowed and firm != port.firm:
            return self._reject(user, msg.user_ref_num, FIRM_NOT_AUTHORIZED)
        if disable:
            port.disabled_firms.add(firm)
            response = ouch50.DisableOrderEntryResponse
        else:
            port.disabled_firms.discard(firm)
            response = ouch50.EnableOrderEntryResponse
        self.counts["order_entry_" + ("disabled" if disable else "enabled")] += 1
        return [(user, response(timestamp=self.clock(), user_ref_num=msg.user_ref_num,
                                firm=msg.firm, appendage=ouch50.Appendage()))]

    def _disable(self, user: str, msg) -> Outbound:
        return self._entry_switch(user, msg, True)

    def _enable(self, user: str, msg) -> Outbound:
        return self._entry_switch(user, msg, False)

    def _account_query(self, user: str, msg) -> Outbound:
        port = self.port(user)
        return [(user, ouch50.AccountQueryResponse(
            timestamp=self.clock(), next_user_ref_num=port.last_user_ref_num + 1,
            appendage=ouch50.Appendage()))]

    _HANDLERS = {
        ouch50.EnterOrder: _enter,
        ouch50.ReplaceOrderRequest: _replace,
        ouch50.CancelOrderRequest: _cancel,
        ouch50.ModifyOrderRequest: _modify,
        ouch50.MassCancelRequest: _mass_cancel,
        ouch50.DisableOrderEntryRequest: _disable,
        ouch50.EnableOrderEntryRequest: _enable,
        ouch50.AccountQueryRequest: _account_query,
    }

    # -- events that do not come from a port -----------------------------------------
    def system_event(self, event_code: str) -> Message:
        if event_code not in ouch50.EVENT_CODES:
            raise ValueError(f"unknown system event code {event_code!r}")
        return ouch50.SystemEvent(timestamp=self.clock(), event_code=event_code)

    def disconnected(self, user: str) -> Outbound:
        """Cancel-on-disconnect: every open order of the port goes."""
        out: Outbound = []
        for order in list(self.port(user).live.values()):
            if self.halted(order.symbol):
                out += self._pending_cancel(order)
            else:
                out.append(self._kill(order, DISCONNECT_CANCEL_REASON))
        return out

    def set_market(self, symbol: str, bid: int, bid_size: int, ask: int,
                   ask_size: int) -> Outbound:
        """Set a symbol's external best bid and offer (a :class:`BboMarket`
        is created if the exchange has no market yet) and apply its effects."""
        if self.market is None:
            self.market = BboMarket()
        if not isinstance(self.market, BboMarket):
            raise TypeError(f"the external market is a {type(self.market).__name__}, "
                            "fed by its own source")
        self.market.set_market(symbol, bid, bid_size, ask, ask_size)
        return self.market_changed(symbol)

    def market_changed(self, symbol: str) -> Outbound:
        """The external market of ``symbol`` may have moved: finish cancels
        held by a halt, re-price midpoint pegs, execute resting orders the
        market now trades through."""
        if self.halted(symbol):
            return []
        book = self.books.get(symbol)
        if book is None:
            return []
        out: Outbound = []
        for order in book.orders():
            if order.cancel_pending:
                out.append(self._kill(order, "U"))
        repriced = []
        for order in book.orders():
            if order.price_type == "M" and order.open_quantity > 0:
                update = self._reprice_peg(order, book)
                if update:
                    out += update
                    repriced.append(order)
        # Pegs move together; only then may a moved peg trade, at the new prices.
        for order in repriced:
            if order.open_quantity > 0 and book.remove(order):
                out += self._match(order)
                if order.open_quantity > 0:
                    book.rest(order)
                else:
                    self.ports[order.owner].live.pop(order.user_ref_num, None)
        if self.market is not None:
            for is_bid in (True, False):
                out += self._trade_through(book, is_bid)
        return out

    def _reprice_peg(self, order: RestingOrder, book: SymbolBook) -> Outbound:
        price = self._peg_price(order.symbol, order.is_buy, order.limit_price)
        if price is None or price == order.price:
            return []
        book.remove(order)
        order.price = price
        order.order_reference_number = self._order_reference()
        book.rest(order)
        self.counts["priority_updates"] += 1
        return [(order.owner, ouch50.OrderPriorityUpdate(
            timestamp=self.clock(), user_ref_num=order.user_ref_num, price=price,
            display=order.display, order_reference_number=order.order_reference_number,
            appendage=ouch50.Appendage()))]

    def _trade_through(self, book: SymbolBook, is_bid: bool) -> Outbound:
        out: Outbound = []
        for order in list(book.bids if is_bid else book.asks):
            while order.open_quantity > 0:
                contra = self.market.best_available(order.symbol, not is_bid)
                if contra is None or not self._crosses(order, contra[0]):
                    break
                quantity = min(order.open_quantity, contra[1])
                self.market.take(order.symbol, not is_bid, contra[0], quantity)
                order.open_quantity -= quantity
                out.append(self._executed(order, quantity, order.price, "A",
                                          self._match_number()))
                self.counts["market_executions"] += 1
            if order.open_quantity > 0:
                break   # worse-priced orders behind it are not reached either
            self._retire_if_done(order)
        return out

    def halt(self, symbol: str) -> Outbound:
        self.halted_symbols.add(symbol)
        self.counts["halts"] += 1
        return []

    def resume(self, symbol: str) -> Outbound:
        self.halted_symbols.discard(symbol)
        return self.market_changed(symbol)

    def break_trade(self, match_number: int, reason: str = "S") -> Outbound:
        """Break an execution: Broken Trade to each of our parties."""
        if reason not in ouch50.BROKEN_TRADE_REASONS:
            raise ValueError(f"unknown broken trade reason {reason!r}")
        parties = self.trades.pop(match_number, None)
        if parties is None:
            self.counts["break_unknown_match"] += 1
            return []
        self.counts["broken_trades"] += 1
        return [(owner, ouch50.BrokenTrade(timestamp=self.clock(), user_ref_num=ref,
                                           match_number=match_number, reason=reason,
                                           cl_ord_id=cl_ord_id, appendage=ouch50.Appendage()))
                for owner, ref, cl_ord_id in parties]

"""The exchange's OUCH 5.0 order handling, independent of any connection.

``OuchExchange.handle(user, message)`` takes one inbound OUCH message from a
user's port and returns the outbound messages it causes, each addressed to
the user that must receive it (an execution reaches both sides of the trade).
The SoupBinTCP server sequences and delivers them.

Rules the simulator applies (after the OUCH 5.0 specification):

* UserRefNum is a per-port transaction id that must strictly increase.  A
  request that opens a new UserRefNum (enter, replace, mass cancel) with a
  number not above the last one processed is ignored as a retransmission and
  counted under ``stale_user_ref_num``.
* Enter Order is validated: side (reject 0x09 Invalid side), quantity 1 to
  ``max_quantity`` (0x13 Invalid quantity), price 1 to
  :data:`~host.protocols.ouch50.MAX_LIMIT_PRICE` (0x1D Invalid price), symbol
  (0x17 Invalid symbol, when the symbol list is set), display (0x03 Invalid
  display), time in force (0x0F Other).
* Replace of an order that is not live is rejected with 0x15 Replace not
  allowed under the new UserRefNum; the replacement loses time priority.
  Its quantity is the new open quantity.
* Cancel's quantity is the order's intended remaining open quantity (0 for
  all); Order Canceled carries the decrement.  Cancels and modifies of orders
  that are not live are ignored (counted under ``not_live``).
* Modify may only shrink the open quantity and move between the sell
  flavours (S, T, E).
* Immediate-or-cancel orders are canceled (reason I) for what does not trade.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Callable

from host.exchange.matching import Fill, RestingOrder, SymbolBook
from host.protocols import ouch50
from host.protocols.layout import Message

INVALID_DISPLAY = 0x03
INVALID_SIDE = 0x09
OTHER = 0x0F
INVALID_QUANTITY = 0x13
REPLACE_NOT_ALLOWED = 0x15
INVALID_SYMBOL = 0x17
INVALID_PRICE = 0x1D

IMMEDIATE_OR_CANCEL = "3"
SELL_SIDES = frozenset("STE")
DEFAULT_MAX_QUANTITY = 1_000_000

Outbound = list[tuple[str, Message]]


def ns_since_midnight() -> int:
    now = time.time_ns()
    return now % (86_400 * 10**9)


class _Port:
    """What the exchange remembers about one user's port."""

    def __init__(self):
        self.last_user_ref_num = 0
        self.live: dict[int, RestingOrder] = {}


class OuchExchange:
    def __init__(self, symbols=None, *, max_quantity: int = DEFAULT_MAX_QUANTITY,
                 clock: Callable[[], int] = ns_since_midnight,
                 first_order_reference: int = 1, first_match_number: int = 1):
        self.symbols = None if symbols is None else frozenset(symbols)
        self.max_quantity = max_quantity
        self.clock = clock
        self.books: dict[str, SymbolBook] = {}
        self.ports: dict[str, _Port] = {}
        self.counts: Counter = Counter()
        self._next_order_reference = first_order_reference
        self._next_match = first_match_number

    # -- helpers ------------------------------------------------------------------
    def port(self, user: str) -> _Port:
        port = self.ports.get(user)
        if port is None:
            port = self.ports[user] = _Port()
        return port

    def book(self, symbol: str) -> SymbolBook:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = SymbolBook(symbol)
        return book

    def _order_reference(self) -> int:
        ref = self._next_order_reference
        self._next_order_reference += 1
        return ref

    def _claim(self, port: _Port, user_ref_num: int) -> bool:
        if user_ref_num <= port.last_user_ref_num:
            self.counts["stale_user_ref_num"] += 1
            return False
        port.last_user_ref_num = user_ref_num
        return True

    def _reject(self, user: str, user_ref_num: int, reason: int, cl_ord_id: str) -> Outbound:
        self.counts[f"rejected_{reason:#04x}"] += 1
        return [(user, ouch50.OrderRejected(timestamp=self.clock(), user_ref_num=user_ref_num,
                                            reason=reason, cl_ord_id=cl_ord_id, appendage=ouch50.Appendage()))]

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

    def _canceled(self, order: RestingOrder, decrement: int, reason: str) -> tuple[str, Message]:
        return (order.owner, ouch50.OrderCanceled(timestamp=self.clock(),
                                                  user_ref_num=order.user_ref_num,
                                                  quantity=decrement, reason=reason,
                                                  appendage=ouch50.Appendage()))

    def _executions(self, fills: list[Fill]) -> Outbound:
        out: Outbound = []
        for fill in fills:
            match = self._next_match
            self._next_match += 1
            ts = self.clock()
            for order, flag in ((fill.taker, "R"), (fill.maker, "A")):
                out.append((order.owner, ouch50.OrderExecuted(
                    timestamp=ts, user_ref_num=order.user_ref_num, quantity=fill.quantity,
                    price=fill.price, liquidity_flag=flag, match_number=match, appendage=ouch50.Appendage())))
            if fill.maker.open_quantity == 0:
                self.ports[fill.maker.owner].live.pop(fill.maker.user_ref_num, None)
            self.counts["executions"] += 1
        return out

    def _place(self, order: RestingOrder) -> Outbound:
        """Match a newly accepted order, then rest it or cancel what is left."""
        book = self.book(order.symbol)
        out = self._executions(book.match(order))
        port = self.ports[order.owner]
        if order.open_quantity == 0:
            port.live.pop(order.user_ref_num, None)
        elif order.time_in_force == IMMEDIATE_OR_CANCEL:
            port.live.pop(order.user_ref_num, None)
            out.append(self._canceled(order, order.open_quantity, "I"))
            order.open_quantity = 0
        else:
            book.rest(order)
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
        reason = self._validate(msg.side, msg.quantity, msg.price, msg.display,
                                msg.time_in_force, msg.symbol)
        if reason is not None:
            return self._reject(user, msg.user_ref_num, reason, msg.cl_ord_id)
        appendage = msg.appendage or ouch50.Appendage()
        order = RestingOrder(
            owner=user, user_ref_num=msg.user_ref_num, side=msg.side, symbol=msg.symbol,
            price=msg.price, open_quantity=msg.quantity,
            order_reference_number=self._order_reference(), firm=appendage.get("firm", ""),
            time_in_force=msg.time_in_force, display=msg.display, capacity=msg.capacity,
            cl_ord_id=msg.cl_ord_id)
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
        if old is None:
            return self._reject(user, msg.user_ref_num, REPLACE_NOT_ALLOWED, msg.cl_ord_id)
        reason = self._validate(old.side, msg.quantity, msg.price, msg.display,
                                msg.time_in_force)
        if reason is not None:
            return self._reject(user, msg.user_ref_num, reason, msg.cl_ord_id)
        self.book(old.symbol).remove(old)
        del port.live[old.user_ref_num]
        new = RestingOrder(
            owner=user, user_ref_num=msg.user_ref_num, side=old.side, symbol=old.symbol,
            price=msg.price, open_quantity=msg.quantity,
            order_reference_number=self._order_reference(), firm=old.firm,
            time_in_force=msg.time_in_force, display=msg.display, capacity=old.capacity,
            cl_ord_id=msg.cl_ord_id)
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

    def _cancel(self, user: str, msg) -> Outbound:
        order = self.port(user).live.get(msg.user_ref_num)
        if order is None:
            self.counts["not_live"] += 1
            return []
        if msg.quantity >= order.open_quantity:
            self.counts["cancel_nothing"] += 1
            return []
        decrement = order.open_quantity - msg.quantity
        order.open_quantity = msg.quantity
        if order.open_quantity == 0:
            self.book(order.symbol).remove(order)
            del self.ports[user].live[order.user_ref_num]
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
        order.side = msg.side
        order.open_quantity = msg.quantity
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
            if msg.firm and order.firm and order.firm != msg.firm:
                continue
            self.book(order.symbol).remove(order)
            del port.live[order.user_ref_num]
            out.append(self._canceled(order, order.open_quantity, "U"))
            order.open_quantity = 0
        out.append((user, ouch50.MassCancelResponse(
            timestamp=self.clock(), user_ref_num=msg.user_ref_num, firm=msg.firm,
            symbol=msg.symbol, appendage=ouch50.Appendage())))
        return out

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
        ouch50.AccountQueryRequest: _account_query,
    }

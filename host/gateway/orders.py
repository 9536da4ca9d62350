"""The OUCH 5.0 order manager: UserRefNum allocation and order state.

The manager never does I/O.  It is driven by two calls: :meth:`OrderManager.sent`
for each request the gateway sends, and :meth:`OrderManager.received` for
each sequenced message from the exchange.  Feeding the same calls in the same
order always gives the same state, which is what makes rebuilding from the
journal exact.

States::

    PENDING_NEW -> LIVE | REJECTED | (FILLED, CANCELED when dead on arrival)
    LIVE / PARTIALLY_FILLED -> PENDING_CANCEL | PENDING_REPLACE | PARTIALLY_FILLED
                               | FILLED | CANCELED
    PENDING_CANCEL -> resting state (partial cancel, Cancel Reject) | CANCELED | FILLED
    PENDING_REPLACE -> resting state (replaced or replace rejected) | FILLED | CANCELED

"Resting state" is LIVE with nothing filled, PARTIALLY_FILLED otherwise.
AIQ Canceled (self-match prevention) cancels shares like Order Canceled;
Order Priority Update re-prices an order; a Broken Trade removes the fill
from ``fills`` into ``broken`` and counts its shares as canceled (a FILLED
order becomes CANCELED).

The exchange's view wins where it tells us of an order we did not record
(a journal that lost its unsynced tail in a power loss, replayed from the
exchange's session at the next login): an Order Accepted for an unknown
UserRefNum adopts the order as the exchange describes it
(``adopted_from_exchange``), and an Order Replaced that answers no pending
replace of ours is applied all the same (``replaced_unrequested``).  Every
UserRefNum the exchange names, and the next one an Account Query Response
announces, keeps allocation above it, so a restart never reuses one.

FILLED, CANCELED and REJECTED are terminal: a message for a terminal order is
counted under ``late_messages`` and changes nothing.  Quantities obey
``0 <= filled + canceled <= quantity`` (``quantity`` is the order's total:
already filled and canceled shares plus what is open); a message that would
break this is refused and recorded in ``anomalies``.
"""
from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

from host.protocols import ouch50
from host.protocols.layout import Message


class OrderState(str, enum.Enum):
    PENDING_NEW = "pending_new"
    LIVE = "live"
    PENDING_REPLACE = "pending_replace"
    PENDING_CANCEL = "pending_cancel"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED})
_WORKING = frozenset({OrderState.LIVE, OrderState.PARTIALLY_FILLED})


class OrderError(Exception):
    """A request the order manager refuses to send."""


@dataclass
class Order:
    user_ref_num: int                 # the current UserRefNum (changes on replace)
    symbol: str
    side: str
    price: int
    quantity: int
    cl_ord_id: str = ""
    state: OrderState = OrderState.PENDING_NEW
    filled: int = 0
    canceled: int = 0
    order_reference_number: int | None = None
    user_ref_nums: list[int] = field(default_factory=list)   # every UserRefNum it had
    pending_replace: tuple[int, int, int] | None = None    # (new ref, new open qty, new price)
    pending_cancel_to: int | None = None   # open quantity the pending cancel asks for
    fills: list[tuple[int, int, int]] = field(default_factory=list)  # (match, qty, price)
    broken: list[tuple[int, int, int]] = field(default_factory=list)  # fills the exchange broke

    @property
    def open_quantity(self) -> int:
        return self.quantity - self.filled - self.canceled

    def snapshot(self) -> dict:
        return {
            "user_ref_num": self.user_ref_num, "symbol": self.symbol, "side": self.side,
            "price": self.price, "quantity": self.quantity, "cl_ord_id": self.cl_ord_id,
            "state": self.state.value, "filled": self.filled, "canceled": self.canceled,
            "order_reference_number": self.order_reference_number,
            "user_ref_nums": list(self.user_ref_nums),
            "pending_replace": self.pending_replace, "fills": list(self.fills),
            "broken": list(self.broken),
            "pending_cancel_to": self.pending_cancel_to,
        }


#: Answers that carry the UserRefNum of a request that opened one.
_NAMES_NEW_REF = frozenset({ouch50.OrderAccepted, ouch50.OrderReplaced, ouch50.OrderRejected,
                            ouch50.MassCancelResponse, ouch50.DisableOrderEntryResponse,
                            ouch50.EnableOrderEntryResponse})
_RECEIVED_KEYS = {cls: f"received_{cls.__name__}" for cls in ouch50.OUTBOUND_MESSAGES}
_SENT_KEYS = {cls: f"sent_{cls.__name__}" for cls in ouch50.INBOUND_MESSAGES}


def _resting(order: Order) -> OrderState:
    return OrderState.PARTIALLY_FILLED if order.filled else OrderState.LIVE


class OrderManager:
    def __init__(self, first_user_ref_num: int = 1):
        self.orders: dict[int, Order] = {}        # by every UserRefNum the order had
        self.by_reference: dict[int, Order] = {}  # by the exchange's order reference number
        self.next_user_ref_num = first_user_ref_num
        self.counts: Counter = Counter()
        self.anomalies: list[str] = []
        self.mass_cancels: dict[int, str] = {}    # UserRefNum -> "pending" | "done"

    # -- outgoing -----------------------------------------------------------------
    def allocate(self) -> int:
        ref = self.next_user_ref_num
        self.next_user_ref_num += 1
        return ref

    def enter(self, side: str, quantity: int, symbol: str, price: int, *,
              time_in_force: str = "0", display: str = "Y", capacity: str = "P",
              cl_ord_id: str = "", firm: str | None = None) -> Message:
        """Build an Enter Order with a fresh UserRefNum (not yet sent)."""
        appendage = ouch50.Appendage()
        if firm:
            appendage["firm"] = firm
        return ouch50.EnterOrder(
            user_ref_num=self.allocate(), side=side, quantity=quantity, symbol=symbol,
            price=price, time_in_force=time_in_force, display=display, capacity=capacity,
            intermarket_sweep_eligibility="N", cross_type="N", cl_ord_id=cl_ord_id,
            appendage=appendage)

    def replace(self, user_ref_num: int, quantity: int, price: int, *,
                cl_ord_id: str = "") -> Message:
        order = self._working(user_ref_num)
        return ouch50.ReplaceOrderRequest(
            orig_user_ref_num=order.user_ref_num, user_ref_num=self.allocate(),
            quantity=quantity, price=price, time_in_force="0", display="Y",
            intermarket_sweep_eligibility="N", cl_ord_id=cl_ord_id or order.cl_ord_id,
            appendage=ouch50.Appendage())

    def cancel(self, user_ref_num: int, remaining: int = 0) -> Message:
        order = self._working(user_ref_num)
        if not 0 <= remaining < order.open_quantity:
            # The exchange ignores a cancel that cancels nothing: it would stay pending.
            raise OrderError(f"order {user_ref_num} has {order.open_quantity} open; "
                             f"cannot cancel down to {remaining}")
        return ouch50.CancelOrderRequest(user_ref_num=order.user_ref_num, quantity=remaining,
                                         appendage=ouch50.Appendage())

    def mass_cancel(self, symbol: str = "", firm: str = "") -> Message:
        return ouch50.MassCancelRequest(user_ref_num=self.allocate(), firm=firm, symbol=symbol,
                                        appendage=ouch50.Appendage())

    def _working(self, user_ref_num: int) -> Order:
        order = self.orders.get(user_ref_num)
        if order is None:
            raise OrderError(f"no order with UserRefNum {user_ref_num}")
        if order.state not in _WORKING:
            raise OrderError(f"order {user_ref_num} is {order.state.value}, not working")
        return order

    def sent(self, msg: Message) -> None:
        """Account for a request that has been (journaled and) sent."""
        cls = type(msg)
        if cls is ouch50.ReplaceOrderRequest:
            # The requote, every quote record twice: straight to it.
            ref = msg.user_ref_num
            if ref >= self.next_user_ref_num:
                self.next_user_ref_num = ref + 1
            order = self.orders.get(msg.orig_user_ref_num)
            if order is None or order.state not in _WORKING:
                self.counts["replace_of_non_working"] += 1
                return
            order.state = OrderState.PENDING_REPLACE
            order.pending_replace = (ref, msg.quantity, msg.price)
            self.orders[ref] = order
            self.counts[_SENT_KEYS[cls]] += 1
            return
        if hasattr(msg, "user_ref_num") and not isinstance(msg, (ouch50.CancelOrderRequest,
                                                                 ouch50.ModifyOrderRequest)):
            # Keeps allocation above anything sent, also when rebuilding.
            self.next_user_ref_num = max(self.next_user_ref_num, msg.user_ref_num + 1)
        if isinstance(msg, ouch50.EnterOrder):
            if msg.user_ref_num in self.orders:
                self._anomaly(f"UserRefNum {msg.user_ref_num} entered twice")
                return
            order = Order(msg.user_ref_num, msg.symbol, msg.side, msg.price, msg.quantity,
                          msg.cl_ord_id, user_ref_nums=[msg.user_ref_num])
            self.orders[msg.user_ref_num] = order
        elif isinstance(msg, ouch50.ReplaceOrderRequest):
            order = self.orders.get(msg.orig_user_ref_num)
            if order is None or order.state not in _WORKING:
                self.counts["replace_of_non_working"] += 1
                return
            order.state = OrderState.PENDING_REPLACE
            order.pending_replace = (msg.user_ref_num, msg.quantity, msg.price)
            self.orders[msg.user_ref_num] = order
        elif isinstance(msg, ouch50.CancelOrderRequest):
            order = self.orders.get(msg.user_ref_num)
            if order is None or order.state not in _WORKING:
                self.counts["cancel_of_non_working"] += 1
                return
            order.state = OrderState.PENDING_CANCEL
            order.pending_cancel_to = msg.quantity
        elif isinstance(msg, ouch50.MassCancelRequest):
            self.mass_cancels[msg.user_ref_num] = "pending"
        cls = type(msg)
        self.counts[_SENT_KEYS.get(cls) or f"sent_{cls.__name__}"] += 1

    # -- incoming -----------------------------------------------------------------
    def _anomaly(self, text: str) -> None:
        self.anomalies.append(text)
        self.counts["anomalies"] += 1

    def _order_for(self, user_ref_num: int) -> Order | None:
        order = self.orders.get(user_ref_num)
        if order is None:
            self.counts["unknown_order"] += 1
            return None
        if order.state.terminal:
            self.counts["late_messages"] += 1
            return None
        return order

    def received(self, msg: Message) -> None:
        cls = type(msg)
        self.counts[_RECEIVED_KEYS.get(cls) or f"received_{cls.__name__}"] += 1
        if cls in _NAMES_NEW_REF and msg.user_ref_num >= self.next_user_ref_num:
            self.next_user_ref_num = msg.user_ref_num + 1
        handler = self._HANDLERS.get(cls)
        if handler is not None:
            handler(self, msg)

    def _adopt(self, msg) -> None:
        order = Order(msg.user_ref_num, msg.symbol, msg.side, msg.price, msg.quantity,
                      msg.cl_ord_id, user_ref_nums=[msg.user_ref_num])
        self.orders[msg.user_ref_num] = order
        self.counts["adopted_from_exchange"] += 1

    def _accepted(self, msg) -> None:
        if msg.user_ref_num not in self.orders:
            self._adopt(msg)
        order = self._order_for(msg.user_ref_num)
        if order is None:
            return
        if order.state is not OrderState.PENDING_NEW:
            self._anomaly(f"Order Accepted for {msg.user_ref_num} in state {order.state.value}")
            return
        order.order_reference_number = msg.order_reference_number
        self.by_reference[msg.order_reference_number] = order
        # The exchange's view of the order wins over what was asked for.
        order.quantity, order.price, order.side = msg.quantity, msg.price, msg.side
        if msg.order_state == "D":
            order.canceled = order.quantity - order.filled
            order.state = OrderState.CANCELED
        else:
            order.state = OrderState.LIVE

    def _rejected(self, msg) -> None:
        order = self._order_for(msg.user_ref_num)
        if order is None:
            return
        if order.pending_replace is not None and order.pending_replace[0] == msg.user_ref_num:
            order.pending_replace = None
            order.state = _resting(order)
            self.counts["replace_rejected"] += 1
        elif order.state is OrderState.PENDING_NEW and order.user_ref_num == msg.user_ref_num:
            order.state = OrderState.REJECTED
        else:
            self._anomaly(f"Rejected for {msg.user_ref_num} in state {order.state.value}")

    def _executed(self, msg) -> None:
        order = self._order_for(msg.user_ref_num)
        if order is None:
            return
        if order.state is OrderState.PENDING_NEW:
            self._anomaly(f"execution for {msg.user_ref_num} before it was accepted")
            return
        if any(match == msg.match_number for match, _, _ in order.fills):
            # Match numbers are unique per trade: a repeat is a duplicate, not a fill.
            self.counts["duplicate_executions"] += 1
            return
        if msg.quantity == 0 or msg.quantity > order.open_quantity:
            self._anomaly(f"execution of {msg.quantity} for {msg.user_ref_num} with "
                          f"{order.open_quantity} open")
            return
        order.filled += msg.quantity
        order.fills.append((msg.match_number, msg.quantity, msg.price))
        if order.open_quantity == 0:
            order.state = OrderState.FILLED
            order.pending_replace = order.pending_cancel_to = None
        elif order.state in _WORKING:
            order.state = OrderState.PARTIALLY_FILLED
        elif (order.state is OrderState.PENDING_CANCEL
              and order.open_quantity <= order.pending_cancel_to):
            # Fills overtook the cancel: the exchange will find nothing to cancel.
            order.state = _resting(order)
            order.pending_cancel_to = None

    def _canceled(self, msg) -> None:
        order = self._order_for(msg.user_ref_num)
        if order is None:
            return
        if msg.quantity == 0 or msg.quantity > order.open_quantity:
            self._anomaly(f"cancel of {msg.quantity} for {msg.user_ref_num} with "
                          f"{order.open_quantity} open")
            return
        order.canceled += msg.quantity
        if order.open_quantity == 0:
            order.state = OrderState.CANCELED
            order.pending_replace = order.pending_cancel_to = None
        elif (order.state is OrderState.PENDING_CANCEL
              and order.open_quantity <= order.pending_cancel_to):
            order.state = _resting(order)
            order.pending_cancel_to = None

    def _replaced(self, msg) -> None:
        order = self._order_for(msg.orig_user_ref_num)
        if order is None:
            return
        if order.pending_replace is None or order.pending_replace[0] != msg.user_ref_num:
            if (order.pending_replace is not None or msg.user_ref_num in self.orders
                    or msg.orig_user_ref_num != order.user_ref_num):
                self._anomaly(f"Order Replaced {msg.orig_user_ref_num}->{msg.user_ref_num} "
                              f"not requested")
                return
            # Our replace request is not on record, the exchange carried it out.
            self.counts["replaced_unrequested"] += 1
            self.orders[msg.user_ref_num] = order
        order.pending_replace = None
        order.user_ref_num = msg.user_ref_num
        order.user_ref_nums.append(msg.user_ref_num)
        order.order_reference_number = msg.order_reference_number
        self.by_reference[msg.order_reference_number] = order
        order.price = msg.price
        # The replacement's quantity is its new open quantity.
        order.quantity = order.filled + order.canceled + msg.quantity
        order.state = _resting(order)

    def _modified(self, msg) -> None:
        order = self._order_for(msg.user_ref_num)
        if order is None:
            return
        if msg.quantity > order.open_quantity:
            self._anomaly(f"modify of {msg.user_ref_num} grows it to {msg.quantity}")
            return
        order.canceled += order.open_quantity - msg.quantity
        order.side = msg.side
        if order.open_quantity == 0:
            order.state = OrderState.CANCELED

    def _aiq_canceled(self, msg) -> None:
        # Self-match prevention took shares off the order (all of them when
        # the decrement equals what was open).
        order = self._order_for(msg.user_ref_num)
        if order is None:
            return
        if msg.decrement_shares > order.open_quantity:
            self._anomaly(f"AIQ decrement of {msg.decrement_shares} for {msg.user_ref_num} with "
                          f"{order.open_quantity} open")
            return
        order.canceled += msg.decrement_shares
        if order.open_quantity == 0:
            order.state = OrderState.CANCELED
            order.pending_replace = order.pending_cancel_to = None

    def _cancel_rejected(self, msg) -> None:
        # The exchange will not cancel (e.g. the symbol is halted): the order
        # keeps working as it was.
        order = self._order_for(msg.user_ref_num)
        if order is None:
            return
        if order.state is OrderState.PENDING_CANCEL:
            order.state = _resting(order)
            order.pending_cancel_to = None
        self.counts["cancel_rejected"] += 1

    def _priority_updated(self, msg) -> None:
        # A pegged order re-priced by the exchange: new price and reference.
        order = self._order_for(msg.user_ref_num)
        if order is None:
            return
        order.price = msg.price
        order.order_reference_number = msg.order_reference_number
        self.by_reference[msg.order_reference_number] = order

    def _trade_broken(self, msg) -> None:
        # The execution is void: the shares are not reopened on the order (the
        # exchange does not restore them), but the fill no longer counts.
        order = self.orders.get(msg.user_ref_num)
        if order is None:
            self.counts["unknown_order"] += 1
            return
        for i, (match, quantity, price) in enumerate(order.fills):
            if match == msg.match_number:
                del order.fills[i]
                order.filled -= quantity
                order.canceled += quantity
                order.broken.append((match, quantity, price))
                if order.state is OrderState.FILLED:
                    order.state = OrderState.CANCELED
                elif order.state is OrderState.PARTIALLY_FILLED and not order.filled:
                    order.state = OrderState.LIVE
                return
        self._anomaly(f"Broken Trade for unknown match {msg.match_number} on {msg.user_ref_num}")

    def _account_query_answered(self, msg) -> None:
        # The exchange's next expected UserRefNum: nothing below it may be used.
        self.next_user_ref_num = max(self.next_user_ref_num, msg.next_user_ref_num)

    def _mass_cancel_done(self, msg) -> None:
        if self.mass_cancels.get(msg.user_ref_num) != "pending":
            self.counts["unknown_mass_cancel"] += 1
            return
        self.mass_cancels[msg.user_ref_num] = "done"

    _HANDLERS = {
        ouch50.OrderAccepted: _accepted,
        ouch50.OrderRejected: _rejected,
        ouch50.OrderExecuted: _executed,
        ouch50.OrderCanceled: _canceled,
        ouch50.OrderReplaced: _replaced,
        ouch50.OrderModified: _modified,
        ouch50.MassCancelResponse: _mass_cancel_done,
        ouch50.AiqCanceled: _aiq_canceled,
        ouch50.CancelReject: _cancel_rejected,
        ouch50.OrderPriorityUpdate: _priority_updated,
        ouch50.BrokenTrade: _trade_broken,
        ouch50.AccountQueryResponse: _account_query_answered,
    }

    # -- views --------------------------------------------------------------------
    def unique_orders(self) -> list[Order]:
        seen: dict[int, Order] = {}
        for order in self.orders.values():
            seen.setdefault(id(order), order)
        return sorted(seen.values(), key=lambda o: o.user_ref_nums[0])

    def order(self, user_ref_num: int) -> Order:
        return self.orders[user_ref_num]

    def snapshot(self) -> dict:
        return {
            "next_user_ref_num": self.next_user_ref_num,
            "orders": [o.snapshot() for o in self.unique_orders()],
            "mass_cancels": dict(self.mass_cancels),
            "anomalies": list(self.anomalies),
        }

    def check_invariants(self) -> None:
        """Raise AssertionError if any order's quantities are inconsistent."""
        for order in self.unique_orders():
            assert 0 <= order.filled <= order.quantity, order
            assert 0 <= order.canceled and order.filled + order.canceled <= order.quantity, order
            assert sum(q for _, q, _ in order.fills) == order.filled, order
            if order.state is OrderState.FILLED:
                assert order.open_quantity == 0 and order.filled > 0, order
            if order.state is OrderState.CANCELED:
                assert order.open_quantity == 0, order
            if order.state is OrderState.PARTIALLY_FILLED:
                assert 0 < order.filled < order.quantity, order
            if order.state is OrderState.PENDING_REPLACE:
                assert order.pending_replace is not None, order
            if order.state is OrderState.PENDING_CANCEL:
                assert order.pending_cancel_to is not None, order
            for ref in order.user_ref_nums:
                assert self.orders.get(ref) is order, order
            assert order.user_ref_num < self.next_user_ref_num, order

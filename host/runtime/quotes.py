"""Quote records from the fabric become OUCH orders.

A QUOTE record (:mod:`host.quoting.records`) is the complete wanted state of
one option's two quotes; a CANCEL record wants both withdrawn.  The trader
keeps at most one order per option and side and moves it toward the wanted
state with the fewest requests: Enter Order when the side has no working
order, Replace Order when price or size differ, Cancel Order when the side
is no longer wanted.

Requests are never stacked on an order the exchange has not answered yet
(pending new, replace or cancel): the newest wanted state waits and is
applied when the answer arrives (:meth:`QuoteTrader.on_message` is an order
gateway listener).  Older wanted states are dropped unsent, which is what a
market maker wants from a stream of requotes, and counted as ``conflated``.

Every request's trigger, the MoldUDP64 sequence number and message index of
the feed message that caused the quote and the fabric's cycle stamps, goes
to the journal (kind ``trigger``) right after the request itself, so a
replay can tie each order on the wire to the tick that caused it.
"""
from __future__ import annotations

import struct
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from host.gateway import NotConnectedError, OrderState, PreTradeRejected
from host.protocols import ouch50
from host.quoting.records import KIND_CANCEL, KIND_QUOTE, SIDE_ASK, SIDE_BID

TRIGGER = "trigger"
# user_ref_num, option_id, seq, msg_index, ingress_cycle, egress_cycle,
# host receive time (ns, monotonic), host send time (ns, monotonic)
_TRIGGER = struct.Struct(">IHQIIIQQ")
SIDES = ((SIDE_BID, "B"), (SIDE_ASK, "S"))
OTHER = {"B": "S", "S": "B"}
_PENDING = frozenset({OrderState.PENDING_NEW, OrderState.PENDING_REPLACE,
                      OrderState.PENDING_CANCEL})


@dataclass(frozen=True)
class Trigger:
    user_ref_num: int
    option_id: int
    seq: int
    msg_index: int
    ingress_cycle: int
    egress_cycle: int
    received_ns: int
    sent_ns: int

    def to_bytes(self) -> bytes:
        return _TRIGGER.pack(self.user_ref_num, self.option_id, self.seq, self.msg_index,
                             self.ingress_cycle, self.egress_cycle, self.received_ns, self.sent_ns)

    @classmethod
    def from_bytes(cls, payload: bytes) -> "Trigger":
        if len(payload) != _TRIGGER.size:
            raise ValueError(f"trigger record of {len(payload)} bytes, expected {_TRIGGER.size}")
        return cls(*_TRIGGER.unpack(payload))


@dataclass
class _Wanted:
    price: int = 0
    size: int = 0
    record: object = None          # the quote record that asked for it
    received_ns: int = 0


class QuoteTrader:
    """``submit(msg)`` sends one request through risk and the journal (the
    order gateway's ``submit``); ``journal(kind, payload)`` appends a record."""

    def __init__(self, universe, orders, submit: Callable, journal: Callable[[str, bytes], None],
                 clock: Callable[[], int] = time.monotonic_ns, firm: str = ""):
        self.universe = universe
        self.orders = orders
        self.submit = submit
        self.journal = journal
        self.clock = clock
        self.firm = firm
        self.counts: Counter = Counter()
        self.wanted: dict[tuple[int, str], _Wanted] = {}
        self.working: dict[tuple[int, str], int] = {}     # -> current UserRefNum
        self.owner: dict[int, tuple[int, str]] = {}       # every UserRefNum -> (option, side)
        # Record received -> request written to the socket, for requests sent
        # while handling their record; a request that waited for the
        # exchange's answer to an earlier one is counted under ``deferred``
        # and its wait kept apart (it measures the exchange, not the host).
        self.latencies_ns: list[int] = []
        self.deferred_waits_ns: list[int] = []
        self._handling: int | None = None
    def adopt(self) -> int:
        """Take over the orders a restart rebuilt from the journal: each live
        order of ours becomes its option side's working order again, so the
        next quote record replaces it instead of entering a second one.
        Returns how many were adopted."""
        symbols = {o.symbol: o.option_id for o in self.universe.options}
        adopted = 0
        for order in self.orders.unique_orders():
            option_id = symbols.get(order.symbol)
            if option_id is None or order.state.terminal:
                continue
            key = (option_id, order.side)
            for ref in order.user_ref_nums:
                self.owner[ref] = key
            if key in self.working:
                self.counts["adopted_duplicates"] += 1
            self.working[key] = order.user_ref_num
            adopted += 1
        return adopted

    # -- records in ---------------------------------------------------------------
    def on_record(self, record, received_ns: int | None = None) -> None:
        received_ns = self.clock() if received_ns is None else received_ns
        self._handling = received_ns
        try:
            self._on_record(record, received_ns)
        finally:
            self._handling = None

    def _on_record(self, record, received_ns: int) -> None:
        option_id = int(record["option_id"])
        if option_id >= len(self.universe.options):
            self.counts["unknown_option"] += 1
            return
        kind = int(record["kind"])
        if kind == KIND_QUOTE:
            self.counts["quotes"] += 1
            sides = int(record["sides"])
            prices = {"B": int(record["bid_price"]), "S": int(record["ask_price"])}
            sizes = {"B": int(record["bid_size"]), "S": int(record["ask_size"])}
            for bit, side in self._side_order(option_id, sides, prices):
                if sides & bit:
                    self._want(option_id, side, prices[side], sizes[side], record, received_ns)
                else:
                    self._want(option_id, side, 0, 0, record, received_ns)
        elif kind == KIND_CANCEL:
            self.counts["cancels"] += 1
            for _, side in SIDES:
                self._want(option_id, side, 0, 0, record, received_ns)
        else:
            self.counts["bad_kind"] += 1

    def _side_order(self, option_id: int, sides: int, prices: dict) -> tuple:
        """Move the side first that gets out of the other's way: when the quote
        moves up so far that the new bid reaches our resting ask, the ask goes
        first (and the other way round), so the pair never crosses itself."""
        ask = self._order((option_id, "S"))
        if sides & SIDE_BID and ask is not None and prices["B"] >= ask.price:
            return SIDES[::-1]
        return SIDES

    def _want(self, option_id: int, side: str, price: int, size: int, record, received_ns: int):
        key = (option_id, side)
        previous = self.wanted.get(key)
        if previous is not None and previous.record is not None and self._pending(key):
            self.counts["conflated"] += 1
        self.wanted[key] = _Wanted(price, size, record, received_ns)
        self._reconcile(key)

    # -- exchange messages in ----------------------------------------------------------
    def on_message(self, msg, orders) -> None:
        """Order-gateway listener: an answer may unblock a waiting wanted state."""
        ref = getattr(msg, "user_ref_num", None)
        key = self.owner.get(ref) if ref is not None else None
        if key is None and isinstance(msg, ouch50.OrderReplaced):
            key = self.owner.get(msg.orig_user_ref_num)
        if key is not None:
            # Both sides: an answer on one may clear the way for the other.
            for _, side in SIDES:
                self._reconcile((key[0], side))

    # -- requests out --------------------------------------------------------------------
    def _order(self, key):
        ref = self.working.get(key)
        if ref is None:
            return None
        order = self.orders.orders.get(ref)
        if order is None or order.state.terminal:
            del self.working[key]
            return None
        return order

    def _pending(self, key) -> bool:
        order = self._order(key)
        return order is not None and order.state in _PENDING

    def _reconcile(self, key) -> None:
        want = self.wanted.get(key)
        if want is None or want.record is None:
            return
        order = self._order(key)
        option_id, side = key
        if order is not None and order.state in _PENDING:
            return
        if want.size == 0:
            if order is None:
                want.record = None
                return
            msg = self.orders.cancel(order.user_ref_num)
        elif order is None:
            msg = self.orders.enter(side, want.size, self.universe.by_id(option_id).symbol,
                                    want.price, firm=self.firm or None)
        elif order.price == want.price and order.open_quantity == want.size:
            want.record = None
            return
        else:
            msg = self.orders.replace(order.user_ref_num, want.size, want.price)
        record, received_ns = want.record, want.received_ns
        want.record = None
        try:
            self.submit(msg)
        except PreTradeRejected as exc:
            self.counts[f"risk_rejected_{exc.decision.reason}"] += 1
            if exc.decision.reason == "self_trade" and self._pending((option_id, OTHER[side])):
                # The other side is still moving out of the way: retry when
                # its answer arrives.
                want.record = record
            return
        except NotConnectedError:
            self.counts["not_connected"] += 1
            return
        sent_ns = self.clock()
        if self._handling == received_ns:
            self.latencies_ns.append(sent_ns - received_ns)
        else:
            self.counts["deferred"] += 1
            self.deferred_waits_ns.append(sent_ns - received_ns)
        self.counts[type(msg).__name__] += 1
        ref = msg.user_ref_num
        self.owner[ref] = key
        if not isinstance(msg, ouch50.CancelOrderRequest):
            self.working[key] = ref
            if isinstance(msg, ouch50.ReplaceOrderRequest):
                self.owner[msg.orig_user_ref_num] = key
        self.journal(TRIGGER, Trigger(
            ref, option_id, int(record["seq"]), int(record["msg_index"]),
            int(record["ingress_cycle"]), int(record["egress_cycle"]), received_ns,
            sent_ns).to_bytes())

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
to the journal (kind ``trigger``) after the request itself, so a replay can
tie each order on the wire to the tick that caused it.  The requests one
record causes leave in one socket send (the gateway's ``batch``); their
triggers follow, stamped with the time the send returned, in one journal
write when the journal can take a batch (:meth:`host.journal.Journal.append_batch`).

Latency (:attr:`QuoteTrader.latencies_ns`): one figure per quote record that
caused requests, from the record's arrival to its last request's bytes
handed to the kernel.
"""
from __future__ import annotations

import operator
import struct
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from host.gateway import NotConnectedError, OrderState, PreTradeRejected, TERMINAL_STATES
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


_STRUCT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _unpacker(dtype) -> Callable[[object], tuple] | None:
    """A reader of :data:`_FIELDS` that unpacks them from a record's bytes
    with one struct call, for a layout of plain integer fields in one byte
    order (the fabric's :data:`host.quoting.records.QUOTE_DTYPE`); None for
    any other layout."""
    fields = []
    order = None
    for name in _FIELDS:
        spec = dtype.fields.get(name)
        if spec is None:
            return None
        base, offset = spec[0], spec[1]
        if base.kind not in "iu" or base.shape or base.itemsize not in _STRUCT_CODES:
            return None
        if base.itemsize > 1:
            byteorder = base.byteorder if base.byteorder in "<>" else (
                "<" if np.little_endian else ">")
            if order not in (None, byteorder):
                return None
            order = byteorder
        code = _STRUCT_CODES[base.itemsize]
        fields.append((offset, name, code.lower() if base.kind == "i" else code))
    fields.sort()
    layout, position = [], 0
    for offset, _, code in fields:
        if offset < position:
            return None                 # overlapping fields
        layout.append(f"{offset - position}x{code}" if offset > position else code)
        position = offset + struct.calcsize(code)
    if position > dtype.itemsize:
        return None
    unpack = struct.Struct((order or "<") + "".join(layout)).unpack_from
    in_memory = [name for _, name, _ in fields]
    pick = operator.itemgetter(*(in_memory.index(name) for name in _FIELDS))
    return lambda record: pick(unpack(record))


class _Wanted:
    """The newest wanted state of one option side, and what asked for it."""

    __slots__ = ("price", "size", "cause", "received_ns")

    def __init__(self, price: int = 0, size: int = 0, cause: tuple | None = None,
                 received_ns: int = 0):
        self.price = price
        self.size = size
        # (seq, msg_index, ingress_cycle, egress_cycle) of the quote record
        # that asked for it; None once it has been carried out.
        self.cause = cause
        self.received_ns = received_ns


#: The quote record fields the trader reads, in this order.
_FIELDS = ("kind", "option_id", "sides", "bid_price", "ask_price", "bid_size", "ask_size",
           "seq", "msg_index", "ingress_cycle", "egress_cycle")


class QuoteTrader:
    """``submit(msg)`` sends one request through risk and the journal (the
    order gateway's ``submit``); ``journal(kind, payload)`` appends a record;
    ``journal_batch(items)``, when given, appends several ``(kind, payload,
    None)`` records at once (taken from the journal when ``journal`` is a
    journal's ``append``); ``batch``, when given (the order gateway's
    ``batch``), is entered around each quote record so that the record's
    requests leave in one send."""

    def __init__(self, universe, orders, submit: Callable, journal: Callable[[str, bytes], None],
                 clock: Callable[[], int] = time.monotonic_ns, firm: str = "",
                 batch=None, journal_batch: Callable | None = None):
        self.universe = universe
        self.orders = orders
        self.submit = submit
        self.journal = journal
        if journal_batch is None:
            journal_batch = getattr(getattr(journal, "__self__", None), "append_batch", None)
        self.journal_batch = journal_batch
        self.clock = clock
        self.firm = firm
        self.batch = batch
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
        self._sent_now: list[tuple[int, int, tuple]] = []   # (UserRefNum, option, cause)
        self._symbols = [o.symbol for o in universe.options]
        self._option_ids = {o.symbol: o.option_id for o in universe.options}
        # Per option row: its (bid, ask) keys, made once.
        self._keys = [((row, "B"), (row, "S")) for row in range(len(self._symbols))]
        self._layouts: dict = {}      # dtype -> reader of its records
        self._last_dtype = self._last_reader = None

    def adopt(self) -> int:
        """Take over the orders a restart rebuilt from the journal: each live
        order of ours becomes its option side's working order again, so the
        next quote record replaces it instead of entering a second one.
        Returns how many were adopted."""
        adopted = 0
        for order in self.orders.unique_orders():
            if self._adopt_order(order):
                adopted += 1
        return adopted

    def _adopt_order(self, order) -> bool:
        option_id = self._option_ids.get(order.symbol)
        if option_id is None or order.state.terminal:
            return False
        key = (option_id, order.side)
        for ref in order.user_ref_nums:
            self.owner[ref] = key
        if key in self.working and self.working[key] != order.user_ref_num:
            self.counts["adopted_duplicates"] += 1
        self.working[key] = order.user_ref_num
        return True

    # -- records in ---------------------------------------------------------------
    def _read(self, record) -> tuple:
        """The fields of :data:`_FIELDS` as Python ints.  A numpy record of
        a plain integer layout (the fabric's) is unpacked straight from its
        bytes, others are read in one ``item()`` call (reading fields one
        by one costs about a microsecond each)."""
        dtype = getattr(record, "dtype", None)
        if dtype is not None and dtype.names:
            if dtype is self._last_dtype:
                return self._last_reader(record)
            reader = self._layouts.get(dtype)
            if reader is None:
                reader = self._layouts[dtype] = self._reader(dtype)
            self._last_dtype, self._last_reader = dtype, reader
            return reader(record)
        return tuple(int(record[f]) if f in record else 0 for f in _FIELDS)

    @staticmethod
    def _reader(dtype) -> Callable[[object], tuple]:
        names = dtype.names
        layout = tuple(names.index(f) if f in names else None for f in _FIELDS)
        unpack = _unpacker(dtype)
        if unpack is not None:
            return unpack
        integral = all(dtype.fields[names[i]][0].kind in "iu" for i in layout if i is not None)
        if integral and None not in layout:
            # item() already gives Python ints: pick them out in one call.
            pick = operator.itemgetter(*layout)
            return lambda record: pick(record.item())

        def read(record) -> tuple:
            values = record.item()
            return tuple(0 if i is None else int(values[i]) for i in layout)
        return read

    def on_record(self, record, received_ns: int | None = None) -> None:
        received_ns = self.clock() if received_ns is None else received_ns
        self._handling = received_ns
        sent = self._sent_now
        try:
            batch = self.batch
            if batch is not None:
                with batch:
                    self._on_record(record, received_ns)
            else:
                self._on_record(record, received_ns)
        finally:
            self._handling = None
            if sent:
                # The record's requests are on the socket now (one send).
                sent_ns = self.clock()
                self.latencies_ns.append(sent_ns - received_ns)
                if self.journal_batch is not None and len(sent) > 1:
                    pack = _TRIGGER.pack
                    self.journal_batch([
                        (TRIGGER, pack(ref, option_id, *cause, received_ns, sent_ns), None)
                        for ref, option_id, cause in sent])
                else:
                    for ref, option_id, cause in sent:
                        self._journal_trigger(ref, option_id, cause, received_ns, sent_ns)
                sent.clear()

    def _on_record(self, record, received_ns: int) -> None:
        (kind, option_id, sides, bid_price, ask_price, bid_size, ask_size,
         seq, msg_index, ingress, egress) = self._read(record)
        if not 0 <= option_id < len(self._symbols):
            self.counts["unknown_option"] += 1
            return
        cause = (seq, msg_index, ingress, egress)
        bid_key, ask_key = self._keys[option_id]
        if kind == KIND_QUOTE:
            self.counts["quotes"] += 1
            if not sides & SIDE_BID:
                bid_price = bid_size = 0
            if not sides & SIDE_ASK:
                ask_price = ask_size = 0
            if sides & SIDE_BID:
                # Move the side first that gets out of the other's way: when
                # the quote moves up so far that the new bid reaches our
                # resting ask, the ask goes first (and the other way round),
                # so the pair never crosses itself.
                resting_ask = self._order(ask_key)
                if resting_ask is not None and bid_price >= resting_ask.price:
                    self._want(ask_key, ask_price, ask_size, cause, received_ns)
                    self._want(bid_key, bid_price, bid_size, cause, received_ns)
                    return
            self._want(bid_key, bid_price, bid_size, cause, received_ns)
            self._want(ask_key, ask_price, ask_size, cause, received_ns)
        elif kind == KIND_CANCEL:
            self.counts["cancels"] += 1
            self._want(bid_key, 0, 0, cause, received_ns)
            self._want(ask_key, 0, 0, cause, received_ns)
        else:
            self.counts["bad_kind"] += 1

    def _want(self, key: tuple[int, str], price: int, size: int, cause: tuple,
              received_ns: int):
        want = self.wanted.get(key)
        if want is None:
            want = self.wanted[key] = _Wanted()
        elif want.cause is not None and self._pending(key):
            self.counts["conflated"] += 1
        want.price, want.size, want.cause, want.received_ns = price, size, cause, received_ns
        self._carry_out(key, want)

    # -- exchange messages in ----------------------------------------------------------
    def on_message(self, msg, orders) -> None:
        """Order-gateway listener: an answer may unblock a waiting wanted state.
        An order of ours the trader did not know (the exchange replayed it
        after a journal lost it) becomes its option side's working order."""
        ref = getattr(msg, "user_ref_num", None)
        key = self.owner.get(ref) if ref is not None else None
        if key is None and isinstance(msg, ouch50.OrderReplaced):
            key = self.owner.get(msg.orig_user_ref_num)
        if key is None and isinstance(msg, ouch50.OrderAccepted):
            order = orders.orders.get(msg.user_ref_num)
            if order is not None and self._adopt_order(order):
                self.counts["adopted_from_exchange"] += 1
                key = self.owner.get(msg.user_ref_num)
        if key is not None:
            # Both sides: an answer on one may clear the way for the other.
            # (A side with nothing waiting has nothing to do.)
            wanted = self.wanted
            for side_key in self._keys[key[0]]:
                want = wanted.get(side_key)
                if want is not None and want.cause is not None:
                    self._carry_out(side_key, want)

    # -- requests out --------------------------------------------------------------------
    def _order(self, key):
        ref = self.working.get(key)
        if ref is None:
            return None
        order = self.orders.orders.get(ref)
        if order is None or order.state in TERMINAL_STATES:
            del self.working[key]
            return None
        return order

    def _pending(self, key) -> bool:
        order = self._order(key)
        return order is not None and order.state in _PENDING

    def _reconcile(self, key) -> None:
        want = self.wanted.get(key)
        if want is not None and want.cause is not None:
            self._carry_out(key, want)

    def _carry_out(self, key, want: _Wanted) -> None:
        """Move ``key``'s order toward ``want`` (whose cause is set)."""
        order = self._order(key)
        if order is not None and order.state in _PENDING:
            return
        orders = self.orders
        if want.size == 0:
            if order is None:
                want.cause = None
                return
            msg = orders.cancel(order.user_ref_num)
        elif order is None:
            msg = orders.enter(key[1], want.size, self._symbols[key[0]], want.price,
                               firm=self.firm or None)
        elif order.price == want.price and \
                order.quantity - order.filled - order.canceled == want.size:
            want.cause = None
            return
        else:
            msg = orders.replace(order.user_ref_num, want.size, want.price)
        cause, received_ns = want.cause, want.received_ns
        want.cause = None
        try:
            self.submit(msg)
        except PreTradeRejected as exc:
            self.counts[f"risk_rejected_{exc.decision.reason}"] += 1
            option_id, side = key
            if exc.decision.reason == "self_trade" and self._pending((option_id, OTHER[side])):
                # The other side is still moving out of the way: retry when
                # its answer arrives.
                want.cause = cause
            return
        except NotConnectedError:
            self.counts["not_connected"] += 1
            return
        cls = type(msg)
        self.counts[cls.__name__] += 1
        ref = msg.user_ref_num
        owner = self.owner
        owner[ref] = key
        if cls is not ouch50.CancelOrderRequest:
            self.working[key] = ref
            if cls is ouch50.ReplaceOrderRequest:
                owner[msg.orig_user_ref_num] = key
        if self._handling == received_ns:
            # Sent while handling its record: timed when the record's batch
            # has gone out (on_record).
            self._sent_now.append((ref, key[0], cause))
        else:
            sent_ns = self.clock()
            self.counts["deferred"] += 1
            self.deferred_waits_ns.append(sent_ns - received_ns)
            self._journal_trigger(ref, key[0], cause, received_ns, sent_ns)

    def _journal_trigger(self, ref: int, option_id: int, cause: tuple, received_ns: int,
                         sent_ns: int) -> None:
        seq, msg_index, ingress, egress = cause
        self.journal(TRIGGER, _TRIGGER.pack(ref, option_id, seq, msg_index, ingress, egress,
                                            received_ns, sent_ns))

"""Bit-accurate model of the ITCH 5.0 decoder; this is the block's specification.

Input: the MoldUDP64 sequencer's arbitrated message stream, one ITCH message
per AXI-Stream packet (the type byte first), with a sideband held for the
whole packet (:mod:`rtl.common.message_stream`, carried in ``tuser``).  Output: one
:mod:`rtl.common.events` event per message the order book needs.

Each message gets exactly one verdict, judged in this order:

``unknown_type``     the first byte is not an ITCH 5.0 message type
``truncated``        shorter than its type's length in the specification
``length_mismatch``  longer than that
``bad_side``         an add order (A, F) or a trade (P) whose buy/sell
                     indicator is neither ``B`` nor ``S``: the book could
                     not place the order or print the trade
``skipped``          a well-formed message of a type the book does not use
``unsubscribed``     an event for a stock locate not in the subscription table
``event``            emitted

Add (A, F: the attribution is dropped), execute (E, C), cancel (X), delete
(D), replace (U), non-displayed trade (P), system event (S), stock directory
(R) and trading action (H) messages become events; which message field fills
which event field is :data:`EVENT_SOURCES`, read at the byte offsets of the
golden layouts in :mod:`host.protocols.itch50`.  Alpha fields are not checked
for ASCII: the fabric copies bytes.

Subscription is by stock locate only: an event passes when its locate equals
an enabled entry of the :data:`SUBSCRIPTION_ENTRIES`-entry table, or when
``pass_all_locates`` is set.  System events always pass (they are not about a
stock); directory and trading-action messages pass like any other event of
their locate, so subscribing a locate also brings its R and H messages.

Counters (32 bits, wrapping): every message, every emitted event, each drop
reason, each well-formed message by type (whatever happened to it next),
messages flagged stale by the sequencer, messages that came from feed B.  The
sideband's stale bit is also copied into the event (its ``stale`` field), so
the book flags exactly the records of stale messages, whatever is still in
flight when the sequencer's bit changes.  The feed bit is only counted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from host.protocols.itch50 import MESSAGE_CLASSES, MESSAGE_SIZES
from rtl.common.events import EV_ADD, EV_SYSTEM, EV_TRADE, ITCH_EVENT_DTYPE, KIND_OF_TYPE
from rtl.common.message_stream import pack_sideband

SUBSCRIPTION_ENTRIES = 64
LOCATE_BITS = 16
COUNTER_MASK = 0xFFFF_FFFF

EVENT = "event"
SKIPPED = "skipped"
DROP_REASONS = ("unknown_type", "truncated", "length_mismatch", "bad_side", "unsubscribed")
VERDICTS = (EVENT, SKIPPED) + DROP_REASONS
# Sticky status bits: the drop reasons that mean bad input, and staleness.
# Unsubscribed messages are the table doing its job, not a fault.
STICKY = ("unknown_type", "truncated", "length_mismatch", "bad_side", "stale")

SIDE_BUY = ord("B")
SIDE_SELL = ord("S")
# Types whose buy/sell indicator becomes the event's side bit.
SIDED_TYPES = frozenset(t for t, kind in KIND_OF_TYPE.items() if kind in (EV_ADD, EV_TRADE))
SUBSCRIPTION_EXEMPT = frozenset(t for t, kind in KIND_OF_TYPE.items() if kind == EV_SYSTEM)

_ADD_SOURCES = {"order_ref": "order_reference_number", "side": "buy_sell_indicator",
                "shares": "shares", "price": "price"}
_EXECUTE_SOURCES = {"order_ref": "order_reference_number", "shares": "executed_shares",
                    "match_number": "match_number"}

# Per event type: event field -> the golden message field it is copied from.
# ``side`` is the buy/sell byte (the event keeps 1 for ``S``); one-byte
# codes land in the low byte of ``aux``, R's stock in all of it.  The locate
# and the timestamp of every message are added by COMMON_SOURCES.
EVENT_SOURCES: dict[str, dict[str, str]] = {
    "A": _ADD_SOURCES,
    "F": _ADD_SOURCES,
    "E": _EXECUTE_SOURCES,
    "C": {**_EXECUTE_SOURCES, "price": "execution_price", "aux": "printable"},
    "X": {"order_ref": "order_reference_number", "shares": "canceled_shares"},
    "D": {"order_ref": "order_reference_number"},
    "U": {"order_ref": "original_order_reference_number",
          "new_order_ref": "new_order_reference_number", "shares": "shares", "price": "price"},
    "P": {"order_ref": "order_reference_number", "side": "buy_sell_indicator",
          "shares": "shares", "price": "price", "match_number": "match_number"},
    "R": {"aux": "stock"},
    "H": {"aux": "trading_state"},
    "S": {"aux": "event_code"},
}
COMMON_SOURCES = {"stock_locate": "stock_locate", "timestamp": "timestamp"}
assert set(EVENT_SOURCES) == set(KIND_OF_TYPE)

_CLASS_OF_TYPE = {cls.TYPE: cls for cls in MESSAGE_CLASSES}


def _snake(class_name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name).lower()


# Type code -> its counter name ("add_order", "operational_halt", ...): names,
# not codes, because ITCH has both 'H' and 'h'.
TYPE_COUNTERS: dict[str, str] = {cls.TYPE: _snake(cls.__name__) for cls in MESSAGE_CLASSES}
GENERAL_COUNTERS = ("messages", "events") + DROP_REASONS + ("stale", "feed_b")
COUNTERS = GENERAL_COUNTERS + tuple(TYPE_COUNTERS.values())


def byte_span(type_code: str, golden_field: str) -> tuple[int, int]:
    """(offset, size) of a field in a message, type byte at offset 0."""
    fld = _CLASS_OF_TYPE[type_code].LAYOUT.field(golden_field)
    return fld.offset, fld.size


def event_spans(type_code: str) -> dict[str, tuple[int, int]]:
    """Event field -> (offset, size) in a message of ``type_code``."""
    sources = {**COMMON_SOURCES, **EVENT_SOURCES[type_code]}
    return {name: byte_span(type_code, golden) for name, golden in sources.items()}


_SPANS = {t: event_spans(t) for t in EVENT_SOURCES}
# Per type: (event field, first byte, byte past the last) of each copied field.
_FIELD_SLICES = {t: tuple((name, offset, offset + size) for name, (offset, size) in spans.items())
                 for t, spans in _SPANS.items()}
# Every copied field fits its event field, so an event as a dict of ints
# (process_fields) holds exactly the values of its ITCH_EVENT_DTYPE row.
assert all(size <= ITCH_EVENT_DTYPE[name].itemsize
           for spans in _SPANS.values() for name, (_, size) in spans.items())


@dataclass(frozen=True)
class ItchInput:
    """One message as the sequencer delivers it."""

    data: bytes
    seq: int = 0
    msg_index: int = 0
    feed: int = 0
    stale: bool = False

    @property
    def sideband(self) -> int:
        return pack_sideband(self.seq, self.msg_index, self.feed, self.stale)


@dataclass(frozen=True)
class SubscriptionEntry:
    """One row of the locate-subscription table."""

    locate: int
    enabled: bool = True

    def __post_init__(self):
        if not 0 <= self.locate < (1 << LOCATE_BITS):
            raise ValueError(f"stock locate {self.locate} does not fit {LOCATE_BITS} bits")


class Verdict(NamedTuple):
    """What the decoder makes of one message before subscription: ``reason``
    is ``event``, ``skipped`` or a drop reason; ``event`` is set for events."""

    reason: str
    type_code: str = ""
    event: dict | None = None


def judge(data: bytes, seq: int = 0, msg_index: int = 0) -> Verdict:
    """Classify one message and extract its event fields (no subscription)."""
    if not data:
        raise ValueError("an AXI-Stream packet has at least one byte")
    type_code = chr(data[0])
    spec_length = MESSAGE_SIZES.get(type_code)
    if spec_length is None:
        return Verdict("unknown_type")
    if len(data) < spec_length:
        return Verdict("truncated", type_code)
    if len(data) > spec_length:
        return Verdict("length_mismatch", type_code)
    slices = _FIELD_SLICES.get(type_code)
    if slices is None:
        return Verdict(SKIPPED, type_code)
    event = {"kind": KIND_OF_TYPE[type_code], "side": 0, "price": 0, "shares": 0,
             "order_ref": 0, "new_order_ref": 0, "match_number": 0, "aux": 0,
             "seq": seq, "msg_index": msg_index}
    for name, start, stop in slices:
        event[name] = int.from_bytes(data[start:stop], "big")
    if type_code in SIDED_TYPES:
        if event["side"] not in (SIDE_BUY, SIDE_SELL):
            return Verdict("bad_side", type_code)
        event["side"] = int(event["side"] == SIDE_SELL)
    return Verdict(EVENT, type_code, event)


def normalise_table(table: Sequence[SubscriptionEntry | None]
                    ) -> tuple[SubscriptionEntry | None, ...]:
    if len(table) > SUBSCRIPTION_ENTRIES:
        raise ValueError(f"the subscription table has {SUBSCRIPTION_ENTRIES} entries, "
                         f"got {len(table)}")
    return tuple(table) + (None,) * (SUBSCRIPTION_ENTRIES - len(table))


def event_row(event: dict) -> np.void:
    row = np.zeros((), ITCH_EVENT_DTYPE)
    for name in ITCH_EVENT_DTYPE.names:
        row[name] = event[name]
    return row[()]


@dataclass
class ItchDecoderModel:
    """The block: a subscription table, counters, messages in, events out."""

    table: Sequence[SubscriptionEntry | None] = ()
    pass_all_locates: bool = False
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    verdicts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))

    def __post_init__(self):
        self.table = normalise_table(self.table)

    def subscribed(self, locate: int) -> bool:
        return self.pass_all_locates or any(
            entry is not None and entry.enabled and entry.locate == locate for entry in self.table)

    def verdict(self, message: ItchInput) -> Verdict:
        """Judge one message as the block would, subscription included,
        without counting it."""
        return self._verdict(bytes(message.data), message.seq, message.msg_index)

    def _verdict(self, data: bytes, seq: int, msg_index: int) -> Verdict:
        verdict = judge(data, seq, msg_index)
        if verdict.reason == EVENT and verdict.type_code not in SUBSCRIPTION_EXEMPT \
                and not self.subscribed(verdict.event["stock_locate"]):
            return Verdict("unsubscribed", verdict.type_code)
        return verdict

    def process(self, message: ItchInput) -> np.void | None:
        """Judge and count one message; return its event row if one is emitted."""
        event = self.process_fields(message.data, message.seq, message.msg_index, message.feed,
                                    message.stale)
        return None if event is None else event_row(event)

    def process_fields(self, data: bytes, seq: int = 0, msg_index: int = 0, feed: int = 0,
                       stale: bool = False) -> dict | None:
        """:meth:`process` on a message given field by field; the event, if
        one is emitted, as a dict of the values its row would hold (the
        order book takes either), without building a numpy row."""
        verdict = self._verdict(bytes(data), seq, msg_index)
        reason = verdict.reason
        self.verdicts[reason] += 1
        counters = self.counters
        counted = ["messages"]
        if stale:
            counted.append("stale")
        if feed:
            counted.append("feed_b")
        if reason in DROP_REASONS:
            counted.append(reason)
        if reason not in ("unknown_type", "truncated", "length_mismatch"):
            counted.append(TYPE_COUNTERS[verdict.type_code])
        if reason == EVENT:
            counted.append("events")
        for name in counted:
            counters[name] = (counters[name] + 1) & COUNTER_MASK
        if reason != EVENT:
            return None
        event = verdict.event
        event["stale"] = int(stale)
        return event

    def run(self, messages: Iterable[ItchInput]) -> np.ndarray:
        rows = [row for row in map(self.process, messages) if row is not None]
        return np.array(rows, dtype=ITCH_EVENT_DTYPE)

    def sticky_status(self) -> int:
        """The DROP_STATUS bits a freshly reset block would show now."""
        return sum(1 << i for i, name in enumerate(STICKY) if self.counters[name])

    def _count(self, name: str) -> None:
        self.counters[name] = (self.counters[name] + 1) & COUNTER_MASK

"""Nasdaq OUCH 5.0 order entry messages (the UserRefNum / options-appendage
generation of OUCH), client-to-exchange ("inbound") and exchange-to-client
("outbound").

OUCH rides SoupBinTCP: inbound messages are the payload of Unsequenced Data
packets, outbound ones of Sequenced Data packets (:func:`decode_from_soup`).

Data types (specification section 1 "Data Types"):

* integers are unsigned big endian unless stated otherwise;
* alpha fields are ASCII, left justified and padded with spaces;
* Price is 8 bytes with 4 implied decimal places (:data:`PRICE_DECIMALS`),
  unsigned; the market-order price for a cross is :data:`MARKET_PRICE`;
  the signed 4-byte prices of the peg offset options keep 4 decimals too;
* timestamps are 8-byte nanoseconds since midnight;
* UserRefNum is a 4-byte unsigned transaction id, increasing per port.

Options appendage
-----------------
Every message except System Event ends with a 2-byte Appendage Length and
that many bytes of TagValue elements; each element is a 1-byte length
(counting the tag byte and the value), a 1-byte option tag and the value.
The decoded appendage is an :class:`Appendage`: an ordered dict from option
name to value in wire order.  Options with tags this module does not know are
kept as raw value bytes under the key ``tag_<n>`` so newer exchange releases
still decode and re-encode byte for byte.  A known option whose element
length disagrees with the option's width, a zero element length, or an
element running past the appendage raises :class:`~host.protocols.errors.BadLength`.

Earlier revisions of the specification sent some messages without the
Appendage Length (for instance Cancel Order Request, Order Canceled,
Rejected).  For those types (``APPENDAGE_OPTIONAL`` on the class) a message
that ends right after its fixed fields decodes with ``appendage=None`` and
encodes back without the length field; for all other types the Appendage
Length is required.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Iterable

from host.protocols.errors import (
    BadFieldValue,
    BadLength,
    EncodeError,
    LengthMismatch,
    TruncatedMessage,
)
from host.protocols.layout import Message, Registry, message

PROTOCOL = "OUCH 5.0"
PRICE_DECIMALS = 4
#: Highest limit price the exchange accepts: $199,999.9900.
MAX_LIMIT_PRICE = 1_999_999_900
#: Price that flags a market order for a cross: $214,748.3647.
MARKET_PRICE = 0x7FFFFFFF
_U16 = struct.Struct(">H")


# -- options appendage ------------------------------------------------------------

@dataclass(frozen=True)
class OptionSpec:
    tag: int
    name: str
    kind: str   # "uint" | "int" | "price" | "char" | "alpha"
    width: int  # value bytes


#: Appendix A of the specification: option tag -> value layout.
OPTIONS: dict[int, OptionSpec] = {s.tag: s for s in (
    OptionSpec(1, "secondary_ord_ref_num", "uint", 8),
    OptionSpec(2, "firm", "alpha", 4),
    OptionSpec(3, "min_qty", "uint", 4),
    OptionSpec(4, "customer_type", "char", 1),
    OptionSpec(5, "max_floor", "uint", 4),
    OptionSpec(6, "price_type", "char", 1),
    OptionSpec(7, "peg_offset", "int", 4),
    OptionSpec(9, "discretion_price", "price", 8),
    OptionSpec(10, "discretion_price_type", "char", 1),
    OptionSpec(11, "discretion_peg_offset", "int", 4),
    OptionSpec(12, "post_only", "char", 1),
    OptionSpec(13, "random_reserves", "uint", 4),
    OptionSpec(14, "route", "alpha", 4),
    OptionSpec(15, "expire_time", "uint", 4),
    OptionSpec(16, "trade_now", "char", 1),
    OptionSpec(17, "handle_inst", "char", 1),
    OptionSpec(18, "bbo_weight_indicator", "char", 1),
    OptionSpec(22, "display_quantity", "uint", 4),
    OptionSpec(23, "display_price", "price", 8),
    OptionSpec(24, "group_id", "uint", 2),
    OptionSpec(25, "shares_located", "char", 1),
    OptionSpec(26, "locate_broker", "alpha", 4),
    OptionSpec(27, "side", "char", 1),
    OptionSpec(28, "user_ref_idx", "uint", 1),
    OptionSpec(29, "aiq_strategy", "char", 1),
    OptionSpec(30, "aiq_group_id", "alpha", 2),
)}
OPTIONS_BY_NAME: dict[str, OptionSpec] = {s.name: s for s in OPTIONS.values()}
_UNKNOWN_PREFIX = "tag_"


def _unknown_tag(key: str) -> int | None:
    """The tag number of a ``tag_<n>`` key, or None if ``key`` is not one."""
    if not key.startswith(_UNKNOWN_PREFIX):
        return None
    digits = key[len(_UNKNOWN_PREFIX):]
    if not digits.isascii() or not digits.isdigit():
        return None
    return int(digits)


def _decode_option(spec: OptionSpec, raw: bytes) -> Any:
    if spec.kind in ("uint", "price"):
        return int.from_bytes(raw, "big")
    if spec.kind == "int":
        return int.from_bytes(raw, "big", signed=True)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadFieldValue(f"option {spec.name}: non-ASCII bytes {raw!r}") from exc
    # A 1-byte code keeps its space: blank is a meaningful value there.
    return text if spec.kind == "char" else text.rstrip(" ")


def _encode_option(spec: OptionSpec, value: Any) -> bytes:
    if spec.kind in ("uint", "price", "int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise EncodeError(f"option {spec.name}: expected integer, got {value!r}")
        signed = spec.kind == "int"
        try:
            return value.to_bytes(spec.width, "big", signed=signed)
        except OverflowError as exc:
            raise EncodeError(
                f"option {spec.name}: {value} does not fit {spec.width} bytes") from exc
    if not isinstance(value, str):
        raise EncodeError(f"option {spec.name}: expected text, got {type(value).__name__}")
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"option {spec.name}: not ASCII: {value!r}") from exc
    if len(raw) > spec.width or (spec.kind == "char" and len(raw) != 1):
        raise EncodeError(f"option {spec.name}: {value!r} does not fit {spec.width} bytes")
    return raw.ljust(spec.width, b" ")


class Appendage(dict):
    """The options of one message: option name -> value, in wire order.

    Known options use the names of :data:`OPTIONS`; an option with an unknown
    tag ``n`` is kept as its raw value bytes under the key ``tag_<n>``.
    """

    def encode(self) -> bytes:
        """The TagValue elements (without the Appendage Length)."""
        out = bytearray()
        for key, value in self.items():
            spec = OPTIONS_BY_NAME.get(key)
            if spec is not None:
                tag, raw = spec.tag, _encode_option(spec, value)
            else:
                tag = _unknown_tag(key)
                if tag is None or not 0 <= tag <= 0xFF:
                    raise EncodeError(f"{PROTOCOL}: unknown option {key!r}")
                if tag in OPTIONS:
                    # Would decode under its proper name: refuse the alias.
                    raise EncodeError(
                        f"{PROTOCOL}: option tag {tag} is {OPTIONS[tag].name!r}, not {key!r}")
                if not isinstance(value, (bytes, bytearray)):
                    raise EncodeError(f"option {key}: expected bytes, got {type(value).__name__}")
                raw = bytes(value)
            if len(raw) + 1 > 0xFF:
                raise EncodeError(f"option {key}: value of {len(raw)} bytes is too long")
            out.append(len(raw) + 1)
            out.append(tag)
            out += raw
        return bytes(out)

    @classmethod
    def decode(cls, buf, start: int, end: int) -> "Appendage":
        """Parse the TagValue elements occupying exactly ``buf[start:end]``."""
        options = cls()
        pos = start
        while pos < end:
            element_length = buf[pos]
            if element_length == 0:
                raise BadLength(f"{PROTOCOL}: TagValue element of length 0 at byte {pos}")
            stop = pos + 1 + element_length
            if stop > end:
                raise BadLength(
                    f"{PROTOCOL}: TagValue element at byte {pos} claims {element_length} "
                    f"bytes, only {end - pos - 1} left in the appendage")
            tag = buf[pos + 1]
            raw = bytes(buf[pos + 2:stop])
            spec = OPTIONS.get(tag)
            if spec is None:
                key, value = f"{_UNKNOWN_PREFIX}{tag}", raw
            else:
                if len(raw) != spec.width:
                    raise BadLength(
                        f"{PROTOCOL}: option {spec.name} (tag {tag}) has {len(raw)} value "
                        f"bytes, the specification gives {spec.width}")
                key, value = spec.name, _decode_option(spec, raw)
            if key in options:
                raise BadFieldValue(f"{PROTOCOL}: option tag {tag} appears twice")
            options[key] = value
            pos = stop
        return options

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.hex() if isinstance(v, (bytes, bytearray)) else v)
                for k, v in self.items()}

    def __repr__(self):
        return f"Appendage({dict.__repr__(self)})"


class AppendageField:
    """The layout tail of an OUCH message: Appendage Length + TagValue elements.

    ``optional``: the Appendage Length itself may be absent (value None).
    """

    name = "appendage"

    def __init__(self, optional: bool):
        self.optional = optional

    def default(self) -> Appendage:
        return Appendage()

    def decode(self, buf, start: int, end: int) -> Appendage | None:
        available = end - start
        if available == 0 and self.optional:
            return None
        if available < 2:
            raise TruncatedMessage(f"{PROTOCOL} appendage length", 2, available)
        (length,) = _U16.unpack_from(buf, start)
        if available - 2 < length:
            raise TruncatedMessage(f"{PROTOCOL} appendage", length, available - 2)
        if available - 2 > length:
            raise LengthMismatch(f"{PROTOCOL} appendage", length, available - 2)
        return Appendage.decode(buf, start + 2, end)

    def encode(self, value) -> bytes:
        if value is None:
            if self.optional:
                return b""
            raise EncodeError(f"{PROTOCOL}: this message requires an appendage")
        if not isinstance(value, Appendage):
            if not isinstance(value, dict):
                raise EncodeError(
                    f"{PROTOCOL}: appendage must be a dict, got {type(value).__name__}")
            value = Appendage(value)
        body = value.encode()
        if len(body) > 0xFFFF:
            raise EncodeError(f"{PROTOCOL}: appendage of {len(body)} bytes is too long")
        return _U16.pack(len(body)) + body


_REQUIRED = AppendageField(optional=False)
_OPTIONAL = AppendageField(optional=True)


class OuchMessage(Message):
    """Base of the OUCH 5.0 messages."""

    APPENDAGE_OPTIONAL: bool = False
    __slots__ = ()


# -- compiled constructors and encoders -------------------------------------------
#
# Orders are built and encoded once per request on the send path, where the
# generic, table-driven Message.__init__ and Layout.pack cost tens of
# microseconds.  Each OUCH class gets a constructor and an encoder generated
# from the same layout declaration: the encoder packs every field with one
# precompiled struct and, for anything it does not handle itself (a value of
# an unexpected type or out of range, a non-empty appendage), hands the
# message to the generic encoder, so errors and bytes stay exactly the
# generic ones.

_MISSING = object()
#: Alpha values seen per width -> their padded wire bytes (bounded).
_ALPHA_CACHE_LIMIT = 4096
_EMPTY_APPENDAGE = _U16.pack(0)


def _alpha_bytes(cache: dict, width: int, value) -> bytes | None:
    """Padded bytes of a valid text value (cached), or None to let the
    generic encoder raise its error."""
    if value.__class__ is not str:
        return None
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        return None
    if len(raw) > width:
        return None
    raw = raw.ljust(width, b" ")
    if len(cache) < _ALPHA_CACHE_LIMIT:
        cache[value] = raw
    return raw


def _compile(cls: type) -> None:
    layout = cls.LAYOUT
    names = layout.names
    tail = cls.TAIL
    env: dict[str, Any] = {"_generic_encode": Message.encode, "_MISSING": _MISSING,
                           "Appendage": Appendage, "_alpha_bytes": _alpha_bytes,
                           "_EMPTY": _EMPTY_APPENDAGE, "_tail": tail,
                           "_struct": struct.Struct(">c" + layout.struct.format.lstrip(">")),
                           "_type": cls.TYPE.encode("ascii")}
    params = list(names) + ([f"{tail.name}=_MISSING"] if tail is not None else [])
    init = [f"def __init__(self, {', '.join(params)}):"]
    init += [f"    self.{n} = {n}" for n in names]
    if tail is not None:
        init.append(f"    self.{tail.name} = _tail.default() if {tail.name} is _MISSING "
                    f"else {tail.name}")
    if len(init) == 1:
        init.append("    pass")
    encode = ["def encode(self):"]
    args = ["_type"]
    for i, f in enumerate(layout.fields):
        encode.append(f"    v{i} = self.{f.name}")
        if f.is_alpha:
            env[f"_cache{i}"] = {}
            encode.append(f"    b{i} = _cache{i}.get(v{i}) if v{i}.__class__ is str else None")
            encode.append(f"    if b{i} is None:")
            encode.append(f"        b{i} = _alpha_bytes(_cache{i}, {f.size}, v{i})")
            encode.append(f"        if b{i} is None: return _generic_encode(self)")
            args.append(f"b{i}")
        else:
            low, high = f.int_range
            encode.append(f"    if v{i}.__class__ is not int or not {low} <= v{i} <= {high}:")
            encode.append("        return _generic_encode(self)")
            args.append(f"v{i}")
    encode.append(f"    body = _struct.pack({', '.join(args)})")
    if tail is None:
        encode.append("    return body")
    else:
        encode.append(f"    tail = self.{tail.name}")
        encode.append("    if tail.__class__ is Appendage and not tail:")
        encode.append("        return body + _EMPTY")
        encode.append("    return body + _tail.encode(tail)")
    exec("\n".join(init) + "\n\n" + "\n".join(encode), env)
    cls.__init__ = env["__init__"]
    cls.encode = env["encode"]


def _declare(class_name: str, type_code: str, name: str,
             fields: list[tuple[str, str]], appendage: str) -> type:
    """``appendage``: "required", "optional" (Appendage Length may be absent)
    or "none" (System Event)."""
    tail = {"required": _REQUIRED, "optional": _OPTIONAL, "none": None}[appendage]
    cls = message(class_name, type_code, fields, name=name, tail=tail, base=OuchMessage)
    cls.APPENDAGE_OPTIONAL = appendage == "optional"
    _compile(cls)
    return cls


# -- inbound: client -> exchange (specification section 2) -----------------------

EnterOrder = _declare("EnterOrder", "O", "Enter Order", [
    ("user_ref_num", "u32"),
    ("side", "alpha1"),
    ("quantity", "u32"),
    ("symbol", "alpha8"),
    ("price", "u64"),
    ("time_in_force", "alpha1"),
    ("display", "alpha1"),
    ("capacity", "alpha1"),
    ("intermarket_sweep_eligibility", "alpha1"),
    ("cross_type", "alpha1"),
    ("cl_ord_id", "alpha14"),
], "required")

ReplaceOrderRequest = _declare("ReplaceOrderRequest", "U", "Replace Order Request", [
    ("orig_user_ref_num", "u32"),
    ("user_ref_num", "u32"),
    ("quantity", "u32"),
    ("price", "u64"),
    ("time_in_force", "alpha1"),
    ("display", "alpha1"),
    ("intermarket_sweep_eligibility", "alpha1"),
    ("cl_ord_id", "alpha14"),
], "required")

CancelOrderRequest = _declare("CancelOrderRequest", "X", "Cancel Order Request", [
    ("user_ref_num", "u32"),
    ("quantity", "u32"),
], "optional")

ModifyOrderRequest = _declare("ModifyOrderRequest", "M", "Modify Order Request", [
    ("user_ref_num", "u32"),
    ("side", "alpha1"),
    ("quantity", "u32"),
], "optional")

MassCancelRequest = _declare("MassCancelRequest", "C", "Mass Cancel Request", [
    ("user_ref_num", "u32"),
    ("firm", "alpha4"),
    ("symbol", "alpha8"),
], "required")

DisableOrderEntryRequest = _declare(
    "DisableOrderEntryRequest", "D", "Disable Order Entry Request", [
        ("user_ref_num", "u32"),
        ("firm", "alpha4"),
    ], "required")

EnableOrderEntryRequest = _declare(
    "EnableOrderEntryRequest", "E", "Enable Order Entry Request", [
        ("user_ref_num", "u32"),
        ("firm", "alpha4"),
    ], "required")

AccountQueryRequest = _declare("AccountQueryRequest", "Q", "Account Query Request", [],
                               "optional")

# -- outbound: exchange -> client (specification section 3) ----------------------

SystemEvent = _declare("SystemEvent", "S", "System Event", [
    ("timestamp", "u64"),
    ("event_code", "alpha1"),
], "none")

OrderAccepted = _declare("OrderAccepted", "A", "Order Accepted", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
    ("side", "alpha1"),
    ("quantity", "u32"),
    ("symbol", "alpha8"),
    ("price", "u64"),
    ("time_in_force", "alpha1"),
    ("display", "alpha1"),
    ("order_reference_number", "u64"),
    ("capacity", "alpha1"),
    ("intermarket_sweep_eligibility", "alpha1"),
    ("cross_type", "alpha1"),
    ("order_state", "alpha1"),
    ("cl_ord_id", "alpha14"),
], "required")

OrderReplaced = _declare("OrderReplaced", "U", "Order Replaced", [
    ("timestamp", "u64"),
    ("orig_user_ref_num", "u32"),
    ("user_ref_num", "u32"),
    ("side", "alpha1"),
    ("quantity", "u32"),
    ("symbol", "alpha8"),
    ("price", "u64"),
    ("time_in_force", "alpha1"),
    ("display", "alpha1"),
    ("order_reference_number", "u64"),
    ("capacity", "alpha1"),
    ("intermarket_sweep_eligibility", "alpha1"),
    ("cross_type", "alpha1"),
    ("order_state", "alpha1"),
    ("cl_ord_id", "alpha14"),
], "required")

OrderCanceled = _declare("OrderCanceled", "C", "Order Canceled", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
    ("quantity", "u32"),
    ("reason", "alpha1"),
], "optional")

AiqCanceled = _declare("AiqCanceled", "D", "AIQ Canceled", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
    ("decrement_shares", "u32"),
    ("reason", "alpha1"),
    ("quantity_prevented_from_trading", "u32"),
    ("execution_price", "u64"),
    ("liquidity_flag", "alpha1"),
    ("aiq_strategy", "alpha1"),
], "optional")

OrderExecuted = _declare("OrderExecuted", "E", "Order Executed", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
    ("quantity", "u32"),
    ("price", "u64"),
    ("liquidity_flag", "alpha1"),
    ("match_number", "u64"),
], "optional")

BrokenTrade = _declare("BrokenTrade", "B", "Broken Trade", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
    ("match_number", "u64"),
    ("reason", "alpha1"),
    ("cl_ord_id", "alpha14"),
], "optional")

OrderRejected = _declare("OrderRejected", "J", "Rejected", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
    ("reason", "u16"),
    ("cl_ord_id", "alpha14"),
], "optional")

CancelPending = _declare("CancelPending", "P", "Cancel Pending", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
], "optional")

CancelReject = _declare("CancelReject", "I", "Cancel Reject", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
], "optional")

OrderPriorityUpdate = _declare("OrderPriorityUpdate", "T", "Order Priority Update", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
    ("price", "u64"),
    ("display", "alpha1"),
    ("order_reference_number", "u64"),
], "optional")

OrderModified = _declare("OrderModified", "M", "Order Modified", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
    ("side", "alpha1"),
    ("quantity", "u32"),
], "optional")

OrderRestated = _declare("OrderRestated", "R", "Order Restated", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
    ("reason", "alpha1"),
], "required")

MassCancelResponse = _declare("MassCancelResponse", "X", "Mass Cancel Response", [
    ("timestamp", "u64"),
    ("user_ref_num", "u32"),
    ("firm", "alpha4"),
    ("symbol", "alpha8"),
], "required")

DisableOrderEntryResponse = _declare(
    "DisableOrderEntryResponse", "G", "Disable Order Entry Response", [
        ("timestamp", "u64"),
        ("user_ref_num", "u32"),
        ("firm", "alpha4"),
    ], "required")

EnableOrderEntryResponse = _declare(
    "EnableOrderEntryResponse", "K", "Enable Order Entry Response", [
        ("timestamp", "u64"),
        ("user_ref_num", "u32"),
        ("firm", "alpha4"),
    ], "required")

AccountQueryResponse = _declare("AccountQueryResponse", "Q", "Account Query Response", [
    ("timestamp", "u64"),
    ("next_user_ref_num", "u32"),
], "optional")

INBOUND_MESSAGES = (
    EnterOrder, ReplaceOrderRequest, CancelOrderRequest, ModifyOrderRequest,
    MassCancelRequest, DisableOrderEntryRequest, EnableOrderEntryRequest,
    AccountQueryRequest,
)
OUTBOUND_MESSAGES = (
    SystemEvent, OrderAccepted, OrderReplaced, OrderCanceled, AiqCanceled,
    OrderExecuted, BrokenTrade, OrderRejected, CancelPending, CancelReject,
    OrderPriorityUpdate, OrderModified, OrderRestated, MassCancelResponse,
    DisableOrderEntryResponse, EnableOrderEntryResponse, AccountQueryResponse,
)
OUCH_INBOUND = Registry(f"{PROTOCOL} inbound", INBOUND_MESSAGES)
OUCH_OUTBOUND = Registry(f"{PROTOCOL} outbound", OUTBOUND_MESSAGES)


def decode_inbound(buf, offset: int = 0, end: int | None = None) -> Message:
    """Decode one client-to-exchange message occupying ``buf[offset:end]``."""
    return OUCH_INBOUND.decode(buf, offset, end)


def decode_outbound(buf, offset: int = 0, end: int | None = None) -> Message:
    """Decode one exchange-to-client message occupying ``buf[offset:end]``."""
    return OUCH_OUTBOUND.decode(buf, offset, end)


def decode_from_soup(packet: Message) -> Message | None:
    """The OUCH message carried by a SoupBinTCP data packet, or None for
    packets that carry none (logins, heartbeats, ...)."""
    # Imported here: soupbintcp does not depend on OUCH and stays importable alone.
    from host.protocols.soupbintcp import SequencedData, UnsequencedData

    if isinstance(packet, SequencedData):
        return decode_outbound(packet.message)
    if isinstance(packet, UnsequencedData):
        return decode_inbound(packet.message)
    return None


def fixed_length(cls: type) -> int:
    """The specification's fixed message length: the fields plus, where the
    message has one, the 2-byte Appendage Length."""
    return cls.LAYOUT.size + (0 if cls.TAIL is None else 2)


def iter_options(appendage: Appendage | None) -> Iterable[tuple[int, str, Any]]:
    """(tag, name, value) for each option of an appendage, in wire order."""
    if not appendage:
        return
    for key, value in appendage.items():
        spec = OPTIONS_BY_NAME.get(key)
        yield (spec.tag if spec is not None else _unknown_tag(key)), key, value


# -- code tables (human-readable meanings of the 1- and 2-byte codes) -------------

SIDES = {"B": "Buy", "S": "Sell", "T": "Sell short", "E": "Sell short exempt"}
TIME_IN_FORCE = {"0": "Day", "3": "Immediate or cancel", "5": "Extended hours (GTX)",
                 "6": "Good till time (GTT)", "E": "After hours"}
DISPLAY = {"Y": "Visible", "N": "Hidden", "A": "Attributable", "Z": "Conformant"}
CAPACITY = {"A": "Agency", "P": "Principal", "R": "Riskless principal", "O": "Other"}
INTERMARKET_SWEEP = {"Y": "Eligible", "N": "Not eligible"}
CROSS_TYPES = {"N": "Continuous market", "O": "Opening cross", "C": "Closing cross",
               "H": "Halt/IPO cross", "S": "Supplemental", "R": "Retail",
               "E": "Extended life", "A": "After hours close"}
ORDER_STATES = {"L": "Live", "D": "Dead"}
EVENT_CODES = {"S": "Start of day: the exchange accepts orders",
               "E": "End of day: no new orders (breaks and cancels may still follow)"}
CANCEL_REASONS = {
    "D": "Regulatory restriction",
    "E": "Closed: day order arrived after the closing cross",
    "F": "Post only: would have been price slid for Reg NMS",
    "G": "Post only: would have been price slid by a displayed contra order",
    "H": "Halted: symbol still halted after the opening cross",
    "I": "Immediate or cancel",
    "K": "Market collars",
    "Q": "Self match prevention",
    "S": "Supervisory",
    "T": "Timeout: time in force expired",
    "U": "User requested",
    "X": "Open protection threshold",
    "Z": "System cancel",
    "e": "Direct listing capital raise: exceeds shares offered",
}
BROKEN_TRADE_REASONS = {"E": "Erroneous", "C": "Consent", "S": "Supervisory",
                        "X": "External"}
RESTATED_REASONS = {"R": "Refresh of display (order with reserve)",
                    "P": "Update of displayed price"}
PRICE_TYPES = {"L": "Limit", "P": "Market peg", "M": "Midpoint peg", "R": "Primary peg",
               "Q": "Market maker peg", "m": "Midpoint"}
REJECT_REASONS = {
    0x01: "Quote unavailable",
    0x02: "Destination closed",
    0x03: "Invalid display",
    0x04: "Invalid max floor",
    0x05: "Invalid peg type",
    0x06: "Fat finger",
    0x07: "Halted",
    0x08: "ISO not allowed",
    0x09: "Invalid side",
    0x0A: "Processing error",
    0x0B: "Cancel pending",
    0x0C: "Firm not authorized",
    0x0D: "Invalid min quantity",
    0x0E: "No closing reference price",
    0x0F: "Other",
    0x10: "Cancel not allowed",
    0x11: "Pegging not allowed",
    0x12: "Crossed market",
    0x13: "Invalid quantity",
    0x14: "Invalid cross order",
    0x15: "Replace not allowed",
    0x16: "Routing not allowed",
    0x17: "Invalid symbol",
    0x18: "Test",
    0x19: "Late LOC too aggressive",
    0x1A: "Retail not allowed",
    0x1B: "Invalid midpoint post only price",
    0x1C: "Invalid destination",
    0x1D: "Invalid price",
    0x1E: "Shares exceed threshold",
    0x1F: "Exceeds maximum allowed notional value",
    0x20: "Risk: aggregate exposure exceeded",
    0x21: "Risk: market impact",
    0x22: "Risk: restricted stock",
    0x23: "Risk: short sell restricted",
    0x24: "Risk: ISO not allowed",
    0x25: "Risk: exceeds ADV limit",
    0x26: "Risk: fat finger",
    0x27: "Risk: locate required",
    0x28: "Risk: symbol message rate restriction",
    0x29: "Risk: port message rate restriction",
    0x2A: "Risk: duplicate message rate restriction",
    0x2B: "Risk: short sell not allowed",
    0x2C: "Risk: market order not allowed",
    0x2D: "Risk: pre-market not allowed",
    0x2E: "Risk: post-market not allowed",
    0x2F: "Risk: short sell exempt not allowed",
    0x30: "Risk: single order notional exceeded",
    0x31: "Risk: max quantity exceeded",
    0x32: "Reg SHO state not available",
    0x33: "Risk: IPO market buy not allowed",
    0x40: "Invalid AIQ",
}


def reject_reason_text(code: int) -> str:
    return REJECT_REASONS.get(code, f"Unknown reject reason 0x{code:04X}")

"""SoupBinTCP 3.00: the session layer that carries OUCH over a TCP connection.

Every logical packet on the byte stream is a 2-byte big-endian packet length
(counting the packet-type byte and the payload, not the length field itself),
the packet-type byte, then the payload.  Logical packets do not line up with
TCP segments, so :class:`SoupFramer` rebuilds them from arbitrary reads.

Packet classes are declared with :func:`host.protocols.layout.message`; their
``encode()`` gives the type byte plus payload, :func:`encode_packet` adds the
length prefix.  Field conventions of the specification:

* username and password are left justified and padded with spaces;
* session names are right justified (padded with spaces on the left); an all
  blank requested session means "the session that is currently active";
* sequence numbers are decimal ASCII, right justified in 20 bytes.  Decoding
  accepts padding on either side (some peers left justify) and yields ``int``;
  encoding always right justifies, so a left-justified field does not round
  trip byte for byte even though its value does.

Which packet types are legal depends on who sends them: :data:`SERVER_PACKETS`
(sent by the server) and :data:`CLIENT_PACKETS` (sent by the client).  Debug
packets are legal in both directions.
"""
from __future__ import annotations

import struct
from typing import Any, Callable

from host.protocols.errors import (
    BadFieldValue,
    BadLength,
    DecodeError,
    EncodeError,
    LengthMismatch,
    TruncatedMessage,
)
from host.protocols.layout import Message, Registry, message

PROTOCOL = "SoupBinTCP"
LENGTH_PREFIX = struct.Struct(">H")
#: The largest value the 2-byte length field can hold.
MAX_PACKET_LENGTH = 0xFFFF
#: Default guard for :class:`SoupFramer`: OUCH packets stay far below this,
#: so a larger length almost certainly means the stream is out of step.
DEFAULT_MAX_PACKET_LENGTH = 4096

#: Who sent a packet.
SERVER = "server"
CLIENT = "client"

LOGIN_REJECT_REASONS = {
    "A": "Not authorized: invalid username or password",
    "S": "Session not available",
}


class FramingError(BadLength):
    """The length prefix cannot be right (zero, or above the framer's limit);
    nothing after it on the stream can be trusted."""


# -- payload tails --------------------------------------------------------------

class _BinaryPayload:
    """Everything after the type byte, kept as raw bytes (an upper-layer message)."""

    def __init__(self, name: str):
        self.name = name

    def default(self) -> bytes:
        return b""

    def decode(self, buf, start: int, end: int) -> bytes:
        return bytes(buf[start:end])

    def encode(self, value) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(f"{self.name}: expected bytes, got {type(value).__name__}")
        return bytes(value)


class _TextPayload:
    """Everything after the type byte as ASCII text (debug packets)."""

    def __init__(self, name: str):
        self.name = name

    def default(self) -> str:
        return ""

    def decode(self, buf, start: int, end: int) -> str:
        raw = bytes(buf[start:end])
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise BadFieldValue(f"{self.name}: non-ASCII bytes {raw[:32]!r}") from exc

    def encode(self, value) -> bytes:
        if not isinstance(value, str):
            raise EncodeError(f"{self.name}: expected text, got {type(value).__name__}")
        try:
            return value.encode("ascii")
        except UnicodeEncodeError as exc:
            raise EncodeError(f"{self.name}: not ASCII: {value!r}") from exc


# -- packet base ----------------------------------------------------------------

class SoupPacket(Message):
    """Base of the SoupBinTCP packets.

    Adds the two ASCII conventions the generic layout does not know:
    ``NUMERIC_FIELDS`` hold right-justified decimal numbers (``int`` in
    Python) and ``RIGHT_JUSTIFIED_FIELDS`` hold text padded on the left.
    """

    NUMERIC_FIELDS: tuple[str, ...] = ()
    RIGHT_JUSTIFIED_FIELDS: tuple[str, ...] = ()
    __slots__ = ()

    def encode(self) -> bytes:
        values: list[Any] = []
        for f in self.LAYOUT.fields:
            v = getattr(self, f.name)
            if f.name in self.NUMERIC_FIELDS:
                v = _format_number(f.name, f.size, v)
            elif f.name in self.RIGHT_JUSTIFIED_FIELDS:
                v = _right_justify(f.name, f.size, v)
            values.append(v)
        out = self.TYPE.encode("ascii") + self.LAYOUT.pack(values)
        if self.TAIL is not None:
            out += self.TAIL.encode(getattr(self, self.TAIL.name))
        return out

    @classmethod
    def decode(cls, buf, offset: int = 0, end: int | None = None) -> "SoupPacket":
        obj = super().decode(buf, offset, end)
        for name in cls.NUMERIC_FIELDS:
            setattr(obj, name, _parse_number(name, getattr(obj, name)))
        for name in cls.RIGHT_JUSTIFIED_FIELDS:
            setattr(obj, name, getattr(obj, name).lstrip(" "))
        return obj

    def packet(self) -> bytes:
        """The packet as it goes on the stream, length prefix included."""
        return frame(self.encode())


def _format_number(name: str, width: int, value) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(f"field {name}: expected integer, got {value!r}")
    if value < 0 or value >= 10**width:
        raise EncodeError(f"field {name}: {value} does not fit {width} decimal digits")
    return str(value).rjust(width).encode("ascii")


def _right_justify(name: str, width: int, value) -> bytes:
    if not isinstance(value, str):
        raise EncodeError(f"field {name}: expected text, got {type(value).__name__}")
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"field {name}: not ASCII: {value!r}") from exc
    if len(raw) > width:
        raise EncodeError(f"field {name}: {value!r} longer than {width} bytes")
    return raw.rjust(width, b" ")


def _parse_number(name: str, text: str) -> int:
    digits = text.strip(" ")
    # str.isdigit() also accepts non-ASCII digits; the layout already
    # guaranteed ASCII, so only '0'-'9' can pass here.
    if not digits or not digits.isdigit():
        raise BadFieldValue(f"field {name}: {text!r} is not a decimal number")
    return int(digits)


def _packet(class_name, type_code, fields, *, name, tail=None, numeric=(), right=()):
    cls = message(class_name, type_code, fields, name=name, tail=tail, base=SoupPacket)
    cls.NUMERIC_FIELDS = tuple(numeric)
    cls.RIGHT_JUSTIFIED_FIELDS = tuple(right)
    return cls


# -- the packets (SoupBinTCP 3.00, section 2) -----------------------------------

Debug = _packet("Debug", "+", [], name="Debug", tail=_TextPayload("text"))

LoginAccepted = _packet(
    "LoginAccepted", "A",
    [("session", "alpha10"), ("sequence_number", "alpha20")],
    name="Login Accepted", numeric=("sequence_number",), right=("session",))

LoginRejected = _packet(
    "LoginRejected", "J", [("reject_reason_code", "alpha1")], name="Login Rejected")

SequencedData = _packet(
    "SequencedData", "S", [], name="Sequenced Data", tail=_BinaryPayload("message"))

ServerHeartbeat = _packet("ServerHeartbeat", "H", [], name="Server Heartbeat")

EndOfSession = _packet("EndOfSession", "Z", [], name="End of Session")

LoginRequest = _packet(
    "LoginRequest", "L",
    [("username", "alpha6"), ("password", "alpha10"),
     ("requested_session", "alpha10"), ("requested_sequence_number", "alpha20")],
    name="Login Request", numeric=("requested_sequence_number",),
    right=("requested_session",))

UnsequencedData = _packet(
    "UnsequencedData", "U", [], name="Unsequenced Data", tail=_BinaryPayload("message"))

ClientHeartbeat = _packet("ClientHeartbeat", "R", [], name="Client Heartbeat")

LogoutRequest = _packet("LogoutRequest", "O", [], name="Logout Request")

SERVER_PACKETS = Registry(
    f"{PROTOCOL} from server",
    [Debug, LoginAccepted, LoginRejected, SequencedData, ServerHeartbeat, EndOfSession])
CLIENT_PACKETS = Registry(
    f"{PROTOCOL} from client",
    [Debug, LoginRequest, UnsequencedData, ClientHeartbeat, LogoutRequest])
ALL_PACKETS = Registry(
    PROTOCOL,
    [Debug, LoginAccepted, LoginRejected, SequencedData, ServerHeartbeat, EndOfSession,
     LoginRequest, UnsequencedData, ClientHeartbeat, LogoutRequest])


def registry_for(direction: str | None) -> Registry:
    """Packets legal from ``direction`` (:data:`SERVER`, :data:`CLIENT`, or
    None for either)."""
    if direction is None:
        return ALL_PACKETS
    if direction == SERVER:
        return SERVER_PACKETS
    if direction == CLIENT:
        return CLIENT_PACKETS
    raise ValueError(f"direction must be {SERVER!r}, {CLIENT!r} or None, not {direction!r}")


# -- whole packets --------------------------------------------------------------

def frame(body: bytes) -> bytes:
    """Prefix a packet body (type byte + payload) with its length."""
    if not 1 <= len(body) <= MAX_PACKET_LENGTH:
        raise EncodeError(f"{PROTOCOL}: packet body of {len(body)} bytes cannot be framed")
    return LENGTH_PREFIX.pack(len(body)) + body


_UNSEQUENCED_HEAD = struct.Struct(">Hc")
_UNSEQUENCED_TYPE = b"U"


def unsequenced_packet(message: bytes) -> bytes:
    """The Unsequenced Data packet carrying ``message``, length prefix
    included: the bytes of ``UnsequencedData(message=message).packet()``
    without building the packet object (the order-entry send path)."""
    if message.__class__ is not bytes or len(message) >= MAX_PACKET_LENGTH:
        return UnsequencedData(message=message).packet()
    return _UNSEQUENCED_HEAD.pack(len(message) + 1, _UNSEQUENCED_TYPE) + message


def encode_packet(packet: Message) -> bytes:
    """Encode a packet object into its on-the-wire bytes, length prefix included."""
    return frame(packet.encode())


def decode_packet(buf, direction: str | None = None) -> Message:
    """Decode exactly one whole packet (length prefix included)."""
    registry = registry_for(direction)
    have = len(buf)
    if have < 2:
        raise TruncatedMessage(f"{PROTOCOL} length prefix", 2, have)
    (length,) = LENGTH_PREFIX.unpack_from(buf, 0)
    if length == 0:
        raise FramingError(f"{PROTOCOL}: zero packet length")
    if have - 2 < length:
        raise TruncatedMessage(PROTOCOL, length + 2, have)
    if have - 2 > length:
        raise LengthMismatch(PROTOCOL, length + 2, have)
    return registry.decode(buf, 2, have)


# -- stream deframer ------------------------------------------------------------

class SoupFramer:
    """Turns the byte stream of one TCP direction into SoupBinTCP packets.

    ``feed(data)`` accepts reads of any size, split or coalesced anywhere, and
    returns the packets completed by that read, in stream order.

    Two kinds of bad input:

    * A packet with a trustworthy length but bad content (unknown or
      wrong-direction type, wrong size for its type, malformed field) is
      dropped and counted in ``counts`` by the error's ``reason``
      (``errors="count"``, the default); with ``errors="raise"`` the error is
      raised instead.  Either way the framer stays in step: the bad packet
      has been consumed, and packets decoded before it in the same read are
      returned by the next ``feed()`` call.
    * A length prefix of zero or above ``max_packet_length`` breaks framing:
      nothing later on the stream can be trusted.  It is counted, raised as
      :class:`FramingError`, and the framer stops: later input is discarded
      (counted in ``discarded_bytes``) until :meth:`reset` is called for a new
      connection.
    """

    def __init__(self, direction: str | None = None, *,
                 max_packet_length: int = DEFAULT_MAX_PACKET_LENGTH,
                 errors: str = "count",
                 on_error: Callable[[DecodeError], None] | None = None):
        if errors not in ("count", "raise"):
            raise ValueError("errors must be 'count' or 'raise'")
        if not 1 <= max_packet_length <= MAX_PACKET_LENGTH:
            raise ValueError(f"max_packet_length must be in [1, {MAX_PACKET_LENGTH}]")
        self.direction = direction
        self.registry = registry_for(direction)
        self.max_packet_length = max_packet_length
        self.errors = errors
        self.on_error = on_error
        self.reset()

    def reset(self) -> None:
        """Forget all state, as for a new TCP connection (counters too)."""
        self._buf = bytearray()
        self._ready: list[Message] = []
        self.failed: FramingError | None = None
        self.packets = 0
        self.bytes_in = 0
        self.discarded_bytes = 0
        self.counts: dict[str, int] = {}

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole packet."""
        return len(self._buf)

    def _count(self, exc: DecodeError) -> None:
        self.counts[exc.reason] = self.counts.get(exc.reason, 0) + 1
        if self.on_error is not None:
            self.on_error(exc)

    def feed(self, data) -> list[Message]:
        self.bytes_in += len(data)
        if self.failed is not None:
            self.discarded_bytes += len(data)
            out, self._ready = self._ready, []
            return out
        buf = self._buf
        buf += data
        out, self._ready = self._ready, []
        pos = 0
        end = len(buf)
        try:
            while end - pos >= 2:
                length = (buf[pos] << 8) | buf[pos + 1]
                if length == 0 or length > self.max_packet_length:
                    what = "zero packet length" if length == 0 else (
                        f"packet length {length} above the limit {self.max_packet_length}")
                    exc = FramingError(f"{PROTOCOL}: {what}")
                    self._count(exc)
                    self.failed = exc
                    self.discarded_bytes += end - pos
                    pos = end
                    self._ready = out
                    out = []
                    raise exc
                stop = pos + 2 + length
                if stop > end:
                    break
                start, pos = pos + 2, stop
                try:
                    pkt = self.registry.decode(buf, start, stop)
                except DecodeError as exc:
                    self._count(exc)
                    if self.errors == "raise":
                        self._ready = out
                        out = []
                        raise
                    continue
                self.packets += 1
                out.append(pkt)
        finally:
            del buf[:pos]
        return out

"""MoldUDP64: the UDP framing that carries ITCH 5.0, and its request packet.

A downstream packet is a 20-byte header -- ``session`` (alpha10),
``sequence_number`` (u64, the sequence number of the first message) and
``message_count`` (u16) -- followed by ``message_count`` message blocks, each a
u16 big-endian length and that many bytes.  Two counts are special:

* 0 is a heartbeat; ``sequence_number`` is the next sequence number the
  server will send;
* 0xFFFF is end of session; ``sequence_number`` is again the next one.

So a data packet carries 1..0xFFFE messages.  Sequence numbers start at 1.
A request packet (sent by a receiver to the retransmission server) is
``session``, ``sequence_number`` (first message wanted) and
``requested_message_count``.

Decoding is strict: :func:`decode_packet` accepts a datagram only if it is
exactly a header plus the announced blocks, and otherwise raises one of the
DecodeError subclasses below, whose ``reason`` (see ``DROP_REASONS``) is the
key under which :func:`decode_or_count` and :func:`iter_packets` count it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from host.protocols.errors import BadLength, DecodeError, EncodeError, TruncatedMessage
from host.protocols.layout import message

HEADER_SIZE = 20
BLOCK_HEADER_SIZE = 2
HEARTBEAT_COUNT = 0
END_OF_SESSION_COUNT = 0xFFFF
MAX_MESSAGES_PER_PACKET = 0xFFFE  # 0xFFFF would read as end of session
MAX_MESSAGE_LENGTH = 0xFFFF
SESSION_LENGTH = 10
# What our generator packs into one datagram: safely under a 1500-byte MTU
# with IPv4/UDP headers and two VLAN tags.  Guidance, not a protocol limit.
MAX_UDP_PAYLOAD = 1400

MoldHeader = message("MoldHeader", None, [
    ("session", "alpha10"),
    ("sequence_number", "u64"),
    ("message_count", "u16"),
], name="MoldUDP64 header")

MoldRequest = message("MoldRequest", None, [
    ("session", "alpha10"),
    ("sequence_number", "u64"),
    ("requested_message_count", "u16"),
], name="MoldUDP64 request")

_HEADER_LAYOUT = MoldHeader.LAYOUT
assert _HEADER_LAYOUT.size == HEADER_SIZE


# -- errors -------------------------------------------------------------------
class HeaderTruncated(TruncatedMessage):
    """Fewer than 20 bytes: not even a header."""

    reason = "truncated"

    def __init__(self, have: int):
        super().__init__("MoldUDP64 header", HEADER_SIZE, have)


class BlockPastEnd(BadLength):
    """A block's length prefix, or the bytes it announces, run past the end."""

    reason = "block_past_end"


class ZeroLengthBlock(BadLength):
    """A message block of length 0: no ITCH message is empty."""

    reason = "zero_length_block"


class CountMismatch(DecodeError):
    """``message_count`` disagrees with the number of blocks present."""

    reason = "count_mismatch"


class TrailingBytes(DecodeError):
    """Bytes after the last announced block that do not form whole blocks."""

    reason = "trailing_bytes"


DROP_REASONS = (
    HeaderTruncated.reason,
    "bad_field",  # session is not ASCII
    BlockPastEnd.reason,
    ZeroLengthBlock.reason,
    CountMismatch.reason,
    TrailingBytes.reason,
)


# -- packets ------------------------------------------------------------------
@dataclass
class MoldPacket:
    """One downstream packet.  ``messages`` are the raw message blocks.

    An empty ``messages`` is a heartbeat unless ``end_of_session`` is set.
    """

    session: str
    sequence_number: int
    messages: list[bytes] = field(default_factory=list)
    end_of_session: bool = False

    @property
    def kind(self) -> str:
        if self.end_of_session:
            return "end_of_session"
        return "data" if self.messages else "heartbeat"

    @property
    def message_count(self) -> int:
        """The header's count field as it goes on the wire."""
        return END_OF_SESSION_COUNT if self.end_of_session else len(self.messages)

    @property
    def next_sequence_number(self) -> int:
        return self.sequence_number + len(self.messages)

    @property
    def encoded_size(self) -> int:
        return encoded_size(self.messages)

    @classmethod
    def heartbeat(cls, session: str, next_sequence_number: int) -> "MoldPacket":
        return cls(session, next_sequence_number, [])

    @classmethod
    def end_of_session_packet(cls, session: str, next_sequence_number: int) -> "MoldPacket":
        return cls(session, next_sequence_number, [], end_of_session=True)

    def iter_messages(self) -> Iterator[tuple[int, int, bytes]]:
        """(sequence number, index in packet, message bytes) for each block."""
        for i, msg in enumerate(self.messages):
            yield self.sequence_number + i, i, msg

    def encode(self) -> bytes:
        if self.end_of_session and self.messages:
            raise EncodeError("MoldUDP64: an end-of-session packet carries no messages")
        n = len(self.messages)
        if n > MAX_MESSAGES_PER_PACKET:
            raise EncodeError(
                f"MoldUDP64: {n} messages do not fit one packet (max {MAX_MESSAGES_PER_PACKET})")
        parts = [_HEADER_LAYOUT.pack((self.session, self.sequence_number, self.message_count))]
        for i, msg in enumerate(self.messages):
            size = len(msg)
            if size == 0:
                raise EncodeError(f"MoldUDP64: message {i} is empty")
            if size > MAX_MESSAGE_LENGTH:
                raise EncodeError(
                    f"MoldUDP64: message {i} is {size} bytes, longer than {MAX_MESSAGE_LENGTH}")
            parts.append(size.to_bytes(2, "big"))
            parts.append(bytes(msg))
        return b"".join(parts)


def encoded_size(messages: Sequence[bytes]) -> int:
    """Bytes on the wire of a packet carrying ``messages``."""
    return HEADER_SIZE + sum(BLOCK_HEADER_SIZE + len(m) for m in messages)


def encode_packet(session: str, sequence_number: int, messages: Sequence[bytes] = (),
                  *, end_of_session: bool = False) -> bytes:
    return MoldPacket(session, sequence_number, list(messages), end_of_session).encode()


def pack_messages(session: str, first_sequence_number: int, messages: Iterable[bytes],
                  max_payload: int = MAX_UDP_PAYLOAD) -> Iterator[MoldPacket]:
    """Group consecutive messages into as few packets as fit ``max_payload``."""
    seq = first_sequence_number
    batch: list[bytes] = []
    size = HEADER_SIZE
    for msg in messages:
        need = BLOCK_HEADER_SIZE + len(msg)
        if HEADER_SIZE + need > max_payload:
            raise EncodeError(
                f"MoldUDP64: a {len(msg)}-byte message cannot fit a {max_payload}-byte payload")
        if size + need > max_payload or len(batch) == MAX_MESSAGES_PER_PACKET:
            yield MoldPacket(session, seq, batch)
            seq += len(batch)
            batch, size = [], HEADER_SIZE
        batch.append(msg)
        size += need
    if batch:
        yield MoldPacket(session, seq, batch)


def _blocks_parse_whole(buf, pos: int, end: int) -> bool:
    """True if ``buf[pos:end]`` is one or more complete non-empty blocks."""
    if pos >= end:
        return False
    while pos < end:
        if pos + BLOCK_HEADER_SIZE > end:
            return False
        n = (int(buf[pos]) << 8) | int(buf[pos + 1])
        pos += BLOCK_HEADER_SIZE + n
        if n == 0 or pos > end:
            return False
    return True


def decode_packet(buf, offset: int = 0, end: int | None = None) -> MoldPacket:
    """Decode the MoldUDP64 packet that is exactly ``buf[offset:end]``."""
    if end is None:
        end = len(buf)
    end = min(end, len(buf))
    have = end - offset
    if offset < 0 or have < HEADER_SIZE:
        raise HeaderTruncated(max(have, 0))
    session, seq, count = _HEADER_LAYOUT.unpack(buf, offset)
    pos = offset + HEADER_SIZE
    messages: list[bytes] = []
    if count not in (HEARTBEAT_COUNT, END_OF_SESSION_COUNT):
        for i in range(count):
            if pos == end:
                raise CountMismatch(
                    f"MoldUDP64 seq {seq}: message_count {count} but only {i} blocks")
            if pos + BLOCK_HEADER_SIZE > end:
                raise BlockPastEnd(
                    f"MoldUDP64 seq {seq}: block {i} length prefix cut off at the end")
            n = (int(buf[pos]) << 8) | int(buf[pos + 1])
            if n == 0:
                raise ZeroLengthBlock(f"MoldUDP64 seq {seq}: block {i} has length 0")
            start = pos + BLOCK_HEADER_SIZE
            pos = start + n
            if pos > end:
                raise BlockPastEnd(
                    f"MoldUDP64 seq {seq}: block {i} of {n} bytes runs {pos - end} past the end")
            messages.append(bytes(buf[start:pos]))
    if pos != end:
        # Whole extra blocks mean the count is wrong; anything else is junk.
        if _blocks_parse_whole(buf, pos, end):
            raise CountMismatch(
                f"MoldUDP64 seq {seq}: message_count {count} but more blocks follow")
        raise TrailingBytes(f"MoldUDP64 seq {seq}: {end - pos} bytes after the last block")
    return MoldPacket(session, seq, messages, end_of_session=count == END_OF_SESSION_COUNT)


def decode_or_count(buf, counts: dict[str, int], offset: int = 0,
                    end: int | None = None) -> MoldPacket | None:
    """decode_packet, but a bad packet is counted under its reason and gives None."""
    try:
        return decode_packet(buf, offset, end)
    except DecodeError as exc:
        counts[exc.reason] = counts.get(exc.reason, 0) + 1
        return None


def iter_packets(payloads: Iterable, counts: dict[str, int]) -> Iterator[tuple[int, MoldPacket]]:
    """Yield (index, packet) for every payload that decodes; count the rest.

    The index is the payload's position in ``payloads`` so callers can find
    its timestamp and addresses again.
    """
    for i, payload in enumerate(payloads):
        packet = decode_or_count(payload, counts)
        if packet is not None:
            yield i, packet


# -- request packets ------------------------------------------------------------
def encode_request(session: str, sequence_number: int, requested_message_count: int) -> bytes:
    return MoldRequest(session, sequence_number, requested_message_count).encode()


def decode_request(buf, offset: int = 0, end: int | None = None):
    """Decode a request packet occupying exactly ``buf[offset:end]``."""
    if end is None:
        end = len(buf)
    return MoldRequest.decode(buf, offset, min(end, len(buf)))


__all__ = [
    "HEADER_SIZE", "BLOCK_HEADER_SIZE", "HEARTBEAT_COUNT", "END_OF_SESSION_COUNT",
    "MAX_MESSAGES_PER_PACKET", "MAX_MESSAGE_LENGTH", "MAX_UDP_PAYLOAD", "SESSION_LENGTH",
    "MoldHeader", "MoldRequest", "MoldPacket", "HeaderTruncated", "BlockPastEnd",
    "ZeroLengthBlock", "CountMismatch", "TrailingBytes", "DROP_REASONS",
    "encoded_size", "encode_packet", "pack_messages", "decode_packet", "decode_or_count",
    "iter_packets", "encode_request", "decode_request",
]

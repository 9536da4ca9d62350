"""Journal record layouts of the exchange simulator.

Everything the simulator receives and sends is journaled (host/journal)
before it takes effect on the wire:

``ex_in``     an inbound OUCH message as received (it may not decode):
              ``u8 user length | user (ASCII) | OUCH bytes``
``ex_out``    a sequenced outbound OUCH message:
              ``u8 user length | user | u64 sequence number | OUCH bytes``
``ex_event``  a session or operator event (login, disconnect, market data
              that caused messages, halts, end of session): a JSON object
              with at least ``"event"``.

One inbound message and the outbound messages it causes are written as one
group commit, so a crash never keeps the effect without its cause.
"""
from __future__ import annotations

import json
import struct

EX_IN = "ex_in"
EX_OUT = "ex_out"
EX_EVENT = "ex_event"
KINDS = (EX_IN, EX_OUT, EX_EVENT)
_SEQ = struct.Struct(">Q")


class RecordFormatError(ValueError):
    """A record payload does not have its kind's layout."""


def _user_prefix(user: str) -> bytes:
    raw = user.encode("ascii")
    if not 1 <= len(raw) <= 255:
        raise ValueError(f"user name must be 1..255 ASCII bytes, got {user!r}")
    return bytes([len(raw)]) + raw


def _split_user(payload: bytes) -> tuple[str, int]:
    if not payload:
        raise RecordFormatError("empty payload")
    end = 1 + payload[0]
    if payload[0] == 0 or len(payload) < end:
        raise RecordFormatError(f"user field of {payload[0]} bytes does not fit "
                                f"{len(payload) - 1} bytes")
    try:
        return payload[1:end].decode("ascii"), end
    except UnicodeDecodeError as exc:
        raise RecordFormatError("user field is not ASCII") from exc


def encode_in(user: str, message: bytes) -> bytes:
    return _user_prefix(user) + bytes(message)


def decode_in(payload: bytes) -> tuple[str, bytes]:
    user, pos = _split_user(payload)
    return user, payload[pos:]


def encode_out(user: str, sequence: int, message: bytes) -> bytes:
    return _user_prefix(user) + _SEQ.pack(sequence) + bytes(message)


def decode_out(payload: bytes) -> tuple[str, int, bytes]:
    user, pos = _split_user(payload)
    if len(payload) < pos + _SEQ.size:
        raise RecordFormatError("no room for the sequence number")
    (sequence,) = _SEQ.unpack_from(payload, pos)
    return user, sequence, payload[pos + _SEQ.size:]


def encode_event(event: dict) -> bytes:
    if "event" not in event:
        raise ValueError("an event record needs an 'event' name")
    return json.dumps(event, sort_keys=True, separators=(",", ":")).encode("ascii")


def decode_event(payload: bytes) -> dict:
    try:
        event = json.loads(payload.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordFormatError(f"not a JSON event: {exc}") from exc
    if not isinstance(event, dict) or "event" not in event:
        raise RecordFormatError("event record is not an object with 'event'")
    return event

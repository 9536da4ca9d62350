"""Errors raised by the protocol codecs.

Every decoding problem is a :class:`DecodeError` with a short machine-readable
``reason`` (used as the key of drop counters) and a human message.  Callers
that must keep going count the reason and move to the next message.
"""
from __future__ import annotations


class ProtocolError(ValueError):
    reason = "protocol_error"


class DecodeError(ProtocolError):
    reason = "decode_error"


class TruncatedMessage(DecodeError):
    reason = "truncated"

    def __init__(self, what: str, need: int, have: int):
        super().__init__(f"{what}: truncated, need {need} bytes, have {have}")
        self.need, self.have = need, have


class LengthMismatch(DecodeError):
    reason = "length_mismatch"

    def __init__(self, what: str, expected: int, got: int):
        super().__init__(f"{what}: length {got} does not match the layout's {expected}")
        self.expected, self.got = expected, got


class UnknownMessageType(DecodeError):
    reason = "unknown_type"

    def __init__(self, type_byte: bytes, protocol: str = ""):
        where = f" in {protocol}" if protocol else ""
        super().__init__(f"unknown message type {type_byte!r}{where}")
        self.type_byte = type_byte


class BadLength(DecodeError):
    """A length field points past the end of its container, or is zero where
    the protocol forbids it."""

    reason = "bad_length"


class BadFieldValue(DecodeError):
    reason = "bad_field"


class EncodeError(ProtocolError):
    reason = "encode_error"

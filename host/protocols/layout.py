"""Fixed binary layouts for exchange messages, declared once per message.

Every Nasdaq protocol we speak (ITCH 5.0, MoldUDP64, SoupBinTCP 3.0, OUCH 5.0)
is a sequence of big-endian fields at fixed offsets, optionally followed by a
variable tail (OUCH appendages, SoupBinTCP payloads, MoldUDP64 blocks).  A
message class is declared as a list of ``(name, kind)`` pairs; from that one
declaration come the byte offsets (pinned against the specifications by the
table tests), the ``struct`` format used to encode and decode, and the
snake_case field names used in JSON output.

Field kinds
-----------
``u8 u16 u32 u48 u64``  unsigned big-endian integers (``u48`` is ITCH's 6-byte
                         nanosecond timestamp)
``i32 i64``              signed big-endian integers (OUCH signed prices)
``price4``               unsigned 4-byte price with 4 implied decimals
``price8``               unsigned 8-byte price with 8 implied decimals
``alphaN``               N ASCII bytes, left justified and space padded; a
                         1-byte ``alpha1`` keeps its space (it is a code)

Prices stay integers; ``PRICE_DECIMALS`` says how many decimals are implied.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable

from host.protocols.errors import (
    BadFieldValue,
    EncodeError,
    LengthMismatch,
    TruncatedMessage,
    UnknownMessageType,
)

# kind -> (struct code, byte size, python type)
_INT_KINDS = {
    "u8": ("B", 1),
    "u16": ("H", 2),
    "u32": ("I", 4),
    "u48": ("HI", 6),  # split: high 16 bits, low 32 bits
    "u64": ("Q", 8),
    "i32": ("i", 4),
    "i64": ("q", 8),
    "price4": ("I", 4),
    "price8": ("Q", 8),
}
PRICE_DECIMALS = {"price4": 4, "price8": 8}
_INT_RANGE = {
    "u8": (0, 2**8 - 1),
    "u16": (0, 2**16 - 1),
    "u32": (0, 2**32 - 1),
    "u48": (0, 2**48 - 1),
    "u64": (0, 2**64 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1),
    "price4": (0, 2**32 - 1),
    "price8": (0, 2**64 - 1),
}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    offset: int
    size: int

    @property
    def is_alpha(self) -> bool:
        return self.kind.startswith("alpha")

    @property
    def int_range(self) -> tuple[int, int]:
        return _INT_RANGE[self.kind]


def _parse_kind(kind: str) -> tuple[str, int]:
    if kind in _INT_KINDS:
        code, size = _INT_KINDS[kind]
        return code, size
    if kind.startswith("alpha"):
        n = int(kind[5:])
        if n < 1:
            raise ValueError(f"bad alpha width in {kind!r}")
        return f"{n}s", n
    raise ValueError(f"unknown field kind {kind!r}")


class Layout:
    """The byte layout of one fixed-size message body."""

    def __init__(self, fields: Iterable[tuple[str, str]], start: int = 0):
        self.fields: list[Field] = []
        fmt = ">"
        offset = start
        for name, kind in fields:
            code, size = _parse_kind(kind)
            self.fields.append(Field(name, kind, offset, size))
            fmt += code
            offset += size
        self.start = start
        self.size = offset  # total bytes including any prefix before `start`
        self.struct = struct.Struct(fmt)
        assert self.struct.size == self.size - start
        self.names = tuple(f.name for f in self.fields)
        self._has_u48 = any(f.kind == "u48" for f in self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def unpack(self, buf, offset: int = 0) -> list[Any]:
        raw = self.struct.unpack_from(buf, offset + self.start)
        values: list[Any] = []
        i = 0
        for f in self.fields:
            if f.kind == "u48":
                values.append((raw[i] << 32) | raw[i + 1])
                i += 2
                continue
            v = raw[i]
            i += 1
            if f.is_alpha:
                try:
                    s = v.decode("ascii")
                except UnicodeDecodeError as exc:
                    raise BadFieldValue(f"field {f.name}: non-ASCII bytes {v!r}") from exc
                v = s if f.size == 1 else s.rstrip(" ")
            values.append(v)
        return values

    def pack(self, values: Iterable[Any]) -> bytes:
        args: list[Any] = []
        for f, v in zip(self.fields, values):
            if f.is_alpha:
                if isinstance(v, str):
                    try:
                        b = v.encode("ascii")
                    except UnicodeEncodeError as exc:
                        raise EncodeError(f"field {f.name}: not ASCII: {v!r}") from exc
                elif isinstance(v, (bytes, bytearray)):
                    b = bytes(v)
                else:
                    raise EncodeError(f"field {f.name}: expected text, got {type(v).__name__}")
                if len(b) > f.size:
                    raise EncodeError(f"field {f.name}: {v!r} longer than {f.size} bytes")
                args.append(b.ljust(f.size, b" "))
            else:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise EncodeError(f"field {f.name}: expected integer, got {v!r}")
                lo, hi = f.int_range
                if not lo <= v <= hi:
                    raise EncodeError(f"field {f.name}: {v} outside [{lo}, {hi}]")
                if f.kind == "u48":
                    args.extend((v >> 32, v & 0xFFFFFFFF))
                else:
                    args.append(v)
        return self.struct.pack(*args)


class Message:
    """Base class of every declared message: fixed fields plus an optional tail.

    Subclasses are made with :func:`message`.  ``TYPE`` is the message-type
    byte (a 1-character str) or ``None`` for layouts without one.  When a
    subclass sets ``TAIL`` it owns a variable part after the fixed fields:
    ``TAIL.decode(buf, start, end) -> value`` and ``TAIL.encode(value) -> bytes``,
    stored under the attribute ``TAIL.name``.
    """

    TYPE: ClassVar[str | None] = None
    NAME: ClassVar[str] = ""
    LAYOUT: ClassVar[Layout]
    TAIL: ClassVar[Any] = None
    __slots__ = ()

    def __init__(self, *args, **kwargs):
        names = self.field_names()
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}: too many positional arguments")
        given = dict(zip(names, args))
        for k, v in kwargs.items():
            if k in given:
                raise TypeError(f"{type(self).__name__}: {k} given twice")
            if k not in names:
                raise TypeError(f"{type(self).__name__}: unknown field {k}")
            given[k] = v
        for name in names:
            if name in given:
                setattr(self, name, given[name])
            elif self.TAIL is not None and name == self.TAIL.name:
                setattr(self, name, self.TAIL.default())
            else:
                raise TypeError(f"{type(self).__name__}: missing field {name}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        if cls.TAIL is not None:
            return cls.LAYOUT.names + (cls.TAIL.name,)
        return cls.LAYOUT.names

    @classmethod
    def fixed_size(cls) -> int:
        return cls.LAYOUT.size

    # -- codec ---------------------------------------------------------------
    def encode(self) -> bytes:
        head = b"" if self.TYPE is None else self.TYPE.encode("ascii")
        body = self.LAYOUT.pack(getattr(self, n) for n in self.LAYOUT.names)
        if self.TAIL is None:
            return head + body
        return head + body + self.TAIL.encode(getattr(self, self.TAIL.name))

    @classmethod
    def decode(cls, buf, offset: int = 0, end: int | None = None) -> "Message":
        """Decode one message occupying exactly ``buf[offset:end]``."""
        if end is None:
            end = len(buf)
        available = end - offset
        need = cls.LAYOUT.size
        if available < need:
            raise TruncatedMessage(cls.NAME or cls.__name__, need, available)
        if cls.TYPE is not None and buf[offset] != ord(cls.TYPE):
            raise UnknownMessageType(bytes(buf[offset:offset + 1]), cls.NAME)
        obj = cls.__new__(cls)
        for name, v in zip(cls.LAYOUT.names, cls.LAYOUT.unpack(buf, offset)):
            setattr(obj, name, v)
        if cls.TAIL is None:
            if available != need:
                raise LengthMismatch(cls.NAME or cls.__name__, need, available)
        else:
            setattr(obj, cls.TAIL.name, cls.TAIL.decode(buf, offset + need, end))
        return obj

    # -- python niceties -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.TYPE is not None:
            d["message_type"] = self.TYPE
        for n in self.field_names():
            v = getattr(self, n)
            d[n] = v.to_dict() if hasattr(v, "to_dict") else v
        return d

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, n) == getattr(other, n) for n in self.field_names()
        )

    def __hash__(self):
        return hash((type(self),) + tuple(
            repr(getattr(self, n)) for n in self.field_names()))

    def __repr__(self):
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.field_names())
        return f"{type(self).__name__}({inner})"


def message(
    class_name: str,
    type_code: str | None,
    fields: list[tuple[str, str]],
    *,
    name: str = "",
    tail: Any = None,
    base: type = Message,
) -> type:
    """Declare a message class.

    ``type_code`` is the 1-byte message type that starts the message (not
    listed in ``fields``), or None.  Offsets in the layout count from the
    first byte of the message, type byte included.
    """
    start = 0 if type_code is None else 1
    layout = Layout(fields, start=start)
    slots = tuple(layout.names) + ((tail.name,) if tail is not None else ())
    ns = {
        "__slots__": slots,
        "TYPE": type_code,
        "NAME": name or class_name,
        "LAYOUT": layout,
        "TAIL": tail,
    }
    return type(class_name, (base,), ns)


class Registry:
    """Type byte -> message class, with a decoder that never crashes.

    ``decode`` raises a :class:`~host.protocols.errors.DecodeError` subclass on
    bad input; ``decode_or_count`` returns None and counts the reason.
    """

    def __init__(self, protocol: str, classes: Iterable[type]):
        self.protocol = protocol
        self.by_type: dict[int, type] = {}
        for cls in classes:
            key = ord(cls.TYPE)
            if key in self.by_type:
                raise ValueError(f"{protocol}: duplicate type {cls.TYPE!r}")
            self.by_type[key] = cls

    def __iter__(self):
        return iter(self.by_type.values())

    def __len__(self):
        return len(self.by_type)

    def cls_for(self, type_code: str) -> type:
        return self.by_type[ord(type_code)]

    def decode(self, buf, offset: int = 0, end: int | None = None) -> Message:
        if end is None:
            end = len(buf)
        if end <= offset:
            raise TruncatedMessage(self.protocol, 1, 0)
        cls = self.by_type.get(buf[offset])
        if cls is None:
            raise UnknownMessageType(bytes(buf[offset:offset + 1]), self.protocol)
        return cls.decode(buf, offset, end)

    def decode_or_count(self, buf, counts: dict[str, int], offset: int = 0,
                        end: int | None = None,
                        on_error: Callable[[Exception], None] | None = None):
        from host.protocols.errors import DecodeError

        try:
            return self.decode(buf, offset, end)
        except DecodeError as exc:
            counts[exc.reason] = counts.get(exc.reason, 0) + 1
            if on_error is not None:
                on_error(exc)
            return None

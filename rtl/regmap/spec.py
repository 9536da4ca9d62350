"""The vocabulary of the register map: blocks, registers, fields.

A :class:`Field` is ``RO`` (hardware drives it, or a build-time constant when
``const``), ``RW`` (software writes it, hardware reads it) or ``W1C`` (sticky:
hardware sets bits, writing 1 clears them; a set and a clear in the same cycle
leave the bit set so no event is lost).  Every field has a name unique within
its block; that name is also the hardware signal's name.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterator, Sequence

RO, RW, W1C = "RO", "RW", "W1C"
ACCESS_KINDS = (RO, RW, W1C)
REGISTER_BYTES = 4
REGISTER_BITS = 32


class RegisterMapError(ValueError):
    """The declaration is inconsistent (overlap, out of range, bad name)."""


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    access: str
    reset: int = 0
    doc: str = ""
    const: bool = False

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    def bits(self) -> str:
        return f"[{self.lsb}]" if self.width == 1 else f"[{self.msb}:{self.lsb}]"


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    fields: tuple[Field, ...]
    doc: str = ""

    @property
    def reset(self) -> int:
        return sum(f.reset << f.lsb for f in self.fields)


@dataclass(frozen=True)
class Block:
    """A block's registers, at offsets inside a window starting at ``base``."""

    name: str
    base: int
    window: int
    registers: tuple[Register, ...]
    doc: str = ""

    def register(self, name: str) -> Register:
        for reg in self.registers:
            if reg.name == name:
                return reg
        raise KeyError(f"{self.name} has no register {name}")

    def fields(self) -> Iterator[tuple[Register, Field]]:
        for reg in self.registers:
            for fld in reg.fields:
                yield reg, fld

    def field(self, name: str) -> tuple[Register, Field]:
        for reg, fld in self.fields():
            if fld.name == name:
                return reg, fld
        raise KeyError(f"{self.name} has no field {name}")

    @property
    def words(self) -> int:
        """Number of 32-bit words from offset 0 to the last register."""
        return max(reg.offset for reg in self.registers) // REGISTER_BYTES + 1


def validate(blocks: Sequence[Block]) -> None:
    """Raise :class:`RegisterMapError` unless the map is consistent."""
    names, spans = set(), []
    for block in blocks:
        if block.name in names:
            raise RegisterMapError(f"block {block.name} declared twice")
        names.add(block.name)
        if block.base % block.window or block.window & (block.window - 1):
            raise RegisterMapError(f"{block.name}: window must be a power of two the base is aligned to")
        spans.append((block.base, block.base + block.window, block.name))
        offsets, field_names = set(), set()
        for reg in block.registers:
            if reg.offset % REGISTER_BYTES or not 0 <= reg.offset < block.window:
                raise RegisterMapError(f"{block.name}.{reg.name}: bad offset {reg.offset:#x}")
            if reg.offset in offsets:
                raise RegisterMapError(f"{block.name}.{reg.name}: offset {reg.offset:#x} taken")
            offsets.add(reg.offset)
            if not reg.fields:
                raise RegisterMapError(f"{block.name}.{reg.name}: no fields")
            used = 0
            for fld in reg.fields:
                where = f"{block.name}.{reg.name}.{fld.name}"
                if not fld.name.isidentifier() or fld.name != fld.name.lower():
                    raise RegisterMapError(f"{where}: field names are lower-case identifiers")
                if fld.name in field_names:
                    raise RegisterMapError(f"{where}: field name used twice in {block.name}")
                field_names.add(fld.name)
                if fld.access not in ACCESS_KINDS:
                    raise RegisterMapError(f"{where}: access {fld.access!r} not in {ACCESS_KINDS}")
                if fld.const and fld.access != RO:
                    raise RegisterMapError(f"{where}: only RO fields can be constants")
                if fld.width < 1 or fld.lsb < 0 or fld.msb >= REGISTER_BITS:
                    raise RegisterMapError(f"{where}: bits {fld.bits()} outside the register")
                if used & fld.mask:
                    raise RegisterMapError(f"{where}: overlaps another field")
                used |= fld.mask
                if not 0 <= fld.reset < (1 << fld.width):
                    raise RegisterMapError(f"{where}: reset {fld.reset:#x} does not fit")
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise RegisterMapError(f"blocks {first} and {second} overlap")


def map_version(blocks: Sequence[Block]) -> int:
    """A 32-bit hash of everything software depends on (names, offsets, bits,
    access, resets); documentation text does not count."""
    canonical = [
        [b.name, b.base, b.window,
         [[r.name, r.offset, [[f.name, f.lsb, f.width, f.access, f.reset, f.const]
                              for f in r.fields]] for r in b.registers]]
        for b in blocks
    ]
    digest = hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).digest()
    return int.from_bytes(digest[:4], "big")

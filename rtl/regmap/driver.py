"""What host drivers need from the register map: absolute offsets, field
positions, and encoding / decoding of register values.

Keys are ``"<block>.<REGISTER>"`` for registers and ``"<block>.<field>"`` for
fields; offsets are from the base of the fabric's AXI-Lite address space.
"""
from __future__ import annotations

from typing import NamedTuple

from rtl.regmap.map import MAP_VERSION, REGISTER_MAP, block

__all__ = ["MAP_VERSION", "FieldPosition", "register_offsets", "field_positions", "encode",
           "decode"]


class FieldPosition(NamedTuple):
    offset: int
    lsb: int
    width: int
    access: str


def register_offsets() -> dict[str, int]:
    return {f"{b.name}.{r.name}": b.base + r.offset for b in REGISTER_MAP for r in b.registers}


def field_positions() -> dict[str, FieldPosition]:
    return {f"{b.name}.{f.name}": FieldPosition(b.base + r.offset, f.lsb, f.width, f.access)
            for b in REGISTER_MAP for r, f in b.fields()}


def encode(block_name: str, register: str, **values: int) -> int:
    """A register value with the named fields set (others at their reset)."""
    reg = block(block_name).register(register)
    known = {f.name: f for f in reg.fields}
    word = reg.reset
    for name, value in values.items():
        if name not in known:
            raise KeyError(f"{block_name}.{register} has no field {name}")
        fld = known[name]
        if not 0 <= int(value) < (1 << fld.width):
            raise ValueError(f"{name}={value} does not fit {fld.width} bits")
        word = (word & ~fld.mask) | (int(value) << fld.lsb)
    return word


def decode(block_name: str, register: str, word: int) -> dict[str, int]:
    reg = block(block_name).register(register)
    return {f.name: (word >> f.lsb) & ((1 << f.width) - 1) for f in reg.fields}

"""REGISTERS.md, generated from the declaration."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rtl.regmap.map import MAP_VERSION, REGISTER_MAP, build_constants
from rtl.regmap.spec import Block

REGISTERS_MD = Path(__file__).with_name("REGISTERS.md")
_BUILT = frozenset(build_constants(0))


def render_markdown(blocks: Sequence[Block] = REGISTER_MAP, version: int = MAP_VERSION) -> str:
    lines = [
        "# Fabric register map",
        "",
        "Generated from `rtl/regmap/map.py` by `python -m rtl.regmap`; do not edit.",
        "",
        f"Map version: `0x{version:08x}` (the `system.MAP_VERSION` register of a matching bitstream).",
        "",
        "Access: RO read-only (hardware or build constant), RW read/write, "
        "W1C sticky bits cleared by writing 1. Unmapped offsets answer SLVERR.",
        "",
    ]
    for blk in blocks:
        lines += [f"## {blk.name} (base 0x{blk.base:04x}, {blk.window // 1024} KiB)", "", blk.doc, "",
                  "| Offset | Register | Bits | Field | Access | Reset | Description |",
                  "|---|---|---|---|---|---|---|"]
        for reg in blk.registers:
            for i, fld in enumerate(reg.fields):
                reset = "build" if fld.name in _BUILT else f"0x{fld.reset:x}"
                access = "RO (const)" if fld.const else fld.access
                doc = fld.doc if i else f"{reg.doc} {fld.doc}".strip()
                offset = f"0x{blk.base + reg.offset:04x}" if i == 0 else ""
                name = reg.name if i == 0 else ""
                lines.append(f"| {offset} | {name} | {fld.bits()} | {fld.name} | {access} "
                             f"| {reset} | {doc} |")
        lines.append("")
    return "\n".join(lines)


def write_markdown(path: Path = REGISTERS_MD) -> Path:
    path.write_text(render_markdown())
    return path

"""The register map of the fabric: the one declaration the AXI-Lite decode,
the host driver offsets and REGISTERS.md are all generated from."""
from __future__ import annotations

from rtl.common.axil import WINDOW_BYTES
from rtl.frame_filter import model as frame_filter
from rtl.regmap.spec import RO, RW, W1C, Block, Field, Register, map_version, validate

SYSTEM = Block(
    "system", 0x0000, WINDOW_BYTES,
    doc="Identity of the loaded bitstream; the host refuses a map version it was not built for.",
    registers=(
        Register("BUILD_ID", 0x000, (
            Field("build_id", 0, 32, RO, const=True,
                  doc="Build identifier baked in at conversion (commit prefix or ZYNQMM_BUILD_ID)."),),
            doc="Which build this bitstream came from."),
        Register("MAP_VERSION", 0x004, (
            Field("map_version", 0, 32, RO, const=True,
                  doc="Hash of the register-map declaration the bitstream was built from."),),
            doc="Must equal the host's MAP_VERSION."),
        Register("SCRATCH", 0x008, (
            Field("scratch", 0, 32, RW, doc="Free for bus tests; no effect."),),
            doc="Read/write test register."),
    ),
)


def _frame_filter_block() -> Block:
    registers = [
        Register("INFO", 0x000, (
            Field("filter_entries", 0, 8, RO, frame_filter.FILTER_ENTRIES, const=True,
                  doc="Entries in the filter table."),
            Field("payload_fifo_beats", 16, 16, RO, frame_filter.PAYLOAD_FIFO_BEATS, const=True,
                  doc="Payload buffer depth in 8-byte beats; longer payloads are dropped as oversize."),
        ), doc="Build parameters of the block."),
        Register("DROP_STATUS", 0x004, tuple(
            Field(f"seen_{reason}", bit, 1, W1C, doc=f"A frame was dropped as {reason}.")
            for bit, reason in enumerate(frame_filter.DROP_REASONS)),
            doc="Sticky: which drop reasons occurred since software last cleared them."),
    ]
    for i, name in enumerate(frame_filter.COUNTERS):
        what = {"frames": "Frames received.", "passed": "Frames whose payload was forwarded."}
        registers.append(Register(f"COUNT_{name.upper()}", 0x010 + 4 * i, (
            Field(f"count_{name}", 0, 32, RO, doc=what.get(name, f"Frames dropped as {name}.")),),
            doc="32-bit event counter; wraps."))
    for n in range(frame_filter.FILTER_ENTRIES):
        base = 0x100 + 8 * n
        registers.append(Register(f"FILTER{n}_IP", base, (
            Field(f"filter{n}_ip", 0, 32, RW, doc="Destination IPv4 address to match."),),
            doc=f"Filter entry {n}: destination address."))
        registers.append(Register(f"FILTER{n}_PORT", base + 4, (
            Field(f"filter{n}_port", 0, 16, RW, doc="Destination UDP port to match."),
            Field(f"filter{n}_enable", 31, 1, RW, doc="Entry takes part in matching."),
        ), doc=f"Filter entry {n}: destination port and enable; the lowest matching entry wins."))
    return Block("frame_filter", 0x1000, WINDOW_BYTES, tuple(registers),
                 doc="Ethernet/VLAN/IPv4/UDP filter of the market-data feed.")


FRAME_FILTER = _frame_filter_block()

REGISTER_MAP: tuple[Block, ...] = (SYSTEM, FRAME_FILTER)
validate(REGISTER_MAP)

MAP_VERSION = map_version(REGISTER_MAP)


def block(name: str) -> Block:
    for blk in REGISTER_MAP:
        if blk.name == name:
            return blk
    raise KeyError(f"no block {name} in the register map")


def build_constants(build_id: int) -> dict[str, int]:
    """Values of the constant fields that are only known when building."""
    return {"build_id": build_id, "map_version": MAP_VERSION}

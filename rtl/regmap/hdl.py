"""AXI-Lite register file generated from a :class:`~rtl.regmap.spec.Block`,
and the system registers (build ID, map version, scratch).

:func:`regfile` decodes one block's 4 KiB window.  Its hardware side is a
:class:`RegisterPorts` object with one signal per field, named after the
field: RW fields are outputs (software's value), RO fields inputs (the
hardware's value), W1C fields outputs plus a ``<name>_set`` input whose high
bits set the sticky bits.  Constant RO fields have no signal; their values
come from the declaration or, for build-time values, from ``constants``.

Writes take effect the cycle after AW and W are both valid; a read answers
one cycle after AR.  Reads have no side effects.
"""
from __future__ import annotations

from typing import Mapping

from myhdl import ConcatSignal, Signal, always_comb, always_seq, block, intbv

from rtl.common.axil import ADDR_WIDTH, RESP_OKAY, RESP_SLVERR, AxiLite
from rtl.regmap.map import SYSTEM, build_constants
from rtl.regmap.spec import REGISTER_BITS, REGISTER_BYTES, RW, W1C, Block

INDEX_BITS = ADDR_WIDTH - 2


def _signal(width: int, value: int = 0):
    return Signal(bool(value)) if width == 1 else Signal(intbv(value)[width:])


class RegisterPorts:
    """Hardware side of one block's registers (see the module docstring)."""

    def __init__(self, spec: Block):
        for _, fld in spec.fields():
            if fld.const:
                continue
            setattr(self, fld.name, _signal(fld.width, fld.reset))
            if fld.access == W1C:
                setattr(self, f"{fld.name}_set", _signal(fld.width))


@block
def _rw_field(clk, rst, wr_fire, wr_index, wdata, wstrb, q, index, lsb, width):
    if width == 1:
        strobe = lsb // 8

        @always_seq(clk.posedge, reset=rst)
        def write_bit():
            if wr_fire and wr_index == index and wstrb[strobe]:
                q.next = wdata[lsb]

        return write_bit

    @always_seq(clk.posedge, reset=rst)
    def write_bits():
        if wr_fire and wr_index == index:
            for i in range(width):
                if wstrb[(lsb + i) // 8]:
                    q.next[i] = wdata[lsb + i]

    return write_bits


@block
def _w1c_field(clk, rst, wr_fire, wr_index, wdata, wstrb, set_bits, q, index, lsb, width):
    if width == 1:
        strobe = lsb // 8

        @always_seq(clk.posedge, reset=rst)
        def sticky_bit():
            if set_bits:
                q.next = 1
            elif wr_fire and wr_index == index and wstrb[strobe] and wdata[lsb]:
                q.next = 0

        return sticky_bit

    @always_seq(clk.posedge, reset=rst)
    def sticky_bits():
        for i in range(width):
            if set_bits[i]:
                q.next[i] = 1
            elif wr_fire and wr_index == index and wstrb[(lsb + i) // 8] and wdata[lsb + i]:
                q.next[i] = 0

    return sticky_bits


def _read_vector(spec: Block, ports: RegisterPorts, constants: Mapping[str, int]):
    """All words of the window side by side (word 0 lowest), holes as zeros,
    so a read is one shift by the word index."""
    parts = []
    by_offset = {reg.offset: reg for reg in spec.registers}
    for word in reversed(range(spec.words)):
        reg = by_offset.get(word * REGISTER_BYTES)
        fields = sorted(reg.fields, key=lambda f: f.lsb, reverse=True) if reg else []
        top = REGISTER_BITS
        for fld in fields:
            if fld.msb + 1 < top:
                parts.append(intbv(0)[top - fld.msb - 1:])
            if fld.const:
                parts.append(intbv(constants.get(fld.name, fld.reset))[fld.width:])
            else:
                parts.append(getattr(ports, fld.name))
            top = fld.lsb
        if top:
            parts.append(intbv(0)[top:])
    return ConcatSignal(*parts)


@block
def regfile(clk, rst, bus: AxiLite, ports: RegisterPorts, spec: Block,
            constants: Mapping[str, int] | None = None):
    """AXI-Lite slave for ``spec``'s registers; ``constants`` overrides the
    values of constant fields by name (build ID, map version)."""
    constants = dict(constants or {})
    words = spec.words
    if words > (1 << INDEX_BITS):
        raise ValueError(f"{spec.name}: registers beyond the {1 << ADDR_WIDTH}-byte window")
    present_mask = sum(1 << (reg.offset // REGISTER_BYTES) for reg in spec.registers)
    # Never driven, so the converter emits it as a constant.
    const_present = Signal(intbv(present_mask)[words:])
    read_vector = _read_vector(spec, ports, constants)

    wr_fire = Signal(bool(0))
    rd_fire = Signal(bool(0))
    wr_index = Signal(intbv(0)[INDEX_BITS:])
    rd_index = Signal(intbv(0)[INDEX_BITS:])

    @always_comb
    def handshake():
        wr_fire.next = bus.awvalid and bus.wvalid and not bus.bvalid
        bus.awready.next = bus.awvalid and bus.wvalid and not bus.bvalid
        bus.wready.next = bus.awvalid and bus.wvalid and not bus.bvalid
        rd_fire.next = bus.arvalid and not bus.rvalid
        bus.arready.next = bus.arvalid and not bus.rvalid
        wr_index.next = bus.awaddr[ADDR_WIDTH:2]
        rd_index.next = bus.araddr[ADDR_WIDTH:2]

    @always_seq(clk.posedge, reset=rst)
    def channels():
        if wr_fire:
            bus.bvalid.next = 1
            if wr_index < words and const_present[wr_index]:
                bus.bresp.next = RESP_OKAY
            else:
                bus.bresp.next = RESP_SLVERR
        elif bus.bready:
            bus.bvalid.next = 0
        if rd_fire:
            bus.rvalid.next = 1
            if rd_index < words and const_present[rd_index]:
                bus.rresp.next = RESP_OKAY
                bus.rdata.next = (read_vector >> (rd_index * REGISTER_BITS)) & 0xFFFFFFFF
            else:
                bus.rresp.next = RESP_SLVERR
                bus.rdata.next = 0
        elif bus.rready:
            bus.rvalid.next = 0

    fields = []
    for reg, fld in spec.fields():
        index = reg.offset // REGISTER_BYTES
        if fld.access == RW:
            fields.append(_rw_field(clk, rst, wr_fire, wr_index, bus.wdata, bus.wstrb,
                                    getattr(ports, fld.name), index, fld.lsb, fld.width))
        elif fld.access == W1C:
            fields.append(_w1c_field(clk, rst, wr_fire, wr_index, bus.wdata, bus.wstrb,
                                     getattr(ports, f"{fld.name}_set"), getattr(ports, fld.name),
                                     index, fld.lsb, fld.width))
    return handshake, channels, fields


@block
def system_registers(clk, rst, s_axil: AxiLite, build_id: int = 0):
    """The ``system`` block: build ID, map version, scratch."""
    ports = RegisterPorts(SYSTEM)
    return regfile(clk, rst, s_axil, ports, SYSTEM, build_constants(build_id))

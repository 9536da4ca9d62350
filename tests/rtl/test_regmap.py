"""The register map: declaration checks, generated outputs, and the MyHDL
register file simulated against the declaration."""
from __future__ import annotations

import dataclasses

import pytest
from myhdl import ResetSignal, Signal, always, block, delay, instance

from rtl.common.axil import RESP_OKAY, RESP_SLVERR, AxiLite
from rtl.frame_filter.model import COUNTERS, DROP_REASONS, FILTER_ENTRIES
from rtl.regmap import docs
from rtl.regmap.__main__ import main as regmap_main
from rtl.regmap.driver import MAP_VERSION, decode, encode, field_positions, register_offsets
from rtl.regmap.hdl import RegisterPorts, regfile
from rtl.regmap.map import REGISTER_MAP, build_constants
from rtl.regmap.spec import (RO, RW, W1C, Block, Field, Register, RegisterMapError, map_version,
                             validate)


def test_registers_md_is_up_to_date():
    assert docs.REGISTERS_MD.read_text() == docs.render_markdown(), \
        "stale REGISTERS.md: run python -m rtl.regmap"
    assert regmap_main(["--check"]) == 0


def test_markdown_lists_every_register_at_its_offset():
    text = docs.render_markdown()
    for name, address in register_offsets().items():
        assert f"| 0x{address:04x} | {name.split('.')[1]} |" in text
    assert f"`0x{MAP_VERSION:08x}`" in text


def test_host_offsets():
    offsets = register_offsets()
    assert offsets["system.BUILD_ID"] == 0x0000
    assert offsets["system.MAP_VERSION"] == 0x0004
    assert offsets["frame_filter.COUNT_FRAMES"] == 0x1010
    assert offsets["frame_filter.FILTER7_PORT"] == 0x1000 + 0x100 + 8 * 7 + 4
    assert len(set(offsets.values())) == len(offsets)
    fields = field_positions()
    assert fields["frame_filter.filter3_enable"] == (0x111C, 31, 1, RW)
    for i, reason in enumerate(DROP_REASONS):
        assert fields[f"frame_filter.seen_{reason}"] == (0x1004, i, 1, W1C)
    for name in COUNTERS:
        assert fields[f"frame_filter.count_{name}"].access == RO


def test_encode_decode():
    word = encode("frame_filter", "FILTER2_PORT", filter2_port=26400, filter2_enable=1)
    assert word == 0x8000_0000 | 26400
    assert decode("frame_filter", "FILTER2_PORT", word) == {"filter2_port": 26400,
                                                           "filter2_enable": 1}
    with pytest.raises(ValueError):
        encode("frame_filter", "FILTER2_PORT", filter2_port=1 << 16)
    with pytest.raises(KeyError):
        encode("frame_filter", "FILTER2_PORT", filter3_port=1)


def test_map_version_tracks_the_interface_not_the_prose():
    assert MAP_VERSION == map_version(REGISTER_MAP)
    system = REGISTER_MAP[0]
    reworded = dataclasses.replace(system, doc="other words")
    assert map_version((reworded,) + REGISTER_MAP[1:]) == MAP_VERSION
    moved = dataclasses.replace(system.registers[2], offset=0x00C)
    changed = dataclasses.replace(system, registers=system.registers[:2] + (moved,))
    assert map_version((changed,) + REGISTER_MAP[1:]) != MAP_VERSION


@pytest.mark.parametrize("bad, message", [
    (Register("A", 0x002, (Field("a", 0, 8, RW),)), "bad offset"),
    (Register("A", 0x000, (Field("a", 0, 8, RW), Field("b", 4, 8, RW))), "overlaps"),
    (Register("A", 0x000, (Field("a", 30, 4, RW),)), "outside"),
    (Register("A", 0x000, (Field("a", 0, 4, "WO"),)), "access"),
    (Register("A", 0x000, (Field("a", 0, 4, RW, reset=16),)), "does not fit"),
    (Register("A", 0x000, (Field("a", 0, 4, RW, const=True),)), "constants"),
    (Register("A", 0x000, (Field("Bad", 0, 4, RW),)), "lower-case"),
])
def test_validation_rejects(bad, message):
    with pytest.raises(RegisterMapError, match=message):
        validate([Block("blk", 0x2000, 0x1000, (bad,))])


def test_validation_rejects_overlapping_blocks_and_duplicate_offsets():
    reg = Register("A", 0, (Field("a", 0, 1, RW),))
    with pytest.raises(RegisterMapError, match="overlap"):
        validate([Block("x", 0x0000, 0x2000, (reg,)), Block("y", 0x1000, 0x1000, (reg,))])
    twice = Register("B", 0, (Field("b", 0, 1, RW),))
    with pytest.raises(RegisterMapError, match="taken"):
        validate([Block("x", 0, 0x1000, (reg, twice))])


def test_frame_filter_block_declares_the_table_and_counters():
    blk = REGISTER_MAP[1]
    assert sum(1 for r in blk.registers if r.name.startswith("FILTER")) == 2 * FILTER_ENTRIES
    assert {f.name for _, f in blk.fields()} >= {f"count_{c}" for c in COUNTERS}


# ---- the generated register file, simulated in MyHDL ----------------------

TEST_BLOCK = Block("test", 0x0, 0x1000, (
    Register("CONST", 0x000, (Field("ident", 0, 16, RO, 0xBEEF, const=True),
                              Field("later", 16, 8, RO, const=True))),
    Register("CTRL", 0x004, (Field("mode", 3, 9, RW, reset=0x1A5),
                             Field("go", 31, 1, RW, reset=1))),
    Register("STATUS", 0x008, (Field("level", 0, 20, RO),)),
    Register("EVENTS", 0x010, (Field("errors", 4, 3, W1C), Field("alarm", 8, 1, W1C))),
))


@block
def _bench(results, script):
    clk = Signal(bool(0))
    rst = ResetSignal(1, active=1, isasync=False)
    bus = AxiLite()
    ports = RegisterPorts(TEST_BLOCK)
    dut = regfile(clk, rst, bus, ports, TEST_BLOCK, {"later": 0x5A})

    @always(delay(5))
    def clock():
        clk.next = not clk

    def write(address, data, strobe=0xF):
        bus.awaddr.next, bus.wdata.next, bus.wstrb.next = address, data, strobe
        bus.awvalid.next = bus.wvalid.next = 1
        bus.bready.next = 1
        yield clk.posedge
        while not (bus.awready and bus.wready):
            yield clk.posedge
        bus.awvalid.next = bus.wvalid.next = 0
        while not bus.bvalid:
            yield clk.posedge
        results.append(("B", int(bus.bresp)))
        yield clk.posedge
        bus.bready.next = 0

    def read(address):
        bus.araddr.next = address
        bus.arvalid.next = 1
        bus.rready.next = 1
        yield clk.posedge
        while not bus.arready:
            yield clk.posedge
        bus.arvalid.next = 0
        while not bus.rvalid:
            yield clk.posedge
        results.append(("R", int(bus.rresp), int(bus.rdata)))
        yield clk.posedge
        bus.rready.next = 0

    @instance
    def stimulus():
        yield clk.negedge
        yield clk.negedge
        rst.next = 0
        yield from script(write, read, ports, clk)

    return dut, clock, stimulus


def _simulate(script):
    results = []
    bench = _bench(results, script)
    bench.run_sim(5000, quiet=1)
    bench.quit_sim()
    return results


def test_regfile_reset_values_constants_and_holes():
    def script(write, read, ports, clk):
        ports.level.next = 0xABCDE
        for address in (0x000, 0x004, 0x008, 0x00C, 0x010, 0xFFC):
            yield from read(address)
        yield from write(0x00C, 1)

    assert _simulate(script) == [
        ("R", RESP_OKAY, 0x005ABEEF),
        ("R", RESP_OKAY, 0x8000_0000 | (0x1A5 << 3)),
        ("R", RESP_OKAY, 0xABCDE),
        ("R", RESP_SLVERR, 0),
        ("R", RESP_OKAY, 0),
        ("R", RESP_SLVERR, 0),
        ("B", RESP_SLVERR),
    ]


def test_regfile_writes_honour_access_and_strobes():
    seen = {}

    def script(write, read, ports, clk):
        yield from write(0x004, 0xFFFF_FFFF)
        yield from read(0x004)
        seen["mode"], seen["go"] = int(ports.mode), bool(ports.go)
        yield from write(0x004, 0x0000_0000, strobe=0b0001)   # low byte: mode[4:0]
        yield from read(0x004)
        yield from write(0x000, 0x1234_5678)                  # constants ignore writes
        yield from read(0x000)

    results = _simulate(script)
    assert results[0:2] == [("B", RESP_OKAY), ("R", RESP_OKAY, 0x8000_0FF8)]
    assert seen == {"mode": 0x1FF, "go": True}
    assert results[2:4] == [("B", RESP_OKAY), ("R", RESP_OKAY, 0x8000_0F00)]
    assert results[5] == ("R", RESP_OKAY, 0x005ABEEF)


def test_regfile_w1c_sets_stick_and_clear_by_writing_one():
    def script(write, read, ports, clk):
        ports.errors_set.next = 0b101
        ports.alarm_set.next = 1
        yield clk.posedge
        ports.errors_set.next = 0
        ports.alarm_set.next = 0
        yield clk.posedge
        yield from read(0x010)
        yield from write(0x010, 0x0000_0010)       # clear errors bit 0 only
        yield from read(0x010)
        yield from write(0x010, 0xFFFF_FFFF, strobe=0b1110)   # bit 4..7 not strobed
        yield from read(0x010)
        # A set in the same cycle as its clear wins.
        ports.errors_set.next = 0b001
        yield from write(0x010, 0x0000_0070)
        ports.errors_set.next = 0
        yield from read(0x010)

    results = _simulate(script)
    assert results[0] == ("R", RESP_OKAY, (0b101 << 4) | (1 << 8))
    assert results[2] == ("R", RESP_OKAY, (0b100 << 4) | (1 << 8))
    assert results[4] == ("R", RESP_OKAY, 0b100 << 4)
    assert results[6] == ("R", RESP_OKAY, 0b001 << 4)


def test_build_constants_carry_the_map_version():
    assert build_constants(7) == {"build_id": 7, "map_version": MAP_VERSION}

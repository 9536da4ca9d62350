"""MyHDL -> Verilog: every block converts, reproducibly, to Verilog that
Verilator lints clean and Icarus compiles."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from rtl.blocks import BLOCKS, STAMP_NAME, convert_blocks
from rtl.common import sim
from rtl.regmap.map import MAP_VERSION
from tests.rtl.conftest import TEST_BUILD_ID


@pytest.fixture(scope="module")
def verilog():
    paths = convert_blocks(ident=TEST_BUILD_ID)
    return {name: path for name, path in zip(BLOCKS, paths)}


def test_every_block_converts_into_build_rtl(verilog):
    for name, path in verilog.items():
        text = path.read_text()
        assert path.parent.name == name
        assert re.search(rf"^module {BLOCKS[name].toplevel} \(", text, re.MULTILINE)
        assert "// Date:" not in text


# Converted a second time from scratch: the register file with its baked-in
# constants, the order book (memories, state machine) and the quote path
# (nested blocks, interfaces) -- the constructs the larger tops repeat.
REPRODUCED = ("system", "order_book", "quote_path")


def test_conversion_is_reproducible(verilog):
    before = {name: verilog[name].read_text() for name in REPRODUCED}
    again = convert_blocks(list(REPRODUCED), ident=TEST_BUILD_ID, force=True)
    assert {name: path.read_text() for name, path in zip(REPRODUCED, again)} == before


def test_unchanged_sources_are_not_converted_again(verilog):
    path = verilog["system"]
    stamp = path.parent / STAMP_NAME
    written = path.stat().st_mtime_ns
    assert convert_blocks(["system"], ident=TEST_BUILD_ID) == [path]
    assert path.stat().st_mtime_ns == written
    # A stamp that no longer matches the sources (or another build ID) converts again.
    stamp.write_text("stale")
    path.write_text("// not what the sources give\n")
    convert_blocks(["system"], ident=TEST_BUILD_ID)
    assert stamp.read_text() != "stale"
    assert path.read_text().startswith("// File: system_registers.v")
    other = convert_blocks(["system"], ident=TEST_BUILD_ID + 1)[0]
    assert format(TEST_BUILD_ID + 1, "032b") in other.read_text()
    convert_blocks(["system"], ident=TEST_BUILD_ID)


def test_stream_and_bus_ports_use_cocotbext_names(verilog):
    text = verilog["frame_filter"].read_text()
    for port in ("s_axis_tdata", "s_axis_tkeep", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast",
                 "s_axis_tuser", "m_axis_tdata", "m_axis_tkeep", "m_axis_tlast", "m_axis_tdest",
                 "s_axil_awaddr", "s_axil_rdata", "s_axil_bresp"):
        assert re.search(rf"^\s*(input|output) (\[\d+:0\] )?{port};", text, re.MULTILINE), port


def test_build_constants_are_baked_in(verilog):
    text = verilog["system"].read_text()
    assert format(TEST_BUILD_ID, "032b") in text
    assert format(MAP_VERSION, "032b") in text


def test_verilator_lint_is_clean(verilog):
    for name, path in verilog.items():
        assert sim.lint(path) == [], name


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_icarus_compiles(verilog, tmp_path):
    for name, path in verilog.items():
        done = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / name), str(path)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "warning" not in done.stderr.lower(), done.stderr

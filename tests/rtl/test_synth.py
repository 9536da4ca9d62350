"""`make synth`: the netlist reader and depth search on netlists whose answer
is known, real Yosys runs on small modules built to a known depth and
resources (UltraScale+ and 7-series), and the fit check against a board's
capacity on those real results."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from board.boards import Capacity, load_board
from overlays.config import FABRIC_BLOCK, fit_parts
from rtl.synth import NetlistError, SynthJob, analyse, synth_block
from rtl.synth.__main__ import fit_table, results_table
from rtl.synth.fit import (MissingEstimate, SynthReportError, board_fit, cached_result,
                           fit_report, fit_text)
from rtl.synth.run import FAMILIES, SYNTH_BUILD_ID, work_dir, yosys_script
from tests.rtl.conftest import TEST_BUILD_ID

_DIRECTIONS = {
    "FDRE": {"C": "input", "CE": "input", "R": "input", "D": "input", "Q": "output"},
    "MUXF7": {"I0": "input", "I1": "input", "S": "input", "O": "output"},
    "CARRY4": {"CI": "input", "CYINIT": "input", "DI": "input", "S": "input", "O": "output",
               "CO": "output"},
    "RAM64X1D": {"WCLK": "input", "WE": "input", "D": "input", "A0": "input", "A1": "input",
                 "DPRA0": "input", "DPRA1": "input", "SPO": "output", "DPO": "output"},
    "DSP48E2": {"CLK": "input", "A": "input", "B": "input", "C": "input", "P": "output"},
    "DSP48E1": {"CLK": "input", "A": "input", "B": "input", "C": "input", "P": "output"},
    "RAMB36E1": {"CLKARDCLK": "input", "ADDRARDADDR": "input", "DOADO": "output"},
    "RAMB18E1": {"CLKARDCLK": "input", "ADDRARDADDR": "input", "DOADO": "output"},
}


class Builder:
    """A Yosys-style JSON netlist written by hand, one bit per net."""

    def __init__(self, top: str = "probe"):
        self.top = top
        self.cells: dict[str, dict] = {}
        self.ports: dict[str, dict] = {}
        self.netnames: dict[str, dict] = {}
        self.bits = 2

    def net(self, name: str | None = None) -> int:
        self.bits += 1
        self.netnames[name or f"$auto$n{self.bits}"] = {"hide_name": 0 if name else 1,
                                                         "bits": [self.bits]}
        return self.bits

    def cell(self, name: str, kind: str, parameters: dict | None = None, **pins) -> None:
        if kind.startswith("LUT") or kind == "INV":
            directions = {p: ("output" if p == "O" else "input") for p in pins}
        else:
            directions = {p: d for p, d in _DIRECTIONS[kind].items() if p in pins}
        self.cells[name] = {"type": kind, "parameters": parameters or {},
                            "attributes": {"src": f"probe.v:{len(self.cells) + 1}"},
                            "port_directions": directions,
                            "connections": {p: (v if isinstance(v, list) else [v])
                                            for p, v in pins.items()}}

    def flop(self, name: str, d, q) -> None:
        self.cell(f"ff_{name}", "FDRE", C=2, CE="1", R="0", D=d, Q=q)

    def port(self, name: str, direction: str, bit: int) -> None:
        self.ports[name] = {"direction": direction, "bits": [bit]}

    def json(self) -> dict:
        return {"modules": {self.top: {"ports": self.ports, "cells": self.cells,
                                       "netnames": self.netnames}}}


def test_lut_chain_counts_luts_and_folds_wide_muxes_into_their_level():
    net = Builder()
    q, a, b, m, y = net.net("state"), net.net("partial"), net.net(), net.net(), net.net()
    net.flop("state", net.net("state_next"), q)
    net.cell("l1", "LUT6", I0=q, I1=q, I2=q, I3=q, I4=q, I5=q, O=a)
    net.cell("l2", "LUT6", I0=q, I1=a, I2=q, I3=q, I4=q, I5=q, O=b)
    net.cell("wide", "MUXF7", I0=a, I1=b, S=q, O=m)
    net.cell("l3", "LUT2", I0=m, I1=q, O=y)
    net.flop("flag", y, net.net("flag"))
    report = analyse(net.json(), "probe")
    path = report.worst_path
    assert (report.lut_levels, path.counts["muxf"], report.lut, report.ff, report.muxf) == \
        (3, 1, 3, 2, 1)
    assert [name for name, _ in path.cells] == ["l1", "l2", "wide", "l3"]
    assert path.start.net == "state" and path.start.port == "Q" and path.through == ["partial"]
    assert path.end.register == "flag" and path.end.port == "D"


def test_carry_is_followed_bit_by_bit_and_reported_as_carry8_blocks():
    net = Builder()
    a, b = net.net("a"), net.net("b")
    net.flop("a", net.net(), a)
    net.flop("b", net.net(), b)
    low_out, chain, high_out = net.net(), net.net(), net.net()
    unused = [net.net() for _ in range(3)]
    # a enters bit 3 of the first CARRY4, whose sum bit 0 cannot depend on it.
    net.cell("c0", "CARRY4", CI="0", CYINIT="0", DI=["0"] * 4, S=[b, "0", "0", a],
             O=[low_out, "x", "x", "x"], CO=[*unused, chain])
    net.cell("c1", "CARRY4", CI=chain, CYINIT="0", DI=["0"] * 4, S=["0"] * 4,
             O=["x", high_out, "x", "x"], CO=["x"] * 4)
    net.flop("low", low_out, net.net("low"))
    net.flop("high", high_out, net.net("high"))
    report = analyse(net.json(), "probe")
    carry = report.worst_carry_path
    assert carry.counts["carry4"] == 2 and carry.carry8 == 1
    assert carry.end.register == "high"
    assert report.carry8 == 1.0 and report.lut_levels == 0
    only_low = Builder()
    a = only_low.net("a")
    only_low.flop("a", only_low.net(), a)
    low_out = only_low.net()
    only_low.cell("c0", "CARRY4", CI="0", CYINIT="0", DI=["0"] * 4, S=["0", "0", "0", a],
                  O=[low_out, "x", "x", "x"], CO=["x"] * 4)
    only_low.flop("low", low_out, only_low.net("low"))
    assert analyse(only_low.json(), "probe").worst_carry_path is None


def _dsp_netlist(registers: dict, kind: str = "DSP48E2") -> dict:
    net = Builder()
    q, lut_in, p, lut_out = net.net("x"), net.net(), net.net(), net.net()
    net.flop("x", net.net(), q)
    net.cell("pre", "LUT1", I0=q, O=lut_in)
    params = {name: format(value, "032b") for name, value in registers.items()}
    net.cell("mult", kind, {**params, "USE_MULT": "MULTIPLY"}, CLK=2, A=lut_in, B=q, P=p)
    net.cell("post", "LUT1", I0=p, O=lut_out)
    net.flop("y", lut_out, net.net("y"))
    return net.json()


def test_unregistered_dsp_is_crossed_as_a_dsp_stage():
    report = analyse(_dsp_netlist({"AREG": 0, "BREG": 0, "MREG": 0, "PREG": 0}), "probe")
    assert (report.lut_levels, report.worst_path.counts["dsp"], report.dsp_unregistered) == (2, 1, 1)
    assert report.worst_path.end.register == "y"


def test_registered_dsp_splits_the_path():
    report = analyse(_dsp_netlist({"AREG": 1, "BREG": 1, "MREG": 1, "PREG": 1}), "probe")
    assert (report.lut_levels, report.worst_path.counts["dsp"], report.dsp_unregistered) == (1, 0, 0)
    # Only the output register: the multiplier is still in front of it.
    report = analyse(_dsp_netlist({"AREG": 0, "BREG": 0, "MREG": 0, "PREG": 1}), "probe")
    assert (report.lut_levels, report.worst_path.counts["dsp"]) == (1, 1)
    assert report.worst_path.end.cell == "mult"


def test_seven_series_primitives_count_as_their_ultrascale_counterparts():
    report = analyse(_dsp_netlist({"AREG": 0, "BREG": 0, "MREG": 0, "PREG": 0}, "DSP48E1"),
                     "probe")
    assert (report.dsp, report.dsp_unregistered, report.lut_levels) == (1, 1, 2)
    assert report.worst_path.counts["dsp"] == 1 and not report.unknown_types
    net = Builder()
    address, data36, data18 = net.net("addr"), net.net(), net.net()
    net.flop("addr", net.net(), address)
    net.cell("big", "RAMB36E1", CLKARDCLK=2, ADDRARDADDR=address, DOADO=data36)
    net.cell("small", "RAMB18E1", CLKARDCLK=2, ADDRARDADDR=address, DOADO=data18)
    both = net.net()
    net.cell("join", "LUT2", I0=data36, I1=data18, O=both)
    net.flop("out", both, net.net("out"))
    report = analyse(net.json(), "probe")
    assert report.bram36 == 1.5 and report.lut_levels == 1 and not report.unknown_types
    assert report.worst_path.start.type in ("RAMB36E1", "RAMB18E1")


def test_lut_ram_read_is_a_lut_level_and_top_ports_are_endpoints():
    net = Builder()
    address, lut_out, data, out = net.net("rd_addr"), net.net(), net.net(), net.net("dout")
    net.port("rd_addr", "input", address)
    net.port("dout", "output", out)
    net.cell("decode", "LUT1", I0=address, O=lut_out)
    net.cell("ram", "RAM64X1D", WCLK=2, WE="0", D="0", A0="0", A1="0", DPRA0=lut_out,
             DPRA1=address, SPO="x", DPO=data)
    net.cell("post", "LUT1", I0=data, O=out)
    report = analyse(net.json(), "probe")
    assert (report.lut_levels, report.lutram) == (3, 2)
    assert report.worst_path.start.type == "top port" and report.worst_path.end.port == "dout"


def test_combinational_loop_is_counted_not_followed():
    net = Builder()
    a, b, q = net.net(), net.net(), net.net("q")
    net.flop("q", net.net(), q)
    net.cell("l1", "LUT2", I0=q, I1=b, O=a)
    net.cell("l2", "LUT1", I0=a, O=b)
    out = net.net()
    net.cell("l3", "LUT1", I0=q, O=out)
    net.flop("r", out, net.net("r"))
    report = analyse(net.json(), "probe")
    assert report.combinational_loop_nets == 2
    assert report.lut_levels == 1 and report.worst_path.end.register == "r"


def test_malformed_netlists_raise_a_specific_error():
    with pytest.raises(NetlistError, match="no 'modules'"):
        analyse({"creator": "x"}, "probe")
    with pytest.raises(NetlistError, match="top module 'other'"):
        analyse(Builder().json(), "other")
    net = Builder()
    net.cell("l1", "LUT1", I0=net.net(), O=net.net())
    del net.cells["l1"]["port_directions"]
    with pytest.raises(NetlistError, match="no direction"):
        analyse(net.json(), "probe")


# 37 inputs need three levels of 6-input LUTs (6**2 = 36 < 37), and a tree
# of three levels reaches them all; the 16-bit sum needs four CARRY4s (two
# CARRY8s) behind one LUT of propagate logic.
DEPTH_PROBE = """
module depth_probe (
    input clk,
    input [36:0] a_in,
    input [15:0] x_in, y_in,
    output reg parity,
    output reg [15:0] sum
);
    reg [36:0] a;
    reg [15:0] x, y;
    always @(posedge clk) begin
        a <= a_in; x <= x_in; y <= y_in;
        parity <= ^a;
        sum <= x + y;
    end
endmodule
"""


@pytest.fixture(scope="module")
def depth_probe(tmp_path_factory):
    """DEPTH_PROBE synthesised once for UltraScale+: its job and record."""
    folder = tmp_path_factory.mktemp("depth_probe")
    source = folder / "depth_probe.v"
    source.write_text(DEPTH_PROBE)
    job = SynthJob("probe", "depth_probe", (source,), folder / "work", timeout=300)
    return job, synth_block(job)


def test_yosys_synthesis_of_a_known_depth_module_and_its_cache(depth_probe, tmp_path):
    job, record = depth_probe
    assert "error" not in record, record.get("error")
    assert record["lut_levels"] == 3 and record["meets_goal"] and record["family"] == "xcup"
    path = record["worst_path"]
    assert path["to"]["register"] == "parity" and path["from"]["net"].startswith("a[")
    assert record["carry_levels"] == 2 and record["carry"] == 2.0
    assert record["worst_carry_path"]["to"]["register"].startswith("sum[")
    assert record["ff"] == 37 + 16 + 16 + 1 + 16 and record["dsp"] == 0 and record["bram"] == 0
    assert not record["cached"] and record["cpu_seconds"] > 0

    netlist = job.work_dir / "netlist.json.gz"
    stamp = netlist.stat().st_mtime_ns
    again = synth_block(job)
    assert again["cached"] and again["lut_levels"] == 3
    # A newer analysis re-reads the kept netlist instead of running Yosys.
    result = job.work_dir / "result.json"
    original = result.read_text()
    kept = json.loads(original)
    kept["analysis_version"] = -1
    result.write_text(json.dumps(kept))
    reread = synth_block(job)
    assert reread["cached"] and reread["lut_levels"] == 3 and netlist.stat().st_mtime_ns == stamp
    result.write_text(original)

    # Any change to the Verilog text, or another family, means a new synthesis.
    edited = tmp_path / "depth_probe.v"
    edited.write_text(DEPTH_PROBE + "// edited\n")
    assert SynthJob("probe", "depth_probe", (edited,), job.work_dir).key() != job.key()
    assert dataclasses.replace(job, family="xc7").key() != job.key()


# A registered 16 x 16 product and a 512 x 32 table: one DSP and half a
# BRAM36 on either family, the registers absorbed into them on 7-series.
MAC_PROBE = """
module mac_probe (
    input clk,
    input [15:0] a_in, b_in,
    input [8:0] addr,
    input we,
    input [31:0] wdata,
    output reg [31:0] product,
    output reg [31:0] rdata
);
    reg [15:0] a, b;
    reg [31:0] table_mem [0:511];
    always @(posedge clk) begin
        a <= a_in; b <= b_in;
        product <= a * b;
        if (we) table_mem[addr] <= wdata;
        rdata <= table_mem[addr];
    end
endmodule
"""


def test_seven_series_synthesis_uses_its_own_primitives_and_folder(tmp_path):
    assert "synth_xilinx -family xc7 " in yosys_script([Path("x.v")], "x", "xc7")
    with pytest.raises(ValueError, match="no synth_xilinx family 'spartan3'"):
        yosys_script([Path("x.v")], "x", "spartan3")
    assert work_dir("feed_path", "xc7") != work_dir("feed_path") == work_dir("feed_path", "xcup")
    source = tmp_path / "mac_probe.v"
    source.write_text(MAC_PROBE)
    record = synth_block(SynthJob("mac", "mac_probe", (source,), tmp_path / "xc7", 300, "xc7"))
    assert "error" not in record, record.get("error")
    assert record["family"] == "xc7"
    assert record["cell_types"].get("DSP48E1") == 1 and "DSP48E2" not in record["cell_types"]
    assert (record["dsp"], record["bram"]) == (1, 0.5)
    assert not record["unknown_cell_types"]


def test_yosys_failure_is_reported_in_the_record(tmp_path):
    source = tmp_path / "broken.v"
    source.write_text("module broken (input a, output b);\n assign b = a +;\nendmodule\n")
    record = synth_block(SynthJob("broken", "broken", (source,), tmp_path / "work", timeout=120))
    assert "error" in record and "yosys exited" in record["error"]
    assert not (tmp_path / "work" / "netlist.json").exists()


def _report(**fabric) -> dict:
    record = {"lut": 50_000, "ff": 60_000, "bram": 20.5, "dsp": 10, "uram": 0, "lutram": 1_000,
              "srl": 120, "carry": 300.0, "lut_levels": 5, "meets_goal": True,
              "seconds": 1.0, "worst_path": None}
    record.update(fabric)
    return {"tool": "Yosys", "family": "xcup", "goal_lut_levels": 6,
            "blocks": {FABRIC_BLOCK: record, "side_block": {**record, "lut": 10}}}


def test_fit_report_against_a_board():
    fit = fit_report(_report(), load_board("kr260"))
    lut = fit["resources"]["lut"]
    assert lut == {"used": 51_120, "available": 117_120, "margin": 66_000, "limit": 0.85,
                   "allowed": 99_552, "within_limit": True,
                   "utilisation": pytest.approx(51_120 / 117_120)}
    assert fit["resources"]["bram36"]["margin"] == 144 - 20.5
    assert fit["resources"]["bram36"]["allowed"] == pytest.approx(129.6)
    # By default only the default fabric top counts: it contains the others.
    assert fit["fits"] and fit["blocks"] == [FABRIC_BLOCK] and fit["over_limit"] == []
    assert fit["fabric"] == {"top": "feed_path"}

    both = fit_report(_report(), "kr260", blocks=[FABRIC_BLOCK, "side_block"], basis="sum")
    assert both["resources"]["dsp"]["used"] == 20 and both["basis"] == "sum"

    # Within the capacity is not enough: 90 % of the LUTs is over the limit.
    tight = fit_report(_report(lut=105_408 - 1_120), "kr260")
    assert tight["resources"]["lut"]["margin"] > 0 and not tight["fits"]
    assert tight["over_limit"] == ["lut"]


def test_fit_report_bad_input(tmp_path):
    with pytest.raises(SynthReportError, match="not in the synthesis report"):
        fit_report(_report(), "kr260", blocks=["no_such_block"])
    failed = _report()
    failed["blocks"][FABRIC_BLOCK] = {"error": "yosys exited with 1:\nERROR: x"}
    with pytest.raises(SynthReportError, match="failed synthesis: yosys exited with 1"):
        fit_report(failed, "kr260")
    with pytest.raises(SynthReportError, match="make synth"):
        fit_report(tmp_path / "missing.json", "kr260")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SynthReportError, match="not JSON"):
        fit_report(tmp_path / "bad.json", "kr260")
    with pytest.raises(SynthReportError, match="lacks 'ff'"):
        fit_report({"family": "xcup", "blocks": {FABRIC_BLOCK: {"lut": 1, "bram": 0, "dsp": 0}}},
                   "kr260")
    # UltraScale+ figures say little about a Zynq-7000 device.
    with pytest.raises(SynthReportError, match="synthesised for xcup, pynqz2 needs xc7: "
                                               "run `make synth BOARD=pynqz2`"):
        fit_report(_report(), "pynqz2")


def test_board_fit_from_a_real_result_and_its_limits(depth_probe):
    job, record = depth_probe
    board = load_board("kr260")
    fit = board_fit(board, [job], "whole top: depth_probe")
    resources = fit["resources"]
    assert fit["fits"] and resources["ff"]["used"] == record["ff"] == 86
    assert resources["lut"]["used"] == record["lut"] + record["lutram"] + record["srl"] > 0
    assert fit["estimates"]["probe"]["key"] == job.key()
    # The limit is a share of the capacity: 86 FFs fit 102 (84.3 %), not 101 (85.1 %).
    roomy = dataclasses.replace(board, capacity=Capacity(lut=10_000, ff=102, bram36=1, dsp=1))
    assert board_fit(roomy, [job], "")["fits"]
    tight = dataclasses.replace(board, capacity=Capacity(lut=10_000, ff=101, bram36=1, dsp=1))
    over = board_fit(tight, [job], "")
    assert not over["fits"] and over["over_limit"] == ["ff"]
    assert over["resources"]["ff"]["margin"] == 15
    text = fit_text(over)
    assert "FF" in text and "OVER" in text and "85.1 %" in text
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(fit_table(over))
    shown = console.export_text()
    assert "OVER" in shown and "<= 85 %" in shown and "85.1 %" in shown


def test_board_fit_reads_only_results_of_the_current_verilog(depth_probe, tmp_path):
    job, _ = depth_probe
    assert cached_result(job)["cached"]
    edited = tmp_path / "depth_probe.v"
    edited.write_text(DEPTH_PROBE.replace("x + y", "x - y"))
    stale = SynthJob(job.block, job.top, (edited,), job.work_dir)
    assert cached_result(stale) is None
    with pytest.raises(MissingEstimate, match=r"no synthesis estimate for block probe \(xcup\): "
                                              r"run `make synth BOARD=kr260`"):
        board_fit(load_board("kr260"), [stale], "")
    # The same Verilog for a Zynq-7000 board needs its own (xc7) synthesis.
    other_family = SynthJob(job.block, job.top, job.sources, tmp_path / "xc7", family="xc7")
    with pytest.raises(MissingEstimate, match=r"block probe \(xc7\): run `make synth "
                                              r"BOARD=pynqz2`") as caught:
        board_fit(load_board("pynqz2"), [other_family], "")
    assert caught.value.blocks == ["probe"]


def test_fit_parts_follow_the_board_files():
    names = {}
    for board in ("kr260", "zcu102", "pynqz2"):
        parts, basis = fit_parts(load_board(board), SYNTH_BUILD_ID)
        names[board] = [part.name for part in parts]
        assert all(part.ident in (SYNTH_BUILD_ID, 0) for part in parts)
        # Away from make rtl's files, which carry the checkout's build ID.
        assert all(part.path.parent.parent.name == "fit" for part in parts)
        assert ("sum of the three parts" in basis) == (board == "zcu102")
    assert names == {
        "kr260": ["feed_path"],
        "zcu102": ["feed_path", "pricer_chain-l2-o64-u16-s64", "quote_path"],
        "pynqz2": ["feed_path"],
    }
    assert FAMILIES[load_board("pynqz2").family] == "xc7"


def test_synthesis_build_id_is_the_tests_one():
    # Synthesis and the RTL tests must convert the same text into build/rtl/.
    assert SYNTH_BUILD_ID == TEST_BUILD_ID


def test_results_table_marks_blocks_over_the_goal():
    report = _report(lut_levels=9, meets_goal=False, carry_levels=2, cached=True,
                     worst_path={"from": {"type": "FDRE", "port": "Q", "net": "state",
                                          "cell": "c"},
                                 "to": {"type": "FDRE", "port": "D", "net": "$n",
                                        "register": "count", "cell": "d"}})
    report["blocks"]["side_block"] = {"error": "yosys did not finish within 10 s", "seconds": 10}
    from rich.console import Console

    console = Console(width=240, record=True)
    console.print(results_table(report))
    text = console.export_text()
    assert "9 (+3)" in text and "state (FDRE.Q)" in text and "count (FDRE.D)" in text
    assert "failed" in text and "(cached)" in text

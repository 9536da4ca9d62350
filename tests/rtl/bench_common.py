"""Scaffolding the cocotb benches under ``tests/rtl`` share.

Runs inside the simulator's Python: the clock and reset sequence, the
AXI-Lite master with register access by name, the cocotbext-axi stream
drivers, random pause generators, the cycle stamps of input and output
handshakes, and the files the pytest side exchanges with a bench
(``$ZYNQMM_STIMULUS`` in, ``$ZYNQMM_RUN_DIR/observed.json`` out).

The name does not end in ``_bench.py`` on purpose: the runner rewrites the
asserts of bench modules only (``rtl.common.sim.BENCH_FILES``), and this module
holds no test.
"""
from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamSink,
                           AxiStreamSource)

CLOCK_NS = 4


async def start_and_reset(dut, idle_low=(), settle_cycles: int = 2) -> None:
    """Start the clock, hold ``rst`` for four cycles and wait ``settle_cycles``
    after it; the ports in ``idle_low`` the bench drives itself start at 0."""
    for port in idle_low:
        getattr(dut, port).value = 0
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    if settle_cycles:
        await ClockCycles(dut.clk, settle_cycles)


def quiet_drivers(block: str, ports) -> None:
    """Keep the cocotbext-axi drivers' per-transfer logging out of the sim log."""
    for port in ports:
        logging.getLogger(f"cocotb.{block}.{port}").setLevel(logging.WARNING)


def stream_source(dut, prefix: str) -> AxiStreamSource:
    return AxiStreamSource(AxiStreamBus.from_prefix(dut, prefix), dut.clk, dut.rst)


def stream_sink(dut, prefix: str) -> AxiStreamSink:
    return AxiStreamSink(AxiStreamBus.from_prefix(dut, prefix), dut.clk, dut.rst)


def pauses(probability: float, seed: int):
    """An endless, seeded run of "pause this cycle" decisions."""
    rng = random.Random(seed)
    while True:
        yield rng.random() < probability


def sideband_values(sideband) -> list[int]:
    """Distinct values of a sideband signal over a packet (a compacted
    frame holds a single int when they were all equal)."""
    return sorted(set(sideband)) if isinstance(sideband, list) else [int(sideband)]


def axil_master(dut) -> AxiLiteMaster:
    return AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)


class RegisterBench:
    """A bench that reaches its block's registers (``rtl.regmap``) by name
    over the ``s_axil`` port."""

    def __init__(self, dut, registers):
        self.dut = dut
        self.registers = registers
        self.axil = axil_master(dut)
        self.cycle = 0

    def offset(self, register: str) -> int:
        return self.registers.register(register).offset

    async def read(self, register: str) -> int:
        return int.from_bytes((await self.axil.read(self.offset(register), 4)).data, "little")

    async def write(self, register: str, value: int) -> None:
        await self.axil.write(self.offset(register), value.to_bytes(4, "little"))


class InputStamps:
    """Per rising edge: how many cycles an input was held off, and the cycle
    of every accepted last beat (every accepted beat without a ``last``)."""

    def __init__(self, valid, ready, last=None):
        self.valid, self.ready, self.last = valid, ready, last
        self.stalls = 0
        self.last_cycles: list[int] = []

    def sample(self, cycle: int) -> None:
        if int(self.valid.value):
            if not int(self.ready.value):
                self.stalls += 1
            elif self.last is None or int(self.last.value):
                self.last_cycles.append(cycle)


class OutputStamps:
    """Per rising edge: the cycle of every output packet's first valid beat
    (every transfer is a packet without a ``last``)."""

    def __init__(self, valid, ready, last=None):
        self.valid, self.ready, self.last = valid, ready, last
        self.first_cycles: list[int] = []
        self._expecting_first = True

    def sample(self, cycle: int) -> bool:
        """Whether the output was valid this cycle."""
        if not int(self.valid.value):
            return False
        if self._expecting_first:
            self.first_cycles.append(cycle)
            self._expecting_first = False
        if int(self.ready.value) and (self.last is None or int(self.last.value)):
            self._expecting_first = True
        return True


async def stamp_cycles(bench, *stamps) -> None:
    """Count ``bench.cycle`` at every rising edge and let each of ``stamps``
    sample it there, as the cocotbext-axi drivers do."""
    while True:
        await RisingEdge(bench.dut.clk)
        bench.cycle += 1
        for stamp in stamps:
            stamp.sample(bench.cycle)


def stimulus_path() -> Path:
    return Path(os.environ["ZYNQMM_STIMULUS"])


def load_json_stimulus() -> dict:
    return json.loads(stimulus_path().read_text())


def run_dir() -> Path:
    return Path(os.environ["ZYNQMM_RUN_DIR"])


def write_observed(observed: dict) -> None:
    """Hand the run's results to the pytest side."""
    (run_dir() / "observed.json").write_text(json.dumps(observed))

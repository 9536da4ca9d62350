"""cocotb drivers the quoter and risk-gate benches share: a valid/ready word
source with random idle cycles and a word (or beat) sink with random
backpressure.

Both drive their signals at the falling edge and sample at the rising
edge.  A ready that depends combinationally on the output's ready (the
quoter's pipeline enable, the gate's output register) would otherwise race
with a driver that writes right after the rising edge.

The name does not end in ``_bench.py``: it holds no test (see
``tests/rtl/bench_common.py``).
"""
from __future__ import annotations

from cocotb.triggers import FallingEdge, RisingEdge

from tests.rtl.bench_common import pauses

# Cycles with nothing in flight after which a phase counts as drained.
QUIET_CYCLES = 48


class WordSource:
    """Drives ``<prefix>_data`` / ``_valid`` and waits for ``_ready``."""

    def __init__(self, dut, prefix: str):
        self.dut = dut
        self.data = getattr(dut, f"{prefix}_data")
        self.valid = getattr(dut, f"{prefix}_valid")
        self.ready = getattr(dut, f"{prefix}_ready")
        self.valid.value = 0
        self.data.value = 0

    async def send(self, words, pause, gap_cycles: int = 0) -> None:
        clk = self.dut.clk
        for word in words:
            await FallingEdge(clk)
            while next(pause):
                await FallingEdge(clk)
            self.data.value = word
            self.valid.value = 1
            while True:
                await RisingEdge(clk)
                if int(self.ready.value):
                    break
            await FallingEdge(clk)
            self.valid.value = 0
            for _ in range(gap_cycles):
                await FallingEdge(clk)


class WordSink:
    """Takes ``data`` when ``valid`` and ``ready`` at a rising edge (with
    ``last``, when given, as a second list); holds ``ready`` low on the
    cycles ``pause`` says."""

    def __init__(self, dut, data, valid, ready, pause_probability: float, seed: int, last=None):
        self.dut = dut
        self.data, self.valid, self.ready, self.last = data, valid, ready, last
        self.pause = pauses(pause_probability, seed)
        self.words: list[int] = []
        self.lasts: list[int] = []
        self.ready.value = int(not next(self.pause))

    @classmethod
    def port(cls, dut, prefix: str, pause_probability: float, seed: int) -> "WordSink":
        return cls(dut, getattr(dut, f"{prefix}_data"), getattr(dut, f"{prefix}_valid"),
                   getattr(dut, f"{prefix}_ready"), pause_probability, seed)

    @classmethod
    def axis(cls, dut, prefix: str, pause_probability: float, seed: int) -> "WordSink":
        return cls(dut, getattr(dut, f"{prefix}_tdata"), getattr(dut, f"{prefix}_tvalid"),
                   getattr(dut, f"{prefix}_tready"), pause_probability, seed,
                   getattr(dut, f"{prefix}_tlast"))

    async def run(self) -> None:
        clk = self.dut.clk
        while True:
            await RisingEdge(clk)
            if int(self.valid.value) and int(self.ready.value):
                self.words.append(int(self.data.value))
                if self.last is not None:
                    self.lasts.append(int(self.last.value))
            await FallingEdge(clk)
            self.ready.value = int(not next(self.pause))

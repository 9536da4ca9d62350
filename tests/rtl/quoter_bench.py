"""cocotb bench for the quoter's generated Verilog.

Runs inside the simulator.  ``stream_stimulus`` plays the phases of
``$ZYNQMM_STIMULUS`` (:class:`tests.rtl.quoting_stimulus.Stimulus`): register
writes over AXI-Lite, then theo words on ``s_theo`` with random idle cycles
while ``m_quote`` sees random backpressure; the next phase starts once the
output has drained.  It writes to ``$ZYNQMM_RUN_DIR/observed.json`` the
quote words, the counters, TICK_STATUS, the cycle of every accepted theo and
of every quote word's first valid cycle, and the cycles a theo waited.
``register_access`` checks the decode, the reset values and RO/RW behaviour.
"""
from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotbext.axi import AxiResp

from rtl.quoter.model import COUNTERS, DEFAULT_TICKS, OPTIONS, TICK_BANDS
from rtl.regmap.driver import decode
from rtl.regmap.map import QUOTER
from tests.rtl.bench_common import (InputStamps, OutputStamps, RegisterBench, pauses,
                                    quiet_drivers, stamp_cycles, start_and_reset, stimulus_path,
                                    write_observed)
from tests.rtl.quoting_drivers import QUIET_CYCLES, WordSink, WordSource
from tests.rtl.quoting_stimulus import Stimulus


class Bench(RegisterBench):
    def __init__(self, dut, sink_pause: float = 0.0, seed: int = 0):
        quiet_drivers("quoter", ("s_axil",))
        super().__init__(dut, QUOTER)
        self.source = WordSource(dut, "s_theo")
        self.sink = WordSink.port(dut, "m_quote", sink_pause, seed + 1)
        self.input = InputStamps(dut.s_theo_valid, dut.s_theo_ready)
        self.output = OutputStamps(dut.m_quote_valid, dut.m_quote_ready)

    async def start(self):
        await start_and_reset(self.dut)
        cocotb.start_soon(stamp_cycles(self, self.input, self.output))
        cocotb.start_soon(self.sink.run())

    async def reset(self) -> None:
        """Back to the reset state (registers, tables, counters) between cases."""
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def counters(self) -> dict:
        return {name: await self.read(f"COUNT_{name.upper()}") for name in COUNTERS}

    async def drain(self, expected: int, limit: int) -> None:
        quiet = 0
        end = self.cycle + limit
        while quiet < QUIET_CYCLES and self.cycle < end:
            await RisingEdge(self.dut.clk)
            busy = int(self.dut.m_quote_valid.value) or len(self.sink.words) < expected
            quiet = 0 if busy else quiet + 1


@cocotb.test()
async def stream_stimulus(dut):
    stimulus = Stimulus.load(stimulus_path())
    bench = Bench(dut, stimulus.sink_pause, stimulus.seed)
    await bench.start()
    source_pause = pauses(stimulus.source_pause, stimulus.seed)
    snapshots = []
    for phase in stimulus.phases:
        if phase.reset:
            await bench.reset()
        for register, value in phase.writes:
            await bench.write(register, value)
        await bench.source.send(phase.words, source_pause, stimulus.gap_cycles)
        await bench.drain(0, 20 * len(phase.words) + 2_000)
        if phase.snapshot:
            snapshots.append(await bench.counters())
    await bench.drain(stimulus.expected, 5_000)
    observed = {
        "words": [hex(w) for w in bench.sink.words],
        "counters": await bench.counters(),
        "snapshots": snapshots,
        "tick_status": await bench.read("TICK_STATUS"),
        "accept_cycles": bench.input.last_cycles,
        "first_valid_cycles": bench.output.first_cycles,
        "input_waits": bench.input.stalls,
        "cycles": bench.cycle,
    }
    write_observed(observed)


@cocotb.test()
async def register_access(dut):
    bench = Bench(dut)
    await bench.start()
    info = decode("quoter", "INFO", await bench.read("INFO"))
    assert info == {"options": OPTIONS, "tick_bands": TICK_BANDS}, info
    for i, band in enumerate(DEFAULT_TICKS):
        assert await bench.read(f"TICK{i}_START") == band.start
        assert await bench.read(f"TICK{i}_SIZE") == band.size
        assert await bench.read(f"TICK{i}_RECIP") == band.recip
    assert await bench.read("TICK_STATUS") == 0b0011
    # A wrong reciprocal shows in TICK_STATUS at once.
    await bench.write("TICK1_RECIP", DEFAULT_TICKS[1].recip + 1)
    assert await bench.read("TICK_STATUS") == 0b0001
    await bench.write("TICK1_RECIP", DEFAULT_TICKS[1].recip)
    assert await bench.read("TICK_STATUS") == 0b0011
    # RW: full words read back; the skew and positions are raw 32-bit words.
    await bench.write("SKEW", 0xFFFF_FF00)
    assert await bench.read("SKEW") == 0xFFFF_FF00
    await bench.write(f"POSITION{OPTIONS - 1}", 0x8000_0001)
    assert await bench.read(f"POSITION{OPTIONS - 1}") == 0x8000_0001
    await bench.write("TICK0_SIZE", 0xFFFF_FFFF)
    assert await bench.read("TICK0_SIZE") == 0xFFFF, "bits above the field must read 0"
    # RO: writes do not stick.
    await bench.write("COUNT_THEOS", 55)
    assert await bench.read("COUNT_THEOS") == 0
    # Holes answer SLVERR and read 0.
    for hole in (0x024, 0x03C, 0x04C, 0x0FC, 0x3FC, 0x400 + 4 * OPTIONS, 0xFFC):
        response = await bench.axil.read(hole, 4)
        assert response.resp == AxiResp.SLVERR, hex(hole)
        assert response.data == bytes(4)

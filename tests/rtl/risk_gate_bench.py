"""cocotb bench for the risk gate's generated Verilog.

Runs inside the simulator.  ``stream_stimulus`` plays the phases of
``$ZYNQMM_STIMULUS`` (:class:`tests.rtl.quoting_stimulus.Stimulus`): register
writes over AXI-Lite (then a wait while STATUS.busy, so a kill's pulls are
out), then quote words on ``s_quote`` with random idle cycles while
``m_axis`` sees random backpressure; the next phase starts once the output
has drained.  It writes to ``$ZYNQMM_RUN_DIR/observed.json`` the records
(bytes, with the tlast of each beat), counters, STATUS and PULLED, the
cycle of every accepted word and of every record's first valid beat.
``register_access`` checks the decode, the reset values and RO/RW behaviour.
"""
from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotbext.axi import AxiResp

from host.protocols.ouch50 import MAX_LIMIT_PRICE
from rtl.regmap.driver import decode
from rtl.regmap.map import RISK_GATE
from rtl.risk_gate.model import (COUNTERS, DEFAULT_PULL_MASK, DEFAULT_RATE_COUNT,
                                 DEFAULT_RATE_WINDOW, OPTIONS, UNDERLYINGS)
from tests.rtl.bench_common import (InputStamps, OutputStamps, RegisterBench, pauses,
                                    quiet_drivers, stamp_cycles, start_and_reset, stimulus_path,
                                    write_observed)
from tests.rtl.quoting_drivers import QUIET_CYCLES, WordSink, WordSource
from tests.rtl.quoting_stimulus import Stimulus


class Bench(RegisterBench):
    def __init__(self, dut, sink_pause: float = 0.0, seed: int = 0):
        quiet_drivers("risk_gate", ("s_axil",))
        super().__init__(dut, RISK_GATE)
        self.source = WordSource(dut, "s_quote")
        self.sink = WordSink.axis(dut, "m_axis", sink_pause, seed + 1)
        self.input = InputStamps(dut.s_quote_valid, dut.s_quote_ready)
        self.output = OutputStamps(dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tlast)

    async def start(self):
        await start_and_reset(self.dut)
        cocotb.start_soon(stamp_cycles(self, self.input, self.output))
        cocotb.start_soon(self.sink.run())

    async def wait_idle(self) -> None:
        for _ in range(2_000):
            if not decode("risk_gate", "STATUS", await self.read("STATUS"))["busy"]:
                return
        raise AssertionError("the gate stays busy")

    async def reset(self) -> None:
        """Back to the reset state (registers, tables, counters) between cases."""
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def counters(self) -> dict:
        return {name: await self.read(f"COUNT_{name.upper()}") for name in COUNTERS}

    async def drain(self, expected_beats: int, limit: int) -> None:
        quiet = 0
        end = self.cycle + limit
        while quiet < QUIET_CYCLES and self.cycle < end:
            await RisingEdge(self.dut.clk)
            busy = int(self.dut.m_axis_tvalid.value) or len(self.sink.words) < expected_beats
            quiet = 0 if busy else quiet + 1

    def records(self) -> list[str]:
        out, current = [], b""
        for beat, last in zip(self.sink.words, self.sink.lasts):
            current += beat.to_bytes(8, "little")
            if last:
                out.append(current.hex())
                current = b""
        if current:
            out.append(current.hex() + "/no-tlast")
        return out


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
        await bench.wait_idle()
        await bench.source.send(phase.words, source_pause, stimulus.gap_cycles)
        await bench.drain(0, 40 * len(phase.words) + 2_000)
        if phase.snapshot:
            snapshots.append(await bench.counters())
    await bench.drain(8 * stimulus.expected, 5_000)
    observed = {
        "records": bench.records(),
        "counters": await bench.counters(),
        "snapshots": snapshots,
        "status": decode("risk_gate", "STATUS", await bench.read("STATUS")),
        "pulled": await bench.read("PULLED"),
        "accept_cycles": bench.input.last_cycles,
        "first_beat_cycles": bench.output.first_cycles,
        "input_waits": bench.input.stalls,
        "cycles": bench.cycle,
    }
    write_observed(observed)


@cocotb.test()
async def register_access(dut):
    bench = Bench(dut)
    await bench.start()
    assert decode("risk_gate", "INFO", await bench.read("INFO")) == \
        {"gate_options": OPTIONS, "underlying_entries": UNDERLYINGS}
    # Reset: killed, default pull mask, band and rate limit.
    assert decode("risk_gate", "CONTROL", await bench.read("CONTROL")) == \
        {"kill": 1, "pull_mask": DEFAULT_PULL_MASK}
    assert await bench.read("MIN_PRICE") == 1
    assert await bench.read("MAX_PRICE") == MAX_LIMIT_PRICE
    assert await bench.read("RATE_COUNT") == DEFAULT_RATE_COUNT
    assert await bench.read("RATE_WINDOW") == DEFAULT_RATE_WINDOW
    assert decode("risk_gate", "STATUS", await bench.read("STATUS")) == \
        {"busy": 0, "live_options": 0}
    await bench.write("UNDERLYING5", 0xFFFF_FFFF)
    assert await bench.read("UNDERLYING5") == 0x8003_FFFF, "unused bits must read 0"
    await bench.write("RATE_COUNT", 0x1234)
    assert await bench.read("RATE_COUNT") == 0x34
    await bench.write("COUNT_WORDS", 9)
    assert await bench.read("COUNT_WORDS") == 0
    await bench.write("PULLED", 0xFFFF)
    assert await bench.read("PULLED") == 0
    for hole in (0x024, 0x07C, 0x0FC, 0x100 + 4 * UNDERLYINGS, 0xFFC):
        response = await bench.axil.read(hole, 4)
        assert response.resp == AxiResp.SLVERR, hex(hole)
        assert response.data == bytes(4)

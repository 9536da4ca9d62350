"""cocotb bench for the quote path (quoter then risk gate), and
:func:`measure`, its latency for the report.

Inside the simulator ``stream_stimulus`` plays the phases of
``$ZYNQMM_STIMULUS`` (:class:`tests.rtl.quoting_stimulus.ChainScenario`):
register writes to either block's window, then theo words on ``s_theo``
with random idle cycles while ``m_axis`` sees random backpressure.  It
writes the records, both blocks' counters, and the cycle of every accepted
theo and every record's first beat to ``$ZYNQMM_RUN_DIR/observed.json``.

Outside it, ``measure()`` builds the top level, sends spaced theo words that
each make one record and returns the cycles from a theo accepted to its
record's first beat (``python -m tests.rtl.quote_path_bench`` prints it).
"""
from __future__ import annotations

import json

import cocotb
from cocotb.triggers import RisingEdge

from rtl.quoter import model as quoter_model
from rtl.regmap.map import QUOTER, RISK_GATE
from rtl.risk_gate import model as gate_model
from tests.rtl.bench_common import (InputStamps, OutputStamps, axil_master, pauses,
                                    quiet_drivers, stamp_cycles, start_and_reset, stimulus_path,
                                    write_observed)
from tests.rtl.quoting_drivers import QUIET_CYCLES, WordSink, WordSource
from tests.rtl.quoting_stimulus import Stimulus

BLOCK_SPECS = {"quoter": QUOTER, "risk_gate": RISK_GATE}
WINDOW_BYTES = 0x1000


class Bench:
    def __init__(self, dut, sink_pause: float, seed: int):
        from rtl.risk_gate.quote_path import WINDOWS

        quiet_drivers("quote_path", ("s_axil",))
        self.dut = dut
        self.windows = WINDOWS
        self.axil = axil_master(dut)
        self.cycle = 0
        self.source = WordSource(dut, "s_theo")
        self.sink = WordSink.axis(dut, "m_axis", sink_pause, seed + 1)
        self.input = InputStamps(dut.s_theo_valid, dut.s_theo_ready)
        self.output = OutputStamps(dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tlast)

    def address(self, name: str) -> int:
        block, register = name.split(".")
        return self.windows[block] * WINDOW_BYTES + BLOCK_SPECS[block].register(register).offset

    async def write(self, name: str, value: int) -> None:
        await self.axil.write(self.address(name), value.to_bytes(4, "little"))

    async def read(self, name: str) -> int:
        return int.from_bytes((await self.axil.read(self.address(name), 4)).data, "little")


@cocotb.test()
async def stream_stimulus(dut):
    stimulus = Stimulus.load(stimulus_path())
    bench = Bench(dut, stimulus.sink_pause, stimulus.seed)
    await start_and_reset(dut)
    cocotb.start_soon(stamp_cycles(bench, bench.input, bench.output))
    cocotb.start_soon(bench.sink.run())
    source_pause = pauses(stimulus.source_pause, stimulus.seed)
    for phase in stimulus.phases:
        for register, value in phase.writes:
            await bench.write(register, value)
        await bench.source.send(phase.words, source_pause, stimulus.gap_cycles)
    quiet, end = 0, bench.cycle + 20_000
    while quiet < QUIET_CYCLES and bench.cycle < end:
        await RisingEdge(dut.clk)
        busy = int(dut.m_axis_tvalid.value) or len(bench.sink.words) < 8 * stimulus.expected
        quiet = 0 if busy else quiet + 1
    records, current = [], b""
    for beat, last in zip(bench.sink.words, bench.sink.lasts):
        current += beat.to_bytes(8, "little")
        if last:
            records.append(current.hex())
            current = b""
    counters = {}
    for block, module in (("quoter", quoter_model), ("risk_gate", gate_model)):
        counters[block] = {name: await bench.read(f"{block}.COUNT_{name.upper()}")
                           for name in module.COUNTERS}
    write_observed({"records": records, "counters": counters,
                    "accept_cycles": bench.input.last_cycles,
                    "first_beat_cycles": bench.output.first_cycles,
                    "input_waits": bench.input.stalls})


# ---- outside the simulator -------------------------------------------------------
def latency_scenario():
    """Theo words far apart, each moving its option by a tick, so each makes
    exactly one quote record and finds both blocks idle."""
    from rtl.quoter.model import QuoterSettings
    from rtl.risk_gate.model import GateSettings, UnderlyingEntry
    from tests.rtl.quoting_stimulus import ChainScenario, theo, theo_raw

    scenario = ChainScenario(
        QuoterSettings(half_spread=200, bid_size=10, ask_size=10, requote_threshold=100),
        GateSettings(kill=False, rate_count=255, rate_window=1,
                     underlyings=(UnderlyingEntry(7, True, True, True),)))
    scenario.theos([theo(k % 4, theo_raw(20_000 + 100 * k), underlying=7,
                         ingress_cycle=100 * k, raw=True) for k in range(16)])
    return scenario


def run_scenario(build, name: str, scenario, **kw) -> dict:
    stimulus = scenario.stimulus(**kw)
    run_dir = build.build_dir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    path = stimulus.save(run_dir / "stimulus.json")
    build.run("tests.rtl.quote_path_bench", name, testcase="stream_stimulus",
              extra_env={"ZYNQMM_STIMULUS": str(path)})
    return json.loads((run_dir / "observed.json").read_text())


def latencies(observed: dict) -> list[int]:
    return [beat - accept for accept, beat in
            zip(observed["accept_cycles"], observed["first_beat_cycles"])]


def measure() -> dict:
    """Cycles from a theo word accepted by the quoter to the first beat of its
    quote record out of the risk gate, both idle (Verilator unless $SIM)."""
    from rtl.blocks import BLOCKS, convert_block
    from rtl.common import sim

    verilog = convert_block("quote_path", 0)
    build = sim.build("quote_path", [verilog], BLOCKS["quote_path"].toplevel)
    scenario = latency_scenario()
    observed = run_scenario(build, "measure", scenario, gap_cycles=40)
    cycles = latencies(observed)
    if len(observed["records"]) != len(scenario.expected) or len(set(cycles)) != 1:
        raise RuntimeError(f"quote path latency not one number: {cycles}")
    return {"quoter_gate_cycles": cycles[0]}


if __name__ == "__main__":
    print(json.dumps(measure()))

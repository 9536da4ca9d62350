"""cocotb bench for the feed path's generated Verilog.

Runs inside the simulator.  ``stream_stimulus`` writes the registers of
``$ZYNQMM_STIMULUS`` over AXI-Lite, drives feed A and feed B at the same
time (each frame released at its cycle, so the feeds overlap), pausing the
sources and the record sink as asked, and writes to
``$ZYNQMM_RUN_DIR/observed.json``: the records, the registers read at the
end, the cycle of every input frame's last beat per feed, the cycle every
payload's last beat reached the sequencer per feed (its arbitration order),
and the cycle of every record's first beat.  With ``serial`` the frames go one at a
time, in order, each once the path has been quiet, so every record follows
the frame that caused it.
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
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame,
                           AxiStreamSink, AxiStreamSource)

CLOCK_NS = 4
QUIET_CYCLES = 64
FEEDS = ("a", "b")
# The filter instances in the flattened Verilog, in the order the top level
# creates them (feed A's first); their output is the sequencer's input.
PAYLOAD_BUSES = ("frame_filter0_m_axis", "frame_filter1_m_axis")


def _pauses(probability: float, seed: int):
    rng = random.Random(seed)
    while True:
        yield rng.random() < probability


class Bench:
    def __init__(self, dut):
        self.dut = dut
        for name in ("s_axis_a", "s_axis_b", "m_axis", "s_axil"):
            logging.getLogger(f"cocotb.feed_path.{name}").setLevel(logging.WARNING)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.sources = [AxiStreamSource(AxiStreamBus.from_prefix(dut, f"s_axis_{f}"), dut.clk,
                                        dut.rst) for f in FEEDS]
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst)
        self.cycle = 0
        self.input_last = [[], []]
        self.arrivals = [[], []]
        self.record_first = []
        self.last_activity = 0

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, CLOCK_NS, unit="ns").start())
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)
        cocotb.start_soon(self._watch())

    async def _watch(self):
        dut = self.dut
        inputs = [(dut.s_axis_a_tvalid, dut.s_axis_a_tready, dut.s_axis_a_tlast),
                  (dut.s_axis_b_tvalid, dut.s_axis_b_tready, dut.s_axis_b_tlast)]
        payloads = [tuple(getattr(dut, f"{bus}_{s}") for s in ("tvalid", "tready", "tlast"))
                    for bus in PAYLOAD_BUSES]
        expecting_first = True
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            for feed in (0, 1):
                valid, ready, last = inputs[feed]
                if int(valid.value) and int(ready.value) and int(last.value):
                    self.input_last[feed].append(self.cycle)
                valid, ready, last = payloads[feed]
                if int(valid.value):
                    self.last_activity = self.cycle
                    if int(ready.value) and int(last.value):
                        self.arrivals[feed].append(self.cycle)
            if int(dut.m_axis_tvalid.value):
                self.last_activity = self.cycle
                if expecting_first:
                    self.record_first.append(self.cycle)
                    expecting_first = False
                if int(dut.m_axis_tready.value) and int(dut.m_axis_tlast.value):
                    expecting_first = True

    async def quiet(self, cycles: int) -> None:
        while self.cycle - self.last_activity < cycles or \
                not all(source.idle() for source in self.sources):
            await RisingEdge(self.dut.clk)

    async def feed(self, feed: int, frames: list, serial: bool) -> None:
        for data, error, release in frames:
            while self.cycle < release:
                await RisingEdge(self.dut.clk)
            if serial:
                await self.quiet(QUIET_CYCLES)
            await self.sources[feed].send(AxiStreamFrame(data, tuser=[0] * (len(data) - 1) +
                                                         [int(error)]))
            if serial:
                await self.sources[feed].wait()


@cocotb.test()
async def stream_stimulus(dut):
    stimulus = json.loads(Path(os.environ["ZYNQMM_STIMULUS"]).read_text())
    bench = Bench(dut)
    await bench.start()
    for address, value in stimulus["writes"]:
        await bench.axil.write(address, value.to_bytes(4, "little"))
    seed = stimulus["seed"]
    for feed, source in enumerate(bench.sources):
        if stimulus["source_pause"]:
            source.set_pause_generator(_pauses(stimulus["source_pause"], seed + feed))
    if stimulus["sink_pause"]:
        bench.sink.set_pause_generator(_pauses(stimulus["sink_pause"], seed + 2))

    start = bench.cycle
    if stimulus["serial"]:
        for feed, data, error, _ in stimulus["frames"]:
            await bench.feed(feed, [(bytes.fromhex(data), error, 0)], serial=True)
    else:
        per_feed = [[], []]
        for feed, data, error, release in stimulus["frames"]:
            per_feed[feed].append((bytes.fromhex(data), error, start + release))
        feeders = [cocotb.start_soon(bench.feed(feed, per_feed[feed], serial=False))
                   for feed in (0, 1)]
        for feeder in feeders:
            await feeder
    records = []
    limit = bench.cycle + 200_000
    while bench.cycle < limit:
        await RisingEdge(dut.clk)
        while not bench.sink.empty():
            records.append(bench.sink.recv_nowait())
        if bench.cycle - bench.last_activity > stimulus["end_quiet_cycles"] and \
                all(source.idle() for source in bench.sources):
            break
    registers = {}
    for name, address in stimulus["reads"]:
        response = await bench.axil.read(address, 4)
        registers[name] = [int.from_bytes(response.data, "little"), int(response.resp)]
    observed = {
        "records": [[bytes(r.tdata).hex(), sorted(set(r.tdest)) if isinstance(r.tdest, list)
                     else [int(r.tdest)]] for r in records],
        "registers": registers,
        "input_last": bench.input_last,
        "arrivals": bench.arrivals,
        "record_first": bench.record_first,
        "cycles": bench.cycle,
    }
    Path(os.environ["ZYNQMM_RUN_DIR"], "observed.json").write_text(json.dumps(observed))

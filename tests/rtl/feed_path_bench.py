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

import cocotb
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiStreamFrame

from tests.rtl.bench_common import (InputStamps, OutputStamps, axil_master,
                                    load_json_stimulus, pauses, quiet_drivers, sideband_values,
                                    start_and_reset, stream_sink, stream_source, write_observed)

QUIET_CYCLES = 64
FEEDS = ("a", "b")
# The filter instances in the flattened Verilog, in the order the top level
# creates them (feed A's first); their output is the sequencer's input.
PAYLOAD_BUSES = ("frame_filter0_m_axis", "frame_filter1_m_axis")


class Bench:
    def __init__(self, dut):
        self.dut = dut
        quiet_drivers("feed_path", ("s_axis_a", "s_axis_b", "m_axis", "s_axil"))
        self.axil = axil_master(dut)
        self.sources = [stream_source(dut, f"s_axis_{f}") for f in FEEDS]
        self.sink = stream_sink(dut, "m_axis")
        self.cycle = 0
        self.inputs = [InputStamps(*(getattr(dut, f"s_axis_{f}_{s}")
                                     for s in ("tvalid", "tready", "tlast"))) for f in FEEDS]
        self.arrivals = [[], []]
        self.output = OutputStamps(dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tlast)
        self.last_activity = 0

    async def start(self):
        await start_and_reset(self.dut)
        cocotb.start_soon(self._watch())

    async def _watch(self):
        dut = self.dut
        payloads = [tuple(getattr(dut, f"{bus}_{s}") for s in ("tvalid", "tready", "tlast"))
                    for bus in PAYLOAD_BUSES]
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            for feed in (0, 1):
                self.inputs[feed].sample(self.cycle)
                valid, ready, last = payloads[feed]
                if int(valid.value):
                    self.last_activity = self.cycle
                    if int(ready.value) and int(last.value):
                        self.arrivals[feed].append(self.cycle)
            if self.output.sample(self.cycle):
                self.last_activity = self.cycle

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
    stimulus = load_json_stimulus()
    bench = Bench(dut)
    await bench.start()
    for address, value in stimulus["writes"]:
        await bench.axil.write(address, value.to_bytes(4, "little"))
    seed = stimulus["seed"]
    for feed, source in enumerate(bench.sources):
        if stimulus["source_pause"]:
            source.set_pause_generator(pauses(stimulus["source_pause"], seed + feed))
    if stimulus["sink_pause"]:
        bench.sink.set_pause_generator(pauses(stimulus["sink_pause"], seed + 2))

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
        "records": [[bytes(r.tdata).hex(), sideband_values(r.tdest)] for r in records],
        "registers": registers,
        "input_last": [stamps.last_cycles for stamps in bench.inputs],
        "arrivals": bench.arrivals,
        "record_first": bench.output.first_cycles,
        "cycles": bench.cycle,
    }
    write_observed(observed)

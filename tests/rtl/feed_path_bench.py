"""cocotb bench for the feed path's generated Verilog.

Runs inside the simulator.  ``stream_stimulus`` writes the registers of
``$ZYNQMM_STIMULUS`` over AXI-Lite, drives feed A and feed B at the same
time (each frame released at its cycle, so the feeds overlap), pausing the
sources, the record sink and the feed event sink as asked, and writes to
``$ZYNQMM_RUN_DIR/observed.json``: the records, the feed event records, the
registers read at the end, the cycle of every input frame's last beat per
feed, the cycle every payload's last beat reached the sequencer per feed
(its arbitration order; a payload closed by ``tdrop``, whose frame the
filter dropped at its end, is the filter's drop and not an arrival), and the
cycle of every record's first beat.  With
``serial`` the frames go one at a time, in order, each once the path has
been quiet, so every record follows the frame that caused it; the feed event
sink can then be held (``tready`` low) until a given frame has gone in, so
the event queues overflow.  With ``probe_stages`` the bench also stamps the
handshakes between the blocks (feed A's payloads, the sequencer's messages,
the decoder's events), which is where the latency breakdown comes from.
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
MESSAGE_BUS = "mold_seq0_m_axis"
EVENT_PORT = "itch_decoder0_m_event"


def stage_stamps(dut) -> dict:
    """Stamps of the handshakes between the blocks, by stage name."""
    def handshake(prefix: str, *names: str):
        return [getattr(dut, f"{prefix}_{name}") for name in names]

    payload = handshake(PAYLOAD_BUSES[0], "tvalid", "tready", "tlast")
    message = handshake(MESSAGE_BUS, "tvalid", "tready", "tlast")
    return {
        "payload_first": OutputStamps(*payload), "payload_last": InputStamps(*payload),
        "message_first": OutputStamps(*message), "message_last": InputStamps(*message),
        "event": OutputStamps(*handshake(EVENT_PORT, "valid", "ready")),
    }


class Bench:
    def __init__(self, dut):
        self.dut = dut
        quiet_drivers("feed_path", ("s_axis_a", "s_axis_b", "m_axis", "m_feed_event", "s_axil"))
        self.axil = axil_master(dut)
        self.sources = [stream_source(dut, f"s_axis_{f}") for f in FEEDS]
        self.sink = stream_sink(dut, "m_axis")
        self.event_sink = stream_sink(dut, "m_feed_event")
        self.events_held = False
        self.cycle = 0
        self.inputs = [InputStamps(*(getattr(dut, f"s_axis_{f}_{s}")
                                     for s in ("tvalid", "tready", "tlast"))) for f in FEEDS]
        self.arrivals = [[], []]
        self.output = OutputStamps(dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tlast)
        self.last_activity = 0
        self.stages: dict = {}

    async def start(self):
        await start_and_reset(self.dut)
        cocotb.start_soon(self._watch())

    async def _watch(self):
        dut = self.dut
        payloads = [tuple(getattr(dut, f"{bus}_{s}") for s in ("tvalid", "tready", "tlast",
                                                               "tdrop"))
                    for bus in PAYLOAD_BUSES]
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            # Frames going in, messages and events in flight count as
            # activity: serial frames wait for all of them.
            if int(getattr(dut, f"{MESSAGE_BUS}_tvalid").value) or \
                    int(getattr(dut, f"{EVENT_PORT}_valid").value):
                self.last_activity = self.cycle
            for feed in (0, 1):
                if int(self.inputs[feed].valid.value):
                    self.last_activity = self.cycle
                self.inputs[feed].sample(self.cycle)
                valid, ready, last, drop = payloads[feed]
                if int(valid.value):
                    self.last_activity = self.cycle
                    if int(ready.value) and int(last.value) and not int(drop.value):
                        self.arrivals[feed].append(self.cycle)
            if self.output.sample(self.cycle):
                self.last_activity = self.cycle
            for stamps in self.stages.values():
                stamps.sample(self.cycle)

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


def held_or_paused(bench: Bench, probability: float, seed: int):
    """The feed event sink's pauses: always while the bench holds it."""
    random_pauses = pauses(probability, seed)
    while True:
        pause = next(random_pauses)
        yield bench.events_held or pause


@cocotb.test()
async def stream_stimulus(dut):
    stimulus = load_json_stimulus()
    bench = Bench(dut)
    if stimulus.get("probe_stages"):
        bench.stages = stage_stamps(dut)
    bench.events_held = stimulus.get("event_hold_frames", 0) > 0
    bench.event_sink.set_pause_generator(
        held_or_paused(bench, stimulus.get("event_pause", 0.0), stimulus["seed"] + 3))
    await bench.start()
    for address, value in stimulus["writes"]:
        await bench.axil.write(address, value.to_bytes(4, "little"))
    # The book clears its order table after reset; frames wait for that.
    address, busy = stimulus["busy"]
    while int.from_bytes((await bench.axil.read(address, 4)).data, "little") & busy:
        pass
    seed = stimulus["seed"]
    for feed, source in enumerate(bench.sources):
        if stimulus["source_pause"]:
            source.set_pause_generator(pauses(stimulus["source_pause"], seed + feed))
    if stimulus["sink_pause"]:
        bench.sink.set_pause_generator(pauses(stimulus["sink_pause"], seed + 2))

    start = bench.cycle
    if stimulus["serial"]:
        for i, (feed, data, error, _) in enumerate(stimulus["frames"]):
            if i == stimulus.get("event_hold_frames", 0):
                bench.events_held = False
            await bench.feed(feed, [(bytes.fromhex(data), error, 0)], serial=True)
        bench.events_held = False
    else:
        per_feed = [[], []]
        for feed, data, error, release in stimulus["frames"]:
            per_feed[feed].append((bytes.fromhex(data), error, start + release))
        feeders = [cocotb.start_soon(bench.feed(feed, per_feed[feed], serial=False))
                   for feed in (0, 1)]
        for feeder in feeders:
            await feeder
    records, feed_events = [], []
    limit = bench.cycle + 200_000
    while bench.cycle < limit:
        await RisingEdge(dut.clk)
        while not bench.sink.empty():
            records.append(bench.sink.recv_nowait())
        while not bench.event_sink.empty():
            feed_events.append(bench.event_sink.recv_nowait())
        if bench.cycle - bench.last_activity > stimulus["end_quiet_cycles"] and \
                all(source.idle() for source in bench.sources) and \
                not int(dut.m_feed_event_tvalid.value):
            break
    registers = {}
    for name, address in stimulus["reads"]:
        response = await bench.axil.read(address, 4)
        registers[name] = [int.from_bytes(response.data, "little"), int(response.resp)]
    observed = {
        "records": [[bytes(r.tdata).hex(), sideband_values(r.tdest)] for r in records],
        "feed_events": [bytes(r.tdata).hex() for r in feed_events],
        "registers": registers,
        "input_last": [stamps.last_cycles for stamps in bench.inputs],
        "arrivals": bench.arrivals,
        "record_first": bench.output.first_cycles,
        "stages": {name: stamps.first_cycles if isinstance(stamps, OutputStamps)
                   else stamps.last_cycles for name, stamps in bench.stages.items()},
        "cycles": bench.cycle,
    }
    write_observed(observed)

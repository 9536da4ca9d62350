"""cocotb bench for the order book's generated Verilog.

Runs inside the simulator.  ``stream_stimulus`` sets the control bits,
plays the phases of ``$ZYNQMM_STIMULUS`` (host commands over AXI-Lite, each
waited for, then events on ``s_event`` with random idle cycles, while the
record sink applies random backpressure; the next phase starts once the
block is idle and the output drained) and writes what came out to
``$ZYNQMM_RUN_DIR/observed.json``: records with their ``tdest``, the feed
event records taken off ``m_feed_event`` (with a random ready), counters,
occupancy, degraded slots, slot info, the cycle of every accepted event and
of every record's first valid beat, and how many cycles a valid event
waited.  The pytest side compares that with the model.
``register_access`` checks the register decode and the command handshake.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiResp

from rtl.order_book.model import COUNTERS, CMD_ASSIGN, CMD_NONE, BookConfig
from rtl.regmap.driver import decode, encode
from rtl.regmap.map import ORDER_BOOK
from tests.rtl.bench_common import (InputStamps, OutputStamps, RegisterBench, pauses,
                                    quiet_drivers, stamp_cycles, start_and_reset, stimulus_path,
                                    stream_sink, write_observed)
from tests.rtl.order_book_stimulus import Stimulus

QUIET_CYCLES = 64


class Bench(RegisterBench):
    def __init__(self, dut):
        quiet_drivers("order_book", ("m_axis", "s_axil"))
        super().__init__(dut, ORDER_BOOK)
        self.sink = stream_sink(dut, "m_axis")
        self.toggle = 0
        self.input = InputStamps(dut.s_event_valid, dut.s_event_ready)
        self.output = OutputStamps(dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tlast)
        self.feed_events: list[str] = []

    async def start(self, feed_event_pause: float = 0.0, seed: int = 0):
        await start_and_reset(self.dut, idle_low=("s_event_valid", "s_event_data",
                                                  "m_feed_event_ready"), settle_cycles=0)
        cocotb.start_soon(stamp_cycles(self, self.input, self.output))
        cocotb.start_soon(self._take_feed_events(feed_event_pause, seed))
        await self.wait_idle()

    async def _take_feed_events(self, pause: float, seed: int) -> None:
        dut, rng = self.dut, random.Random(seed)
        while True:
            await RisingEdge(dut.clk)
            if int(dut.m_feed_event_valid.value) and int(dut.m_feed_event_ready.value):
                self.feed_events.append(f"{int(dut.m_feed_event_data.value):048x}")
            dut.m_feed_event_ready.value = int(rng.random() >= pause)

    async def wait_idle(self) -> None:
        for _ in range(10_000):
            if not decode("order_book", "STATUS", await self.read("STATUS"))["busy"]:
                return
        raise AssertionError("the block stays busy")

    async def command(self, op: int, slot: int = 0, locate: int = 0) -> None:
        self.toggle ^= 1
        await self.write("COMMAND", encode("order_book", "COMMAND", cmd_locate=locate,
                                           cmd_slot=slot, cmd_op=op, cmd_toggle=self.toggle))
        await self.wait_idle()

    async def select_slot(self, slot: int) -> None:
        """Point SLOT_INFO at a slot without running a command."""
        await self.write("COMMAND", encode("order_book", "COMMAND", cmd_slot=slot,
                                           cmd_op=CMD_NONE, cmd_toggle=self.toggle))

    async def send_events(self, words, pause) -> None:
        dut = self.dut
        for word in words:
            while next(pause):
                dut.s_event_valid.value = 0
                await RisingEdge(dut.clk)
            dut.s_event_data.value = word
            dut.s_event_valid.value = 1
            await RisingEdge(dut.clk)
            while not int(dut.s_event_ready.value):
                await RisingEdge(dut.clk)
            dut.s_event_valid.value = 0

    async def drain(self, packets: list, expected: int, limit: int) -> None:
        quiet = 0
        end = self.cycle + limit
        while quiet < QUIET_CYCLES and self.cycle < end:
            await RisingEdge(self.dut.clk)
            while not self.sink.empty():
                packets.append(self.sink.recv_nowait())
            # Idle: no record going out and the block waiting for an event.
            busy = int(self.dut.m_axis_tvalid.value) or not int(self.dut.s_event_ready.value) \
                or len(packets) < expected or int(self.dut.m_feed_event_valid.value)
            quiet = 0 if busy else quiet + 1


@cocotb.test()
async def stream_stimulus(dut):
    stimulus = Stimulus.load(stimulus_path())
    bench = Bench(dut)
    await bench.start(stimulus.sink_pause, stimulus.seed + 2)
    await bench.write("CONTROL", encode("order_book", "CONTROL", auto_assign=int(stimulus.auto_assign),
                                        refill=int(stimulus.refill), stale=int(stimulus.stale)))
    if stimulus.sink_pause:
        bench.sink.set_pause_generator(pauses(stimulus.sink_pause, stimulus.seed + 1))
    source_pause = pauses(stimulus.source_pause, stimulus.seed)
    packets: list = []
    for ph in stimulus.phases:
        for op, slot, locate in ph.commands:
            await bench.command(op, slot, locate)
        if stimulus.gap_cycles:
            for word in ph.events:
                await bench.send_events([word], source_pause)
                await ClockCycles(dut.clk, stimulus.gap_cycles)
        else:
            await bench.send_events(ph.events, source_pause)
        # Between phases nothing may be in flight: commands act on a quiet book.
        await bench.drain(packets, 0, 100 * len(ph.events) + 20_000)

    await bench.drain(packets, stimulus.expected_records, 10_000)
    observed = {
        "packets": [[int(p.tdest if isinstance(p.tdest, int) else p.tdest[0]),
                     bytes(p.tdata).hex()] for p in packets],
        "feed_events": bench.feed_events,
        "counters": {name: await bench.read(f"COUNT_{name.upper()}") for name in COUNTERS},
        "occupancy": await bench.read("OCCUPANCY"),
        "occupancy_high": await bench.read("OCCUPANCY_HIGH"),
        "status": decode("order_book", "STATUS", await bench.read("STATUS")),
        "degraded": [await bench.read(f"DEGRADED{k}")
                     for k in range((BookConfig().slots + 31) // 32)],
        "accept_cycles": bench.input.last_cycles,
        "first_beat_cycles": bench.output.first_cycles,
        "input_waits": bench.input.stalls,
        "cycles": bench.cycle,
        "slot_info": {},
    }
    for slot in stimulus.info_slots:
        await bench.select_slot(slot)
        observed["slot_info"][str(slot)] = [
            decode("order_book", "SLOT_INFO", await bench.read("SLOT_INFO")),
            await bench.read("SLOT_SYMBOL_HI"), await bench.read("SLOT_SYMBOL_LO")]
    write_observed(observed)


@cocotb.test()
async def register_access(dut):
    bench = Bench(dut)
    await bench.start()
    config = BookConfig()
    info = decode("order_book", "INFO", await bench.read("INFO"))
    assert info == {"slots": config.slots, "levels": config.levels,
                    "order_ways": config.order_ways}, info
    assert await bench.read("ORDER_SETS") == config.order_sets
    assert decode("order_book", "CONTROL", await bench.read("CONTROL")) == \
        {"auto_assign": 1, "refill": 1, "stale": 0}

    # RO registers ignore writes; holes answer SLVERR and read 0.
    await bench.write("OCCUPANCY", 77)
    assert await bench.read("OCCUPANCY") == 0
    for hole in (0x028, 0x03C, 0x048, 0xFFC):
        response = await bench.axil.read(hole, 4)
        assert response.resp == AxiResp.SLVERR, hex(hole)
        assert response.data == bytes(4)

    # A command runs once per toggle, and only then.
    await bench.command(CMD_ASSIGN, 5, 0x1234)
    status = decode("order_book", "STATUS", await bench.read("STATUS"))
    assert status == {"busy": 0, "slots_used": 1}, status
    await bench.write("COMMAND", encode("order_book", "COMMAND", cmd_locate=0x4321, cmd_slot=6,
                                        cmd_op=CMD_ASSIGN, cmd_toggle=bench.toggle))
    await ClockCycles(dut.clk, 8)
    assert decode("order_book", "STATUS", await bench.read("STATUS"))["slots_used"] == 1
    await bench.select_slot(5)
    slot = decode("order_book", "SLOT_INFO", await bench.read("SLOT_INFO"))
    assert slot == {"info_locate": 0x1234, "info_valid": 1, "info_directory": 0,
                    "info_not_trading": 0, "info_lost": 0, "info_degraded": 0}, slot
    # The same locate on another slot is refused and counted.
    await bench.command(CMD_ASSIGN, 9, 0x1234)
    assert await bench.read("COUNT_BAD_COMMAND") == 1
    assert decode("order_book", "STATUS", await bench.read("STATUS"))["slots_used"] == 1

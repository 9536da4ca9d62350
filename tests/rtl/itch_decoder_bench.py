"""cocotb bench for the ITCH decoder's generated Verilog.

Runs inside the simulator.  ``stream_stimulus`` reads the JSON stimulus in
``$ZYNQMM_STIMULUS``::

    {"table": [[locate, enabled] | null, ...], "pass_all_locates": bool,
     "messages": [[hex, seq, msg_index, feed, stale], ...],
     "source_pause": p, "sink_pause": p, "gap_cycles": n, "seed": n,
     "expected_events": n}

programs the subscription table over AXI-Lite, sends the messages with
cocotbext-axi (the sideband in ``tuser``), pauses the source and holds
``m_event_ready`` low as the pause probabilities ask, and writes
``$ZYNQMM_RUN_DIR/observed.json``: the event words taken (hex), every counter,
the sticky bits, the cycle of each message's last input beat and of each
event's first valid cycle, and how many cycles the input was held off.
``register_access`` checks the AXI-Lite window and ``stalled_output`` what a
blocked output does to the input.
"""
from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiResp, AxiStreamFrame

from rtl.common.events import field_slices
from rtl.common.message_stream import pack_sideband
from rtl.itch_decoder.model import COUNTERS, STICKY, SUBSCRIPTION_ENTRIES
from rtl.regmap.driver import decode, encode
from rtl.regmap.map import ITCH_DECODER
from tests.rtl.bench_common import (InputStamps, OutputStamps, RegisterBench, load_json_stimulus,
                                    pauses, quiet_drivers, start_and_reset, stream_source,
                                    write_observed)

# Cycles with nothing in flight after which a run counts as finished.
QUIET_CYCLES = 32


class Bench(RegisterBench):
    def __init__(self, dut):
        quiet_drivers("itch_decoder", ("s_axis", "s_axil"))
        super().__init__(dut, ITCH_DECODER)
        self.source = stream_source(dut, "s_axis")
        self.events: list[int] = []
        self.input = InputStamps(dut.s_axis_tvalid, dut.s_axis_tready, dut.s_axis_tlast)
        self.output = OutputStamps(dut.m_event_valid, dut.m_event_ready)
        self.sink_pauses = None

    async def start(self):
        await start_and_reset(self.dut, idle_low=("m_event_ready",))
        cocotb.start_soon(self._watch())

    async def _watch(self):
        """The event sink and the cycle stamps, sampled at each rising edge
        like the cocotbext-axi drivers do."""
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            self.input.sample(self.cycle)
            if self.output.sample(self.cycle) and int(dut.m_event_ready.value):
                self.events.append(int(dut.m_event_data.value))
            ready = self.sink_pauses is None or not next(self.sink_pauses)
            dut.m_event_ready.value = int(ready)

    async def program(self, table, pass_all_locates: bool) -> None:
        for n in range(SUBSCRIPTION_ENTRIES):
            entry = table[n] if n < len(table) else None
            locate, enabled = entry if entry is not None else (0, False)
            await self.write(f"SUB{n}", encode("itch_decoder", f"SUB{n}", **{
                f"sub{n}_locate": locate, f"sub{n}_enable": int(enabled)}))
        await self.write("CONTROL", int(pass_all_locates))

    async def send(self, data: bytes, sideband: int) -> None:
        await self.source.send(AxiStreamFrame(data, tuser=sideband))

    async def counters(self) -> dict[str, int]:
        return {name: await self.read(f"COUNT_{name.upper()}") for name in COUNTERS}


@cocotb.test()
async def stream_stimulus(dut):
    stimulus = load_json_stimulus()
    bench = Bench(dut)
    await bench.start()
    await bench.program(stimulus["table"], stimulus["pass_all_locates"])
    seed = stimulus["seed"]
    if stimulus["source_pause"]:
        bench.source.set_pause_generator(pauses(stimulus["source_pause"], seed))
    if stimulus["sink_pause"]:
        bench.sink_pauses = pauses(stimulus["sink_pause"], seed + 1)

    start_cycle = bench.cycle
    for data, seq, msg_index, feed, stale in stimulus["messages"]:
        await bench.send(bytes.fromhex(data), pack_sideband(seq, msg_index, feed, stale))
        if stimulus["gap_cycles"]:
            await bench.source.wait()
            await ClockCycles(dut.clk, stimulus["gap_cycles"])

    quiet = 0
    limit = bench.cycle + 20 * len(stimulus["messages"]) + 10_000
    while quiet < QUIET_CYCLES and bench.cycle < limit:
        await RisingEdge(dut.clk)
        busy = not bench.source.idle() or int(dut.m_event_valid.value) or \
            len(bench.events) < stimulus["expected_events"]
        quiet = 0 if busy else quiet + 1

    observed = {
        "events": [format(word, "x") for word in bench.events],
        "counters": await bench.counters(),
        "drop_status": await bench.read("DROP_STATUS"),
        "tlast_cycles": [c - start_cycle for c in bench.input.last_cycles],
        "first_valid_cycles": [c - start_cycle for c in bench.output.first_cycles],
        "input_stalls": bench.input.stalls,
    }
    write_observed(observed)


@cocotb.test()
async def register_access(dut):
    bench = Bench(dut)
    await bench.start()
    info = decode("itch_decoder", "INFO", await bench.read("INFO"))
    assert info == {"subscription_entries": SUBSCRIPTION_ENTRIES}, info

    # RW: full writes read back, unused bits read 0, byte strobes write only their bytes.
    await bench.write("SUB5", 0xFFFF_FFFF)
    assert await bench.read("SUB5") == 0x8000_FFFF
    await bench.axil.write(bench.offset("SUB5"), b"\x34")
    assert await bench.read("SUB5") == 0x8000_FF34
    await bench.write("CONTROL", 0xFFFF_FFFF)
    assert await bench.read("CONTROL") == 1

    # RO: software writes do not stick.
    await bench.write("COUNT_MESSAGES", 99)
    assert await bench.read("COUNT_MESSAGES") == 0

    # Holes answer SLVERR and read 0.
    for hole in (0x00C, 0x034, 0x03C, 0x0FC, 0x200, 0xFFC):
        response = await bench.axil.read(hole, 4)
        assert response.resp == AxiResp.SLVERR, (hex(hole), response)
        assert response.data == bytes(4)
        assert (await bench.axil.write(hole, b"\x01\x02\x03\x04")).resp == AxiResp.SLVERR

    # W1C: an unknown type and a stale message set their bits; 0 leaves them, 1 clears.
    await bench.send(b"\x00" * 12, pack_sideband(1, 0))
    await bench.send(b"W" + bytes(11), pack_sideband(2, 1, 1, True))
    await bench.source.wait()
    await ClockCycles(dut.clk, 4)
    unknown = 1 << STICKY.index("unknown_type")
    stale = 1 << STICKY.index("stale")
    assert await bench.read("DROP_STATUS") == unknown | stale
    await bench.write("DROP_STATUS", 0)
    assert await bench.read("DROP_STATUS") == unknown | stale
    await bench.write("DROP_STATUS", unknown)
    assert await bench.read("DROP_STATUS") == stale
    counters = await bench.counters()
    assert (counters["messages"], counters["unknown_type"], counters["mwcb_status"],
            counters["stale"], counters["feed_b"], counters["events"]) == (2, 1, 1, 1, 1, 0)


@cocotb.test()
async def stalled_output(dut):
    """With ``m_event_ready`` low the block holds two events (output and skid
    registers) and then stops taking input; released, it loses nothing."""
    bench = Bench(dut)
    await bench.start()
    await bench.write("CONTROL", 1)
    bench.sink_pauses = iter(lambda: True, None)  # never ready
    system_event = b"S" + bytes(10) + b"O"
    for i in range(6):
        await bench.send(system_event, pack_sideband(i, i))
    await ClockCycles(dut.clk, 40)
    assert bench.events == []
    assert await bench.read("COUNT_EVENTS") == 2
    assert not int(dut.s_axis_tready.value)
    bench.sink_pauses = None
    await bench.source.wait()
    await ClockCycles(dut.clk, 10)
    lsb, width = field_slices()["seq"]
    assert [word >> lsb & ((1 << width) - 1) for word in bench.events] == list(range(6))
    assert await bench.read("COUNT_EVENTS") == 6

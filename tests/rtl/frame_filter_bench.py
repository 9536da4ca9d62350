"""cocotb bench for the frame filter's generated Verilog.

Runs inside the simulator.  ``stream_stimulus`` programs the filter table
over AXI-Lite, streams the frames of ``$ZYNQMM_STIMULUS`` through the block
with cocotbext-axi (pausing source and sink as the stimulus asks), and writes
what came out to ``$ZYNQMM_RUN_DIR/observed.json``: output packets with the
``tdrop`` mark of their last beat (a frame dropped at its end), counters, the
sticky drop bits, the cycle of every input ``tlast`` and of every output
packet's first valid beat and first valid last beat, and how many cycles the
input was held off.  The pytest side compares that with the model.  ``register_access`` checks the AXI-Lite decode itself and
``table_change_mid_frame`` what a table write does to a frame in flight.
"""
from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiResp, AxiStreamFrame

from host.pcap.frames import build_udp_frame
from rtl.frame_filter.model import COUNTERS, DROP_REASONS, FilterEntry
from rtl.regmap.driver import decode, encode
from rtl.regmap.map import FRAME_FILTER
from tests.rtl.bench_common import (InputStamps, OutputStamps, RegisterBench, pauses,
                                    quiet_drivers, sideband_values, stamp_cycles, start_and_reset,
                                    stimulus_path, stream_sink, stream_source, write_observed)
from tests.rtl.frame_stimulus import Stimulus

# Cycles with nothing in flight after which a run counts as finished.
QUIET_CYCLES = 64


class FinalBeats:
    """Per rising edge: the cycle each packet's last beat first shows valid,
    and its ``tdrop`` mark when it is taken."""

    def __init__(self, dut):
        self.dut = dut
        self.valid_cycles: list[int] = []
        self.drops: list[int] = []
        self._shown = False

    def sample(self, cycle: int) -> None:
        dut = self.dut
        if not (int(dut.m_axis_tvalid.value) and int(dut.m_axis_tlast.value)):
            return
        if not self._shown:
            self.valid_cycles.append(cycle)
            self._shown = True
        if int(dut.m_axis_tready.value):
            self.drops.append(int(dut.m_axis_tdrop.value))
            self._shown = False


class Bench(RegisterBench):
    def __init__(self, dut):
        quiet_drivers("frame_filter", ("s_axis", "m_axis", "s_axil"))
        super().__init__(dut, FRAME_FILTER)
        self.source = stream_source(dut, "s_axis")
        self.sink = stream_sink(dut, "m_axis")
        self.input = InputStamps(dut.s_axis_tvalid, dut.s_axis_tready, dut.s_axis_tlast)
        self.output = OutputStamps(dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tlast)
        self.final = FinalBeats(dut)

    async def start(self):
        await start_and_reset(self.dut)
        cocotb.start_soon(stamp_cycles(self, self.input, self.output, self.final))

    async def program_table(self, table) -> None:
        for n, entry in enumerate(table):
            if entry is None:
                await self.write(f"FILTER{n}_PORT", 0)
                continue
            await self.write(f"FILTER{n}_IP", entry.dst_ip)
            await self.write(f"FILTER{n}_PORT", encode(
                "frame_filter", f"FILTER{n}_PORT", **{f"filter{n}_port": entry.dst_port,
                                                      f"filter{n}_enable": int(entry.enabled)}))


@cocotb.test()
async def stream_stimulus(dut):
    stimulus = Stimulus.load(stimulus_path())
    bench = Bench(dut)
    await bench.start()
    await bench.program_table(stimulus.table)
    if stimulus.source_pause:
        bench.source.set_pause_generator(pauses(stimulus.source_pause, stimulus.seed))
    if stimulus.sink_pause:
        bench.sink.set_pause_generator(pauses(stimulus.sink_pause, stimulus.seed + 1))

    for frame in stimulus.frames:
        nbytes = len(frame.data)
        if frame.error and frame.error_beat is not None:
            tuser = [int(i // 8 == frame.error_beat) for i in range(nbytes)]
        else:
            tuser = [0] * (nbytes - 1) + [int(frame.error)]
        await bench.source.send(AxiStreamFrame(frame.data, tuser=tuser))
        if stimulus.gap_cycles:
            await bench.source.wait()
            await ClockCycles(dut.clk, stimulus.gap_cycles)

    packets = []
    quiet = 0
    limit = bench.cycle + 16 * sum(len(f.data) // 8 + 4 for f in stimulus.frames) + 10_000
    while quiet < QUIET_CYCLES and bench.cycle < limit:
        await RisingEdge(dut.clk)
        busy = not bench.source.idle() or int(dut.m_axis_tvalid.value) or not bench.sink.empty()
        while not bench.sink.empty():
            packets.append(bench.sink.recv_nowait())
        passed = len(packets) - sum(bench.final.drops[:len(packets)])
        quiet = 0 if busy or passed < stimulus.expected_packets else quiet + 1

    counters = {name: await bench.read(f"COUNT_{name.upper()}") for name in COUNTERS}
    drop_status = await bench.read("DROP_STATUS")
    if len(bench.final.drops) != len(packets):
        raise AssertionError(f"{len(packets)} packets but {len(bench.final.drops)} last beats")
    observed = {
        "packets": [{"data": bytes(p.tdata).hex(), "dest": sideband_values(p.tdest),
                     "user": sideband_values(p.tuser), "drop": drop}
                    for p, drop in zip(packets, bench.final.drops)],
        "counters": counters,
        "drop_status": drop_status,
        "tlast_cycles": bench.input.last_cycles,
        "first_valid_cycles": bench.output.first_cycles,
        "last_valid_cycles": bench.final.valid_cycles,
        "input_stalls": bench.input.stalls,
        "cycles": bench.cycle,
    }
    write_observed(observed)


@cocotb.test()
async def register_access(dut):
    bench = Bench(dut)
    await bench.start()
    info = decode("frame_filter", "INFO", await bench.read("INFO"))
    assert info == {"filter_entries": 8, "payload_fifo_beats": 256}, info

    # RW: full writes read back; byte strobes write only their bytes.
    await bench.write("FILTER3_IP", 0xE9360C01)
    assert await bench.read("FILTER3_IP") == 0xE9360C01
    await bench.axil.write(bench.offset("FILTER3_IP") + 1, b"\xAB")
    assert await bench.read("FILTER3_IP") == 0xE936AB01
    await bench.write("FILTER3_PORT", 0xFFFF_FFFF)
    assert await bench.read("FILTER3_PORT") == 0x8000_FFFF, "unused bits must read 0"

    # RO: software writes do not stick.
    await bench.write("COUNT_FRAMES", 1234)
    assert await bench.read("COUNT_FRAMES") == 0

    # Unmapped offsets answer SLVERR and read 0.
    for hole in (0x008, 0x0FC, 0x140, 0xFFC):
        response = await bench.axil.read(hole, 4)
        assert response.resp == AxiResp.SLVERR, (hex(hole), response)
        assert response.data == bytes(4)
        write_response = await bench.axil.write(hole, b"\x01\x02\x03\x04")
        assert write_response.resp == AxiResp.SLVERR
    assert (await bench.axil.read(bench.offset("INFO"), 4)).resp == AxiResp.OKAY

    # W1C: a frame error sets its sticky bit; writing 0 leaves it, 1 clears it.
    await bench.source.send(AxiStreamFrame(bytes(range(64)), tuser=[0] * 63 + [1]))
    await bench.source.send(AxiStreamFrame(bytes(range(10))))
    await bench.source.wait()
    await ClockCycles(dut.clk, 8)
    bit_error = 1 << DROP_REASONS.index("frame_error")
    bit_truncated = 1 << DROP_REASONS.index("truncated")
    assert await bench.read("DROP_STATUS") == bit_error | bit_truncated
    await bench.write("DROP_STATUS", 0)
    assert await bench.read("DROP_STATUS") == bit_error | bit_truncated
    await bench.write("DROP_STATUS", bit_error)
    assert await bench.read("DROP_STATUS") == bit_truncated
    assert await bench.read("COUNT_FRAMES") == 2
    assert await bench.read("COUNT_FRAME_ERROR") == 1


@cocotb.test()
async def table_change_mid_frame(dut):
    """Disabling an entry while its frame's payload streams in leaves that
    frame whole; the next frame sees the new table."""
    bench = Bench(dut)
    await bench.start()
    entry = FilterEntry(0xE9360C01, 26400)
    await bench.program_table([entry])
    payload = bytes((7 * i) & 0xFF for i in range(1400))
    frame = build_udp_frame(payload, "10.0.0.1", entry.dst_ip, 5000, entry.dst_port)
    await bench.source.send(AxiStreamFrame(frame))
    await ClockCycles(dut.clk, 40)   # well into the payload (it starts in beat 5)
    await bench.write("FILTER0_PORT", encode("frame_filter", "FILTER0_PORT",
                                             filter0_port=entry.dst_port, filter0_enable=0))
    await bench.source.wait()
    packet = await bench.sink.recv()
    assert bytes(packet.tdata) == payload
    assert sideband_values(packet.tdest) == [0]
    await bench.source.send(AxiStreamFrame(frame))
    await bench.source.wait()
    await ClockCycles(dut.clk, 16)
    assert bench.sink.empty()
    assert await bench.read("COUNT_PASSED") == 1
    assert await bench.read("COUNT_NO_MATCH") == 1

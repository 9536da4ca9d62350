"""Stimulus for the MoldUDP64 sequencer's tests, and the cocotb bench for its
generated Verilog.

The first half builds Mold packets for feeds A and B (deterministic for a
seed): messages with ITCH sizes and odd ones, packed into packets, copied per
feed with drops, repeats, reorders, different packing on B (so copies overlap
partly), heartbeats, end of session, packets of another session and every kind
of malformed packet.  A :class:`SeqStimulus` is plain data (JSON) so the pytest
side and the bench, which runs in the simulator's Python, read the same thing.

The second half runs inside the simulator.  ``stream_stimulus`` drives both
inputs at once with cocotbext-axi sources (pausing them as asked), pulls the
output with a random ``tready``, takes the events as they come (feed event
records off ``m_feed_event`` with a random ready of their own, or, with
``event_port`` "axil", drained from the FIFO over AXI-Lite), and writes
``$ZYNQMM_RUN_DIR/observed.json``: every output message with its sideband
and the cycle of its first beat, the cycle of every accepted input beat, the
events, and every register.  The pytest side replays the inputs through the
model in the order their last beats were accepted and compares.
``registers_and_control`` checks the AXI-Lite face: build constants, a
session set by software, event FIFO overflow and popping, the stale bit's
clear, ``hold``, and the switch between the two event faces.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from host.protocols.itch50 import MESSAGE_SIZES
from host.protocols.moldudp64 import (END_OF_SESSION_COUNT, HEADER_SIZE, MAX_UDP_PAYLOAD,
                                      encode_packet)
from rtl.mold_seq.model import MAX_PACKET_BYTES, SEQ_LIMIT

SESSION = "ZYNQMM0001"
OTHER_SESSION = "ZYNQMM0002"

MALFORMED_KINDS = ("truncated", "bad_field", "block_past_end", "prefix_cut", "zero_length_block",
                   "count_high", "count_low", "trailing_bytes", "heartbeat_trailing",
                   "sequence_out_of_range", "oversize", "frame_error")


# ---- stimulus ---------------------------------------------------------------------
@dataclass
class SeqStimulus:
    """What the bench feeds the block.  Packets are [hex payload, tuser, tdrop]:
    ``tdrop`` (the frame filter dropped the packet's frame at its end) is
    driven on every beat of the packet, so its last beat has it."""

    packets_a: list = field(default_factory=list)
    packets_b: list = field(default_factory=list)
    session_cfg: str | None = None   # set over AXI-Lite and followed when given
    source_pause: float = 0.0
    sink_pause: float = 0.0
    gap_cycles: int = 0              # idle cycles after each packet, per input
    offset_b: int = 0                # cycles B starts after A
    drain_events: bool = True
    event_port: str = "stream"       # "stream": m_feed_event; "axil": the EVENT_* registers
    expected_messages: int = 0
    seed: int = 1

    @classmethod
    def of(cls, a: list, b: list, **kw) -> "SeqStimulus":
        """From lists of payloads (bytes), (payload, error) pairs or
        (payload, error, dropped) triples."""
        def norm(items):
            out = []
            for p in items:
                if isinstance(p, (bytes, bytearray)):
                    p = (p,)
                out.append([bytes(p[0]).hex(), bool(p[1:2] and p[1]), bool(p[2:3] and p[2])])
            return out
        return cls(norm(a), norm(b), **kw)

    def feed_packets(self, feed: int) -> list[tuple[bytes, bool, bool]]:
        """(payload, tuser, tdrop) of each packet of input ``feed``."""
        packets = self.packets_b if feed else self.packets_a
        return [(bytes.fromhex(p[0]), bool(p[1]), bool(p[2:3] and p[2])) for p in packets]

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, path: Path) -> "SeqStimulus":
        return cls(**json.loads(Path(path).read_text()))


def make_messages(rng: random.Random, count: int, odd: float = 0.15) -> list[bytes]:
    """Messages with ITCH type codes and sizes; a share ``odd`` get other
    lengths (1 byte up to a few hundred) so every alignment shows up."""
    codes = list(MESSAGE_SIZES)
    out = []
    for _ in range(count):
        code = rng.choice(codes)
        size = MESSAGE_SIZES[code]
        if rng.random() < odd:
            size = rng.choice([1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, rng.randrange(1, 300)])
        out.append(code.encode() + rng.randbytes(size - 1))
    return out


def pack(rng: random.Random, messages: list[bytes], first_seq: int, max_per_packet: int,
         session: str = SESSION) -> list[tuple[int, list[bytes]]]:
    """Consecutive messages into packets of 1..max_per_packet that fit a datagram."""
    out, i = [], 0
    while i < len(messages):
        want = rng.randint(1, max_per_packet)
        batch, size = [], HEADER_SIZE
        while i < len(messages) and len(batch) < want and \
                size + 2 + len(messages[i]) <= MAX_UDP_PAYLOAD:
            batch.append(messages[i])
            size += 2 + len(messages[i])
            i += 1
        out.append((first_seq + i - len(batch), batch))
    return out


def faulty(rng: random.Random, packets: list[tuple[int, list[bytes]]], drop: float,
           repeat: float, reorder: float, session: str = SESSION) -> list[bytes]:
    """One feed's copy: packets dropped, sent twice, or swapped with the next."""
    encoded = [encode_packet(session, seq, msgs) for seq, msgs in packets]
    out, i = [], 0
    while i < len(encoded):
        roll = rng.random()
        if roll < drop:
            i += 1
            continue
        if roll < drop + reorder and i + 1 < len(encoded):
            out += [encoded[i + 1], encoded[i]]
            i += 2
            continue
        out.append(encoded[i])
        if roll < drop + reorder + repeat:
            out.append(encoded[i])
        i += 1
    return out


def malformed(rng: random.Random, kind: str, seq: int = 5,
              session: str = SESSION) -> tuple[bytes, bool]:
    """A bad packet of ``kind`` (see MALFORMED_KINDS) and its tuser flag."""
    msgs = make_messages(rng, rng.randint(1, 4))
    good = encode_packet(session, seq, msgs)
    if kind == "truncated":
        return good[:rng.randrange(1, HEADER_SIZE)], False
    if kind == "bad_field":
        at = rng.randrange(10)
        return good[:at] + bytes([0x80 | good[at]]) + good[at + 1:], False
    if kind == "block_past_end":
        return good[:-rng.randint(1, min(3, len(msgs[-1])))], False
    if kind == "prefix_cut":
        return good + b"\x00", False
    if kind == "zero_length_block":
        body = encode_packet(session, seq, msgs + [b"x"])
        return body[:-3] + b"\x00\x00", False
    if kind == "count_high":
        return good[:18] + (len(msgs) + rng.randint(1, 3)).to_bytes(2, "big") + good[20:], False
    if kind == "count_low":
        return good[:18] + (len(msgs) - 1).to_bytes(2, "big") + good[20:], False
    if kind == "trailing_bytes":
        return good + bytes([0, 9, 1]), False
    if kind == "heartbeat_trailing":
        count = rng.choice([0, END_OF_SESSION_COUNT])
        return encode_packet(session, seq)[:18] + count.to_bytes(2, "big") + b"\x00\x05ab", False
    if kind == "sequence_out_of_range":
        return encode_packet(session, SEQ_LIMIT + rng.randint(1, 9), msgs), False
    if kind == "oversize":
        big = [b"A" + rng.randbytes(600) for _ in range(4)]
        data = encode_packet(session, seq, big)
        assert len(data) > MAX_PACKET_BYTES
        return data, False
    if kind == "frame_error":
        return good, True
    raise ValueError(kind)


def ab_feeds(seed: int, messages: int = 400, max_per_packet: int = 6, drop: float = 0.06,
             repeat: float = 0.06, reorder: float = 0.06, repack_b: bool = True,
             heartbeats: float = 0.05, bad: float = 0.04, other_session: float = 0.02,
             first_seq: int = 1, end: bool = True) -> tuple[list, list]:
    """Feeds A and B of one session with faults of every kind (see module doc)."""
    rng = random.Random(seed)
    msgs = make_messages(rng, messages)
    packets = pack(rng, msgs, first_seq, max_per_packet)
    feeds = []
    bad_kinds = 0   # malformed kinds come in turn, so a few cover them all
    for feed in range(2):
        plan = pack(rng, msgs, first_seq, max_per_packet) if feed and repack_b else packets
        stream: list = list(faulty(rng, plan, drop, repeat, reorder))
        out: list = []
        for i, payload in enumerate(stream):
            roll = rng.random()
            seq_now = int.from_bytes(payload[10:18], "big")
            if roll < heartbeats:
                out.append(encode_packet(SESSION, seq_now))
            elif roll < heartbeats + bad:
                out.append(malformed(rng, MALFORMED_KINDS[bad_kinds % len(MALFORMED_KINDS)],
                                     seq_now))
                bad_kinds += 1
            elif roll < heartbeats + bad + other_session:
                out.append(encode_packet(OTHER_SESSION, rng.randrange(1, 99),
                                         make_messages(rng, 2)))
            out.append(payload)
        if end:
            last = first_seq + len(msgs)
            out.append(encode_packet(SESSION, last, end_of_session=True))
        feeds.append(out)
    return feeds[0], feeds[1]


# ---- cocotb bench -------------------------------------------------------------------
import cocotb  # noqa: E402  (the stimulus half above is used without a simulator)
from cocotb.triggers import ClockCycles, RisingEdge  # noqa: E402
from cocotbext.axi import AxiStreamFrame  # noqa: E402

from tests.rtl.bench_common import (RegisterBench, pauses, quiet_drivers,  # noqa: E402
                                    start_and_reset, stimulus_path, stream_source,
                                    write_observed)

QUIET_CYCLES = 64


class Bench(RegisterBench):
    def __init__(self, dut, sink_pause: float = 0.0, seed: int = 1, event_stream: bool = True):
        from rtl.regmap.map import MOLD_SEQ

        quiet_drivers("mold_seq", ("s_axis_a", "s_axis_b", "s_axil"))
        super().__init__(dut, MOLD_SEQ)
        self.sources = [stream_source(dut, f"s_axis_{f}") for f in "ab"]
        self.sink_pause = sink_pause
        self.rng = random.Random(seed + 7)
        self.beats: list[list[list[int]]] = [[], []]   # per feed, per packet: beat cycles
        self._open: list[list[int]] = [[], []]
        self.messages: list[dict] = []
        self._message: dict | None = None
        self.output_stalls = 0
        self.input_stalls = 0
        self.events_taken = 0
        self.event_stream = event_stream
        self.records: list[str] = []
        self.record_rng = random.Random(seed + 13)

    async def start(self):
        await start_and_reset(self.dut, idle_low=("m_axis_tready", "m_feed_event_ready",
                                                  "s_axis_a_tdrop", "s_axis_b_tdrop"))
        cocotb.start_soon(self._watch())

    async def _watch(self):
        dut = self.dut
        ports = [(dut.s_axis_a_tvalid, dut.s_axis_a_tready, dut.s_axis_a_tlast),
                 (dut.s_axis_b_tvalid, dut.s_axis_b_tready, dut.s_axis_b_tlast)]
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            for f, (valid, ready, last) in enumerate(ports):
                if int(valid.value) and not int(ready.value):
                    self.input_stalls += 1
                elif int(valid.value):
                    self._open[f].append(self.cycle)
                    if int(last.value):
                        self.beats[f].append(self._open[f])
                        self._open[f] = []
            if int(dut.m_axis_tvalid.value):
                if int(dut.m_axis_tready.value):
                    self._take_beat()
                else:
                    self.output_stalls += 1
            dut.m_axis_tready.value = int(self.rng.random() >= self.sink_pause)
            if int(dut.m_feed_event_valid.value) and int(dut.m_feed_event_ready.value):
                self.records.append(f"{int(dut.m_feed_event_data.value):048x}")
            dut.m_feed_event_ready.value = int(self.event_stream and
                                               self.record_rng.random() >= self.sink_pause)

    def _take_beat(self):
        dut = self.dut
        keep = int(dut.m_axis_tkeep.value)
        data = int(dut.m_axis_tdata.value).to_bytes(8, "little")[:keep.bit_length()]
        user = int(dut.m_axis_tuser.value)
        if self._message is None:
            self._message = {"data": b"", "tuser": set(), "first_cycle": self.cycle, "keeps": set()}
        self._message["data"] += data
        self._message["tuser"].add(user)
        self._message["keeps"].add(keep)
        if int(dut.m_axis_tlast.value):
            m = self._message
            self.messages.append({"data": m["data"].hex(), "tuser": sorted(m["tuser"]),
                                  "first_cycle": m["first_cycle"],
                                  "keeps": sorted(m["keeps"])})
            self._message = None

    async def set_session(self, session: bytes) -> None:
        word = int.from_bytes(session, "big")
        await self.write("SESSION_CFG0", word >> 48)
        await self.write("SESSION_CFG1", (word >> 16) & 0xFFFFFFFF)
        await self.write("SESSION_CFG2", (word & 0xFFFF) << 16)
        await self.control(session_from_register=1)

    async def control(self, session_from_register: int = 0, hold: int = 0) -> None:
        from rtl.regmap.driver import encode

        await self.write("CONTROL", encode("mold_seq", "CONTROL",
                                           session_from_register=session_from_register,
                                           hold=hold, event_stream=int(self.event_stream)))

    async def pop_event(self) -> tuple[int, int, int, int, bool] | None:
        if not (await self.read("EVENT_STATUS")) & 1:
            return None
        kind_word = await self.read("EVENT_KIND")
        a = await self.read("EVENT_A_LO") | (await self.read("EVENT_A_HI")) << 32
        b = await self.read("EVENT_B_LO") | (await self.read("EVENT_B_HI")) << 32
        self.events_taken = (self.events_taken + 1) & 0xFF
        await self.write("EVENT_STATUS", self.events_taken << 24)
        return kind_word & 0xF, (kind_word >> 8) & 1, a, b, bool((kind_word >> 12) & 1)

    async def read_all(self) -> dict[str, int]:
        return {reg.name: await self.read(reg.name) for reg in self.registers.registers}

    async def send(self, feed: int, packets, gap_cycles: int, delay: int = 0):
        if delay:
            await ClockCycles(self.dut.clk, delay)
        source = self.sources[feed]
        drop_port = getattr(self.dut, f"s_axis_{'ab'[feed]}_tdrop")
        for data, error, *dropped in packets:
            tuser = [0] * len(data)
            if error:
                tuser[self.rng.randrange(len(data))] = 1
            if dropped and dropped[0]:
                # tdrop held over this packet's beats and no other's.
                await source.wait()
                drop_port.value = 1
                await source.send(AxiStreamFrame(data, tuser=tuser))
                await source.wait()
                drop_port.value = 0
            else:
                await source.send(AxiStreamFrame(data, tuser=tuser))
            if gap_cycles:
                await source.wait()
                await ClockCycles(self.dut.clk, gap_cycles)
        await source.wait()


@cocotb.test()
async def stream_stimulus(dut):
    stimulus = SeqStimulus.load(stimulus_path())
    bench = Bench(dut, stimulus.sink_pause, stimulus.seed,
                  event_stream=stimulus.event_port == "stream")
    await bench.start()
    if stimulus.session_cfg is not None:
        await bench.set_session(bytes.fromhex(stimulus.session_cfg))
    elif not bench.event_stream:
        await bench.control()
    for f, source in enumerate(bench.sources):
        if stimulus.source_pause:
            source.set_pause_generator(pauses(stimulus.source_pause, stimulus.seed + 11 * f))

    events: list = []
    done = {"inputs": False}

    async def drain():
        while not done["inputs"]:
            event = await bench.pop_event()
            if event is None:
                await ClockCycles(dut.clk, 8)
            else:
                events.append(event)

    senders = [cocotb.start_soon(bench.send(f, stimulus.feed_packets(f), stimulus.gap_cycles,
                                            stimulus.offset_b if f else 0)) for f in range(2)]
    drainer = cocotb.start_soon(drain()) \
        if stimulus.drain_events and not bench.event_stream else None
    for sender in senders:
        await sender
    beats = sum(len(p[0]) // 2 // 8 + 3 for p in stimulus.packets_a + stimulus.packets_b)
    limit = bench.cycle + 40 * beats + 20_000
    quiet = 0
    while (quiet < QUIET_CYCLES or len(bench.messages) < stimulus.expected_messages) and \
            bench.cycle < limit:
        await RisingEdge(dut.clk)
        busy = int(dut.m_axis_tvalid.value) or bench._message is not None or \
            int(dut.m_feed_event_valid.value)
        quiet = 0 if busy else quiet + 1
    done["inputs"] = True
    if drainer is not None:
        await drainer
        while (event := await bench.pop_event()) is not None:
            events.append(event)
    registers = await bench.read_all()
    observed = {
        "messages": bench.messages,
        "beats": bench.beats,
        "events": events,
        "records": bench.records,
        "registers": registers,
        "output_stalls": bench.output_stalls,
        "input_stalls": bench.input_stalls,
        "cycles": bench.cycle,
    }
    write_observed(observed)


@cocotb.test()
async def registers_and_control(dut):
    from host.protocols.moldudp64 import encode_packet as mold
    from rtl.mold_seq.model import (BUFFER_BEATS, EV_GAP, EVENT_FIFO_DEPTH, GAP_TABLE_ENTRIES,
                                    MoldSeqModel)
    from rtl.regmap.driver import decode

    from host.feed.records import record_word
    from rtl.mold_seq.model import EV_FEED_RECOVERED, EV_FEED_STALE, Event

    # The AXI-Lite face first: events wait in the FIFO.
    bench = Bench(dut, event_stream=False)
    await bench.start()
    assert decode("mold_seq", "CONTROL", await bench.read("CONTROL")) == \
        {"session_from_register": 0, "hold": 0, "event_stream": 1}
    info = decode("mold_seq", "INFO", await bench.read("INFO"))
    assert info == {"buffer_beats": BUFFER_BEATS, "gap_table_entries": GAP_TABLE_ENTRIES,
                    "event_fifo_depth": EVENT_FIFO_DEPTH}, info

    # A session set by software: only its packets pass; the other is counted.
    other = OTHER_SESSION.encode()
    await bench.set_session(other)
    assert decode("mold_seq", "STATUS", await bench.read("STATUS"))["session_valid"] == 1
    assert [await bench.read(f"SESSION{i}") for i in range(3)] == \
        [int.from_bytes(other[:4], "big"), int.from_bytes(other[4:8], "big"),
         int.from_bytes(other[8:], "big") << 16]
    await bench.send(0, [(mold(SESSION, 1, [b"S1234567890A"]), False),
                         (mold(OTHER_SESSION, 7, [b"Sabcdefghijk"]), False)], 0)
    await ClockCycles(dut.clk, 40)
    assert [bytes.fromhex(m["data"]) for m in bench.messages] == [b"Sabcdefghijk"]
    assert await bench.read("FEED_A_OTHER_SESSION") == 1
    assert await bench.read("FEED_A_PACKETS") == 2

    # Twenty gaps and nobody draining: the FIFO keeps the first sixteen.
    model = MoldSeqModel(other, event_capacity=EVENT_FIFO_DEPTH)
    model.process(0, mold(OTHER_SESSION, 7, [b"Sabcdefghijk"]))
    packets = [mold(OTHER_SESSION, 10 + 3 * k, [b"A" * 36]) for k in range(20)]
    for p in packets:
        model.process(0, p)
    await bench.send(0, [(p, False) for p in packets], 0)
    await ClockCycles(dut.clk, 100)
    status = decode("mold_seq", "EVENT_STATUS", await bench.read("EVENT_STATUS"))
    assert status == {"event_valid": 1, "event_level": EVENT_FIFO_DEPTH, "event_ack": 0}, status
    assert await bench.read("COUNT_EVENTS_LOST") == model.stream_counters["events_lost"] > 0
    assert await bench.read("COUNT_GAPS") == model.stream_counters["gaps"] == 20
    # Writing the count already acknowledged pops nothing.
    await bench.write("EVENT_STATUS", bench.events_taken << 24)
    await ClockCycles(dut.clk, 4)
    status = decode("mold_seq", "EVENT_STATUS", await bench.read("EVENT_STATUS"))
    assert status["event_level"] == EVENT_FIFO_DEPTH, status
    got = []
    while (event := await bench.pop_event()) is not None:
        got.append(event)
    assert got == [tuple(e) for e in model.events], (got, model.events)
    assert sum(kind == EV_GAP for kind, *_ in got) == EVENT_FIFO_DEPTH - 1
    # The first event kept after the losses says so (the FIFO is drained now).
    model.events.clear()
    after_loss = mold(OTHER_SESSION, 69, [b"A" * 36])
    model.process(0, after_loss)
    await bench.send(0, [(after_loss, False)], 0)
    await ClockCycles(dut.clk, 40)
    assert await bench.pop_event() == tuple(model.events[-1])
    assert model.events[-1].lost_before and model.events[-1].kind == EV_GAP

    # Stale: set by the gaps; cleared by software, the next message is not stale.
    assert decode("mold_seq", "STATUS", await bench.read("STATUS"))["stream_stale"] == 1
    assert (bench.messages[-1]["tuser"][0] >> 81) & 1
    await bench.write("STATUS", 1 << 8)
    assert decode("mold_seq", "STATUS", await bench.read("STATUS"))["stream_stale"] == 0
    await bench.send(0, [(mold(OTHER_SESSION, 70, [b"Sabcdefghijk"]), False)], 0)
    await ClockCycles(dut.clk, 40)
    assert not (bench.messages[-1]["tuser"][0] >> 81) & 1
    assert bench.messages[-1]["tuser"][0] & ((1 << 64) - 1) == 70
    # ... and it is where feed A's deliveries ended: A is contiguous again.
    assert await bench.pop_event() == (EV_FEED_RECOVERED, 0, 70, 0, False)

    # Hold: nothing is taken while it is high, and the state starts afresh after.
    await bench.control(hold=1)
    await ClockCycles(dut.clk, 4)
    status = decode("mold_seq", "STATUS", await bench.read("STATUS"))
    assert status["started"] == 0 and status["session_valid"] == 0, status
    count_before = len(bench.messages)
    await bench.send(1, [(mold(SESSION, 500, [b"Sxyzxyzxyzxy"]), False)], 0)
    await ClockCycles(dut.clk, 40)
    assert len(bench.messages) == count_before
    await bench.control()
    await ClockCycles(dut.clk, 40)
    assert len(bench.messages) == count_before + 1
    assert (await bench.read("NEXT_SEQ_LO"), await bench.read("NEXT_SEQ_HI")) == (501, 0)
    assert [await bench.read(f"SESSION{i}") for i in range(3)][0] == \
        int.from_bytes(SESSION.encode()[:4], "big")
    assert await bench.read("COUNT_GAPS") == 21

    # Back to the stream: B jumps, its events leave as records, the FIFO face stays empty.
    bench.event_stream = True
    await bench.control()
    await bench.send(1, [(mold(SESSION, 505, [b"Sxyzxyzxyzxy"]), False)], 0)
    await ClockCycles(dut.clk, 40)
    assert bench.records == [f"{record_word(Event(kind, 1, 501, 505).record()):048x}"
                             for kind in (EV_FEED_STALE, EV_GAP)], bench.records
    status = decode("mold_seq", "EVENT_STATUS", await bench.read("EVENT_STATUS"))
    assert status["event_valid"] == 0 and status["event_level"] == 0, status

    # Unmapped offsets answer SLVERR.
    from cocotbext.axi import AxiResp
    assert (await bench.axil.read(0xFFC, 4)).resp == AxiResp.SLVERR

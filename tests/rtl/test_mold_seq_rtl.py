"""The MoldUDP64 sequencer's Verilog against its model, bit for bit, under cocotb.

Both inputs run at once.  The model replays each input's packets in the order
their last beats were accepted (the block's documented arbitration), and the
output messages with their sideband, the events (as feed event records on
``m_feed_event``, or through the AXI-Lite FIFO face) and every register must
match.
"""
from __future__ import annotations

import json

import pytest

from host.feed.records import record_word
from host.protocols.moldudp64 import encode_packet
from rtl.common.message_stream import pack_sideband
from rtl.mold_seq.hdl import LATENCY_CYCLES
from rtl.mold_seq.model import (FEED_COUNTERS, FEEDS, STREAM_COUNTERS, Arrival, MoldSeqModel,
                                arbitration_order, message_spans)
from rtl.regmap.driver import decode
from tests.rtl.mold_seq_bench import SESSION, SeqStimulus, ab_feeds, make_messages, pack

BENCH = "tests.rtl.mold_seq_bench"


@pytest.fixture(scope="module")
def mold_seq(built):
    return built("mold_seq")


def run_stimulus(build, name: str, stimulus: SeqStimulus) -> dict:
    run_dir = build.build_dir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    path = stimulus.save(run_dir / "stimulus.json")
    build.run(BENCH, name, testcase="stream_stimulus", extra_env={"ZYNQMM_STIMULUS": str(path)})
    return json.loads((run_dir / "observed.json").read_text())


class Replay:
    """The model fed what the block saw, in the order the block took it."""

    def __init__(self, stimulus: SeqStimulus, observed: dict):
        self.arrivals, self.beats = [], []
        for feed in range(2):
            packets = stimulus.feed_packets(feed)
            cycles = observed["beats"][feed]
            assert len(cycles) == len(packets), f"feed {feed}: {len(cycles)} of {len(packets)} in"
            for (data, error, dropped), beat_cycles in zip(packets, cycles):
                self.arrivals.append(Arrival(feed, beat_cycles[-1], data, error, dropped))
                self.beats.append(beat_cycles)
        session = None if stimulus.session_cfg is None else bytes.fromhex(stimulus.session_cfg)
        self.model = MoldSeqModel(session)
        self.messages, self.sources = [], []
        for i in arbitration_order(self.arrivals):
            arrival = self.arrivals[i]
            for message in self.model.process(arrival.feed, arrival.data, arrival.error,
                                              arrival.dropped):
                self.messages.append(message)
                self.sources.append(i)

    def latencies(self, observed: dict) -> list[int]:
        """Per message: first output beat cycle - cycle of the input beat
        holding its last byte."""
        out = []
        for message, source, got in zip(self.messages, self.sources, observed["messages"]):
            offset, length = message_spans(self.arrivals[source].data)[message.msg_index]
            out.append(got["first_cycle"] - self.beats[source][(offset + length - 1) // 8])
        return out


def check_against_model(stimulus: SeqStimulus, observed: dict) -> Replay:
    replay = Replay(stimulus, observed)
    got = observed["messages"]
    assert len(got) == len(replay.messages), \
        f"{len(got)} messages out, model says {len(replay.messages)}"
    for i, (g, want) in enumerate(zip(got, replay.messages)):
        sideband = pack_sideband(want.seq, want.msg_index, want.feed, want.stale)
        assert (bytes.fromhex(g["data"]), g["tuser"]) == (want.data, [sideband]), \
            f"message {i}: rtl {g['data'][:32]} {[hex(u) for u in g['tuser']]} != model " \
            f"{want.data[:16].hex()} seq {want.seq} index {want.msg_index} feed {want.feed} " \
            f"stale {want.stale}"
        # tkeep: whole beats, then one contiguous tail.
        assert set(g["keeps"]) <= {0xFF, (1 << ((len(want.data) - 1) % 8 + 1)) - 1}
    model = replay.model
    if stimulus.event_port == "stream":
        assert observed["records"] == [f"{record_word(r):048x}" for r in model.feed_events()]
        assert observed["events"] == []
    else:
        assert [tuple(e) for e in observed["events"]] == [tuple(e) for e in model.events]
        assert observed["records"] == []
    regs = observed["registers"]
    for f, feed in enumerate(FEEDS):
        for name in FEED_COUNTERS:
            assert regs[f"FEED_{feed.upper()}_{name.upper()}"] == model.counters[feed][name], \
                (feed, name)
    for name in STREAM_COUNTERS:
        assert regs[f"COUNT_{name.upper()}"] == model.stream_counters[name], name
    assert regs["MISSING_LO"] | regs["MISSING_HI"] << 32 == model.missing
    assert regs["NEXT_SEQ_LO"] | regs["NEXT_SEQ_HI"] << 32 == model.next_seq
    status = decode("mold_seq", "STATUS", regs["STATUS"])
    assert status == {"session_valid": int(model.session is not None),
                      "started": int(model.started),
                      "end_of_session": int(model.end_of_session),
                      "feed_a_stale": int(model.feed_stale[0]),
                      "feed_b_stale": int(model.feed_stale[1]), "stream_stale": int(model.stale)}
    session = int.from_bytes(model.session or bytes(10), "big")
    assert [regs[f"SESSION{i}"] for i in range(3)] == \
        [session >> 48, (session >> 16) & 0xFFFFFFFF, (session & 0xFFFF) << 16]
    return replay


def test_ab_feeds_with_every_fault_and_backpressure(mold_seq):
    """Drops, repeats, reorders, B packed differently (copies overlap in part),
    heartbeats, malformed packets of every kind and another session's packets,
    both inputs paused at random and the output too."""
    a, b = ab_feeds(seed=5, messages=500)
    stimulus = SeqStimulus.of(a, b, source_pause=0.2, sink_pause=0.3, seed=21)
    observed = run_stimulus(mold_seq, "ab_faults", stimulus)
    replay = check_against_model(stimulus, observed)
    counts = replay.model.counters
    stream = replay.model.stream_counters
    # The mix must reach every path, or this test proves less than it says.
    assert stream["duplicates"] and stream["late"] and stream["gaps"], stream
    assert all(counts[f][name] for f in FEEDS for name in ("other_session", "jumps", "passed"))
    assert all(counts["a"][r] + counts["b"][r] for r in MALFORMED_EXPECTED), counts
    assert any(e.kind == 3 for e in replay.model.events), "no feed recovered"
    assert {e.kind for e in replay.model.events} == {1, 2, 3, 4}
    assert observed["output_stalls"] > 0


MALFORMED_EXPECTED = ("frame_error", "oversize", "truncated", "bad_field", "block_past_end",
                      "zero_length_block", "count_mismatch", "trailing_bytes",
                      "sequence_out_of_range")


def test_packets_dropped_upstream_leave_no_trace(mold_seq):
    """Packets whose last beat carries ``tdrop`` (the frame filter dropped
    their frames at the end) among both feeds' traffic: data packets that
    would pass or open a gap, heartbeats, malformed ones.  Nothing of them
    shows: no message, no counter, no event, no sequence state; the rest
    matches the model, which never sees them."""
    a, b = ab_feeds(seed=14, messages=300)
    # A jump far ahead that would open a gap and make A stale, were it counted.
    jump = encode_packet(SESSION, 10_000, [b"A" * 36])
    a = a[:40] + [jump] + a[40:]

    def mark(packets, every, offset):
        out = []
        for i, p in enumerate(packets):
            data, error = (p, False) if isinstance(p, (bytes, bytearray)) else p
            out.append((data, error, i % every == offset or data == jump))
        return out

    stimulus = SeqStimulus.of(mark(a, 6, 2), mark(b, 5, 1), source_pause=0.15, sink_pause=0.25,
                              seed=15)
    observed = run_stimulus(mold_seq, "dropped_upstream", stimulus)
    replay = check_against_model(stimulus, observed)
    dropped = [x for x in replay.arrivals if x.dropped]
    assert len(dropped) > 30
    # Taken as ordinary packets they would have shown: the check above can fail.
    naive = MoldSeqModel()
    for i in arbitration_order([x._replace(dropped=False) for x in replay.arrivals]):
        x = replay.arrivals[i]
        naive.process(x.feed, x.data, x.error)
    assert naive.counters != replay.model.counters
    assert naive.next_seq == 10_001 > replay.model.next_seq


def test_generated_market_day_window(mold_seq, generated_day):
    """The busiest stretch of a generated day with injected faults (drops,
    repeats, reorders on each feed), each feed on its own input as the frame
    filter delivers it; events drained over AXI-Lite while it runs."""
    a, b = generated_day
    stimulus = SeqStimulus.of(a, b, source_pause=0.1, sink_pause=0.2, seed=4,
                              event_port="axil")
    observed = run_stimulus(mold_seq, "market_day", stimulus)
    replay = check_against_model(stimulus, observed)
    counts = replay.model.counters
    assert replay.model.stream_counters["duplicates"] > 500
    assert counts["a"]["jumps"] > 5 and counts["b"]["jumps"] > 5, counts


def test_every_length_and_alignment(mold_seq):
    """Messages of every length 1..24 in packets of one to five, so each
    message starts in every lane and prefixes straddle beats.  B carries every
    third packet, starting a little later: it runs ahead of A at times (gaps,
    then A's copies arrive late) and behind it at others (duplicates)."""
    packets, seq = [], 1
    for length in range(1, 25):
        for per_packet in range(1, 6):
            msgs = [bytes([65 + length]) + bytes((seq + k + j) & 0xFF for j in range(length - 1))
                    for k in range(per_packet)]
            packets.append(encode_packet(SESSION, seq, msgs))
            seq += per_packet
    stimulus = SeqStimulus.of(packets, packets[::3], source_pause=0.15, sink_pause=0.25,
                              seed=9, offset_b=400)
    observed = run_stimulus(mold_seq, "alignment", stimulus)
    replay = check_against_model(stimulus, observed)
    model = replay.model
    # Every number passed once or was skipped by a gap; every length came out.
    assert len(replay.messages) + model.missing == seq - 1
    assert {len(m.data) for m in replay.messages} == set(range(1, 25))
    assert model.stream_counters["late"] and model.stream_counters["duplicates"]


def test_identical_feeds_in_lockstep_take_turns(mold_seq):
    """A and B carry the same packets beat for beat: every packet completes on
    both inputs in the same cycle, and the inputs take turns going first."""
    import random

    rng = random.Random(3)
    msgs = make_messages(rng, 120)
    packets = [encode_packet(SESSION, seq, batch) for seq, batch in pack(rng, msgs, 1, 3)]
    stimulus = SeqStimulus.of(packets, packets, seed=2)
    observed = run_stimulus(mold_seq, "lockstep", stimulus)
    replay = check_against_model(stimulus, observed)
    ties = [a.cycle for a in replay.arrivals if a.feed == 0]
    assert ties == [a.cycle for a in replay.arrivals if a.feed == 1]
    first_of_packet = [m.feed for m in replay.messages if m.msg_index == 0]
    assert first_of_packet == [k % 2 for k in range(len(packets))]


def test_slow_output_backs_up_both_inputs(mold_seq):
    """The output takes a beat one cycle in eight: buffers and descriptor
    FIFOs fill, the inputs are held off, and nothing is lost or reordered."""
    a, b = ab_feeds(seed=8, messages=300, max_per_packet=10, bad=0.02)
    stimulus = SeqStimulus.of(a, b, sink_pause=0.875, seed=5)
    observed = run_stimulus(mold_seq, "slow_output", stimulus)
    check_against_model(stimulus, observed)
    assert observed["input_stalls"] > 1000


def test_latency_last_byte_to_first_beat(mold_seq):
    """Cycles from the accepted input beat holding a message's last byte to
    its first output beat, with the block idle and the output free."""
    import random

    rng = random.Random(12)
    single = [encode_packet(SESSION, 1 + k, make_messages(rng, 1, odd=0.3)) for k in range(40)]
    multi, seq = [], 41
    for _ in range(20):
        batch = make_messages(rng, rng.randint(2, 6), odd=0.0)
        multi.append(encode_packet(SESSION, seq, batch))
        seq += len(batch)
    stimulus = SeqStimulus.of(single + multi, [], gap_cycles=120, seed=6)
    observed = run_stimulus(mold_seq, "latency", stimulus)
    replay = check_against_model(stimulus, observed)
    latencies = replay.latencies(observed)
    last_of_packet = [lat for lat, m, s in zip(latencies, replay.messages, replay.sources)
                      if m.msg_index == len(message_spans(replay.arrivals[s].data)) - 1]
    (mold_seq.build_dir / "runs" / "latency" / "latency.json").write_text(json.dumps({
        "single_message_packets": sorted(set(latencies[:40])),
        "last_message_of_packet": sorted(set(last_of_packet)),
        "all_messages": [min(latencies), max(latencies)]}))
    assert set(latencies[:40]) == {LATENCY_CYCLES}, latencies[:40]
    assert min(latencies) == LATENCY_CYCLES


def test_gap_table_eviction_and_partial_copies(mold_seq):
    """Six gaps on A, then B's copies: one falls in a gap still in the table
    (late), one in the oldest, evicted gap and one on the first message (both
    below the table's reach: assumed duplicates), and one packet straddles
    next_seq (its first message dropped, the rest passed)."""
    a = [encode_packet(SESSION, 1, [b"S" * 12])] + \
        [encode_packet(SESSION, 3 + 3 * k, [b"A" * 20, b"B" * 9]) for k in range(6)]
    b = [encode_packet(SESSION, 2, [b"C" * 30]), encode_packet(SESSION, 17, [b"D" * 5]),
         encode_packet(SESSION, 1, [b"S" * 12]), encode_packet(SESSION, 19, [b"E" * 7] * 5)]
    stimulus = SeqStimulus.of(a, b, offset_b=300, sink_pause=0.3, seed=3)
    observed = run_stimulus(mold_seq, "eviction", stimulus)
    replay = check_against_model(stimulus, observed)
    stream = replay.model.stream_counters
    assert (stream["late"], stream["assumed_duplicates"], stream["duplicates"]) == (1, 2, 3)
    assert [m.msg_index for m in replay.messages if m.feed == 1] == [1, 2, 3, 4]


def test_registers_and_control(mold_seq):
    mold_seq.run(BENCH, "registers", testcase="registers_and_control")


@pytest.fixture(scope="module")
def generated_day(tmp_path_factory):
    """Feed A's and B's UDP payloads over the busiest 1400 packets (capture
    order) of a small generated day with faults."""
    import numpy as np

    from host.marketday.generator import generate_day
    from host.pcap.fast import iter_udp_batches
    from host.pcap.frames import ip_to_str

    path = tmp_path_factory.mktemp("day") / "day.pcap"
    summary = generate_day(path, symbols=4, messages=40_000, seed=17, gap_rate=0.06,
                           dup_rate=0.06, reorder_rate=0.06, start="09:25", end="16:05",
                           write_summary=False)
    feed_of = {v["dst"].split(":")[0]: k for k, v in summary["feeds"].items()}
    capture = []
    for batch in iter_udp_batches(path):
        for i in range(len(batch)):
            capture.append((feed_of[ip_to_str(int(batch.dst_ip[i]))], bytes(batch.payload(i))))
    is_data = np.array([p[18:20] not in (b"\x00\x00", b"\xff\xff") for _, p in capture], float)
    start = int(np.convolve(is_data, np.ones(1400), "valid").argmax())
    window = capture[start:start + 1400]
    return [p for f, p in window if f == "A"], [p for f, p in window if f == "B"]

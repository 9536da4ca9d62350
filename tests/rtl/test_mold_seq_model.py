"""The MoldUDP64 sequencer's model against the golden host code:
``host.protocols.moldudp64.decode_packet`` for validation and
``host.feed.sequencer.Sequencer`` for accounting and A/B arbitration."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.feed.fastpath import MALFORMED_REASONS, _validate
from host.feed.sequencer import Sequencer
from host.protocols.errors import DecodeError
from host.protocols.moldudp64 import decode_packet, encode_packet
from rtl.mold_seq.model import (EV_END_OF_SESSION, EV_FEED_RECOVERED, EV_FEED_STALE, EV_GAP,
                                FEEDS, GAP_TABLE_ENTRIES, MALFORMED, MAX_PACKET_BYTES, SEQ_LIMIT,
                                Arrival, Event, MoldSeqModel, arbitration_order, check_packet,
                                inspect_packet, message_spans, walk_blocks)
from tests.rtl.mold_seq_bench import (MALFORMED_KINDS, OTHER_SESSION, SESSION, ab_feeds,
                                      make_messages, malformed, pack)

# Reasons only the fabric has: the host never sees tuser, buffers any size,
# and computes with unbounded integers.
FABRIC_ONLY = ("frame_error", "oversize", "sequence_out_of_range")
FEED_NAMES = ("A", "B")


def golden_reason(data: bytes) -> str | None:
    try:
        decode_packet(data)
    except DecodeError as exc:
        return exc.reason
    return None


def fast_path_reason(data: bytes) -> str | None:
    code = _validate(np.frombuffer(data, np.uint8), 0, len(data))
    return None if code < 0 else MALFORMED_REASONS[code]


# ---- validation ----------------------------------------------------------------------
def test_malformed_reasons_extend_the_host_reasons():
    assert set(MALFORMED_REASONS) <= set(MALFORMED)
    assert set(MALFORMED) - set(MALFORMED_REASONS) == {"frame_error", "oversize"}


def test_every_cut_of_a_packet_matches_golden():
    rng = random.Random(1)
    data = encode_packet(SESSION, 77, make_messages(rng, 6, odd=0.5))
    reasons = set()
    for cut in range(len(data) + 1):
        piece = data[:cut]
        assert check_packet(piece) == golden_reason(piece) == fast_path_reason(piece), cut
        reasons.add(check_packet(piece))
    assert reasons == {None, "truncated", "block_past_end", "count_mismatch"}


def test_every_count_of_a_packet_matches_golden():
    rng = random.Random(2)
    data = encode_packet(SESSION, 9, make_messages(rng, 4, odd=0.5))
    for count in list(range(0, 12)) + [0xFFFE, 0xFFFF]:
        for tail in (b"", b"\x00", b"\x00\x01", b"\x00\x01Z", b"\x00\x00", b"\x00\x05ab"):
            piece = data[:18] + count.to_bytes(2, "big") + data[20:] + tail
            assert check_packet(piece) == golden_reason(piece), (count, tail)


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_malformed_kind(kind):
    rng = random.Random(len(kind))
    data, error = malformed(rng, kind)
    reason = check_packet(data, error)
    assert reason is not None
    if reason in FABRIC_ONLY:
        return
    assert reason == golden_reason(data) == fast_path_reason(data)


def test_sequence_range_is_the_fast_paths():
    msgs = [b"S" * 12]
    assert check_packet(encode_packet(SESSION, SEQ_LIMIT, msgs)) is None
    assert fast_path_reason(encode_packet(SESSION, SEQ_LIMIT, msgs)) is None
    for seq in (SEQ_LIMIT + 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        data = encode_packet(SESSION, seq, msgs)
        assert check_packet(data) == fast_path_reason(data) == "sequence_out_of_range"


def test_oversize_and_frame_error():
    big = encode_packet(SESSION, 1, [b"A" * (MAX_PACKET_BYTES - 22)])
    assert len(big) == MAX_PACKET_BYTES and check_packet(big) is None
    bigger = encode_packet(SESSION, 1, [b"A" * (MAX_PACKET_BYTES - 21)])
    assert check_packet(bigger) == "oversize" and golden_reason(bigger) is None
    assert check_packet(big, error=True) == "frame_error"


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 6),
       edits=st.lists(st.tuples(st.sampled_from(["cut", "byte", "count", "junk"]),
                                st.integers(0, 10_000), st.integers(0, 255)), max_size=3))
def test_mutated_packets_match_golden(seed, count, edits):
    """Random packets bent at random: the hardware's walk gives the host's verdict."""
    rng = random.Random(seed)
    data = bytearray(encode_packet(SESSION, rng.randrange(1, 1 << 40),
                                   make_messages(rng, count, odd=0.4)))
    for op, where, value in edits:
        if op == "cut":
            del data[where % (len(data) + 1):]
        elif op == "byte" and len(data) > 20:
            # Aim at the prefixes and the count, where the verdicts come from.
            data[18 + where % (len(data) - 18)] = value
        elif op == "count" and len(data) >= 20:
            data[19] = value & 0x0F
            data[18] = 0xFF if value > 250 else 0
        elif op == "junk":
            data += bytes([value]) * (where % 5)
    data = bytes(data)
    assert check_packet(data) == golden_reason(data) == fast_path_reason(data)
    # The one walk that judges a packet also gives its messages.
    reason, spans = inspect_packet(data)
    assert reason == check_packet(data)
    assert len(spans) == walk_blocks(data)[0]
    if reason is None:
        assert spans == message_spans(data)


def test_walk_stops():
    good = encode_packet(SESSION, 1, [b"ab", b"c"])
    assert walk_blocks(good) == (2, "end")
    assert walk_blocks(good + b"\x00") == (2, "cut")
    assert walk_blocks(good + b"\x00\x00") == (2, "zero")
    assert walk_blocks(good[:-1]) == (1, "past")
    assert message_spans(good) == [(22, 2), (26, 1)]


# ---- arbitration against the golden sequencer ------------------------------------------
def run_both(packets, session_cfg: bytes | None = None):
    """(feed index, payload) in arrival order through golden and model; the
    golden output is that of the session the model follows (the host
    arbitrates every session)."""
    golden, model = Sequencer(), MoldSeqModel(session_cfg)
    golden_out, model_out = [], []
    for feed, data in packets:
        passed = golden.on_datagram(FEED_NAMES[feed], data)
        model_out += model.process(feed, data)
        if data[:10] == model.session:
            golden_out += passed
    return golden, golden_out, model, model_out


def assert_same(golden: Sequencer, golden_out, model: MoldSeqModel, model_out):
    assert [(m.seq, m.msg_index, m.data) for m in model_out] == golden_out
    stream = golden.stream_stats(model.session.decode().rstrip(" "))
    gaps = [(e.a, e.b) for e in model.events if e.kind == EV_GAP]
    # Copies the gap table could no longer place are duplicates to the model;
    # the host may call some of them late.  Without such copies the split is exact.
    counts = model.stream_counters
    moved = stream["late"] - counts["late"]
    assert 0 <= moved <= counts["assumed_duplicates"]
    assert counts["duplicates"] - moved == stream["duplicates"]
    assert {"passed": model.stream_counters["passed"], "gap_events": gaps,
            "missing": model.missing, "stale": model.stale,
            "next_seq": model.next_seq if model.started else None,
            "end_of_session": model.end_of_session} == \
        {k: stream[k] for k in ("passed", "gap_events", "missing", "stale", "next_seq",
                                "end_of_session")}
    assert model.stream_counters["gaps"] == len(gaps)
    by_feed = {FEED_NAMES[f]: model.counters[feed]["passed"] for f, feed in enumerate(FEEDS)
               if model.counters[feed]["passed"]}
    assert by_feed == stream["passed_by_feed"]
    for f, feed in enumerate(FEEDS):
        fs = golden.feed_stats(FEED_NAMES[f])
        mine = model.counters[feed]
        assert {k: mine[k] for k in ("packets", "messages", "heartbeats", "end_of_session")} == \
            {k: fs[k] for k in ("packets", "messages", "heartbeats", "end_of_session")}
        assert {r: n for r, n in mine.items() if r in MALFORMED and n} == fs["malformed"]


def interleave(rng: random.Random, a: list, b: list, lag: int = 0, drift: int = 10**9) -> list:
    """Merge two feeds' packets in random arrival order, keeping each feed's
    order: A starts ``lag`` packets ahead, and neither runs more than ``drift``
    packets ahead of the other."""
    out, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        ahead = i - j - lag
        take_a = j >= len(b) or (i < len(a) and ahead < drift and
                                 (ahead <= -drift or i < lag or rng.random() < 0.5))
        if take_a:
            out.append((0, a[i]))
            i += 1
        else:
            out.append((1, b[j]))
            j += 1
    return out


def host_visible(packets):
    """Drop what only the fabric can see or rejects (tuser, size, sequence range)."""
    out = []
    for feed, item in packets:
        data, error = item if isinstance(item, tuple) else (item, False)
        if error or check_packet(data) in FABRIC_ONLY:
            continue
        out.append((feed, data))
    return out


def test_generated_day_matches_golden(tmp_path):
    """A generated day with drops, repeats and reorders on both feeds, read
    back from the capture: Mold packets in capture order."""
    from host.marketday.generator import generate_day
    from host.pcap.fast import iter_udp_batches
    from host.pcap.frames import ip_to_str

    path = tmp_path / "day.pcap"
    summary = generate_day(path, symbols=4, messages=20_000, seed=5, gap_rate=0.05,
                           dup_rate=0.05, reorder_rate=0.05, start="09:25", end="16:05",
                           write_summary=False)
    feed_of = {v["dst"].split(":")[0]: FEED_NAMES.index(k) for k, v in summary["feeds"].items()}
    packets = [(feed_of[ip_to_str(int(batch.dst_ip[i]))], bytes(batch.payload(i)))
               for batch in iter_udp_batches(path) for i in range(len(batch))]
    golden, golden_out, model, model_out = run_both(packets)
    assert_same(golden, golden_out, model, model_out)
    expected = summary["expected_arbitration"]
    assert (model.stream_counters["passed"], model.stream_counters["duplicates"],
            model.stream_counters["late"], model.stream_counters["gaps"], model.missing) == \
        (expected["passed"], expected["duplicates"], expected["late"], expected["gap_events"],
         expected["missing"])
    faults = summary["faults"]
    assert all(faults[f]["drops"] and faults[f]["reorders"] for f in FEED_NAMES)
    # Each drop or reorder on a feed is one jump of that feed.
    for f, feed in enumerate(FEEDS):
        assert model.counters[feed]["jumps"] == \
            faults[FEED_NAMES[f]]["drops"] + faults[FEED_NAMES[f]]["reorders"]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), per_packet=st.integers(1, 8), lag=st.integers(-20, 20),
       drift=st.sampled_from([2, 6, 1000]), repack=st.booleans())
def test_synthetic_feeds_match_golden(seed, per_packet, lag, drift, repack):
    """Faults of every kind, copies packed differently on B (partial overlaps),
    heartbeats, malformed packets and another session, in random arrival order
    with one feed up to ``drift`` packets ahead (or far ahead)."""
    a, b = ab_feeds(seed, messages=150, max_per_packet=per_packet, repack_b=repack)
    first, second = [(0, p) for p in a], [(1, p) for p in b]
    if lag < 0:
        first, second = second, first
    mixed = interleave(random.Random(seed), first, second, abs(lag), drift)
    golden, golden_out, model, model_out = run_both(host_visible([item for _, item in mixed]))
    assert_same(golden, golden_out, model, model_out)
    if drift <= 6 and abs(lag) <= 6 and model.gap_total <= GAP_TABLE_ENTRIES:
        # Copies close together and no more gaps than the table holds: the
        # duplicate/late split never has to be assumed.
        assert model.stream_counters["assumed_duplicates"] == 0


def test_session_from_register_follows_only_that_session():
    """Two sessions on both feeds; the model follows the one software set, as
    the host's stream of that session, and counts the other's packets."""
    rng = random.Random(4)
    ours = OTHER_SESSION.encode()
    a, b = ab_feeds(11, messages=120, other_session=0.0, bad=0.0)
    theirs = [encode_packet(OTHER_SESSION, seq, msgs)
              for seq, msgs in pack(rng, make_messages(rng, 40), 1, 3)]
    mixed = interleave(rng, [(0, p) for p in a] + [(1, p) for p in b],
                       [(rng.randrange(2), p) for p in theirs + theirs[5:9]])
    packets = [item for _, item in mixed]
    golden, model = Sequencer(), MoldSeqModel(ours)
    golden_out, model_out = [], []
    for feed, data in packets:
        passed = golden.on_datagram(FEED_NAMES[feed], data)
        if data.startswith(ours):
            golden_out += passed
        model_out += model.process(feed, data)
    assert [(m.seq, m.msg_index, m.data) for m in model_out] == golden_out
    stream = golden.stream_stats(OTHER_SESSION)
    repeated = sum(len(message_spans(p)) for p in theirs[5:9])
    assert (model.stream_counters["passed"], model.stream_counters["duplicates"]) == \
        (stream["passed"], stream["duplicates"]) == (40, repeated)
    assert model.counters["a"]["other_session"] + model.counters["b"]["other_session"] == \
        len(a) + len(b)


# ---- what the host does not have -------------------------------------------------------
def test_gap_table_eviction_is_counted_not_silent():
    """Six gaps, then late copies of the first: they left the table, so the
    model calls them duplicates and counts them as assumed."""
    packets = [(0, encode_packet(SESSION, 1, [b"S" * 12]))]
    for k in range(6):
        packets.append((0, encode_packet(SESSION, 3 + 2 * k, [b"A" * 20])))
    late_first = (1, encode_packet(SESSION, 2, [b"A" * 20]))
    late_last = (1, encode_packet(SESSION, 12, [b"A" * 20]))
    golden, golden_out, model, model_out = run_both(packets + [late_first, late_last])
    stream = golden.stream_stats(SESSION)
    assert len(stream["gap_events"]) == 6 > GAP_TABLE_ENTRIES
    assert stream["late"] == 2 and stream["duplicates"] == 0
    assert model.stream_counters["assumed_duplicates"] == 1
    assert model.stream_counters["late"] == 1 and model.stream_counters["duplicates"] == 1
    assert [(m.seq, m.msg_index, m.data) for m in model_out] == golden_out


def test_feed_stale_raised_on_jump_and_cleared_when_contiguous():
    m = MoldSeqModel()
    packet = {s: encode_packet(SESSION, s, [b"X" * 10]) for s in range(1, 12)}
    m.process(0, packet[1])
    m.process(0, packet[3])                 # jump past 2: A stale
    assert m.feed_stale == (True, False)
    m.process(1, packet[1])                 # B's first packet: sets its expectation only
    m.process(0, packet[2])                 # late fill on A: still stale
    assert m.feed_stale == (True, False)
    m.process(0, packet[4])                 # starts where A's expectation is: recovered
    assert m.feed_stale == (False, False)
    m.process(1, encode_packet(SESSION, 7))  # heartbeat beyond B's expectation: a jump
    m.process(1, encode_packet(SESSION, 7))  # and contiguous again
    m.process(1, encode_packet(SESSION, 7, end_of_session=True))
    assert m.events == [
        Event(EV_FEED_STALE, 0, 2, 3), Event(EV_GAP, 0, 2, 3), Event(EV_FEED_RECOVERED, 0, 4),
        Event(EV_FEED_STALE, 1, 2, 7), Event(EV_GAP, 1, 5, 7), Event(EV_FEED_RECOVERED, 1, 7),
        Event(EV_END_OF_SESSION, 1, 7)]
    assert m.counters["a"]["jumps"] == 1 and m.counters["b"]["jumps"] == 1
    assert m.stale and m.end_of_session


def test_event_fifo_capacity():
    m = MoldSeqModel(event_capacity=3)
    for k in range(5):
        m.process(0, encode_packet(SESSION, 1 + 2 * k, [b"Q" * 8]))
    assert len(m.events) == 3 and m.stream_counters["events_lost"] == 2
    assert m.stream_counters["gaps"] == 4


def test_arbitration_order_is_first_completed_first_served():
    good = encode_packet(SESSION, 1, [b"A"])
    bad = good[:10]
    arrivals = [Arrival(0, 10, good), Arrival(1, 10, good), Arrival(0, 20, good),
                Arrival(1, 20, good), Arrival(1, 15, good), Arrival(0, 30, good),
                Arrival(1, 30, bad), Arrival(0, 40, good), Arrival(1, 40, good)]
    # Ties: A first, then B, and the bad packet at 30 does not count as one.
    assert arbitration_order(arrivals) == [0, 1, 4, 3, 2, 6, 5, 7, 8]
    with pytest.raises(ValueError):
        arbitration_order([Arrival(0, 1, good), Arrival(0, 1, good)])


def test_model_stale_clear_and_counter_wrap():
    m = MoldSeqModel()
    m.process(0, encode_packet(SESSION, 1, [b"A"]))
    m.process(0, encode_packet(SESSION, 5, [b"B"]))
    assert m.stale
    m.clear_stale()
    out = m.process(0, encode_packet(SESSION, 6, [b"C"]))
    assert out[0].stale is False
    m.counters["a"]["packets"] = 0xFFFF_FFFF
    m.process(0, encode_packet(SESSION, 7))
    assert m.counters["a"]["packets"] == 0


def test_restart_starts_a_fresh_session_and_keeps_counters():
    m = MoldSeqModel()
    m.process(0, encode_packet(SESSION, 5, [b"a"]))
    m.process(0, encode_packet(SESSION, 9, [b"b"]))
    m.restart()
    out = m.process(1, encode_packet(OTHER_SESSION, 500, [b"c"]))
    assert [(o.seq, o.feed, o.stale) for o in out] == [(500, 1, True)]
    assert m.session == OTHER_SESSION.encode() and m.next_seq == 501
    assert m.stream_counters["gaps"] == 1 and m.counters["a"]["packets"] == 2
    assert m.feed_stale == (False, False)

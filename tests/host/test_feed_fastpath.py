"""The numba feed path: MoldUDP64 unpacking, per-feed accounting and A/B
arbitration must equal the golden Sequencer; bad datagrams are counted."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.book.bench import synthetic_day
from host.book.fast import FastBook
from host.book.records import trades_array, updates_array
from host.book.reference import ReferenceBook
from host.feed import fastpath
from host.feed.fastpath import (
    MALFORMED_REASONS,
    FeedArbiter,
    MessageBatch,
    itch_batch_to_messages,
)
from host.feed.sequencer import Sequencer
from host.pcap.fast import UdpBatch, iter_udp_batches
from host.pcap.frames import ip_to_int, ip_to_str
from host.pcap.itchfile import ItchFileWriter, iter_itch_batches
from host.pcap.writer import PcapWriter
from host.protocols import moldudp64
from host.protocols.moldudp64 import encode_packet, pack_messages

SESSION = "ZYNQMM0001"
FEED_A = (ip_to_int("233.54.12.1"), 26400)
FEED_B = (ip_to_int("233.54.12.2"), 26400)


def name(feed) -> str:
    return f"{ip_to_str(feed[0])}:{feed[1]}"


def udp_batch(items) -> UdpBatch:
    """items: (feed, payload bytes, ts_ns); payloads separated by filler bytes."""
    parts, offsets, pos = [], [], 0
    for _, payload, _ in items:
        parts.append(b"\xee" * 5)
        pos += 5
        offsets.append(pos)
        parts.append(payload)
        pos += len(payload)
    n = len(items)
    return UdpBatch(
        buf=np.frombuffer(b"".join(parts), np.uint8).copy(),
        ts_ns=np.array([ts for _, _, ts in items], np.int64),
        src_ip=np.zeros(n, np.uint32),
        dst_ip=np.array([f[0] for f, _, _ in items], np.uint32),
        src_port=np.zeros(n, np.uint16),
        dst_port=np.array([f[1] for f, _, _ in items], np.uint16),
        vlan0=np.full(n, -1, np.int32), vlan1=np.full(n, -1, np.int32),
        payload_off=np.array(offsets, np.int64),
        payload_len=np.array([len(p) for _, p, _ in items], np.int32),
        frame_index=np.arange(n, dtype=np.int64))


def run_both(items, chunk=None, **arbiter_args):
    """Feed ``items`` to Sequencer and FeedArbiter; assert equal; return both."""
    sq = Sequencer()
    expected = []
    for feed, payload, ts in items:
        expected += [m + (ts,) for m in sq.on_datagram(name(feed), payload, ts)]
    arb = FeedArbiter(**arbiter_args)
    got = []
    step = chunk or max(len(items), 1)
    for lo in range(0, len(items), step):
        batch = udp_batch(items[lo:lo + step])
        mb = arb.process(batch)
        assert mb.buf is batch.buf
        got += [(int(mb.seq[i]), int(mb.msg_index[i]), mb.message(i), int(mb.ts_ns[i]))
                for i in range(len(mb))]
    assert got == expected
    assert arb.report() == sq.report()
    return sq, arb, got


def random_stream(seed, packets=150, drop=0.05, dup=0.05, reorder=0.05, heartbeat=0.05,
                  junk=0.02, sessions=(SESSION,)):
    rnd = random.Random(seed)
    items = []
    seqs = {s: 1 for s in sessions}
    for k in range(packets):
        session = rnd.choice(sessions)
        count = rnd.randint(1, 4)
        seq = seqs[session]
        payload = encode_packet(session, seq, [bytes([65 + (seq + i) % 26]) * rnd.randint(1, 6)
                                               for i in range(count)])
        seqs[session] += count
        for feed in (FEED_A, FEED_B):
            r = rnd.random()
            if r < drop:
                continue
            items.append((feed, payload, k))
            if r > 1 - dup:
                items.append((feed, payload, k))
            if rnd.random() < reorder and len(items) > 2:
                items[-1], items[-2] = items[-2], items[-1]
        if rnd.random() < heartbeat:
            items.append((rnd.choice((FEED_A, FEED_B)),
                          encode_packet(session, seqs[session] + rnd.randint(0, 2)), k))
        if rnd.random() < junk:
            items.append((FEED_B, bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 30))), k))
    if rnd.random() < 0.5:
        items.append((FEED_A, encode_packet(sessions[0], seqs[sessions[0]], end_of_session=True),
                      packets))
    return items


# -- equality with the golden Sequencer ------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_matches_sequencer_on_faulty_ab_streams(seed):
    items = random_stream(seed)
    run_both(items, chunk=1 + seed * 17, feeds=1, sessions=1, runs=1, gaps=1)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 60), st.floats(0, 0.3), st.floats(0, 0.3),
       st.floats(0, 0.5))
def test_matches_sequencer_property(seed, chunk, drop, dup, reorder):
    items = random_stream(seed, packets=60, drop=drop, dup=dup, reorder=reorder,
                          sessions=(SESSION, "OTHER00002"))
    run_both(items, chunk=chunk, feeds=1, sessions=1, runs=1, gaps=1)


def test_clean_ab_feeds_pass_every_message_once():
    payloads = [encode_packet(SESSION, 1 + 3 * k, [b"x", b"yy", b"zzz"]) for k in range(20)]
    items = []
    for k, p in enumerate(payloads):
        items += [(FEED_A, p, k), (FEED_B, p, k)]
    sq, arb, got = run_both(items)
    assert [q for q, _, _, _ in got] == list(range(1, 61))
    s = arb.stream_stats()[SESSION]
    assert (s["passed"], s["duplicates"], s["late"], s["stale"]) == (60, 60, 0, False)
    assert s["passed_by_feed"] == {name(FEED_A): 60}
    for f in arb.feed_stats().values():
        assert (f["packets"], f["messages"], f["gaps"], f["duplicate_packets"]) == (20, 60, 0, 0)


def test_injected_faults_are_counted_per_feed():
    """The generator's fault contract: spaced drops, duplicates and reorders."""
    payloads = [encode_packet(SESSION, 1 + 2 * k, [b"a", b"b"]) for k in range(40)]
    faults = {FEED_A: {8: "drop", 16: "dup", 24: "reorder", 32: "drop"},
              FEED_B: {10: "reorder", 20: "dup", 30: "dup"}}
    items = []
    for feed, plan in faults.items():
        k = 0
        while k < len(payloads):
            what = plan.get(k)
            if what == "drop":
                pass
            elif what == "dup":
                items += [(feed, payloads[k], k)] * 2
            elif what == "reorder":
                items += [(feed, payloads[k + 1], k), (feed, payloads[k], k)]
                k += 1
            else:
                items.append((feed, payloads[k], k))
            k += 1
    items.sort(key=lambda item: item[2])   # A and B side by side, packet by packet
    _, arb, got = run_both(items)
    a, b = arb.feed_stats()[name(FEED_A)], arb.feed_stats()[name(FEED_B)]
    assert (a["gaps"], a["missing_messages"], a["duplicate_packets"],
            a["out_of_order_packets"]) == (2, 4, 1, 1)
    assert (b["gaps"], b["missing_messages"], b["duplicate_packets"],
            b["out_of_order_packets"]) == (0, 0, 2, 1)
    stream = arb.stream_stats()[SESSION]
    assert stream["passed"] + stream["missing"] == 80 and stream["next_seq"] == 81
    assert len(got) == stream["passed"]


# -- malformed datagrams ---------------------------------------------------------------------
GOOD = encode_packet(SESSION, 1, [b"abc", b"de"])
MALFORMED = {
    "truncated": GOOD[:19],
    "bad_field": b"\xffYNQMM0001" + GOOD[10:],
    "block_past_end": GOOD[:-1],
    "zero_length_block": GOOD[:20] + b"\x00\x00" + b"\x00\x02de",
    "count_mismatch": GOOD + b"\x00\x01q",
    "trailing_bytes": GOOD + b"\x07",
}


@pytest.mark.parametrize("reason", sorted(MALFORMED))
def test_malformed_datagrams_are_counted_and_skipped(reason):
    payload = MALFORMED[reason]
    counts: dict[str, int] = {}
    assert moldudp64.decode_or_count(payload, counts) is None and counts == {reason: 1}
    later = encode_packet(SESSION, 3, [b"fg"])
    _, arb, got = run_both([(FEED_A, payload, 1), (FEED_A, GOOD, 2), (FEED_A, later, 3)])
    assert [q for q, _, _, _ in got] == [1, 2, 3]
    assert arb.feed_stats()[name(FEED_A)]["malformed"] == {reason: 1}
    assert arb.malformed() == {reason: 1}


def test_heartbeat_with_trailing_blocks_is_a_count_mismatch():
    payload = encode_packet(SESSION, 5) + b"\x00\x01x"
    _, arb, _ = run_both([(FEED_B, payload, 0)])
    assert arb.malformed() == {"count_mismatch": 1}


def test_sequence_numbers_past_63_bits_are_rejected():
    payload = encode_packet(SESSION, 2**63 + 5, [b"m"])
    arb = FeedArbiter()
    mb = arb.process(udp_batch([(FEED_A, payload, 0), (FEED_A, GOOD, 1)]))
    assert len(mb) == 2
    assert arb.malformed() == {"sequence_out_of_range": 1}
    assert "sequence_out_of_range" in MALFORMED_REASONS


def test_random_bytes_never_crash():
    rnd = random.Random(11)
    items = [(FEED_A, bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 80))), k)
             for k in range(300)]
    # mostly junk, plus headers with plausible counts and garbage blocks
    for k in range(100):
        count = rnd.randint(0, 5)
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 20)))
        items.append((FEED_B, SESSION.encode() + (k + 1).to_bytes(8, "big")
                      + count.to_bytes(2, "big") + body, k))
    run_both(items, chunk=50)


def test_output_arrays_are_sized_for_every_message_that_passes():
    """The arbiter sizes a batch's output from the message counts in the
    datagram headers; no batch, however malformed, emits more than that."""
    rnd = random.Random(5)
    items, emitted = [], 0
    for k in range(600):
        blocks = [bytes(rnd.randint(1, 6)) for _ in range(rnd.randint(0, 4))]
        count = rnd.choice([len(blocks)] * 4 + [0, 0xFFFF, rnd.randint(0, 9)])
        body = b"".join(len(b).to_bytes(2, "big") + b for b in blocks)
        payload = (SESSION.encode() + (1 + 10 * k).to_bytes(8, "big")
                   + count.to_bytes(2, "big") + body)
        cut = rnd.choice([len(payload)] * 9 + [15])   # some cut inside the header
        items.append(((FEED_A, FEED_B)[k % 2], payload[:cut], k))
    arb = FeedArbiter()
    for lo in range(0, len(items), 40):
        batch = udp_batch(items[lo:lo + 40])
        got = len(arb.process(batch))
        assert got <= fastpath._message_bound(batch.buf, batch.payload_off, batch.payload_len)
        emitted += got
    assert emitted > 200 and arb.malformed()
    # well-formed datagrams only: the bound is exact
    clean = udp_batch([(FEED_A, encode_packet(SESSION, 10_000 + 3 * k, [b"ab", b"c", b"d"]), k)
                       for k in range(20)])
    assert fastpath._message_bound(clean.buf, clean.payload_off, clean.payload_len) == 60
    assert len(arb.process(clean)) == 60


# -- capacity growth and batches ---------------------------------------------------------------
def test_many_feeds_sessions_and_holes_grow_the_tables():
    items = []
    feeds = [(ip_to_int(f"239.1.1.{i}"), 30000 + i) for i in range(9)]
    for s in range(5):
        session = f"SESSION{s:03d}"
        for k in range(0, 200, 2):   # every other packet missing: many holes and gap events
            payload = encode_packet(session, 1 + k, [b"p"])
            items.append((feeds[(s + k) % len(feeds)], payload, k))
    sq, arb, _ = run_both(items, chunk=64, feeds=1, sessions=1, runs=1, gaps=1)
    assert len(arb.feed_names()) == 9 and len(arb.sessions()) == 5
    assert all(len(st_["gap_events"]) == 99 for st_ in arb.stream_stats().values())
    assert arb.stale


def test_empty_batch():
    arb = FeedArbiter()
    mb = arb.process(udp_batch([]))
    assert isinstance(mb, MessageBatch) and len(mb) == 0
    assert arb.report() == {"feeds": {}, "streams": {}}


# -- from files to the book --------------------------------------------------------------------
def test_itch_batch_to_messages_numbers_messages():
    class Batch:
        buf = np.frombuffer(b"abcdef", np.uint8)
        msg_off = np.array([0, 2, 5], np.int64)
        msg_len = np.array([2, 3, 1], np.int32)

    mb = itch_batch_to_messages(Batch(), first_seq=10)
    assert mb.seq.tolist() == [10, 11, 12] and mb.seq.dtype == np.uint64
    assert mb.msg_index.tolist() == [0, 0, 0] and mb.ts_ns.tolist() == [0, 0, 0]
    assert [mb.message(i) for i in range(3)] == [b"ab", b"cde", b"f"]


def test_itch_file_through_the_fast_book(tmp_path):
    day = synthetic_day(6_000, symbols=5, seed=21, anomaly_rate=0.01)
    path = tmp_path / "day.itch"
    with ItchFileWriter(path) as writer:
        writer.write_batch(day.buf, day.msg_off, day.msg_len)
    fb, first, updates = FastBook(), 1, []
    for batch in iter_itch_batches(path, chunk_bytes=16 << 10):
        mb = itch_batch_to_messages(batch, first_seq=first)
        first += len(mb)
        updates.append(fb.process(mb)[0].copy())
    ref = ReferenceBook()
    n = len(day)
    ru, _ = ref.process_messages(day.buf, day.msg_off, day.msg_len, np.arange(1, n + 1),
                                 np.zeros(n, np.int64))
    assert first == n + 1
    assert np.concatenate(updates).tobytes() == updates_array(ru).tobytes()
    assert fb.counters == ref.counters and not fb.stale


def test_pcap_ab_capture_through_arbiter_and_book(tmp_path):
    day = synthetic_day(5_000, symbols=6, seed=5)
    messages = [day.buf[o:o + n].tobytes() for o, n in zip(day.msg_off, day.msg_len)]
    packets = [p.encode() for p in pack_messages(SESSION, 1, messages, max_payload=400)]
    rnd = random.Random(3)
    items = []
    for k, payload in enumerate(packets):
        for feed in (FEED_A, FEED_B):
            if rnd.random() > 0.03:          # each feed loses a few packets on its own
                items.append((feed, payload, 1_700_000_000_000_000_000 + 1000 * k))
    batch = udp_batch(items)
    path = tmp_path / "ab.pcap"
    with PcapWriter(path) as writer:
        writer.write_udp_batch(batch.ts_ns, batch.buf, batch.payload_off, batch.payload_len,
                               np.full(len(items), ip_to_int("10.20.30.40"), np.uint32),
                               batch.dst_ip, np.full(len(items), 26400, np.uint16),
                               batch.dst_port, np.full(len(items), 100, np.int32),
                               np.full(len(items), -1, np.int32))

    arb, fb = FeedArbiter(), FastBook()
    fast_updates, fast_trades = [], []
    for ub in iter_udp_batches(path, chunk_bytes=32 << 10):
        u, t = fb.process(arb.process(ub))
        fast_updates.append(u.copy())
        fast_trades.append(t.copy())

    sq, ref, ru, rt = Sequencer(), ReferenceBook(), [], []
    for feed, payload, ts in items:
        for q, index, msg in sq.on_datagram(name(feed), payload, ts):
            row = ref.process_messages(msg, [0], [len(msg)], [q], [index])
            ru += row[0]
            rt += row[1]
    assert arb.report() == sq.report()
    assert np.concatenate(fast_updates).tobytes() == updates_array(ru).tobytes()
    assert np.concatenate(fast_trades).tobytes() == trades_array(rt).tobytes()
    assert fb.counters == ref.counters
    stream = arb.stream_stats()[SESSION]
    assert stream["passed"] + stream["missing"] == len(messages)


def test_payload_outside_the_buffer_is_counted_not_read():
    batch = udp_batch([(FEED_A, GOOD, 0), (FEED_A, GOOD, 1)])
    batch.payload_len[1] = len(batch.buf)   # runs past the end of the chunk
    arb = FeedArbiter()
    mb = arb.process(batch)
    assert len(mb) == 2 and arb.malformed() == {"truncated": 1}


def test_generated_day_faults_are_counted_exactly(tmp_path):
    """The market-day generator's fault contract, end to end through the fast path."""
    generator = pytest.importorskip("host.marketday.generator")
    path = tmp_path / "day.pcap"
    summary = generator.generate_day(out=str(path), symbols=8, messages=20_000, seed=3,
                                     feeds="A,B", gap_rate=0.01, dup_rate=0.01,
                                     reorder_rate=0.01, write_summary=False)
    arb, fb = FeedArbiter(), FastBook()
    for ub in iter_udp_batches(path):
        fb.process(arb.process(ub))
    stats = arb.feed_stats()
    for feed, expected in summary["expected_feed_counts"].items():
        got = stats[summary["feeds"][feed]["dst"]]
        assert {k: got[k] for k in expected} == expected, feed
    assert sum(e["gaps"] for e in summary["expected_feed_counts"].values()) > 0
    assert fb.counters["messages"] == arb.stream_stats()[summary["mold"]["session"]]["passed"]


def test_bench_functions_report_every_figure(tmp_path):
    from host.book.bench import bench_book, bench_synthetic

    day = synthetic_day(3_000, symbols=4, seed=8)
    messages = [day.buf[o:o + n].tobytes() for o, n in zip(day.msg_off, day.msg_len)]
    packets = [p.encode() for p in pack_messages(SESSION, 1, messages)]
    batch = udp_batch([(FEED_A, p, 1_700_000_000_000_000_000 + k) for k, p in enumerate(packets)])
    path = tmp_path / "bench.pcap"
    n = len(packets)
    with PcapWriter(path) as writer:
        writer.write_udp_batch(batch.ts_ns, batch.buf, batch.payload_off, batch.payload_len,
                               np.zeros(n, np.uint32), batch.dst_ip, np.zeros(n, np.uint16),
                               batch.dst_port, np.full(n, -1, np.int32), np.full(n, -1, np.int32))
    result = bench_book(str(path), baseline_messages=400, repeat=1)
    assert result["book_messages"] == len(messages) and result["baseline_messages"] == 400
    # small reader chunks: many batches, same messages and rows
    chunked = bench_book(str(path), baseline_messages=400, repeat=1, chunk_bytes=4096)
    assert chunked["book_messages"] == len(messages)
    assert chunked["book_updates"] == result["book_updates"] > 0
    for key in ("decode_msgs_per_s", "book_msgs_per_s", "fastbook_msgs_per_s",
                "python_baseline_msgs_per_s", "python_baseline_ratio"):
        assert result[key] > 0, key
    assert result["python_baseline_ratio"] == pytest.approx(
        result["book_msgs_per_s"] / result["python_baseline_msgs_per_s"])
    synthetic = bench_synthetic(messages=2_000, symbols=3, baseline_messages=300, repeat=1)
    assert synthetic["messages"] >= 2_000 and synthetic["book_msgs_per_s"] > 0

"""The golden feed sequencer: per-feed accounting and A/B arbitration."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.feed.sequencer import Sequencer, SeqIntervals
from host.protocols.moldudp64 import MoldPacket, encode_packet

S = "ZYNQMM0001"


def data(seq, n, session=S):
    return MoldPacket(session, seq, [b"m%d" % (seq + i) for i in range(n)])


def hb(seq, session=S):
    return MoldPacket.heartbeat(session, seq)


def eos(seq, session=S):
    return MoldPacket.end_of_session_packet(session, seq)


def run(events):
    """events: (feed, packet) pairs in arrival order -> (sequencer, passed seqs)."""
    sq = Sequencer()
    passed = []
    for feed, pkt in events:
        passed += [q for q, _, _ in sq.on_packet(feed, pkt)]
    return sq, passed


def clean_packets(n_packets, size=2, first=1):
    return [data(first + i * size, size) for i in range(n_packets)]


# -- one feed -----------------------------------------------------------------
def test_clean_feed():
    sq, passed = run([("A", p) for p in clean_packets(5)])
    f = sq.feed_stats("A")
    assert (f["packets"], f["messages"], f["gaps"], f["missing_messages"]) == (5, 10, 0, 0)
    assert (f["duplicate_packets"], f["out_of_order_packets"]) == (0, 0)
    assert (f["lowest_seq"], f["highest_seq"]) == (1, 10)
    assert passed == list(range(1, 11))
    s = sq.stream_stats(S)
    assert (s["passed"], s["duplicates"], s["late"], s["missing"], s["stale"]) == (10, 0, 0, 0, False)
    assert s["gap_events"] == []
    assert s["next_seq"] == 11


def test_returns_seq_index_and_bytes():
    sq = Sequencer()
    assert sq.on_packet("A", data(5, 3)) == [(5, 0, b"m5"), (6, 1, b"m6"), (7, 2, b"m7")]


def test_drop():
    pkts = clean_packets(6, size=3)
    del pkts[2]  # seqs 7..9
    sq, passed = run([("A", p) for p in pkts])
    f = sq.feed_stats("A")
    assert (f["gaps"], f["missing_messages"], f["gap_ranges"]) == (1, 3, [(7, 9)])
    assert f["out_of_order_packets"] == 0
    s = sq.stream_stats(S)
    assert s["gap_events"] == [(7, 10)]
    assert (s["missing"], s["stale"], s["passed"]) == (3, True, 15)
    assert 8 not in passed and passed == sorted(passed)


def test_duplicate_packet():
    pkts = clean_packets(4)
    sq, passed = run([("A", p) for p in pkts[:2] + [pkts[1]] + pkts[2:]])
    f = sq.feed_stats("A")
    assert (f["packets"], f["messages"], f["duplicate_packets"], f["out_of_order_packets"]) == (5, 10, 1, 0)
    assert f["gaps"] == 0
    s = sq.stream_stats(S)
    assert (s["passed"], s["duplicates"], s["late"], s["stale"]) == (8, 2, 0, False)
    assert passed == list(range(1, 9))


def test_reorder():
    pkts = clean_packets(5)
    pkts[1], pkts[2] = pkts[2], pkts[1]  # seqs 5-6 arrive before 3-4
    sq, passed = run([("A", p) for p in pkts])
    f = sq.feed_stats("A")
    assert (f["out_of_order_packets"], f["duplicate_packets"], f["gaps"]) == (1, 0, 0)
    s = sq.stream_stats(S)
    # Arbitration does not wait: 3-4 were skipped, and arrive late.
    assert s["gap_events"] == [(3, 5)]
    assert (s["late"], s["duplicates"], s["missing"], s["stale"]) == (2, 0, 2, True)
    assert passed == [1, 2, 5, 6, 7, 8, 9, 10]


def test_late_stays_late_and_repeats_of_passed_are_duplicates():
    sq, _ = run([("A", data(1, 2)), ("A", data(5, 2)), ("A", data(3, 2)),
                 ("A", data(3, 2)), ("A", data(5, 2))])
    s = sq.stream_stats(S)
    assert (s["late"], s["duplicates"]) == (4, 2)
    f = sq.feed_stats("A")
    assert (f["out_of_order_packets"], f["duplicate_packets"]) == (1, 2)


def test_partial_overlap_is_out_of_order_not_duplicate():
    sq, passed = run([("A", data(1, 4)), ("A", data(3, 4))])
    f = sq.feed_stats("A")
    assert (f["duplicate_packets"], f["out_of_order_packets"], f["gaps"]) == (0, 1, 0)
    s = sq.stream_stats(S)
    assert (s["passed"], s["duplicates"]) == (6, 2)
    assert passed == [1, 2, 3, 4, 5, 6]


def test_messages_before_the_first_one_seen_are_late():
    sq, passed = run([("A", data(10, 2)), ("A", data(8, 2))])
    assert passed == [10, 11]
    s = sq.stream_stats(S)
    assert (s["late"], s["duplicates"], s["gap_events"]) == (2, 0, [])
    assert sq.feed_stats("A")["out_of_order_packets"] == 1


def test_several_holes_are_reported_and_filled():
    pkts = clean_packets(10, size=1)
    arrived = [p for p in pkts if p.sequence_number not in (3, 4, 8)]
    sq, _ = run([("A", p) for p in arrived])
    f = sq.feed_stats("A")
    assert (f["gaps"], f["missing_messages"], f["gap_ranges"]) == (2, 3, [(3, 4), (8, 8)])
    sq.on_packet("A", pkts[3])  # seq 4 fills half of the first hole
    f = sq.feed_stats("A")
    assert (f["gaps"], f["missing_messages"], f["gap_ranges"]) == (2, 2, [(3, 3), (8, 8)])
    assert f["out_of_order_packets"] == 1


# -- heartbeats and end of session ---------------------------------------------------
def test_heartbeat_gap():
    sq, passed = run([("A", data(1, 3)), ("A", hb(4)), ("A", hb(6)), ("A", data(6, 2)),
                      ("A", data(4, 2))])
    f = sq.feed_stats("A")
    assert (f["packets"], f["heartbeats"], f["messages"]) == (5, 2, 7)
    # Heartbeats neither open nor fill holes; the late data fills 4-5.
    assert (f["gaps"], f["out_of_order_packets"]) == (0, 1)
    s = sq.stream_stats(S)
    assert s["gap_events"] == [(4, 6)]
    assert (s["missing"], s["stale"], s["late"]) == (2, True, 2)
    assert passed == [1, 2, 3, 6, 7]


def test_heartbeat_does_not_fill_a_hole_on_the_feed():
    sq, _ = run([("A", data(1, 2)), ("A", hb(5)), ("A", data(5, 1))])
    f = sq.feed_stats("A")
    assert (f["gaps"], f["gap_ranges"]) == (1, [(3, 4)])
    assert sq.stream_stats(S)["gap_events"] == [(3, 5)]  # opened by the heartbeat


def test_heartbeat_before_any_data_changes_nothing():
    sq, passed = run([("A", hb(1)), ("A", hb(50)), ("A", data(1, 2))])
    assert passed == [1, 2]
    s = sq.stream_stats(S)
    assert (s["gap_events"], s["stale"]) == ([], False)
    assert sq.feed_stats("A")["heartbeats"] == 2


def test_heartbeat_at_or_below_next_seq_is_quiet():
    sq, _ = run([("A", data(1, 3)), ("A", hb(4)), ("A", hb(2))])
    assert sq.stream_stats(S)["gap_events"] == []


def test_end_of_session_gap_and_flag():
    sq, _ = run([("A", data(1, 2)), ("A", eos(3))])
    s = sq.stream_stats(S)
    assert (s["end_of_session"], s["gap_events"], s["stale"]) == (True, [], False)
    assert sq.feed_stats("A")["end_of_session"] == 1

    sq, _ = run([("A", data(1, 2)), ("B", eos(7))])
    s = sq.stream_stats(S)
    assert (s["gap_events"], s["missing"], s["stale"], s["next_seq"]) == ([(3, 7)], 4, True, 7)
    assert sq.feed_stats("B")["end_of_session"] == 1
    assert sq.feed_stats("B")["gaps"] == 0


# -- A/B arbitration ---------------------------------------------------------------------
def test_ab_one_feed_misses_a_packet_the_other_has():
    pkts = clean_packets(6)
    events = []
    for i, p in enumerate(pkts):
        if i != 3:
            events.append(("A", p))
        events.append(("B", p))
    sq, passed = run(events)
    assert passed == list(range(1, 13))
    a, b = sq.feed_stats("A"), sq.feed_stats("B")
    assert (a["gaps"], a["missing_messages"], a["gap_ranges"]) == (1, 2, [(7, 8)])
    assert (b["gaps"], b["missing_messages"]) == (0, 0)
    s = sq.stream_stats(S)
    assert (s["passed"], s["duplicates"], s["late"], s["gap_events"], s["stale"]) == (12, 10, 0, [], False)
    assert s["passed_by_feed"] == {"A": 10, "B": 2}


def test_ab_backup_copy_arriving_after_the_jump_is_late():
    pkts = clean_packets(4)
    # A loses packet 2 (seqs 3-4) and its packet 3 arrives before B's packet 2.
    events = [("A", pkts[0]), ("B", pkts[0]), ("A", pkts[2]), ("B", pkts[1]),
              ("B", pkts[2]), ("A", pkts[3]), ("B", pkts[3])]
    sq, passed = run(events)
    assert passed == [1, 2, 5, 6, 7, 8]
    s = sq.stream_stats(S)
    assert (s["gap_events"], s["late"], s["duplicates"], s["missing"]) == ([(3, 5)], 2, 6, 2)
    assert sq.feed_stats("B")["gaps"] == 0
    assert sq.feed_stats("A")["gaps"] == 1


def test_sessions_are_arbitrated_separately():
    sq, _ = run([("A", data(1, 2, "SESSIONONE")), ("C", data(100, 2, "SESSIONTWO")),
                 ("A", data(3, 2, "SESSIONONE")), ("C", data(102, 1, "SESSIONTWO"))])
    assert sq.stream_stats("SESSIONONE")["passed"] == 4
    two = sq.stream_stats("SESSIONTWO")
    assert (two["passed"], two["gap_events"], two["next_seq"]) == (3, [], 103)
    assert sq.feed_stats("C")["session"] == "SESSIONTWO"


def test_on_datagram_counts_malformed_per_feed():
    sq = Sequencer()
    good = encode_packet(S, 1, [b"a"])
    assert sq.on_datagram("A", good, ts_ns=5) == [(1, 0, b"a")]
    assert sq.on_datagram("A", good[:7], ts_ns=6) == []
    assert sq.on_datagram("A", good + b"\x01", ts_ns=7) == []
    f = sq.feed_stats("A")
    assert f["malformed"] == {"truncated": 1, "trailing_bytes": 1}
    assert f["packets"] == 1
    assert (f["first_ts_ns"], f["last_ts_ns"]) == (5, 5)
    assert set(sq.report()["feeds"]) == {"A"}
    assert sq.feed_names() == ["A"] and sq.sessions() == [S]


def test_silent_feed_and_unknown_session_report_zeros():
    sq = Sequencer()
    sq.on_packet("A", data(1, 1))
    silent = sq.feed_stats("B")
    assert (silent["packets"], silent["gaps"], silent["gap_ranges"]) == (0, 0, [])
    assert sq.stream_stats("NOSUCH")["passed"] == 0
    assert sq.feed_names() == ["A"]


# -- the interval set ---------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=40))
def test_seq_intervals_match_a_plain_set(ranges):
    iv, model = SeqIntervals(), set()
    for lo, n in ranges:
        new = set(range(lo, lo + n)) - model
        assert iv.add(lo, lo + n) == len(new)
        model |= new
        # runs are sorted, disjoint and not touching
        for k in range(len(iv) - 1):
            assert iv.ends[k] < iv.starts[k + 1]
    assert all(iv.contains(x) == (x in model) for x in range(-1, 75))
    if model:
        holes = {x for x in range(min(model), max(model)) if x not in model}
        assert {x for a, b in iv.holes() for x in range(a, b + 1)} == holes


# -- the generator's fault-injection contract -----------------------------------------------
@st.composite
def faulted_feed(draw):
    """Packets of one feed with drops, duplicates and reorders placed as the
    generator promises: none in the first or last 3 packets, none within 3
    packets of each other."""
    sizes = draw(st.lists(st.integers(1, 4), min_size=8, max_size=40))
    n = len(sizes)
    faults: dict[int, str] = {}
    candidates = draw(st.lists(st.integers(3, n - 4), max_size=6))
    for i in candidates:
        if all(abs(i - j) > 3 for j in faults):
            faults[i] = draw(st.sampled_from(["drop", "duplicate", "reorder"]))
    return sizes, faults


def send_order(packets, faults):
    out, i = [], 0
    while i < len(packets):
        kind = faults.get(i)
        if kind == "drop":
            i += 1
        elif kind == "duplicate":
            out += [packets[i], packets[i]]
            i += 1
        elif kind == "reorder":
            out += [packets[i + 1], packets[i]]
            i += 2
        else:
            out.append(packets[i])
            i += 1
    return out


@settings(max_examples=150, deadline=None)
@given(faulted_feed(), faulted_feed())
def test_fault_contract_counts_are_exact(feed_a, feed_b):
    sizes_a, faults_a = feed_a
    sizes_b, faults_b = feed_b
    # Both feeds carry the same stream; take the shorter packet list for both.
    sizes = sizes_a if len(sizes_a) <= len(sizes_b) else sizes_b
    faults_b = {i: k for i, k in faults_b.items() if 3 <= i <= len(sizes) - 4}
    faults_a = {i: k for i, k in faults_a.items() if 3 <= i <= len(sizes) - 4}
    packets, seq = [], 1
    for n in sizes:
        packets.append(data(seq, n))
        seq += n
    order_a = send_order(packets, faults_a) + [hb(seq)]
    order_b = send_order(packets, faults_b) + [hb(seq), eos(seq)]
    events = []
    for k in range(max(len(order_a), len(order_b))):
        if k < len(order_a):
            events.append(("A", order_a[k]))
        if k < len(order_b):
            events.append(("B", order_b[k]))
    sq, passed = run(events)

    for feed, faults in (("A", faults_a), ("B", faults_b)):
        f = sq.feed_stats(feed)
        kinds = list(faults.values())
        assert f["gaps"] == kinds.count("drop")
        assert f["missing_messages"] == sum(sizes[i] for i, k in faults.items() if k == "drop")
        assert f["duplicate_packets"] == kinds.count("duplicate")
        assert f["out_of_order_packets"] == kinds.count("reorder")

    s = sq.stream_stats(S)
    total_received = sum(len(p.messages) for _, p in events)
    assert passed == sorted(set(passed))
    assert s["passed"] + s["duplicates"] + s["late"] == total_received
    assert s["passed"] + s["missing"] == passed[-1] - passed[0] + 1
    assert s["end_of_session"] and s["next_seq"] == seq


@pytest.mark.parametrize("feeds", [("A",), ("A", "B")])
def test_clean_copies_pass_everything_once(feeds):
    pkts = clean_packets(20, size=3)
    sq, passed = run([(f, p) for p in pkts for f in feeds])
    assert passed == list(range(1, 61))
    assert sq.stream_stats(S)["duplicates"] == 60 * (len(feeds) - 1)

"""TCP stream reassembly."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.pcap.tcpflow import ACK, FIN, PSH, RST, SYN, Chunk, TcpReassembler, seq_diff
from host.protocols import ouch50 as ouch
from host.protocols import soupbintcp as soup

A = ("10.0.0.1", 40000, "10.0.0.2", 15000)   # client -> server
B = ("10.0.0.2", 15000, "10.0.0.1", 40000)   # server -> client


def add(r, ts, key, seq, flags, payload=b""):
    return r.add(ts, key[0], key[1], key[2], key[3], seq, flags, payload)


def stream_of(chunks, key=A):
    return b"".join(c[2] for c in chunks if c[0] == key)


def test_seq_diff_wraps():
    assert seq_diff(5, 2**32 - 5) == 10
    assert seq_diff(2**32 - 5, 5) == -10
    assert seq_diff(7, 7) == 0


def test_in_order_stream_after_syn():
    r = TcpReassembler()
    assert add(r, 1, A, 1000, SYN) == []
    out = add(r, 2, A, 1001, ACK | PSH, b"hello ")
    out += add(r, 3, A, 1007, ACK, b"world")
    assert out == [(A, 2, b"hello "), (A, 3, b"world")]
    assert all(isinstance(c, Chunk) and c.gap_before == 0 for c in out)
    assert out[1].flow == A and out[1].ts_ns == 3 and out[1].data == b"world"
    assert r.counters["delivered_bytes"] == 11
    assert r.counters["retransmits"] == r.counters["out_of_order"] == 0


def test_reordered_segments_are_held_then_released():
    r = TcpReassembler()
    add(r, 0, A, 99, SYN)
    assert add(r, 1, A, 106, ACK, b"CCC") == []
    assert add(r, 2, A, 103, ACK, b"BBB") == []
    assert r.pending_bytes(A) == 6
    out = add(r, 3, A, 100, ACK, b"AAA")
    assert out == [(A, 3, b"AAABBBCCC")]
    assert r.counters["out_of_order"] == 2
    assert r.pending_bytes() == 0


def test_duplicates_and_overlaps_are_trimmed():
    r = TcpReassembler()
    add(r, 0, A, 0, SYN)
    got = add(r, 1, A, 1, ACK, b"abcdef")
    got += add(r, 2, A, 1, ACK, b"abcdef")          # exact retransmission
    got += add(r, 3, A, 4, ACK, b"defghi")          # overlaps "def"
    got += add(r, 4, A, 2, ACK, b"bc")              # old data
    got += add(r, 5, A, 12, ACK, b"lm")             # ahead
    got += add(r, 6, A, 12, ACK, b"l")              # shorter duplicate of held data
    got += add(r, 7, A, 9, ACK, b"ijkl")            # fills the hole, overlaps both sides
    assert stream_of(got) == b"abcdefghijklm"
    c = r.counters
    assert c["retransmits"] == 3
    assert c["overlaps"] == 3          # "defghi", "ijkl" and the held "lm"
    assert c["retransmitted_bytes"] == 6 + 3 + 2 + 1 + 1 + 1


def test_sequence_wraparound():
    r = TcpReassembler()
    isn = 2**32 - 4
    add(r, 0, A, isn, SYN)
    got = add(r, 1, A, 2**32 - 3, ACK, b"0123")       # crosses 2**32
    got += add(r, 2, A, 5, ACK, b"89")               # after the wrap, out of order
    got += add(r, 3, A, 1, ACK, b"4567")
    got += add(r, 4, A, 2**32 - 1, ACK, b"234")      # retransmission across the wrap
    assert stream_of(got) == b"0123456789"
    assert r.counters["retransmits"] == 1


def test_midstream_start_without_syn():
    r = TcpReassembler()
    assert add(r, 1, A, 5000, ACK) == []             # bare ACK: nothing to anchor on
    got = add(r, 2, A, 5000, ACK, b"xy") + add(r, 3, A, 5002, ACK, b"z")
    assert stream_of(got) == b"xyz"
    assert r.counters["midstream_starts"] == 1


def test_flows_are_independent_and_directional():
    r = TcpReassembler()
    add(r, 0, A, 10, SYN)
    add(r, 0, B, 900, SYN | ACK)
    got = add(r, 1, A, 11, ACK, b"login")
    got += add(r, 2, B, 901, ACK, b"accepted")
    got += add(r, 3, A, 16, ACK, b"order")
    assert stream_of(got, A) == b"loginorder"
    assert stream_of(got, B) == b"accepted"
    assert r.counters["flows"] == 2


def test_fin_closes_after_all_data_even_out_of_order():
    r = TcpReassembler()
    add(r, 0, A, 0, SYN)
    assert add(r, 1, A, 4, FIN | ACK, b"end") == []     # FIN arrives before the middle
    assert not r.is_closed(A)
    got = add(r, 2, A, 1, ACK, b"mid")
    assert stream_of(got) == b"midend"
    assert r.is_closed(A) and r.counters["fins"] == 1
    assert add(r, 3, A, 4, FIN | ACK, b"end") == []     # retransmitted FIN
    assert add(r, 4, A, 8, ACK, b"late") == []
    assert r.counters["data_after_fin"] == 1
    assert r.counters["fins"] == 1


def test_bare_fin_at_the_delivered_point():
    r = TcpReassembler()
    add(r, 0, A, 0, SYN)
    add(r, 1, A, 1, ACK, b"ab")
    assert add(r, 2, A, 3, FIN | ACK) == []
    assert r.is_closed(A)


def test_rst_discards_both_directions():
    r = TcpReassembler()
    add(r, 0, A, 0, SYN)
    add(r, 0, B, 50, SYN | ACK)
    add(r, 1, A, 10, ACK, b"held")                   # out of order, never delivered
    assert r.pending_bytes(A) == 4
    assert add(r, 2, B, 51, RST) == []
    assert r.flows == {}
    assert r.counters["resets"] == 1
    assert r.counters["discarded_held_bytes"] == 4


def test_new_syn_restarts_and_repeated_syn_does_not():
    r = TcpReassembler()
    add(r, 0, A, 100, SYN)
    got = add(r, 1, A, 101, ACK, b"one")
    add(r, 2, A, 100, SYN)                           # retransmitted SYN: same ISN
    got += add(r, 3, A, 104, ACK, b"two")
    add(r, 4, A, 7000, SYN)                          # new connection, same ports
    got += add(r, 5, A, 7001, ACK, b"three")
    assert stream_of(got) == b"onetwothree"
    assert r.counters["restarts"] == 1
    assert r.counters["flows"] == 1


def test_syn_with_payload():
    r = TcpReassembler()
    out = add(r, 0, A, 41, SYN, b"fast")
    assert out == [(A, 0, b"fast")]


def test_buffer_bound_declares_a_gap_and_resynchronises():
    r = TcpReassembler(max_buffered_bytes=8)
    add(r, 0, A, 0, SYN)
    got = add(r, 1, A, 1, ACK, b"aa")
    # bytes 3..4 are lost for good
    got += add(r, 2, A, 5, ACK, b"cccc")
    got += add(r, 3, A, 9, ACK, b"dddd")
    assert r.counters["gaps"] == 0
    got += add(r, 4, A, 13, ACK, b"eeee")            # 12 bytes held > 8
    assert r.counters["gaps"] == 1 and r.counters["gap_bytes"] == 2
    ev = r.gap_events[0]
    assert (ev.flow, ev.expected_seq, ev.resumed_seq, ev.missing_bytes) == (A, 3, 5, 2)
    assert got[0] == (A, 1, b"aa") and got[0].gap_before == 0
    assert got[1] == (A, 4, b"ccccddddeeee")
    assert got[1].gap_before == 2
    got += add(r, 5, A, 17, ACK, b"ff")
    assert stream_of(got) == b"aaccccddddeeeeff"
    assert r.pending_bytes() == 0


def test_segment_bound_and_flush():
    r = TcpReassembler(max_buffered_segments=2)
    add(r, 0, A, 0, SYN)
    add(r, 1, A, 3, ACK, b"x")
    add(r, 2, A, 6, ACK, b"y")
    assert r.counters["gaps"] == 0
    out = add(r, 3, A, 9, ACK, b"z")                 # third held segment
    assert out == [(A, 3, b"x")] and out[0].gap_before == 2
    out = r.flush()
    assert [(c.data, c.gap_before, c.ts_ns) for c in out] == [(b"y", 2, 2), (b"z", 2, 3)]
    assert r.counters["gaps"] == 3 and r.counters["gap_bytes"] == 6
    assert r.flush() == []


def test_bounds_are_validated():
    with pytest.raises(ValueError):
        TcpReassembler(max_buffered_bytes=-1)


# -- property: any reordering/duplication within the bound reassembles exactly ----

@st.composite
def shuffled_segments(draw):
    data = draw(st.binary(min_size=1, max_size=400))
    isn = draw(st.integers(0, 2**32 - 1))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(data) - 1), max_size=20))
                      if len(data) > 1 else []))
    bounds = list(zip([0] + cuts, cuts + [len(data)]))
    segments = [(lo, data[lo:hi]) for lo, hi in bounds]
    # Retransmissions, possibly re-cut so they overlap the originals.
    for _ in range(draw(st.integers(0, 6))):
        lo = draw(st.integers(0, len(data) - 1))
        hi = draw(st.integers(lo + 1, len(data)))
        segments.append((lo, data[lo:hi]))
    seed = draw(st.integers(0, 2**32 - 1))
    random.Random(seed).shuffle(segments)
    with_fin = draw(st.booleans())
    return data, isn, segments, with_fin


@settings(max_examples=300, deadline=None)
@given(shuffled_segments())
def test_reassembly_restores_the_stream(case):
    data, isn, segments, with_fin = case
    r = TcpReassembler()
    got = add(r, 0, A, isn, SYN)
    for ts, (off, payload) in enumerate(segments, start=1):
        got += add(r, ts, A, (isn + 1 + off) % 2**32, ACK, payload)
    if with_fin:
        got += add(r, 10_000, A, (isn + 1 + len(data)) % 2**32, FIN | ACK)
    assert stream_of(got) == data
    assert all(c.gap_before == 0 for c in got)
    assert r.counters["gaps"] == 0
    assert r.counters["delivered_bytes"] == len(data)
    assert r.pending_bytes() == 0
    assert r.is_closed(A) == with_fin
    # Every byte received beyond the stream itself was counted as retransmitted.
    received = sum(len(p) for _, p in segments)
    assert received - len(data) == r.counters["retransmitted_bytes"]


@settings(max_examples=150, deadline=None)
@given(shuffled_segments(), st.integers(0, 3))
def test_small_bound_never_duplicates_or_reorders_bytes(case, max_segments):
    data, isn, segments, _ = case
    r = TcpReassembler(max_buffered_segments=max_segments)
    got = add(r, 0, A, isn, SYN)
    for ts, (off, payload) in enumerate(segments, start=1):
        got += add(r, ts, A, (isn + 1 + off) % 2**32, ACK, payload)
    got += r.flush()
    # Delivered pieces, with the gaps put back, are a prefix-ordered cover of
    # the stream: each byte at most once, in order.
    pos = 0
    for chunk in got:
        pos += chunk.gap_before
        assert data[pos:pos + len(chunk.data)] == chunk.data
        pos += len(chunk.data)
    assert pos <= len(data)
    assert r.counters["delivered_bytes"] + r.counters["gap_bytes"] == pos


# -- end to end: TCP segments -> SoupBinTCP -> OUCH --------------------------------

def test_ouch_session_from_shuffled_segments():
    orders = [ouch.EnterOrder(
        user_ref_num=i, side="B", quantity=100 + i, symbol="SPY", price=4_500_000 + i,
        time_in_force="0", display="Y", capacity="P", intermarket_sweep_eligibility="N",
        cross_type="N", cl_ord_id=f"C{i}", appendage={"user_ref_idx": 1})
        for i in range(1, 21)]
    stream = soup.LoginRequest(username="ZQ", password="pw", requested_session="",
                               requested_sequence_number=0).packet()
    stream += b"".join(soup.UnsequencedData(message=o.encode()).packet() for o in orders)
    rng = random.Random(7)
    offsets = sorted(rng.sample(range(1, len(stream)), 60))
    pieces = list(zip([0] + offsets, offsets + [len(stream)]))
    # Local reordering (swap neighbours) plus a few retransmissions.
    for i in range(0, len(pieces) - 1, 3):
        pieces[i], pieces[i + 1] = pieces[i + 1], pieces[i]
    pieces += [pieces[5], pieces[17], pieces[40]]
    r = TcpReassembler()
    framer = soup.SoupFramer(soup.CLIENT)
    packets = []
    add(r, 0, A, 2**32 - 100, SYN)   # the stream wraps the sequence space
    for ts, (lo, hi) in enumerate(pieces, start=1):
        for chunk in add(r, ts, A, (2**32 - 99 + lo) % 2**32, ACK, stream[lo:hi]):
            packets += framer.feed(chunk.data)
    assert isinstance(packets[0], soup.LoginRequest)
    assert [ouch.decode_from_soup(p) for p in packets[1:]] == orders
    assert framer.pending == 0 and framer.counts == {}
    assert r.counters["out_of_order"] > 0 and r.counters["retransmits"] == 3


def test_flush_keeps_each_flows_gaps_apart():
    r = TcpReassembler()
    add(r, 0, A, 0, SYN)
    add(r, 0, B, 0, SYN)
    add(r, 1, A, 5, FIN | ACK)                       # hole, then only a FIN
    add(r, 2, B, 3, ACK, b"bb")                      # hole, then data
    out = r.flush()
    assert out == [(B, 2, b"bb")] and out[0].gap_before == 2
    assert r.is_closed(A)
    assert [(e.flow, e.missing_bytes) for e in r.gap_events] == [(A, 4), (B, 2)]

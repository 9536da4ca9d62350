"""Selecting what is replayed: feeds, time windows and the symbol filter
with MoldUDP64 renumbering, on the shipped captures."""
import pytest

from host.pcap.frames import parse_frame
from host.protocols import moldudp64
from host.replay.source import (ReplaySource, Selection, SourceError, first_timestamp,
                                parse_time, write_pcap)
from host.runtime.directory import stock_locates
from host.pcap.reader import iter_packets

CLEAN = "captures/day-clean.pcap"
FAULTS = "captures/day-faults-vlan.pcap"


def _stream(packets, feed):
    """(first seq, messages) of one feed's data packets, in send order."""
    out = []
    for p in packets:
        if p.feed != feed:
            continue
        mold = moldudp64.decode_packet(p.payload)
        out.append((mold.sequence_number, mold.messages))
    return out


def _contiguous(stream) -> int:
    expect = 1
    for seq, messages in stream:
        if messages:
            assert seq == expect, f"packet starts at {seq}, expected {expect}"
            expect += len(messages)
        else:
            assert seq == expect
    return expect - 1


def test_default_selection_replays_every_feed_frame_unchanged():
    source = ReplaySource(CLEAN)
    sent = list(source)
    original = [bytes(p.data) for p in iter_packets(CLEAN)]
    assert [p.frame for p in sent] == original
    assert source.counts["packets_out"] == len(original)


def test_feed_selection():
    source = ReplaySource(CLEAN, Selection(feeds=("B",)))
    sent = list(source)
    assert sent and {p.feed for p in sent} == {"B"}
    assert source.counts["feed_A_not_selected"] == len(sent)


def test_symbol_filter_keeps_only_that_stock_and_renumbers_gap_free():
    locates = stock_locates(CLEAN)
    source = ReplaySource(CLEAN, Selection(symbols=frozenset({"AAPL"})))
    sent = list(source)
    a, b = _stream(sent, "A"), _stream(sent, "B")
    # both feeds carry the same renumbered day (heartbeats are each feed's own)
    assert [x for x in a if x[1]] == [x for x in b if x[1]]
    last = _contiguous(a)
    kept = [m for _, msgs in a for m in msgs]
    assert len(kept) == last
    assert {int.from_bytes(m[1:3], "big") for m in kept} <= {0, locates["AAPL"]}
    assert any(int.from_bytes(m[1:3], "big") == locates["AAPL"] for m in kept)
    # rebuilt frames are valid UDP (checksums verified) with the original addresses
    frame = parse_frame(sent[5].frame)
    assert not isinstance(frame, str) and frame.payload == sent[5].payload


def test_symbol_filter_on_a_faulty_day_still_agrees_between_feeds():
    # Drops, duplicates and reordering per feed: the renumbering is by the
    # original sequence number, so each message gets the same new number on
    # both feeds wherever it arrives.
    source = ReplaySource(FAULTS, Selection(symbols=frozenset({stock_locates(FAULTS).popitem()[0]})))
    numbers = {}
    for p in source:
        mold = moldudp64.decode_packet(p.payload)
        for seq, _, msg in mold.iter_messages():
            assert numbers.setdefault(seq, msg) == msg


def test_window_skip_renumbers_from_one_and_send_keeps_the_warmup():
    first = first_timestamp(CLEAN)
    start, end = parse_time("09:30", first), parse_time("10:00", first)
    skipped = ReplaySource(CLEAN, Selection(start_ns=start, end_ns=end))
    sent = list(skipped)
    assert all(start <= p.ts_ns < end for p in sent)
    assert _contiguous(_stream(sent, "A")) > 0
    warm = list(ReplaySource(CLEAN, Selection(start_ns=start, end_ns=end, warmup="send")))
    before = [p for p in warm if p.warmup]
    assert before and all(p.ts_ns < start for p in before)
    assert moldudp64.decode_packet(warm[0].payload).sequence_number == 1
    assert all(not p.warmup for p in warm if p.ts_ns >= start)


def test_bad_selections_are_specific_errors(tmp_path):
    first = first_timestamp(CLEAN)
    with pytest.raises(SourceError, match="ZZZZ"):
        list(ReplaySource(CLEAN, Selection(symbols=frozenset({"ZZZZ"}))))
    with pytest.raises(SourceError, match="no data packet"):
        list(ReplaySource(CLEAN, Selection(start_ns=parse_time("02:00", first),
                                           end_ns=parse_time("03:00", first))))
    for text in ("25:00", "9h30", "+x", "+-3"):
        with pytest.raises(SourceError):
            parse_time(text, first)
    with pytest.raises(SourceError):
        Selection(feeds=("C",))
    with pytest.raises(SourceError):
        ReplaySource(tmp_path / "missing.pcap")


def test_undecodable_feed_frames_are_counted_when_renumbering(tmp_path):
    from host.pcap.frames import build_udp_frame
    from host.pcap.writer import PcapWriter

    path = tmp_path / "junk.pcap"
    packets = list(iter_packets(CLEAN))
    with PcapWriter(path) as writer:
        for i, p in enumerate(packets):
            writer.write(p.ts_ns, bytes(p.data))
            if i == 100:
                writer.write(p.ts_ns, build_udp_frame(b"\x00" * 7, "10.0.0.1", "233.54.12.1",
                                                      1, 26400))
    source = ReplaySource(path, Selection(symbols=frozenset({"AAPL"})))
    sent = list(source)
    assert source.counts["undecodable"] == 1
    assert _contiguous(_stream(sent, "A")) > 0
    # without renumbering the junk goes out untouched: bad input is the receiver's to count
    assert sum(1 for p in ReplaySource(path) if len(p.payload) == 7) == 1


def test_write_pcap_roundtrip(tmp_path):
    out = tmp_path / "sel.pcap"
    info = write_pcap(ReplaySource(CLEAN, Selection(feeds=("A",))), out)
    assert info["packets"] == sum(1 for _ in iter_packets(out))

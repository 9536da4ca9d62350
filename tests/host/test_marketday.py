"""The market-day generator: determinism, valid ITCH, realistic shape, feed
faults that the sequencer counts exactly, and the output formats."""
from __future__ import annotations

import collections
import json
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from host.book.records import FLAG_CROSSED
from host.book.reference import ReferenceBook
from host.cli import main as cli_main
from host.feed.sequencer import Sequencer
from host.marketday.generator import (
    FeedSpec, GenerateError, bench_generate, format_for, generate_day, midnight_epoch_ns,
)
from host.marketday.schedule import MARKET_CLOSE, MARKET_OPEN
from host.pcap.fast import iter_udp_batches
from host.pcap.frames import ip_to_str
from host.pcap.itchfile import iter_itch_batches
from host.protocols.itch50 import MESSAGE_SIZES, decode_message
from host.protocols.moldudp64 import decode_packet

# A shortened day (system hours 09:00-16:30) keeps the packets dense, so
# faults find room and heartbeats do not dominate the files.
SHORT_DAY = dict(start="09:00", end="16:30")
BOOK_ANOMALIES = ("unknown_order_reference", "duplicate_order_reference", "over_execution",
                  "over_cancel", "bad_side", "zero_shares", "unknown_locate", "locate_mismatch")


def read_itch(path) -> list[bytes]:
    out = []
    for batch in iter_itch_batches(path):
        buf = batch.buf
        for off, length in zip(batch.msg_off.tolist(), batch.msg_len.tolist()):
            out.append(buf[off:off + length].tobytes())
    return out


def read_capture(path, summary):
    """[(ts_ns, feed name, payload, vlan0, vlan1)] in capture order."""
    feed_of = {v["dst"].split(":")[0]: k for k, v in summary["feeds"].items()}
    packets = []
    for batch in iter_udp_batches(path):
        for i in range(len(batch)):
            packets.append((int(batch.ts_ns[i]), feed_of[ip_to_str(int(batch.dst_ip[i]))],
                            batch.payload(i), int(batch.vlan0[i]), int(batch.vlan1[i])))
    return packets


def arbitrate(packets):
    seq = Sequencer()
    passed = []
    for ts, feed, payload, _, _ in packets:
        passed.extend(m for _, _, m in seq.on_datagram(feed, payload, ts))
    return seq, passed


@pytest.fixture(scope="module")
def itch_day(tmp_path_factory):
    path = tmp_path_factory.mktemp("day") / "day.itch"
    summary = generate_day(path, symbols=80, messages=100_000, seed=11)
    return path, summary, read_itch(path)


@pytest.fixture(scope="module")
def faulty_capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("cap") / "faulty.pcap"
    summary = generate_day(path, symbols=40, messages=60_000, seed=7, gap_rate=0.01,
                           dup_rate=0.01, reorder_rate=0.01, vlan="100,200", **SHORT_DAY)
    return path, summary, read_capture(path, summary)


# -- determinism -----------------------------------------------------------------
def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    kw = dict(symbols=25, messages=15_000, gap_rate=0.01, dup_rate=0.01, reorder_rate=0.01,
              vlan=7, **SHORT_DAY)
    a = generate_day(tmp_path / "a.pcap", seed=3, **kw)
    b = generate_day(tmp_path / "b.pcap", seed=3, **kw)
    c = generate_day(tmp_path / "c.pcap", seed=4, **kw)
    assert (tmp_path / "a.pcap").read_bytes() == (tmp_path / "b.pcap").read_bytes()
    assert (tmp_path / "a.pcap").read_bytes() != (tmp_path / "c.pcap").read_bytes()
    for key in ("messages_by_type", "faults", "packets_per_feed", "expected_feed_counts"):
        assert a[key] == b[key]


def test_chunking_does_not_change_the_bytes(tmp_path):
    kw = dict(symbols=30, messages=40_000, seed=5, gap_rate=0.02, dup_rate=0.02,
              reorder_rate=0.02, **SHORT_DAY)
    whole = generate_day(tmp_path / "whole.pcap", **kw)
    chunked = generate_day(tmp_path / "chunked.pcap", chunk_messages=1_500, **kw)
    assert (tmp_path / "whole.pcap").read_bytes() == (tmp_path / "chunked.pcap").read_bytes()
    assert whole["faults"] == chunked["faults"]
    assert sum(f["reorders"] for f in whole["faults"].values()) > 0


def test_memory_does_not_grow_with_the_message_count(tmp_path):
    def peak(messages: int) -> int:
        tracemalloc.start()
        try:
            generate_day(tmp_path / f"m{messages}.pcap", symbols=30, messages=messages, seed=2,
                         chunk_messages=10_000, write_summary=False, **SHORT_DAY)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(5_000)  # loads the compiled kernels, which allocate once
    small, large = peak(40_000), peak(200_000)
    # Five times the messages: the working set is the chunk, not the day.
    assert large < 1.3 * small, (small, large)


# -- the ITCH content ---------------------------------------------------------------
def test_every_message_decodes_and_counts_match(itch_day):
    path, summary, messages = itch_day
    assert len(messages) == summary["messages"] == 100_000
    counts = collections.Counter()
    for raw in messages:
        msg = decode_message(raw)
        assert len(raw) == MESSAGE_SIZES[msg.TYPE]
        counts[msg.TYPE] += 1
    assert dict(counts) == summary["messages_by_type"]
    assert json.loads((path.parent / (path.name + ".summary.json")).read_text())["messages"] == 100_000


def test_message_mix_is_realistic(itch_day):
    _, summary, _ = itch_day
    counts = summary["messages_by_type"]
    total = summary["messages"]

    def share(types):
        return sum(counts.get(t, 0) for t in types) / total

    assert 0.36 <= share("AF") <= 0.48
    assert 0.30 <= share("DX") <= 0.46
    assert 0.02 <= share("X") <= 0.06
    assert 0.08 <= share("EC") <= 0.16
    assert 0.025 <= share("U") <= 0.06
    assert 0.005 <= share("P") <= 0.03
    assert 0.03 <= counts["F"] / (counts["A"] + counts["F"]) <= 0.15
    assert counts["S"] == 6 and counts["R"] == 80


def test_itch_fields_are_consistent(itch_day):
    _, summary, messages = itch_day
    decoded = [decode_message(raw) for raw in messages]
    directory = {m.stock_locate: m.stock for m in decoded if m.TYPE == "R"}
    assert sorted(directory) == list(range(1, 81))
    assert len(set(directory.values())) == 80

    events = [m.event_code for m in decoded if m.TYPE == "S"]
    assert events == list("OSQMEC")
    last_ts = 0
    last_ref = 0
    in_market = 0
    seen_directory = set()
    for m in decoded:
        assert m.timestamp >= last_ts
        last_ts = m.timestamp
        if m.TYPE == "R":
            seen_directory.add(m.stock_locate)
        elif m.TYPE not in "SVWB":
            assert m.stock_locate in seen_directory  # directory first
        if hasattr(m, "stock") and m.TYPE != "R":
            assert m.stock == directory[m.stock_locate]
        if m.TYPE in "AF":
            assert m.order_reference_number > last_ref
            last_ref = m.order_reference_number
            assert m.price % 100 == 0 and 100 <= m.price <= 700 * 10_000
            assert m.shares > 0
        elif m.TYPE == "U":
            assert m.new_order_reference_number > last_ref
            last_ref = m.new_order_reference_number
            assert m.price % 100 == 0 and m.shares > 0
        if m.TYPE in "AFDXECUP" and MARKET_OPEN <= m.timestamp < MARKET_CLOSE:
            in_market += 1
    flow = sum(summary["messages_by_type"].get(t, 0) for t in "AFDXECUP")
    assert in_market / flow > 0.85  # most of the flow in market hours


def test_a_book_built_on_the_day_has_no_anomalies(itch_day):
    _, _, messages = itch_day
    book = ReferenceBook()
    crossed = 0
    for raw in messages:
        row = book.apply(decode_message(raw))
        if row is not None and row[1] & FLAG_CROSSED:
            crossed += 1
    assert {k: book.counters[k] for k in BOOK_ANOMALIES} == dict.fromkeys(BOOK_ANOMALIES, 0)
    assert crossed == 0
    assert book.counters["executions"] > 0 and book.counters["replaces"] > 0


def test_intraday_intensity_is_u_shaped(itch_day):
    _, _, messages = itch_day
    ts = np.array([int.from_bytes(raw[5:11], "big") for raw in messages if raw[:1] in b"AFDXEUC"])
    half_hour = 30 * 60 * 10**9
    first = ((ts >= MARKET_OPEN) & (ts < MARKET_OPEN + half_hour)).sum()
    lunch = ((ts >= MARKET_OPEN + 6 * half_hour) & (ts < MARKET_OPEN + 7 * half_hour)).sum()
    last = ((ts >= MARKET_CLOSE - half_hour) & (ts < MARKET_CLOSE)).sum()
    assert first > 1.5 * lunch and last > 1.5 * lunch


def test_all_types_appear_when_asked(tmp_path):
    summary = generate_day(tmp_path / "all.itch", symbols=12, messages=20_000, seed=9,
                           all_types=True)
    assert set(summary["messages_by_type"]) == set(MESSAGE_SIZES)
    decoded = [decode_message(raw) for raw in read_itch(tmp_path / "all.itch")]
    halted = summary["roles"]["luld_pause"][0]
    locate = next(m.stock_locate for m in decoded if m.TYPE == "R" and m.stock == halted)
    states = [m.trading_state for m in decoded if m.TYPE == "H" and m.stock_locate == locate]
    assert states == ["T", "P", "T"]
    # No execution while the symbol is paused.
    pause = [m.timestamp for m in decoded if m.TYPE == "H" and m.stock_locate == locate][1:]
    assert not any(m.TYPE in "EP" and m.stock_locate == locate and pause[0] <= m.timestamp < pause[1]
                   for m in decoded)
    broken = next(m for m in decoded if m.TYPE == "B")
    executed = {m.match_number for m in decoded if m.TYPE in "ECP" and m.timestamp <= broken.timestamp}
    assert broken.match_number in executed


@settings(max_examples=4)
@given(seed=st.integers(0, 2**40), symbols=st.integers(1, 30))
def test_any_seed_gives_exactly_the_requested_valid_messages(tmp_path_factory, seed, symbols):
    path = tmp_path_factory.mktemp("prop") / "p.itch"
    summary = generate_day(path, symbols=symbols, messages=8_000, seed=seed, write_summary=False)
    messages = read_itch(path)
    assert len(messages) == summary["messages"] == 8_000
    book = ReferenceBook()
    for raw in messages:
        book.apply(decode_message(raw))
    assert all(book.counters[k] == 0 for k in BOOK_ANOMALIES)


# -- the feeds --------------------------------------------------------------------
def _stream_counts(seq: Sequencer, session: str) -> dict:
    stream = seq.stream_stats(session)
    return {"passed": stream["passed"], "duplicates": stream["duplicates"], "late": stream["late"],
            "gap_events": len(stream["gap_events"]), "missing": stream["missing"],
            "stale": stream["stale"]}


def test_sequencer_counts_equal_the_injected_faults(faulty_capture):
    _, summary, packets = faulty_capture
    seq, _ = arbitrate(packets)
    for feed, expected in summary["expected_feed_counts"].items():
        stats = seq.feed_stats(feed)
        assert {k: stats[k] for k in expected} == expected
        faults = summary["faults"][feed]
        assert faults["drops"] > 0 and faults["duplicates"] > 0 and faults["reorders"] > 0
        assert stats["gaps"] == faults["drops"]
        assert stats["missing_messages"] == faults["missing_messages"]
    assert _stream_counts(seq, summary["mold"]["session"]) == summary["expected_arbitration"]


def test_single_feed_faults_show_in_arbitration(tmp_path):
    path = tmp_path / "single.pcap"
    summary = generate_day(path, symbols=20, messages=30_000, seed=8, feeds="A", gap_rate=0.02,
                           reorder_rate=0.02, **SHORT_DAY)
    seq, passed = arbitrate(read_capture(path, summary))
    expected = summary["expected_arbitration"]
    assert _stream_counts(seq, summary["mold"]["session"]) == expected
    faults = summary["faults"]["A"]
    # Alone, every drop is a gap and every reordered packet arrives late.
    assert expected["gap_events"] == faults["drops"] + faults["reorders"] > 0
    assert expected["late"] > 0 and len(passed) == expected["passed"]


def test_packets_follow_moldudp64_and_the_feed_rules(faulty_capture):
    _, summary, packets = faulty_capture
    midnight = midnight_epoch_ns("2024-03-15")
    session = summary["mold"]["session"]
    last_ts = {}
    kinds = collections.Counter()
    lowest, highest = None, 0
    for ts, feed, payload, _, _ in packets:
        assert len(payload) <= 1400
        pkt = decode_packet(payload)
        assert pkt.session == session
        kinds[feed, pkt.kind] += 1
        if feed in last_ts:
            assert ts >= last_ts[feed]
            # a heartbeat at least every second of silence
            assert ts - last_ts[feed] <= 1_000_000_000 + 10_000_000
        last_ts[feed] = ts
        if pkt.kind == "data":
            newest = max(int.from_bytes(m[5:11], "big") for m in pkt.messages)
            assert ts - midnight >= newest  # sent after its messages were made
            lowest = pkt.sequence_number if lowest is None else min(lowest, pkt.sequence_number)
            highest = max(highest, pkt.sequence_number + len(pkt.messages) - 1)
    assert (lowest, highest) == (summary["mold"]["first_seq"], summary["mold"]["last_seq"])
    assert highest == summary["messages"]
    for feed, counts in summary["packets_per_feed"].items():
        assert kinds[feed, "heartbeat"] == counts["heartbeats"] > 0
        assert kinds[feed, "end_of_session"] == 1
        assert kinds[feed, "data"] == counts["data"]
    # The capture ends with the end-of-session packets.
    assert {decode_packet(p[2]).kind for p in packets[-2:]} == {"end_of_session"}


def test_feed_b_trails_feed_a_by_microseconds(tmp_path):
    path = tmp_path / "ab.pcap"
    summary = generate_day(path, symbols=20, messages=20_000, seed=4, **SHORT_DAY)
    sent = collections.defaultdict(dict)
    for ts, feed, payload, _, _ in read_capture(path, summary):
        pkt = decode_packet(payload)
        if pkt.kind == "data":
            sent[feed][pkt.sequence_number] = ts
    lags = np.array([sent["B"][q] - sent["A"][q] for q in sent["A"]])
    assert len(sent["A"]) == len(sent["B"]) == summary["mold"]["data_packets"]
    assert (lags > 0).all() and np.median(lags) < 20_000 and lags.std() > 0


def test_vlan_tags(faulty_capture, tmp_path):
    _, summary, packets = faulty_capture
    assert {(v0, v1) for _, _, _, v0, v1 in packets} == {(100, 200)}
    assert summary["vlan"] == [100, 200]
    path = tmp_path / "one.pcapng"
    one = generate_day(path, symbols=5, messages=3_000, seed=1, vlan=42, feeds="A", **SHORT_DAY)
    assert {(v0, v1) for _, _, _, v0, v1 in read_capture(path, one)} == {(42, -1)}


def test_itch_file_equals_the_arbitrated_stream(tmp_path):
    # Duplicates never lose a message, so arbitration gives back the whole day.
    cap = tmp_path / "dups.pcap"
    summary = generate_day(cap, symbols=30, messages=40_000, seed=12, dup_rate=0.03, **SHORT_DAY)
    itch = tmp_path / "same.itch.gz"
    generate_day(itch, symbols=30, messages=40_000, seed=12, **SHORT_DAY)
    seq, passed = arbitrate(read_capture(cap, summary))
    assert summary["expected_arbitration"]["duplicates"] > 40_000
    assert passed == read_itch(itch)


def test_arbitrated_faulty_stream_is_the_day_minus_its_losses(tmp_path, faulty_capture):
    _, summary, packets = faulty_capture
    itch = tmp_path / "same.itch"
    generate_day(itch, symbols=40, messages=60_000, seed=7, **SHORT_DAY)
    _, passed = arbitrate(packets)
    day = read_itch(itch)
    assert len(passed) == summary["expected_arbitration"]["passed"]
    # What passes is the day in order, with only the lost messages left out.
    it = iter(day)
    assert all(any(m == d for d in it) for m in passed)


def test_bench_function_reports_a_rate():
    assert bench_generate(30_000, symbols=40, fmt="itch") > 0


def test_feed_addresses():
    a, b = FeedSpec.for_label("A", 0), FeedSpec.for_label("B", 1)
    assert a.describe() == {"src": "10.20.30.40:26400", "dst": "233.54.12.1:26400"}
    assert b.describe() == {"src": "10.20.30.41:26400", "dst": "233.54.12.2:26400"}


# -- parameters and the command line ------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    dict(messages=10),                      # fewer than the fixed events
    dict(gap_rate=0.5),
    dict(gap_rate=0.1, dup_rate=0.1, reorder_rate=0.1),
    dict(vlan="5000"),
    dict(vlan="1,2,3"),
    dict(session="WAY-TOO-LONG-NAME"),
    dict(start="10:00"),
    dict(end="15:00"),
    dict(start="9h"),
    dict(feeds="A,A"),
    dict(date="2024-13-01"),
    dict(symbols=0),
])
def test_bad_parameters_are_refused(tmp_path, kwargs):
    args = dict(symbols=10, messages=5_000, seed=1) | kwargs
    with pytest.raises(GenerateError):
        generate_day(tmp_path / "bad.pcap", **args)
    assert not (tmp_path / "bad.pcap").exists()


def test_itch_file_output_refuses_packet_options(tmp_path):
    for kwargs in (dict(gap_rate=0.01), dict(vlan=10)):
        with pytest.raises(GenerateError):
            generate_day(tmp_path / "day.itch", symbols=5, messages=3_000, **kwargs)


def test_format_from_name():
    assert format_for("x.pcap") == "pcap"
    assert format_for("x.pcapng") == "pcapng"
    assert format_for("x.itch.gz") == "itch"
    assert format_for("x.bin", "itch") == "itch"
    with pytest.raises(GenerateError):
        format_for("x.bin")


def test_cli_writes_output_and_summary(tmp_path, capsys):
    out = tmp_path / "cli.pcapng"
    rc = cli_main(["gen-day", "--symbols", "10", "--messages", "5k", "--seed", "3", "--out", str(out),
                   "--vlan", "12", "--gap-rate", "0.01", "--start", "09:00", "--end", "16:30",
                   "--quiet"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((tmp_path / "cli.pcapng.summary.json").read_text())
    assert printed == stored
    assert stored["messages"] == 5_000 and stored["format"] == "pcapng"
    assert stored["bytes_written"] == out.stat().st_size
    assert stored["parameters"]["vlan"] == [12]


def test_cli_reports_bad_input(tmp_path, capsys):
    assert cli_main(["gen-day", "--messages", "10", "--out", str(tmp_path / "x.pcap"), "--quiet"]) == 2
    assert "too few" in capsys.readouterr().err
    assert cli_main(["gen-day", "--out", str(tmp_path / "x.txt"), "--quiet"]) == 2
    with pytest.raises(SystemExit):
        cli_main(["gen-day", "--messages", "lots", "--out", str(tmp_path / "x.pcap")])

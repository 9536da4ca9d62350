"""The feed path's model against the golden host code (FeedArbiter, then
FastBook) on the shipped captures: identical records except flagged ones."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from host.feed.records import DEGRADE_REASONS, EVENT_BOOK_DEGRADED, EVENT_GAP
from host.feed.sequencer import Sequencer
from host.pcap.frames import parse_frame
from rtl.feed_path.equivalence import (FEED_NAMES, capture_frames, compare_capture,
                                       feed_addresses, model_config)
from rtl.feed_path.model import FEED_A, FEED_B, FeedPathModel, by_source
from rtl.mold_seq.model import Arrival
from rtl.order_book.model import FLAG_DEGRADED, split_outputs

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


def summary_of(name: str) -> dict:
    return json.loads((CAPTURES / f"{name}.summary.json").read_text())


@pytest.mark.parametrize("name", ["day-clean.pcap", "day-qinq.pcapng"])
def test_fault_free_captures_are_identical_to_golden(name):
    result = compare_capture(CAPTURES / name, summary_of(name))
    assert result.errors == []
    assert result.messages == result.golden_messages == summary_of(name)["messages"]
    assert result.records == result.identical_updates + result.identical_trades > 0
    assert result.degraded_updates == result.stale_records == 0
    assert all(not drops for drops in result.filter_drops.values())


def test_faulty_capture_differs_only_where_flagged():
    """Messages lost on both feeds leave orders the book never saw: their
    executions and deletes are unknown references, the locate is flagged
    degraded from then on; the gap also makes every later record stale, as
    the golden book's own stale flag does."""
    name = "day-faults-vlan.pcap"
    summary = summary_of(name)
    result = compare_capture(CAPTURES / name, summary)
    assert result.errors == []
    assert result.messages == result.golden_messages == summary["expected_arbitration"]["passed"]
    assert result.sequencer["gaps"] == summary["expected_arbitration"]["gap_events"] > 0
    assert set(result.degrade_reasons) == {"unknown_reference"}
    assert result.degraded_updates > 0 and result.stale_records > 0
    assert result.records == result.identical_updates + result.identical_trades + \
        result.degraded_updates + result.recovery_updates


def test_arrival_order_decides_between_feeds():
    """Fed as payload arrivals, the model takes whichever copy reached the
    sequencer first: with every B copy ahead, every message comes from B
    and every A copy is a duplicate."""
    name = "day-clean.pcap"
    addresses = feed_addresses(summary_of(name))
    frames = capture_frames(CAPTURES / name, addresses)
    model = FeedPathModel(model_config(addresses))
    arrivals = []
    for i, frame in enumerate(frames):
        payload = model.filter(frame)
        if payload is not None:
            arrivals.append(Arrival(frame.feed, i + (10_000 if frame.feed == FEED_A else 0),
                                    payload.data))
    model.run_arrivals(arrivals)
    counters = model.decoder.counters
    assert counters["feed_b"] == counters["messages"] == model.messages > 0
    assert model.sequencer.stream_counters["duplicates"] == model.messages
    assert model.filters[FEED_A].counters["passed"] == model.filters[FEED_B].counters["passed"]


def test_feed_events_report_the_captures_gaps_and_degraded_books():
    """On day-faults-vlan the event stream's gaps are the golden sequencer's
    gap events, and each book that goes degraded is reported once, at the
    message of its first FLAG_DEGRADED update, as an unknown reference."""
    name = "day-faults-vlan.pcap"
    summary = summary_of(name)
    addresses = feed_addresses(summary)
    frames = capture_frames(CAPTURES / name, addresses)
    model = FeedPathModel(model_config(addresses))
    updates, _ = split_outputs(model.run(frames))
    sequencer_events, book_events = by_source(model.feed_events)

    golden = Sequencer()
    for frame in frames:
        parsed = parse_frame(frame.data)
        if not isinstance(parsed, str) and (parsed.dst_ip, parsed.dst_port) in addresses:
            golden.on_datagram(FEED_NAMES[frame.feed], parsed.payload)
    (stream,) = golden.streams.values()
    gaps = [(int(r["expected"]), int(r["seq"])) for r in sequencer_events
            if r["kind"] == EVENT_GAP]
    assert gaps == stream.gap_events
    assert len(gaps) == summary["expected_arbitration"]["gap_events"]

    first_degraded = {}
    for row in updates[(updates["flags"] & FLAG_DEGRADED) != 0]:
        first_degraded.setdefault(int(row["stock_locate"]),
                                  (int(row["seq"]), int(row["msg_index"])))
    assert len(first_degraded) > 0
    assert {int(r["stock_locate"]): (int(r["seq"]), int(r["msg_index"]))
            for r in book_events} == first_degraded
    assert len(book_events) == len(first_degraded)
    assert {(int(r["kind"]), DEGRADE_REASONS[int(r["reason"]) - 1]) for r in book_events} == \
        {(EVENT_BOOK_DEGRADED, "unknown_reference")}

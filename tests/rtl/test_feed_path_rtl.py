"""The feed path's Verilog against its model, bit for bit, under cocotb: both
feeds of a shipped capture driven at once, with tvalid gaps and record
backpressure, the feed event stream (each source's records in the model's
order, losses flagged and counted), and the end-to-end latency, all on one
simulator build."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from host.feed.records import (EVENT_BOOK_DEGRADED, EVENT_BOOK_RESTORED, EVENT_END_OF_SESSION,
                               EVENT_FEED_RECOVERED, EVENT_FEED_STALE, EVENT_FLAG_LOST_BEFORE,
                               EVENT_GAP, FEED_EVENT_DTYPE)
from rtl.common.axil import RESP_OKAY, RESP_SLVERR
from rtl.feed_path.equivalence import capture_frames, feed_addresses, model_config
from rtl.feed_path.hdl import (BOOK_LATENCY, DECODER_LATENCY, DELETE_MESSAGE_BEATS,
                               FILTER_LATENCY, LATENCY_CYCLES, SEQUENCER_LATENCY)
from rtl.feed_path.model import FeedPathModel, Frame, by_source
from rtl.mold_seq.model import EV_GAP
from rtl.order_book.hdl import REPLACE_EXTRA_CYCLES, TRADE_BEATS
from rtl.order_book.model import FLAG_STALE, split_outputs
from rtl.regmap.map import MAP_VERSION
from tests.rtl import latency
from tests.rtl.conftest import TEST_BUILD_ID
from tests.rtl.feed_path_stimulus import (FILTER_WINDOWS, assert_same_records, feed_event_session,
                                          run_feed_path)

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


@pytest.fixture(scope="module")
def feed_path(built):
    return built("feed_path")


def capture(name: str, count: int, error_every: int = 0):
    summary = json.loads((CAPTURES / f"{name}.summary.json").read_text())
    addresses = feed_addresses(summary)
    frames = capture_frames(CAPTURES / name, addresses)[:count]
    if error_every:
        # A few frames with the frame-error flag: dropped and counted by the
        # filter, the other feed's copy fills in.
        frames = [Frame(f.feed, f.data, i % error_every == error_every - 1)
                  for i, f in enumerate(frames)]
    return model_config(addresses), frames


def observed_feed_events(observed: dict) -> list:
    return [np.frombuffer(bytes.fromhex(h), FEED_EVENT_DTYPE)[0] for h in observed["feed_events"]]


def assert_same_feed_events(observed: dict, model: FeedPathModel) -> None:
    """Each source's records in the model's order, nothing else, nothing lost."""
    got = by_source(observed_feed_events(observed))
    want = by_source(model.feed_events)
    for source, g, w in zip(("sequencer", "book"), got, want):
        assert [r.tobytes() for r in g] == [r.tobytes() for r in w], \
            f"{source}: {len(g)} feed events out, model says {len(w)}"
    regs = observed["registers"]
    assert regs["mold_seq.COUNT_EVENTS_LOST"][0] == 0
    assert regs["order_book.COUNT_FEED_EVENTS_LOST"][0] == 0


def test_both_feeds_with_faults_gaps_and_backpressure_match_model(feed_path):
    """day-faults-vlan (802.1Q, drops, duplicates, reordering on both feeds),
    frames released in capture (timestamp) order five cycles apart: shorter
    than a frame, so A and B frames are on their inputs at the same time."""
    config, frames = capture("day-faults-vlan.pcap", 2500, error_every=149)
    releases = [5 * i for i in range(len(frames))]
    observed, model, expected = run_feed_path(feed_path, "faults_backpressure", config, frames,
                                              releases, source_pause=0.2, sink_pause=0.3,
                                              event_pause=0.5)
    assert_same_records(observed, expected)
    assert_same_feed_events(observed, model)
    regs = {name: value for name, (value, resp) in observed["registers"].items()}
    assert all(resp == RESP_OKAY for name, (_, resp) in observed["registers"].items()
               if name != "unmapped")
    assert observed["registers"]["unmapped"] == [0, RESP_SLVERR]
    assert (regs["system.BUILD_ID"], regs["system.MAP_VERSION"]) == (TEST_BUILD_ID, MAP_VERSION)
    for window, flt in zip(FILTER_WINDOWS, model.filters):
        assert [regs[f"{window}.COUNT_{c.upper()}"] for c in ("frames", "passed", "frame_error")] \
            == [flt.counters[c] for c in ("frames", "passed", "frame_error")]
        assert flt.counters["frame_error"] > 0
    seq, dec, book = model.sequencer.stream_counters, model.decoder.counters, model.book.counters
    assert [regs["mold_seq.COUNT_PASSED"], regs["mold_seq.COUNT_DUPLICATES"],
            regs["mold_seq.COUNT_GAPS"]] == [seq["passed"], seq["duplicates"], seq["gaps"]]
    assert [regs["itch_decoder.COUNT_MESSAGES"], regs["itch_decoder.COUNT_EVENTS"],
            regs["itch_decoder.COUNT_FEED_B"]] == [dec["messages"], dec["events"], dec["feed_b"]]
    assert [regs["order_book.COUNT_BOOK_UPDATES"], regs["order_book.COUNT_TRADES"],
            regs["order_book.COUNT_DEGRADED_UNKNOWN_REFERENCE"]] == \
        [book["book_updates"], book["trades"], book["degraded_unknown_reference"]]
    # The run must have exercised what it claims: both feeds delivering,
    # copies completing close together, gaps and records of both kinds.
    assert 0 < dec["feed_b"] < dec["messages"]
    assert seq["gaps"] > 0 and book["trades"] > 0 and len(expected) > 500


# day-faults-vlan loses message 404 on both feeds: the host Sequencer
# (host.feed.sequencer) reports its first gap event, (expected 404, received
# 405), at frame 1330 of the capture.
GAP_FRAME, GAP_RECEIVED = 1330, 405


def test_stream_gap_marks_later_records_stale_as_model(feed_path):
    """Frames around the capture's first arbitration gap, both feeds at once:
    the records of the message that revealed the first gap and of every later
    one carry FLAG_STALE (the sequencer's stream-stale bit riding each message
    into the book), earlier ones do not, in the RTL exactly as in the model."""
    # From the start of the day: the book tracks locates from their directory
    # messages.
    config, frames = capture("day-faults-vlan.pcap", GAP_FRAME + 100)
    releases = [5 * i for i in range(len(frames))]
    observed, model, expected = run_feed_path(feed_path, "stream_gap", config, frames, releases,
                                              source_pause=0.1, sink_pause=0.2)
    assert_same_records(observed, expected)
    assert_same_feed_events(observed, model)
    gaps = [(e.a, e.b) for e in model.sequencer.events if e.kind == EV_GAP]
    # Copies of both feeds racing can open gaps earlier (the later copy fills
    # them in late); the capture's own loss is among them.
    assert (GAP_RECEIVED - 1, GAP_RECEIVED) in gaps and model.sequencer.stale
    assert observed["registers"]["mold_seq.COUNT_GAPS"][0] == len(gaps)
    updates, _ = split_outputs(expected)
    stale = (updates["flags"] & FLAG_STALE) != 0
    assert 0 < stale.sum() < len(updates)
    assert list(stale) == list(updates["seq"] >= gaps[0][1])


def test_latency_is_the_blocks_latencies_and_beats(feed_path):
    """One message per frame into an idle path (tests.rtl.latency): from the
    input beat holding the message's last byte to the first beat of its
    book update.  Inside the path every block shows its own documented
    latency, for every message, and the Delete's total is LATENCY_CYCLES."""
    samples = latency.feed_path_stages(feed_path)
    assert {s["type"] for s in samples} == set("AFECXUD")
    for sample in samples:
        # The filter cuts through: the payload starts out before the frame ends.
        assert sample["payload_first"] < sample["frame_last"], sample
        stage = {name: sample[end] - sample[start] for name, start, end in latency.BREAKDOWN}
        assert (stage["frame_filter"], stage["mold_seq"], stage["itch_decoder"]) == \
            (FILTER_LATENCY, SEQUENCER_LATENCY, DECODER_LATENCY), sample
        # An execution's update waits for its trade record's beats, a
        # replace books its new order too.
        extra = {"E": TRADE_BEATS, "C": TRADE_BEATS, "U": REPLACE_EXTRA_CYCLES}
        assert stage["order_book"] == BOOK_LATENCY + extra.get(sample["type"], 0), sample
    figures = latency.feed_path(feed_path)
    assert figures["feed_latency_cycles"] == LATENCY_CYCLES
    assert sum(figures["feed_breakdown_cycles"].values()) == LATENCY_CYCLES
    assert figures["feed_breakdown_cycles"]["message_beats"] == DELETE_MESSAGE_BEATS - 1
    assert min(figures["feed_latency_by_type_cycles"].values()) == LATENCY_CYCLES


# ---- the feed event stream on a crafted session ------------------------------------
def test_feed_events_of_both_sources_match_model_and_losses_are_flagged(feed_path):
    """The crafted session (``feed_event_session``) one frame at a time;
    nobody takes feed events during the heartbeat storm, a slow taker
    afterwards.  The storm's events
    overflow the sequencer's queue: the ones kept come first, the rest are
    counted as lost, and the next one kept says so.  Apart from that each
    source's records are the model's, in order, and every kind occurs."""
    config, frames, held = feed_event_session()
    observed, model, expected = run_feed_path(feed_path, "feed_events", config, frames,
                                              [0] * len(frames), serial=True, event_pause=0.5,
                                              event_hold_frames=held)
    assert_same_records(observed, expected)
    sequencer, book = by_source(observed_feed_events(observed))
    want_sequencer, want_book = by_source(model.feed_events)
    assert [r.tobytes() for r in book] == [r.tobytes() for r in want_book]
    assert [(int(r["kind"]), int(r["reason"]), int(r["stock_locate"])) for r in book] == \
        [(EVENT_BOOK_DEGRADED, 2, 7), (EVENT_BOOK_DEGRADED, 4, 8), (EVENT_BOOK_RESTORED, 0, 8)]
    lost = observed["registers"]["mold_seq.COUNT_EVENTS_LOST"][0]
    assert lost > 0 and observed["registers"]["order_book.COUNT_FEED_EVENTS_LOST"][0] == 0
    kept = len(want_sequencer) - lost
    assert len(sequencer) == kept
    flagged = [i for i, r in enumerate(sequencer) if int(r["flags"]) & EVENT_FLAG_LOST_BEFORE]
    assert len(flagged) == 1
    first_after = flagged[0]
    resumed = sequencer[first_after].copy()
    resumed["flags"] = 0
    assert [r.tobytes() for r in sequencer[:first_after]] == \
        [r.tobytes() for r in want_sequencer[:first_after]]
    assert [resumed.tobytes()] + [r.tobytes() for r in sequencer[first_after + 1:]] == \
        [r.tobytes() for r in want_sequencer[first_after + lost:]]
    # The queue held what it could while nobody took anything.
    assert first_after >= 16
    assert {int(r["kind"]) for r in sequencer} == {EVENT_GAP, EVENT_FEED_STALE,
                                                   EVENT_FEED_RECOVERED, EVENT_END_OF_SESSION}

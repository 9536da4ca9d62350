"""The order book's Verilog against its model, bit for bit, under cocotb:
records, feed event records, counters and slot state."""
from __future__ import annotations

import json

import numpy as np
import pytest

from host.feed.records import EVENT_BOOK_DEGRADED, EVENT_BOOK_RESTORED, record_word
from rtl.blocks import BLOCKS, convert_block
from rtl.common import sim
from rtl.order_book.hdl import EVENT_CYCLES, LATENCY_CYCLES, UNTRACKED_CYCLES, UPDATE_BEATS
from rtl.order_book.model import BookConfig, OrderBookModel
from tests.rtl.conftest import TEST_BUILD_ID
from tests.rtl.order_book_stimulus import (Scenario, Stimulus, crafted_phases, expected_packets,
                                           generated_day, phase, run_model)

BENCH = "tests.rtl.order_book_bench"


@pytest.fixture(scope="module")
def order_book(simulator):
    verilog = convert_block("order_book", TEST_BUILD_ID)
    return sim.build("order_book", [verilog], BLOCKS["order_book"].toplevel, simulator)


def run_stimulus(build, name: str, stimulus: Stimulus):
    model = OrderBookModel()
    expected = run_model(model, stimulus)
    stimulus.expected_records = len(expected)
    run_dir = build.build_dir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    path = stimulus.save(run_dir / "stimulus.json")
    build.run(BENCH, name, testcase="stream_stimulus", extra_env={"ZYNQMM_STIMULUS": str(path)})
    observed = json.loads((run_dir / "observed.json").read_text())
    return observed, model, expected


def assert_same_as_model(observed: dict, model: OrderBookModel, expected) -> None:
    want = [list(p) for p in expected_packets(expected)]
    got = observed["packets"]
    assert len(got) == len(want), f"{len(got)} records out, model says {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"record {i}: rtl dest {g[0]} {g[1][:48]}.. != model dest {w[0]} {w[1][:48]}.."
    assert observed["feed_events"] == [f"{record_word(r):048x}" for r in model.feed_events]
    assert observed["counters"] == model.counters
    assert observed["occupancy"] == model.occupancy
    assert observed["occupancy_high"] == model.occupancy_high
    mask = model.degraded_mask()
    assert observed["degraded"] == [(mask >> (32 * k)) & 0xFFFF_FFFF
                                    for k in range(len(observed["degraded"]))]
    assert observed["status"] == {"busy": 0, "slots_used": model.slots_used()}
    for slot, (info, symbol_hi, symbol_lo) in observed["slot_info"].items():
        mine = model.slot_info(int(slot))
        assert info == {"info_locate": mine.locate, "info_valid": int(mine.valid),
                        "info_directory": int(mine.directory),
                        "info_not_trading": int(mine.not_trading), "info_lost": int(mine.lost),
                        "info_degraded": int(mine.degraded)}, slot
        assert (symbol_hi << 32) | symbol_lo == mine.symbol


def test_generated_day_with_gaps_and_backpressure_matches_model(order_book, tmp_path):
    day = generated_day(tmp_path, symbols=8, messages=2_500, seed=5)
    stimulus = Stimulus([phase(day.events)], source_pause=0.2, sink_pause=0.3, seed=3,
                        info_slots=[0, 3, 7, 8])
    observed, model, expected = run_stimulus(order_book, "generated_day", stimulus)
    assert stimulus.event_count > 2_000 and len(expected) > 1_500
    assert_same_as_model(observed, model, expected)
    assert observed["input_waits"] > 0


@pytest.mark.parametrize("refill", [True, False], ids=["refill", "no_refill"])
def test_every_path_matches_model(order_book, refill):
    """The hand-made phases (see test_order_book_model): table overflow,
    unknown references, a deep book refilled or flagged, host commands
    mid-stream, a reset; with refill off also auto-assign off, the stale
    flag on and a slow output."""
    stimulus = Stimulus(crafted_phases(BookConfig(), host_assigns=not refill),
                        auto_assign=refill, refill=refill, stale=not refill, source_pause=0.3,
                        sink_pause=0.4 if refill else 0.8, seed=9,
                        info_slots=[0, 1, 2, 3, 5, 10, 63])
    observed, model, expected = run_stimulus(order_book, f"paths_{int(refill)}", stimulus)
    assert_same_as_model(observed, model, expected)
    assert model.counters["refills" if refill else "degraded_depth"] > 0
    kinds = {int(r["kind"]) for r in model.feed_events}
    reasons = {int(r["reason"]) for r in model.feed_events}
    # Lost slots (full table, unknown references) both ways; with refill off
    # depth degradation comes and goes.
    assert {1, 2} <= reasons
    assert kinds == ({EVENT_BOOK_DEGRADED} if refill else {EVENT_BOOK_DEGRADED,
                                                             EVENT_BOOK_RESTORED})
    if not refill:
        assert 4 in reasons


def timing_stimulus():
    """Event rows: a directory event; adds that each make a new best bid;
    adds deep in the book (no record); events of an untracked locate."""
    sc = Scenario()
    sc.directory(20, "TIME")
    directory = sc.take()
    for k in range(40):
        sc.order(20, 200 + k, 0, 60_000 + k, 10)
    top_changing = sc.take()
    for k in range(40):
        sc.order(20, 300 + k, 0, 10_000 - k, 10)
    for k in range(40):
        sc.order(21, 400 + k, 0, 1_000, 10)
    return directory, top_changing, sc.take()


def test_latency_and_cycles_per_event(order_book):
    directory, top_changing, quiet = timing_stimulus()
    spaced = Stimulus([phase(directory), phase(top_changing[:12])], gap_cycles=60, seed=4)
    observed, model, expected = run_stimulus(order_book, "latency", spaced)
    assert_same_as_model(observed, model, expected)
    accepts = observed["accept_cycles"][1:]          # the directory event makes no record
    latencies = [beat - accept for accept, beat in zip(accepts, observed["first_beat_cycles"])]
    assert len(latencies) == 12 and set(latencies) == {LATENCY_CYCLES}, latencies

    stream = Stimulus([phase(directory), phase(np.concatenate([top_changing, quiet]))], seed=5)
    observed, model, expected = run_stimulus(order_book, "throughput", stream)
    assert_same_as_model(observed, model, expected)
    accepts = observed["accept_cycles"][1:]
    gaps = [b - a for a, b in zip(accepts, accepts[1:])]
    # With the output free the first record leaves at once, costing no
    # cycle; after that each top-changing add waits for the 18 beats of the
    # one before.
    assert gaps[0] == EVENT_CYCLES
    assert set(gaps[1:40]) == {UPDATE_BEATS}, gaps[1:40]
    assert set(gaps[40:80]) == {EVENT_CYCLES}, gaps[40:80]
    assert set(gaps[80:]) == {UNTRACKED_CYCLES}, gaps[80:]
    cycles = observed["accept_cycles"][-1] - observed["accept_cycles"][1]
    (order_book.build_dir / "runs" / "throughput" / "timing.json").write_text(json.dumps(
        {"latency_cycles": LATENCY_CYCLES, "cycles_per_top_changing_add": UPDATE_BEATS,
         "cycles_per_add_without_record": EVENT_CYCLES,
         "cycles_per_untracked_event": UNTRACKED_CYCLES,
         "stream_cycles_per_event": cycles / (len(accepts) - 1)}))


def test_register_access(order_book):
    order_book.run(BENCH, "registers", testcase="register_access")

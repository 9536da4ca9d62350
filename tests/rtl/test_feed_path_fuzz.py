"""Robustness fuzz of the feed path's Verilog (rtl/feed_path/replay/fuzz.py):
bad frames of every kind mixed into a generated day, random tvalid gaps and
record backpressure.  No deadlock, every frame counted once by its filter,
bad input counted where it is found, and the records equal the model's, so
the good frames around the bad ones decode exactly.  ``make rtl-fuzz`` runs
the same with 100,000 bad frames."""
from __future__ import annotations

import pytest

from rtl.feed_path.model import Frame
from rtl.feed_path.replay.fuzz import BAD_KINDS, GOOD_VARIANTS, LEAD_IN, fuzz_frames, kind_counts
from rtl.feed_path.replay.runs import day_frames, run_fuzz
from rtl.feed_path.replay.stimulus import RunOptions
from rtl.frame_filter.model import DROP_REASONS as FILTER_DROPS
from rtl.frame_filter.model import classify

DAY_MESSAGES = 2500
BAD_FRAMES = 4000


@pytest.fixture(scope="module")
def harness():
    from rtl.feed_path.replay.build import build

    return build(log=lambda _: None)


@pytest.fixture(scope="module")
def small_day():
    return day_frames(600, seed=4)


def test_fuzz_makes_every_kind_and_keeps_the_day(small_day):
    day, config = small_day
    frames = fuzz_frames(day, 3000, seed=9)
    counts = kind_counts(frames)
    assert set(BAD_KINDS) <= set(counts)
    assert {f"good_{v}" for v in GOOD_VARIANTS} <= set(counts)
    assert sum(n for k, n in counts.items() if not k.startswith("good")) == 3000
    assert sum(n for k, n in counts.items() if k.startswith("good")) == len(day)
    assert all(f.kind.startswith("good") for f in frames[:LEAD_IN])
    # Good variants still pass the filter.
    for f in frames:
        if f.kind.startswith("good_"):
            entries = config.filter_a if f.feed == 0 else config.filter_b
            assert classify(f.data, f.error, entries).reason == "passed", f.kind
    # Deterministic for a seed.
    again = fuzz_frames(day, 3000, seed=9)
    assert [(f.feed, f.data, f.error, f.error_beat) for f in again] == \
        [(f.feed, f.data, f.error, f.error_beat) for f in frames]


def test_bad_frames_are_counted_and_the_day_still_decodes(harness):
    run = run_fuzz(BAD_FRAMES, DAY_MESSAGES, seed=5,
                   options=RunOptions(seed=5, source_pause=0.2, sink_pause=0.3),
                   name="test_fuzz", log=lambda _: None)
    result, regs = run.result, run.result.registers
    assert run.ok, result.errors
    assert not result.deadlock
    assert result.records == result.model_records > 1000 and result.mismatched_records == 0
    # Each filter reason was hit, on one feed or the other, and every frame
    # is counted once (the accounting itself is checked by the replay).
    for reason in FILTER_DROPS:
        assert sum(regs[f"{w}.COUNT_{reason.upper()}"]
                   for w in ("frame_filter", "frame_filter_b")) > 0, reason
    for feed in "AB":
        for reason in ("TRUNCATED", "BAD_FIELD", "BLOCK_PAST_END", "ZERO_LENGTH_BLOCK",
                       "COUNT_MISMATCH", "TRAILING_BYTES", "SEQUENCE_OUT_OF_RANGE",
                       "OTHER_SESSION"):
            assert regs[f"mold_seq.FEED_{feed}_{reason}"] > 0, (feed, reason)
    assert regs["itch_decoder.COUNT_UNKNOWN_TYPE"] + regs["itch_decoder.COUNT_BAD_SIDE"] > 0
    # The day's messages still come through arbitration.
    assert result.messages >= 0.98 * DAY_MESSAGES
    assert run.extra["bad_frames"] == BAD_FRAMES


def test_fuzz_rejects_a_day_too_short():
    with pytest.raises(ValueError):
        fuzz_frames([Frame(0, b"\0" * 60)] * LEAD_IN, 10, seed=1)

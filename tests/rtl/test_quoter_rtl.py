"""The quoter's Verilog against its model, bit for bit, under cocotb (one
simulator build for the file)."""
from __future__ import annotations

import json
import random

import pytest

from rtl.quoter.hdl import LATENCY_CYCLES
from rtl.quoter.model import DEFAULT_TICKS, QuoterSettings, TickBand
from rtl.quoter.stream import unpack_quote
from tests.rtl.quoting_cases import QUOTER_CASES
from tests.rtl.quoting_stimulus import QuoterScenario, random_theos, theo

BENCH = "tests.rtl.quoter_bench"


@pytest.fixture(scope="module")
def quoter(built):
    return built("quoter")


def run(build, name: str, scenario: QuoterScenario, **kw) -> dict:
    stimulus = scenario.stimulus(**kw)
    run_dir = build.build_dir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    path = stimulus.save(run_dir / "stimulus.json")
    build.run(BENCH, name, testcase="stream_stimulus", extra_env={"ZYNQMM_STIMULUS": str(path)})
    return json.loads((run_dir / "observed.json").read_text())


def assert_same_as_model(observed: dict, scenario: QuoterScenario) -> None:
    got = [unpack_quote(int(w, 16)) for w in observed["words"]]
    want = scenario.expected
    assert len(got) == len(want), f"{len(got)} quote words out, model says {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"word {i}: " + ", ".join(
            f"{k}: rtl {g[k]} model {w[k]}" for k in w if g[k] != w[k])
    assert observed["counters"] == scenario.model.counters


SETTINGS = QuoterSettings(half_spread=250, skew=-3_000, bid_size=10, ask_size=20, min_edge=100,
                          requote_threshold=100)


def test_random_theos_with_gaps_and_backpressure_match_model(quoter):
    rng = random.Random(2026)
    sc = QuoterScenario(SETTINGS)
    for option in range(64):
        sc.position(option, rng.choice([0, 0, rng.randrange(-400, 400),
                                        rng.choice([-(1 << 31), (1 << 31) - 1])]))
    sc.theos(random_theos(rng, 1200))
    # Another table and parameters, then every option requoted.
    sc.configure(QuoterSettings(half_spread=1_234, skew=77, bid_size=5, ask_size=0,
                                min_edge=0, requote_threshold=0,
                                ticks=(TickBand(0, 1), TickBand(10_000, 5),
                                       TickBand(30_000, 25), TickBand(1_000_000, 500))))
    sc.requote_all()
    sc.theos(random_theos(rng, 500))
    # No bid size, and a band whose reciprocal does not match its tick.
    sc.configure(QuoterSettings(half_spread=100, bid_size=0, ask_size=3, requote_threshold=500,
                                min_edge=150,
                                ticks=(DEFAULT_TICKS[0], TickBand(30_000, 500, 12345))))
    sc.theos(random_theos(rng, 300))
    observed = run(quoter, "random", sc, source_pause=0.3, sink_pause=0.3, seed=5)
    assert_same_as_model(observed, sc)
    assert observed["tick_status"] == 0b0001
    counters = sc.model.counters
    # The mix must reach every verdict, or this proves less than it says.
    assert all(counters.values()), counters
    assert observed["input_waits"] > 0


def test_every_crafted_case_matches_model(quoter):
    """The hand-made cases of tests/rtl/quoting_cases.py, one after the
    other from reset, counters read after each."""
    sc = QuoterScenario()
    for i, case in enumerate(QUOTER_CASES):
        if i:
            sc.new_case()
        case(sc)
    observed = run(quoter, "cases", sc, source_pause=0.2, sink_pause=0.2, seed=3)
    assert_same_as_model(observed, sc)
    assert observed["snapshots"] == sc.snapshots


def test_latency_theo_to_quote_word(quoter):
    sc = QuoterScenario(SETTINGS)
    sc.theos([theo(k % 3, 1.0 + 0.1 * k) for k in range(12)])
    observed = run(quoter, "latency", sc, gap_cycles=30)
    assert_same_as_model(observed, sc)
    latencies = [out - accept for accept, out in
                 zip(observed["accept_cycles"], observed["first_valid_cycles"])]
    assert len(latencies) == 12 and set(latencies) == {LATENCY_CYCLES}, latencies


def test_register_access(quoter):
    quoter.run(BENCH, "registers", testcase="register_access")

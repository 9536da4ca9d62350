"""The risk gate's Verilog against its model, bit for bit, under cocotb (one
simulator build for the file)."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from host.book.records import FLAG_DEGRADED, FLAG_NOT_TRADING, FLAG_STALE
from host.quoting.records import QUOTE_DTYPE, quotes_array
from rtl.risk_gate.hdl import LATENCY_CYCLES, RECORD_BEATS
from rtl.risk_gate.model import GateSettings
from tests.rtl.quoting_cases import GATE_CASES
from tests.rtl.quoting_stimulus import (GateScenario, default_underlyings, quote_word,
                                        random_quote_words)

BENCH = "tests.rtl.risk_gate_bench"


@pytest.fixture(scope="module")
def risk_gate(built):
    return built("risk_gate")


def run(build, name: str, scenario: GateScenario, **kw) -> dict:
    stimulus = scenario.stimulus(**kw)
    run_dir = build.build_dir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    path = stimulus.save(run_dir / "stimulus.json")
    build.run(BENCH, name, testcase="stream_stimulus", extra_env={"ZYNQMM_STIMULUS": str(path)})
    return json.loads((run_dir / "observed.json").read_text())


def observed_records(observed: dict) -> np.ndarray:
    assert all("/" not in r for r in observed["records"]), "a record without tlast"
    return np.frombuffer(b"".join(bytes.fromhex(r) for r in observed["records"]),
                         dtype=QUOTE_DTYPE)


def assert_same_as_model(observed: dict, scenario: GateScenario) -> np.ndarray:
    got = observed_records(observed)
    want = quotes_array(scenario.expected)
    assert len(got) == len(want), f"{len(got)} records out, model says {len(want)}"
    fields = [n for n in QUOTE_DTYPE.names if n != "egress_cycle"]
    for i in range(len(want)):
        g, w = got[i], want[i]
        diff = {n: (int(g[n]), int(w[n])) for n in fields if g[n] != w[n]}
        assert not diff, f"record {i}: rtl/model {diff}"
    # The egress stamp is the gate's cycle counter at the first beat: its
    # distance to the bench's count of the same cycle is one constant, from
    # one reset of the block to the next.
    offsets = [(int(e) - c) & 0xFFFF_FFFF for e, c in
               zip(got["egress_cycle"], observed["first_beat_cycles"])]
    resets = sum(phase.reset for phase in scenario.phases)
    assert sum(a != b for a, b in zip(offsets, offsets[1:])) <= resets, offsets
    model = scenario.model
    assert observed["counters"] == model.counters
    assert observed["pulled"] == model.pulled_mask()
    assert observed["status"] == {"busy": 0, "live_options": model.live_options()}
    return got


OPEN = GateSettings(kill=False, through_limit=2_000, min_price=100, max_price=350_000,
                    rate_count=3, rate_window=400, underlyings=default_underlyings())


def test_random_words_with_gaps_and_backpressure_match_model(risk_gate):
    rng = random.Random(2026)
    sc = GateScenario(OPEN)
    sc.words(random_quote_words(rng, 900))
    sc.change(kill=True)
    sc.words(random_quote_words(rng, 100))
    # A tighter band and rate, halts pull too, and a locate the table lacks.
    sc.change(kill=False, rate_count=1, rate_window=5_000, through_limit=0,
              pull_mask=FLAG_STALE | FLAG_DEGRADED | FLAG_NOT_TRADING)
    sc.words(random_quote_words(rng, 600, underlyings=(7, 8, 9, 11, 12), cycle_step=400))
    observed = run(risk_gate, "random", sc, source_pause=0.3, sink_pause=0.4, seed=5)
    assert_same_as_model(observed, sc)
    counters = sc.model.counters
    assert all(counters.values()), counters
    assert observed["input_waits"] > 0


def test_every_crafted_case_matches_model(risk_gate):
    """The hand-made cases of tests/rtl/quoting_cases.py, one after the
    other from reset, counters read after each."""
    sc = GateScenario()
    for i, case in enumerate(GATE_CASES):
        if i:
            sc.new_case()
        case(sc)
    observed = run(risk_gate, "cases", sc, source_pause=0.2, sink_pause=0.3, seed=3)
    assert_same_as_model(observed, sc)
    assert observed["snapshots"] == sc.snapshots


def test_latency_word_to_first_beat(risk_gate):
    sc = GateScenario(OPEN)
    sc.words([quote_word(k % 5, 9_900, 10_100, 1.0, ingress_cycle=1_000 * k)
              for k in range(10)])
    observed = run(risk_gate, "latency", sc, gap_cycles=3 * RECORD_BEATS)
    assert_same_as_model(observed, sc)
    latencies = [out - accept for accept, out in
                 zip(observed["accept_cycles"], observed["first_beat_cycles"])]
    assert len(latencies) == 10 and set(latencies) == {LATENCY_CYCLES}, latencies


def test_register_access(risk_gate):
    risk_gate.run(BENCH, "registers", testcase="register_access")

"""Quoter and risk gate in a row: the Verilog of the quote_path top level
against the two models chained, and its latency."""
from __future__ import annotations

import random

import numpy as np
import pytest

from host.quoting.records import QUOTE_DTYPE, quotes_array
from rtl.quoter.model import QuoterSettings
from rtl.risk_gate.model import GateSettings
from rtl.risk_gate.quote_path import LATENCY_CYCLES
from tests.rtl.quote_path_bench import latencies, latency_scenario, run_scenario
from tests.rtl.quoting_stimulus import ChainScenario, default_underlyings, random_theos


@pytest.fixture(scope="module")
def quote_path(built):
    return built("quote_path")


def assert_records(observed: dict, scenario: ChainScenario) -> None:
    got = np.frombuffer(b"".join(bytes.fromhex(r) for r in observed["records"]),
                        dtype=QUOTE_DTYPE)
    want = quotes_array(scenario.expected)
    assert len(got) == len(want), f"{len(got)} records out, models say {len(want)}"
    fields = [n for n in QUOTE_DTYPE.names if n != "egress_cycle"]
    assert np.array_equal(got[fields], want[fields])
    assert observed["counters"]["quoter"] == scenario.model.quoter.counters
    assert observed["counters"]["risk_gate"] == scenario.model.gate.counters


def test_random_theos_through_both_blocks_match_the_models(quote_path):
    rng = random.Random(31)
    sc = ChainScenario(QuoterSettings(half_spread=300, skew=-2_000, bid_size=7, ask_size=9,
                                      min_edge=50, requote_threshold=200),
                       GateSettings(kill=False, through_limit=500, min_price=100,
                                    max_price=400_000, rate_count=2, rate_window=1 << 30,
                                    underlyings=default_underlyings()))
    for option in range(0, 64, 3):
        sc.position(option, rng.randrange(-300, 300))
    sc.theos(random_theos(rng, 800, underlyings=(7, 8, 9, 11)))
    observed = run_scenario(quote_path, "random", sc, source_pause=0.3, sink_pause=0.5, seed=9)
    assert_records(observed, sc)
    assert len(sc.expected) > 100 and sc.model.gate.counters["rate_limited"] > 0
    assert observed["input_waits"] > 0


def test_latency_theo_to_first_record_beat(quote_path):
    sc = latency_scenario()
    observed = run_scenario(quote_path, "latency", sc, gap_cycles=40)
    assert_records(observed, sc)
    assert len(sc.expected) == 16
    assert set(latencies(observed)) == {LATENCY_CYCLES}

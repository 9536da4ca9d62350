"""The pricer datapath's Verilog against the bit-accurate model, bit for bit,
under cocotb (one simulator build for the file)."""
from __future__ import annotations

import numpy as np
import pytest

from rtl.pricer.hdl import LATENCY_CYCLES, SPOT_LATENCY_CYCLES
from rtl.pricer.model import D_LIMIT_RAW
from tests.rtl.pricer_bench import (INPUT_FIELDS, RESULTS, SPOT_TERMS, make_stimulus, save,
                                    spot_stimulus)

BENCH = "tests.rtl.pricer_bench"
# Random options per run (python -m tests.rtl.pricer_bench runs 100,000).
RTL_OPTIONS = 2000


@pytest.fixture(scope="module")
def pricer(built):
    return built("pricer")


def run(build, name: str, stimulus: dict, testcase: str = "stream_options",
        fields=INPUT_FIELDS, **pauses):
    run_dir = build.build_dir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    path = save(stimulus, run_dir / "stimulus.npz", fields=fields, **pauses)
    build.run(BENCH, name, testcase=testcase, extra_env={"ZYNQMM_STIMULUS": str(path)})
    return np.load(run_dir / "observed.npz")


def assert_bit_exact(stimulus: dict, observed, results=RESULTS) -> None:
    count = len(stimulus["tag"])
    assert len(observed["tag"]) == count, f"{len(observed['tag'])} results for {count} inputs"
    assert np.array_equal(observed["tag"], stimulus["tag"]), "results out of order"
    for name in results:
        wrong = np.flatnonzero(observed[name] != stimulus[name])
        if len(wrong):
            i = int(wrong[0])
            raise AssertionError(f"{name}: {len(wrong)} of {count} differ; first option {i}: "
                                 f"rtl {int(observed[name][i])} != model {int(stimulus[name][i])}")


def test_random_options_with_gaps_and_backpressure_match_model(pricer):
    stimulus = make_stimulus(RTL_OPTIONS, seed=2026)
    # The corners must reach the clamp, saturation and both kinds, or this
    # test proves less than it says.
    assert np.any(stimulus["d1"] == D_LIMIT_RAW) and np.any(stimulus["d1"] == -D_LIMIT_RAW)
    assert np.any(stimulus["gamma"] == 0) and np.any(stimulus["is_put"] == 1)
    assert np.any(stimulus["is_put"] == 0) and len(np.unique(stimulus["exponent"])) > 10
    observed = run(pricer, "random_gaps", stimulus, source_pause=0.25, sink_pause=0.25, seed=5)
    assert_bit_exact(stimulus, observed)
    # Idle input cycles and backpressure must both have happened.
    assert np.any(np.diff(observed["taken_cycle"]) > 1)
    assert np.any(observed["out_cycle"] - observed["taken_cycle"] > LATENCY_CYCLES)


def test_one_option_per_cycle_at_fixed_latency(pricer):
    stimulus = make_stimulus(300, seed=7, corners=False)
    observed = run(pricer, "back_to_back", stimulus)
    assert_bit_exact(stimulus, observed)
    latencies = observed["out_cycle"] - observed["taken_cycle"]
    assert set(latencies.tolist()) == {LATENCY_CYCLES}
    assert np.all(np.diff(observed["taken_cycle"]) == 1)
    assert np.all(np.diff(observed["out_cycle"]) == 1)


def test_spot_terms_match_model(pricer):
    """The spot front stage: ln S, 1/m and e for every leading-one position."""
    stimulus = spot_stimulus(400, seed=3)
    assert len(np.unique(stimulus["exponent"])) == 63
    observed = run(pricer, "spots", stimulus, testcase="stream_spots", fields=("tag", "spot"),
                   source_pause=0.2, sink_pause=0.2, seed=9)
    assert_bit_exact(stimulus, observed, SPOT_TERMS)
    fast = run(pricer, "spots_back_to_back", stimulus, testcase="stream_spots",
               fields=("tag", "spot"))
    assert_bit_exact(stimulus, fast, SPOT_TERMS)
    assert set((fast["out_cycle"] - fast["taken_cycle"]).tolist()) == {SPOT_LATENCY_CYCLES}

"""cocotb bench for the pricer datapath's generated Verilog, and its stimulus.

Inside the simulator, ``stream_options`` reads the options of
``$ZYNQMM_STIMULUS`` (an ``.npz`` from :func:`make_stimulus`), offers one per
cycle on ``s_option`` (with random idle cycles), takes results on
``m_greeks`` (with random backpressure), and writes every result with the
cycles each option went in and came out to ``$ZYNQMM_RUN_DIR/observed.npz``;
``stream_spots`` does the same for spots (:func:`spot_stimulus`) through the
spot front stage.

Outside it, :func:`make_stimulus` draws random options (chains of
:func:`host.pricing.accuracy.random_sample`) plus every corner of the
documented ranges at the extreme spots, with the model's results, and
``python -m tests.rtl.pricer_bench`` runs :data:`BENCH_OPTIONS` of them
through one build and prints the comparison, latency and throughput.
"""
from __future__ import annotations

import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from tests.rtl.bench_common import run_dir, start_and_reset, stimulus_path

# Field order on s_option; the pytest side and the bench share it.
INPUT_FIELDS = ("tag", "is_put", "exponent", "spot", "ln_spot", "recip_m", "log_offset",
                "inv_vol", "total_vol", "sqrt_t", "half_vol_rate", "carry_disc", "strike_disc",
                "carry_rate", "rate_strike_disc")
RESULTS = ("price", "delta", "gamma", "vega", "theta", "d1", "d2")
SPOT_TERMS = ("spot", "ln_spot", "recip_m", "exponent")
BENCH_OPTIONS = 100_000


def make_stimulus(count: int, seed: int, corners: bool = True) -> dict[str, np.ndarray]:
    """Inputs (``INPUT_FIELDS``) and the model's results (``RESULTS``) for
    ``count`` random options, then the corner options, chain by chain."""
    from host.pricing.accuracy import random_sample
    from host.pricing.params import precompute_arrays, spot_to_money
    from rtl.pricer import formats as fx
    from rtl.pricer.model import price_chain, spot_terms

    sample = random_sample(count, seed)
    rows = precompute_arrays(sample.underlying, sample.is_put, sample.strike, sample.sigma,
                             sample.expiry, sample.rate, sample.dividend, False)
    spots = np.array([spot_to_money(s) for s in sample.spot], dtype=np.int64)
    chains = [(spots[chain[0]], rows[chain]) for chain in _chains(sample.underlying)]
    if corners:
        corners_at = corner_rows()
        for spot in (float(fx.SPOT_MIN), 1.0, 181.0, float(fx.SPOT_MAX) - 2.0 ** -40):
            chains.append((fx.MONEY.from_real(spot), corners_at))
    columns: dict[str, list] = {name: [] for name in INPUT_FIELDS + RESULTS}
    for spot, chain_rows in chains:
        ln_spot, recip_m, exponent = spot_terms(int(spot))
        result = price_chain(int(spot), chain_rows)
        n = len(chain_rows)
        for name, value in (("spot", spot), ("ln_spot", ln_spot), ("recip_m", recip_m),
                            ("exponent", exponent)):
            columns[name].append(np.full(n, value, dtype=np.int64))
        columns["is_put"].append(chain_rows["is_put"].astype(np.int64))
        for name in INPUT_FIELDS[6:]:
            columns[name].append(chain_rows[name].astype(np.int64))
        for name in RESULTS:
            columns[name].append(getattr(result, name))
    stimulus = {name: np.concatenate(parts) for name, parts in columns.items() if parts}
    stimulus["tag"] = np.arange(len(stimulus["spot"]), dtype=np.int64) & 0xFFFF
    return stimulus


def _chains(underlying: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(underlying, kind="stable")
    bounds = np.flatnonzero(np.diff(underlying[order])) + 1
    return [c for c in np.split(order, bounds) if len(c)]


def corner_rows() -> np.ndarray:
    """Every corner of the ranges the host admits: deep in and out of the money
    (d1 clamped, N saturated, phi underflowing), both rate signs, both kinds."""
    import itertools
    import math

    from host.pricing.params import precompute_arrays
    from rtl.pricer import formats as fx

    rows = []
    for strike, expiry, rate, dividend, put, b76 in itertools.product(
            (float(fx.STRIKE_MIN), 100.0, float(fx.STRIKE_MAX)), (fx.EXPIRY_MIN, fx.EXPIRY_MAX),
            (fx.RATE_MIN, fx.RATE_MAX), (fx.RATE_MIN, fx.RATE_MAX), (False, True), (False, True)):
        root_t = math.sqrt(expiry)
        for sigma in sorted({max(fx.TOTAL_VOL_MIN / root_t, 1e-9),
                             min(fx.SIGMA_MAX, fx.TOTAL_VOL_MAX / root_t)}):
            rows.append(precompute_arrays(0, put, strike, sigma, expiry, rate, dividend, b76))
    return np.concatenate(rows)


def spot_stimulus(count: int, seed: int) -> dict[str, np.ndarray]:
    """Spots over the whole positive MONEY range (every leading-one position,
    random low bits, the smallest and largest) with the model's terms."""
    from rtl.pricer import formats as fx
    from rtl.pricer.model import spot_terms

    rng = np.random.default_rng(seed)
    top = np.concatenate([np.arange(63), rng.integers(0, 63, count)])
    spots = [1, 2, 3, fx.MONEY.max_raw, fx.MONEY.one, fx.MONEY.from_real(fx.SPOT_MIN)]
    spots += [(1 << int(t)) | int(rng.integers(0, 1 << 62)) & ((1 << int(t)) - 1) for t in top]
    terms = np.array([spot_terms(s) for s in spots], dtype=np.int64)
    return {"tag": np.arange(len(spots), dtype=np.int64) & 0xFFFF,
            "spot": np.array(spots, dtype=np.int64), "ln_spot": terms[:, 0],
            "recip_m": terms[:, 1], "exponent": terms[:, 2]}


def save(stimulus: dict[str, np.ndarray], path: Path, source_pause: float = 0.0,
         sink_pause: float = 0.0, seed: int = 1, fields=INPUT_FIELDS) -> Path:
    np.savez(path, source_pause=source_pause, sink_pause=sink_pause, seed=seed,
             **{name: stimulus[name] for name in fields})
    return path


async def _stream(dut, source: str, fields, sink: str, results) -> None:
    """Offer the options (or spots) of ``$ZYNQMM_STIMULUS`` on ``source`` one
    per cycle, pausing at random; take ``results`` from ``sink`` under random
    backpressure; save them with the cycles each went in and came out."""
    loaded = np.load(stimulus_path())
    inputs = [[int(v) for v in loaded[name].tolist()] for name in fields]
    ports = [getattr(dut, f"{source}_{name}") for name in fields]
    outputs = [getattr(dut, f"{sink}_{name}") for name in results]
    in_valid, in_ready = getattr(dut, f"{source}_valid"), getattr(dut, f"{source}_ready")
    out_valid, out_ready = getattr(dut, f"{sink}_valid"), getattr(dut, f"{sink}_ready")
    out_tag = getattr(dut, f"{sink}_tag")
    source_pause, sink_pause = float(loaded["source_pause"]), float(loaded["sink_pause"])
    rng = random.Random(int(loaded["seed"]))
    count = len(inputs[0])
    await start_and_reset(dut, idle_low=("s_option_valid", "m_greeks_ready", "s_spot_valid",
                                         "m_spot_ready"))

    observed: list[list[int]] = []
    tags: list[int] = []
    taken_cycles: list[int] = []
    out_cycles: list[int] = []
    cycle = 0
    sent = 0
    offered = -1           # index of the item currently on the port
    valid = ready = False
    limit = 20 * count + 1000
    while len(tags) < count and cycle < limit:
        await RisingEdge(dut.clk)
        cycle += 1
        if valid and int(in_ready.value):
            taken_cycles.append(cycle)
            sent += 1
        if ready and int(out_valid.value):
            observed.append([o.value.to_signed() for o in outputs])
            tags.append(int(out_tag.value))
            out_cycles.append(cycle)
        ready = rng.random() >= sink_pause
        out_ready.value = int(ready)
        valid = sent < count and rng.random() >= source_pause
        if valid and offered != sent:
            for port, column in zip(ports, inputs):
                port.value = column[sent]
            offered = sent
        in_valid.value = int(valid)
    in_valid.value = 0
    table = np.array(observed, dtype=np.int64).reshape(-1, len(results))
    np.savez(run_dir() / "observed.npz",
             tag=np.array(tags, dtype=np.int64), taken_cycle=np.array(taken_cycles, dtype=np.int64),
             out_cycle=np.array(out_cycles, dtype=np.int64), cycles=cycle,
             **{name: table[:, i] for i, name in enumerate(results)})


@cocotb.test()
async def stream_options(dut):
    await _stream(dut, "s_option", INPUT_FIELDS, "m_greeks", RESULTS)


@cocotb.test()
async def stream_spots(dut):
    await _stream(dut, "s_spot", ("tag", "spot"), "m_spot", SPOT_TERMS)


def compare(stimulus: dict[str, np.ndarray], observed) -> dict[str, int]:
    """Mismatching options per result (all zero when the RTL is bit-exact)."""
    return {name: int(np.count_nonzero(observed[name] != stimulus[name])) for name in RESULTS}


def main(count: int = BENCH_OPTIONS) -> dict:
    """Run ``count`` random options (plus corners) through one build, back to
    back; return mismatches, latency and throughput."""
    import json
    import time

    from rtl.blocks import BLOCKS, convert_block
    from rtl.common import sim

    started = time.perf_counter()
    stimulus = make_stimulus(count, seed=2027)
    build = sim.build("pricer", [convert_block("pricer")], BLOCKS["pricer"].toplevel)
    bench_dir = build.build_dir / "runs" / f"bench_{count}"
    bench_dir.mkdir(parents=True, exist_ok=True)
    path = save(stimulus, bench_dir / "stimulus.npz")
    build.run("tests.rtl.pricer_bench", f"bench_{count}", testcase="stream_options",
              extra_env={"ZYNQMM_STIMULUS": str(path)})
    observed = np.load(bench_dir / "observed.npz")
    report = {
        "options": int(len(stimulus["tag"])),
        "mismatches": compare(stimulus, observed),
        "latency_cycles": sorted(set((observed["out_cycle"] - observed["taken_cycle"]).tolist())),
        "options_per_cycle": len(stimulus["tag"]) / float(observed["out_cycle"][-1]
                                                          - observed["taken_cycle"][0] + 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    import sys

    main(int(sys.argv[1]) if len(sys.argv) > 1 else BENCH_OPTIONS)

"""The chain pricer's model: reference prices against exact arithmetic,
verdicts and their order, coalescing, the walk's words against the pricer
datapath, scenario runs against float64 Black-Scholes."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from host.book.records import FLAG_NOT_TRADING, FLAG_STALE
from host.pricing.batch import black_float
from host.pricing.chain_tables import chain_layout, scenario_grid, scenario_of
from host.pricing.params import precompute_arrays
from rtl.pricer import formats as fx
from rtl.pricer.model import price_chain
from rtl.pricer_chain.model import (COUNTERS, REF_MICROPRICE, REF_MID, SPOT_LIMIT_RAW,
                                    SPOT_MIN_RAW, BestLevels, ChainConfig, ChainModel,
                                    ConfigError, Entry, Scenario, reference_price, scale_rows)
from tests.rtl.pricer_chain_stimulus import trade_record, update_record

CONFIG = ChainConfig(options=64, underlyings=8, lanes=4, scenarios=8)


def _levels(bid, bid_shares, ask, ask_shares):
    return BestLevels(1, 0, 0, 0, bid, bid_shares, ask, ask_shares)


def _money(value: Fraction) -> Fraction:
    return value * (1 << fx.MONEY.frac_bits)


def test_reference_prices_against_exact_arithmetic():
    rng = np.random.default_rng(1)
    cases = [(1, 1, 2, 1), (4_999, 1, 5_001, 0xFFFF_FFFF), (327_679_800, 0xFFFF_FFFF, 327_680_000, 1),
             (1_000_000, 0xFFFF_FFFF, 1_000_100, 0xFFFF_FFFF), (2_000_000, 7, 1_999_900, 3)]
    for _ in range(2000):
        bid = int(rng.integers(1, 400_000_000))
        cases.append((bid, int(rng.integers(1, 1 << 32)), bid + int(rng.integers(-100, 5000)),
                      int(rng.integers(1, 1 << 32))))
    for bid, bq, ask, aq in cases:
        mid = reference_price(_levels(bid, bq, ask, aq), REF_MID)
        exact_mid = _money(Fraction(bid + ask, 2 * 10_000))
        assert abs(mid - exact_mid) <= Fraction(1, 2) + Fraction(1, 10 ** 6)
        micro = reference_price(_levels(bid, bq, ask, aq), REF_MICROPRICE)
        exact_micro = _money(Fraction(bid * aq + ask * bq, (aq + bq) * 10_000))
        # The weight carries the RECIP table's 3e-11 (relative), on the spread only.
        spread = abs(_money(Fraction(ask - bid, 10_000)))
        assert abs(micro - exact_micro) <= 4e-11 * spread + 2
        low, high = sorted((bid, ask))
        assert low * (1 << 40) / 10_000 - 2 <= micro <= high * (1 << 40) / 10_000 + 2


def test_microprice_leans_towards_the_thin_side():
    heavy_bid = reference_price(_levels(1_000_000, 9_000, 1_000_100, 1_000), REF_MICROPRICE)
    heavy_ask = reference_price(_levels(1_000_000, 1_000, 1_000_100, 9_000), REF_MICROPRICE)
    mid = reference_price(_levels(1_000_000, 1_000, 1_000_100, 9_000), REF_MID)
    assert heavy_ask < mid < heavy_bid
    assert reference_price(_levels(1_000_000, 500, 1_000_100, 500), REF_MICROPRICE) == mid


def _model(rows_per_entry=(4, 3), microprice=False) -> ChainModel:
    model = ChainModel(CONFIG, microprice=microprice)
    rows = precompute_arrays(np.repeat(np.arange(len(rows_per_entry)) + 10, rows_per_entry),
                             np.arange(sum(rows_per_entry)) % 2 == 1, 100.0, 0.3, 0.5, 0.02, 0.01)
    layout = chain_layout(rows, CONFIG)
    for i, row in enumerate(layout.rows):
        model.write_row(i, row)
    for i, entry in enumerate(layout.entries):
        model.write_underlying(i, entry)
    return model


def test_verdicts_in_check_order_and_counted():
    model = _model()
    model.write_underlying(5, Entry(30, 0, 0, True))          # no rows
    model.write_underlying(6, Entry(31, 0, 4, False))         # disabled
    quote = (1_000_000, 100, 1_000_100, 200)
    cases = [
        (update_record(99, *quote, seq=1), "untracked"),
        (update_record(30, *quote, seq=2), "untracked"),
        (update_record(31, *quote, seq=3), "untracked"),
        (update_record(10, 0, 0, 1_000_100, 200, seq=4), "one_sided"),
        (update_record(10, 1_000_000, 100, 0, 0, seq=5), "one_sided"),
        (update_record(10, 1_000_000, 0, 1_000_100, 200, seq=6), "one_sided"),
        (update_record(10, 4_000, 10, 5_000, 10, seq=7), "out_of_range"),      # S = 0.45
        (update_record(10, 327_680_000, 1, 327_680_100, 1, seq=8), "out_of_range"),
        (update_record(10, *quote, seq=9), "accepted"),
        (update_record(10, *quote, seq=10), "unchanged"),
        (update_record(10, *quote, flags=FLAG_STALE, seq=11), "accepted"),   # flags alone
        (update_record(10, *quote, flags=FLAG_STALE, seq=12), "unchanged"),
        (update_record(11, 4_999, 1, 5_001, 1, seq=13), "accepted"),          # S = 0.5 exactly
    ]
    for data, verdict in cases:
        assert model.record(data) == verdict, (data[:2], verdict)
    assert model.record(trade_record(10, 14), dest=1) == "trade"
    assert model.record(update_record(10, *quote)[:136]) == "malformed"
    assert model.record(update_record(10, *quote) + bytes(8)) == "malformed"
    assert model.record(update_record(10, *quote), error=True) == "malformed"
    assert model.record(trade_record(10, 15)[:48], dest=1) == "malformed"
    counts = model.counters
    assert counts["updates"] == len(cases)
    assert (counts["untracked"], counts["one_sided"], counts["out_of_range"], counts["unchanged"],
            counts["accepted"], counts["coalesced"]) == (3, 3, 2, 2, 3, 1)
    assert counts["trades"] == 1 and counts["malformed"] == 4
    assert model.sticky == {"malformed", "one_sided", "out_of_range", "coalesced"}
    assert sum(counts[v] for v in ("untracked", "one_sided", "out_of_range", "unchanged",
                                   "accepted")) == counts["updates"]


def test_spot_range_edges():
    model = _model()
    assert SPOT_MIN_RAW == fx.MONEY.from_real(0.5)
    assert reference_price(_levels(4_999, 1, 5_001, 1), REF_MID) == SPOT_MIN_RAW
    assert model.record(update_record(10, 4_998, 1, 5_001, 1)) == "out_of_range"
    top = reference_price(_levels(327_679_998, 1, 327_679_999, 1), REF_MID)
    assert top < SPOT_LIMIT_RAW
    assert model.record(update_record(10, 327_679_998, 1, 327_679_999, 1)) == "accepted"


def test_coalescing_keeps_the_newest_price_and_the_oldest_place():
    model = _model()
    model.record(update_record(10, 1_000_000, 1, 1_000_100, 1, seq=1), ingress_cycle=5)
    model.record(update_record(11, 2_000_000, 1, 2_000_100, 1, seq=2), ingress_cycle=6)
    model.record(update_record(10, 1_000_100, 1, 1_000_200, 1, seq=3, flags=FLAG_NOT_TRADING),
                 ingress_cycle=7)
    assert model.counters["coalesced"] == 1
    first, second = model.take(), model.take()
    assert model.take() is None
    assert (first.entry.locate, first.context.seq, first.context.ingress_cycle,
            first.context.flags) == (10, 3, 7, FLAG_NOT_TRADING)
    assert first.context.spot == reference_price(_levels(1_000_100, 1, 1_000_200, 1), REF_MID)
    assert (second.entry.locate, second.context.seq) == (11, 2)
    assert model.counters["walks"] == 2


def test_walk_words_are_the_pricer_datapath_lane_by_row():
    model = _model(rows_per_entry=(9, 7))
    model.record(update_record(11, 1_234_500, 3, 1_234_600, 9, seq=77, msg_index=70_000 % 65_536,
                               flags=FLAG_STALE), ingress_cycle=(1 << 32) + 12)
    walk = model.take()
    words = model.walk(walk)
    entry = walk.entry
    assert (entry.first, entry.count) == (9, 7)
    expected = price_chain(walk.context.spot, model.rows[9:16])
    for name in ("price", "delta", "gamma", "vega", "theta"):
        assert np.array_equal(words[name], getattr(expected, name))
    assert words["option_id"].tolist() == list(range(9, 16))
    assert words["lane"].tolist() == [r % CONFIG.lanes for r in range(9, 16)]
    assert words["last"].tolist() == [0] * 6 + [1]
    assert set(words["underlying"].tolist()) == {11} and set(words["flags"].tolist()) == {FLAG_STALE}
    assert set(words["seq"].tolist()) == {77} and set(words["ingress_cycle"].tolist()) == {12}
    assert model.counters["options"] == 7


def test_rewriting_an_entry_forgets_its_price():
    model = _model()
    quote = (1_000_000, 100, 1_000_100, 200)
    assert model.record(update_record(10, *quote)) == "accepted"
    model.write_underlying(0, Entry(10, 0, 4, True))
    assert model.record(update_record(10, *quote)) == "accepted"


def test_refused_configuration():
    model = _model()
    with pytest.raises(ConfigError):
        model.write_underlying(2, Entry(40, CONFIG.options - 2, 3, True))
    assert "bad_config" in model.sticky
    with pytest.raises(ConfigError):
        model.write_row(CONFIG.options, model.rows[0])
    with pytest.raises(ConfigError):
        model.write_position(0, 1 << 31)
    with pytest.raises(ConfigError):
        model.run_scenarios(CONFIG.scenarios + 1)
    for bad in (dict(lanes=3), dict(options=96), dict(options=4, lanes=4), dict(underlyings=0)):
        with pytest.raises(ValueError):
            ChainConfig(**{**CONFIG.__dict__, **bad})


def test_scenario_identity_scaling_is_exact():
    model = _model()
    unit = scenario_of(0.0, 0.0)
    assert unit == Scenario(1 << 61, 1 << 61, 1 << 61, 0)
    assert np.array_equal(scale_rows(model.rows, unit), model.rows)


@pytest.mark.parametrize("microprice", [False, True])
def test_scenario_grid_against_float_black_scholes(microprice):
    config = ChainConfig(options=64, underlyings=4, lanes=2, scenarios=16)
    rng = np.random.default_rng(5)
    n = 60
    underlying = 10 + np.arange(n) % 3
    base = {10: 95.5, 11: 1210.25, 12: 7.5}
    spots = np.array([base[u] for u in underlying])
    strike = spots * np.exp(rng.uniform(-0.4, 0.4, n))
    sigma = rng.uniform(0.1, 0.8, n)
    expiry = rng.uniform(0.05, 2.0, n)
    rate, dividend = rng.uniform(0, 0.08, n), rng.uniform(0, 0.04, n)
    is_put = rng.random(n) < 0.5
    rows = precompute_arrays(underlying, is_put, strike, sigma, expiry, rate, dividend)
    layout = chain_layout(rows, config)
    positions = rng.integers(-1000, 1000, n)
    model = ChainModel(config, microprice=microprice)
    for i, row in enumerate(layout.rows):
        model.write_row(i, row)
        model.write_position(i, int(positions[layout.table_row.tolist().index(i)]))
    for i, entry in enumerate(layout.entries):
        model.write_underlying(i, entry)
    for u, s in base.items():
        cents = int(round(s * 100))
        assert model.record(update_record(u, cents * 100, 10, cents * 100 + 2, 10)) == "accepted"
    shifts = ((-0.2, -0.5), (-0.2, 0.0), (0.0, 0.0), (0.15, 0.3), (0.5, 1.0))
    grid = [scenario_of(ds, dv) for ds, dv in shifts]
    for j, scenario in enumerate(grid):
        model.write_scenario(j, scenario)
    results = model.run_scenarios(len(grid))
    money = float(1 << 40)
    for (ds, dv), result in zip(shifts, results):
        spot_now = np.array([fx.MONEY.to_float(model.last_spot(
            [e.locate for e in model.entries].index(u))) for u in underlying])
        price, delta, _, vega, theta = black_float(spot_now * (1 + ds), strike, expiry,
                                                   sigma * (1 + dv), rate, dividend, is_put, False)
        want = {"value": positions @ price,
                "delta_dollars": positions @ (delta * spot_now * (1 + ds)),
                "vega": positions @ vega, "theta": positions @ theta}
        scale = np.abs(positions) @ (spot_now * (1 + ds))
        for name, value in want.items():
            got = getattr(result, name) / money
            assert abs(got - value) <= 1e-6 * scale, (ds, dv, name, got, value)
        assert result.options == n and result.skipped == 0


def test_scenario_skips_entries_without_a_price_or_out_of_range():
    model = _model(rows_per_entry=(4, 3, 2))
    model.record(update_record(10, 327_000_000, 1, 327_000_100, 1))     # S = 32700
    model.record(update_record(11, 1_000_000, 1, 1_000_100, 1))
    for i in range(7):
        model.write_position(i, 1)
    model.write_scenario(0, scenario_of(0.0, 0.0))
    model.write_scenario(1, scenario_of(0.1, 0.0))
    first, second = model.run_scenarios(2)
    assert (first.options, first.skipped) == (7, 1)          # entry 12 has no price
    assert (second.options, second.skipped) == (3, 2)        # and 32700 * 1.1 is out of range
    assert model.counters["scenario_walks"] == 6 and model.counters["scenario_skipped"] == 3
    assert "scenario_skipped" in model.sticky


def test_counters_wrap_at_32_bits():
    model = _model()
    model.counters["updates"] = 0xFFFF_FFFF
    model.record(update_record(99, 1, 1, 2, 1))
    assert model.counters["updates"] == 0
    assert set(model.counters) == set(COUNTERS)


def test_scenario_grid_order_and_ranges():
    grid = scenario_grid((-0.1, 0.1), (0.0, 0.2, 0.4))
    assert len(grid) == 6
    assert grid[1] == scenario_of(-0.1, 0.2) and grid[3] == scenario_of(0.1, 0.0)

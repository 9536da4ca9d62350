"""The pricer's bit-accurate model: arithmetic, tables, accuracy against
QuantLib, parity, Black-76 consistency, input checks and overflow freedom."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.pricing.accuracy import model_outputs, quantlib_outputs, random_sample, compare, run
from host.pricing.params import (
    OptionSpec, PricingInputError, precompute, precompute_arrays, spot_to_money,
)
from rtl.pricer import formats as fx
from rtl.pricer.model import (
    D_LIMIT_RAW, FixedPointOverflow, mul_round, ncdf_pdf, price_chain, spot_terms, table_eval,
)
from rtl.pricer.tables import TABLE_SPECS, table

INT64 = st.integers(-(1 << 63) + 1, (1 << 63) - 1)


@given(INT64, INT64, st.integers(1, 126))
@settings(max_examples=300)
def test_mul_round_is_exact_round_half_up(a, b, shift):
    exact = (a * b + (1 << (shift - 1))) >> shift
    value, fits = mul_round(np.int64(a), np.int64(b), shift)
    assert fits == (-(1 << 63) <= exact < (1 << 63))
    if fits:
        assert value == exact


def test_mul_round_rounds_ties_up_for_both_signs():
    assert mul_round(np.int64(3), np.int64(1), 1) == (2, True)     # 1.5 -> 2
    assert mul_round(np.int64(-3), np.int64(1), 1) == (-1, True)   # -1.5 -> -1
    assert mul_round(np.int64(-5), np.int64(1), 2) == (-1, True)   # -1.25 -> -1


# Bounds a little above the measured table errors (see rtl.pricer.tables).
TABLE_BOUNDS = {"LN": 1e-11, "RECIP": 4e-11, "EXP2": 6e-12, "NCDF": 2.5e-10}


@pytest.mark.parametrize("name", sorted(TABLE_SPECS))
def test_table_accuracy_against_math(name):
    t = np.linspace(0.0, 1.0, 20001, endpoint=False)
    raw = np.floor(t * 2.0 ** 62).astype(np.int64)
    raw[-1] = (1 << 62) - 1
    got = table_eval(name, raw) / 2.0 ** 62
    reference = np.array([TABLE_SPECS[name].function(x / 2.0 ** 62) for x in raw.tolist()])
    assert np.max(np.abs(got - reference)) < TABLE_BOUNDS[name]


def test_tables_are_continuous_at_segment_joins():
    for name, spec in TABLE_SPECS.items():
        coefs = table(name).astype(object)
        ends = coefs.sum(axis=1)[:-1]            # value at u = 1 of each segment
        starts = coefs[1:, 0]
        assert max(abs(int(e - s)) for e, s in zip(ends, starts)) / 2.0 ** 62 < 2 * TABLE_BOUNDS[name]


def test_ncdf_and_pdf_against_math():
    d = np.linspace(-16.0, 16.0, 64001)
    raw = np.array([fx.D.from_real(x) for x in d.tolist()], dtype=np.int64)
    n, phi = ncdf_pdf(raw)
    exact_d = raw / 2.0 ** fx.D.frac_bits
    n_ref = np.array([0.5 * math.erfc(-x / math.sqrt(2.0)) for x in exact_d])
    phi_ref = np.exp(-0.5 * exact_d ** 2) / math.sqrt(2 * math.pi)
    assert np.max(np.abs(n / 2.0 ** 62 - n_ref)) < 2.5e-10
    # relative accuracy of 2**-f, plus one PROB unit of absolute rounding
    assert np.all(np.abs(phi / 2.0 ** 62 - phi_ref) <= 1e-11 * phi_ref + 2.0 ** -62)
    # N(-d) + N(d) is exactly one .
    n_neg, phi_neg = ncdf_pdf(-raw)
    assert np.all(n + n_neg == fx.PROB.one)
    assert np.array_equal(phi, phi_neg)
    assert n[d == 0][0] == fx.PROB.one // 2
    # monotone wherever N moves by more than its table error between samples
    core = np.abs(d) <= 5
    assert np.all(np.diff(n[core]) >= 0)


def test_spot_terms_against_math():
    rng = np.random.default_rng(3)
    for spot in np.concatenate([[0.5, 1.0, 2.0, 1000.0, 32767.9999], np.exp(rng.uniform(-0.69, 10.39, 300))]):
        raw = spot_to_money(spot)
        ln_s, recip_m, exponent = spot_terms(raw)
        exact = raw / 2.0 ** 40
        assert abs(ln_s / 2.0 ** 56 - math.log(exact)) < 1e-11
        assert abs(recip_m / 2.0 ** 62 * 2.0 ** -exponent * exact - 1.0) < 4e-11


@pytest.mark.parametrize("model", ["bs", "black76"])
def test_accuracy_limits_hold_on_random_options(model):
    _, errors = run(5000, seed=11, model=model)
    for name, error in errors.items():
        assert error.passed, f"{name}: {error.worst_ratio:.3f} x limit"
    # gamma is judged on most options, not vacuously
    assert np.isfinite(errors["gamma"].error).mean() > 0.5


def test_accuracy_check_detects_a_wrong_model():
    sample = random_sample(200, seed=5)
    model = model_outputs(sample)
    reference = quantlib_outputs(sample)
    model["delta"] = model["delta"] + 1e-6
    assert not compare(sample, model, reference)["delta"].passed


def test_quantlib_reference_matches_the_analytic_engine():
    """BlackCalculator with exact T is what AnalyticEuropeanEngine computes."""
    import QuantLib as ql

    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    for days, spot, strike, sigma, r, q, put in [(30, 100.0, 95.0, 0.3, 0.04, 0.01, False),
                                                 (400, 50.0, 70.0, 1.2, 0.08, 0.03, True)]:
        t = days / 365.0
        process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(ql.SimpleQuote(spot)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc, ql.Continuous)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc, ql.Continuous)),
            ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), sigma, dc)))
        option = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Put if put else ql.Option.Call, strike),
                                  ql.EuropeanExercise(today + days))
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        sample = random_sample(1, seed=1)
        for field, value in dict(spot=spot, strike=strike, sigma=sigma, expiry=t, rate=r,
                                 dividend=q, is_put=put).items():
            getattr(sample, field)[0] = value
        ours = quantlib_outputs(sample)
        engine = dict(price=option.NPV(), delta=option.delta(), gamma=option.gamma(),
                      vega=option.vega(), theta=option.theta())
        for name, value in engine.items():
            assert ours[name][0] == pytest.approx(value, rel=1e-12, abs=1e-12)


def _pair(spot=103.25, strike=97.5, sigma=0.35, expiry=0.4, rate=0.045, dividend=0.02, black76=False):
    rows = precompute_arrays(0, [False, True], strike, sigma, expiry, rate, dividend, black76)
    return rows, price_chain(spot_to_money(spot), rows)


def test_put_call_parity_in_the_model():
    rng = np.random.default_rng(8)
    for _ in range(50):
        spot = float(np.exp(rng.uniform(0, 9)))
        rows, out = _pair(spot, spot * math.exp(rng.uniform(-0.7, 0.7)), rng.uniform(0.05, 2),
                          math.exp(rng.uniform(-5.9, 0.7)), rng.uniform(0, 0.1), rng.uniform(0, 0.05))
        s = spot_to_money(spot)
        carry = int(rows["carry_disc"][0])
        sa = (s * carry + (1 << 60)) >> 61
        kb = int(rows["strike_disc"][0])
        call, put = out.price.tolist()
        assert abs((call - put) - (sa - kb)) <= 2          # MONEY units
        assert abs((out.delta[0] - out.delta[1]) - carry) <= 2
        assert out.gamma[0] == out.gamma[1] and out.vega[0] == out.vega[1]
        assert out.d1[0] == out.d1[1]


def test_black76_is_black_scholes_in_forward_form():
    rate, expiry, forward = 0.05, 0.75, 250.0
    rows76, out76 = _pair(forward, 240.0, 0.4, expiry, rate, 0.0, black76=True)
    rows_bs, out_bs = _pair(forward, 240.0, 0.4, expiry, rate, rate, black76=False)
    for name, _, fmt in fx.PARAM_FIELDS:
        if fmt is not None:
            assert np.array_equal(rows76[name], rows_bs[name]), name
    assert all(np.array_equal(a, b) for a, b in zip(out76[:-1], out_bs[:-1]))
    # An option on the stock equals an option on its forward F = S exp((r - q) T).
    spot, dividend = 240.0, 0.015
    fwd = spot * math.exp((rate - dividend) * expiry)
    _, on_stock = _pair(spot, 230.0, 0.4, expiry, rate, dividend)
    _, on_fwd = _pair(fwd, 230.0, 0.4, expiry, rate, 0.0, black76=True)
    money = fx.MONEY.to_float
    assert np.allclose(money(on_stock.price), money(on_fwd.price), rtol=0, atol=1e-7 * spot)
    growth = math.exp((rate - dividend) * expiry)
    assert np.allclose(fx.DELTA.to_float(on_stock.delta), fx.DELTA.to_float(on_fwd.delta) * growth,
                       rtol=0, atol=5e-7)


@pytest.mark.parametrize("field, value, words", [
    ("strike", 0.0, "strike must be positive"),
    ("strike", -5.0, "strike must be positive"),
    ("sigma", 0.0, "sigma (volatility) must be positive"),
    ("sigma", -0.2, "sigma (volatility) must be positive"),
    ("expiry", 0.0, "expiry (time to expiry in years) must be positive"),
    ("expiry", -1.0, "expiry (time to expiry in years) must be positive"),
    ("sigma", float("nan"), "sigma must be a finite number"),
    ("sigma", 5.0, "sigma above"),
    ("expiry", 30.0, "expiry outside"),
    ("rate", 0.9, "rate outside"),
    ("strike", 1e6, "strike outside"),
])
def test_host_precomputation_rejects_bad_options(field, value, words):
    args = dict(strike=100.0, sigma=0.3, expiry=0.5, rate=0.03, dividend=0.01)
    args[field] = [1.0 if field == "strike" else 0.2, value] if field != "expiry" else [0.5, value]
    with pytest.raises(PricingInputError, match="option 1: " + words.replace("(", r"\(").replace(")", r"\)")):
        precompute_arrays(0, False, **args)


@pytest.mark.parametrize("spot, words", [(0.0, "positive"), (-3.0, "positive"),
                                         (float("inf"), "finite"), (40000.0, "range"), (0.1, "range")])
def test_bad_spots_rejected(spot, words):
    with pytest.raises(PricingInputError, match=words):
        spot_to_money(spot)


def test_model_refuses_non_positive_spot_and_foreign_rows():
    rows = precompute([OptionSpec(0, False, 100.0, 0.2, 1.0, 0.01)])
    with pytest.raises(ValueError):
        price_chain(0, rows)
    with pytest.raises(TypeError):
        price_chain(spot_to_money(100.0), np.zeros(1, dtype=[("strike", "<i8")]))


def test_tiny_total_volatility_is_refused():
    with pytest.raises(PricingInputError, match="sigma\\*sqrt\\(expiry\\)"):
        precompute_arrays(0, False, 100.0, 0.01, 2.0 ** -10, 0.0, 0.0)


def _corner_rows():
    """Every corner of the documented ranges the host admits."""
    rows = []
    for strike, expiry, rate, dividend, put, b76 in itertools.product(
            (float(fx.STRIKE_MIN), float(fx.STRIKE_MAX)), (fx.EXPIRY_MIN, fx.EXPIRY_MAX),
            (fx.RATE_MIN, fx.RATE_MAX), (fx.RATE_MIN, fx.RATE_MAX), (False, True), (False, True)):
        root_t = math.sqrt(expiry)
        for sigma in {max(fx.TOTAL_VOL_MIN / root_t, 1e-9), min(fx.SIGMA_MAX, fx.TOTAL_VOL_MAX / root_t)}:
            rows.append(precompute_arrays(0, put, strike, sigma, expiry, rate, dividend, b76))
    return np.concatenate(rows)


def test_no_fixed_point_overflow_over_the_documented_ranges():
    rows = _corner_rows()
    assert len(rows) == 128
    tick = 2.0 ** -40
    for spot in (float(fx.SPOT_MIN), 1.0, 181.0, float(fx.SPOT_MAX) - tick):
        out = price_chain(fx.MONEY.from_real(spot), rows)     # raises FixedPointOverflow otherwise
        assert np.all(np.abs(out.d1) <= D_LIMIT_RAW)
        assert np.all((out.n1 >= 0) & (out.n1 <= fx.PROB.one))
        assert np.all(out.phi >= 0) and np.all(out.gamma >= 0) and np.all(out.vega >= 0)
        price = fx.MONEY.to_float(out.price)
        bound = np.maximum(fx.DISC.to_float(rows["carry_disc"]) * spot, fx.MONEY.to_float(rows["strike_disc"]))
        assert np.all(price >= -1e-9) and np.all(price <= bound + 1e-9)
        # the widest output stays inside its format with room to spare
        assert np.max(np.abs(out.gamma)) < fx.GAMMA.max_raw // 2


def test_overflow_outside_the_ranges_is_reported():
    spot = fx.MONEY.from_real(100.0)
    rows = precompute_arrays(0, False, [100.0, 100.0], 0.3, 0.5, 0.03, 0.01)
    price_chain(spot, rows)
    # at the money with the largest inv_vol and carry_disc the formats hold:
    # gamma * S = phi * inv_vol * carry_disc (~1600) exceeds GAMMA_S
    rows["log_offset"][1] = -spot_terms(spot)[0]
    rows["inv_vol"][1] = fx.INV_VOL.max_raw
    rows["carry_disc"][1] = fx.DISC.max_raw
    with pytest.raises(FixedPointOverflow, match="index 1"):
        price_chain(spot, rows)
    # a sum: a strike_disc far outside the ranges makes the deep-ITM call price wrap
    rows = precompute_arrays(0, False, [100.0], 0.3, 0.5, 0.03, 0.01)
    rows["strike_disc"] = fx.MONEY.min_raw
    rows["log_offset"] = fx.LOG.from_real(10)
    with pytest.raises(FixedPointOverflow, match="index 0"):
        price_chain(spot, rows)


def test_accuracy_command_prints_the_table():
    import argparse
    import io

    from host.pricing import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["pricer-accuracy", "--n", "300", "--seed", "4", "--model", "black76"])
    assert (args.n, args.seed, args.model) == (300, 4, "black76")
    out = io.StringIO()
    assert cli.report(args.n, args.seed, args.model, worst=1, out=out)
    lines = out.getvalue().splitlines()
    rows = [line for line in lines if not line.startswith(" ") and line.split()[:1] in (["price"], ["delta"], ["gamma"], ["vega"], ["theta"])]
    assert len(rows) == 5 and all(row.endswith("pass") for row in rows)
    assert sum("x limit" in line for line in lines) == 5

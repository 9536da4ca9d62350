"""Accuracy of the fixed-point pricer against QuantLib (double precision).

Random options are priced by the bit-accurate model (:mod:`rtl.pricer.model`)
one underlying chain at a time, as the fabric does, and by QuantLib's
``BlackCalculator`` -- the calculator ``AnalyticEuropeanEngine`` itself uses
-- fed the exact year fraction T (no calendar or day counter in between).
QuantLib's conventions: vega per 1.00 of volatility, theta per year (the
change of value as time passes), Black-76 Greeks with respect to the futures
price.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from host.pricing.params import precompute_arrays, spot_to_money
from rtl.pricer.formats import OUTPUT_FORMATS
from rtl.pricer.model import price_chain

OUTPUTS = ("price", "delta", "gamma", "vega", "theta")
GAMMA_FLOOR = 1e-6        # gamma is judged where gamma * S >= this
LIMIT_TEXT = {
    "price": "1e-7*S",
    "delta": "2e-7",
    "gamma": "1e-5 rel (gamma*S>=1e-6)",
    "vega": "1e-7*S",
    "theta": "max(1e-6*S, 1e-5*|theta|)",
}
OPTIONS_PER_UNDERLYING = 100


@dataclass
class Sample:
    """Random options and their spots (one spot per underlying)."""

    spot: np.ndarray          # per option, the underlying's S (or F)
    underlying: np.ndarray
    is_put: np.ndarray
    strike: np.ndarray
    sigma: np.ndarray
    expiry: np.ndarray
    rate: np.ndarray
    dividend: np.ndarray
    black76: bool


def random_sample(n: int, seed: int = 1, model: str = "bs",
                  spot_range: tuple[float, float] = (0.5, 32000.0)) -> Sample:
    """S log-uniform over the spot range (price4 ticks), S/K log-uniform in [0.5, 2],
    T log-uniform from 1 day to 2 years, sigma log-uniform 5%..200%, r in
    [0, 10%], q in [0, 5%] (0 for Black-76), calls and puts alike."""
    rng = np.random.default_rng(seed)
    underlyings = max(1, n // OPTIONS_PER_UNDERLYING)
    spots = np.round(np.exp(rng.uniform(*np.log(spot_range), underlyings)), 4)
    underlying = rng.integers(0, underlyings, n)
    spot = spots[underlying]
    strike = spot / np.exp(rng.uniform(math.log(0.5), math.log(2.0), n))
    black76 = model == "black76"
    return Sample(
        spot=spot,
        underlying=underlying,
        is_put=rng.random(n) < 0.5,
        strike=strike,
        sigma=np.exp(rng.uniform(math.log(0.05), math.log(2.0), n)),
        expiry=np.exp(rng.uniform(math.log(1 / 365), math.log(2.0), n)),
        rate=rng.uniform(0.0, 0.10, n),
        dividend=np.zeros(n) if black76 else rng.uniform(0.0, 0.05, n),
        black76=black76,
    )


def model_outputs(sample: Sample) -> dict[str, np.ndarray]:
    """The fixed-point pricer's outputs as floats, chain by chain."""
    rows = precompute_arrays(sample.underlying, sample.is_put, sample.strike, sample.sigma,
                             sample.expiry, sample.rate, sample.dividend, sample.black76)
    out = {name: np.zeros(len(rows)) for name in OUTPUTS}
    order = np.argsort(sample.underlying, kind="stable")
    bounds = np.flatnonzero(np.diff(sample.underlying[order])) + 1
    for chain in np.split(order, bounds):
        if len(chain) == 0:
            continue
        result = price_chain(spot_to_money(sample.spot[chain[0]]), rows[chain])
        for name in OUTPUTS:
            out[name][chain] = OUTPUT_FORMATS[name].to_float(getattr(result, name))
    return out


def quantlib_outputs(sample: Sample) -> dict[str, np.ndarray]:
    """QuantLib's price and Greeks (BlackCalculator, double precision)."""
    import QuantLib as ql

    n = len(sample.spot)
    out = {name: np.zeros(n) for name in OUTPUTS}
    for i in range(n):
        spot, t = float(sample.spot[i]), float(sample.expiry[i])
        discount = math.exp(-sample.rate[i] * t)
        kind = ql.Option.Put if sample.is_put[i] else ql.Option.Call
        payoff = ql.PlainVanillaPayoff(kind, float(sample.strike[i]))
        std_dev = float(sample.sigma[i]) * math.sqrt(t)
        if sample.black76:
            calc = ql.BlackCalculator(payoff, spot, std_dev, discount)
            delta, gamma = calc.deltaForward(), calc.gammaForward()
        else:
            forward = spot * math.exp(-sample.dividend[i] * t) / discount
            calc = ql.BlackCalculator(payoff, forward, std_dev, discount)
            delta, gamma = calc.delta(spot), calc.gamma(spot)
        out["price"][i] = calc.value()
        out["delta"][i] = delta
        out["gamma"][i] = gamma
        out["vega"][i] = calc.vega(t)
        out["theta"][i] = calc.theta(spot, t)
    return out


@dataclass
class OutputError:
    name: str
    error: np.ndarray         # in the unit the limit is stated in (NaN where not judged)
    limit_ratio: np.ndarray   # error / limit
    limit: str

    @property
    def max(self) -> float:
        return float(np.nanmax(self.error)) if np.isfinite(self.error).any() else 0.0

    @property
    def mean(self) -> float:
        return float(np.nanmean(self.error)) if np.isfinite(self.error).any() else 0.0

    @property
    def worst_ratio(self) -> float:
        return float(np.nanmax(self.limit_ratio)) if np.isfinite(self.limit_ratio).any() else 0.0

    @property
    def passed(self) -> bool:
        return self.worst_ratio <= 1.0


def compare(sample: Sample, model: dict, reference: dict) -> dict[str, OutputError]:
    """Errors of every output against the reference, scaled as the limits state them."""
    s = sample.spot
    price_err = np.abs(model["price"] - reference["price"]) / s
    delta_err = np.abs(model["delta"] - reference["delta"])
    vega_err = np.abs(model["vega"] - reference["vega"]) / s
    judged = reference["gamma"] * s >= GAMMA_FLOOR
    gamma_err = np.where(judged, np.abs(model["gamma"] - reference["gamma"])
                         / np.where(judged, reference["gamma"], 1.0), np.nan)
    theta_abs = np.abs(model["theta"] - reference["theta"])
    theta_limit = np.maximum(1e-6 * s, 1e-5 * np.abs(reference["theta"]))
    return {
        "price": OutputError("price", price_err, price_err / 1e-7, LIMIT_TEXT["price"]),
        "delta": OutputError("delta", delta_err, delta_err / 2e-7, LIMIT_TEXT["delta"]),
        "gamma": OutputError("gamma", gamma_err, gamma_err / 1e-5, LIMIT_TEXT["gamma"]),
        "vega": OutputError("vega", vega_err, vega_err / 1e-7, LIMIT_TEXT["vega"]),
        # theta's error is reported relative to its limit's scale, |dtheta| / S
        "theta": OutputError("theta", theta_abs / s, theta_abs / theta_limit, LIMIT_TEXT["theta"]),
    }


def run(n: int, seed: int = 1, model: str = "bs") -> tuple[Sample, dict[str, OutputError]]:
    sample = random_sample(n, seed, model)
    return sample, compare(sample, model_outputs(sample), quantlib_outputs(sample))

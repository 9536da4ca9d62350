"""Host-side precomputation of the pricer's per-option parameter table.

The fabric pricer (:mod:`rtl.pricer.model`) never sees sigma, T, r or q: the
host turns each option into the constants of one parameter-table row
(:data:`rtl.pricer.formats.PARAM_FIELDS`) in double precision and rounds them
once into their fixed-point formats.  Inputs outside the documented operating
ranges are refused here with a :class:`PricingInputError` naming the option
and the field, so the datapath can never overflow.

Black-Scholes with a continuous dividend yield q and Black-76 (options on a
futures price F) share the datapath: Black-76 is Black-Scholes with S = F and
q = r, so its row holds ``carry_disc = exp(-r T)``, ``carry_rate = r`` and a
log offset without drift.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtl.pricer.formats import (
    EXPIRY_MAX, EXPIRY_MIN, MONEY, PARAM_FIELDS, RATE_MAX, RATE_MIN, SIGMA_MAX, SPOT_MAX,
    SPOT_MIN, STRIKE_MAX, STRIKE_MIN, TOTAL_VOL_MAX, TOTAL_VOL_MIN, Format, param_dtype,
)

MODELS = ("bs", "black76")


class PricingInputError(ValueError):
    """An option or spot the pricer cannot take (non-positive, not finite, out of range)."""


@dataclass(frozen=True)
class OptionSpec:
    """One European option as the desk describes it (rates continuously compounded)."""

    underlying: int
    is_put: bool
    strike: float
    sigma: float
    expiry: float            # years
    rate: float              # r
    dividend: float = 0.0    # q (ignored for Black-76)
    black76: bool = False


def spot_to_money(spot: float) -> int:
    """The reference price S (or futures price F) as a MONEY raw value."""
    spot = float(spot)
    if not np.isfinite(spot):
        raise PricingInputError(f"spot must be a finite number, got {spot!r}")
    if spot <= 0:
        raise PricingInputError(f"spot must be positive, got {spot!r}")
    if not SPOT_MIN <= spot < SPOT_MAX:
        raise PricingInputError(f"spot {spot} outside the pricer's range "
                                f"[{float(SPOT_MIN)}, {float(SPOT_MAX)})")
    return MONEY.from_real(spot)


def _check(name: str, values: np.ndarray, ok: np.ndarray, what: str) -> None:
    if not ok.all():
        bad = int(np.argmin(ok))
        raise PricingInputError(f"option {bad}: {name} {what}, got {values[bad]!r}")


def _to_raw(fmt: Format, values: np.ndarray, name: str) -> np.ndarray:
    scaled = np.rint(values * float(fmt.one))
    _check(name, values, (scaled >= fmt.min_raw) & (scaled <= fmt.max_raw), f"does not fit {fmt.name}")
    return scaled.astype(np.int64)


def precompute_arrays(underlying, is_put, strike, sigma, expiry, rate, dividend=0.0,
                      black76=False) -> np.ndarray:
    """Parameter-table rows for arrays (or scalars, broadcast) of option inputs."""
    strike, sigma, expiry, rate, dividend, underlying, is_put, black76 = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (strike, sigma, expiry, rate, dividend)),
        np.asarray(underlying), np.asarray(is_put, dtype=bool), np.asarray(black76, dtype=bool))
    strike, sigma, expiry, rate, dividend = (np.atleast_1d(v) for v in (strike, sigma, expiry, rate, dividend))
    underlying, is_put, black76 = (np.atleast_1d(v) for v in (underlying, is_put, black76))
    for name, values in (("strike", strike), ("sigma", sigma), ("expiry", expiry),
                         ("rate", rate), ("dividend", dividend)):
        _check(name, values, np.isfinite(values), "must be a finite number")
    _check("strike", strike, strike > 0, "must be positive")
    _check("sigma", sigma, sigma > 0, "(volatility) must be positive")
    _check("expiry", expiry, expiry > 0, "(time to expiry in years) must be positive")
    _check("strike", strike, (strike >= STRIKE_MIN) & (strike <= STRIKE_MAX),
           f"outside [{float(STRIKE_MIN)}, {float(STRIKE_MAX)}]")
    _check("sigma", sigma, sigma <= SIGMA_MAX, f"above {SIGMA_MAX}")
    _check("expiry", expiry, (expiry >= EXPIRY_MIN) & (expiry <= EXPIRY_MAX),
           f"outside [{EXPIRY_MIN}, {EXPIRY_MAX}] years")
    _check("rate", rate, (rate >= RATE_MIN) & (rate <= RATE_MAX), f"outside [{RATE_MIN}, {RATE_MAX}]")
    carry = np.where(black76, rate, dividend)
    _check("dividend", dividend, black76 | ((dividend >= RATE_MIN) & (dividend <= RATE_MAX)),
           f"outside [{RATE_MIN}, {RATE_MAX}]")
    _check("underlying", underlying, (underlying >= 0) & (underlying < 1 << 16), "not a 16-bit id")

    sqrt_t = np.sqrt(expiry)
    total_vol = sigma * sqrt_t
    _check("sigma*sqrt(expiry)", total_vol, (total_vol >= TOTAL_VOL_MIN) & (total_vol <= TOTAL_VOL_MAX),
           f"outside [{TOTAL_VOL_MIN}, {TOTAL_VOL_MAX}]")
    discount = np.exp(-rate * expiry)
    carry_disc = np.exp(-carry * expiry)
    strike_disc = strike * discount

    rows = np.zeros(len(strike), dtype=param_dtype())
    rows["underlying"] = underlying.astype(np.uint16)
    rows["is_put"] = is_put
    rows["black76"] = black76
    values = {
        "strike": strike,
        "log_offset": (rate - carry + 0.5 * sigma * sigma) * expiry - np.log(strike),
        "inv_vol": 1.0 / total_vol,
        "total_vol": total_vol,
        "sqrt_t": sqrt_t,
        "half_vol_rate": 0.5 * sigma / sqrt_t,
        "carry_disc": carry_disc,
        "strike_disc": strike_disc,
        "carry_rate": carry,
        "rate_strike_disc": rate * strike_disc,
    }
    for name, _, fmt in PARAM_FIELDS:
        if fmt is not None:
            rows[name] = _to_raw(fmt, values[name], name)
    return rows


def precompute(options) -> np.ndarray:
    """Parameter-table rows for a sequence of :class:`OptionSpec`."""
    options = list(options)
    if not options:
        return np.zeros(0, dtype=param_dtype())
    return precompute_arrays(
        [o.underlying for o in options], [o.is_put for o in options], [o.strike for o in options],
        [o.sigma for o in options], [o.expiry for o in options], [o.rate for o in options],
        [o.dividend for o in options], [o.black76 for o in options])

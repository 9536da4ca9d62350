"""Theoretical values and Greeks of one option, as the host uses them for
marks, P&L and risk.

A :class:`Theo` comes from one of two places:

* the fabric's theo records (:func:`theo_from_record`: the raw fixed-point
  fields of :mod:`rtl.common.theo_stream`, in the formats of
  :mod:`rtl.pricer.formats`);
* the host's double-precision pricer (:func:`price_option`), used when no
  record is at hand or when a record carries only theo and delta.

Conventions are the pricer's (see :mod:`host.pricing.accuracy`): prices per
share of the underlying, delta per share, gamma per share per 1.00 of spot,
vega per 1.00 of volatility, theta per year (the change in value as time
passes).  Black-76 options are priced on the futures price F and their Greeks
are with respect to F; as in :mod:`host.pricing.params`, Black-76 is
Black-Scholes with S = F and q = r.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from host.pricing.batch import black_float
from host.pricing.params import OptionSpec, PricingInputError
from rtl.pricer.formats import DELTA, GAMMA, MONEY



@dataclass(frozen=True)
class Theo:
    """Theoretical value of one contract's underlying share unit.

    ``spot`` is the underlying reference price the values were computed at;
    gamma, vega and theta may be missing (None) when the source only carries
    theo and delta.
    """

    price: float
    delta: float
    spot: float
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None

    @property
    def complete(self) -> bool:
        return self.gamma is not None and self.vega is not None and self.theta is not None

    def completed_from(self, other: "Theo") -> "Theo":
        """This theo with its missing Greeks taken from ``other``."""
        return replace(self,
                       gamma=other.gamma if self.gamma is None else self.gamma,
                       vega=other.vega if self.vega is None else self.vega,
                       theta=other.theta if self.theta is None else self.theta)


def price_option(spec: OptionSpec, spot: float) -> Theo:
    """Black-Scholes (continuous dividend yield) or Black-76 value and Greeks
    of a European option in double precision."""
    spot = float(spot)
    if not math.isfinite(spot) or spot <= 0:
        raise PricingInputError(f"spot must be a positive finite number, got {spot!r}")
    strike, sigma, expiry = float(spec.strike), float(spec.sigma), float(spec.expiry)
    for name, value in (("strike", strike), ("sigma", sigma), ("expiry", expiry)):
        if not math.isfinite(value) or value <= 0:
            raise PricingInputError(f"{name} must be a positive finite number, got {value!r}")
    rate = float(spec.rate)
    carry = rate if spec.black76 else float(spec.dividend)
    if not (math.isfinite(rate) and math.isfinite(carry)):
        raise PricingInputError("rate and dividend must be finite numbers")
    # One closed form for the host: the float engine of ``zynqmm price``.
    price, delta, gamma, vega, theta = (float(v) for v in black_float(
        spot, strike, expiry, sigma, rate, float(spec.dividend), spec.is_put, spec.black76))
    return Theo(price=price, delta=delta, spot=spot, gamma=gamma, vega=vega, theta=theta)


def no_arbitrage_bounds(spec: OptionSpec, spot_low: float, spot_high: float) -> tuple[float, float]:
    """(lowest, highest) value a European option can have while the
    underlying trades between ``spot_low`` and ``spot_high``.

    Call: max(0, S e^-qT - K e^-rT) <= C <= S e^-qT; put: max(0, K e^-rT -
    S e^-qT) <= P <= K e^-rT.  The lower bound uses the spot least favourable
    to the option holder, the upper bound the most favourable one, so no fair
    price is ever outside.
    """
    carry = spec.rate if spec.black76 else spec.dividend
    carry_disc = math.exp(-carry * spec.expiry)
    strike_disc = spec.strike * math.exp(-spec.rate * spec.expiry)
    if spec.is_put:
        return max(0.0, strike_disc - spot_high * carry_disc), strike_disc
    return max(0.0, spot_low * carry_disc - strike_disc), spot_high * carry_disc


def theo_from_record(fields: dict[str, int]) -> Theo:
    """A :class:`Theo` from the raw fields of one fabric theo record
    (``rtl.common.theo_stream.unpack_theo``)."""
    try:
        return Theo(price=MONEY.to_float(fields["price"]),
                    delta=DELTA.to_float(fields["delta"]),
                    spot=MONEY.to_float(fields["spot"]),
                    gamma=GAMMA.to_float(fields["gamma"]),
                    vega=MONEY.to_float(fields["vega"]),
                    theta=MONEY.to_float(fields["theta"]))
    except KeyError as exc:
        raise ValueError(f"theo record lacks the field {exc.args[0]!r}") from None

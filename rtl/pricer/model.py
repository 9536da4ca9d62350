"""Bit-accurate model of the option pricer; this is the block's specification.

On every new reference price S of an underlying (MONEY format, > 0) the
pricer computes, once:

* ``S = m * 2**e`` with m in [1, 2) (leading-one detection, exact),
* ``ln S = e ln 2 + LN(m - 1)`` (LOG) and ``1/m = RECIP(m - 1)`` (PROB),

and then, for every option of the underlying, from its parameter-table row
(:data:`rtl.pricer.formats.PARAM_FIELDS`, precomputed by
:mod:`host.pricing.params`):

* ``d1 = clamp((ln S + log_offset) * inv_vol, +-D_LIMIT)``, ``d2 = d1 - total_vol``
* ``N(d) = NCDF(|d| / 8)`` mirrored for d < 0 (1 for |d| >= 8),
  ``phi(d1) = 2**-frac(z) / sqrt(2 pi) >> int(z)`` with ``z = d1**2 / (2 ln 2)``
* ``SA = S * carry_disc``; call ``price = SA N(d1) - KB N(d2)``,
  put ``price = KB N(-d2) - SA N(-d1)`` with ``N(-d) = 1 - N(d)`` exactly
* ``delta = carry_disc * N(d1)`` (call), ``-carry_disc * N(-d1)`` (put)
* ``gamma = phi * inv_vol * carry_disc * (1/m) * 2**-e``
* ``vega = SA phi sqrt_t``
* ``theta = -SA phi half_vol_rate +- carry_rate SA N(+-d1) -+ rKB N(+-d2)``

Every product is exact and rounded half up into its target format
(:func:`mul_round`); sums are plain 64-bit adds; the model flags any product
or sum that leaves 64 bits (:class:`FixedPointOverflow`), which the operating
ranges rule out; every table lookup is :func:`_poly` (Horner on the
segment's cubic, each step rounded to 62 fraction bits).  Black-76 uses the
same datapath: the host stores the forward-form constants (q = r).
"""
from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

import numpy as np
from numba import njit

from rtl.pricer.formats import (
    COEF, D, D_LIMIT, DELTA, DISC, GAMMA, GAMMA_S, HALF_SQUARE, HALF_VOL_RATE,
    INV_VOL, LOG, MONEY, PROB, RATE, param_dtype,
)
from rtl.pricer.tables import NCDF_RANGE, TABLE_SPECS, table

# Constants to more digits than a double holds, so they round exactly once.
LN2 = Fraction("0.693147180559945309417232121458176568")
INV_LN2 = Fraction("1.442695040888963407359924681001892137")
INV_SQRT_2PI = Fraction("0.398942280401432677939946059934381868")

LN2_LOG = LOG.from_real(LN2)
INV_LN2_PROB = PROB.from_real(INV_LN2)
INV_SQRT_2PI_PROB = PROB.from_real(INV_SQRT_2PI)
ONE_PROB = PROB.one
D_LIMIT_RAW = D_LIMIT << D.frac_bits
NCDF_END_RAW = NCDF_RANGE << D.frac_bits
TABLE_FRAC = COEF.frac_bits          # table arguments and results: 62 fraction bits
# Plain ints for the compiled kernels (they cannot read Format attributes).
MONEY_FRAC = MONEY.frac_bits
LOG_FRAC = LOG.frac_bits
HALF_SQUARE_FRAC = HALF_SQUARE.frac_bits

LN_BITS = TABLE_SPECS["LN"].seg_bits
RECIP_BITS = TABLE_SPECS["RECIP"].seg_bits
EXP2_BITS = TABLE_SPECS["EXP2"].seg_bits
NCDF_BITS = TABLE_SPECS["NCDF"].seg_bits

# Shifts that bring each product to its target format.
SHIFT_D1 = LOG.frac_bits + INV_VOL.frac_bits - D.frac_bits
SHIFT_HALF_SQUARE = 2 * D.frac_bits + 1 - HALF_SQUARE.frac_bits
SHIFT_SA = MONEY.frac_bits + DISC.frac_bits - MONEY.frac_bits
SHIFT_MONEY_PROB = PROB.frac_bits
SHIFT_DELTA = DISC.frac_bits + PROB.frac_bits - DELTA.frac_bits
SHIFT_GAMMA_S = PROB.frac_bits + INV_VOL.frac_bits - GAMMA_S.frac_bits
SHIFT_GAMMA_S_DISC = DISC.frac_bits
SHIFT_GAMMA = GAMMA_S.frac_bits + PROB.frac_bits - GAMMA.frac_bits   # plus the exponent e
SHIFT_VEGA = DISC.frac_bits
SHIFT_DECAY = HALF_VOL_RATE.frac_bits
SHIFT_CARRY = RATE.frac_bits
# d1 in D to an NCDF argument (|d| / 8 with 62 fraction bits).
NCDF_ARG_SHIFT = TABLE_FRAC - D.frac_bits - 3
assert NCDF_RANGE == 8 and NCDF_ARG_SHIFT >= 0

_M32 = np.uint64(0xFFFF_FFFF)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U32 = np.uint64(32)


class FixedPointOverflow(ArithmeticError):
    """A product left its 64-bit format: the inputs were outside the documented ranges."""


@njit(cache=True)
def _umul128(a, b):
    """Unsigned 64 x 64 -> 128 bit product as (high, low) words."""
    a_lo = a & _M32
    a_hi = a >> _U32
    b_lo = b & _M32
    b_hi = b >> _U32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    p3 = a_hi * b_hi
    mid = (p0 >> _U32) + (p1 & _M32) + (p2 & _M32)
    lo = (p0 & _M32) | (mid << _U32)
    hi = p3 + (p1 >> _U32) + (p2 >> _U32) + (mid >> _U32)
    return hi, lo


@njit(cache=True)
def mul_round(a, b, shift):
    """``floor((a * b + 2**(shift-1)) / 2**shift)`` for int64 a, b and 1 <= shift <= 126.

    Returns (value, fits): ``fits`` is False when the rounded result does not
    fit 64 bits (then ``value`` is its low word)."""
    negative = (a < 0) != (b < 0)
    ua = np.uint64(-a) if a < 0 else np.uint64(a)
    ub = np.uint64(-b) if b < 0 else np.uint64(b)
    hi, lo = _umul128(ua, ub)
    if negative:
        lo = ~lo + _U1
        hi = ~hi + (_U1 if lo == _U0 else _U0)
    half_bit = shift - 1
    if half_bit < 64:
        added = lo + (_U1 << np.uint64(half_bit))
        if added < lo:
            hi = hi + _U1
        lo = added
    else:
        hi = hi + (_U1 << np.uint64(half_bit - 64))
    signed_hi = np.int64(hi)
    if shift < 64:
        result = np.int64((lo >> np.uint64(shift)) | (hi << np.uint64(64 - shift)))
        rest = signed_hi >> np.int64(shift)
        fits = rest == (result >> np.int64(63))
    else:
        result = signed_hi >> np.int64(shift - 64)
        fits = True
    return result, fits


@njit(cache=True)
def _add(a, b):
    """a + b and whether it fits 64 bits (the hardware adders do not widen)."""
    result = a + b
    return result, ((a ^ result) & (b ^ result)) >= 0


@njit(cache=True)
def _sub(a, b):
    """a - b and whether it fits 64 bits."""
    result = a - b
    return result, ((a ^ b) & (a ^ result)) >= 0


@njit(cache=True)
def _round_shift(value, shift):
    """Round-half-up right shift of a non-negative int64 by 0..; 0 past 63 bits."""
    if shift <= 0:
        return value
    if shift >= 63:
        return np.int64(0)
    return (value + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)


@njit(cache=True)
def _poly(coefs, seg_bits, t):
    """Table lookup: cubic of the segment of t (0 <= t < 2**62), 62 fraction bits."""
    low = np.int64(TABLE_FRAC - seg_bits)
    index = t >> low
    u = (t - (index << low)) << np.int64(seg_bits)
    acc = coefs[index, 3]
    ok = True
    for k in range(2, -1, -1):
        product, fits = mul_round(acc, u, TABLE_FRAC)
        ok = ok and fits
        acc = product + coefs[index, k]
    return acc, ok


@njit(cache=True)
def _spot_terms(spot, ln_tab, recip_tab):
    """(ln S in LOG, 1/m in PROB, e) for S = m * 2**e in MONEY."""
    top = 0
    for bit in range(63):
        if (spot >> np.int64(bit)) & np.int64(1):
            top = bit
    mantissa = spot << np.int64(TABLE_FRAC - top)
    t = mantissa - (np.int64(1) << np.int64(TABLE_FRAC))
    exponent = top - MONEY_FRAC
    ln_m, ok1 = _poly(ln_tab, LN_BITS, t)
    recip_m, ok2 = _poly(recip_tab, RECIP_BITS, t)
    ln_s = exponent * LN2_LOG + _round_shift(ln_m, TABLE_FRAC - LOG_FRAC)
    return ln_s, recip_m, exponent, ok1 and ok2


@njit(cache=True)
def _ncdf(d, ncdf_tab):
    magnitude = -d if d < 0 else d
    if magnitude >= NCDF_END_RAW:
        p = np.int64(ONE_PROB)
        ok = True
    else:
        p, ok = _poly(ncdf_tab, NCDF_BITS, magnitude << np.int64(NCDF_ARG_SHIFT))
        if p > ONE_PROB:
            p = np.int64(ONE_PROB)
    if d < 0:
        p = ONE_PROB - p
    return p, ok


@njit(cache=True)
def _pdf(d, exp2_tab):
    """phi(d) in PROB for |d| <= D_LIMIT."""
    half_square, ok1 = mul_round(d, d, SHIFT_HALF_SQUARE)
    z, ok2 = mul_round(half_square, INV_LN2_PROB, TABLE_FRAC)
    whole = z >> np.int64(HALF_SQUARE_FRAC)
    frac = (z - (whole << np.int64(HALF_SQUARE_FRAC))) << np.int64(TABLE_FRAC - HALF_SQUARE_FRAC)
    power, ok3 = _poly(exp2_tab, EXP2_BITS, frac)
    base, ok4 = mul_round(power, INV_SQRT_2PI_PROB, TABLE_FRAC)
    return _round_shift(base, whole), ok1 and ok2 and ok3 and ok4


@njit(cache=True)
def _price_options(spot, is_put, log_offset, inv_vol, total_vol, sqrt_t, half_vol_rate,
                   carry_disc, strike_disc, carry_rate, rate_strike_disc,
                   ln_tab, recip_tab, exp2_tab, ncdf_tab, out):
    ln_s, recip_m, exponent, ok_spot = _spot_terms(spot, ln_tab, recip_tab)
    overflow = np.zeros(is_put.shape[0], dtype=np.bool_)
    for i in range(is_put.shape[0]):
        x, ok_x = _add(ln_s, log_offset[i])
        d1, ok = mul_round(x, inv_vol[i], SHIFT_D1)
        if not ok or d1 > D_LIMIT_RAW or d1 < -D_LIMIT_RAW:
            d1 = np.int64(D_LIMIT_RAW) if (x < 0) == (inv_vol[i] < 0) else np.int64(-D_LIMIT_RAW)
        d2, ok = _sub(d1, total_vol[i])
        ok = ok and ok_spot and ok_x
        n1, f = _ncdf(d1, ncdf_tab)
        ok = ok and f
        n2, f = _ncdf(d2, ncdf_tab)
        ok = ok and f
        phi, f = _pdf(d1, exp2_tab)
        ok = ok and f
        sa, f = mul_round(spot, carry_disc[i], SHIFT_SA)
        ok = ok and f
        if is_put[i]:
            asset_prob = ONE_PROB - n1
            cash_prob = ONE_PROB - n2
        else:
            asset_prob = n1
            cash_prob = n2
        asset_leg, f1 = mul_round(sa, asset_prob, SHIFT_MONEY_PROB)
        cash_leg, f2 = mul_round(strike_disc[i], cash_prob, SHIFT_MONEY_PROB)
        delta, f3 = mul_round(carry_disc[i], asset_prob, SHIFT_DELTA)
        rate_leg, f4 = mul_round(rate_strike_disc[i], cash_prob, SHIFT_MONEY_PROB)
        carry_leg, f5 = mul_round(asset_leg, carry_rate[i], SHIFT_CARRY)
        ok = ok and f1 and f2 and f3 and f4 and f5
        gamma_s, f1 = mul_round(phi, inv_vol[i], SHIFT_GAMMA_S)
        gamma_s, f2 = mul_round(gamma_s, carry_disc[i], SHIFT_GAMMA_S_DISC)
        gamma, f3 = mul_round(gamma_s, recip_m, SHIFT_GAMMA + exponent)
        sa_phi, f4 = mul_round(sa, phi, SHIFT_MONEY_PROB)
        vega, f5 = mul_round(sa_phi, sqrt_t[i], SHIFT_VEGA)
        decay, f6 = mul_round(sa_phi, half_vol_rate[i], SHIFT_DECAY)
        ok = ok and f1 and f2 and f3 and f4 and f5 and f6
        if is_put[i]:
            price, f1 = _sub(cash_leg, asset_leg)
            delta = -delta
            theta, f2 = _sub(rate_leg, carry_leg)
        else:
            price, f1 = _sub(asset_leg, cash_leg)
            theta, f2 = _sub(carry_leg, rate_leg)
        theta, f3 = _sub(theta, decay)
        ok = ok and f1 and f2 and f3
        out[0, i] = price
        out[1, i] = delta
        out[4, i] = theta
        out[2, i] = gamma
        out[3, i] = vega
        out[5, i] = d1
        out[6, i] = d2
        out[7, i] = n1
        out[8, i] = n2
        out[9, i] = phi
        overflow[i] = not ok
    return ln_s, overflow


OUTPUTS = ("price", "delta", "gamma", "vega", "theta", "d1", "d2", "n1", "n2", "phi")


class ChainResult(NamedTuple):
    """Raw fixed-point results for one chain (formats: OUTPUT_FORMATS; d1, d2 in
    D; n1, n2, phi in PROB) and ln S (LOG)."""

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    d1: np.ndarray
    d2: np.ndarray
    n1: np.ndarray
    n2: np.ndarray
    phi: np.ndarray
    ln_spot: int


def price_chain(spot: int, params: np.ndarray) -> ChainResult:
    """Price every option of ``params`` (a :func:`param_dtype` array) at spot ``spot`` (MONEY raw)."""
    if params.dtype != param_dtype():
        raise TypeError("params must use rtl.pricer.formats.param_dtype()")
    spot = int(spot)
    if not 0 < spot <= MONEY.max_raw:
        raise ValueError(f"spot must be a positive MONEY value, got raw {spot}")
    out = np.zeros((len(OUTPUTS), len(params)), dtype=np.int64)
    cols = [np.ascontiguousarray(params[name]).astype(np.int64) for name in (
        "log_offset", "inv_vol", "total_vol", "sqrt_t", "half_vol_rate",
        "carry_disc", "strike_disc", "carry_rate", "rate_strike_disc")]
    ln_s, overflow = _price_options(
        np.int64(spot), np.ascontiguousarray(params["is_put"]).astype(np.bool_), *cols,
        table("LN"), table("RECIP"), table("EXP2"), table("NCDF"), out)
    if overflow.any():
        raise FixedPointOverflow(f"{int(overflow.sum())} option(s) overflowed a fixed-point format "
                                 f"(first at index {int(np.argmax(overflow))})")
    return ChainResult(*out, ln_spot=int(ln_s))


# Single-function views of the datapath, for table tests and the HDL bench.

def table_eval(name: str, t_raw: np.ndarray) -> np.ndarray:
    """The table ``name`` at arguments ``t_raw`` (PROB raw in [0, 1))."""
    return _map_table(table(name), TABLE_SPECS[name].seg_bits, np.asarray(t_raw, dtype=np.int64))


@njit(cache=True)
def _map_table(tab, seg_bits, t_values):
    out = np.empty_like(t_values)
    for i in range(t_values.shape[0]):
        out[i] = _poly(tab, seg_bits, t_values[i])[0]
    return out


@njit(cache=True)
def _map_ncdf_pdf(d_values, ncdf_tab, exp2_tab):
    n = np.empty_like(d_values)
    p = np.empty_like(d_values)
    for i in range(d_values.shape[0]):
        n[i] = _ncdf(d_values[i], ncdf_tab)[0]
        p[i] = _pdf(d_values[i], exp2_tab)[0]
    return n, p


def ncdf_pdf(d_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N(d), phi(d)) in PROB for d in D raw, |d| <= D_LIMIT."""
    d_raw = np.asarray(d_raw, dtype=np.int64)
    if np.any(np.abs(d_raw) > D_LIMIT_RAW):
        raise ValueError("d outside +-D_LIMIT")
    return _map_ncdf_pdf(d_raw, table("NCDF"), table("EXP2"))


def spot_terms(spot: int) -> tuple[int, int, int]:
    """(ln S in LOG, 1/m in PROB, e) with S = m * 2**e, for S in MONEY raw."""
    if not 0 < int(spot) <= MONEY.max_raw:
        raise ValueError("spot must be positive")
    ln_s, recip_m, exponent, _ = _spot_terms(np.int64(spot), table("LN"), table("RECIP"))
    return int(ln_s), int(recip_m), int(exponent)

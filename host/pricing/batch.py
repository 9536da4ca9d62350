"""Pricing arbitrary option rows: the fabric's bit-accurate arithmetic or
float64 closed forms.

Rows come as dictionaries of text (a CSV file's): ``S, K, T, sigma, r, q,
type`` (call / put, or C / P) and optionally ``model`` (bs, the default,
or black76: S is then the futures price and q is ignored).  Each row is
either priced or gets a :class:`RowError` naming the row and what is wrong
with it; one bad row never stops the others.

* ``fabric``: :func:`host.pricing.params.precompute_arrays` and
  :func:`rtl.pricer.model.price_chain`, the chain pricer's datapath bit for
  bit (rows sharing S are priced as one chain, as the fabric does), then
  the raw outputs as floats.
* ``float``: Black-Scholes with a continuous yield / Black-76 in float64,
  the same conventions (vega per 1.00 of volatility, theta per year as
  time passes, Black-76 Greeks with respect to the futures price).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from host.pricing.params import MODELS, PricingInputError, precompute_arrays, spot_to_money
from rtl.pricer.formats import OUTPUT_FORMATS
from rtl.pricer.model import price_chain

INPUT_COLUMNS = ("S", "K", "T", "sigma", "r", "q", "type")
OUTPUT_COLUMNS = ("price", "delta", "gamma", "vega", "theta")
ENGINES = ("fabric", "float")
_KINDS = {"call": False, "c": False, "put": True, "p": True}


@dataclass(frozen=True)
class OptionRow:
    spot: float
    strike: float
    expiry: float
    sigma: float
    rate: float
    dividend: float
    is_put: bool
    black76: bool


@dataclass(frozen=True)
class RowError:
    row: int          # 1-based data row
    message: str


def parse_row(number: int, fields: Mapping[str, str]) -> OptionRow:
    """One input row; :class:`PricingInputError` names what is wrong."""
    values = {}
    for name in INPUT_COLUMNS[:-1]:
        text = (fields.get(name) or "").strip()
        if not text:
            raise PricingInputError(f"row {number}: {name} is missing")
        try:
            values[name] = float(text)
        except ValueError:
            raise PricingInputError(f"row {number}: {name} {text!r} is not a number") from None
        if not math.isfinite(values[name]):
            raise PricingInputError(f"row {number}: {name} must be finite, got {text!r}")
    kind = (fields.get("type") or "").strip().lower()
    if kind not in _KINDS:
        raise PricingInputError(f"row {number}: type {fields.get('type')!r} is not call or put")
    model = (fields.get("model") or "bs").strip().lower() or "bs"
    if model not in MODELS:
        raise PricingInputError(f"row {number}: model {fields.get('model')!r} is not "
                                f"{' or '.join(MODELS)}")
    return OptionRow(values["S"], values["K"], values["T"], values["sigma"], values["r"],
                     values["q"], _KINDS[kind], model == "black76")


# The precomputation's names for the CSV columns.
_COLUMN_OF = (("sigma*sqrt(expiry)", "sigma*sqrt(T)"), ("spot", "S"), ("strike", "K"),
              ("expiry", "T"), ("rate", "r"), ("dividend", "q"))


def _in_csv_terms(message: str) -> str:
    message = message.replace("option 0: ", "")
    for name, column in _COLUMN_OF:
        if message.startswith(name):
            return column + message[len(name):]
    return message


def _checked(number: int, row: OptionRow) -> tuple[int, np.ndarray]:
    """The fabric's inputs of a row (MONEY spot, parameter row), range-checked."""
    try:
        spot = spot_to_money(row.spot)
        params = precompute_arrays(0, row.is_put, row.strike, row.sigma, row.expiry, row.rate,
                                   row.dividend, row.black76)
    except PricingInputError as exc:
        raise PricingInputError(f"row {number}: {_in_csv_terms(str(exc))}") from None
    return spot, params


def price_fabric(rows: list[OptionRow], numbers: list[int]) -> tuple[np.ndarray, list[RowError]]:
    out = np.full((len(rows), len(OUTPUT_COLUMNS)), np.nan)
    errors, spots, params, good = [], [], [], []
    for i, (number, row) in enumerate(zip(numbers, rows)):
        try:
            spot, row_params = _checked(number, row)
        except PricingInputError as exc:
            errors.append(RowError(number, str(exc)))
            continue
        spots.append(spot)
        params.append(row_params)
        good.append(i)
    if good:
        spots_arr = np.array(spots, dtype=np.int64)
        table = np.concatenate(params)
        for spot in np.unique(spots_arr):
            chain = np.flatnonzero(spots_arr == spot)
            result = price_chain(int(spot), table[chain])
            for k, name in enumerate(OUTPUT_COLUMNS):
                out[np.array(good)[chain], k] = OUTPUT_FORMATS[name].to_float(getattr(result, name))
    return out, errors


_erfc = np.frompyfunc(math.erfc, 1, 1)


def _ncdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.asarray(_erfc(-np.asarray(x) / math.sqrt(2.0)), dtype=np.float64)


def black_float(spot, strike, expiry, sigma, rate, dividend, is_put, black76):
    """Price and Greeks in float64 (arrays broadcast); q = r for Black-76."""
    spot, strike, expiry, sigma, rate, dividend = (np.asarray(v, dtype=np.float64) for v in
                                                   (spot, strike, expiry, sigma, rate, dividend))
    is_put, black76 = np.asarray(is_put, dtype=bool), np.asarray(black76, dtype=bool)
    carry = np.where(black76, rate, dividend)
    root_t = np.sqrt(expiry)
    total = sigma * root_t
    d1 = (np.log(spot / strike) + (rate - carry + 0.5 * sigma * sigma) * expiry) / total
    d2 = d1 - total
    carry_disc = np.exp(-carry * expiry)
    disc = np.exp(-rate * expiry)
    pdf = np.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    sign = np.where(is_put, -1.0, 1.0)
    n1, n2 = _ncdf(sign * d1), _ncdf(sign * d2)
    price = sign * (spot * carry_disc * n1 - strike * disc * n2)
    delta = sign * carry_disc * n1
    gamma = carry_disc * pdf / (spot * total)
    vega = spot * carry_disc * pdf * root_t
    theta = (-spot * carry_disc * pdf * sigma / (2.0 * root_t)
             + sign * (carry * spot * carry_disc * n1 - rate * strike * disc * n2))
    return price, delta, gamma, vega, theta


def price_float(rows: list[OptionRow], numbers: list[int]) -> tuple[np.ndarray, list[RowError]]:
    out = np.full((len(rows), len(OUTPUT_COLUMNS)), np.nan)
    errors, good = [], []
    for i, (number, row) in enumerate(zip(numbers, rows)):
        problem = None
        for name, value in (("S", row.spot), ("K", row.strike),
                            ("T (time to expiry in years)", row.expiry),
                            ("sigma (volatility)", row.sigma)):
            if value <= 0:
                problem = f"row {number}: {name} must be positive, got {value!r}"
                break
        if problem:
            errors.append(RowError(number, problem))
        else:
            good.append(i)
    if good:
        pick = np.array(good)
        cols = [np.array([getattr(rows[i], name) for i in good]) for name in
                ("spot", "strike", "expiry", "sigma", "rate", "dividend", "is_put", "black76")]
        for k, values in enumerate(black_float(*cols)):
            out[pick, k] = values
    return out, errors


def price_rows(records: Iterable[Mapping[str, str]], engine: str = "fabric"
               ) -> tuple[np.ndarray, list[RowError]]:
    """Outputs (rows x OUTPUT_COLUMNS, NaN where a row failed) and the errors."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    rows, numbers, errors, index_of = [], [], [], []
    records = list(records)
    for number, fields in enumerate(records, start=1):
        try:
            rows.append(parse_row(number, fields))
            numbers.append(number)
        except PricingInputError as exc:
            errors.append(RowError(number, str(exc)))
    priced, more = (price_fabric if engine == "fabric" else price_float)(rows, numbers)
    out = np.full((len(records), len(OUTPUT_COLUMNS)), np.nan)
    for i, number in enumerate(numbers):
        out[number - 1] = priced[i]
    return out, sorted(errors + more, key=lambda e: e.row)

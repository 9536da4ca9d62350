"""Piecewise-cubic function tables of the pricer (BRAM contents).

Each function is tabulated on an argument ``t`` in [0, 1) cut into
``2**seg_bits`` equal segments; within segment ``j`` the value is the cubic
``c0 + c1 u + c2 u**2 + c3 u**3`` of the offset ``u`` in [0, 1) (the low bits
of ``t``), coefficients in :data:`rtl.pricer.formats.COEF`.

The cubic of a segment interpolates the function at the four Chebyshev nodes
of the segment (within a factor ~2 of the best uniform cubic); NCDF's
first constant is then pinned to N(0) = 1/2.  Coefficients
are solved in exact rational arithmetic from the double-precision function
values and rounded once, so a table depends only on the C library's
``log1p`` / ``exp`` / ``erfc`` (correctly rounded in practice), not on the
linear-algebra library.

==========  =====================  ========  ====  =============================
table       function of t          segments  deg   max abs error (tests bound it)
==========  =====================  ========  ====  =============================
``LN``      ln(1 + t)              128       3     7.2e-12
``RECIP``   1 / (1 + t)            128       3     2.9e-11 (relative as well)
``EXP2``    2 ** -t                64        3     4.5e-12 (relative as well)
``NCDF``    N(8 t), N normal CDF   256       3     1.7e-10
==========  =====================  ========  ====  =============================
"""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Callable, NamedTuple

import numpy as np

from rtl.pricer.formats import COEF

DEGREE = 3
NCDF_RANGE = 8        # NCDF covers |d| in [0, 8); N(8) = 1 - 6e-16
_SQRT1_2 = math.sqrt(0.5)


class TableSpec(NamedTuple):
    name: str
    seg_bits: int
    function: Callable[[float], float]
    doc: str


TABLE_SPECS = {
    "LN": TableSpec("LN", 7, math.log1p, "ln(1 + t)"),
    "RECIP": TableSpec("RECIP", 7, lambda t: 1.0 / (1.0 + t), "1 / (1 + t)"),
    "EXP2": TableSpec("EXP2", 6, lambda t: math.exp(-t * math.log(2.0)), "2 ** -t"),
    "NCDF": TableSpec("NCDF", 8, lambda t: 0.5 * math.erfc(-NCDF_RANGE * t * _SQRT1_2), "N(8 t)"),
}

# Chebyshev nodes of [0, 1] for a cubic, as exact fractions.
_NODES = tuple(Fraction((1.0 - math.cos((2 * i + 1) * math.pi / (2 * DEGREE + 2))) / 2.0)
               for i in range(DEGREE + 1))


def _poly_mul_linear(poly: list[Fraction], root: Fraction) -> list[Fraction]:
    """poly(u) * (u - root), coefficients lowest first."""
    out = [Fraction(0)] * (len(poly) + 1)
    for k, c in enumerate(poly):
        out[k + 1] += c
        out[k] -= c * root
    return out


@lru_cache(maxsize=None)
def _lagrange_basis() -> tuple[tuple[Fraction, ...], ...]:
    basis = []
    for i, xi in enumerate(_NODES):
        poly = [Fraction(1)]
        denom = Fraction(1)
        for j, xj in enumerate(_NODES):
            if j != i:
                poly = _poly_mul_linear(poly, xj)
                denom *= xi - xj
        basis.append(tuple(c / denom for c in poly))
    return tuple(basis)


@lru_cache(maxsize=None)
def table(name: str) -> np.ndarray:
    """Coefficients of table ``name``: int64 array (segments, DEGREE + 1), COEF raw."""
    spec = TABLE_SPECS[name]
    segments = 1 << spec.seg_bits
    basis = _lagrange_basis()
    rows = np.empty((segments, DEGREE + 1), dtype=np.int64)
    for seg in range(segments):
        values = [Fraction(spec.function(float((seg + node) / segments))) for node in _NODES]
        for k in range(DEGREE + 1):
            rows[seg, k] = COEF.from_real(sum(v * b[k] for v, b in zip(values, basis)))
    if name == "NCDF":
        # N(0) = 1/2 exactly, so N(-d) = 1 - N(d) joins seamlessly at d = 0.
        rows[0, 0] = COEF.from_real(Fraction(1, 2))
    rows.setflags(write=False)
    return rows


def all_tables() -> dict[str, np.ndarray]:
    return {name: table(name) for name in TABLE_SPECS}

"""Fixed-point formats and operating ranges of the option pricer, declared once.

Every quantity the pricer stores or computes is a two's-complement integer
``raw`` standing for ``raw / 2**frac``; a format names its integer bits (not
counting the sign) and fraction bits, and all of them fit a signed 64-bit
word.  The bit-accurate model (:mod:`rtl.pricer.model`), the function tables
(:mod:`rtl.pricer.tables`), the host precomputation (:mod:`host.pricing`) and
the HDL take their widths from here and nowhere else.

Arithmetic rule shared by model and RTL: a product of two 64-bit words is
formed exactly (128 bits) and brought to the target format by adding half an
output unit and shifting right arithmetically (round half up).  Sums are
exact.  The operating ranges below are what the host precomputation admits;
within them no intermediate value leaves its format (the model checks every
product, the tests drive the corners).

Error budget (limits: price and vega 1e-7*S, delta 2e-7, gamma 1e-5 relative,
theta max(1e-6*S, 1e-5*|theta|)).  The cubic tables are accurate to 1.7e-10
(N), 7e-12 (ln), 3e-11 and 5e-12 relative (1/m, 2**-f).  N's error reaches
price twice (asset and cash leg): <= ~4e-10*S, delta <= ~2e-10.  d1 inherits
ln's error times 1/(sigma sqrt T) <= 512, i.e. < 4e-9, but price is
first-order insensitive to an error shared by d1 and d2, and delta sees it
times phi <= 0.4.  phi is computed as 2**-z with a range-reduced exponent, so
it keeps ~1e-11 relative accuracy down to the smallest values gamma is judged
on.  Roundings to 40 (money) and 53..62 fraction bits add < 1e-12*S.  The
tightest item is gamma at the top of the spot range: gamma >= 1e-6/S at
S = 32768 is ~3e-11, resolved by GAMMA's 53 fraction bits to ~2e-6 relative.
Measured over 100,000 random options: see ``zynqmm pricer-accuracy``.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Format:
    """A signed fixed-point format: ``int_bits`` + ``frac_bits`` + sign <= 64."""

    name: str
    int_bits: int
    frac_bits: int
    doc: str

    def __post_init__(self):
        if self.int_bits + self.frac_bits + 1 > 64:
            raise ValueError(f"{self.name} does not fit 64 bits")

    @property
    def one(self) -> int:
        return 1 << self.frac_bits

    @property
    def max_raw(self) -> int:
        return (1 << (self.int_bits + self.frac_bits)) - 1

    @property
    def min_raw(self) -> int:
        return -(1 << (self.int_bits + self.frac_bits))

    def from_real(self, value) -> int:
        """Nearest raw value (ties up) of a float, int or Fraction; range-checked."""
        raw = int((Fraction(value) * self.one + Fraction(1, 2)) // 1)
        if not self.min_raw <= raw <= self.max_raw:
            raise OverflowError(f"{value} outside {self.name} (Q{self.int_bits}.{self.frac_bits})")
        return raw

    def to_float(self, raw):
        """Float view for reports and tests (works on numpy arrays too)."""
        return raw / float(self.one)


MONEY = Format("MONEY", 23, 40, "spot, strike, discounted strike, price, vega, theta")
LOG = Format("LOG", 7, 56, "ln S, per-option log offset, log-moneyness plus drift")
INV_VOL = Format("INV_VOL", 10, 53, "1 / (sigma * sqrt T)")
D = Format("D", 5, 58, "d1, d2 and the total volatility sigma * sqrt T")
PROB = Format("PROB", 1, 62, "N(d), phi(d), table inputs in [0, 1), 1/m, 2**-f")
DISC = Format("DISC", 2, 61, "exp(-q T), exp(-r T), sqrt T")
RATE = Format("RATE", 1, 62, "carry rate q (r in Black-76)")
HALF_VOL_RATE = Format("HALF_VOL_RATE", 7, 56, "sigma / (2 sqrt T)")
DELTA = Format("DELTA", 2, 61, "delta")
GAMMA_S = Format("GAMMA_S", 9, 54, "gamma * S (internal)")
GAMMA = Format("GAMMA", 10, 53, "gamma")
HALF_SQUARE = Format("HALF_SQUARE", 8, 55, "d1**2 / 2 and its base-2 exponent")
COEF = Format("COEF", 1, 62, "polynomial coefficients of the function tables")

FORMATS = (MONEY, LOG, INV_VOL, D, PROB, DISC, RATE, HALF_VOL_RATE, DELTA,
           GAMMA_S, GAMMA, HALF_SQUARE, COEF)

# |d1| is clamped here: beyond it N(d1) is 0 or 1 to far below one PROB unit
# and phi(d1) underflows, so nothing downstream changes.
D_LIMIT = 16

# Operating ranges (inclusive unless noted) admitted by the host precomputation.
SPOT_MIN, SPOT_MAX = Fraction(1, 2), Fraction(32768)      # S (or F), max exclusive
STRIKE_MIN, STRIKE_MAX = Fraction(1, 8), Fraction(65536)
SIGMA_MAX = 4.0                                           # sigma in (0, 4]
EXPIRY_MIN, EXPIRY_MAX = 2.0 ** -10, 8.0                  # T in years
TOTAL_VOL_MIN, TOTAL_VOL_MAX = 2.0 ** -9, 4.0             # sigma * sqrt T
RATE_MIN, RATE_MAX = -0.05, 0.25                          # r and q

# Per-option parameter table row (one BRAM word group per option), written by
# the host over AXI-Lite; every constant is a raw value of the named format.
PARAM_FIELDS = (
    ("underlying", "<u2", None),
    ("is_put", "u1", None),
    ("black76", "u1", None),          # informational: the datapath is the same
    ("strike", "<i8", MONEY),
    ("log_offset", "<i8", LOG),       # (r - q + sigma^2/2) T - ln K  (BS); sigma^2 T/2 - ln K  (B76)
    ("inv_vol", "<i8", INV_VOL),      # 1 / (sigma sqrt T)
    ("total_vol", "<i8", D),          # sigma sqrt T
    ("sqrt_t", "<i8", DISC),
    ("half_vol_rate", "<i8", HALF_VOL_RATE),  # sigma / (2 sqrt T)
    ("carry_disc", "<i8", DISC),      # exp(-q T); exp(-r T) in Black-76
    ("strike_disc", "<i8", MONEY),    # K exp(-r T)
    ("carry_rate", "<i8", RATE),      # q; r in Black-76
    ("rate_strike_disc", "<i8", MONEY),  # r K exp(-r T)
)

# Pricer outputs per option and their formats.
OUTPUT_FORMATS = {
    "price": MONEY, "delta": DELTA, "gamma": GAMMA, "vega": MONEY, "theta": MONEY,
}


def param_dtype():
    import numpy as np

    return np.dtype([(name, kind) for name, kind, _ in PARAM_FIELDS])


def format_table() -> str:
    """The formats as a Markdown table (for docs and reports)."""
    rows = ["| format | sign | int bits | frac bits | holds |", "|---|---|---|---|---|"]
    rows += [f"| {f.name} | s | {f.int_bits} | {f.frac_bits} | {f.doc} |" for f in FORMATS]
    return "\n".join(rows)

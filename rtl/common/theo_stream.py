"""The theoretical-value port: the pricer's chain output and the quoter's input.

One word per option priced, carried on a valid/ready port
(``m_theo_data`` / ``m_theo_valid`` / ``m_theo_ready``; ``s_theo_*`` on the
consumer).  :data:`THEO_FIELDS` gives the fields from bit 0 up; numeric
fields hold raw values of the named fixed-point formats of
:mod:`rtl.pricer.formats` (two's complement where signed).

=============  =====  =============================================================
field          bits   meaning
=============  =====  =============================================================
option_id      16     row of the pricer's parameter table
underlying     16     ITCH stock locate of the underlying
flags          8      the ``FLAG_*`` bits of the book-update record that triggered
                      the pricing (stale, degraded, not trading ...), so the risk
                      gate can pull quotes on a bad book
spot           64     MONEY: the underlying reference price used (mid or microprice)
price          64     MONEY: theoretical value
delta          64     DELTA
gamma          64     GAMMA
vega           64     MONEY (per unit of sigma)
theta          64     MONEY (per year)
seq            64     MoldUDP64 sequence number of the triggering message
msg_index      16     its index inside the MoldUDP64 packet
ingress_cycle  32     free-running cycle counter when the triggering record
                      entered the pricer (latency stamps)
last           1      the last option of this underlying's chain walk
=============  =====  =============================================================
"""
from __future__ import annotations

from myhdl import Signal, intbv

THEO_FIELDS: tuple[tuple[str, int], ...] = (
    ("option_id", 16),
    ("underlying", 16),
    ("flags", 8),
    ("spot", 64),
    ("price", 64),
    ("delta", 64),
    ("gamma", 64),
    ("vega", 64),
    ("theta", 64),
    ("seq", 64),
    ("msg_index", 16),
    ("ingress_cycle", 32),
    ("last", 1),
)
THEO_BITS = sum(width for _, width in THEO_FIELDS)
# Fields holding two's-complement values.
SIGNED_FIELDS = frozenset({"spot", "price", "delta", "gamma", "vega", "theta"})


def theo_slices() -> dict[str, tuple[int, int]]:
    """name -> (lsb, width) in the theo word."""
    out, lsb = {}, 0
    for name, width in THEO_FIELDS:
        out[name] = (lsb, width)
        lsb += width
    return out


def pack_theo(**values: int) -> int:
    """The word of one priced option; missing fields are zero, signed fields
    take Python ints of either sign."""
    unknown = set(values) - {name for name, _ in THEO_FIELDS}
    if unknown:
        raise ValueError(f"unknown theo fields: {sorted(unknown)}")
    word = 0
    for name, (lsb, width) in theo_slices().items():
        value = int(values.get(name, 0))
        lo = -(1 << (width - 1)) if name in SIGNED_FIELDS else 0
        hi = (1 << (width - 1)) if name in SIGNED_FIELDS else (1 << width)
        if not lo <= value < hi:
            raise ValueError(f"theo {name}={value} does not fit {width} bits")
        word |= (value & ((1 << width) - 1)) << lsb
    return word


def unpack_theo(word: int) -> dict[str, int]:
    out = {}
    for name, (lsb, width) in theo_slices().items():
        value = (word >> lsb) & ((1 << width) - 1)
        if name in SIGNED_FIELDS and value >> (width - 1):
            value -= 1 << width
        out[name] = value
    return out


class TheoPort:
    """MyHDL interface of the port.  As ``m_theo`` / ``s_theo`` it becomes
    ``m_theo_data``, ``m_theo_valid`` and ``m_theo_ready``."""

    def __init__(self):
        self.data = Signal(intbv(0)[THEO_BITS:])
        self.valid = Signal(bool(0))
        self.ready = Signal(bool(0))

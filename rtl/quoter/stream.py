"""The quote port: the quoter's output and the risk gate's input.

One word per theoretical value the quoter took (options outside its table
excepted), carried on a valid/ready port (``m_quote_data`` /
``m_quote_valid`` / ``m_quote_ready``; ``s_quote_*`` on the gate).  Every
word goes to the gate, not only requotes: the gate needs each option's book
flags to pull and restore quotes, and it republishes a quote it had to hold
back (kill, bad book, rate limit) as soon as its rules let it, without
waiting for the quoter's next requote.  :data:`QUOTE_FIELDS` gives the fields
from bit 0 up.

=============  =====  ==============================================================
field          bits   meaning
=============  =====  ==============================================================
option_id      16     option (row of the pricer's parameter table)
underlying     16     ITCH stock locate of the underlying
flags          8      the theo word's book ``FLAG_*`` bits
sides          2      ``SIDE_BID`` | ``SIDE_ASK`` (``host.quoting.records``): the
                      sides the quoter quotes
requote        1      the quote moved against the last requote of this option
                      (:mod:`rtl.quoter.model` says when)
bid_price      32     price4 on the tick grid; 0 when the bid is not quoted
ask_price      32     price4; 0 when the ask is not quoted
bid_size       32     contracts; 0 when the bid is not quoted
ask_size       32     contracts; 0 when the ask is not quoted
position       32     signed: the position the quote was skewed by
theo           64     signed MONEY: the theoretical value
theo_qp        64     signed: the theo in price4 units with 16 fraction bits
                      (:func:`rtl.quoter.model.theo_to_qp`), for the gate's band
delta          64     signed DELTA
seq            64     trigger: MoldUDP64 sequence number
msg_index      16     trigger: index in the MoldUDP64 packet
ingress_cycle  32     trigger: pricer ingress cycle stamp
=============  =====  ==============================================================
"""
from __future__ import annotations

from myhdl import Signal, intbv

QUOTE_FIELDS: tuple[tuple[str, int], ...] = (
    ("option_id", 16),
    ("underlying", 16),
    ("flags", 8),
    ("sides", 2),
    ("requote", 1),
    ("bid_price", 32),
    ("ask_price", 32),
    ("bid_size", 32),
    ("ask_size", 32),
    ("position", 32),
    ("theo", 64),
    ("theo_qp", 64),
    ("delta", 64),
    ("seq", 64),
    ("msg_index", 16),
    ("ingress_cycle", 32),
)
QUOTE_BITS = sum(width for _, width in QUOTE_FIELDS)
SIGNED_FIELDS = frozenset({"position", "theo", "theo_qp", "delta"})


def quote_slices() -> dict[str, tuple[int, int]]:
    """name -> (lsb, width) in the quote word."""
    out, lsb = {}, 0
    for name, width in QUOTE_FIELDS:
        out[name] = (lsb, width)
        lsb += width
    return out


def pack_quote(**values: int) -> int:
    """The word of one quote; missing fields are zero, signed fields take
    Python ints of either sign."""
    unknown = set(values) - {name for name, _ in QUOTE_FIELDS}
    if unknown:
        raise ValueError(f"unknown quote fields: {sorted(unknown)}")
    word = 0
    for name, (lsb, width) in quote_slices().items():
        value = int(values.get(name, 0))
        lo = -(1 << (width - 1)) if name in SIGNED_FIELDS else 0
        hi = (1 << (width - 1)) if name in SIGNED_FIELDS else (1 << width)
        if not lo <= value < hi:
            raise ValueError(f"quote {name}={value} does not fit {width} bits")
        word |= (value & ((1 << width) - 1)) << lsb
    return word


def unpack_quote(word: int) -> dict[str, int]:
    out = {}
    for name, (lsb, width) in quote_slices().items():
        value = (word >> lsb) & ((1 << width) - 1)
        if name in SIGNED_FIELDS and value >> (width - 1):
            value -= 1 << width
        out[name] = value
    return out


class QuotePort:
    """MyHDL interface of the port.  As ``m_quote`` / ``s_quote`` it becomes
    ``m_quote_data``, ``m_quote_valid`` and ``m_quote_ready``."""

    def __init__(self):
        self.data = Signal(intbv(0)[QUOTE_BITS:])
        self.valid = Signal(bool(0))
        self.ready = Signal(bool(0))

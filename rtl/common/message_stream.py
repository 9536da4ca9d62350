"""The arbitrated ITCH message stream: the MoldUDP64 sequencer's output and
the ITCH decoder's input.

One ITCH message per AXI-Stream packet (the type byte first, realigned to
lane 0; the beat conventions of :mod:`rtl.common.axis`), with a sideband held
for every beat of the packet in ``tuser`` instead of the frame-error bit.
:data:`SIDEBAND_FIELDS` gives the sideband's fields from bit 0 up:

=========  =====  ===========================================================
field      bits   meaning
=========  =====  ===========================================================
seq        64     MoldUDP64 sequence number of the message
msg_index  16     index of the message inside its MoldUDP64 packet
feed       1      0 = feed A, 1 = feed B (the copy that was delivered)
stale      1      the delivering feed was stale (see the sequencer)
=========  =====  ===========================================================
"""
from __future__ import annotations

from myhdl import Signal, intbv

from rtl.common.axis import DATA_WIDTH, KEEP_WIDTH

SIDEBAND_FIELDS: tuple[tuple[str, int], ...] = (
    ("seq", 64),
    ("msg_index", 16),
    ("feed", 1),
    ("stale", 1),
)
SIDEBAND_BITS = sum(width for _, width in SIDEBAND_FIELDS)


def sideband_slices() -> dict[str, tuple[int, int]]:
    """name -> (lsb, width) in ``tuser``."""
    out, lsb = {}, 0
    for name, width in SIDEBAND_FIELDS:
        out[name] = (lsb, width)
        lsb += width
    return out


def pack_sideband(seq: int, msg_index: int, feed: int = 0, stale: bool = False) -> int:
    """The tuser value of a message."""
    values = {"seq": seq, "msg_index": msg_index, "feed": int(feed), "stale": int(stale)}
    word = 0
    for name, (lsb, width) in sideband_slices().items():
        if not 0 <= values[name] < (1 << width):
            raise ValueError(f"sideband {name}={values[name]} does not fit {width} bits")
        word |= values[name] << lsb
    return word


def unpack_sideband(word: int) -> dict[str, int]:
    return {name: (word >> lsb) & ((1 << width) - 1)
            for name, (lsb, width) in sideband_slices().items()}


class ItchStream:
    """MyHDL interface of the message stream.  As ``m_axis`` / ``s_axis`` it
    becomes ``m_axis_tdata`` ... ``m_axis_tuser`` (a :data:`SIDEBAND_BITS`-bit
    ``tuser``)."""

    def __init__(self):
        self.tdata = Signal(intbv(0)[DATA_WIDTH:])
        self.tkeep = Signal(intbv(0)[KEEP_WIDTH:])
        self.tvalid = Signal(bool(0))
        self.tready = Signal(bool(0))
        self.tlast = Signal(bool(0))
        self.tuser = Signal(intbv(0)[SIDEBAND_BITS:])

"""The fabric's internal ITCH event: what the ITCH decoder hands the order book.

Declared once here and used by the decoder's model and HDL (producer), the
order book's model and HDL (consumer) and their tests.  In the fabric the
event is one wide parallel word moved with a valid/ready handshake (no
AXI-Stream beats: it never leaves the chip); ``EVENT_FIELDS`` gives its
fields in order from the least significant bit, ``pack_event`` /
``unpack_event`` convert between that word (a Python int) and a row of
``ITCH_EVENT_DTYPE``, and ``EventPort`` is the word's MyHDL port.

Only what the book needs is carried; everything else in ITCH is skipped by
the decoder (after being counted).

==============  =====  ==========================================================
field           bits   meaning
==============  =====  ==========================================================
kind            4      ``EV_*`` below
side            1      0 = buy, 1 = sell: the buy/sell indicator of add
                       orders (A, F) and of trades (P); 0 otherwise
stock_locate    16     ITCH stock locate
price           32     price4: add price (A, F), replace's new price (U),
                       execution price (C, P); 0 otherwise
shares          32     add/replace shares, executed (E, C, P) or canceled (X)
                       shares; 0 otherwise
order_ref       64     order reference number (A, F, E, C, X, D, P);
                       original reference for U
new_order_ref   64     new order reference number (U); 0 otherwise
match_number    64     E, C, P; 0 otherwise
timestamp       48     ITCH timestamp, ns since midnight
seq             64     MoldUDP64 sequence number of the message
msg_index       16     index of the message inside its MoldUDP64 packet
aux             64     R: the 8 stock bytes (first character in the most
                       significant byte); H: trading state character in
                       bits 7:0; S: event code in bits 7:0; C: printable
                       ('Y'/'N') in bits 7:0; 0 otherwise
stale           1      the message's sequencer sideband ``stale`` bit (a stream
                       gap seen and not yet cleared by software): the book
                       marks the records of this event ``FLAG_STALE``
==============  =====  ==========================================================
"""
from __future__ import annotations

import numpy as np
from myhdl import Signal, intbv

EV_NONE = 0
EV_ADD = 1             # A, F
EV_EXECUTE = 2         # E
EV_EXECUTE_PRICE = 3   # C
EV_CANCEL = 4          # X
EV_DELETE = 5          # D
EV_REPLACE = 6         # U
EV_TRADE = 7           # P (non-displayed trade: no book change)
EV_DIRECTORY = 8       # R
EV_TRADING_STATE = 9   # H
EV_SYSTEM = 10         # S

KIND_OF_TYPE = {
    "A": EV_ADD, "F": EV_ADD, "E": EV_EXECUTE, "C": EV_EXECUTE_PRICE, "X": EV_CANCEL,
    "D": EV_DELETE, "U": EV_REPLACE, "P": EV_TRADE, "R": EV_DIRECTORY, "H": EV_TRADING_STATE,
    "S": EV_SYSTEM,
}

EVENT_FIELDS: tuple[tuple[str, int], ...] = (
    ("kind", 4),
    ("side", 1),
    ("stock_locate", 16),
    ("price", 32),
    ("shares", 32),
    ("order_ref", 64),
    ("new_order_ref", 64),
    ("match_number", 64),
    ("timestamp", 48),
    ("seq", 64),
    ("msg_index", 16),
    ("aux", 64),
    ("stale", 1),
)
EVENT_BITS = sum(w for _, w in EVENT_FIELDS)

ITCH_EVENT_DTYPE = np.dtype([
    ("kind", "u1"),
    ("side", "u1"),
    ("stock_locate", "u2"),
    ("price", "u4"),
    ("shares", "u4"),
    ("msg_index", "u4"),
    ("order_ref", "u8"),
    ("new_order_ref", "u8"),
    ("match_number", "u8"),
    ("timestamp", "u8"),
    ("seq", "u8"),
    ("aux", "u8"),
    ("stale", "u1"),
])


def field_slices() -> dict[str, tuple[int, int]]:
    """name -> (lsb, width) in the packed event word."""
    out, lsb = {}, 0
    for name, width in EVENT_FIELDS:
        out[name] = (lsb, width)
        lsb += width
    return out


def pack_event(row) -> int:
    """A row of ITCH_EVENT_DTYPE (or a mapping) -> the packed event word."""
    word = 0
    for name, (lsb, width) in field_slices().items():
        value = int(row[name])
        if not 0 <= value < (1 << width):
            raise ValueError(f"event field {name}={value} does not fit {width} bits")
        word |= value << lsb
    return word


def unpack_event(word: int) -> np.void:
    """The packed event word -> a row of ITCH_EVENT_DTYPE."""
    row = np.zeros((), ITCH_EVENT_DTYPE)
    for name, (lsb, width) in field_slices().items():
        row[name] = (word >> lsb) & ((1 << width) - 1)
    return row[()]


class EventPort:
    """The event word with valid/ready.  As a top-level port named
    ``m_event`` (decoder) or ``s_event`` (book) it becomes ``m_event_data``,
    ``m_event_valid``, ``m_event_ready`` ..."""

    def __init__(self):
        self.data = Signal(intbv(0)[EVENT_BITS:])
        self.valid = Signal(bool(0))
        self.ready = Signal(bool(0))

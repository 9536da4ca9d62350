"""Binary layout of the risk gate's output, declared once.

The fabric's risk gate (``rtl.risk_gate``) sends the host one record per
quote update it lets through and one per quote it pulls, on a 64-bit
AXI-Stream (8 beats per record).  The gate's model, its RTL tests and the
host's order manager all use :data:`QUOTE_DTYPE`.  Like the book records
(``host.book.records``) the layout is little-endian with every field
naturally aligned and the size a multiple of 8 bytes, so a beat never splits
a field.

A QUOTE record is the complete wanted state of one option's two-sided quote:
each side in ``sides`` is to rest at its price and size, a side not in
``sides`` is to be withdrawn (its price and size are zero).  A CANCEL record
withdraws both sides of the option.

QUOTE_DTYPE (64 bytes, 8 beats):

==============  ====  ====  ==================================================
field           type  off   meaning
==============  ====  ====  ==================================================
kind            u8    0     ``KIND_QUOTE`` or ``KIND_CANCEL``
reason          u8    1     cancels: ``REASON_*`` below; quotes: 0
sides           u8    2     ``SIDE_BID`` | ``SIDE_ASK``: sides that rest
flags           u8    3     ``FLAG_*`` bits (``host.book.records``) of the
                            book update that triggered the pricing; for a
                            pull of a bad book, the flags that caused it;
                            0 for a kill pull
option_id       u16   4     row of the pricer's parameter table
underlying      u16   6     ITCH stock locate of the underlying
bid_price       u32   8     price4 (4 implied decimals, as OUCH 5.0 prices);
                            on the tick grid of the quoter's tick table
ask_price       u32   12    price4
bid_size        u32   16    contracts
ask_size        u32   20    contracts
theo            i64   24    theoretical value, raw ``rtl.pricer.formats.MONEY``
                            (value / 2**40 dollars)
delta           i64   32    raw ``rtl.pricer.formats.DELTA`` (value / 2**61)
seq             u64   40    MoldUDP64 sequence number of the triggering
                            message (0 for a kill pull)
msg_index       u32   48    its index inside the MoldUDP64 packet
position        i32   52    position (contracts) the quote was skewed by
ingress_cycle   u32   56    fabric cycle counter when the triggering book
                            record entered the pricer (0 for a kill pull)
egress_cycle    u32   60    fabric cycle counter when the record's first
                            beat left the risk gate
==============  ====  ====  ==================================================

``egress_cycle - ingress_cycle`` (mod 2**32) is the fabric latency of the
update: both stamps come from free-running counters that start together at
reset.  Every field of a CANCEL but kind, reason, flags, option_id,
underlying, the trigger (seq, msg_index, ingress_cycle) and egress_cycle is
zero.

Cancel reasons:

* ``REASON_KILL`` (1): the gate's kill bit was set; every live quote is pulled.
* ``REASON_BOOK`` (2): a book update of the underlying carried a flag of the
  gate's pull mask (stale feed, degraded book by default); every live quote
  of that underlying is pulled until an update with those flags clear.
* ``REASON_WITHDRAWN`` (3): the option's next update has no side left (the
  quoter quotes neither side, or the gate's rules removed both).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

KIND_QUOTE = 1
KIND_CANCEL = 2

REASON_NONE = 0
REASON_KILL = 1
REASON_BOOK = 2
REASON_WITHDRAWN = 3

SIDE_BID = 0x01
SIDE_ASK = 0x02

QUOTE_DTYPE = np.dtype([
    ("kind", "u1"),
    ("reason", "u1"),
    ("sides", "u1"),
    ("flags", "u1"),
    ("option_id", "<u2"),
    ("underlying", "<u2"),
    ("bid_price", "<u4"),
    ("ask_price", "<u4"),
    ("bid_size", "<u4"),
    ("ask_size", "<u4"),
    ("theo", "<i8"),
    ("delta", "<i8"),
    ("seq", "<u8"),
    ("msg_index", "<u4"),
    ("position", "<i4"),
    ("ingress_cycle", "<u4"),
    ("egress_cycle", "<u4"),
])

assert QUOTE_DTYPE.itemsize == 64 and QUOTE_DTYPE.itemsize % 8 == 0
for _name in QUOTE_DTYPE.names:
    _base, _offset = QUOTE_DTYPE.fields[_name][:2]
    assert _offset % _base.itemsize == 0, f"{_name} is not naturally aligned"

KIND_NAMES = {KIND_QUOTE: "quote", KIND_CANCEL: "cancel"}
REASON_NAMES = {REASON_NONE: "", REASON_KILL: "kill", REASON_BOOK: "book",
                REASON_WITHDRAWN: "withdrawn"}


def quotes_array(rows: Iterable[dict]) -> np.ndarray:
    """QUOTE_DTYPE array from dicts of field values (missing fields zero)."""
    rows = list(rows)
    out = np.zeros(len(rows), dtype=QUOTE_DTYPE)
    for i, row in enumerate(rows):
        unknown = set(row) - set(QUOTE_DTYPE.names)
        if unknown:
            raise ValueError(f"unknown quote record fields: {sorted(unknown)}")
        for name, value in row.items():
            out[i][name] = value
    return out


def parse_records(data: bytes) -> np.ndarray:
    """The records of a byte stream from the gate (a whole number of them)."""
    if len(data) % QUOTE_DTYPE.itemsize:
        raise ValueError(f"{len(data)} bytes is not a whole number of "
                         f"{QUOTE_DTYPE.itemsize}-byte quote records")
    return np.frombuffer(data, dtype=QUOTE_DTYPE)


def describe(record) -> str:
    """One line for logs: kind, option and the sides that rest."""
    kind = KIND_NAMES.get(int(record["kind"]), f"kind{int(record['kind'])}")
    head = f"{kind} option {int(record['option_id'])} (locate {int(record['underlying'])})"
    if int(record["kind"]) == KIND_CANCEL:
        reason = REASON_NAMES.get(int(record["reason"]), str(int(record["reason"])))
        return f"{head}: {reason}"
    sides = int(record["sides"])
    bid = f"{int(record['bid_size'])} @ {int(record['bid_price']) / 1e4:.4f}" \
        if sides & SIDE_BID else "-"
    ask = f"{int(record['ask_size'])} @ {int(record['ask_price']) / 1e4:.4f}" \
        if sides & SIDE_ASK else "-"
    return f"{head}: bid {bid} / ask {ask}"


__all__ = ["QUOTE_DTYPE", "KIND_QUOTE", "KIND_CANCEL", "REASON_NONE", "REASON_KILL",
           "REASON_BOOK", "REASON_WITHDRAWN", "SIDE_BID", "SIDE_ASK", "KIND_NAMES",
           "REASON_NAMES", "quotes_array", "parse_records", "describe"]

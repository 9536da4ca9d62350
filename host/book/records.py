"""Binary record layouts of the order book's output, declared once.

The golden book (``host.book.reference``), the fast book (``host.book.fast``),
the fabric's book model and its RTL all emit the same two records, so their
outputs can be compared byte for byte.  Both layouts are little-endian numpy
structured dtypes with every field naturally aligned and the record size a
multiple of 8 bytes, so that a 64-bit AXI-Stream beat never splits a field.

BOOK_UPDATE_DTYPE (144 bytes, 18 beats) -- the top ``DEPTH`` levels of both
sides of one stock after a message changed them:

===============  ===========  ====  =============================================
field            type         off   meaning
===============  ===========  ====  =============================================
stock_locate     u16          0     ITCH stock locate of the book that changed
flags            u8           2     ``FLAG_*`` bits below
reserved         u8           3     zero
msg_index        u32          4     index of the triggering message inside its
                                    MoldUDP64 packet (0 for ITCH files)
seq              u64          8     MoldUDP64 sequence number of the triggering
                                    message (running message number for files)
timestamp        u64          16    ITCH timestamp of the triggering message,
                                    nanoseconds since midnight
bid_price        u32[5]       24    price4 (4 implied decimals); [0] is the best
bid_shares       u32[5]       44    aggregate displayed shares at the level,
                                    saturated at 2**32-1
bid_orders       u32[5]       64    number of orders at the level
ask_price        u32[5]       84    as for bids; [0] is the lowest ask
ask_shares       u32[5]       104
ask_orders       u32[5]       124
===============  ===========  ====  =============================================

Levels that do not exist are all zero.  A row is emitted only when the
(price, shares, orders) of the top ``DEPTH`` levels of either side changed.

Flag bits:

* ``FLAG_NOT_TRADING`` (bit 0): the stock's last Stock Trading Action state is
  not ``T`` (halted, paused or quotation only).  A stock with no trading
  action yet counts as trading.
* ``FLAG_STALE`` (bit 1): the book has seen a jump in the sequence numbers of
  its input (a gap the arbitration could not fill), so levels may be missing
  or wrong.  It stays set until the book is told otherwise.
* ``FLAG_CROSSED`` (bit 2): both sides are non-empty and the best bid is at or
  above the best ask (locked or crossed).
* ``FLAG_NO_DIRECTORY`` (bit 3): no Stock Directory message was seen for
  this locate.
* ``FLAG_DEGRADED`` (bit 4): set only by the fabric's book, when its bounded
  tables cannot keep this stock exact (an order dropped because its table
  set was full, a reference it does not know, levels beyond its tracked
  depth needed).  The host books are exact and never set it.

TRADE_DTYPE (56 bytes, 7 beats) -- one execution printed by the feed:

======================  ====  ====  ==============================================
field                   type  off   meaning
======================  ====  ====  ==============================================
stock_locate            u16   0     stock of the trade
kind                    u8    2     ITCH message type: ord of P, Q, E or C
side                    u8    3     ord('B')/ord('S'): side of the resting order
                                    (E, C) or as printed (P); 0 for crosses (Q)
msg_index               u32   4     as in BOOK_UPDATE_DTYPE
seq                     u64   8     as in BOOK_UPDATE_DTYPE
timestamp               u64   16    as in BOOK_UPDATE_DTYPE
order_reference_number  u64   24    resting order (E, C), as printed (P), 0 (Q)
match_number            u64   32    the exchange's match number
shares                  u64   40    executed shares (64 bits: Cross Trade
                                    shares are u64 on the wire)
price                   u32   48    price4: the order's price (E), the execution
                                    price (C), the printed price (P, Q)
reserved                u32   52    zero
======================  ====  ====  ==============================================

Order Executed With Price (C) only prints when its ``printable`` is ``Y``;
executions against an order the book does not know produce no trade.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

DEPTH = 5

FLAG_NOT_TRADING = 0x01
FLAG_STALE = 0x02
FLAG_CROSSED = 0x04
FLAG_NO_DIRECTORY = 0x08
FLAG_DEGRADED = 0x10

SIDE_BUY = ord("B")
SIDE_SELL = ord("S")

BOOK_UPDATE_DTYPE = np.dtype([
    ("stock_locate", "<u2"),
    ("flags", "u1"),
    ("reserved", "u1"),
    ("msg_index", "<u4"),
    ("seq", "<u8"),
    ("timestamp", "<u8"),
    ("bid_price", "<u4", (DEPTH,)),
    ("bid_shares", "<u4", (DEPTH,)),
    ("bid_orders", "<u4", (DEPTH,)),
    ("ask_price", "<u4", (DEPTH,)),
    ("ask_shares", "<u4", (DEPTH,)),
    ("ask_orders", "<u4", (DEPTH,)),
])

TRADE_DTYPE = np.dtype([
    ("stock_locate", "<u2"),
    ("kind", "u1"),
    ("side", "u1"),
    ("msg_index", "<u4"),
    ("seq", "<u8"),
    ("timestamp", "<u8"),
    ("order_reference_number", "<u8"),
    ("match_number", "<u8"),
    ("shares", "<u8"),
    ("price", "<u4"),
    ("reserved", "<u4"),
])

assert BOOK_UPDATE_DTYPE.itemsize == 144 and BOOK_UPDATE_DTYPE.itemsize % 8 == 0
assert TRADE_DTYPE.itemsize == 56 and TRADE_DTYPE.itemsize % 8 == 0

SHARES_SATURATE = 0xFFFFFFFF


def updates_array(rows: Iterable[tuple]) -> np.ndarray:
    """BOOK_UPDATE_DTYPE array from row tuples in field order."""
    return np.array(list(rows), dtype=BOOK_UPDATE_DTYPE)


def trades_array(rows: Iterable[tuple]) -> np.ndarray:
    """TRADE_DTYPE array from row tuples in field order."""
    return np.array(list(rows), dtype=TRADE_DTYPE)


def flag_names(flags: int) -> list[str]:
    """Readable names of the bits set in a BOOK_UPDATE ``flags`` byte."""
    names = []
    for bit, name in ((FLAG_NOT_TRADING, "not_trading"), (FLAG_STALE, "stale"),
                      (FLAG_CROSSED, "crossed"), (FLAG_NO_DIRECTORY, "no_directory"),
                      (FLAG_DEGRADED, "degraded")):
        if flags & bit:
            names.append(name)
    return names


__all__ = [
    "DEPTH", "BOOK_UPDATE_DTYPE", "TRADE_DTYPE", "FLAG_NOT_TRADING", "FLAG_STALE",
    "FLAG_CROSSED", "FLAG_NO_DIRECTORY", "SIDE_BUY", "SIDE_SELL", "SHARES_SATURATE",
    "updates_array", "trades_array", "flag_names",
]

"""Binary layout of the feed path's event records, declared once.

Besides its book-update and trade records (``host.book.records``) the fabric's
feed path emits a second, low-rate stream for the host: *feed events*, what
happened to the market-data feed itself.  The sequencer's model and RTL
(``rtl.mold_seq``), the book's (``rtl.order_book``), the feed path's top
level, the RTL tests and the host all use this one layout, so their records
compare byte for byte.  Little-endian, every field naturally aligned, the size
a multiple of 8 bytes so a 64-bit AXI-Stream beat never splits a field.

FEED_EVENT_DTYPE (24 bytes, 3 beats):

============  ====  ===  ==========================================================
field         type  off  meaning
============  ====  ===  ==========================================================
kind          u8    0    ``EVENT_*`` below
feed          u8    1    sequencer events: the feed whose packet caused it (0 = A,
                         1 = B); 0 for book events
reason        u8    2    ``EVENT_BOOK_DEGRADED``: what made the book inexact,
                         1 + index in ``DEGRADE_REASONS``; 0 otherwise
flags         u8    3    ``EVENT_FLAG_*`` bits below
stock_locate  u16   4    book events: the locate whose book it is; 0 otherwise
msg_index     u16   6    book events: index of the message inside its MoldUDP64
                         packet; 0 otherwise
seq           u64   8    the sequence number the event is about (below)
expected      u64   16   gap and feed stale: the sequence number that was due
                         (below); 0 otherwise
============  ====  ===  ==========================================================

Kinds, with what ``seq`` and ``expected`` hold:

* ``EVENT_GAP`` (1): the arbitrated stream skipped numbers: messages
  ``expected`` .. ``seq - 1`` never arrived on either feed (``seq`` is the
  first one that did: a data packet's first message, or a heartbeat's or end
  of session's sequence number).  The stream is stale from here until
  software clears the sequencer's ``STATUS.stream_stale``.
* ``EVENT_FEED_STALE`` (2): feed ``feed`` jumped: its packet starts at
  ``seq`` although everything it delivered so far ended at ``expected``.
  The other feed may still fill in (then there is no gap).
* ``EVENT_FEED_RECOVERED`` (3): feed ``feed`` is contiguous again: its packet
  starts at ``seq``, exactly where its own deliveries had ended.
* ``EVENT_END_OF_SESSION`` (4): feed ``feed`` sent the session's end (a
  MoldUDP64 end-of-session packet with sequence number ``seq``).
* ``EVENT_BOOK_DEGRADED`` (5): the book of ``stock_locate`` stopped being
  exact at the message ``seq`` / ``msg_index``; its records carry
  ``FLAG_DEGRADED`` from that update on.  ``reason`` says why (the first
  cause seen in that message).
* ``EVENT_BOOK_RESTORED`` (6): that book is exact again at message ``seq`` /
  ``msg_index`` (depth degradation ended).  A lost book is only restored by
  the host (slot command), which therefore gets no event for it.

``EVENT_FLAG_LOST_BEFORE`` (bit 0 of ``flags``): events of the same source
(sequencer, book) were dropped right before this one because the event
output was backed up; the source's ``events_lost`` counter says how many.
The stream never holds up market data: a host that stops reading events
loses events, not messages.

Records of one source keep their order; the sequencer's and the book's are
interleaved as the fabric produces them (a gap is reported when its packet
is arbitrated, a book change when the message's event reaches the book), so
``seq`` is what ties them together.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

EVENT_GAP = 1
EVENT_FEED_STALE = 2
EVENT_FEED_RECOVERED = 3
EVENT_END_OF_SESSION = 4
EVENT_BOOK_DEGRADED = 5
EVENT_BOOK_RESTORED = 6

EVENT_NAMES = {
    EVENT_GAP: "gap", EVENT_FEED_STALE: "feed_stale", EVENT_FEED_RECOVERED: "feed_recovered",
    EVENT_END_OF_SESSION: "end_of_session", EVENT_BOOK_DEGRADED: "book_degraded",
    EVENT_BOOK_RESTORED: "book_restored",
}
SEQUENCER_EVENTS = (EVENT_GAP, EVENT_FEED_STALE, EVENT_FEED_RECOVERED, EVENT_END_OF_SESSION)
BOOK_EVENTS = (EVENT_BOOK_DEGRADED, EVENT_BOOK_RESTORED)

# Why a fabric book stops being exact (``reason`` = 1 + index).
DEGRADE_REASONS = ("order_table_full", "unknown_reference", "level_missing", "depth")

EVENT_FLAG_LOST_BEFORE = 0x01

FEED_EVENT_DTYPE = np.dtype([
    ("kind", "u1"),
    ("feed", "u1"),
    ("reason", "u1"),
    ("flags", "u1"),
    ("stock_locate", "<u2"),
    ("msg_index", "<u2"),
    ("seq", "<u8"),
    ("expected", "<u8"),
])

assert FEED_EVENT_DTYPE.itemsize == 24 and FEED_EVENT_DTYPE.itemsize % 8 == 0
FEED_EVENT_BITS = 8 * FEED_EVENT_DTYPE.itemsize


def feed_event(kind: int, *, feed: int = 0, reason: int = 0, flags: int = 0,
               stock_locate: int = 0, msg_index: int = 0, seq: int = 0,
               expected: int = 0) -> np.void:
    """One record; fields a kind does not use stay zero."""
    row = np.zeros((), FEED_EVENT_DTYPE)
    row["kind"], row["feed"], row["reason"], row["flags"] = kind, feed, reason, flags
    row["stock_locate"], row["msg_index"] = stock_locate, msg_index
    row["seq"], row["expected"] = seq, expected
    return row[()]


def events_array(rows: Iterable) -> np.ndarray:
    """FEED_EVENT_DTYPE array from records (rows or tuples in field order)."""
    return np.array([tuple(row) for row in rows], dtype=FEED_EVENT_DTYPE)


def record_word(row) -> int:
    """A record as the fabric moves it: its 24 bytes as one little-endian
    integer (byte 0 in the low bits), the way 64-bit beats carry it."""
    return int.from_bytes(np.asarray(row, FEED_EVENT_DTYPE).tobytes(), "little")


def from_word(word: int) -> np.void:
    """The inverse of :func:`record_word`."""
    return np.frombuffer(word.to_bytes(FEED_EVENT_DTYPE.itemsize, "little"),
                         FEED_EVENT_DTYPE)[0]


def describe(row) -> str:
    """One readable line per record, for logs and reports."""
    kind = int(row["kind"])
    name = EVENT_NAMES.get(kind, f"kind {kind}")
    lost = " (events lost before)" if int(row["flags"]) & EVENT_FLAG_LOST_BEFORE else ""
    feed = "AB"[int(row["feed"]) & 1]
    seq, expected = int(row["seq"]), int(row["expected"])
    if kind == EVENT_GAP:
        return f"gap on {feed}: {expected}..{seq - 1} missing{lost}"
    if kind == EVENT_FEED_STALE:
        return f"feed {feed} stale: jumped to {seq}, expected {expected}{lost}"
    if kind in (EVENT_FEED_RECOVERED, EVENT_END_OF_SESSION):
        return f"{name} on {feed} at {seq}{lost}"
    if kind in BOOK_EVENTS:
        why = ""
        if kind == EVENT_BOOK_DEGRADED and 1 <= int(row["reason"]) <= len(DEGRADE_REASONS):
            why = f" ({DEGRADE_REASONS[int(row['reason']) - 1]})"
        return (f"{name} locate {int(row['stock_locate'])} at {seq}/"
                f"{int(row['msg_index'])}{why}{lost}")
    return f"{name}{lost}"


__all__ = [
    "FEED_EVENT_DTYPE", "FEED_EVENT_BITS", "EVENT_GAP", "EVENT_FEED_STALE",
    "EVENT_FEED_RECOVERED", "EVENT_END_OF_SESSION", "EVENT_BOOK_DEGRADED",
    "EVENT_BOOK_RESTORED", "EVENT_NAMES", "SEQUENCER_EVENTS", "BOOK_EVENTS",
    "DEGRADE_REASONS", "EVENT_FLAG_LOST_BEFORE", "feed_event", "events_array", "record_word",
    "from_word", "describe",
]

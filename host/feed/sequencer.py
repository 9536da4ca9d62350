"""Golden reference of MoldUDP64 feed accounting and A/B arbitration.

This module is the specification that the fast path (``host/feed``, numba)
and the fabric's sequencer are checked against.  It is deliberately plain
Python and follows these rules exactly.

Terms
-----
A *feed* is one UDP destination (the caller names it, e.g. "A" or
"233.54.12.1:26400").  Feeds whose packets carry the same MoldUDP64 session
name are copies of one *stream* and are arbitrated together.  Packets are
processed in arrival (capture) order; sequence numbers start at 1.  A feed is
assumed to carry one session.

Per-feed accounting (each feed alone, independent of arbitration)
------------------------------------------------------------------
``packets``            every packet received on the feed, of any kind
``messages``           message blocks received (in every data packet, repeats too)
``heartbeats``         packets with message_count 0
``end_of_session``     packets with message_count 0xFFFF
``duplicate_packets``  data packets all of whose sequence numbers had already
                       been received on this feed
``out_of_order_packets`` data packets that are not duplicates and whose first
                       sequence number is below the feed's highest
                       (sequence_number + count) seen so far: late fills
``gaps``, ``missing_messages``, ``gap_ranges``
                       the maximal runs of sequence numbers never received
                       on this feed between its lowest and highest received
                       sequence number, evaluated when asked (so a late fill
                       closes a hole); ``gap_ranges`` lists them as inclusive
                       ``(first, last)`` pairs, ``gaps`` is how many there
                       are, ``missing_messages`` how many numbers they hold.
                       Heartbeats and end-of-session packets neither fill nor
                       open holes.
``malformed``          {reason: count} of datagrams that did not decode
                       (only when fed through :meth:`Sequencer.on_datagram`)

Arbitration (one output stream per session)
-------------------------------------------
State ``next_seq``, unset until the first data packet of the session, then
set to that packet's first sequence number.  For each data packet in arrival
order, from any feed, for each message with sequence number ``q``:

* ``q == next_seq``: the message passes; ``next_seq += 1``.
* ``q > next_seq``: a gap event ``(expected=next_seq, received=q)`` is
  recorded, the stream is flagged stale, ``missing += q - next_seq``; the
  message passes and ``next_seq = q + 1``.
* ``q < next_seq``: the message is dropped, counted as a ``duplicate`` if
  ``q`` had passed, else as ``late`` (it fell in a gap already skipped, or
  precedes the stream's first message).

A heartbeat or end-of-session packet whose ``sequence_number`` (the next
sequence number the server will send) is above ``next_seq`` records the gap
event ``(next_seq, sequence_number)`` in the same way and sets ``next_seq``
to it; one at or below ``next_seq``, or before any data packet, changes
nothing.  The stale flag is never cleared: recovering the missing messages
is retransmission's business, not arbitration's.

Per-stream report: ``passed``, ``duplicates``, ``late``, ``gap_events``
(list of (expected, received)), ``missing`` (sum of received - expected),
``stale``, plus ``next_seq``, ``end_of_session`` (seen on any feed) and
``passed_by_feed`` (which feed delivered each passing message first).

Memory stays small on 100M-message days: each feed keeps only the intervals
of sequence numbers it received (one more than its holes) and each stream
only its gap events.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any

from host.protocols.errors import DecodeError
from host.protocols.moldudp64 import MoldPacket, decode_packet


class SeqIntervals:
    """A set of integers stored as sorted, disjoint, non-touching [lo, hi) runs."""

    __slots__ = ("starts", "ends")

    def __init__(self):
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __len__(self) -> int:
        """Number of runs (not of integers)."""
        return len(self.starts)

    def add(self, lo: int, hi: int) -> int:
        """Insert [lo, hi); return how many integers were not present before."""
        if hi <= lo:
            return 0
        starts, ends = self.starts, self.ends
        # Runs i..j-1 overlap or touch [lo, hi) and are merged with it.
        i = bisect_left(ends, lo)
        j = bisect_right(starts, hi)
        already = 0
        for k in range(i, j):
            already += max(0, min(ends[k], hi) - max(starts[k], lo))
        merged_lo = min(lo, starts[i]) if i < j else lo
        merged_hi = max(hi, ends[j - 1]) if i < j else hi
        starts[i:j] = [merged_lo]
        ends[i:j] = [merged_hi]
        return (hi - lo) - already

    def contains(self, x: int) -> bool:
        k = bisect_right(self.starts, x) - 1
        return k >= 0 and x < self.ends[k]

    @property
    def lowest(self) -> int | None:
        return self.starts[0] if self.starts else None

    @property
    def highest_end(self) -> int | None:
        return self.ends[-1] if self.ends else None

    def holes(self) -> list[tuple[int, int]]:
        """The gaps between runs as inclusive (first, last) pairs."""
        return [(self.ends[k], self.starts[k + 1] - 1) for k in range(len(self.starts) - 1)]


@dataclass
class FeedState:
    feed: str
    session: str | None = None
    packets: int = 0
    messages: int = 0
    heartbeats: int = 0
    end_of_session: int = 0
    duplicate_packets: int = 0
    out_of_order_packets: int = 0
    received: SeqIntervals = field(default_factory=SeqIntervals)
    malformed: dict[str, int] = field(default_factory=dict)
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None

    def stats(self) -> dict[str, Any]:
        holes = self.received.holes()
        highest_end = self.received.highest_end
        return {
            "feed": self.feed,
            "session": self.session,
            "packets": self.packets,
            "messages": self.messages,
            "heartbeats": self.heartbeats,
            "end_of_session": self.end_of_session,
            "duplicate_packets": self.duplicate_packets,
            "out_of_order_packets": self.out_of_order_packets,
            "gaps": len(holes),
            "missing_messages": sum(last - first + 1 for first, last in holes),
            "gap_ranges": holes,
            "lowest_seq": self.received.lowest,
            "highest_seq": None if highest_end is None else highest_end - 1,
            "malformed": dict(self.malformed),
            "first_ts_ns": self.first_ts_ns,
            "last_ts_ns": self.last_ts_ns,
        }


@dataclass
class StreamState:
    session: str
    next_seq: int | None = None
    first_seq: int | None = None
    passed: int = 0
    duplicates: int = 0
    late: int = 0
    missing: int = 0
    stale: bool = False
    end_of_session: bool = False
    gap_events: list[tuple[int, int]] = field(default_factory=list)
    passed_by_feed: dict[str, int] = field(default_factory=dict)

    def has_passed(self, q: int) -> bool:
        """Passed = [first_seq, next_seq) minus the skipped [expected, received) runs."""
        if self.first_seq is None or not self.first_seq <= q < self.next_seq:
            return False
        # gap_events is sorted by `expected`, since next_seq only grows.
        k = bisect_right(self.gap_events, (q, float("inf"))) - 1
        return not (k >= 0 and q < self.gap_events[k][1])

    def open_gap(self, received: int) -> None:
        self.gap_events.append((self.next_seq, received))
        self.missing += received - self.next_seq
        self.stale = True

    def stats(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "passed": self.passed,
            "duplicates": self.duplicates,
            "late": self.late,
            "gap_events": list(self.gap_events),
            "missing": self.missing,
            "stale": self.stale,
            "next_seq": self.next_seq,
            "end_of_session": self.end_of_session,
            "passed_by_feed": dict(self.passed_by_feed),
        }


class Sequencer:
    """Per-feed accounting and per-session A/B arbitration (see module doc)."""

    def __init__(self):
        self.feeds: dict[str, FeedState] = {}
        self.streams: dict[str, StreamState] = {}

    def _feed(self, feed: str) -> FeedState:
        state = self.feeds.get(feed)
        if state is None:
            state = self.feeds[feed] = FeedState(feed)
        return state

    def on_datagram(self, feed: str, payload, ts_ns: int = 0) -> list[tuple[int, int, bytes]]:
        """Decode one UDP payload and process it; a bad one is counted on its feed."""
        try:
            packet = decode_packet(payload)
        except DecodeError as exc:
            state = self._feed(feed)
            state.malformed[exc.reason] = state.malformed.get(exc.reason, 0) + 1
            return []
        return self.on_packet(feed, packet, ts_ns)

    def on_packet(self, feed: str, packet: MoldPacket, ts_ns: int = 0) -> list[tuple[int, int, bytes]]:
        """Account ``packet`` on ``feed`` and arbitrate it.

        Returns the (sequence number, index in packet, message) triples that
        pass arbitration, in order.
        """
        fs = self._feed(feed)
        fs.packets += 1
        fs.session = packet.session
        if fs.first_ts_ns is None:
            fs.first_ts_ns = ts_ns
        fs.last_ts_ns = ts_ns

        stream = self.streams.get(packet.session)
        if stream is None:
            stream = self.streams[packet.session] = StreamState(packet.session)

        kind = packet.kind
        if kind != "data":
            if kind == "heartbeat":
                fs.heartbeats += 1
            else:
                fs.end_of_session += 1
                stream.end_of_session = True
            if stream.next_seq is not None and packet.sequence_number > stream.next_seq:
                stream.open_gap(packet.sequence_number)
                stream.next_seq = packet.sequence_number
            return []

        first = packet.sequence_number
        count = len(packet.messages)
        fs.messages += count
        highest_end = fs.received.highest_end
        if fs.received.add(first, first + count) == 0:
            fs.duplicate_packets += 1
        elif highest_end is not None and first < highest_end:
            fs.out_of_order_packets += 1

        if stream.next_seq is None:
            stream.next_seq = stream.first_seq = first
        out: list[tuple[int, int, bytes]] = []
        for index, msg in enumerate(packet.messages):
            q = first + index
            if q >= stream.next_seq:
                if q > stream.next_seq:
                    stream.open_gap(q)
                stream.next_seq = q + 1
                stream.passed += 1
                out.append((q, index, msg))
            elif stream.has_passed(q):
                stream.duplicates += 1
            else:
                stream.late += 1
        if out:
            stream.passed_by_feed[feed] = stream.passed_by_feed.get(feed, 0) + len(out)
        return out

    # -- reports --------------------------------------------------------------
    def feed_names(self) -> list[str]:
        return list(self.feeds)

    def sessions(self) -> list[str]:
        return list(self.streams)

    # A name never seen reports zeros rather than failing, so a report can
    # list every configured feed even if one stayed silent.
    def feed_stats(self, feed: str) -> dict[str, Any]:
        state = self.feeds.get(feed)
        return (state or FeedState(feed)).stats()

    def stream_stats(self, session: str) -> dict[str, Any]:
        state = self.streams.get(session)
        return (state or StreamState(session)).stats()

    def report(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return {
            "feeds": {name: st.stats() for name, st in self.feeds.items()},
            "streams": {name: st.stats() for name, st in self.streams.items()},
        }

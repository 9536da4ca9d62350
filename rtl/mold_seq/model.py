"""Bit-accurate model of the MoldUDP64 sequencer; this is the block's specification.

Two feeds (A and B, copies of one MoldUDP64 session) come in as UDP payloads,
one Mold packet each, the way the frame filter emits them.  One stream of
ITCH messages goes out: each message that passes arbitration, with its
sequence number, its index in its Mold packet, the feed that delivered it and
the stream's stale flag.  The arbitration is exactly that of
:mod:`host.feed.sequencer` for one session; the differences are listed below
and all of them are counted, never silent.

Validation
----------
A packet is checked whole before anything of it is used (the block buffers it:
store and forward), so a malformed packet never shows on the output, exactly
as the host drops it before arbitration.  Reasons, in check order:

``frame_error``      ``tuser`` was high on a beat (not in the host: the fabric's own)
``oversize``         longer than :data:`MAX_PACKET_BYTES` (the frame filter never
                     passes one; fabric only)
``truncated`` ``bad_field`` ``block_past_end`` ``zero_length_block``
``count_mismatch`` ``trailing_bytes``
                     as :func:`host.protocols.moldudp64.decode_packet`
``sequence_out_of_range``  as :mod:`host.feed.fastpath`: a sequence number
                     above 2**63 - 1 - 0xFFFF, so sequence arithmetic never wraps

The hardware walks the message blocks as the bytes arrive, without knowing
``message_count`` in advance of the blocks it counts; :func:`walk_blocks` is that
walk and :func:`walk_reason` turns where it stopped into the host's reason.

Dropped upstream
----------------
The frame filter cuts through: a frame's payload reaches the sequencer while
the frame is still arriving, and a frame found bad only at its end (frame
error, truncation) closes its payload with ``tdrop`` on the last beat.  The
filter has dropped and counted that frame; here the packet is discarded
without a trace: no counter, no ticket, no state, no message (``dropped``
in :class:`Arrival` and :meth:`MoldSeqModel.process`).  To everything else
it is as if the packet had never come.

Session
-------
The block follows one session: the one set over AXI-Lite when
``session_from_register`` is on, else the session of the first well-formed
packet.  Well-formed packets of any other session are counted per feed
(``other_session``) and dropped.  The per-feed ``packets``, ``messages``,
``heartbeats`` and ``end_of_session`` count every well-formed packet, as the
host's per-feed accounting does.

Arbitration (the host's rules, per packet)
------------------------------------------
``next_seq`` is set by the first data packet.  A data packet with first
sequence number ``s`` and ``n`` messages, with ``N = next_seq``: its first
``clamp(N - s, 0, n)`` messages are dropped, the rest pass; if ``s > N`` the gap
event ``(N, s)`` opens first.  ``next_seq`` becomes ``max(N, s + n)``.  A
heartbeat or end-of-session packet with sequence number above ``next_seq``
(once set) opens the gap ``(next_seq, s)`` and sets ``next_seq = s``.  A gap
raises the stream's stale flag (software clears it, the host never does).
Dropped copies are ``late`` if they fall before the stream's first sequence
number or inside a skipped gap range, else ``duplicates``.  The fabric keeps
only the last :data:`GAP_TABLE_ENTRIES` gap events: once older ones have been
evicted, a dropped copy below the oldest kept event (and not before the first
sequence number) can no longer be told apart and is counted as a duplicate
and also under ``assumed_duplicates``; while that counter is zero the split
equals the host's.

Per-feed stale flag
-------------------
Each feed keeps an expectation ``expect``: the highest ``sequence_number +
message_count`` of its data packets, or ``sequence_number`` of its heartbeats
and end-of-session packets, of the followed session.  A packet whose sequence
number is above ``expect`` is a *jump* (counted as ``jumps``) and raises the
feed's stale flag.  The feed is *contiguous again* at its next packet (data,
heartbeat or end of session) whose sequence number equals ``expect``: it
carries on exactly where everything the feed delivered before ended; that
clears the flag.  Late fills and repeats (sequence number below ``expect``)
leave the flag as it is.  A feed's first packet sets ``expect`` only.

Events
------
In the order the packet causes them: ``FEED_STALE`` (feed, expect, sequence
number) when a feed's flag rises, ``FEED_RECOVERED`` (feed, sequence number)
when it falls, ``GAP`` (feed whose packet opened it, expected, received), and
``END_OF_SESSION`` (feed, sequence number) for every end-of-session packet of
the session.  They queue in a :data:`EVENT_FIFO_DEPTH`-deep FIFO that drains
either into the feed event stream (``CONTROL.event_stream``, the default: one
:data:`host.feed.records.FEED_EVENT_DTYPE` record per event, see
:meth:`MoldSeqModel.feed_events`) or to the host over AXI-Lite (read the
EVENT_* registers, then write the running count of events consumed to
``event_ack``).  An event finding the FIFO full is lost and counted
(``events_lost``), and the next event kept says so (``lost_before``).

Control
-------
``hold`` stops taking packets (the inputs back up) and clears the stream
state: session latch, ``next_seq``, gap table, feed expectations and flags,
end of session (:meth:`MoldSeqModel.restart`).  Counters, queued events and
the stale bit, which software clears by writing 1, stay.

Arbitration between the two inputs
----------------------------------
First completed, first served: packets are arbitrated in the order their last
beat was accepted; when both inputs complete a well-formed packet in the same
cycle, the two take turns going first (A first the first time).  See
:func:`arbitration_order`.

Counters are 32 bits and wrap; ``missing`` is 64 bits.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

from host.feed.fastpath import MALFORMED_REASONS
from host.feed.records import (EVENT_END_OF_SESSION, EVENT_FEED_RECOVERED, EVENT_FEED_STALE,
                               EVENT_FLAG_LOST_BEFORE, EVENT_GAP, SEQUENCER_EVENTS, feed_event)
from host.feed.records import EVENT_NAMES as RECORD_EVENT_NAMES
from host.protocols.moldudp64 import (BLOCK_HEADER_SIZE, END_OF_SESSION_COUNT, HEADER_SIZE,
                                      HEARTBEAT_COUNT, SESSION_LENGTH)
from rtl.common.axis import DATA_BYTES

FEEDS = ("a", "b")
BUFFER_BEATS = 512                 # per input: two maximum packets and then some
MAX_PACKET_BEATS = 256             # what the frame filter can pass
MAX_PACKET_BYTES = MAX_PACKET_BEATS * DATA_BYTES
GAP_TABLE_ENTRIES = 4
EVENT_FIFO_DEPTH = 16
COUNTER_MASK = 0xFFFF_FFFF
MISSING_MASK = (1 << 64) - 1
# The fast path's bound: sequence_number + message_count stays below 2**63.
SEQ_LIMIT = (1 << 63) - 1 - 0xFFFF
assert BLOCK_HEADER_SIZE == 2

MALFORMED = ("frame_error", "oversize") + tuple(MALFORMED_REASONS)
FEED_COUNTERS = ("packets", "messages", "heartbeats", "end_of_session", "other_session",
                 "passed", "jumps") + MALFORMED
STREAM_COUNTERS = ("passed", "duplicates", "late", "gaps", "assumed_duplicates", "events_lost")

# The event kinds are those of the feed event record.
EV_GAP = EVENT_GAP
EV_FEED_STALE = EVENT_FEED_STALE
EV_FEED_RECOVERED = EVENT_FEED_RECOVERED
EV_END_OF_SESSION = EVENT_END_OF_SESSION
EVENT_NAMES = {kind: RECORD_EVENT_NAMES[kind] for kind in SEQUENCER_EVENTS}

# Where the block walk stopped.
WALK_END = "end"     # exactly at the end of the packet
WALK_CUT = "cut"     # a length prefix starts on the last byte
WALK_ZERO = "zero"   # a block of length 0
WALK_PAST = "past"   # a block runs past the end


class SeqMessage(NamedTuple):
    """One message on the output stream."""

    data: bytes
    seq: int
    msg_index: int
    feed: int
    stale: bool


class Event(NamedTuple):
    """One entry of the event FIFO (``b`` is 0 where the kind has no second
    value); ``lost_before``: events were lost to a full FIFO just before it."""

    kind: int
    feed: int
    a: int
    b: int = 0
    lost_before: bool = False

    def record(self):
        """The event as a :data:`~host.feed.records.FEED_EVENT_DTYPE` record:
        gap and feed stale carry (expected, received) in (``expected``,
        ``seq``), the others their one sequence number in ``seq``."""
        two_values = self.kind in (EV_GAP, EV_FEED_STALE)
        return feed_event(self.kind, feed=self.feed,
                          flags=EVENT_FLAG_LOST_BEFORE if self.lost_before else 0,
                          seq=self.b if two_values else self.a,
                          expected=self.a if two_values else 0)


def walk_blocks(data: bytes) -> tuple[int, str]:
    """Walk the message blocks after the header: (clean blocks before the stop, why it stopped)."""
    end, pos, blocks = len(data), HEADER_SIZE, 0
    while True:
        if pos == end:
            return blocks, WALK_END
        if pos + BLOCK_HEADER_SIZE > end:
            return blocks, WALK_CUT
        length = int.from_bytes(data[pos:pos + BLOCK_HEADER_SIZE], "big")
        if length == 0:
            return blocks, WALK_ZERO
        pos += BLOCK_HEADER_SIZE + length
        if pos > end:
            return blocks, WALK_PAST
        blocks += 1


def walk_reason(message_count: int, blocks: int, stop: str) -> str | None:
    """The host's verdict on a packet announcing ``message_count`` whose walk gave
    (``blocks``, ``stop``): None if it decodes.  The host reads
    ``message_count`` blocks and then demands the end; heartbeats and
    end-of-session packets announce none."""
    wanted = 0 if message_count in (HEARTBEAT_COUNT, END_OF_SESSION_COUNT) else message_count
    if stop == WALK_END:
        return None if wanted == blocks else "count_mismatch"
    if wanted <= blocks:
        # The announced blocks were fine; what follows them is not whole blocks.
        return "trailing_bytes"
    return "zero_length_block" if stop == WALK_ZERO else "block_past_end"


def header(data: bytes) -> tuple[bytes, int, int]:
    """(session bytes, sequence_number, message_count) of a packet at least a header long."""
    return (bytes(data[:SESSION_LENGTH]),
            int.from_bytes(data[SESSION_LENGTH:SESSION_LENGTH + 8], "big"),
            int.from_bytes(data[SESSION_LENGTH + 8:HEADER_SIZE], "big"))


def check_packet(data: bytes, error: bool = False) -> str | None:
    """The malformed reason of one input packet, or None if it is well formed."""
    return inspect_packet(data, error)[0]


def inspect_packet(data: bytes, error: bool = False) -> tuple[str | None, list[tuple[int, int]]]:
    """(:func:`check_packet`'s verdict, the (offset, length) of each message
    block the walk passed): one walk for both, so a well-formed packet's
    spans are :func:`message_spans` without walking it again."""
    if error:
        return "frame_error", []
    size = len(data)
    if size > MAX_PACKET_BYTES:
        return "oversize", []
    if size < HEADER_SIZE:
        return "truncated", []
    if max(data[:SESSION_LENGTH]) >= 0x80:
        return "bad_field", []
    spans = []
    pos = HEADER_SIZE
    while True:
        if pos == size:
            stop = WALK_END
            break
        if pos + BLOCK_HEADER_SIZE > size:
            stop = WALK_CUT
            break
        length = (data[pos] << 8) | data[pos + 1]   # BLOCK_HEADER_SIZE is 2
        if length == 0:
            stop = WALK_ZERO
            break
        start = pos + BLOCK_HEADER_SIZE
        pos = start + length
        if pos > size:
            stop = WALK_PAST
            break
        spans.append((start, length))
    reason = walk_reason(int.from_bytes(data[SESSION_LENGTH + 8:HEADER_SIZE], "big"),
                         len(spans), stop)
    if reason is not None:
        return reason, spans
    if int.from_bytes(data[SESSION_LENGTH:SESSION_LENGTH + 8], "big") > SEQ_LIMIT:
        return "sequence_out_of_range", spans
    return None, spans


def message_spans(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each message of a well-formed packet."""
    spans, pos = [], HEADER_SIZE
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + BLOCK_HEADER_SIZE], "big")
        spans.append((pos + BLOCK_HEADER_SIZE, length))
        pos += BLOCK_HEADER_SIZE + length
    return spans


class Arrival(NamedTuple):
    """An input packet as the arbiter sees it: which feed, and the cycle its
    last beat was accepted; ``dropped``: its last beat carried ``tdrop``."""

    feed: int
    cycle: int
    data: bytes
    error: bool = False
    dropped: bool = False


def arbitration_order(arrivals: Sequence[Arrival]) -> list[int]:
    """Indices of ``arrivals`` in the order the block arbitrates them.

    Each input completes at most one packet per cycle.  Well-formed packets
    take a ticket the cycle after their last beat; tickets are served in
    order.  When both inputs take one in the same cycle, the favoured input
    goes first and the favour passes to the other (it starts with A).
    Malformed packets take no ticket (they are only counted); they are placed
    by their cycle, and so are packets dropped upstream (they take none either).
    """
    return Arbiter().order(arrivals)


class Arbiter:
    """:func:`arbitration_order` with its one piece of state, the favoured
    input, kept from call to call: a run's arrivals can be ordered batch by
    batch as they come, each batch whole cycles later than the last one's,
    with the result of ordering them all at once."""

    def __init__(self):
        self.favour = 0

    def order(self, arrivals: Sequence[Arrival]) -> list[int]:
        by_cycle: dict[int, list[int]] = {}
        for i, arrival in enumerate(arrivals):
            by_cycle.setdefault(arrival.cycle, []).append(i)
        order = []
        for cycle in sorted(by_cycle):
            group = by_cycle[cycle]
            feeds = [arrivals[i].feed for i in group]
            if len(set(feeds)) != len(feeds):
                raise ValueError(f"two packets of one feed complete in cycle {cycle}")
            ticketed = [i for i in group if not arrivals[i].dropped
                        and check_packet(arrivals[i].data, arrivals[i].error) is None]
            if len(ticketed) == 2:
                favour = self.favour
                ticketed.sort(key=lambda i: arrivals[i].feed != favour)
                self.favour ^= 1
            order += [i for i in group if i not in ticketed] + ticketed
        return order


@dataclass
class _FeedTrack:
    expect: int | None = None
    stale: bool = False


class MoldSeqModel:
    """The block: two inputs' packets in arbitration order, messages and events out.

    ``session`` (10 bytes) models ``session_from_register``: only that session
    is followed.  ``event_capacity`` None models a host that drains every
    event in time; a number models a FIFO of that depth nobody drains.
    """

    def __init__(self, session: bytes | None = None, event_capacity: int | None = None,
                 gap_table_entries: int = GAP_TABLE_ENTRIES):
        if session is not None and len(session) != SESSION_LENGTH:
            raise ValueError(f"a session name is {SESSION_LENGTH} bytes")
        self.session = session
        self.session_from_register = session is not None
        self.event_capacity = event_capacity
        self.started = False
        self.next_seq = 0
        self.first_seq = 0
        self.stale = False
        self.end_of_session = False
        self.gap_table: deque[tuple[int, int]] = deque(maxlen=gap_table_entries)
        self.gap_total = 0
        self.missing = 0
        self.feed_track = [_FeedTrack() for _ in FEEDS]
        self.counters = {feed: dict.fromkeys(FEED_COUNTERS, 0) for feed in FEEDS}
        self.stream_counters = dict.fromkeys(STREAM_COUNTERS, 0)
        self.events: list[Event] = []
        self.lost_pending = False

    # -- state the registers show ------------------------------------------------
    @property
    def feed_stale(self) -> tuple[bool, bool]:
        return tuple(track.stale for track in self.feed_track)

    def clear_stale(self) -> None:
        """Software writes 1 to the stream's stale bit."""
        self.stale = False

    def restart(self) -> None:
        """``hold`` raised and lowered: a fresh session.  Counters, the event
        FIFO and the stale bit (software's to clear) stay."""
        if not self.session_from_register:
            self.session = None
        self.started = False
        self.next_seq = self.first_seq = 0
        self.end_of_session = False
        self.gap_table.clear()
        self.gap_total = 0
        self.feed_track = [_FeedTrack() for _ in FEEDS]

    # -- processing ------------------------------------------------------------------
    def run(self, packets: Iterable[tuple[int, bytes]]) -> list[SeqMessage]:
        """(feed, payload) pairs in arbitration order -> the output messages."""
        out = []
        for feed, data in packets:
            out += self.process(feed, data)
        return out

    def run_arrivals(self, arrivals: Sequence[Arrival]) -> list[SeqMessage]:
        out = []
        for i in arbitration_order(arrivals):
            arrival = arrivals[i]
            out += self.process(arrival.feed, arrival.data, arrival.error, arrival.dropped)
        return out

    def process(self, feed: int, data: bytes, error: bool = False,
                dropped: bool = False) -> list[SeqMessage]:
        """One packet of input ``feed`` (0 = A, 1 = B), in arbitration order;
        one ``dropped`` upstream leaves no trace."""
        if dropped:
            return []
        data = bytes(data)
        counts = self.counters[FEEDS[feed]]
        reason, spans = inspect_packet(data, error)
        if reason is not None:
            self._count(counts, reason)
            return []
        session, seq, count = header(data)
        counts["packets"] = (counts["packets"] + 1) & COUNTER_MASK
        if count == HEARTBEAT_COUNT:
            self._count(counts, "heartbeats")
        elif count == END_OF_SESSION_COUNT:
            self._count(counts, "end_of_session")
        else:
            counts["messages"] = (counts["messages"] + count) & COUNTER_MASK
        if self.session is None:
            self.session = session
        if session != self.session:
            self._count(counts, "other_session")
            return []

        data_packet = count not in (HEARTBEAT_COUNT, END_OF_SESSION_COUNT)
        self._track_feed(feed, seq, seq + count if data_packet else seq)
        if not data_packet:
            if self.started and seq > self.next_seq:
                self._gap(feed, seq)
                self.next_seq = seq
            if count == END_OF_SESSION_COUNT:
                self.end_of_session = True
                self._event(Event(EV_END_OF_SESSION, feed, seq))
            return []

        if not self.started:
            self.started = True
            self.next_seq = self.first_seq = seq
        dropped = min(max(self.next_seq - seq, 0), count)
        if dropped:
            self._classify_dropped(seq, seq + dropped)
        if dropped == count:
            return []
        if seq > self.next_seq:
            self._gap(feed, seq)
        self.next_seq = seq + count
        passing = count - dropped
        self._count(self.stream_counters, "passed", passing)
        self._count(counts, "passed", passing)
        stale = self.stale
        return [SeqMessage(data[off:off + length], seq + index, index, feed, stale)
                for index, (off, length) in enumerate(spans[dropped:], dropped)]

    def _track_feed(self, feed: int, seq: int, reach: int) -> None:
        track = self.feed_track[feed]
        if track.expect is not None:
            if seq > track.expect:
                self._count(self.counters[FEEDS[feed]], "jumps")
                if not track.stale:
                    track.stale = True
                    self._event(Event(EV_FEED_STALE, feed, track.expect, seq))
            elif seq == track.expect and track.stale:
                track.stale = False
                self._event(Event(EV_FEED_RECOVERED, feed, seq))
            reach = max(reach, track.expect)
        track.expect = reach

    def _classify_dropped(self, lo: int, hi: int) -> None:
        """Split the dropped copies [lo, hi) into late and duplicates."""
        if hi <= lo:
            return
        late = _overlap(lo, hi, 0, self.first_seq)
        for expected, received in self.gap_table:
            if received > lo and expected < hi:     # else no overlap: skip the call
                late += _overlap(lo, hi, expected, received)
        assumed = 0
        if self.gap_total > len(self.gap_table):
            assumed = _overlap(lo, hi, self.first_seq, self.gap_table[0][0])
        self._count(self.stream_counters, "late", late)
        self._count(self.stream_counters, "duplicates", hi - lo - late)
        self._count(self.stream_counters, "assumed_duplicates", assumed)

    def _gap(self, feed: int, received: int) -> None:
        expected = self.next_seq
        self.gap_table.append((expected, received))
        self.gap_total += 1
        self.missing = (self.missing + received - expected) & MISSING_MASK
        self.stale = True
        self._count(self.stream_counters, "gaps")
        self._event(Event(EV_GAP, feed, expected, received))

    def feed_events(self) -> list:
        """Every event so far as the feed event stream carries it."""
        return [event.record() for event in self.events]

    def _event(self, event: Event) -> None:
        if self.event_capacity is not None and len(self.events) >= self.event_capacity:
            self._count(self.stream_counters, "events_lost")
            self.lost_pending = True
            return
        self.events.append(event._replace(lost_before=self.lost_pending))
        self.lost_pending = False

    @staticmethod
    def _count(counts: dict[str, int], name: str, amount: int = 1) -> None:
        counts[name] = (counts[name] + amount) & COUNTER_MASK


def _overlap(lo: int, hi: int, start: int, stop: int) -> int:
    """How many integers [lo, hi) and [start, stop) share."""
    return max(0, min(hi, stop) - max(lo, start))

"""Bit-accurate model of the feed path; this is the top level's specification.

The four block models composed the way :mod:`rtl.feed_path.hdl` joins the
blocks: each feed's frames through its own :class:`FrameFilterModel`, the
passing payloads through the :class:`MoldSeqModel` in arbitration order,
every message it delivers through the :class:`ItchDecoderModel`, every event
through the :class:`OrderBookModel`.  Nothing is added between the blocks:
the top level's behaviour is theirs, and its records are the book's.  (The
hardware's filters cut through and close the payload of a frame they drop at
its end with ``tdrop``; the sequencer discards it without a trace.  Such a
frame is a filter drop here, never seen by the sequencer.)

Feed events (:mod:`host.feed.records`) come from two of the blocks: the
sequencer's (gap, feed stale, feed recovered, end of session; its
``feed_events``) and the book's (degraded, restored).  :attr:`FeedPathModel.feed_events`
lists them in causal order: a packet's sequencer events, then the book's
for its messages.  The fabric merges the two sources as they come, so on
``m_feed_event`` each source's records keep this order while the two
interleave by timing (:func:`by_source` splits a stream for comparison); the
model is a host that keeps up, so no record is lost and none carries
``EVENT_FLAG_LOST_BEFORE``.

Arbitration order is the sequencer's: packets in the order their last beat
reaches it (:func:`rtl.mold_seq.model.arbitration_order`).  :meth:`FeedPathModel.run`
takes frames already in that order (a capture replayed one frame at a time);
a bench that drives both feeds at once gives the cycle each payload
completed at the sequencer and uses :meth:`FeedPathModel.run_arrivals`.

The book's ``FLAG_STALE`` is its ``CONTROL.stale`` bit (software's) or the
stream's stale bit as the sequencer delivered it with the message: set from
the first message of the packet that revealed a gap, until software clears
the sequencer's ``STATUS.stream_stale`` (write 1), message by message, the
way the golden book flags records after a sequence jump.  The bit rides the
message-stream sideband into the decoder and the event into the book, so the
hardware marks exactly the records of those messages whatever is in flight
when it changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

from host.feed.records import BOOK_EVENTS, SEQUENCER_EVENTS
from rtl.common.axis import Packet
from rtl.frame_filter.model import FilterEntry, FrameFilterModel
from rtl.itch_decoder.model import ItchDecoderModel, SubscriptionEntry
from rtl.mold_seq.model import Arrival, MoldSeqModel, arbitration_order
from rtl.order_book.model import BookConfig, OrderBookModel, Output

FEED_A, FEED_B = 0, 1


class Frame(NamedTuple):
    """One Ethernet frame on input ``feed`` (0 = A, 1 = B)."""

    feed: int
    data: bytes
    error: bool = False


@dataclass
class FeedPathConfig:
    """What software sets up before the day (all of it through registers)."""

    filter_a: Sequence[FilterEntry | None] = ()
    filter_b: Sequence[FilterEntry | None] = ()
    session: bytes | None = None
    subscriptions: Sequence[SubscriptionEntry | None] = ()
    pass_all_locates: bool = False
    book: BookConfig = BookConfig()
    auto_assign: bool = True
    refill: bool = True
    stale: bool = False


class FeedPathModel:
    """The top level: frames of two feeds in, book records out."""

    def __init__(self, config: FeedPathConfig = FeedPathConfig()):
        self.config = config
        self.filters = (FrameFilterModel(config.filter_a), FrameFilterModel(config.filter_b))
        self.sequencer = MoldSeqModel(config.session)
        self.decoder = ItchDecoderModel(config.subscriptions, config.pass_all_locates)
        self.book = OrderBookModel(config.book, auto_assign=config.auto_assign,
                                   stale=config.stale, refill=config.refill)
        self.messages = 0
        self.feed_events: list = []

    def filter(self, frame: Frame) -> Packet | None:
        """The frame through its feed's filter: the payload the sequencer gets."""
        return self.filters[frame.feed].process(frame.data, frame.error)

    def sequence(self, feed: int, payload: Packet) -> list[Output]:
        """One payload into the sequencer (in arbitration order) and everything
        it delivers through decoder and book."""
        out = []
        sequencer_events = len(self.sequencer.events)
        messages = self.sequencer.process(feed, payload.data, payload.error)
        if len(self.sequencer.events) != sequencer_events:
            self.feed_events += [e.record() for e in self.sequencer.events[sequencer_events:]]
        decode = self.decoder.process_fields
        book = self.book
        for message in messages:
            self.messages += 1
            # The event as a dict, not a numpy row: the same values (see
            # ItchDecoderModel.process_fields) at a fraction of the cost.
            event = decode(message.data, message.seq, message.msg_index, message.feed,
                           message.stale)
            if event is not None:
                book_events = len(book.feed_events)
                out += book.process(event)
                if len(book.feed_events) != book_events:
                    self.feed_events += book.feed_events[book_events:]
        return out

    def process(self, frame: Frame) -> list[Output]:
        """One frame, the sequencer taking its payload before any later one's."""
        payload = self.filter(frame)
        return [] if payload is None else self.sequence(frame.feed, payload)

    def run(self, frames: Iterable[Frame]) -> list[Output]:
        out = []
        for frame in frames:
            out += self.process(frame)
        return out

    def run_arrivals(self, arrivals: Sequence[Arrival]) -> list[Output]:
        """Payloads as they reached the sequencer (feed, cycle of the last
        beat, bytes): the sequencer's arbitration decides their order.  A
        payload a filter dropped at its frame's end (``dropped``) is the
        filter's drop, already counted by :meth:`filter`; it is skipped."""
        out = []
        for i in arbitration_order(arrivals):
            arrival = arrivals[i]
            if not arrival.dropped:
                out += self.sequence(arrival.feed, Packet(arrival.data, arrival.error))
        return out


def by_source(records) -> tuple[list, list]:
    """(the sequencer's, the book's) records of a feed event stream, each in
    stream order; anything else is neither's and makes a ValueError."""
    sequencer, book = [], []
    for row in records:
        kind = int(row["kind"])
        if kind in SEQUENCER_EVENTS:
            sequencer.append(row)
        elif kind in BOOK_EVENTS:
            book.append(row)
        else:
            raise ValueError(f"feed event of unknown kind {kind}")
    return sequencer, book

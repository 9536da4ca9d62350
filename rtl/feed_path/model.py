"""Bit-accurate model of the feed path; this is the top level's specification.

The four block models composed the way :mod:`rtl.feed_path.hdl` joins the
blocks: each feed's frames through its own :class:`FrameFilterModel`, the
passing payloads through the :class:`MoldSeqModel` in arbitration order,
every message it delivers through the :class:`ItchDecoderModel`, every event
through the :class:`OrderBookModel`.  Nothing is added between the blocks:
the top level's behaviour is theirs, and its records are the book's.

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

from rtl.common.axis import Packet
from rtl.frame_filter.model import FilterEntry, FrameFilterModel
from rtl.itch_decoder.model import ItchDecoderModel, ItchInput, SubscriptionEntry
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

    def filter(self, frame: Frame) -> Packet | None:
        """The frame through its feed's filter: the payload the sequencer gets."""
        return self.filters[frame.feed].process(frame.data, frame.error)

    def sequence(self, feed: int, payload: Packet) -> list[Output]:
        """One payload into the sequencer (in arbitration order) and everything
        it delivers through decoder and book."""
        out = []
        for message in self.sequencer.process(feed, payload.data, payload.error):
            self.messages += 1
            event = self.decoder.process(ItchInput(message.data, message.seq, message.msg_index,
                                                   message.feed, message.stale))
            if event is not None:
                out += self.book.process(event)
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
        beat, bytes): the sequencer's arbitration decides their order."""
        out = []
        for i in arbitration_order(arrivals):
            arrival = arrivals[i]
            out += self.sequence(arrival.feed, Packet(arrival.data, arrival.error))
        return out

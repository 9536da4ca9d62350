"""Feed events in the fabric: the :data:`host.feed.records.FEED_EVENT_DTYPE`
record as one word, the port that moves it, the queue a source keeps its
records in, and the merge of the sources into the feed path's event stream.

A record travels inside the fabric as one parallel word of
:data:`FEED_EVENT_BITS` bits with a valid/ready handshake
(:class:`FeedEventPort`, ``m_feed_event_data`` / ``_valid`` / ``_ready`` on
a block): byte ``k`` of the record in bits ``8k+7:8k``, exactly
:func:`host.feed.records.record_word`.  The sequencer and the book each
produce one; :func:`feed_event_merge` takes the two in turns and sends each
record as three 64-bit beats on the top level's ``m_feed_event``
AXI-Stream (``tlast`` on the third), the same beat convention as the book's
records.

No source ever waits for the event stream: a record that finds its queue
full is dropped, counted by the source, and the next record it keeps is
marked :data:`~host.feed.records.EVENT_FLAG_LOST_BEFORE`
(:func:`feed_event_queue`).
"""
from __future__ import annotations

from myhdl import Signal, always, always_comb, always_seq, block, intbv, modbv

from host.feed.records import EVENT_FLAG_LOST_BEFORE, FEED_EVENT_BITS, FEED_EVENT_DTYPE
from rtl.common.axis import DATA_BYTES, DATA_WIDTH, AxiStream

RECORD_BEATS = FEED_EVENT_DTYPE.itemsize // DATA_BYTES
LOST_BEFORE_BIT = 8 * FEED_EVENT_DTYPE.fields["flags"][1] + \
    (EVENT_FLAG_LOST_BEFORE.bit_length() - 1)


def field_bits() -> dict[str, tuple[int, int]]:
    """name -> (lsb, width) of each record field in the word."""
    return {name: (8 * offset, 8 * dtype.itemsize)
            for name, (dtype, offset) in FEED_EVENT_DTYPE.fields.items()}


class FeedEventPort:
    """One record word with valid/ready.  As a block's port ``m_feed_event``
    it becomes ``m_feed_event_data``, ``m_feed_event_valid``,
    ``m_feed_event_ready``."""

    def __init__(self):
        self.data = Signal(intbv(0)[FEED_EVENT_BITS:])
        self.valid = Signal(bool(0))
        self.ready = Signal(bool(0))


@block
def feed_event_queue(clk, rst, push, record, port: FeedEventPort, lost, depth: int = 4):
    """A first-word-fall-through queue of ``depth`` records in front of
    ``port``.  ``push`` offers ``record`` (its lost-before flag clear); a
    record finding the queue full is not kept and ``lost`` pulses, and the
    next record kept carries the lost-before flag."""
    if depth < 2 or depth & (depth - 1):
        raise ValueError("the queue depth is a power of two >= 2")
    bits = depth.bit_length() - 1
    mem = [Signal(intbv(0)[FEED_EVENT_BITS:]) for _ in range(depth)]
    wr = Signal(modbv(0)[bits:])
    rd = Signal(modbv(0)[bits:])
    level = Signal(intbv(0, min=0, max=depth + 1))
    lost_pending = Signal(bool(0))
    keep, take = Signal(bool(0)), Signal(bool(0))
    marked = Signal(intbv(0)[FEED_EVENT_BITS:])

    @always_comb
    def handshake():
        keep.next = push and level != depth
        take.next = level != 0 and port.ready
        port.valid.next = level != 0
        lost.next = push and level == depth
        word = intbv(0)[FEED_EVENT_BITS:]
        word[:] = record
        if lost_pending:
            word[LOST_BEFORE_BIT] = 1
        marked.next = word

    @always(clk.posedge)
    def write():
        if keep:
            mem[wr].next = marked

    @always_comb
    def head():
        port.data.next = mem[rd]

    @always_seq(clk.posedge, reset=rst)
    def pointers():
        if keep:
            wr.next = wr + 1
            lost_pending.next = 0
        elif push:
            lost_pending.next = 1
        if take:
            rd.next = rd + 1
        if keep and not take:
            level.next = level + 1
        elif take and not keep:
            level.next = level - 1

    return handshake, write, head, pointers


@block
def feed_event_merge(clk, rst, first: FeedEventPort, second: FeedEventPort, m_axis: AxiStream):
    """Both sources' records on one AXI-Stream, a record at a time, three
    beats each; when both offer one they take turns."""
    out_data = Signal(intbv(0)[FEED_EVENT_BITS:])
    out_left = Signal(intbv(0, min=0, max=RECORD_BEATS + 1))
    favour_second = Signal(bool(0))
    take_first, take_second = Signal(bool(0)), Signal(bool(0))

    @always_comb
    def choose():
        free = out_left == 0 or (out_left == 1 and m_axis.tready)
        pick_first = first.valid and (not second.valid or not favour_second)
        take_first.next = free and pick_first
        take_second.next = free and second.valid and not pick_first
        first.ready.next = free and pick_first
        second.ready.next = free and second.valid and not pick_first

    @always_comb
    def beats():
        m_axis.tvalid.next = out_left != 0
        m_axis.tdata.next = out_data[DATA_WIDTH:]
        m_axis.tkeep.next = (1 << DATA_BYTES) - 1
        m_axis.tlast.next = out_left == 1
        m_axis.tuser.next = 0

    @always_seq(clk.posedge, reset=rst)
    def shift():
        if take_first:
            out_data.next = first.data
            out_left.next = RECORD_BEATS
            favour_second.next = 1
        elif take_second:
            out_data.next = second.data
            out_left.next = RECORD_BEATS
            favour_second.next = 0
        elif out_left != 0 and m_axis.tready:
            out_data.next = out_data >> DATA_WIDTH
            out_left.next = out_left - 1

    return choose, beats, shift

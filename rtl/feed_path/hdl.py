"""The front half of the fabric in MyHDL: Ethernet frames of feeds A and B in,
book-update and trade records out, and a stream of feed events beside them.

Behaviour is :mod:`rtl.feed_path.model`; this is how the fabric gets it.

::

    s_axis_a -> frame_filter (window frame_filter)   -\\
                                                       mold_seq -> itch_decoder -> order_book -> m_axis
    s_axis_b -> frame_filter (window frame_filter_b) -/     |                          |
                                                            +--> feed_event_merge <----+
                                                                        |
                                                                        +-> m_feed_event

The four blocks are instantiated unchanged and joined by their own
interfaces: the filters' payload streams
(:class:`rtl.frame_filter.hdl.PayloadStream`) are the sequencer's inputs (the
filter's ``tdest``, the matching entry, is not used further; a payload whose
frame the filter dropped at its end arrives closed by ``tdrop`` and the
sequencer discards it), the sequencer's
message stream (:mod:`rtl.common.message_stream`) is the decoder's input, the
event port (:mod:`rtl.common.events`) joins decoder and book, and the book's
record stream is ``m_axis`` (``tdest`` 0 book update, 1 trade).

``m_feed_event`` is the second output stream: feed event records
(:mod:`host.feed.records`, 24 bytes, three beats, ``tlast`` on the last) from
the sequencer (gaps, feed stale and recovered, end of session) and the book
(a locate's book degraded or restored), merged by
:func:`rtl.feed_path.status.feed_event_merge`.  Its ``tready`` never holds up
market data: a source whose queue is full drops and counts the record.

Each feed has its own filter instance with its own table and counters: the
two feeds arrive on different multicast groups, a shared table would let
one feed's frames through the other's filter, and the per-feed drop counters
are what tells which line is bad.  Feed B's filter answers at the
``frame_filter_b`` window, with the same registers as feed A's.

``s_axil`` is one AXI-Lite slave of :data:`ADDR_WIDTH` bits.  Bits 14:12 pick
a block's 4 KiB window at the base the register map declares (the system
block with build ID and map version included); a window no block occupies
answers SLVERR.  The decode takes one write and one read at a time and holds
the selected window until its response is taken, so the master may change the
address as soon as the request is accepted.
"""
from __future__ import annotations

from myhdl import ConcatSignal, Signal, always_comb, always_seq, block, intbv

from host.protocols.itch50 import MESSAGE_SIZES
from rtl.common.axil import ADDR_WIDTH as WINDOW_ADDR_BITS
from rtl.common.axil import RESP_SLVERR, AxiLite
from rtl.common.axis import DATA_BYTES, AxiStream
from rtl.common.events import EventPort
from rtl.common.message_stream import ItchStream
from rtl.feed_path.status import FeedEventPort, feed_event_merge
from rtl.frame_filter.hdl import LATENCY_CYCLES as FILTER_LATENCY
from rtl.frame_filter.hdl import PayloadStream, frame_filter
from rtl.itch_decoder.hdl import LATENCY_CYCLES as DECODER_LATENCY
from rtl.itch_decoder.hdl import itch_decoder
from rtl.mold_seq.hdl import LATENCY_CYCLES as SEQUENCER_LATENCY
from rtl.mold_seq.hdl import mold_seq
from rtl.order_book.hdl import DEST_WIDTH as RECORD_DEST_WIDTH
from rtl.order_book.hdl import LATENCY_CYCLES as BOOK_LATENCY
from rtl.order_book.hdl import order_book
from rtl.regmap.hdl import system_registers
from rtl.regmap.map import FRAME_FILTER, FRAME_FILTER_B, ITCH_DECODER, MOLD_SEQ, ORDER_BOOK, SYSTEM

WINDOW_BITS = 3
WINDOWS = 1 << WINDOW_BITS
ADDR_WIDTH = WINDOW_ADDR_BITS + WINDOW_BITS
DEST_WIDTH = RECORD_DEST_WIDTH

# Input beat holding the last byte of an ITCH message accepted -> first beat of
# its book-update record valid, everything idle, for the shortest message that
# changes a book: an Order Delete alone in its Mold packet, in an untagged
# frame (83 bytes).  The filter cuts through, so its payload's last beat
# follows the frame's last byte by the filter's latency; the sequencer's
# latency runs from that beat to the message's first; the decoder needs the
# message's last beat, so the message's further beats count; then the decoder
# and the book.  A longer message takes longer (4 more cycles for an Add
# Order: its further beats).  Measured in simulation by
# tests.rtl.latency.feed_path (test_feed_path_rtl, make rtl-report).
DELETE_MESSAGE_BEATS = -(-MESSAGE_SIZES["D"] // DATA_BYTES)
LATENCY_CYCLES = (FILTER_LATENCY + SEQUENCER_LATENCY + DELETE_MESSAGE_BEATS - 1
                  + DECODER_LATENCY + BOOK_LATENCY)

# The windows this top level decodes, by register-map block.
BLOCKS = (SYSTEM, FRAME_FILTER, MOLD_SEQ, ITCH_DECODER, ORDER_BOOK, FRAME_FILTER_B)


def window_of(spec) -> int:
    index = spec.base >> WINDOW_ADDR_BITS
    if spec.base & ((1 << WINDOW_ADDR_BITS) - 1) or not 0 <= index < WINDOWS:
        raise ValueError(f"{spec.name}: base {spec.base:#x} outside the feed path's windows")
    return index


@block
def _window_port(s_axil: AxiLite, port: AxiLite, aw_window, ar_window, w_busy, w_sel, r_busy,
                 r_sel, index: int):
    """Requests to one block's port: valid only for its window while the
    decode is free, ready for responses only while its own is awaited."""

    @always_comb
    def requests():
        port.awaddr.next = s_axil.awaddr[WINDOW_ADDR_BITS:]
        port.wdata.next = s_axil.wdata
        port.wstrb.next = s_axil.wstrb
        port.awvalid.next = s_axil.awvalid and s_axil.wvalid and not w_busy and aw_window == index
        port.wvalid.next = s_axil.awvalid and s_axil.wvalid and not w_busy and aw_window == index
        port.bready.next = s_axil.bready and w_busy and w_sel == index
        port.araddr.next = s_axil.araddr[WINDOW_ADDR_BITS:]
        port.arvalid.next = s_axil.arvalid and not r_busy and ar_window == index
        port.rready.next = s_axil.rready and r_busy and r_sel == index

    return requests


@block
def axil_decode(clk, rst, s_axil: AxiLite, ports: dict):
    """``ports``: window index -> the AxiLite port of the block there."""
    present = sum(1 << index for index in ports)
    const_present = Signal(intbv(present)[WINDOWS:])

    def vector(name: str, width: int):
        parts = []
        for index in reversed(range(WINDOWS)):
            if index in ports:
                parts.append(getattr(ports[index], name))
            else:
                parts.append(intbv(0)[width:])
        return ConcatSignal(*parts)

    awready_vec, wready_vec = vector("awready", 1), vector("wready", 1)
    arready_vec = vector("arready", 1)
    bvalid_vec, rvalid_vec = vector("bvalid", 1), vector("rvalid", 1)
    bresp_vec, rresp_vec = vector("bresp", 2), vector("rresp", 2)
    rdata_vec = vector("rdata", 32)

    aw_window = Signal(intbv(0)[WINDOW_BITS:])
    ar_window = Signal(intbv(0)[WINDOW_BITS:])
    w_busy, r_busy = Signal(bool(0)), Signal(bool(0))
    w_sel = Signal(intbv(0)[WINDOW_BITS:])
    r_sel = Signal(intbv(0)[WINDOW_BITS:])
    w_hole, r_hole = Signal(bool(0)), Signal(bool(0))
    w_request, r_request = Signal(bool(0)), Signal(bool(0))
    w_fire, r_fire = Signal(bool(0)), Signal(bool(0))

    @always_comb
    def select():
        aw_window.next = s_axil.awaddr[ADDR_WIDTH:WINDOW_ADDR_BITS]
        ar_window.next = s_axil.araddr[ADDR_WIDTH:WINDOW_ADDR_BITS]
        w_request.next = s_axil.awvalid and s_axil.wvalid and not w_busy
        r_request.next = s_axil.arvalid and not r_busy

    # A request is taken when the selected block takes it, or at once when
    # no block is there (it is answered here).
    @always_comb
    def accept():
        w_fire.next = w_request and (not const_present[aw_window] or awready_vec[aw_window])
        s_axil.awready.next = w_request and (not const_present[aw_window]
                                             or awready_vec[aw_window])
        s_axil.wready.next = w_request and (not const_present[aw_window] or wready_vec[aw_window])
        r_fire.next = r_request and (not const_present[ar_window] or arready_vec[ar_window])
        s_axil.arready.next = r_request and (not const_present[ar_window]
                                             or arready_vec[ar_window])

    @always_comb
    def respond():
        if w_hole:
            s_axil.bvalid.next = w_busy
            s_axil.bresp.next = RESP_SLVERR
        else:
            s_axil.bvalid.next = w_busy and bvalid_vec[w_sel]
            s_axil.bresp.next = (bresp_vec >> (2 * w_sel)) & 3
        if r_hole:
            s_axil.rvalid.next = r_busy
            s_axil.rresp.next = RESP_SLVERR
            s_axil.rdata.next = 0
        else:
            s_axil.rvalid.next = r_busy and rvalid_vec[r_sel]
            s_axil.rresp.next = (rresp_vec >> (2 * r_sel)) & 3
            s_axil.rdata.next = (rdata_vec >> (32 * r_sel)) & 0xFFFFFFFF

    @always_seq(clk.posedge, reset=rst)
    def track():
        if w_fire:
            w_busy.next = 1
            w_sel.next = aw_window
            w_hole.next = not const_present[aw_window]
        elif w_busy and s_axil.bready and (w_hole or bvalid_vec[w_sel]):
            w_busy.next = 0
        if r_fire:
            r_busy.next = 1
            r_sel.next = ar_window
            r_hole.next = not const_present[ar_window]
        elif r_busy and s_axil.rready and (r_hole or rvalid_vec[r_sel]):
            r_busy.next = 0

    forwards = [_window_port(s_axil, port, aw_window, ar_window, w_busy, w_sel, r_busy, r_sel,
                             index)
                for index, port in ports.items()]
    return select, accept, respond, track, forwards


@block
def feed_path(clk, rst, s_axis_a: AxiStream, s_axis_b: AxiStream, m_axis: AxiStream,
              m_feed_event: AxiStream, s_axil: AxiLite, build_id: int = 0):
    """The top level: frames of feed A on ``s_axis_a`` and of feed B on
    ``s_axis_b`` (``tuser`` = frame error), records on ``m_axis`` (``tdest``
    0 update, 1 trade), feed event records on ``m_feed_event``, every block's
    registers on ``s_axil``."""
    bus = {spec.name: AxiLite() for spec in BLOCKS}
    payload_a = PayloadStream()
    payload_b = PayloadStream()
    messages = ItchStream()
    events = EventPort()
    sequencer_events = FeedEventPort()
    book_events = FeedEventPort()

    system = system_registers(clk, rst, bus["system"], build_id)
    filter_a = frame_filter(clk, rst, s_axis_a, payload_a, bus["frame_filter"])
    filter_b = frame_filter(clk, rst, s_axis_b, payload_b, bus["frame_filter_b"])
    sequencer = mold_seq(clk, rst, payload_a, payload_b, messages, sequencer_events,
                         bus["mold_seq"])
    decoder = itch_decoder(clk, rst, messages, events, bus["itch_decoder"])
    book = order_book(clk, rst, events, m_axis, book_events, bus["order_book"])
    merge = feed_event_merge(clk, rst, sequencer_events, book_events, m_feed_event)
    decode = axil_decode(clk, rst, s_axil, {window_of(spec): bus[spec.name] for spec in BLOCKS})
    return system, filter_a, filter_b, sequencer, decoder, book, merge, decode

"""The whole fabric as one top level: Ethernet frames of feeds A and B in, one
record stream to the host out, every block's registers on one AXI-Lite slave.

Behaviour is :mod:`rtl.fabric.model`; this is how the fabric gets it.

::

    s_axis_a --\\                 book records              +-> pricer_chain -> theo lanes
                feed_path ------------------------> fork --+        |            (lane merge)
    s_axis_b --/    |                                      |        v
                    | feed events                          |    quote_path (quoter -> risk_gate)
                    |                                      v        |
                    |                              host FIFO (64 beats)   quote records
                    v                                      v        v
                    +------------------------------> record merge (whole records, in turns)
                                                           |
                                                         m_axis (tdest: what the record is)

The three parts are instantiated unchanged: :func:`rtl.feed_path.hdl.feed_path`
(filters, sequencer, decoder, book), :func:`rtl.pricer_chain.hdl.pricer_chain`
and :func:`rtl.risk_gate.quote_path.quote_path` (quoter and risk gate).

**The host stream.**  One 64-bit AXI-Stream, ``m_axis``, carries everything
the host reads, whole records one after the other, ``tdest`` saying which
layout a record has (:data:`DEST_BOOK_UPDATE` 0 and :data:`DEST_TRADE` 1:
:mod:`host.book.records`; :data:`DEST_FEED_EVENT` 2: :mod:`host.feed.records`;
:data:`DEST_QUOTE` 3: :mod:`host.quoting.records`).  One stream is one DMA
channel and one buffer ring on the host, and every record's position in it
is the order the fabric produced it in; the records' lengths (18, 7, 3 and 8
beats) and ``tlast`` delimit them, ``tdest`` (AXI DMA's TDEST, or a word the
DMA writes beside each packet) tells the parser which dtype to read.  The
record merge takes whole records from its three sources in turns (round
robin at record boundaries), so no source waits for more than one record of
each other source.

**Backpressure policy.**  Nothing on the record path is dropped: a host that
stops taking records stops the fabric behind it, nothing is lost, and it
all flows again when the host takes records again.  In detail:

* The book's records are broadcast in lock step to the pricer and to the
  host FIFO.  The pricer never refuses a beat (its input ``tready`` is
  constant: it keeps up with one record per 18 beats and its pending table
  absorbs bursts), so it can never hold the host's copy back.  The host FIFO
  (:data:`HOST_FIFO_BEATS`) refuses a beat only when the host has not taken
  records for that long; the book then waits, and with it the decoder, the
  sequencer and the filters (their inputs' ``tready`` falls when their
  buffers fill).  So the pricer sees every record the moment the host's copy
  is queued, and the host sees every record; neither copy can be starved
  while the other moves.
* Quote records wait for their turn in the merge; while they wait the risk
  gate, the quoter and the pricer's lanes stop (``ready`` low), and the
  pricer's pending table holds the newest accepted price per underlying:
  older ones are *coalesced*, counted (``pricer_chain.COUNT_COALESCED``)
  and flagged (``DROP_STATUS.seen_coalesced``), never silent.  The model
  takes a walk after every record, which is what the fabric does while the
  host keeps up; a run with coalesced prices is a run where the host did not.
* Feed events never stop market data (:mod:`rtl.feed_path.status`): their
  queues drop, count (``COUNT_EVENTS_LOST``, ``COUNT_FEED_EVENTS_LOST``) and
  flag the next record kept.

**Lanes.**  The pricer issues :attr:`ChainConfig.lanes` rows per cycle on as
many theo ports; the quoter takes one word per cycle.  The lanes run in lock
step and a group of rows leaves them together, so the words on offer at any
time are consecutive rows of one walk: :func:`theo_merge` passes the lowest
``option_id`` on offer first, which is row order, the model's order.  The
fabric's chain therefore has :data:`FABRIC_CHAIN`'s sizes: the quoter's and
the gate's option tables hold :data:`rtl.quoter.model.OPTIONS` options and
the gate's underlying table :data:`rtl.risk_gate.model.UNDERLYINGS` entries,
so a bigger parameter or underlying table would only price what cannot be
quoted; two lanes keep scenario runs at two options per cycle.

**Cycle stamps.**  The pricer stamps ``ingress_cycle`` when a record's last
beat reaches it, the risk gate ``egress_cycle`` when a record's first beat
is valid.  Each block counts cycles in its own 32-bit register, reset by the
same synchronous reset and incremented every cycle, so the two counters hold
the same value in every cycle: one time base, and ``egress - ingress`` is the
record's latency through pricer, quoter and gate.

**Registers.**  ``s_axil`` has :data:`ADDR_WIDTH` (16) bits; every block's
4 KiB window is at its register-map base (:mod:`rtl.regmap.map`).
:func:`axil_route` sends a request to the part that decodes it by bits
15:12: ``pricer_chain``'s window to the pricer, the upper half
(``quoter`` 0x8000, ``risk_gate`` 0x9000) to the quote path, whose decode
takes bits 14:12, and the rest to the feed path's decode (system,
filters, sequencer, decoder, book).  Windows nobody occupies answer SLVERR
from the part's decode.  One write and one read are in flight at a time.
"""
from __future__ import annotations

from myhdl import ConcatSignal, Signal, always, always_comb, always_seq, block, intbv

from rtl.common.axil import ADDR_WIDTH as WINDOW_ADDR_BITS
from rtl.common.axil import AxiLite
from rtl.common.axis import DATA_WIDTH, KEEP_WIDTH, AxiStream
from rtl.common.theo_stream import THEO_FIELDS, TheoPort
from rtl.feed_path.hdl import ADDR_WIDTH as FEED_ADDR_WIDTH
from rtl.feed_path.hdl import DEST_WIDTH as BOOK_DEST_WIDTH
from rtl.feed_path.hdl import LATENCY_CYCLES as FEED_LATENCY
from rtl.feed_path.hdl import feed_path
from rtl.order_book.model import TDEST_TRADE, TDEST_UPDATE
from rtl.pricer_chain.hdl import FIRST_THEO_CYCLES, UPDATE_BEATS, TheoLanes, pricer_chain
from rtl.pricer_chain.model import ChainConfig
from rtl.quoter.model import OPTIONS as QUOTER_OPTIONS
from rtl.regmap.map import PRICER_CHAIN, QUOTER, REGISTER_MAP, RISK_GATE
from rtl.risk_gate.model import UNDERLYINGS as GATE_UNDERLYINGS
from rtl.risk_gate.quote_path import ADDR_WIDTH as QUOTE_ADDR_WIDTH
from rtl.risk_gate.quote_path import LATENCY_CYCLES as QUOTE_PATH_LATENCY
from rtl.risk_gate.quote_path import WINDOWS as QUOTE_WINDOWS
from rtl.risk_gate.quote_path import quote_path

ADDR_WIDTH = 16
WINDOWS = 1 << (ADDR_WIDTH - WINDOW_ADDR_BITS)

# What a record on the host stream is (its tdest).
DEST_BOOK_UPDATE = TDEST_UPDATE
DEST_TRADE = TDEST_TRADE
DEST_FEED_EVENT = 2
DEST_QUOTE = 3
DEST_WIDTH = 2
assert (DEST_BOOK_UPDATE, DEST_TRADE) == (0, 1)

# The host's copy of the book's records waits here while the host is busy
# with other records: three and a half book updates.  A beat written is read
# the cycle after, so the host sees a book record one cycle after the pricer.
HOST_FIFO_BEATS = 64
HOST_FIFO_LATENCY = 1

FABRIC_CHAIN = ChainConfig(options=QUOTER_OPTIONS, underlyings=GATE_UNDERLYINGS, lanes=2,
                           scenarios=64)

# Latency, everything idle and the host taking records at once.  The fork,
# the lane merge and the record merge are wires when idle, so the figures
# are the parts' own: from a book update's last beat to the first beat of
# its first quote record, the chain pricer's (mid price) and the quote
# path's; and tick to quote, from the input beat holding the last byte of an
# ITCH message to that quote record, for the shortest message that moves a
# book (an Order Delete alone in an untagged frame): the feed path's
# latency to the update's first beat, its other 17 beats, then pricing.
# Measured by tests.rtl.fabric_bench (test_fabric_rtl, make rtl-report).
PRICE_TO_QUOTE_CYCLES = FIRST_THEO_CYCLES["mid"] + QUOTE_PATH_LATENCY
TICK_TO_QUOTE_CYCLES = FEED_LATENCY + UPDATE_BEATS - 1 + PRICE_TO_QUOTE_CYCLES

# Parts of the fabric behind the top-level router, and the windows each decodes.
PART_FEED, PART_CHAIN, PART_QUOTE = range(3)

OPTION_ID_BITS = dict(THEO_FIELDS)["option_id"]
OPTION_ID_MASK = (1 << OPTION_ID_BITS) - 1
assert THEO_FIELDS[0][0] == "option_id"


def window_routes() -> tuple[int, ...]:
    """The part that decodes each 4 KiB window (index: address bits 15:12)."""
    quote_base = QUOTER.base - (QUOTE_WINDOWS["quoter"] << WINDOW_ADDR_BITS)
    if RISK_GATE.base - QUOTER.base != \
            (QUOTE_WINDOWS["risk_gate"] - QUOTE_WINDOWS["quoter"]) << WINDOW_ADDR_BITS:
        raise ValueError("quoter and risk gate windows are not where the quote path decodes them")
    routes = []
    for window in range(WINDOWS):
        base = window << WINDOW_ADDR_BITS
        if base == PRICER_CHAIN.base:
            routes.append(PART_CHAIN)
        elif quote_base <= base < quote_base + (1 << QUOTE_ADDR_WIDTH):
            routes.append(PART_QUOTE)
        elif base < 1 << FEED_ADDR_WIDTH:
            routes.append(PART_FEED)
        else:
            raise ValueError(f"window {window} is reached by no part of the fabric")
    for spec in REGISTER_MAP:
        if spec.base >= 1 << ADDR_WIDTH:
            raise ValueError(f"{spec.name} at {spec.base:#x} is outside the fabric's "
                             f"{ADDR_WIDTH}-bit address space")
    return tuple(routes)


def part_address(part: int, address: int) -> int:
    """The address a part's own decode sees for a fabric address."""
    widths = {PART_FEED: FEED_ADDR_WIDTH, PART_CHAIN: WINDOW_ADDR_BITS,
              PART_QUOTE: QUOTE_ADDR_WIDTH}
    return address & ((1 << widths[part]) - 1)


# ---- AXI-Lite: the top-level router ------------------------------------------------------

@block
def _part_port(s_axil: AxiLite, port: AxiLite, aw_part, ar_part, w_busy, w_sel, r_busy, r_sel,
               index: int):
    """Requests to one part: valid only for its windows while the router is
    free, ready for responses only while its own is awaited."""
    width = len(port.awaddr)

    @always_comb
    def requests():
        port.awaddr.next = s_axil.awaddr[width:]
        port.wdata.next = s_axil.wdata
        port.wstrb.next = s_axil.wstrb
        port.awvalid.next = s_axil.awvalid and s_axil.wvalid and not w_busy and aw_part == index
        port.wvalid.next = s_axil.awvalid and s_axil.wvalid and not w_busy and aw_part == index
        port.bready.next = s_axil.bready and w_busy and w_sel == index
        port.araddr.next = s_axil.araddr[width:]
        port.arvalid.next = s_axil.arvalid and not r_busy and ar_part == index
        port.rready.next = s_axil.rready and r_busy and r_sel == index

    return requests


@block
def axil_route(clk, rst, s_axil: AxiLite, parts: tuple, routes: tuple):
    """``parts``: the AxiLite port of each part (index = part number);
    ``routes``: the part of each window of ``s_axil``.  A request goes to
    its part with the address bits that part decodes; the part answers."""
    count = len(parts)
    part_bits = max(1, (count - 1).bit_length())
    window_bits = (len(routes) - 1).bit_length()
    addr_width = len(s_axil.awaddr)
    if len(routes) != 1 << (addr_width - WINDOW_ADDR_BITS):
        raise ValueError("one route per window of the address space")
    route_rom = tuple(int(r) for r in routes)

    def vector(name: str):
        return ConcatSignal(*[getattr(p, name) for p in reversed(parts)])

    awready_vec, wready_vec = vector("awready"), vector("wready")
    arready_vec = vector("arready")
    bvalid_vec, rvalid_vec = vector("bvalid"), vector("rvalid")
    bresp_vec, rresp_vec, rdata_vec = vector("bresp"), vector("rresp"), vector("rdata")

    aw_window = Signal(intbv(0)[window_bits:])
    ar_window = Signal(intbv(0)[window_bits:])
    aw_part = Signal(intbv(0)[part_bits:])
    ar_part = Signal(intbv(0)[part_bits:])
    w_busy, r_busy = Signal(bool(0)), Signal(bool(0))
    w_sel = Signal(intbv(0)[part_bits:])
    r_sel = Signal(intbv(0)[part_bits:])
    w_fire, r_fire = Signal(bool(0)), Signal(bool(0))

    @always_comb
    def windows():
        aw_window.next = s_axil.awaddr[addr_width:WINDOW_ADDR_BITS]
        ar_window.next = s_axil.araddr[addr_width:WINDOW_ADDR_BITS]

    @always_comb
    def lookup():
        aw_part.next = route_rom[aw_window]
        ar_part.next = route_rom[ar_window]

    @always_comb
    def accept():
        w_fire.next = s_axil.awvalid and s_axil.wvalid and not w_busy and awready_vec[aw_part]
        s_axil.awready.next = s_axil.awvalid and s_axil.wvalid and not w_busy \
            and awready_vec[aw_part]
        s_axil.wready.next = s_axil.awvalid and s_axil.wvalid and not w_busy \
            and wready_vec[aw_part]
        r_fire.next = s_axil.arvalid and not r_busy and arready_vec[ar_part]
        s_axil.arready.next = s_axil.arvalid and not r_busy and arready_vec[ar_part]

    @always_comb
    def respond():
        s_axil.bvalid.next = w_busy and bvalid_vec[w_sel]
        s_axil.bresp.next = (bresp_vec >> (2 * w_sel)) & 3
        s_axil.rvalid.next = r_busy and rvalid_vec[r_sel]
        s_axil.rresp.next = (rresp_vec >> (2 * r_sel)) & 3
        s_axil.rdata.next = (rdata_vec >> (32 * r_sel)) & 0xFFFFFFFF

    @always_seq(clk.posedge, reset=rst)
    def track():
        if w_fire:
            w_busy.next = 1
            w_sel.next = aw_part
        elif w_busy and s_axil.bready and bvalid_vec[w_sel]:
            w_busy.next = 0
        if r_fire:
            r_busy.next = 1
            r_sel.next = ar_part
        elif r_busy and s_axil.rready and rvalid_vec[r_sel]:
            r_busy.next = 0

    forwards = [_part_port(s_axil, port, aw_part, ar_part, w_busy, w_sel, r_busy, r_sel, index)
                for index, port in enumerate(parts)]
    return windows, lookup, accept, respond, track, forwards


# ---- record path ---------------------------------------------------------------------------

@block
def record_fork(book: AxiStream, to_pricer: AxiStream, to_host: AxiStream):
    """Every beat of ``book`` to both outputs in the same cycle (a beat moves
    when both can take it)."""

    @always_comb
    def broadcast():
        to_pricer.tdata.next = book.tdata
        to_pricer.tkeep.next = book.tkeep
        to_pricer.tlast.next = book.tlast
        to_pricer.tuser.next = book.tuser
        to_pricer.tdest.next = book.tdest
        to_host.tdata.next = book.tdata
        to_host.tkeep.next = book.tkeep
        to_host.tlast.next = book.tlast
        to_host.tuser.next = book.tuser
        to_host.tdest.next = book.tdest
        to_pricer.tvalid.next = book.tvalid and to_host.tready
        to_host.tvalid.next = book.tvalid and to_pricer.tready
        book.tready.next = to_pricer.tready and to_host.tready

    return broadcast


@block
def beat_fifo(clk, rst, s_axis: AxiStream, m_axis: AxiStream, depth: int):
    """First-word-fall-through FIFO of ``depth`` beats (data, keep, last,
    user, dest); ``s_axis.tready`` is high while there is room."""
    if depth < 2 or depth & (depth - 1):
        raise ValueError("the FIFO depth is a power of two >= 2")
    dest_width = len(s_axis.tdest)
    width = DATA_WIDTH + KEEP_WIDTH + 2 + dest_width
    pointer_bits = depth.bit_length() - 1
    mem = [Signal(intbv(0)[width:]) for _ in range(depth)]
    wr = Signal(intbv(0)[pointer_bits:])
    rd = Signal(intbv(0)[pointer_bits:])
    level = Signal(intbv(0, min=0, max=depth + 1))
    push, pop = Signal(bool(0)), Signal(bool(0))
    head = Signal(intbv(0)[width:])
    entry = ConcatSignal(s_axis.tdest, s_axis.tuser, s_axis.tlast, s_axis.tkeep, s_axis.tdata)

    @always_comb
    def handshake():
        s_axis.tready.next = level < depth
        push.next = s_axis.tvalid and level < depth
        m_axis.tvalid.next = level != 0
        pop.next = level != 0 and m_axis.tready

    @always_comb
    def read():
        head.next = mem[rd]

    @always_comb
    def unpack():
        m_axis.tdata.next = head[DATA_WIDTH:]
        m_axis.tkeep.next = head[DATA_WIDTH + KEEP_WIDTH:DATA_WIDTH]
        m_axis.tlast.next = head[DATA_WIDTH + KEEP_WIDTH]
        m_axis.tuser.next = head[DATA_WIDTH + KEEP_WIDTH + 1]
        m_axis.tdest.next = head[width:DATA_WIDTH + KEEP_WIDTH + 2]

    @always(clk.posedge)
    def write():
        if push:
            mem[wr].next = entry

    @always_seq(clk.posedge, reset=rst)
    def pointers():
        if push:
            wr.next = (wr + 1) % depth
        if pop:
            rd.next = (rd + 1) % depth
        if push and not pop:
            level.next = level + 1
        elif pop and not push:
            level.next = level - 1

    return handshake, read, unpack, write, pointers


@block
def _pick_stage(pick, index: int, candidate, previous, out):
    """One link of a multiplexer chain: ``candidate`` when ``pick`` names
    ``index``, else what the links before chose."""

    @always_comb
    def choose():
        if pick == index:
            out.next = candidate
        else:
            out.next = previous

    return choose


@block
def _pick_first(candidate, out):
    @always_comb
    def choose():
        out.next = candidate

    return choose


@block
def select(pick, candidates: list, out):
    """``out`` = ``candidates[pick]`` as a chain of two-way choices (wide
    words need no shift-and-mask, which Verilog's 32-bit constants spoil)."""
    width = len(out)
    stages = [Signal(intbv(0)[width:]) for _ in candidates[:-1]] + [out]
    blocks = [_pick_first(candidates[0], stages[0])]
    for k in range(1, len(candidates)):
        blocks.append(_pick_stage(pick, k, candidates[k], stages[k - 1], stages[k]))
    return blocks


@block
def theo_merge(lanes_in: TheoLanes, lanes: int, out: TheoPort):
    """The words the lanes offer, lowest ``option_id`` first (row order:
    the words on offer are always consecutive rows of one walk)."""
    ports = [getattr(lanes_in, f"lane{k}") for k in range(lanes)]
    if lanes == 1:
        port = ports[0]

        @always_comb
        def wire():
            out.data.next = port.data
            out.valid.next = port.valid
            port.ready.next = out.ready

        return wire

    lane_bits = (lanes - 1).bit_length()
    valid_vec = ConcatSignal(*[p.valid for p in reversed(ports)])
    ids = [Signal(intbv(0)[OPTION_ID_BITS:]) for _ in ports]
    id_picks = [_option_id(port, option_id) for port, option_id in zip(ports, ids)]
    id_vec = ConcatSignal(*reversed(ids))
    pick = Signal(intbv(0)[lane_bits:])
    any_valid = Signal(bool(0))

    @always_comb
    def choose():
        found = False
        best = intbv(0)[lane_bits:]
        lowest = intbv(0)[OPTION_ID_BITS:]
        for k in range(lanes):
            if valid_vec[k]:
                if not found or ((id_vec >> (OPTION_ID_BITS * k)) & OPTION_ID_MASK) < lowest:
                    best[:] = k
                    lowest[:] = (id_vec >> (OPTION_ID_BITS * k)) & OPTION_ID_MASK
                found = True
        pick.next = best
        any_valid.next = found

    @always_comb
    def valid():
        out.valid.next = any_valid

    data = select(pick, [p.data for p in ports], out.data)
    readies = [_lane_ready(port, pick, out, k) for k, port in enumerate(ports)]
    return id_picks, choose, valid, data, readies


@block
def _option_id(port: TheoPort, option_id):
    @always_comb
    def field():
        option_id.next = port.data[OPTION_ID_BITS:]

    return field


@block
def _lane_ready(port: TheoPort, pick, out: TheoPort, index: int):
    @always_comb
    def ready():
        port.ready.next = out.ready and pick == index

    return ready


@block
def record_merge(clk, rst, sources: tuple, dests: tuple, m_axis: AxiStream):
    """Whole records of ``sources`` onto ``m_axis``, in turns starting after
    the last source served.  ``dests[i]``: the tdest of source i's records,
    or None to pass the source's own tdest through.  A source is held from
    the cycle its first beat is shown until its ``tlast`` is taken, so a
    shown beat never changes before it is taken."""
    count = len(sources)
    bits = max(1, (count - 1).bit_length())
    valid_vec = ConcatSignal(*[s.tvalid for s in reversed(sources)])
    last_vec = ConcatSignal(*[s.tlast for s in reversed(sources)])
    user_vec = ConcatSignal(*[s.tuser for s in reversed(sources)])
    keep_vec = ConcatSignal(*[s.tkeep for s in reversed(sources)])
    dest_width = len(m_axis.tdest)
    dest_parts = []
    for source, dest in zip(reversed(sources), reversed(dests)):
        if dest is None:
            pad = dest_width - len(source.tdest)
            dest_parts += ([intbv(0)[pad:]] if pad else []) + [source.tdest]
        else:
            dest_parts.append(intbv(dest)[dest_width:])
    dest_vec = ConcatSignal(*dest_parts)
    dest_mask = (1 << dest_width) - 1
    keep_mask = (1 << KEEP_WIDTH) - 1
    held = Signal(bool(0))
    owner = Signal(intbv(0)[bits:])
    served = Signal(intbv(count - 1)[bits:])
    pick = Signal(intbv(0)[bits:])

    @always_comb
    def choose():
        chosen = intbv(0)[bits:]
        found = False
        for step in range(1, count + 1):
            if not found and valid_vec[(served + step) % count]:
                chosen[:] = (served + step) % count
                found = True
        if held:
            chosen[:] = owner
        pick.next = chosen

    @always_comb
    def forward():
        m_axis.tvalid.next = valid_vec[pick]
        m_axis.tkeep.next = (keep_vec >> (KEEP_WIDTH * pick)) & keep_mask
        m_axis.tlast.next = last_vec[pick]
        m_axis.tuser.next = user_vec[pick]
        m_axis.tdest.next = (dest_vec >> (dest_width * pick)) & dest_mask

    data = select(pick, [s.tdata for s in sources], m_axis.tdata)

    @always_seq(clk.posedge, reset=rst)
    def hold():
        if valid_vec[pick]:
            if m_axis.tready and last_vec[pick]:
                held.next = 0
                served.next = pick
            else:
                held.next = 1
                owner.next = pick

    readies = [_source_ready(source, pick, m_axis, k) for k, source in enumerate(sources)]
    return choose, forward, data, hold, readies


@block
def _source_ready(source: AxiStream, pick, m_axis: AxiStream, index: int):
    @always_comb
    def ready():
        source.tready.next = m_axis.tready and pick == index

    return ready


# ---- the top level ---------------------------------------------------------------------------

@block
def fabric(clk, rst, s_axis_a: AxiStream, s_axis_b: AxiStream, m_axis: AxiStream,
           s_axil: AxiLite, build_id: int = 0, chain: ChainConfig = FABRIC_CHAIN):
    """Frames of feed A on ``s_axis_a`` and feed B on ``s_axis_b`` (``tuser`` =
    frame error); every record for the host on ``m_axis`` (``tdest``: 0 book
    update, 1 trade, 2 feed event, 3 quote record); every block's registers
    on ``s_axil`` (:data:`ADDR_WIDTH` bits)."""
    feed_bus, chain_bus = AxiLite(FEED_ADDR_WIDTH), AxiLite(WINDOW_ADDR_BITS)
    quote_bus = AxiLite(QUOTE_ADDR_WIDTH)
    book = AxiStream(BOOK_DEST_WIDTH)
    feed_events = AxiStream()
    to_pricer, to_host = AxiStream(BOOK_DEST_WIDTH), AxiStream(BOOK_DEST_WIDTH)
    host_books = AxiStream(BOOK_DEST_WIDTH)
    lanes = TheoLanes(chain.lanes)
    theo = TheoPort()
    quotes = AxiStream()

    front = feed_path(clk, rst, s_axis_a, s_axis_b, book, feed_events, feed_bus, build_id)
    fork = record_fork(book, to_pricer, to_host)
    queue = beat_fifo(clk, rst, to_host, host_books, HOST_FIFO_BEATS)
    pricer = pricer_chain(clk, rst, to_pricer, lanes, chain_bus, chain)
    merge_lanes = theo_merge(lanes, chain.lanes, theo)
    back = quote_path(clk, rst, theo, quotes, quote_bus)
    merge = record_merge(clk, rst, (host_books, feed_events, quotes),
                         (None, DEST_FEED_EVENT, DEST_QUOTE), m_axis)
    route = axil_route(clk, rst, s_axil, (feed_bus, chain_bus, quote_bus), window_routes())
    return front, fork, queue, pricer, merge_lanes, back, merge, route

"""Chain pricer in MyHDL: book-update records in, one theo word per option out.

Behaviour is :mod:`rtl.pricer_chain.model`; this is how the fabric gets it.

::

    s_axis (book records) -> record input (fields, locate lookup)
      -> reference price (mid / microprice) -> spot front (ln S, 1/m, e)
      -> verdict -> pending table + queue -> walker
      -> parameter-table banks (one per lane) -> [scenario scaling] -> lanes x pricer_datapath
      -> m_theo.lane<k> (theo words) | scenario sums

**Input.**  ``s_axis`` is the order book's record stream (64-bit beats,
``tdest`` 0 update, 1 trade) and is never held off: everything after it
either keeps up with one record per 18 beats or absorbs bursts in the
pending table.  The fields the pricer needs are caught as their beats pass;
the locate is looked up in the underlying table (all entries compared at
once) the cycle after beat 0.  The reference price starts *before* the
record ends: the mid at the beat holding the best ask price (beat 10), the
microprice at the beat holding the best ask size (beat 13); the record's
verdict waits for both its last beat and its spot terms.

**Reference price.**  Mid: one product.  Microprice: the bid-size weight
``Q_bid / (Q_bid + Q_ask)`` through the pricer's RECIP table (leading one,
normalise, cubic) and two products.  One record is in this path at a time
(records are 18 beats long), so the capture register in front of the spot
front never overflows.

**Pending table and queue.**  An accepted price is written with its spot
terms and record fields into its underlying's pending entry; an underlying
that was not pending joins the queue (one place per underlying, so the
queue never overflows), one that was is counted as coalesced.  When the
walker is free and the queue empty, an accepted price goes straight to it.

**Walker.**  Rows of the parameter table are spread over ``lanes`` banks
(row r in bank ``r % lanes``), so one group of ``lanes`` consecutive rows is
read per cycle without copies of the table.  A walk issues the groups of
rows ``first .. first + count - 1`` one per cycle to ``lanes`` copies of
:func:`rtl.pricer.hdl.pricer_datapath`, which run in lock step: the same
valid pattern enters all, so their clock enables are equal.  The walker
takes the next pending underlying in the cycle it issues a walk's last
group, so walks follow each other without a gap.  Per-walk fields the
output needs travel as a walk number in lane 0's option tag; the walk's
fields wait in a 32-entry table (every walk issues for at least one cycle
and its last group leaves the datapaths at most 16 issue cycles later,
scaling stage included, so at most 17 walks are in flight).

**Output.**  Lane k's results go out on ``m_theo.lane<k>`` (the word of
:mod:`rtl.common.theo_stream`, packed without a register).  The pipelines
advance when every lane's word has been taken; a lane whose word was
taken while another lane still waits does not offer it again.

**Scenarios.**  A run walks every entry with rows once per scenario, at
``S' = S f`` through a second spot front, with each row's volatility terms
scaled in one extra stage in front of the datapath; results are summed
with the position table's contracts into 128-bit accumulators per
scenario and read back over AXI-Lite.  Live prices go first: the walker
takes a scenario walk only when nothing live is pending.

Latencies (cycles, measured in simulation, ``tests/rtl/test_pricer_chain_rtl.py``):
see :data:`FIRST_THEO_CYCLES`.
"""
from __future__ import annotations

from myhdl import (ConcatSignal, Signal, always, always_comb, always_seq, block, concat,
                   downrange, intbv)

from host.book.records import BOOK_UPDATE_DTYPE, TRADE_DTYPE
from rtl.common.axil import AxiLite
from rtl.common.axis import DATA_WIDTH, AxiStream
from rtl.common.theo_stream import THEO_FIELDS, TheoPort
from rtl.order_book.model import TDEST_UPDATE
from rtl.pricer import formats as fx
from rtl.pricer.hdl import (EXPONENT_BITS, OptionPort, Pipeline, ResultPort, SpotPort,
                            SpotTermsPort, WORD as WORD_BITS, leading_one, mul_round_stage,
                            pricer_datapath, spot_front, word)
from rtl.pricer_chain.model import (COUNTERS, FACTOR_FRAC, PRICE_SCALE, PRICE_SCALE_SHIFT,
                                    RESULT_BITS, RESULTS, SCENARIO_FIELDS, SPOT_LIMIT_RAW,
                                    SPOT_MIN_RAW, STICKY, TOTAL_VAR_SHIFT, WEIGHT_FRAC,
                                    ChainConfig)
from rtl.pricer_chain.model import ROW_FIELDS as MODEL_ROW_FIELDS
from rtl.regmap.hdl import RegisterPorts, regfile
from rtl.regmap.map import PRICER_CHAIN

DEST_WIDTH = 1
WALK_ID_BITS = 5
# A parameter-table word: the put bit, then the host's fields, then
# total_var (total_vol**2, LOG), computed on writing.
HOST_ROW_FIELDS = MODEL_ROW_FIELDS
ROW_FIELDS = HOST_ROW_FIELDS + ("total_var",)
ROW_BITS = 1 + 64 * len(ROW_FIELDS)
SPOT_TERM_FIELDS = ("spot", "ln_spot", "recip_m")
UPDATE_BEATS = BOOK_UPDATE_DTYPE.itemsize * 8 // DATA_WIDTH
TRADE_BEATS = TRADE_DTYPE.itemsize * 8 // DATA_WIDTH


def _beat_and_lane(dtype, name: str) -> tuple[int, int]:
    """(beat, bit offset in the beat) of a record field's first element."""
    offset = dtype.fields[name][1]
    return offset // 8, 8 * (offset % 8)


BEAT_SEQ = _beat_and_lane(BOOK_UPDATE_DTYPE, "seq")[0]
BEAT_BID, LANE_BID = _beat_and_lane(BOOK_UPDATE_DTYPE, "bid_price")
BEAT_BID_SHARES, LANE_BID_SHARES = _beat_and_lane(BOOK_UPDATE_DTYPE, "bid_shares")
BEAT_ASK, LANE_ASK = _beat_and_lane(BOOK_UPDATE_DTYPE, "ask_price")
BEAT_ASK_SHARES, LANE_ASK_SHARES = _beat_and_lane(BOOK_UPDATE_DTYPE, "ask_shares")
assert BEAT_BID < BEAT_ASK and BEAT_BID_SHARES < BEAT_ASK_SHARES
assert _beat_and_lane(BOOK_UPDATE_DTYPE, "stock_locate") == (0, 0)
assert _beat_and_lane(BOOK_UPDATE_DTYPE, "flags") == (0, 16)
assert _beat_and_lane(BOOK_UPDATE_DTYPE, "msg_index") == (0, 32)

# Stages of the microprice path, start to S registered (the mid takes one).
MICRO_STAGES = 9
# Book record's last beat accepted -> first theo word valid, output free,
# beats back to back (measured: tests/rtl/test_pricer_chain_rtl.py).
FIRST_THEO_CYCLES = {"mid": 20, "microprice": 31}


class TheoLanes:
    """The output: one :class:`rtl.common.theo_stream.TheoPort` per lane, as
    ``m_theo_lane<k>_data`` / ``_valid`` / ``_ready``."""

    def __init__(self, lanes: int):
        for k in range(lanes):
            setattr(self, f"lane{k}", TheoPort())


class Layout:
    """Named fields packed side by side in one word, the first at bit 0."""

    def __init__(self, fields):
        self.fields = tuple(fields)
        self.lsb, lsb = {}, 0
        for name, width in self.fields:
            self.lsb[name] = lsb
            lsb += width
        self.width = {name: width for name, width in self.fields}
        self.bits = lsb

    def pack(self, **sources):
        """ConcatSignal of the sources (signals or intbv constants), top field first."""
        return ConcatSignal(*[sources[name] for name, _ in reversed(self.fields)])

    def slice(self, name):
        return self.lsb[name] + self.width[name], self.lsb[name]


def _walk_meta(config: ChainConfig) -> Layout:
    return Layout((("locate", 16), ("flags", 8), ("spot", 64), ("seq", 64), ("msg_index", 16),
                   ("ingress", 32), ("scenario", 1), ("skip", 1), ("scenario_last", 1),
                   ("scenario_index", config.scenario_bits)))


# A record waiting for its spot terms.
DONE = Layout((("update", 1), ("tracked", 1), ("one_sided", 1), ("flags", 8), ("seq", 64),
               ("msg_index", 16), ("ingress", 32)))
DONE_DEPTH = 4
PENDING = Layout((("spot", 64), ("ln_spot", 64), ("recip_m", 64), ("exponent", EXPONENT_BITS),
                  ("flags", 8), ("seq", 64), ("msg_index", 16), ("ingress", 32)))


def _tag(config: ChainConfig) -> Layout:
    return Layout((("row", config.row_bits), ("last", 1), ("real", 1), ("walk", WALK_ID_BITS)))


def _scenario_tag(config: ChainConfig) -> Layout:
    return Layout((("index", config.underlying_bits), ("scenario", config.scenario_bits),
                   ("skip", 1), ("scenario_last", 1)))


def row_bits_of(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def _signed(width: int):
    return Signal(intbv(0, min=-(1 << (width - 1)), max=1 << (width - 1)))


# ---- small memories ------------------------------------------------------------------------------

@block
def _bank(clk, we, waddr, wdata, raddr, q, depth: int):
    """Block RAM: one write port, one registered read port."""
    mem = [Signal(intbv(0)[len(wdata):]) for _ in range(depth)]

    @always(clk.posedge)
    def access():
        if we:
            mem[waddr].next = wdata
        q.next = mem[raddr]

    return access


@block
def _table(clk, we, waddr, wdata, raddr, q, depth: int):
    """Distributed RAM: one write port, one asynchronous read port."""
    mem = [Signal(intbv(0)[len(wdata):]) for _ in range(depth)]

    @always(clk.posedge)
    def write():
        if we:
            mem[waddr].next = wdata

    @always_comb
    def read():
        q.next = mem[raddr]

    return write, read


@block
def _toggle_pulse(clk, rst, toggle, pulse):
    """One cycle of ``pulse`` per change of a register bit the host flips."""
    seen = Signal(bool(0))

    @always_seq(clk.posedge, reset=rst)
    def follow():
        seen.next = toggle
        pulse.next = toggle != seen

    return follow


@block
def _counter(clk, rst, inc, count):
    """A 32-bit register counter that wraps; ``inc`` is added each cycle."""
    @always_seq(clk.posedge, reset=rst)
    def step():
        count.next = (count + inc) & 0xFFFFFFFF

    return step


@block
def _always_on(clk, out):
    """A clock enable that is on from the first clock edge."""
    @always(clk.posedge)
    def hold():
        out.next = 1

    return hold


@block
def _connect(a, out):
    @always_comb
    def drive():
        out.next = a

    return drive


@block
def _word_of(source, lsb: int, out):
    """A signed 64-bit field of a wide word."""
    @always_comb
    def pick():
        out.next = source[lsb + 64:lsb].signed()

    return pick


@block
def _hold(clk, ce, a, out):
    @always(clk.posedge)
    def register():
        if ce:
            out.next = a

    return register


@block
def _choose(select, a, b, out):
    @always_comb
    def pick():
        if select:
            out.next = a
        else:
            out.next = b

    return pick


@block
def _add(a, b, out):
    @always_comb
    def add():
        out.next = a + b

    return add


# ---- record input --------------------------------------------------------------------------------

class RecordFields:
    """What the record input hands on (registered).  Prices and sizes are
    kept as signed 64-bit words: they meet signed operands in products."""

    def __init__(self):
        self.locate = Signal(intbv(0)[16:])
        self.flags = Signal(intbv(0)[8:])
        self.msg_index = Signal(intbv(0)[16:])
        self.seq = Signal(intbv(0)[64:])
        self.bid = word()
        self.bid_shares = word()
        self.ask = word()
        self.ask_shares = word()
        self.mid_sum = word()
        self.spread = word()
        self.total_shares = word()
        self.ingress = Signal(intbv(0)[32:])
        self.start_mid = Signal(bool(0))
        self.start_micro = Signal(bool(0))
        self.started = Signal(bool(0))
        self.done = Signal(bool(0))            # pulse: a packet's last beat was taken ...
        self.update = Signal(bool(0))          # ... and it is a well-formed update
        self.trade = Signal(bool(0))           # ... a well-formed trade
        self.malformed = Signal(bool(0))       # ... anything else


@block
def _record_input(clk, rst, s_axis: AxiStream, microprice, cycle, r: RecordFields):
    """Catch a record's fields as its beats pass, start the reference price
    at the beat holding the last field it needs, flag the packet at its end."""
    beat = Signal(intbv(0, min=0, max=32))
    dest = Signal(bool(0))
    error = Signal(bool(0))
    micro_mode = Signal(bool(0))
    pkt_dest = Signal(bool(0))
    bad = Signal(bool(0))
    lane_ask = word()
    lane_ask_shares = word()

    @always_comb
    def lanes():
        s_axis.tready.next = 1
        if beat == 0:
            pkt_dest.next = s_axis.tdest[0]
        else:
            pkt_dest.next = dest
        bad.next = s_axis.tuser or s_axis.tkeep != 0xFF
        lane_ask.next = s_axis.tdata[LANE_ASK + 32:LANE_ASK]
        lane_ask_shares.next = s_axis.tdata[LANE_ASK_SHARES + 32:LANE_ASK_SHARES]

    @always_seq(clk.posedge, reset=rst)
    def catch():
        r.start_mid.next = 0
        r.start_micro.next = 0
        r.done.next = 0
        r.update.next = 0
        r.trade.next = 0
        r.malformed.next = 0
        if s_axis.tvalid:
            if s_axis.tlast:
                beat.next = 0
            elif beat < 31:
                beat.next = beat + 1
            if beat == 0:
                dest.next = s_axis.tdest[0]
                error.next = bad
                r.started.next = 0
                r.locate.next = s_axis.tdata[16:0]
                r.flags.next = s_axis.tdata[24:16]
                r.msg_index.next = s_axis.tdata[48:32]
            else:
                error.next = error or bad
            if beat == BEAT_SEQ:
                r.seq.next = s_axis.tdata
            if beat == BEAT_BID:
                r.bid.next = s_axis.tdata[LANE_BID + 32:LANE_BID]
            if beat == BEAT_BID_SHARES:
                r.bid_shares.next = s_axis.tdata[LANE_BID_SHARES + 32:LANE_BID_SHARES]
            if beat == BEAT_ASK:
                r.ask.next = lane_ask
                r.mid_sum.next = r.bid + lane_ask
                r.spread.next = lane_ask - r.bid
                micro_mode.next = microprice
                if pkt_dest == TDEST_UPDATE and not error and not bad and not microprice:
                    r.start_mid.next = 1
                    r.started.next = 1
            if beat == BEAT_ASK_SHARES:
                r.ask_shares.next = lane_ask_shares
                r.total_shares.next = r.bid_shares + lane_ask_shares
                if pkt_dest == TDEST_UPDATE and not error and not bad and micro_mode:
                    r.start_micro.next = 1
                    r.started.next = 1
            if s_axis.tlast:
                r.done.next = 1
                r.ingress.next = cycle
                if pkt_dest == TDEST_UPDATE:
                    if error or bad or beat != UPDATE_BEATS - 1:
                        r.malformed.next = 1
                    else:
                        r.update.next = 1
                elif error or bad or beat != TRADE_BEATS - 1:
                    r.malformed.next = 1
                else:
                    r.trade.next = 1

    return lanes, catch


# ---- reference price -----------------------------------------------------------------------------

@block
def _shares_shift(clk, ce, top, shift_less_one):
    """The weight product's shift less one: top - 1 (top >= 1 when both sides have shares)."""
    @always(clk.posedge)
    def register():
        if ce:
            if top == 0:
                shift_less_one.next = 0
            else:
                shift_less_one.next = top - 1

    return register


@block
def _normalize_shares(clk, ce, total, top, t):
    """D = 2**top (1 + t): t as a 62-bit table argument (the leading one falls off)."""
    @always(clk.posedge)
    def register():
        if ce:
            t.next = total[WORD_BITS:] << (fx.PROB.frac_bits - top)

    return register


@block
def _reference_price(clk, rst, r: RecordFields, entry, s_spot: SpotPort):
    """S in MONEY from the caught fields (the model's
    :func:`rtl.pricer_chain.model.reference_price`), held in a register in
    front of the spot front until it takes it."""
    one = Signal(bool(0))
    powered = _always_on(clk, one)
    pipe = Pipeline(clk, one)
    total = pipe.source(r.total_shares)
    top = pipe.op(leading_one, [total], [Signal(intbv(0)[6:])])
    t = Signal(intbv(0)[fx.PROB.frac_bits:])
    pipe.op(_normalize_shares, [total, top], [t])
    shift = pipe.op(_shares_shift, [top], [Signal(intbv(0)[6:])])
    recip = pipe.lookup("RECIP", t)
    weight = pipe.mul(pipe.source(r.bid_shares), recip, shift)
    scale = pipe.constant(PRICE_SCALE)
    bid_m = pipe.mul(pipe.source(r.bid), scale, PRICE_SCALE_SHIFT)
    spread_m = pipe.mul(pipe.source(r.spread), scale, PRICE_SCALE_SHIFT)
    micro = pipe.mul(spread_m, weight, WEIGHT_FRAC, addend=bid_m)
    assert pipe.stage[id(micro)] == MICRO_STAGES, pipe.stage[id(micro)]

    mid = word()
    mid_valid = Signal(bool(0))
    micro_valid = Signal(intbv(0)[MICRO_STAGES:])
    hold = word()
    hold_valid = Signal(bool(0))
    # The entry goes with the price through the spot front; a record's
    # lookup result is only kept until the next record's first beat.
    hold_entry = Signal(intbv(0)[len(entry):])
    mid_product = mul_round_stage(clk, one, r.mid_sum, scale, mid, PRICE_SCALE_SHIFT + 1)

    @always_seq(clk.posedge, reset=rst)
    def track():
        if r.start_mid or r.start_micro:
            hold_entry.next = entry
        mid_valid.next = r.start_mid
        micro_valid.next = concat(micro_valid[MICRO_STAGES - 1:], r.start_micro)
        if mid_valid:
            hold.next = mid
            hold_valid.next = 1
        elif micro_valid[MICRO_STAGES - 1]:
            hold.next = micro
            hold_valid.next = 1
        elif s_spot.ready:
            hold_valid.next = 0

    @always_comb
    def offer():
        s_spot.valid.next = hold_valid
        s_spot.spot.next = hold
        s_spot.tag.next = hold_entry

    parts = [make(*args) for make, args in pipe.instances]
    return powered, parts, mid_product, track, offer


# ---- lanes ---------------------------------------------------------------------------------------

class LaneIssue:
    """What the walker gives every lane, and the lanes' shared controls."""

    def __init__(self, config: ChainConfig, meta: Layout):
        self.g_next = Signal(intbv(0)[config.row_bits + 1:])
        self.g = Signal(intbv(0)[config.row_bits + 1:])
        self.end = Signal(intbv(0)[config.row_bits + 1:])
        self.skip = Signal(bool(0))
        self.walk = Signal(intbv(0)[WALK_ID_BITS:])
        self.live_offer = Signal(bool(0))
        self.pre_valid = Signal(bool(0))
        self.ce = Signal(bool(0))
        self.advance = Signal(bool(0))
        self.take_group = Signal(bool(0))     # a scenario group leaves the datapaths
        self.spot = word()
        self.ln_spot = word()
        self.recip_m = word()
        self.exponent = Signal(intbv(0, min=-(1 << (EXPONENT_BITS - 1)),
                                     max=1 << (EXPONENT_BITS - 1)))
        self.vol_factor = word()
        self.inv_vol_factor = word()
        self.var_offset = word()
        self.out_meta = Signal(intbv(0)[meta.bits:])
        self.row_we = Signal(bool(0))
        self.row_waddr = Signal(intbv(0)[config.row_bits:])
        self.row_wdata = Signal(intbv(0)[ROW_BITS:])
        self.pos_we = Signal(bool(0))
        self.pos_waddr = Signal(intbv(0)[config.row_bits:])
        self.pos_wdata = _signed(32)


class LaneOut:
    """A lane's signals the shared logic reduces over lanes."""

    def __init__(self):
        self.ok = Signal(bool(0))            # its word was taken, or none is offered
        self.ready_in = Signal(bool(0))      # its datapath takes an option
        self.greeks_valid = Signal(bool(0))
        self.last = Signal(bool(0))
        self.real = Signal(bool(0))
        self.sent_word = Signal(bool(0))
        self.walk = Signal(intbv(0)[WALK_ID_BITS:])
        self.value = _signed(2 * 64)         # scenario products, 3 cycles after take_group
        self.delta_dollars = _signed(2 * 64)
        self.vega = _signed(2 * 64)
        self.theta = _signed(2 * 64)


@block
def _bank_address(g, lane: int, lane_bits: int, out):
    """The bank address of lane ``lane``'s row in the group starting at row g."""
    if lane_bits:
        @always_comb
        def pick():
            if lane < g[lane_bits:]:
                out.next = (g >> lane_bits) + 1
            else:
                out.next = g >> lane_bits
    else:
        @always_comb
        def pick():
            out.next = g[len(out):]

    return pick


@block
def _bank_select(we, waddr, lane: int, lane_bits: int, lane_we, lane_waddr):
    if lane_bits:
        @always_comb
        def pick():
            lane_we.next = we and waddr[lane_bits:] == lane
            lane_waddr.next = waddr >> lane_bits
    else:
        @always_comb
        def pick():
            lane_we.next = we
            lane_waddr.next = waddr

    return pick


@block
def _lane(clk, rst, lane: int, config: ChainConfig, issue: LaneIssue, theo: TheoPort,
          out: LaneOut, meta_slices: tuple):
    """One datapath with its bank of the parameter table, its scaling stage,
    its theo port and its scenario products."""
    lanes = config.lanes
    lane_bits = (lanes - 1).bit_length()
    depth = config.options // lanes
    addr_bits = row_bits_of(depth)
    row_bits = config.row_bits
    # Lanes run in lock step, so only lane 0's tag carries the walk number.
    tag_bits = _tag(config).bits if lane == 0 else row_bits + 2
    (scenario_bit, locate_hi, locate_lo, flags_hi, flags_lo, spot_hi, spot_lo, seq_hi, seq_lo,
     index_hi, index_lo, ingress_hi, ingress_lo) = meta_slices

    raddr = Signal(intbv(0)[addr_bits:])
    read_address = _bank_address(issue.g_next, lane, lane_bits, raddr)
    row_q = Signal(intbv(0)[ROW_BITS:])
    bank_we = Signal(bool(0))
    bank_waddr = Signal(intbv(0)[addr_bits:])
    write_select = _bank_select(issue.row_we, issue.row_waddr, lane, lane_bits, bank_we, bank_waddr)
    bank = _bank(clk, bank_we, bank_waddr, issue.row_wdata, raddr, row_q, depth)

    log_offset, inv_vol, total_vol, sqrt_t, half_vol_rate = (word() for _ in range(5))
    carry_disc, strike_disc, carry_rate, rate_strike_disc, total_var = (word() for _ in range(5))
    row = dict(log_offset=log_offset, inv_vol=inv_vol, total_vol=total_vol, sqrt_t=sqrt_t,
               half_vol_rate=half_vol_rate, carry_disc=carry_disc, strike_disc=strike_disc,
               carry_rate=carry_rate, rate_strike_disc=rate_strike_disc, total_var=total_var)
    picks = [_word_of(row_q, 1 + 64 * k, row[name]) for k, name in enumerate(ROW_FIELDS)]

    # The group's row in this bank, and its tag.
    group_base = Signal(intbv(0)[addr_bits + 1:])
    base_address = _bank_address(issue.g, lane, lane_bits, group_base)
    row_index = Signal(intbv(0)[row_bits + 1:])
    real = Signal(bool(0))
    last = Signal(bool(0))
    tag_word = Signal(intbv(0)[tag_bits:])

    @always_comb
    def place():
        row_index.next = (group_base << lane_bits) | lane

    if lane == 0:
        @always_comb
        def make_tag():
            tag_word.next = concat(issue.walk, real, last, row_index[row_bits:])
    else:
        @always_comb
        def make_tag():
            tag_word.next = concat(real, last, row_index[row_bits:])

    @always_comb
    def mark():
        real.next = not issue.skip and row_index < issue.end
        if issue.skip:
            last.next = lane == 0
        else:
            last.next = row_index + 1 == issue.end

    # Scenario scaling stage: the row's volatility terms times the walk's factors.
    scaled_log_offset, scaled_inv_vol, scaled_total_vol, scaled_half_vol_rate = (
        word() for _ in range(4))
    scaling = [
        mul_round_stage(clk, issue.ce, total_vol, issue.vol_factor, scaled_total_vol, FACTOR_FRAC),
        mul_round_stage(clk, issue.ce, half_vol_rate, issue.vol_factor, scaled_half_vol_rate,
                        FACTOR_FRAC),
        mul_round_stage(clk, issue.ce, inv_vol, issue.inv_vol_factor, scaled_inv_vol, FACTOR_FRAC),
        mul_round_stage(clk, issue.ce, total_var, issue.var_offset, scaled_log_offset, FACTOR_FRAC,
                        addend=log_offset),
    ]
    unscaled = {"sqrt_t": sqrt_t, "carry_disc": carry_disc, "strike_disc": strike_disc,
                "carry_rate": carry_rate, "rate_strike_disc": rate_strike_disc,
                "spot": issue.spot, "ln_spot": issue.ln_spot, "recip_m": issue.recip_m}
    kept = {name: word() for name in unscaled}
    holds = [_hold(clk, issue.ce, unscaled[name], kept[name]) for name in unscaled]
    pre_is_put = Signal(bool(0))
    pre_exponent = Signal(intbv(0, min=-(1 << (EXPONENT_BITS - 1)), max=1 << (EXPONENT_BITS - 1)))
    pre_tag = Signal(intbv(0)[tag_bits:])

    @always(clk.posedge)
    def hold_rest():
        if issue.ce:
            pre_is_put.next = row_q[0]
            pre_exponent.next = issue.exponent
            pre_tag.next = tag_word

    # The datapath's input: the scaling stage's group, else the live group.
    s_option = OptionPort(tag_bits)
    m_greeks = ResultPort(tag_bits, results=("price", "delta", "gamma", "vega", "theta"))
    staged = {**kept, "log_offset": scaled_log_offset, "inv_vol": scaled_inv_vol,
              "total_vol": scaled_total_vol, "half_vol_rate": scaled_half_vol_rate}
    direct = {**{name: row[name] for name in HOST_ROW_FIELDS},
              "spot": issue.spot, "ln_spot": issue.ln_spot, "recip_m": issue.recip_m}
    muxes = [_choose(issue.pre_valid, staged[name], direct[name], getattr(s_option, name))
             for name in direct]

    @always_comb
    def choose_rest():
        if issue.pre_valid:
            s_option.is_put.next = pre_is_put
            s_option.exponent.next = pre_exponent
            s_option.tag.next = pre_tag
        else:
            s_option.is_put.next = row_q[0]
            s_option.exponent.next = issue.exponent
            s_option.tag.next = tag_word
        s_option.valid.next = issue.pre_valid or issue.live_offer

    datapath = pricer_datapath(clk, rst, s_option, m_greeks)

    # Output: the theo word, offered until taken or until the pipelines advance.
    sent = Signal(bool(0))
    offered = Signal(bool(0))
    t_option_id, t_underlying, t_flags = (Signal(intbv(0)[w:]) for w in (16, 16, 8))
    t_spot, t_price, t_delta, t_gamma, t_vega, t_theta, t_seq = (
        Signal(intbv(0)[64:]) for _ in range(7))
    t_msg_index, t_ingress, t_last = Signal(intbv(0)[16:]), Signal(intbv(0)[32:]), Signal(bool(0))
    theo_parts = dict(option_id=t_option_id, underlying=t_underlying, flags=t_flags, spot=t_spot,
                      price=t_price, delta=t_delta, gamma=t_gamma, vega=t_vega, theta=t_theta,
                      seq=t_seq, msg_index=t_msg_index, ingress_cycle=t_ingress, last=t_last)
    pack = ConcatSignal(*[theo_parts[name] for name, _ in reversed(THEO_FIELDS)])

    @always_comb
    def unpack():
        offered.next = m_greeks.valid and m_greeks.tag[row_bits + 1] \
            and not issue.out_meta[scenario_bit] and not sent
        t_option_id.next = m_greeks.tag[row_bits:]
        t_underlying.next = issue.out_meta[locate_hi:locate_lo]
        t_flags.next = issue.out_meta[flags_hi:flags_lo]
        t_spot.next = issue.out_meta[spot_hi:spot_lo]
        t_price.next = m_greeks.price[64:]
        t_delta.next = m_greeks.delta[64:]
        t_gamma.next = m_greeks.gamma[64:]
        t_vega.next = m_greeks.vega[64:]
        t_theta.next = m_greeks.theta[64:]
        t_seq.next = issue.out_meta[seq_hi:seq_lo]
        t_msg_index.next = issue.out_meta[index_hi:index_lo]
        t_ingress.next = issue.out_meta[ingress_hi:ingress_lo]
        t_last.next = m_greeks.tag[row_bits]

    @always_comb
    def handshake():
        theo.data.next = pack
        theo.valid.next = offered
        out.ok.next = theo.ready or not offered
        out.sent_word.next = offered and theo.ready
        out.last.next = m_greeks.tag[row_bits]
        out.real.next = m_greeks.tag[row_bits + 1]
        out.ready_in.next = s_option.ready

    # Separate from the block above, whose outputs the advance is made of.
    pace = _connect(issue.advance, m_greeks.ready)

    # Lanes run in lock step: lane 0 speaks for all of them.
    if lane == 0:
        @always_comb
        def lead():
            out.greeks_valid.next = m_greeks.valid
            out.walk.next = m_greeks.tag[tag_bits:row_bits + 2]
    else:
        lead = []

    @always_seq(clk.posedge, reset=rst)
    def remember():
        if m_greeks.valid and issue.advance:
            sent.next = 0
        elif offered and theo.ready:
            sent.next = 1

    # Scenario products: this lane's option times its row's position.
    pos_raddr = Signal(intbv(0)[addr_bits:])
    position = _signed(32)
    pos_we = Signal(bool(0))
    pos_waddr = Signal(intbv(0)[addr_bits:])
    pos_select = _bank_select(issue.pos_we, issue.pos_waddr, lane, lane_bits, pos_we, pos_waddr)

    @always_comb
    def position_address():
        pos_raddr.next = m_greeks.tag[row_bits:lane_bits]

    positions = _table(clk, pos_we, pos_waddr, issue.pos_wdata, pos_raddr, position, depth)
    products = _lane_products(clk, issue, m_greeks, position, out, spot_hi, spot_lo, row_bits)
    return (read_address, write_select, bank, picks, base_address, place, make_tag, mark, scaling,
            holds, hold_rest, muxes, choose_rest, datapath, unpack, handshake, pace, lead,
            remember, pos_select, position_address, positions, products)


@block
def _lane_products(clk, issue: LaneIssue, m_greeks: ResultPort, position, out: LaneOut,
                   spot_hi: int, spot_lo: int, row_bits: int):
    """A lane's scenario products 3 cycles after its group left the
    datapath: position times price, dollar delta (mul_round(delta, S', 61)),
    vega and theta; zero for a lane without an option."""
    one = Signal(bool(0))
    powered = _always_on(clk, one)
    a_real, b_real = Signal(bool(0)), Signal(bool(0))
    a_price, a_delta, a_vega, a_theta, a_spot = (word() for _ in range(5))
    b_price, b_vega, b_theta, dollar_delta = (word() for _ in range(4))
    a_pos, b_pos = _signed(32), _signed(32)

    @always(clk.posedge)
    def stage_a():
        a_real.next = issue.take_group and m_greeks.tag[row_bits + 1]
        a_price.next = m_greeks.price
        a_delta.next = m_greeks.delta
        a_vega.next = m_greeks.vega
        a_theta.next = m_greeks.theta
        a_spot.next = issue.out_meta[spot_hi:spot_lo].signed()
        a_pos.next = position

    delta_product = mul_round_stage(clk, one, a_delta, a_spot, dollar_delta, fx.DELTA.frac_bits)

    @always(clk.posedge)
    def stage_b():
        b_real.next = a_real
        b_price.next = a_price
        b_vega.next = a_vega
        b_theta.next = a_theta
        b_pos.next = a_pos

    @always(clk.posedge)
    def stage_c():
        if b_real:
            out.value.next = b_pos * b_price
            out.delta_dollars.next = b_pos * dollar_delta
            out.vega.next = b_pos * b_vega
            out.theta.next = b_pos * b_theta
        else:
            out.value.next = 0
            out.delta_dollars.next = 0
            out.vega.next = 0
            out.theta.next = 0

    return powered, stage_a, delta_product, stage_b, stage_c


@block
def _reduce_and(bits, out):
    @always_comb
    def reduce():
        out.next = bits == (1 << len(bits)) - 1

    return reduce


@block
def _reduce_or(bits, out):
    @always_comb
    def reduce():
        out.next = bits != 0

    return reduce


@block
def _popcount(bits, out):
    @always_comb
    def count():
        total = intbv(0)[len(out):]
        for i in range(len(bits)):
            if bits[i]:
                total[:] = total + 1
        out.next = total

    return count


# ---- the top level -------------------------------------------------------------------------------

def _word_from_halves(lo, hi):
    return ConcatSignal(hi, lo)


@block
def _signed_word(bits, out):
    @always_comb
    def view():
        out.next = bits.signed()

    return view


@block
def pricer_chain(clk, rst, s_axis: AxiStream, m_theo: TheoLanes, s_axil: AxiLite,
                 config: ChainConfig = ChainConfig()):
    """Book records in on ``s_axis``, theo words out on ``m_theo.lane<k>``,
    registers (:data:`rtl.regmap.map.PRICER_CHAIN`) on ``s_axil``."""
    c = config
    lanes, lane_bits = c.lanes, (c.lanes - 1).bit_length()
    underlyings, scenarios = c.underlyings, c.scenarios
    ub, sb, rb = c.underlying_bits, c.scenario_bits, c.row_bits
    meta = _walk_meta(c)
    stag = _scenario_tag(c)
    options = c.options

    ports = RegisterPorts(PRICER_CHAIN)
    registers = regfile(clk, rst, s_axil, ports, PRICER_CHAIN, {
        "info_options": c.options, "info_lanes": c.lanes, "info_underlyings": underlyings,
        "info_scenarios": scenarios})
    cycle = ports.cycle

    @always_seq(clk.posedge, reset=rst)
    def count_cycles():
        cycle.next = (cycle + 1) & 0xFFFFFFFF

    # ---- host table writes -----------------------------------------------------------------------
    row_pulse, ul_pulse, pos_pulse, scn_pulse, start_pulse = (Signal(bool(0)) for _ in range(5))
    pulses = [_toggle_pulse(clk, rst, toggle, pulse) for toggle, pulse in (
        (ports.row_commit, row_pulse), (ports.ul_commit, ul_pulse), (ports.pos_commit, pos_pulse),
        (ports.scn_commit, scn_pulse), (ports.scn_start, start_pulse))]

    one = Signal(bool(0))
    powered = _always_on(clk, one)
    staged = {name: word() for name in HOST_ROW_FIELDS}
    staged_views = [_signed_word(_word_from_halves(getattr(ports, f"row_{name}_lo"),
                                                   getattr(ports, f"row_{name}_hi")),
                                 staged[name]) for name in HOST_ROW_FIELDS]
    row_total_var = word()
    row_fields = {name: word() for name in HOST_ROW_FIELDS}
    variance = mul_round_stage(clk, one, staged["total_vol"], staged["total_vol"], row_total_var,
                               TOTAL_VAR_SHIFT)
    row_holds = [_hold(clk, one, staged[name], row_fields[name]) for name in HOST_ROW_FIELDS]
    row_is_put = Signal(bool(0))
    issue = LaneIssue(c, meta)
    row_wdata = ConcatSignal(row_total_var,
                             *[row_fields[name] for name in reversed(HOST_ROW_FIELDS)], row_is_put)
    row_index, row_put_field = ports.row_index, ports.row_is_put
    bad_row = Signal(bool(0))

    @always_seq(clk.posedge, reset=rst)
    def write_row():
        issue.row_we.next = row_pulse and row_index < options
        issue.row_waddr.next = row_index[rb:]
        row_is_put.next = row_put_field
        bad_row.next = row_pulse and row_index >= options

    @always_comb
    def row_word():
        issue.row_wdata.next = row_wdata

    pos_index, pos_value = ports.pos_index, ports.pos_value
    bad_pos = Signal(bool(0))

    @always_comb
    def write_position():
        issue.pos_we.next = pos_pulse and pos_index < options
        issue.pos_waddr.next = pos_index[rb:]
        issue.pos_wdata.next = pos_value.signed()
        bad_pos.next = pos_pulse and pos_index >= options

    # Scenario rows.
    scn_rows = {name: [word() for _ in range(scenarios)] for name in SCENARIO_FIELDS}
    scn_staged = {name: word() for name in SCENARIO_FIELDS}
    scn_views = [_signed_word(_word_from_halves(getattr(ports, f"scn_{name}_lo"),
                                                getattr(ports, f"scn_{name}_hi")),
                              scn_staged[name]) for name in SCENARIO_FIELDS]
    scn_spot_rows, scn_vol_rows = scn_rows["spot_factor"], scn_rows["vol_factor"]
    scn_inv_rows, scn_var_rows = scn_rows["inv_vol_factor"], scn_rows["var_offset"]
    scn_spot_in, scn_vol_in = scn_staged["spot_factor"], scn_staged["vol_factor"]
    scn_inv_in, scn_var_in = scn_staged["inv_vol_factor"], scn_staged["var_offset"]
    scn_index = ports.scn_index
    bad_scn = Signal(bool(0))

    @always_seq(clk.posedge, reset=rst)
    def write_scenario():
        bad_scn.next = scn_pulse and scn_index >= scenarios
        if scn_pulse and scn_index < scenarios:
            scn_spot_rows[scn_index].next = scn_spot_in
            scn_vol_rows[scn_index].next = scn_vol_in
            scn_inv_rows[scn_index].next = scn_inv_in
            scn_var_rows[scn_index].next = scn_var_in

    # ---- record input, lookup, reference price, spot terms ---------------------------------------
    r = RecordFields()
    record_input = _record_input(clk, rst, s_axis, ports.microprice, cycle, r)
    ul_locate = [Signal(intbv(0)[16:]) for _ in range(underlyings)]
    ul_first = [Signal(intbv(0)[rb + 1:]) for _ in range(underlyings)]
    ul_count = [Signal(intbv(0)[rb + 1:]) for _ in range(underlyings)]
    ul_enabled = Signal(intbv(0)[underlyings:])
    ul_has_rows = Signal(intbv(0)[underlyings:])
    look_found = Signal(bool(0))
    look_index = Signal(intbv(0)[ub:])
    key = r.locate

    @always_seq(clk.posedge, reset=rst)
    def lookup():
        hit = False
        at = intbv(0)[ub:]
        for i in downrange(underlyings):
            if ul_enabled[i] and ul_locate[i] == key:
                hit = True
                at[:] = i
        look_found.next = hit and ul_has_rows[at]
        look_index.next = at

    # The spot terms carry the entry they belong to.
    spot_in = SpotPort(ub)
    terms = SpotTermsPort(ub)
    reference = _reference_price(clk, rst, r, look_index, spot_in)
    live_front = spot_front(clk, rst, spot_in, terms)

    # ---- verdict ---------------------------------------------------------------------------------
    # Records whose spot terms are under way wait here in order; the terms
    # leave the spot front in the same order, so the head and the terms
    # belong together.  A 14-beat malformed record right behind a good one
    # ends in the very cycle the good one's microprice terms arrive; a queue
    # keeps them apart whatever the latencies (started records are 11 beats
    # or more and terms take under 20 cycles: at most 2 wait).
    d_update, d_tracked, d_one_sided = (Signal(bool(0)) for _ in range(3))
    d_index = Signal(intbv(0)[ub:])
    d_flags = Signal(intbv(0)[8:])
    d_seq = Signal(intbv(0)[64:])
    d_msg_index = Signal(intbv(0)[16:])
    d_ingress = Signal(intbv(0)[32:])
    one_sided_now = Signal(bool(0))
    done_in = DONE.pack(update=r.update, tracked=look_found, one_sided=one_sided_now, flags=r.flags,
                        seq=r.seq, msg_index=r.msg_index, ingress=r.ingress)
    done_word = Signal(intbv(0)[DONE.bits:])
    done_queue = [Signal(intbv(0)[DONE.bits:]) for _ in range(DONE_DEPTH)]
    done_head, done_tail = Signal(intbv(0)[2:]), Signal(intbv(0)[2:])
    waiting = Signal(intbv(0, min=0, max=DONE_DEPTH + 1))
    done_fields = [_slice_of(done_word, DONE.lsb[name], DONE.width[name], sig) for name, sig in (
        ("update", d_update), ("tracked", d_tracked), ("one_sided", d_one_sided),
        ("flags", d_flags), ("seq", d_seq), ("msg_index", d_msg_index), ("ingress", d_ingress))]
    entry_of_terms = _connect(terms.tag, d_index)
    last_spot = [word() for _ in range(underlyings)]
    last_flags = [Signal(intbv(0)[8:]) for _ in range(underlyings)]
    has_spot = Signal(intbv(0)[underlyings:])
    fire, accept = Signal(bool(0)), Signal(bool(0))
    v_untracked, v_one_sided, v_range, v_unchanged = (Signal(bool(0)) for _ in range(4))

    # Reads and copies get blocks of their own: a combinational block that
    # reads what is derived from its own outputs races in event-driven
    # simulators.
    @always_comb
    def queue_head():
        done_word.next = done_queue[done_head]

    @always_comb
    def judge():
        one_sided_now.next = r.bid == 0 or r.ask == 0 or r.bid_shares == 0 or r.ask_shares == 0
        terms.ready.next = waiting != 0
        fire.next = waiting != 0 and terms.valid
        ok = waiting != 0 and terms.valid and d_update
        in_range = terms.spot >= SPOT_MIN_RAW and terms.spot < SPOT_LIMIT_RAW
        same = has_spot[d_index] and last_spot[d_index] == terms.spot \
            and last_flags[d_index] == d_flags
        v_untracked.next = ok and not d_tracked
        v_one_sided.next = ok and d_tracked and d_one_sided
        v_range.next = ok and d_tracked and not d_one_sided and not in_range
        v_unchanged.next = ok and d_tracked and not d_one_sided and in_range and same
        accept.next = ok and d_tracked and not d_one_sided and in_range and not same

    @always_seq(clk.posedge, reset=rst)
    def hand_over():
        arrive = r.done and r.started
        if arrive:
            done_queue[done_tail].next = done_in
            done_tail.next = (done_tail + 1) % DONE_DEPTH
        if fire:
            done_head.next = (done_head + 1) % DONE_DEPTH
        if arrive and not fire:
            waiting.next = waiting + 1
        elif fire and not arrive:
            waiting.next = waiting - 1

    # ---- pending table and queue -----------------------------------------------------------------
    pending_word = PENDING.pack(spot=terms.spot, ln_spot=terms.ln_spot, recip_m=terms.recip_m,
                                exponent=terms.exponent, flags=d_flags, seq=d_seq,
                                msg_index=d_msg_index, ingress=d_ingress)
    pending_in = Signal(intbv(0)[PENDING.bits:])
    pending_out = Signal(intbv(0)[PENDING.bits:])
    pending_we = Signal(bool(0))
    fifo = [Signal(intbv(0)[ub:]) for _ in range(underlyings)]
    head, tail = Signal(intbv(0)[ub:]), Signal(intbv(0)[ub:])
    queued = Signal(intbv(0)[ub + 1:])
    head_index = Signal(intbv(0)[ub:])
    pending = Signal(intbv(0)[underlyings:])
    pending_table = _table(clk, pending_we, d_index, pending_in, head_index, pending_out,
                           underlyings)

    # ---- walker ----------------------------------------------------------------------------------
    walking, w_scenario, w_skip = (Signal(bool(0)) for _ in range(3))
    issue_now, last_group = Signal(bool(0)), Signal(bool(0))
    take_queue, take_direct, take_scenario, take = (Signal(bool(0)) for _ in range(4))
    take_index = Signal(intbv(0)[ub:])
    scn_terms = SpotTermsPort(stag.bits)
    scn_index_of_job = Signal(intbv(0)[ub:])
    scn_scenario_of_job = Signal(intbv(0)[sb:])
    scn_skip_job, scn_last_job = Signal(bool(0)), Signal(bool(0))
    p_spot, p_ln_spot, p_recip_m, p_seq = word(), word(), word(), Signal(intbv(0)[64:])
    p_exponent = Signal(intbv(0, min=-(1 << (EXPONENT_BITS - 1)), max=1 << (EXPONENT_BITS - 1)))
    p_flags, p_msg_index, p_ingress = (Signal(intbv(0)[8:]), Signal(intbv(0)[16:]),
                                       Signal(intbv(0)[32:]))
    unpacks = [_word_of(pending_out, PENDING.lsb[name], sig) for name, sig in (
        ("spot", p_spot), ("ln_spot", p_ln_spot), ("recip_m", p_recip_m))]
    unpacks += [_slice_of(pending_out, PENDING.lsb[name], width, sig) for name, width, sig in (
        ("flags", 8, p_flags), ("seq", 64, p_seq), ("msg_index", 16, p_msg_index),
        ("ingress", 32, p_ingress))]
    unpacks += [_signed_slice_of(pending_out, PENDING.lsb["exponent"], EXPONENT_BITS, p_exponent),
                _slice_of(scn_terms.tag, stag.lsb["index"], ub, scn_index_of_job),
                _slice_of(scn_terms.tag, stag.lsb["scenario"], sb, scn_scenario_of_job),
                _slice_of(scn_terms.tag, stag.lsb["skip"], 1, scn_skip_job),
                _slice_of(scn_terms.tag, stag.lsb["scenario_last"], 1, scn_last_job)]

    # What the walk taken now carries to the output (the walk table) and to the lanes.
    t_locate, t_flags = Signal(intbv(0)[16:]), Signal(intbv(0)[8:])
    t_spot, t_ln_spot, t_recip_m = word(), word(), word()
    t_exponent = Signal(intbv(0, min=-(1 << (EXPONENT_BITS - 1)), max=1 << (EXPONENT_BITS - 1)))
    t_seq, t_msg_index, t_ingress = (Signal(intbv(0)[64:]), Signal(intbv(0)[16:]),
                                     Signal(intbv(0)[32:]))
    t_scenario_index = Signal(intbv(0)[sb:])
    t_first, t_count = Signal(intbv(0)[rb + 1:]), Signal(intbv(0)[rb + 1:])
    next_walk = Signal(intbv(0)[WALK_ID_BITS:])
    t_skip, t_scenario_last = Signal(bool(0)), Signal(bool(0))
    walk_meta = meta.pack(locate=t_locate, flags=t_flags, spot=t_spot, seq=t_seq,
                          msg_index=t_msg_index, ingress=t_ingress, scenario=take_scenario,
                          skip=t_skip, scenario_last=t_scenario_last,
                          scenario_index=t_scenario_index)
    walk_meta_in = Signal(intbv(0)[meta.bits:])
    out_walk = Signal(intbv(0)[WALK_ID_BITS:])
    walk_table = _table(clk, take, next_walk, walk_meta_in, out_walk, issue.out_meta,
                        1 << WALK_ID_BITS)

    copies = [_connect(walk_meta, walk_meta_in), _connect(pending_word, pending_in)]

    @always_comb
    def queue_front():
        head_index.next = fifo[head]

    @always_comb
    def choose_take():
        last_group.next = w_skip or issue.g + lanes >= issue.end
        issue_now.next = walking and issue.ce and (w_scenario or not issue.pre_valid)
        scn_terms.ready.next = False
        take_queue.next = False
        take_direct.next = False
        take_scenario.next = False
        take_index.next = 0
        if not walking or (issue.ce and (w_scenario or not issue.pre_valid)
                           and (w_skip or issue.g + lanes >= issue.end)):
            if queued != 0:
                take_queue.next = True
                take_index.next = fifo[head]
            elif accept:
                take_direct.next = True
                take_index.next = d_index
            else:
                scn_terms.ready.next = True
                if scn_terms.valid:
                    take_scenario.next = True
                    take_index.next = scn_index_of_job

    @always_comb
    def take_sources():
        take.next = take_queue or take_direct or take_scenario
        next_walk.next = (issue.walk + 1) & ((1 << WALK_ID_BITS) - 1)
        t_locate.next = ul_locate[take_index]
        t_first.next = ul_first[take_index]
        t_count.next = ul_count[take_index]
        t_scenario_index.next = scn_scenario_of_job
        t_skip.next = take_scenario and scn_skip_job
        t_scenario_last.next = take_scenario and scn_last_job
        if take_queue:
            t_flags.next = p_flags
            t_spot.next = p_spot
            t_ln_spot.next = p_ln_spot
            t_recip_m.next = p_recip_m
            t_exponent.next = p_exponent
            t_seq.next = p_seq
            t_msg_index.next = p_msg_index
            t_ingress.next = p_ingress
        elif take_direct:
            t_flags.next = d_flags
            t_spot.next = terms.spot
            t_ln_spot.next = terms.ln_spot
            t_recip_m.next = terms.recip_m
            t_exponent.next = terms.exponent
            t_seq.next = d_seq
            t_msg_index.next = d_msg_index
            t_ingress.next = d_ingress
        else:
            t_flags.next = 0
            t_spot.next = scn_terms.spot
            t_ln_spot.next = scn_terms.ln_spot
            t_recip_m.next = scn_terms.recip_m
            t_exponent.next = scn_terms.exponent
            t_seq.next = 0
            t_msg_index.next = 0
            t_ingress.next = 0

    @always_comb
    def next_group():
        if take:
            issue.g_next.next = t_first
        elif issue_now and not last_group:
            issue.g_next.next = issue.g + lanes
        else:
            issue.g_next.next = issue.g
        issue.live_offer.next = walking and not w_scenario and not issue.pre_valid

    ONE_FACTOR = 1 << FACTOR_FRAC

    @always_seq(clk.posedge, reset=rst)
    def walk():
        if take:
            walking.next = 1
            issue.g.next = t_first
            issue.end.next = t_first + t_count
            w_scenario.next = take_scenario
            w_skip.next = take_scenario and scn_skip_job
            issue.skip.next = take_scenario and scn_skip_job
            issue.walk.next = next_walk
            issue.spot.next = t_spot
            issue.ln_spot.next = t_ln_spot
            issue.recip_m.next = t_recip_m
            issue.exponent.next = t_exponent
            if take_scenario:
                issue.vol_factor.next = scn_vol_rows[scn_scenario_of_job]
                issue.inv_vol_factor.next = scn_inv_rows[scn_scenario_of_job]
                issue.var_offset.next = scn_var_rows[scn_scenario_of_job]
            else:
                issue.vol_factor.next = ONE_FACTOR
                issue.inv_vol_factor.next = ONE_FACTOR
                issue.var_offset.next = 0
        elif issue_now:
            if last_group:
                walking.next = 0
            else:
                issue.g.next = issue.g + lanes
        if issue.ce:
            issue.pre_valid.next = issue_now and w_scenario

    # ---- queue and per-underlying state ----------------------------------------------------------
    push, coalesce = Signal(bool(0)), Signal(bool(0))
    ul_index, ul_first_in, ul_count_in = ports.ul_index, ports.ul_first, ports.ul_count
    ul_locate_in, ul_enable_in = ports.ul_locate, ports.ul_enable
    bad_ul = Signal(bool(0))

    @always_comb
    def queue_decision():
        again = take_queue and fifo[head] == d_index
        push.next = accept and not take_direct and (not pending[d_index] or again)
        coalesce.next = accept and not take_direct and pending[d_index] and not again
        pending_we.next = accept and not take_direct

    @always_seq(clk.posedge, reset=rst)
    def keep_state():
        bad_ul.next = ul_pulse and (ul_index >= underlyings or ul_first_in + ul_count_in > options)
        if accept:
            last_spot[d_index].next = terms.spot
            last_flags[d_index].next = d_flags
            has_spot.next[d_index] = 1
        if ul_pulse and ul_index < underlyings and ul_first_in + ul_count_in <= options:
            ul_locate[ul_index].next = ul_locate_in
            ul_first[ul_index].next = ul_first_in[rb + 1:]
            ul_count[ul_index].next = ul_count_in[rb + 1:]
            ul_enabled.next[ul_index] = ul_enable_in
            ul_has_rows.next[ul_index] = ul_enable_in and ul_count_in != 0
            has_spot.next[ul_index] = 0
        if take_queue:
            pending.next[fifo[head]] = 0
            if head == underlyings - 1:
                head.next = 0
            else:
                head.next = head + 1
        if push:
            pending.next[d_index] = 1
            fifo[tail].next = d_index
            if tail == underlyings - 1:
                tail.next = 0
            else:
                tail.next = tail + 1
        if push and not take_queue:
            queued.next = queued + 1
        elif take_queue and not push:
            queued.next = queued - 1

    # ---- lanes and their shared controls ---------------------------------------------------------
    outs = [LaneOut() for _ in range(lanes)]
    meta_slices = (meta.lsb["scenario"], *meta.slice("locate"), *meta.slice("flags"),
                   *meta.slice("spot"), *meta.slice("seq"), *meta.slice("msg_index"),
                   *meta.slice("ingress"))
    lane_blocks = [_lane(clk, rst, k, c, issue, getattr(m_theo, f"lane{k}"), outs[k], meta_slices)
                   for k in range(lanes)]
    oks = ConcatSignal(*[o.ok for o in reversed(outs)]) if lanes > 1 else outs[0].ok
    lasts = ConcatSignal(*[o.last for o in reversed(outs)]) if lanes > 1 else outs[0].last
    reals = ConcatSignal(*[o.real for o in reversed(outs)]) if lanes > 1 else outs[0].real
    sents = ConcatSignal(*[o.sent_word for o in reversed(outs)]) if lanes > 1 else outs[0].sent_word
    readies = ConcatSignal(*[o.ready_in for o in reversed(outs)]) if lanes > 1 else outs[0].ready_in
    all_ok, any_last, all_ready = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    real_count, sent_count = Signal(intbv(0)[lane_bits + 1:]), Signal(intbv(0)[lane_bits + 1:])
    reductions = [_reduce_and(oks, all_ok) if lanes > 1 else _connect(oks, all_ok),
                  _reduce_and(readies, all_ready) if lanes > 1 else _connect(readies, all_ready),
                  _reduce_or(lasts, any_last) if lanes > 1 else _connect(lasts, any_last),
                  _popcount(reals, real_count) if lanes > 1 else _connect(reals, real_count),
                  _popcount(sents, sent_count) if lanes > 1 else _connect(sents, sent_count)]
    lane0_valid = outs[0].greeks_valid
    walk_of_output = _connect(outs[0].walk, out_walk)
    scenario_bit = meta.lsb["scenario"]

    @always_comb
    def scenario_group():
        issue.take_group.next = lane0_valid and all_ok and issue.out_meta[scenario_bit]

    # The datapaths' enables follow the advance: separate blocks, no loop.
    shared_controls = [_connect(all_ok, issue.advance), _connect(all_ready, issue.ce),
                       scenario_group]

    # ---- scenario sums ---------------------------------------------------------------------------
    acc_bits = RESULT_BITS
    sums = {}
    sum_parts = []
    for name in RESULTS:
        # A combinational tree of adders over the lanes (blocks must be made here).
        level = [getattr(o, name) for o in outs]
        while len(level) > 1:
            pairs = []
            for i in range(0, len(level) - 1, 2):
                total = _signed(acc_bits)
                sum_parts.append(_add(level[i], level[i + 1], total))
                pairs.append(total)
            level = pairs + level[len(level) - len(level) % 2:]
        sums[name] = level[0]
    sum_value, sum_delta, sum_vega, sum_theta = (sums[name] for name in RESULTS)
    acc_value, acc_delta, acc_vega, acc_theta = (_signed(acc_bits) for _ in range(4))
    new_value, new_delta, new_vega, new_theta = (_signed(acc_bits) for _ in range(4))
    d_sum_value, d_sum_delta, d_sum_vega, d_sum_theta = (_signed(acc_bits) for _ in range(4))
    acc_options = Signal(intbv(0)[16:])
    acc_skipped = Signal(intbv(0)[9:])
    new_options = Signal(intbv(0)[16:])
    new_skipped = Signal(intbv(0)[9:])
    # Group facts, delayed to meet the lanes' products (3 stages) and their sum (1).
    info_valid = Signal(intbv(0)[4:])
    info_last = Signal(intbv(0)[4:])
    info_scn_last = Signal(intbv(0)[4:])
    info_skip = Signal(intbv(0)[4:])
    info_count = [Signal(intbv(0)[lane_bits + 1:]) for _ in range(4)]
    info_scenario = [Signal(intbv(0)[sb:]) for _ in range(4)]
    scn_last_bit, skip_bit = meta.lsb["scenario_last"], meta.lsb["skip"]
    scn_hi, scn_lo = meta.slice("scenario_index")
    out_meta = issue.out_meta
    take_group = issue.take_group
    results_we = Signal(bool(0))
    results_waddr = Signal(intbv(0)[sb:])
    result_layout = Layout((*((name, acc_bits) for name in RESULTS), ("options", 16),
                            ("skipped", 9)))
    results_in = result_layout.pack(value=new_value, delta_dollars=new_delta, vega=new_vega,
                                    theta=new_theta, options=new_options, skipped=new_skipped)
    results_word = Signal(intbv(0)[result_layout.bits:])
    results_out = Signal(intbv(0)[result_layout.bits:])
    result_sel = ports.result_sel
    results_raddr = Signal(intbv(0)[sb:])
    results = _bank(clk, results_we, results_waddr, results_word, results_raddr, results_out,
                    scenarios)
    flushed = Signal(bool(0))

    @always_seq(clk.posedge, reset=rst)
    def group_facts():
        info_valid.next = concat(info_valid[3:], take_group)
        info_last.next = concat(info_last[3:], any_last)
        info_scn_last.next = concat(info_scn_last[3:], out_meta[scn_last_bit])
        info_skip.next = concat(info_skip[3:], out_meta[skip_bit])
        info_count[0].next = real_count
        info_scenario[0].next = out_meta[scn_hi:scn_lo]
        for i in range(1, 4):
            info_count[i].next = info_count[i - 1]
            info_scenario[i].next = info_scenario[i - 1]
        d_sum_value.next = sum_value
        d_sum_delta.next = sum_delta
        d_sum_vega.next = sum_vega
        d_sum_theta.next = sum_theta

    @always_comb
    def accumulate_comb():
        new_value.next = acc_value + d_sum_value
        new_delta.next = acc_delta + d_sum_delta
        new_vega.next = acc_vega + d_sum_vega
        new_theta.next = acc_theta + d_sum_theta
        new_options.next = acc_options + info_count[3]
        if info_last[3] and info_skip[3]:
            new_skipped.next = acc_skipped + 1
        else:
            new_skipped.next = acc_skipped
        flushed.next = info_valid[3] and info_last[3] and info_scn_last[3]
        results_we.next = info_valid[3] and info_last[3] and info_scn_last[3]
        results_waddr.next = info_scenario[3]
        results_raddr.next = result_sel[sb:]

    result_copy = _connect(results_in, results_word)

    @always_seq(clk.posedge, reset=rst)
    def accumulate():
        if info_valid[3]:
            if info_last[3] and info_scn_last[3]:
                acc_value.next = 0
                acc_delta.next = 0
                acc_vega.next = 0
                acc_theta.next = 0
                acc_options.next = 0
                acc_skipped.next = 0
            else:
                acc_value.next = new_value
                acc_delta.next = new_delta
                acc_vega.next = new_vega
                acc_theta.next = new_theta
                acc_options.next = new_options
                acc_skipped.next = new_skipped

    # ---- scenario sequencer: one job (scenario, entry) per cycle into the second spot front ------
    scn_in = SpotPort(stag.bits)
    scenario_front = spot_front(clk, rst, scn_in, scn_terms)
    base_spot = [word() for _ in range(underlyings)]
    base_has = Signal(intbv(0)[underlyings:])
    running, emitting, first_pass = (Signal(bool(0)) for _ in range(3))
    job_scenario = Signal(intbv(0)[sb:])
    job_index = Signal(intbv(0)[ub:])
    run_count = Signal(intbv(0)[9:])
    done_count = Signal(intbv(0)[9:])
    lowest, highest, following = (Signal(intbv(0)[ub:]) for _ in range(3))
    bad_start = Signal(bool(0))
    scn_count = ports.scn_count
    seq_ce = scn_in.ready
    e1_valid, e1_has, e1_last = (Signal(bool(0)) for _ in range(3))
    e1_spot, e1_factor = word(), word()
    e1_index, e1_scenario = Signal(intbv(0)[ub:]), Signal(intbv(0)[sb:])
    e2_valid, e2_has, e2_last = (Signal(bool(0)) for _ in range(3))
    e2_spot = word()
    e2_index, e2_scenario = Signal(intbv(0)[ub:]), Signal(intbv(0)[sb:])
    shifted = mul_round_stage(clk, seq_ce, e1_spot, e1_factor, e2_spot, FACTOR_FRAC)
    one_money = 1 << fx.MONEY.frac_bits

    @always_comb
    def entries_with_rows():
        low = intbv(0)[ub:]
        high = intbv(0)[ub:]
        after = intbv(0)[ub:]
        for i in downrange(underlyings):
            if ul_has_rows[i]:
                low[:] = i
                if i > job_index:
                    after[:] = i
        for i in range(underlyings):
            if ul_has_rows[i]:
                high[:] = i
        lowest.next = low
        highest.next = high
        following.next = after

    @always_seq(clk.posedge, reset=rst)
    def scan_jobs():
        bad_start.next = 0
        if start_pulse:
            if running or scn_count == 0 or scn_count > scenarios or ul_has_rows == 0:
                bad_start.next = 1
            else:
                running.next = 1
                emitting.next = 1
                first_pass.next = 1
                job_scenario.next = 0
                job_index.next = lowest
                run_count.next = scn_count
                done_count.next = 0
        if seq_ce:
            e1_valid.next = emitting
            e2_valid.next = e1_valid
            e2_has.next = e1_has
            e2_last.next = e1_last
            e2_index.next = e1_index
            e2_scenario.next = e1_scenario
            if emitting:
                e1_index.next = job_index
                e1_scenario.next = job_scenario
                e1_last.next = job_index == highest
                e1_factor.next = scn_spot_rows[job_scenario]
                if first_pass:
                    e1_spot.next = last_spot[job_index]
                    e1_has.next = has_spot[job_index]
                    base_spot[job_index].next = last_spot[job_index]
                    base_has.next[job_index] = has_spot[job_index]
                else:
                    e1_spot.next = base_spot[job_index]
                    e1_has.next = base_has[job_index]
                if job_index == highest:
                    first_pass.next = 0
                    job_index.next = lowest
                    if job_scenario + 1 == run_count:
                        emitting.next = 0
                    else:
                        job_scenario.next = job_scenario + 1
                else:
                    job_index.next = following
        if flushed:
            done_count.next = done_count + 1
            if done_count + 1 == run_count:
                running.next = 0

    unusable = Signal(bool(0))

    @always_comb
    def judge_job():
        unusable.next = not (e2_has and e2_spot >= SPOT_MIN_RAW and e2_spot < SPOT_LIMIT_RAW)

    @always_comb
    def offer_job():
        scn_in.valid.next = e2_valid
        if unusable:
            scn_in.spot.next = one_money
        else:
            scn_in.spot.next = e2_spot
        scn_in.tag.next = concat(e2_last, unusable, e2_scenario, e2_index)

    # ---- counters, sticky bits, status, readback -------------------------------------------------
    inc = {name: Signal(intbv(0)[lane_bits + 1:]) for name in COUNTERS}
    counters = [_counter(clk, rst, inc[name], getattr(ports, f"count_{name}")) for name in COUNTERS]
    (i_updates, i_trades, i_malformed, i_untracked, i_one_sided, i_range, i_unchanged, i_accepted,
     i_coalesced, i_walks, i_options, i_scn_walks, i_scn_options, i_scn_skipped) = (
        inc[name] for name in COUNTERS)
    sticky_set = {name: getattr(ports, f"seen_{name}_set") for name in STICKY}
    (s_malformed, s_one_sided, s_range, s_coalesced, s_bad_config, s_scn_skipped) = (
        sticky_set[name] for name in STICKY)

    @always_comb
    def count():
        i_updates.next = r.done and r.update
        i_trades.next = r.done and r.trade
        i_malformed.next = r.done and r.malformed
        i_untracked.next = v_untracked
        i_one_sided.next = v_one_sided
        i_range.next = v_range
        i_unchanged.next = v_unchanged
        i_accepted.next = accept
        i_coalesced.next = coalesce
        i_walks.next = take_queue or take_direct
        i_options.next = sent_count
        i_scn_walks.next = take_scenario
        if info_valid[3]:
            i_scn_options.next = info_count[3]
        else:
            i_scn_options.next = 0
        i_scn_skipped.next = take_scenario and scn_skip_job
        s_malformed.next = r.done and r.malformed
        s_one_sided.next = v_one_sided
        s_range.next = v_range
        s_coalesced.next = coalesce
        s_bad_config.next = bad_row or bad_pos or bad_scn or bad_ul or bad_start
        s_scn_skipped.next = take_scenario and scn_skip_job

    info_index = ports.ul_index
    info_spot = word()

    @always_comb
    def status():
        ports.walking.next = walking
        ports.pending.next = queued
        ports.scn_running.next = running
        ports.scn_done.next = done_count
        ports.info_locate.next = ul_locate[info_index[ub:]]
        ports.info_enabled.next = ul_enabled[info_index[ub:]]
        ports.info_has_price.next = has_spot[info_index[ub:]]
        ports.info_pending.next = pending[info_index[ub:]]
        ports.info_first.next = ul_first[info_index[ub:]]
        ports.info_count.next = ul_count[info_index[ub:]]
        info_spot.next = last_spot[info_index[ub:]]

    @always_comb
    def spot_readback():
        ports.info_spot_lo.next = info_spot[32:]
        ports.info_spot_hi.next = info_spot[64:32]

    result_fields = []
    for name in RESULTS:
        for w in range(RESULT_BITS // 32):
            result_fields.append(_slice_of(results_out, result_layout.lsb[name] + 32 * w, 32,
                                           getattr(ports, f"result_{name}_{w}")))
    result_fields += [
        _slice_of(results_out, result_layout.lsb["options"], 16, ports.result_options),
        _slice_of(results_out, result_layout.lsb["skipped"], 9, ports.result_skipped)]

    return (registers, count_cycles, pulses, powered, staged_views, variance, row_holds, write_row,
            row_word, write_position, scn_views, write_scenario, record_input, lookup, reference,
            live_front, done_fields, entry_of_terms, queue_head, judge, hand_over, pending_table,
            walk_table, copies, queue_front, choose_take, take_sources, next_group, walk,
            queue_decision, keep_state, lane_blocks, reductions, walk_of_output, unpacks,
            shared_controls, sum_parts, group_facts, accumulate_comb, result_copy, accumulate,
            scenario_front, shifted, entries_with_rows, scan_jobs, judge_job, offer_job, counters,
            count, status, spot_readback, result_fields, results)


@block
def _slice_of(source, lsb: int, width: int, out):
    @always_comb
    def pick():
        out.next = source[lsb + width:lsb]

    return pick


@block
def _signed_slice_of(source, lsb: int, width: int, out):
    @always_comb
    def pick():
        out.next = source[lsb + width:lsb].signed()

    return pick

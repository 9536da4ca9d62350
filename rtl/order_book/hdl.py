"""Order book in MyHDL: ITCH events in, book-update and trade records out.

Behaviour is :mod:`rtl.order_book.model`; this is how the fabric gets it.

One event at a time runs through a small sequencer; each step is one cycle:

==============  ============================================================
step            what happens
==============  ============================================================
IDLE            take an event (``s_event_ready``) or a host command; as
                the event is taken its locate is looked up (all slots
                compared at once) and the order-table set of its
                reference and the ladders of that slot are read
DECODE          directory, trading-state and trade events end here; all
                ways of the set compared with the reference: book, update
                or clear the order's way; the slot's ladders into the
                working registers
LOAD            only for an order booked on another locate's slot than
                the event names: that slot's ladders, read in DECODE
APPLY           add to / reduce one level of one side (one cycle)
ORDER2, APPLY2  replace only: book the new reference, add its level
FINISH          top levels changed?  degraded state changed?  flags;
                write the ladders back and load the first record into the
                output register if it is free, or go and refill a side
REFILL          scan every set, re-adding the orders beyond a side's
                boundary (both sides in parallel): each cycle picks one
                order of each side, the next cycle adds it (REFILL_ADD
                adds the last picks), then FINISH again
TRADE_OUT,      load a record the output was not free for, or the update
UPDATE_OUT      that follows a trade (waits while the previous record is
                still going out)
==============  ============================================================

Storage: the order table is one memory of ``order_sets`` words, each holding
all ``order_ways`` entries of a set (block RAM, one read and one write
port); the ladders are two memories (bids, asks) of one word per slot
holding all ``levels`` levels plus the truncation state.  Ladder updates
happen in working registers: each level is a cell that, from the one
operation broadcast to all cells, keeps its value, takes its neighbour's
(insert shifts worse levels down, removal shifts them up), becomes the new
level or adds to / takes from its own shares -- so an insert or removal
anywhere in the array is one cycle.  A host command looks its locate up
(CMD_LOOKUP) before it acts (CMD); commands and the start-up clearing of the
order table walk all sets.

Feed events: when FINISH finds that the slot's degraded state changed it
pushes an ``EVENT_BOOK_DEGRADED`` (with the first reason the event caused)
or ``EVENT_BOOK_RESTORED`` record (:mod:`host.feed.records`) into a
:data:`~rtl.order_book.model.FEED_EVENT_QUEUE`-deep queue in front of
``m_feed_event`` (:mod:`rtl.feed_path.status`); events never wait for it.

Output: one 64-bit AXI-Stream; a record is loaded whole into a shift
register and leaves one beat per cycle, ``tdest`` 0 for book updates (18
beats), 1 for trades (7 beats).  From the cycle an add event is accepted to
the first valid beat of its record is :data:`LATENCY_CYCLES` with the output
free.  An order event takes :data:`EVENT_CYCLES` cycles, its record
included when the output is free (a trade's update follows the trade's
beats); an event of an untracked locate :data:`UNTRACKED_CYCLES`; a stream of events
that all change the top levels runs at one per 18 cycles, the length of a
record on the 64-bit output.  A refill stalls events for about
``order_sets`` cycles.
"""
from __future__ import annotations

from myhdl import (ConcatSignal, Signal, always, always_comb, always_seq, block,
                   enum, intbv)

from host.book.records import (BOOK_UPDATE_DTYPE, DEPTH, FLAG_CROSSED, FLAG_NO_DIRECTORY,
                               FLAG_NOT_TRADING, FLAG_STALE, SIDE_BUY, SIDE_SELL, TRADE_DTYPE)
from host.feed.records import (DEGRADE_REASONS, EVENT_BOOK_DEGRADED, EVENT_BOOK_RESTORED,
                               FEED_EVENT_DTYPE)
from rtl.common.axil import AxiLite
from rtl.common.axis import DATA_WIDTH, AxiStream
from rtl.common.events import (EV_ADD, EV_CANCEL, EV_DELETE, EV_DIRECTORY, EV_EXECUTE,
                               EV_EXECUTE_PRICE, EV_REPLACE, EV_TRADE, EV_TRADING_STATE,
                               EVENT_BITS, EventPort, field_slices)
from rtl.common.logic import (bits, counter, drive, first_set, lowest_set, offset_bits,
                              one_hot_index, pick_field, record_word, select)
from rtl.feed_path.status import FeedEventPort, feed_event_queue
from rtl.order_book.model import (CHAR_T, CHAR_Y, CMD_ASSIGN, CMD_CLEAR_DEGRADED, CMD_NONE,
                                  CMD_RELEASE, CMD_RESET_BOOK, COUNTERS, EVENT_KIND_NAMES,
                                  FEED_EVENT_QUEUE, FLAG_DEGRADED, TDEST_TRADE, TDEST_UPDATE,
                                  BookConfig)
from rtl.regmap.hdl import RegisterPorts, regfile
from rtl.regmap.map import ORDER_BOOK

DEST_WIDTH = 1
UPDATE_BEATS = BOOK_UPDATE_DTYPE.itemsize * 8 // DATA_WIDTH
TRADE_BEATS = TRADE_DTYPE.itemsize * 8 // DATA_WIDTH
# Accepted event -> first valid record beat, output free: DECODE, APPLY,
# FINISH (loads the record), output register.
LATENCY_CYCLES = 4
# Cycles from one accepted event to the next: an add, execute, cancel or
# delete, whether it emits a record or not while the output is free (IDLE,
# DECODE, APPLY, FINISH); two more for the new order of a replace, one more
# for an order booked on another locate's slot than the event names.
# Records wait for the 18 beats of the one before.
EVENT_CYCLES = 4
# An event of an untracked locate (IDLE, DECODE).
UNTRACKED_CYCLES = 2
# What a replace adds to both, for booking its new order (ORDER2, APPLY2).
REPLACE_EXTRA_CYCLES = 2

# Order-table way operations, written back to the set read before.
# WAY_REDUCE takes the event's shares from the picked way's order, clearing
# it when nothing is left: each way works out its own remainder, so the
# rewrite does not wait for the hit way's shares to be selected first.
WAY_KEEP, WAY_NEW, WAY_REDUCE, WAY_CLEAR, WAY_PURGE, WAY_ZERO = range(6)

C_EV_OTHER = COUNTERS.index("ev_other")
C_UNTRACKED = COUNTERS.index("untracked")
C_BOOK_UPDATES = COUNTERS.index("book_updates")
C_TRADES = COUNTERS.index("trades")
C_DUPLICATE = COUNTERS.index("duplicate_reference")
C_ZERO_SHARES = COUNTERS.index("zero_shares")
C_OVER_EXECUTION = COUNTERS.index("over_execution")
C_OVER_CANCEL = COUNTERS.index("over_cancel")
C_NO_FREE_SLOT = COUNTERS.index("no_free_slot")
C_BAD_COMMAND = COUNTERS.index("bad_command")
C_REFILLS = COUNTERS.index("refills")
C_TABLE_FULL = COUNTERS.index("degraded_order_table_full")
C_UNKNOWN_REF = COUNTERS.index("degraded_unknown_reference")
C_LEVEL_MISSING = COUNTERS.index("degraded_level_missing")
C_DEPTH = COUNTERS.index("degraded_depth")
C_FEED_EVENTS_LOST = COUNTERS.index("feed_events_lost")
# Degrade reason codes of the feed event record.
WHY_TABLE_FULL, WHY_UNKNOWN_REF, WHY_LEVEL_MISSING, WHY_DEPTH = (
    1 + DEGRADE_REASONS.index(name) for name in
    ("order_table_full", "unknown_reference", "level_missing", "depth"))
LAST_KIND = max(EVENT_KIND_NAMES)
assert all(COUNTERS[kind - 1] == f"ev_{name}" for kind, name in EVENT_KIND_NAMES.items())


class Layout:
    """Bit positions of an order-table entry, a level and a ladder word."""

    def __init__(self, config: BookConfig):
        self.config = config
        self.slot_bits = max(1, (config.slots - 1).bit_length())
        self.set_bits = config.set_bits
        self.count_bits = config.count_bits
        self.shares_bits = config.shares_bits
        # Entry: valid, ref, slot, side, price, shares (shares on top so an
        # update rewrites the top 32 bits).
        self.e_ref = 1
        self.e_slot = 65
        self.e_side = 65 + self.slot_bits
        self.e_price = self.e_side + 1
        self.e_shares = self.e_price + 32
        self.entry_bits = self.e_shares + 32
        # Level: price, shares, orders.
        self.level_bits = 32 + self.shares_bits + self.count_bits
        # Ladder word: levels, boundary, beyond, truncated.
        self.l_boundary = config.levels * self.level_bits
        self.l_beyond = self.l_boundary + 32
        self.l_truncated = self.l_beyond + self.count_bits
        self.ladder_bits = self.l_truncated + 1


# ---- the slot table ----------------------------------------------------------------
@block
def _slot_cell(clk, rst, index, slot_we, slot_widx, slot_wlocate, slot_wvalid, slots_clear,
               cam_key, locate, valid, match):
    @always_seq(clk.posedge, reset=rst)
    def write():
        if slots_clear:
            locate.next = 0
            valid.next = 0
        elif slot_we and slot_widx == index:
            locate.next = slot_wlocate
            valid.next = slot_wvalid

    @always_comb
    def compare():
        match.next = valid and locate == cam_key

    return write, compare


# ---- the order table's ways ------------------------------------------------------
@block
def _way_cell(layout: Layout, way_word, lookup_ref, event_slot, purge_all, purge_slot,
              refill_slot, refill_bid, refill_ask, bid_bound, ask_bound, done_bid, done_ask,
              way_op, picked, new_entry, cut_shares, used, hit, same_slot, purge,
              refill_bid_match, refill_ask_match, cut_all, cut_over, way_new):
    lay = layout
    valid = way_word(0)
    ref = way_word(lay.e_slot, lay.e_ref)
    slot = way_word(lay.e_side, lay.e_slot)
    side = way_word(lay.e_side)
    price = way_word(lay.e_shares, lay.e_price)
    shares = way_word(lay.entry_bits, lay.e_shares)
    low = way_word(lay.e_shares, 0)
    left = Signal(intbv(0)[32:])

    @always_comb
    def compare():
        used.next = valid
        hit.next = valid and ref == lookup_ref
        same_slot.next = slot == event_slot
        purge.next = valid and (purge_all or slot == purge_slot)
        # At or beyond the boundary: bids at or below it, asks at or above.
        refill_bid_match.next = refill_bid and valid and slot == refill_slot and not side and \
            price <= bid_bound and not done_bid
        refill_ask_match.next = refill_ask and valid and slot == refill_slot and side and \
            price >= ask_bound and not done_ask
        # The event takes all of this order's shares, or more than it has.
        cut_all.next = cut_shares >= shares
        cut_over.next = cut_shares > shares
        left.next = (shares - cut_shares) & 0xFFFF_FFFF

    @always_comb
    def rewrite():
        if way_op == WAY_NEW and picked:
            way_new.next = new_entry
        elif way_op == WAY_REDUCE and picked and not cut_all:
            way_new.next = (left << lay.e_shares) | low
        elif (way_op == WAY_REDUCE and picked) or (way_op == WAY_CLEAR and picked) or \
                (way_op == WAY_PURGE and purge) or way_op == WAY_ZERO:
            way_new.next = 0
        else:
            way_new.next = way_word

    return compare, rewrite


# ---- a ladder: one cell per level ------------------------------------------------
@block
def _level_cell(clk, rst, is_bid, rd_price, rd_shares, rd_orders, prev_price, prev_shares,
                prev_orders, next_price, next_shares, next_orders, prev_better, load,
                do_insert, do_remove, do_modify, op_add, op_price, op_amount, op_gone,
                price, shares, orders, better, equal, single, differs, shares_sat):
    first = Signal(bool(0))
    if is_bid:
        @always_comb
        def ranks():
            better.next = orders != 0 and price > op_price
            equal.next = orders != 0 and price == op_price
    else:
        @always_comb
        def ranks():
            better.next = orders != 0 and price < op_price
            equal.next = orders != 0 and price == op_price

    @always_comb
    def flags():
        first.next = not better and prev_better
        single.next = equal and orders == 1

    outputs = [ranks, flags]
    if shares_sat is not None:
        # Only the top DEPTH levels go into records.
        @always_comb
        def top_level():
            differs.next = price != rd_price or shares != rd_shares or orders != rd_orders
            if (shares >> 32) != 0:
                shares_sat.next = 0xFFFF_FFFF
            else:
                shares_sat.next = shares[32:]

        outputs.append(top_level)
    @always_seq(clk.posedge, reset=rst)
    def level():
        if load:
            price.next = rd_price
            shares.next = rd_shares
            orders.next = rd_orders
        elif do_insert and not better:
            if first:
                price.next = op_price
                shares.next = op_amount
                orders.next = 1
            else:
                price.next = prev_price
                shares.next = prev_shares
                orders.next = prev_orders
        elif do_remove and not better:
            price.next = next_price
            shares.next = next_shares
            orders.next = next_orders
        elif do_modify and equal:
            if op_add:
                shares.next = shares + op_amount
                orders.next = orders + 1
            else:
                shares.next = shares - op_amount
                if op_gone:
                    orders.next = orders - 1

    outputs.append(level)
    return outputs


@block
def _ladder_side(clk, rst, layout: Layout, is_bid, rd_word, load, refill_reset, apply, op_add,
                 op_price, op_amount, op_gone, prices, shares, orders, shares_sat, truncated,
                 boundary, beyond, missing, depth_degraded, top_changed):
    """One side's working registers and their update (see _level_cell)."""
    lay = layout
    levels = lay.config.levels
    cb, sb = lay.count_bits, lay.shares_bits
    better = [Signal(bool(0)) for _ in range(levels)]
    equal = [Signal(bool(0)) for _ in range(levels)]
    single = [Signal(bool(0)) for _ in range(levels)]
    differs = [Signal(bool(0)) for _ in range(DEPTH)]
    equal_vec = ConcatSignal(*reversed(equal))
    single_vec = ConcatSignal(*reversed(single))
    top_differs = ConcatSignal(*reversed(differs))
    do_insert, do_remove, do_modify = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    beyond_op = Signal(bool(0))
    hit = Signal(bool(0))
    const_true = Signal(bool(1))
    const_zero_price = Signal(intbv(0)[32:])
    const_zero_shares = Signal(intbv(0)[sb:])
    const_zero_orders = Signal(intbv(0)[cb:])
    last_price, last_orders = prices[levels - 1], orders[levels - 1]
    worst_better = better[levels - 1]   # a full array, every level better than the op
    depth_orders = orders[DEPTH - 1]
    rd_boundary = rd_word(lay.l_beyond, lay.l_boundary)
    rd_beyond = rd_word(lay.l_truncated, lay.l_beyond)
    rd_truncated = rd_word(lay.l_truncated)

    cells = []
    for i in range(levels):
        base = i * lay.level_bits
        prev = i - 1 if i else 0
        cells.append(_level_cell(
            clk, rst, is_bid,
            rd_word(base + 32, base), rd_word(base + 32 + sb, base + 32),
            rd_word(base + lay.level_bits, base + 32 + sb),
            prices[prev], shares[prev], orders[prev],
            prices[i + 1] if i + 1 < levels else const_zero_price,
            shares[i + 1] if i + 1 < levels else const_zero_shares,
            orders[i + 1] if i + 1 < levels else const_zero_orders,
            better[i - 1] if i else const_true,
            load, do_insert, do_remove, do_modify, op_add, op_price, op_amount, op_gone,
            prices[i], shares[i], orders[i], better[i], equal[i], single[i],
            differs[i] if i < DEPTH else None, shares_sat[i] if i < DEPTH else None))

    if is_bid:
        @always_comb
        def beyond_test():
            beyond_op.next = truncated and not op_price > boundary
    else:
        @always_comb
        def beyond_test():
            beyond_op.next = truncated and not op_price < boundary

    @always_comb
    def control():
        hit.next = equal_vec != 0
        do_insert.next = apply and op_add and not beyond_op and equal_vec == 0 and \
            not worst_better
        do_remove.next = apply and not op_add and not beyond_op and op_gone and single_vec != 0
        do_modify.next = apply and not beyond_op and equal_vec != 0 and \
            (op_add or not op_gone or single_vec == 0)
        missing.next = apply and not op_add and not beyond_op and equal_vec == 0
        depth_degraded.next = truncated and depth_orders == 0
        top_changed.next = top_differs != 0

    @always_seq(clk.posedge, reset=rst)
    def truncation():
        if load:
            truncated.next = rd_truncated
            boundary.next = rd_boundary
            beyond.next = rd_beyond
        elif refill_reset:
            truncated.next = 0
            boundary.next = 0
            beyond.next = 0
        elif apply:
            if op_add:
                if beyond_op:
                    beyond.next = beyond + 1
                elif not hit and worst_better:
                    # Worse than every level of a full array: not tracked.
                    truncated.next = 1
                    boundary.next = op_price
                    beyond.next = beyond + 1
                elif not hit and last_orders != 0:
                    # The worst level is pushed out by the insert.
                    truncated.next = 1
                    boundary.next = last_price
                    beyond.next = beyond + last_orders
            elif beyond_op and op_gone:
                beyond.next = beyond - 1
                if beyond == 1:
                    truncated.next = 0
                    boundary.next = 0

    return cells, beyond_test, control, truncation


# ---- the block ---------------------------------------------------------------------
@block
def order_book(clk, rst, s_event: EventPort, m_axis: AxiStream, m_feed_event: FeedEventPort,
               s_axil: AxiLite, config: BookConfig = BookConfig()):
    """The block's top level: events in on ``s_event``, records out on
    ``m_axis``, degraded/restored records on ``m_feed_event``, registers on
    ``s_axil``."""
    if config.slots < 2:
        raise ValueError("the fabric book needs at least two slots")
    lay = Layout(config)
    n_slots, n_levels, n_ways, n_sets = config.slots, config.levels, config.order_ways, \
        config.order_sets
    slb, setb, cb, eb = lay.slot_bits, lay.set_bits, lay.count_bits, lay.entry_bits
    last_set = n_sets - 1
    n_counters = len(COUNTERS)

    ports = RegisterPorts(ORDER_BOOK)
    registers = regfile(clk, rst, s_axil, ports, ORDER_BOOK,
                        {"slots": n_slots, "levels": n_levels, "order_ways": n_ways,
                         "order_sets": n_sets})

    # ---- sequencer state and the event being worked on -------------------
    t_state = enum("INIT", "IDLE", "CMD_LOOKUP", "CMD", "SWEEP_READ", "SWEEP_WRITE", "DECODE",
                   "LOAD", "APPLY", "ORDER2", "APPLY2", "FINISH", "REFILL_START", "REFILL_SCAN",
                   "REFILL_ADD", "TRADE_OUT", "UPDATE_OUT")
    state = Signal(t_state.INIT)
    fields = field_slices()

    # The event word's fields (shadow slices of a port convert as constants).
    in_word = bits(EVENT_BITS)

    @always_comb
    def event_in():
        in_word.next = s_event.data

    def ev(name):
        lsb, width = fields[name]
        return in_word(lsb) if width == 1 else in_word(lsb + width, lsb)

    in_kind, in_side, in_locate, in_price, in_shares = (ev(n) for n in (
        "kind", "side", "stock_locate", "price", "shares"))
    in_ref, in_new_ref, in_match, in_ts, in_seq, in_index, in_aux, in_stale = (ev(n) for n in (
        "order_ref", "new_order_ref", "match_number", "timestamp", "seq", "msg_index", "aux",
        "stale"))
    e_kind = bits(4)
    e_side = bits(1)
    e_locate = bits(16)
    e_price = bits(32)
    e_shares = bits(32)
    e_ref = bits(64)
    e_new_ref = bits(64)
    e_match = bits(64)
    e_ts = bits(48)
    e_seq = bits(64)
    e_index = bits(16)
    e_aux = bits(64)
    e_stale = bits(1)
    e_aux_low = e_aux(8, 0)

    t_slot = bits(slb)       # the slot whose book the event changes
    op_valid, op_add, op_side, op_gone = bits(1), bits(1), bits(1), bits(1)
    op_price = bits(32)
    op_amount = bits(32)
    second = bits(1)         # a replace still has its new order to book
    lost_set = bits(1)       # the event makes the slot lost ...
    lost_why = bits(3)       # ... first for this reason (WHY_*)
    trade_pending = bits(1)
    emit = bits(1)
    refilled = bits(1)
    tr_kind = bits(8)
    tr_side = bits(8)
    tr_price = bits(32)
    rec_flags = bits(8)
    record_flags = bits(8)
    finish_flags = bits(8)
    finish_emit = bits(1)
    scan_set = bits(setb)
    purge_all = bits(1)
    purge_slot = bits(slb)
    refill_bid, refill_ask = bits(1), bits(1)
    bid_bound, ask_bound = bits(32), bits(32)
    done_bid, done_ask = bits(n_ways), bits(n_ways)
    seen_toggle = bits(1)
    occupancy = bits(cb)
    occupancy_high = bits(cb)
    pulses = bits(n_counters)

    # ---- registers in and out --------------------------------------------
    cmd_locate, cmd_slot, cmd_op, cmd_toggle = (ports.cmd_locate, ports.cmd_slot, ports.cmd_op,
                                                ports.cmd_toggle)
    auto_assign, refill_enable, stale = ports.auto_assign, ports.refill, ports.stale
    cmd_pending = bits(1)
    cmd_slot_ok = bits(1)
    cmd_idx = bits(slb)

    order_kind = bits(1)     # the event finds its order by reference

    @always_comb
    def command_decode():
        order_kind.next = e_kind == EV_EXECUTE or e_kind == EV_EXECUTE_PRICE or \
            e_kind == EV_CANCEL or e_kind == EV_DELETE or e_kind == EV_REPLACE
        cmd_pending.next = cmd_toggle != seen_toggle
        cmd_slot_ok.next = cmd_slot < n_slots
        cmd_idx.next = cmd_slot[slb:]

    # ---- slot table: per-slot locate, CAM, per-slot flags -----------------
    slot_we, slot_wvalid, slots_clear = bits(1), bits(1), bits(1)
    slot_widx = bits(slb)
    slot_wlocate = bits(16)
    cam_key = bits(16)
    locates = [bits(16) for _ in range(n_slots)]
    valids = [bits(1) for _ in range(n_slots)]
    matches = [bits(1) for _ in range(n_slots)]
    slot_cells = [_slot_cell(clk, rst, i, slot_we, slot_widx, slot_wlocate, slot_wvalid,
                             slots_clear, cam_key, locates[i], valids[i], matches[i])
                  for i in range(n_slots)]
    locate_vec = ConcatSignal(*reversed(locates))
    valid_vec = ConcatSignal(*reversed(valids))
    match_vec = ConcatSignal(*reversed(matches))
    free_vec = bits(n_slots)
    cam_now_hit, free_now_any = bits(1), bits(1)
    cam_now_idx, free_now_idx = bits(slb), bits(slb)
    # Valid slots hold distinct locates (an assign or directory that finds
    # its locate on another slot is refused), so at most one matches.
    cam = one_hot_index(match_vec, n_slots, cam_now_hit, cam_now_idx)
    free = first_set(free_vec, n_slots, free_now_any, free_now_idx)
    # The lookups as of the cycle before: IDLE looks up the event's locate
    # for DECODE, CMD_LOOKUP the command's for CMD, and slots only change in
    # CMD and DECODE, so neither waits for a CAM in its own cycle.
    cam_hit, free_any = bits(1), bits(1)
    cam_idx, free_idx = bits(slb), bits(slb)

    @always_seq(clk.posedge, reset=rst)
    def lookups():
        cam_hit.next = cam_now_hit
        cam_idx.next = cam_now_idx
        free_any.next = free_now_any
        free_idx.next = free_now_idx

    dir_seen, not_trading, lost, depth = (bits(n_slots) for _ in range(4))
    degraded_vec = bits(n_slots)
    t_locate = bits(16)
    info_locate = bits(16)
    t_locate_mux = select(locate_vec, t_slot, 16, 0, t_locate)
    info_locate_mux = select(locate_vec, cmd_idx, 16, 0, info_locate)

    symbols = [bits(64) for _ in range(n_slots)]
    sym_we = bits(1)
    sym_waddr = bits(slb)
    sym_wdata = bits(64)
    sym_rd = bits(64)

    @always(clk.posedge)
    def symbol_memory():
        if sym_we:
            symbols[sym_waddr].next = sym_wdata
        if cmd_slot_ok:
            sym_rd.next = symbols[cmd_idx]

    slots_used = bits(9)
    cmd_slot_valid = bits(1)

    @always_comb
    def slot_vectors():
        free_vec.next = ~valid_vec
        degraded_vec.next = lost | depth
        cmd_slot_valid.next = valid_vec[cmd_idx]

    @always_seq(clk.posedge, reset=rst)
    def slot_count():
        # Kept in step with the slot cells' valid bits rather than counted
        # over them: a 64-input popcount is a long adder chain.  An event
        # only ever assigns a free slot; a command may rewrite a used one.
        if slots_clear:
            slots_used.next = 0
        elif slot_we:
            if state == t_state.DECODE:
                slots_used.next = slots_used + 1
            elif slot_wvalid and not cmd_slot_valid:
                slots_used.next = slots_used + 1
            elif not slot_wvalid and cmd_slot_valid:
                slots_used.next = slots_used - 1

    # ---- order table -------------------------------------------------------
    order_table = [bits(n_ways * eb) for _ in range(n_sets)]
    tbl_rd = bits(n_ways * eb)
    tbl_re, tbl_we = bits(1), bits(1)
    tbl_raddr, tbl_waddr = bits(setb), bits(setb)
    way_op = bits(3)
    way_pick = bits(n_ways)  # one-hot: the way a NEW, REDUCE or CLEAR rewrites
    # The reference DECODE (the event's) or ORDER2 (a replace's new one)
    # looks for, registered the cycle before so that the ways compare it
    # straight from a flip-flop; a new order is booked under it.
    lookup_ref = bits(64)
    new_slot = bits(slb)
    new_side = bits(1)
    new_entry = ConcatSignal(e_shares, e_price, new_side, new_slot, lookup_ref, intbv(1)[1:])
    fold_ref, fold_new, fold_in = bits(setb), bits(setb), bits(setb)
    used_w = [bits(1) for _ in range(n_ways)]
    hit_w = [bits(1) for _ in range(n_ways)]
    same_w = [bits(1) for _ in range(n_ways)]
    purge_w = [bits(1) for _ in range(n_ways)]
    rfb_w = [bits(1) for _ in range(n_ways)]
    rfa_w = [bits(1) for _ in range(n_ways)]
    all_w = [bits(1) for _ in range(n_ways)]
    over_w = [bits(1) for _ in range(n_ways)]
    new_w = [bits(eb) for _ in range(n_ways)]
    way_cells = [_way_cell(lay, tbl_rd(eb * (w + 1), eb * w), lookup_ref, cam_idx, purge_all,
                           purge_slot, t_slot, refill_bid, refill_ask, bid_bound, ask_bound,
                           done_bid(w), done_ask(w), way_op, way_pick(w), new_entry, e_shares,
                           used_w[w], hit_w[w], same_w[w], purge_w[w], rfb_w[w], rfa_w[w],
                           all_w[w], over_w[w], new_w[w])
                 for w in range(n_ways)]
    tbl_wdata = ConcatSignal(*reversed(new_w))
    hit_vec = ConcatSignal(*reversed(hit_w))
    free_way_vec = bits(n_ways)
    purge_vec = ConcatSignal(*reversed(purge_w))
    rfb_vec = ConcatSignal(*reversed(rfb_w))
    rfa_vec = ConcatSignal(*reversed(rfa_w))
    used_vec = ConcatSignal(*reversed(used_w))
    all_vec = ConcatSignal(*reversed(all_w))
    same_vec = ConcatSignal(*reversed(same_w))
    over_vec = ConcatSignal(*reversed(over_w))
    any_hit, any_free, rfb_any, rfa_any = bits(1), bits(1), bits(1), bits(1)
    hit_all, hit_over = bits(1), bits(1)
    hit_same = bits(1)       # the order is booked on the event's own slot
    # One-hot: the way of each kind, the lowest one where several qualify.
    # A reference is in its set at most once (an add or replace that finds
    # it already there is refused), so the hit vector is one-hot as it is.
    hit_way = hit_vec
    free_way, rfb_way, rfa_way = (bits(n_ways) for _ in range(3))
    way_encoders = [lowest_set(free_way_vec, n_ways, any_free, free_way),
                    lowest_set(rfb_vec, n_ways, rfb_any, rfb_way),
                    lowest_set(rfa_vec, n_ways, rfa_any, rfa_way)]
    # What is needed of the selected ways: from the slot up for a hit,
    # price and shares for a refill.
    hit_entry = bits(eb - lay.e_slot)
    rfb_entry, rfa_entry = bits(64), bits(64)
    entry_muxes = [pick_field(tbl_rd, hit_way, n_ways, eb, lay.e_slot, hit_entry),
                   pick_field(tbl_rd, rfb_way, n_ways, eb, lay.e_price, rfb_entry),
                   pick_field(tbl_rd, rfa_way, n_ways, eb, lay.e_price, rfa_entry)]
    hit_slot = hit_entry(lay.e_side - lay.e_slot, 0)
    hit_side = hit_entry(lay.e_side - lay.e_slot)
    hit_price = hit_entry(lay.e_shares - lay.e_slot, lay.e_price - lay.e_slot)
    hit_shares = hit_entry(eb - lay.e_slot, lay.e_shares - lay.e_slot)
    rfb_price, rfb_shares = rfb_entry(32, 0), rfb_entry(64, 32)
    rfa_price, rfa_shares = rfa_entry(32, 0), rfa_entry(64, 32)
    purge_count = bits(max(1, n_ways.bit_length()))
    rf_more = bits(1)        # matches left in this set after this cycle's picks
    n_chunks = (64 + setb - 1) // setb
    set_mask = (1 << setb) - 1
    count_width = len(purge_count)

    @always_comb
    def set_index():
        a = intbv(0)[setb:]
        b = intbv(0)[setb:]
        i = intbv(0)[setb:]
        for c in range(n_chunks):
            a[:] = a ^ ((e_ref >> (c * setb)) & set_mask)
            b[:] = b ^ ((e_new_ref >> (c * setb)) & set_mask)
            i[:] = i ^ ((in_ref >> (c * setb)) & set_mask)
        fold_ref.next = a
        fold_new.next = b
        fold_in.next = i

    @always_comb
    def ways_summary():
        free_way_vec.next = ~used_vec
        count = intbv(0)[count_width:]
        for w in range(n_ways):
            if purge_vec[w]:
                count[:] = count + 1
        purge_count.next = count
        any_hit.next = hit_vec != 0
        hit_all.next = (hit_vec & all_vec) != 0
        hit_over.next = (hit_vec & over_vec) != 0
        hit_same.next = (hit_vec & same_vec) != 0
        rf_more.next = (rfb_vec & ~rfb_way) != 0 or (rfa_vec & ~rfa_way) != 0

    @always(clk.posedge)
    def table_memory():
        if tbl_we:
            order_table[tbl_waddr].next = tbl_wdata
        if tbl_re:
            tbl_rd.next = order_table[tbl_raddr]

    # ---- ladders -------------------------------------------------------------
    bid_mem = [bits(lay.ladder_bits) for _ in range(n_slots)]
    ask_mem = [bits(lay.ladder_bits) for _ in range(n_slots)]
    bid_rd, ask_rd = bits(lay.ladder_bits), bits(lay.ladder_bits)
    lad_re, lad_we, lad_zero = bits(1), bits(1), bits(1)
    lad_raddr, lad_waddr = bits(slb), bits(slb)
    load_work = bits(1)

    def side_signals():
        return dict(
            prices=[bits(32) for _ in range(n_levels)],
            shares=[bits(lay.shares_bits) for _ in range(n_levels)],
            orders=[bits(cb) for _ in range(n_levels)],
            shares_sat=[bits(32) for _ in range(DEPTH)],
            truncated=bits(1), boundary=bits(32), beyond=bits(cb), missing=bits(1),
            depth_degraded=bits(1), top_changed=bits(1), refill_reset=bits(1), apply=bits(1),
            op_add=bits(1), op_price=bits(32), op_amount=bits(32), op_gone=bits(1))

    bid, ask = side_signals(), side_signals()
    sides = []
    for is_bid, s, rd in ((True, bid, bid_rd), (False, ask, ask_rd)):
        sides.append(_ladder_side(
            clk, rst, lay, is_bid, rd, load_work, s["refill_reset"], s["apply"], s["op_add"],
            s["op_price"], s["op_amount"], s["op_gone"], s["prices"], s["shares"], s["orders"],
            s["shares_sat"], s["truncated"], s["boundary"], s["beyond"], s["missing"],
            s["depth_degraded"], s["top_changed"]))

    def ladder_word(s):
        parts = []
        for i in reversed(range(n_levels)):
            parts += [s["orders"][i], s["shares"][i], s["prices"][i]]
        return ConcatSignal(s["truncated"], s["beyond"], s["boundary"], *parts)

    bid_word, ask_word = ladder_word(bid), ladder_word(ask)

    @always(clk.posedge)
    def ladder_memory():
        if lad_we:
            if lad_zero:
                bid_mem[lad_waddr].next = 0
                ask_mem[lad_waddr].next = 0
            else:
                bid_mem[lad_waddr].next = bid_word
                ask_mem[lad_waddr].next = ask_word
        if lad_re:
            bid_rd.next = bid_mem[lad_raddr]
            ask_rd.next = ask_mem[lad_raddr]

    b_apply, b_add, b_gone, b_price, b_amount = (bid["apply"], bid["op_add"], bid["op_gone"],
                                                  bid["op_price"], bid["op_amount"])
    a_apply, a_add, a_gone, a_price, a_amount = (ask["apply"], ask["op_add"], ask["op_gone"],
                                                  ask["op_price"], ask["op_amount"])
    b_reset, a_reset = bid["refill_reset"], ask["refill_reset"]
    b_missing, a_missing = bid["missing"], ask["missing"]
    b_depth, a_depth = bid["depth_degraded"], ask["depth_degraded"]
    b_changed, a_changed = bid["top_changed"], ask["top_changed"]
    b_boundary, a_boundary = bid["boundary"], ask["boundary"]
    b_best_orders, a_best_orders = bid["orders"][0], ask["orders"][0]
    b_best_price, a_best_price = bid["prices"][0], ask["prices"][0]

    # ---- records ---------------------------------------------------------------
    update_parts = [
        (*offset_bits(BOOK_UPDATE_DTYPE, "stock_locate"), t_locate),
        (*offset_bits(BOOK_UPDATE_DTYPE, "flags"), record_flags),
        (*offset_bits(BOOK_UPDATE_DTYPE, "msg_index"), e_index),
        (*offset_bits(BOOK_UPDATE_DTYPE, "seq"), e_seq),
        (*offset_bits(BOOK_UPDATE_DTYPE, "timestamp"), e_ts),
    ]
    for prefix, s in (("bid", bid), ("ask", ask)):
        for i in range(DEPTH):
            update_parts += [
                (*offset_bits(BOOK_UPDATE_DTYPE, f"{prefix}_price", i), s["prices"][i]),
                (*offset_bits(BOOK_UPDATE_DTYPE, f"{prefix}_shares", i), s["shares_sat"][i]),
                (*offset_bits(BOOK_UPDATE_DTYPE, f"{prefix}_orders", i), s["orders"][i]),
            ]
    update_word = record_word(update_parts, 8 * BOOK_UPDATE_DTYPE.itemsize)
    trade_word = record_word([
        (*offset_bits(TRADE_DTYPE, "stock_locate"), t_locate),
        (*offset_bits(TRADE_DTYPE, "kind"), tr_kind),
        (*offset_bits(TRADE_DTYPE, "side"), tr_side),
        (*offset_bits(TRADE_DTYPE, "msg_index"), e_index),
        (*offset_bits(TRADE_DTYPE, "seq"), e_seq),
        (*offset_bits(TRADE_DTYPE, "timestamp"), e_ts),
        (*offset_bits(TRADE_DTYPE, "order_reference_number"), e_ref),
        (*offset_bits(TRADE_DTYPE, "match_number"), e_match),
        (*offset_bits(TRADE_DTYPE, "shares"), e_shares),
        (*offset_bits(TRADE_DTYPE, "price"), tr_price),
    ], 8 * TRADE_DTYPE.itemsize)

    out_data = bits(8 * BOOK_UPDATE_DTYPE.itemsize)
    out_left = bits(max(UPDATE_BEATS, TRADE_BEATS).bit_length())
    out_dest = bits(DEST_WIDTH)
    out_free = bits(1)
    out_load_update, out_load_trade = bits(1), bits(1)

    @always_comb
    def output_port():
        m_axis.tvalid.next = out_left != 0
        m_axis.tdata.next = out_data[DATA_WIDTH:]
        m_axis.tlast.next = out_left == 1
        m_axis.tkeep.next = 0xFF
        m_axis.tuser.next = 0
        m_axis.tdest.next = out_dest
        out_free.next = out_left == 0 or (out_left == 1 and m_axis.tready)

    @always_seq(clk.posedge, reset=rst)
    def output_shift():
        if out_load_update:
            out_data.next = update_word
            out_left.next = UPDATE_BEATS
            out_dest.next = TDEST_UPDATE
        elif out_load_trade:
            out_data.next = trade_word
            out_left.next = TRADE_BEATS
            out_dest.next = TDEST_TRADE
        elif out_left != 0 and m_axis.tready:
            out_data.next = out_data >> DATA_WIDTH
            out_left.next = out_left - 1

    # ---- the sequencer: what each step drives ---------------------------------
    refill_go = bits(1)

    @always_comb
    def refill_decision():
        refill_go.next = refill_enable and (b_depth or a_depth) and not refilled

    # ---- FINISH: what the event did to the slot ----------------------------------
    fe_push, fe_lost = bits(1), bits(1)
    fe_reason = bits(8)
    fe_kind = bits(8)

    @always_comb
    def finish_state():
        was = lost[t_slot] or depth[t_slot]
        now = lost[t_slot] or lost_set or b_depth or a_depth
        finish_emit.next = b_changed or a_changed or was != now
        flags = intbv(0)[8:]
        if now:
            flags[:] = flags | FLAG_DEGRADED
        if not_trading[t_slot]:
            flags[:] = flags | FLAG_NOT_TRADING
        if stale or e_stale:
            flags[:] = flags | FLAG_STALE
        if b_best_orders != 0 and a_best_orders != 0 and b_best_price >= a_best_price:
            flags[:] = flags | FLAG_CROSSED
        if not dir_seen[t_slot]:
            flags[:] = flags | FLAG_NO_DIRECTORY
        finish_flags.next = flags
        # An update loaded in FINISH carries these flags, a later one the
        # registered copy.
        if state == t_state.FINISH:
            record_flags.next = flags
        else:
            record_flags.next = rec_flags
        # Feed events: the slot's degraded state changing.
        fe_push.next = state == t_state.FINISH and not refill_go and was != now
        if not now:
            fe_kind.next = EVENT_BOOK_RESTORED
            fe_reason.next = 0
        elif lost_set:
            fe_kind.next = EVENT_BOOK_DEGRADED
            fe_reason.next = lost_why
        else:
            fe_kind.next = EVENT_BOOK_DEGRADED
            fe_reason.next = WHY_DEPTH

    fe_record = record_word([
        (*offset_bits(FEED_EVENT_DTYPE, "kind"), fe_kind),
        (*offset_bits(FEED_EVENT_DTYPE, "reason"), fe_reason),
        (*offset_bits(FEED_EVENT_DTYPE, "stock_locate"), t_locate),
        (*offset_bits(FEED_EVENT_DTYPE, "msg_index"), e_index),
        (*offset_bits(FEED_EVENT_DTYPE, "seq"), e_seq),
    ], 8 * FEED_EVENT_DTYPE.itemsize)
    fe_queue = feed_event_queue(clk, rst, fe_push, fe_record, m_feed_event, fe_lost,
                                FEED_EVENT_QUEUE)

    # The orders REFILL_SCAN picks, added to the ladders the cycle after:
    # picking (the set's ways against the boundary) and adding (the
    # ladder's levels against the price) would be one long path.
    rf_bid_add, rf_ask_add = bits(1), bits(1)
    rf_bid_price, rf_ask_price = bits(32), bits(32)
    rf_bid_shares, rf_ask_shares = bits(32), bits(32)

    @always_seq(clk.posedge, reset=rst)
    def refill_picks():
        rf_bid_add.next = state == t_state.REFILL_SCAN and rfb_any
        rf_ask_add.next = state == t_state.REFILL_SCAN and rfa_any
        rf_bid_price.next = rfb_price
        rf_ask_price.next = rfa_price
        rf_bid_shares.next = rfb_shares
        rf_ask_shares.next = rfa_shares

    @always_comb
    def ladder_ops():
        # APPLY, APPLY2: the event's operation on its side; REFILL: the
        # orders picked the cycle before, on both sides.
        b_reset.next = state == t_state.REFILL_START and refill_bid
        a_reset.next = state == t_state.REFILL_START and refill_ask
        if state == t_state.REFILL_SCAN or state == t_state.REFILL_ADD:
            b_apply.next = rf_bid_add
            a_apply.next = rf_ask_add
            b_add.next = 1
            a_add.next = 1
            b_gone.next = 0
            a_gone.next = 0
            b_price.next = rf_bid_price
            a_price.next = rf_ask_price
            b_amount.next = rf_bid_shares
            a_amount.next = rf_ask_shares
        else:
            b_apply.next = (state == t_state.APPLY or state == t_state.APPLY2) and not op_side
            a_apply.next = (state == t_state.APPLY or state == t_state.APPLY2) and op_side
            b_add.next = op_add
            a_add.next = op_add
            b_gone.next = op_gone
            a_gone.next = op_gone
            b_price.next = op_price
            a_price.next = op_price
            b_amount.next = op_amount
            a_amount.next = op_amount

    @always_comb
    def steer():
        s_event.ready.next = state == t_state.IDLE and not cmd_pending
        # IDLE: the event being taken, whose slot's ladders and reference's
        # order-table set are read now; CMD_LOOKUP: the command's locate.
        if state == t_state.CMD_LOOKUP:
            cam_key.next = cmd_locate
        else:
            cam_key.next = in_locate
        tbl_re.next = 0
        tbl_raddr.next = fold_ref
        tbl_we.next = 0
        tbl_waddr.next = fold_ref
        way_op.next = WAY_KEEP
        way_pick.next = 0
        new_slot.next = cam_idx
        new_side.next = e_side
        lad_re.next = 0
        lad_raddr.next = cam_now_idx
        lad_we.next = 0
        lad_waddr.next = t_slot
        lad_zero.next = 0
        load_work.next = 0
        slot_we.next = 0
        slot_widx.next = cmd_idx
        slot_wlocate.next = cmd_locate
        slot_wvalid.next = 0
        slots_clear.next = 0
        sym_we.next = 0
        sym_waddr.next = cmd_idx
        sym_wdata.next = 0
        out_load_update.next = 0
        out_load_trade.next = 0

        if state == t_state.INIT:
            tbl_we.next = 1
            tbl_waddr.next = scan_set
            way_op.next = WAY_ZERO
        elif state == t_state.IDLE:
            # Whatever the event turns out to be, DECODE has the set of its
            # reference and the ladders of its locate's slot.
            if s_event.valid and not cmd_pending:
                tbl_re.next = 1
                tbl_raddr.next = fold_in
                lad_re.next = 1
        elif state == t_state.CMD:
            if cmd_op == CMD_RESET_BOOK:
                slots_clear.next = 1
            elif cmd_slot_ok and cmd_op == CMD_ASSIGN and not (cam_hit and cam_idx != cmd_idx):
                slot_we.next = 1
                slot_wvalid.next = 1
                lad_we.next = 1
                lad_waddr.next = cmd_idx
                lad_zero.next = 1
                sym_we.next = 1
            elif cmd_slot_ok and cmd_op == CMD_RELEASE:
                slot_we.next = 1
                slot_wlocate.next = info_locate
        elif state == t_state.SWEEP_READ:
            tbl_re.next = 1
            tbl_raddr.next = scan_set
        elif state == t_state.SWEEP_WRITE:
            tbl_we.next = 1
            tbl_waddr.next = scan_set
            way_op.next = WAY_PURGE
        elif state == t_state.DECODE:
            # The slot's ladders go into the working registers whatever the
            # event: an event that has no use for them ends before FINISH,
            # and no record that is still to go out is built from them.
            # The ladders of the order's slot are read as well: LOAD takes
            # them when that is another slot than the event's.
            load_work.next = 1
            lad_re.next = any_hit
            lad_raddr.next = hit_slot
            if e_kind == EV_DIRECTORY:
                sym_wdata.next = e_aux
                if cam_hit:
                    sym_we.next = 1
                    sym_waddr.next = cam_idx
                elif auto_assign and free_any:
                    slot_we.next = 1
                    slot_widx.next = free_idx
                    slot_wlocate.next = e_locate
                    slot_wvalid.next = 1
                    lad_we.next = 1
                    lad_waddr.next = free_idx
                    lad_zero.next = 1
                    sym_we.next = 1
                    sym_waddr.next = free_idx
            # What a way is rewritten to does not wait for the reference
            # test, only whether the set is written does.
            elif e_kind == EV_ADD:
                way_op.next = WAY_NEW
                way_pick.next = free_way
                tbl_we.next = cam_hit and e_shares != 0 and not any_hit and any_free
            elif order_kind:
                way_pick.next = hit_way
                if e_kind == EV_DELETE or e_kind == EV_REPLACE:
                    way_op.next = WAY_CLEAR
                else:
                    way_op.next = WAY_REDUCE
                tbl_we.next = any_hit
        elif state == t_state.LOAD:
            load_work.next = 1
        elif state == t_state.APPLY:
            if second:
                tbl_re.next = 1
                tbl_raddr.next = fold_new
        elif state == t_state.ORDER2:
            new_slot.next = t_slot
            new_side.next = op_side
            tbl_waddr.next = fold_new
            way_op.next = WAY_NEW
            way_pick.next = free_way
            tbl_we.next = not any_hit and any_free
        elif state == t_state.FINISH:
            if not refill_go:
                lad_we.next = 1
                # A record leaves straight from here when the output is free.
                if trade_pending:
                    out_load_trade.next = out_free
                elif finish_emit:
                    out_load_update.next = out_free
        elif state == t_state.REFILL_START:
            tbl_re.next = 1
            tbl_raddr.next = scan_set
        elif state == t_state.REFILL_SCAN:
            if not rf_more and scan_set != last_set:
                tbl_re.next = 1
                tbl_raddr.next = scan_set + 1
        elif state == t_state.TRADE_OUT:
            out_load_trade.next = out_free
        elif state == t_state.UPDATE_OUT:
            out_load_update.next = out_free
        else:
            # The other states drive nothing here but the defaults above.
            tbl_re.next = 0

    # ---- the sequencer: state and bookkeeping ----------------------------------
    @always_seq(clk.posedge, reset=rst)
    def advance():
        p = intbv(0)[n_counters:]
        if state == t_state.INIT:
            scan_set.next = scan_set + 1
            if scan_set == last_set:
                scan_set.next = 0
                state.next = t_state.IDLE

        elif state == t_state.IDLE:
            if cmd_pending:
                seen_toggle.next = cmd_toggle
                state.next = t_state.CMD_LOOKUP
            elif s_event.valid:
                e_kind.next = in_kind
                e_side.next = in_side
                e_locate.next = in_locate
                e_price.next = in_price
                e_shares.next = in_shares
                e_ref.next = in_ref
                e_new_ref.next = in_new_ref
                lookup_ref.next = in_ref
                e_match.next = in_match
                e_ts.next = in_ts
                e_seq.next = in_seq
                e_index.next = in_index
                e_aux.next = in_aux
                e_stale.next = in_stale
                op_valid.next = 0
                second.next = 0
                lost_set.next = 0
                trade_pending.next = 0
                emit.next = 0
                refilled.next = 0
                state.next = t_state.DECODE

        elif state == t_state.CMD_LOOKUP:
            state.next = t_state.CMD

        elif state == t_state.CMD:
            state.next = t_state.IDLE
            if cmd_op == CMD_NONE:
                pass
            elif cmd_op == CMD_RESET_BOOK:
                dir_seen.next = 0
                not_trading.next = 0
                lost.next = 0
                depth.next = 0
                purge_all.next = 1
                scan_set.next = 0
                state.next = t_state.SWEEP_READ
            elif not cmd_slot_ok or cmd_op > CMD_RESET_BOOK:
                p[C_BAD_COMMAND] = 1
            elif cmd_op == CMD_CLEAR_DEGRADED:
                lost.next[cmd_idx] = 0
            elif cmd_op == CMD_ASSIGN and cam_hit and cam_idx != cmd_idx:
                p[C_BAD_COMMAND] = 1
            else:
                # Assign or release: a fresh slot and none of its old orders.
                dir_seen.next[cmd_idx] = 0
                not_trading.next[cmd_idx] = 0
                lost.next[cmd_idx] = 0
                depth.next[cmd_idx] = 0
                purge_all.next = 0
                purge_slot.next = cmd_idx
                scan_set.next = 0
                state.next = t_state.SWEEP_READ

        elif state == t_state.SWEEP_READ:
            state.next = t_state.SWEEP_WRITE

        elif state == t_state.SWEEP_WRITE:
            occupancy.next = occupancy - purge_count
            scan_set.next = scan_set + 1
            state.next = t_state.SWEEP_READ
            if scan_set == last_set:
                scan_set.next = 0
                state.next = t_state.IDLE

        elif state == t_state.DECODE:
            # The event's slot (CAM), its reference's order-table set and the
            # slot's ladders were read as the event was taken.
            if e_kind >= 1 and e_kind <= LAST_KIND:
                p[e_kind - 1] = 1
            else:
                p[C_EV_OTHER] = 1
            state.next = t_state.IDLE
            if e_kind == EV_DIRECTORY:
                if cam_hit:
                    dir_seen.next[cam_idx] = 1
                elif not auto_assign:
                    p[C_UNTRACKED] = 1
                elif free_any:
                    dir_seen.next[free_idx] = 1
                    not_trading.next[free_idx] = 0
                    lost.next[free_idx] = 0
                    depth.next[free_idx] = 0
                else:
                    p[C_NO_FREE_SLOT] = 1
            elif e_kind == EV_TRADING_STATE:
                if cam_hit:
                    not_trading.next[cam_idx] = e_aux_low != CHAR_T
                else:
                    p[C_UNTRACKED] = 1
            elif e_kind == EV_TRADE:
                if cam_hit:
                    t_slot.next = cam_idx
                    tr_kind.next = ord("P")
                    tr_side.next = SIDE_SELL if e_side else SIDE_BUY
                    tr_price.next = e_price
                    trade_pending.next = 1
                    state.next = t_state.TRADE_OUT
                else:
                    p[C_UNTRACKED] = 1
            elif e_kind == EV_ADD:
                if not cam_hit:
                    p[C_UNTRACKED] = 1
                elif e_shares == 0:
                    p[C_ZERO_SHARES] = 1
                elif any_hit:
                    p[C_DUPLICATE] = 1
                else:
                    t_slot.next = cam_idx
                    if any_free:
                        occupancy.next = occupancy + 1
                        if occupancy + 1 > occupancy_high:
                            occupancy_high.next = occupancy + 1
                        op_valid.next = 1
                        op_add.next = 1
                        op_side.next = e_side
                        op_price.next = e_price
                        op_amount.next = e_shares
                        op_gone.next = 0
                        state.next = t_state.APPLY
                    else:
                        lost_set.next = 1
                        lost_why.next = WHY_TABLE_FULL
                        p[C_TABLE_FULL] = 1
                        state.next = t_state.FINISH
            elif order_kind:
                if any_hit:
                    t_slot.next = hit_slot
                    op_valid.next = 1
                    op_add.next = 0
                    op_side.next = hit_side
                    op_price.next = hit_price
                    if hit_same:
                        state.next = t_state.APPLY
                    else:
                        state.next = t_state.LOAD
                    if e_kind == EV_DELETE or e_kind == EV_REPLACE:
                        op_amount.next = hit_shares
                        op_gone.next = 1
                        occupancy.next = occupancy - 1
                    else:
                        if hit_over:
                            if e_kind == EV_CANCEL:
                                p[C_OVER_CANCEL] = 1
                            else:
                                p[C_OVER_EXECUTION] = 1
                        if hit_all:
                            op_amount.next = hit_shares
                            op_gone.next = 1
                            occupancy.next = occupancy - 1
                        else:
                            op_amount.next = e_shares
                            op_gone.next = 0
                    tr_side.next = SIDE_SELL if hit_side else SIDE_BUY
                    if e_kind == EV_EXECUTE:
                        trade_pending.next = 1
                        tr_kind.next = ord("E")
                        tr_price.next = hit_price
                    elif e_kind == EV_EXECUTE_PRICE and e_aux_low == CHAR_Y:
                        trade_pending.next = 1
                        tr_kind.next = ord("C")
                        tr_price.next = e_price
                    if e_kind == EV_REPLACE:
                        if e_shares != 0:
                            second.next = 1
                        else:
                            p[C_ZERO_SHARES] = 1
                elif cam_hit:
                    t_slot.next = cam_idx
                    lost_set.next = 1
                    lost_why.next = WHY_UNKNOWN_REF
                    p[C_UNKNOWN_REF] = 1
                    state.next = t_state.FINISH
                else:
                    p[C_UNTRACKED] = 1

        elif state == t_state.LOAD:
            if op_valid:
                state.next = t_state.APPLY
            else:
                state.next = t_state.FINISH

        elif state == t_state.APPLY:
            if (b_missing and not op_side) or (a_missing and op_side):
                lost_set.next = 1
                if not lost_set:
                    lost_why.next = WHY_LEVEL_MISSING
                p[C_LEVEL_MISSING] = 1
            if second:
                lookup_ref.next = e_new_ref
                state.next = t_state.ORDER2
            else:
                state.next = t_state.FINISH

        elif state == t_state.ORDER2:
            state.next = t_state.FINISH
            if any_hit:
                p[C_DUPLICATE] = 1
            elif not any_free:
                lost_set.next = 1
                if not lost_set:
                    lost_why.next = WHY_TABLE_FULL
                p[C_TABLE_FULL] = 1
            else:
                occupancy.next = occupancy + 1
                if occupancy + 1 > occupancy_high:
                    occupancy_high.next = occupancy + 1
                op_add.next = 1
                op_price.next = e_price
                op_amount.next = e_shares
                op_gone.next = 0
                state.next = t_state.APPLY2

        elif state == t_state.APPLY2:
            state.next = t_state.FINISH

        elif state == t_state.FINISH:
            if refill_go:
                refill_bid.next = b_depth
                refill_ask.next = a_depth
                bid_bound.next = b_boundary
                ask_bound.next = a_boundary
                refilled.next = 1
                scan_set.next = 0
                done_bid.next = 0
                done_ask.next = 0
                p[C_REFILLS] = 1
                state.next = t_state.REFILL_START
            else:
                if (b_depth or a_depth) and not depth[t_slot]:
                    p[C_DEPTH] = 1
                depth.next[t_slot] = b_depth or a_depth
                if lost_set:
                    lost.next[t_slot] = 1
                rec_flags.next = finish_flags
                emit.next = finish_emit
                # The first record was loaded here if the output was free.
                state.next = t_state.IDLE
                if trade_pending:
                    if not out_free:
                        state.next = t_state.TRADE_OUT
                    else:
                        p[C_TRADES] = 1
                        if finish_emit:
                            state.next = t_state.UPDATE_OUT
                elif finish_emit:
                    if not out_free:
                        state.next = t_state.UPDATE_OUT
                    else:
                        p[C_BOOK_UPDATES] = 1

        elif state == t_state.REFILL_START:
            state.next = t_state.REFILL_SCAN

        elif state == t_state.REFILL_SCAN:
            if rf_more:
                done_bid.next = done_bid | rfb_way
                done_ask.next = done_ask | rfa_way
            else:
                done_bid.next = 0
                done_ask.next = 0
                if scan_set == last_set:
                    refill_bid.next = 0
                    refill_ask.next = 0
                    state.next = t_state.REFILL_ADD
                else:
                    scan_set.next = scan_set + 1

        elif state == t_state.REFILL_ADD:
            state.next = t_state.FINISH

        elif state == t_state.TRADE_OUT:
            if out_free:
                p[C_TRADES] = 1
                if emit:
                    state.next = t_state.UPDATE_OUT
                else:
                    state.next = t_state.IDLE

        else:
            # UPDATE_OUT; the state code no state uses cannot occur.
            if out_free:
                p[C_BOOK_UPDATES] = 1
                state.next = t_state.IDLE

        if fe_lost:
            p[C_FEED_EVENTS_LOST] = 1
        pulses.next = p

    # ---- registers ---------------------------------------------------------------
    counters = [counter(clk, rst, pulses(i), getattr(ports, f"count_{name}"))
                for i, name in enumerate(COUNTERS)]
    busy = bits(1)

    @always_comb
    def status():
        busy.next = cmd_pending or state == t_state.INIT or state == t_state.CMD_LOOKUP or \
            state == t_state.CMD or state == t_state.SWEEP_READ or \
            state == t_state.SWEEP_WRITE

    info_valid, info_directory, info_not_trading, info_lost, info_degraded = (
        bits(1) for _ in range(5))
    info_symbol = bits(64)

    @always_comb
    def slot_info():
        info_valid.next = 0
        info_directory.next = 0
        info_not_trading.next = 0
        info_lost.next = 0
        info_degraded.next = 0
        info_symbol.next = 0
        if cmd_slot_ok:
            info_valid.next = valid_vec[cmd_idx]
            info_directory.next = dir_seen[cmd_idx]
            info_not_trading.next = not_trading[cmd_idx]
            info_lost.next = lost[cmd_idx]
            info_degraded.next = degraded_vec[cmd_idx]
            if valid_vec[cmd_idx]:
                info_symbol.next = sym_rd

    drives = [
        drive(busy, ports.busy), drive(slots_used, ports.slots_used),
        drive(info_locate, ports.info_locate), drive(info_valid, ports.info_valid),
        drive(info_directory, ports.info_directory),
        drive(info_not_trading, ports.info_not_trading), drive(info_lost, ports.info_lost),
        drive(info_degraded, ports.info_degraded),
        drive(info_symbol(64, 32), ports.info_symbol_hi),
        drive(info_symbol(32, 0), ports.info_symbol_lo),
        drive(occupancy, ports.occupancy), drive(occupancy_high, ports.occupancy_high),
    ]
    for k in range((n_slots + 31) // 32):
        drives.append(drive(degraded_vec(min(n_slots, 32 * k + 32), 32 * k),
                             getattr(ports, f"degraded{k}")))

    return (event_in, registers, slot_cells, cam, free, lookups, symbol_memory, slot_vectors,
            slot_count, t_locate_mux, info_locate_mux, command_decode, way_cells, way_encoders,
            entry_muxes, set_index, ways_summary, table_memory, sides, ladder_memory,
            output_port, output_shift, refill_decision, finish_state, fe_queue, refill_picks,
            ladder_ops, steer, advance, counters, status, slot_info, drives)

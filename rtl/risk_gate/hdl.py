"""Risk gate in MyHDL: quote words in, quote and cancel records out.

Behaviour is :mod:`rtl.risk_gate.model`; this is how the fabric gets it.

Two stages and an output register:

======  ===================================================================
A       the word as taken; the underlying table is searched (every entry
        compared at once), the side rules (enables, through-theo band,
        price range) are applied to each side
B       the option's state is read (flip-flops behind a multiplexer), the
        word judged (candidate, kill, bad book, no side left, rate window),
        the state written back and a record loaded into the output shift
        register; a bad book arms the pull of that underlying's options
output  a 64-byte record leaves as 8 beats, one per cycle
======  ===================================================================

Pulls.  Two vectors with a bit per option hold the cancels still to send:
one filled from the live options when the kill bit rises, one from the live
options of a locate when a bad book arrives (every option's stored locate is
compared at once).  While either holds a bit, words wait in B; the lowest
option goes first, one record per free output.  A rising kill bit takes one
cycle of its own, so no word is judged against a half-applied kill.

From the cycle a word is taken to the first valid beat of its record is
:data:`LATENCY_CYCLES` with the output free; a word that sends nothing
takes one cycle in each stage.  ``egress_cycle`` is the free-running cycle
counter during the record's first valid cycle.
"""
from __future__ import annotations

from myhdl import ConcatSignal, Signal, always_comb, always_seq, block, intbv

from host.quoting.records import (KIND_CANCEL, KIND_QUOTE, QUOTE_DTYPE, REASON_BOOK,
                                  REASON_KILL, REASON_WITHDRAWN)
from rtl.common.axil import AxiLite
from rtl.common.axis import DATA_WIDTH, AxiStream
from rtl.common.logic import counter, first_set, offset_bits, record_word, select, unused
from rtl.quoter.model import QP_FRAC
from rtl.quoter.stream import QUOTE_BITS, QuotePort, quote_slices
from rtl.regmap.hdl import RegisterPorts, regfile
from rtl.regmap.map import RISK_GATE
from rtl.risk_gate.model import COUNTERS, OPTIONS, SIDE_REASONS, UNDERLYINGS

# Word taken -> first record beat valid, output free: A, B, output register.
LATENCY_CYCLES = 3
RECORD_BEATS = QUOTE_DTYPE.itemsize * 8 // DATA_WIDTH
OPTION_BITS = max(1, (OPTIONS - 1).bit_length())
ENTRY_BITS = max(1, (UNDERLYINGS - 1).bit_length())
# Side verdicts: 0 stays, else 1 + index in SIDE_REASONS.
S_UNKNOWN, S_DISABLED, S_THROUGH, S_OUTSIDE = (1 + SIDE_REASONS.index(name) for name in (
    "unknown_underlying", "side_disabled", "through_theo", "outside_range"))
# What B does with a word.
A_NONE, A_KILLED, A_BOOK, A_WITHDRAW, A_RATE, A_QUOTE = range(6)


def _u(width: int, value: int = 0):
    return Signal(bool(value)) if width == 1 else Signal(intbv(value)[width:])


def _s(width: int):
    return Signal(intbv(0, min=-(1 << (width - 1)), max=1 << (width - 1)))


@block
def _entry_match(locate_key, locate, valid, match):
    @always_comb
    def compare():
        match.next = valid and locate == locate_key

    return compare


@block
def _option_cell(clk, rst, index, we, widx, w_live, w_owed, w_locate, w_start, w_count,
                 pull, pull_idx, match_key, live, owed, locate, start, count, live_any,
                 match):
    """One option's gate state; ``pull`` at ``pull_idx`` clears live and
    sets owed (never in the same cycle as a write)."""
    @always_seq(clk.posedge, reset=rst)
    def write():
        if we and widx == index:
            live.next = w_live
            owed.next = w_owed
            locate.next = w_locate
            start.next = w_start
            count.next = w_count
        elif pull and pull_idx == index:
            live.next = 0
            owed.next = 1

    @always_comb
    def flags():
        live_any.next = live != 0
        match.next = live != 0 and locate == match_key

    return write, flags


@block
def _counter2(clk, rst, first, second, count):
    """A 32-bit counter that can count two events in a cycle."""
    @always_seq(clk.posedge, reset=rst)
    def counting():
        count.next = (count + first + second) & 0xFFFFFFFF

    return counting


@block
def _side_rule(present, found, enabled, price, price_qp, above, below, min_price, max_price,
               is_bid, reason):
    """First side rule that removes a side (0: it stays)."""
    @always_comb
    def judge():
        reason.next = 0
        if present:
            if not found:
                reason.next = S_UNKNOWN
            elif not enabled:
                reason.next = S_DISABLED
            elif is_bid and price_qp > above:
                reason.next = S_THROUGH
            elif not is_bid and price_qp < below:
                reason.next = S_THROUGH
            elif price < min_price or price > max_price:
                reason.next = S_OUTSIDE

    return judge


@block
def _pulse(enable, code, value, pulse):
    @always_comb
    def compare():
        pulse.next = enable and code == value

    return compare


@block
def risk_gate(clk, rst, s_quote: QuotePort, m_axis: AxiStream, s_axil: AxiLite):
    """The block's top level: quote words in on ``s_quote``, records out on
    ``m_axis``, registers on ``s_axil``."""
    ports = RegisterPorts(RISK_GATE)
    registers = regfile(clk, rst, s_axil, ports, RISK_GATE)
    slices = quote_slices()

    cycle = _u(32)

    @always_seq(clk.posedge, reset=rst)
    def cycle_counter():
        cycle.next = (cycle + 1) & 0xFFFFFFFF

    # ---- input and stage A -----------------------------------------------------
    in_word = _u(QUOTE_BITS)
    a_valid, a_word = _u(1), _u(QUOTE_BITS)
    b_valid, b_word = _u(1), _u(QUOTE_BITS)
    b_go, a_free, b_free, take, take_bad = _u(1), _u(1), _u(1), _u(1), _u(1)
    in_option = in_word(16, 0)

    def field(word, name):
        lsb, width = slices[name]
        return word(lsb) if width == 1 else word(lsb + width, lsb)

    @always_comb
    def flow():
        in_word.next = s_quote.data
        b_free.next = not b_valid or b_go
        a_free.next = not a_valid or not b_valid or b_go
        s_quote.ready.next = not a_valid or not b_valid or b_go
        take.next = s_quote.valid and (not a_valid or not b_valid or b_go)
        take_bad.next = s_quote.valid and (not a_valid or not b_valid or b_go) and \
            in_option >= OPTIONS

    @always_seq(clk.posedge, reset=rst)
    def stage_a():
        if a_free:
            a_valid.next = take and not take_bad
            a_word.next = in_word

    a_underlying, a_flags = field(a_word, "underlying"), field(a_word, "flags")
    a_sides = field(a_word, "sides")
    a_bid, a_ask = field(a_word, "bid_price"), field(a_word, "ask_price")
    a_theo_qp_bits = field(a_word, "theo_qp")
    a_theo_qp = _s(64)
    a_bid_qp, a_ask_qp = _s(64), _s(64)
    limit_qp = _s(64)
    above, below = _s(66), _s(66)

    @always_comb
    def band():
        a_theo_qp.next = a_theo_qp_bits.signed()
        limit_qp.next = ports.through_limit << QP_FRAC
        a_bid_qp.next = a_bid << QP_FRAC
        a_ask_qp.next = a_ask << QP_FRAC

    @always_comb
    def band_edges():
        above.next = a_theo_qp + limit_qp
        below.next = a_theo_qp - limit_qp

    entry_match = [_u(1) for _ in range(UNDERLYINGS)]
    matchers = [_entry_match(a_underlying, getattr(ports, f"und{n}_locate"),
                             getattr(ports, f"und{n}_valid"), entry_match[n])
                for n in range(UNDERLYINGS)]
    entry_vec = ConcatSignal(*reversed(entry_match))
    a_found, a_entry = _u(1), _u(ENTRY_BITS)
    entry_encoder = first_set(entry_vec, UNDERLYINGS, a_found, a_entry)
    bid_enables = ConcatSignal(*[getattr(ports, f"und{n}_bid_enable")
                                 for n in reversed(range(UNDERLYINGS))])
    ask_enables = ConcatSignal(*[getattr(ports, f"und{n}_ask_enable")
                                 for n in reversed(range(UNDERLYINGS))])
    a_bid_enabled, a_ask_enabled = _u(1), _u(1)
    enable_muxes = [select(bid_enables, a_entry, 1, 0, a_bid_enabled),
                    select(ask_enables, a_entry, 1, 0, a_ask_enabled)]
    a_bid_present, a_ask_present = a_sides(0), a_sides(1)
    a_bid_reason, a_ask_reason = _u(3), _u(3)
    rules = [_side_rule(a_bid_present, a_found, a_bid_enabled, a_bid, a_bid_qp, above, below,
                        ports.min_price, ports.max_price, True, a_bid_reason),
             _side_rule(a_ask_present, a_found, a_ask_enabled, a_ask, a_ask_qp, above, below,
                        ports.min_price, ports.max_price, False, a_ask_reason)]
    a_sides_left, a_bad = _u(2), _u(8)

    @always_comb
    def sides_left():
        # Bit 0 is SIDE_BID, bit 1 SIDE_ASK (host.quoting.records).
        left = intbv(0)[2:]
        left[:] = a_sides
        if a_bid_reason != 0:
            left[0] = 0
        if a_ask_reason != 0:
            left[1] = 0
        a_sides_left.next = left
        a_bad.next = a_flags & ports.pull_mask

    # ---- stage B -----------------------------------------------------------------
    b_sides, b_bid_reason, b_ask_reason = _u(2), _u(3), _u(3)
    b_found, b_entry, b_bad = _u(1), _u(ENTRY_BITS), _u(8)

    @always_seq(clk.posedge, reset=rst)
    def stage_b():
        if b_free:
            b_valid.next = a_valid
            b_word.next = a_word
            b_sides.next = a_sides_left
            b_bid_reason.next = a_bid_reason
            b_ask_reason.next = a_ask_reason
            b_found.next = a_found
            b_entry.next = a_entry
            b_bad.next = a_bad

    # Judged in A already.
    judged = [unused(field(b_word, name), f"b_{name}") for name in ("sides", "theo_qp")]
    b_option = field(b_word, "option_id")
    b_option_low = b_word(OPTION_BITS, 0)
    b_underlying, b_flags = field(b_word, "underlying"), field(b_word, "flags")
    b_requote = field(b_word, "requote")
    b_ingress = field(b_word, "ingress_cycle")

    # Option state, written by B or cleared by a pull.
    w_live, w_owed, w_locate, w_start, w_count = _u(2), _u(1), _u(16), _u(32), _u(8)
    state_we, pull_go = _u(1), _u(1)
    pull_idx = _u(OPTION_BITS)
    match_key = _u(16)
    live = [_u(2) for _ in range(OPTIONS)]
    owed = [_u(1) for _ in range(OPTIONS)]
    locate = [_u(16) for _ in range(OPTIONS)]
    start = [_u(32) for _ in range(OPTIONS)]
    count = [_u(8) for _ in range(OPTIONS)]
    live_any = [_u(1) for _ in range(OPTIONS)]
    matched = [_u(1) for _ in range(OPTIONS)]
    cells = [_option_cell(clk, rst, n, state_we, b_option_low, w_live, w_owed, w_locate,
                          w_start, w_count, pull_go, pull_idx, match_key, live[n], owed[n],
                          locate[n], start[n], count[n], live_any[n], matched[n])
             for n in range(OPTIONS)]
    cell_bits = 2 + 1 + 16 + 32 + 8
    state_vec = ConcatSignal(*[part for n in reversed(range(OPTIONS))
                               for part in (count[n], start[n], locate[n], owed[n], live[n])])
    locate_vec = ConcatSignal(*reversed(locate))
    live_vec = ConcatSignal(*reversed(live_any))
    matched_vec = ConcatSignal(*reversed(matched))
    current = _u(cell_bits)
    state_mux = select(state_vec, b_option_low, cell_bits, 0, current)
    cur_live, cur_owed = current(2, 0), current(2)
    cur_locate, cur_start, cur_count = current(19, 3), current(51, 19), current(59, 51)

    window_count = _u(8)
    roll, candidate, action = _u(1), _u(1), _u(3)
    needs_out, out_free = _u(1), _u(1)
    kill_applied, kill_event = _u(1), _u(1)
    pend_kill, pend_book = _u(OPTIONS), _u(OPTIONS)
    pend_all = _u(OPTIONS)
    pulled = _u(UNDERLYINGS)
    book_pull, book_recover = _u(1), _u(1)

    @always_comb
    def judge():
        roll.next = ((b_ingress - cur_start) & 0xFFFFFFFF) >= ports.rate_window
        if ((b_ingress - cur_start) & 0xFFFFFFFF) >= ports.rate_window:
            window_count.next = 0
        else:
            window_count.next = cur_count
        candidate.next = b_requote or cur_owed or b_sides != cur_live

    @always_comb
    def decide():
        action.next = A_NONE
        if not candidate:
            action.next = A_NONE
        elif ports.kill:
            action.next = A_KILLED
        elif b_found and b_bad != 0:
            action.next = A_BOOK
        elif b_sides == 0:
            action.next = A_WITHDRAW
        elif window_count >= ports.rate_count:
            action.next = A_RATE
        else:
            action.next = A_QUOTE

    @always_comb
    def consequences():
        needs_out.next = action == A_QUOTE or (action == A_WITHDRAW and cur_live != 0)
        w_live.next = cur_live
        w_owed.next = cur_owed
        w_locate.next = cur_locate
        w_start.next = cur_start
        w_count.next = cur_count
        if action == A_QUOTE:
            w_live.next = b_sides
            w_owed.next = 0
            w_locate.next = b_underlying
            if roll:
                w_start.next = b_ingress
            w_count.next = window_count + 1
        elif action == A_WITHDRAW:
            w_live.next = 0
            w_owed.next = 0
        elif action == A_KILLED or action == A_BOOK or action == A_RATE:
            w_owed.next = 1
        book_pull.next = b_found and b_bad != 0 and not pulled[b_entry]
        book_recover.next = b_found and b_bad == 0 and pulled[b_entry]

    pull_any, pull_first = _u(1), _u(OPTION_BITS)
    pull_encoder = first_set(pend_all, OPTIONS, pull_any, pull_first)
    pull_kill = _u(1)

    @always_comb
    def control():
        kill_event.next = ports.kill and not kill_applied
        pend_all.next = pend_kill | pend_book
        pull_idx.next = pull_first
        pull_kill.next = pend_kill[pull_first]
        match_key.next = b_underlying
        b_go.next = b_valid and not pull_any and not (ports.kill and not kill_applied) and \
            (not needs_out or out_free)
        pull_go.next = pull_any and not (ports.kill and not kill_applied) and out_free
        state_we.next = b_valid and not pull_any and not (ports.kill and not kill_applied) and \
            (not needs_out or out_free)

    trig_flags, trig_seq, trig_index, trig_ingress = _u(8), _u(64), _u(16), _u(32)
    field_seq, field_index = field(b_word, "seq"), field(b_word, "msg_index")

    @always_seq(clk.posedge, reset=rst)
    def pulls():
        if not ports.kill:
            kill_applied.next = 0
        elif kill_event:
            kill_applied.next = 1
        if kill_event:
            pend_kill.next = pend_kill | live_vec
        elif pull_go:
            pend_kill.next[pull_first] = 0
            pend_book.next[pull_first] = 0
        elif b_go and book_pull:
            pend_book.next = pend_book | matched_vec
            trig_flags.next = b_flags
            trig_seq.next = field_seq
            trig_index.next = field_index
            trig_ingress.next = b_ingress
        if b_go and book_pull:
            pulled.next[b_entry] = 1
        elif b_go and book_recover:
            pulled.next[b_entry] = 0

    # ---- the record -------------------------------------------------------------
    pull_locate = _u(16)
    locate_mux = select(locate_vec, pull_first, 16, 0, pull_locate)
    r_kind, r_reason, r_sides, r_flags = _u(8), _u(8), _u(8), _u(8)
    r_option, r_underlying = _u(16), _u(16)
    r_bid, r_ask, r_bid_size, r_ask_size = _u(32), _u(32), _u(32), _u(32)
    r_theo, r_delta, r_seq = _u(64), _u(64), _u(64)
    r_index, r_position, r_ingress, r_egress = _u(32), _u(32), _u(32), _u(32)
    b_bid, b_ask = field(b_word, "bid_price"), field(b_word, "ask_price")
    b_bid_size, b_ask_size = field(b_word, "bid_size"), field(b_word, "ask_size")
    b_theo, b_delta = field(b_word, "theo"), field(b_word, "delta")
    b_position = field(b_word, "position")

    @always_comb
    def record_fields():
        r_egress.next = (cycle + 1) & 0xFFFFFFFF
        r_sides.next = 0
        r_bid.next = 0
        r_ask.next = 0
        r_bid_size.next = 0
        r_ask_size.next = 0
        r_theo.next = 0
        r_delta.next = 0
        r_position.next = 0
        if pull_any:
            r_kind.next = KIND_CANCEL
            r_option.next = pull_first
            r_underlying.next = pull_locate
            if pull_kill:
                r_reason.next = REASON_KILL
                r_flags.next = 0
                r_seq.next = 0
                r_index.next = 0
                r_ingress.next = 0
            else:
                r_reason.next = REASON_BOOK
                r_flags.next = trig_flags
                r_seq.next = trig_seq
                r_index.next = trig_index
                r_ingress.next = trig_ingress
        else:
            r_option.next = b_option
            r_underlying.next = b_underlying
            r_flags.next = b_flags
            r_seq.next = field_seq
            r_index.next = field_index
            r_ingress.next = b_ingress
            if action == A_QUOTE:
                r_kind.next = KIND_QUOTE
                r_reason.next = 0
                r_sides.next = b_sides
                if b_sides[0]:
                    r_bid.next = b_bid
                    r_bid_size.next = b_bid_size
                if b_sides[1]:
                    r_ask.next = b_ask
                    r_ask_size.next = b_ask_size
                r_theo.next = b_theo
                r_delta.next = b_delta
                r_position.next = b_position
            else:
                r_kind.next = KIND_CANCEL
                r_reason.next = REASON_WITHDRAWN

    record = record_word([
        (*offset_bits(QUOTE_DTYPE, "kind"), r_kind),
        (*offset_bits(QUOTE_DTYPE, "reason"), r_reason),
        (*offset_bits(QUOTE_DTYPE, "sides"), r_sides),
        (*offset_bits(QUOTE_DTYPE, "flags"), r_flags),
        (*offset_bits(QUOTE_DTYPE, "option_id"), r_option),
        (*offset_bits(QUOTE_DTYPE, "underlying"), r_underlying),
        (*offset_bits(QUOTE_DTYPE, "bid_price"), r_bid),
        (*offset_bits(QUOTE_DTYPE, "ask_price"), r_ask),
        (*offset_bits(QUOTE_DTYPE, "bid_size"), r_bid_size),
        (*offset_bits(QUOTE_DTYPE, "ask_size"), r_ask_size),
        (*offset_bits(QUOTE_DTYPE, "theo"), r_theo),
        (*offset_bits(QUOTE_DTYPE, "delta"), r_delta),
        (*offset_bits(QUOTE_DTYPE, "seq"), r_seq),
        (*offset_bits(QUOTE_DTYPE, "msg_index"), r_index),
        (*offset_bits(QUOTE_DTYPE, "position"), r_position),
        (*offset_bits(QUOTE_DTYPE, "ingress_cycle"), r_ingress),
        (*offset_bits(QUOTE_DTYPE, "egress_cycle"), r_egress),
    ], 8 * QUOTE_DTYPE.itemsize)

    out_data = _u(8 * QUOTE_DTYPE.itemsize)
    out_left = _u(RECORD_BEATS.bit_length())
    load = _u(1)

    @always_comb
    def output_port():
        m_axis.tvalid.next = out_left != 0
        m_axis.tdata.next = out_data[DATA_WIDTH:]
        m_axis.tlast.next = out_left == 1
        m_axis.tkeep.next = 0xFF
        m_axis.tuser.next = 0
        out_free.next = out_left == 0 or (out_left == 1 and m_axis.tready)
        load.next = pull_go or (b_go and needs_out)

    @always_seq(clk.posedge, reset=rst)
    def output_shift():
        if load:
            out_data.next = record
            out_left.next = RECORD_BEATS
        elif out_left != 0 and m_axis.tready:
            out_data.next = out_data >> DATA_WIDTH
            out_left.next = out_left - 1

    # ---- status and counters ------------------------------------------------------
    @always_comb
    def status():
        ports.busy.next = pull_any or (ports.kill and not kill_applied)
        ports.pulled.next = pulled
        total = intbv(0)[16:]
        for i in range(OPTIONS):
            if live_vec[i]:
                total[:] = total + 1
        ports.live_options.next = total

    pulses = {name: _u(1) for name in COUNTERS if name not in SIDE_REASONS}
    p_words, p_bad, p_quotes = pulses["words"], pulses["bad_option"], pulses["quotes"]
    p_kill, p_book, p_withdrawn = (pulses["cancel_kill"], pulses["cancel_book"],
                                   pulses["cancel_withdrawn"])
    p_pulls, p_recoveries = pulses["book_pulls"], pulses["book_recoveries"]
    p_killed, p_stale, p_degraded = pulses["killed"], pulses["stale"], pulses["degraded"]
    p_book_flag, p_rate = pulses["book_flag"], pulses["rate_limited"]
    side_counted = _u(1)
    stale_bit = 1 << 1
    degraded_bit = 1 << 4

    @always_comb
    def counting():
        p_words.next = take
        p_bad.next = take_bad
        p_quotes.next = b_go and action == A_QUOTE
        p_withdrawn.next = b_go and needs_out and action == A_WITHDRAW
        p_kill.next = pull_go and pull_kill
        p_book.next = pull_go and not pull_kill
        p_pulls.next = b_go and book_pull
        p_recoveries.next = b_go and book_recover
        p_killed.next = b_go and action == A_KILLED
        p_stale.next = b_go and action == A_BOOK and (b_bad & stale_bit) != 0
        p_degraded.next = b_go and action == A_BOOK and (b_bad & stale_bit) == 0 and \
            (b_bad & degraded_bit) != 0
        p_book_flag.next = b_go and action == A_BOOK and (b_bad & (stale_bit | degraded_bit)) == 0
        p_rate.next = b_go and action == A_RATE
        side_counted.next = b_go and (action == A_WITHDRAW or action == A_RATE
                                      or action == A_QUOTE)

    side_pulses = {}
    comparers = []
    for i, name in enumerate(SIDE_REASONS):
        bid_pulse, ask_pulse = _u(1), _u(1)
        comparers += [_pulse(side_counted, b_bid_reason, i + 1, bid_pulse),
                      _pulse(side_counted, b_ask_reason, i + 1, ask_pulse)]
        side_pulses[name] = (bid_pulse, ask_pulse)
    counters = [counter(clk, rst, pulses[name], getattr(ports, f"count_{name}"))
                for name in pulses]
    counters += [_counter2(clk, rst, *side_pulses[name], getattr(ports, f"count_{name}"))
                 for name in SIDE_REASONS]

    return (registers, cycle_counter, flow, stage_a, judged, band, band_edges, matchers,
            entry_encoder, enable_muxes, rules, sides_left, stage_b, cells, state_mux, judge, decide,
            consequences, pull_encoder, control, pulls, locate_mux, record_fields,
            output_port, output_shift, status, counting, comparers, counters)

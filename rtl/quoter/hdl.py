"""Quoter in MyHDL: theo words in, quote words out, one per cycle.

Behaviour is :mod:`rtl.quoter.model`; this is how the fabric gets it.  The
pipeline takes a theo word every cycle it is ready and :data:`LATENCY_CYCLES`
later offers its quote word; ``m_quote_ready`` low freezes every stage (one
clock enable), and ``s_theo_ready`` follows it.  Stage k is registered k
cycles after the word is taken:

=====  ===================================================================
 1     word and the option's position register (selected by option id)
 2     theo_qp = (theo * 10000 + 2**23) >> 24;  skew * position
 3     bid_n = floor((theo_qp - spread - skew term) / 2**16), ask_n = ceil(..)
 4     range check;  tick band of each side (highest matching entry) and
       whether its reciprocal checked
 5     quotient estimate (m * reciprocal) >> 32 (m = bid_n, ask_n - 1)
 6     estimate * tick, remainder
 7     one correction step: the price on the grid, and whether it is in range
 8     edge and size checks, requote against the option's last requote
       (both combinational on stage 7), output register
=====  ===================================================================

Dividing by the tick.  With ``recip = (2**32 - 1) // t`` and ``m < 2**32``
the estimate ``(m * recip) >> 32`` falls short of ``floor(m / t)`` by less
than ``m / 2**32 < 1``, so it is the quotient or one less, and one
compare-and-add of the remainder finishes it.  Each tick entry's reciprocal
is checked against its size (``size * recip <= 2**32 - 1 < size * (recip +
1)``, in registers, one multiplier per entry); a side whose band fails
the check is not quoted (``bad_tick``).

The per-option requote state (a valid bit, the sides and both prices of
the last requote) and the position registers are flip-flops read through a
multiplexer, so a word meets the state the word before it left, at any
spacing.  Every multiplication is formed at its full width.
"""
from __future__ import annotations

from myhdl import ConcatSignal, Signal, always_comb, always_seq, block, concat, intbv

from rtl.common.axil import AxiLite
from rtl.common.logic import counter, select, unused
from rtl.common.theo_stream import THEO_BITS, TheoPort, theo_slices
from rtl.quoter.model import (COUNTERS, OPTIONS, PRICE4_SCALE, QP_FRAC, RECIP_NUMERATOR,
                              SIDE_REASONS, THEO_SHIFT, TICK_BANDS)
from rtl.quoter.stream import QUOTE_BITS, QuotePort
from rtl.regmap.hdl import RegisterPorts, regfile
from rtl.regmap.map import QUOTER

# Theo word taken -> quote word valid, output free (see the stage map).
LATENCY_CYCLES = 8
OPTION_BITS = max(1, (OPTIONS - 1).bit_length())
BAND_BITS = max(1, (TICK_BANDS - 1).bit_length())
# Side verdict codes: 0 quoted, else 1 + the index of the reason.
R_NO_PRICE, R_BAD_TICK, R_BELOW_EDGE, R_ZERO_SIZE = (1 + SIDE_REASONS.index(name) for name in (
    "no_price", "bad_tick", "below_edge", "zero_size"))
STATE_BITS = 2 + 32 + 32           # sides, bid, ask of the last requote


def _u(width: int, value: int = 0):
    return Signal(bool(value)) if width == 1 else Signal(intbv(value)[width:])


def _s(width: int):
    return Signal(intbv(0, min=-(1 << (width - 1)), max=1 << (width - 1)))


@block
def _pipe(clk, rst, ce, a, out):
    """One pipeline register, enabled by ``ce``."""
    @always_seq(clk.posedge, reset=rst)
    def step():
        if ce:
            out.next = a

    return step


@block
def _pulse(ce, valid, code, value, pulse):
    @always_comb
    def compare():
        pulse.next = ce and valid and code == value

    return compare


@block
def _band_match(n, start, size, match):
    @always_comb
    def compare():
        match.next = size != 0 and start <= n

    return compare


@block
def _last_set(vector, width, index):
    """Highest set bit of ``vector`` (0 when none)."""
    @always_comb
    def encode():
        index.next = 0
        for i in range(width):
            if vector[i]:
                index.next = i

    return encode


@block
def _tick_check(clk, rst, size, recip, ok):
    """Registered: the entry is used and recip == (2**32 - 1) // size."""
    product = _u(49)
    bound = _u(49)

    @always_comb
    def multiply():
        product.next = size * recip
        bound.next = size * recip + size

    @always_seq(clk.posedge, reset=rst)
    def check():
        ok.next = size != 0 and product <= RECIP_NUMERATOR and bound > RECIP_NUMERATOR

    return multiply, check


@block
def _state_cell(clk, rst, index, we, widx, wdata, clear, data, valid):
    @always_seq(clk.posedge, reset=rst)
    def write():
        if we and widx == index:
            data.next = wdata
        if clear:
            valid.next = 0
        elif we and widx == index:
            valid.next = 1

    return write


@block
def _side_price(clk, ce, n, ranged, band_hit, tick, recip, tick_ok, is_bid, price, code):
    """Stages 4..7 of one side: ``n`` (stage 3's bid_n or ask_n, signed)
    onto the tick grid.  ``price`` is the grid price (stage 7; 0 unless the
    side still stands), ``code`` the verdict so far (0, no_price or
    bad_tick)."""
    m4 = _u(32)
    t4, t5, t6 = _u(16), _u(16), _u(16)
    r4, r5, r6 = _u(32), _u(32), _u(32)
    m5, m6 = _u(32), _u(32)
    code4, code5, code6 = _u(3), _u(3), _u(3)
    n_low = _u(32)
    q5 = _u(32)
    estimate = _u(64)
    base = _u(48)
    base6 = _u(48)
    rem6 = _u(49)
    floor_price = _u(50)
    ceil_price = _u(51)

    @always_comb
    def low_bits():
        n_low.next = n[32:]

    @always_seq(clk.posedge, reset=None)
    def stage4():
        if ce:
            if is_bid:
                m4.next = n_low
            elif n_low != 0:
                m4.next = n_low - 1
            else:
                m4.next = 0
            t4.next = tick
            r4.next = recip
            if not ranged or not band_hit:
                code4.next = R_NO_PRICE
            elif not tick_ok:
                code4.next = R_BAD_TICK
            else:
                code4.next = 0

    @always_comb
    def multiply_recip():
        estimate.next = m4 * r4

    @always_seq(clk.posedge, reset=None)
    def stage5():
        if ce:
            q5.next = estimate >> 32
            m5.next = m4
            t5.next = t4
            code5.next = code4

    @always_comb
    def multiply_tick():
        base.next = q5 * t5

    @always_seq(clk.posedge, reset=None)
    def stage6():
        if ce:
            base6.next = base
            if m5 >= base:
                rem6.next = m5 - base
            else:
                rem6.next = 0
            t6.next = t5
            code6.next = code5

    @always_comb
    def correct():
        if rem6 >= t6:
            floor_price.next = base6 + t6
            ceil_price.next = base6 + t6 + t6
        else:
            floor_price.next = base6
            ceil_price.next = base6 + t6

    @always_seq(clk.posedge, reset=None)
    def stage7():
        if ce:
            price.next = 0
            if code6 != 0:
                code.next = code6
            elif is_bid:
                if floor_price == 0:
                    code.next = R_NO_PRICE
                else:
                    code.next = 0
                    price.next = floor_price[32:]
            else:
                if ceil_price[51:32] != 0:
                    code.next = R_NO_PRICE
                else:
                    code.next = 0
                    price.next = ceil_price[32:]

    return low_bits, stage4, multiply_recip, stage5, multiply_tick, stage6, correct, stage7


@block
def quoter(clk, rst, s_theo: TheoPort, m_quote: QuotePort, s_axil: AxiLite):
    """The block's top level: theo words in on ``s_theo``, quote words out
    on ``m_quote``, registers on ``s_axil``."""
    ports = RegisterPorts(QUOTER)
    registers = regfile(clk, rst, s_axil, ports, QUOTER)

    # ---- input ---------------------------------------------------------------
    in_word = _u(THEO_BITS)

    @always_comb
    def word_in():
        in_word.next = s_theo.data

    fields = theo_slices()

    def theo(name):
        lsb, width = fields[name]
        return in_word(lsb + width, lsb)

    in_option = theo("option_id")
    # The Greeks and spot are for the host's risk, not for quoting.
    ignored = [unused(theo(name), f"theo_{name}") for name in ("spot", "gamma", "vega", "theta",
                                                                "last")]
    in_option_low = in_word(OPTION_BITS, 0)
    in_bad = _u(1)
    ce, take, take_good = _u(1), _u(1), _u(1)
    out_valid = _u(1)
    out_data = _u(QUOTE_BITS)

    @always_comb
    def handshake():
        ce.next = not out_valid or m_quote.ready
        s_theo.ready.next = not out_valid or m_quote.ready
        take.next = s_theo.valid and (not out_valid or m_quote.ready)
        m_quote.valid.next = out_valid
        m_quote.data.next = out_data
        in_bad.next = in_option >= OPTIONS
        take_good.next = s_theo.valid and (not out_valid or m_quote.ready) and in_option < OPTIONS

    positions = ConcatSignal(*[getattr(ports, f"position{n}") for n in reversed(range(OPTIONS))])
    position_sel = _u(32)
    position_mux = select(positions, in_option_low, 32, 0, position_sel)

    # What rides along to the output unchanged, in quote-word order from the
    # top: ingress, msg_index, seq, delta, theo, position, flags, underlying,
    # option_id (theo_qp is added at stage 2, the quote at stage 8).
    carry_in = ConcatSignal(theo("ingress_cycle"), theo("msg_index"), theo("seq"),
                            theo("delta"), theo("price"), position_sel, theo("flags"),
                            theo("underlying"), in_option)
    carry_bits = len(carry_in)
    carry = [carry_in] + [_u(carry_bits) for _ in range(7)]     # carry[k]: stage k
    valid = [take_good] + [_u(1) for _ in range(7)]
    chains = [_pipe(clk, rst, ce, carry[k], carry[k + 1]) for k in range(7)] + \
        [_pipe(clk, rst, ce, valid[k], valid[k + 1]) for k in range(7)]
    # Offsets inside the carry.
    o_option, o_underlying, o_flags, o_position, o_theo, o_delta = 0, 16, 32, 40, 72, 136
    o_seq, o_index, o_ingress = 200, 264, 280
    assert carry_bits == o_ingress + 32

    # ---- stage 2: theo in QP, skew term -------------------------------------
    theo1 = carry[1](o_theo + 64, o_theo)
    position1 = carry[1](o_position + 32, o_position)
    theo1_s, position1_s, skew_s = _s(64), _s(32), _s(32)
    theo_product = _s(80)
    skew_product = _s(64)
    theo_qp = [_s(64) for _ in range(6)]            # theo_qp[k - 2]: stage k
    theo_qp_chain = [_pipe(clk, rst, ce, theo_qp[k], theo_qp[k + 1]) for k in range(5)]
    theo_qp2 = theo_qp[0]
    skew2 = _s(64)
    theo_round = 1 << (THEO_SHIFT - 1)

    @always_comb
    def stage2_operands():
        theo1_s.next = theo1.signed()
        position1_s.next = position1.signed()
        skew_s.next = ports.skew.signed()

    @always_comb
    def stage2_multiply():
        theo_product.next = theo1_s * PRICE4_SCALE
        skew_product.next = skew_s * position1_s

    @always_seq(clk.posedge, reset=None)
    def stage2():
        if ce:
            theo_qp2.next = (theo_product + theo_round) >> THEO_SHIFT
            skew2.next = skew_product

    # ---- stage 3: unrounded prices in price4 ---------------------------------
    spread_s = _s(64)
    bid_n3, ask_n3 = _s(64), _s(64)
    ceil_add = (1 << QP_FRAC) - 1

    @always_comb
    def spread():
        spread_s.next = ports.half_spread << QP_FRAC

    @always_seq(clk.posedge, reset=None)
    def stage3():
        if ce:
            bid_n3.next = (theo_qp2 - spread_s - skew2) >> QP_FRAC
            ask_n3.next = (theo_qp2 + spread_s - skew2 + ceil_add) >> QP_FRAC

    # ---- stages 4..7: the tick grid ------------------------------------------
    starts = [getattr(ports, f"tick{i}_start") for i in range(TICK_BANDS)]
    sizes = [getattr(ports, f"tick{i}_size") for i in range(TICK_BANDS)]
    recips = [getattr(ports, f"tick{i}_recip") for i in range(TICK_BANDS)]
    tick_ok = [_u(1) for _ in range(TICK_BANDS)]
    tick_checks = [_tick_check(clk, rst, sizes[i], recips[i], tick_ok[i])
                   for i in range(TICK_BANDS)]
    tick_ok_vec = ConcatSignal(*reversed(tick_ok))
    size_vec = ConcatSignal(*reversed(sizes))
    recip_vec = ConcatSignal(*reversed(recips))

    @always_comb
    def tick_status():
        ports.tick_consistent.next = tick_ok_vec

    sides = []
    side_out = {}
    for name, n3, is_bid in (("bid", bid_n3, True), ("ask", ask_n3, False)):
        n_low = _u(32)
        ranged = _u(1)
        matches = [_u(1) for _ in range(TICK_BANDS)]
        match_vec = ConcatSignal(*reversed(matches))
        band = _u(BAND_BITS)
        band_hit = _u(1)
        tick, recip, ok = _u(16), _u(32), _u(1)
        price, code = _u(32), _u(3)

        @block
        def side_front(n3, n_low, ranged, match_vec, band_hit):
            @always_comb
            def front():
                n_low.next = n3[32:]
                ranged.next = n3[64:32] == 0 and n3[32:] != 0
                band_hit.next = match_vec != 0

            return front

        sides += [
            side_front(n3, n_low, ranged, match_vec, band_hit),
            [_band_match(n_low, starts[i], sizes[i], matches[i]) for i in range(TICK_BANDS)],
            _last_set(match_vec, TICK_BANDS, band),
            select(size_vec, band, 16, 0, tick),
            select(recip_vec, band, 32, 0, recip),
            select(tick_ok_vec, band, 1, 0, ok),
            _side_price(clk, ce, n3, ranged, band_hit, tick, recip, ok, is_bid, price, code),
        ]
        side_out[name] = (price, code)

    # ---- edge, size, requote (on stage 7), output register (stage 8) ----------
    bid_price7, bid_code7 = side_out["bid"]
    ask_price7, ask_code7 = side_out["ask"]
    theo_qp7 = theo_qp[5]
    carry7 = carry[7]
    valid7 = valid[7]
    option7 = carry7(o_option + OPTION_BITS, o_option)
    min_edge_s = _s(64)
    bid_edge, ask_edge = _s(64), _s(64)
    bid_code, ask_code = _u(3), _u(3)
    bid_quoted, ask_quoted = _u(1), _u(1)
    out_bid, out_ask = _u(32), _u(32)
    out_bid_size, out_ask_size = _u(32), _u(32)
    quoted_sides = _u(2)
    threshold = _u(32)

    state_vec_parts = []
    cells = []
    state_data = [_u(STATE_BITS) for _ in range(OPTIONS)]
    state_valid = [_u(1) for _ in range(OPTIONS)]
    state_we = _u(1)
    state_wdata = ConcatSignal(out_ask, out_bid, quoted_sides)
    state_clear = _u(1)
    toggle_seen = _u(1)
    for n in range(OPTIONS):
        cells.append(_state_cell(clk, rst, n, state_we, option7, state_wdata, state_clear,
                                 state_data[n], state_valid[n]))
    state_vec = ConcatSignal(*reversed(state_data))
    valid_vec = ConcatSignal(*reversed(state_valid))
    last = _u(STATE_BITS)
    last_valid = _u(1)
    state_muxes = [select(state_vec, option7, STATE_BITS, 0, last),
                   select(valid_vec, option7, 1, 0, last_valid)]
    last_bid_side, last_ask_side = last(0), last(1)
    last_bid = last(34, 2)
    last_ask = last(66, 34)
    bid_moved, ask_moved, requote = _u(1), _u(1), _u(1)

    @always_comb
    def edges():
        min_edge_s.next = ports.min_edge << QP_FRAC
        bid_edge.next = theo_qp7 - (bid_price7 << QP_FRAC)
        ask_edge.next = (ask_price7 << QP_FRAC) - theo_qp7
        if ports.requote_threshold == 0:
            threshold.next = 1
        else:
            threshold.next = ports.requote_threshold

    @always_comb
    def verdicts():
        if bid_code7 != 0:
            bid_code.next = bid_code7
        elif bid_edge < min_edge_s:
            bid_code.next = R_BELOW_EDGE
        elif ports.bid_size == 0:
            bid_code.next = R_ZERO_SIZE
        else:
            bid_code.next = 0
        if ask_code7 != 0:
            ask_code.next = ask_code7
        elif ask_edge < min_edge_s:
            ask_code.next = R_BELOW_EDGE
        elif ports.ask_size == 0:
            ask_code.next = R_ZERO_SIZE
        else:
            ask_code.next = 0

    @always_comb
    def quote_fields():
        bid_quoted.next = bid_code == 0
        ask_quoted.next = ask_code == 0
        quoted_sides.next = concat(ask_code == 0, bid_code == 0)
        out_bid.next = 0
        out_bid_size.next = 0
        out_ask.next = 0
        out_ask_size.next = 0
        if bid_code == 0:
            out_bid.next = bid_price7
            out_bid_size.next = ports.bid_size
        if ask_code == 0:
            out_ask.next = ask_price7
            out_ask_size.next = ports.ask_size

    @always_comb
    def moves():
        bid_moved.next = 0
        if bid_quoted != last_bid_side:
            bid_moved.next = 1
        elif bid_quoted:
            if out_bid >= last_bid:
                bid_moved.next = (out_bid - last_bid) >= threshold
            else:
                bid_moved.next = (last_bid - out_bid) >= threshold
        ask_moved.next = 0
        if ask_quoted != last_ask_side:
            ask_moved.next = 1
        elif ask_quoted:
            if out_ask >= last_ask:
                ask_moved.next = (out_ask - last_ask) >= threshold
            else:
                ask_moved.next = (last_ask - out_ask) >= threshold
        requote.next = not last_valid or bid_moved or ask_moved

    @always_comb
    def state_write():
        state_we.next = ce and valid7 and requote
        state_clear.next = ports.requote_all != toggle_seen

    @always_seq(clk.posedge, reset=rst)
    def toggle_track():
        toggle_seen.next = ports.requote_all

    out_word = ConcatSignal(
        carry7(o_ingress + 32, o_ingress), carry7(o_index + 16, o_index),
        carry7(o_seq + 64, o_seq), carry7(o_delta + 64, o_delta), theo_qp7(64, 0),
        carry7(o_theo + 64, o_theo), carry7(o_position + 32, o_position),
        out_ask_size, out_bid_size, out_ask, out_bid, requote, quoted_sides,
        carry7(o_flags + 8, o_flags), carry7(o_underlying + 16, o_underlying),
        carry7(o_option + 16, o_option))
    assert len(out_word) == QUOTE_BITS

    @always_seq(clk.posedge, reset=rst)
    def output_register():
        if ce:
            out_valid.next = valid7
            out_data.next = out_word

    # ---- counters ----------------------------------------------------------
    pulses = {name: _u(1) for name in COUNTERS}
    p_theos, p_bad, p_requotes = pulses["theos"], pulses["bad_option"], pulses["requotes"]
    p_bid = [pulses[f"bid_{r}"] for r in SIDE_REASONS]
    p_ask = [pulses[f"ask_{r}"] for r in SIDE_REASONS]

    @always_comb
    def counting():
        p_theos.next = take
        p_bad.next = take and in_bad
        p_requotes.next = ce and valid7 and requote

    side_pulses = [_pulse(ce, valid7, code, i + 1, pulse[i])
                   for code, pulse in ((bid_code, p_bid), (ask_code, p_ask))
                   for i in range(len(SIDE_REASONS))]

    counters = [counter(clk, rst, pulses[name], getattr(ports, f"count_{name}"))
                for name in COUNTERS]

    return (registers, word_in, ignored, handshake, position_mux, chains, theo_qp_chain,
            stage2_operands, stage2_multiply, stage2, spread, stage3, tick_checks, tick_status,
            sides, edges, verdicts, quote_fields, cells, state_muxes, moves, state_write,
            toggle_track, output_register, counting, side_pulses, counters)

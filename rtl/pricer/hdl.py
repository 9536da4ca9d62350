"""Option pricer datapath in MyHDL: one option per cycle, bit for bit the model.

Behaviour is :mod:`rtl.pricer.model`; this is how the fabric gets it.  The
pipeline takes, every cycle it is ready, one option: its parameter-table row
(:data:`rtl.pricer.formats.PARAM_FIELDS`) and the terms of its underlying's
spot (``S``, ``ln S``, ``1/m`` and ``e`` with ``S = m 2**e``, computed once
per spot; :func:`rtl.pricer.model.spot_terms` is their specification), and
:data:`LATENCY_CYCLES` later gives that option's price, delta, gamma, vega,
theta, d1 and d2, with the option's tag.

Every product is a full signed 64 x 64 -> 128-bit product rounded half up
into its target format the model's way, ``floor((a b + 2**(s-1)) / 2**s)``,
formed here as ``(floor(a b / 2**(s-1)) + 1) >> 1`` so no wide rounding
constant is needed (the two are equal for every integer product).  A stage
holds at most one multiplier on any register-to-register path (plus the
rounding and at most one add); adds, compares and muxes that do not follow a
multiplier get a stage of their own.  The function tables are constant ROMs
(one per coefficient, read a stage before their Horner step) filled from
:func:`rtl.pricer.tables.table`.

Stage map (stage k = registered k cycles after the option is taken; each
cubic lookup takes a split, a ROM read and three Horner steps; operands are
carried to the stage that uses them in shared delay lines):

=====  ===============================================================
 1     x = ln S + log_offset;  SA = S carry_disc;  gamma's shift (from e)
 2     d1 = clamp(x inv_vol)
 3     d2 = d1 - total_vol;  d1**2/2;  NCDF argument of d1
 4     z = (d1**2/2) / ln 2;  NCDF argument of d2
 4..8  N(d1) lookup (split 4, ROM 5, Horner 6..8); mirrored, saturated at 9
 5..9  N(d2) lookup; mirrored, saturated at 10
 5     int(z), frac(z)
 6..10 2**-frac(z) lookup
11     times 1/sqrt(2 pi);  asset and cash probabilities (call or put)
12     phi = that >> int(z), rounded;  asset, cash and rate legs;  |delta|
13     SA phi;  phi inv_vol;  carry leg
14     vega, decay;  gamma S carry_disc
15     gamma (shift by e);  price, delta, theta
=====  ===============================================================

Throughput is one option per cycle.  ``m_greeks_ready`` low freezes the
whole pipeline (every register is enabled by one clock enable), and
``s_option_ready`` follows it, so nothing is lost under backpressure.
"""
from __future__ import annotations

from myhdl import Signal, always, always_comb, always_seq, block, concat, intbv

from rtl.pricer.formats import HALF_SQUARE
from rtl.pricer.model import (
    D_LIMIT_RAW, LN2_LOG, LOG_FRAC, MONEY_FRAC, INV_LN2_PROB, INV_SQRT_2PI_PROB, NCDF_ARG_SHIFT, NCDF_END_RAW, ONE_PROB,
    SHIFT_CARRY, SHIFT_D1, SHIFT_DECAY, SHIFT_DELTA, SHIFT_GAMMA, SHIFT_GAMMA_S,
    SHIFT_GAMMA_S_DISC, SHIFT_HALF_SQUARE, SHIFT_MONEY_PROB, SHIFT_SA, SHIFT_VEGA, TABLE_FRAC,
)
from rtl.pricer.tables import DEGREE, TABLE_SPECS, table

WORD = 64
TAG_BITS = 16
EXPONENT_BITS = 8
# Option in -> results out, with the output free (see the stage map).
LATENCY_CYCLES = 15
# Spot in -> its terms out, with the output free.
SPOT_LATENCY_CYCLES = 8

OPTION_FIELDS = ("spot", "ln_spot", "recip_m", "log_offset", "inv_vol", "total_vol", "sqrt_t",
                 "half_vol_rate", "carry_disc", "strike_disc", "carry_rate", "rate_strike_disc")
RESULT_FIELDS = ("price", "delta", "gamma", "vega", "theta", "d1", "d2")


def word(value: int = 0) -> Signal:
    return Signal(intbv(value, min=-(1 << (WORD - 1)), max=1 << (WORD - 1)))


def wide() -> Signal:
    return Signal(intbv(0, min=-(1 << (2 * WORD - 1)), max=1 << (2 * WORD - 1)))


class OptionPort:
    """One option per valid/ready handshake: spot terms, parameter row, tag
    (any width; it comes out unchanged with the option's results)."""

    def __init__(self, tag_bits: int = TAG_BITS):
        self.valid = Signal(bool(0))
        self.ready = Signal(bool(0))
        self.tag = Signal(intbv(0)[tag_bits:])
        self.is_put = Signal(bool(0))
        self.exponent = Signal(intbv(0, min=-(1 << (EXPONENT_BITS - 1)), max=1 << (EXPONENT_BITS - 1)))
        for name in OPTION_FIELDS:
            setattr(self, name, word())


class ResultPort:
    """One option's results per valid/ready handshake (formats: the model's);
    ``results`` names the ones the consumer wants (the datapath only carries
    those to the output)."""

    def __init__(self, tag_bits: int = TAG_BITS, results=RESULT_FIELDS):
        self.valid = Signal(bool(0))
        self.ready = Signal(bool(0))
        self.tag = Signal(intbv(0)[tag_bits:])
        for name in results:
            setattr(self, name, word())


class SpotPort:
    """A new reference price S (MONEY, > 0) of an underlying."""

    def __init__(self, tag_bits: int = TAG_BITS):
        self.valid = Signal(bool(0))
        self.ready = Signal(bool(0))
        self.tag = Signal(intbv(0)[tag_bits:])
        self.spot = word()


class SpotTermsPort:
    """S with its terms: ln S (LOG), 1/m (PROB) and e, S = m 2**e."""

    def __init__(self, tag_bits: int = TAG_BITS):
        self.valid = Signal(bool(0))
        self.ready = Signal(bool(0))
        self.tag = Signal(intbv(0)[tag_bits:])
        self.spot = word()
        self.ln_spot = word()
        self.recip_m = word()
        self.exponent = Signal(intbv(0, min=-(1 << (EXPONENT_BITS - 1)), max=1 << (EXPONENT_BITS - 1)))


# --- one-stage operators --------------------------------------------------

@block
def _delay(clk, ce, a, out):
    @always(clk.posedge)
    def step():
        if ce:
            out.next = a

    return step


@block
def _constant(clk, out, value):
    # Written every clock rather than declared: the converter types an
    # undriven constant signal as unsigned, which would turn a signed product
    # unsigned.
    @always(clk.posedge)
    def hold():
        out.next = value

    return hold


@block
def mul_round_stage(clk, ce, a, b, out, shift, addend=None):
    """out = round_half_up(a b / 2**shift) [+ addend], registered.  ``shift``
    is an int, or a signal holding shift - 1.  The low 64 bits of the result
    depend only on the low 65 bits of ``a b >> (shift - 1)``, so the rounding
    works on those."""
    product = wide()
    halves = Signal(intbv(0, min=-(1 << WORD), max=1 << WORD))
    rounded = word()

    @always_comb
    def multiply():
        product.next = a * b

    if isinstance(shift, int):
        half_shift = shift - 1

        @always_comb
        def scale():
            halves.next = product >> half_shift
    else:
        @always_comb
        def scale():
            halves.next = product >> shift

    @always_comb
    def round_half_up():
        rounded.next = (halves + 1) >> 1

    if addend is None:
        @always(clk.posedge)
        def register():
            if ce:
                out.next = rounded
    else:
        @always(clk.posedge)
        def register():
            if ce:
                out.next = rounded + addend

    return multiply, scale, round_half_up, register


@block
def _d1_clamp(clk, ce, x, inv_vol, upper, lower, d1):
    """d1 = x inv_vol rounded into D, clamped to +-D_LIMIT (the model's clamp:
    a product out of range, or one that left 64 bits, takes the limit of its
    sign, and the sign of a non-zero product is its operands').  The limits
    come in as signals: a literal would make the comparison unsigned."""
    product = wide()
    halves = wide()
    rounded = wide()

    @always_comb
    def multiply():
        product.next = x * inv_vol

    @always_comb
    def scale():
        halves.next = product >> (SHIFT_D1 - 1)

    @always_comb
    def round_half_up():
        rounded.next = (halves + 1) >> 1

    @always(clk.posedge)
    def register():
        if ce:
            if rounded > upper:
                d1.next = upper
            elif rounded < lower:
                d1.next = lower
            else:
                d1.next = rounded[WORD:].signed()

    return multiply, scale, round_half_up, register


@block
def _add(clk, ce, a, b, out, subtract):
    if subtract:
        @always(clk.posedge)
        def register():
            if ce:
                out.next = a - b
    else:
        @always(clk.posedge)
        def register():
            if ce:
                out.next = a + b

    return register


@block
def _ncdf_argument(clk, ce, d, t, negative, saturated):
    """|d| / 8 as a 62-bit table argument; N is 0 or 1 from |d| >= 8."""
    magnitude = word()

    @always_comb
    def absolute():
        if d < 0:
            magnitude.next = -d
        else:
            magnitude.next = d

    @always(clk.posedge)
    def register():
        if ce:
            negative.next = d < 0
            saturated.next = magnitude >= NCDF_END_RAW
            t.next = magnitude[TABLE_FRAC - NCDF_ARG_SHIFT:] << NCDF_ARG_SHIFT

    return absolute, register


@block
def _ncdf_finish(clk, ce, p, one, negative, saturated, n):
    """Saturate at one (a signal, to compare signed), then N(-d) = 1 - N(d)."""
    bounded = word()

    @always_comb
    def bound():
        if saturated or p > one:
            bounded.next = one
        else:
            bounded.next = p

    @always(clk.posedge)
    def register():
        if ce:
            if negative:
                n.next = ONE_PROB - bounded
            else:
                n.next = bounded

    return bound, register


@block
def _split_table_argument(clk, ce, t, index, offset, seg_bits):
    """Segment index and offset (62 fraction bits) of a table argument."""
    low = TABLE_FRAC - seg_bits

    @always(clk.posedge)
    def register():
        if ce:
            index.next = t[TABLE_FRAC:low]
            offset.next = t[low:] << seg_bits

    return register


@block
def _split_exponent(clk, ce, z, whole, fraction):
    """int(z) and frac(z) (as a 62-bit table argument) of z in HALF_SQUARE, z >= 0."""
    @always(clk.posedge)
    def register():
        if ce:
            whole.next = z[WORD:HALF_SQUARE.frac_bits]
            fraction.next = z[HALF_SQUARE.frac_bits:] << (TABLE_FRAC - HALF_SQUARE.frac_bits)

    return register


@block
def _round_shift(clk, ce, value, shift, out):
    """Round-half-up ``value >> shift`` for value >= 0, 0 once the shift passes
    the word, as ``((2 value >> shift) + 1) >> 1``."""
    doubled = Signal(intbv(0)[WORD + 1:])
    shifted = Signal(intbv(0)[WORD + 1:])

    @always_comb
    def double():
        doubled.next = value[WORD:] << 1

    @always_comb
    def scale():
        shifted.next = doubled >> shift

    @always(clk.posedge)
    def register():
        if ce:
            out.next = (shifted + 1) >> 1

    return double, scale, register


@block
def _rom(clk, ce, index, out, contents):
    @always(clk.posedge)
    def read():
        if ce:
            out.next = contents[index]

    return read


@block
def leading_one(clk, ce, spot, top):
    """Position of the highest set bit of a positive word."""
    found = Signal(intbv(0)[6:])

    @always_comb
    def search():
        position = intbv(0)[6:]
        for place in range(WORD - 1):
            if spot[place]:
                position[:] = place
        found.next = position

    @always(clk.posedge)
    def register():
        if ce:
            top.next = found

    return search, register


@block
def _normalize(clk, ce, spot, top, t, exponent):
    """m - 1 = S 2**(62 - top) - 1 as a table argument (the leading one falls
    off the 62-bit result), and e = top - MONEY's fraction bits."""
    @always(clk.posedge)
    def register():
        if ce:
            t.next = spot[WORD:] << (TABLE_FRAC - top)
            exponent.next = top - MONEY_FRAC

    return register


@block
def _scale_ln2(clk, ce, exponent, ln2, out):
    """e ln 2 in LOG (exact: a small integer times the LOG constant)."""
    @always(clk.posedge)
    def register():
        if ce:
            out.next = exponent * ln2

    return register


@block
def _ln_spot(clk, ce, scaled, ln_m, out):
    """ln S = e ln 2 + LN(m - 1) rounded from 62 to LOG's fraction bits."""
    @always(clk.posedge)
    def register():
        if ce:
            out.next = scaled + ((ln_m + (1 << (TABLE_FRAC - LOG_FRAC - 1))) >> (TABLE_FRAC - LOG_FRAC))

    return register


@block
def _select_probabilities(clk, ce, is_put, n1, n2, asset_prob, cash_prob):
    @always(clk.posedge)
    def register():
        if ce:
            if is_put:
                asset_prob.next = ONE_PROB - n1
                cash_prob.next = ONE_PROB - n2
            else:
                asset_prob.next = n1
                cash_prob.next = n2

    return register


@block
def _gamma_shift(clk, ce, exponent, shift_less_one):
    """The gamma product's shift less one: SHIFT_GAMMA + e - 1."""
    @always(clk.posedge)
    def register():
        if ce:
            shift_less_one.next = SHIFT_GAMMA - 1 + exponent

    return register


@block
def _combine(clk, ce, is_put, asset_leg, cash_leg, delta_magnitude, rate_leg, carry_leg, decay,
             price, delta, theta):
    @always(clk.posedge)
    def register():
        if ce:
            if is_put:
                price.next = cash_leg - asset_leg
                delta.next = -delta_magnitude
                theta.next = rate_leg - carry_leg - decay
            else:
                price.next = asset_leg - cash_leg
                delta.next = delta_magnitude
                theta.next = carry_leg - rate_leg - decay

    return register


# --- pipeline bookkeeping -------------------------------------------------

class Pipeline:
    """Signals tagged with the stage they are valid at; operands are delayed
    to a common stage on demand (one delay chain per signal, shared)."""

    def __init__(self, clk, ce):
        self.clk = clk
        self.ce = ce
        self.instances = []
        self.stage = {}
        self._delayed = {}
        self._constants = {}
        self._constant_ids = set()

    def later(self, make, *args):
        # Blocks must be called from the body of a block, so the pipeline
        # only records what to instantiate; the top level makes them.
        self.instances.append((make, args))

    def source(self, sig, stage=0):
        self.stage[id(sig)] = stage
        return sig

    def at(self, sig, stage):
        if id(sig) in self._constant_ids:
            return sig
        have = self.stage[id(sig)]
        if have > stage:
            raise ValueError(f"signal needed at stage {stage} is only valid at {have}")
        while have < stage:
            key = (id(sig), have + 1)
            if key not in self._delayed:
                delayed = Signal(sig.val)
                self.later(_delay, self.clk, self.ce, self.at(sig, have), delayed)
                self._delayed[key] = delayed
                self.stage[id(delayed)] = have + 1
            have += 1
        return self._delayed[(id(sig), stage)] if stage > self.stage[id(sig)] else sig

    def align(self, *signals, stage=None):
        if stage is None:
            # A constant is valid at every stage.
            stage = max(self.stage[id(s)] for s in signals if id(s) not in self._constant_ids)
        return stage, [self.at(s, stage) for s in signals]

    def constant(self, value):
        if value not in self._constants:
            sig = word(value)
            self.later(_constant, self.clk, sig, value)
            self._constants[value] = sig
            self._constant_ids.add(id(sig))
        return self._constants[value]

    def produced(self, stage, *signals):
        for sig in signals:
            self.stage[id(sig)] = stage + 1
        return signals[0] if len(signals) == 1 else signals

    def mul(self, a, b, shift, addend=None):
        operands = (a, b) if addend is None else (a, b, addend)
        stage, aligned = self.align(*operands)
        if not isinstance(shift, int):
            shift = self.at(shift, stage)
        out = word()
        self.later(mul_round_stage, self.clk, self.ce, aligned[0], aligned[1], out, shift,
                                         aligned[2] if addend is not None else None)
        return self.produced(stage, out)

    def add(self, a, b, subtract=False):
        stage, (a, b) = self.align(a, b)
        out = word()
        self.later(_add, self.clk, self.ce, a, b, out, subtract)
        return self.produced(stage, out)

    def op(self, make, inputs, outputs):
        stage, aligned = self.align(*inputs)
        self.later(make, self.clk, self.ce, *aligned, *outputs)
        return self.produced(stage, *outputs)

    def lookup(self, name, t):
        """Cubic table ``name`` at t (62-bit argument): split, ROM, Horner."""
        seg_bits = TABLE_SPECS[name].seg_bits
        coefs = table(name)
        index = Signal(intbv(0)[seg_bits:])
        offset = word()
        stage, (t,) = self.align(t)
        self.later(_split_table_argument, self.clk, self.ce, t, index, offset, seg_bits)
        self.produced(stage, index, offset)

        def coefficient(k, at_stage):
            out = word()
            self.later(_rom, self.clk, self.ce, self.at(index, at_stage - 1), out,
                                       tuple(int(c) for c in coefs[:, k]))
            return self.produced(at_stage - 1, out)

        acc = coefficient(DEGREE, stage + 2)
        for k in range(DEGREE - 1, -1, -1):
            acc = self.mul(acc, offset, TABLE_FRAC, addend=coefficient(k, self.stage[id(acc)]))
        return acc


@block
def pricer_datapath(clk, rst, s_option: OptionPort, m_greeks: ResultPort):
    """The per-option pipeline (see the module docstring for the stage map)."""
    ce = Signal(bool(0))
    pipe = Pipeline(clk, ce)
    src = {name: pipe.source(getattr(s_option, name)) for name in OPTION_FIELDS}
    is_put = pipe.source(s_option.is_put)
    exponent = pipe.source(s_option.exponent)

    x = pipe.add(src["ln_spot"], src["log_offset"])
    sa = pipe.mul(src["spot"], src["carry_disc"], SHIFT_SA)
    d1 = pipe.op(_d1_clamp, [x, src["inv_vol"], pipe.constant(D_LIMIT_RAW),
                             pipe.constant(-D_LIMIT_RAW)], [word()])
    d2 = pipe.add(d1, src["total_vol"], subtract=True)

    def ncdf(d):
        t = Signal(intbv(0)[TABLE_FRAC:])
        negative, saturated = Signal(bool(0)), Signal(bool(0))
        pipe.op(_ncdf_argument, [d], [t, negative, saturated])
        p = pipe.lookup("NCDF", t)
        return pipe.op(_ncdf_finish, [p, pipe.constant(ONE_PROB), negative, saturated], [word()])

    n1 = ncdf(d1)
    n2 = ncdf(d2)

    half_square = pipe.mul(d1, d1, SHIFT_HALF_SQUARE)
    z = pipe.mul(half_square, pipe.constant(INV_LN2_PROB), TABLE_FRAC)
    whole = Signal(intbv(0)[WORD - HALF_SQUARE.frac_bits:])
    fraction = Signal(intbv(0)[TABLE_FRAC:])
    pipe.op(_split_exponent, [z], [whole, fraction])
    power = pipe.lookup("EXP2", fraction)
    base = pipe.mul(power, pipe.constant(INV_SQRT_2PI_PROB), TABLE_FRAC)
    phi = pipe.op(_round_shift, [base, whole], [word()])

    asset_prob, cash_prob = pipe.op(_select_probabilities, [is_put, n1, n2], [word(), word()])
    asset_leg = pipe.mul(sa, asset_prob, SHIFT_MONEY_PROB)
    cash_leg = pipe.mul(src["strike_disc"], cash_prob, SHIFT_MONEY_PROB)
    delta_magnitude = pipe.mul(src["carry_disc"], asset_prob, SHIFT_DELTA)
    rate_leg = pipe.mul(src["rate_strike_disc"], cash_prob, SHIFT_MONEY_PROB)
    carry_leg = pipe.mul(asset_leg, src["carry_rate"], SHIFT_CARRY)

    gamma_s = pipe.mul(phi, src["inv_vol"], SHIFT_GAMMA_S)
    gamma_s = pipe.mul(gamma_s, src["carry_disc"], SHIFT_GAMMA_S_DISC)
    gamma_shift = pipe.op(_gamma_shift, [exponent], [Signal(intbv(0)[EXPONENT_BITS:])])
    gamma = pipe.mul(gamma_s, src["recip_m"], gamma_shift)
    sa_phi = pipe.mul(sa, phi, SHIFT_MONEY_PROB)
    vega = pipe.mul(sa_phi, src["sqrt_t"], SHIFT_VEGA)
    decay = pipe.mul(sa_phi, src["half_vol_rate"], SHIFT_DECAY)

    price, delta, theta = pipe.op(
        _combine, [is_put, asset_leg, cash_leg, delta_magnitude, rate_leg, carry_leg, decay],
        [word(), word(), word()])

    last = max(pipe.stage[id(s)] for s in (price, gamma, vega))
    assert last == LATENCY_CYCLES, f"pipeline depth {last}, LATENCY_CYCLES says {LATENCY_CYCLES}"
    results = dict(price=price, delta=delta, gamma=gamma, vega=vega, theta=theta, d1=d1, d2=d2)
    for name, sig in results.items():
        if hasattr(m_greeks, name):
            pipe.later(_connect, pipe.at(sig, last), getattr(m_greeks, name))
    tag_out = pipe.at(pipe.source(s_option.tag), last)

    taken = Signal(bool(0))

    @always_comb
    def enable():
        ce.next = m_greeks.ready or not m_greeks.valid

    @always_comb
    def handshake():
        s_option.ready.next = ce
        taken.next = s_option.valid and ce

    valid_chain = _valid_chain(clk, rst, ce, taken, m_greeks.valid, last)

    @always_comb
    def tag():
        m_greeks.tag.next = tag_out

    parts = []
    for make, args in pipe.instances:
        parts.append(make(*args))
    return parts, enable, handshake, valid_chain, tag


@block
def spot_front(clk, rst, s_spot: SpotPort, m_terms: SpotTermsPort):
    """ln S, 1/m and e of each new spot (once per spot; the option pipeline
    takes them with every option of the underlying).  Stages: 1 leading one,
    2 m - 1 and e, 3 e ln 2, 3..7 LN and RECIP lookups, 8 ln S
    (:data:`SPOT_LATENCY_CYCLES`)."""
    ce = Signal(bool(0))
    pipe = Pipeline(clk, ce)
    spot = pipe.source(s_spot.spot)
    top = pipe.op(leading_one, [spot], [Signal(intbv(0)[6:])])
    t = Signal(intbv(0)[TABLE_FRAC:])
    exponent = Signal(intbv(0, min=-(1 << (EXPONENT_BITS - 1)), max=1 << (EXPONENT_BITS - 1)))
    pipe.op(_normalize, [spot, top], [t, exponent])
    scaled = pipe.op(_scale_ln2, [exponent, pipe.constant(LN2_LOG)], [word()])
    ln_m = pipe.lookup("LN", t)
    recip_m = pipe.lookup("RECIP", t)
    ln_spot = pipe.op(_ln_spot, [scaled, ln_m], [word()])
    last = pipe.stage[id(ln_spot)]
    assert last == SPOT_LATENCY_CYCLES, f"spot front depth {last}, SPOT_LATENCY_CYCLES says {SPOT_LATENCY_CYCLES}"
    for name, sig in dict(spot=spot, ln_spot=ln_spot, recip_m=recip_m, exponent=exponent,
                          tag=pipe.source(s_spot.tag)).items():
        pipe.later(_connect, pipe.at(sig, last), getattr(m_terms, name))
    taken = Signal(bool(0))

    @always_comb
    def enable():
        ce.next = m_terms.ready or not m_terms.valid

    @always_comb
    def handshake():
        s_spot.ready.next = ce
        taken.next = s_spot.valid and ce

    valid_chain = _valid_chain(clk, rst, ce, taken, m_terms.valid, last)
    parts = []
    for make, args in pipe.instances:
        parts.append(make(*args))
    return parts, enable, handshake, valid_chain


@block
def pricer(clk, rst, s_spot: SpotPort, m_spot: SpotTermsPort, s_option: OptionPort,
           m_greeks: ResultPort):
    """The pricer's two pipelines side by side: spot terms, per-option results."""
    front = spot_front(clk, rst, s_spot, m_spot)
    datapath = pricer_datapath(clk, rst, s_option, m_greeks)
    return front, datapath


@block
def _connect(a, out):
    @always_comb
    def drive():
        out.next = a

    return drive


@block
def _valid_chain(clk, rst, ce, taken, valid_out, depth):
    """Which stages hold an option; the only registers that need a reset."""
    stages = Signal(intbv(0)[depth:])

    @always_seq(clk.posedge, reset=rst)
    def shift():
        if ce:
            stages.next = concat(stages[depth - 1:], taken)

    @always_comb
    def last():
        valid_out.next = stages[depth - 1]

    return shift, last

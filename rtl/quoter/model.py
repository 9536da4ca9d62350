"""Bit-accurate model of the quoter; this is the block's specification.

For every theoretical value of the pricer (one word of
:mod:`rtl.common.theo_stream`) the quoter makes a two-sided quote and tells
whether it moved enough to be worth sending; the result is one word of
:mod:`rtl.quoter.stream` for the risk gate.  All parameters are host
registers (:class:`QuoterSettings`, the per-option :attr:`positions`).

Units.  Quote prices are price4 integers (4 implied decimals, as OUCH 5.0
prices).  The theo arrives in MONEY (``raw / 2**40`` dollars) and is brought
to *QP* -- price4 units with :data:`QP_FRAC` fraction bits -- rounded half
up: ``theo_qp = (raw * 10000 + 2**23) >> 24``.  The half-spread, minimum
edge and requote threshold are price4 integers; the skew is QP per contract
(signed), positions are contracts (signed).  Every intermediate below fits a
signed 64-bit word.

Per side::

    bid_qp = theo_qp - half_spread * 2**16 - skew * position
    ask_qp = theo_qp + half_spread * 2**16 - skew * position
    bid_n  = floor(bid_qp / 2**16)        ask_n = ceil(ask_qp / 2**16)

then onto the tick grid, down for the bid and up for the ask.  The tick
table has :data:`TICK_BANDS` entries (start price, tick size, reciprocal);
the band of a price ``n`` is the highest-numbered entry with a non-zero size
whose start is at or below ``n``.  The bid is ``floor(bid_n / t) * t`` with
``t`` the tick of ``bid_n``'s band, the ask ``ceil(ask_n / t) * t`` with the
tick of ``ask_n``'s band.  On a table whose starts are multiples of their
own tick and of the tick below (:func:`check_tick_table`; 3.00 between 0.01
and 0.05, say) this is the nearest valid price at or below (at or above) the
unrounded one.  The hardware divides by multiplying with the entry's
reciprocal, which must be ``(2**32 - 1) // size`` (:func:`tick_recip`); an
entry whose reciprocal is not gives no price.

A side is quoted unless, first reason wins (each counted per side):

* ``no_price``: ``bid_n`` / ``ask_n`` outside ``[1, 2**32 - 1]``, no band
  applies, or the rounded price is 0 (bid) or above ``2**32 - 1`` (ask);
* ``bad_tick``: the band's reciprocal is not ``(2**32 - 1) // size``;
* ``below_edge``: its edge after rounding, ``theo_qp - bid * 2**16`` or
  ``ask * 2**16 - theo_qp``, is below ``min_edge * 2**16`` (a position
  skew can push a side through theo; such a side is not quoted);
* ``zero_size``: its size register is 0.

Requote.  The quoter keeps, per option, the last quote it flagged.  A side
*moved* when it is quoted now and was not then or the other way round, or
when it is quoted in both and its price differs by at least the requote
threshold (0 counts as 1: any move).  A word is flagged ``requote`` when a
side moved or the option has no flagged quote since reset or since the host
toggled ``requote_all`` (do that after changing sizes, spreads or ticks:
only prices and sides are compared).  Flagged words become the new
reference; the others leave it alone, so a drift of several small steps
requotes once it adds up to the threshold.

Options outside the table (``option_id >= options``) are counted and
dropped: no word.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from host.quoting.records import SIDE_ASK, SIDE_BID

OPTIONS = 64
TICK_BANDS = 4
QP_FRAC = 16
PRICE4_SCALE = 10_000
# MONEY has 40 fraction bits; QP = price4 * 2**16, so MONEY -> QP divides by 2**24.
THEO_SHIFT = 24
PRICE_MAX = (1 << 32) - 1
RECIP_NUMERATOR = (1 << 32) - 1
COUNTER_MASK = 0xFFFF_FFFF

SIDE_REASONS = ("no_price", "bad_tick", "below_edge", "zero_size")
COUNTERS = ("theos", "bad_option", "requotes") + tuple(
    f"{side}_{reason}" for side in ("bid", "ask") for reason in SIDE_REASONS)


def tick_recip(size: int) -> int:
    """The reciprocal register value the hardware needs for a tick size."""
    if not 1 <= size < 1 << 16:
        raise ValueError(f"tick size {size} outside 1..65535 price4 units")
    return RECIP_NUMERATOR // size


@dataclass(frozen=True)
class TickBand:
    """One tick-table entry as the registers hold it: prices from ``start``
    (price4) up go in steps of ``size`` (price4); ``size`` 0 = unused."""

    start: int
    size: int
    recip: int | None = None

    def __post_init__(self):
        if self.recip is None:
            object.__setattr__(self, "recip", tick_recip(self.size) if self.size else 0)
        for name, bits in (("start", 32), ("size", 16), ("recip", 32)):
            value = getattr(self, name)
            if not 0 <= value < 1 << bits:
                raise ValueError(f"tick band {name}={value} does not fit {bits} bits")

    @property
    def consistent(self) -> bool:
        return self.size != 0 and self.recip == RECIP_NUMERATOR // self.size


UNUSED_BAND = TickBand(0, 0, 0)
# Options' penny pilot: $0.01 below $3.00, $0.05 from $3.00 up.
DEFAULT_TICKS = (TickBand(0, 100), TickBand(30_000, 500), UNUSED_BAND, UNUSED_BAND)


def check_tick_table(bands: Sequence[TickBand]) -> None:
    """Raise ValueError unless the used entries ascend and each start is a
    multiple of its own tick and of the tick of the band below -- what makes
    the rounding land on valid prices at band boundaries."""
    used = [b for b in bands if b.size]
    if not used:
        raise ValueError("the tick table has no entry")
    previous = None
    for band in used:
        if not band.consistent:
            raise ValueError(f"tick band {band}: recip must be {RECIP_NUMERATOR // band.size}")
        if band.start % band.size:
            raise ValueError(f"tick band start {band.start} is not a multiple of its tick "
                             f"{band.size}")
        if previous is not None:
            if band.start <= previous.start:
                raise ValueError("tick bands must ascend by start")
            if band.start % previous.size:
                raise ValueError(f"tick band start {band.start} is not a multiple of the "
                                 f"tick below ({previous.size})")
        previous = band


def _fits(value: int, bits: int, signed: bool) -> bool:
    if signed:
        return -(1 << (bits - 1)) <= value < 1 << (bits - 1)
    return 0 <= value < 1 << bits


@dataclass(frozen=True)
class QuoterSettings:
    """The quoter's parameter registers (raw values)."""

    half_spread: int = 0          # price4
    skew: int = 0                 # QP per contract, signed
    bid_size: int = 0             # contracts
    ask_size: int = 0
    min_edge: int = 0             # price4
    requote_threshold: int = 0    # price4
    ticks: tuple[TickBand, ...] = DEFAULT_TICKS

    def __post_init__(self):
        for name in ("half_spread", "bid_size", "ask_size", "min_edge", "requote_threshold"):
            if not _fits(getattr(self, name), 32, False):
                raise ValueError(f"{name}={getattr(self, name)} does not fit 32 bits")
        if not _fits(self.skew, 32, True):
            raise ValueError(f"skew={self.skew} does not fit a signed 32-bit register")
        ticks = tuple(self.ticks)
        if len(ticks) > TICK_BANDS:
            raise ValueError(f"the tick table has {TICK_BANDS} entries, got {len(ticks)}")
        object.__setattr__(self, "ticks", ticks + (UNUSED_BAND,) * (TICK_BANDS - len(ticks)))


def theo_to_qp(theo_raw: int) -> int:
    """MONEY raw -> price4 units with 16 fraction bits, rounded half up."""
    return (theo_raw * PRICE4_SCALE + (1 << (THEO_SHIFT - 1))) >> THEO_SHIFT


def band_of(n: int, ticks: Sequence[TickBand]) -> int | None:
    """Index of the tick band of price ``n``, or None."""
    found = None
    for i, band in enumerate(ticks):
        if band.size and band.start <= n:
            found = i
    return found


@dataclass
class SideQuote:
    price: int = 0
    size: int = 0
    reason: str | None = None      # None: quoted

    @property
    def quoted(self) -> bool:
        return self.reason is None


def quote_side(theo_qp: int, unrounded_qp: int, is_bid: bool, size: int,
               settings: QuoterSettings) -> SideQuote:
    """One side of the quote: price on the grid, or why not (first reason)."""
    if is_bid:
        n = unrounded_qp >> QP_FRAC
    else:
        n = -((-unrounded_qp) >> QP_FRAC)
    if not 1 <= n <= PRICE_MAX:
        return SideQuote(reason="no_price")
    band = band_of(n, settings.ticks)
    if band is None:
        return SideQuote(reason="no_price")
    tick = settings.ticks[band]
    if not tick.consistent:
        return SideQuote(reason="bad_tick")
    if is_bid:
        price = (n // tick.size) * tick.size
        if price == 0:
            return SideQuote(reason="no_price")
        edge = theo_qp - (price << QP_FRAC)
    else:
        price = ((n - 1) // tick.size + 1) * tick.size
        if price > PRICE_MAX:
            return SideQuote(reason="no_price")
        edge = (price << QP_FRAC) - theo_qp
    if edge < settings.min_edge << QP_FRAC:
        return SideQuote(reason="below_edge")
    if size == 0:
        return SideQuote(reason="zero_size")
    return SideQuote(price, size)


@dataclass
class LastQuote:
    """The quote of an option's last flagged word."""

    valid: bool = False
    sides: int = 0
    bid: int = 0
    ask: int = 0


@dataclass
class QuoterModel:
    settings: QuoterSettings = field(default_factory=QuoterSettings)
    options: int = OPTIONS

    def __post_init__(self):
        self.positions = [0] * self.options
        self.last = [LastQuote() for _ in range(self.options)]
        self.counters = {name: 0 for name in COUNTERS}

    # ---- host side ------------------------------------------------------------
    def configure(self, **changes) -> None:
        """Change parameter registers by name (QuoterSettings fields)."""
        self.settings = replace(self.settings, **changes)

    def set_position(self, option: int, contracts: int) -> None:
        if not 0 <= option < self.options:
            raise ValueError(f"option {option} outside the position table (0..{self.options - 1})")
        if not _fits(contracts, 32, True):
            raise ValueError(f"position {contracts} does not fit a signed 32-bit register")
        self.positions[option] = contracts

    def requote_all(self) -> None:
        """The host toggled ``requote_all``: every option's next word requotes."""
        for entry in self.last:
            entry.valid = False

    # ---- data path ------------------------------------------------------------
    def _count(self, name: str) -> None:
        self.counters[name] = (self.counters[name] + 1) & COUNTER_MASK

    def quote(self, theo: dict) -> dict | None:
        """The quote word (field dict of :mod:`rtl.quoter.stream`) for one theo
        word's fields, or None when the option is outside the table."""
        self._count("theos")
        option = theo["option_id"]
        if option >= self.options:
            self._count("bad_option")
            return None
        s = self.settings
        position = self.positions[option]
        theo_qp = theo_to_qp(theo["price"])
        skew_term = s.skew * position
        spread = s.half_spread << QP_FRAC
        bid = quote_side(theo_qp, theo_qp - spread - skew_term, True, s.bid_size, s)
        ask = quote_side(theo_qp, theo_qp + spread - skew_term, False, s.ask_size, s)
        for name, side in (("bid", bid), ("ask", ask)):
            if not side.quoted:
                self._count(f"{name}_{side.reason}")
        sides = (SIDE_BID if bid.quoted else 0) | (SIDE_ASK if ask.quoted else 0)

        last = self.last[option]
        threshold = max(s.requote_threshold, 1)

        def moved(mask: int, new: int, old: int) -> bool:
            if (sides & mask) != (last.sides & mask):
                return True
            return bool(sides & mask) and abs(new - old) >= threshold

        requote = not last.valid or moved(SIDE_BID, bid.price, last.bid) or \
            moved(SIDE_ASK, ask.price, last.ask)
        if requote:
            self._count("requotes")
            self.last[option] = LastQuote(True, sides, bid.price, ask.price)
        return {
            "option_id": option, "underlying": theo["underlying"], "flags": theo["flags"],
            "sides": sides, "requote": int(requote),
            "bid_price": bid.price, "ask_price": ask.price,
            "bid_size": bid.size, "ask_size": ask.size,
            "position": position, "theo": theo["price"], "theo_qp": theo_qp,
            "delta": theo["delta"], "seq": theo["seq"], "msg_index": theo["msg_index"],
            "ingress_cycle": theo["ingress_cycle"],
        }

    def run(self, theos: Iterable[dict]) -> list[dict]:
        out = []
        for theo in theos:
            word = self.quote(theo)
            if word is not None:
                out.append(word)
        return out

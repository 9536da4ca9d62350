"""Bit-accurate model of the chain pricer; this is the block's specification.

The chain pricer sits behind the order book: book-update records in
(``host.book.records.BOOK_UPDATE_DTYPE``, ``tdest`` 0; trade records,
``tdest`` 1, are counted and ignored), one theoretical-value word per option
out (:mod:`rtl.common.theo_stream`).  Per update record:

1. **Verdict.**  A packet whose length is not the record's (144 bytes for an
   update, 56 for a trade) or that carries a frame error is ``malformed``.
   A well-formed update gets exactly one of, in this order:
   ``untracked`` (its locate is in no enabled entry of the underlying table,
   or the entry has no options), ``one_sided`` (best bid or best ask price or
   shares zero), ``out_of_range`` (reference price outside
   [SPOT_MIN, SPOT_MAX)), ``unchanged`` (same reference price *and* same flags
   as the last accepted update of the underlying: a flag change alone, say a
   halt, must still reach the quoter), ``accepted``.
2. **Reference price** S in MONEY from the best levels (price4 integers):

   * mid: ``S = mul_round(bid + ask, PRICE_SCALE, PRICE_SCALE_SHIFT + 1)``
   * microprice (``CONTROL.microprice``), the size-weighted
     ``(bid Q_ask + ask Q_bid) / (Q_bid + Q_ask) = bid + (ask - bid) w`` with
     ``w = Q_bid / D``, ``D = Q_bid + Q_ask = 2**top (1 + t)``:
     ``w = mul_round(Q_bid, RECIP(t), top)`` (62 fraction bits; RECIP is the
     pricer's table), ``S = mul_round(bid, PRICE_SCALE, 36)
     + mul_round(mul_round(ask - bid, PRICE_SCALE, 36), w, 62)``.

   ``PRICE_SCALE = round(2**76 / 10**4)``: price4 to MONEY to well under one
   MONEY unit.
3. **Pending.**  An accepted update stores (S with its spot terms, flags,
   seq, msg_index, ingress cycle) as its underlying's pending price.  If the
   underlying was already pending, the older price is replaced, never priced,
   and counted ``coalesced``; it keeps its place in the queue.  Pending
   underlyings are walked oldest first.
4. **Walk.**  Taking a pending underlying prices rows ``first .. first +
   count - 1`` of the parameter table at its S (:func:`rtl.pricer.model.price_chain`,
   spot terms once) and emits one theo word per row: ``option_id`` the row,
   ``underlying`` the locate, ``flags``/``seq``/``msg_index``/``ingress_cycle``
   of the record, ``spot`` S, the five outputs, ``last`` on the final row.
   Row ``r`` goes out on lane ``r % lanes``; every lane keeps row order and
   walks never interleave.

When walks are taken depends on the output's pace, which the model does not
simulate: :meth:`ChainModel.take` is called where the fabric's walker takes
the oldest pending underlying (as soon as it is idle or issues the last
group of the walk before).  :meth:`ChainModel.run` takes after every
record, which is what the fabric does when the output keeps up.

**Scenarios.**  The host loads up to ``scenarios`` rows of raw factors (all
DISC): spot factor ``f`` (1 + relative spot shift), vol factor ``k`` (1 +
relative volatility shift), ``1/k`` and ``(k**2 - 1) / 2``.  A run snapshots
the last accepted S of every underlying and, scenario by scenario, walks
every enabled entry at ``S' = mul_round(S, f, 61)`` with each row's
volatility terms scaled (:func:`scale_rows`: total_vol, half_vol_rate times
k, inv_vol times 1/k, log_offset plus ``(k**2 - 1) / 2 * total_vol**2``).
An entry without an accepted price, or whose S' leaves the spot range, is
skipped and counted.  Per scenario the fabric sums, exactly, over the priced
rows with the position table's signed contracts: value ``pos * price``,
dollar delta ``pos * mul_round(delta, S', 61)``, ``pos * vega`` and
``pos * theta`` (all MONEY raw, 128-bit sums).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

import numpy as np
from numba import njit

from host.book.records import BOOK_UPDATE_DTYPE, TRADE_DTYPE
from rtl.common.theo_stream import THEO_FIELDS
from rtl.order_book.model import TDEST_TRADE, TDEST_UPDATE
from rtl.pricer import formats as fx
from rtl.pricer.model import mul_round, price_chain, table_eval

OPTIONS = 1024
UNDERLYINGS = 64
LANES = 4
SCENARIOS = 64

# Verdicts of a well-formed update, in check order.
VERDICTS = ("untracked", "one_sided", "out_of_range", "unchanged", "accepted")
# Counter names in register order.
COUNTERS = (
    "updates",            # well-formed update records
    "trades",             # well-formed trade records (ignored)
    "malformed",          # packets of the wrong length or with a frame error (dropped)
    *VERDICTS[:-1],
    "accepted",
    "coalesced",          # accepted prices replaced while pending (never priced)
    "walks",              # chain walks of live prices
    "options",            # theo words out
    "scenario_walks",     # chain walks of a scenario run (skipped ones included)
    "scenario_options",   # options priced in scenario runs
    "scenario_skipped",   # scenario walks without a price or with S' out of range
)
# Sticky DROP_STATUS bits: something was lost or refused since the host last looked.
STICKY = ("malformed", "one_sided", "out_of_range", "coalesced", "bad_config", "scenario_skipped")
COUNTER_MASK = 0xFFFF_FFFF

REF_MID, REF_MICROPRICE = 0, 1
PRICE4_ONE = 10_000
PRICE_SCALE_SHIFT = 36
PRICE_SCALE = (2 ** (fx.MONEY.frac_bits + PRICE_SCALE_SHIFT) + PRICE4_ONE // 2) // PRICE4_ONE
assert PRICE_SCALE < 1 << 63
WEIGHT_FRAC = fx.PROB.frac_bits            # microprice weight: 62 fraction bits
SPOT_MIN_RAW = fx.MONEY.from_real(fx.SPOT_MIN)
SPOT_LIMIT_RAW = fx.MONEY.from_real(fx.SPOT_MAX)   # exclusive

# Scenario factors (DISC raw) and the formats of the scaled terms.
FACTOR_FRAC = fx.DISC.frac_bits
TOTAL_VAR_SHIFT = 2 * fx.D.frac_bits - fx.LOG.frac_bits      # total_vol**2 into LOG
SCENARIO_FIELDS = ("spot_factor", "vol_factor", "inv_vol_factor", "var_offset")
# Parameter-table fields the host writes (the datapath's; total_var is made on writing).
ROW_FIELDS = ("log_offset", "inv_vol", "total_vol", "sqrt_t", "half_vol_rate", "carry_disc",
              "strike_disc", "carry_rate", "rate_strike_disc")
SPOT_SHIFT_RANGE = (-0.5, 1.0)          # relative shift of S: factor in [0.5, 2]
VOL_SHIFT_RANGE = (-0.7, 1.0)           # relative shift of sigma: factor in [0.3, 2]
RESULTS = ("value", "delta_dollars", "vega", "theta")
RESULT_BITS = 128
POSITION_BITS = 32

UPDATE_BYTES = BOOK_UPDATE_DTYPE.itemsize
TRADE_BYTES = TRADE_DTYPE.itemsize

THEO_DTYPE = np.dtype([(name, np.uint64 if name == "seq" else np.int64) for name, _ in THEO_FIELDS]
                      + [("lane", np.int64)])


class ConfigError(ValueError):
    """A table write the block refuses (counted in DROP_STATUS.seen_bad_config)."""


@dataclass(frozen=True)
class ChainConfig:
    """Build parameters: table rows, underlying entries, lanes, scenario rows."""

    options: int = OPTIONS
    underlyings: int = UNDERLYINGS
    lanes: int = LANES
    scenarios: int = SCENARIOS

    def __post_init__(self):
        if self.lanes < 1 or self.lanes & (self.lanes - 1) or self.lanes > 8:
            raise ValueError("lanes must be a power of two up to 8")
        if self.options & (self.options - 1) or not 2 * self.lanes <= self.options <= 1 << 14:
            # A power of two: each lane's bank is a power of two deep, so a
            # group's bank addresses wrap inside it.
            raise ValueError("options must be a power of two from 2 * lanes to 16384")
        if not 1 <= self.underlyings <= 256 or not 1 <= self.scenarios <= 256:
            raise ValueError("underlyings and scenarios: 1..256")

    @property
    def row_bits(self) -> int:
        return max(1, (self.options - 1).bit_length())

    @property
    def count_bits(self) -> int:
        return self.options.bit_length()

    @property
    def underlying_bits(self) -> int:
        return max(1, (self.underlyings - 1).bit_length())

    @property
    def scenario_bits(self) -> int:
        return max(1, (self.scenarios - 1).bit_length())


class Entry(NamedTuple):
    """One row of the underlying table: the rows ``first .. first + count - 1``
    of the parameter table belong to the stock ``locate``."""

    locate: int = 0
    first: int = 0
    count: int = 0
    enabled: bool = False


class Context(NamedTuple):
    """An accepted price and the record it came from."""

    spot: int
    flags: int
    seq: int
    msg_index: int
    ingress_cycle: int


class Walk(NamedTuple):
    index: int            # underlying-table entry
    entry: Entry
    context: Context


class Scenario(NamedTuple):
    """Raw DISC factors of one scenario (see :data:`SCENARIO_FIELDS`)."""

    spot_factor: int
    vol_factor: int
    inv_vol_factor: int
    var_offset: int


class ScenarioResult(NamedTuple):
    value: int
    delta_dollars: int
    vega: int
    theta: int
    options: int
    skipped: int


@dataclass
class BestLevels:
    """What the chain pricer reads of a book-update record."""

    locate: int
    flags: int
    msg_index: int
    seq: int
    bid: int
    bid_shares: int
    ask: int
    ask_shares: int


def parse_update(data: bytes) -> BestLevels:
    row = np.frombuffer(data, dtype=BOOK_UPDATE_DTYPE, count=1)[0]
    return BestLevels(int(row["stock_locate"]), int(row["flags"]), int(row["msg_index"]),
                      int(row["seq"]), int(row["bid_price"][0]), int(row["bid_shares"][0]),
                      int(row["ask_price"][0]), int(row["ask_shares"][0]))


def _mul(a: int, b: int, shift: int) -> int:
    value, fits = mul_round(np.int64(a), np.int64(b), shift)
    if not fits:
        raise OverflowError("product left 64 bits")
    return int(value)


def price4_to_money(price4: int) -> int:
    return _mul(price4, PRICE_SCALE, PRICE_SCALE_SHIFT)


def microprice_weight(bid_shares: int, ask_shares: int) -> int:
    """``Q_bid / (Q_bid + Q_ask)`` with 62 fraction bits (both sizes >= 1)."""
    total = bid_shares + ask_shares
    top = total.bit_length() - 1
    t = (total << (WEIGHT_FRAC - top)) - (1 << WEIGHT_FRAC)
    recip = int(table_eval("RECIP", np.array([t], dtype=np.int64))[0])
    return _mul(bid_shares, recip, top)


def reference_price(levels: BestLevels, mode: int) -> int:
    """S in MONEY from a two-sided book (the mid or the microprice)."""
    if mode == REF_MID:
        return _mul(levels.bid + levels.ask, PRICE_SCALE, PRICE_SCALE_SHIFT + 1)
    weight = microprice_weight(levels.bid_shares, levels.ask_shares)
    spread = _mul(levels.ask - levels.bid, PRICE_SCALE, PRICE_SCALE_SHIFT)
    return price4_to_money(levels.bid) + _mul(spread, weight, WEIGHT_FRAC)


@njit(cache=True)
def _scale_column(values, factor, shift):
    out = np.empty_like(values)
    for i in range(values.shape[0]):
        out[i] = mul_round(values[i], factor, shift)[0]
    return out


def total_variance(total_vol: np.ndarray) -> np.ndarray:
    """total_vol**2 in LOG, as the fabric stores it beside each row."""
    total_vol = np.ascontiguousarray(total_vol, dtype=np.int64)
    out = np.empty_like(total_vol)
    for i, v in enumerate(total_vol.tolist()):
        out[i] = _mul(v, v, TOTAL_VAR_SHIFT)
    return out


def scale_rows(rows: np.ndarray, scenario: Scenario) -> np.ndarray:
    """Parameter rows with the volatility terms of a scenario's vol factor."""
    out = rows.copy()
    total_vol = np.ascontiguousarray(rows["total_vol"], dtype=np.int64)
    for name, factor in (("total_vol", scenario.vol_factor),
                         ("half_vol_rate", scenario.vol_factor),
                         ("inv_vol", scenario.inv_vol_factor)):
        out[name] = _scale_column(np.ascontiguousarray(rows[name], dtype=np.int64),
                                  np.int64(factor), FACTOR_FRAC)
    out["log_offset"] = rows["log_offset"] + _scale_column(
        total_variance(total_vol), np.int64(scenario.var_offset), FACTOR_FRAC)
    return out


def walk_words(walk: Walk, rows: np.ndarray, lanes: int) -> np.ndarray:
    """The theo words of one walk, in row order (:data:`THEO_DTYPE`)."""
    entry, ctx = walk.entry, walk.context
    chain = rows[entry.first:entry.first + entry.count]
    result = price_chain(ctx.spot, chain)
    words = np.zeros(entry.count, dtype=THEO_DTYPE)
    ids = np.arange(entry.first, entry.first + entry.count)
    words["option_id"] = ids
    words["lane"] = ids % lanes
    words["underlying"] = entry.locate
    words["flags"] = ctx.flags
    words["spot"] = ctx.spot
    for name in ("price", "delta", "gamma", "vega", "theta"):
        words[name] = getattr(result, name)
    words["seq"] = ctx.seq
    words["msg_index"] = ctx.msg_index & 0xFFFF
    words["ingress_cycle"] = ctx.ingress_cycle & 0xFFFF_FFFF
    words["last"][-1:] = 1
    return words


@dataclass
class ChainModel:
    """The block's state: tables written by the host, per-underlying prices,
    the pending queue, counters."""

    config: ChainConfig = field(default_factory=ChainConfig)
    microprice: bool = False

    def __post_init__(self):
        from rtl.pricer.formats import param_dtype

        c = self.config
        self.rows = np.zeros(c.options, dtype=param_dtype())
        self.positions = np.zeros(c.options, dtype=np.int64)
        self.entries = [Entry()] * c.underlyings
        self.scenario_rows = [Scenario(0, 0, 0, 0)] * c.scenarios
        self.last: list[tuple[int, int] | None] = [None] * c.underlyings   # (S, flags)
        self.pending: OrderedDict[int, Context] = OrderedDict()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.sticky: set[str] = set()
        self.results: list[ScenarioResult | None] = [None] * c.scenarios

    # ---- host writes ------------------------------------------------------------
    def write_row(self, index: int, row) -> None:
        """Parameter-table row ``index`` (a ``param_dtype`` record); only the
        fields the datapath reads are kept, as the fabric does."""
        if not 0 <= index < self.config.options:
            raise ConfigError(f"row {index} outside the {self.config.options}-row table")
        for name in self.rows.dtype.names:
            if name not in ("underlying", "black76", "strike"):
                self.rows[index][name] = row[name]

    def write_position(self, index: int, contracts: int) -> None:
        if not 0 <= index < self.config.options:
            raise ConfigError(f"position {index} outside the table")
        if not -(1 << (POSITION_BITS - 1)) <= contracts < 1 << (POSITION_BITS - 1):
            raise ConfigError(f"position {contracts} does not fit {POSITION_BITS} bits")
        self.positions[index] = contracts

    def write_underlying(self, index: int, entry: Entry) -> None:
        """Entry ``index`` of the underlying table; refused (sticky
        ``bad_config``) when its rows leave the table."""
        if not 0 <= index < self.config.underlyings:
            raise ConfigError(f"underlying entry {index} outside the table")
        if entry.first + entry.count > self.config.options:
            self.sticky.add("bad_config")
            raise ConfigError(f"rows {entry.first}..{entry.first + entry.count - 1} leave the "
                              f"{self.config.options}-row table")
        self.entries[index] = entry
        # A rewritten entry may serve another stock: its last price is forgotten.
        self.last[index] = None

    def write_scenario(self, index: int, scenario: Scenario) -> None:
        if not 0 <= index < self.config.scenarios:
            raise ConfigError(f"scenario {index} outside the table")
        self.scenario_rows[index] = scenario

    def lookup(self, locate: int) -> int | None:
        """Entry of an enabled locate with rows (the lowest index when several match)."""
        for i, e in enumerate(self.entries):
            if e.enabled and e.locate == locate:
                return i if e.count else None
        return None

    def last_spot(self, index: int) -> int | None:
        return None if self.last[index] is None else self.last[index][0]

    # ---- the record path --------------------------------------------------------
    def _count(self, name: str) -> None:
        self.counters[name] = (self.counters[name] + 1) & COUNTER_MASK
        if name in STICKY:
            self.sticky.add(name)

    def record(self, data: bytes, dest: int = TDEST_UPDATE, error: bool = False,
               ingress_cycle: int = 0) -> str:
        """One packet from the book; returns its verdict ("trade", "malformed"
        or one of :data:`VERDICTS`, "accepted" also when it coalesced)."""
        expected = UPDATE_BYTES if dest == TDEST_UPDATE else TRADE_BYTES
        if error or len(data) != expected or dest not in (TDEST_UPDATE, TDEST_TRADE):
            self._count("malformed")
            return "malformed"
        if dest == TDEST_TRADE:
            self._count("trades")
            return "trade"
        self._count("updates")
        levels = parse_update(data)
        verdict, index, spot = self._judge(levels)
        self._count(verdict)
        if verdict == "accepted":
            self.last[index] = (spot, levels.flags)
            context = Context(spot, levels.flags, levels.seq, levels.msg_index & 0xFFFF,
                              ingress_cycle & 0xFFFF_FFFF)
            if index in self.pending:
                self._count("coalesced")
            self.pending[index] = context      # an existing key keeps its place
        return verdict

    def _judge(self, levels: BestLevels) -> tuple[str, int | None, int]:
        index = self.lookup(levels.locate)
        if index is None:
            return "untracked", None, 0
        if not (levels.bid and levels.ask and levels.bid_shares and levels.ask_shares):
            return "one_sided", index, 0
        spot = reference_price(levels, REF_MICROPRICE if self.microprice else REF_MID)
        if not SPOT_MIN_RAW <= spot < SPOT_LIMIT_RAW:
            return "out_of_range", index, spot
        if self.last[index] == (spot, levels.flags):
            return "unchanged", index, spot
        return "accepted", index, spot

    def take(self) -> Walk | None:
        """The oldest pending underlying, as the walker takes it."""
        if not self.pending:
            return None
        index, context = self.pending.popitem(last=False)
        self._count("walks")
        return Walk(index, self.entries[index], context)

    def walk(self, walk: Walk) -> np.ndarray:
        words = walk_words(walk, self.rows, self.config.lanes)
        self.counters["options"] = (self.counters["options"] + len(words)) & COUNTER_MASK
        return words

    def run(self, packets: Iterable[tuple[bytes, int]], start_cycle: int = 0) -> np.ndarray:
        """Every packet, each walk taken at once (the output keeps up); the
        theo words in order.  ``ingress_cycle`` counts packets from ``start_cycle``."""
        out = []
        for i, (data, dest) in enumerate(packets):
            self.record(data, dest, ingress_cycle=start_cycle + i)
            while (walk := self.take()) is not None:
                out.append(self.walk(walk))
        return np.concatenate(out) if out else np.zeros(0, dtype=THEO_DTYPE)

    # ---- scenarios --------------------------------------------------------------
    def run_scenarios(self, count: int) -> list[ScenarioResult]:
        """A scenario run over scenarios 0 .. count - 1 at the current prices."""
        if not 1 <= count <= self.config.scenarios:
            raise ConfigError(f"a run has 1..{self.config.scenarios} scenarios")
        snapshot = [self.last_spot(i) for i in range(self.config.underlyings)]
        walked = [i for i, e in enumerate(self.entries) if e.enabled and e.count]
        for j in range(count):
            scenario = self.scenario_rows[j]
            sums = dict.fromkeys(RESULTS, 0)
            options = skipped = 0
            for i in walked:
                self._count("scenario_walks")
                entry, spot = self.entries[i], snapshot[i]
                shifted = None if spot is None else _mul(spot, scenario.spot_factor, FACTOR_FRAC)
                if shifted is None or not SPOT_MIN_RAW <= shifted < SPOT_LIMIT_RAW:
                    skipped += 1
                    self._count("scenario_skipped")
                    continue
                chain = slice(entry.first, entry.first + entry.count)
                result = price_chain(shifted, scale_rows(self.rows[chain], scenario))
                pos = [int(p) for p in self.positions[chain]]
                dollar_delta = _scale_column(result.delta, np.int64(shifted), fx.DELTA.frac_bits)
                for name, column in (("value", result.price), ("delta_dollars", dollar_delta),
                                     ("vega", result.vega), ("theta", result.theta)):
                    sums[name] += sum(p * int(v) for p, v in zip(pos, column.tolist()))
                options += entry.count
            self.counters["scenario_options"] = (self.counters["scenario_options"]
                                                 + options) & COUNTER_MASK
            self.results[j] = ScenarioResult(*(_wrap(sums[n], RESULT_BITS) for n in RESULTS),
                                             options, skipped)
        return self.results[:count]


def _wrap(value: int, bits: int) -> int:
    """Two's-complement wrap of a sum, as the fabric's accumulators do."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value

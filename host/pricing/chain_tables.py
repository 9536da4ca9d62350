"""Loading the fabric chain pricer's tables: parameter rows, underlyings,
positions and scenarios as AXI-Lite register writes.

The chain pricer (:mod:`rtl.pricer_chain`) walks, for an underlying, the
contiguous rows ``first .. first + count - 1`` of its parameter table.
:func:`chain_layout` orders the rows :func:`host.pricing.params.precompute`
made so that each underlying's options are contiguous and gives each
underlying its entry; :class:`ChainTableWriter` turns rows, entries,
positions and scenarios into the register writes the block expects (staging
words, then one write that commits them: every change of a commit bit
commits once, so the writer remembers each bit's state).

Writes come as ``(register, value)`` pairs of the ``pricer_chain`` block
(:data:`rtl.regmap.map.PRICER_CHAIN`); :func:`absolute` gives the offsets
from the base of the fabric's AXI-Lite space.
"""
from __future__ import annotations

import math
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from host.pricing.params import OptionSpec, PricingInputError, precompute
from rtl.pricer import formats as fx
from rtl.pricer_chain.model import (POSITION_BITS, ROW_FIELDS, SCENARIO_FIELDS, SPOT_SHIFT_RANGE,
                                    VOL_SHIFT_RANGE, ChainConfig, Entry, Scenario)
from rtl.regmap.driver import encode, register_offsets

BLOCK = "pricer_chain"


class Layout(NamedTuple):
    """Rows in table order, the table row of every input option, and the
    underlying entries (entry i serves ``locates[i]``)."""

    rows: np.ndarray
    table_row: np.ndarray
    entries: list[Entry]


def chain_layout(rows: np.ndarray, config: ChainConfig = ChainConfig()) -> Layout:
    """Group ``rows`` (``param_dtype``; ``underlying`` is the ITCH stock
    locate) by underlying, in order of first appearance, keeping the input
    order within an underlying."""
    if len(rows) > config.options:
        raise PricingInputError(f"{len(rows)} options do not fit the {config.options}-row table")
    locates = list(dict.fromkeys(int(u) for u in rows["underlying"]))
    if len(locates) > config.underlyings:
        raise PricingInputError(f"{len(locates)} underlyings do not fit the "
                                f"{config.underlyings}-entry table")
    rank = {locate: i for i, locate in enumerate(locates)}
    order = np.array(sorted(range(len(rows)), key=lambda i: (rank[int(rows["underlying"][i])], i)),
                     dtype=np.int64)
    table_row = np.empty(len(rows), dtype=np.int64)
    table_row[order] = np.arange(len(rows))
    entries, first = [], 0
    for locate in locates:
        count = int(np.count_nonzero(rows["underlying"] == locate))
        entries.append(Entry(locate, first, count, True))
        first += count
    return Layout(rows[order], table_row, entries)


def _halves(value: int) -> tuple[int, int]:
    raw = int(value) & ((1 << 64) - 1)
    return raw & 0xFFFF_FFFF, raw >> 32


class ChainTableWriter:
    """Register writes for the chain pricer's tables.  One writer per
    block after reset: it tracks the commit bits."""

    def __init__(self, config: ChainConfig = ChainConfig()):
        self.config = config
        self.toggles = {"row_commit": 0, "ul_commit": 0, "pos_commit": 0, "scn_commit": 0,
                        "scn_start": 0}

    def _flip(self, name: str) -> int:
        self.toggles[name] ^= 1
        return self.toggles[name]

    def row(self, index: int, row) -> list[tuple[str, int]]:
        if not 0 <= index < self.config.options:
            raise PricingInputError(f"row {index} outside the {self.config.options}-row table")
        writes = []
        for name in ROW_FIELDS:
            lo, hi = _halves(row[name])
            writes += [(f"ROW_{name.upper()}_LO", lo), (f"ROW_{name.upper()}_HI", hi)]
        writes.append(("ROW_WRITE", encode(BLOCK, "ROW_WRITE", row_index=index,
                                           row_is_put=int(bool(row["is_put"])),
                                           row_commit=self._flip("row_commit"))))
        return writes

    def underlying(self, index: int, entry: Entry) -> list[tuple[str, int]]:
        if not 0 <= index < self.config.underlyings:
            raise PricingInputError(f"entry {index} outside the "
                                    f"{self.config.underlyings}-entry table")
        if entry.first + entry.count > self.config.options:
            raise PricingInputError(f"entry {index}: rows {entry.first}.."
                                    f"{entry.first + entry.count - 1} leave the "
                                    f"{self.config.options}-row table")
        return [("UL_RANGE", encode(BLOCK, "UL_RANGE", ul_first=entry.first, ul_count=entry.count)),
                ("UL_WRITE", encode(BLOCK, "UL_WRITE", ul_locate=entry.locate, ul_index=index,
                                    ul_enable=int(entry.enabled),
                                    ul_commit=self._flip("ul_commit")))]

    def position(self, index: int, contracts: int) -> list[tuple[str, int]]:
        if not 0 <= index < self.config.options:
            raise PricingInputError(f"position row {index} outside the table")
        if not -(1 << (POSITION_BITS - 1)) <= int(contracts) < 1 << (POSITION_BITS - 1):
            raise PricingInputError(f"position {contracts} does not fit {POSITION_BITS} bits")
        return [("POS_VALUE", int(contracts) & 0xFFFF_FFFF),
                ("POS_WRITE", encode(BLOCK, "POS_WRITE", pos_index=index,
                                     pos_commit=self._flip("pos_commit")))]

    def scenario(self, index: int, scenario: Scenario) -> list[tuple[str, int]]:
        if not 0 <= index < self.config.scenarios:
            raise PricingInputError(f"scenario {index} outside the {self.config.scenarios}-row table")
        writes = []
        for name in SCENARIO_FIELDS:
            lo, hi = _halves(getattr(scenario, name))
            writes += [(f"SCN_{name.upper()}_LO", lo), (f"SCN_{name.upper()}_HI", hi)]
        writes.append(("SCN_WRITE", encode(BLOCK, "SCN_WRITE", scn_index=index,
                                           scn_commit=self._flip("scn_commit"))))
        return writes

    def start_scenarios(self, count: int) -> list[tuple[str, int]]:
        if not 1 <= count <= self.config.scenarios:
            raise PricingInputError(f"a run has 1..{self.config.scenarios} scenarios, not {count}")
        return [("SCN_CONTROL", encode(BLOCK, "SCN_CONTROL", scn_count=count,
                                       scn_start=self._flip("scn_start")))]

    def load(self, layout: Layout, positions: Sequence[int] | None = None) -> list[tuple[str, int]]:
        """Every row, entry (the rest of the entry table disabled) and position."""
        writes = []
        for i, row in enumerate(layout.rows):
            writes += self.row(i, row)
        for i in range(self.config.underlyings):
            entry = layout.entries[i] if i < len(layout.entries) else Entry()
            writes += self.underlying(i, entry)
        if positions is not None:
            for i, contracts in enumerate(positions):
                writes += self.position(i, contracts)
        return writes


def table_writes(options: Sequence[OptionSpec], positions: Sequence[int] | None = None,
                 config: ChainConfig = ChainConfig()) -> tuple[Layout, list[tuple[str, int]]]:
    """Everything a freshly reset block needs for ``options``: the layout
    (``table_row[i]`` is option i's row, the theo words' ``option_id``) and
    the writes of rows, entries and (in the options' order) positions."""
    layout = chain_layout(precompute(options), config)
    table_positions = None
    if positions is not None:
        if len(positions) != len(options):
            raise PricingInputError(f"{len(positions)} positions for {len(options)} options")
        table_positions = [0] * len(options)
        for i, contracts in enumerate(positions):
            table_positions[int(layout.table_row[i])] = int(contracts)
    return layout, ChainTableWriter(config).load(layout, table_positions)


def absolute(writes: Iterable[tuple[str, int]]) -> list[tuple[int, int]]:
    """``(offset, value)`` from the base of the fabric's AXI-Lite space."""
    offsets = register_offsets()
    return [(offsets[f"{BLOCK}.{name}"], value) for name, value in writes]


def scenario_grid(spot_shifts: Sequence[float], vol_shifts: Sequence[float]) -> list[Scenario]:
    """Scenarios for every (spot shift, vol shift), spot-major: S' = S (1 +
    spot shift), sigma' = sigma (1 + vol shift), both relative."""
    out = []
    for ds in spot_shifts:
        for dv in vol_shifts:
            out.append(scenario_of(ds, dv))
    return out


def scenario_of(spot_shift: float, vol_shift: float) -> Scenario:
    for name, value, (low, high) in (("spot shift", spot_shift, SPOT_SHIFT_RANGE),
                                     ("vol shift", vol_shift, VOL_SHIFT_RANGE)):
        if not math.isfinite(value) or not low <= value <= high:
            raise PricingInputError(f"{name} {value!r} outside [{low}, {high}]")
    k = 1.0 + vol_shift
    return Scenario(fx.DISC.from_real(1.0 + spot_shift), fx.DISC.from_real(k),
                    fx.DISC.from_real(1.0 / k), fx.DISC.from_real((k * k - 1.0) / 2.0))


def check_scenarios(options: Sequence[OptionSpec], scenarios: Sequence[Scenario]) -> None:
    """Refuse scenarios that would take an option's volatility outside the
    pricer's operating ranges (sigma, sigma sqrt T)."""
    if not options:
        return
    sigma = np.array([o.sigma for o in options])
    root_t = np.sqrt(np.array([o.expiry for o in options]))
    for j, scenario in enumerate(scenarios):
        k = fx.DISC.to_float(scenario.vol_factor)
        shifted = sigma * k
        total = shifted * root_t
        bad = (shifted > fx.SIGMA_MAX) | (total < fx.TOTAL_VOL_MIN) | (total > fx.TOTAL_VOL_MAX)
        if bad.any():
            i = int(np.argmax(bad))
            raise PricingInputError(f"scenario {j}: option {i}'s volatility {shifted[i]:.6g} "
                                    f"(sigma*sqrt(T) {total[i]:.6g}) leaves the pricer's range")

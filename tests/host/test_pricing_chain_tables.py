"""Loading the chain pricer's tables: the layout of rows by underlying and
the register writes, decoded back the way the block reads them."""
from __future__ import annotations

import numpy as np
import pytest

from host.pricing.chain_tables import (ChainTableWriter, absolute, chain_layout, check_scenarios,
                                       scenario_grid, scenario_of, table_writes)
from host.pricing.params import OptionSpec, PricingInputError, precompute, precompute_arrays
from rtl.pricer import formats as fx
from rtl.pricer_chain.model import ROW_FIELDS, SCENARIO_FIELDS, ChainConfig, Entry, Scenario
from rtl.regmap.driver import decode
from rtl.regmap.map import PRICER_CHAIN

CONFIG = ChainConfig(options=64, underlyings=4, lanes=2, scenarios=4)


def _rows(locates):
    n = len(locates)
    return precompute_arrays(locates, np.arange(n) % 2 == 0, 50.0 + np.arange(n), 0.25, 0.75,
                             0.03, 0.01)


def test_layout_groups_rows_by_underlying_in_order_of_first_appearance():
    locates = [7, 3, 7, 9, 3, 7]
    rows = _rows(locates)
    layout = chain_layout(rows, CONFIG)
    assert layout.entries == [Entry(7, 0, 3, True), Entry(3, 3, 2, True), Entry(9, 5, 1, True)]
    assert layout.rows["underlying"].tolist() == [7, 7, 7, 3, 3, 9]
    # Input order kept within an underlying, and table_row finds every input row.
    assert layout.table_row.tolist() == [0, 3, 1, 5, 4, 2]
    assert np.array_equal(layout.rows[layout.table_row], rows)


def test_layout_refuses_what_the_tables_cannot_hold():
    with pytest.raises(PricingInputError, match="do not fit the 64-row table"):
        chain_layout(_rows([1] * 65), CONFIG)
    with pytest.raises(PricingInputError, match="5 underlyings do not fit the 4-entry table"):
        chain_layout(_rows([1, 2, 3, 4, 5]), CONFIG)


class Registers:
    """The block's write side: registers hold what was written, a change of
    a commit bit takes the staged words."""

    def __init__(self):
        self.values = {}
        self.rows, self.entries, self.positions, self.scenarios, self.runs = {}, {}, {}, {}, []
        self.commits = {}

    def write(self, name, value):
        self.values[name] = value
        reg = PRICER_CHAIN.register(name)
        fields = decode("pricer_chain", name, value)
        for commit in ("row_commit", "ul_commit", "pos_commit", "scn_commit", "scn_start"):
            if commit in fields and fields[commit] != self.commits.get(commit, 0):
                self.commits[commit] = fields[commit]
                getattr(self, f"_{commit}")(fields)
        assert reg.offset % 4 == 0

    def _word(self, prefix, name):
        key = f"{prefix}_{name.upper()}"
        value = self.values[f"{key}_LO"] | self.values[f"{key}_HI"] << 32
        return value - (1 << 64) if value >> 63 else value

    def _row_commit(self, f):
        self.rows[f["row_index"]] = (f["row_is_put"], *(self._word("ROW", n) for n in ROW_FIELDS))

    def _ul_commit(self, f):
        span = decode("pricer_chain", "UL_RANGE", self.values["UL_RANGE"])
        self.entries[f["ul_index"]] = Entry(f["ul_locate"], span["ul_first"], span["ul_count"],
                                            bool(f["ul_enable"]))

    def _pos_commit(self, f):
        value = self.values["POS_VALUE"]
        self.positions[f["pos_index"]] = value - (1 << 32) if value >> 31 else value

    def _scn_commit(self, f):
        self.scenarios[f["scn_index"]] = Scenario(*(self._word("SCN", n) for n in SCENARIO_FIELDS))

    def _scn_start(self, f):
        self.runs.append(f["scn_count"])


def test_writes_decode_to_the_tables():
    layout = chain_layout(_rows([5, 6, 5, 6, 6]), CONFIG)
    positions = [3, -4, -(1 << 31), (1 << 31) - 1, 0]
    writer = ChainTableWriter(CONFIG)
    registers = Registers()
    grid = scenario_grid((-0.1, 0.2), (0.0, -0.5))
    writes = writer.load(layout, positions)
    for j, scenario in enumerate(grid):
        writes += writer.scenario(j, scenario)
    writes += writer.start_scenarios(len(grid)) + writer.start_scenarios(2)
    for name, value in writes:
        assert 0 <= value < 1 << 32
        registers.write(name, value)
    assert len(registers.rows) == 5
    for i, row in enumerate(layout.rows):
        assert registers.rows[i] == (int(row["is_put"]), *(int(row[n]) for n in ROW_FIELDS))
    assert [registers.entries[i] for i in range(CONFIG.underlyings)] == \
        layout.entries + [Entry()] * (CONFIG.underlyings - len(layout.entries))
    assert [registers.positions[i] for i in range(5)] == positions
    assert [registers.scenarios[j] for j in range(4)] == grid
    assert registers.runs == [4, 2]
    # Every write lands in the pricer_chain window.
    for address, _ in absolute(writes):
        assert PRICER_CHAIN.base <= address < PRICER_CHAIN.base + PRICER_CHAIN.window


def test_writer_refuses_what_the_block_would_refuse():
    writer = ChainTableWriter(CONFIG)
    row = _rows([1])[0]
    with pytest.raises(PricingInputError):
        writer.row(CONFIG.options, row)
    with pytest.raises(PricingInputError):
        writer.underlying(0, Entry(1, CONFIG.options - 1, 2, True))
    with pytest.raises(PricingInputError):
        writer.underlying(CONFIG.underlyings, Entry(1, 0, 1, True))
    with pytest.raises(PricingInputError):
        writer.position(0, 1 << 31)
    with pytest.raises(PricingInputError):
        writer.scenario(CONFIG.scenarios, scenario_of(0, 0))
    with pytest.raises(PricingInputError):
        writer.start_scenarios(0)
    # A refused write does not flip a commit bit.
    assert set(writer.toggles.values()) == {0}


@pytest.mark.parametrize("spot, vol", [(-0.6, 0.0), (1.2, 0.0), (0.0, -0.8), (0.0, 1.5),
                                       (float("nan"), 0.0)])
def test_scenario_shifts_outside_the_ranges_are_refused(spot, vol):
    with pytest.raises(PricingInputError):
        scenario_of(spot, vol)


def test_scenario_factors():
    scenario = scenario_of(0.25, -0.5)
    assert fx.DISC.to_float(scenario.spot_factor) == 1.25
    assert fx.DISC.to_float(scenario.vol_factor) == 0.5
    assert fx.DISC.to_float(scenario.inv_vol_factor) == 2.0
    assert fx.DISC.to_float(scenario.var_offset) == pytest.approx((0.25 - 1) / 2, abs=1e-18)


def test_scenarios_that_push_volatility_out_of_range_are_refused():
    options = [OptionSpec(1, False, 100.0, 2.5, 0.5, 0.01), OptionSpec(1, True, 90.0, 0.2, 1.0, 0.01)]
    precompute(options)
    check_scenarios(options, [scenario_of(0.0, 0.5)])
    with pytest.raises(PricingInputError, match="scenario 1: option 0"):
        check_scenarios(options, [scenario_of(0.0, 0.5), scenario_of(0.0, 0.7)])


def test_table_writes_from_option_specs_keep_positions_with_their_options():
    options = [OptionSpec(u, u % 2 == 0, 100.0 + u, 0.3, 0.5, 0.02) for u in (4, 2, 4, 2, 9)]
    layout, writes = table_writes(options, [10, 20, 30, 40, 50], CONFIG)
    registers = Registers()
    for name, value in writes:
        registers.write(name, value)
    for i, contracts in enumerate([10, 20, 30, 40, 50]):
        assert registers.positions[int(layout.table_row[i])] == contracts
        assert layout.rows[layout.table_row[i]]["underlying"] == options[i].underlying
    with pytest.raises(PricingInputError, match="2 positions for 5 options"):
        table_writes(options, [1, 2], CONFIG)

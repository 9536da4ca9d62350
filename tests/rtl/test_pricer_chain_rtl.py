"""The chain pricer's Verilog against its model, bit for bit, under cocotb.

One build of a smaller configuration than ``make rtl``'s (2 lanes, 128 rows,
8 underlyings, 8 scenarios: the same logic, a shorter compile) serves every
run.  Each run loads the tables through :class:`host.pricing.chain_tables.
ChainTableWriter`, plays book records, and the model replays them
(:class:`tests.rtl.pricer_chain_stimulus.Replay`): every lane's words, the
counters and the sticky bits must match.  ``python -m tests.rtl.pricer_chain_bench``
runs 100,000 options through the full configuration.
"""
from __future__ import annotations

import numpy as np
import pytest

from host.pricing.chain_tables import ChainTableWriter, scenario_grid
from rtl.common import sim
from rtl.pricer_chain.__main__ import TOPLEVEL, convert_variant
from rtl.pricer_chain.hdl import FIRST_THEO_CYCLES
from rtl.pricer_chain.model import ChainConfig, Entry
from tests.rtl.pricer_chain_bench import ChainStimulus, sticky_names
from tests.rtl.pricer_chain_stimulus import (Replay, book_updates, option_book, relative,
                                             scenario_results, update_record)

BENCH = "tests.rtl.pricer_chain_bench"
CONFIG = ChainConfig(options=128, underlyings=8, lanes=2, scenarios=8)


@pytest.fixture(scope="module")
def chain(simulator):
    verilog = convert_variant(CONFIG, "pricer_chain_test")
    return sim.build("pricer_chain_test", [verilog], TOPLEVEL, simulator)


def run(build, name: str, stimulus: ChainStimulus):
    run_dir = build.build_dir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    path = stimulus.save(run_dir / "stimulus.npz")
    build.run(BENCH, name, testcase="run_stimulus", extra_env={"ZYNQMM_STIMULUS": str(path)})
    return np.load(run_dir / "observed.npz")


@pytest.fixture(scope="module")
def book():
    return option_book(CONFIG, 100, 5, seed=11)


@pytest.mark.parametrize("microprice", [False, True], ids=["mid", "microprice"])
def test_records_with_gaps_and_backpressure_match_model(chain, book, microprice):
    packets = book_updates(book, 260, seed=12 + microprice)
    stimulus = ChainStimulus(CONFIG, book.writes(ChainTableWriter(CONFIG)), packets,
                             microprice=microprice, source_pause=0.2, sink_pause=0.55, seed=13)
    observed = run(chain, f"gaps_{'micro' if microprice else 'mid'}", stimulus)
    replay = Replay(book, packets, observed, microprice=microprice)
    replay.assert_words_match()
    replay.assert_counters_match(observed)
    replay.assert_entries_match(observed)
    counters = replay.model.counters
    # Every verdict and a coalesced price occurred, or this proves less than it says.
    for name in ("trades", "malformed", "untracked", "one_sided", "out_of_range", "unchanged",
                 "accepted", "coalesced"):
        assert counters[name] > 0, name
    assert sticky_names(int(observed["drop_status"])) == replay.model.sticky
    assert int(observed["status"]) == 0            # idle: not walking, nothing pending


def test_malformed_records_right_behind_a_good_one(chain, book):
    """Microprice, beats back to back: a record cut after 14 beats has
    started its price and ends before the good record ahead of it has its
    spot terms; each price must still meet its own record."""
    packets, seq = [], 7000
    for i, (u, spot) in enumerate(sorted(book.spots.items()) * 3):
        bid = int(round(spot * 100)) * 100 + 100 * i
        for cut in (112, 136, 88):
            seq += 1
            packets.append((update_record(u, bid, 10 + i, bid + 100, 20, seq=seq), 0, False))
            seq += 1
            packets.append((update_record(u, bid + 100, 5, bid + 200, 5, seq=seq)[:cut], 0, False))
            bid += 100
    stimulus = ChainStimulus(CONFIG, book.writes(ChainTableWriter(CONFIG)), packets,
                             microprice=True, seed=6)
    observed = run(chain, "malformed_behind", stimulus)
    replay = Replay(book, packets, observed, microprice=True)
    replay.assert_words_match()
    replay.assert_counters_match(observed)
    assert replay.model.counters["malformed"] == len(packets) // 2


def test_free_output_latency_and_back_to_back_walks(chain, book):
    """Records spaced out: the first word comes a fixed time after the
    record's last beat.  Then a burst: walks follow each other without a
    gap, every lane busy every cycle until the last group."""
    single = []
    for i, (u, spot) in enumerate(sorted(book.spots.items())):
        bid = int(round(spot * 10_000 / 100)) * 100
        single.append((update_record(u, bid, 300, bid + 100, 500, seq=5000 + i), 0, False))
        single.append((b"\0" * 56, 1, False))          # a trade: ignored, keeps records apart
    for microprice, mode in ((False, "mid"), (True, "microprice")):
        stimulus = ChainStimulus(CONFIG, book.writes(ChainTableWriter(CONFIG)), single,
                                 microprice=microprice, seed=3)
        observed = run(chain, f"latency_{mode}", stimulus)
        replay = Replay(book, single, observed, microprice=microprice)
        replay.assert_words_match()
        first_taken = {}
        for k in range(CONFIG.lanes):
            for seq, cycle in zip(observed[f"lane{k}_seq"].tolist(),
                                  observed[f"lane{k}_taken"].tolist()):
                first_taken[seq] = min(first_taken.get(seq, cycle), cycle)
        latencies = {first_taken[5000 + i // 2] - int(observed["last_cycles"][i])
                     for i, (_, dest, _) in enumerate(single) if dest == 0}
        assert latencies == {FIRST_THEO_CYCLES[mode]}, (mode, latencies)

    # Two underlyings of 64 rows: a walk (32 cycles on 2 lanes) outlasts a
    # record (18 beats), so prices queue up and coalesce.
    long_chains = option_book(CONFIG, 128, 2, seed=17)
    burst = book_updates(long_chains, 100, seed=21, specials=False)
    stimulus = ChainStimulus(CONFIG, long_chains.writes(ChainTableWriter(CONFIG)), burst, seed=4)
    observed = run(chain, "burst", stimulus)
    replay = Replay(long_chains, burst, observed)
    replay.assert_words_match()
    assert replay.model.counters["coalesced"] > 0
    # The walker never idles while prices wait: from the first word to the
    # last, some lane delivers a word every cycle.
    busy = np.unique(np.concatenate([observed[f"lane{k}_taken"] for k in range(CONFIG.lanes)]))
    assert np.all(np.diff(busy) == 1), np.flatnonzero(np.diff(busy) != 1)[:10]


def test_scenario_run_beside_live_prices_matches_model(chain, book):
    """Prices first; then a run starts and more records arrive while it goes
    on: live walks go first, the run's sums are the model's at the prices
    of its start."""
    packets = book_updates(book, 90, seed=31, specials=False)
    split = 40
    writer = ChainTableWriter(CONFIG)
    grid = scenario_grid((-0.1, 0.0, 0.25), (-0.3, 0.0, 0.5))[:CONFIG.scenarios]
    scenario_writes = []
    for j, scenario in enumerate(grid):
        scenario_writes += writer.scenario(j, scenario)
    # An entry that never gets a price: the run skips its walks and counts them.
    silent = Entry(999, 0, 3, True)
    loading = book.writes(writer) + relative(writer.underlying(len(book.layout.entries), silent))
    scenario_writes += writer.start_scenarios(len(grid))
    stimulus = ChainStimulus(CONFIG, loading, packets, seed=5, sink_pause=0.3,
                             scenario_writes=relative(scenario_writes), scenarios=len(grid),
                             split=split)
    observed = run(chain, "scenarios", stimulus)
    expected = []

    def run_scenarios(model):
        for j, scenario in enumerate(grid):
            model.write_scenario(j, scenario)
        expected.extend(model.run_scenarios(len(grid)))

    replay = Replay(book, packets, observed, extra_entries={len(book.layout.entries): silent},
                    split=split, at_split=run_scenarios)
    replay.assert_words_match()
    assert scenario_results(observed) == [tuple(r) for r in expected]
    assert all(r.options > 0 and r.skipped == 1 for r in expected)
    replay.assert_counters_match(observed)
    assert (int(observed["scn_status"]) >> 8) & 0x1FF == len(grid)
    # The run went on while live prices were walked (ingress is the block's cycle count).
    start, length = int(observed["scenario_start"]), int(observed["scenario_cycles"])
    ingress = np.concatenate([observed[f"lane{k}_ingress_cycle"] for k in range(CONFIG.lanes)])
    assert np.any((ingress > start) & (ingress < start + length))


def test_registers_constants_refusals_and_holes(chain):
    stimulus = ChainStimulus(CONFIG, [])
    run_dir = chain.build_dir / "runs" / "registers"
    run_dir.mkdir(parents=True, exist_ok=True)
    path = stimulus.save(run_dir / "stimulus.npz")
    chain.run(BENCH, "registers", testcase="register_access",
              extra_env={"ZYNQMM_STIMULUS": str(path)})

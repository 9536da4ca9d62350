"""cocotb bench for the chain pricer's generated Verilog, and its stimulus files.

Inside the simulator, ``run_stimulus`` reads ``$ZYNQMM_STIMULUS`` (an
``.npz`` from :meth:`ChainStimulus.save`): it makes the register writes that
load the tables, sets the reference-price mode, plays the packets into
``s_axis`` one beat per cycle with random idle cycles while every theo lane
applies its own random backpressure, waits until the outputs have been
quiet for a while, optionally runs scenarios, and writes to
``$ZYNQMM_RUN_DIR/observed.npz``: every lane's words (unpacked fields and the
cycle each was taken), the cycle of every packet's last beat, the counters,
DROP_STATUS, STATUS and the scenario results.  The pytest side compares
them with :class:`rtl.pricer_chain.model.ChainModel`.

The bench drives AXI-Lite and the streams itself, one coroutine and one
signal write per cycle, so that 100,000 options take seconds.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from rtl.common.theo_stream import THEO_FIELDS, unpack_theo
from rtl.pricer_chain.model import COUNTERS, RESULT_BITS, RESULTS, STICKY, ChainConfig
from rtl.regmap.map import PRICER_CHAIN
from tests.rtl.bench_common import run_dir, start_and_reset, stimulus_path

QUIET_CYCLES = 80
# A commit bit's change acts two cycles after the write; its sticky bit shows one later.
SETTLE_CYCLES = 4


@dataclass
class ChainStimulus:
    """What one run plays (see the module docstring)."""

    config: ChainConfig
    writes: list[tuple[int, int]]                  # (offset in the block's window, value)
    packets: list[tuple[bytes, int, bool]] = field(default_factory=list)  # data, tdest, tuser
    microprice: bool = False
    source_pause: float = 0.0
    sink_pause: float = 0.0
    seed: int = 1
    scenario_writes: list[tuple[int, int]] = field(default_factory=list)
    scenarios: int = 0                             # run rows 0..n-1 after the packets,
    split: int = 0                                 # ... or after the first `split` of them

    def save(self, path: Path) -> Path:
        data = b"".join(p[0] for p in self.packets)
        c = self.config
        np.savez(path, config=np.array([c.options, c.underlyings, c.lanes, c.scenarios]),
                 writes=np.array(self.writes, dtype=np.int64).reshape(-1, 2),
                 scenario_writes=np.array(self.scenario_writes, dtype=np.int64).reshape(-1, 2),
                 data=np.frombuffer(data, dtype=np.uint8),
                 lengths=np.array([len(p[0]) for p in self.packets], dtype=np.int64),
                 dests=np.array([p[1] for p in self.packets], dtype=np.int64),
                 errors=np.array([p[2] for p in self.packets], dtype=np.int64),
                 microprice=int(self.microprice), source_pause=self.source_pause,
                 sink_pause=self.sink_pause, seed=self.seed, scenarios=self.scenarios,
                 split=self.split)
        return path


def offset(register: str) -> int:
    return PRICER_CHAIN.register(register).offset


class Bench:
    def __init__(self, dut, lanes: int):
        self.dut = dut
        self.lanes = lanes
        self.valid = [getattr(dut, f"m_theo_lane{k}_valid") for k in range(lanes)]
        self.ready = [getattr(dut, f"m_theo_lane{k}_ready") for k in range(lanes)]
        self.data = [getattr(dut, f"m_theo_lane{k}_data") for k in range(lanes)]

    async def start(self):
        idle = ["s_axis_tvalid", "s_axil_awvalid", "s_axil_wvalid", "s_axil_arvalid",
                "s_axil_bready", "s_axil_rready",
                *(f"m_theo_lane{k}_ready" for k in range(self.lanes))]
        await start_and_reset(self.dut, idle_low=idle)

    async def start_run(self, writes, observed: dict) -> None:
        """Load the scenario rows and start the run (the writes end with SCN_CONTROL)."""
        for address, value in writes:
            await self.write(address, value)
        observed["scenario_start"] = await self.read(offset("CYCLE"))

    async def finish_run(self, observed: dict) -> None:
        """Wait for the run to end; its length by the block's own cycle
        counter, from the start write to the first poll that finds it over
        (a poll takes 3 cycles)."""
        for _ in range(200_000):
            if not (await self.read(offset("SCN_STATUS"))) & 1:
                break
        observed["scenario_cycles"] = (await self.read(offset("CYCLE"))
                                       - observed["scenario_start"]) & 0xFFFF_FFFF

    async def entry(self, index: int) -> tuple[int, ...]:
        """Entry ``index`` as UL_INFO* show it: locate, enabled, has_price,
        pending, first, count, last accepted price (MONEY raw)."""
        selected = await self.read(offset("UL_WRITE"))
        await self.write(offset("UL_WRITE"), (selected & ~(0xFF << 16)) | index << 16)
        info = await self.read(offset("UL_INFO"))
        span = await self.read(offset("UL_INFO_RANGE"))
        spot = 0
        # The price memory is not cleared at reset; only an accepted price is read.
        if info >> 17 & 1:
            spot = await self.read(offset("UL_SPOT_LO")) | await self.read(offset("UL_SPOT_HI")) << 32
        return (info & 0xFFFF, info >> 16 & 1, info >> 17 & 1, info >> 18 & 1, span & 0xFFFF,
                span >> 16, spot - (1 << 64) if spot >> 63 else spot)

    async def write(self, address: int, value: int) -> None:
        dut = self.dut
        dut.s_axil_awaddr.value = address
        dut.s_axil_wdata.value = value & 0xFFFF_FFFF
        dut.s_axil_wstrb.value = 0xF
        dut.s_axil_awvalid.value = 1
        dut.s_axil_wvalid.value = 1
        dut.s_axil_bready.value = 1
        while True:
            await RisingEdge(dut.clk)
            if int(dut.s_axil_awready.value):
                break
        dut.s_axil_awvalid.value = 0
        dut.s_axil_wvalid.value = 0
        while True:
            await RisingEdge(dut.clk)
            if int(dut.s_axil_bvalid.value):
                assert int(dut.s_axil_bresp.value) == 0, f"write to {address:#x} refused"
                break
        dut.s_axil_bready.value = 0

    async def read(self, address: int, expect_error: bool = False) -> int:
        dut = self.dut
        dut.s_axil_araddr.value = address
        dut.s_axil_arvalid.value = 1
        dut.s_axil_rready.value = 1
        while True:
            await RisingEdge(dut.clk)
            if int(dut.s_axil_arready.value):
                break
        dut.s_axil_arvalid.value = 0
        while True:
            await RisingEdge(dut.clk)
            if int(dut.s_axil_rvalid.value):
                value = int(dut.s_axil_rdata.value)
                error = int(dut.s_axil_rresp.value) != 0
                assert error == expect_error, f"read of {address:#x}: SLVERR {error}"
                break
        dut.s_axil_rready.value = 0
        return value

    async def stream(self, packets, source_pause: float, sink_pause: float, seed: int) -> dict:
        """Play the packets; collect every lane's words until the outputs are quiet."""
        dut = self.dut
        rng = random.Random(seed)
        beats = []
        for index, (data, dest, error) in enumerate(packets):
            count = (len(data) + 7) // 8
            for b in range(count):
                chunk = data[8 * b:8 * b + 8]
                last = b == count - 1
                beats.append((int.from_bytes(chunk, "little"), (1 << len(chunk)) - 1, int(last),
                              int(error and last), dest, index))
        words = [[] for _ in range(self.lanes)]
        taken = [[] for _ in range(self.lanes)]
        last_cycles = [0] * len(packets)
        cycle = 0
        sent = 0
        valid = False
        ready = [False] * self.lanes
        quiet = 0
        while sent < len(beats) or quiet < QUIET_CYCLES:
            await RisingEdge(dut.clk)
            cycle += 1
            if valid:
                # s_axis is never held off.
                if beats[sent][2]:
                    last_cycles[beats[sent][5]] = cycle
                sent += 1
            busy = False
            for k in range(self.lanes):
                if int(self.valid[k].value):
                    busy = True
                    if ready[k]:
                        words[k].append(int(self.data[k].value))
                        taken[k].append(cycle)
            quiet = 0 if busy or sent < len(beats) else quiet + 1
            valid = sent < len(beats) and rng.random() >= source_pause
            if valid:
                tdata, tkeep, tlast, tuser, tdest, _ = beats[sent]
                dut.s_axis_tdata.value = tdata
                dut.s_axis_tkeep.value = tkeep
                dut.s_axis_tlast.value = tlast
                dut.s_axis_tuser.value = tuser
                dut.s_axis_tdest.value = tdest
            dut.s_axis_tvalid.value = int(valid)
            for k in range(self.lanes):
                ready[k] = rng.random() >= sink_pause
                self.ready[k].value = int(ready[k])
        for k in range(self.lanes):
            self.ready[k].value = 1
        return {"words": words, "taken": taken, "last_cycles": last_cycles, "cycles": cycle}


def _lane_columns(words: list[int], taken: list[int], lane: int) -> dict[str, np.ndarray]:
    rows = [unpack_theo(w) for w in words]
    out = {f"lane{lane}_{name}": np.array([r[name] for r in rows],
                                           dtype=np.uint64 if name == "seq" else np.int64)
           for name, _ in THEO_FIELDS}
    out[f"lane{lane}_taken"] = np.array(taken, dtype=np.int64)
    return out


@cocotb.test()
async def run_stimulus(dut):
    loaded = np.load(stimulus_path())
    options, underlyings, lanes, scenarios = (int(v) for v in loaded["config"])
    config = ChainConfig(options, underlyings, lanes, scenarios)
    bench = Bench(dut, config.lanes)
    await bench.start()
    for address, value in loaded["writes"].tolist():
        await bench.write(address, value)
    await bench.write(offset("CONTROL"), int(loaded["microprice"]))
    data = loaded["data"].tobytes()
    packets, at = [], 0
    for length, dest, error in zip(loaded["lengths"].tolist(), loaded["dests"].tolist(),
                                   loaded["errors"].tolist()):
        packets.append((data[at:at + length], dest, bool(error)))
        at += length
    count = int(loaded["scenarios"])
    split = int(loaded["split"]) if count else 0
    observed = {"last_cycles": [], "cycles": 0}
    words = [[] for _ in range(lanes)]
    taken = [[] for _ in range(lanes)]
    # One stream, or two with the scenario run started between them (the
    # second plays while the run goes on).  Each stream counts its own cycles.
    parts = [packets] if not split else [packets[:split], packets[split:]]
    for number, part in enumerate(parts):
        if number == 1:
            await bench.start_run(loaded["scenario_writes"].tolist(), observed)
        result = await bench.stream(part, float(loaded["source_pause"]),
                                    float(loaded["sink_pause"]), int(loaded["seed"]))
        observed["last_cycles"] += result["last_cycles"]
        observed["cycles"] += result["cycles"]
        for k in range(lanes):
            words[k] += result["words"][k]
            taken[k] += result["taken"][k]
    observed["last_cycles"] = np.array(observed["last_cycles"], dtype=np.int64)
    for k in range(lanes):
        observed.update(_lane_columns(words[k], taken[k], k))
    if count:
        if not split:
            await bench.start_run(loaded["scenario_writes"].tolist(), observed)
        await bench.finish_run(observed)
    observed["status"] = await bench.read(offset("STATUS"))
    if count:
        results = []
        for j in range(count):
            await bench.write(offset("RESULT_SEL"), j)
            row = []
            for name in RESULTS:
                words = [await bench.read(offset(f"RESULT_{name.upper()}_{w}"))
                         for w in range(RESULT_BITS // 32)]
                value = sum(word << (32 * w) for w, word in enumerate(words))
                row.append(value - (1 << RESULT_BITS) if value >> (RESULT_BITS - 1) else value)
            info = await bench.read(offset("RESULT_INFO"))
            row += [info & 0xFFFF, (info >> 16) & 0x1FF]
            results.append(row)
        observed["scenario_results"] = np.array([[str(v) for v in row] for row in results])
        observed["scn_status"] = await bench.read(offset("SCN_STATUS"))
    observed["counters"] = np.array([await bench.read(offset(f"COUNT_{name.upper()}"))
                                     for name in COUNTERS], dtype=np.int64)
    observed["drop_status"] = await bench.read(offset("DROP_STATUS"))
    observed["entries"] = np.array([await bench.entry(i) for i in range(config.underlyings)],
                                   dtype=np.int64)
    np.savez(run_dir() / "observed.npz", **observed)


@cocotb.test()
async def register_access(dut):
    """Build constants, the cycle counter, refused writes, sticky bits, holes."""
    loaded = np.load(stimulus_path())
    options, underlyings, lanes, scenarios = (int(v) for v in loaded["config"])
    bench = Bench(dut, lanes)
    await bench.start()
    info = await bench.read(offset("INFO"))
    assert info == options | lanes << 16, hex(info)
    info2 = await bench.read(offset("INFO2"))
    assert info2 == underlyings | scenarios << 16, hex(info2)
    first = await bench.read(offset("CYCLE"))
    second = await bench.read(offset("CYCLE"))
    assert 0 < second - first < 20, (first, second)

    # An entry's rows must stay inside the table: refused, entry unchanged, sticky.
    await bench.write(offset("UL_RANGE"), options - 2 | 2 << 16)
    await bench.write(offset("UL_WRITE"), 0x1234 | 3 << 16 | 1 << 24 | 1 << 31)
    assert await bench.entry(3) == (0x1234, 1, 0, 0, options - 2, 2, 0)
    await bench.write(offset("UL_RANGE"), options - 2 | 3 << 16)
    await bench.write(offset("UL_WRITE"), 0x4321 | 3 << 16 | 1 << 24)
    await ClockCycles(dut.clk, SETTLE_CYCLES)
    assert await bench.entry(3) == (0x1234, 1, 0, 0, options - 2, 2, 0)
    assert await bench.read(offset("DROP_STATUS")) == 1 << STICKY.index("bad_config")
    await bench.write(offset("DROP_STATUS"), 0xFF)
    assert await bench.read(offset("DROP_STATUS")) == 0
    # A row or position beyond the table, a scenario row beyond its table.
    for register, value in (("ROW_WRITE", options | 1 << 31), ("POS_WRITE", options | 1 << 31),
                            ("SCN_WRITE", scenarios | 1 << 31)):
        await bench.write(offset(register), value)
        await ClockCycles(dut.clk, SETTLE_CYCLES)
        assert await bench.read(offset("DROP_STATUS")) == 1 << STICKY.index("bad_config"), register
        await bench.write(offset("DROP_STATUS"), 0xFF)
    # A run of 0 scenarios, or of more than the table holds, is refused.
    for count in (0, scenarios + 1):
        toggle = (await bench.read(offset("SCN_CONTROL"))) >> 31
        await bench.write(offset("SCN_CONTROL"), count | (toggle ^ 1) << 31)
        await ClockCycles(dut.clk, SETTLE_CYCLES)
        assert await bench.read(offset("DROP_STATUS")) == 1 << STICKY.index("bad_config"), count
        assert await bench.read(offset("SCN_STATUS")) & 1 == 0
        await bench.write(offset("DROP_STATUS"), 0xFF)
    # A run while no entry has rows is refused too.
    await bench.write(offset("UL_RANGE"), 0)
    toggle = (await bench.read(offset("UL_WRITE"))) >> 31
    await bench.write(offset("UL_WRITE"), 0x1234 | 3 << 16 | 1 << 24 | (toggle ^ 1) << 31)
    await ClockCycles(dut.clk, SETTLE_CYCLES)
    assert await bench.entry(3) == (0x1234, 1, 0, 0, 0, 0, 0)
    toggle = (await bench.read(offset("SCN_CONTROL"))) >> 31
    await bench.write(offset("SCN_CONTROL"), 1 | (toggle ^ 1) << 31)
    await ClockCycles(dut.clk, SETTLE_CYCLES)
    assert await bench.read(offset("DROP_STATUS")) == 1 << STICKY.index("bad_config")
    assert await bench.read(offset("STATUS")) == 0
    # RO registers ignore writes; holes answer SLVERR.
    await bench.write(offset("COUNT_UPDATES"), 77)
    assert await bench.read(offset("COUNT_UPDATES")) == 0
    for hole in (0x018, 0x048, 0x074, 0x1FC, 0xFFC):
        assert await bench.read(hole, expect_error=True) == 0, hex(hole)


def sticky_names(word: int) -> set[str]:
    return {name for bit, name in enumerate(STICKY) if word >> bit & 1}


# ---- outside the simulator: the 100,000-option run and the latency report -------------------

FULL = ChainConfig()
BENCH_OPTIONS = 100_000
CORNER_LOCATE = 200
# Spots (price4 bid, ask) where the corner rows are priced: S = 0.5, 1, 181 and just under 32768.
CORNER_QUOTES = ((4_999, 5_001), (9_999, 10_001), (1_809_900, 1_810_100), (327_679_800, 327_680_000))


def full_build(name: str = "pricer_chain_bench"):
    """The ``make rtl`` configuration, converted and built once (cached)."""
    import sys

    from rtl.common import sim
    from rtl.common.convert import REPO_ROOT
    from rtl.pricer_chain.__main__ import TOPLEVEL, convert_variant

    # The simulator's Python imports this module by name from sys.path as
    # passed on; a caller started with -c has only '' (the run directory) there.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return sim.build(name, [convert_variant(FULL, name)], TOPLEVEL)


def run_build(build, name: str, stimulus: ChainStimulus):
    directory = build.build_dir / "runs" / name
    directory.mkdir(parents=True, exist_ok=True)
    path = stimulus.save(directory / "stimulus.npz")
    build.run("tests.rtl.pricer_chain_bench", name, testcase="run_stimulus",
              extra_env={"ZYNQMM_STIMULUS": str(path)})
    return np.load(directory / "observed.npz")


def _bench_book(seed: int):
    """Random chains of 64 rows on every entry but one, which holds every
    corner of the documented ranges (``tests.rtl.pricer_bench.corner_rows``)."""
    from host.pricing.chain_tables import chain_layout
    from tests.rtl.pricer_bench import corner_rows
    from tests.rtl.pricer_chain_stimulus import OptionBook, option_book

    corners = corner_rows()
    corners["underlying"] = CORNER_LOCATE
    random_rows = FULL.options - len(corners)
    book = option_book(FULL, random_rows, random_rows // 64, seed)
    rows = np.concatenate([book.layout.rows, corners])
    return OptionBook(FULL, chain_layout(rows, FULL), book.spots,
                      np.resize(book.positions, len(rows)))


def _with_corner_records(book, packets, every: int, seed: int):
    from tests.rtl.pricer_chain_stimulus import update_record

    rng = np.random.default_rng(seed)
    out = []
    for i, packet in enumerate(packets):
        out.append(packet)
        if i % every == every - 1:
            bid, ask = CORNER_QUOTES[(i // every) % len(CORNER_QUOTES)]
            out.append((update_record(CORNER_LOCATE, bid, int(rng.integers(1, 900)), ask,
                                      int(rng.integers(1, 900)), seq=10_000_000 + i), 0, False))
    return out


def main(count: int = BENCH_OPTIONS) -> dict:
    """``count`` options or more through the full configuration (4 lanes,
    1024 rows incl. every corner), with idle input cycles and output
    backpressure; RTL against model, bit for bit."""
    import json
    import time

    from host.pricing.chain_tables import ChainTableWriter
    from tests.rtl.pricer_chain_stimulus import Replay, book_updates

    started = time.perf_counter()
    book = _bench_book(seed=2027)
    per_walk = 64
    records = int(count / per_walk * 1.15) + 50
    packets = _with_corner_records(book, book_updates(book, records, seed=2028, specials=True),
                                   every=8, seed=2029)
    build = full_build()
    stimulus = ChainStimulus(FULL, [(offset(n), v) for n, v in book.writes_named(
        ChainTableWriter(FULL))], packets, source_pause=0.1, sink_pause=0.1, seed=2030)
    observed = run_build(build, f"bench_{count}", stimulus)
    replay = Replay(book, packets, observed)
    words = sum(len(w) for w in replay.lanes)
    report = {"options": words, "walks": len(replay.walk_keys),
              "corner_options": int(sum(int(np.count_nonzero(w["underlying"] == CORNER_LOCATE))
                                        for w in replay.lanes)),
              "cycles": int(observed["cycles"]), "lanes": FULL.lanes}
    try:
        replay.assert_words_match()
        replay.assert_counters_match(observed)
        report["bit_exact"] = True
    except AssertionError as exc:
        report["bit_exact"] = False
        report["mismatch"] = str(exc)
    report["options_per_cycle"] = round(words / float(observed["cycles"]), 3)
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1))
    return report


def measure() -> dict:
    """Latency and throughput of the full configuration in simulation cycles:

    * ``pricer_first_theo_cycles``: a book record's last beat taken -> the
      first theo word taken, block idle, output always ready (mid;
      ``pricer_first_theo_microprice_cycles`` with the microprice);
    * ``chain256_cycles``: the same record's last beat -> the last word of
      its 256-option chain taken;
    * ``scenario_options_per_cycle``: options x scenarios per cycle of a run
      of 16 scenarios over the 1024-row table (``scenario_run_cycles``,
      start write to done)."""
    from host.pricing.chain_tables import ChainTableWriter, scenario_grid
    from tests.rtl.pricer_chain_stimulus import option_book, trade_record, update_record

    build = full_build()
    report = {"pricer_lanes": FULL.lanes}
    chain = option_book(FULL, 256, 1, seed=41)
    locate, spot = next(iter(chain.spots.items()))
    bid = int(round(spot * 100)) * 100
    packets = []
    for i in range(4):
        packets.append((update_record(locate, bid + 100 * i, 500, bid + 100 * (i + 1), 700,
                                      seq=100 + i), 0, False))
        # Trades keep the records apart, so each finds the block idle.
        packets += [(trade_record(locate, 200 + 16 * i + k), 1, False) for k in range(16)]
    for microprice in (False, True):
        stimulus = ChainStimulus(FULL, [(offset(n), v) for n, v in chain.writes_named(
            ChainTableWriter(FULL))], packets, microprice=microprice, seed=1)
        observed = run_build(build, f"latency_{'micro' if microprice else 'mid'}", stimulus)
        firsts, lasts = [], []
        for i in range(4):
            taken = np.concatenate([observed[f"lane{k}_taken"][observed[f"lane{k}_seq"] == 100 + i]
                                    for k in range(FULL.lanes)])
            tlast = int(observed["last_cycles"][17 * i])
            firsts.append(int(taken.min()) - tlast)
            lasts.append(int(taken.max()) - tlast)
        key = "pricer_first_theo_microprice_cycles" if microprice else "pricer_first_theo_cycles"
        report[key] = max(firsts)
        if not microprice:
            report["chain256_cycles"] = max(lasts)

    table = option_book(FULL, FULL.options, 16, seed=43)
    writer = ChainTableWriter(FULL)
    loading = table.writes_named(writer)
    grid = scenario_grid((-0.2, -0.1, 0.1, 0.2), (-0.25, 0.0, 0.25, 0.5))
    scenario_writes = []
    for j, scenario in enumerate(grid):
        scenario_writes += writer.scenario(j, scenario)
    scenario_writes += writer.start_scenarios(len(grid))
    prices = []
    for i, (u, s) in enumerate(sorted(table.spots.items())):
        b = int(round(s * 100)) * 100
        prices.append((update_record(u, b, 100, b + 100, 100, seq=900 + i), 0, False))
    stimulus = ChainStimulus(FULL, [(offset(n), v) for n, v in loading], prices,
                             scenario_writes=[(offset(n), v) for n, v in scenario_writes],
                             scenarios=len(grid))
    observed = run_build(build, "scenarios", stimulus)
    options = sum(int(row[4]) for row in observed["scenario_results"])
    report["scenario_options"] = options
    report["scenario_run_cycles"] = int(observed["scenario_cycles"])
    report["scenario_options_per_cycle"] = round(options / int(observed["scenario_cycles"]), 3)
    return report


if __name__ == "__main__":
    import sys

    main(int(sys.argv[1]) if len(sys.argv) > 1 else BENCH_OPTIONS)

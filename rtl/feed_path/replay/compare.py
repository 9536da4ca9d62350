"""Run the replay harness on a stimulus and hold its output against the model.

The harness runs as a child process; meanwhile this process pushes every
frame of the stimulus through the model's two filters (that work does not
depend on the run).  Then the model's sequencer, decoder and book take the
payloads in the order the run delivered them to the sequencer (the arrival
cycles the harness stamped, ordered by :func:`rtl.mold_seq.model.arbitration_order`,
exactly as :meth:`rtl.feed_path.model.FeedPathModel.run_arrivals` does), and
every record the model emits must equal the RTL's next record byte for byte
with the same ``tdest``.  The counters read back over AXI-Lite must equal the
model's, and every frame a filter saw must be counted as passed or under
exactly one drop reason.

The first record that differs is reported with its neighbours and the
fields that differ; the comparison continues to the end so the figures
(mismatched records, counter differences) describe the whole run.
"""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from numba import njit

from host.book.records import BOOK_UPDATE_DTYPE, TRADE_DTYPE
from rtl.feed_path.model import FEED_A, FEED_B, FeedPathConfig, FeedPathModel
from rtl.frame_filter.model import COUNTERS as FILTER_COUNTERS
from rtl.frame_filter.model import DROP_REASONS as FILTER_DROP_REASONS
from rtl.itch_decoder.model import COUNTERS as DECODER_COUNTERS
from rtl.mold_seq.model import FEED_COUNTERS, FEEDS, STREAM_COUNTERS, Arrival, arbitration_order
from rtl.order_book.model import COUNTERS as BOOK_COUNTERS
from rtl.order_book.model import TDEST_TRADE, TDEST_UPDATE
from rtl.regmap.driver import encode, register_offsets
from rtl.regmap.map import MAP_VERSION

from .build import REPLAY_BUILD_ID, build
from .stimulus import read_stimulus

FILTER_WINDOWS = ("frame_filter", "frame_filter_b")
FEED_NAMES = ("A", "B")
RECORD_DTYPES = {TDEST_UPDATE: BOOK_UPDATE_DTYPE, TDEST_TRADE: TRADE_DTYPE}
MAX_REPORTED = 20


# -- registers -------------------------------------------------------------------------------

def config_writes(config: FeedPathConfig) -> list[tuple[int, int]]:
    """The AXI-Lite writes that set the RTL up as ``config`` says."""
    defaults = FeedPathConfig()
    unsupported = [name for name in ("session", "book", "auto_assign", "refill", "stale")
                   if getattr(config, name) != getattr(defaults, name)]
    if unsupported:
        raise ValueError(f"the replay sets up filters and the decoder only; not {unsupported}")
    offsets = register_offsets()
    writes = []
    for window, table in zip(FILTER_WINDOWS, (config.filter_a, config.filter_b)):
        for n, entry in enumerate(table):
            if entry is None:
                continue
            writes.append((offsets[f"{window}.FILTER{n}_IP"], entry.dst_ip))
            writes.append((offsets[f"{window}.FILTER{n}_PORT"], encode(
                "frame_filter", f"FILTER{n}_PORT", **{f"filter{n}_port": entry.dst_port,
                                                      f"filter{n}_enable": int(entry.enabled)})))
    for n, entry in enumerate(config.subscriptions):
        if entry is None:
            continue
        writes.append((offsets[f"itch_decoder.SUB{n}"], encode(
            "itch_decoder", f"SUB{n}", **{f"sub{n}_locate": entry.locate,
                                          f"sub{n}_enable": int(entry.enabled)})))
    writes.append((offsets["itch_decoder.CONTROL"],
                   encode("itch_decoder", "CONTROL", pass_all_locates=int(config.pass_all_locates))))
    return writes


def counter_registers() -> list[tuple[str, Callable[[FeedPathModel], int]]]:
    """Every counter register of the path with the model value it must equal."""
    offsets = register_offsets()
    out: list[tuple[str, Callable[[FeedPathModel], int]]] = []

    def add(name: str, getter: Callable[[FeedPathModel], int]) -> None:
        if name in offsets:
            out.append((name, getter))

    for i, window in enumerate(FILTER_WINDOWS):
        for c in FILTER_COUNTERS:
            add(f"{window}.COUNT_{c.upper()}", lambda m, i=i, c=c: m.filters[i].counters[c])
    for c in STREAM_COUNTERS:
        add(f"mold_seq.COUNT_{c.upper()}", lambda m, c=c: m.sequencer.stream_counters[c])
    for feed in FEEDS:
        for c in FEED_COUNTERS:
            add(f"mold_seq.FEED_{feed.upper()}_{c.upper()}",
                lambda m, feed=feed, c=c: m.sequencer.counters[feed][c])
    for c in DECODER_COUNTERS:
        add(f"itch_decoder.COUNT_{c.upper()}", lambda m, c=c: m.decoder.counters[c])
    for c in BOOK_COUNTERS:
        add(f"order_book.COUNT_{c.upper()}", lambda m, c=c: m.book.counters[c])
    return out


IDENTITY_READS = (("system.BUILD_ID", REPLAY_BUILD_ID), ("system.MAP_VERSION", MAP_VERSION))


def read_list() -> list[str]:
    return [name for name, _ in IDENTITY_READS] + [name for name, _ in counter_registers()]


def read_addresses() -> list[int]:
    offsets = register_offsets()
    return [offsets[name] for name in read_list()]


# -- RTL output ------------------------------------------------------------------------------

@njit(cache=True)
def _index_records(buf, head, tuser, length, offset):
    pos = 0
    n = 0
    end = buf.shape[0]
    while pos + 4 <= end:
        head[n] = buf[pos]
        tuser[n] = buf[pos + 1]
        size = np.int64(buf[pos + 2]) | (np.int64(buf[pos + 3]) << 8)
        length[n] = size
        offset[n] = pos + 4
        pos += 4 + size
        n += 1
    return n, pos


@dataclass
class RtlRecords:
    buf: np.ndarray
    dest: np.ndarray
    flags: np.ndarray      # bit 7: tdest changed within the record; tuser seen in `tuser`
    tuser: np.ndarray
    offset: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.dest)

    def data(self, i: int) -> bytes:
        off = int(self.offset[i])
        return self.buf[off:off + int(self.length[i])].tobytes()


def read_records(path: Path) -> RtlRecords:
    buf = np.fromfile(path, np.uint8)
    # The smallest record is 56 bytes plus its 4-byte header.
    cap = len(buf) // 60 + 1
    head, tuser = np.empty(cap, np.uint8), np.empty(cap, np.uint8)
    length, offset = np.empty(cap, np.int64), np.empty(cap, np.int64)
    n, end = _index_records(buf, head, tuser, length, offset)
    if end != len(buf):
        raise ValueError(f"{path}: a record is cut short")
    return RtlRecords(buf, head[:n] & 0x7F, head[:n] & 0x80, tuser[:n], offset[:n], length[:n])


def describe_record(dest: int, data: bytes) -> dict:
    dtype = RECORD_DTYPES.get(dest)
    if dtype is None or len(data) != dtype.itemsize:
        return {"tdest": dest, "bytes": len(data), "hex": data.hex()}
    row = np.frombuffer(data, dtype)[0]
    return {"tdest": dest, **{name: (row[name].tolist()) for name in dtype.names}}


def field_differences(dest: int, got: bytes, want: bytes) -> list[str]:
    dtype = RECORD_DTYPES.get(dest)
    if dtype is None or len(got) != len(want) or len(got) != dtype.itemsize:
        return ["length or layout"]
    a, b = np.frombuffer(got, dtype)[0], np.frombuffer(want, dtype)[0]
    return [name for name in dtype.names if a[name].tolist() != b[name].tolist()]


# -- the run ---------------------------------------------------------------------------------

@dataclass
class ReplayResult:
    """Figures of one run and everything that did not match."""

    frames: int = 0
    frames_by_feed: list = field(default_factory=list)
    payloads_by_feed: list = field(default_factory=list)
    messages: int = 0                 # messages the model's sequencer delivered
    records: int = 0                  # RTL records
    model_records: int = 0
    mismatched_records: int = 0
    counters_checked: int = 0
    counter_mismatches: dict = field(default_factory=dict)
    filter_drops: dict = field(default_factory=dict)
    deadlock: bool = False
    cycles: int = 0
    stream_cycles: int = 0
    sim_seconds: float = 0.0          # the harness's wall time (build excluded)
    sim_cpu_seconds: float = 0.0      # its CPU time: the figure a loaded machine distorts least
    sim_cycles_per_s: float = 0.0     # per CPU second, as the two below
    sim_messages_per_s: float = 0.0
    model_filter_seconds: float = 0.0
    model_seconds: float = 0.0
    model_cpu_seconds: float = 0.0
    model_messages_per_s: float = 0.0
    wall_seconds: float = 0.0
    stall_cycles: list = field(default_factory=list)
    window: dict = field(default_factory=dict)
    extra_streams: dict = field(default_factory=dict)
    first_difference: dict | None = None
    registers: dict = field(default_factory=dict)   # every register read back, by name
    errors: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def figures(self) -> dict:
        out = asdict(self)
        out["ok"] = self.ok
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 3)
        return out


def arrival_order(feeds: np.ndarray, cycles: np.ndarray, payloads: Sequence[Sequence]) -> np.ndarray:
    """Positions of the arrivals (``feeds[i]``, ``cycles[i]``; the k-th arrival
    of a feed is its k-th payload) in the sequencer's arbitration order.

    Arrivals in different cycles go by cycle; only arrivals of both feeds
    in one cycle need :func:`arbitration_order`'s tie rule (well-formed
    packets take turns), and its turn state changes only at such ties, so it
    runs on just those arrivals, in cycle order.
    """
    order = np.lexsort((feeds, cycles))
    sorted_cycles = cycles[order]
    same = sorted_cycles[1:] == sorted_cycles[:-1]
    tied = np.zeros(len(order), np.bool_)
    tied[1:] |= same
    tied[:-1] |= same
    positions = np.nonzero(tied)[0]
    if len(positions):
        local = np.zeros(len(feeds), np.int64)
        for f in (FEED_A, FEED_B):
            mask = feeds == f
            local[mask] = np.arange(int(mask.sum()))
        contested = order[positions]
        arrivals = []
        for i in contested.tolist():
            payload = payloads[int(feeds[i])][int(local[i])]
            arrivals.append(Arrival(int(feeds[i]), int(cycles[i]), payload.data, payload.error))
        order[positions] = contested[arbitration_order(arrivals)]
    return order


def replay(stimulus: str | Path, config: FeedPathConfig, out_dir: str | Path,
           exe: Path | None = None, log: Callable[[str], None] = print,
           run_harness: bool = True) -> ReplayResult:
    """Run the harness on ``stimulus`` (written with :func:`config_writes` and
    :func:`read_addresses`) and compare the run with the model under
    ``config``; the harness's files stay in ``out_dir``.  With
    ``run_harness`` false the files an earlier run left there are compared."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ReplayResult()
    index = read_stimulus(stimulus)
    if index.reads != read_addresses():
        raise ValueError(f"{stimulus}: its register reads are not this register map's")
    child = None
    if run_harness:
        exe = exe or build(log=log)
        for name in ("records.bin", "arrivals.bin", "result.json"):
            (out_dir / name).unlink(missing_ok=True)
        with (out_dir / "harness.log").open("w") as harness_log:
            child = subprocess.Popen([str(exe), str(stimulus), str(out_dir)], stdout=harness_log,
                                     stderr=subprocess.STDOUT)
    code = 0
    try:
        # The filters' work does not depend on the run: done while it runs.
        model = FeedPathModel(config)
        t0, cpu0 = time.perf_counter(), time.process_time()
        payloads: list[list] = [[], []]
        for frame in index.frames():
            payload = model.filter(frame)
            if payload is not None:
                payloads[frame.feed].append(payload)
        result.model_filter_seconds = time.perf_counter() - t0
        filter_cpu = time.process_time() - cpu0
        if child is not None:
            code = child.wait()
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
    log_path = out_dir / "harness.log"
    harness_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    result.frames = len(index)
    result.frames_by_feed = [int(np.count_nonzero(index.feed == f)) for f in (FEED_A, FEED_B)]
    result.payloads_by_feed = [len(p) for p in payloads]
    if not (out_dir / "result.json").exists():
        result.errors.append(f"harness exited {code} without a result: {harness_text[-2000:]}")
        result.wall_seconds = time.perf_counter() - started
        return result
    run = json.loads((out_dir / "result.json").read_text())
    result.deadlock = run["deadlock"]
    result.cycles, result.stream_cycles = run["cycles"], run["stream_cycles"]
    result.sim_seconds, result.sim_cpu_seconds = run["seconds"], run["cpu_seconds"]
    result.sim_cycles_per_s = run["cycles"] / max(run["cpu_seconds"], 1e-9)
    result.stall_cycles = [feed["stall_cycles"] for feed in run["feeds"]]
    result.window = run["window"]
    result.extra_streams = run["extra_streams"]
    if code or run["verdict"]:
        result.errors.append(f"harness exited {code}: {harness_text.strip()[-2000:]}")
    sent = [feed["frames_sent"] for feed in run["feeds"]]
    if sent != result.frames_by_feed:
        result.errors.append(f"frames sent per feed {sent}, stimulus has {result.frames_by_feed}")

    raw = np.fromfile(out_dir / "arrivals.bin", np.uint64)
    feeds, cycles = (raw & 1).astype(np.int64), (raw >> 1).astype(np.int64)
    arrived = [int(np.count_nonzero(feeds == f)) for f in (FEED_A, FEED_B)]
    if arrived != result.payloads_by_feed:
        result.errors.append(f"payloads reaching the sequencer per feed: RTL {arrived}, "
                             f"model filters {result.payloads_by_feed}")
        result.wall_seconds = time.perf_counter() - started
        return result
    records = read_records(out_dir / "records.bin")
    result.records = len(records)
    if records.flags.any():
        result.errors.append(f"tdest changed within {int(np.count_nonzero(records.flags))} records")
    if records.tuser.any():
        result.errors.append(f"tuser set in {int(np.count_nonzero(records.tuser))} records")

    t1, cpu1 = time.perf_counter(), time.process_time()
    order = arrival_order(feeds, cycles, payloads)
    local = np.zeros(len(feeds), np.int64)
    for f in (FEED_A, FEED_B):
        local[feeds == f] = np.arange(arrived[f])
    k = 0
    recent: list[tuple[int, bytes]] = []
    for i in order.tolist():
        feed = int(feeds[i])
        payload = payloads[feed][int(local[i])]
        for out in model.sequence(feed, payload):
            want = out.to_bytes()
            if k < len(records):
                dest, got = int(records.dest[k]), records.data(k)
                if dest != out.dest or got != want:
                    result.mismatched_records += 1
                    if result.first_difference is None:
                        result.first_difference = {
                            "record": k, "arrival": {"feed": FEED_NAMES[feed],
                                                     "cycle": int(cycles[i]),
                                                     "payload_bytes": len(payload.data)},
                            "fields": field_differences(out.dest, got, want)
                            if dest == out.dest else ["tdest"],
                            "rtl": describe_record(dest, got),
                            "model": describe_record(out.dest, want),
                            "before": [describe_record(d, b) for d, b in recent]}
                recent = (recent + [(out.dest, want)])[-2:]
            k += 1
    result.model_records = k
    result.messages = model.messages
    result.model_seconds = result.model_filter_seconds + time.perf_counter() - t1
    result.model_cpu_seconds = filter_cpu + time.process_time() - cpu1
    result.model_messages_per_s = model.messages / max(result.model_cpu_seconds, 1e-9)
    result.sim_messages_per_s = model.messages / max(result.sim_cpu_seconds, 1e-9)
    if result.mismatched_records:
        first = result.first_difference
        result.errors.append(f"{result.mismatched_records} records differ; first at record "
                             f"{first['record']}, fields {first['fields']}")
    if k != len(records):
        result.errors.append(f"RTL emitted {len(records)} records, model {k}")

    _check_registers(result, run, model)
    result.wall_seconds = time.perf_counter() - started
    return result


def _check_registers(result: ReplayResult, run: dict, model: FeedPathModel) -> None:
    reads = run["reads"]
    names = read_list()
    if len(reads) != len(names):
        result.errors.append(f"{len(reads)} register reads came back, {len(names)} asked")
        return
    values = {}
    for name, (value, resp) in zip(names, reads):
        if resp:
            result.errors.append(f"reading {name} answered {resp}")
        values[name] = value
    result.registers = values
    for name, expected in IDENTITY_READS:
        if values[name] != expected:
            result.errors.append(f"{name} reads {values[name]:#x}, expected {expected:#x}")
    for name, getter in counter_registers():
        result.counters_checked += 1
        want = getter(model) & 0xFFFF_FFFF
        if values[name] != want:
            result.counter_mismatches[name] = {"rtl": values[name], "model": want}
    if result.counter_mismatches:
        shown = dict(list(result.counter_mismatches.items())[:MAX_REPORTED])
        result.errors.append(f"{len(result.counter_mismatches)} counters differ: {shown}")
    for i, window in enumerate(FILTER_WINDOWS):
        frames = values[f"{window}.COUNT_FRAMES"]
        drops = {r: values[f"{window}.COUNT_{r.upper()}"] for r in FILTER_DROP_REASONS}
        passed = values[f"{window}.COUNT_PASSED"]
        result.filter_drops[FEED_NAMES[i]] = {r: v for r, v in drops.items() if v}
        if frames != result.frames_by_feed[i] & 0xFFFF_FFFF:
            result.errors.append(f"filter {FEED_NAMES[i]} counted {frames} frames, "
                                 f"{result.frames_by_feed[i]} were sent")
        if (passed + sum(drops.values())) & 0xFFFF_FFFF != frames:
            result.errors.append(f"filter {FEED_NAMES[i]}: {frames} frames but {passed} passed "
                                 f"+ {sum(drops.values())} dropped")


def format_first_difference(first: dict | None) -> str:
    if not first:
        return ""
    return json.dumps(first, indent=1, default=str)

"""Run the replay harness on a stimulus and hold its output against the model.

The harness runs as a child process and the model runs alongside it,
following the files the harness writes.  The model's two filters take the
stimulus's frames (that work does not depend on the run); the model's
sequencer, decoder and book take the payloads in the order the run
delivered them to the sequencer (the arrival cycles the harness stamped,
ordered by :func:`rtl.mold_seq.model.arbitration_order`, exactly as
:meth:`rtl.feed_path.model.FeedPathModel.run_arrivals` does), a batch of
whole cycles at a time as the arrivals come in, and every record the model
emits must equal the RTL's next record byte for byte with the same
``tdest``.  The counters read back over AXI-Lite must equal the
model's, and every frame a filter saw must be counted as passed or under
exactly one drop reason.

The first record that differs is reported with its neighbours and the
fields that differ; the comparison continues to the end so the figures
(mismatched records, counter differences) describe the whole run.
"""
from __future__ import annotations

import json
import multiprocessing
import subprocess
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
from numba import njit

from host.book.records import BOOK_UPDATE_DTYPE, TRADE_DTYPE
from rtl.feed_path.model import FEED_A, FEED_B, FeedPathConfig, FeedPathModel
from rtl.frame_filter.model import COUNTERS as FILTER_COUNTERS
from rtl.frame_filter.model import DROP_REASONS as FILTER_DROP_REASONS
from rtl.itch_decoder.model import COUNTERS as DECODER_COUNTERS
from rtl.mold_seq.model import FEED_COUNTERS, FEEDS, STREAM_COUNTERS, Arbiter, Arrival
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
    """The whole records at the start of ``buf`` (at most the arrays'
    length): (how many, the bytes they take)."""
    pos = 0
    n = 0
    end = buf.shape[0]
    while pos + 4 <= end and n < head.shape[0]:
        size = np.int64(buf[pos + 2]) | (np.int64(buf[pos + 3]) << 8)
        if pos + 4 + size > end:
            break
        head[n] = buf[pos]
        tuser[n] = buf[pos + 1]
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
    model_filter_seconds: float = 0.0   # the filter process's wall time (alongside the rest)
    model_filter_cpu_seconds: float = 0.0
    model_seconds: float = 0.0        # from the start of the run to the model's last record
    model_wait_seconds: float = 0.0   # of which waiting for the harness's output
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


def arrival_order(feeds: np.ndarray, cycles: np.ndarray, payloads: Sequence[Sequence],
                  arbiter: Arbiter | None = None) -> np.ndarray:
    """Positions of the arrivals (``feeds[i]``, ``cycles[i]``; the k-th arrival
    of a feed is its k-th payload) in the sequencer's arbitration order.

    Arrivals in different cycles go by cycle; only arrivals of both feeds
    in one cycle need :func:`arbitration_order`'s tie rule (well-formed
    packets take turns), and its turn state changes only at such ties, so it
    runs on just those arrivals, in cycle order.  With ``arbiter`` the turn
    state carries over from the batch before (whose cycles were all earlier).
    """
    arbiter = arbiter or Arbiter()
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
        order[positions] = contested[arbiter.order(arrivals)]
    return order


class _Tail:
    """A file the harness may still be writing: each read returns the bytes
    appended since the last one."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None

    def read(self, limit: int = -1) -> bytes:
        if self._file is None:
            if not self.path.exists():
                return b""
            self._file = self.path.open("rb")
        return self._file.read(limit)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class _Payloads:
    """The model's two filters over the stimulus's frames, in a process of
    their own: their work does not depend on the run, so it runs on
    whichever core is free, as far ahead as the pipe lets it.  Per feed, the
    payloads passed and not yet taken, in order; at the end, the filters'
    counters."""

    def __init__(self, index, config: FeedPathConfig):
        # fork: the child shares the mapped stimulus instead of reloading it.
        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe(duplex=False)
        self._process = context.Process(target=_filter_frames, args=(index, config, child_end),
                                        daemon=True)
        self._process.start()
        child_end.close()
        self.queues: list[deque] = [deque(), deque()]
        self.passed = [0, 0]
        self.done = False
        self.counters: list[dict] | None = None
        self.cpu_seconds = 0.0
        self.seconds = 0.0
        self.error: str | None = None

    def ready(self) -> int:
        return len(self.queues[FEED_A]) + len(self.queues[FEED_B])

    def receive(self) -> None:
        """The filter process's next message (waits for it)."""
        try:
            kind, body = self._conn.recv()
        except (EOFError, OSError):
            kind, body = "error", "the filter process ended without its counters"
        if kind == "payloads":
            for feed, items in enumerate(body):
                self.queues[feed].extend(map(_Payload._make, items))
                self.passed[feed] += len(items)
        elif kind == "done":
            self.counters, self.cpu_seconds, self.seconds = body
            self.done = True
        else:
            self.error = body
            self.done = True

    def pull(self) -> bool:
        """Whatever the filter process has sent, without waiting; True if
        anything came."""
        got = False
        while not self.done and self._conn.poll():
            self.receive()
            got = True
        return got

    def take(self, feed: int, count: int) -> list | None:
        """The next ``count`` payloads of ``feed``; None if the filters pass
        fewer than that in the whole stimulus."""
        queue = self.queues[feed]
        while len(queue) < count and not self.done:
            self.receive()
        if len(queue) < count:
            return None
        return [queue.popleft() for _ in range(count)]

    def finish(self) -> None:
        while not self.done:
            self.receive()
        self.close()

    def close(self) -> None:
        self._conn.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


# Frames per message from the filter process.
FILTER_CHUNK = 4096


class _Payload(NamedTuple):
    """A filter's output packet (:class:`rtl.common.axis.Packet`'s fields),
    as cheap to make as a tuple: the sequencer reads ``data`` and ``error``."""

    data: bytes
    error: bool
    dest: int


def _filter_frames(index, config: FeedPathConfig, conn) -> None:
    """The filter process: every frame through the model's filters, the
    payloads sent in chunks, then the counters."""
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        model = FeedPathModel(config)
        chunk: tuple[list, list] = ([], [])
        for n, frame in enumerate(index.frames(), 1):
            payload = model.filter(frame)
            if payload is not None:
                chunk[frame.feed].append((payload.data, payload.error, payload.dest))
            if n % FILTER_CHUNK == 0:
                conn.send(("payloads", chunk))
                chunk = ([], [])
        conn.send(("payloads", chunk))
        conn.send(("done", ([f.counters for f in model.filters], time.process_time() - cpu0,
                            time.perf_counter() - t0)))
    except BaseException:   # noqa: BLE001 - whatever it was, the parent reports it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class _RecordCheck:
    """The RTL's records as the harness writes them, each held against the
    model's next record as soon as both exist."""

    def __init__(self, result: ReplayResult):
        self.result = result
        self.rtl: deque = deque()        # (tdest, bytes) not yet compared
        self.model: deque = deque()      # (tdest, bytes, arrival) not yet compared
        self.rtl_records = 0
        self.model_records = 0
        self.flags = 0
        self.tuser = 0
        self._pending = b""
        self._recent: list[tuple[int, bytes]] = []

    def feed_rtl(self, data: bytes, final: bool = False) -> None:
        """Bytes of records.bin that followed the last ones; ``final``: the
        file ends here."""
        buf = self._pending + data if self._pending else data
        raw = np.frombuffer(buf, np.uint8)
        start = 0
        while start < len(buf):
            # A record of the path is at least 56 bytes; a shorter one only
            # takes another round.
            cap = (len(buf) - start) // 60 + 1
            head, tuser = np.empty(cap, np.uint8), np.empty(cap, np.uint8)
            length, offset = np.empty(cap, np.int64), np.empty(cap, np.int64)
            n, end = _index_records(raw[start:], head, tuser, length, offset)  # whole records
            if n == 0:
                break
            self.flags += int(np.count_nonzero(head[:n] & 0x80))
            self.tuser += int(np.count_nonzero(tuser[:n]))
            dests = (head[:n] & 0x7F).tolist()
            self.rtl.extend(zip(dests, [buf[o:o + k] for o, k in
                                        zip((offset[:n] + start).tolist(), length[:n].tolist())]))
            self.rtl_records += n
            start += end
        self._pending = buf[start:]
        if final and self._pending:
            self.result.errors.append("records.bin: a record is cut short")
            self._pending = b""
        self.match()

    def add_model(self, outputs: list, arrival: tuple) -> None:
        model = self.model
        for out in outputs:
            model.append((out.dest, out.to_bytes(), arrival))
        self.model_records += len(outputs)

    def match(self) -> None:
        rtl, model, result = self.rtl, self.model, self.result
        compared = self.rtl_records - len(rtl)
        while rtl and model:
            dest, got = rtl.popleft()
            want_dest, want, arrival = model.popleft()
            if dest != want_dest or got != want:
                result.mismatched_records += 1
                if result.first_difference is None:
                    feed, cycle, payload_bytes = arrival
                    result.first_difference = {
                        "record": compared, "arrival": {"feed": FEED_NAMES[feed],
                                                        "cycle": cycle,
                                                        "payload_bytes": payload_bytes},
                        "fields": field_differences(want_dest, got, want)
                        if dest == want_dest else ["tdest"],
                        "rtl": describe_record(dest, got),
                        "model": describe_record(want_dest, want),
                        "before": [describe_record(d, b) for d, b in self._recent]}
            if result.first_difference is None:
                self._recent = [self._recent[-1], (want_dest, want)] if self._recent \
                    else [(want_dest, want)]
            compared += 1


# Payloads the filters may run ahead of the arrivals, arrivals sequenced in
# one go, RTL records read ahead of the model's, bytes of records.bin read
# at once: bounds on the memory when one side runs far ahead of the other.
FILTER_AHEAD = 200_000
BATCH_ARRIVALS = 100_000
RTL_AHEAD = 50_000
RECORD_READ_BYTES = 16 << 20
# How long the model waits for more of the harness's output when it has none.
POLL_SECONDS = 0.05


def replay(stimulus: str | Path, config: FeedPathConfig, out_dir: str | Path,
           exe: Path | None = None, log: Callable[[str], None] = print,
           run_harness: bool = True) -> ReplayResult:
    """Run the harness on ``stimulus`` (written with :func:`config_writes` and
    :func:`read_addresses`) and compare the run with the model under
    ``config``; the harness's files stay in ``out_dir``.  With
    ``run_harness`` false the files an earlier run left there are compared.

    The model runs while the harness does: it takes the arrivals and
    records as the harness writes them (whole cycles of arrivals at a time,
    so the tie rule sees both feeds of a cycle), so the run takes about as
    long as the slower of the two instead of their sum."""
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
    model = FeedPathModel(config)
    payloads = _Payloads(index, config)
    check = _RecordCheck(result)
    arrivals_file, records_file = _Tail(out_dir / "arrivals.bin"), _Tail(out_dir / "records.bin")
    arbiter = Arbiter()
    t0, cpu0 = time.perf_counter(), time.process_time()
    wait_seconds = 0.0
    code = 0
    arrived = [0, 0]
    starved = False             # an arrival with no payload of the model's filters for it
    out_of_order = False
    last_cycle = -1
    leftover = b""
    held = np.empty(0, np.uint64)   # arrivals read and not yet sequenced
    try:
        while True:
            finished = child is None or child.poll() is not None
            data = leftover + arrivals_file.read()
            whole = len(data) - len(data) % 8
            leftover = data[whole:]
            if whole:
                new = np.frombuffer(data[:whole], np.uint64)
                held = np.concatenate((held, new)) if len(held) else new
            if len(check.rtl) < RTL_AHEAD:
                check.feed_rtl(records_file.read(RECORD_READ_BYTES))
            # Whole cycles only: until the harness is done, the other feed's
            # arrival in the latest cycle read may still follow.
            cut = len(held)
            if cut:
                held_cycles = held >> np.uint64(1)
                if not finished:
                    cut = int(np.searchsorted(held_cycles, held_cycles[-1], "left"))
                if cut > BATCH_ARRIVALS:
                    cut = int(np.searchsorted(held_cycles, held_cycles[BATCH_ARRIVALS - 1],
                                              "right"))
            batch, held = held[:cut], held[cut:]
            if len(batch) and not starved:
                feeds = (batch & 1).astype(np.int64)
                cycles = (batch >> 1).astype(np.int64)
                if int(cycles[0]) < last_cycle or np.any(cycles[1:] < cycles[:-1]):
                    out_of_order = True
                last_cycle = int(cycles[-1])
                counts = [int(np.count_nonzero(feeds == f)) for f in (FEED_A, FEED_B)]
                taken = [payloads.take(f, counts[f]) for f in (FEED_A, FEED_B)]
                for f in (FEED_A, FEED_B):
                    arrived[f] += counts[f]
                if None in taken:
                    starved = True
                else:
                    _sequence(model, check, feeds, cycles, taken, arbiter)
            elif len(batch):
                for f in (FEED_A, FEED_B):
                    arrived[f] += int(np.count_nonzero((batch & 1) == f))
            if finished and not len(held):
                break
            pulled = payloads.ready() < FILTER_AHEAD and payloads.pull()
            if not len(batch) and not pulled and child is not None:
                w0 = time.perf_counter()
                try:
                    child.wait(POLL_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
                wait_seconds += time.perf_counter() - w0
        if child is not None:
            code = child.wait()
        while True:
            data = records_file.read(RECORD_READ_BYTES)
            if not data:
                break
            check.feed_rtl(data)
        check.feed_rtl(b"", final=True)
        payloads.finish()
    finally:
        payloads.close()
        arrivals_file.close()
        records_file.close()
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
    log_path = out_dir / "harness.log"
    harness_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    result.frames = len(index)
    result.frames_by_feed = [int(np.count_nonzero(index.feed == f)) for f in (FEED_A, FEED_B)]
    result.payloads_by_feed = list(payloads.passed)
    if payloads.error:
        result.errors.append(f"model filters: {payloads.error}")
    else:
        for model_filter, counters in zip(model.filters, payloads.counters):
            model_filter.counters = counters
    result.model_filter_seconds = payloads.seconds
    result.model_filter_cpu_seconds = payloads.cpu_seconds
    result.model_seconds = time.perf_counter() - t0
    result.model_wait_seconds = wait_seconds
    # Both processes' CPU time: the filters' and the rest of the model's.
    result.model_cpu_seconds = time.process_time() - cpu0 + payloads.cpu_seconds
    result.model_messages_per_s = model.messages / max(result.model_cpu_seconds, 1e-9)
    result.messages = model.messages
    if not (out_dir / "result.json").exists():
        result.errors.append(f"harness exited {code} without a result: {harness_text[-2000:]}")
        result.wall_seconds = time.perf_counter() - started
        return result
    run = json.loads((out_dir / "result.json").read_text())
    result.deadlock = run["deadlock"]
    result.cycles, result.stream_cycles = run["cycles"], run["stream_cycles"]
    result.sim_seconds, result.sim_cpu_seconds = run["seconds"], run["cpu_seconds"]
    result.sim_cycles_per_s = run["cycles"] / max(run["cpu_seconds"], 1e-9)
    result.sim_messages_per_s = model.messages / max(result.sim_cpu_seconds, 1e-9)
    result.stall_cycles = [feed["stall_cycles"] for feed in run["feeds"]]
    result.window = run["window"]
    result.extra_streams = run["extra_streams"]
    if code or run["verdict"]:
        result.errors.append(f"harness exited {code}: {harness_text.strip()[-2000:]}")
    sent = [feed["frames_sent"] for feed in run["feeds"]]
    if sent != result.frames_by_feed:
        result.errors.append(f"frames sent per feed {sent}, stimulus has {result.frames_by_feed}")
    if out_of_order:
        result.errors.append("arrivals.bin is not in cycle order")
    if leftover:
        result.errors.append("arrivals.bin ends inside an arrival")
    if arrived != result.payloads_by_feed:
        result.errors.append(f"payloads reaching the sequencer per feed: RTL {arrived}, "
                             f"model filters {result.payloads_by_feed}")
        result.wall_seconds = time.perf_counter() - started
        return result
    result.records = check.rtl_records
    if check.flags:
        result.errors.append(f"tdest changed within {check.flags} records")
    if check.tuser:
        result.errors.append(f"tuser set in {check.tuser} records")
    result.model_records = check.model_records
    if result.mismatched_records:
        first = result.first_difference
        result.errors.append(f"{result.mismatched_records} records differ; first at record "
                             f"{first['record']}, fields {first['fields']}")
    if check.model_records != check.rtl_records:
        result.errors.append(f"RTL emitted {check.rtl_records} records, model "
                             f"{check.model_records}")

    _check_registers(result, run, model)
    result.wall_seconds = time.perf_counter() - started
    return result


def _sequence(model: FeedPathModel, check: _RecordCheck, feeds: np.ndarray, cycles: np.ndarray,
              taken: list[list], arbiter: Arbiter) -> None:
    """One batch of arrivals (whole cycles) through the model's sequencer,
    decoder and book in arbitration order, their records to ``check``."""
    order = arrival_order(feeds, cycles, taken, arbiter)
    local = np.zeros(len(feeds), np.int64)
    for f in (FEED_A, FEED_B):
        mask = feeds == f
        local[mask] = np.arange(int(mask.sum()))
    feed_list, cycle_list, local_list = feeds.tolist(), cycles.tolist(), local.tolist()
    sequence = model.sequence
    for i in order.tolist():
        feed = feed_list[i]
        payload = taken[feed][local_list[i]]
        outputs = sequence(feed, payload)
        if outputs:
            check.add_model(outputs, (feed, cycle_list[i], len(payload.data)))
    check.match()


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

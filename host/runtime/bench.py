"""Host quote-to-wire latency: quote record in, OUCH bytes written to the socket.

The real path, nothing stubbed: :class:`~host.runtime.quotes.QuoteTrader`
decides the requests, :class:`~host.risk.guard.RiskGuard` checks each one,
the order gateway journals it (``"group"`` durability: written to the kernel
before it is sent, fsynced by the journal's committer thread, which runs
during the measurement as it does in the appliance) and writes the record's
requests to a SoupBinTCP session with the exchange simulator on loopback in
one send.  Each record moves one option's two-sided quote, so every record
costs two Replace Orders (the simulator keeps no journal: its disk is not
the host's path).  Between records the loop waits for the exchange's
answers, so no request waits behind another and the figure is the host's
own path.  The clock starts when the record is handed to the trader and
stops when the send of its requests has returned.

Figures (µs, per record): ``host_quote_to_wire_p50_us`` / ``_p99_us`` /
``_p999_us`` / ``_max_us`` (wall time), and ``host_quote_to_wire_cpu_mean_us``
/ ``_cpu_p50_us`` / ``_cpu_p99_us``, the CPU time the thread spends on the
whole record (also the trigger records journaled after the send, which the
wall time leaves out): on a shared machine wall time also counts the time
the thread was not running, CPU time is what the code costs.  A second pass
with every stage timed gives
``stages_us``: mean and p99 per record of the risk checks, OUCH encoding,
the journal write, the order manager's accounting and the socket send, and
``other`` (the trader's own work and the rest); flat copies go under
``host_quote_to_wire_stage_*``.  A short third pass with ``"fsync"``
durability gives ``host_quote_to_wire_fsync_on_path_p50_us`` and its ratio
to the group-commit p50: what an fsync on the send path would cost instead
(the ratio is what carries between machines).

The risk engine's fast path against its straightforward checks
(:mod:`host.risk.engine`), in the same process and under the same load: a
pass that switches the engine between the two on alternate records gives
``risk_ab`` (wall and CPU per record and the risk checks' CPU per record,
for each) and ``host_quote_to_wire_risk_fast_cpu_us`` /
``_risk_checks_cpu_us`` / ``_risk_cpu_ratio`` (checks over fast) and
``_checks_only_cpu_ratio`` (whole record).

Stage figures carry wall time (``mean``, ``p50``, ``p99``) and the thread's
CPU time (``cpu_mean``): on a busy machine the gap is time the thread was
preempted or waited in the kernel (a journal write that meets the
committer's fsync, for one).  They are net of the stage timers' own cost
(calibrated at the start, ``stage_timer_us``); ``other``'s ``cpu_mean`` is
the first pass's CPU per record less the stages' (the first pass has no
stage timers).  ``journal`` is the requests' records: written in one write
as the record's batch ends, just before its send; the triggers' write after
the send counts under ``other``.

``host_quote_to_wire_answers_cpu_us``: CPU time per record of handling the
exchange's answers (journal, order manager, positions, risk, trader), work
done while no record waits; the first pass measures it.

``python -m host.runtime.bench [--records N] [--ab-records N] [--profile]``
prints the JSON; ``--profile`` adds the functions that dominate (cProfile).
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from host.exchange.server import ExchangeConfig, ExchangeServer
from host.gateway import OrderGateway, OrderState
from host.positions.marks import Marks
from host.positions.theo import price_option
from host.protocols import ouch50
from host.quoting.records import KIND_QUOTE, SIDE_ASK, SIDE_BID, quotes_array
from host.risk.guard import RiskGuard
from host.risk.limits import RiskLimits
from host.runtime.chains import build_universe
from host.runtime.config import Chain
from host.runtime.quotes import QuoteTrader

CHAIN = Chain(underlying="ZBENCH", strikes=[90.0, 95.0, 100.0, 105.0, 110.0],
              expiries_days=[30.0], kinds=["call", "put"], sigma=0.3)
STAGES = ("risk", "encode", "journal", "orders", "send")
_ABSENT = object()
_PENDING = frozenset({OrderState.PENDING_NEW, OrderState.PENDING_REPLACE,
                      OrderState.PENDING_CANCEL})


def _percentiles(values_ns, prefix: str) -> dict:
    lat = np.asarray(values_ns, dtype=np.float64) / 1000.0
    if not lat.size:
        return {}
    return {f"{prefix}_p50_us": float(np.percentile(lat, 50)),
            f"{prefix}_p99_us": float(np.percentile(lat, 99)),
            f"{prefix}_p999_us": float(np.percentile(lat, 99.9)),
            f"{prefix}_max_us": float(lat.max())}


def _cpu_figures(values_ns, prefix: str) -> dict:
    cpu = np.asarray(values_ns, dtype=np.float64) / 1000.0
    if not cpu.size:
        return {}
    return {f"{prefix}_cpu_mean_us": float(cpu.mean()),
            f"{prefix}_cpu_p50_us": float(np.percentile(cpu, 50)),
            f"{prefix}_cpu_p99_us": float(np.percentile(cpu, 99))}


class _RiskClock:
    """Adds up the thread's CPU time in the gateway's pre-trade hook (the
    A/B pass: one timer, the same for both sides)."""

    def __init__(self, gateway: OrderGateway):
        self.gateway = gateway
        self.cpu = 0

    @contextmanager
    def installed(self):
        gateway = self.gateway
        hook = gateway.pre_trade
        cpu_clock = time.thread_time_ns

        def timed(msg):
            start = cpu_clock()
            try:
                return hook(msg)
            finally:
                self.cpu += cpu_clock() - start
        gateway.pre_trade = timed
        try:
            yield self
        finally:
            gateway.pre_trade = hook


class _StageClock:
    """Wraps the stage functions of one gateway with timers (the second pass).

    Reading the thread's CPU clock is a system call (about a microsecond
    and a half on a virtual machine), and a record passes ten timed calls:
    left in, the timers would be a fifth of what they measure.
    :meth:`calibrate` measures what a timed empty call reports
    (``inside``) and what the wrapper adds in all (``added``); the figures
    are given net of both."""

    def __init__(self, gateway: OrderGateway | None):
        self.gateway = gateway
        self.spent: dict[str, int] = defaultdict(int)
        self.cpu: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self.per_record: dict[str, list[int]] = defaultdict(list)
        self.cpu_per_record: dict[str, list[int]] = defaultdict(list)
        self.calls_per_record: list[int] = []
        # ns per timed call: reported by an empty one (wall, CPU), added in all (wall)
        self.inside_wall = self.inside_cpu = self.added_wall = 0.0

    def _timed(self, stage: str, fn):
        # Wall time (what the wire sees) and this thread's CPU time (what the
        # code costs: on a busy machine the difference is time the thread
        # was not running, or waited in the kernel).
        spent, cpu, calls = self.spent, self.cpu, self.calls
        wall_clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns

        def timed(*args, **kwargs):
            start, start_cpu = wall_clock(), cpu_clock()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[stage] += cpu_clock() - start_cpu
                spent[stage] += wall_clock() - start
                calls[stage] += 1
        return timed

    def calibrate(self, rounds: int = 4000) -> None:
        """The timers' own cost: the median of a few runs of ``rounds``
        empty calls, timed and bare."""
        def empty():
            return None
        timed = self._timed("_probe", empty)
        wall_clock = time.perf_counter_ns
        inside_wall, inside_cpu, added = [], [], []
        for _ in range(5):
            self.spent.clear(), self.cpu.clear()
            start = wall_clock()
            for _ in range(rounds):
                empty()
            bare = wall_clock() - start
            start = wall_clock()
            for _ in range(rounds):
                timed()
            wrapped = wall_clock() - start
            inside_wall.append(self.spent["_probe"] / rounds)
            inside_cpu.append(self.cpu["_probe"] / rounds)
            added.append((wrapped - bare) / rounds)
        self.inside_wall = float(np.median(inside_wall))
        self.inside_cpu = float(np.median(inside_cpu))
        self.added_wall = float(np.median(added))
        self.spent.clear(), self.cpu.clear(), self.calls.clear()

    @contextmanager
    def installed(self):
        gateway, client = self.gateway, self.gateway.client
        saved_encode = {cls: cls.encode for cls in ouch50.INBOUND_MESSAGES}
        saved = []
        # The journal stage: the requests' records (held in a batch and
        # written as it ends, or appended one by one outside one).
        for owner, name, stage in ((gateway, "pre_trade", "risk"),
                                   (gateway.journal, "append", "journal"),
                                   (client, "before_flush", "journal"),
                                   (gateway.orders, "sent", "orders"),
                                   (client, "send", "send"), (client, "_flush", "send")):
            if getattr(owner, name, None) is None:
                continue          # (a gateway without that hook)
            saved.append((owner, name, vars(owner).get(name, _ABSENT)))
            setattr(owner, name, self._timed(stage, getattr(owner, name)))
        for cls, encode in saved_encode.items():
            cls.encode = self._timed("encode", encode)
        try:
            yield self
        finally:
            for cls, encode in saved_encode.items():
                cls.encode = encode
            for owner, name, value in saved:
                if value is _ABSENT:
                    delattr(owner, name)
                else:
                    setattr(owner, name, value)

    def start_record(self) -> None:
        self.spent.clear()
        self.cpu.clear()
        self.calls.clear()

    def end_record(self) -> None:
        for stage in STAGES:
            calls = self.calls.get(stage, 0)
            self.per_record[stage].append(self.spent.get(stage, 0) - calls * self.inside_wall)
            self.cpu_per_record[stage].append(self.cpu.get(stage, 0) - calls * self.inside_cpu)
        self.calls_per_record.append(sum(self.calls.values()))


class _AnswerClock:
    """CPU time of the host's handling of the exchange's answers (journal,
    order manager, positions, risk, trader), per record (the plain pass:
    work the quote path no longer waits for shows up here)."""

    def __init__(self, client, inside_cpu: float):
        self.client = client
        self.inside_cpu = inside_cpu
        self.cpu = 0
        self.calls = 0

    @contextmanager
    def installed(self):
        client = self.client
        handler = client.on_sequenced
        cpu_clock = time.thread_time_ns

        def timed(seq, raw):
            start = cpu_clock()
            try:
                handler(seq, raw)
            finally:
                self.cpu += cpu_clock() - start
                self.calls += 1
        client.on_sequenced = timed
        try:
            yield self
        finally:
            client.on_sequenced = handler

    def take(self) -> float:
        """ns since the last take, net of the timer."""
        spent = self.cpu - self.calls * self.inside_cpu
        self.cpu = self.calls = 0
        return spent


async def measure(records: int, profile: bool = False, *, stages: bool = True,
                  durability: str = "group", stage_records: int | None = None,
                  fsync_pass: bool = True, ab_records: int | None = None) -> dict:
    """``ab_records`` (default ``records``; 0: no such pass): records of the
    fast-path-against-checks pass."""
    universe = build_universe([CHAIN], {"ZBENCH": 1})
    instruments = universe.instruments()
    marks = Marks(instruments)
    marks.set_bbo("ZBENCH", 999_900, 1_000_100)
    for option in universe.options:
        marks.set_theo(option.symbol, price_option(option.spec, 100.0))
    with tempfile.TemporaryDirectory() as scratch:
        server = ExchangeServer(ExchangeConfig(users={"ZMM01": "s3cret"}))
        port = await server.start()
        gateway = OrderGateway(Path(scratch) / "orders.journal", "127.0.0.1", port, "ZMM01",
                               "s3cret", durability=durability)
        # Throttles out of the way: the bench sends faster than an exchange allows.
        limits = RiskLimits.model_validate({"throttle": {
            f"{kind}_per_{span}": None for kind in ("orders", "cancels", "messages")
            for span in ("second", "window")}})
        guard = RiskGuard(gateway, limits, instruments, marks=marks)
        trader = QuoteTrader(universe, gateway.orders, gateway.submit, gateway.journal.append,
                             batch=gateway.batch)
        gateway.on_received.append(trader.on_message)
        await gateway.start()
        options = len(universe.options)
        profiler = cProfile.Profile() if profile else None
        stage_clock = _StageClock(gateway)
        stage_clock.calibrate()
        answer_clock = _AnswerClock(gateway.client, stage_clock.inside_cpu)
        risk_clock = _RiskClock(gateway)
        engine = guard.engine
        warmup = 2 * options                       # the first rounds enter the orders
        timed = records if stage_records is None else stage_records
        ab = records if ab_records is None else ab_records
        phases = [("plain", warmup + records)]
        if stages:
            phases.append(("stages", timed))
        if ab:
            phases.append(("ab", ab))
        record_latency: dict[str, list[int]] = {"plain": [], "stages": [], "fast": [],
                                                "checks": []}
        record_cpu: dict[str, list[int]] = {"plain": [], "fast": [], "checks": []}
        answer_cpu: list[float] = []
        risk_cpu: dict[str, list[int]] = {"fast": [], "checks": []}
        cpu_clock = time.thread_time_ns
        i = 0

        async def answered():
            await gateway.wait_until(lambda: not any(
                o.state in _PENDING for o in gateway.orders.unique_orders()), 5.0)

        try:
            for phase, count in phases:
                context = (stage_clock.installed() if phase == "stages" else
                           risk_clock.installed() if phase == "ab" else
                           answer_clock.installed())
                if context is not None:
                    context.__enter__()
                try:
                    for n in range(count):
                        side = phase
                        if phase == "ab":
                            # Alternate records: both sides see the same load.
                            side = "fast" if n % 2 == 0 else "checks"
                            engine.fast_path = side == "fast"
                            risk_clock.cpu = 0
                        option = universe.options[i % options]
                        theo = marks.theo(option.symbol).price
                        tick = 100 * (1 + (i // options) % 3)      # the quote walks 1-3 cents
                        bid = int(round(theo * 100)) * 100 - tick
                        record = quotes_array([dict(
                            kind=KIND_QUOTE, option_id=option.option_id,
                            sides=SIDE_BID | SIDE_ASK, bid_price=bid,
                            ask_price=bid + 2 * tick + 100, bid_size=5, ask_size=5,
                            seq=i + 1)])[0]
                        measured = i >= warmup
                        sent_before = len(trader.latencies_ns)
                        if phase == "stages":
                            stage_clock.start_record()
                        if measured and profiler and phase == "plain":
                            profiler.enable()
                        cpu_start = cpu_clock()
                        trader.on_record(record, time.monotonic_ns())
                        cpu = cpu_clock() - cpu_start
                        if measured and profiler and phase == "plain":
                            profiler.disable()
                        timed_record = len(trader.latencies_ns) > sent_before and measured
                        if timed_record:
                            record_latency[side].append(trader.latencies_ns[-1])
                            if side in record_cpu:
                                record_cpu[side].append(cpu)
                            if side in risk_cpu:
                                risk_cpu[side].append(risk_clock.cpu)
                            if phase == "stages":
                                stage_clock.end_record()
                        i += 1
                        answer_clock.take()
                        await answered()
                        if phase == "plain" and timed_record:
                            answer_cpu.append(answer_clock.take())
                finally:
                    engine.fast_path = True
                    if context is not None:
                        context.__exit__(None, None, None)
        finally:
            await gateway.close()
            await server.close()
    out = {"records": len(record_latency["plain"]),
           "requests": int(trader.counts["ReplaceOrderRequest"] + trader.counts["EnterOrder"]),
           "durability": durability,
           **_percentiles(record_latency["plain"], "host_quote_to_wire"),
           **_cpu_figures(record_cpu["plain"], "host_quote_to_wire"),
           "risk_refusals": {k: v for k, v in guard.engine.counts.items()
                             if k.startswith("rejected_")},
           "risk_fast_accepts": engine.fast_accepts}
    if record_latency["fast"] and record_latency["checks"]:
        split = {}
        for side in ("fast", "checks"):
            risk = np.asarray(risk_cpu[side], dtype=np.float64) / 1000.0
            split[side] = {**_percentiles(record_latency[side], "wall"),
                           **_cpu_figures(record_cpu[side], "record"),
                           "risk_cpu_mean_us": float(risk.mean()),
                           "risk_cpu_p50_us": float(np.percentile(risk, 50)),
                           "risk_cpu_p99_us": float(np.percentile(risk, 99)),
                           "records": len(record_latency[side])}
        out["risk_ab"] = split
        fast, checks = split["fast"], split["checks"]
        out["host_quote_to_wire_risk_fast_cpu_us"] = fast["risk_cpu_mean_us"]
        out["host_quote_to_wire_risk_checks_cpu_us"] = checks["risk_cpu_mean_us"]
        out["host_quote_to_wire_risk_cpu_ratio"] = (checks["risk_cpu_mean_us"]
                                                    / fast["risk_cpu_mean_us"])
        out["host_quote_to_wire_checks_only_p50_us"] = checks["wall_p50_us"]
        out["host_quote_to_wire_checks_only_cpu_ratio"] = (checks["record_cpu_mean_us"]
                                                           / fast["record_cpu_mean_us"])
    if answer_cpu:
        out["host_quote_to_wire_answers_cpu_us"] = float(np.mean(answer_cpu)) / 1000.0
    if stages and record_latency["stages"]:
        totals = np.asarray(record_latency["stages"], dtype=np.float64) / 1000.0
        split = {}
        # What the wrappers add outside what they report, per record.
        other = totals - (np.asarray(stage_clock.calls_per_record, dtype=np.float64)
                          * (stage_clock.added_wall - stage_clock.inside_wall) / 1000.0)
        plain_cpu = float(np.mean(record_cpu["plain"])) / 1000.0 if record_cpu["plain"] else 0.0
        other_cpu = plain_cpu
        for stage in STAGES:
            values = np.asarray(stage_clock.per_record[stage], dtype=np.float64) / 1000.0
            cpu = np.asarray(stage_clock.cpu_per_record[stage], dtype=np.float64) / 1000.0
            other -= values
            other_cpu -= float(cpu.mean())
            split[stage] = {"mean": float(values.mean()), "p50": float(np.median(values)),
                            "p99": float(np.percentile(values, 99)),
                            "cpu_mean": float(cpu.mean()),
                            "share": float(values.sum() / totals.sum())}
        # CPU of the rest: the plain pass's CPU per record (no stage timers)
        # less the stages' net CPU.
        split["other"] = {"mean": float(other.mean()), "p50": float(np.median(other)),
                          "p99": float(np.percentile(other, 99)), "cpu_mean": other_cpu,
                          "share": float(other.sum() / totals.sum())}
        out["stages_us"] = split
        out["stages_total_p50_us"] = float(np.percentile(totals, 50))
        out["stage_timer_us"] = {"reported_wall": stage_clock.inside_wall / 1000.0,
                                 "reported_cpu": stage_clock.inside_cpu / 1000.0,
                                 "added_wall": stage_clock.added_wall / 1000.0,
                                 "calls_per_record": float(np.mean(
                                     stage_clock.calls_per_record))}
        # Flat copies for bench.json (make bench keeps the host_quote_to_wire keys).
        for stage, figures in split.items():
            out[f"host_quote_to_wire_stage_{stage}_mean_us"] = figures["mean"]
            if "cpu_mean" in figures:
                out[f"host_quote_to_wire_stage_{stage}_cpu_us"] = figures["cpu_mean"]
    if fsync_pass:
        fsync = await measure(max(50, records // 25), stages=False, durability="fsync",
                              fsync_pass=False, ab_records=0)
        out["host_quote_to_wire_fsync_on_path_p50_us"] = fsync["host_quote_to_wire_p50_us"]
        out["host_quote_to_wire_fsync_on_path_ratio"] = (
            fsync["host_quote_to_wire_p50_us"] / out["host_quote_to_wire_p50_us"])
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        out["profile"] = text.getvalue()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--ab-records", type=int, default=None,
                        help="records of the fast-path/checks pass (default: --records; 0: none)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.records, args.profile, ab_records=args.ab_records))
    profile = result.pop("profile", None)
    print(json.dumps(result, indent=1))
    if profile:
        print(profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
``_p999_us`` / ``_max_us``.  A second pass with every stage timed gives
``stages_us``: mean and p99 per record of the risk checks, OUCH encoding,
the journal write, the order manager's accounting and the socket send, and
``other`` (the trader's own work and the rest); flat copies go under
``host_quote_to_wire_stage_*``.  A short third pass with ``"fsync"``
durability gives ``host_quote_to_wire_fsync_on_path_p50_us`` and its ratio
to the group-commit p50: what an fsync on the send path would cost instead
(the ratio is what carries between machines).

Stage figures carry wall time (``mean``, ``p50``, ``p99``) and the thread's
CPU time (``cpu_mean``): on a busy machine the gap is time the thread was
preempted or waited in the kernel (a journal write that meets the
committer's fsync, for one).

``python -m host.runtime.bench [--records N] [--profile]`` prints the JSON;
``--profile`` adds the functions that dominate (cProfile).
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


class _StageClock:
    """Wraps the stage functions of one gateway with timers (the second pass)."""

    def __init__(self, gateway: OrderGateway):
        self.gateway = gateway
        self.spent: dict[str, int] = defaultdict(int)
        self.cpu: dict[str, int] = defaultdict(int)
        self.per_record: dict[str, list[int]] = defaultdict(list)
        self.cpu_per_record: dict[str, list[int]] = defaultdict(list)

    def _timed(self, stage: str, fn):
        # Wall time (what the wire sees) and this thread's CPU time (what the
        # code costs: on a busy machine the difference is time the thread
        # was not running, or waited in the kernel).
        spent, cpu = self.spent, self.cpu
        wall_clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns

        def timed(*args, **kwargs):
            start, start_cpu = wall_clock(), cpu_clock()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[stage] += cpu_clock() - start_cpu
                spent[stage] += wall_clock() - start
        return timed

    @contextmanager
    def installed(self):
        gateway, client = self.gateway, self.gateway.client
        saved_encode = {cls: cls.encode for cls in ouch50.INBOUND_MESSAGES}
        saved = []
        for owner, name, stage in ((gateway, "pre_trade", "risk"),
                                   (gateway.journal, "append", "journal"),
                                   (gateway.orders, "sent", "orders"),
                                   (client, "send", "send"), (client, "_flush", "send")):
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

    def end_record(self) -> None:
        for stage in STAGES:
            self.per_record[stage].append(self.spent.get(stage, 0))
            self.cpu_per_record[stage].append(self.cpu.get(stage, 0))


async def measure(records: int, profile: bool = False, *, stages: bool = True,
                  durability: str = "group", stage_records: int | None = None,
                  fsync_pass: bool = True) -> dict:
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
        warmup = 2 * options                       # the first rounds enter the orders
        timed = records if stage_records is None else stage_records
        phases = [("plain", warmup + records)]
        if stages:
            phases.append(("stages", timed))
        record_latency: dict[str, list[int]] = {"plain": [], "stages": []}
        i = 0

        async def answered():
            await gateway.wait_until(lambda: not any(
                o.state in _PENDING for o in gateway.orders.unique_orders()), 5.0)

        try:
            for phase, count in phases:
                context = stage_clock.installed() if phase == "stages" else None
                if context is not None:
                    context.__enter__()
                try:
                    for _ in range(count):
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
                        trader.on_record(record, time.monotonic_ns())
                        if measured and profiler and phase == "plain":
                            profiler.disable()
                        if len(trader.latencies_ns) > sent_before and measured:
                            record_latency[phase].append(trader.latencies_ns[-1])
                            if phase == "stages":
                                stage_clock.end_record()
                        i += 1
                        await answered()
                finally:
                    if context is not None:
                        context.__exit__(None, None, None)
        finally:
            await gateway.close()
            await server.close()
    out = {"records": len(record_latency["plain"]),
           "requests": int(trader.counts["ReplaceOrderRequest"] + trader.counts["EnterOrder"]),
           "durability": durability,
           **_percentiles(record_latency["plain"], "host_quote_to_wire"),
           "risk_refusals": {k: v for k, v in guard.engine.counts.items()
                             if k.startswith("rejected_")}}
    if stages and record_latency["stages"]:
        totals = np.asarray(record_latency["stages"], dtype=np.float64) / 1000.0
        split = {}
        other = totals.copy()
        for stage in STAGES:
            values = np.asarray(stage_clock.per_record[stage], dtype=np.float64) / 1000.0
            cpu = np.asarray(stage_clock.cpu_per_record[stage], dtype=np.float64) / 1000.0
            other -= values
            split[stage] = {"mean": float(values.mean()), "p50": float(np.median(values)),
                            "p99": float(np.percentile(values, 99)),
                            "cpu_mean": float(cpu.mean()),
                            "share": float(values.sum() / totals.sum())}
        split["other"] = {"mean": float(other.mean()), "p50": float(np.median(other)),
                          "p99": float(np.percentile(other, 99)),
                          "share": float(other.sum() / totals.sum())}
        out["stages_us"] = split
        out["stages_total_p50_us"] = float(np.percentile(totals, 50))
        # Flat copies for bench.json (make bench keeps the host_quote_to_wire keys).
        for stage, figures in split.items():
            out[f"host_quote_to_wire_stage_{stage}_mean_us"] = figures["mean"]
            if "cpu_mean" in figures:
                out[f"host_quote_to_wire_stage_{stage}_cpu_us"] = figures["cpu_mean"]
    if fsync_pass:
        fsync = await measure(max(50, records // 25), stages=False, durability="fsync",
                              fsync_pass=False)
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
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.records, args.profile))
    profile = result.pop("profile", None)
    print(json.dumps(result, indent=1))
    if profile:
        print(profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

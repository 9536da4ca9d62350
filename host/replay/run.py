"""One replay, end to end: select, send (or run a backend), capture, match, report.

:func:`replay` is what ``zynqmm replay`` runs; :mod:`host.replay.batch` and
:mod:`host.replay.lab` call it too.  It returns the summary (the content
of ``summary.json``) and the exit status: 0 when every order matched, 1 on
a divergence, 2 when the replay could not be carried out.
"""
from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from host.replay.capture import FEED_FILTER, Tcpdump, order_entry_filter, read_order_entry
from host.replay.sender import (Schedule, SendResult, Timing, parse_destination, send_paced,
                                send_tcpreplay, timing_fidelity)
from host.replay.source import DEFAULT_FEEDS, ReplaySource, Selection, write_pcap

EXIT_MATCH, EXIT_DIVERGED, EXIT_FAILED = 0, 1, 2


class ReplayError(RuntimeError):
    """The replay cannot be carried out as asked."""


@dataclass
class ReplayOptions:
    capture: Path
    destination: str = "backend:model"
    timing: Timing = field(default_factory=Timing)
    selection: Selection = field(default_factory=Selection)
    config: Path | None = None             # the expected run's (and a backend appliance's)
    appliance_config: Path | None = None   # backend mode: the appliance's, when it differs
    directory: Path | None = None          # capture with the Stock Directory (default: capture)
    journal: Path | None = None            # network mode: the appliance's gateway journal
    capture_iface: str | None = None
    orders_port: int | None = None
    report: Path | None = None
    line_rate: bool = False                # tcpreplay instead of Python pacing
    realtime: bool = False                 # SCHED_FIFO for the sender
    settle: float = 1.0
    jitter_ms: float = 20.0
    burst_window_us: float = 1000.0
    burst_packets: int = 8
    warmup_pps: float = 20_000.0
    interface_ip: str | None = None
    also_rtl: bool = False
    rtl_packets: int = 400
    conflated: int | None = None
    quiet: bool = False


class Retimer:
    """Timestamps for a prepared pcap so that a player pacing by them (tcpreplay,
    :meth:`Appliance.replay`) keeps the schedule; and the intended offsets."""

    def __init__(self, timing: Timing, warmup_pps: float):
        self.timing = timing
        self.schedule = Schedule(timing, warmup_pps)
        self.intended: list[int] = []
        self.origin: int | None = None
        self.n = 0

    def __call__(self, i: int, packet) -> int:
        if self.origin is None:
            self.origin = packet.ts_ns
        offset = self.schedule.offset(packet)
        self.n += 1
        t = self.timing
        if t.mode == "top":
            return packet.ts_ns
        self.intended.append(offset)
        scale = t.value if t.mode == "scale" else 1.0
        return self.origin + round(offset * scale)


def _progress(quiet: bool):
    if quiet:
        return contextlib.nullcontext(None)
    from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    transient=False)


def _advance(progress, description: str, total: float | None):
    if progress is None:
        return None
    task = progress.add_task(description, total=total)
    return lambda n: progress.advance(task, n)


def _load(path):
    from host.runtime.config import load_config
    return load_config(path)


def replay(options: ReplayOptions) -> tuple[dict, int]:
    from host.runtime.config import ConfigError

    try:
        return _replay(options)
    except (ReplayError, ConfigError, ValueError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "match": None}, EXIT_FAILED


def _replay(o: ReplayOptions) -> tuple[dict, int]:
    kind, target = parse_destination(o.destination)
    config = _load(o.config) if o.config else None
    addresses = dict(DEFAULT_FEEDS)
    if config is not None:
        feeds = config.feed.addresses()
        addresses = {"A": feeds[0], **({"B": feeds[1]} if len(feeds) > 1 else {})}
    selection = o.selection
    if "B" not in addresses and "B" in selection.feeds:
        selection = Selection(("A",), selection.start_ns, selection.end_ns, selection.symbols,
                              selection.warmup)
    source = ReplaySource(o.capture, selection, addresses)
    temp = None
    if o.report is None:
        temp = tempfile.TemporaryDirectory(prefix="zynqmm-replay-")
        out = Path(temp.name)
    else:
        out = Path(o.report)
        out.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "backend":
            if config is None:
                raise ReplayError("--to backend:... needs --config (the appliance's configuration)")
            summary, status = _backend(o, source, target, config, out)
        else:
            summary, status = _network(o, source, kind, target, config, out)
        summary.update({"capture": str(o.capture), "destination": o.destination,
                        "timing": o.timing.describe(), "selection": _selection_dict(selection),
                        "source_counts": dict(source.counts)})
        if o.report is not None:
            import json

            from host.replay.report import write_report
            requests = summary.pop("_requests", ())
            write_report(out, summary, requests, summary.pop("_expected", None))
            (out / "latencies.json").write_text(json.dumps(
                [r.latency_ns for r in requests if r.latency_ns is not None]))
        summary.pop("_requests", None)
        summary.pop("_expected", None)
        return summary, status
    finally:
        if temp is not None:
            temp.cleanup()


def _selection_dict(s: Selection) -> dict:
    return {"feeds": list(s.feeds), "start_ns": s.start_ns, "end_ns": s.end_ns,
            "symbols": sorted(s.symbols), "warmup": s.warmup}


def _locates(o: ReplayOptions, config):
    from host.runtime.directory import stock_locates
    return stock_locates(o.directory or o.capture, config.underlyings())


# -- backend mode ------------------------------------------------------------------------
def _backend(o: ReplayOptions, source: ReplaySource, backend: str, config, out: Path):
    from host.replay.backend import BackendUnavailable, journal_to_pcap, run_backend
    from host.replay.match import read_journal

    appliance_config = _load(o.appliance_config) if o.appliance_config else config
    feed_pcap = out / "feed.pcap"
    retimer = Retimer(o.timing, o.warmup_pps)
    written = write_pcap(source, feed_pcap, retime=retimer)
    if not written["packets"]:
        raise ReplayError("the selection leaves no packet to replay")
    speed = {"captured": 1.0, "scale": o.timing.value, "pps": 1.0, "top": None}[o.timing.mode]
    locates = _locates(o, appliance_config)
    with _progress(o.quiet) as progress:
        advance = _advance(progress, f"{backend} backend", written["packets"])
        try:
            run = run_backend(feed_pcap, appliance_config, locates, backend, out / "state",
                              speed=speed, progress=advance)
        except BackendUnavailable as exc:
            raise ReplayError(str(exc)) from None
    records = read_journal(run.journal)
    journal_to_pcap(records, out / "orders.pcap")
    summary, status, result, expected = _judge(o, config, feed_pcap, records, locates,
                                               push_ns=run.push_ns,
                                               record_cycles=run.record_cycles)
    summary["send"] = {"destination": f"backend:{backend}", "timing": o.timing.describe(),
                       "packets": written["packets"], "seconds": round(run.seconds, 6),
                       "packets_per_second": round(written["packets"] / run.seconds, 1)
                       if run.seconds else 0.0}
    summary["conflated"] = run.summary.get("conflated")
    summary["appliance"] = {k: run.summary.get(k) for k in (
        "frames", "messages", "quotes", "cancels", "requests", "risk_events", "deferred",
        "quote_to_wire_us")}
    if o.also_rtl:
        summary["rtl"] = _rtl_check(o, config, appliance_config, feed_pcap, locates, out)
        if summary["rtl"].get("match") is False:
            status = EXIT_DIVERGED
    summary["_requests"], summary["_expected"] = result.requests, expected
    return summary, status


def _rtl_check(o: ReplayOptions, config, appliance_config, feed_pcap: Path, locates,
               out: Path) -> dict:
    """The same appliance on the RTL backend over the first ``rtl_packets``
    frames, judged by the same rule against the model run on those frames
    with the simulated fabric's timing (see :mod:`host.replay.stamps`)."""
    from host.pcap.reader import iter_packets
    from host.pcap.writer import PcapWriter
    from host.replay.backend import BackendUnavailable, run_backend
    from host.replay.match import read_journal

    short = out / "rtl" / "feed.pcap"
    short.parent.mkdir(parents=True, exist_ok=True)
    packets = 0
    with PcapWriter(short) as writer:
        for packet in iter_packets(feed_pcap):
            if packets >= o.rtl_packets:
                break
            writer.write(packet.ts_ns, packet.data)
            packets += 1
    try:
        run = run_backend(short, appliance_config, locates, "rtl", out / "rtl" / "state",
                          speed=None)
    except BackendUnavailable as exc:
        return {"skipped": f"RTL check skipped: {exc}"}
    records = read_journal(run.journal)
    summary, _, _, _ = _judge(o, config, short, records, locates, push_ns=run.push_ns,
                              record_cycles=run.record_cycles)
    return {k: summary[k] for k in ("orders", "matched_orders", "match", "first_divergence",
                                     "divergences", "final_state", "expected")} | {
        "packets": packets, "seconds": round(run.seconds, 3)}


# -- network mode ----------------------------------------------------------------------------
def _network(o: ReplayOptions, source: ReplaySource, kind: str, target, config, out: Path):
    from host.replay.match import read_journal

    feed_pcap = out / "feed.pcap"
    orders_pcap = out / "orders.pcap"
    port = o.orders_port
    if port is None and config is not None and config.exchange is not None:
        port = config.exchange.endpoint()[1]
    captures = []
    summary: dict = {}
    try:
        if o.capture_iface:
            captures.append(Tcpdump(o.capture_iface, feed_pcap, FEED_FILTER).start())
            if port is not None:
                captures.append(Tcpdump(o.capture_iface, orders_pcap,
                                        order_entry_filter(port)).start())
        send = _send(o, source, kind, target, out)
        if o.settle > 0:
            time.sleep(o.settle)
    finally:
        stats = [c.stop() for c in captures]
    summary["send"] = send.as_dict()
    if captures:
        summary["capture_stats"] = {"feed": stats[0], **({"orders": stats[1]} if len(stats) > 1
                                                        else {})}
        summary["fidelity_wire"] = _wire_fidelity(feed_pcap, send)
    if o.journal is None or config is None:
        summary.update({"match": None, "orders": None, "matched_orders": None,
                        "first_divergence": None, "latency_ns": {"count": 0},
                        "note": "no --journal/--config: sent and captured only"})
        return summary, EXIT_MATCH
    expected_input = feed_pcap if captures else out / "sent.pcap"
    if not captures:
        write_pcap(ReplaySource(o.capture, source.selection, source.addresses), expected_input)
    records = read_journal(o.journal)
    wire = read_order_entry(orders_pcap, port) if len(captures) > 1 else None
    locates = _locates(o, config)
    judged, status, result, expected = _judge(
        o, config, expected_input, records, locates,
        wire_requests=wire.requests if wire is not None else None,
        wire_started_ns=captures[1].started_ns if wire is not None else None,
        feed_from_capture=bool(captures))
    summary.update(judged)
    if wire is not None:
        summary["order_capture"] = {"requests": len(wire.requests), "answers": len(wire.answers),
                                    **dict(wire.counts)}
    summary["conflated"] = o.conflated
    summary["_requests"], summary["_expected"] = result.requests, expected
    return summary, status


def _send(o: ReplayOptions, source, kind: str, target, out: Path) -> SendResult:
    size = Path(o.capture).stat().st_size
    if o.line_rate:
        if kind != "iface":
            raise ReplayError("--line-rate sends with tcpreplay, which needs --to iface:NAME")
        prepared = out / "sent.pcap"
        retimer = Retimer(o.timing, o.warmup_pps)
        written = write_pcap(source, prepared, retime=retimer)
        intended = retimer.intended if o.timing.mode in ("captured", "scale") else (
            [round(i * 1e9 / o.timing.value) for i in range(written["packets"])]
            if o.timing.mode == "pps" else None)
        with _progress(o.quiet) as progress:
            advance = _advance(progress, f"tcpreplay {o.timing.describe()}", written["packets"])
            return send_tcpreplay(prepared, target, o.timing, packets=written["packets"],
                                  intended_ns=intended, progress=advance,
                                  realtime=o.realtime)
    with _progress(o.quiet) as progress:
        advance = _advance(progress, f"sending {o.timing.describe()}", size)
        return send_paced(source, kind, target, o.timing, warmup_pps=o.warmup_pps,
                          interface_ip=o.interface_ip, progress=advance, realtime=o.realtime)


def _wire_fidelity(feed_pcap: Path, send: SendResult) -> dict:
    from host.pcap.reader import iter_packets

    if not feed_pcap.exists():
        return {"note": "no feed capture"}
    stamps = [p.ts_ns for p in iter_packets(feed_pcap)]
    out = {"captured_packets": len(stamps), "sent_packets": send.packets}
    if len(stamps) >= 2:
        span = (stamps[-1] - stamps[0]) / 1e9
        out["wire_packets_per_second"] = round((len(stamps) - 1) / span, 1) if span > 0 else None
    if send.timing == "top speed" or not len(send.intended_ns):
        return out
    if len(stamps) != len(send.intended_ns):
        out["note"] = "captured and sent counts differ: no per-packet comparison"
        return out
    origin = stamps[0]
    out.update(timing_fidelity(send.intended_ns, [s - origin for s in stamps],
                               send.paced if len(send.paced) else None))
    return out


# -- judging -------------------------------------------------------------------------------------
def _judge(o: ReplayOptions, config, feed_pcap: Path, records, locates, *, push_ns=None,
           record_cycles=None, wire_requests=None, wire_started_ns=None,
           feed_from_capture: bool = True):
    """``push_ns``: the backend's push times (backend mode; the appliance's
    fabric took the frames with the expected run's own timing, so rate
    windows are judged exactly); ``record_cycles``: the RTL backend's stamp
    of every book record, which the expected run takes instead of the
    capture's times."""
    from host.replay.expected import run_expected, summarize_records
    from host.replay.match import FeedIndex, divergence_context, match_orders
    from host.replay.stamps import StampError
    from host.runtime.quotes import TRIGGER, Trigger

    jitter_ns = None if push_ns is not None else round(o.jitter_ms * 1e6)
    stamp_problem = None
    with _progress(o.quiet) as progress:
        advance = _advance(progress, "expected (model)", None)
        try:
            expected = run_expected(feed_pcap, config, locates=locates, progress=advance,
                                    record_cycles=record_cycles)
        except StampError as exc:
            # The fabric under test sent other book records than the model:
            # a divergence by itself.  The orders are still judged, on the
            # capture's timing, with the rate windows excused.
            stamp_problem = str(exc)
            expected = run_expected(feed_pcap, config, locates=locates)
            jitter_ns = round(o.jitter_ms * 1e6)
    seqs = set()
    for record in records:
        if record.kind == TRIGGER:
            try:
                seqs.add(Trigger.from_bytes(record.payload).seq)
            except ValueError:
                continue   # counted by the matcher
    feed = None
    if push_ns is not None:
        feed = FeedIndex.from_capture(feed_pcap, seqs, times_ns=push_ns)
    elif feed_from_capture:
        feed = FeedIndex.from_capture(feed_pcap, seqs)
    result = match_orders(
        expected, records, wire_requests=wire_requests, wire_started_ns=wire_started_ns,
        feed=feed, sent_clock=push_ns is not None,
        jitter_ns=jitter_ns, burst_window_ns=round(o.burst_window_us * 1000),
        burst_packets=o.burst_packets)
    if stamp_problem is not None:
        result.divergences.insert(0, {"kind": "fabric_records", "detail": stamp_problem})
    summary = result.summary()
    if stamp_problem is not None:
        summary["divergences"] += 1
    summary["expected"] = {"frames": expected.frames, "words": len(expected.words),
                           "repeated_word_keys": expected.repeated_keys,
                           **summarize_records(expected.records),
                           "gate": expected.counters.get("risk_gate", {})}
    if result.divergences:
        try:
            summary["divergence_context"] = divergence_context(result.divergences[0], expected,
                                                               feed_pcap)
        except (OSError, ValueError) as exc:
            summary["divergence_context"] = {"error": str(exc)}
    status = EXIT_MATCH if result.match else EXIT_DIVERGED
    return summary, status, result, expected

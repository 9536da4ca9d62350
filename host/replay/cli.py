"""``zynqmm replay``, ``zynqmm replay-batch`` and ``zynqmm replay-lab``.

``replay`` puts one recorded day on an interface (``iface:NAME``), a UDP
socket (``udp[:GROUP:PORT[,GROUP:PORT]]``) or straight into a fabric
backend in this process (``backend:model|rtl``), captures feed and order
entry, matches every order to its tick and to the model's expected run,
and writes the report.  Exit status: 0 all orders matched, 1 a divergence,
2 the replay could not be carried out.

``replay-batch`` replays many days on a backend in parallel (processes
here, or Ray tasks with ``--ray ADDRESS``) into one merged report.

``replay-lab`` builds a two-namespace network with a veth pair, starts the
exchange simulator and the appliance (``zynqmm run``, ps-bridge ingest),
replays over real multicast and reports (root only).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from host.replay.run import EXIT_FAILED, ReplayOptions, replay
from host.replay.sender import Timing
from host.replay.source import Selection, SourceError, first_timestamp, parse_time


def _timing(args) -> Timing:
    chosen = [x for x in (args.speed, args.pps, args.top) if x]
    if len(chosen) > 1:
        raise SourceError("give one of --speed, --pps and --top-speed")
    if args.top:
        return Timing("top")
    if args.pps:
        return Timing("pps", args.pps)
    if args.speed:
        return Timing.parse(args.speed)
    return Timing("captured")


def _selection(args) -> Selection:
    symbols = frozenset(s.strip().upper() for group in args.symbol for s in group.split(",")
                        if s.strip())
    start = end = None
    if args.start or args.end:
        first = first_timestamp(args.capture)
        start = parse_time(args.start, first) if args.start else None
        end = parse_time(args.end, first) if args.end else None
    feeds = tuple(f.strip().upper() for f in args.feeds.split(",") if f.strip())
    return Selection(feeds, start, end, symbols, args.warmup)


def add_common(p) -> None:
    p.add_argument("--config", type=Path, help="appliance configuration (TOML): feed "
                   "addresses, chains, quoting; the expected run uses it")
    p.add_argument("--feeds", default="A,B", help="feeds to replay: A, B or A,B (default)")
    p.add_argument("--start", help="window start: HH:MM[:SS] (New York time) or +SECONDS")
    p.add_argument("--end", help="window end (exclusive), same forms")
    p.add_argument("--warmup", choices=("skip", "send"), default="skip",
                   help="before the window: skip and renumber (default) or send unpaced")
    p.add_argument("--warmup-pps", type=float, default=20_000.0,
                   help="packets per second before the window with --warmup send")
    p.add_argument("--symbol", action="append", default=[],
                   help="only these stocks' messages (repeatable or comma-separated)")
    timing = p.add_argument_group("timing (default: as captured)")
    timing.add_argument("--speed", help="captured | xN (N times faster) | Npps | top")
    timing.add_argument("--pps", type=float, help="fixed rate, packets per second")
    timing.add_argument("--top-speed", dest="top", action="store_true", help="no pacing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register(subparsers) -> None:
    p = subparsers.add_parser("replay", help="replay a recorded market day and report latency "
                              "and correctness", description=__doc__.split("\n\n")[1])
    p.add_argument("capture", help="pcap or pcapng of the feeds")
    p.add_argument("--to", required=True, dest="destination",
                   help="iface:NAME | udp[:GROUP:PORT[,GROUP:PORT]] | backend:model|rtl")
    add_common(p)
    p.add_argument("--appliance-config", type=Path,
                   help="backend mode: run the appliance with this configuration instead "
                        "(the expected run keeps --config)")
    p.add_argument("--directory", type=Path, help="capture with the day's Stock Directory "
                   "(default: the capture)")
    p.add_argument("--journal", type=Path, help="network mode: the appliance's orders.journal")
    p.add_argument("--capture-iface", help="capture feed and order entry on this interface")
    p.add_argument("--orders-port", type=int, help="the exchange's TCP port "
                   "(default: from [exchange] connect)")
    p.add_argument("--line-rate", action="store_true",
                   help="send with tcpreplay (needs --to iface:NAME)")
    p.add_argument("--interface-ip", help="udp: multicast out of the interface with this address")
    p.add_argument("--realtime", action="store_true",
                   help="send under SCHED_FIFO (root): wake-ups on time on a busy machine")
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds to keep capturing after the last packet (default 1)")
    p.add_argument("--jitter-ms", type=float, default=20.0,
                   help="how late the appliance may stamp a frame after its wire time "
                        "(rate-window soundness margin, default 20)")
    p.add_argument("--burst-packets", type=int, default=8,
                   help="feed packets in the --burst-window-us before a tick that make it a burst")
    p.add_argument("--burst-window-us", type=float, default=1000.0)
    p.add_argument("--also-rtl", action="store_true",
                   help="backend mode: also run the appliance on the RTL backend over the "
                        "first --rtl-packets frames and require the same orders and end state "
                        "as the model on the simulated fabric's timing")
    p.add_argument("--rtl-packets", type=int, default=400)
    p.add_argument("--report", type=Path, help="write summary.json, index.html, plots, "
                   "feed.pcap and orders.pcap here")
    p.add_argument("--conflated", type=int,
                   help="the appliance's conflated count, when known (reported as given)")
    p.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    p.set_defaults(func=replay_command)

    b = subparsers.add_parser("replay-batch", help="replay many days on a backend in parallel")
    b.add_argument("captures", nargs="+", help="pcap files, one day each")
    b.add_argument("--to", default="backend:model", dest="destination",
                   help="backend:model (default) or backend:rtl")
    add_common(b)
    b.add_argument("--jobs", type=int, default=0, help="local processes (default: CPU count)")
    b.add_argument("--ray", metavar="ADDRESS", help="run the days as tasks on this Ray cluster "
                   "('auto' for the local one)")
    b.add_argument("--report", type=Path, required=True, help="merged report directory")
    b.set_defaults(func=batch_command)

    lab = subparsers.add_parser("replay-lab", help="appliance and replayer in two network "
                                "namespaces joined by a veth pair (root)")
    lab.add_argument("capture")
    add_common(lab)
    lab.add_argument("--line-rate", action="store_true", help="send with tcpreplay")
    lab.add_argument("--no-realtime", dest="realtime", action="store_false",
                     help="send without SCHED_FIFO (default: with)")
    lab.add_argument("--mode", choices=("iface", "udp"), default="iface",
                     help="whole frames on the veth (default) or a UDP socket")
    lab.add_argument("--report", type=Path, required=True)
    lab.add_argument("--appliance-config", type=Path,
                     help="start the appliance with this configuration instead of --config")
    lab.set_defaults(func=lab_command)


def _print(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=1, default=str))
        return
    if "error" in summary:
        print(f"zynqmm replay: {summary['error']}", file=sys.stderr)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="zynqmm replay", show_header=False)
    send = summary.get("send", {})
    table.add_row("sent", f"{send.get('packets', 0):,} packets in {send.get('seconds', 0):.3f} s "
                          f"({send.get('packets_per_second', 0):,.0f}/s, {send.get('timing')})")
    for key in ("fidelity_wire",):
        fid = summary.get(key) or {}
        if fid.get("pairs"):
            table.add_row("timing error (wire)", f"p50 {fid['p50_us']} µs, p99 {fid['p99_us']} µs, "
                                                 f"p99.9 {fid['p999_us']} µs, max {fid['max_us']} µs")
    table.add_row("orders", f"{summary.get('orders')} ({summary.get('matched_orders')} matched)")
    lat = summary.get("latency_ns") or {}
    if lat.get("count"):
        table.add_row("tick to order", ", ".join(f"{k} {lat[k] / 1000:.1f} µs"
                                                 for k in ("p50", "p90", "p99", "p999", "max")))
    verdict = summary.get("match")
    table.add_row("result", {True: "[green]MATCH[/green]", False: "[red]DIVERGED[/red]",
                             None: "not checked"}[verdict])
    if summary.get("first_divergence"):
        table.add_row("first divergence", summary["first_divergence"].get("detail", ""))
    if summary.get("rtl"):
        rtl = summary["rtl"]
        table.add_row("rtl", rtl.get("skipped") or (
            f"{'MATCH' if rtl.get('match') else 'DIVERGED'}: {rtl.get('orders')} orders "
            f"({rtl.get('matched_orders')} matched) on {rtl.get('packets')} packets"))
    Console().print(table)


def replay_command(args) -> int:
    try:
        options = ReplayOptions(
            capture=Path(args.capture), destination=args.destination, timing=_timing(args),
            selection=_selection(args), config=args.config,
            appliance_config=args.appliance_config, directory=args.directory,
            journal=args.journal, capture_iface=args.capture_iface, orders_port=args.orders_port,
            report=args.report, line_rate=args.line_rate, settle=args.settle,
            jitter_ms=args.jitter_ms, burst_window_us=args.burst_window_us,
            burst_packets=args.burst_packets, warmup_pps=args.warmup_pps,
            interface_ip=args.interface_ip, also_rtl=args.also_rtl,
            rtl_packets=args.rtl_packets, conflated=args.conflated, quiet=args.quiet,
            realtime=args.realtime)
    except (SourceError, ValueError) as exc:
        print(f"zynqmm replay: {exc}", file=sys.stderr)
        return EXIT_FAILED
    summary, status = replay(options)
    _print(summary, args.json)
    if args.report and "error" not in summary:
        # stdout stays one JSON document with --json
        print(f"report: {args.report / 'index.html'}", file=sys.stderr if args.json else sys.stdout)
    return status


def batch_command(args) -> int:
    from host.replay.batch import BatchError, run_batch

    try:
        timing, selection = _timing(args), None
        base = ReplayOptions(capture=Path(args.captures[0]), destination=args.destination,
                             timing=timing, config=args.config, warmup_pps=args.warmup_pps,
                             quiet=True)
        symbols = frozenset(s.strip().upper() for g in args.symbol for s in g.split(",")
                            if s.strip())
        feeds = tuple(f.strip().upper() for f in args.feeds.split(",") if f.strip())
        selection = Selection(feeds, None, None, symbols, args.warmup)
        if args.start or args.end:
            raise SourceError("replay-batch replays whole days: --start/--end are per-day "
                              "options of zynqmm replay")
        base.selection = selection
        summary, status = run_batch([Path(c) for c in args.captures], base, args.report,
                                    jobs=args.jobs or None, ray_address=args.ray,
                                    progress=not args.quiet)
    except BatchError as exc:
        print(f"zynqmm replay-batch: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (SourceError, ValueError) as exc:
        print(f"zynqmm replay-batch: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({k: summary[k] for k in ("days", "orders", "matched_orders", "match",
                                              "latency_ns")}, indent=1))
    print(f"report: {args.report / 'index.html'}")
    return status


def lab_command(args) -> int:
    from host.replay.lab import LabError, run_lab

    if args.config is None:
        print("zynqmm replay-lab: --config is required", file=sys.stderr)
        return EXIT_FAILED
    try:
        summary, status = run_lab(Path(args.capture), args.config, args.report,
                                  timing=_timing(args), selection=_selection(args),
                                  mode=args.mode, line_rate=args.line_rate,
                                  appliance_config=args.appliance_config, quiet=args.quiet,
                                  realtime=args.realtime)
    except (LabError, SourceError, ValueError) as exc:
        print(f"zynqmm replay-lab: {exc}", file=sys.stderr)
        return EXIT_FAILED
    _print(summary, False)
    print(f"report: {args.report / 'index.html'}")
    return status


def main(argv: list[str] | None = None) -> int:
    """The three commands without the rest of ``zynqmm`` (``python -m host.replay.cli``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="zynqmm")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

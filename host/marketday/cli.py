"""``zynqmm gen-day``: write a realistic Nasdaq ITCH 5.0 market day.

The day goes to a pcap / pcapng capture of MoldUDP64 multicast feeds (A and
B copies by default, optional 802.1Q tags and injected packet faults) or to
Nasdaq's length-prefixed daily ITCH file.  A summary with the exact counts a
decoder must find is written next to the output (FILE.summary.json) and
printed as JSON on stdout; progress goes to stderr.
"""
from __future__ import annotations

import json
import sys

from host.marketday.generator import (
    DEFAULT_DATE, DEFAULT_SESSION, FORMATS, GenerateError, generate_day,
)

_SUFFIXES = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def count_arg(text: str) -> int:
    """A positive count: 250000, 250_000, 250k, 10M."""
    import argparse

    raw = text.strip().replace("_", "")
    scale = 1
    if raw and raw[-1].lower() in _SUFFIXES:
        scale = _SUFFIXES[raw[-1].lower()]
        raw = raw[:-1]
    try:
        value = int(float(raw) * scale) if "." in raw else int(raw) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "gen-day",
        help="generate a realistic ITCH 5.0 market day (pcap, pcapng or ITCH file)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--symbols", type=count_arg, default=100, help="number of securities (default 100)")
    p.add_argument("--messages", type=count_arg, default=1_000_000,
                   help="exact number of ITCH messages, e.g. 250k or 10M (default 1M)")
    p.add_argument("--seed", type=int, default=1, help="random seed; same seed, same bytes (default 1)")
    p.add_argument("--out", required=True,
                   help="output file: .pcap, .pcapng, or .itch / .itch.gz for the daily-file format")
    p.add_argument("--feeds", default="A,B",
                   help="comma-separated feed names, all copies of one session (default A,B)")
    p.add_argument("--gap-rate", type=float, default=0.0,
                   help="per feed and data packet: chance the packet is dropped")
    p.add_argument("--dup-rate", type=float, default=0.0,
                   help="per feed and data packet: chance the packet is sent twice")
    p.add_argument("--reorder-rate", type=float, default=0.0,
                   help="per feed and data packet: chance the packet is sent after its successor")
    p.add_argument("--vlan", default=None, help="802.1Q VLAN ID, or OUTER,INNER for two tags")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="output format (default: from the file name)")
    p.add_argument("--heartbeat-interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds of silence after which a feed sends a heartbeat (default 1, "
                        "as Nasdaq's feeds do; at least 1)")
    p.add_argument("--session", default=DEFAULT_SESSION,
                   help=f"MoldUDP64 session name, up to 10 characters (default {DEFAULT_SESSION})")
    p.add_argument("--start", default="04:00", help="start of system hours HH:MM (default 04:00)")
    p.add_argument("--end", default="20:00", help="end of system hours HH:MM (default 20:00)")
    p.add_argument("--date", default=DEFAULT_DATE,
                   help=f"trading date for capture timestamps (default {DEFAULT_DATE})")
    p.add_argument("--all-types", action="store_true",
                   help="make sure every ITCH 5.0 message type appears at least once")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    progress_cb = None
    progress = None
    if not args.quiet:
        from rich.console import Console
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn,
        )

        progress = Progress(TextColumn("gen-day"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("messages"), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=True)
        task = progress.add_task("gen-day", total=args.messages)

        def progress_cb(done: int, total: int) -> None:
            progress.update(task, completed=done)

        progress.start()
    try:
        summary = generate_day(
            args.out, symbols=args.symbols, messages=args.messages, seed=args.seed,
            feeds=args.feeds, gap_rate=args.gap_rate, dup_rate=args.dup_rate,
            reorder_rate=args.reorder_rate, vlan=args.vlan, fmt=args.format,
            heartbeat_interval=args.heartbeat_interval,
            session=args.session, start=args.start, end=args.end, date=args.date,
            all_types=args.all_types, progress=progress_cb)
    except GenerateError as exc:
        print(f"zynqmm gen-day: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"zynqmm gen-day: {exc}", file=sys.stderr)
        return 1
    finally:
        if progress is not None:
            progress.stop()
    elapsed = summary.pop("elapsed_s")
    rate = summary.pop("messages_per_s")
    print(json.dumps(summary, indent=2))
    if not args.quiet:
        print(f"zynqmm gen-day: {summary['messages']:,} messages, {summary['bytes_written']:,} bytes "
              f"in {elapsed:.1f} s ({rate:,.0f} messages/s) -> {args.out}", file=sys.stderr)
    return 0

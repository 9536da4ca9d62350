"""``python -m rtl.feed_path.replay``: the feed path's Verilog under Verilator
against its model, on a capture, on a generated day, on the robustness fuzz
or on back-to-back minimum-size packets.

Exit status: 0 when RTL and model agree on every record and counter (and
the throughput run met its conditions), 1 when they differ (the first
differing record is printed with its neighbours), 2 on bad arguments.
``--json FILE --section NAME`` merges the run's figures into FILE under NAME.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from host.pcap.frames import ip_to_int

from .build import build
from .compare import format_first_difference
from .runs import Run, run_capture, run_fuzz, run_throughput
from .stimulus import RunOptions
from .throughput import MODES

SUMMARY_KEYS = ("frames", "messages", "records", "model_records", "mismatched_records",
                "counters_checked", "deadlock", "cycles", "sim_seconds", "sim_cpu_seconds",
                "sim_cycles_per_s", "sim_messages_per_s", "model_seconds", "model_wait_seconds",
                "model_cpu_seconds", "model_messages_per_s", "wall_seconds")


def _feed(text: str) -> tuple[str, tuple[int, int]]:
    try:
        name, address = text.split("=", 1)
        ip, port = address.rsplit(":", 1)
        return name.strip().upper(), (ip_to_int(ip), int(port))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected A=IP:PORT or B=IP:PORT") from None


def _options(args) -> RunOptions:
    return RunOptions(seed=args.seed, source_pause=args.source_pause, sink_pause=args.sink_pause)


def _pacing(parser: argparse.ArgumentParser, source: float, sink: float) -> None:
    parser.add_argument("--seed", type=int, default=1, help="seed of the pauses (and fuzz)")
    parser.add_argument("--source-pause", type=float, default=source,
                        help=f"chance per cycle an input leaves tvalid low (default {source})")
    parser.add_argument("--sink-pause", type=float, default=sink,
                        help=f"chance per cycle m_axis_tready is low (default {sink})")


def write_json(path: Path, section: str, figures: dict) -> None:
    """Merge ``figures`` into the JSON file at ``path`` under ``section``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {}
    if path.exists():
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError:
            doc = {}
    doc[section] = {**figures, "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")


def report(run: Run, title: str) -> None:
    figures = run.figures()
    print(f"{title}: {'RTL == model' if run.ok else 'MISMATCH'}")
    for key in SUMMARY_KEYS:
        if key in figures:
            value = figures[key]
            print(f"  {key:22} {value:,.1f}" if isinstance(value, float)
                  else f"  {key:22} {value}")
    for key, value in run.extra.items():
        if key not in ("options", "kinds", "errors"):
            print(f"  {key:22} {value}")
    if figures.get("filter_drops"):
        print(f"  {'filter drops':22} {figures['filter_drops']}")
    for error in run.result.errors + run.extra.get("errors", []):
        print(f"  error: {error}")
    if run.result.first_difference:
        print("first difference:\n" + format_first_difference(run.result.first_difference))
    if run.run_dir is not None:
        print(f"  run files in {run.run_dir}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtl.feed_path.replay",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="merge the figures into this JSON file")
    parser.add_argument("--section", help="key of the figures in --json (default: the command)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the stimulus, records and arrivals files of a passing run")
    parser.add_argument("--verilog", type=Path,
                        help="simulate this Verilog instead of converting rtl/feed_path")
    sub = parser.add_subparsers(dest="command", required=True)

    cap = sub.add_parser("capture", help="a pcap/pcapng capture, each frame on its feed's input")
    cap.add_argument("capture", type=Path)
    cap.add_argument("--messages", type=int, help="only the frames holding the first N messages")
    cap.add_argument("--feed", type=_feed, action="append", default=[],
                     help="A=IP:PORT / B=IP:PORT (default: from CAPTURE.summary.json)")
    _pacing(cap, 0.0, 0.0)

    day = sub.add_parser("day", help="generate a market day into build/days/ and replay it")
    day.add_argument("--messages", type=int, default=1_000_000)
    day.add_argument("--symbols", type=int, default=48,
                     help="at most the book's 64 slots, so every locate is tracked")
    day.add_argument("--rate", type=float, default=0.0005,
                     help="drop, duplicate and reorder rate per data packet and feed")
    day.add_argument("--vlan", type=int, default=100)
    day.add_argument("--day-seed", type=int, default=2026)
    day.add_argument("--out", type=Path, help="capture path (default build/days/replay-N.pcap)")
    _pacing(day, 0.0, 0.0)

    fuzz = sub.add_parser("fuzz", help="a generated day with random and mutated bad frames")
    fuzz.add_argument("--bad-frames", type=int, default=100_000)
    fuzz.add_argument("--day-messages", type=int, default=40_000)
    _pacing(fuzz, 0.2, 0.3)

    thr = sub.add_parser("throughput", help="back-to-back Order Delete frames on both feeds")
    thr.add_argument("--deletes", type=int, default=4000, help="frames per feed (at most 8000)")
    thr.add_argument("--mode", choices=MODES + ("both",), default="both")

    sub.add_parser("build", help="only build the harness")
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            print(build(args.verilog))
            return 0
        runs: list[tuple[str, Run]] = []
        if args.command == "capture":
            addresses = None
            if args.feed:
                addresses = {address: "AB".index(name) for name, address in args.feed}
            runs.append(("capture", run_capture(args.capture, addresses, args.messages,
                                                _options(args), verilog=args.verilog,
                                                keep=args.keep)))
        elif args.command == "day":
            capture = generated_day(args)
            runs.append(("day", run_capture(capture, None, None, _options(args), name="day",
                                            verilog=args.verilog, keep=args.keep)))
        elif args.command == "fuzz":
            runs.append(("fuzz", run_fuzz(args.bad_frames, args.day_messages, args.seed,
                                          _options(args), verilog=args.verilog, keep=args.keep)))
        else:
            modes = MODES if args.mode == "both" else (args.mode,)
            for mode in modes:
                runs.append((f"throughput_{mode}",
                             run_throughput(args.deletes, mode, verilog=args.verilog,
                                            keep=args.keep)))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, run in runs:
        report(run, name)
        if args.json:
            write_json(args.json, args.section or name, run.figures())
    return 0 if all(run.ok for _, run in runs) else 1


def generated_day(args) -> Path:
    """The day's capture under build/days/, generated unless one with the same
    parameters is there already."""
    from host.marketday.generator import generate_day
    from rtl.common.convert import build_root

    out = args.out or build_root() / "days" / f"replay-{args.messages}.pcap"
    wanted = {"symbols": args.symbols, "messages": args.messages, "gap_rate": args.rate,
              "dup_rate": args.rate, "reorder_rate": args.rate, "vlan": [args.vlan]}
    summary_path = Path(f"{out}.summary.json")
    if out.exists() and summary_path.exists():
        summary = json.loads(summary_path.read_text())
        have = {k: summary["parameters"].get(k) for k in wanted}
        if have == wanted and summary.get("seed") == args.day_seed:
            print(f"reusing {out}")
            return out
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {args.messages} messages into {out}")
    started = time.perf_counter()
    generate_day(out, symbols=args.symbols, messages=args.messages, seed=args.day_seed,
                 gap_rate=args.rate, dup_rate=args.rate, reorder_rate=args.rate,
                 vlan=[args.vlan])
    print(f"generated in {time.perf_counter() - started:.1f} s")
    return out


if __name__ == "__main__":
    sys.exit(main())

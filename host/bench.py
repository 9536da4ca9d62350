"""``make bench``: the foundation's throughput figures.

Generates (or reuses) a market day of ``--messages`` messages with A/B feeds
and faults, then measures in one process:

- ``gen_msgs_per_s``      market-day generation to a pcap on disk
- ``pcap_packets_per_s``  the streaming pcap reader's fast path
- ``decode_msgs_per_s``   pcap -> MoldUDP64 arbitration -> ITCH messages
- ``book_msgs_per_s``     the same plus the golden order book
- ``python_baseline_msgs_per_s`` the readable pure-Python codec + reference
  book on a prefix of the same day, and ``python_baseline_ratio`` =
  book_msgs_per_s / python_baseline_msgs_per_s
- ``host_quote_to_wire_p50_us`` / ``_p99_us`` / ``_p999_us``: quote record in
  to OUCH bytes on the socket through risk and journal
  (:mod:`host.runtime.bench`)

Rates are wall-clock over whole runs on this machine (after a warm-up that
compiles the numba kernels); the ratio compares two runs in the same process
on the same data, which is what carries over between machines.  Results go to
the console and to ``--out`` as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=5_000_000)
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--days-dir", default="build/days")
    ap.add_argument("--baseline-messages", type=int, default=300_000,
                    help="prefix of the day run through the pure-Python baseline")
    ap.add_argument("--quote-records", type=int, default=5000,
                    help="quote records through the host's quote-to-wire path")
    ap.add_argument("--out", default="build/reports/bench.json")
    args = ap.parse_args(argv)

    from host.book.bench import bench_book
    from host.marketday.generator import generate_day
    from host.pcap.fast import bench_read

    days = Path(args.days_dir)
    days.mkdir(parents=True, exist_ok=True)
    day = days / f"bench-{args.messages}.pcap"
    faults = dict(feeds="A,B", gap_rate=0.0005, dup_rate=0.0005, reorder_rate=0.0005)

    # Warm-up: compile the generator's kernels on a small day so the timed run
    # measures generation, not compilation.
    generate_day(out=str(days / "warmup.pcap"), symbols=8, messages=20_000, seed=1, **faults)
    t0 = time.perf_counter()
    summary = generate_day(out=str(day), symbols=args.symbols, messages=args.messages,
                           seed=args.seed, **faults)
    gen_s = time.perf_counter() - t0
    generated = int(summary["messages"])

    bench_read(str(days / "warmup.pcap"))
    read = bench_read(str(day))
    book = bench_book(str(day), baseline_messages=args.baseline_messages)
    import asyncio

    from host.runtime.bench import measure as measure_quote_to_wire
    wire = asyncio.run(measure_quote_to_wire(args.quote_records))

    result = {
        "day": str(day),
        "messages": generated,
        "day_bytes": day.stat().st_size,
        "gen_msgs_per_s": round(generated / gen_s),
        "pcap_packets_per_s": round(read["packets_per_s"]),
        "pcap_packets": int(read["packets"]),
        **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in book.items()},
        **{k: round(v, 1) for k, v in wire.items() if k.startswith("host_quote_to_wire")},
        "host_quote_to_wire_requests": wire["records"],
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"zynqmm bench: {generated:,} messages, {result['day_bytes'] / 1e6:.0f} MB pcap")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for key in ("gen_msgs_per_s", "pcap_packets_per_s", "decode_msgs_per_s", "book_msgs_per_s",
                "python_baseline_msgs_per_s", "python_baseline_ratio",
                "host_quote_to_wire_p50_us", "host_quote_to_wire_p99_us",
                "host_quote_to_wire_p999_us"):
        v = result.get(key)
        t.add_row(key, f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
    Console().print(t)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

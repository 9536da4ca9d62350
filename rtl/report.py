"""``make rtl-report``: the fabric's latencies measured in RTL simulation.

Runs every measurement of :data:`MEASUREMENTS` (each a ``"module:function"``
returning a flat dict of figures; keys ending in ``_cycles`` are clock cycles,
a dict value holds named cycle counts), writes them all to
``build/reports/rtl.json`` with each cycle count also in nanoseconds at the
core clock of every board family (``board.boards.FAMILIES``: 250 MHz on
Zynq UltraScale+, 125 MHz on Zynq-7000), and prints them as a table.

The measurements run the RTL tests' cocotb benches on crafted stimuli on the
same simulator builds (``$SIM``: verilator by default, or icarus), so the
numbers are the ones the tests hold the blocks' latency constants to, and
an unchanged design is not built again.  A new figure is one more entry in
:data:`MEASUREMENTS`.

    python -m rtl.report [--only module:function ...] [--out build/reports/rtl.json]
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from board.boards import FAMILIES
from rtl.common.convert import build_root
from rtl.common.sim import simulator

MEASUREMENTS: tuple[str, ...] = (
    "tests.rtl.latency:feed_path",
    "tests.rtl.pricer_chain_bench:measure",
    "tests.rtl.quote_path_bench:measure",
    "tests.rtl.fabric_bench:measure",
)

CLOCKS_MHZ = {family: mhz for family, (_, mhz) in FAMILIES.items()}
DEFAULT_OUT = build_root() / "reports" / "rtl.json"


class ReportError(RuntimeError):
    """A measurement is missing, failed, or clashes with another's figures."""


def resolve(entry: str) -> Callable[[], dict]:
    module_name, sep, function_name = entry.partition(":")
    if not sep or not module_name or not function_name:
        raise ReportError(f"measurement {entry!r} is not 'module:function'")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise ReportError(f"measurement {entry!r}: {exc}") from exc
    if not callable(function):
        raise ReportError(f"measurement {entry!r} is not callable")
    return function


def measure(entries: Iterable[str], progress: Callable[[str], None] = lambda entry: None
            ) -> tuple[dict, dict]:
    """Run the measurements: (figures, entry that gave each figure)."""
    figures: dict = {}
    sources: dict[str, str] = {}
    for entry in entries:
        progress(entry)
        try:
            result = resolve(entry)()
        except ReportError:
            raise
        except Exception as exc:
            raise ReportError(f"measurement {entry} failed: {exc!r}") from exc
        if not isinstance(result, dict):
            raise ReportError(f"measurement {entry} returned {type(result).__name__}, not dict")
        for key, value in result.items():
            if key in figures:
                raise ReportError(f"{key} comes from both {sources[key]} and {entry}")
            figures[key] = value
            sources[key] = entry
    if "pricer_first_theo_cycles" in figures and "quoter_gate_cycles" in figures:
        # Underlying update in -> first quote record out: the chain pricer and
        # the quote path are joined port to port (the fabric's tick-to-quote,
        # measured whole, is the feed path, the update's other beats and this).
        figures["pricer_first_quote_cycles"] = (figures["pricer_first_theo_cycles"]
                                                + figures["quoter_gate_cycles"])
        sources["pricer_first_quote_cycles"] = "pricer_first_theo_cycles + quoter_gate_cycles"
    return figures, sources


def cycle_rows(figures: dict) -> list[tuple[str, float]]:
    """(name, cycles) of every cycle count, dict values as name.key."""
    rows = []
    for key, value in figures.items():
        if not key.endswith("_cycles"):
            continue
        if isinstance(value, dict):
            rows += [(f"{key}.{name}", v) for name, v in value.items()
                     if isinstance(v, (int, float))]
        elif isinstance(value, (int, float)):
            rows.append((key, value))
    return rows


def nanoseconds(cycles: float, mhz: float) -> float:
    return round(cycles * 1000.0 / mhz, 3)


def report(figures: dict, sources: dict, seconds: float) -> dict:
    ns = {name: {f"{mhz:g}MHz": nanoseconds(cycles, mhz) for mhz in CLOCKS_MHZ.values()}
          for name, cycles in cycle_rows(figures)}
    return {**figures, "ns": ns,
            "report": {"simulator": simulator(), "clocks_mhz": CLOCKS_MHZ,
                       "measurements": sorted(set(sources.values())), "sources": sources,
                       "seconds": round(seconds, 1)}}


def print_table(figures: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    families = sorted(CLOCKS_MHZ.items(), key=lambda item: -item[1])
    table = Table(title="Fabric latency (RTL simulation)",
                  caption="; ".join(f"{mhz:g} MHz: {family} core clock"
                                    for family, mhz in families))
    table.add_column("figure", no_wrap=True)
    table.add_column("cycles", justify="right")
    for _, mhz in families:
        table.add_column(f"ns @ {mhz:g} MHz", justify="right")
    for name, cycles in cycle_rows(figures):
        table.add_row(name, f"{cycles:g}", *(f"{nanoseconds(cycles, mhz):g}"
                                              for _, mhz in families))
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="MODULE:FUNCTION",
                        help="run these measurements instead of all of MEASUREMENTS")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console(stderr=True)
    started = time.perf_counter()
    try:
        with console.status("measuring") as status:
            figures, sources = measure(args.only or MEASUREMENTS,
                                       lambda entry: status.update(f"measuring {entry}"))
    except ReportError as exc:
        console.print(f"[red]rtl-report: {exc}")
        return 1
    result = report(figures, sources, time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print_table(figures)
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

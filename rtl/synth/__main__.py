"""``python -m rtl.synth [--blocks ...] [--out build/reports/synth.json]``:
synthesise the blocks for UltraScale+ with Yosys, print resources and LUT
levels per block, and write the JSON report.

``python -m rtl.synth --board kr260``: synthesise what that board's overlay
instantiates (its ``[fabric]`` top with its parameters; the whole fabric as
its three parts) for the board's family, write
``build/reports/synth-<board>.json``, and print and write the fit
(``build/reports/fit-<board>.json``, as ``make overlay-check`` does); exit
status 4 when it does not fit."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from board.boards import BoardError, board_names, load_board
from rtl.blocks import BLOCKS
from rtl.common.convert import build_root
from rtl.synth.fit import (SynthReportError, board_fit, board_jobs, fit_rows, synth_family,
                           write_fit)
from rtl.synth.run import (DEFAULT_TIMEOUT, GOAL_LUT_LEVELS, block_jobs, run_jobs, synth_report,
                           synth_root, write_report)


def _short(endpoint: dict | None) -> str:
    if not endpoint:
        return "-"
    if endpoint["type"] == "top port":
        return f"in {endpoint['port']}" if endpoint.get("net") else endpoint["port"]
    return f"{endpoint['net']} ({endpoint['type']}.{endpoint['port']})"


def _end(endpoint: dict | None) -> str:
    if not endpoint:
        return "-"
    if endpoint["type"] == "top port":
        return f"out {endpoint['port']}"
    target = endpoint.get("register") or endpoint["net"]
    return f"{target} ({endpoint['type']}.{endpoint['port']})"


def _dsp(record: dict) -> str:
    unregistered = record.get("dsp_unregistered", 0)
    return f"{record['dsp']} ({unregistered} unreg.)" if unregistered else str(record["dsp"])


def results_table(report: dict) -> Table:
    goal = report.get("goal_lut_levels", GOAL_LUT_LEVELS)
    table = Table(title=f"{report['tool']}, family {report['family']}, "
                        f"goal <= {goal} LUT levels")
    for heading in ("block", "LUT", "FF", "BRAM36", "DSP", "CARRY8", "LUTRAM+SRL",
                    "LUT levels", "carry lvls", "worst path from", "to", "seconds"):
        justify = "left" if heading in ("block", "worst path from", "to") else "right"
        table.add_column(heading, justify=justify, overflow="fold")
    for name, record in report["blocks"].items():
        if "error" in record:
            table.add_row(name, *["-"] * 6, "[red]failed[/red]", "-",
                          record["error"].splitlines()[0][:80], "", str(record.get("seconds", "")))
            continue
        levels = record["lut_levels"]
        over = levels - goal
        shown = f"[red]{levels} (+{over})[/red]" if over > 0 else f"[green]{levels}[/green]"
        path = record.get("worst_path") or {}
        seconds = record.get("seconds")
        timing = f"{seconds:.0f}" if isinstance(seconds, (int, float)) else "?"
        if isinstance(record.get("cpu_seconds"), (int, float)):
            timing += f" (cpu {record['cpu_seconds']:.0f})"
        if record.get("cached"):
            timing += " (cached)"
        table.add_row(name, str(record["lut"]), str(record["ff"]), f"{record['bram']:g}",
                      _dsp(record), f"{record['carry']:g}",
                      str(record["lutram"] + record["srl"]), shown,
                      str(record.get("carry_levels", 0)), _short(path.get("from")),
                      _end(path.get("to")), timing)
    return table


def fit_table(fit: dict) -> Table:
    fabric = ", ".join(f"{key} {value}" for key, value in fit["fabric"].items())
    table = Table(title=f"fit: {fit['board']} ({fit['part']}, {fit['family']}), {fabric}",
                  caption=f"estimate: {fit['basis']}")
    for heading in ("resource", "used", "available", "used %", "limit", ""):
        table.add_column(heading, justify="left" if heading == "resource" else "right")
    for label, used, available, share, limit, verdict in fit_rows(fit):
        shown = f"[green]{verdict}[/green]" if verdict == "ok" else f"[red]{verdict}[/red]"
        table.add_row(label, used, available, share, limit, shown)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtl.synth", description=__doc__)
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--blocks", nargs="+", metavar="BLOCK", choices=list(BLOCKS),
                        help=f"blocks to synthesise ({', '.join(BLOCKS)}); default all")
    choice.add_argument("--board", choices=board_names(),
                        help="synthesise what this board's overlay instantiates, for its "
                             "family, and report the fit")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON report (default build/reports/synth.json, or "
                             "synth-<board>.json with --board)")
    parser.add_argument("--jobs", type=int, default=2, help="Yosys processes at once (default 2)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds allowed per block (default {DEFAULT_TIMEOUT:.0f})")
    parser.add_argument("--build-id", type=lambda text: int(text, 0), default=None,
                        help="build ID for the conversion (default: SYNTH_BUILD_ID, "
                             "fixed so that results survive commits)")
    parser.add_argument("--no-convert", dest="convert", action="store_false",
                        help="synthesise the Verilog already in build/rtl/ (no conversion)")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 3 when a block has more than {GOAL_LUT_LEVELS} LUT levels")
    args = parser.parse_args(argv)
    if args.board and (args.build_id is not None or not args.convert):
        parser.error("--board converts its parts itself, with SYNTH_BUILD_ID: "
                     "no --build-id or --no-convert with it")

    console = Console()
    if not console.is_terminal:
        # Written to a log: wide enough that paths are not folded letter by letter.
        console = Console(width=200)
    board = basis = None
    family = None
    if args.board:
        try:
            board = load_board(args.board)
            jobs, basis = board_jobs(board, args.timeout)
        except (BoardError, RuntimeError) as exc:
            console.print(f"[red]{exc}[/red]")
            return 1
        family = synth_family(board)
        unconverted = {}
        order = [job.block for job in jobs]
        out = args.out or build_root() / "reports" / f"synth-{board.name}.json"
    else:
        jobs, unconverted = block_jobs(args.blocks, args.timeout, args.build_id, args.convert)
        order = args.blocks or list(BLOCKS)
        out = args.out or build_root() / "reports" / "synth.json"
    started = time.monotonic()
    with Progress(TextColumn("[bold]synth[/bold] {task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(", ".join(job.block for job in jobs) or "nothing to do",
                                 total=len(jobs))

        def done(block: str, record: dict) -> None:
            state = "failed" if "error" in record else (
                "cached" if record.get("cached") else f"{record.get('seconds')} s")
            progress.console.print(f"  {block}: {state}")
            progress.advance(task)

        results = run_jobs(jobs, args.jobs, done)
    results = {name: results.get(name) or {"error": unconverted[name]} for name in order}
    report = synth_report(results, family) if family else synth_report(results)
    write_report(report, out)
    console.print(results_table(report))
    console.print(f"report: {out}  ({time.monotonic() - started:.0f} s)")
    failed = [name for name, record in results.items() if "error" in record]
    if failed:
        for name in failed:
            console.print(f"[red]{name}: {results[name]['error'].splitlines()[0]}[/red]")
        console.print(f"(Yosys logs: {synth_root()}/<block>/yosys.log)")
        return 1
    if board is not None:
        try:
            fit = board_fit(board, jobs, basis, results)
        except SynthReportError as exc:
            console.print(f"[red]{exc}[/red]")
            return 1
        fit_out = write_fit(fit, build_root() / "reports" / f"fit-{board.name}.json")
        console.print(fit_table(fit))
        console.print(f"fit: {fit_out}")
        if not fit["fits"]:
            console.print(f"[red]{board.name}: over the limit in "
                          f"{', '.join(fit['over_limit'])}[/red]")
            return 4
    over = [name for name, record in results.items() if not record["meets_goal"]]
    if over:
        console.print(f"over {GOAL_LUT_LEVELS} LUT levels: " + ", ".join(
            f"{name} ({results[name]['lut_levels']})" for name in over))
        if args.check:
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make overlay-check``: everything about the overlay that can be checked
without Vivado.

1. every TCL file under ``overlays/zynqmm/`` is complete TCL (``info complete``);
2. the build TCL dry-runs for the board (Vivado commands stubbed) and
   instantiates the PS, DMA, interconnect and Ethernet IP the board needs,
   the fabric top the board's ``[fabric]`` table names with one record DMA
   per stream it sends, adds exactly that top's generated Verilog and the
   board's constraints, and creates every port the constraints place;
3. every RTL file it adds exists (after ``make overlay-rtl``);
4. the register-map version is the same in ``rtl/regmap/map.py``, in
   ``REGISTERS.md``, in the fabric's generated Verilog and in what the
   manifest will record;
5. the fabric fits the board: the Yosys estimate of the blocks the overlay
   instantiates, synthesised for the board's family (``make synth
   BOARD=...``, results cached per Verilog and only read here), within
   :data:`rtl.synth.fit.LIMITS` of the device's capacity.  The table is
   printed and written to ``build/reports/fit-<board>.json``.  A block
   without an estimate fails the check.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from board.boards import Board, load_board
from overlays.config import (TCL_FILES, fabric_sources, fabric_top, overlay_dir,
                             record_streams)
from overlays.dryrun import DryRun, DryRunError, dry_run
from rtl.common.convert import build_root
from rtl.regmap.map import MAP_VERSION
from rtl.synth.fit import (MissingEstimate, SynthReportError, board_fit, board_jobs, fit_text,
                           write_fit)

REGISTERS_MD = Path(__file__).resolve().parents[1] / "rtl" / "regmap" / "REGISTERS.md"
_XDC_PORT = re.compile(r"get_ports\s+(?:\{([^}]*)\}|(\S+?))\s*\]")


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str     # "ok", "fail" or "skip"
    detail: str = ""


def tcl_complete(paths=TCL_FILES) -> list[str]:
    """Files whose text is not complete TCL (unbalanced braces, brackets, quotes)."""
    script = ("foreach f $argv { set h [open $f]; set t [read $h]; close $h; "
              "if {![info complete $t]} { puts $f } }")
    done = subprocess.run(["tclsh"], input=script.replace("$argv", "{" + " ".join(map(str, paths)) + "}"),
                          capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise DryRunError(done.stderr.strip())
    return [line for line in done.stdout.splitlines() if line]


def fit_path(board: Board) -> Path:
    return build_root() / "reports" / f"fit-{board.name}.json"


def expected_ip(board: Board) -> set[str]:
    ip = {board.ps_ip, "xilinx.com:ip:axi_dma", "xilinx.com:ip:smartconnect",
          "xilinx.com:ip:proc_sys_reset"}
    ip.update(port.ip for port in board.feed_ports())
    return ip


def xdc_ports(path: Path) -> set[str]:
    """Port names the constraints file places (bus bits folded to the bus name)."""
    names = set()
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        for braced, bare in _XDC_PORT.findall(line):
            for name in (braced or bare).split():
                names.add(re.sub(r"\[\d+\]$", "", name))
    return names


def dry_run_problems(board: Board, record: DryRun) -> list[str]:
    problems = []
    if record.part() != board.part:
        problems.append(f"project part {record.part()} is not {board.part}")
    cells = record.ip_cells()
    missing = expected_ip(board) - set(cells.values())
    if missing:
        problems.append(f"IP not instantiated: {', '.join(sorted(missing))}")
    references = record.module_references()
    if references != {"fabric": fabric_top(board)}:
        problems.append(f"module references {references}, expected the board's fabric top "
                        f"{fabric_top(board)} only")
    streams = {c.args for c in record.of("connect_bd_intf_net")}
    for port, dma in record_streams(board):
        if cells.get(dma) != "xilinx.com:ip:axi_dma" or \
                (f"fabric/{port}", f"{dma}/S_AXIS_S2MM") not in streams:
            problems.append(f"fabric/{port} does not reach a DMA {dma}")
    rtl = [Path(p) for p in record.files_added() if p.endswith(".v") and not p.startswith("/dryrun/")]
    if rtl != fabric_sources(board):
        problems.append(f"RTL added {rtl}, expected {fabric_sources(board)}")
    if record.files_added("constrs_1") != [str(board.constraints)]:
        problems.append(f"constraints added {record.files_added('constrs_1')}")
    unplaced = xdc_ports(board.constraints) - record.top_ports()
    if unplaced:
        problems.append(f"constraints name ports the design lacks: {', '.join(sorted(unplaced))}")
    return problems


def map_version_problems(sources=None, registers_md: Path = REGISTERS_MD,
                         board: Board | None = None) -> list[str]:
    expected = f"0x{MAP_VERSION:08x}"
    problems = []
    stated = re.search(r"Map version: `(0x[0-9a-f]{8})`", registers_md.read_text())
    if not stated or stated.group(1) != expected:
        problems.append(f"{registers_md.name} states map version "
                        f"{stated.group(1) if stated else 'none'}, rtl/regmap has {expected} "
                        f"(run `make rtl`)")
    bits = format(MAP_VERSION, "032b")
    remedy = f"make overlay-rtl BOARD={board.name}" if board else "make rtl"
    for path in sources if sources is not None else fabric_sources(board):
        if path.is_file() and f"'b{bits}" not in path.read_text():
            problems.append(f"{path} does not carry map version {expected} (stale; run `{remedy}`)")
    return problems


def fit_outcome(board: Board, jobs: list | None = None, basis: str = "",
                out: Path | None = None) -> tuple[Outcome, dict]:
    """The fit check from cached synthesis results only (``jobs``: the
    board's, :func:`rtl.synth.fit.board_jobs`, by default), and the fit
    document written to ``out`` (default ``build/reports/fit-<board>.json``)."""
    out = out or fit_path(board)
    try:
        if jobs is None:
            jobs, basis = board_jobs(board)
        fit = board_fit(board, jobs, basis)
    except MissingEstimate as exc:
        fit = {"board": board.name, "part": board.part, "family": exc.family,
               "fabric": board.fabric.as_dict(), "fits": False, "missing": exc.blocks,
               "error": str(exc)}
        outcome = Outcome("fit", "fail", str(exc))
    except (SynthReportError, RuntimeError, OSError) as exc:
        fit = {"board": board.name, "fits": False, "error": str(exc)}
        outcome = Outcome("fit", "fail", str(exc))
    else:
        summary = ", ".join(
            f"{name} {100 * fit['resources'][name]['utilisation']:.0f} % "
            f"(<= {100 * fit['resources'][name]['limit']:.0f} %)"
            for name in ("lut", "ff", "bram36", "dsp") if fit["resources"][name]["available"])
        if fit["fits"]:
            outcome = Outcome("fit", "ok", f"{summary}; {out}")
        else:
            outcome = Outcome("fit", "fail", f"over the limit: {', '.join(fit['over_limit'])}; "
                                             f"{summary}; {out}")
    write_fit(fit, out)
    return outcome, fit


def run_checks(board: Board, work_dir: Path) -> list[Outcome]:
    outcomes = []
    incomplete = tcl_complete()
    outcomes.append(Outcome("tcl syntax", "fail" if incomplete else "ok",
                            ", ".join(incomplete) or f"{len(TCL_FILES)} files complete"))
    try:
        record = dry_run(board, work_dir)
        problems = dry_run_problems(board, record)
        outcomes.append(Outcome("dry run", "fail" if problems else "ok", "; ".join(problems) or
                                f"{len(record.calls)} Vivado calls, "
                                f"{len(record.ip_cells())} IP cells"))
    except DryRunError as exc:
        outcomes.append(Outcome("dry run", "fail", str(exc)))
    sources = fabric_sources(board)
    missing = [str(p) for p in sources if not p.is_file()]
    outcomes.append(Outcome("rtl files", "fail" if missing else "ok",
                            f"missing {', '.join(missing)} (run `make overlay-rtl "
                            f"BOARD={board.name}`)" if missing else
                            ", ".join(str(p) for p in sources)))
    problems = map_version_problems(board=board)
    outcomes.append(Outcome("map version", "fail" if problems else "ok",
                            "; ".join(problems) or f"0x{MAP_VERSION:08x} everywhere"))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m overlays.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--board", required=True)
    args = parser.parse_args(argv)
    board = load_board(args.board)
    work = overlay_dir(board) / "check"
    work.mkdir(parents=True, exist_ok=True)
    outcomes = run_checks(board, work)
    fit_check, fit = fit_outcome(board)
    outcomes.append(fit_check)
    for outcome in outcomes:
        print(f"{outcome.status:4}  {outcome.name:12} {outcome.detail}")
    if "resources" in fit:
        print(fit_text(fit))
    return 1 if any(o.status == "fail" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())

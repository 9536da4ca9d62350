"""What the overlay build is given: the board's facts and the generated
Verilog, written as a TCL array (``zynqmm(...)``) that ``build.tcl`` sources;
and the Verilog itself, the fabric top level the board's ``[fabric]`` table
names converted with the board's build parameters.

Each board gets its own top in ``build/rtl/<top>-<board>/`` (``fabric-kr260``,
``feed_path-pynqz2``...), so boards with other parameters never overwrite
each other's Verilog, and the default ``fabric`` block of ``make rtl`` (the
one the tests and the simulator backend use) stays as it is.  The parts the
fit check sums (:func:`fit_parts`) are converted the same way, into
``build/rtl/fit/<part>/``.

``python -m overlays.config --board kr260`` writes the board's top (``make
overlay-rtl``).  A conversion is skipped when neither its inputs (the
sources under ``rtl/`` and ``host/``, MyHDL's version, the parameters and
the build ID) nor the file it wrote have changed since.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from board.boards import Board, load_board
from rtl.blocks import BLOCKS
from rtl.common.convert import REPO_ROOT, build_id, build_root, rtl_dir
from rtl.regmap.map import MAP_VERSION

OVERLAY_TCL_DIR = Path(__file__).resolve().parent / "zynqmm"
BUILD_TCL = OVERLAY_TCL_DIR / "build.tcl"
DRYRUN_TCL = OVERLAY_TCL_DIR / "dryrun.tcl"
TCL_FILES = tuple(sorted(OVERLAY_TCL_DIR.glob("*.tcl")))

# The whole fabric (feed path, chain pricer, quoter, risk gate) as `make rtl`
# converts it, with rtl.fabric.hdl.FABRIC_CHAIN: the tests' and the rtl
# backend's fabric.  A board's overlay instantiates its own variant.
FABRIC_BLOCK = "fabric"

# The record streams each top sends to memory, and the S2MM DMA taking each:
# the whole fabric merges everything into one stream (tdest says what a
# record is); the feed path has book records and feed events apart.
RECORD_STREAMS = {
    "fabric": (("m_axis", "record_dma"),),
    "feed_path": (("m_axis", "record_dma"), ("m_feed_event", "event_dma")),
}


@dataclass(frozen=True)
class ChainParameters:
    """The chain pricer's build parameters (``ChainConfig``'s fields), kept
    here as plain numbers so that naming a part imports no MyHDL."""
    options: int
    underlyings: int
    lanes: int
    scenarios: int

    def config(self):
        from rtl.pricer_chain.model import ChainConfig

        return ChainConfig(self.options, self.underlyings, self.lanes, self.scenarios)

    @property
    def tag(self) -> str:
        return f"l{self.lanes}-o{self.options}-u{self.underlyings}-s{self.scenarios}"

    def describe(self) -> str:
        return (f"{self.lanes} lane{'s' * (self.lanes != 1)}, {self.options} rows, "
                f"{self.underlyings} underlyings, {self.scenarios} scenarios")


@dataclass(frozen=True)
class RtlPart:
    """One generated top level: ``block`` (an entry of :mod:`rtl.blocks`),
    elaborated with ``chain`` when it has a chain pricer and with ``ident``
    as its build ID, written to ``build/rtl/<folder>/<top>.v`` (``folder``
    defaults to ``name``)."""
    name: str
    block: str
    ident: int = 0
    chain: ChainParameters | None = None
    folder: str = ""

    @property
    def top(self) -> str:
        return BLOCKS[self.block].toplevel

    @property
    def path(self) -> Path:
        return rtl_dir(self.folder or self.name) / f"{self.top}.v"

    def describe(self) -> str:
        return f"{self.block} ({self.chain.describe()})" if self.chain else self.block

    def spec(self) -> dict:
        return {"name": self.name, "block": self.block, "ident": self.ident,
                "chain": asdict(self.chain) if self.chain else None, "folder": self.folder}

    @classmethod
    def from_spec(cls, spec: dict) -> "RtlPart":
        chain = ChainParameters(**spec["chain"]) if spec.get("chain") else None
        return cls(spec["name"], spec["block"], int(spec["ident"]), chain,
                   spec.get("folder", ""))

    def elaborate(self):
        if self.chain is None:
            return BLOCKS[self.block].elaborate(self.ident)
        if self.block == "pricer_chain":
            from rtl.pricer_chain.__main__ import elaborate

            return elaborate(self.chain.config())
        if self.block == "fabric":
            from myhdl import ResetSignal, Signal

            from rtl.common.axil import AxiLite
            from rtl.common.axis import AxiStream
            from rtl.fabric.hdl import ADDR_WIDTH, DEST_WIDTH, fabric

            clk, rst = Signal(bool(0)), ResetSignal(0, active=1, isasync=False)
            return fabric(clk, rst, AxiStream(), AxiStream(), AxiStream(DEST_WIDTH),
                          AxiLite(ADDR_WIDTH), self.ident, self.chain.config())
        raise ValueError(f"{self.block} has no chain pricer to parameterise")

    def convert(self) -> Path:
        """Write the Verilog (unless it is already there from the same inputs)
        and return its path."""
        stamp_file = self.path.with_name(self.path.name + ".stamp")
        inputs = _inputs_digest(self)
        try:
            kept = json.loads(stamp_file.read_text())
        except (OSError, ValueError):
            kept = {}
        if (kept.get("inputs") == inputs and self.path.is_file()
                and _file_digest(self.path) == kept.get("output")):
            return self.path
        # Always in a fresh process: MyHDL's output order follows string
        # hashing, and its naming state carries over from one conversion to
        # the next in a process (see rtl.blocks), so only a first conversion
        # with PYTHONHASHSEED=0 gives the same text every time.
        done = subprocess.run([sys.executable, "-m", "overlays.config", "--part",
                               json.dumps(self.spec())], cwd=REPO_ROOT,
                              env={**os.environ, "PYTHONHASHSEED": "0"},
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"conversion of {self.name} failed:\n"
                               f"{done.stdout}{done.stderr}")
        stamp_file.write_text(json.dumps({"inputs": inputs,
                                          "output": _file_digest(self.path)}) + "\n")
        return self.path


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inputs_digest(part: RtlPart) -> str:
    """Everything the conversion reads: all of rtl/ and host/ (records,
    formats and models the blocks import), MyHDL and the part's parameters."""
    import myhdl

    digest = hashlib.sha256(json.dumps([part.spec(), myhdl.__version__]).encode())
    for folder in ("rtl", "host"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def chain_parameters(board: Board) -> ChainParameters | None:
    """The board's chain pricer: ``FABRIC_CHAIN``'s table sizes (the quoter's
    and gate's tables) with the board's lanes and scenario rows; None when
    the board's top has no pricer."""
    if not board.fabric.prices_in_fabric:
        return None
    from rtl.fabric.hdl import FABRIC_CHAIN

    return ChainParameters(FABRIC_CHAIN.options, FABRIC_CHAIN.underlyings,
                           board.fabric.pricer_lanes, board.fabric.pricer_scenarios)


def fabric_part(board: Board, ident: int | None = None) -> RtlPart:
    """The top level the board's overlay instantiates, with build ID ``ident``
    (default: the checkout's, as ``make rtl``)."""
    return RtlPart(f"{board.fabric.top}-{board.name}", board.fabric.top,
                   build_id() if ident is None else ident, chain_parameters(board))


def fabric_top(board: Board) -> str:
    return BLOCKS[board.fabric.top].toplevel


def fabric_sources(board: Board | None = None) -> list[Path]:
    """The generated Verilog files the board's block design adds
    (``build/rtl/<top>-<board>/``); without a board, the default fabric's."""
    if board is None:
        return [rtl_dir(FABRIC_BLOCK) / f"{BLOCKS[FABRIC_BLOCK].toplevel}.v"]
    return [rtl_dir(f"{board.fabric.top}-{board.name}") / f"{fabric_top(board)}.v"]


def record_streams(board: Board) -> tuple[tuple[str, str], ...]:
    return RECORD_STREAMS[board.fabric.top]


def fit_parts(board: Board, ident: int) -> tuple[list[RtlPart], str]:
    """The tops whose synthesis estimates add up to the board's fabric, and
    how: the feed path whole; the whole fabric as its three parts, each
    synthesised on its own (a change to one part re-synthesises only that
    part, and the results are the ones ``make synth`` keeps per block),
    which leaves out the fabric's own glue.  ``ident`` is the
    build ID the parts are converted with.  A part is named after its
    synthesis folder (``make synth``'s for a block of rtl/blocks.py, so
    their results are shared) and written under ``build/rtl/fit/``, away
    from what ``make rtl`` writes with the checkout's build ID."""
    def part(name: str, block: str, ident: int, chain: ChainParameters | None = None):
        return RtlPart(name, block, ident, chain, f"fit/{name}")

    feed = part("feed_path", "feed_path", ident)
    if not board.fabric.prices_in_fabric:
        return [feed], "whole top: feed_path"
    chain = chain_parameters(board)
    parts = [feed, part(f"pricer_chain-{chain.tag}", "pricer_chain", 0, chain),
             part("quote_path", "quote_path", ident)]
    return parts, ("sum of the three parts of fabric, each synthesised on its own "
                   "(feed_path + pricer_chain + quote_path); not included: the fabric's "
                   "glue (record fork, 64-beat host FIFO, lane merge, record merge, "
                   "AXI-Lite router)")


def overlay_dir(board: Board) -> Path:
    return build_root() / "overlay" / board.name


def tcl_word(value) -> str:
    """One TCL word holding ``value`` literally (braced, so nothing is substituted)."""
    text = str(value)
    if "{" in text or "}" in text or "\\" in text:
        raise ValueError(f"cannot brace {text!r} for TCL")
    return "{" + text + "}"


def config_tcl(board: Board, jobs: int | None = None) -> str:
    ethernet = " ".join(
        f"{tcl_word(p.name)} {{kind {tcl_word(p.kind)} attach {tcl_word(p.attach)} "
        f"ip {tcl_word(p.ip)}}}" for p in board.ethernet)
    entries = {
        "board": board.name,
        "part": board.part,
        "board_part": board.board_part,
        "family": board.family,
        "vivado": board.vivado,
        "core_mhz": f"{board.core_mhz:g}",
        "fabric_top": fabric_top(board),
        "constraints": board.constraints,
        "feed_a": board.appliance.feed_a,
        "feed_b": board.appliance.feed_b,
        "map_version": f"0x{MAP_VERSION:08x}",
        "jobs": jobs or max(1, min(8, os.cpu_count() or 1)),
    }
    lines = [f"# Written by overlays.build for {board.name}; regenerated on every build.",
             f"# Source checkout: {REPO_ROOT}",
             f"# Fabric: {json.dumps(board.fabric.as_dict())}"]
    lines += [f"set zynqmm({key}) {tcl_word(value)}" for key, value in entries.items()]
    sources = " ".join(tcl_word(path) for path in fabric_sources(board))
    lines.append(f"set zynqmm(rtl_sources) [list {sources}]")
    streams = " ".join(f"{tcl_word(port)} {tcl_word(dma)}" for port, dma in record_streams(board))
    lines.append(f"set zynqmm(record_streams) [list {streams}]")
    lines.append(f"set zynqmm(ethernet) [dict create {ethernet}]")
    return "\n".join(lines) + "\n"


def write_config(board: Board, out_dir: Path, jobs: int | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "config.tcl"
    path.write_text(config_tcl(board, jobs))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m overlays.config",
                                     description="Write a board's fabric top level to "
                                                 "build/rtl/<top>-<board>/.")
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("--board", help="the board whose overlay fabric to convert")
    choice.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--build-id", type=lambda text: int(text, 0), default=None,
                        help="32-bit build ID (default: $ZYNQMM_BUILD_ID or the commit)")
    args = parser.parse_args(argv)
    if args.part:
        if os.environ.get("PYTHONHASHSEED") != "0":
            parser.error("--part converts only with PYTHONHASHSEED=0 (RtlPart.convert sets it)")
        part = RtlPart.from_spec(json.loads(args.part))
        from rtl.common.convert import convert

        print(convert(part.elaborate(), part.folder or part.name, part.top))
        return 0
    board = load_board(args.board)
    print(fabric_part(board, args.build_id).convert())
    return 0


if __name__ == "__main__":
    sys.exit(main())

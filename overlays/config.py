"""What the overlay build is given: the board's facts and the generated
Verilog, written as a TCL array (``zynqmm(...)``) that ``build.tcl`` sources.

The RTL file list comes from :mod:`rtl.blocks` and the paths ``make rtl``
writes (:func:`rtl.common.convert.rtl_dir`), so the overlay follows the fabric
without a second list of files to keep in step.
"""
from __future__ import annotations

import os
from pathlib import Path

from board.boards import Board
from rtl.blocks import BLOCKS
from rtl.common.convert import REPO_ROOT, build_root, rtl_dir
from rtl.regmap.map import MAP_VERSION

OVERLAY_TCL_DIR = Path(__file__).resolve().parent / "zynqmm"
BUILD_TCL = OVERLAY_TCL_DIR / "build.tcl"
DRYRUN_TCL = OVERLAY_TCL_DIR / "dryrun.tcl"
TCL_FILES = tuple(sorted(OVERLAY_TCL_DIR.glob("*.tcl")))

# The fabric's top level in the block design: the whole fabric (feed path,
# chain pricer, quoter, risk gate), which instantiates the other blocks
# (MyHDL writes them into the one file).
FABRIC_BLOCK = "fabric"


def fabric_sources() -> list[Path]:
    """The generated Verilog files the block design adds, in ``build/rtl/``."""
    return [rtl_dir(FABRIC_BLOCK) / f"{BLOCKS[FABRIC_BLOCK].toplevel}.v"]


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
        "fabric_top": BLOCKS[FABRIC_BLOCK].toplevel,
        "constraints": board.constraints,
        "feed_a": board.appliance.feed_a,
        "feed_b": board.appliance.feed_b,
        "map_version": f"0x{MAP_VERSION:08x}",
        "jobs": jobs or max(1, min(8, os.cpu_count() or 1)),
    }
    lines = [f"# Written by overlays.build for {board.name}; regenerated on every build.",
             f"# Source checkout: {REPO_ROOT}"]
    lines += [f"set zynqmm({key}) {tcl_word(value)}" for key, value in entries.items()]
    sources = " ".join(tcl_word(path) for path in fabric_sources())
    lines.append(f"set zynqmm(rtl_sources) [list {sources}]")
    lines.append(f"set zynqmm(ethernet) [dict create {ethernet}]")
    return "\n".join(lines) + "\n"


def write_config(board: Board, out_dir: Path, jobs: int | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "config.tcl"
    path.write_text(config_tcl(board, jobs))
    return path

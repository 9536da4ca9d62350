"""``make bitstream``: build the overlay for a board with Vivado in batch
mode, then write its manifest.

Without Vivado on ``PATH`` (or ``$VIVADO``) it stops before doing anything,
naming the Vivado release the TCL is written for, with exit status
:data:`EXIT_NO_VIVADO`.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from board.boards import VIVADO_VERSION, BoardError, load_board
from overlays.config import BUILD_TCL, fabric_sources, overlay_dir, write_config
from overlays.manifest import write_manifest

EXIT_NO_VIVADO = 3
EXIT_WRONG_VIVADO = 4
EXIT_NO_RTL = 5


def find_vivado() -> str | None:
    return shutil.which(os.environ.get("VIVADO", "vivado"))


def vivado_version(vivado: str) -> str | None:
    done = subprocess.run([vivado, "-version"], capture_output=True, text=True, timeout=300)
    found = re.search(r"v(\d{4}\.\d)", done.stdout)
    return found.group(1) if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m overlays.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--board", required=True)
    parser.add_argument("--out", type=Path, help="output folder (default build/overlay/<board>)")
    parser.add_argument("--jobs", type=int)
    args = parser.parse_args(argv)
    try:
        board = load_board(args.board)
    except BoardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    vivado = find_vivado()
    if vivado is None:
        print(f"error: Vivado {VIVADO_VERSION} is required to build the {board.name} bitstream, "
              f"and no `{os.environ.get('VIVADO', 'vivado')}` is on PATH. Install Vivado "
              f"{VIVADO_VERSION} and source its settings64.sh, or set VIVADO=/path/to/vivado. "
              f"`make overlay-check BOARD={board.name}` checks the overlay without it.",
              file=sys.stderr)
        return EXIT_NO_VIVADO
    found = vivado_version(vivado)
    if found != VIVADO_VERSION:
        print(f"error: {vivado} is Vivado {found or 'of unknown version'}; the overlay needs "
              f"Vivado {VIVADO_VERSION}", file=sys.stderr)
        return EXIT_WRONG_VIVADO
    missing = [str(p) for p in fabric_sources() if not p.is_file()]
    if missing:
        print(f"error: generated Verilog missing ({', '.join(missing)}); run `make rtl`",
              file=sys.stderr)
        return EXIT_NO_RTL

    out_dir = (args.out or overlay_dir(board)).resolve()
    config = write_config(board, out_dir, args.jobs)
    command = [vivado, "-mode", "batch", "-nojournal", "-log", str(out_dir / "vivado.log"),
               "-source", str(BUILD_TCL), "-tclargs", board.name, str(config), str(out_dir)]
    print(" ".join(command), flush=True)
    done = subprocess.run(command)
    if done.returncode:
        return done.returncode
    manifest = write_manifest(out_dir / "zynqmm.bit", out_dir / "zynqmm.hwh", board.name,
                              board.part, found)
    print(f"manifest: {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

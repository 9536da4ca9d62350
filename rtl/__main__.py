"""``python -m rtl [BLOCK ...]``: convert blocks (all by default) to Verilog
under build/rtl/<block>/."""
from __future__ import annotations

import argparse
import sys

from rtl.blocks import BLOCKS, convert_blocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtl", description=__doc__)
    parser.add_argument("blocks", nargs="*", metavar="BLOCK",
                        help=f"blocks to convert ({', '.join(BLOCKS)}); default all")
    parser.add_argument("--build-id", type=lambda text: int(text, 0), default=None,
                        help="32-bit build ID (default: $ZYNQMM_BUILD_ID or the commit)")
    parser.add_argument("--force", action="store_true",
                        help="convert even blocks whose Verilog is up to date with their sources")
    args = parser.parse_args(argv)
    for path in convert_blocks(args.blocks or None, args.build_id, force=args.force):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

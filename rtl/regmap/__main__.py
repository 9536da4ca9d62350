"""``python -m rtl.regmap [--check]``: write REGISTERS.md, or fail if it is stale."""
from __future__ import annotations

import argparse
import sys

from rtl.regmap.docs import REGISTERS_MD, render_markdown, write_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtl.regmap", description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if REGISTERS.md differs from the declaration")
    args = parser.parse_args(argv)
    if args.check:
        current = REGISTERS_MD.read_text() if REGISTERS_MD.exists() else ""
        if current != render_markdown():
            print(f"{REGISTERS_MD} is stale: run python -m rtl.regmap", file=sys.stderr)
            return 1
        return 0
    print(write_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())

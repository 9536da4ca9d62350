"""``zynqmm``: the appliance's command line.

Each subcommand lives next to the code it drives and registers itself through
a ``register(subparsers)`` function in the modules listed in ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = [
    "host.inspect.decode_cmd",   # zynqmm decode
    "host.inspect.book_cmd",     # zynqmm book
    "host.marketday.cli",        # zynqmm gen-day
    "host.pricing.cli",          # zynqmm pricer-accuracy
    "board.console.cli",         # zynqmm console
    "host.exchange.cli",         # zynqmm exchange-sim
    "host.journal.cli",          # zynqmm journal verify|export
    "board.deploy.cli",          # zynqmm flash, rollback, install, status
    "host.runtime.cli",          # zynqmm run, demo, kill
    "host.replay.cli",           # zynqmm replay, replay-batch, replay-lab
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zynqmm",
        description="zynqmm: options market-making appliance and its toolkit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for modname in COMMANDS:
        importlib.import_module(modname).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except BrokenPipeError:
        # `zynqmm decode ... | head` closes stdout early: not an error.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())

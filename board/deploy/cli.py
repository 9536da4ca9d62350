"""`zynqmm flash`, `rollback`, `install` and `status`: a board over SSH.

`--board` is a target name from the targets file (`--targets`,
`$ZYNQMM_TARGETS` or `~/.config/zynqmm/targets.toml`) or
`[user@]host[:port]`.  Progress goes to stderr, the result to stdout
(`--json` for machines).

Exit status: 0 done; 1 refused (the checks failed, nothing was switched;
for `status`: the runtime is not running or has problems); 2 the board
could not be reached or a command on it failed; `install` returns the
install script's status when that fails.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from board.deploy.ssh import DeployError, Target, TargetError, resolve_target

EXIT_REFUSED = 1
EXIT_FAILED = 2


def register(sub) -> None:
    epilog = __doc__.split("\n\n", 1)[1]
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--targets", type=Path, metavar="FILE",
                        help="targets file (default $ZYNQMM_TARGETS or ~/.config/zynqmm/targets.toml)")
    common.add_argument("--json", action="store_true", help="print the result as JSON")

    def parser(name: str, help_text: str, needs_board: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=epilog,
                           parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--board", required=needs_board, metavar="HOST",
                       help="target name or [user@]host[:port]")
        return p

    p = parser("flash", "copy an overlay to a board, verify it, load it and make it current")
    p.add_argument("--overlay", type=Path, metavar="DIR",
                   help="folder with zynqmm.bit, zynqmm.hwh and zynqmm.json "
                        "(default build/overlay/<board>/ for a target that names its board)")
    p.add_argument("--restart", action="store_true",
                   help="stop the running appliance for the flash and start it again")
    p.set_defaults(func=run_flash)

    p = parser("rollback", "make the previous overlay on a board current again")
    p.add_argument("--restart", action="store_true",
                   help="stop the running appliance for the rollback and start it again")
    p.set_defaults(func=run_rollback)

    p = parser("install", "install the appliance (systemd unit, configuration, logrotate) on a board")
    p.add_argument("--kind", choices=_board_names(), help="the board type, if the target does not say")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="zynqmm.toml to install (default: keep the board's, or its board default)")
    p.add_argument("--token-file", type=Path, metavar="FILE",
                   help="management token to install (default: keep the board's, or generate one)")
    p.add_argument("--package", type=Path, metavar="WHEEL",
                   help="a zynqmm wheel to install into the board's pynq venv")
    p.add_argument("--owner", metavar="USER",
                   help="board user that flashes over SSH: owns the overlays, may load them via sudo")
    p.add_argument("--start", action="store_true", help="start (or restart) the service afterwards")
    p.set_defaults(func=run_install)

    p = parser("status", "overlay, build, feeds, orders and risk of an appliance (local without --board)",
               needs_board=False)
    p.add_argument("--root", default="/", metavar="DIR",
                   help="local only: the file system root to look in (default /)")
    p.add_argument("--status-file", metavar="PATH",
                   help="status file (default: appliance.status_file of the configuration, "
                        "else /run/zynqmm/status.json)")
    p.set_defaults(func=run_status)


def _board_names() -> list[str]:
    from board.boards import board_names
    return board_names()


def _target(args: argparse.Namespace) -> Target:
    return resolve_target(args.board, args.targets)


def _say(line: str) -> None:
    sys.stderr.write(f"  {line}\n")
    sys.stderr.flush()


def _fail(command: str, exc: Exception, status: int) -> int:
    sys.stderr.write(f"zynqmm {command}: {exc}\n")
    return status


def _emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        print(text)


def run_flash(args: argparse.Namespace) -> int:
    from board.deploy.flash import FlashRefused, flash
    try:
        target = _target(args)
        directory = args.overlay or _default_overlay(target)
        result = flash(target, directory, restart=args.restart, say=_say)
    except FlashRefused as exc:
        return _fail("flash", exc, EXIT_REFUSED)
    except DeployError as exc:
        return _fail("flash", f"{exc} (nothing was switched)", EXIT_FAILED)
    _emit(args, dataclasses.asdict(result),
          f"{result.target}: current is {result.name[:12]} (build {result.build_id}, map "
          f"{result.map_version})" + (f"; previous {result.previous[:12]}" if result.previous else ""))
    return 0


def _default_overlay(target: Target) -> Path:
    if target.board is None:
        raise TargetError(f"{target.display} does not name its board: give --overlay DIR")
    from board.boards import load_board
    from overlays.config import overlay_dir
    return overlay_dir(load_board(target.board))


def run_rollback(args: argparse.Namespace) -> int:
    from board.deploy.rollback import RollbackRefused, rollback
    try:
        result = rollback(_target(args), restart=args.restart, say=_say)
    except RollbackRefused as exc:
        return _fail("rollback", exc, EXIT_REFUSED)
    except DeployError as exc:
        return _fail("rollback", exc, EXIT_FAILED)
    _emit(args, dataclasses.asdict(result),
          f"{result.target}: current is {result.current[:12]} (build {result.build_id})"
          + (f"; previous {result.previous[:12]}" if result.previous else ""))
    return 0


def run_install(args: argparse.Namespace) -> int:
    from board.deploy.install import InstallRefused, install
    try:
        result = install(_target(args), args.kind, config=args.config, token_file=args.token_file,
                         package=args.package, owner=args.owner, start=args.start, say=_say)
    except InstallRefused as exc:
        return _fail("install", exc, EXIT_REFUSED)
    except DeployError as exc:
        return _fail("install", exc, EXIT_FAILED)
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2))
    else:
        for line in result.output:
            print(line)
    if result.exit_status != 0:
        sys.stderr.write(f"zynqmm install: install.sh failed with status {result.exit_status}\n")
    return 0 if result.exit_status == 0 else min(max(result.exit_status, 1), 255)


def run_status(args: argparse.Namespace) -> int:
    from board.deploy.status import local_status, remote_status, render
    try:
        if args.board:
            report = remote_status(_target(args), args.status_file)
        else:
            report = local_status(args.root, args.status_file)
    except ValueError as exc:
        return _fail("status", exc, EXIT_FAILED)
    except DeployError as exc:
        return _fail("status", exc, EXIT_FAILED)
    _emit(args, report.as_dict(), render(report))
    return 0 if report.runtime_state == "running" and not report.problems else EXIT_REFUSED

"""``zynqmm console``: the board's serial console.

Without script options it is an interactive pass-through (Ctrl-] quits).
With them it runs, in this order: stop U-Boot at the autoboot countdown
(--stop-uboot), the --expect/--send steps in the order given, log in
(--login/--password), run a command (--run) and print its output, exiting
with the command's exit status.

Exit status: the command's status with --run, otherwise 0; 1 when the
login is refused; 2 when the serial port cannot be opened or fails; 124
when something expected does not arrive within --timeout.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Callable

from board.console import script
from board.console.interactive import interact
from board.console.session import (
    ConsoleSession, ConsoleTimeout, LoginFailed, PortError, open_port,
)
from board.console.transcript import ConsoleLog

PASSWORD_ENV = "ZYNQMM_CONSOLE_PASSWORD"
EXIT_TIMEOUT = 124
EXIT_LOGIN = 1
EXIT_PORT = 2


class _Step(argparse.Action):
    """Keeps --expect and --send in one list, in command-line order."""

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        steps = list(getattr(namespace, "steps", None) or [])
        steps.append((self.const, value))
        namespace.steps = steps


def register(sub) -> None:
    p = sub.add_parser(
        "console",
        help="serial console of a board: interactive, logged, or scripted (login, run a command)",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True,
                   help="serial device (/dev/ttyUSB1) or pyserial URL (socket://host:port)")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    p.add_argument("--log", metavar="FILE",
                   help="append a timestamped transcript (< from board, > to board); "
                        "passwords are withheld")
    p.add_argument("--timeout", type=float, default=90.0, metavar="S",
                   help="longest wait for each expected thing, in seconds (default 90)")
    p.add_argument("--expect", action=_Step, const="expect", dest="steps", metavar="REGEX",
                   help="wait for REGEX (multi-line mode); repeatable, ordered with --send")
    p.add_argument("--send", action=_Step, const="send", dest="steps", metavar="TEXT",
                   help="send TEXT and Enter; repeatable, ordered with --expect")
    p.add_argument("--stop-uboot", action="store_true",
                   help="press a key at U-Boot's autoboot countdown and wait for its prompt")
    p.add_argument("--login", metavar="USER", help="log in on the Linux console as USER")
    p.add_argument("--password", metavar="PW",
                   help=f"password for --login (or set ${PASSWORD_ENV}, or be asked)")
    p.add_argument("--run", metavar="CMD",
                   help="run CMD in the shell, print its output, exit with its status")
    p.add_argument("--prompt", default=script.SHELL_PROMPT, metavar="REGEX",
                   help="shell prompt regex (default matches user@host:dir$ and #)")
    p.add_argument("--wake", type=float, default=script.DEFAULT_WAKE_S, metavar="S",
                   help="when waiting for a login or shell prompt, press Enter after S "
                        "seconds of silence (default %(default)s; 0: never)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="in scripted mode, copy everything the board prints to stderr")
    p.set_defaults(steps=[])


def is_scripted(args: argparse.Namespace) -> bool:
    return bool(args.steps or args.stop_uboot or args.login or args.run)


def run(args: argparse.Namespace, open_serial: Callable = open_port) -> int:
    """The command.  ``open_serial(port, baud)`` is replaceable so an
    emulated board can be powered on once the port is open."""
    password = None
    if args.login:
        password = args.password or os.environ.get(PASSWORD_ENV)
        if password is None and sys.stdin.isatty():
            password = getpass.getpass(f"password for {args.login}: ")
    log_file = None
    if args.log:
        try:
            log_file = open(args.log, "a", encoding="utf-8")
        except OSError as exc:
            return _fail(f"cannot write the log {args.log}: {exc.strerror}", EXIT_PORT)
    try:
        port = open_serial(args.port, args.baud)
    except PortError as exc:
        if log_file:
            log_file.close()
        return _fail(str(exc), EXIT_PORT)
    log = ConsoleLog(log_file) if log_file else None
    mirror = _mirror_to_stderr if args.verbose and is_scripted(args) else None
    session = ConsoleSession(port, log=log, mirror=mirror)
    if log:
        log.note(f"console on {args.port} at {args.baud} baud")
    if password:
        session.add_secret(password)
    try:
        if not is_scripted(args):
            return interact(session, banner=f"{args.port} at {args.baud} baud")
        return _run_script(session, args, password)
    except ConsoleTimeout as exc:
        return _fail(str(exc), EXIT_TIMEOUT)
    except LoginFailed as exc:
        return _fail(str(exc), EXIT_LOGIN)
    except PortError as exc:
        return _fail(str(exc), EXIT_PORT)
    finally:
        session.close()
        if log_file:
            log_file.close()


def _run_script(session: ConsoleSession, args: argparse.Namespace, password: str | None) -> int:
    wake = args.wake or None
    at_prompt = False
    if args.stop_uboot:
        script.stop_uboot(session, args.timeout)
    script.run_steps(session, args.steps, args.timeout)
    if args.login:
        script.login(session, args.login, password, args.timeout, args.prompt, wake)
        at_prompt = True
    if args.run is None:
        return 0
    if not at_prompt:
        script.wait_for_shell(session, args.timeout, args.prompt, wake)
    result = script.run_command(session, args.run, args.timeout, args.prompt)
    sys.stdout.write(result.output)
    sys.stdout.flush()
    return result.status


def _mirror_to_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"zynqmm console: {message}\n")
    return status


def main(argv: list[str] | None = None) -> int:
    """``python -m board.console``: the same command outside ``zynqmm``."""
    parser = argparse.ArgumentParser(prog="python -m board.console",
                                     description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130

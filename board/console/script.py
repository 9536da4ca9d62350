"""Scripted console work: stop U-Boot, log in, run a command and capture its
output and exit status, and user-given expect/send steps.

The prompts below match the Xilinx U-Boot builds, Ubuntu for Kria, PetaLinux
and the PYNQ image; pass your own regex where a board differs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from board.console.session import ConsoleSession, LoginFailed

AUTOBOOT = r"Hit any key to stop autoboot"
UBOOT_PROMPT = r"^(?:ZynqMP|Zynq|Versal)?(?:> |=> )$"
LOGIN_PROMPT = r"^[^\n]*login: *$"
PASSWORD_PROMPT = r"[Pp]assword: *$"
LOGIN_INCORRECT = r"Login incorrect"
SHELL_PROMPT = r"^[^\n]*[\w.-]+@[\w.-]+:[^\n]*[$#] $"

# Printed after the command so its status comes back in-band: the command
# line's own echo reads "__rc=$?", never "__rc=" followed by digits.
STATUS_MARK = "__rc="
_STATUS_RE = re.compile(re.escape(STATUS_MARK) + r"(\d+)\n")
_STATUS_ECHO = f"echo {STATUS_MARK}$?"

DEFAULT_WAKE_S = 3.0


@dataclass
class CommandResult:
    output: str
    status: int


def stop_uboot(session: ConsoleSession, timeout: float, prompt: str = UBOOT_PROMPT) -> None:
    """Catch the autoboot countdown, press a key, wait for U-Boot's prompt."""
    session.expect(AUTOBOOT, timeout, waiting_for="U-Boot's autoboot countdown "
                   "(\"Hit any key to stop autoboot\")")
    session.send("", enter=True)
    session.expect(prompt, timeout, waiting_for=f"the U-Boot prompt (/{prompt}/)")


def login(session: ConsoleSession, user: str, password: str | None, timeout: float,
          shell_prompt: str = SHELL_PROMPT, wake_after: float | None = DEFAULT_WAKE_S) -> None:
    """Log in on the Linux console and leave the session at the shell prompt.
    A console already at a shell prompt is taken as logged in."""
    index, _, _ = session.expect(
        [LOGIN_PROMPT, shell_prompt], timeout, wake_after=wake_after,
        waiting_for=f"the Linux login prompt (/{LOGIN_PROMPT}/)")
    if index == 1:
        return
    session.send(user)
    index, _, _ = session.expect(
        [PASSWORD_PROMPT, shell_prompt, LOGIN_INCORRECT], timeout,
        waiting_for="the password prompt")
    if index == 1:
        return
    if index == 0:
        session.send(password or "", secret=True)
        index, _, _ = session.expect(
            [shell_prompt, LOGIN_INCORRECT, LOGIN_PROMPT], timeout,
            waiting_for=f"the shell prompt after logging in (/{shell_prompt}/)")
        if index == 0:
            return
    raise LoginFailed(f"login as {user!r} refused by the board: Login incorrect")


def wait_for_shell(session: ConsoleSession, timeout: float, shell_prompt: str = SHELL_PROMPT,
                   wake_after: float | None = DEFAULT_WAKE_S) -> None:
    session.expect(shell_prompt, timeout, wake_after=wake_after,
                   waiting_for=f"a shell prompt (/{shell_prompt}/)")


def run_command(session: ConsoleSession, command: str, timeout: float,
                shell_prompt: str = SHELL_PROMPT) -> CommandResult:
    """Run ``command`` at a shell prompt (already consumed) and return what
    it printed between its echoed command line and its status, with its exit
    status; the session is left at the next prompt (consumed)."""
    session.send(f"{command}; {_STATUS_ECHO}")
    _, match, before = session.expect(
        _STATUS_RE, timeout, waiting_for=f"the end of {command!r} (its exit status)")
    session.expect(shell_prompt, timeout, waiting_for=f"the shell prompt after {command!r}")
    return CommandResult(output=_strip_echo(before), status=int(match.group(1)))


def _strip_echo(text: str) -> str:
    # The echoed command line ends with the status echo; without it (a
    # console with echo off) there is nothing to strip.
    at = text.rfind(_STATUS_ECHO)
    if at < 0:
        return text
    newline = text.find("\n", at)
    return "" if newline < 0 else text[newline + 1:]


def run_steps(session: ConsoleSession, steps: list[tuple[str, str]], timeout: float) -> None:
    """Ordered ``("expect", regex)`` / ``("send", text)`` steps."""
    for kind, value in steps:
        if kind == "expect":
            session.expect(value, timeout, waiting_for=f"/{value}/")
        else:
            session.send(value)

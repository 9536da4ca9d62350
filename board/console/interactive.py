"""Interactive pass-through between the local terminal and the board.

Keystrokes go to the board unchanged (the terminal is put in raw mode, so
Ctrl-C, arrows and tab completion reach the board's shell); the board's
output is written to stdout unchanged.  Ctrl-] ends the session and the
terminal settings are restored however it ends.  In the transcript, a line
typed while the board shows a password prompt is withheld.
"""
from __future__ import annotations

import os
import re
import select
import sys
import termios
import threading
import tty
from typing import BinaryIO

from board.console.script import PASSWORD_PROMPT
from board.console.session import ConsoleSession, PortError

EXIT_KEY = b"\x1d"          # Ctrl-], as telnet uses
EXIT_KEY_NAME = "Ctrl-]"
_ERASE = ("\x7f", "\b")
_PASSWORD_RE = re.compile(PASSWORD_PROMPT)


class _TypedLine:
    """Rebuilds what the user typed so the transcript gets whole lines."""

    def __init__(self, session: ConsoleSession) -> None:
        self.session = session
        self.text = ""

    def feed(self, keys: str) -> None:
        for ch in keys:
            if ch in "\r\n":
                self._emit()
            elif ch in _ERASE:
                self.text = self.text[:-1]
            else:
                self.text += ch

    def _emit(self) -> None:
        log = self.session.log
        if log:
            # The board does not echo a password, so the prompt is still the
            # last thing it printed when the user presses Enter.
            secret = bool(_PASSWORD_RE.search(self.session.current_line))
            log.sent(self.text, secret=secret)
        self.text = ""

    def flush(self) -> None:
        if self.text:
            self._emit()


def interact(session: ConsoleSession, stdin_fd: int | None = None,
             stdout: BinaryIO | None = None, stderr=None, banner: str = "") -> int:
    """Run until Ctrl-] (or end of input on a pipe).  Returns 0, or 2 when the
    serial port failed."""
    stdin_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    stdout = sys.stdout.buffer if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    session.keep_buffer = False
    saved = termios.tcgetattr(stdin_fd) if os.isatty(stdin_fd) else None
    stop = threading.Event()
    failures: list[PortError] = []

    def board_to_terminal() -> None:
        while not stop.is_set():
            try:
                data = session.receive()
            except PortError as exc:
                failures.append(exc)
                stop.set()
                return
            if data:
                stdout.write(data)
                stdout.flush()

    reader = threading.Thread(target=board_to_terminal, name="console-reader", daemon=True)
    typed = _TypedLine(session)
    try:
        if saved is not None:
            tty.setraw(stdin_fd)
        stderr.write(f"connected{' to ' + banner if banner else ''}; {EXIT_KEY_NAME} quits\r\n")
        stderr.flush()
        reader.start()
        while not stop.is_set():
            ready, _, _ = select.select([stdin_fd], [], [], 0.1)
            if not ready:
                continue
            keys = os.read(stdin_fd, 1024)
            if not keys:
                break
            quit_here = keys.find(EXIT_KEY)
            if quit_here >= 0:
                keys = keys[:quit_here]
            if keys:
                # Judge the prompt before the board can answer these keys.
                typed.feed(keys.decode("utf-8", errors="replace"))
                session.write_raw(keys)
            if quit_here >= 0:
                break
    except PortError as exc:
        failures.append(exc)
    finally:
        stop.set()
        if reader.is_alive():
            reader.join(timeout=2.0)
        typed.flush()
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
    if failures:
        stderr.write(f"\nzynqmm console: {failures[0]}\n")
        return 2
    stderr.write("\ndisconnected\n")
    return 0

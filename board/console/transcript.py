"""Timestamped console transcripts.

Every line gets the wall-clock time its first character arrived and a
direction mark: ``<`` came from the board, ``>`` was sent to it, ``#`` is a
note from the console tool itself.  Secrets (passwords) are never written:
a line sent as a secret is logged as ``[secret withheld]`` and any echo of a
registered secret coming back from the board is masked.
"""
from __future__ import annotations

import datetime as _dt
import threading
import time
from typing import Callable, TextIO

FROM_BOARD = "<"
TO_BOARD = ">"
NOTE = "#"
WITHHELD = "[secret withheld]"
MASK = "********"


def printable(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN`` so a transcript or
    an error message never moves the reader's cursor (U-Boot's countdown
    sends backspaces)."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\t" or (code >= 0x20 and code != 0x7F):
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}")
    return "".join(out)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


class ConsoleLog:
    """Writes a transcript to ``stream``; safe to feed from two threads (the
    interactive mode reads the board and the keyboard concurrently)."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.time) -> None:
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._secrets: list[str] = []
        self._partial = ""
        self._partial_started: float | None = None

    def add_secret(self, secret: str) -> None:
        with self._lock:
            if secret and secret not in self._secrets:
                self._secrets.append(secret)

    def received(self, text: str) -> None:
        """Text from the board, line endings already normalised to ``\\n``."""
        with self._lock:
            now = self._clock()
            while text:
                if self._partial_started is None:
                    self._partial_started = now
                line, newline, text = text.partition("\n")
                self._partial += line
                if not newline:
                    break
                self._write_line(self._partial_started, FROM_BOARD, self._partial)
                self._partial, self._partial_started = "", None

    def sent(self, text: str, secret: bool = False) -> None:
        with self._lock:
            self._flush_partial()
            self._write_line(self._clock(), TO_BOARD, WITHHELD if secret else text)

    def note(self, text: str) -> None:
        with self._lock:
            self._flush_partial()
            self._write_line(self._clock(), NOTE, text)

    def close(self) -> None:
        with self._lock:
            self._flush_partial()
            self._stream.flush()

    def _flush_partial(self) -> None:
        # A prompt has no newline; it is logged when something else happens
        # so the transcript keeps the order of events.
        if self._partial_started is not None:
            self._write_line(self._partial_started, FROM_BOARD, self._partial)
            self._partial, self._partial_started = "", None

    def _write_line(self, when: float, mark: str, text: str) -> None:
        stamp = _dt.datetime.fromtimestamp(when).isoformat(timespec="milliseconds")
        self._stream.write(f"{stamp} {mark} {printable(redact(text, self._secrets))}\n")
        self._stream.flush()

"""A console session on a serial port: receive, expect, send.

Received bytes are decoded as UTF-8 (bad bytes replaced), CR LF becomes LF,
and the text goes to three places: the buffer that :meth:`ConsoleSession.expect`
searches, the transcript, and the tail of recent lines quoted when a wait
times out.  Every wait is bounded by a timeout.
"""
from __future__ import annotations

import codecs
import re
import time
from collections import deque
from typing import Callable, Iterable, Pattern

import serial

from board.console.transcript import ConsoleLog, printable, redact

# Short enough that an expect notices its deadline promptly, long enough not
# to spin.
READ_SLICE_S = 0.05
TAIL_LINES = 20


class ConsoleError(Exception):
    """A console session could not do what was asked."""


class PortError(ConsoleError):
    """The serial port could not be opened or stopped working."""


class LoginFailed(ConsoleError):
    """The board refused the user name or password."""


class ConsoleTimeout(ConsoleError):
    """An expected pattern did not arrive in time; carries the last lines seen."""

    def __init__(self, waiting_for: str, timeout: float, last_lines: list[str]) -> None:
        self.waiting_for = waiting_for
        self.timeout = timeout
        self.last_lines = last_lines
        shown = "\n".join(f"  | {line}" for line in last_lines) or "  (nothing received)"
        super().__init__(
            f"timed out after {timeout:g} s waiting for {waiting_for}; "
            f"last {len(last_lines)} lines from the board:\n{shown}"
        )


def open_port(port: str, baud: int = 115200) -> serial.SerialBase:
    """Open a device path or a pyserial URL (``socket://host:port`` for a
    console server, ``rfc2217://...``); raise :class:`PortError` with the
    reason rather than pyserial's exception."""
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=READ_SLICE_S,
                                     write_timeout=5.0)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortError(f"cannot open serial port {port}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    # pyserial nests the OS error inside its own message ("could not open
    # port X: [Errno 2] No such file or directory: 'X'"): keep the OS text.
    nested = re.search(r"\[Errno \d+\] ([^:]+)", text)
    if nested:
        text = nested.group(1)
    if getattr(exc, "errno", None) == 13 or "Permission denied" in text:
        text += " (is your user in the dialout group?)"
    return text


class ConsoleSession:
    def __init__(self, port, log: ConsoleLog | None = None, tail_lines: int = TAIL_LINES,
                 keep_buffer: bool = True, mirror: Callable[[str], None] | None = None) -> None:
        self.port = port
        self.log = log
        self.keep_buffer = keep_buffer
        self.mirror = mirror
        self.buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held_cr = False
        self._lines: deque[str] = deque(maxlen=tail_lines)
        self._partial = ""
        self._secrets: list[str] = []
        self.last_received_at = time.monotonic()

    # -- receiving ---------------------------------------------------------
    def receive(self) -> bytes:
        """Read what has arrived (waiting at most one short slice) and take
        it in; returns the raw bytes for callers that pass them through."""
        try:
            data = self.port.read(self.port.in_waiting or 1)
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"serial port stopped working: {_reason(exc)}") from None
        if data:
            self.last_received_at = time.monotonic()
            self._take_in(data)
        return data

    def _take_in(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if self._held_cr:
            text = "\r" + text
            self._held_cr = False
        # A CR at the end of a read may be the first half of a CR LF.
        if text.endswith("\r"):
            text, self._held_cr = text[:-1], True
        text = text.replace("\r\n", "\n")
        if not text:
            return
        if self.keep_buffer:
            self.buffer += text
        if self.log:
            self.log.received(text)
        if self.mirror:
            self.mirror(text)
        *complete, self._partial = (self._partial + text).split("\n")
        self._lines.extend(complete)

    @property
    def current_line(self) -> str:
        """The unfinished line the board printed last (usually a prompt)."""
        return self._partial

    def tail(self) -> list[str]:
        lines = list(self._lines)
        if self._partial:
            lines.append(self._partial)
        return [printable(redact(line, self._secrets)) for line in lines[-self._lines.maxlen:]]

    def expect(self, patterns: str | Pattern | Iterable[str | Pattern], timeout: float,
               waiting_for: str | None = None, wake_after: float | None = None
               ) -> tuple[int, re.Match, str]:
        """Wait until one of ``patterns`` (regexes, multi-line mode) matches
        the received text.  Returns (index of the pattern, match, text before
        the match); everything up to the end of the match is consumed.

        ``wake_after``: when the board has been silent that long, press Enter
        (a board that booted before we attached shows no prompt until then).
        """
        if isinstance(patterns, (str, re.Pattern)):
            patterns = [patterns]
        compiled = [p if isinstance(p, re.Pattern) else re.compile(p, re.MULTILINE)
                    for p in patterns]
        if waiting_for is None:
            waiting_for = " or ".join(f"/{p.pattern}/" for p in compiled)
        deadline = time.monotonic() + timeout
        last_wake = time.monotonic()
        while True:
            best = None
            for index, pattern in enumerate(compiled):
                match = pattern.search(self.buffer)
                if match and (best is None or match.start() < best[1].start()):
                    best = (index, match)
            if best:
                index, match = best
                before = self.buffer[:match.start()]
                self.buffer = self.buffer[match.end():]
                return index, match, before
            now = time.monotonic()
            if now >= deadline:
                if self.log:
                    self.log.note(f"timed out waiting for {waiting_for}")
                raise ConsoleTimeout(waiting_for, timeout, self.tail())
            if (wake_after is not None and now - self.last_received_at >= wake_after
                    and now - last_wake >= wake_after):
                last_wake = now
                self._write("\r")
                if self.log:
                    self.log.note("board silent: pressed Enter")
            self.receive()

    # -- sending -----------------------------------------------------------
    def send(self, text: str, secret: bool = False, enter: bool = True) -> None:
        """Send ``text`` (then Enter, as a terminal sends it: CR).  A secret
        is withheld from the transcript and masked if the board echoes it."""
        if secret:
            self.add_secret(text)
        if self.log:
            self.log.sent(text, secret=secret)
        self._write(text + ("\r" if enter else ""))

    def add_secret(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets.append(secret)
        if self.log:
            self.log.add_secret(secret)

    def write_raw(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"serial port stopped working: {_reason(exc)}") from None

    def _write(self, text: str) -> None:
        self.write_raw(text.encode("utf-8"))

    def close(self) -> None:
        try:
            self.port.close()
        finally:
            if self.log:
                self.log.close()

"""systemd's service notification protocol, for the runtime under
``Type=notify`` and ``WatchdogSec=``.

systemd passes the path of a datagram socket in ``$NOTIFY_SOCKET`` (a file
path, or ``@name`` for the abstract namespace); each datagram is a set of
newline-separated ``KEY=VALUE`` assignments: ``READY=1`` once started,
``WATCHDOG=1`` to feed the watchdog, ``STATUS=...`` free text for
``systemctl status``, ``STOPPING=1`` on the way out.  ``$WATCHDOG_USEC`` gives
the watchdog interval, and ``$WATCHDOG_PID`` the process it is meant for.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing, so the
runtime calls these unconditionally.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Mapping


class Notifier:
    """Sends notifications to the service manager, if there is one."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        environ = os.environ if environ is None else environ
        self.address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        self.errors = 0
        self.last_error: str | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **assignments: str | int) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; False when there is no
        service manager or sending failed (counted, never raised: a
        notification must not take the runtime down)."""
        if self.address is None:
            return False
        for key, value in assignments.items():
            if "\n" in str(value) or "=" in key:
                raise ValueError(f"{key}={value!r}: notification fields are single lines")
        payload = "\n".join(f"{key}={value}" for key, value in assignments.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self.address)
        except OSError as exc:
            self.errors += 1
            self.last_error = f"{exc.strerror or exc}"
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # systemd only ever passes these two forms


def watchdog_interval_s(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """The watchdog interval systemd expects pings within, or None when no
    watchdog is armed for this process."""
    environ = os.environ if environ is None else environ
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return None
    return usec / 1e6


class WatchdogFeeder:
    """Pings the watchdog at half its interval when :meth:`tick` is called
    from the runtime's main loop: if the loop stalls, pings stop and systemd
    restarts the service (a background thread would keep pinging a dead loop)."""

    def __init__(self, notifier: Notifier, interval_s: float | None, clock=time.monotonic):
        self.notifier = notifier
        self.period_s = interval_s / 2 if interval_s else None
        self.clock = clock
        self.next_due = clock()
        self.pings = 0

    def tick(self) -> bool:
        """Ping if one is due; True when a ping was sent."""
        if self.period_s is None or not self.notifier.enabled:
            return False
        now = self.clock()
        if now < self.next_due:
            return False
        self.next_due = now + self.period_s
        if self.notifier.watchdog():
            self.pings += 1
            return True
        return False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "WatchdogFeeder":
        return cls(Notifier(environ), watchdog_interval_s(environ))

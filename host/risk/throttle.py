"""Message-rate throttles over sliding windows on a monotonic clock.

A :class:`SlidingWindow` of ``limit`` events per ``window_ns`` admits an
event at time t when fewer than ``limit`` admitted events lie in the
half-open interval ``(t - window_ns, t]``: an event exactly one window old
has expired.  Only admitted events count, so a refused request does not use
up the capacity it was refused for.  Times must not go backwards (the clock
is monotonic); a time earlier than the last one is treated as the last one.
"""
from __future__ import annotations

from collections import deque

NS_PER_SECOND = 1_000_000_000


class SlidingWindow:
    __slots__ = ("limit", "window_ns", "_times", "_latest")

    def __init__(self, limit: int, window_ns: int):
        if limit <= 0 or window_ns <= 0:
            raise ValueError(f"a window needs a positive limit and length, got {limit}, {window_ns}")
        self.limit = limit
        self.window_ns = int(window_ns)
        self._times: deque[int] = deque()
        self._latest = 0

    def _expire(self, now: int) -> int:
        now = max(now, self._latest)
        horizon = now - self.window_ns
        times = self._times
        while times and times[0] <= horizon:
            times.popleft()
        return now

    def allows(self, now: int) -> bool:
        self._expire(now)
        return len(self._times) < self.limit

    def add(self, now: int) -> None:
        now = self._expire(now)
        self._latest = now
        self._times.append(now)

    def count(self, now: int) -> int:
        """Admitted events in the window ending at ``now``."""
        self._expire(now)
        return len(self._times)


class RateLimit:
    """A per-second window and a longer window on the same kind of message."""

    __slots__ = ("name", "windows")

    def __init__(self, name: str, per_second: int | None, per_window: int | None,
                 window_ns: int):
        self.name = name
        self.windows = [w for w in (
            SlidingWindow(per_second, NS_PER_SECOND) if per_second else None,
            SlidingWindow(per_window, window_ns) if per_window else None,
        ) if w is not None]

    def allows(self, now: int) -> bool:
        return all(w.allows(now) for w in self.windows)

    def add(self, now: int) -> None:
        for window in self.windows:
            window.add(now)

    def describe(self, now: int) -> str:
        return ", ".join(f"{w.count(now)}/{w.limit} per {w.window_ns / NS_PER_SECOND:g} s"
                         for w in self.windows)

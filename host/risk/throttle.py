"""Message-rate throttles over sliding windows on a monotonic clock.

A :class:`SlidingWindow` of ``limit`` events per ``window_ns`` admits an
event at time t when fewer than ``limit`` admitted events lie in the
half-open interval ``(t - window_ns, t]``: an event exactly one window old
has expired.  Only admitted events count, so a refused request does not use
up the capacity it was refused for.  Times must not go backwards (the clock
is monotonic); a time earlier than the last one is treated as the last one.

The window keeps the times of its last ``limit`` events in a ring.  Since
times never decrease, fewer than ``limit`` events lie in the window exactly
when the oldest of those (the slot the next event overwrites) has expired,
so the decision is one comparison whatever the rate.  Events counted without
being admitted (the risk guard's own pulls) can push more than ``limit``
into a window; the times they push out of the ring while still inside it
are kept aside so that :meth:`SlidingWindow.count` stays exact.
"""
from __future__ import annotations

from collections import deque

NS_PER_SECOND = 1_000_000_000


class SlidingWindow:
    __slots__ = ("limit", "window_ns", "_ring", "_head", "_latest", "_overflow")

    def __init__(self, limit: int, window_ns: int):
        if limit <= 0 or window_ns <= 0:
            raise ValueError(f"a window needs a positive limit and length, got {limit}, {window_ns}")
        self.limit = limit
        self.window_ns = int(window_ns)
        # Grows to ``limit`` entries, then ``_head`` is the oldest (next to go).
        self._ring: list[int] = []
        self._head = 0
        self._latest = 0
        self._overflow: deque[int] = deque()

    def allows(self, now: int) -> bool:
        ring = self._ring
        if len(ring) < self.limit:
            return True
        if now < self._latest:
            now = self._latest
        return ring[self._head] <= now - self.window_ns

    def add(self, now: int) -> None:
        if now < self._latest:
            now = self._latest
        self._latest = now
        ring = self._ring
        if len(ring) < self.limit:
            ring.append(now)
            return
        head = self._head
        pushed_out = ring[head]
        if pushed_out > now - self.window_ns:
            self._overflow.append(pushed_out)
        ring[head] = now
        head += 1
        self._head = 0 if head == self.limit else head

    def count(self, now: int) -> int:
        """Admitted (and otherwise counted) events in the window ending at ``now``."""
        horizon = max(now, self._latest) - self.window_ns
        overflow = self._overflow
        while overflow and overflow[0] <= horizon:
            overflow.popleft()
        return sum(1 for t in self._ring if t > horizon) + len(overflow)


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
        for window in self.windows:
            if not window.allows(now):
                return False
        return True

    def add(self, now: int) -> None:
        for window in self.windows:
            window.add(now)

    def describe(self, now: int) -> str:
        return ", ".join(f"{w.count(now)}/{w.limit} per {w.window_ns / NS_PER_SECOND:g} s"
                         for w in self.windows)

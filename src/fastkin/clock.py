"""Engine clocks. Every time-dependent rule (quotas, arrival timestamps, AT_TIMESTAMP, retention,
iterator expiry) reads the engine's clock and nothing else.

A clock is any zero-argument callable returning epoch seconds as a float.
"""
from __future__ import annotations

import threading
import time


class RealClock:
    """Wall-clock time. It looks up ``time.time`` at every call, so freezegun & co. work."""

    def __call__(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "RealClock()"


class VirtualClock:
    """Engine time advanced by hand: an hour of traffic replays in as long as the work takes.

    >>> clock = VirtualClock(start=1_700_000_000.0)
    >>> clock.advance(1.5); clock()
    1700000001.5
    """

    __slots__ = ("_now", "_lock")

    def __init__(self, start: float | None = None) -> None:
        self._now = float(time.time() if start is None else start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    now = __call__

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, t: float) -> float:
        with self._lock:
            if t < self._now:
                raise ValueError(f"a clock cannot go back: set({t}) while it reads {self._now}")
            self._now = float(t)
            return self._now

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now!r})"

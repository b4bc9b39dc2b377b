"""Engine clocks. Every time-dependent rule (quotas, arrival timestamps, AT_TIMESTAMP, retention,
iterator expiry) reads the engine's clock and nothing else.

A clock is any zero-argument callable returning epoch seconds as a float.
"""
from __future__ import annotations

import threading
import time
import weakref


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

    __slots__ = ("_now", "_lock", "_observers")

    def __init__(self, start: float | None = None) -> None:
        self._now = float(time.time() if start is None else start)
        self._lock = threading.Lock()
        self._observers: list = []

    def subscribe(self, callback) -> None:
        """Call ``callback(now)`` after every advance or set (a bound method is held weakly: its object may go).
        Channels deliver from here, so engine time passing a buffer's deadline writes its object at once."""
        ref = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else (lambda: callback)
        with self._lock:
            self._observers.append(ref)

    def _notify(self, now: float) -> float:
        if self._observers:
            for ref in list(self._observers):
                fn = ref()
                if fn is None:
                    with self._lock:
                        if ref in self._observers:
                            self._observers.remove(ref)
                else:
                    fn(now)
        return now

    def __call__(self) -> float:
        return self._now

    now = __call__

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        with self._lock:
            self._now += seconds
            now = self._now
        return self._notify(now)

    def set(self, t: float) -> float:
        with self._lock:
            if t < self._now:
                raise ValueError(f"a clock cannot go back: set({t}) while it reads {self._now}")
            self._now = float(t)
            now = self._now
        return self._notify(now)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now!r})"

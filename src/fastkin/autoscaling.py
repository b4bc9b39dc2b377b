"""On-demand capacity: a stream in ON_DEMAND mode scales itself in engine time, deterministically.

Policy (every constant is a class attribute of OnDemandScaler; the README documents them):

- Every EVAL_INTERVAL (60 s) of engine time after the stream became on-demand, the scaler looks at
  the write load each open shard was *offered* (accepted plus throttled bytes) over the last interval.
- Hot shards: a shard offered more than SPLIT_BYTES_PER_SECOND (500 KiB/s) over a whole interval is
  split at the middle of its hash range (a shard younger than one interval is not judged yet).
- Headroom: the stream keeps capacity for HEADROOM (2x) the peak write rate it was offered in the
  trailing PEAK_WINDOW (30 days), and never fewer than MIN_SHARDS (4) shards nor less than its warm
  throughput. Below that, the busiest shards are split.
- Each evaluation at most doubles the shard count, and the stream never holds more than twice its
  headroom target (so a single hot key, which splitting cannot spread, does not split forever).
- Idle capacity is released slowly: once per RELEASE_INTERVAL (1 h), while the stream has more shards
  than its headroom target, up to RELEASE_FRACTION (10 %, at least one) of the excess is removed by
  merging adjacent pairs whose combined offered load is under the hot-shard threshold.

Everything is driven by the stream's once-per-second tick, so it is deterministic under a VirtualClock.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from . import topology
from .errors import LimitExceededException
from .metrics import IN_BYTES, W_THR_BYTES

MiB = 1024 * 1024


class OnDemandScaler:
    EVAL_INTERVAL = 60.0
    SPLIT_BYTES_PER_SECOND = 500 * 1024
    HEADROOM = 2.0
    PEAK_WINDOW = 30 * 86_400
    MIN_SHARDS = 4
    RELEASE_INTERVAL = 3600.0
    RELEASE_FRACTION = 0.10

    def __init__(self, stream, now: float) -> None:
        self.stream = stream
        self.since = now
        self.next_eval = now + self.EVAL_INTERVAL
        self.window_start = now
        self.next_release = now + self.RELEASE_INTERVAL
        self._window = np.zeros(16, dtype=np.int64)        # offered bytes per shard index in this interval
        self._minute_peaks: deque[tuple[int, float]] = deque()   # (minute, max offered bytes/s in it)
        self.events: list[tuple[float, str, int]] = []      # (engine time, "split"/"merge", open shards after)
        stream.metrics.listeners.append(self.observe)

    def detach(self) -> None:
        if self.observe in self.stream.metrics.listeners:
            self.stream.metrics.listeners.remove(self.observe)

    # -- observation (called with every second's counter deltas) ----------------------------------
    def observe(self, second: int, indices: list[int], delta: np.ndarray) -> None:
        offered = delta[:, IN_BYTES] + delta[:, W_THR_BYTES]
        if indices[-1] >= len(self._window):
            grown = np.zeros(max(2 * len(self._window), indices[-1] + 1), dtype=np.int64)
            grown[:len(self._window)] = self._window
            self._window = grown
        self._window[np.asarray(indices)] += offered
        rate = float(offered.sum())
        minute = second - second % 60
        if self._minute_peaks and self._minute_peaks[-1][0] == minute:
            if rate > self._minute_peaks[-1][1]:
                self._minute_peaks[-1] = (minute, rate)
        else:
            self._minute_peaks.append((minute, rate))
        while self._minute_peaks and self._minute_peaks[0][0] < second - self.PEAK_WINDOW:
            self._minute_peaks.popleft()

    def peak_bytes_per_second(self) -> float:
        return max((r for _, r in self._minute_peaks), default=0.0)

    def target_shards(self) -> int:
        warm = self.stream.warm_target or 0
        need = self.HEADROOM * self.peak_bytes_per_second() / self.stream.engine.limits.write_bytes_per_second
        return max(self.MIN_SHARDS, math.ceil(need),
                   math.ceil(warm * MiB / self.stream.engine.limits.write_bytes_per_second))

    # -- decisions ----------------------------------------------------------------------------------------
    def evaluate(self, now: float) -> None:
        # both decisions judge the interval that just closed (measured before either changes anything)
        rates = self._rates(now) if now >= self.next_eval or now >= self.next_release else None
        if now >= self.next_eval:
            self._scale_up(now, rates)
            self.next_eval = now + self.EVAL_INTERVAL - (now - self.next_eval) % self.EVAL_INTERVAL
        if now >= self.next_release:
            self._release(now, rates)
            self.next_release = now + self.RELEASE_INTERVAL
        if rates is not None:
            self.window_start = now
            self._window[:] = 0

    def _rates(self, now: float):
        span = max(now - self.window_start, 1e-9)
        out = []
        for info in self.stream.open_shards():
            if info.created > self.window_start:          # not judged before a whole interval
                continue
            b = self._window[info.index] if info.index < len(self._window) else 0
            out.append((b / span, info))
        return out

    def _scale_up(self, now: float, measured) -> None:
        stream = self.stream
        open_now = len(stream.open_shards())
        target = self.target_shards()
        cap = max(2 * target, self.MIN_SHARDS)
        budget = min(open_now, cap - open_now)             # at most double, never past the cap
        if budget <= 0:
            return
        rates = sorted(measured, key=lambda x: (-x[0], x[1].index))
        chosen = [info for r, info in rates if r > self.SPLIT_BYTES_PER_SECOND][:budget]
        short = target - open_now - len(chosen)
        if short > 0:                                      # headroom: split the busiest (then widest) others
            rest = [info for _, info in sorted(rates, key=lambda x: (-x[0], -(x[1].end_hash - x[1].start_hash)))
                    if info not in chosen]
            chosen += rest[:min(short, budget - len(chosen))]
        for info in sorted(chosen, key=lambda i: i.index):
            if info.end_hash - info.start_hash < 4:
                continue
            mid = (info.start_hash + info.end_hash + 1) // 2
            try:
                topology.split_shard(stream, info.shard_id, str(mid), internal=True)
            except LimitExceededException:
                break
            self.events.append((now, "split", len(stream.open_shards())))

    def _release(self, now: float, measured) -> None:
        stream = self.stream
        open_now = len(stream.open_shards())
        target = self.target_shards()
        excess = open_now - target
        if excess <= 0:
            return
        merges = max(1, int(excess * self.RELEASE_FRACTION))
        rate = {info.index: r for r, info in measured}
        shards = sorted(stream.open_shards(), key=lambda i: i.start_hash)
        i = 0
        while i + 1 < len(shards) and merges > 0:
            a, b = shards[i], shards[i + 1]
            if a.index in rate and b.index in rate and rate[a.index] + rate[b.index] < self.SPLIT_BYTES_PER_SECOND:
                topology.merge_shards(stream, a.shard_id, b.shard_id, internal=True)
                self.events.append((now, "merge", len(stream.open_shards())))
                merges -= 1
                i += 2
            else:
                i += 1

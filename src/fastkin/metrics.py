"""CloudWatch-like metrics per stream and per shard, at 1-second and 1-minute resolution, in engine time.

The hot path only adds to per-shard counters in the core (a few integer adds per record, in C).
Once per engine-second of I/O the stream reads those counters for all its shards (one core call,
a numpy array) and files the differences under the second in which that I/O happened: between two
reads every call happened within one engine-second, so nothing is misfiled.

Stream-level metrics are always recorded; shard-level ones only for the metrics named by
EnableEnhancedMonitoring, as on AWS.
"""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np

from . import errors as E
from ._protocols import (  # core counter columns: StreamCore.counters()' layout is defined in _protocols
    C_AGE_MAX as AGE_MAX,
    C_GET_CALLS as GET_CALLS,
    C_IN_BYTES as IN_BYTES,
    C_IN_RECORDS as IN_RECORDS,
    C_OUT_BYTES as OUT_BYTES,
    C_OUT_RECORDS as OUT_RECORDS,
    C_PR_RECORDS as PR_RECORDS,
    C_PR_THROTTLED as PR_THROTTLED,
    C_R_THR_CALLS as R_THR_CALLS,
    C_W_THR_BYTES as W_THR_BYTES,
    C_W_THR_RECORDS as W_THR_RECORDS,
    NCTR,
)

# stream-level metrics: name -> (statistic used to roll seconds into minutes)
STREAM_METRICS = {
    "IncomingBytes": "Sum",
    "IncomingRecords": "Sum",
    "PutRecord.Success": "Sum",
    "PutRecords.Records": "Sum",
    "PutRecords.SuccessfulRecords": "Sum",
    "PutRecords.FailedRecords": "Sum",
    "PutRecords.ThrottledRecords": "Sum",
    "WriteProvisionedThroughputExceeded": "Sum",
    "ReadProvisionedThroughputExceeded": "Sum",
    "GetRecords.Bytes": "Sum",
    "GetRecords.Records": "Sum",
    "GetRecords.Success": "Sum",
    "GetRecords.IteratorAgeMilliseconds": "Maximum",
    "OpenShardCount": "Maximum",
    "OfferedBytes": "Sum",        # fastkin extra: accepted + throttled write bytes (the offered load)
}
SHARD_METRICS = {
    "IncomingBytes": (IN_BYTES, "Sum"),
    "IncomingRecords": (IN_RECORDS, "Sum"),
    "OutgoingBytes": (OUT_BYTES, "Sum"),
    "OutgoingRecords": (OUT_RECORDS, "Sum"),
    "WriteProvisionedThroughputExceeded": (W_THR_RECORDS, "Sum"),
    "ReadProvisionedThroughputExceeded": (R_THR_CALLS, "Sum"),
    "IteratorAgeMilliseconds": (AGE_MAX, "Maximum"),
}
SHARD_LEVEL_NAMES = list(SHARD_METRICS)
_S = {name: i for i, name in enumerate(STREAM_METRICS)}
_MAXCOLS = np.array([STREAM_METRICS[n] == "Maximum" for n in STREAM_METRICS])


class StreamMetrics:
    """Metric series of one stream. Retention: ``second_retention`` seconds of 1-second points and
    ``minute_retention`` seconds of 1-minute points (shard level: a tenth of each, at least 10 minutes)."""

    def __init__(self, stream, second_retention: int = 3600, minute_retention: int = 15 * 86_400) -> None:
        self.stream = stream
        self.second_retention = second_retention
        self.minute_retention = minute_retention
        self.enhanced: list[str] = []
        self._prev = np.zeros((16, NCTR), dtype=np.uint64)   # row = shard index: counters at the last read
        self._window = math.floor(stream.created)          # the engine-second the current I/O belongs to
        self._seconds: dict[int, np.ndarray] = {}
        self._minutes: dict[int, np.ndarray] = {}
        self._shard_seconds: dict[int, tuple[list[int], np.ndarray]] = {}
        self._shard_minutes: dict[int, dict[int, np.ndarray]] = {}
        self.listeners: list = []      # callables(second, indices, delta rows) (the on-demand scaler)
        self._open_max = 0             # most open shards seen in the current window
        self._indices: list[int] = []   # sorted shard indices in the core, for topology_version:
        self._rows = np.zeros(0, dtype=np.int64)
        self._indices_version = -1

    # -- collection -------------------------------------------------------------------------------------
    def roll(self, now: float) -> None:
        """File everything counted so far under the current window's second, then start the window of ``now``."""
        self.flush()
        self._window = math.floor(now)
        self._open_max = len(self.stream.open_shards())

    def rebase(self) -> None:
        """Take the core's counters as they are now as the last read: records put back from a data directory
        (fastkin.durable) are not I/O of this second."""
        with self.stream._lock:
            indices = sorted(self.stream.core.shards)
            if not indices:
                return
            if indices[-1] >= len(self._prev):
                grown = np.zeros((max(2 * len(self._prev), indices[-1] + 1), NCTR), dtype=np.uint64)
                grown[:len(self._prev)] = self._prev
                self._prev = grown
            self._prev[np.asarray(indices)] = self.stream.core.counters(indices)

    def flush(self) -> None:
        with self.stream._lock:                 # tick() files under the same lock: nothing is filed twice
            self._flush()

    def _flush(self) -> None:
        stream = self.stream
        core = stream.core
        if self._indices_version != stream.topology_version:
            self._indices = sorted(core.shards)
            self._rows = np.asarray(self._indices)
            self._indices_version = stream.topology_version
        indices = self._indices
        if not indices:
            return
        cur = core.counters(indices, reset_age=True)
        if indices[-1] >= len(self._prev):
            grown = np.zeros((max(2 * len(self._prev), indices[-1] + 1), NCTR), dtype=np.uint64)
            grown[:len(self._prev)] = self._prev
            self._prev = grown
        rows = self._rows
        delta = (cur - self._prev[rows]).astype(np.int64)
        delta[:, AGE_MAX] = cur[:, AGE_MAX].astype(np.int64)
        self._prev[rows] = cur
        sec = self._window
        if not delta.any() and sec in self._seconds:
            return
        tot = delta.sum(axis=0)
        put_n, put_thr = tot[PR_RECORDS], tot[PR_THROTTLED]
        row = np.zeros(len(STREAM_METRICS), dtype=np.float64)
        row[_S["IncomingBytes"]] = tot[IN_BYTES]
        row[_S["IncomingRecords"]] = tot[IN_RECORDS]
        row[_S["PutRecords.Records"]] = put_n
        row[_S["PutRecords.ThrottledRecords"]] = put_thr
        row[_S["PutRecords.SuccessfulRecords"]] = put_n - put_thr
        row[_S["PutRecord.Success"]] = tot[IN_RECORDS] - (put_n - put_thr)
        row[_S["WriteProvisionedThroughputExceeded"]] = tot[W_THR_RECORDS]
        row[_S["ReadProvisionedThroughputExceeded"]] = tot[R_THR_CALLS]
        row[_S["GetRecords.Bytes"]] = tot[OUT_BYTES]
        row[_S["GetRecords.Records"]] = tot[OUT_RECORDS]
        row[_S["GetRecords.Success"]] = tot[GET_CALLS]
        row[_S["GetRecords.IteratorAgeMilliseconds"]] = delta[:, AGE_MAX].max()
        row[_S["OpenShardCount"]] = max(self._open_max, len(stream.open_shards()))
        row[_S["OfferedBytes"]] = tot[IN_BYTES] + tot[W_THR_BYTES]
        self._add(self._seconds, sec, row)
        self._add(self._minutes, sec - sec % 60, row)
        if self.enhanced:
            old = self._shard_seconds.get(sec)
            if old is not None and old[0] == indices:
                merged = old[1] + delta
                merged[:, AGE_MAX] = np.maximum(old[1][:, AGE_MAX], delta[:, AGE_MAX])
                self._shard_seconds[sec] = (indices, merged)
            else:
                self._shard_seconds[sec] = (indices, delta)
            mins = self._shard_minutes.setdefault(sec - sec % 60, {})
            for i, r in zip(indices, delta):
                m = mins.get(i)
                if m is None:
                    mins[i] = r.copy()
                else:
                    age = max(m[AGE_MAX], r[AGE_MAX])
                    m += r
                    m[AGE_MAX] = age
        for listener in self.listeners:
            listener(sec, indices, delta)
        self._expire(sec)

    @staticmethod
    def _add(table: dict, key: int, row: np.ndarray) -> None:
        old = table.get(key)
        if old is None:
            table[key] = row.copy()
        else:
            table[key] = np.where(_MAXCOLS, np.maximum(old, row), old + row)

    def _expire(self, sec: int) -> None:
        for table, keep in ((self._seconds, self.second_retention), (self._minutes, self.minute_retention),
                            (self._shard_seconds, max(600, self.second_retention // 10)),
                            (self._shard_minutes, max(600, self.minute_retention // 10))):
            # keys are filed in time order, so the first one is the oldest: O(1) when nothing expires
            while table and next(iter(table)) < sec - keep:
                del table[next(iter(table))]

    def note_open_shards(self, n: int) -> None:
        """A topology change inside the current window: OpenShardCount is the window's maximum."""
        self._open_max = max(self._open_max, n)

    # -- enhanced monitoring -------------------------------------------------------------------------------
    def set_enhanced(self, metrics: list[str]) -> None:
        self.flush()
        self.enhanced = [m for m in SHARD_LEVEL_NAMES if m in metrics]

    # -- reading ------------------------------------------------------------------------------------------
    def series(self, metric: str, resolution: int = 60, shard_id: str | None = None, start: float | None = None,
               end: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(timestamps, values) at ``resolution`` 1 or 60 seconds between start and end (engine epoch seconds),
        dense: periods without data are 0 (OpenShardCount carries forward)."""
        if resolution not in (1, 60):
            raise E.InvalidArgumentException(f"resolution must be 1 or 60 seconds, got {resolution}")
        self.flush()
        now = self.stream.engine.clock()
        t0 = math.floor(self.stream.created if start is None else start)
        t1 = math.floor(now if end is None else end)
        t0 -= t0 % resolution
        times = np.arange(t0, t1 + 1, resolution, dtype=np.int64)
        vals = np.zeros(len(times), dtype=np.float64)
        if shard_id is None:
            if metric not in STREAM_METRICS:
                raise E.InvalidArgumentException(f"Unknown stream metric {metric}; known: {', '.join(STREAM_METRICS)}")
            col = _S[metric]
            table = self._seconds if resolution == 1 else self._minutes
            for i, t in enumerate(times):
                r = table.get(int(t))
                if r is not None:
                    vals[i] = r[col]
            if metric == "OpenShardCount":
                last = float(len(self.stream.open_shards()))
                filled = np.where(vals > 0, vals, np.nan)
                if len(filled) and np.isnan(filled[0]):
                    filled[0] = vals[vals > 0][0] if (vals > 0).any() else last
                idx = np.where(~np.isnan(filled), np.arange(len(filled)), 0)
                np.maximum.accumulate(idx, out=idx)
                vals = filled[idx]
            return times, vals
        if metric not in self.enhanced:
            raise E.InvalidArgumentException(
                f"Shard-level metric {metric} is not enabled for stream {self.stream.name}; "
                "call enable_enhanced_monitoring first.")
        index = self.stream.shard(shard_id).index
        col = SHARD_METRICS[metric][0]
        for i, t in enumerate(times):
            if resolution == 1:
                ent = self._shard_seconds.get(int(t))
                if ent is not None and index in ent[0]:
                    vals[i] = ent[1][ent[0].index(index), col]
            else:
                m = self._shard_minutes.get(int(t), {}).get(index)
                if m is not None:
                    vals[i] = m[col]
        return times, vals

    def table(self, resolution: int = 60, start: float | None = None, end: float | None = None) -> dict:
        """Every stream-level metric as dense columns: {"Timestamp": [...], metric: [...]}."""
        cols: dict = {}
        for name in STREAM_METRICS:
            t, v = self.series(name, resolution, start=start, end=end)
            cols.setdefault("Timestamp", t.tolist())
            cols[name] = v.tolist()
        return cols

    def to_csv(self, path_or_file=None, resolution: int = 60) -> str:
        cols = self.table(resolution)
        buf = io.StringIO()
        w = csv.writer(buf)
        names = list(cols)
        w.writerow(names)
        for row in zip(*(cols[n] for n in names)):
            w.writerow([int(row[0])] + [int(x) if float(x).is_integer() else x for x in row[1:]])
        text = buf.getvalue()
        if path_or_file is not None:
            with open(path_or_file, "w", newline="") as f:
                f.write(text)
        return text

    def to_json(self, path_or_file=None, resolution: int = 60) -> str:
        text = json.dumps({"StreamName": self.stream.name, "Resolution": resolution, **self.table(resolution)})
        if path_or_file is not None:
            with open(path_or_file, "w") as f:
                f.write(text)
        return text


"""The capacity simulator: a scenario of streams, producers, consumers and timed actions, run through
the real engine on a virtual clock, then a summary, a timeline CSV and a PNG plot.

    from fastkin.sim import run
    result = run("scenario.toml")              # or a dict, or builtin("aws-on-demand-blog")
    result.column("accepted_bytes_per_s")      # numpy array, one value per second of the timeline

Command line: ``python -m fastkin simulate SCENARIO.toml`` or ``--builtin aws-on-demand-blog``.

How it runs (every ``step`` engine-seconds, 0.1 s by default):

- timed actions that are due are applied through the engine's own API (update_stream_mode,
  update_shard_count, split_shard, merge_shards); one that fails is recorded with its error;
- each producer sends the records its offered load asks for in this step (fractions carry over) with
  put_records, in chunks of at most 500 records and the PutRecords byte limit; throttled records are
  dropped (no retries), as a producer that does not retry would lose them;
- each consumer polls every shard it owns once per ``poll_interval`` (GetRecords, within the per-shard
  read limits shared by all consumers), follows closed shards to their children (parents first), and
  records its lag (MillisBehindLatest);
- the clock advances.

Producers do no per-record Python work: each keeps ONE payload bytes object per key length and a
precomputed pool of partition keys; a batch is a numpy index draw and a zip. The timeline is read
from the streams' own metrics (fastkin.metrics) afterwards, never counted per record in Python.

Memory: streams default to ``storage = "metadata"`` (the engine keeps each record's sizes and times,
not its bytes) and a short retention (10 minutes, ``retention``), so a day-long scenario needs memory
for ten minutes of record metadata (18 bytes a record), not for everything it sent.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from .. import errors as E
from ..clock import VirtualClock
from ..engine import Engine
from ..errors import ScenarioError
from ..limits import PUT_RECORDS_MAX_RECORDS
from .plot import plot_result
from .scenario import (
    ActionSpec,
    ConsumerSpec,
    ProducerSpec,
    Scenario,
    _clock,
    builtin,
    builtin_names,
    load_scenario,
    parse_duration,
    parse_rate,
    parse_size,
)

START = 1_699_999_200.0       # 2023-11-14 21:00:00 UTC: whole minutes and hours

# ---------------------------------------------------------------------------------------------------
# Producers and consumers


class _Producer:
    """Offered load for one stream: ONE payload object per key length and a fixed key pool; a batch
    is a numpy draw of pool indices, so there is no Python work per record beyond a zip."""

    def __init__(self, spec: ProducerSpec, stream, rng: np.random.Generator, max_bytes: int) -> None:
        self.spec = spec
        self.stream = stream
        self.rng = rng
        self.carry = 0.0
        if isinstance(spec.keys, list):
            pool = list(spec.keys)
        elif spec.keys == "fixed":
            pool = [f"key-{i:08d}" for i in range(spec.key_count)]
        else:
            pool = [f"{x:024x}" for x in rng.integers(0, 2**63, size=spec.key_count, dtype=np.int64).tolist()]
        self.n_pool = len(pool)
        if spec.hot_fraction > 0:
            pool += [f"hot-key-{i:016d}" for i in range(spec.hot_keys)]
        payloads: dict[int, bytes] = {}
        for k in pool:
            n = len(k.encode())
            if n not in payloads:
                payloads[n] = b"\x00" * (spec.record_size - n)
        self.keys = np.array(pool, dtype=object)
        self.payloads = np.array([payloads[len(k.encode())] for k in pool], dtype=object)
        self.uniform_payload = len(payloads) == 1
        self.payload = next(iter(payloads.values()))
        self.chunk = max(1, min(PUT_RECORDS_MAX_RECORDS, max_bytes // spec.record_size))
        self.sent = 0

    def send(self, t: float, dt: float) -> None:
        want = self.spec.records_per_second(t) * dt + self.carry
        n = int(want)
        self.carry = want - n
        if n <= 0:
            return
        spec, rng = self.spec, self.rng
        idx = rng.integers(0, self.n_pool, size=n)
        if spec.hot_fraction > 0:
            hot = rng.random(n) < spec.hot_fraction
            idx[hot] = self.n_pool + rng.integers(0, spec.hot_keys, size=int(hot.sum()))
        keys = self.keys[idx].tolist()
        if self.uniform_payload:
            batch = list(zip(repeat(self.payload, n), keys))
        else:
            batch = list(zip(self.payloads[idx].tolist(), keys))
        put = self.stream.put_records
        for i in range(0, n, self.chunk):
            put(batch[i:i + self.chunk])
        self.sent += n


class _Consumer:
    """Polls every shard of a stream like a KCL worker: one GetRecords per shard per poll interval,
    parents before children; lag is the largest MillisBehindLatest of its last poll."""

    def __init__(self, spec: ConsumerSpec, stream, duration: float) -> None:
        self.spec = spec
        self.stream = stream
        self.iters: dict[str, str] = {}
        self.last_seq: dict[str, str] = {}
        self.done: set[str] = set()
        self.waiting: dict[str, list[str]] = {}         # child -> parents, started when all are done
        self.next_poll = 0.0
        self.records = 0
        self.calls = 0
        self.throttled = 0
        self.lag = np.full(int(math.ceil(duration)) + 1, np.nan)
        for info in stream.open_shards():
            self.iters[info.shard_id] = stream.get_shard_iterator(info.shard_id, spec.start)

    def poll(self, t: float) -> None:
        if t + 1e-9 < self.next_poll:
            return
        self.next_poll += self.spec.poll_interval
        if self.next_poll <= t:
            self.next_poll = t + self.spec.poll_interval
        stream, lag = self.stream, 0
        limit = self.spec.limit
        if self.spec.max_records_per_second is not None and self.iters:
            # a processing budget: what it can handle per poll, shared by the shards it owns
            budget = self.spec.max_records_per_second * self.spec.poll_interval
            limit = max(1, min(limit, int(budget / len(self.iters))))
        for sid, it in list(self.iters.items()):
            try:
                out = stream.get_records(it, limit=limit)
            except E.ProvisionedThroughputExceededException:
                self.throttled += 1
                continue
            except E.ExpiredIteratorException:
                seq = self.last_seq.get(sid)
                self.iters[sid] = (stream.get_shard_iterator(sid, "AFTER_SEQUENCE_NUMBER", seq) if seq
                                   else stream.get_shard_iterator(sid, "TRIM_HORIZON"))
                continue
            except E.ResourceNotFoundException:       # a closed shard past retention
                self._finish(sid, [])
                continue
            self.calls += 1
            if out.records:
                self.records += len(out.records)
                self.last_seq[sid] = out.records[-1].sequence_number
            lag = max(lag, out.millis_behind_latest)
            if out.next_shard_iterator is None:
                self._finish(sid, out.child_shards)
            else:
                self.iters[sid] = out.next_shard_iterator
        sec = int(t)
        if sec < len(self.lag):
            self.lag[sec] = lag if np.isnan(self.lag[sec]) else max(self.lag[sec], lag)

    def _finish(self, sid: str, children: list) -> None:
        self.iters.pop(sid, None)
        self.done.add(sid)
        for c in children:
            self.waiting.setdefault(c["ShardId"], list(c["ParentShards"]))
        for child, parents in list(self.waiting.items()):
            if all(p in self.done for p in parents):
                del self.waiting[child]
                if child not in self.done and child not in self.iters:
                    try:
                        self.iters[child] = self.stream.get_shard_iterator(child, "TRIM_HORIZON")
                    except E.ResourceNotFoundException:
                        self.done.add(child)

    def lag_series(self) -> np.ndarray:
        """Lag per engine-second, carried forward between polls (0 before the first)."""
        v = self.lag.copy()
        idx = np.where(~np.isnan(v), np.arange(len(v)), 0)
        np.maximum.accumulate(idx, out=idx)
        v = v[idx]
        return np.nan_to_num(v, nan=0.0)


# ---------------------------------------------------------------------------------------------------
# Result


COLUMNS = ["time_s", "timestamp", "stream", "mode", "open_shards",
           "offered_records_per_s", "accepted_records_per_s", "throttled_records_per_s",
           "offered_bytes_per_s", "accepted_bytes_per_s", "accepted_bytes_per_shard",
           "read_records_per_s", "read_bytes_per_s", "read_throttled_per_s",
           "iterator_age_ms", "consumer_lag_ms", "events"]


@dataclass
class Event:
    time_s: float
    stream: str
    kind: str            # the action name, "split"/"merge" (on-demand scaler), or "error"
    detail: str


@dataclass
class ConsumerResult:
    name: str
    stream: str
    records: int
    calls: int
    throttled: int
    lag_ms: np.ndarray   # per engine-second


@dataclass
class SimulationResult:
    """What a run produced: ``timeline`` holds the COLUMNS (one row per timeline period and stream,
    rates per second averaged over the period), ``events`` the actions and scaling steps."""

    scenario: Scenario
    timeline: dict[str, list]
    events: list[Event]
    consumers: dict[str, ConsumerResult]
    producers: dict[str, int]            # records offered per producer
    engine_seconds: float
    wall_seconds: float
    resolution: int
    core: str
    csv_path: str | None = None
    png_path: str | None = None
    plot_note: str | None = None
    streams: dict = field(default_factory=dict, repr=False)    # name -> the engine's Stream, after the run
    channels: dict = field(default_factory=dict)               # name -> ChannelResult

    @property
    def speed(self) -> float:
        """Engine-seconds simulated per wall-second."""
        return self.engine_seconds / max(self.wall_seconds, 1e-9)

    def column(self, name: str, stream: str | None = None) -> np.ndarray:
        if name not in self.timeline:
            raise KeyError(f"no timeline column {name!r}; columns: {', '.join(COLUMNS)}")
        stream = stream or self.scenario.streams[0].name
        rows = [i for i, s in enumerate(self.timeline["stream"]) if s == stream]
        vals = [self.timeline[name][i] for i in rows]
        return np.array(vals) if name not in ("stream", "mode", "events") else np.array(vals, dtype=object)

    def to_csv(self, path=None) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(COLUMNS)
        for row in zip(*(self.timeline[c] for c in COLUMNS)):
            w.writerow([_fmt_cell(x) for x in row])
        text = buf.getvalue()
        if path is not None:
            with open(path, "w", newline="") as f:
                f.write(text)
        return text

    def throttle_intervals(self, stream: str | None = None, gap: int = 5) -> list[tuple[float, float]]:
        """(first, last) timeline times with throttled writes, runs closer than ``gap`` periods merged."""
        t = self.column("time_s", stream)
        thr = self.column("throttled_records_per_s", stream)
        out: list[list[float]] = []
        for ti, v in zip(t, thr):
            if v > 0:
                if out and ti - out[-1][1] <= gap * self.resolution:
                    out[-1][1] = ti
                else:
                    out.append([ti, ti])
        return [(a, b) for a, b in out]

    def summary(self) -> str:
        sc = self.scenario
        lines = [f"fastkin simulate: {sc.name} ({sc.source}), core={self.core}",
                 f"  {_clock(self.engine_seconds)} of engine time in {self.wall_seconds:.2f} s of wall time "
                 f"({self.speed:,.0f} engine-seconds per wall-second), step {sc.step:g} s"]
        for st in sc.streams:
            t = self.column("time_s", st.name)
            off_b = self.column("offered_bytes_per_s", st.name) * self.resolution
            acc_b = self.column("accepted_bytes_per_s", st.name) * self.resolution
            off_r = self.column("offered_records_per_s", st.name) * self.resolution
            thr_r = self.column("throttled_records_per_s", st.name) * self.resolution
            shards = self.column("open_shards", st.name)
            pct = 100.0 * thr_r.sum() / off_r.sum() if off_r.sum() else 0.0
            modes = self.column("mode", st.name)
            first_mode, last_mode = (modes[0], modes[-1]) if len(modes) else (st.mode, st.mode)
            first_n, last_n = (int(shards[0]), int(shards[-1])) if len(shards) else (st.shards, st.shards)
            lines.append(f"stream {st.name}: {first_mode} with {first_n} shards at the start, {last_mode} with "
                         f"{last_n} at the end; storage={st.storage}, retention {_clock(st.retention)}")
            lines.append(f"  offered {off_b.sum() / 1e6:,.1f} MB in {off_r.sum():,.0f} records; accepted "
                         f"{acc_b.sum() / 1e6:,.1f} MB; throttled {thr_r.sum():,.0f} records ({pct:.1f} %)")
            iv = self.throttle_intervals(st.name)
            if iv:
                shown = ", ".join(f"{_clock(a)}-{_clock(b + self.resolution)}" for a, b in iv[:4])
                more = f" and {len(iv) - 4} more" if len(iv) > 4 else ""
                lines.append(f"  throttling: {shown}{more} (m:ss from the start)")
            else:
                lines.append("  throttling: none")
            changes = []
            for i in range(1, len(shards)):
                if shards[i] != shards[i - 1]:
                    changes.append(f"{int(shards[i])} at {_clock(t[i])}")
            lines.append(f"  open shards: {int(shards[0])}"
                         + (" -> " + ", ".join(changes) if changes else " throughout"))
            if len(acc_b):
                tail = slice(max(0, len(t) - max(1, 60 // self.resolution)), len(t))
                per = (self.column("offered_bytes_per_s", st.name)[tail] / shards[tail]).mean()
                offered = self.column("offered_bytes_per_s", st.name)[tail].mean()
                lines.append(f"  last minute: offered {offered / 1e6:.2f} MB/s"
                             f" = {per / 1e6:.3f} MB/s per shard on {int(shards[-1])} shards")
        for ev in self.events:
            if ev.kind not in ("split", "merge"):
                lines.append(f"  at {_clock(ev.time_s)} {ev.stream}: {ev.detail}")
        for c in self.consumers.values():
            lines.append(f"consumer {c.name} on {c.stream}: {c.records:,} records in {c.calls:,} GetRecords calls "
                         f"({c.throttled:,} throttled); lag max {c.lag_ms.max() / 1000:.1f} s, "
                         f"at the end {c.lag_ms[-1] / 1000:.1f} s")
        for ch in self.channels.values():
            lines.append(f"channel {ch.name} on {ch.stream} ({ch.status}): {ch.objects:,} objects, {ch.records:,} "
                         f"records ({ch.bytes / 1e6:.2f} MB) delivered, {ch.failed_records:,} to the dead-letter "
                         f"prefix; objects in {ch.directory}")
        if self.csv_path:
            lines.append(f"timeline: {self.csv_path}")
        if self.png_path:
            lines.append(f"plot: {self.png_path}")
        elif self.plot_note:
            lines.append(f"plot: {self.plot_note}")
        return "\n".join(lines)

    def plot(self, path) -> str:
        plot_result(self, path)
        return os.fspath(path)


def _fmt_cell(x):
    if isinstance(x, float):
        return int(x) if x.is_integer() else round(x, 3)
    return x




# ---------------------------------------------------------------------------------------------------
# Running


def run(scenario, *, out_dir=None, csv_path=None, png_path=None, plot: bool = True, progress: bool | None = None,
        core: str | None = None, out=None) -> SimulationResult:
    """Run a scenario (TOML path, TOML text, dict or Scenario) through the engine on a virtual clock.

    Writes ``<out_dir>/<name>.csv`` and ``<out_dir>/<name>.png`` when ``out_dir`` is given (or the
    explicit ``csv_path`` / ``png_path``); the PNG needs matplotlib (``pip install 'fastkin[plot]'``),
    and without it the run goes on and ``result.plot_note`` says why there is no picture. ``progress``:
    a tqdm bar on stderr (None: only when stderr is a terminal and tqdm is installed). ``out``: a
    print-like callable for the summary (None prints nothing)."""
    sc = load_scenario(scenario)
    clock = VirtualClock(start=START)
    channel_dir = None
    if sc.channels:                     # a directory target: <out_dir or a temporary dir>/<name>-channels/<bucket>
        channel_dir = os.path.join(out_dir if out_dir is not None else tempfile.mkdtemp(prefix="fastkin-sim-"),
                                   f"{sc.name}-channels")
        os.makedirs(channel_dir, exist_ok=True)
    eng = Engine(clock=clock, core=core or sc.core,
                 channel_s3=None if channel_dir is None else f"file://{channel_dir}")
    streams = {}
    for st in sc.streams:
        s = eng.create_stream(st.name, st.shards, stream_mode=st.mode, storage=st.storage)
        s.set_retention_seconds(st.retention)
        streams[st.name] = s
    channel_arns = {c.name: _create_channel(eng, streams[c.stream], c, channel_dir)
                    for c in sc.channels if channel_dir is not None}
    resolution = sc.resolution or (1 if sc.duration <= 3600 else 60)
    if resolution == 1:               # keep every 1-second point the timeline will read
        for s in streams.values():
            s.metrics.second_retention = max(s.metrics.second_retention, int(sc.duration) + 120)
    rng = np.random.default_rng(sc.seed)
    max_bytes = eng.limits.put_records_max_bytes
    producers = [_Producer(p, streams[p.stream], np.random.default_rng(rng.integers(2**63)), max_bytes)
                 for p in sc.producers]
    consumers = [_Consumer(c, streams[c.stream], sc.duration) for c in sc.consumers]
    events: list[Event] = []
    scalers: dict[str, list] = {name: [] for name in streams}
    modes: dict[str, list[tuple[float, str]]] = {st.name: [(0.0, st.mode)] for st in sc.streams}

    def note_scaler(name):
        sc_obj = streams[name].scaler
        if sc_obj is not None and all(x is not sc_obj for x in scalers[name]):
            scalers[name].append(sc_obj)

    for name in streams:
        note_scaler(name)
    bar = _progress(progress, sc)
    pending = list(sc.actions)
    steps = int(round(sc.duration / sc.step))
    t0 = time.perf_counter()
    shown = 0
    for k in range(steps):
        t = k * sc.step
        while pending and pending[0].at <= t + 1e-9:
            a = pending.pop(0)
            # file the seconds before the action first (OpenShardCount is sampled when a second is filed)
            streams[a.stream].tick(clock())
            events.append(_apply(eng, streams[a.stream], a, t))
            if a.action == "update_stream_mode" and events[-1].kind != "error":
                modes[a.stream].append((t, a.args["mode"]))
            note_scaler(a.stream)
        for p in producers:
            p.send(t, sc.step)
        for c in consumers:
            c.poll(t)
        clock.set(START + (k + 1) * sc.step)
        if bar is not None and int(t + sc.step) > shown:
            bar.update(int(t + sc.step) - shown)
            shown = int(t + sc.step)
    for s in streams.values():           # file the last second's counters
        s.tick(clock())
    channels = {}
    for spec in sc.channels:             # delivered by the end (records of a window still open are not)
        arn = channel_arns[spec.name]
        m = eng.channel(arn).metrics
        channels[spec.name] = ChannelResult(
            spec.name, spec.stream, eng.describe_channel(arn)["ChannelDescription"]["ChannelStatus"],
            int(m.total("DeliveryToS3.ObjectCount")), int(m.total("DeliveryToS3.SuccessfulRecordCount")),
            int(m.total("DeliveryToS3.FailedRecordCount")), int(m.total("DeliveryToS3.Bytes")),
            os.path.join(channel_dir or "", _bucket(spec.name)))
    wall = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    for name, lst in scalers.items():
        for sc_obj in lst:
            for (when, kind, count) in sc_obj.events:
                events.append(Event(when - START, name, kind, f"-> {count} shards"))
    events.sort(key=lambda e: e.time_s)
    cons = {c.spec.name: ConsumerResult(c.spec.name, c.spec.stream, c.records, c.calls, c.throttled,
                                        c.lag_series()[:int(math.ceil(sc.duration))]) for c in consumers}
    timeline = _timeline(sc, streams, resolution, modes, events, cons)
    result = SimulationResult(sc, timeline, events, cons, {p.spec.name: p.sent for p in producers}, sc.duration,
                              wall, resolution, eng.core_name, streams=streams, channels=channels)
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        csv_path = csv_path or os.path.join(out_dir, f"{sc.name}.csv")
        if plot:
            png_path = png_path or os.path.join(out_dir, f"{sc.name}.png")
    if csv_path:
        result.to_csv(csv_path)
        result.csv_path = os.fspath(csv_path)
    if png_path and plot:
        try:
            import matplotlib  # noqa: F401
        except ModuleNotFoundError:
            result.plot_note = "matplotlib is not installed, no PNG written (pip install 'fastkin[plot]')"
        else:
            result.png_path = result.plot(png_path)
    if out is not None:
        out(result.summary())
    return result


@dataclass
class ChannelResult:
    """What a scenario's channel delivered by the end of the run (a window still open at the end is not)."""
    name: str
    stream: str
    status: str
    objects: int
    records: int
    failed_records: int
    bytes: int
    directory: str                     # where its objects are (the bucket's folder)


def _bucket(name: str) -> str:
    """An S3-style bucket name (3-63 lower-case letters, digits, '-') for a scenario channel."""
    b = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return f"sim-{b}"[:63].rstrip("-")


def _create_channel(eng, stream, c, channel_dir: str) -> str:
    bucket = _bucket(c.name)
    os.makedirs(os.path.join(channel_dir, bucket), exist_ok=True)
    d = eng.create_channel(c.name, f"arn:aws:iam::{eng.account_id}:role/fastkin-simulator",
                           [{"StreamARN": stream.arn, "RecordConfiguration": {"RecordFormatType": c.format}}],
                           s3_destination_configuration={
                               "DataFreshnessInSeconds": int(c.freshness),
                               "StorageConfiguration": {"BucketARN": f"arn:aws:s3:::{bucket}",
                                                        "ExpectedBucketOwner": eng.account_id,
                                                        "CompressionType": c.compression}})
    return d["ChannelDescription"]["ChannelARN"]


def _apply(eng, stream, a: ActionSpec, t: float) -> Event:
    try:
        if a.action == "update_stream_mode":
            eng.update_stream_mode(stream.arn, {"StreamMode": a.args["mode"]})
        elif a.action == "update_shard_count":
            eng.update_shard_count(a.args["target"], stream_name=stream.name)
        elif a.action == "split_shard":
            key = a.args.get("hash_key")
            if key is None:
                info = stream.shard(a.args["shard"])
                key = str((info.start_hash + info.end_hash + 1) // 2)
            eng.split_shard(a.args["shard"], key, stream_name=stream.name)
        else:
            eng.merge_shards(a.args["shard"], a.args["adjacent"], stream_name=stream.name)
    except E.FastkinError as e:
        return Event(t, stream.name, "error", f"{a.describe()} failed: {type(e).__name__}: {e}")
    return Event(t, stream.name, a.action, a.describe())


def _timeline(sc: Scenario, streams: dict, res: int, modes, events: list[Event], cons) -> dict[str, list]:
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    end = START + sc.duration - 1

    def get(m, metric):
        return m.series(metric, res, start=START, end=end)[1]

    for st in sc.streams:
        m = streams[st.name].metrics
        times = m.series("IncomingBytes", res, start=START, end=end)[0]
        n = len(times)
        rel = times - int(START)
        offered_r = get(m, "PutRecords.Records") / res
        accepted_r = get(m, "IncomingRecords") / res
        thr_r = get(m, "PutRecords.ThrottledRecords") / res
        offered_b = get(m, "OfferedBytes") / res
        accepted_b = get(m, "IncomingBytes") / res
        shards = get(m, "OpenShardCount")
        lag = np.zeros(n)
        for c in cons.values():
            if c.stream == st.name and len(c.lag_ms):
                lv = c.lag_ms
                for i, r in enumerate(rel):
                    seg = lv[int(r):int(r) + res]
                    if len(seg):
                        lag[i] = max(lag[i], seg.max())
        ev_at: dict[int, list[str]] = {}
        for ev in events:
            if ev.stream == st.name:
                ev_at.setdefault(int(ev.time_s // res) * res, []).append(
                    ev.detail if ev.kind != "error" else "ERROR " + ev.detail)
        mode_pts = modes[st.name]
        cols["time_s"] += rel.tolist()
        cols["timestamp"] += times.tolist()
        cols["stream"] += [st.name] * n
        cols["mode"] += [next(md for at, md in reversed(mode_pts) if at <= r + res - 1e-9) for r in rel]
        cols["open_shards"] += shards.tolist()
        cols["offered_records_per_s"] += offered_r.tolist()
        cols["accepted_records_per_s"] += accepted_r.tolist()
        cols["throttled_records_per_s"] += thr_r.tolist()
        cols["offered_bytes_per_s"] += offered_b.tolist()
        cols["accepted_bytes_per_s"] += accepted_b.tolist()
        cols["accepted_bytes_per_shard"] += (accepted_b / np.maximum(shards, 1)).tolist()
        cols["read_records_per_s"] += (get(m, "GetRecords.Records") / res).tolist()
        cols["read_bytes_per_s"] += (get(m, "GetRecords.Bytes") / res).tolist()
        cols["read_throttled_per_s"] += (get(m, "ReadProvisionedThroughputExceeded") / res).tolist()
        cols["iterator_age_ms"] += get(m, "GetRecords.IteratorAgeMilliseconds").tolist()
        cols["consumer_lag_ms"] += lag.tolist()
        cols["events"] += ["; ".join(_compact(ev_at.get(int(r), []))) for r in rel]
    return cols


def _compact(details: list[str]) -> list[str]:
    """Several on-demand scaling steps in one period read as one: 'on-demand scaling -> 10 shards'."""
    scaling = [d for d in details if d.startswith("-> ")]
    out = [d for d in details if not d.startswith("-> ")]
    if scaling:
        out.append(f"on-demand scaling {scaling[-1]}")
    return out


def _progress(progress, sc: Scenario):
    if progress is False:
        return None
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return None
    return tqdm(total=int(sc.duration), unit="engine-s", desc=sc.name, leave=False, file=sys.stderr)


# ---------------------------------------------------------------------------------------------------
# Command line


def add_arguments(p) -> None:
    p.add_argument("scenario", nargs="?", help="scenario TOML file")
    p.add_argument("--builtin", metavar="NAME", help="run a built-in scenario instead (--list to see them)")
    p.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    p.add_argument("--out", default=".", metavar="DIR", help="where to write NAME.csv and NAME.png")
    p.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--core", "--engine", dest="core", choices=["cy", "ref"], default=None,
                   help="data-plane core: cy (compiled) or ref (the pure-Python reference); default: the "
                        "scenario's [simulation].core, else cy")


def main(args) -> int:
    if args.list:
        for n in builtin_names():
            print(f"{n}: {builtin(n).description}")
        return 0
    if (args.scenario is None) == (args.builtin is None):
        print("fastkin simulate: give a scenario file or --builtin NAME (built-in: "
              f"{', '.join(builtin_names())})", file=sys.stderr)
        return 2
    try:
        sc = builtin(args.builtin) if args.builtin else load_scenario(args.scenario)
    except ScenarioError as e:
        print(f"fastkin simulate: {e}", file=sys.stderr)
        return 2
    problem = _unwritable(args.out)
    if problem:
        print(f"fastkin simulate: --out {args.out}: {problem}", file=sys.stderr)
        return 2
    run(sc, out_dir=args.out, plot=not args.no_plot, progress=False if args.no_progress else None,
        core=args.core, out=print)
    return 0


def _unwritable(directory: str) -> str | None:
    """Why files cannot be written into ``directory`` (made if missing), or None: checked before a run, not after."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".fastkin-write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        return e.strerror or str(e)
    return None


__all__ = ["run", "load_scenario", "builtin", "builtin_names", "Scenario", "ScenarioError", "SimulationResult",
           "COLUMNS", "parse_size", "parse_rate", "parse_duration"]

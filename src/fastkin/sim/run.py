"""The capacity simulator: a scenario of streams, producers, consumers and timed actions, run through
the real engine on a virtual clock, then a summary, a timeline CSV and a PNG plot.

    from fastkin.simulate import run
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
import time
from dataclasses import dataclass, field
from importlib import resources
from itertools import repeat

import numpy as np

from .. import errors as E
from ..clock import VirtualClock
from ..engine import Engine
from ..limits import PUT_RECORDS_MAX_RECORDS

START = 1_699_999_200.0       # 2023-11-14 21:00:00 UTC: whole minutes and hours

# ---------------------------------------------------------------------------------------------------
# Scenario: parsing and validation


class ScenarioError(ValueError):
    """A scenario that cannot run: the message names the file, the place in it, and what was expected."""


_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]i?[bB]|[bB])\s*$")
_RATE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]i?[bB]|[bB]|records?|rec)\s*/\s*s\s*$")
_DUR_RE = re.compile(r"([0-9]*\.?[0-9]+)\s*(ms|min|s|m|h|d)")

SECTIONS = {"simulation", "streams", "producers", "consumers", "actions"}
SIM_KEYS = {"name", "description", "duration", "step", "seed", "resolution", "engine"}
STREAM_KEYS = {"name", "mode", "shards", "storage", "retention"}
PRODUCER_KEYS = {"name", "stream", "record_size", "rate", "schedule", "ramp", "keys", "key_count", "hot_fraction",
                 "hot_keys"}
CONSUMER_KEYS = {"name", "stream", "poll_interval", "limit", "start", "max_records_per_second"}
ACTION_KEYS = {"at", "stream", "action", "mode", "target", "shard", "hash_key", "adjacent"}
ACTIONS = ("update_stream_mode", "update_shard_count", "split_shard", "merge_shards")


@dataclass
class StreamSpec:
    name: str
    mode: str = "PROVISIONED"
    shards: int | None = None
    storage: str = "metadata"
    retention: float = 600.0


@dataclass
class ProducerSpec:
    name: str
    stream: str
    record_size: int                                   # bytes, data + partition key (as Kinesis counts)
    schedule: list[tuple[float, float, str]]           # (at seconds, value, "records" | "bytes") per second
    ramp: bool = False                                 # linear between schedule points (else steps)
    keys: str | list[str] = "uniform"                  # "uniform" | "fixed" | explicit list
    key_count: int = 65_536                            # pool size (uniform) or number of fixed keys
    hot_fraction: float = 0.0                          # share of records sent to the hot keys
    hot_keys: int = 1

    def records_per_second(self, t: float) -> float:
        pts = self.schedule
        i = -1
        for j, (at, _, _) in enumerate(pts):
            if at <= t:
                i = j
        if i < 0:
            return 0.0
        v = self._rps(pts[i])
        if self.ramp and i + 1 < len(pts):
            a, b = pts[i][0], pts[i + 1][0]
            v += (self._rps(pts[i + 1]) - v) * (t - a) / (b - a)
        return v

    def _rps(self, p) -> float:
        return p[1] if p[2] == "records" else p[1] / self.record_size


@dataclass
class ConsumerSpec:
    name: str
    stream: str
    poll_interval: float = 1.0
    limit: int = 10_000
    start: str = "LATEST"
    max_records_per_second: float | None = None        # processing budget over all its shards (None: unlimited)


@dataclass
class ActionSpec:
    at: float
    stream: str
    action: str
    args: dict = field(default_factory=dict)

    def describe(self) -> str:
        a = self.args
        if self.action == "update_stream_mode":
            return f"switch to {a['mode']}"
        if self.action == "update_shard_count":
            return f"update_shard_count({a['target']})"
        if self.action == "split_shard":
            return f"split {a['shard']}"
        return f"merge {a['shard']} + {a['adjacent']}"


@dataclass
class Scenario:
    name: str
    duration: float
    streams: list[StreamSpec]
    producers: list[ProducerSpec] = field(default_factory=list)
    consumers: list[ConsumerSpec] = field(default_factory=list)
    actions: list[ActionSpec] = field(default_factory=list)
    description: str = ""
    step: float = 0.1
    seed: int = 0
    resolution: int | None = None
    engine: str | None = None
    source: str = "<dict>"


def parse_size(v, where: str) -> int:
    """Bytes from 25000, '25 KB' (1000) or '25 KiB' (1024)."""
    if isinstance(v, bool):
        raise ScenarioError(f"{where}: expected a size like 25000 or '25 KB', got {v!r}")
    if isinstance(v, (int, float)):
        if v <= 0:
            raise ScenarioError(f"{where}: a size must be positive, got {v!r}")
        return int(v)
    m = _SIZE_RE.match(v) if isinstance(v, str) else None
    if m is None:
        raise ScenarioError(f"{where}: expected a size like 25000 or '25 KB' (B, KB, MB, KiB, MiB), got {v!r}")
    n = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    if n <= 0:
        raise ScenarioError(f"{where}: a size must be positive, got {v!r}")
    return int(round(n))


def parse_rate(v, where: str) -> tuple[float, str]:
    """(value per second, "records" | "bytes") from '1000 records/s', '4 MB/s', '512 KiB/s'."""
    m = _RATE_RE.match(v) if isinstance(v, str) else None
    if m is None:
        raise ScenarioError(f"{where}: expected a rate with a unit like '1000 records/s', '4 MB/s' or '512 KiB/s', "
                            f"got {v!r}")
    n, unit = float(m.group(1)), m.group(2).lower()
    if unit.startswith("rec"):
        return n, "records"
    return n * _SIZE_UNITS[unit], "bytes"


def parse_duration(v, where: str, *, allow_zero: bool = True) -> float:
    """Seconds from 90, 0.5, '90s', '3m', '1h30m', '250ms'."""
    if isinstance(v, bool):
        raise ScenarioError(f"{where}: expected a duration like 90, '90s', '3m' or '1h30m', got {v!r}")
    if isinstance(v, (int, float)):
        t = float(v)
    elif isinstance(v, str) and re.fullmatch(r"\s*(?:[0-9]*\.?[0-9]+\s*(?:ms|min|s|m|h|d)\s*)+", v):
        t = sum(float(n) * _TIME_UNITS[u] for n, u in _DUR_RE.findall(v))
    else:
        raise ScenarioError(f"{where}: expected a duration like 90, '90s', '3m' or '1h30m', got {v!r}")
    if not math.isfinite(t) or t < 0 or (t == 0 and not allow_zero):
        raise ScenarioError(f"{where}: expected a {'non-negative' if allow_zero else 'positive'} duration, got {v!r}")
    return t


def _table(d, where: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(d, dict):
        raise ScenarioError(f"{where}: expected a table, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                            f"(allowed: {', '.join(sorted(allowed))})")
    for k in required:
        if k not in d:
            raise ScenarioError(f"{where}: missing required key '{k}'")
    return d


def _int(v, where: str, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ScenarioError(f"{where}: expected a whole number >= {lo}, got {v!r}")
    return v


def _list(d: dict, key: str, src: str) -> list:
    v = d.get(key, [])
    if not isinstance(v, list):
        raise ScenarioError(f"{src}: '{key}' must be an array of tables ([[{key}]]), got {type(v).__name__}")
    return v


def load_scenario(scenario, *, source: str | None = None) -> Scenario:
    """A validated Scenario from a path to a TOML file, TOML text, a dict, or a Scenario."""
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, (str, os.PathLike)) and not (isinstance(scenario, str) and "\n" in scenario):
        path = os.fspath(scenario)
        if not os.path.exists(path):
            raise ScenarioError(f"{path}: no such scenario file")
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        return load_scenario(_toml_loads(text, path), source=path)
    if isinstance(scenario, str):
        return load_scenario(_toml_loads(scenario, source or "<toml>"), source=source or "<toml>")
    if not isinstance(scenario, dict):
        raise ScenarioError(f"a scenario is a TOML path, TOML text or a dict, got {type(scenario).__name__}")
    src = source or "<dict>"
    unknown = sorted(set(scenario) - SECTIONS)
    if unknown:
        raise ScenarioError(f"{src}: unknown section{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                            f"(allowed: [simulation], [[streams]], [[producers]], [[consumers]], [[actions]])")
    if "simulation" not in scenario:
        raise ScenarioError(f"{src}: missing [simulation] section (name, duration)")
    sim = _table(scenario["simulation"], f"{src}: [simulation]", SIM_KEYS, ("duration",))
    duration = parse_duration(sim["duration"], f"{src}: [simulation].duration", allow_zero=False)
    step = parse_duration(sim.get("step", 0.1), f"{src}: [simulation].step", allow_zero=False)
    if step > 1.0:
        raise ScenarioError(f"{src}: [simulation].step must be at most 1 s (the quotas refill per second), got {step}")
    res = sim.get("resolution")
    if res is not None and res not in (1, 60):
        raise ScenarioError(f"{src}: [simulation].resolution must be 1 or 60 (seconds), got {res!r}")
    eng = sim.get("engine")
    if eng is not None and eng not in ("cy", "ref"):
        raise ScenarioError(f"{src}: [simulation].engine must be 'cy' or 'ref', got {eng!r}")
    name = sim.get("name", "scenario")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", name):
        raise ScenarioError(f"{src}: [simulation].name must be 1-128 letters, digits, '_', '.', '-', got {name!r}")

    streams: list[StreamSpec] = []
    raw_streams = _list(scenario, "streams", src)
    if not raw_streams:
        raise ScenarioError(f"{src}: at least one [[streams]] table is needed")
    for i, d in enumerate(raw_streams):
        w = f"{src}: streams[{i}]"
        d = _table(d, w, STREAM_KEYS, ("name",))
        mode = d.get("mode", "PROVISIONED")
        if mode not in ("PROVISIONED", "ON_DEMAND"):
            raise ScenarioError(f"{w}.mode: expected 'PROVISIONED' or 'ON_DEMAND', got {mode!r}")
        shards = d.get("shards")
        if shards is None and mode == "PROVISIONED":
            raise ScenarioError(f"{w}: a PROVISIONED stream needs 'shards'")
        if shards is not None:
            shards = _int(shards, f"{w}.shards")
        storage = d.get("storage", "metadata")
        if storage not in ("metadata", "full"):
            raise ScenarioError(f"{w}.storage: expected 'metadata' (sizes and times only) or 'full', got {storage!r}")
        if any(s.name == d["name"] for s in streams):
            raise ScenarioError(f"{w}: stream name {d['name']!r} is used twice")
        if not isinstance(d["name"], str) or not re.fullmatch(r"[a-zA-Z0-9_.-]{1,128}", d["name"]):
            raise ScenarioError(f"{w}.name: 1-128 letters, digits, '_', '.', '-', got {d['name']!r}")
        streams.append(StreamSpec(d["name"], mode, shards, storage,
                                  parse_duration(d.get("retention", "10m"), f"{w}.retention", allow_zero=False)))
    names = {s.name for s in streams}

    def stream_ref(d, w):
        if len(streams) == 1 and "stream" not in d:
            return streams[0].name
        if "stream" not in d:
            raise ScenarioError(f"{w}: missing 'stream' (there are several streams: {', '.join(sorted(names))})")
        if d["stream"] not in names:
            raise ScenarioError(f"{w}.stream: no stream named {d['stream']!r} (streams: {', '.join(sorted(names))})")
        return d["stream"]

    producers: list[ProducerSpec] = []
    for i, d in enumerate(_list(scenario, "producers", src)):
        w = f"{src}: producers[{i}]"
        d = _table(d, w, PRODUCER_KEYS, ("record_size",))
        size = parse_size(d["record_size"], f"{w}.record_size")
        if size > 1024 * 1024:
            raise ScenarioError(f"{w}.record_size: at most 1 MiB (1048576 bytes), got {size}")
        if ("rate" in d) == ("schedule" in d):
            raise ScenarioError(f"{w}: give either 'rate' (constant) or 'schedule' (a list of {{at, rate}}), "
                                "not both or neither")
        if "rate" in d:
            v, unit = parse_rate(d["rate"], f"{w}.rate")
            schedule = [(0.0, v, unit)]
        else:
            if not isinstance(d["schedule"], list) or not d["schedule"]:
                raise ScenarioError(f"{w}.schedule: expected a non-empty list of {{at = ..., rate = ...}}")
            schedule = []
            for j, p in enumerate(d["schedule"]):
                pw = f"{w}.schedule[{j}]"
                p = _table(p, pw, {"at", "rate"}, ("at", "rate"))
                at = parse_duration(p["at"], f"{pw}.at")
                if schedule and at <= schedule[-1][0]:
                    raise ScenarioError(f"{pw}.at: schedule times must increase ({at:g} s after {schedule[-1][0]:g} s)")
                schedule.append((at, *parse_rate(p["rate"], f"{pw}.rate")))
        keys = d.get("keys", "uniform")
        if isinstance(keys, list):
            if not keys or not all(isinstance(k, str) and 1 <= len(k) <= 256 for k in keys):
                raise ScenarioError(f"{w}.keys: a key list needs 1 or more strings of 1-256 characters")
        elif keys not in ("uniform", "fixed"):
            raise ScenarioError(f"{w}.keys: expected 'uniform' (random keys), 'fixed' (key_count keys) or a list of "
                                f"keys, got {keys!r}")
        key_count = _int(d.get("key_count", 65_536 if keys == "uniform" else 100), f"{w}.key_count")
        hot = d.get("hot_fraction", 0.0)
        if isinstance(hot, bool) or not isinstance(hot, (int, float)) or not 0.0 <= hot <= 1.0:
            raise ScenarioError(f"{w}.hot_fraction: expected a fraction between 0 and 1, got {hot!r}")
        hot_keys = _int(d.get("hot_keys", 1), f"{w}.hot_keys")
        longest = max(len(k.encode()) for k in keys) if isinstance(keys, list) else 24
        if size <= longest:
            raise ScenarioError(f"{w}.record_size: {size} bytes leaves no room for data after a {longest}-byte "
                                "partition key (record size counts data + key)")
        ramp = d.get("ramp", False)
        if not isinstance(ramp, bool):
            raise ScenarioError(f"{w}.ramp: expected true or false, got {ramp!r}")
        producers.append(ProducerSpec(d.get("name", f"producer-{i}"), stream_ref(d, w), size, schedule, ramp,
                                      keys, key_count, float(hot), hot_keys))

    consumers: list[ConsumerSpec] = []
    for i, d in enumerate(_list(scenario, "consumers", src)):
        w = f"{src}: consumers[{i}]"
        d = _table(d, w, CONSUMER_KEYS)
        start = d.get("start", "LATEST")
        if start not in ("LATEST", "TRIM_HORIZON"):
            raise ScenarioError(f"{w}.start: expected 'LATEST' or 'TRIM_HORIZON', got {start!r}")
        limit = _int(d.get("limit", 10_000), f"{w}.limit")
        if limit > 10_000:
            raise ScenarioError(f"{w}.limit: GetRecords returns at most 10000 records, got {limit}")
        mrps = d.get("max_records_per_second")
        if mrps is not None and (isinstance(mrps, bool) or not isinstance(mrps, (int, float)) or mrps <= 0):
            raise ScenarioError(f"{w}.max_records_per_second: expected a positive number, got {mrps!r}")
        consumers.append(ConsumerSpec(d.get("name", f"consumer-{i}"), stream_ref(d, w),
                                      parse_duration(d.get("poll_interval", 1.0), f"{w}.poll_interval",
                                                     allow_zero=False), limit, start,
                                      None if mrps is None else float(mrps)))

    actions: list[ActionSpec] = []
    for i, d in enumerate(_list(scenario, "actions", src)):
        w = f"{src}: actions[{i}]"
        d = _table(d, w, ACTION_KEYS, ("at", "action"))
        at = parse_duration(d["at"], f"{w}.at")
        if at >= duration:
            raise ScenarioError(f"{w}.at: {at:g} s is not before the end of the simulation ({duration:g} s)")
        act = d["action"]
        need = {"update_stream_mode": ("mode",), "update_shard_count": ("target",), "split_shard": ("shard",),
                "merge_shards": ("shard", "adjacent")}
        if act not in need:
            raise ScenarioError(f"{w}.action: expected one of {', '.join(ACTIONS)}, got {act!r}")
        args = {k: d[k] for k in ("mode", "target", "shard", "hash_key", "adjacent") if k in d}
        for k in need[act]:
            if k not in args:
                raise ScenarioError(f"{w}: action {act} needs '{k}'")
        extra = sorted(set(args) - set(need[act]) - ({"hash_key"} if act == "split_shard" else set()))
        if extra:
            raise ScenarioError(f"{w}: action {act} takes no {', '.join(extra)}")
        if act == "update_stream_mode" and args["mode"] not in ("PROVISIONED", "ON_DEMAND"):
            raise ScenarioError(f"{w}.mode: expected 'PROVISIONED' or 'ON_DEMAND', got {args['mode']!r}")
        if act == "update_shard_count":
            args["target"] = _int(args["target"], f"{w}.target")
        for k in ("shard", "adjacent", "hash_key"):
            if k in args and not isinstance(args[k], str):
                raise ScenarioError(f"{w}.{k}: expected a string, got {args[k]!r}")
        actions.append(ActionSpec(at, stream_ref(d, w), act, args))
    actions.sort(key=lambda a: a.at)
    seed = sim.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ScenarioError(f"{src}: [simulation].seed must be an integer, got {seed!r}")
    desc = sim.get("description", "")
    if not isinstance(desc, str):
        raise ScenarioError(f"{src}: [simulation].description must be a string")
    return Scenario(name, duration, streams, producers, consumers, actions, desc, step, seed, res, eng, src)


def _toml_loads(text: str, where: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:                      # Python 3.10
        try:
            import tomli as tomllib                  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ScenarioError("reading TOML on Python 3.10 needs tomli: pip install 'fastkin[sim]'") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{where}: not valid TOML: {e}") from None


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("fastkin.sim.scenarios").iterdir() if p.name.endswith(".toml"))


def builtin(name: str) -> Scenario:
    """A built-in scenario by name (see ``builtin_names()``)."""
    if name not in builtin_names():
        raise ScenarioError(f"no built-in scenario {name!r} (built-in: {', '.join(builtin_names())})")
    text = resources.files("fastkin.sim.scenarios").joinpath(name + ".toml").read_text("utf-8")
    return load_scenario(_toml_loads(text, f"builtin:{name}"), source=f"builtin:{name}")


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
    engine: str
    csv_path: str | None = None
    png_path: str | None = None
    plot_note: str | None = None
    streams: dict = field(default_factory=dict, repr=False)    # name -> the engine's Stream, after the run

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
        lines = [f"fastkin simulate: {sc.name} ({sc.source}), engine={self.engine}",
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
            lines.append(f"stream {st.name}: {st.mode.lower()} {int(shards[0]) if len(shards) else st.shards} shards, "
                         f"storage={st.storage}, retention {_clock(st.retention)}")
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
            lines.append(f"  open shards: {int(shards[0])}" + (" -> " + ", ".join(changes) if changes else " throughout"))
            if len(acc_b):
                tail = slice(max(0, len(t) - max(1, 60 // self.resolution)), len(t))
                per = (self.column("offered_bytes_per_s", st.name)[tail] / shards[tail]).mean()
                lines.append(f"  last minute: offered {self.column('offered_bytes_per_s', st.name)[tail].mean() / 1e6:.2f} MB/s"
                             f" = {per / 1e6:.3f} MB/s per shard on {int(shards[-1])} shards")
        for ev in self.events:
            if ev.kind not in ("split", "merge"):
                lines.append(f"  at {_clock(ev.time_s)} {ev.stream}: {ev.detail}")
        for c in self.consumers.values():
            lines.append(f"consumer {c.name} on {c.stream}: {c.records:,} records in {c.calls:,} GetRecords calls "
                         f"({c.throttled:,} throttled); lag max {c.lag_ms.max() / 1000:.1f} s, "
                         f"at the end {c.lag_ms[-1] / 1000:.1f} s")
        if self.csv_path:
            lines.append(f"timeline: {self.csv_path}")
        if self.png_path:
            lines.append(f"plot: {self.png_path}")
        elif self.plot_note:
            lines.append(f"plot: {self.plot_note}")
        return "\n".join(lines)

    def plot(self, path) -> str:
        _plot(self, path)
        return os.fspath(path)


def _fmt_cell(x):
    if isinstance(x, float):
        return int(x) if x.is_integer() else round(x, 3)
    return x


def _clock(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


# ---------------------------------------------------------------------------------------------------
# Running


def run(scenario, *, out_dir=None, csv_path=None, png_path=None, plot: bool = True, progress: bool | None = None,
        engine: str | None = None, out=None) -> SimulationResult:
    """Run a scenario (TOML path, TOML text, dict or Scenario) through the engine on a virtual clock.

    Writes ``<out_dir>/<name>.csv`` and ``<out_dir>/<name>.png`` when ``out_dir`` is given (or the
    explicit ``csv_path`` / ``png_path``); the PNG needs matplotlib (``pip install 'fastkin[plot]'``),
    and without it the run goes on and ``result.plot_note`` says why there is no picture. ``progress``:
    a tqdm bar on stderr (None: only when stderr is a terminal and tqdm is installed). ``out``: a
    print-like callable for the summary (None prints nothing)."""
    sc = load_scenario(scenario)
    clock = VirtualClock(start=START)
    eng = Engine(clock=clock, engine=engine or sc.engine)
    streams = {}
    for st in sc.streams:
        s = eng.create_stream(st.name, st.shards, stream_mode=st.mode, storage=st.storage)
        s.set_retention_seconds(st.retention)
        streams[st.name] = s
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
                              wall, resolution, eng.engine, streams=streams)
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
    for st in sc.streams:
        m = streams[st.name].metrics

        def get(metric):
            return m.series(metric, res, start=START, end=end)[1]

        times = m.series("IncomingBytes", res, start=START, end=end)[0]
        n = len(times)
        rel = times - int(START)
        offered_r = get("PutRecords.Records") / res
        accepted_r = get("IncomingRecords") / res
        thr_r = get("PutRecords.ThrottledRecords") / res
        offered_b = get("OfferedBytes") / res
        accepted_b = get("IncomingBytes") / res
        shards = get("OpenShardCount")
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
        cols["read_records_per_s"] += (get("GetRecords.Records") / res).tolist()
        cols["read_bytes_per_s"] += (get("GetRecords.Bytes") / res).tolist()
        cols["read_throttled_per_s"] += (get("ReadProvisionedThroughputExceeded") / res).tolist()
        cols["iterator_age_ms"] += get("GetRecords.IteratorAgeMilliseconds").tolist()
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
# Plot (matplotlib, optional: pip install 'fastkin[plot]')

_MODE_COLORS = {"PROVISIONED": "#f2f2f2", "ON_DEMAND": "#e3f1e3"}


def _plot(result: SimulationResult, path) -> None:
    """Four panels over engine time: write throughput (offered, accepted, capacity), throttled
    writes, open shards (with the offered load per shard against the 500 KiB/s split threshold),
    consumer lag. Timed actions and load changes are marked across all panels; the background
    shows the capacity mode. Uses the object API (no pyplot), so it never touches global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    sc = result.scenario
    fig = Figure(figsize=(12, 11), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_w, ax_t, ax_s, ax_l = fig.subplots(4, 1, sharex=True, height_ratios=[3, 1.6, 2, 1.6])
    multi = len(sc.streams) > 1
    minutes = sc.duration / 60.0
    unit = 60.0 if minutes >= 3 else 1.0
    tname = "min" if unit == 60.0 else "s"
    colors = ["#1f77b4", "#9467bd", "#8c564b", "#17becf"]
    for si, st in enumerate(sc.streams):
        pre = f"{st.name}: " if multi else ""
        c = colors[si % len(colors)]
        x = result.column("time_s", st.name) / unit
        xe = x + result.resolution / unit                     # period ends, for step plots
        off = result.column("offered_bytes_per_s", st.name) / 1e6
        acc = result.column("accepted_bytes_per_s", st.name) / 1e6
        shards = result.column("open_shards", st.name)
        cap = shards * 1024 * 1024 / 1e6
        thr = result.column("throttled_records_per_s", st.name)
        offr = result.column("offered_records_per_s", st.name)
        ax_w.plot(xe, off, color="#d62728", lw=1.4, ls="--", label=f"{pre}offered")
        ax_w.plot(xe, acc, color=c, lw=2.0, label=f"{pre}accepted")
        ax_w.fill_between(xe, acc, off, where=off > acc * 1.001 + 1e-9, color="#d62728", alpha=0.15, lw=0,
                          label=f"{pre}throttled (offered - accepted)")
        ax_w.step(xe, cap, where="post", color="black", lw=1.0, ls=":", label=f"{pre}write capacity (shards x 1 MiB/s)")
        ax_t.fill_between(xe, 0, thr, step=None, color="#d62728", alpha=0.6, lw=0, label=f"{pre}throttled records/s")
        top = float(thr.max()) if len(thr) else 0.0
        for a, b in result.throttle_intervals(st.name):
            if b + result.resolution - a >= max(10, sc.duration / 60):
                ax_t.annotate("", xy=(a / unit, top * 1.08), xytext=((b + result.resolution) / unit, top * 1.08),
                              arrowprops=dict(arrowstyle="<->", color="#a01010", lw=1.0))
                ax_t.text((a + b + result.resolution) / 2 / unit, top * 1.12,
                          f"{pre}throttled {_clock(a)}-{_clock(b + result.resolution)}", ha="center", va="bottom",
                          fontsize=9, color="#a01010", fontweight="bold")
        ax_t.set_ylim(0, max(1.0, top * 1.35))
        pct = 100.0 * thr.sum() / offr.sum() if offr.sum() else 0.0
        ax_t.text(0.995, 0.92 - 0.15 * si, f"{pre}{pct:.1f} % of offered records throttled", transform=ax_t.transAxes,
                  ha="right", va="top", fontsize=9, color="#a01010")
        ax_s.step(xe, shards, where="post", color="#2ca02c", lw=2.2, label=f"{pre}open shards")
        prev = None
        for xi, n in zip(x, shards):
            if n != prev:
                ax_s.annotate(f"{int(n)}", (xi, n), textcoords="offset points", xytext=(3, 4), fontsize=9,
                              color="#1b6e1b", fontweight="bold")
                prev = n
        per = (off * 1e6 / np.maximum(shards, 1)) / 1e6
        if si == 0:
            ax_p = ax_s.twinx()
        ax_p.plot(xe, per, color="#ff7f0e", lw=1.2, label=f"{pre}offered MB/s per shard")
        for cr in result.consumers.values():
            if cr.stream == st.name:
                xs = np.arange(len(cr.lag_ms)) / unit
                ax_l.plot(xs, cr.lag_ms / 1000.0, lw=1.4, label=f"{cr.name} ({cr.stream})")
    if any("ON_DEMAND" in set(result.column("mode", st.name)) for st in sc.streams):
        thr_split = 500 * 1024 / 1e6
        ax_p.axhline(thr_split, color="#ff7f0e", ls=":", lw=1.0)
        ax_p.text(0.005, thr_split, " on-demand split threshold 500 KiB/s per shard", color="#c25e00", fontsize=8,
                  va="bottom", transform=ax_p.get_yaxis_transform())
    ax_p.set_ylabel("offered MB/s per shard", color="#c25e00")
    ax_p.set_ylim(bottom=0)
    ax_p.tick_params(axis="y", colors="#c25e00")

    # capacity-mode background and the timed actions, across every panel
    st0 = sc.streams[0].name
    modes = result.column("mode", st0)
    x0 = result.column("time_s", st0)
    spans, start = [], 0
    for i in range(1, len(modes) + 1):
        if i == len(modes) or modes[i] != modes[start]:
            spans.append((x0[start] / unit, (x0[i - 1] + result.resolution) / unit, modes[start]))
            start = i
    for ax in (ax_w, ax_t, ax_s, ax_l):
        for a, b, md in spans:
            ax.axvspan(a, b, color=_MODE_COLORS.get(md, "white"), zorder=0, lw=0)
        ax.grid(True, color="#cccccc", lw=0.5)
        ax.set_xlim(0, sc.duration / unit)
    for a, b, md in spans:
        ax_w.text((a + b) / 2, 1.01, md.replace("_", "-").lower() + " mode", transform=ax_w.get_xaxis_transform(),
                  ha="center", va="bottom", fontsize=10, color="#555555", fontweight="bold")
    marks = [(a.at, a.describe(), "#333333") for a in sc.actions]
    for p in sc.producers:
        for at, v, kind in p.schedule:
            if at > 0:
                label = f"load -> {v / 1e6:g} MB/s" if kind == "bytes" else f"load -> {v:g} records/s"
                marks.append((at, f"{p.name}: {label}" if len(sc.producers) > 1 else label, "#d62728"))
    errors = {e.time_s for e in result.events if e.kind == "error"}
    for at, label, col in marks:
        for ax in (ax_w, ax_t, ax_s, ax_l):
            ax.axvline(at / unit, color=col, ls="--", lw=1.0, alpha=0.8)
        ax_w.annotate(_clock(at) + " " + label + (" (FAILED)" if at in errors else ""), (at / unit, 0.97),
                      xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points", ha="left",
                      va="top", fontsize=9, color=col, fontweight="bold",
                      bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.8))

    ax_w.set_ylabel("write throughput (MB/s)")
    ax_w.set_ylim(0, None)
    ax_w.legend(loc="center left", fontsize=8, framealpha=0.9)
    ax_t.set_ylabel("throttled writes\n(records/s)")
    ax_s.set_ylabel("open shards", color="#1b6e1b")
    ax_s.set_ylim(0, None)
    ax_s.yaxis.set_major_locator(MaxNLocator(integer=True))
    h1, l1 = ax_s.get_legend_handles_labels()
    h2, l2 = ax_p.get_legend_handles_labels()
    ax_s.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8, framealpha=0.9)
    ax_l.set_ylabel("consumer lag (s)\n(MillisBehindLatest)")
    worst = max((c.lag_ms.max() for c in result.consumers.values() if len(c.lag_ms)), default=0.0) / 1000.0
    ax_l.set_ylim(0, max(1.0, worst * 1.15))
    if result.consumers:
        ax_l.legend(loc="upper left", fontsize=8, framealpha=0.9)
        if worst == 0:
            ax_l.text(0.5, 0.5, "lag 0 throughout: every poll reads up to the tip of each shard",
                      transform=ax_l.transAxes, ha="center", va="center", color="#555555", fontsize=9)
    else:
        ax_l.text(0.5, 0.5, "no consumers in this scenario", transform=ax_l.transAxes, ha="center", color="#777777")
    ax_l.set_xlabel(f"engine time ({tname})")
    if unit == 60.0:
        ax_l.xaxis.set_major_locator(MaxNLocator(nbins=min(30, int(minutes) + 1), integer=True))
    title = f"fastkin simulate: {sc.name}"
    fig.suptitle(title + (f"\n{sc.description}" if sc.description else ""), fontsize=12)
    fig.savefig(os.fspath(path))


# ---------------------------------------------------------------------------------------------------
# Command line


def add_arguments(p) -> None:
    p.add_argument("scenario", nargs="?", help="scenario TOML file")
    p.add_argument("--builtin", metavar="NAME", help="run a built-in scenario instead (--list to see them)")
    p.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    p.add_argument("--out", default=".", metavar="DIR", help="where to write NAME.csv and NAME.png (default: .)")
    p.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=["cy", "ref"], default=None, help="core engine (default: compiled)")


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
    run(sc, out_dir=args.out, plot=not args.no_plot, progress=False if args.no_progress else None,
        engine=args.engine, out=print)
    return 0


__all__ = ["run", "load_scenario", "builtin", "builtin_names", "Scenario", "ScenarioError", "SimulationResult",
           "COLUMNS", "parse_size", "parse_rate", "parse_duration"]

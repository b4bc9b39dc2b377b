"""Capacity scenarios: TOML (or a dict) describing streams, producers, consumers and timed actions,
parsed and validated into dataclasses; every error names the file, the place and what was expected.
The built-in scenarios live in fastkin/sim/scenarios/."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources

from .. import errors as E

_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]i?[bB]|[bB])\s*$")
_RATE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]i?[bB]|[bB]|records?|rec)\s*/\s*s\s*$")
_DUR_RE = re.compile(r"([0-9]*\.?[0-9]+)\s*(ms|min|s|m|h|d)")

SECTIONS = {"simulation", "streams", "producers", "consumers", "actions", "channels"}
SIM_KEYS = {"name", "description", "duration", "step", "seed", "resolution", "core", "engine"}
STREAM_KEYS = {"name", "mode", "shards", "storage", "retention"}
PRODUCER_KEYS = {"name", "stream", "record_size", "rate", "schedule", "ramp", "keys", "key_count", "hot_fraction",
                 "hot_keys"}
CONSUMER_KEYS = {"name", "stream", "poll_interval", "limit", "start", "max_records_per_second"}
ACTION_KEYS = {"at", "stream", "action", "mode", "target", "shard", "hash_key", "adjacent"}
ACTIONS = ("update_stream_mode", "update_shard_count", "split_shard", "merge_shards")
CHANNEL_KEYS = {"name", "stream", "format", "freshness", "compression"}


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
class ChannelSpec:
    """An S3 channel on a stream: its objects go to ``<out_dir>/<scenario>-channels/<bucket>/`` (a directory
    target), delivered as engine time passes each window of ``freshness`` seconds."""
    name: str
    stream: str
    format: str = "BYTE_ARRAY"
    freshness: float = 300.0
    compression: str = "NONE"


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
    core: str | None = None
    source: str = "<dict>"
    channels: list[ChannelSpec] = field(default_factory=list)


def parse_size(v, where: str) -> int:
    """Bytes from 25000, '25 KB' (1000) or '25 KiB' (1024)."""
    if isinstance(v, bool):
        raise E.ScenarioError(f"{where}: expected a size like 25000 or '25 KB', got {v!r}")
    if isinstance(v, (int, float)):
        if v <= 0:
            raise E.ScenarioError(f"{where}: a size must be positive, got {v!r}")
        return int(v)
    m = _SIZE_RE.match(v) if isinstance(v, str) else None
    if m is None:
        raise E.ScenarioError(f"{where}: expected a size like 25000 or '25 KB' (B, KB, MB, KiB, MiB), got {v!r}")
    n = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    if n <= 0:
        raise E.ScenarioError(f"{where}: a size must be positive, got {v!r}")
    return int(round(n))


def parse_rate(v, where: str) -> tuple[float, str]:
    """(value per second, "records" | "bytes") from '1000 records/s', '4 MB/s', '512 KiB/s'."""
    m = _RATE_RE.match(v) if isinstance(v, str) else None
    if m is None:
        raise E.ScenarioError(f"{where}: expected a rate with a unit like '1000 records/s', '4 MB/s' or '512 KiB/s', "
                            f"got {v!r}")
    n, unit = float(m.group(1)), m.group(2).lower()
    if unit.startswith("rec"):
        return n, "records"
    return n * _SIZE_UNITS[unit], "bytes"


def parse_duration(v, where: str, *, allow_zero: bool = True) -> float:
    """Seconds from 90, 0.5, '90s', '3m', '1h30m', '250ms'."""
    if isinstance(v, bool):
        raise E.ScenarioError(f"{where}: expected a duration like 90, '90s', '3m' or '1h30m', got {v!r}")
    if isinstance(v, (int, float)):
        t = float(v)
    elif isinstance(v, str) and re.fullmatch(r"\s*(?:[0-9]*\.?[0-9]+\s*(?:ms|min|s|m|h|d)\s*)+", v):
        t = sum(float(n) * _TIME_UNITS[u] for n, u in _DUR_RE.findall(v))
    else:
        raise E.ScenarioError(f"{where}: expected a duration like 90, '90s', '3m' or '1h30m', got {v!r}")
    if not math.isfinite(t) or t < 0 or (t == 0 and not allow_zero):
        raise E.ScenarioError(f"{where}: expected a {'non-negative' if allow_zero else 'positive'} duration, got {v!r}")
    return t


def _table(d, where: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(d, dict):
        raise E.ScenarioError(f"{where}: expected a table, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise E.ScenarioError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                            f"(allowed: {', '.join(sorted(allowed))})")
    for k in required:
        if k not in d:
            raise E.ScenarioError(f"{where}: missing required key '{k}'")
    return d


def _int(v, where: str, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise E.ScenarioError(f"{where}: expected a whole number >= {lo}, got {v!r}")
    return v


def _list(d: dict, key: str, src: str) -> list:
    v = d.get(key, [])
    if not isinstance(v, list):
        raise E.ScenarioError(f"{src}: '{key}' must be an array of tables ([[{key}]]), got {type(v).__name__}")
    return v


def load_scenario(scenario, *, source: str | None = None) -> Scenario:
    """A validated Scenario from a path to a TOML file, TOML text, a dict, or a Scenario."""
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, (str, os.PathLike)) and not (isinstance(scenario, str) and "\n" in scenario):
        path = os.fspath(scenario)
        if not os.path.exists(path):
            raise E.ScenarioError(f"{path}: no such scenario file")
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        return load_scenario(_toml_loads(text, path), source=path)
    if isinstance(scenario, str):
        return load_scenario(_toml_loads(scenario, source or "<toml>"), source=source or "<toml>")
    if not isinstance(scenario, dict):
        raise E.ScenarioError(f"a scenario is a TOML path, TOML text or a dict, got {type(scenario).__name__}")
    src = source or "<dict>"
    unknown = sorted(set(scenario) - SECTIONS)
    if unknown:
        raise E.ScenarioError(f"{src}: unknown section{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                            f"(allowed: [simulation], [[streams]], [[producers]], [[consumers]], [[actions]], "
                            f"[[channels]])")
    if "simulation" not in scenario:
        raise E.ScenarioError(f"{src}: missing [simulation] section (name, duration)")
    sim = _table(scenario["simulation"], f"{src}: [simulation]", SIM_KEYS, ("duration",))
    duration = parse_duration(sim["duration"], f"{src}: [simulation].duration", allow_zero=False)
    step = parse_duration(sim.get("step", 0.1), f"{src}: [simulation].step", allow_zero=False)
    if step > 1.0:
        raise E.ScenarioError(
            f"{src}: [simulation].step must be at most 1 s (the quotas refill per second), got {step}")
    res = sim.get("resolution")
    if res is not None and res not in (1, 60):
        raise E.ScenarioError(f"{src}: [simulation].resolution must be 1 or 60 (seconds), got {res!r}")
    eng = sim.get("core", sim.get("engine"))            # "engine" is the older spelling of "core"
    if eng is not None and eng not in ("cy", "ref"):
        raise E.ScenarioError(f"{src}: [simulation].core must be 'cy' or 'ref', got {eng!r}")
    name = sim.get("name", "scenario")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", name):
        raise E.ScenarioError(f"{src}: [simulation].name must be 1-128 letters, digits, '_', '.', '-', got {name!r}")

    streams: list[StreamSpec] = []
    raw_streams = _list(scenario, "streams", src)
    if not raw_streams:
        raise E.ScenarioError(f"{src}: at least one [[streams]] table is needed")
    for i, d in enumerate(raw_streams):
        w = f"{src}: streams[{i}]"
        d = _table(d, w, STREAM_KEYS, ("name",))
        mode = d.get("mode", "PROVISIONED")
        if mode not in ("PROVISIONED", "ON_DEMAND"):
            raise E.ScenarioError(f"{w}.mode: expected 'PROVISIONED' or 'ON_DEMAND', got {mode!r}")
        shards = d.get("shards")
        if shards is None and mode == "PROVISIONED":
            raise E.ScenarioError(f"{w}: a PROVISIONED stream needs 'shards'")
        if shards is not None:
            shards = _int(shards, f"{w}.shards")
        storage = d.get("storage", "metadata")
        if storage not in ("metadata", "full"):
            raise E.ScenarioError(f"{w}.storage: expected 'metadata' (sizes and times only) or 'full', got {storage!r}")
        if any(s.name == d["name"] for s in streams):
            raise E.ScenarioError(f"{w}: stream name {d['name']!r} is used twice")
        if not isinstance(d["name"], str) or not re.fullmatch(r"[a-zA-Z0-9_.-]{1,128}", d["name"]):
            raise E.ScenarioError(f"{w}.name: 1-128 letters, digits, '_', '.', '-', got {d['name']!r}")
        streams.append(StreamSpec(d["name"], mode, shards, storage,
                                  parse_duration(d.get("retention", "10m"), f"{w}.retention", allow_zero=False)))
    names = {s.name for s in streams}

    def stream_ref(d, w):
        if len(streams) == 1 and "stream" not in d:
            return streams[0].name
        if "stream" not in d:
            raise E.ScenarioError(f"{w}: missing 'stream' (there are several streams: {', '.join(sorted(names))})")
        if d["stream"] not in names:
            raise E.ScenarioError(f"{w}.stream: no stream named {d['stream']!r} (streams: {', '.join(sorted(names))})")
        return d["stream"]

    producers: list[ProducerSpec] = []
    for i, d in enumerate(_list(scenario, "producers", src)):
        w = f"{src}: producers[{i}]"
        d = _table(d, w, PRODUCER_KEYS, ("record_size",))
        size = parse_size(d["record_size"], f"{w}.record_size")
        if size > 1024 * 1024:
            raise E.ScenarioError(f"{w}.record_size: at most 1 MiB (1048576 bytes), got {size}")
        if ("rate" in d) == ("schedule" in d):
            raise E.ScenarioError(f"{w}: give either 'rate' (constant) or 'schedule' (a list of {{at, rate}}), "
                                "not both or neither")
        if "rate" in d:
            v, unit = parse_rate(d["rate"], f"{w}.rate")
            schedule = [(0.0, v, unit)]
        else:
            if not isinstance(d["schedule"], list) or not d["schedule"]:
                raise E.ScenarioError(f"{w}.schedule: expected a non-empty list of {{at = ..., rate = ...}}")
            schedule = []
            for j, p in enumerate(d["schedule"]):
                pw = f"{w}.schedule[{j}]"
                p = _table(p, pw, {"at", "rate"}, ("at", "rate"))
                at = parse_duration(p["at"], f"{pw}.at")
                if schedule and at <= schedule[-1][0]:
                    raise E.ScenarioError(
                        f"{pw}.at: schedule times must increase ({at:g} s after {schedule[-1][0]:g} s)")
                schedule.append((at, *parse_rate(p["rate"], f"{pw}.rate")))
        keys = d.get("keys", "uniform")
        if isinstance(keys, list):
            if not keys or not all(isinstance(k, str) and 1 <= len(k) <= 256 for k in keys):
                raise E.ScenarioError(f"{w}.keys: a key list needs 1 or more strings of 1-256 characters")
        elif keys not in ("uniform", "fixed"):
            raise E.ScenarioError(f"{w}.keys: expected 'uniform' (random keys), 'fixed' (key_count keys) or a list of "
                                f"keys, got {keys!r}")
        key_count = _int(d.get("key_count", 65_536 if keys == "uniform" else 100), f"{w}.key_count")
        hot = d.get("hot_fraction", 0.0)
        if isinstance(hot, bool) or not isinstance(hot, (int, float)) or not 0.0 <= hot <= 1.0:
            raise E.ScenarioError(f"{w}.hot_fraction: expected a fraction between 0 and 1, got {hot!r}")
        hot_keys = _int(d.get("hot_keys", 1), f"{w}.hot_keys")
        longest = max(len(k.encode()) for k in keys) if isinstance(keys, list) else 24
        if size <= longest:
            raise E.ScenarioError(f"{w}.record_size: {size} bytes leaves no room for data after a {longest}-byte "
                                "partition key (record size counts data + key)")
        ramp = d.get("ramp", False)
        if not isinstance(ramp, bool):
            raise E.ScenarioError(f"{w}.ramp: expected true or false, got {ramp!r}")
        producers.append(ProducerSpec(d.get("name", f"producer-{i}"), stream_ref(d, w), size, schedule, ramp,
                                      keys, key_count, float(hot), hot_keys))

    consumers: list[ConsumerSpec] = []
    for i, d in enumerate(_list(scenario, "consumers", src)):
        w = f"{src}: consumers[{i}]"
        d = _table(d, w, CONSUMER_KEYS)
        start = d.get("start", "LATEST")
        if start not in ("LATEST", "TRIM_HORIZON"):
            raise E.ScenarioError(f"{w}.start: expected 'LATEST' or 'TRIM_HORIZON', got {start!r}")
        limit = _int(d.get("limit", 10_000), f"{w}.limit")
        if limit > 10_000:
            raise E.ScenarioError(f"{w}.limit: GetRecords returns at most 10000 records, got {limit}")
        mrps = d.get("max_records_per_second")
        if mrps is not None and (isinstance(mrps, bool) or not isinstance(mrps, (int, float)) or mrps <= 0):
            raise E.ScenarioError(f"{w}.max_records_per_second: expected a positive number, got {mrps!r}")
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
            raise E.ScenarioError(f"{w}.at: {at:g} s is not before the end of the simulation ({duration:g} s)")
        act = d["action"]
        need = {"update_stream_mode": ("mode",), "update_shard_count": ("target",), "split_shard": ("shard",),
                "merge_shards": ("shard", "adjacent")}
        if act not in need:
            raise E.ScenarioError(f"{w}.action: expected one of {', '.join(ACTIONS)}, got {act!r}")
        args = {k: d[k] for k in ("mode", "target", "shard", "hash_key", "adjacent") if k in d}
        for k in need[act]:
            if k not in args:
                raise E.ScenarioError(f"{w}: action {act} needs '{k}'")
        extra = sorted(set(args) - set(need[act]) - ({"hash_key"} if act == "split_shard" else set()))
        if extra:
            raise E.ScenarioError(f"{w}: action {act} takes no {', '.join(extra)}")
        if act == "update_stream_mode" and args["mode"] not in ("PROVISIONED", "ON_DEMAND"):
            raise E.ScenarioError(f"{w}.mode: expected 'PROVISIONED' or 'ON_DEMAND', got {args['mode']!r}")
        if act == "update_shard_count":
            args["target"] = _int(args["target"], f"{w}.target")
        for k in ("shard", "adjacent", "hash_key"):
            if k in args and not isinstance(args[k], str):
                raise E.ScenarioError(f"{w}.{k}: expected a string, got {args[k]!r}")
        actions.append(ActionSpec(at, stream_ref(d, w), act, args))
    actions.sort(key=lambda a: a.at)
    channels: list[ChannelSpec] = []
    for i, d in enumerate(_list(scenario, "channels", src)):
        w = f"{src}: channels[{i}]"
        d = _table(d, w, CHANNEL_KEYS)
        ref = stream_ref(d, w)
        spec = next(s for s in streams if s.name == ref)
        if spec.mode != "ON_DEMAND" or spec.storage != "full":
            raise E.ScenarioError(f"{w}: channels read on-demand streams that keep their records: stream {ref!r} "
                                  f"needs mode = 'ON_DEMAND' and storage = 'full'")
        fmt = d.get("format", "BYTE_ARRAY")
        if fmt not in ("BYTE_ARRAY", "STRING", "JSON"):
            raise E.ScenarioError(f"{w}.format: expected 'BYTE_ARRAY', 'STRING' or 'JSON', got {fmt!r}")
        comp = d.get("compression", "NONE")
        if comp not in ("NONE", "GZIP", "ZSTD"):
            raise E.ScenarioError(f"{w}.compression: expected 'NONE', 'GZIP' or 'ZSTD', got {comp!r}")
        fresh = parse_duration(d.get("freshness", "5m"), f"{w}.freshness", allow_zero=False)
        if not 300 <= fresh <= 900 or fresh != int(fresh):
            raise E.ScenarioError(f"{w}.freshness: DataFreshnessInSeconds is a whole number from 300 to 900, "
                                  f"got {fresh:g}")
        ch_name = d.get("name", f"channel-{i}")
        if not isinstance(ch_name, str) or not re.fullmatch(r"[a-zA-Z0-9_.-]{1,128}", ch_name) \
                or any(c.name == ch_name for c in channels):
            raise E.ScenarioError(f"{w}.name: 1-128 letters, digits, '_', '.', '-', unique, got {ch_name!r}")
        channels.append(ChannelSpec(ch_name, ref, fmt, fresh, comp))
    seed = sim.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise E.ScenarioError(f"{src}: [simulation].seed must be an integer, got {seed!r}")
    desc = sim.get("description", "")
    if not isinstance(desc, str):
        raise E.ScenarioError(f"{src}: [simulation].description must be a string")
    return Scenario(name, duration, streams, producers, consumers, actions, desc, step, seed, res, eng, src,
                    channels)


def _toml_loads(text: str, where: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:                      # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise E.ScenarioError("reading TOML on Python 3.10 needs tomli: pip install 'fastkin[sim]'") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise E.ScenarioError(f"{where}: not valid TOML: {e}") from None


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("fastkin.sim.scenarios").iterdir() if p.name.endswith(".toml"))


def builtin(name: str) -> Scenario:
    """A built-in scenario by name (see ``builtin_names()``)."""
    if name not in builtin_names():
        raise E.ScenarioError(f"no built-in scenario {name!r} (built-in: {', '.join(builtin_names())})")
    text = resources.files("fastkin.sim.scenarios").joinpath(name + ".toml").read_text("utf-8")
    return load_scenario(_toml_loads(text, f"builtin:{name}"), source=f"builtin:{name}")


def _clock(s: float) -> str:
    """Engine seconds since the start as h:mm:ss (or m:ss)."""
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


__all__ = ["Scenario", "StreamSpec", "ProducerSpec", "ConsumerSpec", "ActionSpec", "load_scenario",
           "builtin", "builtin_names", "parse_size", "parse_rate", "parse_duration"]

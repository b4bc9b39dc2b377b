"""Benchmark fixtures for fastkin: seeded inputs (built outside the timed region), engines, and a
throughput reporter that turns each benchmark's measured stats into records/s, bytes/s, calls/s
(``benchmark.extra_info``) and prints a cross-engine ratio table at the end of the run.

Run from the repository root (bench/pytest.ini makes bench_*.py collectable):

    PYTHONPATH=src python -m pytest bench -p no:cacheprovider --benchmark-disable-gc -o python_files='bench_*.py'
"""
from __future__ import annotations

import bisect
import hashlib
import os
import random
import string
import sys

import pytest

import fastkin
from fastkin import _core
from fastkin._common import initial_hash_ranges

# bench_aio.py is a script (it needs the async extra, in its own venv): run it directly, not through pytest.
collect_ignore = ["bench_aio.py"]

# -- groups (one per component) --------------------------------------------------------------
G_PUT_RECORDS = "put_records: 500 x 100 B, records/s"
G_PUT_RECORDS_RESULTS = "put_records + read every result, records/s"
G_PUT_RECORD = "put_record: single calls, calls/s"
G_GET_RECORDS = "get_records: drain one shard, records/s"
G_ROUTING = "routing: key -> shard, keys/s"
G_MD5 = "md5 hash key, keys/s"
G_MEMORY = "memory: bytes per 100 B record"

ENGINES = ["cy", "ref"]
START = 1_700_000_000.0
BATCH = 500
DATA_BYTES = 100
KEY_ALPHABET = string.ascii_letters + string.digits + "-_:"

# Issue targets (compiled engine, one core).
TARGETS = {
    G_PUT_RECORDS: 5_000_000,
    G_GET_RECORDS: 5_000_000,
    G_PUT_RECORD: 1_000_000,
}


def make_records(n: int, seed: int = 0) -> list[tuple[bytes, str]]:
    """n (data, partition_key) tuples: 100 random bytes, a random 10-36 character ASCII key."""
    rng = random.Random(seed)
    return [(rng.randbytes(DATA_BYTES), "".join(rng.choices(KEY_ALPHABET, k=rng.randint(10, 36))))
            for _ in range(n)]


def payload_bytes(records) -> int:
    """Kinesis record size: data + UTF-8 partition key."""
    return sum(len(d) + len(k.encode()) for d, k in records)


@pytest.fixture(scope="session")
def batch500() -> list[tuple[bytes, str]]:
    return make_records(BATCH)


@pytest.fixture(scope="session")
def keys500(batch500) -> list[str]:
    return [k for _, k in batch500]


@pytest.fixture(scope="session")
def fill_pool() -> list[list[tuple[bytes, str]]]:
    """20 distinct 500-record batches (10,000 records), cycled to pre-fill large logs."""
    recs = make_records(20 * BATCH)
    return [recs[i:i + BATCH] for i in range(0, len(recs), BATCH)]


def make_stream(engine: str, shards: int, quotas: bool):
    clock = fastkin.VirtualClock(start=START)
    eng = fastkin.Engine(clock=clock, core=engine, quotas=quotas)
    return clock, eng, eng.create_stream("bench", shard_count=shards)


def shard_starts(shards: int) -> list[int]:
    return [a for a, _ in initial_hash_ranges(shards)]


def python_put_loop(batch, starts, logs) -> None:
    """The plain-Python baseline: md5 -> 128-bit int -> bisect -> list.append (no copy, no seq, no quotas)."""
    md5 = hashlib.md5
    from_bytes = int.from_bytes
    bisect_right = bisect.bisect_right
    for data, key in batch:
        h = from_bytes(md5(key.encode()).digest(), "big")
        logs[bisect_right(starts, h) - 1].append((data, key))


# -- throughput reporting --------------------------------------------------------------------
_RESULTS: list[dict] = []


def report(benchmark, *, scenario: str, impl: str, records: int | None = None, nbytes: int | None = None,
           calls: int | None = None, unit: str = "records/s", **extra) -> float | None:
    """Throughput from the measured stats (per-round mean): records/s, bytes/s, calls/s.

    ``records``/``nbytes``/``calls`` are the amounts done by ONE timed call of the target
    (pytest-benchmark's mean is per iteration). Returns the headline rate."""
    benchmark.extra_info.update(extra)
    stats = getattr(benchmark, "stats", None)
    if stats is None or not stats.stats.data:     # --benchmark-disable: nothing measured
        return None
    mean = stats.stats.mean
    median = stats.stats.median
    rate = None
    main = records if records is not None else calls
    benchmark.extra_info["rate_unit"] = unit
    benchmark.extra_info["rate_at_median"] = main / median
    if records is not None:
        benchmark.extra_info["records_per_call"] = records
        benchmark.extra_info["records_per_s"] = rate = records / mean
    if nbytes is not None:
        benchmark.extra_info["bytes_per_call"] = nbytes
        benchmark.extra_info["bytes_per_s"] = nbytes / mean
    if calls is not None:
        benchmark.extra_info["calls_per_s"] = calls / mean
        if rate is None:
            rate = calls / mean
    _RESULTS.append({"group": benchmark.group, "scenario": scenario, "impl": impl, "rate": rate, "unit": unit,
                     "mean_s": mean, "rate_median": main / median, "extra": dict(benchmark.extra_info)})
    return rate


def record_value(benchmark, *, scenario: str, impl: str, value: float, unit: str) -> None:
    """A non-rate figure (memory) for the summary table."""
    _RESULTS.append({"group": benchmark.group, "scenario": scenario, "impl": impl, "rate": value, "unit": unit,
                     "mean_s": None, "rate_median": None, "extra": dict(benchmark.extra_info)})


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit.startswith("B/"):
        return f"{v:,.1f}"
    if v >= 1e6:
        return f"{v / 1e6:,.2f} M"
    if v >= 1e3:
        return f"{v / 1e3:,.1f} k"
    return f"{v:,.1f}"


def pytest_report_header(config):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        pass
    return [f"fastkin bench: default core {_core.CORE}, nproc={os.cpu_count()}, cpu={cpu}, "
            f"python={sys.version.split()[0]}"]


def pytest_sessionstart(session):
    if _core.get_core("cy").NAME != "cy":   # pragma: no cover
        raise pytest.UsageError("the compiled core did not load; build it: python setup.py build_ext --inplace")


def pytest_terminal_summary(terminalreporter):
    """Markdown table: every figure of this run, with cy/ref and cy/python-loop ratios."""
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.write_sep("=", "fastkin throughput summary (markdown)")
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for r in _RESULTS:
        rows.setdefault((r["group"], r["scenario"]), {})[r["impl"]] = r
    tr.write_line("Rates are amount per timed call / mean time; 'cy @median' uses the median round instead.")
    tr.write_line("| group | scenario | unit | cy | cy @median | ref | python loop | cy/ref | cy/python loop "
                  "| target (cy) |")
    tr.write_line("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for (group, scen), impls in rows.items():
        cy, ref, py = impls.get("cy"), impls.get("ref"), impls.get("python-loop")
        if py is None:   # "4 shards, quotas on" compares with the "4 shards" python-loop row
            py = rows.get((group, scen.split(",")[0]), {}).get("python-loop")
        unit = next(iter(impls.values()))["unit"]
        cyv = cy and cy["rate"]
        refv = ref and ref["rate"]
        pyv = py and py["rate"]
        r_ref = f"{cyv / refv:,.1f}x" if cyv and refv and not unit.startswith("B/") else "-"
        r_py = f"{cyv / pyv:,.1f}x" if cyv and pyv and not unit.startswith("B/") else "-"
        tgt = TARGETS.get(group)
        t = "-" if tgt is None or cyv is None else f"{_fmt(tgt, unit)}: {'MET' if cyv >= tgt else 'NOT MET'}"
        tr.write_line(f"| {group.split(':')[0]} | {scen} | {unit} | {_fmt(cyv, unit)} | "
                      f"{_fmt(cy and cy['rate_median'], unit)} | {_fmt(refv, unit)} | "
                      f"{_fmt(pyv, unit)} | {r_ref} | {r_py} | {t} |")

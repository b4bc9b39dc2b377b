"""Capacity benchmarks: resharding cost vs the records a shard holds, simulator speed, and quota
accuracy at scale. Baselines are measured in the same run (the empty-shard split/merge).

    PYTHONPATH=src python -m pytest bench/bench_capacity.py -p no:cacheprovider --benchmark-disable-gc \
        -o python_files='bench_*.py'

Sizes can be shrunk for a quick look: FASTKIN_BENCH_FILL (records per filled shard, default 1,000,000),
FASTKIN_BENCH_QUOTA_SHARDS (default 10,000) and FASTKIN_BENCH_QUOTA_SECONDS (default 60).
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

import fastkin
from conftest import record_value
from fastkin._common import initial_hash_ranges
from fastkin.metrics import IN_BYTES, IN_RECORDS, W_THR_RECORDS
from fastkin.sim.simulator import builtin, run

G_RESHARD = "capacity: split / merge, microseconds per call"
G_SIM = "capacity: simulator, engine-seconds per wall-second"
G_QUOTA = "capacity: quota accuracy at scale"

FILL = int(os.environ.get("FASTKIN_BENCH_FILL", 1_000_000))
QUOTA_SHARDS = int(os.environ.get("FASTKIN_BENCH_QUOTA_SHARDS", 10_000))
QUOTA_SECONDS = int(os.environ.get("FASTKIN_BENCH_QUOTA_SECONDS", 60))
ROUNDS = 3
START = 1_700_000_000.0
_RESHARD: dict[tuple[str, int], float] = {}


def _filled_stream(shards: int, filled: list[int], per_shard: int):
    """A provisioned stream (quotas off, full storage) whose shards ``filled`` hold ``per_shard`` records
    each (16 B data + 1 B key), put with ExplicitHashKey so each lands exactly where meant."""
    clock = fastkin.VirtualClock(start=START)
    eng = fastkin.Engine(clock=clock, quotas=False)
    s = eng.create_stream("reshard", shard_count=shards)
    ranges = initial_hash_ranges(shards)
    data = b"0123456789abcdef"
    for i in filled:
        batch = [(data, "k", str(ranges[i][0]))] * 500
        for _ in range(per_shard // 500):
            s.put_records(batch)
        clock.advance(1.0)
    for i in filled:
        assert s.core.shard_end(i) == per_shard // 500 * 500
    return eng, s, ranges


@pytest.mark.benchmark(group=G_RESHARD)
@pytest.mark.parametrize("fill", [0, FILL], ids=["empty", "filled"])
def test_split_cost(benchmark, fill):
    eng, s, ranges = _filled_stream(ROUNDS + 2, list(range(ROUNDS + 2)) if fill else [], fill)
    todo = list(range(ROUNDS + 2))

    def setup():
        i = todo.pop(0)
        mid = str((ranges[i][0] + ranges[i][1] + 1) // 2)
        return (f"shardId-{i:012d}", mid), {"stream_name": "reshard"}

    benchmark.pedantic(eng.split_shard, setup=setup, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    _report_reshard(benchmark, "split", fill)


@pytest.mark.benchmark(group=G_RESHARD)
@pytest.mark.parametrize("fill", [0, FILL], ids=["empty", "filled"])
def test_merge_cost(benchmark, fill):
    pairs = ROUNDS + 1
    eng, s, _ = _filled_stream(2 * pairs, list(range(2 * pairs)) if fill else [], fill)
    todo = list(range(pairs))

    def setup():
        i = todo.pop(0)
        return (f"shardId-{2 * i:012d}", f"shardId-{2 * i + 1:012d}"), {"stream_name": "reshard"}

    benchmark.pedantic(eng.merge_shards, setup=setup, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    _report_reshard(benchmark, "merge", fill)


def _report_reshard(benchmark, op: str, fill: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None or not stats.stats.data:
        return
    us = stats.stats.median * 1e6
    _RESHARD[(op, fill)] = us
    benchmark.extra_info.update({"op": op, "records_per_parent": fill, "median_us": us,
                                 "mean_us": stats.stats.mean * 1e6})
    if fill and (op, 0) in _RESHARD:
        benchmark.extra_info["filled_over_empty"] = us / _RESHARD[(op, 0)]
    record_value(benchmark, scenario=f"{op}, parent holds {fill:,} records", impl="cy", value=us, unit="us (median)")


@pytest.mark.benchmark(group=G_SIM)
def test_simulator_speed(benchmark):
    sc = builtin("aws-on-demand-blog")
    result = benchmark.pedantic(run, args=(sc,), kwargs={"plot": False, "progress": False}, rounds=3, iterations=1)
    assert result.streams["orders"].metrics.series("OpenShardCount", 60)[1][-1] == 40
    stats = getattr(benchmark, "stats", None)
    if stats is None or not stats.stats.data:
        return
    offered = sum(result.producers.values())
    rate = sc.duration / stats.stats.mean
    benchmark.extra_info.update({"engine_seconds": sc.duration, "engine_seconds_per_wall_second": rate,
                                 "engine_seconds_per_wall_second_at_median": sc.duration / stats.stats.median,
                                 "records_offered": offered,
                                 "records_offered_per_wall_second": offered / stats.stats.mean})
    record_value(benchmark, scenario="aws-on-demand-blog (840 engine-s, no plot)", impl="cy", value=rate,
                 unit="engine-s per wall-s")


@pytest.mark.benchmark(group=G_QUOTA)
def test_quota_accuracy_at_scale(benchmark):
    """QUOTA_SHARDS shards, each offered 1.5x its 1 MiB/s write limit for QUOTA_SECONDS engine-seconds
    (128 KiB records, 12 per shard per second against a limit of 8, ExplicitHashKey per shard, metadata
    storage). Every shard must accept within 1 % of the limit, plus at most one second of burst."""
    n, secs = QUOTA_SHARDS, QUOTA_SECONDS
    clock = fastkin.VirtualClock(start=START)
    eng = fastkin.Engine(clock=clock)
    s = eng.create_stream("quota", shard_count=n, storage="metadata")
    s.set_retention_seconds(30.0)
    limit = eng.limits.write_bytes_per_second
    size = 128 * 1024
    per_shard = 12                                     # 1.5 MiB/s offered per shard
    data = b"\0" * (size - 1)
    recs = [(data, "k", str(a)) for a, _ in initial_hash_ranges(n)]
    per_call = eng.limits.put_records_max_bytes // size   # 80 records = 10 MiB per PutRecords
    order = [r for _ in range(per_shard) for r in recs]  # one second's offer, round-robin over the shards
    chunks = [order[i:i + per_call] for i in range(0, len(order), per_call)]
    put = s.put_records

    def offer():
        for _ in range(secs):
            for c in chunks:
                put(c)
            clock.advance(1.0)

    t0 = time.perf_counter()
    benchmark.pedantic(offer, rounds=1, iterations=1)
    wall = time.perf_counter() - t0
    ctr = s.core.counters(list(range(n)))
    accepted = ctr[:, IN_BYTES].astype(np.float64)
    lo, hi = 0.99 * secs * limit, 1.01 * (secs + 1) * limit
    worst_lo, worst_hi = accepted.min() / (secs * limit), accepted.max() / (secs * limit)
    benchmark.extra_info.update({
        "shards": n, "engine_seconds": secs, "record_bytes": size, "offered_per_shard_bytes_per_s": per_shard * size,
        "limit_bytes_per_s": limit, "wall_seconds": wall, "records_offered": n * per_shard * secs,
        "records_accepted": int(ctr[:, IN_RECORDS].sum()), "records_throttled": int(ctr[:, W_THR_RECORDS].sum()),
        "put_records_calls": secs * len(chunks), "offered_records_per_wall_second": n * per_shard * secs / wall,
        "accepted_over_limit_min": worst_lo, "accepted_over_limit_max": worst_hi,
        "engine_seconds_per_wall_second": secs / wall,
    })
    record_value(benchmark, scenario=f"{n:,} shards x {secs} s at 1.5x: wall time", impl="cy", value=wall, unit="s")
    record_value(benchmark, scenario=f"{n:,} shards: least accepted, % of {secs} s x limit", impl="cy",
                 value=100 * worst_lo, unit="%")
    record_value(benchmark, scenario=f"{n:,} shards: most accepted, % of {secs} s x limit", impl="cy",
                 value=100 * worst_hi, unit="%")
    assert (accepted >= lo).all() and (accepted <= hi).all(), (accepted.min(), accepted.max(), lo, hi)

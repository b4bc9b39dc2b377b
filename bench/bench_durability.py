"""Data directories (issue 15): PutRecords (500 x 100 B) into a data directory, per fsync mode, against the
in-memory engine in the same run; recovery time for directories holding N records; GetRecords drain from
adopted (mmapped) segment files against the in-memory engine.

    PYTHONPATH=src python bench/bench_durability.py [--seconds 3] [--recover 1000000,10000000] [--dir /tmp]

Every engine: compiled core, quotas off, a 4-shard stream, the same pre-built batch. "always, 16 threads": 16
threads putting at once into one engine (they share fsyncs: group commit in ShardLog.sync). Recovery: the
directory is filled with N records (100 B data, 4 shards, fsync interval), then 50,000 more are put after
the last fsync (one interval's worth) and the engine is abandoned as kill -9 would leave it: "crash
(interval)" reopens it (each shard's newest file is read only past its tail index: the unsynced tail).
Then "clean" reopens it after a close (every file has its index: the Engine constructor's time is the lock,
SQLite, reading and CRC-checking each index, mapping each file); "crash (never)" deletes each shard's newest
index first (a crash in fsync=never mode, where nothing is tail-indexed: the newest file is read and
CRC-checked frame by frame, at most one segment, 64 MiB, per shard).
Drain: 4 shards x N/4 records read with GetRecords (limit 10,000, quotas off) from the reopened directory
(twice: the first pass maps the pages in) and from an in-memory engine holding the same records.
The page cache is warm (the files were just written). Not a pytest-benchmark module: it prints a table
(bench/README.md shows one).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time

import fastkin

BATCH = [(bytes([i % 251]) * 100, f"key-{i:05d}") for i in range(500)]
TAIL = 50_000           # records put after the last fsync + tail index before the crash (~ one 0.1 s interval)


def _engine(path: str | None, fsync: str = "interval") -> fastkin.Engine:
    if path is None:
        return fastkin.Engine(quotas=False, core="cy")
    return fastkin.Engine(quotas=False, core="cy", data_dir=path, fsync=fsync)


def put_rate(path: str | None, fsync: str, seconds: float, threads: int = 1) -> float:
    """PutRecords calls per second for ``seconds`` of wall time."""
    e = _engine(path, fsync)
    s = e.create_stream("bench", 4)
    s.put_records(BATCH)                       # files opened, first segment rolled
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def run(k: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            s.put_records(BATCH)
            n += 1
        counts[k] = n

    t0 = time.perf_counter()
    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rate = sum(counts) / (time.perf_counter() - t0)
    e.close()
    return rate


def fill(e: fastkin.Engine, records: int) -> float:
    s = e.create_stream("bench", 4)
    t0 = time.perf_counter()
    for _ in range(records // 500):
        s.put_records(BATCH)
    return time.perf_counter() - t0


def reopen(path: str, records: int, fsync: str = "never") -> tuple[float, fastkin.Engine]:
    t0 = time.perf_counter()
    e = _engine(path, fsync)
    took = time.perf_counter() - t0
    assert e.durable is not None and e.durable.recovered_records == records, (e.durable.recovered_records, records)
    return took, e


def drain(e: fastkin.Engine) -> float:
    """Records per second reading every shard of "bench" from TRIM_HORIZON to its end."""
    n = 0
    t0 = time.perf_counter()
    for k in range(4):
        it = e.get_shard_iterator(f"shardId-{k:012d}", "TRIM_HORIZON", stream_name="bench")
        while True:
            page = e.get_records(it, limit=10000, quota=False)
            n += len(page.records)
            if not page.records:
                break
            it = page.next_shard_iterator
    return n / (time.perf_counter() - t0)


def recovery(root: str, records: int, drains: bool) -> dict:
    path = os.path.join(root, f"recover-{records}")
    e = _engine(path, "interval")
    out: dict = {"fill": fill(e, records)}
    assert e.durable is not None
    e.durable.flush()                           # the background thread's last fsync + tail index before ...
    s = e.stream("bench")
    for _ in range(TAIL // 500):                # ... the records of one more interval, then kill -9
        s.put_records(BATCH)
    e.durable.abandon()
    stored = records // 500 * 500 + TAIL
    out["crash_interval"], e = reopen(path, stored, "interval")
    assert e.durable is not None
    out["crash_interval_scanned"] = e.durable.recovery["scanned_bytes"]
    e.close()
    out["bytes"] = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
                       if f.endswith(".seg"))
    out["index_bytes"] = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
                             if f.endswith(".idx"))
    out["clean"], e = reopen(path, stored)
    assert e.durable is not None and e.durable.recovery["scanned_files"] == 0, e.durable.recovery
    if drains:
        out["drain_adopted_1"], out["drain_adopted_2"] = drain(e), drain(e)
    e.close()
    shards = os.path.join(path, "streams", "00000001-bench")
    for shard in os.listdir(shards):            # a crash in fsync=never mode: each shard's newest file unindexed
        idx = sorted(f for f in os.listdir(os.path.join(shards, shard)) if f.endswith(".idx"))
        os.unlink(os.path.join(shards, shard, idx[-1]))
    out["crash"], e = reopen(path, stored)
    assert e.durable is not None
    out["crash_scanned"] = e.durable.recovery["scanned_bytes"]
    e.close()
    if drains:
        m = _engine(None)
        fill(m, stored)
        out["drain_memory_1"], out["drain_memory_2"] = drain(m), drain(m)
    shutil.rmtree(path, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row")
    ap.add_argument("--recover", default="1000000,10000000",
                    help="comma-separated record counts of the recovery benchmark (the first also drains)")
    ap.add_argument("--dir", default=None, help="parent of the data directories (default: the system temp dir)")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="fastkin-bench-", dir=args.dir)
    try:
        rows = []
        base = put_rate(None, "never", args.seconds)
        rows.append(("in-memory", base))
        for mode in ("never", "interval", "always"):
            rows.append((f"data_dir, fsync={mode}", put_rate(os.path.join(root, mode), mode, args.seconds)))
        rows.append(("data_dir, fsync=always, 16 threads",
                     put_rate(os.path.join(root, "always16"), "always", args.seconds, threads=16)))
        print(f"PutRecords 500 x 100 B, compiled core, {args.seconds:g} s per row ({root})")
        print(f"{'engine':<36} {'calls/s':>9} {'records/s':>11} {'MB/s':>7} {'vs memory':>10}")
        for name, rate in rows:
            print(f"{name:<36} {rate:>9,.0f} {rate * 500:>11,.0f} {rate * 500 * 110 / 1e6:>7.1f} "
                  f"{rate / base:>9.0%}")
        counts = [int(x) for x in args.recover.split(",")]
        print("\nrecovery (4 shards, 100 B records; page cache warm)")
        print(f"{'records':>11} {'segments MB':>12} {'indexes MB':>11} {'clean s':>8} {'crash (interval) s':>19} "
              f"{'read MB':>8} {'crash (never) s':>16} {'read MB':>8} {'fill s':>7}")
        results = []
        for k, n in enumerate(counts):
            r = recovery(root, n, drains=k == 0)
            results.append(r)
            print(f"{n:>11,} {r['bytes'] / 1e6:>12,.0f} {r['index_bytes'] / 1e6:>11,.1f} {r['clean']:>8.3f} "
                  f"{r['crash_interval']:>19.3f} {r['crash_interval_scanned'] / 1e6:>8,.1f} "
                  f"{r['crash']:>16.3f} {r['crash_scanned'] / 1e6:>8,.0f} {r['fill']:>7.1f}")
        r = results[0]
        print(f"\nGetRecords drain of {counts[0]:,} records (limit 10,000), records/s: in-memory "
              f"{r['drain_memory_1']:,.0f} / {r['drain_memory_2']:,.0f} (first / second pass); adopted files "
              f"{r['drain_adopted_1']:,.0f} / {r['drain_adopted_2']:,.0f} = "
              f"{r['drain_adopted_1'] / r['drain_memory_1']:.0%} / {r['drain_adopted_2'] / r['drain_memory_2']:.0%}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Data directories (issue 15, phase 1): PutRecords (500 x 100 B) into a data directory, per fsync mode, against
the in-memory engine in the same run, and recovery time for a directory holding N records.

    PYTHONPATH=src python bench/bench_durability.py [--seconds 3] [--recover 1000000] [--dir /tmp]

Every engine: compiled core, quotas off, a 4-shard stream, the same pre-built batch. "always, 16 threads": 16
threads putting at once into one engine (they share fsyncs: group commit in ShardLog.sync). Recovery: the
directory is filled with ``--recover`` records (100 B data, 4 shards, fsync never), closed, and reopened;
the time is the Engine constructor's (lock, SQLite, reading and CRC-checking every segment file, restoring
every record into the core). Not a pytest-benchmark module: it prints a table (bench/README.md shows one).
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


def recovery_seconds(path: str, records: int) -> tuple[float, float]:
    """(seconds to fill, seconds to reopen) a data directory holding ``records`` records."""
    e = _engine(path, "never")
    s = e.create_stream("bench", 4)
    t0 = time.perf_counter()
    for _ in range(records // 500):
        s.put_records(BATCH)
    e.close()
    fill = time.perf_counter() - t0
    t0 = time.perf_counter()
    e = _engine(path, "never")
    reopen = time.perf_counter() - t0
    assert e.durable is not None and e.durable.recovered_records == records // 500 * 500, e.durable
    e.close()
    return fill, reopen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row")
    ap.add_argument("--recover", type=int, default=1_000_000, help="records in the recovery benchmark")
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
        fill, reopen = recovery_seconds(os.path.join(root, "recover"), args.recover)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(root, "recover"))
                   for f in fs)
        print(f"recovery of {args.recover:,} records ({size / 1e6:,.0f} MB on disk): {reopen:.2f} s "
              f"({reopen / args.recover * 1e9:,.0f} ns/record; filling took {fill:.2f} s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

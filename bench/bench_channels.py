"""Channel delivery into the directory target against a plain write loop of the same records, and the cost a
channel adds to PutRecords, measured in the same run (a script, not collected by pytest):

    PYTHONPATH=src python bench/bench_channels.py [--records 200000] [--size 100] [--rounds 3] [--core cy]

Rows (best of ``--rounds``; each round uses a fresh engine and directory, filled outside the timed region):
- plain write loop: the same records read back from the stream (``core.get_records`` over every shard), joined
  and written as one file per window: the floor a channel is compared to;
- channel delivery, BYTE_ARRAY / STRING / JSON, NONE and GZIP: ``clock.advance(freshness)`` after the records
  were put, which reads, validates, joins, compresses and writes them (records/s and MB/s of payload);
- PutRecords of 500-record batches on an on-demand stream without and with an ACTIVE channel (the channel only
  buffers by cursor, so the difference is noise-level).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import fastkin

START = 1_700_000_000.0
ROLE = "arn:aws:iam::123456789012:role/bench"


def _records(n: int, size: int, fmt: str) -> list[tuple[bytes, str]]:
    body = b'{"k": "' + b"x" * max(0, size - 10) + b'"}\n' if fmt == "JSON" else b"y" * (size - 1) + b"\n"
    return [(body, f"key-{i % 4096}") for i in range(n)]


def _fill(engine, records) -> None:
    s = engine.stream("s")
    for i in range(0, len(records), 500):
        s.put_records(records[i:i + 500])


def _engine(root: str, core: str):
    os.makedirs(os.path.join(root, "lake"), exist_ok=True)
    clock = fastkin.VirtualClock(start=START)
    engine = fastkin.Engine(clock=clock, core=core, quotas=False, channel_s3=f"file://{root}")
    engine.create_stream("s")
    return engine, clock


def _channel(engine, fmt: str, compression: str) -> str:
    tmpl = "bench/!{channel-name}/!{yyyy}!{MM}!{dd}!{HH}!{mm}!{extension}"
    return engine.create_channel("c", ROLE, [{"StreamARN": engine.stream("s").arn,
                                              "RecordConfiguration": {"RecordFormatType": fmt}}],
                                 s3_destination_configuration={"StorageConfiguration": {
                                     "BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": "123456789012",
                                     "CompressionType": compression, "OutputKeyTemplate": tmpl}}
                                 )["ChannelDescription"]["ChannelARN"]


def plain_loop(n: int, size: int, core: str) -> float:
    root = tempfile.mkdtemp(prefix="fk-bench-")
    try:
        engine, _ = _engine(root, core)
        _fill(engine, _records(n, size, "BYTE_ARRAY"))
        s = engine.stream("s")
        t0 = time.perf_counter()
        core_ = s.core
        parts = []
        for index in sorted(core_.shards):
            pos, end = core_.shard_horizon(index), core_.shard_end(index)
            while pos < end:
                recs, pos, _ = core_.get_records(index, pos, 10_000, s.now(), False)
                parts.extend(r.data for r in recs)
        with open(os.path.join(root, "lake", "plain"), "wb") as f:
            f.write(b"".join(parts))
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def delivery(n: int, size: int, core: str, fmt: str, compression: str) -> float:
    root = tempfile.mkdtemp(prefix="fk-bench-")
    try:
        engine, clock = _engine(root, core)
        arn = _channel(engine, fmt, compression)
        _fill(engine, _records(n, size, fmt))
        t0 = time.perf_counter()
        clock.advance(300)
        dt = time.perf_counter() - t0
        assert engine.channel(arn).metrics.total("DeliveryToS3.SuccessfulRecordCount") == n
        return dt
    finally:
        shutil.rmtree(root, ignore_errors=True)


def put_cost(n: int, size: int, core: str, with_channel: bool) -> float:
    root = tempfile.mkdtemp(prefix="fk-bench-")
    try:
        engine, _ = _engine(root, core)
        if with_channel:
            _channel(engine, "BYTE_ARRAY", "NONE")
        records = _records(n, size, "BYTE_ARRAY")
        s = engine.stream("s")
        t0 = time.perf_counter()
        for i in range(0, n, 500):
            s.put_records(records[i:i + 500])
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--core", default=None)
    a = p.parse_args()
    n, size = a.records, a.size
    mb = n * size / 1e6

    def best(fn, *args):
        return min(fn(*args) for _ in range(a.rounds))

    print(f"{n:,} records of {size} B, best of {a.rounds}, core {fastkin.Engine(core=a.core).core_name}")
    base = best(plain_loop, n, size, a.core)
    print(f"{'plain read + join + write loop':40s} {n / base:>12,.0f} records/s {mb / base:8.1f} MB/s   1.00x")
    for fmt, comp in (("BYTE_ARRAY", "NONE"), ("STRING", "NONE"), ("JSON", "NONE"), ("BYTE_ARRAY", "GZIP")):
        t = best(delivery, n, size, a.core, fmt, comp)
        print(f"{'channel ' + fmt + ' ' + comp:40s} {n / t:>12,.0f} records/s {mb / t:8.1f} MB/s "
              f"{t / base:6.2f}x")
    without = best(put_cost, n, size, a.core, False)
    with_ = best(put_cost, n, size, a.core, True)
    print(f"{'PutRecords, no channel':40s} {n / without:>12,.0f} records/s")
    print(f"{'PutRecords, one ACTIVE channel':40s} {n / with_:>12,.0f} records/s  "
          f"({(with_ / without - 1) * 100:+.1f} %)")


if __name__ == "__main__":
    main()

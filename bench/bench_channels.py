"""Channel delivery into the directory target against a plain write loop of the same records, and the cost a
channel adds to PutRecords, measured in the same run (a script, not collected by pytest):

    PYTHONPATH=src python bench/bench_channels.py [--records 200000] [--size 100] [--rounds 3] [--core cy]

Rows (best of ``--rounds``; each round uses a fresh engine and directory, filled outside the timed region):
- plain write loop: the same records read back from the stream (``core.get_records`` over every shard), joined
  and written as one file per window: the floor a channel is compared to;
- channel delivery, BYTE_ARRAY / STRING / JSON, NONE and GZIP: ``clock.advance(freshness)`` after the records
  were put, which reads, validates, joins, compresses and writes them (records/s and MB/s of payload);
- Iceberg (needs ``fastkin[channels]``): a plain pyarrow write of the same JSON records (read back, ``json.loads``,
  timestamps parsed, ``pa.Table.from_pylist``, one ZSTD Parquet file) against an S3 Tables channel committing them
  (validation against the schema, one snapshot), unpartitioned and TIME_HOUR-partitioned;
- PutRecords of 500-record batches on an on-demand stream without and with an ACTIVE channel (the channel only
  buffers by cursor, so the difference is noise-level).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
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


ICE_SCHEMA = {"type": "object", "required": ["k", "n", "at"], "properties": {
    "k": {"type": "string"}, "n": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}}


def _ice_records(n: int, size: int) -> list[tuple[bytes, str]]:
    pad = "x" * max(1, size - 60)
    return [(json.dumps({"k": pad, "n": i, "at": f"2023-11-14T2{2 + i % 2}:{i % 60:02d}:00Z"}).encode(),
             f"key-{i % 4096}") for i in range(n)]


def _ice_engine(root: str, core: str):
    engine, clock = _engine(root, core)
    os.makedirs(os.path.join(root, "tables", "schemas", "reg"))
    with open(os.path.join(root, "tables", "schemas", "reg", "s.json"), "w") as f:
        json.dump(ICE_SCHEMA, f)
    engine.set_channel_iceberg(os.path.join(root, "tables"))
    return engine, clock


def iceberg_plain(n: int, size: int, core: str) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq
    root = tempfile.mkdtemp(prefix="fk-bench-")
    try:
        engine, _ = _engine(root, core)
        _fill(engine, _ice_records(n, size))
        s = engine.stream("s")
        schema = pa.schema([pa.field("k", pa.string(), False), pa.field("n", pa.int64(), False),
                            pa.field("at", pa.timestamp("us", tz="UTC"), False)])
        t0 = time.perf_counter()
        core_ = s.core
        rows = []
        for index in sorted(core_.shards):
            pos, end = core_.shard_horizon(index), core_.shard_end(index)
            while pos < end:
                recs, pos, _ = core_.get_records(index, pos, 10_000, s.now(), False)
                for r in recs:
                    d = json.loads(r.data)
                    d["at"] = dt.datetime.fromisoformat(d["at"].replace("Z", "+00:00"))
                    rows.append(d)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), os.path.join(root, "lake", "plain.parquet"),
                       compression="zstd")
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def iceberg_delivery(n: int, size: int, core: str, partitioned: bool) -> float:
    root = tempfile.mkdtemp(prefix="fk-bench-")
    try:
        engine, clock = _ice_engine(root, core)
        table = {"TableBucketARN": "arn:aws:s3tables:us-east-1:123456789012:bucket/bench", "Namespace": "ns",
                 "TableName": "t", "CompressionType": "ZSTD"}
        if partitioned:
            table["PartitionSpec"] = {"PartitionFields": [{"Transform": "TIME_HOUR", "SourceName": "at"}]}
        arn = engine.create_channel("c", ROLE, [{"StreamARN": engine.stream("s").arn, "RecordConfiguration": {
            "RecordFormatType": "JSON", "GSRSchemaARN": "arn:aws:glue:us-east-1:123456789012:schema/reg/s"}}],
            s3_tables_destination_configuration={"DeadLetterQueueS3Configuration": {
                "BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": "123456789012"},
                "S3TablesConfigurationList": [table]})["ChannelDescription"]["ChannelARN"]
        _fill(engine, _ice_records(n, size))
        t0 = time.perf_counter()
        clock.advance(300)
        took = time.perf_counter() - t0
        c = engine.channel(arn)
        assert c.failed_reason is None, c.failed_reason
        assert c.metrics.total("DeliveryToIceberg.SuccessfulRowCount") == n
        return took
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
    try:
        import pyarrow  # noqa: F401
        import pyiceberg  # noqa: F401
    except ImportError:
        print("Iceberg rows skipped: pip install '.[channels]' (pyiceberg, pyarrow)")
    else:
        base = best(iceberg_plain, n, size, a.core)
        print(f"{'plain pyarrow write (json.loads, Parquet)':40s} {n / base:>12,.0f} records/s {mb / base:8.1f} MB/s "
              "  1.00x")
        for part in (False, True):
            t = best(iceberg_delivery, n, size, a.core, part)
            print(f"{'channel S3 Tables' + (' TIME_HOUR' if part else ''):40s} {n / t:>12,.0f} records/s "
                  f"{mb / t:8.1f} MB/s {t / base:6.2f}x")
    without = best(put_cost, n, size, a.core, False)
    with_ = best(put_cost, n, size, a.core, True)
    print(f"{'PutRecords, no channel':40s} {n / without:>12,.0f} records/s")
    print(f"{'PutRecords, one ACTIVE channel':40s} {n / with_:>12,.0f} records/s  "
          f"({(with_ / without - 1) * 100:+.1f} %)")


if __name__ == "__main__":
    main()

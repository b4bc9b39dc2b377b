"""Queue delivery: ReceiveQueueRecords + AcknowledgeQueueRecords against a plain GetRecords drain of the same
records, measured in the same run (a script, not collected by pytest):

    PYTHONPATH=src python bench/bench_queues.py [--records 200000] [--rounds 3] [--boto-records 20000]

Rows (records/s, best of ``--rounds``; each round drains a fresh engine filled outside the timed region):
- engine, GetRecords drain: ``engine.get_records(it, 10000)`` over every shard from TRIM_HORIZON, and the same
  with the response dicts built (``records_dicts``, what GetRecords answers), the baseline a queue is compared to;
- engine, receive + ack: ``engine.receive_queue_records(limit=10)`` then ``acknowledge_queue_records`` of the 10;
- boto3 in-process (``mock_kinesis``): GetRecords drain vs receive + ack, through botocore's client machinery;
- boto3 over HTTP (``--http``): the same against ``fastkin serve`` run in a thread of this process (the client and
  the server share one GIL, so this is a lower bound for a separate server process).
Then memory per in-flight record: tracemalloc over receiving min(``--records``, 100,000) records without
acknowledging them (the responses dropped), divided by the records in flight.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import time
import tracemalloc

import boto3

import fastkin
from fastkin.stream import records_dicts

START = 1_700_000_000.0


def filled_engine(n: int, core: str | None = None):
    engine = fastkin.Engine(clock=fastkin.VirtualClock(START), quotas=False, core=core)
    s = engine.create_stream("s")                        # on demand, 4 shards
    payload = b"x" * 100
    for i in range(0, n, 500):
        s.put_records([(payload, f"key-{j}") for j in range(i, min(i + 500, n))])
    return engine, s


def queue_of(engine, s, vt: int = 43200) -> str:
    return engine.create_queue("q", [{"StreamARN": s.arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}],
                               {"VisibilityTimeoutSeconds": vt})["QueueDescription"]["QueueARN"]


def drain_get_records(engine, s, build_dicts: bool) -> int:
    got = 0
    for info in s.open_shards():
        it = engine.get_shard_iterator(info.shard_id, "TRIM_HORIZON", stream_name="s")
        while True:
            res = engine.get_records(it, 10000)
            if not res.records:
                break
            if build_dicts:
                records_dicts(res.records)
            got += len(res.records)
            it = res.next_shard_iterator
    return got


def drain_queue(engine, q: str) -> int:
    got = 0
    receive, ack = engine.receive_queue_records, engine.acknowledge_queue_records
    while True:
        recs = receive(q, 10, 1, _wait=False)["QueueRecords"]
        if not recs:
            return got
        out = ack(q, [{"ReceiptHandle": r["ReceiptHandle"]} for r in recs])
        assert not out["Failed"]
        got += len(recs)


def best(rounds: int, n: int, run) -> float:
    rate = 0.0
    for _ in range(rounds):
        gc.collect()
        t0 = time.perf_counter()
        got = run()
        dt = time.perf_counter() - t0
        assert got == n, (got, n)
        rate = max(rate, n / dt)
    return rate


def engine_rows(n: int, rounds: int, core: str | None) -> dict[str, float]:
    rows = {}
    prepared: list = []

    def prep_get():
        prepared.append(filled_engine(n, core))

    def run_get(build: bool):
        engine, s = prepared.pop()
        return drain_get_records(engine, s, build)

    def run_queue():
        engine, s = prepared.pop()
        return drain_queue(engine, queue_of(engine, s))

    for label, run in (("GetRecords drain (Record objects)", lambda: run_get(False)),
                       ("GetRecords drain (+ response dicts)", lambda: run_get(True)),
                       ("receive + acknowledge (10 per call)", run_queue)):
        rate = 0.0
        for _ in range(rounds):
            prep_get()
            rate = max(rate, best(1, n, run))
        rows[label] = rate
    return rows


def boto_rows(n: int, rounds: int, server=None) -> dict[str, float]:
    rows = {}
    session = boto3.session.Session()

    def client():
        kw = {"endpoint_url": server.url} if server is not None else {}
        return session.client("kinesis", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t",
                              **kw)

    def transport(engine):
        if server is None:
            return fastkin.mock_kinesis(engine=engine)
        server.app.reset(engine)
        return contextlib.nullcontext()

    def get_drain():
        engine, s = filled_engine(n)
        with transport(engine):
            c = client()
            t0 = time.perf_counter()
            got = 0
            for info in s.open_shards():
                it = c.get_shard_iterator(StreamName="s", ShardId=info.shard_id,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                while True:
                    r = c.get_records(ShardIterator=it, Limit=10000)
                    if not r["Records"]:
                        break
                    got += len(r["Records"])
                    it = r["NextShardIterator"]
            return got, time.perf_counter() - t0

    def queue_drain():
        engine, s = filled_engine(n)
        q = queue_of(engine, s)
        with transport(engine):
            c = client()
            t0 = time.perf_counter()
            got = 0
            while True:
                recs = c.receive_queue_records(QueueARN=q, Limit=10, WaitTimeSeconds=1)["QueueRecords"]
                if not recs:
                    break
                c.acknowledge_queue_records(QueueARN=q, Entries=[{"ReceiptHandle": r["ReceiptHandle"]} for r in recs])
                got += len(recs)
            return got, time.perf_counter() - t0

    for label, run in (("boto3 GetRecords drain (Limit=10000)", get_drain),
                       ("boto3 receive + acknowledge (10 per call)", queue_drain)):
        rate = 0.0
        for _ in range(rounds):
            got, dt = run()
            assert got == n
            rate = max(rate, n / dt)
        rows[label] = rate
    return rows


def memory_per_in_flight(n: int, core: str | None) -> float:
    engine, s = filled_engine(n, core)
    q = queue_of(engine, s)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    while True:
        recs = engine.receive_queue_records(q, 10, 1, _wait=False)["QueueRecords"]
        if not recs:
            break
    del recs
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert engine.queue(q).in_flight == n
    return (after - before) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--boto-records", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--core", default=None, help="cy (default when built) or ref")
    ap.add_argument("--http", type=int, default=0, metavar="N", help="also N records over HTTP (fastkin serve)")
    a = ap.parse_args()
    print(f"fastkin core: {fastkin.Engine(core=a.core).core_name}, {a.records} records of 100 B, 4 shards, "
          f"best of {a.rounds}")
    rows = engine_rows(a.records, a.rounds, a.core)
    base = rows["GetRecords drain (+ response dicts)"]
    for label, rate in rows.items():
        print(f"  engine  {label:42s} {rate:12,.0f} rec/s   {rate / base:5.2f}x of the dict drain")
    if a.boto_records:
        rows = boto_rows(a.boto_records, a.rounds)
        base = rows["boto3 GetRecords drain (Limit=10000)"]
        for label, rate in rows.items():
            print(f"  mock    {label:42s} {rate:12,.0f} rec/s   {rate / base:5.2f}x of the GetRecords drain")
    if a.http:
        from fastkin.wire.http import ServerThread
        with ServerThread(port=0) as server:
            rows = boto_rows(a.http, a.rounds, server)
        base = rows["boto3 GetRecords drain (Limit=10000)"]
        for label, rate in rows.items():
            print(f"  http    {label:42s} {rate:12,.0f} rec/s   {rate / base:5.2f}x of the GetRecords drain")
    held = min(a.records, 100_000)         # below the 120,000 in-flight cap
    print(f"  memory per in-flight record (tracemalloc, {held} in flight): {memory_per_in_flight(held, a.core):.0f} B")


if __name__ == "__main__":
    main()

"""Producer and consumer throughput, each against a baseline measured in the same run:
- producer: records/s through fastkin.Producer (plain and aggregated) vs calling put_records directly;
- overload delivery: engine-seconds to deliver a 10x overload at 4 shards, producer vs a naive retry loop;
- consumer: records/s through a no-op processor (polling, fan-out) vs a plain get_records loop;
- failover: engine-seconds from a worker's death to full coverage of its shards.
"""
from __future__ import annotations

import pytest

import fastkin
from fastkin.kcl.leases import MemoryLeaseStore
from fastkin.kcl.worker import Consumer, RecordProcessor, drive
from fastkin.kpl.producer import Producer

START = 1_700_000_000.0


def report(benchmark, *, scenario: str, impl: str, records: int, unit: str = "records/s", **extra) -> None:
    """records/s from the measured mean (and the other figures) into extra_info."""
    stats = benchmark.stats.stats if getattr(benchmark, "stats", None) else None
    benchmark.extra_info.update(scenario=scenario, impl=impl, **{k: v for k, v in extra.items() if v is not None})
    if stats is not None and stats.data:
        benchmark.extra_info["records_per_s"] = round(records / stats.mean)

G_PRODUCER = "producer: 100 B records into 4 shards, records/s"
G_OVERLOAD = "producer: 10x overload at 4 shards, engine-seconds to deliver"
G_CONSUMER = "consumer: no-op processor, records/s"
G_FAILOVER = "consumer: worker death to full coverage, engine-seconds"
N = 20_000


def fresh(quotas=False, shards=4):
    clock = fastkin.VirtualClock(START)
    eng = fastkin.Engine(clock=clock, quotas=quotas)
    s = eng.create_stream("s", shard_count=shards)
    return clock, eng, s


@pytest.mark.parametrize("impl", ["put_records directly", "producer", "producer + aggregation"])
def test_producer_throughput(benchmark, batch500, impl):
    benchmark.group = G_PRODUCER
    records = (batch500 * (N // len(batch500)))[:N]

    def run():
        clock, eng, s = fresh()
        if impl == "put_records directly":
            for i in range(0, N, 500):
                s.put_records(records[i:i + 500])
            return
        with Producer(eng, "s", aggregate=impl.endswith("aggregation"), linger=0.0) as p:
            for d, k in records:
                p.put(d, k)

    benchmark.pedantic(run, rounds=3, iterations=1)
    report(benchmark, scenario="20,000 x 100 B, quotas off", impl=impl, records=N)


def naive_delivery(n, shards):
    clock, eng, s = fresh(quotas=True, shards=shards)
    pending = [(b"x" * 100, f"k{i}") for i in range(n)]
    t0 = clock()
    calls = 0
    while pending:
        nxt = []
        for i in range(0, len(pending), 500):
            chunk = pending[i:i + 500]
            res = s.put_records(chunk)
            calls += 1
            nxt += [r for r, x in zip(chunk, res) if x.error_code]
        pending = nxt
        if pending:
            clock.advance(0.1)
    return clock() - t0, calls


@pytest.mark.parametrize("impl", ["naive retry loop", "producer"])
def test_overload_delivery(benchmark, impl):
    benchmark.group = G_OVERLOAD
    n = 40_000                                    # 10x the 4,000 records/s of 4 shards, offered at once
    out = {}

    def run():
        if impl == "naive retry loop":
            out["engine_seconds"], out["calls"] = naive_delivery(n, 4)
            return
        clock, eng, s = fresh(quotas=True)
        t0 = clock()
        with Producer(eng, "s", seed=0) as p:
            for i in range(n):
                p.put(b"x" * 100, f"k{i}")
        out["engine_seconds"] = clock() - t0
        out["calls"] = p.metrics.requests
        out["throttled"] = p.metrics.throttled

    benchmark.pedantic(run, rounds=1, iterations=1)
    report(benchmark, scenario="40,000 x 100 B, 4 shards, quotas on", impl=impl, records=n, unit="records/s",
           engine_seconds=round(out["engine_seconds"], 2), put_records_calls=out["calls"],
           throttled=out.get("throttled"))


class NoOp(RecordProcessor):
    def process_records(self, records, checkpointer):
        pass


@pytest.mark.parametrize("impl", ["get_records loop", "consumer polling", "consumer fan-out"])
def test_consumer_throughput(benchmark, batch500, impl):
    benchmark.group = G_CONSUMER
    n = 40_000

    def setup():
        clock, eng, s = fresh(shards=4)
        for _i in range(0, n, 500):
            s.put_records(batch500)
        return (clock, eng, s), {}

    def run(clock, eng, s):
        if impl == "get_records loop":
            got = 0
            for sh in s.visible_shards():
                it = s.get_shard_iterator(sh.shard_id, "TRIM_HORIZON")
                while True:
                    r = s.get_records(it)
                    got += len(r.records)
                    it = r.next_shard_iterator
                    if not r.records:
                        break
            assert got == n
            return
        w = Consumer(eng, "s", "app", NoOp, lease_store=MemoryLeaseStore(), min_read_interval=0.0,
                     retrieval="fanout" if impl.endswith("fan-out") else "polling")
        drive([w], lambda: w.metrics.records_processed >= n, clock, step=0.2)

    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    report(benchmark, scenario="40,000 x 100 B in 4 shards, quotas off", impl=impl, records=n)


def test_failover_time(benchmark):
    benchmark.group = G_FAILOVER
    out = {}

    def run():
        clock, eng, s = fresh(shards=8)
        store = MemoryLeaseStore()
        ws = [Consumer(eng, "s", "app", NoOp, worker_id=f"w{i}", lease_store=store, failover_time=10.0)
              for i in range(2)]
        drive(ws, lambda: sorted(len(w.owned_shards) for w in ws) == [4, 4], clock)
        ws[0].kill()
        out["engine_seconds"] = drive(ws[1:], lambda: len(ws[1].owned_shards) == 8, clock, step=0.1)

    benchmark.pedantic(run, rounds=1, iterations=1)
    report(benchmark, scenario="8 shards, 2 workers, failover_time 10 s", impl="consumer", records=8,
           unit="records/s", engine_seconds=round(out["engine_seconds"], 2))

"""Workers started together: leases change hands by graceful handoff, so nothing is processed twice
without a failure; a killed worker's shards are re-read only after its last checkpoint."""
import threading
import time

import pytest

import fastkin
from fastkin.kcl.leases import DynamoDBLeaseStore, MemoryLeaseStore, SQLiteLeaseStore
from fastkin.kcl.worker import Consumer, RecordProcessor, drive
from fastkin.kpl.producer import Producer

START = 1_700_000_000.0


class Recorder:
    """Processor factory: every user record handed over is kept as (value, shard, seq, sub).
    ``checkpoint_every``: checkpoint after every n-th batch (0: never; the handoff must checkpoint)."""

    def __init__(self, checkpoint_every=1):
        self.seen = []
        self.lock = threading.Lock()
        self.checkpoint_every = checkpoint_every

    def __call__(self):
        outer = self

        class P(RecordProcessor):
            batches = 0

            def initialize(self, shard_id, pos):
                self.shard = shard_id

            def process_records(self, records, checkpointer):
                with outer.lock:
                    outer.seen.extend((int(r.data), self.shard, int(r.sequence_number), r.sub_sequence_number or 0)
                                      for r in records)
                self.batches += 1
                if outer.checkpoint_every and self.batches % outer.checkpoint_every == 0:
                    checkpointer.checkpoint()

        return P()

    def values(self):
        with self.lock:
            return [v for v, *_ in self.seen]


def put(s, lo, hi, keys=37):
    for i in range(lo, hi, 250):
        s.put_records([(f"{j}".encode(), f"k{j % keys}") for j in range(i, min(hi, i + 250))])


def balanced(ws, n_shards):
    owned = [len(w.owned_shards) for w in ws]
    return sum(owned) == n_shards and max(owned) - min(owned) <= 1


def make_store(kind, tmp_path, stack):
    if kind == "memory":
        return MemoryLeaseStore()
    if kind == "sqlite":
        return SQLiteLeaseStore(str(tmp_path / "leases.db"))
    moto = pytest.importorskip("moto")
    import boto3

    stack.enter_context(moto.mock_aws())
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return DynamoDBLeaseStore("app-leases", client)


@pytest.mark.parametrize("n_workers,kind,checkpoint_every", [
    (2, "memory", 1), (3, "memory", 0), (4, "memory", 2), (3, "sqlite", 1), (2, "dynamodb", 0)])
def test_workers_started_together_virtual_clock(n_workers, kind, checkpoint_every, tmp_path):
    from contextlib import ExitStack

    clock = fastkin.VirtualClock(START)
    eng = fastkin.Engine(clock=clock, quotas=False)
    s = eng.create_stream("s", shard_count=8)
    put(s, 0, 1500)
    rec = Recorder(checkpoint_every)
    with ExitStack() as stack:
        store = make_store(kind, tmp_path, stack)
        ws = [Consumer(eng, "s", "app", rec, worker_id=f"w{i}", lease_store=store, failover_time=3.0, max_records=100,
                       idle_time_between_reads=0.2, min_read_interval=0.1) for i in range(n_workers)]
        n = 1500
        for _ in range(6):                      # more records while the leases move
            for _ in range(10):
                for w in ws:
                    w.run_once()
                clock.advance(0.1)
            put(s, n, n + 250)
            n += 250
        drive(ws, lambda: len(rec.seen) >= n and balanced(ws, 8), clock, max_seconds=120)
        for _ in range(30):                     # and nothing more happens after that
            for w in ws:
                w.run_once()
            clock.advance(0.1)
        assert sorted(rec.values()) == list(range(n))          # exactly once: none missing, no duplicates
        assert balanced(ws, 8)
        assert sum(w.metrics.leases_stolen for w in ws) >= n_workers - 1
        assert sum(w.metrics.leases_lost for w in ws) == 0


@pytest.mark.parametrize("n_workers", [2, 3, 4])
def test_workers_started_together_real_clock(n_workers):
    eng = fastkin.Engine(quotas=False)
    s = eng.create_stream("s", shard_count=8)
    put(s, 0, 1000)
    rec = Recorder(checkpoint_every=0)
    store = MemoryLeaseStore()
    ws = [Consumer(eng, "s", "app", rec, worker_id=f"w{i}", lease_store=store, failover_time=1.5,
                   lease_interval=0.15, idle_time_between_reads=0.05, min_read_interval=0.01, max_records=100)
          for i in range(n_workers)]
    for w in ws:
        w.start()
    n = 1000
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline and (n < 3000 or len(rec.seen) < n or not balanced(ws, 8)):
            if n < 3000:
                put(s, n, n + 250)
                n += 250
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        for w in ws:                            # stop them all before any releases its leases
            w._stop.set()
        for w in ws:
            w._thread.join()
        was_balanced = balanced(ws, 8)
        for w in ws:
            w.shutdown()
    assert all(w.error is None for w in ws)
    assert sorted(rec.values()) == list(range(n))          # exactly once
    assert was_balanced
    assert sum(w.metrics.leases_stolen for w in ws) >= n_workers - 1
    assert sum(w.metrics.leases_lost for w in ws) == 0


def test_aggregated_records_hand_off_at_sub_sequence_granularity():
    clock = fastkin.VirtualClock(START)
    eng = fastkin.Engine(clock=clock, quotas=False)
    eng.create_stream("s", shard_count=4)
    with Producer(eng, "s", aggregate=True) as p:
        for i in range(2000):
            p.put(f"{i}".encode(), f"k{i % 29}")
    rec = Recorder(checkpoint_every=0)
    store = MemoryLeaseStore()
    ws = [Consumer(eng, "s", "app", rec, worker_id=f"w{i}", lease_store=store, failover_time=2.0, max_records=3,
                   min_read_interval=0.5) for i in range(2)]
    drive(ws, lambda: len(rec.seen) >= 2000 and balanced(ws, 4), clock, max_seconds=120)
    assert sorted(rec.values()) == list(range(2000))
    handed = [lease for lease in store.list() if lease["checkpoint"].isdigit()]
    assert handed and any(lease["checkpointSubSequenceNumber"] > 0 for lease in handed)


def test_failover_duplicates_only_after_the_dead_workers_last_checkpoint():
    clock = fastkin.VirtualClock(START)
    eng = fastkin.Engine(clock=clock, quotas=False)
    s = eng.create_stream("s", shard_count=6)
    put(s, 0, 1500)
    rec = Recorder(checkpoint_every=3)
    store = MemoryLeaseStore()
    ws = [Consumer(eng, "s", "app", rec, worker_id=f"w{i}", lease_store=store, failover_time=3.0, max_records=50,
                   min_read_interval=0.5) for i in range(3)]
    drive(ws, lambda: balanced(ws, 6) and len(rec.seen) >= 600, clock, max_seconds=120)
    dead = ws[0]
    dead_shards = set(dead.owned_shards)
    dead.kill()
    at_kill = {lease["leaseKey"]: (int(lease["checkpoint"]) if lease["checkpoint"].isdigit() else -1,
                                   lease["checkpointSubSequenceNumber"]) for lease in store.list()}
    before = len(rec.seen)
    put(s, 1500, 3000)
    drive(ws[1:], lambda: len(set(rec.values())) >= 3000 and balanced(ws[1:], 6), clock, max_seconds=120)
    assert sorted(set(rec.values())) == list(range(3000))
    counts = {}
    for v, *_ in rec.seen:
        counts[v] = counts.get(v, 0) + 1
    dups = [x for x in rec.seen[before:] if counts[x[0]] > 1]
    assert dups, "the dead worker had processed records past its last checkpoint"
    for _, shard, seq, sub in dups:
        assert shard in dead_shards and (seq, sub) > at_kill[shard]
    assert all(c == 2 for c in counts.values() if c > 1)


def test_a_requester_that_dies_gets_the_lease_only_until_it_expires():
    """The owner hands off to a worker that died after asking: the lease (checkpointed by the handoff) expires
    after failover_time and is taken back, with nothing processed twice."""
    clock = fastkin.VirtualClock(START)
    eng = fastkin.Engine(clock=clock, quotas=False)
    s = eng.create_stream("s", shard_count=2)
    put(s, 0, 600)
    rec = Recorder(checkpoint_every=0)
    store = MemoryLeaseStore()
    w0, w1 = (Consumer(eng, "s", "app", rec, worker_id=f"w{i}", lease_store=store, failover_time=2.0)
              for i in range(2))
    drive([w0, w1], lambda: w1.metrics.lease_requests >= 1, clock, max_seconds=30)
    assert w1.owned_shards == [] and any(lease["pendingOwner"] == "w1" for lease in store.list())
    w1.kill()
    put(s, 600, 1200)
    drive([w0], lambda: w0.metrics.leases_handed_off >= 1, clock, max_seconds=30)
    drive([w0], lambda: len(rec.seen) >= 1200 and len(w0.owned_shards) == 2, clock, max_seconds=60)
    assert sorted(rec.values()) == list(range(1200))
    assert w0.metrics.leases_taken >= 3                   # 2 at the start, 1 expired after the handoff

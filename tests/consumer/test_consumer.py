import random
import threading

import pytest

import fastkin
from fastkin.errors import ShardEndNotCheckpointedError
from fastkin.kcl.leases import DynamoDBLeaseStore, MemoryLeaseStore, SQLiteLeaseStore
from fastkin.kcl.worker import Consumer, RecordProcessor, drive
from fastkin.kpl.producer import Producer

START = 1_700_000_000.0


class Collector:
    """A processor factory whose processors append (key, value, shard) to one list and checkpoint every batch."""

    def __init__(self, checkpoint_every=True):
        self.seen = []
        self.lock = threading.Lock()
        self.ended = []
        self.checkpoint_every = checkpoint_every

    def __call__(self):
        outer = self

        class P(RecordProcessor):
            def initialize(self, shard_id, pos):
                self.shard = shard_id

            def process_records(self, records, checkpointer):
                with outer.lock:
                    outer.seen.extend((r.partition_key, int(r.data), self.shard) for r in records)
                if outer.checkpoint_every:
                    checkpointer.checkpoint()

            def shard_ended(self, checkpointer):
                outer.ended.append(self.shard)
                checkpointer.checkpoint()

        return P()

    def values(self):
        return [v for _, v, _ in self.seen]


def setup(core_name="cy", shards=4, quotas=True):
    clock = fastkin.VirtualClock(START)
    eng = fastkin.Engine(clock=clock, core=core_name, quotas=quotas)
    s = eng.create_stream("s", shard_count=shards)
    return clock, eng, s


def put_range(s, clock, lo, hi, keys=31):
    for i in range(lo, hi, 500):
        s.put_records([(f"{j}".encode(), f"k{j % keys}") for j in range(i, min(hi, i + 500))])
        clock.advance(1.0)


def reshard_randomly(eng, s, rng, split: bool):
    """Split a random open shard in the middle, or merge a random adjacent pair."""
    open_ = sorted(s.open_shards(), key=lambda x: x.start_hash)
    if split:
        x = rng.choice(open_)
        eng.split_shard(x.shard_id, str((x.start_hash + x.end_hash) // 2), stream_name="s")
    else:
        i = rng.randrange(len(open_) - 1)
        eng.merge_shards(open_[i].shard_id, open_[i + 1].shard_id, stream_name="s")


def assert_key_order(seen):
    by_key = {}
    for k, v, _ in seen:
        by_key.setdefault(k, []).append(v)
    for vals in by_key.values():
        dedup = list(dict.fromkeys(vals))
        assert dedup == sorted(dedup)


def test_single_worker_reads_everything_in_key_order(core_name):
    clock, eng, s = setup(core_name)
    put_range(s, clock, 0, 3000)
    col = Collector()
    w = Consumer(eng, "s", "app", col, lease_store=MemoryLeaseStore())
    drive([w], lambda: len(col.seen) >= 3000, clock)
    assert sorted(col.values()) == list(range(3000))
    assert_key_order(col.seen)
    leases = {lease["leaseKey"]: lease for lease in w.store.list()}
    assert all(lease["leaseOwner"] == w.worker_id and lease["checkpoint"].isdigit() for lease in leases.values())


def test_workers_balance_leases():
    clock, eng, s = setup(shards=6)
    store = MemoryLeaseStore()
    col = Collector()
    ws = [Consumer(eng, "s", "app", col, worker_id=f"w{i}", lease_store=store, failover_time=3.0) for i in range(3)]
    drive(ws, lambda: sorted(len(w.owned_shards) for w in ws) == [2, 2, 2], clock, max_seconds=60)
    owned = [x for w in ws for x in w.owned_shards]
    assert sorted(owned) == [f"shardId-{i:012d}" for i in range(6)]


def test_failover_after_a_worker_dies_with_bounded_duplicates():
    clock, eng, s = setup(shards=4)
    store = MemoryLeaseStore()
    col = Collector()
    ws = [Consumer(eng, "s", "app", col, worker_id=f"w{i}", lease_store=store, failover_time=5.0) for i in range(2)]
    drive(ws, lambda: sorted(len(w.owned_shards) for w in ws) == [2, 2], clock, max_seconds=60)
    put_range(s, clock, 0, 2000)
    drive(ws, lambda: len(set(col.values())) >= 2000, clock, max_seconds=60)
    dead_shards = ws[0].owned_shards
    ws[0].kill()
    t0 = clock()
    put_range(s, clock, 2000, 4000)
    drive(ws[1:], lambda: len(set(col.values())) >= 4000, clock, max_seconds=120)
    assert sorted(ws[1].owned_shards) == [f"shardId-{i:012d}" for i in range(4)]
    assert clock() - t0 >= 5.0 and ws[1].metrics.leases_taken >= 2
    assert sorted(set(col.values())) == list(range(4000))
    # the dead worker checkpointed every batch: nothing is processed twice
    assert len(col.values()) == 4000
    assert_key_order(col.seen)
    assert set(dead_shards) <= set(ws[1].owned_shards)


def test_duplicates_after_failover_are_only_records_since_the_last_checkpoint():
    clock, eng, s = setup(shards=1)
    store = MemoryLeaseStore()
    col = Collector(checkpoint_every=False)
    w1 = Consumer(eng, "s", "app", col, worker_id="w1", lease_store=store, failover_time=2.0, max_records=100)
    put_range(s, clock, 0, 1000)
    drive([w1], lambda: len(col.seen) >= 300, clock)
    w1._checkpoint(w1._shards["shardId-000000000000"], *w1._shards["shardId-000000000000"].last_delivered)
    done = len(col.seen)
    drive([w1], lambda: len(col.seen) >= 600, clock)
    w1.kill()
    col2 = Collector()
    w2 = Consumer(eng, "s", "app", col2, worker_id="w2", lease_store=store, failover_time=2.0)
    drive([w2], lambda: len(col2.seen) >= 1000 - done, clock)
    assert col2.values() == list(range(done, 1000))


def test_graceful_shutdown_checkpoints_and_releases():
    clock, eng, s = setup(shards=2)
    store = MemoryLeaseStore()
    col = Collector(checkpoint_every=False)

    class Final(RecordProcessor):
        def process_records(self, records, cp):
            col.seen.extend((r.partition_key, int(r.data), "") for r in records)

        def shutdown_requested(self, cp):
            cp.checkpoint()

    put_range(s, clock, 0, 1000)
    w = Consumer(eng, "s", "app", Final, lease_store=store)
    drive([w], lambda: len(col.seen) >= 1000, clock)
    w.shutdown()
    assert all(lease["leaseOwner"] is None and lease["checkpoint"].isdigit() for lease in store.list())
    col2 = Collector()
    w2 = Consumer(eng, "s", "app", col2, lease_store=store)
    put_range(s, clock, 1000, 1200)
    drive([w2], lambda: len(col2.seen) >= 200, clock)
    assert sorted(col2.values()) == list(range(1000, 1200))


def test_parents_before_children_through_splits_and_merges(core_name):
    clock, eng, s = setup(core_name, shards=2, quotas=False)
    store = MemoryLeaseStore()
    col = Collector()
    ws = [Consumer(eng, "s", "app", col, worker_id=f"w{i}", lease_store=store, failover_time=3.0,
                   shard_sync_interval=2.0) for i in range(2)]
    rng = random.Random(5)
    n = 0
    for step in range(6):
        put_range(s, clock, n, n + 600, keys=23)
        n += 600
        drive(ws, lambda: True, clock)
        for _ in range(5):
            for w in ws:
                w.run_once()
            clock.advance(0.3)
        reshard_randomly(eng, s, rng, split=step % 2 == 0)
    put_range(s, clock, n, n + 600, keys=23)
    n += 600
    drive(ws, lambda: len(set(col.values())) >= n, clock, max_seconds=600)
    assert sorted(set(col.values())) == list(range(n))
    assert_key_order(col.seen)
    assert len(col.ended) >= 6


def test_shard_end_must_be_checkpointed():
    clock, eng, s = setup(shards=1)

    class Bad(RecordProcessor):
        def shard_ended(self, cp):
            pass

    w = Consumer(eng, "s", "app", Bad, lease_store=MemoryLeaseStore())
    put_range(s, clock, 0, 10)
    eng.split_shard("shardId-000000000000", str(2**127), stream_name="s")
    with pytest.raises(ShardEndNotCheckpointedError):
        drive([w], lambda: False, clock, max_seconds=30)


def test_aggregated_records_resume_mid_aggregate():
    clock, eng, s = setup(shards=1)
    with Producer(eng, "s", aggregate=True) as p:
        for i in range(500):
            p.put(f"{i}".encode(), f"k{i % 7}")
    store = MemoryLeaseStore()
    got = []

    class Half(RecordProcessor):
        def process_records(self, records, cp):
            for r in records[:137]:
                got.append(int(r.data))
            cp.checkpoint(records[136].sequence_number, records[136].sub_sequence_number)
            raise_stop[0] = True

    raise_stop = [False]
    w = Consumer(eng, "s", "app", Half, lease_store=store)
    drive([w], lambda: raise_stop[0], clock)
    w.kill()
    assert store.list()[0]["checkpointSubSequenceNumber"] > 0
    col = Collector()
    w2 = Consumer(eng, "s", "app", col, lease_store=store, failover_time=1.0)
    drive([w2], lambda: len(col.seen) >= 500 - 137, clock)
    assert got + col.values() == list(range(500))


def test_enhanced_fan_out_retrieval(core_name):
    clock, eng, s = setup(core_name, shards=2)
    put_range(s, clock, 0, 1500)
    col = Collector()
    w = Consumer(eng, "s", "app", col, retrieval="fanout", lease_store=MemoryLeaseStore())
    drive([w], lambda: len(col.seen) >= 1500, clock, max_seconds=120)
    assert sorted(col.values()) == list(range(1500))
    assert eng.stream("s") is s
    eng.split_shard("shardId-000000000000", str(2**126), stream_name="s")
    put_range(s, clock, 1500, 2000)
    drive([w], lambda: len(set(col.values())) >= 2000, clock, max_seconds=120)
    assert_key_order(col.seen)


def test_throttled_reads_back_off():
    clock, eng, s = setup(shards=1)
    put_range(s, clock, 0, 2000)
    col = Collector()
    ws = [Consumer(eng, "s", f"app{i}", col, lease_store=MemoryLeaseStore(), min_read_interval=0.0,
                   idle_time_between_reads=0.0, max_records=100) for i in range(3)]
    drive(ws, lambda: len(col.seen) >= 6000, clock, step=0.05, max_seconds=120)
    assert sum(w.metrics.throttled_reads for w in ws) > 0
    assert sorted(col.values()) == sorted(list(range(2000)) * 3)


def test_sqlite_store_conditional_writes(tmp_path):
    check_store(SQLiteLeaseStore(str(tmp_path / "leases.db")))


def test_memory_store_conditional_writes():
    check_store(MemoryLeaseStore())


def test_dynamodb_store_with_moto():
    moto = pytest.importorskip("moto")
    import boto3

    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        check_store(DynamoDBLeaseStore("app-leases", client))


def check_store(store):
    from fastkin.kcl.leases import new_lease

    assert store.create_if_absent(new_lease("shardId-000000000000", "TRIM_HORIZON", ["p1"], 0, 10))
    assert not store.create_if_absent(new_lease("shardId-000000000000", "LATEST", [], 0, 10))
    lease = store.get("shardId-000000000000")
    assert lease["leaseCounter"] == 0 and lease["leaseOwner"] is None and lease["parentShardIds"] == ["p1"]
    assert store.take("shardId-000000000000", 0, "a")
    assert not store.take("shardId-000000000000", 0, "b")         # stale counter
    assert not store.renew("shardId-000000000000", 1, "b")        # not the owner
    assert store.renew("shardId-000000000000", 1, "a")
    assert store.checkpoint("shardId-000000000000", 2, "a", "123", 4)
    assert not store.checkpoint("shardId-000000000000", 2, "a", "456", 0)
    assert store.take("shardId-000000000000", 3, "b")             # steal
    lease = store.get("shardId-000000000000")
    assert (lease["leaseOwner"], lease["leaseCounter"], lease["checkpoint"], lease["checkpointSubSequenceNumber"],
            lease["ownerSwitchesSinceCheckpoint"]) == ("b", 4, "123", 4, 1)
    assert not store.release("shardId-000000000000", 4, "a")
    assert store.release("shardId-000000000000", 4, "b")
    assert store.get("shardId-000000000000")["leaseOwner"] is None
    assert [x["leaseKey"] for x in store.list()] == ["shardId-000000000000"]
    check_handoff(store)
    store.delete("shardId-000000000000")
    assert store.list() == []


def check_handoff(store):
    """request / handoff: conditional on counter, owner and the pending request; a request leaves the counter."""
    key = "shardId-000000000000"
    c = store.get(key)["leaseCounter"]
    assert store.take(key, c, "a")
    c += 1
    assert not store.request(key, c, "b", "c")                    # b is not the owner
    assert not store.request(key, c - 1, "a", "c")                # stale counter
    assert store.request(key, c, "a", "c")
    assert not store.request(key, c, "a", "d")                    # one request at a time
    lease = store.get(key)
    assert (lease["leaseOwner"], lease["pendingOwner"], lease["leaseCounter"]) == ("a", "c", c)
    assert store.renew(key, c, "a")                               # the owner's writes still succeed
    c += 1
    assert not store.handoff(key, c, "a", "d", "77", 3)           # not the requester
    assert not store.handoff(key, c, "b", "c", "77", 3)           # not the owner
    assert store.handoff(key, c, "a", "c", "77", 3)
    c += 1
    lease = store.get(key)
    assert (lease["leaseOwner"], lease["pendingOwner"], lease["leaseCounter"], lease["checkpoint"],
            lease["checkpointSubSequenceNumber"], lease["ownerSwitchesSinceCheckpoint"]) == ("c", None, c, "77", 3, 1)
    assert not store.handoff(key, c, "c", "c", "78", 0)           # no request pending
    assert store.request(key, c, "c", "e")
    assert store.take(key, c, "e")                                # an expired lease: take clears the request
    c += 1
    assert store.get(key)["pendingOwner"] is None
    assert store.request(key, c, "e", "f")
    assert store.release(key, c, "e")
    lease = store.get(key)
    assert lease["leaseOwner"] is None and lease["pendingOwner"] is None


def test_sqlite_store_adds_the_pending_owner_column_to_an_old_table(tmp_path):
    import sqlite3

    path = str(tmp_path / "old.db")
    c = sqlite3.connect(path)
    c.execute("""CREATE TABLE leases (
        leaseKey TEXT PRIMARY KEY, leaseOwner TEXT, leaseCounter INTEGER NOT NULL,
        checkpoint TEXT NOT NULL, checkpointSubSequenceNumber INTEGER NOT NULL,
        ownerSwitchesSinceCheckpoint INTEGER NOT NULL, parentShardIds TEXT NOT NULL,
        startingHashKey TEXT, endingHashKey TEXT)""")
    c.execute("INSERT INTO leases VALUES ('shardId-000000000000', 'a', 5, '123', 0, 0, '[]', '0', '10')")
    c.commit()
    c.close()
    store = SQLiteLeaseStore(path)
    assert store.get("shardId-000000000000")["pendingOwner"] is None
    assert store.request("shardId-000000000000", 5, "a", "b")


def test_children_wait_for_parents_with_a_backlog(core_name):
    """Everything is written and resharded before any worker starts: children hold later records of the
    same keys, so reading a child before its parents ends would break the per-key order."""
    clock, eng, s = setup(core_name, shards=2, quotas=False)
    rng = random.Random(11)
    n = 0
    for step in range(6):
        put_range(s, clock, n, n + 400, keys=11)
        n += 400
        reshard_randomly(eng, s, rng, split=step % 2 == 0)
    put_range(s, clock, n, n + 400, keys=11)
    n += 400
    col = Collector()
    store = MemoryLeaseStore()
    ws = [Consumer(eng, "s", "app", col, worker_id=f"w{i}", lease_store=store, max_records=50,
                   min_read_interval=0.0) for i in range(3)]
    drive(ws, lambda: len(set(col.values())) >= n, clock, max_seconds=600)
    assert sorted(set(col.values())) == list(range(n))
    assert_key_order(col.seen)


def test_background_worker_threads_real_clock():
    import time

    eng = fastkin.Engine(quotas=False)
    s = eng.create_stream("s", shard_count=3)
    s.put_records([(f"{i}".encode(), f"k{i % 13}") for i in range(300)])
    col = Collector()
    store = MemoryLeaseStore()
    ws = [Consumer(eng, "s", "app", col, lease_store=store, failover_time=1.0, idle_time_between_reads=0.05,
                   min_read_interval=0.01).start() for _ in range(3)]
    deadline = time.monotonic() + 20
    while len(set(col.values())) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    s.put_records([(f"{i}".encode(), f"k{i % 13}") for i in range(300, 400)])
    while len(set(col.values())) < 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    for w in ws:
        w.shutdown()
    assert all(w.error is None for w in ws)
    assert sorted(set(col.values())) == list(range(400))
    assert_key_order(col.seen)
    assert all(lease["leaseOwner"] is None for lease in store.list())


def test_through_mock_kinesis_boto3_client():
    import boto3

    eng = fastkin.Engine(clock=fastkin.VirtualClock(START))
    clock = eng.clock
    with fastkin.mock_kinesis(engine=eng):
        client = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        client.create_stream(StreamName="s", ShardCount=2)
        for i in range(0, 600, 100):
            client.put_records(StreamName="s", Records=[{"Data": f"{j}".encode(), "PartitionKey": f"k{j % 5}"}
                                                        for j in range(i, i + 100)])
        col = Collector()
        w = Consumer(client, "s", "app", col, lease_store=MemoryLeaseStore(), background=False)
        drive([w], lambda: len(col.seen) >= 600, clock)
    assert sorted(col.values()) == list(range(600))

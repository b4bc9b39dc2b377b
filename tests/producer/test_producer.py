import threading

import pytest

import fastkin
from fastkin import Limits, ProvisionedThroughputExceededException, ResourceNotFoundException
from fastkin.errors import BufferFullError
from fastkin.kpl.aggregation import deaggregate
from fastkin.kpl.producer import Producer


def read_all(engine, stream, clock):
    out = []
    for sh in stream.visible_shards():
        it = stream.get_shard_iterator(sh.shard_id, "TRIM_HORIZON")
        while it:
            got = engine.get_records(it)
            clock.advance(0.2)
            out += got.records
            it = got.next_shard_iterator
            if not got.records:
                break
    return out


def naive_loop_throttles(core_name, n, shards):
    clock = fastkin.VirtualClock(1_700_000_000.0)
    eng = fastkin.Engine(clock=clock, core=core_name)
    s = eng.create_stream("s", shard_count=shards)
    pending = [(f"{i}".encode(), f"key-{i % 97}") for i in range(n)]
    throttled = 0
    while pending:
        nxt = []
        for i in range(0, len(pending), 500):
            chunk = pending[i:i + 500]
            res = s.put_records(chunk)
            throttled += res.failed_record_count
            nxt += [rec for rec, r in zip(chunk, res) if r.error_code]
        pending = nxt
        clock.advance(0.1)
    return throttled


@pytest.mark.parametrize("ordered", [False, True])
def test_three_times_overload_is_delivered_completely(core_name, ordered):
    clock = fastkin.VirtualClock(1_700_000_000.0)
    eng = fastkin.Engine(clock=clock, core=core_name)
    s = eng.create_stream("s", shard_count=4)
    n = 12_000                                         # 3x the 4,000 records/s capacity, offered in 1 s
    futs = []
    with Producer(eng, "s", ordered=ordered, seed=1) as p:
        for i in range(n):
            futs.append(p.put(f"{i}".encode(), f"key-{i % 97}"))
            if i % 1200 == 1199:
                p.poll()
                clock.advance(0.1)
    assert all(f.done() and f.exception() is None for f in futs)
    assert len({(f.result().shard_id, f.result().sequence_number) for f in futs}) == n
    recs = read_all(eng, s, clock)
    assert sorted(int(r.data) for r in recs) == list(range(n))
    if ordered:
        by_key = {}
        for r in sorted(recs, key=lambda r: int(r.sequence_number)):
            by_key.setdefault(r.partition_key, []).append(int(r.data))
        assert all(v == sorted(v) for v in by_key.values())
    throttled = s.metrics.series("WriteProvisionedThroughputExceeded", 60)[1].sum()
    assert throttled * 20 < naive_loop_throttles("cy", n, 4)      # the baseline's engine does not matter
    assert p.metrics.records_sent == n and p.metrics.failed == 0


def test_aggregation_round_trip(core_name):
    clock = fastkin.VirtualClock(1_700_000_000.0)
    eng = fastkin.Engine(clock=clock, core=core_name)
    s = eng.create_stream("s", shard_count=3)
    sent = [(f"payload-{i}".encode() * (1 + i % 5), f"k{i % 31}") for i in range(3000)]
    with Producer(eng, "s", aggregate=True, ordered=True) as p:
        futs = [p.put(d, k) for d, k in sent]
    res = [f.result() for f in futs]
    assert any(r.sub_sequence_number for r in res)
    assert p.metrics.kinesis_records_sent < len(sent) / 10
    users = []
    for sh in s.visible_shards():
        it = s.get_shard_iterator(sh.shard_id, "TRIM_HORIZON")
        got = s.get_records(it)
        users += deaggregate(got.records, (sh.start_hash, sh.end_hash))
        clock.advance(1)
    assert sorted((u.data, u.partition_key) for u in users) == sorted(sent)
    # each user record landed on the shard its own key routes to, in per-key order
    by_key = {}
    for u in sorted(users, key=lambda u: (int(u.sequence_number), u.sub_sequence_number or 0)):
        assert s.core.shard_for_key(u.partition_key) == int(
            next(r.shard_id for r, (d, k) in zip(res, sent) if k == u.partition_key)[-12:])
        by_key.setdefault(u.partition_key, []).append(u.data)
    assert all(v == [d for d, k in sent if k == key] for key, v in by_key.items())


def test_failures_resolve_every_future(core_name):
    clock = fastkin.VirtualClock(1_700_000_000.0)
    eng = fastkin.Engine(clock=clock, core=core_name)
    eng.create_stream("s", shard_count=2)
    p = Producer(eng, "s", linger=10.0)
    futs = [p.put(b"x", f"k{i}") for i in range(50)]

    def boom(stream_name, wire):
        raise RuntimeError("injected")

    p._target.put_records = boom
    p.flush()
    assert all(isinstance(f.exception(), RuntimeError) for f in futs)
    assert p.metrics.failed == 50

    p2 = Producer(eng, "s", linger=10.0, record_ttl=3.0)
    futs = [p2.put(b"x", f"k{i}") for i in range(50)]
    eng.delete_stream(stream_name="s")
    p2.flush()
    assert all(isinstance(f.exception(), ResourceNotFoundException) for f in futs)


def test_record_ttl_ends_retries_with_the_last_error(core_name):
    clock = fastkin.VirtualClock(1_700_000_000.0)
    eng = fastkin.Engine(clock=clock, core=core_name, limits=Limits(write_records_per_second=5))
    eng.create_stream("s", shard_count=1)
    with Producer(eng, "s", rate_limit=100.0, record_ttl=2.0, seed=3) as p:   # a producer that overshoots
        futs = [p.put(b"x", "k") for _ in range(200)]
    failed = [f for f in futs if f.exception() is not None]
    assert failed and all(isinstance(f.exception(), ProvisionedThroughputExceededException) for f in failed)
    assert len(futs) - len(failed) <= 5 + 5 * 2 + 1
    assert p.metrics.retried > 0


def test_buffer_full_raises():
    clock = fastkin.VirtualClock(1_700_000_000.0)
    eng = fastkin.Engine(clock=clock)
    eng.create_stream("s", shard_count=1)
    p = Producer(eng, "s", max_buffered_records=10, on_full="raise", linger=60)
    for _i in range(10):
        p.put(b"x", "k")
    with pytest.raises(BufferFullError):
        p.put(b"x", "k")
    p.close()
    assert p.buffered == 0


def test_background_threads_with_real_clock(core_name):
    eng = fastkin.Engine(core=core_name, quotas=False)
    s = eng.create_stream("s", shard_count=4)
    futs = []
    lock = threading.Lock()
    with Producer(eng, "s", linger=0.01) as p:
        assert p.background

        def worker(t):
            mine = [p.put(f"{t}-{i}".encode(), f"k{i}") for i in range(500)]
            with lock:
                futs.extend(mine)

        ts = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert len(futs) == 2000 and all(f.result().sequence_number for f in futs)
    assert s.core.record_count() == 2000


def test_resharding_refreshes_the_shard_map(core_name):
    clock = fastkin.VirtualClock(1_700_000_000.0)
    eng = fastkin.Engine(clock=clock, core=core_name)
    eng.create_stream("s", shard_count=1)
    with Producer(eng, "s") as p:
        p.put(b"a", "k")
        p.flush()
        eng.split_shard("shardId-000000000000", str(2**127), stream_name="s")
        futs = [p.put(b"b", f"k{i}") for i in range(100)]
        assert {f.result().shard_id for f in futs} == {"shardId-000000000001", "shardId-000000000002"}
        p.put(b"c", "k")                       # records landed on unexpected shards: the map is re-read
        assert [sid for _, _, sid in p._map] == ["shardId-000000000001", "shardId-000000000002"]


@pytest.fixture
def frequent_thread_switches():
    import sys

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)          # concurrent calls really interleave
    yield
    sys.setswitchinterval(old)


def test_background_aggregation_with_requests_in_flight_loses_nothing(frequent_thread_switches):
    eng = fastkin.Engine(quotas=False)
    s = eng.create_stream("s", shard_count=8)
    n = 20_000
    with Producer(eng, "s", aggregate=True, linger=0.001, max_in_flight=4) as p:
        assert p.background
        futs = [p.put(f"{i}".encode(), f"k{i % 997}") for i in range(n)]
    assert all(f.result().sequence_number for f in futs)
    users = []
    for sh in s.visible_shards():
        it = s.get_shard_iterator(sh.shard_id, "TRIM_HORIZON")
        while True:
            got = s.get_records(it)
            users += deaggregate(got.records, (sh.start_hash, sh.end_hash))
            it = got.next_shard_iterator
            if not got.records:
                break
    assert sorted(int(u.data) for u in users) == list(range(n))


def test_a_record_failing_with_internal_failure_is_retried_then_fails_with_it(core_name):
    clock = fastkin.VirtualClock(1_700_000_000.0)
    eng = fastkin.Engine(clock=clock, core=core_name)
    eng.create_stream("s", shard_count=1)
    p = Producer(eng, "s", linger=0.0, record_ttl=2.0)
    calls = []

    def internal_failure(stream_name, wire):
        calls.append(len(wire))
        return [(None, None, "InternalFailure", "Internal service failure.") for _ in wire]

    p._target.put_records = internal_failure
    fut = p.put(b"x", "k")
    p.flush()
    exc = fut.exception()
    assert isinstance(exc, fastkin.errors.InternalFailure) and exc.code == "InternalFailure"
    assert len(calls) > 1                                   # retried before the record's TTL ran out

import pytest

from fastkin import InvalidArgumentException

S0 = "shardId-000000000000"
HOUR = 3600.0


def test_records_past_retention_are_trimmed_and_trim_horizon_moves(make_engine, clock):
    eng = make_engine(quotas=False)
    s = eng.create_stream("s", shard_count=1)
    for h in range(30):
        s.put_records([(f"{h}".encode(), "k")] * 10)
        clock.advance(HOUR)
    # now = start + 30 h: records from hours 0..5 are older than 24 h
    got = s.get_records(s.get_shard_iterator(S0, "TRIM_HORIZON"), limit=1)
    assert got.records[0].data == b"6"
    assert s.core.record_count() == 24 * 10


def test_old_iterator_reads_from_the_moved_horizon(make_engine, clock):
    eng = make_engine(quotas=False)
    s = eng.create_stream("s", shard_count=1)
    s.put_record(b"old", "k")
    clock.advance(HOUR)
    s.put_record(b"new", "k")
    it = s.get_shard_iterator(S0, "TRIM_HORIZON")
    clock.advance(23.5 * HOUR)    # "old" is now 24.5 h old, "new" 23.5 h (the iterator itself is stale)
    it = s.get_shard_iterator(S0, "TRIM_HORIZON")
    assert [r.data for r in s.get_records(it).records] == [b"new"]


def test_decrease_retention_hides_older_data_and_increase_does_not_revive(make_engine, clock):
    eng = make_engine(quotas=False)
    s = eng.create_stream("s", shard_count=1, retention_period_hours=48)
    s.put_record(b"a", "k")
    clock.advance(30 * HOUR)
    s.put_record(b"b", "k")
    eng.decrease_stream_retention_period(24, stream_name="s")
    eng.increase_stream_retention_period(72, stream_name="s")
    got = s.get_records(s.get_shard_iterator(S0, "TRIM_HORIZON"))
    assert [r.data for r in got.records] == [b"b"]
    with pytest.raises(InvalidArgumentException, match="can not be longer"):
        eng.decrease_stream_retention_period(100, stream_name="s")
    with pytest.raises(InvalidArgumentException, match="can not be shorter"):
        eng.increase_stream_retention_period(24, stream_name="s")
    with pytest.raises(InvalidArgumentException, match="is too long"):
        eng.increase_stream_retention_period(8761, stream_name="s")


def test_trimming_frees_memory():
    import fastkin

    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    eng = fastkin.Engine(clock=clock, core="cy", quotas=False)
    s = eng.create_stream("s", shard_count=1)
    for _ in range(300):                       # 150,000 records of ~1 KiB over 300 engine-seconds
        s.put_records([(b"x" * 1000, "key")] * 500)
        clock.advance(1.0)
    full = eng.memory_bytes()
    assert full > 150_000 * 1000
    clock.advance(24 * HOUR + 150)             # about half of it is now past retention
    s.trim()
    assert s.core.record_count() < 80_000
    assert eng.memory_bytes() < 0.6 * full
    clock.advance(HOUR)
    s.trim()
    assert s.core.record_count() == 0 and eng.memory_bytes() < 1024


def test_storage_overhead_per_record_is_small():
    import fastkin

    eng = fastkin.Engine(clock=fastkin.VirtualClock(start=1_700_000_000.0), core="cy", quotas=False)
    s = eng.create_stream("s", shard_count=1)
    n = 200 * 500
    for _i in range(200):
        s.put_records([(b"d" * 100, f"key-{j:05d}") for j in range(500)])   # 100 + 9 bytes each
    overhead = (eng.memory_bytes() - n * 109) / n
    assert overhead <= 32, overhead


def test_metadata_only_storage_keeps_sizes_and_quotas(make_engine, clock):
    eng = make_engine()
    s = eng.create_stream("sim", shard_count=1, storage="metadata")
    res = s.put_records([(b"x" * 2000, "key")] * 500)
    assert res.failed_record_count == 0
    assert s.put_records([(b"x" * 2000, "key")] * 100).failed_record_count == 100 - 23   # 1 MiB/s: 523 fit
    got = s.get_records(s.get_shard_iterator(S0, "TRIM_HORIZON"), limit=10)
    assert [(r.data, r.partition_key) for r in got.records] == [(b"", "")] * 10
    assert got.records[0].sequence_number == res[0].sequence_number
    assert s.metrics.series("IncomingBytes", 1)[1][0] == 523 * 2003
    if eng.core_name == "cy":
        assert eng.memory_bytes() < 523 * 64


def test_short_retention_for_simulations(make_engine, clock):
    eng = make_engine(quotas=False)
    s = eng.create_stream("sim", shard_count=1)
    s.set_retention_seconds(60)
    s.put_record(b"a", "k")
    clock.advance(61)
    s.put_record(b"b", "k")
    got = s.get_records(s.get_shard_iterator(S0, "TRIM_HORIZON"))
    assert [r.data for r in got.records] == [b"b"]
    assert eng.describe_stream(stream_name="sim")["StreamDescription"]["RetentionPeriodHours"] == 24

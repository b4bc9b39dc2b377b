import pytest

from fastkin import Limits, ProvisionedThroughputExceededException

MiB = 1024 * 1024


def test_write_records_per_second(engine, clock):
    s = engine.create_stream("s", shard_count=1)
    accepted = 0
    for _second in range(10):
        for _ in range(3):
            res = s.put_records([(b"x", "k")] * 500)
            accepted += 500 - res.failed_record_count
        clock.advance(1.0)
    # one second of burst (the full bucket) plus 1,000 records per elapsed second
    assert accepted == 1000 + 9 * 1000


def test_throttled_records_inside_a_batch_the_rest_lands(engine):
    s = engine.create_stream("s", shard_count=2)
    hot = [(b"x", "k", "0")] * 400                      # shard 0
    cold = [(b"y", "k", str(2**127 + 5))] * 100          # shard 1
    s.put_records(hot)
    s.put_records(hot[:200])                             # shard 0 has 1000 - 600 = 400 tokens left
    res = s.put_records(hot + cold)
    assert res.failed_record_count == 0
    res = s.put_records(hot[:10] + cold)
    assert res.failed_record_count == 10
    assert all(r.error_code == "ProvisionedThroughputExceededException" for r in res.records[:10])
    assert res[0].error_message == \
        "Rate exceeded for shard shardId-000000000000 in stream s under account 123456789012."
    assert all(r.error_code is None for r in res.records[10:])


def test_write_bytes_per_second_counts_keys(engine, clock):
    s = engine.create_stream("s", shard_count=1)
    key = "k" * 24
    rec = (b"x" * (100 * 1024 - 24), key)                # exactly 100 KiB with the key
    res = s.put_records([rec] * 11)
    assert res.failed_record_count == 1                  # 10 x 100 KiB fits 1 MiB, the 11th does not
    clock.advance(0.1)
    assert s.put_records([rec] * 2).failed_record_count == 1
    with pytest.raises(ProvisionedThroughputExceededException, match="Rate exceeded for shard shardId-000000000000"):
        s.put_record(*rec)


def test_large_record_borrows_from_the_bucket(make_engine, clock):
    eng = make_engine()
    s = eng.create_stream("s", shard_count=1, max_record_size_in_kib=10240)
    s.put_record(b"x" * (3 * MiB), "k")                  # needs a full bucket, leaves a 2 MiB debt
    with pytest.raises(ProvisionedThroughputExceededException):
        s.put_record(b"x", "k")
    clock.advance(2.5)
    s.put_record(b"x", "k")


def test_read_calls_per_second(engine, clock):
    s = engine.create_stream("s", shard_count=1)
    it = s.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON")
    for _ in range(5):
        it = s.get_records(it).next_shard_iterator
    with pytest.raises(ProvisionedThroughputExceededException):
        s.get_records(it)
    clock.advance(0.2)
    it = s.get_records(it).next_shard_iterator
    with pytest.raises(ProvisionedThroughputExceededException):
        s.get_records(it)


def test_read_bytes_and_ten_mib_penalty(make_engine, clock):
    eng = make_engine(limits=Limits(write_bytes_per_second=100 * MiB, write_records_per_second=10**6))
    s = eng.create_stream("s", shard_count=1)
    for _ in range(25):
        s.put_record(b"x" * (MiB - 1), "k")
    it = s.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON")
    got = s.get_records(it)                               # 10 MiB response: 5-second penalty
    assert len(got.records) == 10
    for wait in (1.0, 2.0, 1.9):
        clock.advance(wait)
        with pytest.raises(ProvisionedThroughputExceededException):
            s.get_records(got.next_shard_iterator)
    clock.advance(0.2)                                     # 5.1 s later; the 8 MiB byte debt is repaid too
    assert len(s.get_records(got.next_shard_iterator).records) == 10


def test_read_bytes_per_second_without_penalty(make_engine, clock):
    eng = make_engine(limits=Limits(write_bytes_per_second=100 * MiB))
    s = eng.create_stream("s", shard_count=1)
    for _ in range(6):
        s.put_record(b"x" * (MiB - 1), "k")
    it = s.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON")
    got = s.get_records(it, limit=3)                      # 3 MiB: 1 MiB of debt on the 2 MiB/s bucket
    with pytest.raises(ProvisionedThroughputExceededException):
        s.get_records(got.next_shard_iterator)
    clock.advance(0.6)
    assert len(s.get_records(got.next_shard_iterator, limit=3).records) == 3


def test_quotas_off_and_switch(make_engine, clock):
    eng = make_engine(quotas=False)
    s = eng.create_stream("s", shard_count=1)
    for _ in range(10):
        assert s.put_records([(b"x", "k")] * 500).failed_record_count == 0
    eng.set_quotas(True)
    assert s.put_records([(b"x", "k")] * 500).failed_record_count == 0   # buckets start full
    assert s.put_records([(b"x", "k")] * 500).failed_record_count == 0
    assert s.put_records([(b"x", "k")] * 500).failed_record_count == 500
    eng.set_quotas(False)
    assert s.put_records([(b"x", "k")] * 500).failed_record_count == 0


def test_limits_are_configurable(make_engine, clock):
    eng = make_engine(limits=Limits(write_records_per_second=10))
    s = eng.create_stream("s", shard_count=1)
    assert s.put_records([(b"x", "k")] * 20).failed_record_count == 10
    clock.advance(0.5)
    assert s.put_records([(b"x", "k")] * 20).failed_record_count == 15


def test_fan_out_reads_bypass_the_shared_read_quota(engine, clock):
    s = engine.create_stream("s", shard_count=1)
    r = s.put_record(b"x", "k")
    it = s.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON")
    for _ in range(5):
        s.get_records(it)
    with pytest.raises(ProvisionedThroughputExceededException):
        s.get_records(it)
    got = engine.get_records(it, quota=False)              # the enhanced fan-out pipe
    assert [x.sequence_number for x in got.records] == [r.sequence_number]
    assert s.sequence_number_at("shardId-000000000000", 0) == r.sequence_number
    clock.advance(0.2)
    s.get_records(it)                                      # quota=False charged nothing

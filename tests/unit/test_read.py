import datetime as dt

import pytest

from fastkin import ExpiredIteratorException, InvalidArgumentException, ResourceNotFoundException, ValidationException

S0 = "shardId-000000000000"


def one_shard(engine):
    return engine.create_stream("s", shard_count=1)


def drain(s, it, limit=10_000):
    out = []
    while True:
        got = s.get_records(it, limit=limit)
        out += got.records
        it = got.next_shard_iterator
        if not got.records:
            return out, it


def test_iterator_types(make_engine, clock):
    eng = make_engine(quotas=False)
    s = one_shard(eng)
    seqs = []
    for i in range(10):
        seqs.append(s.put_record(f"{i}".encode(), "k").sequence_number)
        clock.advance(1.0)
    def data(it):
        return [r.data for r in drain(s, it)[0]]
    assert data(s.get_shard_iterator(S0, "TRIM_HORIZON")) == [f"{i}".encode() for i in range(10)]
    assert data(s.get_shard_iterator(S0, "LATEST")) == []
    assert data(s.get_shard_iterator(S0, "AT_SEQUENCE_NUMBER", starting_sequence_number=seqs[3]))[0] == b"3"
    assert data(s.get_shard_iterator(S0, "AFTER_SEQUENCE_NUMBER", starting_sequence_number=seqs[3]))[0] == b"4"
    assert data(s.get_shard_iterator(S0, "AFTER_SEQUENCE_NUMBER", starting_sequence_number=seqs[9])) == []
    assert data(s.get_shard_iterator(S0, "AT_TIMESTAMP", timestamp=1_700_000_004.0))[0] == b"4"
    assert data(s.get_shard_iterator(S0, "AT_TIMESTAMP", timestamp=1_700_000_004.001))[0] == b"5"
    when = dt.datetime.fromtimestamp(1_700_000_002.0, tz=dt.timezone.utc)
    assert data(s.get_shard_iterator(S0, "AT_TIMESTAMP", timestamp=when))[0] == b"2"
    assert data(s.get_shard_iterator(S0, "AT_TIMESTAMP", timestamp=0))[0] == b"0"   # before horizon = TRIM_HORIZON


def test_latest_sees_only_later_records(engine):
    s = one_shard(engine)
    s.put_record(b"old", "k")
    it = s.get_shard_iterator(S0, "LATEST")
    s.put_record(b"new", "k")
    assert [r.data for r in s.get_records(it).records] == [b"new"]


def test_iterator_argument_errors(engine, clock):
    s = one_shard(engine)
    seq = s.put_record(b"x", "k").sequence_number
    with pytest.raises(InvalidArgumentException, match="Must either specify"):
        s.get_shard_iterator(S0, "AT_SEQUENCE_NUMBER")
    with pytest.raises(InvalidArgumentException, match="Must either specify"):
        s.get_shard_iterator(S0, "TRIM_HORIZON", starting_sequence_number=seq)
    with pytest.raises(InvalidArgumentException, match="Must either specify"):
        s.get_shard_iterator(S0, "AT_TIMESTAMP")
    with pytest.raises(ValidationException, match="shardIteratorType"):
        s.get_shard_iterator(S0, "OLDEST")
    with pytest.raises(InvalidArgumentException, match="cannot be greater"):
        s.get_shard_iterator(S0, "AT_TIMESTAMP", timestamp=clock() + 10)
    with pytest.raises(ResourceNotFoundException):
        s.get_shard_iterator("shardId-000000000009", "LATEST")
    with pytest.raises(InvalidArgumentException, match="invalid"):
        s.get_shard_iterator(S0, "AT_SEQUENCE_NUMBER", starting_sequence_number="12345")


def test_sequence_number_from_another_shard_is_rejected(engine):
    s = engine.create_stream("s", shard_count=2)
    r = s.put_record(b"x", "k", explicit_hash_key="0")
    with pytest.raises(InvalidArgumentException, match="It encodes shardId-000000000000, while it was used in a call "
                                                       "to a shard with shardId-000000000001"):
        s.get_shard_iterator("shardId-000000000001", "AT_SEQUENCE_NUMBER", starting_sequence_number=r.sequence_number)


def test_iterator_is_opaque_and_tamper_evident(engine):
    s = one_shard(engine)
    it = s.get_shard_iterator(S0, "TRIM_HORIZON")
    assert it.startswith("AAAAAAAAAAE") and len(it) <= 512
    bad = it[:20] + ("A" if it[20] != "A" else "B") + it[21:]
    for token in (bad, "garbage", "", "AAAA"):
        with pytest.raises(InvalidArgumentException, match="Invalid ShardIterator"):
            s.get_records(token)


def test_iterator_expires_after_five_minutes(engine, clock):
    s = one_shard(engine)
    it = s.get_shard_iterator(S0, "TRIM_HORIZON")
    clock.advance(299.0)
    nxt = s.get_records(it).next_shard_iterator
    clock.advance(300.5)
    with pytest.raises(ExpiredIteratorException, match="tolerated delay of 300000 milliseconds"):
        s.get_records(nxt)


def test_iterator_of_deleted_stream(engine):
    s = one_shard(engine)
    it = s.get_shard_iterator(S0, "TRIM_HORIZON")
    engine.delete_stream(stream_name="s")
    with pytest.raises(ResourceNotFoundException):
        engine.get_records(it)
    engine.create_stream("s", shard_count=1)           # same name, new stream: the old iterator stays dead
    with pytest.raises(ResourceNotFoundException):
        engine.get_records(it)


def test_get_records_limit_and_order(make_engine):
    eng = make_engine(quotas=False)
    s = one_shard(eng)
    s.put_records([(f"{i}".encode(), "k") for i in range(500)])
    got = s.get_records(s.get_shard_iterator(S0, "TRIM_HORIZON"), limit=7)
    assert [r.data for r in got.records] == [f"{i}".encode() for i in range(7)]
    got = s.get_records(got.next_shard_iterator, limit=10_000)
    assert len(got.records) == 493
    for bad in (0, 10_001):
        with pytest.raises(ValidationException, match="limit"):
            s.get_records(got.next_shard_iterator, limit=bad)


def test_get_records_caps_response_at_10_mib(make_engine):
    eng = make_engine(quotas=False)
    s = one_shard(eng)
    for _ in range(25):
        s.put_record(b"x" * (1024 * 1024 - 1), "k")
    got = s.get_records(s.get_shard_iterator(S0, "TRIM_HORIZON"))
    assert len(got.records) == 10
    assert len(s.get_records(got.next_shard_iterator).records) == 10


def test_record_fields_and_millis_behind(make_engine, clock):
    eng = make_engine(quotas=False)
    s = one_shard(eng)
    r0 = s.put_record(b"a", "k1")
    clock.advance(2.5)
    s.put_record(b"b", "k2")
    clock.advance(1.0)
    got = s.get_records(s.get_shard_iterator(S0, "TRIM_HORIZON"), limit=1)
    rec = got.records[0]
    assert (rec.data, rec.partition_key, rec.sequence_number) == (b"a", "k1", r0.sequence_number)
    assert rec.approximate_arrival_timestamp == 1_700_000_000.0
    assert got.millis_behind_latest == 1000          # the next unread record arrived 1 s ago
    got = s.get_records(got.next_shard_iterator)
    assert got.millis_behind_latest == 0 and got.child_shards == []


def test_starting_and_ending_sequence_numbers_bracket_the_records(make_engine):
    eng = make_engine(quotas=False)
    s = one_shard(eng)
    first = s.put_record(b"r0", "k").sequence_number          # same second as the shard's creation
    s.put_record(b"r1", "k")
    rng = eng.describe_stream(stream_name="s")["StreamDescription"]["Shards"][0]["SequenceNumberRange"]
    start = rng["StartingSequenceNumber"]
    assert int(start) < int(first)
    for t in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        it = s.get_shard_iterator(S0, t, starting_sequence_number=start)
        assert [r.data for r in s.get_records(it).records] == [b"r0", b"r1"]
    eng.split_shard(S0, str(2**127), stream_name="s")
    shard0 = eng.describe_stream(stream_name="s")["StreamDescription"]["Shards"][0]
    end = shard0["SequenceNumberRange"]["EndingSequenceNumber"]
    got = s.get_records(s.get_shard_iterator(S0, "AT_SEQUENCE_NUMBER", starting_sequence_number=end))
    assert got.records == [] and got.next_shard_iterator is None and len(got.child_shards) == 2


def test_a_stream_rejects_another_streams_iterator(engine):
    a = engine.create_stream("a", shard_count=1)
    b = engine.create_stream("b", shard_count=1)
    a.put_record(b"1", "k")
    with pytest.raises(InvalidArgumentException, match="does not belong to stream"):
        b.get_records(a.get_shard_iterator(S0, "TRIM_HORIZON"))

import pytest

from fastkin import InvalidArgumentException, ValidationException
from fastkin._ref.core import parse_sequence_number


def test_put_records_one_result_per_record_in_order(engine):
    s = engine.create_stream("s", shard_count=4)
    recs = [(f"d{i}".encode(), f"k{i}") for i in range(500)]
    res = s.put_records(recs)
    assert len(res) == 500 and res.failed_record_count == 0
    for (_d, k), r in zip(recs, res):
        assert r.error_code is None and r.shard_id == f"shardId-{s.core.shard_for_key(k):012d}"
        assert len(r.sequence_number) == 56


@pytest.mark.parametrize("n", [0, 501])
def test_batch_size_limits(engine, n):
    s = engine.create_stream("s", shard_count=1)
    with pytest.raises(ValidationException, match="records"):
        s.put_records([(b"x", "k")] * n)
    assert s.core.record_count() == 0


def test_partition_key_length_bounds(engine):
    s = engine.create_stream("s", shard_count=1)
    s.put_record(b"x", "k")
    s.put_record(b"x", "é" * 256)
    for bad in ["", "k" * 257]:
        with pytest.raises(ValidationException, match="partitionKey"):
            s.put_record(b"x", bad)
        with pytest.raises(ValidationException, match=r"records\.2\.member\.partitionKey"):
            s.put_records([(b"x", "ok"), (b"x", bad)])
    with pytest.raises(ValidationException, match="UTF-8"):
        s.put_record(b"x", "\ud800")
    assert s.core.record_count() == 2


def test_record_size_counts_data_plus_key(make_engine):
    eng = make_engine(quotas=False)
    s = eng.create_stream("s", shard_count=1)
    limit = 1024 * 1024
    s.put_record(b"x" * (limit - 3), "abc")
    with pytest.raises(ValidationException, match="Value at 'data' .* less than or equal to 1048576$"):   # AWS's text
        s.put_record(b"x" * (limit - 2), "abc")
    with pytest.raises(ValidationException, match=r"Value at 'records\.2\.member\.data'"):
        s.put_records([(b"ok", "k"), (b"x" * limit, "k")])
    assert s.core.record_count() == 1


def test_max_record_size_per_stream_up_to_10_mib(make_engine):
    eng = make_engine(quotas=False)
    s = eng.create_stream("big", shard_count=1, max_record_size_in_kib=10240)
    s.put_record(b"x" * (10 * 1024 * 1024 - 1), "k")
    with pytest.raises(ValidationException):
        eng.create_stream("bad", shard_count=1, max_record_size_in_kib=10241)


def test_request_size_limit(make_engine):
    eng = make_engine(quotas=False)
    s = eng.create_stream("s", shard_count=1, max_record_size_in_kib=10240)
    with pytest.raises(InvalidArgumentException, match="^Records size exceeds 10 MB limit$"):   # AWS's text
        s.put_records([(b"x" * (4 * 1024 * 1024), "k")] * 3)
    assert s.core.record_count() == 0


def test_bad_batch_shapes_change_nothing(engine):
    s = engine.create_stream("s", shard_count=1)
    for bad in ([(b"x",)], [(b"x", "k", None, 1)], [b"x"], "notalist", [(object(), "k")]):
        with pytest.raises(ValidationException):
            s.put_records(bad)
    assert s.core.record_count() == 0


def test_data_types(engine):
    s = engine.create_stream("s", shard_count=1)
    s.put_records([(bytearray(b"ba"), "k"), (memoryview(b"mv"), "k"), ("text", "k"), [b"list", "k"]])
    out = s.get_records(s.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON"))
    assert [r.data for r in out.records] == [b"ba", b"mv", b"text", b"list"]


def test_sequence_number_for_ordering(engine):
    s = engine.create_stream("s", shard_count=3)
    prev = None
    seqs = []
    for _i in range(50):
        r = s.put_record(b"x", "same", sequence_number_for_ordering=prev)
        seqs.append(int(r.sequence_number))
        prev = r.sequence_number
    assert seqs == sorted(seqs) and len(set(seqs)) == 50
    with pytest.raises(ValidationException, match="sequenceNumberForOrdering"):
        s.put_record(b"x", "same", sequence_number_for_ordering="x12")


def test_sequence_numbers_unique_increasing_and_encode_shard(engine, clock):
    s = engine.create_stream("s", shard_count=4)
    per_shard = {}
    for _i in range(20):
        res = s.put_records([(b"x", f"k{j}") for j in range(100)])
        clock.advance(0.3)
        for r in res:
            per_shard.setdefault(r.shard_id, []).append(int(r.sequence_number))
    allseq = [q for v in per_shard.values() for q in v]
    assert len(set(allseq)) == len(allseq)
    for sid, seqs in per_shard.items():
        assert seqs == sorted(seqs)
        create, shard, idx, rec = parse_sequence_number(str(seqs[-1]))
        assert f"shardId-{shard:012d}" == sid and idx == len(seqs)        # seqIndex = position + 1
        assert create == 1_700_000_000 and rec >= create


def test_real_aws_sequence_number_layout_parses():
    # From aws-cli's describe-stream example output.
    assert parse_sequence_number("49600871682957036442365024926191073437251060580128653314") \
        == (1572297165, 0, 0, 1572297165)

import base64
import hashlib

import pytest

from fastkin.kpl.aggregation import MAGIC, Aggregator, aggregate, deaggregate, is_aggregated

RECS = [(b"hello", "pk1", None), (b"world", "pk2", "12345"), (b"x" * 300, "pk1", "12345"), (b"", "\u00e9\u6f22", None)]


def test_round_trip_and_format():
    blob = aggregate(RECS)
    assert blob.startswith(MAGIC) and blob[-16:] == hashlib.md5(blob[4:-16]).digest()
    users = deaggregate([{"Data": blob, "PartitionKey": "a", "SequenceNumber": "7"}])
    assert [(u.data, u.partition_key, u.explicit_hash_key) for u in users] == RECS
    assert [u.sub_sequence_number for u in users] == [0, 1, 2, 3] and {u.sequence_number for u in users} == {"7"}


def test_size_with_predicts_the_serialized_size():
    agg = Aggregator()
    for d, k, e in RECS:
        predicted = agg.size_with(k, d, e)
        agg.add(k, d, e)
        assert predicted == len(agg.serialize())


def test_non_aggregated_and_corrupt_records_pass_through():
    good = aggregate(RECS)
    bad_md5 = good[:-1] + bytes([good[-1] ^ 1])
    corrupt = MAGIC + b"\xff\xff\xff" + hashlib.md5(b"\xff\xff\xff").digest()
    for data in (b"plain", b"", MAGIC + b"short", bad_md5, corrupt):
        users = deaggregate([{"Data": data, "PartitionKey": "p", "SequenceNumber": "1"}])
        assert [(u.data, u.partition_key, u.sub_sequence_number) for u in users] == [(data, "p", None)]
    assert not is_aggregated(bad_md5) and is_aggregated(good)


def test_records_outside_the_shard_range_are_dropped():
    blob = aggregate([(b"a", "k", "10"), (b"b", "k", "1000")])
    users = deaggregate([{"Data": blob, "PartitionKey": "a", "SequenceNumber": "1"}], hash_range=(0, 500))
    assert [u.data for u in users] == [b"a"]


def test_interop_with_aws_kinesis_agg():
    agg_mod = pytest.importorskip("aws_kinesis_agg.aggregator")
    deagg_mod = pytest.importorskip("aws_kinesis_agg.deaggregator")
    theirs = agg_mod.RecordAggregator()
    for d, k, e in RECS:
        theirs.add_user_record(k, d, e)
    their_blob = theirs.clear_and_get().get_contents()[2]
    assert their_blob == aggregate(RECS)                      # byte for byte
    users = deaggregate([{"Data": their_blob, "PartitionKey": "a", "SequenceNumber": "1"}])
    assert [(u.data, u.partition_key, u.explicit_hash_key) for u in users] == RECS
    event = [{"kinesis": {"data": base64.b64encode(aggregate(RECS)).decode(), "partitionKey": "a",
                          "sequenceNumber": "1", "kinesisSchemaVersion": "1.0",
                          "approximateArrivalTimestamp": 1700000000.0}}]
    out = deagg_mod.deaggregate_records(event)
    assert [(base64.b64decode(r["kinesis"]["data"]), r["kinesis"]["partitionKey"]) for r in out] == \
        [(d, k) for d, k, _ in RECS]

import datetime as dt

import pytest

from fastkin import (
    ExpiredNextTokenException,
    InvalidArgumentException,
    LimitExceededException,
    Limits,
    ResourceInUseException,
    ResourceNotFoundException,
    ValidationException,
)


def test_create_describe_delete(engine):
    s = engine.create_stream("orders", shard_count=2, tags={"team": "data"})
    d = engine.describe_stream(stream_name="orders")["StreamDescription"]
    assert d["StreamName"] == "orders" and d["StreamStatus"] == "ACTIVE"
    assert d["StreamARN"] == "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
    assert d["StreamModeDetails"] == {"StreamMode": "PROVISIONED"} and d["RetentionPeriodHours"] == 24
    assert d["StreamCreationTimestamp"] == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc)
    assert d["HasMoreShards"] is False and len(d["Shards"]) == 2
    assert all(len(x["SequenceNumberRange"]["StartingSequenceNumber"]) == 56 for x in d["Shards"])
    summ = engine.describe_stream_summary(stream_arn=s.arn)["StreamDescriptionSummary"]
    assert summ["OpenShardCount"] == 2 and summ["MaxRecordSizeInKiB"] == 1024
    with pytest.raises(ResourceInUseException, match="Stream orders under account 123456789012 already exists."):
        engine.create_stream("orders", shard_count=1)
    engine.delete_stream(stream_name="orders")
    with pytest.raises(ResourceNotFoundException, match="Stream orders under account 123456789012 not found."):
        engine.describe_stream(stream_name="orders")


def test_stream_by_arn_and_name(engine):
    s = engine.create_stream("a.b_c-1", shard_count=1)
    assert engine.stream(stream_arn=s.arn) is s
    assert engine.stream(stream_name="a.b_c-1", stream_arn=s.arn) is s
    with pytest.raises(InvalidArgumentException):
        engine.stream(stream_name="other", stream_arn=s.arn)
    with pytest.raises(ResourceNotFoundException):
        engine.stream(stream_arn="arn:aws:kinesis:eu-west-1:123456789012:stream/a.b_c-1")
    with pytest.raises(ValidationException):
        engine.stream()


@pytest.mark.parametrize("name", ["", "x" * 129, "bad name", "slash/y"])
def test_bad_stream_names(engine, name):
    with pytest.raises(ValidationException, match="streamName"):
        engine.create_stream(name, shard_count=1)
    assert engine.list_streams()["StreamNames"] == []


def test_create_validation(engine):
    with pytest.raises(ValidationException):
        engine.create_stream("s", shard_count=0)
    with pytest.raises(InvalidArgumentException):
        engine.create_stream("s", stream_mode_details={"StreamMode": "PROVISIONED"})   # needs a shard count
    d = engine.create_stream("dflt")                   # neither: ON_DEMAND with 4 shards, as AWS (was an error)
    assert d.mode == "ON_DEMAND" and len(d.open_shards()) == 4
    with pytest.raises(InvalidArgumentException, match="retention"):
        engine.create_stream("s", shard_count=1, retention_period_hours=1)
    s = engine.create_stream("od", stream_mode_details={"StreamMode": "ON_DEMAND"})
    assert s.mode == "ON_DEMAND" and len(s.open_shards()) == 4


def test_shard_limit(make_engine):
    eng = make_engine(limits=Limits(shard_limit=10))
    eng.create_stream("a", shard_count=6)
    with pytest.raises(LimitExceededException, match="shard limit"):
        eng.create_stream("b", shard_count=5)
    assert eng.describe_limits() == {"ShardLimit": 10, "OpenShardCount": 6, "OnDemandStreamCount": 0,
                                     "OnDemandStreamCountLimit": 50, "ChannelCount": 0, "ChannelCountLimit": 50}


def test_list_streams_pagination(engine):
    for i in range(7):
        engine.create_stream(f"s{i}", shard_count=1)
    page = engine.list_streams(limit=3)
    names = page["StreamNames"]
    assert page["HasMoreStreams"] and len(page["StreamSummaries"]) == 3
    while page["HasMoreStreams"]:
        page = engine.list_streams(next_token=page["NextToken"], limit=3)
        names += page["StreamNames"]
    assert names == [f"s{i}" for i in range(7)]
    assert engine.list_streams(exclusive_start_stream_name="s4")["StreamNames"] == ["s5", "s6"]


def test_describe_stream_pagination(engine):
    engine.create_stream("s", shard_count=250)
    d = engine.describe_stream(stream_name="s")["StreamDescription"]
    assert len(d["Shards"]) == 100 and d["HasMoreShards"]
    d2 = engine.describe_stream(stream_name="s",
                                exclusive_start_shard_id=d["Shards"][-1]["ShardId"])["StreamDescription"]
    assert d2["Shards"][0]["ShardId"] == "shardId-000000000100"


def test_list_shards_pagination_filters_and_token_expiry(engine, clock):
    engine.create_stream("s", shard_count=25)
    page = engine.list_shards(stream_name="s", max_results=10)
    ids = [x["ShardId"] for x in page["Shards"]]
    while "NextToken" in page:
        page = engine.list_shards(next_token=page["NextToken"], max_results=10)
        ids += [x["ShardId"] for x in page["Shards"]]
    assert ids == [f"shardId-{i:012d}" for i in range(25)]
    f = engine.list_shards(stream_name="s", shard_filter={"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000022"})
    assert [x["ShardId"] for x in f["Shards"]] == ["shardId-000000000023", "shardId-000000000024"]
    for t in ("AT_LATEST", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON"):
        assert len(engine.list_shards(stream_name="s", shard_filter={"Type": t})["Shards"]) == 25
    at_now = {"Type": "AT_TIMESTAMP", "Timestamp": clock()}
    assert len(engine.list_shards(stream_name="s", shard_filter=at_now)["Shards"]) == 25
    with pytest.raises(InvalidArgumentException):
        engine.list_shards(stream_name="s", shard_filter={"Type": "AFTER_SHARD_ID"})
    with pytest.raises(ValidationException):
        engine.list_shards(stream_name="s", shard_filter={"Type": "NOPE"})
    tok = engine.list_shards(stream_name="s", max_results=10)["NextToken"]
    with pytest.raises(InvalidArgumentException):
        engine.list_shards(stream_name="s", next_token=tok)
    clock.advance(301)
    with pytest.raises(ExpiredNextTokenException):
        engine.list_shards(next_token=tok)


def test_tags(engine):
    engine.create_stream("s", shard_count=1, tags={"a": "1"})
    engine.add_tags_to_stream({"b": "2", "a": "3"}, stream_name="s")
    assert engine.list_tags_for_stream(stream_name="s") == {
        "Tags": [{"Key": "a", "Value": "3"}, {"Key": "b", "Value": "2"}], "HasMoreTags": False}
    engine.remove_tags_from_stream(["a", "missing"], stream_name="s")
    assert engine.list_tags_for_stream(stream_name="s")["Tags"] == [{"Key": "b", "Value": "2"}]
    with pytest.raises(LimitExceededException):
        engine.add_tags_to_stream({f"k{i}": "v" for i in range(50)}, stream_name="s")
    page = engine.list_tags_for_stream(stream_name="s", limit=1, exclusive_start_tag_key="a")
    assert page["Tags"] == [{"Key": "b", "Value": "2"}]


def test_account_and_region_are_settings(make_engine):
    eng = make_engine(account_id="111111111111", region="eu-west-1")
    s = eng.create_stream("s", shard_count=1)
    assert s.arn == "arn:aws:kinesis:eu-west-1:111111111111:stream/s"


def test_creating_state_with_latency(make_engine, clock):
    eng = make_engine(create_latency=0.5, delete_latency=0.5)
    s = eng.create_stream("s", shard_count=1)
    assert s.status == "CREATING"
    with pytest.raises(ResourceNotFoundException):
        s.put_record(b"x", "k")
    clock.advance(0.5)
    assert s.status == "ACTIVE"
    s.put_record(b"x", "k")
    eng.delete_stream(stream_name="s")
    assert eng.describe_stream_summary(stream_name="s")["StreamDescriptionSummary"]["StreamStatus"] == "DELETING"
    clock.advance(0.5)
    assert eng.list_streams()["StreamNames"] == []


def test_decode_shard_iterator_and_consumer_count(engine):
    s = engine.create_stream("s", shard_count=2)
    s.put_record(b"x", "k", explicit_hash_key="0")
    it = s.get_shard_iterator("shardId-000000000000", "AT_SEQUENCE_NUMBER",
                              starting_sequence_number=s.get_records(
                                  s.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON")
                              ).records[0].sequence_number)
    stream, shard_id, pos = engine.decode_shard_iterator(it)
    assert (stream, shard_id, pos) == (s, "shardId-000000000000", 0)
    for name in ("a", "b", "c"):
        engine.register_stream_consumer(s.arn, name)
    assert engine.describe_stream_summary(stream_name="s")["StreamDescriptionSummary"]["ConsumerCount"] == 3
    assert sorted(s.consumers) == ["a", "b", "c"]


def test_list_shards_next_token_excludes_stream_name_and_arn(engine):
    s = engine.create_stream("s", shard_count=3)
    tok = engine.list_shards(stream_name="s", max_results=1)["NextToken"]
    for kw in ({"stream_name": "s"}, {"stream_arn": s.arn}):
        with pytest.raises(InvalidArgumentException, match="NextToken and StreamName cannot be provided together."):
            engine.list_shards(next_token=tok, **kw)

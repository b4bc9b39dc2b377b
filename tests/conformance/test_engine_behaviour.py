"""Engine-level fidelity: AWS's error classes, exact messages and behaviour (see README "Semantics").

Each row is (setup, engine method, kwargs, expected error class, exact message): the setup builds the
streams, the call must raise exactly that, and nothing the engine shows may change. Every row runs on
both cores; a few rows run through boto3 (fastkin.mock_kinesis) to show the same answer reaches it.
"""
from __future__ import annotations

import datetime as dt

import boto3
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastkin
from fastkin import errors as E

ACCT = "123456789012"
S0, S1, S2, S3 = (f"shardId-{i:012d}" for i in range(4))
HASH_MAX = (1 << 128) - 1
ARN = f"arn:aws:kinesis:us-east-1:{ACCT}:stream/s"


def _two(eng):
    eng.create_stream("s", shard_count=2)


def _three(eng):
    eng.create_stream("s", shard_count=3)


def _split_once(eng):
    eng.create_stream("s", shard_count=2)
    eng.split_shard(S0, "1000", stream_name="s")


def _od(eng):
    eng.create_stream("s", stream_mode_details={"StreamMode": "ON_DEMAND"})


def _none(eng):
    pass


def _consumer(eng):
    eng.create_stream("s", shard_count=1)
    eng.register_stream_consumer(ARN, "c")


def _not_found(stream="s"):
    return f"Stream {stream} under account {ACCT} not found."


def _no_shard(shard, stream="s"):
    return f"Could not find shard {shard} in stream {stream} under account {ACCT}."


ERROR_ROWS = [
    # -- MergeShards: order, adjacency, closed shards, precedence (facts §4, §5)
    ("merge-wrong-order", _two, "merge_shards", dict(shard_to_merge=S1, adjacent_shard_to_merge=S0, stream_name="s"),
     E.InvalidArgumentException,
     f"Shards {S1} and {S0} in stream s under account {ACCT} are not an adjacent pair of shards eligible for merging"),
    ("merge-not-adjacent", _three, "merge_shards", dict(shard_to_merge="0", adjacent_shard_to_merge="shard-2",
                                                        stream_name="s"),
     E.InvalidArgumentException,
     f"Shards {S0} and {S2} in stream s under account {ACCT} are not an adjacent pair of shards eligible for merging"),
    ("merge-closed", _split_once, "merge_shards", dict(shard_to_merge=S0, adjacent_shard_to_merge=S1,
                                                       stream_name="s"),
     E.InvalidArgumentException,
     f"Shard {S0} in stream s under account {ACCT} has already been merged or split, and thus is not eligible for "
     "merging or splitting."),
    ("split-closed", _split_once, "split_shard", dict(shard_to_split=S0, new_starting_hash_key="500",
                                                      stream_name="s"),
     E.InvalidArgumentException,
     f"Shard {S0} in stream s under account {ACCT} has already been merged or split, and thus is not eligible for "
     "merging or splitting."),
    ("merge-missing-first", _two, "merge_shards", dict(shard_to_merge="shardId-5", adjacent_shard_to_merge="9",
                                                       stream_name="s"),
     E.ResourceNotFoundException, _no_shard("shardId-000000000005")),
    ("merge-missing-adjacent", _two, "merge_shards", dict(shard_to_merge=S0, adjacent_shard_to_merge="abc-7",
                                                          stream_name="s"),
     E.ResourceNotFoundException, _no_shard("shardId-000000000007")),
    ("split-on-demand", _od, "split_shard", dict(shard_to_split=S0, new_starting_hash_key="1000", stream_name="s"),
     E.ValidationException, f"Request is invalid. Stream s under account {ACCT} is in On-Demand mode."),
    ("merge-on-demand", _od, "merge_shards", dict(shard_to_merge=S0, adjacent_shard_to_merge=S1, stream_name="s"),
     E.ValidationException, f"Request is invalid. Stream s under account {ACCT} is in On-Demand mode."),
    ("usc-on-demand", _od, "update_shard_count", dict(target_shard_count=5, stream_name="s"),
     E.ValidationException, f"Request is invalid. Stream s under account {ACCT} is in On-Demand mode."),
    # -- stream-not-found vs shard-not-found (facts §4; the project's issue)
    ("split-unknown-stream", _none, "split_shard", dict(shard_to_split=S0, new_starting_hash_key="1000",
                                                        stream_name="nope"),
     E.ResourceNotFoundException, _not_found("nope")),
    ("merge-unknown-stream", _none, "merge_shards", dict(shard_to_merge=S0, adjacent_shard_to_merge=S1,
                                                         stream_name="nope"),
     E.ResourceNotFoundException, _not_found("nope")),
    ("gsi-unknown-stream", _none, "get_shard_iterator", dict(shard_id=S0, shard_iterator_type="LATEST",
                                                             stream_name="nope"),
     E.ResourceNotFoundException, _not_found("nope")),
    ("gsi-missing-shard", _two, "get_shard_iterator", dict(shard_id="shardId-5", shard_iterator_type="LATEST",
                                                           stream_name="s"),
     E.ResourceNotFoundException, _no_shard("shardId-000000000005")),
    ("gsi-unparseable-shard", _two, "get_shard_iterator", dict(shard_id="2147483648", shard_iterator_type="LATEST",
                                                               stream_name="s"),
     E.ResourceNotFoundException, _no_shard("2147483648")),
    ("split-unparseable-unknown-stream", _none, "split_shard", dict(shard_to_split="ABKLFD8",
                                                                    new_starting_hash_key="1000", stream_name="nope"),
     E.ResourceNotFoundException, _no_shard("ABKLFD8", "nope")),
    ("split-missing-shard", _two, "split_shard", dict(shard_to_split="-00002147483647", new_starting_hash_key="1000",
                                                      stream_name="s"),
     E.ResourceNotFoundException, _no_shard(E.shard_name(2147483647))),
    ("list-shards-unknown-stream", _none, "list_shards", dict(stream_name="nope"),
     E.ResourceNotFoundException, _not_found("nope")),
    # -- retention (facts §7)
    ("increase-too-long", _two, "increase_stream_retention_period", dict(retention_period_hours=8761,
                                                                         stream_name="s"),
     E.InvalidArgumentException,
     "Maximum allowed retention period is 8760 hours. Requested retention period (8761 hours) is too long."),
    ("decrease-too-short", _two, "decrease_stream_retention_period", dict(retention_period_hours=23,
                                                                          stream_name="s"),
     E.InvalidArgumentException,
     "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short."),
    ("create-too-short", _none, "create_stream", dict(stream_name="t", shard_count=1, retention_period_hours=1),
     E.InvalidArgumentException,
     "Minimum allowed retention period is 24 hours. Requested retention period (1 hours) is too short."),
    ("increase-unknown-stream-first", _none, "increase_stream_retention_period",
     dict(retention_period_hours=1, stream_name="nope"), E.ResourceNotFoundException, _not_found("nope")),
    # -- CreateStream (facts §6)
    ("create-shards-on-demand", _none, "create_stream",
     dict(stream_name="t", shard_count=2, stream_mode_details={"StreamMode": "ON_DEMAND"}),
     E.ValidationException, "ShardCount is not expected when StreamMode=ON_DEMAND"),
    # -- record and request sizes (facts §8)
    ("put-record-too-large", _two, "put_record", dict(data=b"x" * (1024 * 1024 + 1), partition_key="k",
                                                      stream_name="s"),
     E.ValidationException, "1 validation error detected: Value at 'data' failed to satisfy constraint: Member must "
                            "have length less than or equal to 1048576"),
    ("put-records-too-large", _two, "put_records", dict(records=[(b"a", "k"), (b"x" * (1024 * 1024 + 1), "k")],
                                                        stream_name="s"),
     E.ValidationException, "1 validation error detected: Value at 'records.2.member.data' failed to satisfy "
                            "constraint: Member must have length less than or equal to 1048576"),
    ("put-records-501", _two, "put_records", dict(records=[(b"a", "k")] * 501, stream_name="s"),
     E.ValidationException, "1 validation error detected: Value at 'records' failed to satisfy constraint: Member "
                            "must have length less than or equal to 500"),
    ("put-records-request-size", _two, "put_records", dict(records=[(b"x" * (1024 * 1024 - 1), "k")] * 11,
                                                           stream_name="s"),
     E.InvalidArgumentException, "Records size exceeds 10 MB limit"),
    # -- consumers and resources (facts §12)
    ("consumer-arn-and-other-stream", _consumer, "describe_stream_consumer",
     dict(consumer_arn=None, stream_arn=ARN.replace("/s", "/other")), E.InvalidArgumentException, None),
    ("consumer-unknown", _consumer, "describe_stream_consumer", dict(stream_arn=ARN, consumer_name="zz"),
     E.ResourceNotFoundException, f"Consumer zz, account {ACCT} not found."),
    ("consumer-arn-unknown-stream", _none, "describe_stream_consumer",
     dict(consumer_arn=f"{ARN}/consumer/c:1"), E.ResourceNotFoundException,
     f"Consumer {ARN}/consumer/c:1, account {ACCT} not found."),
    ("deregister-unknown", _consumer, "deregister_stream_consumer", dict(consumer_arn=f"{ARN}/consumer/zz:1"),
     E.ResourceNotFoundException, f"Consumer {ARN}/consumer/zz:1, account {ACCT} not found."),
    ("policy-unknown-stream", _none, "get_resource_policy", dict(resource_arn=ARN),
     E.ResourceNotFoundException, f"Stream {ARN} under account {ACCT} not found."),
]


def _snapshot(eng) -> list:
    """What the engine shows: every stream's description, shards and consumers."""
    out = []
    for name in eng.list_streams()["StreamNames"]:
        s = eng.stream(name)
        out.append((eng.describe_stream(stream_name=name), eng.list_shards(stream_name=name),
                    eng.list_stream_consumers(s.arn), eng.list_tags_for_stream(stream_name=name)))
    return out


def _fill(eng, kwargs):
    if kwargs.get("consumer_arn", 1) is None:          # the consumer's real ARN, with a mismatching StreamARN
        kwargs = dict(kwargs, consumer_arn=eng.list_stream_consumers(ARN)["Consumers"][0]["ConsumerARN"])
    return kwargs


@pytest.mark.parametrize("row", ERROR_ROWS, ids=[r[0] for r in ERROR_ROWS])
def test_error_row(engine, row):
    _, setup, method, kwargs, cls, message = row
    setup(engine)
    before = _snapshot(engine)
    with pytest.raises(cls) as ei:
        getattr(engine, method)(**_fill(engine, kwargs))
    assert type(ei.value) is cls
    if message is not None:
        assert ei.value.message == message
    assert _snapshot(engine) == before                 # AWS rejects -> nothing changes


# -- state rows ----------------------------------------------------------------------------------

@pytest.mark.parametrize("start,target,total", [(2, 4, 6), (4, 5, 15), (10, 13, 37), (4, 2, 6), (5, 3, 7),
                                                (10, 3, 17)])
def test_update_shard_count_leaves_aws_counts(make_engine, start, target, total):
    eng = make_engine(quotas=False)
    eng.create_stream("s", shard_count=start)
    eng.update_shard_count(target, stream_name="s")
    shards = eng.list_shards(stream_name="s")["Shards"]
    assert len(shards) == total
    open_ = [x for x in shards if "EndingSequenceNumber" not in x["SequenceNumberRange"]]
    assert len(open_) == target
    ids = {x["ShardId"] for x in shards}
    for x in shards:                                   # every parent ListShards names is listed
        assert {x.get("ParentShardId"), x.get("AdjacentParentShardId")} - {None} <= ids


def test_update_shard_count_lineage_is_mergeshards_shaped(engine):
    engine.create_stream("s", shard_count=4)
    engine.update_shard_count(2, stream_name="s")      # 4 -> 2: two merges, lower shard the parent
    new = {x["ShardId"]: x for x in engine.list_shards(stream_name="s")["Shards"]}
    assert new["shardId-000000000004"]["ParentShardId"] == S0
    assert new["shardId-000000000004"]["AdjacentParentShardId"] == S1
    assert new["shardId-000000000005"]["ParentShardId"] == S2


def test_create_stream_default_is_on_demand_with_4_shards(engine):
    s = engine.create_stream("s")
    assert engine.describe_stream_summary(stream_name="s")["StreamDescriptionSummary"]["StreamModeDetails"] == {
        "StreamMode": "ON_DEMAND"}
    assert len(s.open_shards()) == 4


def test_merge_in_order_works_and_names_lower_parent(engine):
    engine.create_stream("s", shard_count=2)
    engine.merge_shards(S0, S1, stream_name="s")
    child = engine.list_shards(stream_name="s")["Shards"][-1]
    assert (child["ParentShardId"], child["AdjacentParentShardId"]) == (S0, S1)


def test_lenient_shard_ids_name_the_same_shard(engine):
    engine.create_stream("s", shard_count=2)
    for sid in ("shardId-000000000001", "shardId-1", "shard-1", "abc-1", "1", "-00000001"):
        assert engine.get_shard_iterator(sid, "LATEST", stream_name="s")


def test_quoted_iterator_is_accepted(engine):
    s = engine.create_stream("s", shard_count=1)
    s.put_record(b"a", "k")
    it = engine.get_shard_iterator(S0, "TRIM_HORIZON", stream_name="s")
    got = engine.get_records(f'"{it}"')
    assert [r.data for r in got.records] == [b"a"]
    with pytest.raises(E.InvalidArgumentException, match=r"^Invalid ShardIterator\.$"):
        engine.get_records(f'""{it}""')               # one pair only


def test_get_records_on_deleted_stream_says_shard_does_not_exist(engine):
    engine.create_stream("s", shard_count=1)
    it = engine.get_shard_iterator(S0, "LATEST", stream_name="s")
    engine.delete_stream(stream_name="s")
    with pytest.raises(E.ResourceNotFoundException) as ei:
        engine.get_records(it)
    assert ei.value.message == f"Shard {S0} in stream s under account {ACCT} does not exist"


ALL7 = ["IncomingBytes", "OutgoingRecords", "IteratorAgeMilliseconds", "IncomingRecords",
        "ReadProvisionedThroughputExceeded", "WriteProvisionedThroughputExceeded", "OutgoingBytes"]


def test_enhanced_monitoring_all_expands_in_aws_order(engine):
    engine.create_stream("s", shard_count=1)
    on = engine.enable_enhanced_monitoring(["ALL"], stream_name="s")
    assert on["CurrentShardLevelMetrics"] == [] and on["DesiredShardLevelMetrics"] == ALL7
    assert engine.describe_stream(stream_name="s")["StreamDescription"]["EnhancedMonitoring"] == [
        {"ShardLevelMetrics": ALL7}]
    off = engine.disable_enhanced_monitoring(["ALL"], stream_name="s")
    assert off["CurrentShardLevelMetrics"] == ALL7 and off["DesiredShardLevelMetrics"] == []
    some = engine.enable_enhanced_monitoring(["OutgoingBytes", "IncomingBytes"], stream_name="s")
    assert some["DesiredShardLevelMetrics"] == ["IncomingBytes", "OutgoingBytes"]   # AWS's order, not the request's


def test_consumer_arn_with_consistent_stream_arn_and_name(engine):
    engine.create_stream("s", shard_count=1)
    c = engine.register_stream_consumer(ARN, "c")["Consumer"]
    d = engine.describe_stream_consumer(stream_arn=ARN, consumer_name="c", consumer_arn=c["ConsumerARN"])
    assert d["ConsumerDescription"]["ConsumerARN"] == c["ConsumerARN"]
    assert d["ConsumerDescription"]["StreamARN"] == ARN
    with pytest.raises(E.InvalidArgumentException):
        engine.describe_stream_consumer(consumer_name="other", consumer_arn=c["ConsumerARN"])
    engine.deregister_stream_consumer(stream_arn=ARN, consumer_arn=c["ConsumerARN"])
    assert engine.list_stream_consumers(ARN)["Consumers"] == []


# -- time going backwards (freezegun, RealClock) -----------------------------------------------------

def test_clock_going_back_keeps_the_stream_working(core_name):
    freezegun = pytest.importorskip("freezegun")
    eng = fastkin.Engine(core=core_name)               # RealClock: reads time.time()
    s = eng.create_stream("s", shard_count=1)
    first = s.put_record(b"a", "k")
    it = eng.get_shard_iterator(S0, "TRIM_HORIZON", stream_name="s")
    with freezegun.freeze_time(dt.datetime(2001, 1, 1)):          # long before the stream was created
        assert s.status == "ACTIVE"
        second = eng.put_record(b"b", "k", stream_name="s")     # not "Stream s ... not found."
        got = eng.get_records(it)                               # the iterator did not expire (or become invalid)
        assert [r.data for r in got.records] == [b"a", b"b"]
        t = [r.approximate_arrival_timestamp for r in got.records]
        assert t == sorted(t)                                   # arrivals stay monotonic per shard
        assert int(second.sequence_number) > int(first.sequence_number)
        eng.put_records([(b"c", "k")], stream_name="s")
        eng.split_shard(S0, str(1 << 127), stream_name="s")
        assert len(eng.list_shards(stream_name="s")["Shards"]) == 3
        got = eng.get_records(got.next_shard_iterator)
        assert [r.data for r in got.records] == [b"c"]


# -- through boto3 (in-process) ---------------------------------------------------------------------

BOTO_ROWS = [
    ("merge_shards", dict(StreamName="s", ShardToMerge=S1, AdjacentShardToMerge=S0), "InvalidArgumentException",
     f"Shards {S1} and {S0} in stream s under account {ACCT} are not an adjacent pair of shards eligible for merging"),
    ("get_shard_iterator", dict(StreamName="s", ShardId="shardId-000000000009", ShardIteratorType="LATEST"),
     "ResourceNotFoundException", _no_shard("shardId-000000000009")),
    ("get_shard_iterator", dict(StreamName="nope", ShardId=S0, ShardIteratorType="LATEST"),
     "ResourceNotFoundException", _not_found("nope")),
    ("increase_stream_retention_period", dict(StreamName="s", RetentionPeriodHours=9000), "InvalidArgumentException",
     "Maximum allowed retention period is 8760 hours. Requested retention period (9000 hours) is too long."),
]


@pytest.fixture
def boto_kinesis():
    eng = fastkin.Engine(clock=fastkin.VirtualClock(start=1_700_000_000.0))
    with fastkin.mock_kinesis(engine=eng):
        client = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        client.create_stream(StreamName="s", ShardCount=2)
        yield client


@pytest.mark.parametrize("op,kwargs,code,message", BOTO_ROWS, ids=[f"{r[0]}-{i}" for i, r in enumerate(BOTO_ROWS)])
def test_boto_row(boto_kinesis, op, kwargs, code, message):
    with pytest.raises(boto_kinesis.exceptions.ClientError) as ei:
        getattr(boto_kinesis, op)(**kwargs)
    err = ei.value.response["Error"]
    assert (err["Code"], err["Message"]) == (code, message)


def test_boto_create_default_and_quoted_iterator(boto_kinesis):
    boto_kinesis.create_stream(StreamName="d")
    d = boto_kinesis.describe_stream_summary(StreamName="d")["StreamDescriptionSummary"]
    assert d["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"} and d["OpenShardCount"] == 4
    boto_kinesis.put_record(StreamName="s", Data=b"x", PartitionKey="k", ExplicitHashKey="0")
    it = boto_kinesis.get_shard_iterator(StreamName="s", ShardId=S0, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in boto_kinesis.get_records(ShardIterator=f'"{it}"')["Records"]] == [b"x"]


# -- property: invalid control-plane requests change nothing ------------------------------------------

_INVALID = st.one_of(
    st.tuples(st.just("merge_shards"), st.fixed_dictionaries({
        "shard_to_merge": st.sampled_from([S1, S2, S3, "9", "x", "2147483648"]),
        "adjacent_shard_to_merge": st.sampled_from([S0, S2, "7", "bad"]),
        "stream_name": st.sampled_from(["s", "nope"])})),
    st.tuples(st.just("split_shard"), st.fixed_dictionaries({
        "shard_to_split": st.sampled_from([S0, S1, "5", "zz"]),
        "new_starting_hash_key": st.sampled_from(["0", "1", str(HASH_MAX), str(HASH_MAX + 1)]),
        "stream_name": st.sampled_from(["s", "nope"])})),
    st.tuples(st.just("update_shard_count"), st.fixed_dictionaries({
        "target_shard_count": st.sampled_from([0, 9, 100, 1]),
        "stream_name": st.sampled_from(["nope", "od"])})),
    st.tuples(st.just("increase_stream_retention_period"), st.fixed_dictionaries({
        "retention_period_hours": st.sampled_from([0, 23, 8761, 10**6]),
        "stream_name": st.sampled_from(["s", "nope"])})),
    st.tuples(st.just("decrease_stream_retention_period"), st.fixed_dictionaries({
        "retention_period_hours": st.sampled_from([23, 48, 9000]),
        "stream_name": st.sampled_from(["s", "nope"])})),
    st.tuples(st.just("create_stream"), st.fixed_dictionaries({
        "stream_name": st.sampled_from(["s", "t"]),
        "shard_count": st.sampled_from([0, 2]),
        "stream_mode_details": st.just({"StreamMode": "ON_DEMAND"})})),
    st.tuples(st.just("describe_stream_consumer"), st.fixed_dictionaries({
        "stream_arn": st.sampled_from([ARN, ARN.replace("/s", "/nope")]),
        "consumer_name": st.sampled_from(["zz", "q"])})),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(_INVALID, min_size=1, max_size=5))
def test_invalid_control_plane_requests_change_nothing(core_name, requests):
    eng = fastkin.Engine(clock=fastkin.VirtualClock(start=1_700_000_000.0), core=core_name)
    eng.create_stream("s", shard_count=2)
    eng.create_stream("od", stream_mode_details={"StreamMode": "ON_DEMAND"})
    before = _snapshot(eng)
    for method, kwargs in requests:
        with pytest.raises(E.FastkinError):
            getattr(eng, method)(**kwargs)
        assert _snapshot(eng) == before

"""RecordDistributionStrategy (AUTO / USER_PARTITION_KEY) and DryRun on the five data-plane operations."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

import fastkin
from fastkin import errors as E
from fastkin.stream import records_dicts

DRY = "The request would have succeeded, but the DryRun parameter was specified."


def test_auto_spreads_records_evenly_and_ignores_keys(engine):
    s = engine.create_stream("s", record_distribution_strategy="AUTO")
    shards = [s.put_record(b"x", "same-key", "0").shard_id for _ in range(8)]
    shards += [r.shard_id for r in s.put_records([(b"y", None)] * 8)]
    assert {x: shards.count(x) for x in shards} == {f"shardId-00000000000{i}": 4 for i in range(4)}
    summary = engine.describe_stream_summary("s")["StreamDescriptionSummary"]
    assert summary["RecordDistributionStrategy"] == "AUTO"


def test_records_without_a_key_come_back_without_the_field(engine):
    s = engine.create_stream("s", shard_count=None, record_distribution_strategy="AUTO")
    s.put_record(b"no key", None)
    s.put_record(b"keyed", "k")
    out = []
    for info in s.open_shards():
        out += records_dicts(s.get_records(s.get_shard_iterator(info.shard_id, "TRIM_HORIZON")).records)
    assert sorted((r["Data"], r.get("PartitionKey")) for r in out) == [(b"keyed", "k"), (b"no key", None)]


def test_switching_strategy_at_once_both_ways(engine):
    engine.create_stream("s")
    s = engine.stream("s")
    with pytest.raises(E.ValidationException, match="Value null at 'partitionKey' failed to satisfy constraint: "
                       "Member must not be null"):
        s.put_record(b"x", None)
    with pytest.raises(E.ValidationException, match="Value null at 'records.2.member.partitionKey'"):
        s.put_records([(b"x", "k"), (b"y", None)])
    engine.update_stream_record_distribution_strategy(s.arn, "AUTO")
    s.put_record(b"x", None)
    with pytest.raises(E.InvalidArgumentException, match="SequenceNumberForOrdering is not supported"):
        s.put_record(b"x", None, sequence_number_for_ordering="1")
    with pytest.raises(E.InvalidArgumentException, match="Set USER_PARTITION_KEY on stream s before switching"):
        engine.update_stream_mode(s.arn, {"StreamMode": "PROVISIONED"})
    engine.update_stream_record_distribution_strategy(s.arn, "USER_PARTITION_KEY")
    assert engine.describe_stream_summary("s")["StreamDescriptionSummary"]["RecordDistributionStrategy"] == \
        "USER_PARTITION_KEY"


def test_auto_is_on_demand_only(engine):
    with pytest.raises(E.InvalidArgumentException, match="RecordDistributionStrategy=AUTO is only supported for "
                       "on-demand streams. Stream p is using PROVISIONED mode."):
        engine.create_stream("p", shard_count=1, record_distribution_strategy="AUTO")
    p = engine.create_stream("p", shard_count=1)
    with pytest.raises(E.InvalidArgumentException, match="Stream p is using PROVISIONED mode."):
        engine.update_stream_record_distribution_strategy(p.arn, "AUTO")
    assert "RecordDistributionStrategy" not in engine.describe_stream_summary("p")["StreamDescriptionSummary"]


def test_auto_through_boto3(kin):
    c = kin.client
    c.create_stream(StreamName="a", StreamModeDetails={"StreamMode": "ON_DEMAND"}, RecordDistributionStrategy="AUTO")
    arn = c.describe_stream_summary(StreamName="a")["StreamDescriptionSummary"]["StreamARN"]
    c.put_record(StreamARN=arn, Data=b"k-less")
    c.put_records(StreamARN=arn, Records=[{"Data": b"1"}, {"Data": b"2", "PartitionKey": "p"}])
    got = []
    for sh in c.list_shards(StreamARN=arn)["Shards"]:
        it = c.get_shard_iterator(StreamARN=arn, ShardId=sh["ShardId"], ShardIteratorType="TRIM_HORIZON")
        got += c.get_records(ShardIterator=it["ShardIterator"])["Records"]
    assert sorted((r["Data"], r.get("PartitionKey")) for r in got) == [(b"1", None), (b"2", "p"), (b"k-less", None)]
    c.update_stream_record_distribution_strategy(StreamARN=arn, RecordDistributionStrategy="USER_PARTITION_KEY")
    with pytest.raises(ClientError) as ei:
        c.put_record(StreamARN=arn, Data=b"x")
    assert ei.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "1 validation error detected: Value null at 'partitionKey' failed to satisfy constraint: Member "
                   "must not be null"}
    with pytest.raises(ClientError) as ei:
        c.update_stream_record_distribution_strategy(StreamARN=arn, RecordDistributionStrategy="RANDOM")
    assert ei.value.response["Error"]["Code"] == "ValidationException"


# -- DryRun ------------------------------------------------------------------------------------------

def _snapshot(engine):
    s = engine.stream("s")
    return s.core.record_count(), s.core.counters(sorted(s.core.shards)).tolist()


def test_dry_run_put_checks_everything_and_writes_nothing(engine):
    engine.create_stream("s", shard_count=1)
    before = _snapshot(engine)
    with pytest.raises(E.DryRunOperationException, match=DRY):
        engine.put_record(b"x", "k", stream_name="s", dry_run=True)
    with pytest.raises(E.DryRunOperationException):
        engine.put_records([(b"x", "k"), (b"y", "j", "7")], stream_name="s", dry_run=True)
    assert _snapshot(engine) == before
    # the real error when the request would fail
    with pytest.raises(E.ResourceNotFoundException):
        engine.put_record(b"x", "k", stream_name="nope", dry_run=True)
    with pytest.raises(E.ValidationException, match="at 'data' failed to satisfy constraint: Member must have "
                       "length less than or equal to 1048576"):
        engine.put_record(b"x" * (1024 * 1024), "k", stream_name="s", dry_run=True)
    with pytest.raises(E.InvalidArgumentException, match="Invalid ExplicitHashKey"):
        engine.put_records([(b"x", "k", str(2 ** 128))], stream_name="s", dry_run=True)
    with pytest.raises(E.ValidationException, match="records.1.member.partitionKey"):
        engine.put_records([(b"x", "")], stream_name="s", dry_run=True)
    assert _snapshot(engine) == before


def test_dry_run_reads(engine, clock):
    engine.create_stream("s", shard_count=1)
    engine.stream("s").put_record(b"x", "k")
    with pytest.raises(E.DryRunOperationException):
        engine.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON", stream_name="s", dry_run=True)
    with pytest.raises(E.ResourceNotFoundException, match="Could not find shard"):
        engine.get_shard_iterator("shardId-000000000009", "TRIM_HORIZON", stream_name="s", dry_run=True)
    it = engine.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON", stream_name="s")
    before = _snapshot(engine)
    for _ in range(10):                        # no read quota used: 10 dry runs in the same instant
        with pytest.raises(E.DryRunOperationException):
            engine.get_records(it, dry_run=True)
    assert _snapshot(engine) == before
    assert [r.data for r in engine.get_records(it).records] == [b"x"]
    with pytest.raises(E.InvalidArgumentException, match="Invalid ShardIterator"):
        engine.get_records("bad", dry_run=True)
    clock.advance(301.0)
    with pytest.raises(E.ExpiredIteratorException):
        engine.get_records(it, dry_run=True)


def test_dry_run_subscribe_attaches_nothing(engine):
    engine.create_stream("s", shard_count=1)
    arn = engine.stream("s").arn
    c = engine.register_stream_consumer(arn, "c")["Consumer"]["ConsumerARN"]
    with pytest.raises(E.DryRunOperationException):
        engine.subscribe_to_shard(c, "shardId-000000000000", {"Type": "LATEST"}, dry_run=True)
    sub = engine.subscribe_to_shard(c, "shardId-000000000000", {"Type": "LATEST"})     # not refused: none attached
    with pytest.raises(E.ResourceInUseException, match="Another active subscription exists"):
        engine.subscribe_to_shard(c, "shardId-000000000000", {"Type": "LATEST"}, dry_run=True)
    sub.close()


@pytest.mark.parametrize("op, params", [
    ("put_record", {"StreamName": "s", "Data": b"x", "PartitionKey": "k"}),
    ("put_records", {"StreamName": "s", "Records": [{"Data": b"x", "PartitionKey": "k"}]}),
    ("get_shard_iterator", {"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "LATEST"}),
])
def test_dry_run_through_boto3(kin, op, params):
    c = kin.client
    c.create_stream(StreamName="s", ShardCount=1)
    with pytest.raises(ClientError) as ei:
        getattr(c, op)(DryRun=True, **params)
    assert ei.value.response["Error"] == {"Code": "DryRunOperationException", "Message": DRY}
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    it = c.get_shard_iterator(StreamName="s", ShardId="shardId-000000000000",
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert c.get_records(ShardIterator=it)["Records"] == []
    with pytest.raises(ClientError) as ei:
        c.get_records(ShardIterator=it, DryRun=True)
    assert ei.value.response["Error"]["Code"] == "DryRunOperationException"
    with pytest.raises(ClientError) as ei:
        getattr(c, op)(DryRun=True, **{**params, "StreamName": "nope"})
    assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_dry_run_subscribe_through_boto3(kin):
    c = kin.client
    c.create_stream(StreamName="s", ShardCount=1)
    arn = c.describe_stream_summary(StreamName="s")["StreamDescriptionSummary"]["StreamARN"]
    consumer = c.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]["ConsumerARN"]
    with pytest.raises(ClientError) as ei:
        c.subscribe_to_shard(ConsumerARN=consumer, ShardId="shardId-000000000000",
                             StartingPosition={"Type": "LATEST"}, DryRun=True)
    assert ei.value.response["Error"] == {"Code": "DryRunOperationException", "Message": DRY}
    with pytest.raises(ClientError) as ei:
        c.subscribe_to_shard(ConsumerARN=consumer, ShardId="shardId-000000000007",
                             StartingPosition={"Type": "LATEST"}, DryRun=True)
    assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_auto_routing_is_the_same_in_both_cores():
    outs = []
    for core in ("ref", "cy"):
        engine = fastkin.Engine(clock=fastkin.VirtualClock(1_700_000_000.0), core=core, quotas=False)
        s = engine.create_stream("s", record_distribution_strategy="AUTO")
        got = [s.put_record(b"a", None).shard_id, s.put_record(b"b", "k", "5").shard_id]
        got += [r.shard_id for r in s.put_records([(b"c", None), (b"", "x"), (b"d", None, "1")] * 3)]
        s.record_distribution = "USER_PARTITION_KEY"
        got += [s.put_record(b"e", "k").shard_id]
        s.record_distribution = "AUTO"
        got += [s.put_record(b"f", None).shard_id]
        s.core.check_invariants()
        records = []
        for info in s.open_shards():
            res = s.get_records(s.get_shard_iterator(info.shard_id, "TRIM_HORIZON"))
            records += [(r.sequence_number, r.data, r.partition_key) for r in res.records]
        outs.append((got, records))
    assert outs[0] == outs[1]
    assert len(set(outs[0][0][:12])) == 4

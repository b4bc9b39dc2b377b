"""mock_kinesis in-process: activation (context, decorators, nesting), botocore's own validation and
retries, coexistence with moto, enhanced fan-out, and the pytest fixtures."""
from __future__ import annotations

import asyncio

import boto3
import botocore.client
import pytest
from botocore.config import Config
from botocore.exceptions import ParamValidationError
from moto import mock_aws  # imported before any session is made, so its handler is in every session

import fastkin
from fastkin.wire.mock import _ORIGINAL, mock_kinesis

SESSION = boto3.session.Session()


def client(region="us-east-1", **kw):
    return SESSION.client("kinesis", region_name=region, aws_access_key_id="t", aws_secret_access_key="t", **kw)


def test_context_starts_fresh_and_restores_botocore():
    with mock_kinesis() as m:
        client().create_stream(StreamName="a", ShardCount=1)
        assert m.engine.stream("a").name == "a"
        with mock_kinesis() as inner:               # the innermost mock answers
            assert client().list_streams()["StreamNames"] == []
            client().create_stream(StreamName="b", ShardCount=1)
            assert inner.engine.list_streams()["StreamNames"] == ["b"]
        assert client().list_streams()["StreamNames"] == ["a"]
    assert botocore.client.BaseClient._make_api_call is _ORIGINAL
    with mock_kinesis():
        assert client().list_streams()["StreamNames"] == []      # a new block is a new engine


def test_decorates_functions_classes_and_coroutines():
    seen = []

    @mock_kinesis()
    def f():
        client().create_stream(StreamName="f", ShardCount=1)
        seen.append(client().list_streams()["StreamNames"])

    @mock_kinesis()
    class T:
        def test_one(self):
            seen.append(client().list_streams()["StreamNames"])

    @mock_kinesis()
    async def g():
        seen.append(client().list_streams()["StreamNames"])

    f()
    f()
    T().test_one()
    asyncio.run(g())
    assert seen == [["f"], ["f"], [], []]


def test_botocore_validation_still_applies():
    with mock_kinesis():
        k = client()
        with pytest.raises(ParamValidationError):
            k.create_stream(ShardCount=1)
        with pytest.raises(ParamValidationError):
            k.put_records(StreamName="s", Records=[{"Data": b"a", "PartitionKey": "k"},
                                                   {"Data": 7, "PartitionKey": "k"}])
        with pytest.raises(ParamValidationError):
            k.put_records(StreamName="s", Records=[{"Data": b"a", "PartitionKey": "k"},
                                                   {"Data": b"", "PartitionKey": ""}])
        with pytest.raises(ParamValidationError):
            k.put_records(StreamName="s", Records=[{"Data": b"a", "PartitionKey": "k"},
                                                   {"Data": b"x", "PartitionKey": "k", "Bogus": 1}])
        assert k.list_streams()["StreamNames"] == []


def test_retries_follow_the_clients_retry_config():
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    with mock_kinesis(clock=clock):
        legacy = client(config=Config(retries={"mode": "legacy"}))    # (newer botocore defaults to standard)
        legacy.create_stream(StreamName="s", ShardCount=1)
        legacy.put_records(StreamName="s", Records=[{"Data": b"x", "PartitionKey": str(i)} for i in range(500)])
        legacy.put_records(StreamName="s", Records=[{"Data": b"x", "PartitionKey": str(i)} for i in range(500)])
        with pytest.raises(legacy.exceptions.ProvisionedThroughputExceededException) as ei:
            legacy.put_record(StreamName="s", Data=b"x", PartitionKey="k")
        meta = ei.value.response["ResponseMetadata"]
        assert (meta["RetryAttempts"], meta["MaxAttemptsReached"]) == (4, True)   # legacy mode: 5 attempts
        std = client(config=Config(retries={"mode": "standard", "total_max_attempts": 3}))
        with pytest.raises(std.exceptions.ProvisionedThroughputExceededException) as ei:
            std.put_record(StreamName="s", Data=b"x", PartitionKey="k")
        assert ei.value.response["ResponseMetadata"]["RetryAttempts"] == 2
        with pytest.raises(std.exceptions.ResourceNotFoundException) as ei:   # not retryable
            std.describe_stream(StreamName="nope")
        assert ei.value.response["ResponseMetadata"]["RetryAttempts"] == 0


def test_other_services_go_to_moto():
    with mock_aws(), mock_kinesis() as m:
        sqs = boto3.session.Session().client("sqs", region_name="us-east-1", aws_access_key_id="t",
                                             aws_secret_access_key="t")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        assert "q" in url
        client().create_stream(StreamName="mine", ShardCount=1)
        assert m.engine.list_streams()["StreamNames"] == ["mine"]
        assert sqs.list_queues()["QueueUrls"] == [url]


def test_a_given_engine_and_the_region_of_each_client():
    engine = fastkin.Engine(clock=fastkin.VirtualClock(start=1_700_000_000.0), region="eu-west-1")
    with mock_kinesis(engine=engine) as m:
        client("eu-west-1").create_stream(StreamName="here", ShardCount=1)
        client("us-east-1").create_stream(StreamName="there", ShardCount=1)
        assert engine.list_streams()["StreamNames"] == ["here"]
        assert m.engine_for("us-east-1").list_streams()["StreamNames"] == ["there"]
        assert m.engine_for("us-east-1").clock is engine.clock


def test_create_latency_and_waiter_on_the_virtual_clock():
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    with mock_kinesis(clock=clock, create_latency=5.0):
        k = client()
        k.create_stream(StreamName="slow", ShardCount=1)
        assert k.describe_stream_summary(StreamName="slow")["StreamDescriptionSummary"]["StreamStatus"] == "CREATING"
        clock.advance(5.0)
        k.get_waiter("stream_exists").wait(StreamName="slow", WaiterConfig={"Delay": 1, "MaxAttempts": 1})


# -- enhanced fan-out in-process --------------------------------------------------------------

def _efo(k, shards=1):
    k.create_stream(StreamName="e", ShardCount=shards)
    arn = k.describe_stream_summary(StreamName="e")["StreamDescriptionSummary"]["StreamARN"]
    c = k.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]
    return arn, c["ConsumerARN"]


def test_subscription_events_continuation_and_five_minute_end(mock_kin):
    k = mock_kin.client
    arn, carn = _efo(k)
    seqs = [k.put_record(StreamName="e", Data=bytes([i]), PartitionKey="p")["SequenceNumber"] for i in range(3)]
    stream = k.subscribe_to_shard(ConsumerARN=carn, ShardId="shardId-000000000000",
                                  StartingPosition={"Type": "AFTER_SEQUENCE_NUMBER",
                                                    "SequenceNumber": seqs[0]})["EventStream"]
    first = next(iter(stream))["SubscribeToShardEvent"]
    assert [r["Data"] for r in first["Records"]] == [b"\x01", b"\x02"]
    assert first["ContinuationSequenceNumber"] == seqs[2]
    empty = next(stream)["SubscribeToShardEvent"]
    assert empty["Records"] == [] and empty["ContinuationSequenceNumber"] == seqs[2]
    k.put_record(StreamName="e", Data=b"late", PartitionKey="p")
    assert [r["Data"] for r in next(stream)["SubscribeToShardEvent"]["Records"]] == [b"late"]
    with pytest.raises(k.exceptions.ResourceInUseException):     # a second subscription within 5 s
        k.subscribe_to_shard(ConsumerARN=carn, ShardId="shardId-000000000000", StartingPosition={"Type": "LATEST"})
    mock_kin.clock.advance(300.0)
    assert list(stream) == []                                     # subscriptions last 5 minutes
    k.subscribe_to_shard(ConsumerARN=carn, ShardId="shardId-000000000000", StartingPosition={"Type": "LATEST"})


def test_consumer_limits_and_lifecycle(mock_kin):
    k = mock_kin.client
    arn, carn = _efo(k)
    with pytest.raises(k.exceptions.ResourceInUseException):
        k.register_stream_consumer(StreamARN=arn, ConsumerName="c")
    for i in range(19):
        k.register_stream_consumer(StreamARN=arn, ConsumerName=f"x{i}")
    with pytest.raises(k.exceptions.LimitExceededException):
        k.register_stream_consumer(StreamARN=arn, ConsumerName="one-too-many")
    assert k.describe_stream_summary(StreamName="e")["StreamDescriptionSummary"]["ConsumerCount"] == 20
    with pytest.raises(k.exceptions.ResourceInUseException):
        k.delete_stream(StreamName="e")                     # consumers registered
    sub = k.subscribe_to_shard(ConsumerARN=carn, ShardId="shardId-000000000000",
                               StartingPosition={"Type": "TRIM_HORIZON"})["EventStream"]
    k.deregister_stream_consumer(ConsumerARN=carn)
    assert list(sub) == []                                  # deregistering ends its subscriptions
    with pytest.raises(k.exceptions.ResourceNotFoundException):
        k.describe_stream_consumer(ConsumerARN=carn)
    k.delete_stream(StreamName="e", EnforceConsumerDeletion=True)
    assert k.list_streams()["StreamNames"] == []


def test_consumer_creating_state_and_arn():
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    with mock_kinesis(clock=clock, consumer_latency=2.0):
        k = client()
        k.create_stream(StreamName="e", ShardCount=1)
        arn = k.describe_stream_summary(StreamName="e")["StreamDescriptionSummary"]["StreamARN"]
        c = k.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]
        assert c["ConsumerARN"] == f"{arn}/consumer/c:1700000000"
        assert c["ConsumerStatus"] == "CREATING"
        with pytest.raises(k.exceptions.ResourceInUseException):
            k.subscribe_to_shard(ConsumerARN=c["ConsumerARN"], ShardId="0", StartingPosition={"Type": "LATEST"})
        clock.advance(2.0)
        desc = k.describe_stream_consumer(ConsumerARN=c["ConsumerARN"])["ConsumerDescription"]
        assert desc["ConsumerStatus"] == "ACTIVE"


def test_consumer_latency_applies_to_a_given_engine_and_its_state_is_the_engines():
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    engine = fastkin.Engine(clock=clock)
    with mock_kinesis(engine=engine, consumer_latency=3.0):
        k = client()
        k.create_stream(StreamName="e", ShardCount=1)
        arn = engine.stream("e").arn
        k.register_stream_consumer(StreamARN=arn, ConsumerName="c")
        k.put_resource_policy(ResourceARN=arn, Policy='{"Version": "2012-10-17", "Statement": []}')
    c = engine.stream("e").consumers["c"]                   # what boto3 registered is the engine's own state
    assert c.status_at(clock()) == "CREATING" and c.status_at(clock() + 3.0) == "ACTIVE"
    assert engine.get_resource_policy(arn)["Policy"] == engine.stream("e").policy
    assert engine.describe_stream_summary(stream_arn=arn)["StreamDescriptionSummary"]["ConsumerCount"] == 1


# -- the pytest plugin's fixtures ---------------------------------------------------------------

@pytest.mark.parametrize("round", [1, 2])
def test_plugin_fixtures_are_isolated(fastkin_kinesis, fastkin_clock, fastkin_engine, round):
    fastkin_kinesis.create_stream(StreamName="same-name-every-test", ShardCount=1)   # would clash if shared
    r = fastkin_kinesis.put_record(StreamName="same-name-every-test", Data=b"x", PartitionKey="k")
    it = fastkin_engine.get_shard_iterator(r["ShardId"], "TRIM_HORIZON", stream_name="same-name-every-test")
    rec = fastkin_engine.get_records(it).records[0]
    assert rec.approximate_arrival_timestamp == fastkin_clock()


def test_plugin_server_fixture(fastkin_server):
    k = client(endpoint_url=fastkin_server.url)
    k.create_stream(StreamName="srv", ShardCount=1)
    assert fastkin_server.app.engine.list_streams()["StreamNames"] == ["srv"]


def test_idle_subscription_leaves_the_shared_read_quota_alone(mock_kin):
    k = mock_kin.client
    _, carn = _efo(k)
    sub = k.subscribe_to_shard(ConsumerARN=carn, ShardId="shardId-000000000000",
                               StartingPosition={"Type": "LATEST"})["EventStream"]
    assert all(next(sub)["SubscribeToShardEvent"]["Records"] == [] for _ in range(20))
    it = k.get_shard_iterator(StreamName="e", ShardId="shardId-000000000000", ShardIteratorType="LATEST")
    for _ in range(5):       # a polling reader still has its 5 GetRecords calls for this second
        it = {"ShardIterator": k.get_records(ShardIterator=it["ShardIterator"])["NextShardIterator"]}


def test_each_consumer_gets_two_mib_per_second_per_shard():
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    with mock_kinesis(clock=clock, quotas=False):       # shard quotas off: only the consumer's pipe limits
        k = client()
        _, carn = _efo(k)
        mib = b"x" * (1024 * 1024 - 1)
        for _ in range(3):
            k.put_record(StreamName="e", Data=mib, PartitionKey="p")
        sub = k.subscribe_to_shard(ConsumerARN=carn, ShardId="shardId-000000000000",
                                   StartingPosition={"Type": "TRIM_HORIZON"})["EventStream"]
        assert len(next(sub)["SubscribeToShardEvent"]["Records"]) == 3     # 3 MiB: 1 MiB into debt
        k.put_record(StreamName="e", Data=b"more", PartitionKey="p")
        clock.advance(0.5)
        assert next(sub)["SubscribeToShardEvent"]["Records"] == []         # debt not yet repaid
        clock.advance(0.5)
        assert [r["Data"] for r in next(sub)["SubscribeToShardEvent"]["Records"]] == [b"more"]


def test_no_socket_connects_and_unknown_operations_fail_in_process(monkeypatch):
    import socket

    from botocore.exceptions import ClientError

    def refuse(*a, **kw):
        raise AssertionError(f"a network connection was attempted: {a!r}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    with mock_kinesis():
        k = client()
        k.create_stream(StreamName="s", ShardCount=1)
        k.put_record(StreamName="s", Data=b"x", PartitionKey="p")
        with pytest.raises(ClientError) as ei:
            k._make_api_call("NoSuchOperation", {})
    assert ei.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "fastkin" in ei.value.response["Error"]["Message"]

"""aiobotocore Kinesis clients inside ``fastkin.mock_kinesis``: answered in-process, as botocore clients are."""
from __future__ import annotations

import asyncio
import time

import pytest

aiobotocore = pytest.importorskip("aiobotocore")

import botocore.config  # noqa: E402
from aiobotocore.session import get_session  # noqa: E402
from botocore.exceptions import ClientError, ParamValidationError  # noqa: E402

import fastkin  # noqa: E402

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

pytestmark = pytest.mark.anyio


def _client(**kw):
    return get_session().create_client("kinesis", region_name="us-east-1", **CREDS, **kw)


async def test_round_trip(no_network):
    with fastkin.mock_kinesis() as m:
        async with _client() as k:
            await k.create_stream(StreamName="s", ShardCount=2)
            d = await k.describe_stream(StreamName="s")
            assert d["StreamDescription"]["StreamStatus"] == "ACTIVE"
            assert len(d["StreamDescription"]["Shards"]) == 2
            assert (await k.list_streams())["StreamNames"] == ["s"]
            r = await k.put_record(StreamName="s", Data=b"hello", PartitionKey="p")
            assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
            rs = await k.put_records(StreamName="s", Records=[{"Data": b"x%d" % i, "PartitionKey": "p"}
                                                                  for i in range(5)])
            assert rs["FailedRecordCount"] == 0
            it = (await k.get_shard_iterator(StreamName="s", ShardId=r["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON"))["ShardIterator"]
            got = await k.get_records(ShardIterator=it)
            assert [x["Data"] for x in got["Records"]] == [b"hello"] + [b"x%d" % i for i in range(5)]
        assert m.engine.stream("s") is not None
    assert no_network == []


async def test_modeled_error_with_aws_message():
    with fastkin.mock_kinesis():
        async with _client() as k:
            with pytest.raises(k.exceptions.ResourceNotFoundException) as ei:
                await k.describe_stream(StreamName="missing")
    err = ei.value.response
    assert isinstance(ei.value, ClientError)
    assert err["Error"]["Code"] == "ResourceNotFoundException"
    assert err["Error"]["Message"] == "Stream missing under account 123456789012 not found."
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_botocore_parameter_validation():
    with fastkin.mock_kinesis():
        async with _client() as k:
            with pytest.raises(ParamValidationError):
                await k.create_stream(StreamName="s", ShardCount="two")   # botocore: not an integer


async def test_unknown_operation_in_process(no_network):
    with fastkin.mock_kinesis():
        async with _client() as k:
            with pytest.raises(ClientError) as ei:
                await k._make_api_call("NoSuchOperation", {})
    assert ei.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "fastkin" in ei.value.response["Error"]["Message"]
    assert no_network == []


async def test_paginator_and_waiter(no_network):
    with fastkin.mock_kinesis():
        async with _client() as k:
            for i in range(5):
                await k.create_stream(StreamName=f"s{i}", ShardCount=3)
            pages = [p async for p in k.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2})]
            assert len(pages) == 3
            assert [n for p in pages for n in p["StreamNames"]] == [f"s{i}" for i in range(5)]
            arn = (await k.describe_stream_summary(StreamName="s0"))["StreamDescriptionSummary"]["StreamARN"]
            for i in range(3):
                await k.register_stream_consumer(StreamARN=arn, ConsumerName=f"c{i}")
            consumers = [c["ConsumerName"] async for p in k.get_paginator("list_stream_consumers").paginate(
                StreamARN=arn, PaginationConfig={"PageSize": 1}) for c in p["Consumers"]]
            assert sorted(consumers) == ["c0", "c1", "c2"]
            shards = [s async for p in k.get_paginator("list_shards").paginate(StreamName="s0") for s in p["Shards"]]
            assert len(shards) == 3
            await k.get_waiter("stream_exists").wait(StreamName="s0", WaiterConfig={"Delay": 0, "MaxAttempts": 2})
    assert no_network == []


async def test_waiter_polls_until_active():
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    with fastkin.mock_kinesis(clock=clock, create_latency=5.0):
        async with _client() as k:
            await k.create_stream(StreamName="s", ShardCount=1)
            assert (await k.describe_stream_summary(StreamName="s"))["StreamDescriptionSummary"][
                "StreamStatus"] == "CREATING"

            async def advance():
                await asyncio.sleep(0.01)
                clock.advance(10.0)
            task = asyncio.ensure_future(advance())
            await k.get_waiter("stream_exists").wait(StreamName="s", WaiterConfig={"Delay": 0.02, "MaxAttempts": 50})
            await task


async def test_retries_through_aiobotocore_handlers_virtual_clock():
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    cfg = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 3})
    with fastkin.mock_kinesis(clock=clock):
        async with _client(config=cfg) as k:
            await k.create_stream(StreamName="s", ShardCount=1)
            big = b"x" * (1024 * 1024 - 1)
            await k.put_record(StreamName="s", Data=big, PartitionKey="p")
            t0 = time.monotonic()
            with pytest.raises(k.exceptions.ProvisionedThroughputExceededException) as ei:
                await k.put_record(StreamName="s", Data=big, PartitionKey="p")
            assert time.monotonic() - t0 < 0.5                  # no sleeping on a virtual clock
    assert ei.value.response["ResponseMetadata"]["RetryAttempts"] == 2


async def test_retries_sleep_with_asyncio_on_real_clock(monkeypatch):
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay, *a, **kw):
        slept.append(delay)
        await real_sleep(0)
    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("time.sleep blocked the event loop"))
    cfg = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 3})
    with fastkin.mock_kinesis():
        async with _client(config=cfg) as k:
            await k.create_stream(StreamName="s", ShardCount=1)
            big = b"x" * (1024 * 1024 - 1)
            await k.put_record(StreamName="s", Data=big, PartitionKey="p")
            with pytest.raises(k.exceptions.ProvisionedThroughputExceededException) as ei:
                await k.put_record(StreamName="s", Data=big, PartitionKey="p")
    assert ei.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert len([d for d in slept if d > 0]) == 2


async def test_subscribe_to_shard_async_for(no_network):
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    with fastkin.mock_kinesis(clock=clock):
        async with _client() as k:
            await k.create_stream(StreamName="s", ShardCount=1)
            arn = (await k.describe_stream_summary(StreamName="s"))["StreamDescriptionSummary"]["StreamARN"]
            c = (await k.register_stream_consumer(StreamARN=arn, ConsumerName="c"))["Consumer"]["ConsumerARN"]
            for i in range(3):
                await k.put_record(StreamName="s", Data=b"r%d" % i, PartitionKey="p")
            resp = await k.subscribe_to_shard(ConsumerARN=c, ShardId="shardId-000000000000",
                                              StartingPosition={"Type": "TRIM_HORIZON"})
            got = []
            async for ev in resp["EventStream"]:
                got += [r["Data"] for r in ev["SubscribeToShardEvent"]["Records"]]
                if len(got) >= 3:
                    break
            assert got == [b"r0", b"r1", b"r2"]
            resp["EventStream"].close()


async def test_subscribe_to_shard_never_blocks_the_loop():
    """On the real clock an idle subscription waits with asyncio.sleep: other tasks keep running."""
    with fastkin.mock_kinesis():
        async with _client() as k:
            await k.create_stream(StreamName="s", ShardCount=1)
            arn = (await k.describe_stream_summary(StreamName="s"))["StreamDescriptionSummary"]["StreamARN"]
            c = (await k.register_stream_consumer(StreamARN=arn, ConsumerName="c"))["Consumer"]["ConsumerARN"]
            resp = await k.subscribe_to_shard(ConsumerARN=c, ShardId="shardId-000000000000",
                                              StartingPosition={"Type": "LATEST"})
            resp["EventStream"].subscription.idle_wait = 2.0

            async def produce():
                await asyncio.sleep(0.1)
                await k.put_record(StreamName="s", Data=b"late", PartitionKey="p")
            task = asyncio.ensure_future(produce())
            async with resp["EventStream"] as stream:
                t0 = time.monotonic()
                async for ev in stream:
                    records = ev["SubscribeToShardEvent"]["Records"]
                    break
            await task
            assert [r["Data"] for r in records] == [b"late"]
            assert time.monotonic() - t0 < 1.5


@fastkin.mock_kinesis()
async def test_decorated_async_test():
    async with _client() as k:
        await k.create_stream(StreamName="deco", ShardCount=1)
        assert (await k.list_streams())["StreamNames"] == ["deco"]


async def test_outside_the_mock_is_not_intercepted():
    from fastkin.wire import mock

    with fastkin.mock_kinesis():
        assert aiobotocore.client.AioBaseClient._make_api_call is mock._patched_aio_make_api_call
    assert aiobotocore.client.AioBaseClient._make_api_call is not mock._patched_aio_make_api_call


async def test_fixture(fastkin_aio_kinesis, fastkin_engine):
    await fastkin_aio_kinesis.create_stream(StreamName="f", ShardCount=1)
    assert fastkin_engine.stream("f") is not None

"""aioboto3 Kinesis clients inside ``fastkin.mock_kinesis``."""
from __future__ import annotations

import pytest

aioboto3 = pytest.importorskip("aioboto3")

import fastkin  # noqa: E402

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

pytestmark = pytest.mark.anyio


async def test_aioboto3_end_to_end(no_network):
    with fastkin.mock_kinesis():
        async with aioboto3.Session(**CREDS).client("kinesis", region_name="us-east-1") as k:
            await k.create_stream(StreamName="s", ShardCount=1)
            await k.get_waiter("stream_exists").wait(StreamName="s")
            r = await k.put_record(StreamName="s", Data=b"a", PartitionKey="p")
            await k.put_records(StreamName="s", Records=[{"Data": b"b", "PartitionKey": "p"}])
            it = (await k.get_shard_iterator(StreamName="s", ShardId=r["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON"))["ShardIterator"]
            assert [x["Data"] for x in (await k.get_records(ShardIterator=it))["Records"]] == [b"a", b"b"]
            shards = [s async for p in k.get_paginator("list_shards").paginate(StreamName="s") for s in p["Shards"]]
            assert len(shards) == 1
            with pytest.raises(k.exceptions.ResourceNotFoundException) as ei:
                await k.describe_stream_summary(StreamName="nope")
            assert ei.value.response["Error"]["Message"] == "Stream nope under account 123456789012 not found."
    assert no_network == []


@fastkin.mock_kinesis()
async def test_aioboto3_decorated(no_network):
    async with aioboto3.Session(**CREDS).client("kinesis", region_name="eu-west-1") as k:
        await k.create_stream(StreamName="s", ShardCount=1)
        assert (await k.list_streams())["StreamNames"] == ["s"]

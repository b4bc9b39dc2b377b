"""Producer and Consumer in asyncio applications: a sync boto3 client as target, used as the README says; an
aiobotocore client is refused up front with a pointer to that guidance."""
from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("aiobotocore")

import boto3  # noqa: E402
from aiobotocore.session import get_session  # noqa: E402

import fastkin  # noqa: E402
from fastkin.kcl import MemoryLeaseStore  # noqa: E402

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("make", [lambda k: fastkin.Producer(k, "s"),
                                  lambda k: fastkin.Consumer(k, "s", "app", fastkin.RecordProcessor)],
                         ids=["Producer", "Consumer"])
async def test_aiobotocore_target_refused(make):
    with fastkin.mock_kinesis():
        async with get_session().create_client("kinesis", region_name="us-east-1", **CREDS) as k:
            with pytest.raises(TypeError, match="async client .*sync boto3 client .*asyncio applications"):
                make(k)


async def test_producer_from_the_loop_never_blocks_it(no_network):
    """put() through to_thread, results awaited with wrap_future, close() through to_thread: a ticker task on
    the loop keeps running all along (the loop is never blocked for long)."""
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    with fastkin.mock_kinesis():
        kinesis = boto3.client("kinesis", region_name="us-east-1", **CREDS)
        kinesis.create_stream(StreamName="s", ShardCount=4)
        tick = asyncio.ensure_future(ticker())
        producer = fastkin.Producer(kinesis, "s", linger=0.05)
        futures = await asyncio.to_thread(lambda: [producer.put(b"r%d" % i, f"k{i}") for i in range(2_000)])
        results = await asyncio.gather(*map(asyncio.wrap_future, futures))
        await asyncio.to_thread(producer.close)
        stop.set()
        await tick
    assert len({r.shard_id for r in results}) == 4
    assert producer.metrics.records_sent == 2_000
    assert gaps and max(gaps) < 0.5
    assert no_network == []


async def test_consumer_hands_records_to_the_loop(no_network):
    """The record processor runs the application's coroutine on the loop and checkpoints after it."""
    handled: list[bytes] = []
    loop = asyncio.get_running_loop()

    async def handle(records):
        assert asyncio.get_running_loop() is loop
        handled.extend(r.data for r in records)

    class Handler(fastkin.RecordProcessor):
        def process_records(self, records, checkpointer):
            asyncio.run_coroutine_threadsafe(handle(records), loop).result()
            checkpointer.checkpoint()

    with fastkin.mock_kinesis():
        kinesis = boto3.client("kinesis", region_name="us-east-1", **CREDS)
        kinesis.create_stream(StreamName="s", ShardCount=2)
        kinesis.put_records(StreamName="s", Records=[{"Data": b"%d" % i, "PartitionKey": f"k{i}"}
                                                     for i in range(50)])
        worker = fastkin.Consumer(kinesis, "s", "async-app", Handler, lease_store=MemoryLeaseStore())
        worker.start()
        deadline = time.monotonic() + 10
        while len(handled) < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.to_thread(worker.shutdown)
        assert worker.error is None
        assert sorted(handled, key=int) == [b"%d" % i for i in range(50)]
        checkpoints = [lease["checkpoint"] for lease in worker.store.list()]
        assert len(checkpoints) == 2 and all(c[0].isdigit() for c in checkpoints)
    assert no_network == []

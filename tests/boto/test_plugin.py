"""The pytest plugin's fixtures: by default time moves with the test, so code that sleeps and retries gets through
as against AWS; asking for fastkin_virtual_clock gives hand-advanced, deterministic engine time."""
from __future__ import annotations

import time

import pytest
from botocore.config import Config

import fastkin


def _fill_the_shard(client) -> None:
    client.create_stream(StreamName="s", ShardCount=1)
    for _ in range(2):                                    # 1,000 records: the shard's whole second of records
        out = client.put_records(StreamName="s", Records=[{"Data": b"x", "PartitionKey": "k"}] * 500)
        assert out["FailedRecordCount"] == 0


def test_default_engine_runs_on_the_real_clock(fastkin_engine):
    assert isinstance(fastkin_engine.clock, fastkin.RealClock)


def test_a_sleep_and_retry_loop_gets_through(fastkin_kinesis, fastkin_mock):
    _fill_the_shard(fastkin_kinesis)
    no_retries = fastkin_kinesis.meta.config.merge(Config(retries={"total_max_attempts": 1}))
    import boto3

    client = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                          config=no_retries)
    attempts = 0
    while True:                                           # what application code does against AWS
        attempts += 1
        try:
            client.put_record(StreamName="s", Data=b"y", PartitionKey="k")
            break
        except client.exceptions.ProvisionedThroughputExceededException:
            assert attempts < 200, "still throttled after 200 sleeps: time does not move"
            time.sleep(0.01)
    # (under a frozen clock every attempt is throttled: the bucket never refills)


def test_botocore_retries_wait_as_against_aws(fastkin_kinesis):
    _fill_the_shard(fastkin_kinesis)
    for _ in range(20):                                   # botocore's own retry loop, sleeping between attempts
        fastkin_kinesis.put_records(StreamName="s", Records=[{"Data": b"x", "PartitionKey": "k"}] * 500)
        out = fastkin_kinesis.put_record(StreamName="s", Data=b"y", PartitionKey="k")
        assert out["ShardId"] == "shardId-000000000000"


def test_the_virtual_clock_fixture_drives_the_engine(fastkin_kinesis, fastkin_virtual_clock, fastkin_engine):
    assert fastkin_engine.clock is fastkin_virtual_clock
    _fill_the_shard(fastkin_kinesis)
    client_no_retry = fastkin_kinesis.meta.config.merge(Config(retries={"total_max_attempts": 1}))
    import boto3

    client = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                          config=client_no_retry)
    with pytest.raises(client.exceptions.ProvisionedThroughputExceededException):
        client.put_record(StreamName="s", Data=b"y", PartitionKey="k")
    time.sleep(0.05)                                      # real time passing does not refill a virtual bucket
    with pytest.raises(client.exceptions.ProvisionedThroughputExceededException):
        client.put_record(StreamName="s", Data=b"y", PartitionKey="k")
    fastkin_virtual_clock.advance(1.0)
    assert client.put_record(StreamName="s", Data=b"y", PartitionKey="k")["ShardId"] == "shardId-000000000000"


def test_fastkin_clock_is_the_virtual_clock(fastkin_clock, fastkin_virtual_clock, fastkin_engine):
    assert fastkin_clock is fastkin_virtual_clock is fastkin_engine.clock

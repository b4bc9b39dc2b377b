"""Channels through boto3: in-process (objects land in moto's S3 under mock_aws) and over HTTP (a directory
target), with the ChannelActive waiter and AWS's error codes."""
from __future__ import annotations

import gzip

import boto3
import pytest
from botocore.config import Config

import fastkin
from fastkin.wire.http import ServerThread

moto = pytest.importorskip("moto", reason="the in-process S3 destination test needs moto (the test extra)")
START = 1_700_000_000.0
ROLE = "arn:aws:iam::123456789012:role/kinesis-delivery"
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def _channel(k, stream_arn, **storage):
    return k.create_channel(
        ChannelName="to-lake", ServiceExecutionRoleARN=ROLE,
        StreamConfigurationList=[{"StreamARN": stream_arn, "RecordConfiguration": {"RecordFormatType": "JSON"}}],
        S3DestinationConfiguration={"DataFreshnessInSeconds": 300, "StorageConfiguration": {
            "BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": "123456789012", **storage}},
    )["ChannelDescription"]["ChannelARN"]


def _stream(k):
    k.create_stream(StreamName="events", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    return k.describe_stream_summary(StreamName="events")["StreamDescriptionSummary"]["StreamARN"]


def test_in_process_into_moto_s3():
    clock = fastkin.VirtualClock(start=START)
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lake")
        with fastkin.mock_kinesis(clock=clock):
            k = boto3.client("kinesis", region_name="us-east-1", config=NO_RETRY)
            arn = _stream(k)
            channel = _channel(k, arn, CompressionType="GZIP", StorageClass="INTELLIGENT_TIERING")
            k.get_waiter("channel_active").wait(ChannelARN=channel)
            k.put_records(StreamARN=arn, Records=[{"Data": b'{"n": %d}\n' % i, "PartitionKey": f"k{i}"}
                                                  for i in range(100)])
            clock.advance(300)
            [obj] = s3.list_objects_v2(Bucket="lake")["Contents"]
            assert obj["Key"].endswith(".gz") and obj["StorageClass"] == "INTELLIGENT_TIERING"
            body = gzip.decompress(s3.get_object(Bucket="lake", Key=obj["Key"])["Body"].read())
            assert sorted(body.splitlines()) == sorted(b'{"n": %d}' % i for i in range(100))
            with pytest.raises(k.exceptions.ResourceInUseException):
                k.delete_stream(StreamName="events")
            with pytest.raises(k.exceptions.ResourceInUseException):
                _channel(k, arn, CompressionType="NONE")
            k.delete_channel(ChannelARN=channel)
            k.delete_stream(StreamName="events")


def test_missing_bucket_makes_the_waiter_fail():
    clock = fastkin.VirtualClock(start=START)
    with moto.mock_aws():
        with fastkin.mock_kinesis(clock=clock):
            k = boto3.client("kinesis", region_name="us-east-1", config=NO_RETRY)
            channel = _channel(k, _stream(k), CompressionType="NONE")
            from botocore.exceptions import WaiterError
            with pytest.raises(WaiterError, match="FAILED|failure"):
                k.get_waiter("channel_active").wait(ChannelARN=channel)
            d = k.describe_channel(ChannelARN=channel)["ChannelDescription"]
            assert d["ChannelStatus"] == "FAILED" and "lake" in d["ChannelStatusReason"]


def test_over_http_into_a_directory(tmp_path):
    (tmp_path / "lake").mkdir()
    engine = fastkin.Engine(clock=fastkin.VirtualClock(start=START), channel_s3=f"file://{tmp_path}")
    with ServerThread(port=0) as srv:
        srv.app.reset(engine)
        k = boto3.client("kinesis", region_name="us-east-1", endpoint_url=srv.url, config=NO_RETRY,
                         aws_access_key_id="testing", aws_secret_access_key="testing")
        arn = _stream(k)
        channel = _channel(k, arn, CompressionType="NONE", OutputKeyTemplate="!{stream-name}/!{yyyy}/part")
        k.get_waiter("channel_active").wait(ChannelARN=channel)
        k.put_record(StreamARN=arn, Data=b'{"over": "http"}', PartitionKey="a")
        with pytest.raises(k.exceptions.ValidationException, match="between 300 and 900"):
            k.update_channel(ChannelARN=channel, S3DestinationConfiguration={"DataFreshnessInSeconds": 10})
        engine.clock.advance(300)
        [obj] = [p for p in (tmp_path / "lake").rglob("*") if p.is_file()]
        assert obj.read_bytes() == b'{"over": "http"}'
        assert str(obj.relative_to(tmp_path / "lake")).startswith("events/2023/part-")
        assert k.list_channels()["ChannelSummaries"][0]["ChannelStatus"] == "ACTIVE"

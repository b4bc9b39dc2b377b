"""CBOR (application/x-amz-cbor-1.1) as the Java SDKs write and read it, for every operation, over
HTTP/1.1 and over HTTP/2 (h2c): requests with indefinite-length maps and arrays, byte strings and
timestamps as tag 1 + epoch MILLISECONDS; every response checked member by member against what a Java
unmarshaller accepts (integers, byte strings, tag 1 + integer milliseconds), error bodies included."""
from __future__ import annotations

import json

import httpx
import pytest
from h2wire import (
    CBOR_CT,
    START,
    TARGET,
    JavaDate,
    Millis,
    check_java_shape,
    event_payload,
    events,
    java_cbor,
    java_read,
)

from fastkin.wire.service import IMPLEMENTED, service_model
from fastkin.wire.sigv4 import placeholder_auth

MODEL = service_model()
MS = int(START * 1000)


class JavaClient:
    """Posts Java-style CBOR and checks each answer against the operation's output shape."""

    def __init__(self, url: str, http2: bool) -> None:
        self.url = url
        self.version = "HTTP/2" if http2 else "HTTP/1.1"
        self.http = httpx.Client(http1=not http2, http2=http2, timeout=10)
        self.seen: set[str] = set()

    def post(self, op: str, params: dict) -> httpx.Response:
        r = self.http.post(self.url + "/", content=java_cbor(params),
                           headers={"X-Amz-Target": TARGET + op, "Content-Type": CBOR_CT, "Accept": CBOR_CT,
                                    **placeholder_auth()})
        assert r.http_version == self.version
        return r

    def __call__(self, op: str, **params):
        r = self.post(op, params)
        assert r.status_code == 200, (op, r.status_code, r.content)
        self.seen.add(op)
        if op == "SubscribeToShard":
            assert r.headers["content-type"] == "application/vnd.amazon.eventstream"
            msgs = events(r.content)
            assert msgs[0].headers[":event-type"] == "initial-response"
            bodies = []
            for m in msgs[1:]:
                assert m.headers[":content-type"] == CBOR_CT and m.headers[":event-type"] == "SubscribeToShardEvent"
                body = event_payload(m)
                check_java_shape(MODEL.shape_for("SubscribeToShardEvent"), body)
                bodies.append(body)
            return bodies
        assert r.headers["content-type"] == CBOR_CT
        shape = MODEL.operation_model(op).output_shape
        body = java_read(r.content) if r.content else {}
        if shape is None:
            assert body == {}
        else:
            check_java_shape(shape, body)
        return body

    def error(self, op: str, status: int, code: str, **params) -> str:
        r = self.post(op, params)
        assert (r.status_code, r.headers["content-type"], r.headers["x-amzn-errortype"]) == (status, CBOR_CT, code)
        body = java_read(r.content)
        key = "Message" if code == "SerializationException" else "message"     # AWS's envelopes (capital M)
        assert set(body) == {"__type", key} and body["__type"] == code and isinstance(body[key], str)
        return body[key]


@pytest.fixture(params=["HTTP/1.1", "HTTP/2"])
def java(request, h2c):
    client = JavaClient(h2c.url, request.param == "HTTP/2")
    yield client
    client.http.close()


def test_every_operation_in_java_cbor(java, h2c, tmp_path):
    clock = h2c.app.engine.clock
    call = java
    call("CreateStream", StreamName="a", ShardCount=2, Tags={"team": "core"})
    call("CreateStream", StreamName="od", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    d = call("DescribeStreamSummary", StreamName="a")["StreamDescriptionSummary"]
    assert d["StreamCreationTimestamp"] == MS                  # tag 1, epoch milliseconds
    arn = d["StreamARN"]
    od_arn = call("DescribeStreamSummary", StreamName="od")["StreamDescriptionSummary"]["StreamARN"]
    assert call("DescribeStream", StreamName="a")["StreamDescription"]["StreamCreationTimestamp"] == MS
    assert call("ListStreams")["StreamSummaries"][0]["StreamCreationTimestamp"] == MS
    shards = call("ListShards", StreamName="a", StreamCreationTimestamp=JavaDate(MS))["Shards"]
    assert len(shards) == 2
    call("DescribeLimits")
    call("IncreaseStreamRetentionPeriod", StreamName="a", RetentionPeriodHours=48)
    call("DecreaseStreamRetentionPeriod", StreamARN=arn, RetentionPeriodHours=24)
    call("AddTagsToStream", StreamName="a", Tags={"env": "test"})
    call("RemoveTagsFromStream", StreamName="a", TagKeys=["env"])
    assert call("ListTagsForStream", StreamName="a")["Tags"] == [{"Key": "team", "Value": "core"}]

    # data: byte strings in, byte strings out; AT_TIMESTAMP iterators the Java way
    r1 = call("PutRecord", StreamName="a", Data=b"\x00\x01first", PartitionKey="k1", ExplicitHashKey="0")
    clock.advance(1.5)
    put = call("PutRecords", StreamARN=arn,
               Records=[{"Data": b"\xffsecond", "PartitionKey": "k2", "ExplicitHashKey": "0"},
                        {"Data": b"", "PartitionKey": "k3"}])
    assert put["FailedRecordCount"] == 0
    it = call("GetShardIterator", StreamName="a", ShardId=r1["ShardId"], ShardIteratorType="AT_TIMESTAMP",
              Timestamp=JavaDate(MS + 1000))["ShardIterator"]
    got = call("GetRecords", ShardIterator=it, Limit=100)
    assert [(x["Data"], x["ApproximateArrivalTimestamp"]) for x in got["Records"]] == [(b"\xffsecond", MS + 1500)]
    assert isinstance(got["Records"][0]["ApproximateArrivalTimestamp"], Millis)
    assert type(got["MillisBehindLatest"]) is int
    it = call("GetShardIterator", StreamName="a", ShardId=r1["ShardId"], ShardIteratorType="AT_TIMESTAMP",
              Timestamp=JavaDate(MS))["ShardIterator"]
    assert [x["Data"] for x in call("GetRecords", ShardIterator=it)["Records"]] == [b"\x00\x01first", b"\xffsecond"]
    at = call("ListShards", StreamName="a", ShardFilter={"Type": "AT_TIMESTAMP", "Timestamp": JavaDate(MS + 1000)})
    assert len(at["Shards"]) == 2

    call("EnableEnhancedMonitoring", StreamName="a", ShardLevelMetrics=["IncomingBytes"])
    call("DisableEnhancedMonitoring", StreamName="a", ShardLevelMetrics=["IncomingBytes"])
    call("StartStreamEncryption", StreamName="a", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    assert call("PutRecord", StreamName="a", Data=b"z", PartitionKey="k")["EncryptionType"] == "KMS"
    call("StopStreamEncryption", StreamName="a", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    call("UpdateMaxRecordSize", StreamARN=arn, MaxRecordSizeInKiB=2048)

    # enhanced fan-out, with an AT_TIMESTAMP starting position in tag 1 + milliseconds
    c = call("RegisterStreamConsumer", StreamARN=arn, ConsumerName="c1", Tags={"who": "me"})["Consumer"]
    assert c["ConsumerCreationTimestamp"] == int(clock() * 1000)
    call("DescribeStreamConsumer", ConsumerARN=c["ConsumerARN"])
    call("DescribeStreamConsumer", StreamARN=arn, ConsumerName="c1")
    assert [x["ConsumerName"] for x in call("ListStreamConsumers", StreamARN=arn)["Consumers"]] == ["c1"]
    lo, hi = (int(shards[0]["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    call("SplitShard", StreamName="a", ShardToSplit=r1["ShardId"], NewStartingHashKey=str((lo + hi) // 2))
    evs = call("SubscribeToShard", ConsumerARN=c["ConsumerARN"], ShardId=r1["ShardId"],
               StartingPosition={"Type": "AT_TIMESTAMP", "Timestamp": JavaDate(MS + 1000)})
    recs = [x for e in evs for x in e["Records"]]
    assert [(x["Data"], x["ApproximateArrivalTimestamp"]) for x in recs] == [(b"\xffsecond", MS + 1500)]
    assert len(evs[-1]["ChildShards"]) == 2                    # the split closed the shard: the stream ends
    for res in (arn, c["ConsumerARN"]):
        call("TagResource", ResourceARN=res, Tags={"k": "v"})
        call("ListTagsForResource", ResourceARN=res)
        call("UntagResource", ResourceARN=res, TagKeys=["k"])
        policy = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
             "Action": "kinesis:GetRecords", "Resource": res}]})
        call("PutResourcePolicy", ResourceARN=res, Policy=policy)
        assert call("GetResourcePolicy", ResourceARN=res)["Policy"] == policy
        call("DeleteResourcePolicy", ResourceARN=res)
    call("DeregisterStreamConsumer", ConsumerARN=c["ConsumerARN"])

    # queues: receipt handles and queue records (timestamps as tag 1) in CBOR
    q = call("CreateQueue", QueueName="q", StreamConfigurationList=[{"StreamARN": od_arn}],
             QueueAttributes={"VisibilityTimeoutSeconds": 5,
                              "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 1}},
             Tags={"k": "v"})["QueueDescription"]["QueueARN"]
    call("DescribeQueue", QueueARN=q)
    assert [x["QueueARN"] for x in call("ListQueues")["QueueSummaries"]] == [q]
    call("UpdateQueue", QueueARN=q, QueueAttributes={"VisibilityTimeoutSeconds": 5})
    call("PutRecords", StreamARN=od_arn, Records=[{"Data": b"1", "PartitionKey": "a"},
                                                  {"Data": b"2", "PartitionKey": "b"}])
    qa, qb = call("ReceiveQueueRecords", QueueARN=q, WaitTimeSeconds=1)["QueueRecords"]
    assert {qa["Data"], qb["Data"]} == {b"1", b"2"} and isinstance(qa["FirstReceiveTimestamp"], Millis)
    call("UpdateQueueRecordsVisibility", QueueARN=q,
         Entries=[{"ReceiptHandle": qb["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}])
    assert call("AcknowledgeQueueRecords", QueueARN=q, Entries=[{"ReceiptHandle": qa["ReceiptHandle"]}])["Failed"] == []
    clock.advance(5.0)
    [d] = call("ReceiveDeadLetterQueueRecords", QueueARN=q, WaitTimeSeconds=1)["QueueRecords"]
    call("UpdateDeadLetterQueueRecordsVisibility", QueueARN=q,
         Entries=[{"ReceiptHandle": d["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}])
    [d] = call("ReceiveDeadLetterQueueRecords", QueueARN=q, WaitTimeSeconds=1)["QueueRecords"]
    call("RestoreDeadLetterQueueRecords", QueueARN=q, Entries=[{"ReceiptHandle": d["ReceiptHandle"]}])
    call("ReceiveQueueRecords", QueueARN=q, WaitTimeSeconds=1)
    clock.advance(5.0)
    [d] = call("ReceiveDeadLetterQueueRecords", QueueARN=q, WaitTimeSeconds=1)["QueueRecords"]
    call("AcknowledgeDeadLetterQueueRecords", QueueARN=q, Entries=[{"ReceiptHandle": d["ReceiptHandle"]}])
    call("DeleteQueue", QueueARN=q)
    # channels, into a directory target
    (tmp_path / "lake").mkdir()
    h2c.app.engine.set_channel_destination(f"file://{tmp_path}")
    ch = call("CreateChannel", ChannelName="ch", ServiceExecutionRoleARN="arn:aws:iam::123456789012:role/kd",
              StreamConfigurationList=[{"StreamARN": od_arn, "RecordConfiguration": {"RecordFormatType": "STRING"}}],
              S3DestinationConfiguration={"StorageConfiguration": {
                  "BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": "123456789012", "CompressionType": "NONE"}},
              Tags={"k": "v"})["ChannelDescription"]
    assert isinstance(ch["ChannelCreationTimestamp"], int)        # tag 1, epoch milliseconds
    call("DescribeChannel", ChannelARN=ch["ChannelARN"])
    assert call("ListChannels", StreamFilter=[{"StreamARN": od_arn, "StreamCreationTimestamp": JavaDate(MS)}])[
        "ChannelSummaries"][0]["Streams"][0]["StreamCreationTimestamp"] == MS     # the stream of "od"
    call("UpdateChannel", ChannelARN=ch["ChannelARN"], S3DestinationConfiguration={"DataFreshnessInSeconds": 600})
    call("DeleteChannel", ChannelARN=ch["ChannelARN"])
    call("UpdateStreamRecordDistributionStrategy", StreamARN=od_arn, RecordDistributionStrategy="AUTO")
    call("PutRecord", StreamARN=od_arn, Data=b"no key")
    call("UpdateStreamRecordDistributionStrategy", StreamARN=od_arn, RecordDistributionStrategy="USER_PARTITION_KEY")

    # account settings (timestamps in the commitment) and warm throughput
    call("DescribeAccountSettings")
    s = call("UpdateAccountSettings", MinimumThroughputBillingCommitment={"Status": "ENABLED"})
    commit = s["MinimumThroughputBillingCommitment"]
    assert commit["StartedAt"] // 1000 == int(clock()) and commit["EarliestAllowedEndAt"] > commit["StartedAt"]
    assert call("UpdateStreamWarmThroughput", StreamARN=od_arn, WarmThroughputMiBps=100)["WarmThroughput"] == \
        {"TargetMiBps": 100, "CurrentMiBps": 100}
    call("DescribeAccountSettings")

    # resharding and capacity
    kids = [x["ShardId"] for x in call("ListShards", StreamName="a", ShardFilter={"Type": "AT_LATEST"})["Shards"]
            if x.get("ParentShardId") == r1["ShardId"]]
    call("MergeShards", StreamName="a", ShardToMerge=kids[0], AdjacentShardToMerge=kids[1])
    assert call("UpdateShardCount", StreamName="a", TargetShardCount=4, ScalingType="UNIFORM_SCALING")[
        "TargetShardCount"] == 4
    call("UpdateStreamMode", StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    call("DeleteStream", StreamName="a")
    call("DeleteStream", StreamARN=od_arn, EnforceConsumerDeletion=True)
    assert call("ListStreams")["StreamNames"] == []
    assert java.seen == set(IMPLEMENTED) & set(MODEL.operation_names), set(IMPLEMENTED) - java.seen


def test_error_bodies_in_java_cbor(java, h2c):
    java("CreateStream", StreamName="e", ShardCount=1)
    assert java.error("DescribeStream", 400, "ResourceNotFoundException", StreamName="nope") == \
        "Stream nope under account 123456789012 not found."
    java.error("CreateStream", 400, "ResourceInUseException", StreamName="e", ShardCount=1)
    java.error("CreateStream", 400, "ValidationException", StreamName="bad name!", ShardCount=1)
    java.error("PutRecord", 400, "SerializationException", StreamName="e", Data="text, not bytes", PartitionKey="k")
    # a timestamp read as seconds instead of milliseconds would be ~54,000 years ahead; an hour ahead is refused
    msg = java.error("GetShardIterator", 400, "InvalidArgumentException", StreamName="e",
                     ShardId="shardId-000000000000", ShardIteratorType="AT_TIMESTAMP",
                     Timestamp=JavaDate(MS + 3_600_000))
    assert "future" in msg.lower() or "timestamp" in msg.lower()
    r = java.post("GetShardIterator", {"StreamName": "e", "ShardId": "shardId-000000000000",
                                       "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": JavaDate(MS - 1)})
    assert r.status_code == 200
    for bad in (b"\xbf\x61", b"\x9f\xff", b"\xc1\x63abc"):          # truncated map, an array, tag 1 on text
        r = java.http.post(java.url + "/", content=bad,
                           headers={"X-Amz-Target": TARGET + "ListStreams", "Content-Type": CBOR_CT,
                                    **placeholder_auth()})
        assert r.status_code == 400 and java_read(r.content)["__type"] == "SerializationException"
    assert h2c.app.engine.list_streams()["StreamNames"] == ["e"]

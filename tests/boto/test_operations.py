"""Every operation of botocore's Kinesis model through boto3, in both modes; every response checked
against botocore's output shape."""
from __future__ import annotations

import json

import botocore.session
import pytest
from botocore.exceptions import ClientError

from fastkin.wire.service import IMPLEMENTED

MODEL = botocore.session.get_session().get_service_model("kinesis")
# The operations of the newest model fastkin does not answer, refused with UnknownOperationException (none in
# botocore 1.44's 57; a newer model's additions land here until implemented).
NOT_IMPLEMENTED: frozenset[str] = frozenset()


class Recorder:
    """Calls client operations, checks each response's shape and remembers which operations ran."""

    def __init__(self, client, check_shape) -> None:
        self.client = client
        self.check_shape = check_shape
        self.seen: set[str] = set()

    def __call__(self, op: str, **params):
        method = getattr(self.client, botocore.xform_name(op))
        out = method(**params)
        self.seen.add(op)
        shape = MODEL.operation_model(op).output_shape
        body = {k: v for k, v in out.items() if k != "ResponseMetadata"}
        assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
        if shape is None:
            assert body == {}
        elif op != "SubscribeToShard":
            self.check_shape(shape, body)
        return out


def test_every_operation_answers_with_its_output_shape(kin, shape_ok, tmp_path):
    check_shape = shape_ok
    call = Recorder(kin.client, check_shape)
    call("CreateStream", StreamName="a", ShardCount=2, Tags={"team": "core"})
    call("CreateStream", StreamName="od", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    arn = call("DescribeStreamSummary", StreamName="a")["StreamDescriptionSummary"]["StreamARN"]
    od_arn = call("DescribeStreamSummary", StreamName="od")["StreamDescriptionSummary"]["StreamARN"]
    call("DescribeStream", StreamName="a")
    call("ListStreams")
    call("ListShards", StreamName="a")
    call("DescribeLimits")
    call("IncreaseStreamRetentionPeriod", StreamName="a", RetentionPeriodHours=48)
    call("DecreaseStreamRetentionPeriod", StreamARN=arn, RetentionPeriodHours=24)
    call("AddTagsToStream", StreamName="a", Tags={"env": "test"})
    call("RemoveTagsFromStream", StreamName="a", TagKeys=["env"])
    assert call("ListTagsForStream", StreamName="a")["Tags"] == [{"Key": "team", "Value": "core"}]
    r = call("PutRecord", StreamName="a", Data=b"\x00\x01payload", PartitionKey="k1")
    call("PutRecords", StreamARN=arn, Records=[{"Data": b"x", "PartitionKey": "k2"},
                                               {"Data": b"y", "PartitionKey": "k3", "ExplicitHashKey": "0"}])
    it = call("GetShardIterator", StreamName="a", ShardId=r["ShardId"], ShardIteratorType="TRIM_HORIZON")
    got = call("GetRecords", ShardIterator=it["ShardIterator"])
    assert got["Records"][0]["Data"] == b"\x00\x01payload"
    call("EnableEnhancedMonitoring", StreamName="a", ShardLevelMetrics=["IncomingBytes"])
    call("DisableEnhancedMonitoring", StreamName="a", ShardLevelMetrics=["IncomingBytes"])
    call("StartStreamEncryption", StreamName="a", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    d = call("DescribeStream", StreamName="a")["StreamDescription"]
    assert (d["EncryptionType"], d["KeyId"]) == ("KMS", "alias/aws/kinesis")
    assert call("PutRecord", StreamName="a", Data=b"z", PartitionKey="k")["EncryptionType"] == "KMS"
    call("StopStreamEncryption", StreamName="a", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    assert call("DescribeStreamSummary", StreamName="a")["StreamDescriptionSummary"]["EncryptionType"] == "NONE"
    call("UpdateMaxRecordSize", StreamARN=arn, MaxRecordSizeInKiB=2048)
    assert call("DescribeStreamSummary", StreamName="a")["StreamDescriptionSummary"]["MaxRecordSizeInKiB"] == 2048
    kin.clock.advance(1.0)      # a full write bucket for a record above 1 MiB
    call("PutRecord", StreamName="a", Data=b"x" * (1536 * 1024), PartitionKey="big")
    # consumers
    c = call("RegisterStreamConsumer", StreamARN=arn, ConsumerName="c1", Tags={"who": "me"})["Consumer"]
    call("DescribeStreamConsumer", ConsumerARN=c["ConsumerARN"])
    call("DescribeStreamConsumer", StreamARN=arn, ConsumerName="c1")
    assert [x["ConsumerName"] for x in call("ListStreamConsumers", StreamARN=arn)["Consumers"]] == ["c1"]
    sub = call("SubscribeToShard", ConsumerARN=c["ConsumerARN"], ShardId=r["ShardId"],
               StartingPosition={"Type": "TRIM_HORIZON"})
    for ev in sub["EventStream"]:
        check_shape(MODEL.shape_for("SubscribeToShardEvent"), ev["SubscribeToShardEvent"])
        assert ev["SubscribeToShardEvent"]["Records"][0]["Data"] == b"\x00\x01payload"
        break
    sub["EventStream"].close()
    # resource tags and policies, on a stream and on a consumer
    for res in (arn, c["ConsumerARN"]):
        call("TagResource", ResourceARN=res, Tags={"k": "v"})
        assert {"Key": "k", "Value": "v"} in call("ListTagsForResource", ResourceARN=res)["Tags"]
        call("UntagResource", ResourceARN=res, TagKeys=["k"])
        assert {"Key": "k", "Value": "v"} not in call("ListTagsForResource", ResourceARN=res)["Tags"]
        policy = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
             "Action": "kinesis:GetRecords", "Resource": res}]})
        call("PutResourcePolicy", ResourceARN=res, Policy=policy)
        assert call("GetResourcePolicy", ResourceARN=res)["Policy"] == policy
        call("DeleteResourcePolicy", ResourceARN=res)
        assert call("GetResourcePolicy", ResourceARN=res)["Policy"] == "{}"
    call("DeregisterStreamConsumer", ConsumerARN=c["ConsumerARN"])
    # queues (an on-demand stream), with tags and a policy on the queue ARN
    if "CreateQueue" in MODEL.operation_names:
        q = call("CreateQueue", QueueName="q", StreamConfigurationList=[{"StreamARN": od_arn}],
                 QueueAttributes={"VisibilityTimeoutSeconds": 5,
                                  "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 1}},
                 Tags={"k": "v"})["QueueDescription"]["QueueARN"]
        call("DescribeQueue", QueueARN=q)
        assert [x["QueueARN"] for x in call("ListQueues")["QueueSummaries"]] == [q]
        call("UpdateQueue", QueueARN=q, QueueAttributes={"VisibilityTimeoutSeconds": 5})
        call("PutRecords", StreamARN=od_arn, Records=[{"Data": b"1", "PartitionKey": "a"},
                                                      {"Data": b"2", "PartitionKey": "b"}])
        r1, r2 = call("ReceiveQueueRecords", QueueARN=q, WaitTimeSeconds=1)["QueueRecords"]
        call("UpdateQueueRecordsVisibility", QueueARN=q,
             Entries=[{"ReceiptHandle": r2["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}])
        assert call("AcknowledgeQueueRecords", QueueARN=q, Entries=[{"ReceiptHandle": r1["ReceiptHandle"]}])[
            "Failed"] == []
        kin.clock.advance(5.0)
        [d] = call("ReceiveDeadLetterQueueRecords", QueueARN=q, WaitTimeSeconds=1)["QueueRecords"]
        call("UpdateDeadLetterQueueRecordsVisibility", QueueARN=q,
             Entries=[{"ReceiptHandle": d["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}])
        [d] = call("ReceiveDeadLetterQueueRecords", QueueARN=q, WaitTimeSeconds=1)["QueueRecords"]
        call("RestoreDeadLetterQueueRecords", QueueARN=q, Entries=[{"ReceiptHandle": d["ReceiptHandle"]}])
        [r] = call("ReceiveQueueRecords", QueueARN=q, WaitTimeSeconds=1)["QueueRecords"]
        kin.clock.advance(5.0)
        [d] = call("ReceiveDeadLetterQueueRecords", QueueARN=q, WaitTimeSeconds=1)["QueueRecords"]
        call("AcknowledgeDeadLetterQueueRecords", QueueARN=q, Entries=[{"ReceiptHandle": d["ReceiptHandle"]}])
        assert call("ListTagsForResource", ResourceARN=q)["Tags"] == [{"Key": "k", "Value": "v"}]
        call("DeleteQueue", QueueARN=q)
        call("UpdateStreamRecordDistributionStrategy", StreamARN=od_arn, RecordDistributionStrategy="AUTO")
        call("PutRecord", StreamARN=od_arn, Data=b"no key")
        call("UpdateStreamRecordDistributionStrategy", StreamARN=od_arn,
             RecordDistributionStrategy="USER_PARTITION_KEY")
    # channels (an on-demand stream), delivering into a directory target; tags and a policy on the channel ARN
    if "CreateChannel" in MODEL.operation_names:
        (tmp_path / "lake").mkdir()
        kin.engine.set_channel_destination(f"file://{tmp_path}")
        ch = call("CreateChannel", ChannelName="ch", ServiceExecutionRoleARN="arn:aws:iam::123456789012:role/kd",
                  StreamConfigurationList=[{"StreamARN": od_arn,
                                            "RecordConfiguration": {"RecordFormatType": "STRING"}}],
                  S3DestinationConfiguration={"StorageConfiguration": {
                      "BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": "123456789012",
                      "CompressionType": "NONE"}},
                  Tags={"k": "v"})["ChannelDescription"]
        assert ch["ChannelStatus"] == "CREATING"
        cd = call("DescribeChannel", ChannelARN=ch["ChannelARN"])["ChannelDescription"]
        assert cd["ChannelStatus"] == "ACTIVE", cd
        assert [x["ChannelARN"] for x in call("ListChannels")["ChannelSummaries"]] == [ch["ChannelARN"]]
        call("UpdateChannel", ChannelARN=ch["ChannelARN"], S3DestinationConfiguration={"DataFreshnessInSeconds": 600})
        call("PutRecord", StreamARN=od_arn, Data=b"to the lake", PartitionKey="a")
        kin.clock.advance(600.0)
        [obj] = [p for p in (tmp_path / "lake").rglob("*") if p.is_file()]
        assert obj.read_bytes() == b"to the lake"
        assert call("ListTagsForResource", ResourceARN=ch["ChannelARN"])["Tags"] == [{"Key": "k", "Value": "v"}]
        assert call("DescribeStreamSummary", StreamARN=od_arn)["StreamDescriptionSummary"]["ChannelCount"] == 1
        assert call("DescribeLimits")["ChannelCount"] == 1
        call("DeleteChannel", ChannelARN=ch["ChannelARN"])
    # account settings and warm throughput
    assert call("DescribeAccountSettings") == \
        {"ResponseMetadata": call("DescribeAccountSettings")["ResponseMetadata"]} \
        or "MinimumThroughputBillingCommitment" not in call("DescribeAccountSettings")
    s = call("UpdateAccountSettings", MinimumThroughputBillingCommitment={"Status": "ENABLED"})
    assert s["MinimumThroughputBillingCommitment"]["Status"] == "ENABLED"
    w = call("UpdateStreamWarmThroughput", StreamARN=od_arn, WarmThroughputMiBps=100)
    assert w["WarmThroughput"] == {"TargetMiBps": 100, "CurrentMiBps": 100}
    summary = call("DescribeStreamSummary", StreamName="od")["StreamDescriptionSummary"]
    assert summary["WarmThroughput"]["TargetMiBps"] == 100
    s = call("UpdateAccountSettings", MinimumThroughputBillingCommitment={"Status": "DISABLED"})
    assert s["MinimumThroughputBillingCommitment"]["Status"] == "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
    kin.clock.advance(24 * 3600)
    assert call("DescribeAccountSettings")["MinimumThroughputBillingCommitment"]["Status"] == "DISABLED"
    # resharding and capacity
    shard0 = call("ListShards", StreamName="a")["Shards"][0]
    lo, hi = int(shard0["HashKeyRange"]["StartingHashKey"]), int(shard0["HashKeyRange"]["EndingHashKey"])
    call("SplitShard", StreamName="a", ShardToSplit=shard0["ShardId"], NewStartingHashKey=str((lo + hi) // 2))
    kids = [s["ShardId"] for s in call("ListShards", StreamName="a", ShardFilter={"Type": "AT_LATEST"})["Shards"]
            if s.get("ParentShardId") == shard0["ShardId"]]
    call("MergeShards", StreamName="a", ShardToMerge=kids[0], AdjacentShardToMerge=kids[1])
    u = call("UpdateShardCount", StreamName="a", TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    assert u["TargetShardCount"] == 4
    call("UpdateStreamMode", StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    assert call("DescribeStreamSummary", StreamName="a")["StreamDescriptionSummary"]["StreamModeDetails"] == \
        {"StreamMode": "ON_DEMAND"}
    call("DeleteStream", StreamName="a")
    call("DeleteStream", StreamARN=od_arn)
    assert call("ListStreams")["StreamNames"] == []
    assert set(IMPLEMENTED) | NOT_IMPLEMENTED >= set(MODEL.operation_names)
    assert call.seen == set(IMPLEMENTED) & set(MODEL.operation_names), set(IMPLEMENTED) - call.seen


def test_every_model_operation_is_implemented_or_known_missing():
    ops = set(MODEL.operation_names)
    assert ops - set(IMPLEMENTED) <= NOT_IMPLEMENTED, ops - set(IMPLEMENTED) - NOT_IMPLEMENTED
    assert not set(IMPLEMENTED) & NOT_IMPLEMENTED


def test_operations_of_newer_models_are_refused_not_faked(kin):
    from fastkin.errors import UnknownOperationException
    from fastkin.wire.service import service_for

    with pytest.raises(UnknownOperationException):
        service_for(kin.engine).dispatch("NoSuchOperation", {})
    for op in sorted(set(MODEL.operation_names) - set(IMPLEMENTED)):    # queues, channels, ... in newer botocore
        with pytest.raises(UnknownOperationException, match=f"does not implement the Kinesis operation {op} "):
            service_for(kin.engine).dispatch(op, {})


def _err(exc: ClientError) -> tuple:
    e = exc.response["Error"]
    return e["Code"], e["Message"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def test_errors_carry_aws_code_message_and_status(kin):
    k = kin.client
    with pytest.raises(k.exceptions.ResourceNotFoundException) as ei:
        k.describe_stream(StreamName="missing")
    assert _err(ei.value) == ("ResourceNotFoundException", "Stream missing under account 123456789012 not found.", 400)
    kin.stream("s")
    with pytest.raises(k.exceptions.ResourceInUseException) as ei:
        k.create_stream(StreamName="s", ShardCount=1)
    assert _err(ei.value)[0::2] == ("ResourceInUseException", 400)
    with pytest.raises(ClientError) as ei:
        k.create_stream(StreamName="bad name!", ShardCount=1)
    assert _err(ei.value) == (
        "ValidationException", "1 validation error detected: Value 'bad name!' at 'streamName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+", 400)
    with pytest.raises(ClientError) as ei:
        k.get_shard_iterator(StreamName="s", ShardId="shardId-000000000000", ShardIteratorType="SIDEWAYS")
    assert _err(ei.value)[0] == "ValidationException"
    assert "satisfy enum value set" in _err(ei.value)[1]
    with pytest.raises(k.exceptions.InvalidArgumentException):
        k.get_records(ShardIterator="AAAAAAAAAAEnotreal")
    assert k.list_streams()["StreamNames"] == ["s"]       # nothing changed


def test_bad_put_records_request_changes_nothing(kin):
    k = kin.client
    kin.stream("s")
    with pytest.raises(k.exceptions.ValidationException, match=r"Value at 'records\.2\.member\.data'"):
        k.put_records(StreamName="s", Records=[{"Data": b"ok", "PartitionKey": "a"},
                                               {"Data": b"x" * (1024 * 1024), "PartitionKey": "b"}])
    it = k.get_shard_iterator(StreamName="s", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")
    assert k.get_records(ShardIterator=it["ShardIterator"])["Records"] == []


def test_put_records_partial_failure_under_quota(kin):
    k = kin.client
    kin.stream("s")
    recs = [{"Data": b"r", "PartitionKey": str(i)} for i in range(500)]
    out = [k.put_records(StreamName="s", Records=recs) for _ in range(3)]   # 1,500 records, same engine instant
    assert [o["FailedRecordCount"] for o in out] == [0, 0, 500]
    failed = out[2]["Records"][0]
    assert failed == {"ErrorCode": "ProvisionedThroughputExceededException",
                      "ErrorMessage": "Rate exceeded for shard shardId-000000000000 in stream s under account "
                                      "123456789012."}
    with pytest.raises(k.exceptions.ProvisionedThroughputExceededException) as ei:
        k.put_record(StreamName="s", Data=b"x", PartitionKey="k")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    kin.clock.advance(1.0)
    assert k.put_records(StreamName="s", Records=recs)["FailedRecordCount"] == 0


def test_get_records_through_a_split(kin):
    k = kin.client
    kin.stream("s")
    k.put_record(StreamName="s", Data=b"before", PartitionKey="a")
    k.split_shard(StreamName="s", ShardToSplit="shardId-000000000000",
                  NewStartingHashKey=str(2 ** 127))
    kin.clock.advance(1.0)
    r = k.put_record(StreamName="s", Data=b"after", PartitionKey="a")
    assert r["ShardId"] in ("shardId-000000000001", "shardId-000000000002")
    it = k.get_shard_iterator(StreamName="s", ShardId="shardId-000000000000",
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    page = k.get_records(ShardIterator=it)
    assert [x["Data"] for x in page["Records"]] == [b"before"]
    if "NextShardIterator" in page:          # the shard end may take one more (empty) page
        page = k.get_records(ShardIterator=page["NextShardIterator"])
    assert "NextShardIterator" not in page
    kids = page["ChildShards"]
    assert sorted(c["ShardId"] for c in kids) == ["shardId-000000000001", "shardId-000000000002"]
    assert all(c["ParentShards"] == ["shardId-000000000000"] for c in kids)
    it = k.get_shard_iterator(StreamName="s", ShardId=r["ShardId"], ShardIteratorType="TRIM_HORIZON")
    assert [x["Data"] for x in k.get_records(ShardIterator=it["ShardIterator"])["Records"]] == [b"after"]


def test_paginators(kin):
    k = kin.client
    for i in range(5):
        k.create_stream(StreamName=f"s{i}", ShardCount=3)
    names = [n for p in k.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2})
             for n in p["StreamNames"]]
    assert names == [f"s{i}" for i in range(5)]
    shards = [s["ShardId"] for p in k.get_paginator("describe_stream").paginate(
        StreamName="s0", PaginationConfig={"PageSize": 1}) for s in p["StreamDescription"]["Shards"]]
    assert shards == [f"shardId-00000000000{i}" for i in range(3)]
    assert len(list(k.get_paginator("list_shards").paginate(StreamName="s0"))) == 1
    # AWS rejects StreamName together with NextToken, which botocore's ListShards paginator sends
    # on its second page (boto/botocore#2009); so does fastkin.
    with pytest.raises(k.exceptions.InvalidArgumentException):
        list(k.get_paginator("list_shards").paginate(StreamName="s0", PaginationConfig={"PageSize": 1}))
    arn = k.describe_stream_summary(StreamName="s0")["StreamDescriptionSummary"]["StreamARN"]
    for i in range(3):
        k.register_stream_consumer(StreamARN=arn, ConsumerName=f"c{i}")
    got = [c["ConsumerName"] for p in k.get_paginator("list_stream_consumers").paginate(
        StreamARN=arn, PaginationConfig={"PageSize": 2}) for c in p["Consumers"]]
    assert got == ["c0", "c1", "c2"]


def test_waiters(kin):
    k = kin.client
    k.create_stream(StreamName="w", ShardCount=1)
    k.get_waiter("stream_exists").wait(StreamName="w", WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    k.delete_stream(StreamName="w")
    k.get_waiter("stream_not_exists").wait(StreamName="w", WaiterConfig={"Delay": 1, "MaxAttempts": 2})


def test_state_only_operations_validate_and_change_nothing_on_error(kin):
    k = kin.client
    arn = kin.stream("s")
    with pytest.raises(k.exceptions.InvalidArgumentException):
        k.stop_stream_encryption(StreamName="s", EncryptionType="KMS", KeyId="k")     # not encrypted
    with pytest.raises(ClientError) as ei:
        k.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=20000)
    assert _err(ei.value)[0] == "ValidationException"
    assert k.describe_stream_summary(StreamName="s")["StreamDescriptionSummary"]["MaxRecordSizeInKiB"] == 1024
    with pytest.raises(ClientError) as ei:
        k.update_stream_warm_throughput(StreamARN=arn, WarmThroughputMiBps=10)       # provisioned stream
    assert _err(ei.value)[0] == "InvalidArgumentException"
    with pytest.raises(k.exceptions.InvalidArgumentException):
        k.put_resource_policy(ResourceARN=arn, Policy="not json")
    with pytest.raises(k.exceptions.ResourceNotFoundException):
        k.delete_resource_policy(ResourceARN=arn)
    with pytest.raises(k.exceptions.InvalidArgumentException):
        k.update_account_settings(MinimumThroughputBillingCommitment={"Status": "DISABLED"})
    assert "MinimumThroughputBillingCommitment" not in k.describe_account_settings()
    d = k.describe_stream(StreamName="s")["StreamDescription"]
    assert d["EncryptionType"] == "NONE" and "KeyId" not in d


def test_regions_are_separate_and_arns_carry_them(kin):
    west = kin.new_client(region="us-west-2")
    west.create_stream(StreamName="s", ShardCount=1)
    arn = west.describe_stream_summary(StreamName="s")["StreamDescriptionSummary"]["StreamARN"]
    assert arn == "arn:aws:kinesis:us-west-2:123456789012:stream/s"
    assert kin.client.list_streams()["StreamNames"] == []

"""CreateQueue, DescribeQueue, ListQueues, UpdateQueue, DeleteQueue and the stream's side of queues."""
from __future__ import annotations

import datetime as _dt
import re

import pytest

import fastkin
from fastkin import errors as E


def test_create_queue_defaults_and_description(od):
    engine, arn = od
    d = engine.create_queue("q", [{"StreamARN": arn}])["QueueDescription"]
    assert re.fullmatch(r"arn:aws:kinesis:us-east-1:123456789012:queue/[a-z0-9-]{1,63}", d["QueueARN"])
    assert d["QueueName"] == "q" and d["QueueStatus"] == "ACTIVE"
    assert d["QueueAttributes"] == {"VisibilityTimeoutSeconds": 30,
                                    "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 6}}
    created = _dt.datetime.fromtimestamp(engine.clock(), _dt.timezone.utc)
    assert d["StreamConfigurationList"] == [{"StreamARN": arn,
                                             "StartingPosition": {"Type": "LATEST", "Timestamp": created}}]
    assert engine.describe_queue(d["QueueARN"]) == {"QueueDescription": d}
    assert engine.queue(d["QueueARN"]).name == "q"


def test_queue_ids_are_new_per_queue_and_host_label_safe(od):
    engine, arn = od
    a = engine.create_queue("a", [{"StreamARN": arn}])["QueueDescription"]["QueueARN"]
    b = engine.create_queue("b", [{"StreamARN": arn}])["QueueDescription"]["QueueARN"]
    assert a != b and all(re.fullmatch(r"[a-z0-9-]+", x.rsplit("/", 1)[1]) for x in (a, b))


def test_states_follow_the_engine_latencies(make_engine, clock):
    engine = make_engine(create_latency=5.0, update_latency=3.0, delete_latency=2.0)
    engine.create_stream("s")
    clock.advance(5.0)
    arn = engine.stream("s").arn
    d = engine.create_queue("q", [{"StreamARN": arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}])
    d = d["QueueDescription"]
    q = d["QueueARN"]
    assert d["QueueStatus"] == "CREATING" and "Timestamp" not in d["StreamConfigurationList"][0]["StartingPosition"]
    with pytest.raises(E.InvalidArgumentException, match="is not ACTIVE, instead in state CREATING"):
        engine.receive_queue_records(q)
    clock.advance(5.0)
    assert engine.describe_queue(q)["QueueDescription"]["QueueStatus"] == "ACTIVE"
    u = engine.update_queue(q, {"VisibilityTimeoutSeconds": 60})["QueueDescription"]
    assert u["QueueStatus"] == "UPDATING" and u["QueueAttributes"]["VisibilityTimeoutSeconds"] == 60
    with pytest.raises(E.ResourceInUseException, match="instead in state UPDATING"):
        engine.update_queue(q, {})
    assert engine.receive_queue_records(q, wait_time_seconds=1)["QueueRecords"] == []    # UPDATING delivers
    clock.advance(3.0)
    engine.delete_queue(q)
    assert engine.describe_queue(q)["QueueDescription"]["QueueStatus"] == "DELETING"
    with pytest.raises(E.ResourceNotFoundException):
        engine.receive_queue_records(q)
    clock.advance(2.0)
    with pytest.raises(E.ResourceNotFoundException, match=f"Queue {q} under account 123456789012 not found."):
        engine.describe_queue(q)


def test_at_timestamp_start_is_echoed_then_made_effective(make_engine, clock):
    engine = make_engine(create_latency=1.0)
    engine.create_stream("s")
    clock.advance(1.0)
    arn = engine.stream("s").arn
    ts = _dt.datetime.fromtimestamp(clock() - 7 * 24 * 3600, _dt.timezone.utc)      # before the stream existed
    d = engine.create_queue("q", [{"StreamARN": arn, "StartingPosition": {"Type": "AT_TIMESTAMP", "Timestamp": ts}}])
    d = d["QueueDescription"]
    assert d["StreamConfigurationList"][0]["StartingPosition"] == {"Type": "AT_TIMESTAMP", "Timestamp": ts}
    clock.advance(1.0)
    pos = engine.describe_queue(d["QueueARN"])["QueueDescription"]["StreamConfigurationList"][0]["StartingPosition"]
    assert pos["Timestamp"] == _dt.datetime.fromtimestamp(engine.stream("s").created, _dt.timezone.utc)


@pytest.mark.parametrize("pos, code, text", [
    ({"Type": "LATEST", "Timestamp": 1_700_000_000}, E.ValidationException, "not allowed for LATEST"),
    ({"Type": "AT_TIMESTAMP"}, E.ValidationException, "required when Type is AT_TIMESTAMP"),
    ({"Type": "SOMEWHERE"}, E.ValidationException, "satisfy enum value set: [TRIM_HORIZON, LATEST, AT_TIMESTAMP]"),
])
def test_bad_starting_positions(od, pos, code, text):
    engine, arn = od
    with pytest.raises(code) as ei:
        engine.create_queue("q", [{"StreamARN": arn, "StartingPosition": pos}])
    assert text in ei.value.message


def test_an_at_timestamp_start_in_the_future_is_refused(od, clock):
    engine, arn = od
    with pytest.raises(E.InvalidArgumentException, match="cannot be later than the current time"):
        engine.create_queue("q", [{"StreamARN": arn, "StartingPosition": {"Type": "AT_TIMESTAMP",
                                                                          "Timestamp": clock() + 60}}])


def test_create_queue_refusals(engine):
    engine.create_stream("p", shard_count=1)
    engine.create_stream("s")
    p_arn, arn = engine.stream("p").arn, engine.stream("s").arn
    with pytest.raises(E.ValidationException, match="Queues are supported only on streams in on-demand capacity "
                       "mode. Stream p under account 123456789012 is using PROVISIONED mode."):
        engine.create_queue("q", [{"StreamARN": p_arn}])
    with pytest.raises(E.ValidationException, match="length less than or equal to 1"):
        engine.create_queue("q", [{"StreamARN": arn}, {"StreamARN": arn}])
    with pytest.raises(E.ResourceNotFoundException, match="Stream nope under account 123456789012 not found."):
        engine.create_queue("q", [{"StreamARN": arn.replace("/s", "/nope")}])
    with pytest.raises(E.ValidationException, match="MaxReceiveCount is required"):
        engine.create_queue("q", [{"StreamARN": arn}], {"DeadLetterConfiguration": {"TargetType": "BUILT_IN"}})
    engine.create_queue("q", [{"StreamARN": arn}])
    with pytest.raises(E.ResourceInUseException, match="Queue q under account 123456789012 already exists."):
        engine.create_queue("q", [{"StreamARN": arn}])


def test_dead_letter_none_has_no_max_receive_count(od):
    engine, arn = od
    d = engine.create_queue("q", [{"StreamARN": arn}], {"DeadLetterConfiguration": {"TargetType": "NONE"}})
    assert d["QueueDescription"]["QueueAttributes"]["DeadLetterConfiguration"] == {"TargetType": "NONE"}


def test_update_keeps_what_it_omits(od):
    engine, arn = od
    q = engine.create_queue("q", [{"StreamARN": arn}], {"VisibilityTimeoutSeconds": 5})["QueueDescription"]["QueueARN"]
    a = engine.update_queue(q, {"DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 2}})
    assert a["QueueDescription"]["QueueAttributes"] == {
        "VisibilityTimeoutSeconds": 5, "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 2}}


def test_list_queues_pages_and_filters(engine):
    engine.create_stream("s")
    engine.create_stream("t")
    s, t = engine.stream("s").arn, engine.stream("t").arn
    for i in range(5):
        engine.create_queue(f"q{i}", [{"StreamARN": s if i % 2 == 0 else t}])
    first = engine.list_queues(max_results=2)
    assert [x["QueueName"] for x in first["QueueSummaries"]] == ["q0", "q1"]
    rest = engine.list_queues(next_token=first["NextToken"])
    assert [x["QueueName"] for x in rest["QueueSummaries"]] == ["q2", "q3", "q4"] and "NextToken" not in rest
    only_t = engine.list_queues(stream_filter=[{"StreamARN": t}])
    assert [x["QueueName"] for x in only_t["QueueSummaries"]] == ["q1", "q3"]
    assert only_t["QueueSummaries"][0]["Streams"][0]["StreamARN"] == t
    assert engine.list_queues(stream_filter=[{"StreamARN": t, "StreamCreationTimestamp": 1}])["QueueSummaries"] == []


def test_queues_share_the_registered_consumer_limit(od):
    engine, arn = od
    for i in range(15):
        engine.register_stream_consumer(arn, f"c{i}")
    for i in range(5):
        engine.create_queue(f"q{i}", [{"StreamARN": arn}])
    with pytest.raises(E.LimitExceededException, match="already has 20 registered consumers and queues"):
        engine.create_queue("q5", [{"StreamARN": arn}])
    with pytest.raises(E.LimitExceededException, match="already has 20 registered consumers"):
        engine.register_stream_consumer(arn, "c15")
    summary = engine.describe_stream_summary(stream_arn=arn)["StreamDescriptionSummary"]
    assert (summary["ConsumerCount"], summary["QueueCount"], summary["ChannelCount"]) == (15, 5, 0)


def test_queues_block_delete_stream_and_the_switch_to_provisioned(od):
    engine, arn = od
    q = engine.create_queue("q", [{"StreamARN": arn}])["QueueDescription"]["QueueARN"]
    with pytest.raises(E.ResourceInUseException, match="has 1 queue\\(s\\). Delete them first"):
        engine.delete_stream(stream_arn=arn, enforce_consumer_deletion=True)
    with pytest.raises(E.ResourceInUseException, match="before switching the stream to PROVISIONED"):
        engine.update_stream_mode(arn, {"StreamMode": "PROVISIONED"})
    engine.delete_queue(q)
    engine.update_stream_mode(arn, {"StreamMode": "PROVISIONED"})
    engine.stream("s")._updating_until = 0.0
    engine.delete_stream(stream_arn=arn)


def test_tags_and_policies_on_queue_arns(od):
    engine, arn = od
    q = engine.create_queue("q", [{"StreamARN": arn}], tags={"team": "a"})["QueueDescription"]["QueueARN"]
    engine.tag_resource(q, {"env": "dev"})
    assert engine.list_tags_for_resource(q)["Tags"] == [{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "a"}]
    engine.untag_resource(q, ["team"])
    assert engine.list_tags_for_resource(q)["Tags"] == [{"Key": "env", "Value": "dev"}]
    assert engine.list_tags_for_resource(arn)["Tags"] == []
    pol = '{"Version": "2012-10-17", "Statement": []}'
    engine.put_resource_policy(q, pol)
    assert engine.get_resource_policy(q) == {"Policy": pol}
    engine.delete_resource_policy(q)
    with pytest.raises(E.ResourceNotFoundException, match="No resource policy"):
        engine.delete_resource_policy(q)
    gone = q[:-4] + "0000"
    with pytest.raises(E.ResourceNotFoundException, match=f"Queue {gone} under account 123456789012 not found."):
        engine.tag_resource(gone, {"a": "b"})


def test_control_plane_through_boto3(kin, shape_ok):
    from botocore.exceptions import ClientError

    c = kin.client
    arn = kin.stream()
    out = c.create_queue(QueueName="orders-q", StreamConfigurationList=[{"StreamARN": arn}],
                         QueueAttributes={"VisibilityTimeoutSeconds": 45}, Tags={"a": "b"})
    shape_ok("CreateQueue", out)
    q = out["QueueDescription"]["QueueARN"]
    out = c.describe_queue(QueueARN=q)
    shape_ok("DescribeQueue", out)
    assert out["QueueDescription"]["QueueAttributes"]["VisibilityTimeoutSeconds"] == 45
    out = c.list_queues()
    shape_ok("ListQueues", out)
    assert [x["QueueARN"] for x in out["QueueSummaries"]] == [q]
    pages = c.get_paginator("list_queues").paginate(PaginationConfig={"PageSize": 1})
    assert [x["QueueName"] for p in pages for x in p["QueueSummaries"]] == ["orders-q"]
    shape_ok("UpdateQueue", c.update_queue(QueueARN=q, QueueAttributes={
        "DeadLetterConfiguration": {"TargetType": "NONE"}}))
    shape_ok("DescribeStreamSummary", c.describe_stream_summary(StreamARN=arn))
    shape_ok("DescribeLimits", c.describe_limits())
    assert c.list_tags_for_resource(ResourceARN=q)["Tags"] == [{"Key": "a", "Value": "b"}]
    assert c.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]["QueueCount"] == 1
    with pytest.raises(ClientError) as ei:
        c.delete_stream(StreamARN=arn, EnforceConsumerDeletion=True)
    assert ei.value.response["Error"]["Code"] == "ResourceInUseException"
    shape_ok("DeleteQueue", c.delete_queue(QueueARN=q))
    with pytest.raises(ClientError) as ei:
        c.describe_queue(QueueARN=q)
    assert ei.value.response["Error"] == {"Code": "ResourceNotFoundException",
                                          "Message": f"Queue {q} under account 123456789012 not found."}
    with pytest.raises(ClientError) as ei:
        c.update_queue(QueueARN=q, QueueAttributes={"VisibilityTimeoutSeconds": 50_000})
    assert ei.value.response["Error"]["Code"] == "ValidationException"
    assert "'queueAttributes.visibilityTimeoutSeconds' failed to satisfy constraint: Member must have value less " \
        "than or equal to 43200" in ei.value.response["Error"]["Message"]


def test_queue_names_follow_the_model(od):
    engine, arn = od
    with pytest.raises(E.ValidationException, match="satisfy regular expression pattern"):
        engine.create_queue("bad name", [{"StreamARN": arn}])
    q = engine.queue(engine.create_queue("ok.name_-1", [{"StreamARN": arn}])["QueueDescription"]["QueueARN"])
    assert isinstance(q, fastkin.Queue) and q.name == "ok.name_-1"


def test_at_most_five_queues_creating_or_deleting(make_engine, clock):
    engine = make_engine(create_latency=10.0, delete_latency=10.0)
    engine.create_stream("s")
    clock.advance(10.0)
    arn = engine.stream("s").arn
    for i in range(5):
        engine.create_queue(f"q{i}", [{"StreamARN": arn}])
    with pytest.raises(E.LimitExceededException, match="already has 5 queues in CREATING or DELETING state"):
        engine.create_queue("q5", [{"StreamARN": arn}])
    clock.advance(10.0)
    q = engine.create_queue("q5", [{"StreamARN": arn}])["QueueDescription"]["QueueARN"]
    assert engine.describe_queue(q)["QueueDescription"]["QueueStatus"] == "CREATING"

"""Channels: the control plane (Engine API on both cores), delivery into a directory target on a VirtualClock,
and boto3 in both transports (through moto's S3 in-process)."""
from __future__ import annotations

import gzip
import json
import re

import pytest

import fastkin
from fastkin import errors as E
from fastkin.channels import DEFAULT_TEMPLATE, parse_template

START = 1_700_000_000.0
ROLE = "arn:aws:iam::123456789012:role/kinesis-delivery"
OWNER = "123456789012"


@pytest.fixture
def lake(tmp_path):
    (tmp_path / "lake").mkdir()
    return tmp_path


@pytest.fixture
def eng(core_name, lake):
    return fastkin.Engine(clock=fastkin.VirtualClock(start=START), core=core_name, channel_s3=f"file://{lake}")


def s3_dest(**storage):
    return {"StorageConfiguration": {"BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": OWNER,
                                     "CompressionType": "NONE", **storage}}


def make(eng, stream="s", name="ch", fmt="BYTE_ARRAY", dest=None, **kw):
    if stream not in [s for s in eng.list_streams()["StreamNames"]]:
        eng.create_stream(stream)
    arn = eng.stream(stream).arn
    if hasattr(eng.clock, "advance"):
        eng.clock.advance(0.2)       # CreateChannel: 5 per second
    return eng.create_channel(name, ROLE, [{"StreamARN": arn, "RecordConfiguration": {"RecordFormatType": fmt}}],
                              s3_destination_configuration=dest or s3_dest(), **kw)["ChannelDescription"]


def files(root):
    return sorted(p for p in (root / "lake").rglob("*") if p.is_file())


def test_states_arn_and_description(eng):
    d = make(eng)
    assert d["ChannelStatus"] == "CREATING"
    assert re.fullmatch(r"arn:aws:kinesis:us-east-1:123456789012:channel/[a-z0-9-]{36}", d["ChannelARN"])
    assert d["ChannelARN"].endswith(d["ChannelId"])
    now = eng.describe_channel(d["ChannelARN"])["ChannelDescription"]
    assert now["ChannelStatus"] == "ACTIVE"
    s3 = now["S3DestinationConfiguration"]
    assert s3["DataFreshnessInSeconds"] == 300
    assert s3["DeadLetterQueueS3Configuration"] == {"BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": OWNER,
                                                    "ErrorOutputPrefix": "kinesis-channel/errors/"}
    assert s3["StorageConfiguration"]["OutputKeyTemplate"] == DEFAULT_TEMPLATE
    assert s3["StorageConfiguration"]["StorageClass"] == "STANDARD"
    assert now["LoggingConfiguration"] == {"CloudWatchLogs": {"Enabled": False}}
    assert eng.describe_stream_summary("s")["StreamDescriptionSummary"]["ChannelCount"] == 1
    assert eng.describe_limits()["ChannelCount"] == 1


def test_latencies_creating_updating_deleting(core_name, lake):
    clock = fastkin.VirtualClock(start=START)
    eng = fastkin.Engine(clock=clock, core=core_name, channel_s3=f"file://{lake}", create_latency=15,
                         update_latency=5, delete_latency=5)
    eng.create_stream("s")
    clock.advance(15)
    arn = make(eng)["ChannelARN"]
    assert eng.describe_channel(arn)["ChannelDescription"]["ChannelStatus"] == "CREATING"
    with pytest.raises(E.ResourceInUseException):
        eng.update_channel(arn, {"DataFreshnessInSeconds": 600})
    clock.advance(15)
    assert eng.describe_channel(arn)["ChannelDescription"]["ChannelStatus"] == "ACTIVE"
    assert eng.update_channel(arn, {"DataFreshnessInSeconds": 600})["ChannelDescription"]["ChannelStatus"] == "UPDATING"
    clock.advance(5)
    assert eng.describe_channel(arn)["ChannelDescription"]["ChannelStatus"] == "ACTIVE"
    eng.delete_channel(arn)
    assert eng.describe_channel(arn)["ChannelDescription"]["ChannelStatus"] == "DELETING"
    with pytest.raises(E.ResourceInUseException, match="channel"):
        eng.delete_stream("s")
    clock.advance(5)
    with pytest.raises(E.ResourceNotFoundException, match="Channel .* not found"):
        eng.describe_channel(arn)
    eng.delete_stream("s")


def test_rules_of_creation(eng):
    eng.create_stream("prov", shard_count=1)
    prov = eng.stream("prov").arn
    with pytest.raises(E.ValidationException, match="on-demand"):
        eng.create_channel("x", ROLE, [{"StreamARN": prov, "RecordConfiguration": {"RecordFormatType": "JSON"}}],
                           s3_destination_configuration=s3_dest())
    make(eng)
    with pytest.raises(E.ResourceInUseException, match="Channel ch under account 123456789012 already exists"):
        make(eng, stream="t")
    with pytest.raises(E.LimitExceededException, match="at most one S3 and one S3 Tables"):
        make(eng, name="second")
    eng.clock.advance(0.2)
    with pytest.raises(E.InvalidArgumentException, match="Exactly one"):
        eng.create_channel("y", ROLE, [{"StreamARN": eng.stream("s").arn,
                                        "RecordConfiguration": {"RecordFormatType": "JSON"}}])
    with pytest.raises(E.ValidationException, match="between 300 and 900"):
        make(eng, stream="t", name="fast", dest={**s3_dest(), "DataFreshnessInSeconds": 60})
    with pytest.raises(E.InvalidArgumentException, match="not supported for S3 destinations"):
        make(eng, stream="t", name="gsr", fmt="GSR_JSON")
    with pytest.raises(E.InvalidArgumentException, match="customer managed"):
        make(eng, stream="t", name="kms",
             encryption_configuration={"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"})
    assert eng.describe_limits()["ChannelCount"] == 1


@pytest.mark.parametrize("template, why", [
    ("/x/!{extension}", "starts with '/'"), ("a//b", "'//'"), ("a/../b", "'.' or '..'"), ("a/!{nope}", "not a known"),
    ("a/!{yyyy", "not closed"), ("a/!{extension}/b", "must end"), ("a b", "outside"),
    ("a/!{extension}!{extension}", "more than one"), ("a/!{extension:.JSON}", "lowercase"),
])
def test_bad_key_templates(eng, template, why):
    with pytest.raises(E.InvalidArgumentException, match=re.escape(why)):
        make(eng, dest=s3_dest(OutputKeyTemplate=template))


def test_compression_needs_an_extension_placeholder(eng):
    with pytest.raises(E.InvalidArgumentException, match="needs an extension placeholder"):
        make(eng, dest=s3_dest(OutputKeyTemplate="a/!{yyyy}", CompressionType="GZIP"))
    assert parse_template("a/!{extension:.json}", "GZIP")[-1] == ("ext", ".json")


def test_update_only_freshness_and_logging(eng):
    arn = make(eng)["ChannelARN"]
    with pytest.raises(E.InvalidArgumentException, match="Only DataFreshnessInSeconds"):
        eng.update_channel(arn, {"DataFreshnessInSeconds": 400, "CompressionType": "GZIP"})
    with pytest.raises(E.InvalidArgumentException, match="S3 destination"):
        eng.update_channel(arn, s3_tables_destination_configuration={"DataFreshnessInSeconds": 400})
    eng.clock.advance(1)
    d = eng.update_channel(arn, logging_configuration={"CloudWatchLogs": {"Enabled": True}})["ChannelDescription"]
    cw = d["LoggingConfiguration"]["CloudWatchLogs"]
    assert cw == {"Enabled": True, "LogGroupName": f"/aws/kinesis/ch/{d['ChannelId']}",
                  "LogStreamName": "DestinationDelivery"}


def test_control_plane_tps_limit(eng):
    arn = make(eng)["ChannelARN"]
    for _ in range(5):
        eng.describe_channel(arn)
    with pytest.raises(E.LimitExceededException, match="Rate exceeded for DescribeChannel"):
        eng.describe_channel(arn)
    eng.list_channels()                  # each operation has its own 5 per second
    eng.clock.advance(0.2)
    eng.describe_channel(arn)


def test_list_channels_filter_and_pages(eng):
    for i in range(3):
        make(eng, stream=f"s{i}", name=f"ch{i}")
    eng.clock.advance(1)
    out = eng.list_channels(max_results=2)
    assert [c["ChannelName"] for c in out["ChannelSummaries"]] == ["ch0", "ch1"]
    assert out["ChannelSummaries"][0]["ChannelDestinationType"] == "S3"
    rest = eng.list_channels(next_token=out["NextToken"])
    assert [c["ChannelName"] for c in rest["ChannelSummaries"]] == ["ch2"] and "NextToken" not in rest
    only = eng.list_channels(stream_filter=[{"StreamARN": eng.stream("s1").arn}])
    assert [c["ChannelName"] for c in only["ChannelSummaries"]] == ["ch1"]


def test_tags_and_policy_on_channel_arn(eng):
    arn = make(eng, tags={"team": "data"})["ChannelARN"]
    eng.tag_resource(arn, {"env": "test"})
    assert eng.list_tags_for_resource(arn)["Tags"] == [{"Key": "env", "Value": "test"},
                                                       {"Key": "team", "Value": "data"}]
    eng.untag_resource(arn, ["env"])
    policy = json.dumps({"Version": "2012-10-17", "Statement": []})
    eng.put_resource_policy(arn, policy)
    assert eng.get_resource_policy(arn)["Policy"] == policy


def test_no_backfill_and_delivery_per_freshness_window(eng, lake):
    eng.create_stream("s")
    s = eng.stream("s")
    s.put_record(b"before", "k")
    arn = make(eng)["ChannelARN"]
    s.put_records([(b"r%d;" % i, f"k{i}") for i in range(20)])
    eng.clock.advance(299)
    assert files(lake) == []
    eng.clock.advance(1)                     # the window [0, 300) closed
    [obj] = files(lake)
    body = obj.read_bytes()
    assert b"before" not in body and sorted(body.split(b";")[:-1]) == sorted(b"r%d" % i for i in range(20))
    key = str(obj.relative_to(lake / "lake"))
    cid = arn.rsplit("/", 1)[1]
    assert re.fullmatch(rf"kinesis-channel/ch/{cid}/2023/11/14/22/ch-{cid}-2023-11-14-22-13-[0-9a-f-]{{36}}", key), key
    s.put_record(b"next", "k")
    eng.clock.advance(600)                   # two windows pass; only one held records
    assert len(files(lake)) == 2
    ch = eng.channel(arn)
    assert ch.metrics.total("DeliveryToS3.SuccessfulRecordCount") == 21
    assert ch.metrics.total("DeliveryToS3.DataFreshness") == 300.0


@pytest.mark.parametrize("compression, ext", [("GZIP", ".gz"), ("ZSTD", ".zst")])
def test_compression_and_extension(eng, lake, compression, ext):
    if compression == "ZSTD":
        zstandard = pytest.importorskip("zstandard", reason="ZSTD needs the zstandard package (fastkin[channels])")
    make(eng, dest=s3_dest(CompressionType=compression, OutputKeyTemplate="out/!{stream-name}/!{yy}!{MM}!{dd}/"
                           "!{HH}!{mm}/data!{extension:.txt}"))
    eng.stream("s").put_record(b"hello", "k")
    eng.clock.advance(300)
    [obj] = files(lake)
    assert re.fullmatch(rf"out/s/231114/2213/data-[0-9a-f-]{{36}}\.txt{re.escape(ext)}",
                        str(obj.relative_to(lake / "lake")))
    raw = obj.read_bytes()
    assert (gzip.decompress(raw) if compression == "GZIP" else zstandard.ZstdDecompressor().decompress(raw)) == b"hello"


@pytest.mark.parametrize("fmt, good, bad, code", [
    ("STRING", [b"caf\xc3\xa9\n"], [b"\xff\xfe"], "InvalidUTF8"),
    ("JSON", [b'{"a": 1}\n', b"[1, 2]\n"], [b"{nope", b"NaN"], "InvalidJSON"),
])
def test_invalid_records_go_to_the_dead_letter_prefix(eng, lake, fmt, good, bad, code):
    arn = make(eng, fmt=fmt, dest={**s3_dest(), "DeadLetterQueueS3Configuration": {
        "BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": OWNER, "ErrorOutputPrefix": "dlq/"}})["ChannelARN"]
    eng.stream("s").put_records([(d, "k") for d in good + bad])
    eng.clock.advance(300)
    objs = files(lake)
    [dlq] = [p for p in objs if str(p.relative_to(lake / "lake")).startswith("dlq/")]
    [data] = [p for p in objs if p != dlq]
    assert data.read_bytes() == b"".join(good)
    lines = [json.loads(x) for x in dlq.read_text().splitlines()]
    assert [x["ErrorCode"] for x in lines] == [code] * len(bad)
    assert {x["RawData"] for x in lines} == {__import__("base64").b64encode(b).decode() for b in bad}
    assert all(x["ChannelARN"] == arn and x["SequenceNumber"] and x["ShardId"] for x in lines)
    m = eng.channel(arn).metrics
    assert (m.total("DeliveryToS3.FailedRecordCount"), m.total("DeliveryToS3.DLQDeliverySuccess")) == (len(bad), 1)


def test_missing_bucket_fails_the_channel(eng):
    d = make(eng, dest={"StorageConfiguration": {"BucketARN": "arn:aws:s3:::nowhere", "ExpectedBucketOwner": OWNER,
                                                 "CompressionType": "NONE"}})
    now = eng.describe_channel(d["ChannelARN"])["ChannelDescription"]
    assert now["ChannelStatus"] == "FAILED" and "nowhere" in now["ChannelStatusReason"]


def test_s3_tables_channel_is_described_and_fails_honestly(eng):
    eng.create_stream("s")
    eng.clock.advance(0.2)
    d = eng.create_channel("t", ROLE, [{"StreamARN": eng.stream("s").arn, "RecordConfiguration": {
        "RecordFormatType": "JSON", "GSRSchemaARN": "arn:aws:glue:us-east-1:123456789012:schema/reg/sch"}}],
        s3_tables_destination_configuration={
            "DeadLetterQueueS3Configuration": {"BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": OWNER},
            "S3TablesConfigurationList": [{"TableBucketARN": "arn:aws:s3tables:us-east-1:123456789012:bucket/tables",
                                           "Namespace": "ns", "TableName": "events", "CompressionType": "ZSTD"}]})
    now = eng.describe_channel(d["ChannelDescription"]["ChannelARN"])["ChannelDescription"]
    assert now["ChannelStatus"] == "FAILED" and "S3 Tables" in now["ChannelStatusReason"]
    assert eng.list_channels()["ChannelSummaries"][0]["ChannelDestinationType"] == "S3_TABLES"


def test_resharded_stream_keeps_delivering(eng, lake):
    make(eng)
    s = eng.stream("s")
    s.put_records([(b"a", f"k{i}") for i in range(8)])
    eng.clock.advance(10)
    from fastkin import topology
    topology.split_shard(s, "shardId-000000000000", str(2**125), internal=True)     # as on-demand scaling does
    assert len(s.open_shards()) == 5
    s.put_records([(b"b", f"k{i}") for i in range(8)])
    eng.clock.advance(290)
    [obj] = files(lake)
    assert sorted(obj.read_bytes()) == sorted(b"a" * 8 + b"b" * 8)


def test_update_stream_mode_refused_with_channels(eng):
    make(eng)
    with pytest.raises(E.ResourceInUseException, match="channel"):
        eng.update_stream_mode(eng.stream("s").arn, {"StreamMode": "PROVISIONED"})


def test_flush_and_real_clock_thread(lake):
    eng = fastkin.Engine(channel_s3=f"file://{lake}")
    arn = make(eng)["ChannelARN"]
    eng.stream("s").put_record(b"now", "k")
    eng.channel(arn).flush()
    [obj] = files(lake)
    assert obj.read_bytes() == b"now"
    eng.delete_channel(arn)


def test_the_default_destination_never_reaches_real_s3(core_name, monkeypatch):
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    eng = fastkin.Engine(clock=fastkin.VirtualClock(start=START), core=core_name)     # no channel_s3, no mock_aws
    d = make(eng)
    now = eng.describe_channel(d["ChannelARN"])["ChannelDescription"]
    assert now["ChannelStatus"] == "FAILED"
    assert "does not write to real S3 unasked" in now["ChannelStatusReason"], now

"""S3 Tables channels: the table is created from the schema, JSON records arrive as rows, one snapshot per window,
TIME_HOUR partitions, dead letters, metrics; read back with pyiceberg (and DuckDB when installed)."""
from __future__ import annotations

import datetime as dt
import json
import struct
import uuid
import zlib

import pytest

import fastkin
from fastkin import errors as E

pyiceberg = pytest.importorskip("pyiceberg", reason="S3 Tables delivery needs pyiceberg (fastkin[channels])")
pytest.importorskip("pyarrow", reason="S3 Tables delivery needs pyarrow (fastkin[channels])")
from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402

START = 1_700_000_000.0                       # 2023-11-14T22:13:20Z
ROLE = "arn:aws:iam::123456789012:role/kinesis-delivery"
OWNER = "123456789012"
SCHEMA_ARN = "arn:aws:glue:us-east-1:123456789012:schema/reg/clicks"
CLICKS = {"type": "object", "properties": {
    "user": {"type": "integer"}, "page": {"type": ["string", "null"]}, "at": {"type": "string", "format": "date-time"},
    "score": {"type": "number"}, "tags": {"type": "array", "items": {"type": "string"}},
    "geo": {"type": "object", "properties": {"country": {"type": "string"}}, "required": ["country"]}},
    "required": ["user", "at"]}


@pytest.fixture
def root(tmp_path):
    (tmp_path / "lake").mkdir()
    (tmp_path / "tables" / "schemas" / "reg").mkdir(parents=True)
    (tmp_path / "tables" / "schemas" / "reg" / "clicks.json").write_text(json.dumps(CLICKS))
    return tmp_path


@pytest.fixture
def eng(core_name, root):
    return fastkin.Engine(clock=fastkin.VirtualClock(start=START), core=core_name, channel_s3=f"file://{root}",
                          channel_iceberg=str(root / "tables"))


def table_dest(**table):
    return {"DeadLetterQueueS3Configuration": {"BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": OWNER},
            "S3TablesConfigurationList": [{"TableBucketARN": "arn:aws:s3tables:us-east-1:123456789012:bucket/tables",
                                           "Namespace": "web", "TableName": "clicks", "CompressionType": "ZSTD",
                                           **table}]}


def make(eng, fmt="JSON", schema=SCHEMA_ARN, name="to-table", **table):
    if "s" not in eng.list_streams()["StreamNames"]:
        eng.create_stream("s")
    eng.clock.advance(0.2)
    return eng.create_channel(name, ROLE, [{"StreamARN": eng.stream("s").arn, "RecordConfiguration": {
        "RecordFormatType": fmt, "GSRSchemaARN": schema}}],
        s3_tables_destination_configuration=table_dest(**table))["ChannelDescription"]


def click(i, at="2023-11-14T22:15:00Z", **kw):
    return json.dumps({"user": i, "page": f"/p{i}", "at": at, **kw}).encode()


def catalog(root):
    return SqlCatalog("tables", uri=f"sqlite:///{root / 'tables' / 'catalog.db'}",
                      warehouse=f"file://{root / 'tables' / 'warehouse' / 'tables'}")


def test_rows_arrive_one_snapshot_per_window(eng, root):
    s = eng.create_stream("s")
    s.put_record(click(-1), "early")                   # before the channel: never delivered (no backfill)
    d = make(eng)
    c = eng.channel(d["ChannelARN"])
    assert eng.describe_channel(c.arn)["ChannelDescription"]["ChannelStatus"] == "ACTIVE"
    t = catalog(root).load_table(("web", "clicks"))   # created at activation, empty
    assert t.format_version == 2 and t.current_snapshot() is None
    assert [f.name for f in t.schema().fields] == ["user", "page", "at", "score", "tags", "geo"]
    assert t.schema().find_field("user").required and not t.schema().find_field("page").required
    assert t.properties["write.parquet.compression-codec"] == "zstd"
    s.put_records([(click(i, extra="dropped"), f"k{i}") for i in range(50)])
    eng.clock.advance(299)
    assert catalog(root).load_table(("web", "clicks")).current_snapshot() is None
    eng.clock.advance(1)
    t = catalog(root).load_table(("web", "clicks"))
    rows = t.scan().to_arrow().sort_by("user").to_pylist()
    assert [r["user"] for r in rows] == list(range(50))
    assert rows[3]["page"] == "/p3" and rows[3]["at"] == dt.datetime(2023, 11, 14, 22, 15, tzinfo=dt.timezone.utc)
    assert "extra" not in rows[0] and rows[0]["geo"] is None
    assert len(t.snapshots()) == 1 and len(list(t.scan().plan_files())) == 1
    s.put_records([(click(i), f"k{i}") for i in range(50, 60)])
    eng.clock.advance(300)
    t = catalog(root).load_table(("web", "clicks"))
    assert len(t.snapshots()) == 2 and t.scan().to_arrow().num_rows == 60
    eng.clock.advance(900)                                      # windows without records commit nothing
    assert len(catalog(root).load_table(("web", "clicks")).snapshots()) == 2
    m = c.metrics
    assert m.total("DeliveryToIceberg.SuccessfulRowCount") == 60 and m.total("DeliveryToIceberg.CommitSuccess") == 2
    assert m.total("DeliveryToIceberg.DataFileCount") == 2 and m.total("DeliveryToIceberg.FailedRecordCount") == 0
    assert m.total("DeliveryToIceberg.DataFreshness") == 300
    assert c.table.scan().to_arrow().num_rows == 60


def test_duckdb_reads_the_data_files(eng, root):
    duckdb = pytest.importorskip("duckdb", reason="the DuckDB read-back needs duckdb")
    make(eng)
    eng.stream("s").put_records([(click(i, score=i / 2), f"k{i}") for i in range(10)])
    eng.clock.advance(300)
    files = [task.file.file_path.removeprefix("file://")
             for task in catalog(root).load_table(("web", "clicks")).scan().plan_files()]
    con = duckdb.connect()
    got = con.execute(f"SELECT count(*), sum(score) FROM read_parquet({files!r})").fetchone()
    assert got == (10, 22.5)


def test_time_hour_partitions(eng, root):
    make(eng, PartitionSpec={"PartitionFields": [{"Transform": "TIME_HOUR", "SourceName": "at"}]})
    eng.stream("s").put_records([(click(i, at=f"2023-11-14T{21 + i % 3}:30:00+00:00"), f"k{i}") for i in range(30)])
    eng.clock.advance(300)
    t = catalog(root).load_table(("web", "clicks"))
    assert [f.transform.__class__.__name__ for f in t.spec().fields] == ["HourTransform"]
    assert len(t.snapshots()) == 1                               # one commit, one data file per hour
    paths = sorted(task.file.file_path.split("/data/")[1].split("/")[0] for task in t.scan().plan_files())
    assert paths == ["at_hour=2023-11-14-21", "at_hour=2023-11-14-22", "at_hour=2023-11-14-23"]
    at = t.scan(row_filter="at >= '2023-11-14T23:00:00+00:00'").to_arrow()
    assert sorted(at.column("user").to_pylist()) == list(range(2, 30, 3))


def test_invalid_records_go_to_the_dead_letter_prefix(eng, root):
    d = make(eng)
    bad = [b"not json", b"[1, 2]", click(1, at=17), json.dumps({"at": "2023-11-14T22:15:00Z"}).encode(),
           click(2, geo={"country": None}), click(3, tags=["a", 1]), b"\xff\xfe", click(4, at="yesterday"),
           json.dumps({"user": 1.5, "at": "2023-11-14T22:15:00Z"}).encode()]
    eng.stream("s").put_records([(x, f"k{i}") for i, x in enumerate(bad)] + [(click(9), "ok")])
    eng.clock.advance(300)
    rows = catalog(root).load_table(("web", "clicks")).scan().to_arrow().to_pylist()
    assert [r["user"] for r in rows] == [9]
    [dead] = (root / "lake").glob("kinesis-channel/errors/2023/11/14/22/to-table-*.json")
    lines = [json.loads(x) for x in dead.read_text().splitlines()]
    assert sorted(x["ErrorCode"] for x in lines) == sorted(
        ["InvalidJSON", "SchemaMismatch", "SchemaMismatch", "MissingRequiredField", "MissingRequiredField",
         "SchemaMismatch", "InvalidUTF8", "SchemaMismatch", "SchemaMismatch"])
    assert all("RawData" not in x and x["Table"] == "web.clicks" and x["SequenceNumber"] for x in lines)
    assert any("$.geo.country" in x["ErrorMessage"] for x in lines)
    m = eng.channel(d["ChannelARN"]).metrics
    assert m.total("DeliveryToIceberg.FailedRecordCount") == 9 and m.total("DeliveryToIceberg.DLQDeliverySuccess") == 1
    assert m.total("DeliveryToIceberg.RecordCount") == 10


def test_gsr_json_records_carry_the_registry_header(eng, root):
    make(eng, fmt="GSR_JSON")
    vid = uuid.uuid4().bytes
    plain = struct.pack("BB", 3, 0) + vid + click(1)
    packed = struct.pack("BB", 3, 5) + vid + zlib.compress(click(2))
    eng.stream("s").put_records([(plain, "a"), (packed, "b"), (click(3), "c")])
    eng.clock.advance(300)
    rows = catalog(root).load_table(("web", "clicks")).scan().to_arrow().to_pylist()
    assert sorted(r["user"] for r in rows) == [1, 2]
    [dead] = (root / "lake").glob("kinesis-channel/errors/**/*.json")
    assert json.loads(dead.read_text())["ErrorCode"] == "InvalidGSRHeader"


def test_an_existing_table_is_refused(eng, root):
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField
    cat = catalog(root)
    cat.create_namespace("web")
    cat.create_table(("web", "clicks"), Schema(NestedField(1, "x", LongType())))
    d = eng.describe_channel(make(eng)["ChannelARN"])["ChannelDescription"]
    assert d["ChannelStatus"] == "FAILED"
    assert "web.clicks already exists" in d["ChannelStatusReason"]


@pytest.mark.parametrize("schema, part, why", [
    ({"type": "object", "properties": {"at": {"type": "string"}}}, "at", "TIME_HOUR needs timestamptz"),
    ({"type": "object", "properties": {"at": {"type": "string"}}}, "when", "not in the schema"),
    ({"type": "object", "properties": {"x": {"type": "null"}}}, None, "has no Iceberg column type"),
    ({"type": "array"}, None, "must describe a JSON object"),
])
def test_schemas_that_cannot_make_the_table_fail_the_channel(eng, root, schema, part, why):
    (root / "tables" / "schemas" / "reg" / "odd.json").write_text(json.dumps(schema))
    kw = {"PartitionSpec": {"PartitionFields": [{"Transform": "TIME_HOUR", "SourceName": part}]}} if part else {}
    d = make(eng, schema="arn:aws:glue:us-east-1:123456789012:schema/reg/odd", **kw)
    d = eng.describe_channel(d["ChannelARN"])["ChannelDescription"]
    assert d["ChannelStatus"] == "FAILED" and why in d["ChannelStatusReason"]


def test_create_channel_validates_the_table_configuration(eng):
    with pytest.raises(E.ValidationException, match="tableName"):
        make(eng, TableName="Bad-Name")
    with pytest.raises(E.ValidationException, match="compressionType"):
        make(eng, CompressionType="GZIP")
    with pytest.raises(E.ValidationException, match="transform"):
        make(eng, PartitionSpec={"PartitionFields": [{"Transform": "DAY", "SourceName": "at"}]})
    with pytest.raises(E.ValidationException, match="partitionFields"):
        make(eng, PartitionSpec={"PartitionFields": []})


def test_without_pyiceberg_the_channel_fails_and_says_what_to_install(eng, monkeypatch):
    import fastkin.iceberg
    monkeypatch.setattr(fastkin.iceberg, "available", lambda: "S3 Tables delivery needs pyiceberg and pyarrow")
    d = eng.describe_channel(make(eng)["ChannelARN"])["ChannelDescription"]
    assert d["ChannelStatus"] == "FAILED" and "pyiceberg" in d["ChannelStatusReason"]


def test_a_configured_catalog_and_the_default_directory(core_name, root, tmp_path):
    cat = SqlCatalog("mine", uri=f"sqlite:///{tmp_path / 'mine.db'}", warehouse=f"file://{tmp_path}")
    (root / "tables" / "schemas" / "reg" / "clicks.json").unlink()
    eng = fastkin.Engine(clock=fastkin.VirtualClock(start=START), core=core_name, channel_s3=f"file://{root}",
                         channel_iceberg=cat)
    moto = pytest.importorskip("moto", reason="the Glue schema lookup needs moto (the test extra)")
    import boto3
    with moto.mock_aws():                                   # no schema file: Glue (moto's) has it
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_registry(RegistryName="reg")
        glue.create_schema(RegistryId={"RegistryName": "reg"}, SchemaName="clicks", DataFormat="JSON",
                           Compatibility="NONE", SchemaDefinition=json.dumps(CLICKS))
        make(eng)
    eng.stream("s").put_record(click(7), "k")
    eng.clock.advance(300)
    assert cat.load_table(("web", "clicks")).scan().to_arrow().column("user").to_pylist() == [7]
    default = fastkin.Engine(clock=fastkin.VirtualClock(start=START), core=core_name, channel_s3=f"file://{root}")
    assert default._channels.iceberg.root is not None       # a temporary directory, made on first use


def test_boto3_in_process_with_glue_in_moto(root):
    moto = pytest.importorskip("moto", reason="the in-process boto3 test needs moto (the test extra)")
    import boto3
    clock = fastkin.VirtualClock(start=START)
    with moto.mock_aws(), fastkin.mock_kinesis(clock=clock, channel_iceberg=str(root / "tables")):
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="dead")
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_registry(RegistryName="reg")
        arn = glue.create_schema(RegistryId={"RegistryName": "reg"}, SchemaName="events", DataFormat="JSON",
                                 Compatibility="NONE", SchemaDefinition=json.dumps(CLICKS))["SchemaArn"]
        k = boto3.client("kinesis", region_name="us-east-1")
        k.create_stream(StreamName="events", StreamModeDetails={"StreamMode": "ON_DEMAND"})
        stream_arn = k.describe_stream_summary(StreamName="events")["StreamDescriptionSummary"]["StreamARN"]
        ch = k.create_channel(
            ChannelName="events-to-table", ServiceExecutionRoleARN=ROLE,
            StreamConfigurationList=[{"StreamARN": stream_arn, "RecordConfiguration": {
                "RecordFormatType": "JSON", "GSRSchemaARN": arn}}],
            S3TablesDestinationConfiguration={
                "DeadLetterQueueS3Configuration": {"BucketARN": "arn:aws:s3:::dead", "ExpectedBucketOwner": OWNER},
                "S3TablesConfigurationList": [{
                    "TableBucketARN": "arn:aws:s3tables:us-east-1:123456789012:bucket/tables", "Namespace": "app",
                    "TableName": "events", "CompressionType": "SNAPPY"}]})["ChannelDescription"]["ChannelARN"]
        k.get_waiter("channel_active").wait(ChannelARN=ch)
        k.put_records(StreamARN=stream_arn, Records=[{"Data": click(i), "PartitionKey": f"k{i}"} for i in range(5)]
                      + [{"Data": b"{}", "PartitionKey": "bad"}])
        clock.advance(300)
        [summary] = k.list_channels()["ChannelSummaries"]
        assert summary["ChannelDestinationType"] == "S3_TABLES" and summary["ChannelStatus"] == "ACTIVE"
        dead = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="dead")["Contents"]
        assert len(dead) == 1 and dead[0]["Key"].startswith("kinesis-channel/errors/")
    t = SqlCatalog("tables", uri=f"sqlite:///{root / 'tables' / 'catalog.db'}").load_table(("app", "events"))
    assert sorted(t.scan().to_arrow().column("user").to_pylist()) == list(range(5))
    assert t.properties["write.parquet.compression-codec"] == "snappy"


def test_over_http_with_the_servers_iceberg_directory(root):
    import boto3
    from botocore.config import Config

    from fastkin.wire.http import ServerThread
    clock = fastkin.VirtualClock(start=START)
    with ServerThread(port=0, clock=clock, channel_s3=f"file://{root}", channel_iceberg=str(root / "tables")) as srv:
        k = boto3.client("kinesis", region_name="us-east-1", endpoint_url=srv.url,
                         config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
                         aws_access_key_id="testing", aws_secret_access_key="testing")
        k.create_stream(StreamName="events", StreamModeDetails={"StreamMode": "ON_DEMAND"})
        arn = k.describe_stream_summary(StreamName="events")["StreamDescriptionSummary"]["StreamARN"]
        ch = k.create_channel(ChannelName="over-http", ServiceExecutionRoleARN=ROLE, StreamConfigurationList=[{
            "StreamARN": arn, "RecordConfiguration": {"RecordFormatType": "JSON", "GSRSchemaARN": SCHEMA_ARN}}],
            S3TablesDestinationConfiguration=table_dest())["ChannelDescription"]["ChannelARN"]
        k.get_waiter("channel_active").wait(ChannelARN=ch)
        k.put_record(StreamARN=arn, Data=click(42), PartitionKey="a")
        clock.advance(300)
        d = k.describe_channel(ChannelARN=ch)["ChannelDescription"]
        assert d["S3TablesDestinationConfiguration"]["S3TablesConfigurationList"][0]["TableName"] == "clicks"
    assert catalog(root).load_table(("web", "clicks")).scan().to_arrow().column("user").to_pylist() == [42]


def test_no_schema_file_and_no_local_glue_fails_without_calling_aws(eng, monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_GLUE"):
        monkeypatch.delenv(var, raising=False)
    d = make(eng, schema="arn:aws:glue:us-east-1:123456789012:schema/reg/elsewhere")
    d = eng.describe_channel(d["ChannelARN"])["ChannelDescription"]
    assert d["ChannelStatus"] == "FAILED" and "does not read real Glue unasked" in d["ChannelStatusReason"]

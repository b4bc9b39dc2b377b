"""fastkin serve on the wire: JSON and CBOR, malformed requests, size caps, SigV4, event streams, the
AWS CLI, and the process's graceful shutdown. Traffic goes to 127.0.0.1 only."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time

import boto3
import cbor2
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config

import fastkin
from fastkin.wire.http import KinesisApp, ServerThread
from fastkin.wire.sigv4 import placeholder_auth

START = 1_700_000_000.0
JSON_CT = "application/x-amz-json-1.1"
CBOR_CT = "application/x-amz-cbor-1.1"


@pytest.fixture
def srv(http_server):
    clock = fastkin.VirtualClock(start=START)
    http_server.app.reset(fastkin.Engine(clock=clock))
    yield http_server
    http_server.app.reset()


def post(url: str, op: str, body, ctype: str = JSON_CT, **kw) -> httpx.Response:
    data = body if isinstance(body, bytes) else (cbor2.dumps(body) if ctype == CBOR_CT else json.dumps(body).encode())
    headers = {"X-Amz-Target": f"Kinesis_20131202.{op}", "Content-Type": ctype, **placeholder_auth(),
               **kw.pop("headers", {})}
    return httpx.post(url + "/", content=data, headers=headers, timeout=10, **kw)


def test_json_round_trip_and_error_body(srv):
    assert post(srv.url, "CreateStream", {"StreamName": "s", "ShardCount": 1}).content == b""
    r = post(srv.url, "PutRecord",
             {"StreamName": "s", "Data": base64.b64encode(b"\x00hi").decode(), "PartitionKey": "k"})
    assert r.status_code == 200 and r.headers["content-type"] == JSON_CT and r.headers["x-amzn-requestid"]
    assert r.json()["ShardId"] == "shardId-000000000000"
    r = post(srv.url, "DescribeStream", {"StreamName": "missing"})
    assert r.status_code == 400
    assert r.json() == {"__type": "ResourceNotFoundException",
                        "message": "Stream missing under account 123456789012 not found."}
    d = post(srv.url, "DescribeStreamSummary", {"StreamName": "s"}).json()["StreamDescriptionSummary"]
    assert d["StreamCreationTimestamp"] == START         # epoch seconds as a JSON number


def test_cbor_requests_use_byte_strings_and_millisecond_timestamps(srv):
    assert post(srv.url, "CreateStream", {"StreamName": "c", "ShardCount": 1}, CBOR_CT).status_code == 200
    r = post(srv.url, "PutRecord", {"StreamName": "c", "Data": b"\x01\x02", "PartitionKey": "k"}, CBOR_CT)
    assert r.headers["content-type"] == CBOR_CT
    assert cbor2.loads(r.content)["ShardId"] == "shardId-000000000000"
    # AT_TIMESTAMP with CBOR tag 1 holding epoch milliseconds, as the Java SDK sends it
    r = post(srv.url, "GetShardIterator", {"StreamName": "c", "ShardId": "shardId-000000000000",
                                           "ShardIteratorType": "AT_TIMESTAMP",
                                           "Timestamp": cbor2.CBORTag(1, int(START * 1000))}, CBOR_CT)
    it = cbor2.loads(r.content)["ShardIterator"]
    raw = cbor2.loads(post(srv.url, "GetRecords", {"ShardIterator": it}, CBOR_CT).content,
                      semantic_decoders={1: lambda value, immutable: ("tag 1", value)})
    rec = raw["Records"][0]
    assert rec["Data"] == b"\x01\x02"
    assert rec["ApproximateArrivalTimestamp"] == ("tag 1", int(START * 1000))
    err = cbor2.loads(post(srv.url, "DescribeStream", {"StreamName": "nope"}, CBOR_CT).content)
    assert err["__type"] == "ResourceNotFoundException"


@pytest.mark.parametrize("op, body, ctype, code", [
    ("ListStreams", b"{not json", JSON_CT, "SerializationException"),
    ("ListStreams", b"[1, 2]", JSON_CT, "SerializationException"),
    ("ListStreams", b"\xff\xfe", CBOR_CT, "SerializationException"),
    ("PutRecord", {"StreamName": "s", "Data": "%%%not base64", "PartitionKey": "k"}, JSON_CT, "SerializationException"),
    ("CreateStream", {"StreamName": "s", "ShardCount": "two"}, JSON_CT, "SerializationException"),
    ("CreateStream", {"StreamName": ["s"], "ShardCount": 1}, JSON_CT, "SerializationException"),
    ("CreateStream", {"ShardCount": 1}, JSON_CT, "ValidationException"),
    ("CreateStream", {"StreamName": "s", "ShardCount": 0}, JSON_CT, "ValidationException"),
    ("FlyToTheMoon", {}, JSON_CT, "UnknownOperationException"),
])
def test_malformed_requests_get_aws_errors_and_the_server_keeps_serving(srv, op, body, ctype, code):
    r = post(srv.url, op, body, ctype)
    assert r.status_code == 400
    got = cbor2.loads(r.content) if ctype == CBOR_CT else r.json()
    assert got["__type"] == code
    assert srv.app.engine.list_streams()["StreamNames"] == []     # nothing created
    assert httpx.get(srv.url + "/health").json()["status"] == "ok"


def test_missing_target_and_oversize_body(srv):
    r = httpx.post(srv.url + "/", content=b"{}", headers={"Content-Type": JSON_CT})
    assert (r.status_code, r.json()["__type"]) == (400, "UnknownOperationException")
    big = b"{" + b" " * (srv.app.max_body_bytes + 1) + b"}"
    r = post(srv.url, "ListStreams", big)
    assert r.status_code == 413
    assert post(srv.url, "ListStreams", {}).status_code == 200


def _client(url, **kw):
    kw.setdefault("aws_access_key_id", "AKIDTEST")
    kw.setdefault("aws_secret_access_key", "secret")
    return boto3.session.Session().client("kinesis", region_name="us-east-1", endpoint_url=url,
                                          config=kw.pop("config", Config(retries={"total_max_attempts": 1})), **kw)


def test_sigv4_verification_when_credentials_are_configured():
    app = KinesisApp(clock=fastkin.VirtualClock(start=START), credentials={"AKIDTEST": "secret"})
    with ServerThread(app) as s:
        good = _client(s.url)
        good.create_stream(StreamName="signed", ShardCount=1)
        assert good.list_streams()["StreamNames"] == ["signed"]
        cases = [(_client(s.url, aws_secret_access_key="wrong"), "InvalidSignatureException"),
                 (_client(s.url, aws_access_key_id="AKIDOTHER"), "UnrecognizedClientException"),
                 (_client(s.url, config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})),
                  "MissingAuthenticationTokenException")]
        for client, code in cases:
            with pytest.raises(client.exceptions.ClientError) as ei:
                client.delete_stream(StreamName="signed")
            assert ei.value.response["Error"]["Code"] == code
        assert good.list_streams()["StreamNames"] == ["signed"]


def test_subscribe_to_shard_over_http_reaches_child_shards(srv):
    k = _client(srv.url)
    k.create_stream(StreamName="e", ShardCount=1)
    arn = k.describe_stream_summary(StreamName="e")["StreamDescriptionSummary"]["StreamARN"]
    k.put_record(StreamName="e", Data=b"one", PartitionKey="a")
    k.split_shard(StreamName="e", ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2 ** 127))
    c = k.register_stream_consumer(StreamARN=arn, ConsumerName="efo")["Consumer"]
    resp = k.subscribe_to_shard(ConsumerARN=c["ConsumerARN"], ShardId="shardId-000000000000",
                                StartingPosition={"Type": "TRIM_HORIZON"})
    events = [e["SubscribeToShardEvent"] for e in resp["EventStream"]]
    assert [r["Data"] for e in events for r in e["Records"]] == [b"one"]
    last = events[-1]
    assert "ContinuationSequenceNumber" not in last
    assert sorted(x["ShardId"] for x in last["ChildShards"]) == ["shardId-000000000001", "shardId-000000000002"]


def test_aws_cli_against_the_server(srv):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

    def aws(*args):
        p = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", srv.url, "kinesis", *args],
                           capture_output=True, text=True, env=env, timeout=60)
        return p

    assert aws("create-stream", "--stream-name", "cli", "--shard-count", "2").returncode == 0
    out = aws("describe-stream", "--stream-name", "cli")
    assert out.returncode == 0, out.stderr
    assert [s["ShardId"] for s in json.loads(out.stdout)["StreamDescription"]["Shards"]] == \
        ["shardId-000000000000", "shardId-000000000001"]
    bad = aws("describe-stream", "--stream-name", "nope")
    assert bad.returncode != 0 and "ResourceNotFoundException" in bad.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_fastkin_serve_process_shuts_down_gracefully(sig):
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "fastkin", "serve", "--port", str(port), "--access-log"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        assert post(url, "CreateStream", {"StreamName": "p", "ShardCount": 1}).status_code == 200
        p.send_signal(sig)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert "fastkin stopped" in out
    assert "CreateStream" in err or "POST" in err or "POST" in out      # the access log line


def test_endpoint_from_the_environment(srv, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", srv.url)
    k = boto3.session.Session().client("kinesis", region_name="us-east-1", aws_access_key_id="x",
                                       aws_secret_access_key="y")
    k.create_stream(StreamName="env", ShardCount=1)
    assert srv.app.engine.list_streams()["StreamNames"] == ["env"]


_PUT_RECORDS_CASES = [
    {"StreamName": "s", "Records": [{"Data": "aGk=", "PartitionKey": "k"}]},
    {"StreamName": "s", "Records": [{"Data": "aGk=", "PartitionKey": "k", "ExplicitHashKey": "7"}]},
    {"StreamARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s", "Records": [{"Data": "", "PartitionKey": "k"}]},
    {"StreamName": "s", "Records": [{"Data": "aGk=", "PartitionKey": "k", "Other": 1}], "Extra": "x"},
    {"StreamName": "s", "Records": [{"Data": "aGk=", "PartitionKey": "k", "ExplicitHashKey": None}]},
    {"StreamName": "s", "Records": [{"Data": "aGk=", "PartitionKey": "k", "ExplicitHashKey": "01"}]},
    {"StreamName": "s", "Records": [{"Data": "aGk=", "PartitionKey": "k", "ExplicitHashKey": str(2 ** 128)}]},
    {"StreamName": "s", "Records": [{"Data": "aGk=", "PartitionKey": "p" * 257}]},
    {"StreamName": "s", "Records": [{"Data": "aGk=", "PartitionKey": ""}]},
    {"StreamName": "s", "Records": [{"Data": "a%Gk=", "PartitionKey": "k"}]},
    {"StreamName": "s", "Records": [{"Data": 12, "PartitionKey": "k"}]},
    {"StreamName": "s", "Records": [{"PartitionKey": "k"}]},
    {"StreamName": "s", "Records": [["aGk=", "k"]]},
    {"StreamName": "s", "Records": []},
    {"StreamName": "s", "Records": [{"Data": "aGk=", "PartitionKey": "k"}] * 501},
    {"StreamName": "bad name!", "Records": [{"Data": "aGk=", "PartitionKey": "k"}]},
    {"StreamName": "missing", "Records": [{"Data": "aGk=", "PartitionKey": "k"}]},
    {"StreamName": 5, "Records": [{"Data": "aGk=", "PartitionKey": "k"}]},
    {"Records": [{"Data": "aGk=", "PartitionKey": "k"}]},
    {"StreamName": "s",
     "Records": [{"Data": base64.b64encode(b"x" * (1024 * 1024 + 1)).decode(), "PartitionKey": "k"}]},
]


@pytest.mark.parametrize("ctype", [JSON_CT, CBOR_CT])
def test_put_records_fast_path_answers_as_the_generic_path(srv, monkeypatch, ctype):
    """The server decodes well-formed PutRecords in one pass; whatever it sends on must answer exactly as
    the generic decode-and-check walk does (same status, body, stored records)."""
    import fastkin.wire.http as server_mod

    def run():
        srv.app.reset(fastkin.Engine(clock=fastkin.VirtualClock(start=START)))
        post(srv.url, "CreateStream", {"StreamName": "s", "ShardCount": 2})
        answers = []
        for case in _PUT_RECORDS_CASES:
            if ctype == CBOR_CT:
                case = {**case, "Records": [{k: (base64.b64decode(v) if k == "Data" and isinstance(v, str) and
                                                 "%" not in v else v) for k, v in r.items()}
                                            if isinstance(r, dict) else r for r in case["Records"]]}
            r = post(srv.url, "PutRecords", case, ctype)
            body = cbor2.loads(r.content) if ctype == CBOR_CT else r.json()
            answers.append((r.status_code, body))
        it = srv.app.engine.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON", stream_name="s")
        return answers, [(x.data, x.partition_key) for x in srv.app.engine.get_records(it).records]

    fast = run()
    monkeypatch.setattr(server_mod, "put_records_params", lambda shape, raw, cbor: None)
    generic = run()
    assert fast == generic
    assert [s for s, _ in fast[0]].count(200) >= 4

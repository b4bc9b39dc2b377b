"""fastkin serve over HTTP/2: h2c by prior knowledge and by Upgrade, TLS with ALPN (h2 and http/1.1),
SigV4 over HTTP/2, several requests and SubscribeToShard streams multiplexed on one connection with
flow control respected. Traffic goes to 127.0.0.1 only."""
from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import time

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from h2wire import JSON_CT, START, TARGET, H2Client, event_payload, events

import fastkin
from fastkin.wire.http import KinesisApp, ServerThread, self_signed_certificate
from fastkin.wire.sigv4 import placeholder_auth


def post(client: httpx.Client, url: str, op: str, body: dict, **headers) -> httpx.Response:
    return client.post(url + "/", content=json.dumps(body).encode(),
                       headers={"X-Amz-Target": TARGET + op, "Content-Type": JSON_CT, **placeholder_auth(),
                                **headers}, timeout=10)


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _data_plane(client: httpx.Client, url: str) -> None:
    assert post(client, url, "CreateStream", {"StreamName": "s", "ShardCount": 2}).status_code == 200
    recs = [{"Data": b64(b"r%d" % i), "PartitionKey": f"k{i}"} for i in range(20)]
    r = post(client, url, "PutRecords", {"StreamName": "s", "Records": recs})
    assert r.status_code == 200 and r.json()["FailedRecordCount"] == 0
    got = []
    for shard in post(client, url, "ListShards", {"StreamName": "s"}).json()["Shards"]:
        it = post(client, url, "GetShardIterator", {"StreamName": "s", "ShardId": shard["ShardId"],
                                                     "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": START})
        out = post(client, url, "GetRecords", {"ShardIterator": it.json()["ShardIterator"]}).json()
        got += [base64.b64decode(x["Data"]) for x in out["Records"]]
    assert sorted(got) == sorted(b"r%d" % i for i in range(20))
    r = post(client, url, "DescribeStream", {"StreamName": "missing"})
    assert r.status_code == 400 and r.json()["__type"] == "ResourceNotFoundException"
    assert r.headers["x-amzn-errortype"] == "ResourceNotFoundException"


def test_h2c_prior_knowledge(h2c):
    with httpx.Client(http1=False, http2=True) as c:          # HTTP/2 from the first byte, as Node's http2 client
        _data_plane(c, h2c.url)
        r = c.get(h2c.url + "/health")
        assert r.http_version == "HTTP/2" and r.json()["status"] == "ok"
    assert set(h2c.app.http_versions) == {"2"}


def test_http11_and_h2c_on_the_same_port(h2c):
    with httpx.Client() as c1, httpx.Client(http1=False, http2=True) as c2:
        assert post(c1, h2c.url, "CreateStream", {"StreamName": "a", "ShardCount": 1}).http_version == "HTTP/1.1"
        r = post(c2, h2c.url, "ListStreams", {})
        assert r.http_version == "HTTP/2" and r.json()["StreamNames"] == ["a"]
    assert h2c.app.http_versions == {"1.1": 1, "2": 1}


def test_h2c_upgrade_then_requests_on_the_upgraded_connection(h2c):
    with H2Client("127.0.0.1", h2c.port, upgrade=True) as c:
        assert c.upgrade_response.startswith(b"HTTP/1.1 101")
        assert json.loads(c.response(1).data)["status"] == "ok"       # the upgraded request, answered on stream 1
        sid = c.call("CreateStream", {"StreamName": "up", "ShardCount": 1})
        assert c.response(sid).status == 200
        r = c.response(c.call("ListStreams", {}))
        assert json.loads(r.data)["StreamNames"] == ["up"]
    assert h2c.app.http_versions["2"] == 3


def test_an_upgrade_request_with_a_body_is_answered_in_http11(h2c):
    import socket
    body = b'{"StreamName": "b", "ShardCount": 1}'
    with socket.create_connection(("127.0.0.1", h2c.port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                  b"HTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Amz-Target: " + (TARGET + "CreateStream").encode() +
                  b"\r\nContent-Type: " + JSON_CT.encode() + b"\r\n" +
                  b"".join(f"{k}: {v}\r\n".encode() for k, v in placeholder_auth().items()) +
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 200")
    assert h2c.app.engine.list_streams()["StreamNames"] == ["b"]


def test_requests_multiplexed_on_one_connection(h2c):
    with H2Client("127.0.0.1", h2c.port) as c:
        c.response(c.call("CreateStream", {"StreamName": "m", "ShardCount": 4}))
        sids = [c.call("PutRecord", {"StreamName": "m", "Data": b64(b"x" * 2000), "PartitionKey": f"k{i}"})
                for i in range(50)]                       # all sent before any response is read
        assert len(set(sids)) == 50
        c.pump_until(lambda: all(c.streams[s].ended for s in sids))
        assert {c.streams[s].status for s in sids} == {200}
    assert sum(s.core.shard_end(i) for s in [h2c.app.engine.stream("m")] for i in range(4)) == 50


def test_tls_alpn_offers_h2_and_http11(tls, tls_context):
    with H2Client("127.0.0.1", tls.port, tls=tls_context) as c:
        assert c.alpn == "h2"
        assert c.response(c.call("CreateStream", {"StreamName": "t", "ShardCount": 1})).status == 200
    with httpx.Client(http2=True, verify=tls_context) as c:
        r = post(c, tls.url, "ListStreams", {})
        assert r.http_version == "HTTP/2" and r.json()["StreamNames"] == ["t"]
        _data_plane(c, tls.url)
    ctx11 = ssl.create_default_context(cafile=tls.cafile)
    with httpx.Client(verify=ctx11) as c:                       # ALPN http/1.1 only
        r = post(c, tls.url, "ListStreams", {})
        assert r.http_version == "HTTP/1.1" and "s" in r.json()["StreamNames"]
    with pytest.raises(httpx.ConnectError):                      # the certificate is not trusted by default
        httpx.get(tls.url + "/health")


def test_tls_with_a_given_certificate(tmp_path):
    cert, key = self_signed_certificate(str(tmp_path), ("127.0.0.1",))
    with ServerThread(port=0, certfile=cert, keyfile=key) as s, \
            httpx.Client(http2=True, verify=ssl.create_default_context(cafile=cert)) as c:
        assert s.url.startswith("https://") and s.cafile == cert
        assert c.get(s.url + "/health").http_version == "HTTP/2"


def _signed(url: str, op: str, body: bytes, secret: str) -> dict:
    req = AWSRequest(method="POST", url=url + "/", data=body,
                     headers={"X-Amz-Target": TARGET + op, "Content-Type": JSON_CT})
    SigV4Auth(Credentials("AKIDTEST", secret), "kinesis", "eu-west-1").add_auth(req)
    return dict(req.headers.items())


def test_sigv4_over_http2_uses_the_authority_as_host():
    app = KinesisApp(clock=fastkin.VirtualClock(start=START), credentials={"AKIDTEST": "secret"})
    with ServerThread(app) as s, httpx.Client(http1=False, http2=True) as c:
        body = b'{"StreamName": "sig", "ShardCount": 1}'
        r = c.post(s.url + "/", content=body, headers=_signed(s.url, "CreateStream", body, "secret"))
        assert (r.http_version, r.status_code) == ("HTTP/2", 200)
        assert app.engine_for("eu-west-1").list_streams()["StreamNames"] == ["sig"]     # region from the scope
        r = c.post(s.url + "/", content=body, headers=_signed(s.url, "CreateStream", body, "wrong"))
        assert r.json()["__type"] == "InvalidSignatureException"


# -- SubscribeToShard over HTTP/2 -----------------------------------------------------------------

def _fan_out_stream(app, records_per_shard: int, closed: bool):
    """A 2-shard stream with records on each shard (1,000 bytes each), optionally with both shards closed
    by a split (their subscriptions then end with ChildShards), and a registered consumer."""
    engine = app.engine
    engine.create_stream("fan", 2)
    top = str(2 ** 128 - 1)
    for shard, ehk in ((0, "0"), (1, top)):
        engine.put_records([(b"%d:%04d" % (shard, i) + b"." * 994, "k", ehk) for i in range(records_per_shard)],
                           stream_name="fan")
    if closed:
        for shard in engine.list_shards("fan")["Shards"]:
            lo, hi = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
            engine.split_shard(shard["ShardId"], str((lo + hi) // 2), stream_name="fan")
    arn = engine.stream("fan").arn
    from fastkin.wire.service import service_for
    consumer = service_for(engine).dispatch("RegisterStreamConsumer", {"StreamARN": arn, "ConsumerName": "efo"})
    return consumer["Consumer"]["ConsumerARN"]


def _eventually(pred, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _subscribe(c: H2Client, consumer: str, shard: int, position=None) -> int:
    return c.call("SubscribeToShard", {"ConsumerARN": consumer, "ShardId": f"shardId-{shard:012d}",
                                       "StartingPosition": position or {"Type": "TRIM_HORIZON"}})


def _event_bodies(stream) -> list[dict]:
    msgs = events(bytes(stream.data))
    assert msgs[0].headers[":event-type"] == "initial-response"
    assert all(m.headers[":message-type"] == "event" for m in msgs)
    return [event_payload(m) for m in msgs[1:]]


def test_subscriptions_multiplexed_on_one_connection_respect_flow_control(h2c):
    n = 60                                                        # 60 KB of records a shard, > the window
    consumer = _fan_out_stream(h2c.app, n, closed=True)
    window = 4096
    with H2Client("127.0.0.1", h2c.port, window=window) as c:
        a = _subscribe(c, consumer, 0)
        c.hold.add(a)                                             # stream a: never acknowledged (for now)
        b = _subscribe(c, consumer, 1)
        c.pump_until(lambda: c.streams[b].ended)                  # b runs to its end while a is stalled
        assert c.streams[a].status == 200 and not c.streams[a].ended
        assert 0 < len(c.streams[a].data) <= window and c.streams[a].max_unacked <= window
        q = c.call("DescribeStreamSummary", {"StreamName": "fan"})   # and plain requests still get through
        assert c.response(q).status == 200
        assert not c.streams[a].ended and len(c.streams[a].data) <= window
        c.release(a)
        c.pump_until(lambda: c.streams[a].ended)
        for sid, shard in ((a, 0), (b, 1)):
            assert c.streams[sid].headers["content-type"] == "application/vnd.amazon.eventstream"
            bodies = _event_bodies(c.streams[sid])
            data = [base64.b64decode(r["Data"]) for e in bodies for r in e["Records"]]
            assert data == [b"%d:%04d" % (shard, i) + b"." * 994 for i in range(n)]
            assert "ContinuationSequenceNumber" not in bodies[-1] and len(bodies[-1]["ChildShards"]) == 2
    _eventually(lambda: not h2c.app._subs)


def test_a_reset_subscription_ends_and_the_connection_keeps_serving(h2c):
    consumer = _fan_out_stream(h2c.app, 3, closed=False)
    with H2Client("127.0.0.1", h2c.port) as c:
        subs = [_subscribe(c, consumer, 0), _subscribe(c, consumer, 1)]
        c.pump_until(lambda: all(len(events(bytes(c.streams[s].data))) >= 2 for s in subs))
        assert len(h2c.app._subs) == 2
        c.reset(subs[0])
        deadline = time.monotonic() + 5
        while len(h2c.app._subs) != 1:
            c.pump_for(0.05)
            assert time.monotonic() < deadline, "the reset subscription did not end"
        h2c.app.engine.put_records([(b"late", "k", str(2 ** 128 - 1))], stream_name="fan")
        c.pump_until(lambda: any(base64.b64decode(r["Data"]) == b"late"
                                 for e in _event_bodies(c.streams[subs[1]]) for r in e["Records"]))
        r = c.response(c.call("ListStreams", {}))
        assert json.loads(r.data)["StreamNames"] == ["fan"]


def test_subscribe_over_tls_http2(tls, tls_context):
    consumer = _fan_out_stream(tls.app, 5, closed=True)
    with H2Client("127.0.0.1", tls.port, tls=tls_context) as c:
        sid = _subscribe(c, consumer, 1, {"Type": "AT_TIMESTAMP", "Timestamp": START})
        bodies = _event_bodies(c.response(sid))
        assert [base64.b64decode(r["Data"])[:6] for e in bodies for r in e["Records"]] == \
            [b"1:%04d" % i for i in range(5)]


# -- the command line -------------------------------------------------------------------------------

def test_fastkin_serve_tls_generates_a_certificate(tmp_path):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "fastkin", "serve", "--tls", "--port", str(port),
                          "--cert-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))   # written on start
                with httpx.Client(http2=True, verify=ctx) as c:
                    r = c.get(f"https://127.0.0.1:{port}/health", timeout=1)
                break
            except (httpx.TransportError, FileNotFoundError, ssl.SSLError):
                assert p.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert (r.http_version, r.json()["status"]) == ("HTTP/2", "ok")
        assert oct(os.stat(tmp_path / "key.pem").st_mode & 0o777) == "0o600"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert f"https://127.0.0.1:{port} over HTTP/1.1 and HTTP/2 (ALPN h2, http/1.1)" in out
    assert f"TLS certificate (self-signed, generated now): {tmp_path / 'cert.pem'}" in out


def test_cert_and_key_go_together():
    p = subprocess.run([sys.executable, "-m", "fastkin", "serve", "--cert", "x.pem"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "--cert and --key go together" in p.stderr


def test_an_answer_larger_than_every_window_arrives_whole_over_h2c(h2c):
    blobs = [os.urandom(900_000) for _ in range(4)]                 # ~4.8 MB of base64: many frames and windows
    with httpx.Client(http1=False, http2=True) as c:
        post(c, h2c.url, "CreateStream", {"StreamName": "big", "ShardCount": 1})
        for b in blobs:                                              # 1 MiB/s per shard: one a second
            assert post(c, h2c.url, "PutRecord", {"StreamName": "big", "Data": b64(b), "PartitionKey": "k"}
                        ).status_code == 200
            h2c.app.engine.clock.advance(1.0)
        it = post(c, h2c.url, "GetShardIterator", {"StreamName": "big", "ShardId": "shardId-000000000000",
                                                   "ShardIteratorType": "TRIM_HORIZON"}).json()["ShardIterator"]
        r = post(c, h2c.url, "GetRecords", {"ShardIterator": it})
        assert r.http_version == "HTTP/2" and int(r.headers["content-length"]) == len(r.content)
        assert [base64.b64decode(x["Data"]) for x in r.json()["Records"]] == blobs

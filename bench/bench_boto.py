"""boto3 through fastkin vs its peers and vs botocore's own floors, all measured in the same run.

In-process (one botocore client per implementation, same inputs):
  fastkin mock_kinesis             answered before request building (see fastkin/mock.py)
  floor: no-op before-call hook    botocore validates + serialises, a handler returns a canned parsed reply
  floor: no-op before-send hook    ... and signs; a handler returns canned HTTP bytes that botocore parses
  moto mock_aws                    moto's in-process Kinesis (before-send)
Over HTTP (loopback, server in a subprocess so client and server do not share a GIL):
  fastkin serve vs moto's server (when its flask extra is installed) vs kinesalite (Node; installed
  once with npm into ~/.cache/fastkin-bench, or $FASTKIN_KINESALITE_DIR, and skipped, saying why,
  without node/npm or when the install fails); PutRecord, PutRecords and GetRecords(10,000); server
  CPU seconds per call are read from /proc. Every server listens on 127.0.0.1 only.

    PYTHONPATH=src python -m pytest bench/bench_boto.py -p no:cacheprovider --benchmark-disable-gc \
        -o python_files='bench_*.py'
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from moto import mock_aws  # before any botocore session exists, so its handler is in every session

import fastkin
from conftest import make_records, report

G_PUT = "boto3 PutRecord (100 B), calls/s"
G_PUTS = "boto3 PutRecords (500 x 100 B), records/s"
G_GET = "boto3 GetRecords (10,000 x 100 B), records/s"
G_HTTP = "boto3 over HTTP (loopback), calls/s"

PUT_CALLS = 200          # PutRecord calls per timed round
ROUNDS = 5
BIG = 1_000_000          # records stored before the "1M stored" variants
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
START = 1_700_000_000.0


_ROWS: list[tuple] = []


def _note(benchmark, group: str, impl: str, rate, unit: str, **extra) -> None:
    if rate is not None:
        _ROWS.append((group, impl, rate, unit, extra))


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    """Print this module's figures as one markdown table, with ratios to the floors and to moto."""
    yield
    if not _ROWS:
        return
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    with capman.global_and_fixture_disabled():
        _print_table()


def _print_table() -> None:
    print("")
    print("boto3 drop-in, same run (ratios: this rate / the other's rate):")
    print("| group | implementation | rate | vs before-send floor | vs before-call floor | vs moto | "
          "vs kinesalite | extra |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    by = {(g, i): r for g, i, r, _, _ in _ROWS}

    def ratio(g, r, other):
        o = by.get((g, other))
        return f"{r / o:.2f}x" if o else "-"

    for g, i, r, unit, extra in _ROWS:
        ex = ", ".join(f"{k}={v:.3f}" for k, v in extra.items())
        print(f"| {g} | {i} | {r:,.0f} {unit} | {ratio(g, r, 'floor: before-send no-op')} | "
              f"{ratio(g, r, 'floor: before-call no-op')} | "
              f"{ratio(g, r, 'moto' if 'HTTP' not in g else 'moto server')} | "
              f"{ratio(g, r, 'kinesalite')} | {ex} |")


@pytest.fixture(scope="module")
def batch():
    return [{"Data": d, "PartitionKey": k} for d, k in make_records(500, seed=1)]


def _client(session=None, **kw):
    s = session or boto3.session.Session()
    return s.client("kinesis", region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench",
                    config=NO_RETRY, **kw)


class _Raw(io.BytesIO):
    def stream(self, **kw):
        yield self.getvalue()


def _http(body: bytes) -> AWSResponse:
    return AWSResponse("https://kinesis.us-east-1.amazonaws.com/", 200,
                       {"content-type": "application/x-amz-json-1.1", "x-amzn-requestid": "r"}, _Raw(body))


PUT_REPLY = {"ShardId": "shardId-000000000000",
             "SequenceNumber": "49680585449777634061851915551214718024316490390085566482"}


def _records_json(n: int) -> bytes:
    data = base64.b64encode(b"x" * 100).decode()
    recs = [{"SequenceNumber": "49680585449777634061851915551214718024316490390085566482",
             "ApproximateArrivalTimestamp": START, "Data": data, "PartitionKey": f"key-{i}"} for i in range(n)]
    return json.dumps({"Records": recs, "NextShardIterator": "AAAAAAAAAAE=", "MillisBehindLatest": 0}).encode()


def _floor_client(kind: str, op: str, body: bytes, parsed: dict):
    c = _client()
    if kind == "before-send":
        c.meta.events.register(f"before-send.kinesis.{op}", lambda **kw: _http(body))
    else:
        c.meta.events.register(f"before-call.kinesis.{op}",
                               lambda **kw: (_http(b""), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}))
    return c


IMPLS = ["fastkin", "fastkin, 1M stored", "floor: before-call no-op", "floor: before-send no-op", "moto"]


class _Impl:
    """A client of one implementation with a stream 's' of one shard (quotas off where there are any)."""

    def __init__(self, impl: str, op: str, canned: bytes = b"", parsed: dict | None = None) -> None:
        self.impl = impl
        self._ctx = None
        if impl.startswith("fastkin"):
            self.engine = fastkin.Engine(quotas=False)
            self._ctx = fastkin.mock_kinesis(engine=self.engine).start()
            self.client = _client()
            self.client.create_stream(StreamName="s", ShardCount=1)
            if impl.endswith("1M stored"):
                s = self.engine.stream("s")
                recs = [(b"x" * 100, f"k{i}") for i in range(500)]
                for _ in range(BIG // 500):
                    s.put_records(recs)
        elif impl == "moto":
            self._ctx = mock_aws()
            self._ctx.start()
            self.client = _client()
            self.client.create_stream(StreamName="s", ShardCount=1)
        else:
            self.client = _floor_client(impl.split()[1], op, canned, parsed or {})

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.stop()


@pytest.mark.benchmark(group=G_PUT)
@pytest.mark.parametrize("impl", IMPLS)
def test_put_record(benchmark, impl):
    body = json.dumps(PUT_REPLY).encode()
    im = _Impl(impl, "PutRecord", body, PUT_REPLY)
    put = im.client.put_record
    data = b"x" * 100

    def run():
        for i in range(PUT_CALLS):
            put(StreamName="s", Data=data, PartitionKey=f"key-{i}")

    try:
        benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    finally:
        im.close()
    _note(benchmark, G_PUT, impl, report(benchmark, scenario="PutRecord", impl=impl, calls=PUT_CALLS,
                                         unit="calls/s"), "calls/s")


@pytest.mark.benchmark(group=G_PUTS)
@pytest.mark.parametrize("impl", IMPLS)
def test_put_records(benchmark, impl, batch):
    reply = {"FailedRecordCount": 0, "Records": [PUT_REPLY] * 500}
    im = _Impl(impl, "PutRecords", json.dumps(reply).encode(), reply)
    put = im.client.put_records
    rounds = 3 if impl == "moto" else 10

    def run():
        out = put(StreamName="s", Records=batch)
        assert out["FailedRecordCount"] == 0

    try:
        benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    finally:
        im.close()
    _note(benchmark, G_PUTS, impl, report(benchmark, scenario="PutRecords", impl=impl, records=500,
                                          nbytes=500 * 100), "records/s")


@pytest.mark.benchmark(group=G_GET)
@pytest.mark.parametrize("impl", IMPLS)
def test_get_records(benchmark, impl, batch):
    canned = _records_json(10_000)
    parsed = json.loads(canned)
    im = _Impl(impl, "GetRecords", canned, parsed)
    c = im.client
    if not impl.startswith("floor"):
        for _ in range(20):
            c.put_records(StreamName="s", Records=batch)            # 10,000 more records

    def setup():
        if impl.startswith("floor"):
            return ("AAAAAAAAAAE=",), {}
        it = c.get_shard_iterator(StreamName="s", ShardId="shardId-000000000000",
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        return (it,), {}

    def run(it):
        out = c.get_records(ShardIterator=it, Limit=10_000)
        assert len(out["Records"]) == 10_000

    try:
        benchmark.pedantic(run, setup=setup, rounds=3 if impl == "moto" else 8, iterations=1, warmup_rounds=1)
    finally:
        im.close()
    _note(benchmark, G_GET, impl, report(benchmark, scenario="GetRecords", impl=impl, records=10_000,
                                         nbytes=10_000 * 100), "records/s")


# -- over HTTP ----------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(cmd: list[str], port: int):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"server did not start: {cmd}")


KINESALITE = "kinesalite@3.3.3"      # the latest release (Dec 2024); in-memory store (memdown), no native build
KINESALITE_DIR = os.environ.get("FASTKIN_KINESALITE_DIR",
                                os.path.join(os.path.expanduser("~"), ".cache", "fastkin-bench"))
# kinesalite's cli.js listens on every interface; this listens on 127.0.0.1 only, same options as
#   cli.js --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0
KINESALITE_JS = ("require(process.argv[1])({createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0})"
                 ".listen(+process.argv[2], '127.0.0.1')")


@pytest.fixture(scope="session")
def kinesalite():
    """(node, path of kinesalite's package dir): npm-installed once into KINESALITE_DIR; skip, saying why, if not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(f"kinesalite needs node and npm on PATH (node: {node}, npm: {npm})")
    pkg = os.path.join(KINESALITE_DIR, "node_modules", "kinesalite")
    if not os.path.exists(os.path.join(pkg, "index.js")):
        cmd = [npm, "install", "--prefix", KINESALITE_DIR, "--no-audit", "--no-fund", "--no-save", KINESALITE]
        try:
            os.makedirs(KINESALITE_DIR, exist_ok=True)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"`{' '.join(cmd)}` failed: {e}")
        if r.returncode != 0 or not os.path.exists(os.path.join(pkg, "index.js")):
            pytest.skip(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {(r.stderr or r.stdout)[-800:]}")
    try:
        r = subprocess.run([node, "-e", "require(process.argv[1])", pkg], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"kinesalite in {pkg} does not load under {node}: {e}")
    if r.returncode != 0:
        pytest.skip(f"kinesalite in {pkg} does not load under {node}: {r.stderr[-800:]}")
    return node, pkg


def _servers():
    out = [pytest.param("fastkin serve", id="fastkin-serve")]
    import importlib.util
    if importlib.util.find_spec("flask") is not None:     # moto's server needs it
        out.append(pytest.param("moto server", id="moto-server"))
    else:
        out.append(pytest.param("moto server", id="moto-server",
                                marks=pytest.mark.skip(reason="moto's server needs moto[server] (flask)")))
    out.append(pytest.param("kinesalite", id="kinesalite"))  # skipped by its fixture when it cannot be had
    return out


def _active(c, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while c.describe_stream_summary(StreamName="s")["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise RuntimeError("stream 's' did not become ACTIVE")
        time.sleep(0.05)


HTTP_ROUNDS = 3


@pytest.mark.benchmark(group=G_HTTP)
@pytest.mark.parametrize("server", _servers())
@pytest.mark.parametrize("op", ["PutRecord", "PutRecords", "GetRecords"])
def test_http(benchmark, server, op, batch, request):
    port = _free_port()
    if server == "fastkin serve":
        cmd = [sys.executable, "-m", "fastkin", "serve", "--port", str(port), "--no-quotas"]
    elif server == "moto server":
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    else:
        node, pkg = request.getfixturevalue("kinesalite")
        cmd = [node, "-e", KINESALITE_JS, pkg, str(port)]
    p = _start(cmd, port)
    try:
        c = _client(endpoint_url=f"http://127.0.0.1:{port}")
        c.create_stream(StreamName="s", ShardCount=1)
        _active(c)
        calls = {"PutRecord": 100, "PutRecords": 10, "GetRecords": 1}[op]
        per_call = {"PutRecord": 1, "PutRecords": 500, "GetRecords": 10_000}[op]
        if op == "GetRecords":
            for _ in range(20):
                assert c.put_records(StreamName="s", Records=batch)["FailedRecordCount"] == 0   # 10,000 records

            def setup():     # untimed, but its GetShardIterator is in the server's CPU figure
                it = c.get_shard_iterator(StreamName="s", ShardId="shardId-000000000000",
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                return (it,), {}

            def run(it):
                out = c.get_records(ShardIterator=it, Limit=10_000)
                assert len(out["Records"]) == 10_000
        else:
            setup = None

            def run():
                for i in range(calls):
                    if op == "PutRecord":
                        c.put_record(StreamName="s", Data=b"x" * 100, PartitionKey=f"key-{i}")
                    else:
                        assert c.put_records(StreamName="s", Records=batch)["FailedRecordCount"] == 0

        cpu0 = _cpu_seconds(p.pid)
        benchmark.pedantic(run, setup=setup, rounds=HTTP_ROUNDS, iterations=1, warmup_rounds=1)
        cpu = _cpu_seconds(p.pid) - cpu0
    finally:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    cpu_ms = 1000 * cpu / (calls * (HTTP_ROUNDS + 1))         # rounds + 1 warm-up
    rate = report(benchmark, scenario=f"{op} over HTTP", impl=server, calls=calls,
                  records=calls * per_call, unit="records/s", server_cpu_ms_per_call=cpu_ms)
    _note(benchmark, f"{G_HTTP}: {op}", server, rate, "records/s", server_cpu_ms_per_call=cpu_ms)

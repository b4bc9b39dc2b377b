"""The boto3 drop-in, end to end: each test of tests/boto runs in-process (mock_kinesis) and over HTTP
(fastkin serve on a loopback port), both on a virtual clock, unless it is marked for one mode."""
from __future__ import annotations

import datetime as _dt

import boto3
import pytest
from botocore.config import Config

import fastkin
from fastkin.wire.http import ServerThread

START = 1_700_000_000.0
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
_SESSION = boto3.session.Session()      # one session: loading botocore's models once keeps the suite fast


class Harness:
    """A boto3 Kinesis client answered by a fresh engine on a virtual clock, in one of the two modes."""

    def __init__(self, mode: str, engine: fastkin.Engine, url: str | None = None) -> None:
        self.mode = mode
        self.engine = engine
        self.clock = engine.clock
        self.url = url
        self.client = self.new_client()

    def new_client(self, config: Config | None = NO_RETRY, region: str = "us-east-1", **kw):
        kw.setdefault("aws_access_key_id", "testing")
        kw.setdefault("aws_secret_access_key", "testing")
        if self.url is not None:
            kw["endpoint_url"] = self.url
        return _SESSION.client("kinesis", region_name=region, config=config, **kw)

    def stream(self, name: str = "s", shards: int = 1) -> str:
        self.client.create_stream(StreamName=name, ShardCount=shards)
        return self.client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


@pytest.fixture(scope="session")
def http_server():
    with ServerThread(port=0) as srv:
        yield srv


@pytest.fixture(params=["mock", "server"])
def kin(request, http_server):
    clock = fastkin.VirtualClock(start=START)
    engine = fastkin.Engine(clock=clock)
    if request.param == "mock":
        with fastkin.mock_kinesis(engine=engine):
            yield Harness("mock", engine)
    else:
        http_server.app.reset(engine)
        try:
            yield Harness("server", engine, http_server.url)
        finally:
            http_server.app.reset()


@pytest.fixture
def mock_kin():
    clock = fastkin.VirtualClock(start=START)
    engine = fastkin.Engine(clock=clock)
    with fastkin.mock_kinesis(engine=engine):
        yield Harness("mock", engine)


@pytest.fixture
def shape_ok():
    """check_shape(shape, value): assert a response matches botocore's output shape."""
    return check_shape


# -- botocore output-shape check ---------------------------------------------------------------

def check_shape(shape, value, path: str = "$") -> None:
    """Assert ``value`` is what botocore's parser produces for ``shape``: right Python types, known and
    required members only."""
    t = shape.type_name
    if t == "structure":
        assert isinstance(value, dict), f"{path}: {type(value).__name__} is not a structure"
        for name in shape.required_members:
            assert name in value, f"{path}: required member {name} missing"
        for k, v in value.items():
            if k == "ResponseMetadata" and path == "$":
                continue
            assert k in shape.members, f"{path}: unknown member {k}"
            check_shape(shape.members[k], v, f"{path}.{k}")
    elif t == "list":
        assert isinstance(value, list), f"{path}: not a list"
        for i, v in enumerate(value):
            check_shape(shape.member, v, f"{path}[{i}]")
    elif t == "map":
        assert isinstance(value, dict), f"{path}: not a map"
        for k, v in value.items():
            check_shape(shape.key, k, f"{path}.key")
            check_shape(shape.value, v, f"{path}[{k}]")
    elif t == "string":
        assert isinstance(value, str), f"{path}: {value!r} is not a string"
        if shape.enum:
            assert value in shape.enum, f"{path}: {value!r} not in {shape.enum}"
    elif t in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: {value!r} is not an integer"
    elif t == "boolean":
        assert isinstance(value, bool), f"{path}: {value!r} is not a boolean"
    elif t == "timestamp":
        assert isinstance(value, _dt.datetime) and value.tzinfo is not None, f"{path}: {value!r} is not a timestamp"
    elif t == "blob":
        assert isinstance(value, bytes), f"{path}: {value!r} is not bytes"
    else:  # pragma: no cover
        raise AssertionError(f"{path}: unexpected shape type {t}")

"""Queue tests: the Engine API on both cores (the root conftest's ``engine``), and boto3 in both transports."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.config import Config

import fastkin
from fastkin.wire.http import ServerThread

START = 1_700_000_000.0
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
_SESSION = boto3.session.Session()
MODEL = botocore.session.get_session().get_service_model("kinesis")
_spec = importlib.util.spec_from_file_location("_boto_conftest", Path(__file__).parents[1] / "boto" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_boto_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_boto_conftest)


def check_output(op: str, out: dict) -> None:
    """Assert a boto3 response matches the operation's output shape in the newest botocore."""
    body = {k: v for k, v in out.items() if k != "ResponseMetadata"}
    shape = MODEL.operation_model(op).output_shape
    if shape is None:
        assert body == {}
    else:
        _boto_conftest.check_shape(shape, body)


class Kin:
    """A boto3 client on a fresh engine (virtual clock), in-process or over HTTP."""

    def __init__(self, mode: str, engine: fastkin.Engine, url: str | None = None) -> None:
        self.mode = mode
        self.engine = engine
        self.clock = engine.clock
        kw = {"endpoint_url": url} if url else {}
        self.client = _SESSION.client("kinesis", region_name="us-east-1", config=NO_RETRY,
                                      aws_access_key_id="testing", aws_secret_access_key="testing", **kw)

    def stream(self, name: str = "s") -> str:
        self.client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        return self.client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


@pytest.fixture(scope="session")
def http_server():
    with ServerThread(port=0) as srv:
        yield srv


@pytest.fixture(params=["mock", "server"])
def kin(request, http_server):
    engine = fastkin.Engine(clock=fastkin.VirtualClock(start=START))
    if request.param == "mock":
        with fastkin.mock_kinesis(engine=engine):
            yield Kin("mock", engine)
    else:
        http_server.app.reset(engine)
        try:
            yield Kin("server", engine, http_server.url)
        finally:
            http_server.app.reset()


@pytest.fixture
def shape_ok():
    return check_output


@pytest.fixture
def od(engine):
    """(engine, stream ARN) of an on-demand stream with 4 shards."""
    engine.create_stream("s")
    return engine, engine.stream("s").arn

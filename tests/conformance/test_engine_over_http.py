"""The engine-level conformance rows (test_engine_behaviour.ERROR_ROWS) again over the wire: each row's Engine call
is turned into its Kinesis operation and members and sent to the ASGI app in JSON 1.1 and in CBOR; the answer must be
the same error code and exact message with AWS's status, and nothing the engine shows may change. The property test
sends random invalid control-plane requests over both encodings and checks that state never changes."""
from __future__ import annotations

import base64
import datetime as dt
import inspect
import json

import cbor2
import pytest
from asgi import asgi_request
from botocore import xform_name
from hypothesis import HealthCheck, given, settings, strategies as st
from test_engine_behaviour import _INVALID, ERROR_ROWS, S0, _fill, _snapshot

import fastkin
from fastkin.wire.http import KinesisApp
from fastkin.wire.model import cbor_loads, service_model
from fastkin.wire.service import _ARG_ALIASES, IMPLEMENTED
from fastkin.wire.sigv4 import placeholder_auth

JSON_CT = "application/x-amz-json-1.1"
CBOR_CT = "application/x-amz-cbor-1.1"
MODEL = service_model()
OPERATIONS = {xform_name(op): op for op in IMPLEMENTED}


def members_of(method: str) -> tuple[str, dict[str, str]]:
    """(operation, snake_case argument -> member) for an Engine method."""
    op = OPERATIONS[method]
    shape = MODEL.operation_model(op).input_shape
    names = {}
    for m in shape.members:
        arg = xform_name(m)
        names[_ARG_ALIASES.get(arg, arg)] = m
    return op, names


def encode(value, cbor: bool):
    if isinstance(value, dt.datetime):
        secs = value.timestamp()
        return cbor2.CBORTag(1, round(secs * 1000)) if cbor else secs
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) if cbor else base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: encode(v, cbor) for k, v in value.items()}
    if isinstance(value, list):
        return [encode(v, cbor) for v in value]
    return value


def request(method: str, kwargs: dict, cbor: bool) -> tuple[str, dict]:
    """The wire request an Engine call stands for: members by name, PutRecords' entries as dicts, and the
    Engine's defaults for members the model requires (the Engine takes them as keyword defaults)."""
    op, names = members_of(method)
    unknown = set(kwargs) - set(names)
    if unknown:
        pytest.skip(f"{method} arguments with no wire member: {sorted(unknown)}")
    kwargs = dict(kwargs)
    if "records" in kwargs:
        kwargs["records"] = [dict(zip(("Data", "PartitionKey", "ExplicitHashKey"), r)) for r in kwargs["records"]]
    required = MODEL.operation_model(op).input_shape.required_members
    for arg, member in names.items():
        default = inspect.signature(getattr(fastkin.Engine, method)).parameters.get(arg)
        if member in required and arg not in kwargs and default is not None and default.default is not None:
            kwargs[arg] = default.default
    return op, {names[k]: encode(v, cbor) for k, v in kwargs.items() if v is not None}


def call(app, op: str, params: dict, cbor: bool) -> tuple[int, dict]:
    body = cbor2.dumps(params) if cbor else json.dumps(params).encode()
    headers = {"content-type": CBOR_CT if cbor else JSON_CT, "x-amz-target": f"Kinesis_20131202.{op}",
               **placeholder_auth()}
    status, _, payload = asgi_request(app, "POST", "/", headers, body)
    return status, (cbor_loads(payload) if cbor else json.loads(payload)) if payload else {}


def new_engine():
    return fastkin.Engine(clock=fastkin.VirtualClock(start=1_700_000_000.0))


@pytest.mark.parametrize("cbor", [False, True], ids=["json", "cbor"])
@pytest.mark.parametrize("row", ERROR_ROWS, ids=[r[0] for r in ERROR_ROWS])
def test_error_row_over_http(row, cbor):
    _, setup, method, kwargs, cls, message = row
    engine = new_engine()
    setup(engine)
    app = KinesisApp(engine)
    before = _snapshot(engine)
    op, params = request(method, _fill(engine, kwargs), cbor)
    status, doc = call(app, op, params, cbor)
    assert (status, doc.get("__type")) == (cls.status, cls.__name__), doc
    if message is not None:
        assert doc.get("message") == message
    assert _snapshot(engine) == before


def test_most_rows_reach_the_wire():
    runnable = 0
    for _, _, method, kwargs, _, _ in ERROR_ROWS:
        _, names = members_of(method)
        runnable += set(kwargs) <= set(names)
    assert runnable >= 0.9 * len(ERROR_ROWS)


def test_create_stream_default_over_http():
    engine = new_engine()
    app = KinesisApp(engine)
    for cbor in (False, True):
        name = f"od-{int(cbor)}"
        assert call(app, "CreateStream", {"StreamName": name}, cbor)[0] == 200
        status, doc = call(app, "DescribeStreamSummary", {"StreamName": name}, cbor)
        summary = doc["StreamDescriptionSummary"]
        assert (summary["StreamModeDetails"], summary["OpenShardCount"]) == ({"StreamMode": "ON_DEMAND"}, 4)
    status, doc = call(app, "PutRecord", {"StreamName": "od-0", "Data": base64.b64encode(b"x").decode(),
                                          "PartitionKey": "k", "ExplicitHashKey": "0"}, False)
    assert status == 200
    it = call(app, "GetShardIterator", {"StreamName": "od-0", "ShardId": S0, "ShardIteratorType": "TRIM_HORIZON"},
              False)[1]["ShardIterator"]
    status, doc = call(app, "GetRecords", {"ShardIterator": f'"{it}"'}, False)          # quoted, as AWS accepts
    assert status == 200 and [base64.b64decode(r["Data"]) for r in doc["Records"]] == [b"x"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(_INVALID, min_size=1, max_size=4), cbor=st.booleans())
def test_invalid_requests_over_http_change_nothing(requests, cbor):
    engine = new_engine()
    engine.create_stream("s", shard_count=2)
    engine.create_stream("od", stream_mode_details={"StreamMode": "ON_DEMAND"})
    app = KinesisApp(engine)
    before = _snapshot(engine)
    for method, kwargs in requests:
        op, names = members_of(method)
        params = {names[k]: encode(v, cbor) for k, v in kwargs.items()}
        status, doc = call(app, op, params, cbor)
        assert 400 <= status < 500, doc
        assert _snapshot(engine) == before

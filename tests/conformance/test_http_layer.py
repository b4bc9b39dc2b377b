"""AWS's HTTP layer around the operations (facts recorded against Kinesis by kinesalite's REMOTE=1 tests):
request ids, CORS, non-POST requests, content types, the order of target, body and authentication checks.

Rows drive the in-process ASGI app; one test sends a CORS preflight and a cross-origin POST over a socket."""
from __future__ import annotations

import base64
import json
import re
import uuid

import cbor2
import httpx
import pytest
from asgi import asgi_request

import fastkin
from fastkin.wire.http import KinesisApp, ServerThread
from fastkin.wire.sigv4 import placeholder_auth

JSON_CT = "application/x-amz-json-1.1"
CBOR_CT = "application/x-amz-cbor-1.1"
LIST = {"X-Amz-Target": "Kinesis_20131202.ListStreams"}
AUTH = placeholder_auth()
JSON_POST = {**LIST, "Content-Type": JSON_CT}
MISSING_XML = (b"<MissingAuthenticationTokenException>\n  <Message>Missing Authentication Token</Message>\n"
               b"</MissingAuthenticationTokenException>\n")
DENIED_XML = (b"<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized"
              b"</Message>\n</AccessDeniedException>\n")
MISSING_JSON = {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"}
EXPOSE = "x-amz-request-id, x-amz-id-2"
ORIGIN = {"Origin": "https://app.example"}
ASKED = "content-type,x-amz-target,authorization"
INCOMPLETE_X = ("Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' "
                "parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires "
                "existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=X")


@pytest.fixture(scope="module")
def app():
    return KinesisApp(clock=fastkin.VirtualClock(start=1_700_000_000.0))


def request(app, method: str, path: str, headers: dict, body: bytes = b"", query: bytes = b""):
    return asgi_request(app, method, path, headers, body, query)


def _check_common(head: dict, payload: bytes) -> None:
    uuid.UUID(head["x-amzn-requestid"])
    assert head["content-length"] == str(len(payload))


# (method, path, request headers, body) -> (status, headers present (value or ... for any), headers absent, body)
ROWS = [
    # non-POST: 403 XML, no Content-Type; the body depends on an Authorization header only
    ("GET", "/", {}, b"", 403, {}, ["content-type"], MISSING_XML),
    ("GET", "/", AUTH, b"", 403, {}, ["content-type"], DENIED_XML),
    ("GET", "/anything", {**LIST, "Content-Type": JSON_CT}, b"{}", 403, {}, ["content-type"], MISSING_XML),
    ("PUT", "/", {}, b"{}", 403, {}, ["content-type"], MISSING_XML),
    ("PUT", "/", AUTH, b"{}", 403, {}, ["content-type"], DENIED_XML),
    ("OPTIONS", "/", {}, b"", 403, {}, ["content-type", "access-control-allow-origin"], MISSING_XML),
    ("OPTIONS", "/", AUTH, b"", 403, {}, ["content-type"], DENIED_XML),
    ("PATCH", "/", AUTH, b"", 403, {}, ["content-type"], DENIED_XML),
    # DELETE: AWS resets the connection; ASGI cannot, so it answers as GET does
    ("DELETE", "/", {}, b"", 403, {}, ["content-type"], MISSING_XML),
    ("DELETE", "/", AUTH, b"", 403, {}, ["content-type"], DENIED_XML),
    # the health check stays, without authentication
    ("GET", "/health", {}, b"", 200, {"content-type": "application/json"}, [], None),
    # POST without Kinesis's content type: 403 XML whatever the target
    ("POST", "/", {**LIST, **AUTH}, b"{}", 403, {}, ["content-type"], DENIED_XML),
    ("POST", "/", {**LIST}, b"{}", 403, {}, ["content-type"], MISSING_XML),
    ("POST", "/", {**AUTH}, b"", 403, {}, ["content-type"], DENIED_XML),
    ("POST", "/", {**LIST, **AUTH, "Content-Type": "application/x-amz-json-1.0"}, b"{}", 403, {}, ["content-type"],
     DENIED_XML),
    ("POST", "/", {**AUTH, "Content-Type": "text/plain"}, b"{}", 403, {}, ["content-type"], DENIED_XML),
    # JSON POSTs: empty body, malformed body and unknown target are answered before authentication
    ("POST", "/", JSON_POST, b"", 400, {"content-type": JSON_CT}, [], {"__type": "SerializationException"}),
    ("POST", "/", {"Content-Type": JSON_CT}, b"", 400, {}, [], {"__type": "UnknownOperationException"}),
    ("POST", "/", JSON_POST, b"[1]", 400, {}, [], {"__type": "SerializationException"}),
    ("POST", "/", {"Content-Type": JSON_CT, "X-Amz-Target": "Kinesis_20131202.ListStream"}, b"{}", 400, {}, [],
     {"__type": "UnknownOperationException"}),
    ("POST", "/", {"Content-Type": JSON_CT}, b"{}", 400, {}, [], {"__type": "UnknownOperationException"}),
    # then authentication
    ("POST", "/", JSON_POST, b"{}", 400, {"content-type": JSON_CT,
                                          "x-amzn-errortype": "MissingAuthenticationTokenException"}, [],
     MISSING_JSON),
    ("POST", "/any/path", JSON_POST, b"{}", 400, {}, [], MISSING_JSON),
    ("POST", "/", {**JSON_POST, "Authorization": "X"}, b"{}", 400, {}, [],
     {"__type": "IncompleteSignatureException", "message": INCOMPLETE_X}),
    ("POST", "/", {**JSON_POST, "Authorization": AUTH["Authorization"]}, b"{}", 400, {}, [],
     {"__type": "IncompleteSignatureException", "message": "Authorization header requires existence of either a "
      "'X-Amz-Date' or a 'Date' header. Authorization=" + AUTH["Authorization"]}),
    ("POST", "/", {**JSON_POST, **AUTH}, b"{}", 200, {"content-type": JSON_CT}, ["x-amzn-errortype"],
     {"StreamNames": [], "HasMoreStreams": False, "StreamSummaries": []}),
    ("POST", "/", {**JSON_POST, "Authorization": AUTH["Authorization"], "Date": "Wed, 01 Jan 2025 00:00:00 GMT"},
     b"{}", 200, {}, [], {"StreamNames": [], "HasMoreStreams": False, "StreamSummaries": []}),
    # CBOR: the same answers in CBOR
    ("POST", "/", {**LIST, "Content-Type": CBOR_CT}, cbor2.dumps({}), 400, {"content-type": CBOR_CT}, [],
     MISSING_JSON),
    ("POST", "/", {**LIST, "Content-Type": CBOR_CT}, b"", 400, {}, [], {"__type": "SerializationException"}),
    ("POST", "/", {**LIST, **AUTH, "Content-Type": CBOR_CT}, cbor2.dumps({}), 200, {"content-type": CBOR_CT}, [],
     {"StreamNames": [], "HasMoreStreams": False, "StreamSummaries": []}),
    # CORS on ordinary requests: allow any origin, expose AWS's recorded list; a preflight needs no auth
    ("POST", "/", {**JSON_POST, **AUTH, **ORIGIN}, b"{}", 200,
     {"access-control-allow-origin": "*", "access-control-expose-headers": EXPOSE}, [], ...),
    ("POST", "/", {**JSON_POST, **ORIGIN}, b"{}", 400,
     {"access-control-allow-origin": "*", "access-control-expose-headers": EXPOSE}, [], MISSING_JSON),
    ("GET", "/", ORIGIN, b"", 403, {"access-control-allow-origin": "*", "access-control-expose-headers": EXPOSE},
     ["content-type"], MISSING_XML),
    ("OPTIONS", "/", {**ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": ASKED},
     b"", 200, {"access-control-allow-origin": "*", "access-control-max-age": "172800", "content-length": "0",
                "access-control-allow-methods": "POST", "access-control-allow-headers": ASKED},
     ["x-amz-id-2", "content-type", "access-control-expose-headers"], b""),
    ("OPTIONS", "/", ORIGIN, b"", 200, {"access-control-allow-origin": "*", "access-control-max-age": "172800"},
     ["x-amz-id-2", "access-control-allow-methods", "access-control-allow-headers",
      "access-control-expose-headers"], b""),
]


@pytest.mark.parametrize("method, path, headers, body, status, present, absent, expected", ROWS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(ROWS)])
def test_http_layer(app, method, path, headers, body, status, present, absent, expected):
    got_status, head, payload = request(app, method, path, headers, body)
    assert got_status == status
    _check_common(head, payload)
    for name, value in present.items():
        assert head.get(name) == value, name
    for name in absent:
        assert name not in head, name
    preflight = method == "OPTIONS" and "Origin" in headers
    assert ("x-amz-id-2" in head) != preflight
    if not preflight:
        assert len(base64.b64decode(head["x-amz-id-2"], validate=True)) == 72
    if expected is None or expected is ...:
        return
    if isinstance(expected, bytes):
        assert payload == expected
    else:
        doc = cbor2.loads(payload) if head.get("content-type") == CBOR_CT else json.loads(payload)
        assert doc == expected


def test_query_string_authentication(app):
    full = (b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20250101%2Feu-west-1%2Fkinesis%2Faws4_request"
            b"&X-Amz-Signature=" + b"0" * 64 + b"&X-Amz-SignedHeaders=host&X-Amz-Date=20250101T000000Z")
    status, _, payload = request(app, "POST", "/", JSON_POST, b"{}", full)
    assert status == 200
    status, _, payload = request(app, "POST", "/", JSON_POST, b"{}", b"X-Amz-Algorithm=AWS4-HMAC-SHA256")
    assert (status, json.loads(payload)) == (400, {"__type": "IncompleteSignatureException", "message":
        "AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string parameters must include "
        "'X-Amz-Signature'. AWS query-string parameters must include 'X-Amz-SignedHeaders'. AWS query-string "
        "parameters must include 'X-Amz-Date'. Re-examine the query-string parameters."})
    status, _, payload = request(app, "POST", "/", {**JSON_POST, **AUTH}, b"{}", b"X-Amz-Algorithm=x")
    assert (status, json.loads(payload)) == (400, {"__type": "InvalidSignatureException", "message":
        "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."})
    status, _, payload = request(app, "POST", "/", JSON_POST, b"{}", b"X-Amz-Credential=a&X-Amz-Signature=b")
    assert (status, json.loads(payload)) == (400, MISSING_JSON)


def test_no_auth_check_accepts_unsigned_requests():
    app = KinesisApp(clock=fastkin.VirtualClock(start=1_700_000_000.0), auth_check=False)
    status, _, payload = request(app, "POST", "/", JSON_POST, b"{}")
    assert (status, json.loads(payload)["StreamNames"]) == (200, [])
    status, _, payload = request(app, "GET", "/", {})       # the HTTP layer's other answers are unchanged
    assert (status, payload) == (403, MISSING_XML)


def test_each_request_id_is_new(app):
    heads = [request(app, "POST", "/", {**JSON_POST, **AUTH}, b"{}")[1] for _ in range(3)]
    assert len({h["x-amzn-requestid"] for h in heads}) == len({h["x-amz-id-2"] for h in heads}) == 3


def test_cors_preflight_and_cross_origin_post_over_a_socket():
    with ServerThread(port=0) as srv, httpx.Client(timeout=10) as c:
        r = c.options(srv.url + "/", headers={**ORIGIN, "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": "x-amz-target,content-type"})
        assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "0")
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["access-control-allow-methods"] == "POST"
        assert r.headers["access-control-allow-headers"] == "x-amz-target,content-type"
        assert r.headers["access-control-max-age"] == "172800"
        assert "x-amz-id-2" not in r.headers and re.fullmatch(r"[0-9a-f-]{36}", r.headers["x-amzn-requestid"])
        r = c.post(srv.url + "/", content=b"{}", headers={**JSON_POST, **AUTH, **ORIGIN})
        assert (r.status_code, r.json()["StreamNames"]) == (200, [])
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["access-control-expose-headers"] == EXPOSE
        assert len(base64.b64decode(r.headers["x-amz-id-2"])) == 72

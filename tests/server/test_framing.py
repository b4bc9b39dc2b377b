"""HTTP/1.1 request framing on a raw socket: keep-alive, pipelining, bodies in many pieces, chunked bodies,
Expect: 100-continue, Connection: close, HTTP/1.0, malformed requests, and the size cap (413) in AWS's shape.
Every answer is checked whole (status line, Content-Length, request id, JSON body)."""
from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from rawhttp import Conn, check_answer, chunked, head, request

MISSING = {"__type": "ResourceNotFoundException", "message": "Stream nope under account 123456789012 not found."}
LIMITED = json.dumps({"Limit": 5}).encode()          # a body of another size than "{}"
CHUNKED = [("Transfer-Encoding", "chunked")]


def address(s) -> tuple[str, int]:
    return s.host, s.port


def check_missing(resp) -> None:
    check_answer(resp, 400, error="ResourceNotFoundException")
    assert resp.json() == MISSING


def test_keep_alive_serves_several_requests_on_one_connection(srv):
    ids = set()
    with Conn(address(srv)) as c:
        for body in (b"{}", LIMITED, b"{}", b'{"StreamName": "nope"}', b"{}"):
            op = "DescribeStream" if b"nope" in body else "ListStreams"
            c.send(request(op, body))
            resp = c.read_response()
            if op == "DescribeStream":
                check_missing(resp)                     # an error answer keeps the connection open
            else:
                check_answer(resp)
            ids.add(resp.header("x-amzn-requestid"))
    assert len(ids) == 5


def test_pipelined_requests_are_answered_in_order(srv):
    with Conn(address(srv)) as c:
        c.send(request("ListStreams", LIMITED) + request("DescribeStream", b'{"StreamName":"nope"}') + request())
        check_answer(c.read_response())
        check_missing(c.read_response())
        check_answer(c.read_response())
        c.send(request())                               # and the connection goes on
        check_answer(c.read_response())


def test_a_request_sent_a_byte_at_a_time(srv):
    data = request("ListStreams", b'{"Limit": 5' + b" " * 200 + b"}")
    with Conn(address(srv)) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.001)                       # separate segments, so the server reads pieces
        check_answer(c.read_response())


@pytest.mark.parametrize("size, extension", [(1, ""), (7, ""), (4, ";name=value")])
def test_chunked_request_bodies(srv, size, extension):
    with Conn(address(srv)) as c:
        c.send(head(headers=CHUNKED) + chunked(LIMITED, size, extension=extension))
        check_answer(c.read_response())
        c.send(head(headers=CHUNKED) + chunked(b"{}", 1) + request())       # a chunked body, then pipelined
        check_answer(c.read_response())
        check_answer(c.read_response())


def test_expect_100_continue(srv):
    with Conn(address(srv), timeout=5) as c:
        c.send(head(length=len(LIMITED), headers=[("Expect", "100-continue")]))
        interim = c.read_response()                     # before any body byte is sent
        assert (interim.version, interim.status, interim.body) == ("HTTP/1.1", 100, b"")
        c.send(LIMITED)
        check_answer(c.read_response())
        c.send(request())
        check_answer(c.read_response())


def test_connection_close_is_honoured(srv):
    with Conn(address(srv), timeout=5) as c:
        c.send(request(headers=[("Connection", "close")]))
        resp = c.read_response()
        check_answer(resp)
        assert "close" in resp.header("connection").lower()
        assert c.closed_within(5)[0] == "eof"


def test_http10_without_keep_alive_is_closed_after_the_answer(srv):
    with Conn(address(srv), timeout=5) as c:
        c.send(request(version="HTTP/1.0"))
        resp = c.read_response()
        check_answer(resp, versions=("HTTP/1.0", "HTTP/1.1"))      # a server may answer in 1.0 or in its 1.1
        assert c.closed_within(5)[0] == "eof"


H = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\n"
     b"X-Amz-Target: Kinesis_20131202.ListStreams\r\n")
MALFORMED = {
    "garbage-request-line": b"GARBAGE\r\n\r\n",
    "no-spaces-in-request-line": b"POST/HTTP/1.1\r\n\r\n",
    "header-without-colon": H + b"NoColonHere\r\nContent-Length: 2\r\n\r\n{}",
    "space-in-header-name": H + b"Bad Header: y\r\nContent-Length: 2\r\n\r\n{}",
    "nul-in-header-value": H + b"X-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
    "content-length-not-a-number": H + b"Content-Length: abc\r\n\r\n{}",
    "content-length-negative": H + b"Content-Length: -1\r\n\r\n{}",
    "two-content-lengths": H + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "bad-chunk-size": H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_gets_400_and_a_close(srv, capfd, data):
    with Conn(address(srv), timeout=5) as c:
        c.send(data)
        resp = c.read_response()
        assert (resp.version, resp.status) == ("HTTP/1.1", 400)
        assert resp.header("content-length") == str(len(resp.body))
        assert c.closed_within(5)[0] == "eof"
    with Conn(address(srv)) as c:                       # the server goes on serving
        c.send(request())
        check_answer(c.read_response())
    assert "Traceback" not in capfd.readouterr().err


def test_an_unknown_transfer_coding_is_refused_and_closed(srv):
    with Conn(address(srv), timeout=5) as c:
        c.send(H + b"Transfer-Encoding: gzip\r\n\r\n{}")
        resp = c.read_response()
        assert resp.status in (400, 501)                # RFC 9112 6.1: 501 for a coding the server does not know
        assert resp.header("content-length") == str(len(resp.body))
        assert c.closed_within(5)[0] == "eof"


# -- these need the new server (issue 13) ----------------------------------------------------------------

def test_a_protocol_error_carries_a_request_id(new_server):
    s = new_server()
    with Conn(address(s), timeout=5) as c:
        c.send(MALFORMED["garbage-request-line"])
        resp = c.read_response()
        assert (resp.status, resp.header("content-length")) == (400, str(len(resp.body)))
        assert resp.header("x-amzn-requestid")
        assert c.closed_within(5)[0] == "eof"


def test_content_length_and_chunked_together_close_after_the_answer(new_server):
    # RFC 9112 6.3: reject, or read by Transfer-Encoding alone; either way close after answering (smuggling)
    s = new_server()
    with Conn(address(s), timeout=5) as c:
        c.send(H + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        resp = c.read_response()
        if resp.status == 200:
            check_answer(resp)
        else:
            assert (resp.status, resp.header("content-length")) == (400, str(len(resp.body)))
        assert c.closed_within(5)[0] == "eof"


def too_large(resp) -> str:
    """Check a 413 in AWS's error shape; return its code (AWS's front end sends a bare 413: no code to copy)."""
    code = resp.json().get("__type")
    assert code, resp.body
    check_answer(resp, 413, error=code)
    return code


def test_a_content_length_above_the_cap_gets_413_in_aws_shape(new_server):
    s = new_server(max_body_bytes=1000)
    with Conn(address(s), timeout=5) as c:
        c.send(head(length=1001))                       # answered on the head: no body byte sent
        too_large(c.read_response())
    with Conn(address(s), timeout=5) as c:
        c.send(head(length=5000, headers=[("Expect", "100-continue")]))
        resp = c.read_response()
        if resp.status == 100:                          # RFC 9110 10.1.1: a 100 first is allowed, the 413 still
            resp = c.read_response()                    # comes without a body byte sent
        too_large(resp)
    with Conn(address(s)) as c:
        c.send(request("ListStreams", b"{" + b" " * 998 + b"}"))      # exactly the cap is fine
        check_answer(c.read_response())


def test_a_chunked_body_growing_above_the_cap_gets_413(new_server):
    s = new_server(max_body_bytes=1000)
    with Conn(address(s), timeout=5) as c:
        c.send(head(headers=CHUNKED) + chunked(b"{" + b" " * 2000 + b"}", 100))
        too_large(c.read_response())
    with Conn(address(s)) as c:
        c.send(head(headers=CHUNKED) + chunked(b"{" + b" " * 998 + b"}", 100))
        check_answer(c.read_response())


def test_boto3_reports_the_413_code_not_the_status(new_server):
    s = new_server(max_body_bytes=1000)
    with Conn(address(s), timeout=5) as c:
        c.send(head(length=1001))
        code = too_large(c.read_response())
    k = boto3.session.Session().client("kinesis", region_name="us-east-1", endpoint_url=s.url,
                                       aws_access_key_id="x", aws_secret_access_key="y",
                                       config=Config(retries={"total_max_attempts": 1}))
    try:
        assert k.list_streams()["StreamNames"] == []
        with pytest.raises(ClientError) as ei:
            k.put_records(StreamName="s", Records=[{"Data": b"x" * 2000, "PartitionKey": "k"}])
    finally:
        k.close()
    err = ei.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert err["Error"]["Code"] == code != "413"

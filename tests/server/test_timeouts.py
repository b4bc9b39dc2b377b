"""Slow clients time out as AWS's front end would: a stalled body or head gets a 408 in AWS's error shape and
a close after about ``read_timeout``; an idle keep-alive connection is closed silently after ``idle_timeout``.
Bounds are generous (a shared machine): never sooner than half the timeout, never later than 5 s after it."""
from __future__ import annotations

import time

import pytest
from rawhttp import Conn, check_answer, head, request

READ, IDLE = 0.5, 1.0
LATE = 5.0


def address(s) -> tuple[str, int]:
    return s.host, s.port


def check_timeout(c: Conn, started: float) -> None:
    resp = c.read_response()
    waited = time.monotonic() - started
    check_answer(resp, 408, error="RequestTimeoutException")
    assert READ / 2 <= waited < READ + LATE, waited
    c.closed_within(LATE)                               # eof or reset: it is closed, after the answer


@pytest.mark.parametrize("sent", [
    pytest.param(head("PutRecord", length=100) + b'{"StreamName": ', id="in-the-body"),
    pytest.param(head("PutRecord", length=100), id="before-the-body"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Tar", id="in-a-header-line"),
    pytest.param(b"POST / HT", id="in-the-request-line"),
])
def test_a_stalled_request_gets_408_and_a_close(new_server, sent):
    s = new_server(read_timeout=READ, idle_timeout=IDLE)
    with Conn(address(s), timeout=READ + LATE) as c:
        c.send(sent)
        check_timeout(c, time.monotonic())
    with Conn(address(s)) as c:
        c.send(request())
        check_answer(c.read_response())


def test_a_stalled_chunked_body_gets_408(new_server):
    s = new_server(read_timeout=READ, idle_timeout=IDLE)
    with Conn(address(s), timeout=READ + LATE) as c:
        c.send(head(headers=[("Transfer-Encoding", "chunked")]) + b"2\r\n{")
        check_timeout(c, time.monotonic())


def test_an_idle_keep_alive_connection_is_closed_silently(new_server):
    s = new_server(read_timeout=READ, idle_timeout=IDLE)
    with Conn(address(s), timeout=IDLE + LATE) as c:
        c.send(request())
        check_answer(c.read_response())
        started = time.monotonic()
        how, waited = c.closed_within(IDLE + LATE)
        assert how == "eof"                             # no 408 and no reset: nothing was asked
        assert IDLE / 2 <= time.monotonic() - started < IDLE + LATE, waited


def test_a_pause_between_requests_is_idle_time_not_read_time(new_server):
    # longer than read_timeout, shorter than idle_timeout: the connection still serves
    s = new_server(read_timeout=READ, idle_timeout=IDLE * 4)
    with Conn(address(s)) as c:
        c.send(request())
        check_answer(c.read_response())
        time.sleep(READ * 2)
        c.send(request())
        check_answer(c.read_response())

"""Graceful shutdown of ServerThread: stop() returns within a bound, the port refuses connections afterwards,
and open connections (idle, or with a request half sent) are closed rather than left hanging."""
from __future__ import annotations

import socket
import time

from rawhttp import Conn, check_answer, head, request

from fastkin.wire.http import ServerThread

STOP_BOUND = 8.0     # seconds; hypercorn waits up to its graceful_timeout (5 s) for requests in flight


def stop_timed(stop) -> float:
    started = time.monotonic()
    stop()
    return time.monotonic() - started


def refused(addr) -> bool:
    try:
        socket.create_connection(addr, timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def answered(c: Conn) -> bool:
    """Whether bytes wait on ``c`` (False when it was closed or reset instead)."""
    c.sock.settimeout(5)
    try:
        return bool(c.sock.recv(1, socket.MSG_PEEK))
    except ConnectionResetError:
        return False


def test_stop_closes_idle_keep_alive_connections_and_the_port():
    s = ServerThread(port=0, auth_check=False, quotas=False).start()
    addr = (s.host, s.port)
    with Conn(addr) as c:
        c.send(request())
        check_answer(c.read_response())
        assert stop_timed(s.stop) < STOP_BOUND
        c.closed_within(5)
    assert refused(addr)


def test_stop_with_a_request_in_flight(new_server):
    s = new_server()
    addr = (s.host, s.port)
    with Conn(addr, timeout=10) as c:
        c.send(head("PutRecord", length=1000) + b'{"StreamName": "s", ')     # the body half sent
        time.sleep(0.1)
        assert stop_timed(lambda: new_server.stop(s)) < STOP_BOUND
        if answered(c):                                 # an answer before the close is allowed: a complete one
            resp = c.read_response()
            code = resp.json().get("__type")
            assert code and (resp.status == 408 or resp.status >= 500), (resp.status, resp.body)
            check_answer(resp, resp.status, error=code)
        c.closed_within(5)
    assert refused(addr)

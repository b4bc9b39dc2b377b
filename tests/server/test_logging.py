"""What the server tells its operator: an access line per request naming the operation and status, and a
traceback with the request id for every 500 (the client sees AWS's InternalFailure shape)."""
from __future__ import annotations

import logging
import re
import subprocess
import sys

from rawhttp import Conn, check_answer, request

from fastkin.wire import service


def test_a_failing_operation_answers_500_and_logs_the_traceback_with_the_request_id(new_server, caplog,
                                                                                     monkeypatch):
    s = new_server()

    def broken(self, operation, params, **kw):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(service.Service, "dispatch", broken)
    with caplog.at_level(logging.ERROR, logger="fastkin.wire.server"), Conn((s.host, s.port)) as c:
        c.send(request("ListStreams"))
        resp = c.read_response()
        check_answer(resp, 500, error="InternalFailure")
        assert resp.json()["message"] == "Internal service failure: ZeroDivisionError"
        monkeypatch.undo()
        c.send(request("ListStreams"))                 # the connection and the server go on
        check_answer(c.read_response())
    rid = resp.header("x-amzn-requestid")
    [rec] = [r for r in caplog.records if r.name == "fastkin.wire.server"]
    assert rid in rec.getMessage() and "ListStreams" in rec.getMessage()
    assert rec.exc_info is not None and rec.exc_info[0] is ZeroDivisionError


def test_the_access_log_names_the_operation_and_the_status():
    proc = subprocess.Popen([sys.executable, "-m", "fastkin", "serve", "--port", "0", "--access-log",
                             "--no-auth-check"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        proc.stdout.readline()                          # the environment line
        port = int(re.search(r":(\d+) over", banner).group(1))
        with Conn(("127.0.0.1", port)) as c:
            c.send(request("CreateStream", b'{"StreamName": "s", "ShardCount": 1}'))
            assert c.read_response().status == 200
            c.send(request("DescribeStream", b'{"StreamName": "missing"}'))
            check_answer(c.read_response(), 400, error="ResourceNotFoundException")
            c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            c.read_response()
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert re.fullmatch(r'127\.0\.0\.1:\d+ "POST / HTTP/1\.1" CreateStream 200 \d+\.\d\dms\n', lines[0]), lines
    assert ' DescribeStream 400 ' in lines[1], lines
    assert '"GET /health HTTP/1.1" - 200 ' in lines[2], lines

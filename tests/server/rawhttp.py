"""HTTP/1.1 by hand, for tests that must control every byte on the wire: build a Kinesis request, read one
response from a socket (status line, headers, then the body by Content-Length), check an answer completely."""
from __future__ import annotations

import json
import re
import socket
import time
import uuid
from dataclasses import dataclass

JSON_CT = "application/x-amz-json-1.1"
TARGET = "Kinesis_20131202."
EMPTY_LIST = {"StreamNames": [], "HasMoreStreams": False, "StreamSummaries": []}
STATUS_LINE = re.compile(r"(HTTP/1\.[01]) ([1-5]\d\d)(?: (.*))?")


def head(op: str = "ListStreams", *, length: int | None = None, headers: list[tuple[str, str]] | None = None,
         version: str = "HTTP/1.1") -> bytes:
    """The head of a POST to Kinesis's ``op`` (no Authorization: the servers here run with ``auth_check=False``):
    ``Content-Length: length`` unless ``length`` is None; ``headers`` come after the standard ones."""
    lines = [f"POST / {version}", "Host: 127.0.0.1", f"Content-Type: {JSON_CT}", f"X-Amz-Target: {TARGET}{op}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k}: {v}" for k, v in headers or ()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def request(op: str = "ListStreams", body: bytes = b"{}", **kw) -> bytes:
    """A whole request with its Content-Length (see head())."""
    return head(op, length=len(body), **kw) + body


def chunked(body: bytes, size: int, *, extension: str = "") -> bytes:
    """``body`` in Transfer-Encoding: chunked, ``size`` bytes a chunk (hex sizes, one extension on each)."""
    out = [b"%x%s\r\n%s\r\n" % (len(body[i:i + size]), extension.encode(), body[i:i + size])
           for i in range(0, len(body), size)]
    return b"".join(out) + b"0\r\n\r\n"


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]      # as sent (names in their case, in order)
    body: bytes

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        """The one value of ``name`` (None when absent); a header sent twice fails the test."""
        found = self.values(name)
        assert len(found) <= 1, f"{name} sent {len(found)} times: {found}"
        return found[0] if found else None

    def json(self):
        return json.loads(self.body)


class Conn:
    """One client connection with its read buffer (pipelined answers can arrive in one segment)."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed with {len(self.buf)} bytes of an answer read: {self.buf[:200]!r}")
        self.buf += chunk

    def read_response(self) -> Response:
        """The next response: the head up to the blank line, then exactly Content-Length bytes of body
        (1xx answers have none). An answer without Content-Length fails: every answer here must carry one."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        first, *lines = head.decode("latin-1").split("\r\n")
        m = STATUS_LINE.fullmatch(first)
        assert m, f"bad status line {first!r}"
        headers = []
        for line in lines:
            name, sep, value = line.partition(":")
            assert sep and name and name == name.strip(), f"bad header line {line!r}"
            headers.append((name, value.strip()))
        resp = Response(m.group(1), int(m.group(2)), m.group(3) or "", headers, b"")
        if 100 <= resp.status < 200:
            return resp
        assert resp.header("transfer-encoding") is None, "answers here are framed by Content-Length"
        length = resp.header("content-length")
        assert length is not None and length.isdigit(), f"no usable Content-Length: {headers}"
        while len(self.buf) < int(length):
            self._fill()
        resp.body, self.buf = self.buf[:int(length)], self.buf[int(length):]
        return resp

    def closed_within(self, seconds: float) -> tuple[str, float]:
        """Wait for the server to close: ("eof" or "reset", seconds waited). Bytes that arrive instead
        fail the test, and so does a connection still open after ``seconds``."""
        assert not self.buf, f"unread bytes before the close: {self.buf[:200]!r}"
        start = time.monotonic()
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return "reset", time.monotonic() - start
        except TimeoutError:
            raise AssertionError(f"the connection is still open after {seconds} s") from None
        assert data == b"", f"bytes instead of a close: {data[:200]!r}"
        return "eof", time.monotonic() - start

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_answer(resp: Response, status: int = 200, doc=EMPTY_LIST, error: str | None = None,
                 versions: tuple[str, ...] = ("HTTP/1.1",)) -> None:
    """A complete check of one answer: HTTP/1.1 status line, Content-Length equal to the body's size (the reader
    took exactly that many bytes; the next read or the close shows nothing follows), a request id, and the JSON
    body: ``doc`` exactly, or for ``error`` an AWS error shape (``__type`` and ``x-amzn-ErrorType`` both ``error``)."""
    assert resp.version in versions and resp.status == status, (resp.version, resp.status, resp.body[:300])
    assert resp.header("content-length") == str(len(resp.body))
    rid = resp.header("x-amzn-requestid")
    assert rid, f"no x-amzn-RequestId: {resp.headers}"
    uuid.UUID(rid)
    got = resp.json()
    if error is not None:
        assert resp.header("content-type") in (JSON_CT, "application/json"), resp.headers
        assert got["__type"] == error and resp.header("x-amzn-errortype") == error, (got, resp.headers)
    else:
        assert resp.header("content-type") == JSON_CT
        assert got == doc

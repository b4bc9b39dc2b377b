"""One port, every protocol: the HTTP/2 preface recognised however it is split across reads, a request whose
first bytes merely resemble it stays HTTP/1.1, and HEAD answers carry no body."""
from __future__ import annotations

import json
import socket

import h2.config
import h2.connection
import h2.events
from rawhttp import Conn, check_answer, request

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _h2_list_streams(sock: socket.socket, pieces: list[bytes]) -> dict:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    body = b"{}"
    conn.send_headers(sid, [(":method", "POST"), (":path", "/"), (":scheme", "http"), (":authority", "x"),
                            ("content-type", "application/x-amz-json-1.1"),
                            ("x-amz-target", "Kinesis_20131202.ListStreams"), ("content-length", "2")])
    conn.send_data(sid, body, end_stream=True)
    out = conn.data_to_send()
    assert out.startswith(PREFACE)
    for p in pieces:                                   # the preface in the pieces given, then the rest
        sock.sendall(p)
    sock.sendall(out[len(b"".join(pieces)):])
    data, status = b"", None
    while True:
        chunk = sock.recv(65536)
        assert chunk, "closed before the answer"
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers)[b":status"]
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
            elif isinstance(ev, h2.events.StreamEnded):
                assert status == b"200"
                return json.loads(data)
        sock.sendall(conn.data_to_send())


def test_the_http2_preface_split_across_reads(srv):
    for pieces in ([PREFACE[:1], PREFACE[1:3], PREFACE[3:]], [bytes([b]) for b in PREFACE], [PREFACE]):
        with socket.create_connection((srv.host, srv.port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            assert _h2_list_streams(s, pieces)["StreamNames"] == []


def test_a_request_sharing_the_prefaces_first_byte_is_http11(srv):
    with Conn((srv.host, srv.port)) as c:
        req = request("ListStreams")
        assert req.startswith(b"P")                    # POST and PRI share their first letter
        c.send(req[:1])
        c.send(req[1:])
        check_answer(c.read_response())


def test_head_health_has_headers_and_no_body(srv):
    with Conn((srv.host, srv.port)) as c:
        c.send(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = b""
        while raw.count(b"HTTP/1.1 200") < 2 or not raw.endswith(b"}"):
            chunk = c.sock.recv(65536)
            assert chunk
            raw += chunk
    head, rest = raw.split(b"\r\n\r\n", 1)
    assert int(dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])[b"Content-Length"]) > 0
    assert rest.startswith(b"HTTP/1.1 200")           # the HEAD answer sent no body: the GET's answer follows
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["status"] == "ok"

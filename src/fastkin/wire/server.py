"""The HTTP transport of ``fastkin serve``: HTTP/1.1 on httptools (llhttp, Node's compiled parser) and HTTP/2 on
the ``h2`` state machine, both on one asyncio event loop (uvloop when installed), on one port.

Why not a general server: an ASGI server spends more per request than the whole Kinesis work of a PutRecord
(bench/README.md, "Server benchmark": the same KinesisApp on uvicorn and granian next to this transport). Here the
parsers are compiled libraries and the glue is what a Kinesis endpoint needs: each complete request is answered
synchronously by ``KinesisApp.handle`` (the engine's work for one call is short), so an HTTP/1.1 connection's
answers keep their order, and only streamed answers (SubscribeToShard, long polls) run as tasks.

One listening socket serves every protocol: a cleartext connection whose first bytes are the HTTP/2 preface
(``PRI * HTTP/2.0``, prior knowledge, what the JavaScript SDK v3 speaks to ``http://``) becomes an HTTP/2
connection, as does an HTTP/1.1 request without a body carrying ``Upgrade: h2c`` (answered ``101`` and then on
stream 1); over TLS, ALPN chooses ``h2`` or ``http/1.1``.

Timeouts (a sweep every ``sweep`` seconds, nothing per request): a request whose headers or body make no progress
for ``read_timeout`` seconds gets ``408 RequestTimeoutException`` and its connection is closed; a connection idle
between requests for ``idle_timeout`` seconds is closed silently. A stalled upload holds nothing but its socket,
so other connections are answered as usual.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from email.utils import formatdate
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import httptools
from hpack import NeverIndexedHeaderTuple

log = logging.getLogger("fastkin.wire.server")

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_REASONS = {100: b"Continue", 101: b"Switching Protocols", 200: b"OK", 400: b"Bad Request", 403: b"Forbidden",
            404: b"Not Found", 408: b"Request Timeout", 413: b"Request Entity Too Large",
            500: b"Internal Server Error", 503: b"Service Unavailable"}
_HIGH_WATER = 4 * 1024 * 1024             # a connection's unsent answer bytes before it stops reading requests
_MAX_PIPELINE = 64                        # requests read ahead of a streamed answer before reading pauses
_LINGER = 2.0                             # seconds input is read and dropped after an early answer


class _Date:
    """The ``Date`` header, formatted once per second."""

    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = formatdate(now, usegmt=True).encode()
        return self.value


_DATE = _Date()


class Server:
    """Connections of one listening socket (or several) answered by one KinesisApp."""

    def __init__(self, app, *, read_timeout: float = 20.0, idle_timeout: float = 60.0, access_log=None,
                 sweep: float | None = None) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.access_log = access_log            # a callable(line) or None
        self.sweep = sweep if sweep is not None else max(0.05, min(1.0, read_timeout / 4, idle_timeout / 4))
        self.connections: set = set()
        self.stopping = False
        self._servers: list = []
        self._sweeper: asyncio.Task | None = None

    def protocol(self):
        return Connection(self)

    async def start(self, sock, ssl=None) -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(self.protocol, sock=sock, ssl=ssl, backlog=2048)
        self._servers.append(srv)
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.sweep)
            now = loop.time()
            for c in list(self.connections):
                c.check_timeouts(now)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, close idle connections, end streamed answers, let in-flight requests finish
        (at most ``grace`` seconds), then close what is left."""
        self.stopping = True
        for srv in self._servers:
            srv.close()
        self.app.close_subscriptions()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while True:
            for c in list(self.connections):
                if c.idle():
                    if c.h2 is not None:
                        c.h2.goaway()               # HTTP/2: say so (GOAWAY) before closing
                    else:
                        c.close()
            if not self.connections or loop.time() >= deadline:
                break
            await asyncio.sleep(0.02)
        for c in list(self.connections):
            c.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for srv in self._servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 1.0)
            except (asyncio.TimeoutError, RuntimeError):     # pragma: no cover - a transport that will not close
                pass


class Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 until the first bytes (or ALPN) say HTTP/2."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.app = server.app
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.h2: _H2 | None = None
        self.first = True
        self.pre = b""                          # the first bytes, while they could still be the HTTP/2 preface
        self.peer = ""
        # the request being read
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.reading = False                    # a request has begun and is not complete
        self.refused = False                    # the request was answered early (413): drop the rest
        # answers
        self.queue: collections.deque = collections.deque()   # complete requests waiting for a streamed answer
        self.task: asyncio.Task | None = None    # the streamed answer in progress (HTTP/1.1)
        self.closing = False
        self.last = 0.0
        self.writable: asyncio.Future | None = None
        self.paused_writing = False
        self._upgrading: tuple | None = None

    # -- asyncio -------------------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections.add(self)
        self.last = asyncio.get_running_loop().time()
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        ssl_obj = transport.get_extra_info("ssl_object")
        if ssl_obj is not None and ssl_obj.selected_alpn_protocol() == "h2":
            self.first = False
            self.h2 = _H2(self)
            self.h2.start()

    def connection_lost(self, exc) -> None:
        self.closing = True
        self.server.connections.discard(self)
        if self.task is not None:
            self.task.cancel()
        if self.h2 is not None:
            self.h2.lost()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        self.paused_writing = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused_writing = False
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        if not self.closing and len(self.queue) < _MAX_PIPELINE:
            self.transport.resume_reading()

    async def drain(self) -> None:
        if self.paused_writing and not self.closing:
            self.writable = asyncio.get_running_loop().create_future()
            await self.writable

    def data_received(self, data: bytes) -> None:
        self.last = asyncio.get_running_loop().time()
        if self.h2 is not None:
            self.h2.data_received(data)
            return
        if self.first:                          # HTTP/2 by prior knowledge starts with the preface
            data, self.pre = self.pre + data, b""
            n = min(len(data), len(H2_PREFACE))
            if data[:n] == H2_PREFACE[:n]:
                if n < len(H2_PREFACE):         # so far a prefix of it: wait for the rest
                    self.pre = data
                    return
                self.first = False
                self.h2 = _H2(self)
                self.h2.start(data)
                return
            self.first = False
        if self.refused:                        # answered early (413, 408): the rest is read and dropped
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data[exc.args[0]:] if exc.args else b"")
        except httptools.HttpParserError:
            if not self.refused:
                self._write_reply(self.app.bad_request_reply(), close=True, linger=True)

    def idle(self) -> bool:
        if self.h2 is not None:
            return self.h2.idle()
        return not self.reading and self.task is None and not self.queue

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            if self.transport is not None:
                self.transport.close()

    def linger_close(self) -> None:
        """Close after an answer sent before the request was read (413, 408, 400): send FIN and drop what the
        client still sends for a moment, so that closing with unread input (a TCP reset) cannot destroy the
        answer before the client reads it."""
        self.refused = True
        self.reading = False
        t = self.transport
        if self.closing or t is None:
            return
        if t.can_write_eof():
            t.write_eof()
            asyncio.get_running_loop().call_later(_LINGER, self.close)
        else:
            self.close()

    def check_timeouts(self, now: float) -> None:
        if self.closing or self.refused:
            return
        if self.h2 is not None:
            if self.h2.idle() and now - self.last > self.server.idle_timeout:
                self.h2.goaway()
            return
        if self.reading:
            if now - self.last > self.server.read_timeout:
                self._write_reply(self.app.timeout_reply(self.headers), close=True, linger=True)
        elif self.task is None and not self.queue and now - self.last > self.server.idle_timeout:
            self.close()

    # -- httptools callbacks -------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.reading = True
        self.url = b""
        self.headers = {}
        self.body = []
        self.size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        v = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = v if old is None else f"{old}, {v}"

    def on_headers_complete(self) -> None:
        h = self.headers
        length = h.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.app.max_body_bytes:
            self._refuse()
            return
        if h.get("expect", "").lower() == "100-continue" and self.parser.get_http_version() == "1.1":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.app.max_body_bytes:
            self._refuse()
            raise httptools.HttpParserError("body too large")   # stops the parser; the answer is written
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        self.reading = False
        if self.parser.should_upgrade():
            self._upgrading = (self.parser.get_method().decode("latin-1"), self.url, self.headers)
            return
        req = (self.parser.get_method().decode("latin-1"), self.url, self.headers,
               self.body[0] if len(self.body) == 1 else b"".join(self.body), self.parser.should_keep_alive())
        self.body = []
        if self.task is not None or self.queue:
            self.queue.append(req)
            if len(self.queue) >= _MAX_PIPELINE:
                self.transport.pause_reading()
            return
        self._answer(req)

    # -- answers -------------------------------------------------------------------------------------------
    def _refuse(self) -> None:
        """413 for a body above the cap, then close (the rest of the upload is not read)."""
        self.refused = True
        self.reading = False
        self._write_reply(self.app.too_large_reply(self.headers), close=True, linger=True)

    def _answer(self, req) -> None:
        method, url, headers, body, keep = req
        path, _, query = url.partition(b"?")
        t0 = time.perf_counter() if self.server.access_log is not None else 0.0
        reply = self.app.handle(method, path.decode("latin-1"), query, headers, body, "1.1", self.peer)
        if type(reply) is tuple:
            self._write_reply(reply, close=not keep or self.server.stopping, head=method == "HEAD")
            if self.server.access_log is not None:
                self._log(method, url, self.app.operation, reply[0], t0)
        elif reply.result is not None:
            self.task = asyncio.get_running_loop().create_task(self._deferred(reply, keep, method, url, t0))
        else:
            self.task = asyncio.get_running_loop().create_task(self._stream(reply, keep, method, url, t0))

    async def _deferred(self, reply, keep: bool, method: str, url: bytes, t0: float) -> None:
        """An answer computed later (a long poll): written as a plain answer when ready."""
        try:
            out = await reply.result()
        finally:
            reply.close()
            self.task = None
        if self.closing:
            return
        self._write_reply(out, close=not keep or self.server.stopping)
        if self.server.access_log is not None:
            self._log(method, url, reply.operation, out[0], t0)
        self._next()

    def _next(self) -> None:
        """After a task's answer: answer the requests that arrived meanwhile, and read again."""
        while self.queue and self.task is None and not self.closing:
            self._answer(self.queue.popleft())
        if not self.closing and not self.paused_writing and self.task is None:
            self.transport.resume_reading()

    def _log(self, method: str, url: bytes, op: str, status: int, t0: float) -> None:
        self.server.access_log(f'{self.peer} "{method} {url.decode("latin-1")} HTTP/1.1" {op} {status} '
                               f"{(time.perf_counter() - t0) * 1000:.2f}ms")

    def _write_reply(self, reply, close: bool = False, linger: bool = False, head: bool = False) -> None:
        status, headers, body = reply
        parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"")),
                 b"Date: ", _DATE.get(), b"\r\nContent-Length: %d\r\n" % len(body)]
        for k, v in headers:
            parts += (k, b": ", v, b"\r\n")
        if close:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        if not head:
            parts.append(body)
        self.transport.write(b"".join(parts))
        self.last = asyncio.get_running_loop().time()
        if linger:
            self.linger_close()
        elif close:
            self.close()

    async def _stream(self, reply, keep: bool, method: str, url: bytes, t0: float) -> None:
        """A streamed answer over HTTP/1.1: chunked transfer encoding, one chunk per event."""
        close = not keep
        try:
            head = [b"HTTP/1.1 %d %s\r\n" % (reply.status, _REASONS.get(reply.status, b"")), b"Date: ", _DATE.get(),
                    b"\r\n"]
            for k, v in reply.headers:
                head += (k, b": ", v, b"\r\n")
            head.append(b"Transfer-Encoding: chunked\r\n\r\n")
            self.transport.write(b"".join(head))
            async for frame in reply.frames():
                if self.closing:
                    break
                self.transport.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                await self.drain()
            if not self.closing:
                self.transport.write(b"0\r\n\r\n")
        except asyncio.CancelledError:
            reply.close()
            raise
        except Exception:  # noqa: BLE001 - a failed stream ends its connection, logged; the server goes on
            log.exception("streamed answer failed")
            close = True
        finally:
            reply.close()
            self.task = None
        if self.server.access_log is not None:
            self._log(method, url, reply.operation, reply.status, t0)
        self.last = asyncio.get_running_loop().time()
        if close or self.server.stopping:
            self.close()
            return
        self._next()

    def _upgrade(self, rest: bytes) -> None:
        """``Upgrade: h2c`` on a request without a body: 101, then HTTP/2 with that request as stream 1. Any
        other upgrade (or one with a body, which RFC 9113 lets a server answer in HTTP/1.1) is answered in
        HTTP/1.1: its header block, without the upgrade tokens, goes to a fresh parser with the bytes after it."""
        saved, self._upgrading = self._upgrading, None
        if saved is None:                        # pragma: no cover - the parser reports upgrades on completion
            self._write_reply(self.app.bad_request_reply(), close=True)
            return
        method, url, h = saved
        settings = h.get("http2-settings")
        has_body = h.get("content-length", "0") not in ("", "0") or "transfer-encoding" in h
        if h.get("upgrade", "").lower() == "h2c" and settings is not None and not has_body:
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            self.h2 = _H2(self)
            self.h2.start_upgraded(settings, method, url, h)
            if rest:
                self.h2.data_received(rest)
            return
        lines = [b"%s %s HTTP/1.1\r\n" % (method.encode("latin-1"), url)]
        for k, v in h.items():
            if k in ("upgrade", "http2-settings"):
                continue
            if k == "connection":
                v = ", ".join(t for t in (x.strip() for x in v.split(",")) if t.lower() not in ("upgrade",
                                                                                               "http2-settings"))
                if not v:
                    continue
            lines.append(f"{k}: {v}\r\n".encode("latin-1"))
        lines.append(b"\r\n")
        self.parser = httptools.HttpRequestParser(self)
        try:
            self.parser.feed_data(b"".join(lines) + rest)
        except httptools.HttpParserError:
            self._write_reply(self.app.bad_request_reply(), close=True)


_UNIQUE = frozenset({b"x-amzn-requestid", b"x-amz-id-2"})


class _Stream:
    __slots__ = ("id", "headers", "body", "size", "task", "window", "refused", "dispatched")

    def __init__(self, sid: int, headers: dict) -> None:
        self.id = sid
        self.headers = headers
        self.body: list[bytes] = []
        self.size = 0
        self.task: asyncio.Task | None = None
        self.window: asyncio.Event | None = None
        self.refused = False
        self.dispatched = False


class _H2:
    """HTTP/2 on one connection, with the h2 library's state machine: unary answers are written at once, as
    far as flow control allows (the rest when the peer opens its window); streamed answers run as tasks."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.app = conn.app
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None,
                                                                       validate_inbound_headers=False))
        self.streams: dict[int, _Stream] = {}
        self.pending: dict[int, collections.deque] = {}   # stream id -> data not yet sent (flow control)
        # Header blocks without Huffman coding: the values that differ per answer (request ids, lengths) cost
        # more to Huffman-code in Python than the bytes they save on loopback.
        self.h2.encoder.encode = functools.partial(self.h2.encoder.encode, huffman=False)  # type: ignore[method-assign]

    def start(self, data: bytes = b"") -> None:
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 256,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(16 << 20)
        self.flush()
        if data:
            self.data_received(data)

    def start_upgraded(self, settings: str, method: str, url: bytes, headers: dict) -> None:
        self.h2.initiate_upgrade_connection(settings.encode("latin-1"))
        self.flush()
        st = _Stream(1, dict(headers, **{":method": method, ":path": url.decode("latin-1")}))
        self.streams[1] = st
        self._dispatch(st)

    def idle(self) -> bool:
        return not self.streams and not self.pending

    def goaway(self) -> None:
        try:
            self.h2.close_connection()
            self.flush()
        except h2.exceptions.ProtocolError:
            pass
        self.conn.close()

    def lost(self) -> None:
        for st in list(self.streams.values()):
            if st.task is not None:
                st.task.cancel()
            if st.window is not None:
                st.window.set()
        self.streams.clear()

    def flush(self) -> None:
        out = self.h2.data_to_send()
        if out and not self.conn.closing:
            self.conn.transport.write(out)

    def data_received(self, data: bytes) -> None:
        try:
            events: list[Any] = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            self.conn.close()
            return
        for ev in events:
            t = type(ev)
            if t is h2.events.RequestReceived:
                hdrs: dict[str, str] = {}
                for k, v in ev.headers:
                    key = k.decode("latin-1").lower()
                    val = v.decode("latin-1")
                    hdrs[key] = val if key not in hdrs else f"{hdrs[key]}, {val}"
                st = _Stream(ev.stream_id, hdrs)
                self.streams[ev.stream_id] = st
                length = hdrs.get("content-length")
                if length is not None and length.isdigit() and int(length) > self.app.max_body_bytes:
                    self._refuse(st)
            elif t is h2.events.DataReceived:
                sd = self.streams.get(ev.stream_id)
                if ev.flow_controlled_length:
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if sd is not None and not sd.refused and not sd.dispatched:
                    sd.size += len(ev.data)
                    if sd.size > self.app.max_body_bytes:
                        self._refuse(sd)
                    else:
                        sd.body.append(ev.data)
            elif t is h2.events.StreamEnded:        # the request is complete (h2 reports it after its data)
                se = self.streams.get(ev.stream_id)
                if se is not None:
                    self._dispatch(se)
            elif t is h2.events.WindowUpdated:
                self._window_opened(ev.stream_id)
            elif t is h2.events.StreamReset:
                self._forget(ev.stream_id)
            elif t is h2.events.ConnectionTerminated:
                self.flush()
                self.conn.close()
                return
        self.flush()

    def _refuse(self, st: _Stream) -> None:
        st.refused = True
        self._send_reply(st, self.app.too_large_reply(st.headers))
        try:
            self.h2.reset_stream(st.id, h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.ProtocolError:
            pass

    def _forget(self, sid: int) -> None:
        st = self.streams.pop(sid, None)
        self.pending.pop(sid, None)
        if st is not None:
            if st.task is not None:
                st.task.cancel()
            if st.window is not None:
                st.window.set()

    def _dispatch(self, st: _Stream) -> None:
        if st.refused or st.dispatched:
            return
        st.dispatched = True
        h = st.headers
        method = h.pop(":method", "GET")
        path, _, query = h.pop(":path", "/").partition("?")
        if ":authority" in h and "host" not in h:
            h["host"] = h[":authority"]
        for k in [k for k in h if k[:1] == ":"]:
            del h[k]
        body = st.body[0] if len(st.body) == 1 else b"".join(st.body)
        st.body = []
        t0 = time.perf_counter() if self.conn.server.access_log is not None else 0.0
        reply = self.app.handle(method, path, query.encode("latin-1"), h, body, "2", self.conn.peer)
        if type(reply) is tuple:
            self._send_reply(st, reply)
            if self.conn.server.access_log is not None:
                self._log(method, path, self.app.operation, reply[0], t0)
        elif reply.result is not None:
            st.task = asyncio.get_running_loop().create_task(self._deferred(st, reply, method, path, t0))
        else:
            st.task = asyncio.get_running_loop().create_task(self._stream(st, reply, method, path, t0))

    async def _deferred(self, st: _Stream, reply, method: str, path: str, t0: float) -> None:
        try:
            out = await reply.result()
        finally:
            reply.close()
            st.task = None
        if st.id not in self.streams or self.conn.closing:
            return
        self._send_reply(st, out)
        self.flush()
        if self.conn.server.access_log is not None:
            self._log(method, path, reply.operation, out[0], t0)

    def _log(self, method: str, path: str, op: str, status: int, t0: float) -> None:
        self.conn.server.access_log(f'{self.conn.peer} "{method} {path} HTTP/2" {op} {status} '
                                    f"{(time.perf_counter() - t0) * 1000:.2f}ms")

    @staticmethod
    def _head(status: int, headers, length: int | None) -> list:
        """A response header block. Values unique to one answer (ids, lengths) are sent as never-indexed
        literals: entering them in the HPACK table would only evict the ones that repeat."""
        head: list = [(b":status", str(status).encode()), (b"date", _DATE.get())]
        if length is not None:
            head.append(NeverIndexedHeaderTuple(b"content-length", str(length).encode()))
        for k, v in headers:
            head.append(NeverIndexedHeaderTuple(k, v) if k in _UNIQUE else (k, v))
        return head

    def _send_reply(self, st: _Stream, reply) -> None:
        status, headers, body = reply
        try:
            self.h2.send_headers(st.id, self._head(status, headers, len(body)), end_stream=not body)
        except h2.exceptions.ProtocolError:
            self._forget(st.id)
            return
        if body:
            self.pending[st.id] = collections.deque([(body, 0, True)])
            self._send_pending(st.id)
        else:
            self.streams.pop(st.id, None)

    def _send_pending(self, sid: int) -> None:
        """Send what flow control allows of a stream's queued data."""
        q = self.pending.get(sid)
        h = self.h2
        while q:
            data, off, end = q[0]
            try:
                window = min(h.local_flow_control_window(sid), h.max_outbound_frame_size)
            except (h2.exceptions.ProtocolError, KeyError):
                self._forget(sid)
                return
            if window <= 0:
                return
            if len(data) - off > window:            # one frame's worth; the offset moves (no copy of the rest)
                h.send_data(sid, data[off:off + window])
                q[0] = (data, off + window, end)
                continue
            h.send_data(sid, data[off:] if off else data, end_stream=end)
            q.popleft()
            if end:
                self.pending.pop(sid, None)
                st = self.streams.get(sid)
                if st is not None and st.task is None:
                    self.streams.pop(sid, None)
                return
        if q is not None and not q:
            self.pending.pop(sid, None)

    def _window_opened(self, sid: int) -> None:
        for s in (list(self.pending) if sid == 0 else [sid]):
            self._send_pending(s)
        for st in (list(self.streams.values()) if sid == 0 else [self.streams.get(sid)]):
            if st is not None and st.window is not None:
                st.window.set()

    async def _stream(self, st: _Stream, reply, method: str, path: str, t0: float) -> None:
        """A streamed answer: one DATA frame (or more) per event, each sent only when the peer's window has
        room, so a slow reader pauses its own subscription and nothing else."""
        try:
            self.h2.send_headers(st.id, self._head(reply.status, reply.headers, None))
            self.flush()
            async for frame in reply.frames():
                self.pending.setdefault(st.id, collections.deque()).append((frame, 0, False))
                self._send_pending(st.id)
                self.flush()
                while self.pending.get(st.id) and st.id in self.streams and not self.conn.closing:
                    st.window = asyncio.Event()
                    await st.window.wait()
                    st.window = None
                    self._send_pending(st.id)
                    self.flush()
                if st.id not in self.streams or self.conn.closing:
                    return
            self.pending.setdefault(st.id, collections.deque()).append((b"", 0, True))
            self._send_pending(st.id)
            self.flush()
        except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failed stream is reset, logged; the connection goes on
            log.exception("streamed answer failed")
            try:
                self.h2.reset_stream(st.id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                self.flush()
            except h2.exceptions.ProtocolError:
                pass
        finally:
            reply.close()
            st.task = None
            if not self.pending.get(st.id):
                self.streams.pop(st.id, None)
            if self.conn.server.access_log is not None:
                self._log(method, path, reply.operation, reply.status, t0)


__all__ = ["Server", "Connection", "H2_PREFACE"]

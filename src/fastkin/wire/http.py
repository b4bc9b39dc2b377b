"""``fastkin serve``: the Kinesis wire protocol over HTTP. ``KinesisApp`` answers requests (``handle``; it is also
an ASGI application); fastkin.wire.server is the transport it runs on.

    python -m fastkin serve --port 4567
    aws --endpoint-url http://127.0.0.1:4567 kinesis list-streams

Protocol (as AWS speaks it): ``POST`` with ``X-Amz-Target: Kinesis_20131202.<Operation>`` (the path is
ignored); bodies in JSON 1.1 (``application/x-amz-json-1.1``: blobs base64, timestamps epoch seconds)
or CBOR (``application/x-amz-cbor-1.1``, the Java SDK's default: blobs as byte strings, timestamps as
CBOR tag 1 holding epoch MILLISECONDS, as the Java SDK writes them). Errors are
``{"__type": Code, "message": ...}`` with AWS's status (``"Message"`` for SerializationException, and no
message field where AWS sends none: UnknownOperationException, an empty or malformed body).
SubscribeToShard answers with an AWS event stream (``application/vnd.amazon.eventstream``) whose first
message is the ``initial-response``.
``GET /health`` answers ``{"status": "ok"}``.

The HTTP layer is AWS's (recorded): ``x-amzn-RequestId`` and ``x-amz-id-2`` on every answer (not
``x-amz-id-2`` on a CORS preflight), CORS for any ``Origin``, 403 in XML for other methods and POSTs without
Kinesis's content types, and for a JSON/CBOR POST: empty body, body shape and target before authentication,
then ``MissingAuthenticationTokenException`` / ``IncompleteSignatureException`` for a missing or malformed
``Authorization`` (``auth_check=False``: a missing header is accepted).

Transports (fastkin.wire.server: httptools for HTTP/1.1, the h2 library for HTTP/2, one asyncio loop): HTTP/1.1
and HTTP/2 on the same port. In cleartext, HTTP/2 by prior knowledge (h2c, what the JavaScript SDK v3 speaks to
an ``http://`` endpoint) and by ``Upgrade: h2c`` for requests without a body (an upgrade that carries a body is
answered in HTTP/1.1, which RFC 9113 allows). With TLS (``--tls``: a self-signed certificate generated on start
unless ``--cert``/``--key`` are given), ALPN offers ``h2`` and ``http/1.1``. SubscribeToShard streams are ordinary
HTTP/2 streams: several share a connection, and a stream whose flow-control window is closed waits, which pauses
that subscription's reads only. Queue long polls and ``--fsync always`` puts are deferred answers: they wait on
the event loop, never in it.

Each request's region is the one in its SigV4 credential scope (else ``--region``), and each region
has its own engine, as in the in-process mock. SigV4 signatures are verified only when credentials are
configured (``--credentials AKID:SECRET``). Request bodies above ``max_body_bytes`` get 413 (as soon as the
Content-Length shows it); a request that stalls for ``read_timeout`` gets 408. SIGTERM/SIGINT stop accepting,
end open subscriptions and let in-flight requests finish.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import functools
import itertools
import json
import logging
import os
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import types
from urllib.parse import parse_qsl

from .. import errors as E
from .._core import NO_EXTENSIONS
from ..clock import RealClock
from ..durable import Durable, lock_directory
from ..engine import Engine, RegionEngines
from ..limits import DEFAULT_LIMITS
from .eventstream import encode_event
from .model import (
    _canonical_tail,
    b64decode_strict,
    cbor_dumps,
    cbor_loads,
    from_wire,
    json_body as _json_body,
    json_dumps,
    put_record_ok,
    put_records_params,
    service_model,
    to_wire,
)
from .service import LONG_POLL, Service, put_record_response, put_records_response, records_json, service_for
from .sigv4 import CREDENTIAL, check_present, verify
from .tls import _cert_hosts, self_signed_certificate

_wire: types.ModuleType | None = None        # the compiled wire paths (issue 13); the Python functions are the fallback
if not NO_EXTENSIONS:
    try:
        from .._cy import wire as _wire
    except ImportError:  # pragma: no cover - a build without the extension
        pass

log = logging.getLogger("fastkin.wire.server")

TARGET_PREFIX = "Kinesis_20131202."
_PREFIX_LEN = len(TARGET_PREFIX)
JSON_TYPE = "application/x-amz-json-1.1"
JSON_TYPES = (JSON_TYPE, "application/json")     # application/x-amz-json-1.0 is not Kinesis's: 403, as from AWS
CBOR_TYPE = "application/x-amz-cbor-1.1"
JSON_CTYPE = JSON_TYPE.encode()
CBOR_CTYPE = CBOR_TYPE.encode()
EVENTSTREAM_TYPE = "application/vnd.amazon.eventstream"
DEFAULT_MAX_BODY = 16 * 1024 * 1024     # a 10 MiB PutRecords in base64 plus JSON overhead
HEALTH_PATHS = ("/health", "/_health")
EXPOSE_HEADERS = b"x-amz-request-id, x-amz-id-2"   # AWS's recorded value (the SDK reads errors from the body)
# fastkin's choices where AWS's front end answers without an error shape (a bare 413) or closes the connection
TOO_LARGE_CODE = "RequestEntityTooLargeException"
TIMEOUT_CODE = "RequestTimeoutException"
TIMEOUT_MESSAGE = "Your socket connection to the server was not read from or written to within the timeout period."


def _xml_error(code: str, message: str) -> bytes:
    return f"<{code}>\n  <Message>{message}</Message>\n</{code}>\n".encode()


MISSING_TOKEN_XML = _xml_error("MissingAuthenticationTokenException", "Missing Authentication Token")
ACCESS_DENIED_XML = _xml_error("AccessDeniedException", "Unable to determine service/operation name to be authorized")


# Request ids: UUID-shaped (version 4 layout), unique per process run: a random prefix drawn once and a counter
# (a fresh uuid4 and 72 random bytes per answer were a tenth of a PutRecord's server time).
_RID_RANDOM = os.urandom(10).hex()
_RID_PREFIX = (f"{_RID_RANDOM[:8]}-{_RID_RANDOM[8:12]}-4{_RID_RANDOM[13:16]}-"
               f"{'89ab'[int(_RID_RANDOM[16], 16) & 3]}{_RID_RANDOM[17:20]}-")
_ID2_PREFIX = os.urandom(64)
_ids = itertools.count(int.from_bytes(os.urandom(4), "big"))


def _request_id() -> str:
    return f"{_RID_PREFIX}{next(_ids) & 0xFFFFFFFFFFFF:012x}"


def _id2() -> bytes:
    """``x-amz-id-2``: 72 bytes in base64, as AWS's (random-looking and unique)."""
    return base64.b64encode(_ID2_PREFIX + (next(_ids) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big"))


class StreamReply:
    """An answer that is not a plain (status, headers, body) tuple. Either streamed (SubscribeToShard's event
    stream): ``status`` and ``headers`` first, then each bytes item of ``frames()``; or deferred (a long poll):
    ``await result()`` gives the (status, headers, body) tuple. ``close()`` ends it (client gone, shutdown)."""

    __slots__ = ("status", "headers", "frames", "result", "close", "operation")

    def __init__(self, status: int, headers: list, frames, close, operation: str, result=None) -> None:
        self.status, self.headers, self.frames, self.close, self.operation = status, headers, frames, close, operation
        self.result = result


class KinesisApp(RegionEngines):
    """The Kinesis endpoint, independent of the transport: ``handle()`` answers one complete request.

    fastkin's own server (fastkin.wire.server) calls ``handle`` directly; ``KinesisApp`` is also an ASGI
    application (``__call__``), so any ASGI server can mount it. One engine per region, all on one clock,
    created on first use."""

    def __init__(self, engine: Engine | None = None, *, clock=None, region: str = "us-east-1",
                 account_id: str = "123456789012", limits=DEFAULT_LIMITS, quotas: bool = True,
                 create_latency: float = 0.0, delete_latency: float = 0.0, update_latency: float = 0.0,
                 consumer_latency: float | None = None, core: str | None = None,
                 credentials: dict[str, str] | None = None, auth_check: bool = True,
                 max_body_bytes: int = DEFAULT_MAX_BODY, data_dir: str | None = None, fsync: str = "interval",
                 fsync_interval: float = 0.1, verify_data: bool = False, channel_s3=None,
                 channel_freshness_min: int | None = None, channel_iceberg=None) -> None:
        self.region = engine.region if engine is not None else region
        self.clock = clock or (engine.clock if engine is not None else RealClock())
        self._kw = dict(account_id=engine.account_id if engine is not None else account_id, limits=limits,
                        quotas=quotas, create_latency=create_latency, delete_latency=delete_latency,
                        update_latency=update_latency, consumer_latency=consumer_latency or 0.0, core=core,
                        channel_s3=channel_s3, channel_iceberg=channel_iceberg)
        if channel_freshness_min is not None:
            self._kw["channel_freshness_min"] = channel_freshness_min
        self._engines: dict[str, Engine] = {}
        self._data_lock: int | None = None
        if data_dir is not None:              # DATA/regions/<region>/ is each region's Engine data directory
            self._data_lock = lock_directory(data_dir)
            self._kw.update(data_dir=data_dir, fsync=fsync, fsync_interval=fsync_interval, verify_data=verify_data)
        if engine is not None:
            self._engines[engine.region] = engine
            if consumer_latency is not None:
                engine.consumer_latency = float(consumer_latency)
        self._consumer_latency = consumer_latency
        self._lock = threading.Lock()
        self.credentials = credentials
        self.auth_check = auth_check
        self.max_body_bytes = max_body_bytes
        self._subs: set = set()
        self.stopping = False
        self._model = service_model()
        self._services: dict[str, Service] = {}
        self.http_versions: collections.Counter = collections.Counter()     # "1.1" / "2" -> requests served
        self.operation = "-"          # the operation of the last answered request (for the access log)
        self._group_commit = _GroupCommit()
        if data_dir is not None:
            regions = os.path.join(data_dir, "regions")
            for name in sorted(os.listdir(regions)) if os.path.isdir(regions) else ():
                self.engine_for(name)         # recovered now: /health and the first request see every stream

    def close(self) -> None:
        """Close every engine's data directory (flushed and fsynced) and release the directory lock."""
        for e in list(self._engines.values()):
            e.close()
        if self._data_lock is not None:
            os.close(self._data_lock)
            self._data_lock = None

    def reset(self, engine: Engine | None = None) -> None:
        """Forget every stream; with ``engine``, serve it for its region (and its clock for others)."""
        with self._lock:
            self.close_subscriptions()
            self.stopping = False
            self._engines = {}
            self._services = {}
            if engine is not None:
                self._engines[engine.region] = engine
                self.clock = engine.clock
                if self._consumer_latency is not None:
                    engine.consumer_latency = float(self._consumer_latency)

    @property
    def engine(self) -> Engine:
        return self.engine_for(self.region)

    def service(self, region: str) -> Service:
        svc = self._services.get(region)
        if svc is None:
            svc = self._services[region] = service_for(self.engine_for(region))
        return svc

    def close_subscriptions(self) -> None:
        self.stopping = True
        for s in list(self._subs):
            s.close()

    # -- one request ---------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes,
               http_version: str = "1.1", peer: str = ""):
        """Answer one request: ``(status, [(name, value), ...], body)`` with lower-case header names (the
        transport adds Content-Length and Date), or a StreamReply. ``headers``: lower-case names."""
        self.http_versions[http_version] += 1
        self.operation = "-"
        rid = _request_id()
        origin = "origin" in headers
        base = [(b"x-amzn-requestid", rid.encode())]
        if origin:
            base.append((b"access-control-allow-origin", b"*"))
            if method == "OPTIONS":            # a CORS preflight: no authentication, no x-amz-id-2
                for asked, allow in (("access-control-request-headers", b"access-control-allow-headers"),
                                     ("access-control-request-method", b"access-control-allow-methods")):
                    if headers.get(asked):
                        base.append((allow, headers[asked].encode("latin-1")))
                base.append((b"access-control-max-age", b"172800"))
                return 200, base, b""
        base.append((b"x-amz-id-2", _id2()))
        if origin:
            base.append((b"access-control-expose-headers", EXPOSE_HEADERS))
        if method != "POST":
            if method in ("GET", "HEAD") and path in HEALTH_PATHS:
                health = json.dumps({"status": "ok",
                                     "streams": sum(len(e._live_streams()) for e in self._engines.values())})
                return 200, [(b"content-type", b"application/json"), *base], health.encode()
            return self._forbidden(headers, base)   # GET/PUT/DELETE/PATCH/OPTIONS without Origin: AWS's 403
        ctype = headers.get("content-type", "")
        if ctype != JSON_TYPE:
            ctype = ctype.split(";")[0].strip().lower()
        cbor = ctype == CBOR_TYPE
        if len(body) > self.max_body_bytes:
            return self._too_large(base, cbor)
        if not cbor and ctype not in JSON_TYPES:
            # no (or another) content type: AWS cannot tell the operation, whatever the target says
            return self._forbidden(headers, base)
        try:
            return self._call(method, path, query, headers, body, cbor, base, rid)
        except E.FastkinError as exc:
            return self._error(exc.code, exc.message, exc.status, cbor, base)
        except Exception as exc:  # noqa: BLE001 - a bug must still answer as AWS would (500), and be seen
            log.exception("request %s (%s) failed", rid, self.operation)
            return self._error(E.InternalFailure.code, f"Internal service failure: {type(exc).__name__}", 500,
                               cbor, base)

    def _call(self, method: str, path: str, query: bytes, headers: dict, body: bytes, cbor: bool, base: list,
              rid: str):
        # AWS's order (recorded): empty body, malformed body, unknown target, then authentication, then types
        target = headers.get("x-amz-target", "")
        op = target[_PREFIX_LEN:] if target.startswith(TARGET_PREFIX) else ""
        known = op in self._model.operation_names
        if known:
            self.operation = op
        if not body:
            if known:
                raise E.SerializationException("")     # AWS: {"__type":"SerializationException"}, no message
            raise E.UnknownOperationException("")
        raw = cbor_loads(body) if cbor else _json_body(body)
        if type(raw) is not dict:
            raise E.SerializationException("")
        if not known:
            raise E.UnknownOperationException("")
        region = self.region
        qs = _query(query)
        auth = headers.get("authorization")
        if self.auth_check or self.credentials is not None:
            check_present(headers, qs)
        m = CREDENTIAL.search(auth or qs.get("X-Amz-Credential", "")) if auth or qs else None
        if m is not None:
            region = m.group(3)
        if self.credentials is not None:
            verify(self.credentials, {"method": method, "path": path, "query_string": query}, headers, body)
        svc = self.service(region)
        durable = svc.engine.durable
        if durable is not None and durable.fsync == "always" and op in _PUTS:
            # group commit: the records are written now, fsynced with every other put answered meanwhile, and
            # acknowledged after that fsync (the event loop never waits for it)
            with durable.deferring() as owed:
                reply = self._operation(svc, op, raw, cbor, base, rid)
            if owed:
                return self._after_fsync(owed, reply, cbor, base, rid)
            return reply
        return self._operation(svc, op, raw, cbor, base, rid)

    def _after_fsync(self, owed: list, reply, cbor: bool, base: list, rid: str) -> StreamReply:
        app = self

        async def result():
            try:
                await app._group_commit.sync(owed)
            except OSError as exc:
                log.exception("request %s (%s): fsync failed", rid, app.operation)
                return app._error(E.InternalFailure.code, f"Internal service failure: {type(exc).__name__}", 500,
                                  cbor, base)
            return reply

        return StreamReply(200, base, None, _nothing, self.operation, result=result)

    def _operation(self, svc: Service, op: str, raw: dict, cbor: bool, base: list, rid: str):
        if not cbor:
            fast = _FAST.get(op)
            if fast is not None:
                out = fast(svc, raw)
                if out is not None:
                    return 200, [(b"content-type", JSON_CTYPE), *base], out
        ishape = self._model.operation_model(op).input_shape
        typed = False
        params = None
        if op == "PutRecords":
            params = put_records_params(ishape, raw, cbor)
            typed = params is not None
        if params is None:
            try:
                params = from_wire(ishape, raw, cbor) if ishape is not None else {}
            except (RecursionError, ValueError, OverflowError, ArithmeticError, TypeError) as exc:
                if isinstance(exc, E.FastkinError):
                    raise
                raise E.SerializationException("") from None  # a value no decoder rule foresaw: the caller's
        if op in LONG_POLL:
            deadline = svc.long_poll_deadline(op, params)
            out = svc.dispatch(op, params, types=not typed, wait=False)      # errors are answered at once
            if deadline is not None and not out.get("QueueRecords"):
                return self._long_poll(svc, op, params, not typed, deadline, cbor, base, rid)
            return self._ok(op, out, cbor, base)
        out = svc.dispatch(op, params, types=not typed)
        if op == "SubscribeToShard":
            return self._stream(out["EventStream"], cbor, base)
        return self._ok(op, out, cbor, base)

    def _ok(self, op: str, out: dict, cbor: bool, base: list):
        oshape = self._model.operation_model(op).output_shape
        if oshape is None or not out:
            payload = b"" if oshape is None else (b"{}" if not cbor else cbor_dumps({}))
        else:
            wire = out if op == "PutRecords" else to_wire(oshape, out, cbor)   # strings and integers only
            payload = cbor_dumps(wire) if cbor else json_dumps(wire)
        return 200, [(b"content-type", CBOR_CTYPE if cbor else JSON_CTYPE), *base], payload

    def _long_poll(self, svc: Service, op: str, params: dict, types: bool, deadline: float, cbor: bool, base: list,
                   rid: str) -> StreamReply:
        """A receive with nothing visible yet: asked again, without blocking the event loop, until a record is
        visible, the wait (on the engine's clock) ends, or the server stops. The interval grows from 5 ms to
        50 ms, so that idle long polls cost little while a record still arrives within 50 ms."""
        app = self
        clock = svc.engine.clock
        real_end = time.monotonic() + (deadline - clock()) + 1.0        # a frozen clock (freezegun) ends too

        async def result():
            pause = 0.005
            try:
                while True:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.05)
                    out = svc.dispatch(op, params, types=types, wait=False)
                    if (out.get("QueueRecords") or clock() >= deadline or app.stopping
                            or time.monotonic() >= real_end):
                        return app._ok(op, out, cbor, base)
            except E.FastkinError as exc:                 # e.g. the queue was deleted meanwhile
                return app._error(exc.code, exc.message, exc.status, cbor, base)
            except Exception as exc:  # noqa: BLE001 - a bug must still answer as AWS would (500), and be seen
                log.exception("request %s (%s) failed", rid, op)
                return app._error(E.InternalFailure.code, f"Internal service failure: {type(exc).__name__}", 500,
                                  cbor, base)

        return StreamReply(200, base, None, _nothing, op, result=result)

    def _forbidden(self, headers: dict, base: list):
        # AWS (recorded): 403, no Content-Type, an XML body; which one depends on an Authorization header only
        # (DELETE: AWS resets the connection; fastkin answers it with the same 403 as GET)
        return 403, base, ACCESS_DENIED_XML if headers.get("authorization") else MISSING_TOKEN_XML

    def _too_large(self, base: list, cbor: bool = False):
        # AWS's front end answers a bare 413; fastkin adds an error shape so that SDKs report a code
        return self._error(TOO_LARGE_CODE, f"Request must be smaller than {self.max_body_bytes} bytes.", 413, cbor,
                           base)

    def too_large_reply(self, headers: dict):
        """The 413 for a request whose Content-Length (or body so far) exceeds ``max_body_bytes``."""
        base = [(b"x-amzn-requestid", _request_id().encode()), (b"x-amz-id-2", _id2())]
        return self._too_large(base, headers.get("content-type", "").split(";")[0].strip().lower() == CBOR_TYPE)

    def bad_request_reply(self):
        """The 400 for bytes that are not HTTP/1.1 (the connection is closed after it)."""
        return 400, [(b"x-amzn-requestid", _request_id().encode()), (b"x-amz-id-2", _id2())], b""

    def timeout_reply(self, headers: dict):
        """The 408 for a request whose headers or body stopped arriving (``read_timeout``)."""
        base = [(b"x-amzn-requestid", _request_id().encode()), (b"x-amz-id-2", _id2())]
        cbor = headers.get("content-type", "").split(";")[0].strip().lower() == CBOR_TYPE
        return self._error(TIMEOUT_CODE, TIMEOUT_MESSAGE, 408, cbor, base)

    def _error(self, code: str, message: str, status: int, cbor: bool, base: list):
        # AWS's bodies: SerializationException carries "Message" (capital M), every other error "message";
        # errors without a text (UnknownOperationException, a malformed body) carry no message field at all.
        doc = {"__type": code}
        if message:
            doc["Message" if code == "SerializationException" else "message"] = message
        payload = cbor_dumps(doc) if cbor else json_dumps(doc)
        return status, [(b"content-type", CBOR_CTYPE if cbor else JSON_CTYPE), *base,
                        (b"x-amzn-errortype", code.encode())], payload

    def _stream(self, sub, cbor: bool, base: list) -> StreamReply:
        self._subs.add(sub)
        shape = self._model.shape_for("SubscribeToShardEvent")
        ptype = CBOR_TYPE if cbor else "application/json"
        app = self

        async def frames():
            yield encode_event({":message-type": "event", ":event-type": "initial-response",
                                ":content-type": ptype}, cbor_dumps({}) if cbor else b"{}")
            loop = asyncio.get_running_loop()
            last_sent = loop.time()
            while not app.stopping:
                ev = sub.poll()
                if ev is None:
                    break
                body = ev["SubscribeToShardEvent"]
                now = loop.time()
                if not body["Records"] and "ChildShards" not in body and now - last_sent < 1.0:
                    await asyncio.sleep(0.05)
                    continue
                wire = to_wire(shape, body, cbor)
                payload = cbor_dumps(wire) if cbor else json_dumps(wire)
                yield encode_event({":message-type": "event", ":event-type": "SubscribeToShardEvent",
                                    ":content-type": ptype}, payload)
                last_sent = now

        def close():
            sub.close()
            self._subs.discard(sub)

        return StreamReply(200, [(b"content-type", EVENTSTREAM_TYPE.encode()), *base], frames, close,
                           "SubscribeToShard")

    # -- ASGI ------------------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    self.close_subscriptions()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            key = k.decode("latin-1").lower()
            val = v.decode("latin-1")
            headers[key] = val if key not in headers else f"{headers[key]}, {val}"
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await _asgi_send(send, self.too_large_reply(headers))
            return
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _asgi_send(send, self.too_large_reply(headers))
                return
            chunks.append(chunk)
            if not msg.get("more_body"):
                break
        reply = self.handle(scope["method"], scope["path"], scope.get("query_string", b""), headers,
                            b"".join(chunks), scope.get("http_version", "1.1"))
        if type(reply) is tuple:
            await _asgi_send(send, reply)
            return
        if reply.result is not None:
            await _asgi_send(send, await reply.result())
            return

        async def watch_disconnect():
            while (await receive())["type"] != "http.disconnect":
                pass
            reply.close()

        watcher = asyncio.ensure_future(watch_disconnect())
        try:
            await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
            async for frame in reply.frames():
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            reply.close()


class _GroupCommit:
    """One fsync for many answers: puts wait here for the next fsync that starts after their writes; it runs in a
    thread, so the event loop keeps reading (and writing) requests meanwhile, which then share the one after."""

    def __init__(self) -> None:
        self.pending: list = []          # (owed, future) of answers waiting for the next fsync
        self.running = False

    async def sync(self, owed: list) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.pending.append((owed, fut))
        if not self.running:
            self.running = True
            loop.create_task(self._run())
        await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                await asyncio.sleep(0)           # this loop turn's other answers join the batch
                batch, self.pending = self.pending, []
                owed = [pair for o, _ in batch for pair in o]
                try:
                    await loop.run_in_executor(None, Durable.sync_owed, owed)
                except OSError as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                else:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_result(None)
        finally:
            self.running = False


def _nothing() -> None:
    """A deferred answer's close(): cancelling its task is all there is to do."""


async def _asgi_send(send, reply) -> None:
    status, headers, payload = reply
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


def _query(qs: bytes) -> dict[str, str]:
    if not qs:
        return {}
    return dict(parse_qsl(qs.decode("latin-1"), keep_blank_values=True))


# -- the data plane's fast paths: a well-formed JSON request decoded, checked and answered in one pass ----------
# Each returns the response body, or None: the request then takes the generic path (which words AWS's errors).

def _fast_put_record(svc: Service, raw: dict) -> bytes | None:
    data = raw.get("Data")
    if type(data) is not str or not _PUT_RECORD_MEMBERS.issuperset(raw):
        return None
    try:
        blob = b64decode_strict(data)
    except (binascii.Error, ValueError):
        return None
    if data[-1:] == "=" and not _canonical_tail(data, blob):
        return None
    params = dict(raw)
    params["Data"] = blob
    if not svc.validate or not put_record_ok(params):
        return None
    return json_dumps(put_record_response(svc.engine, params))


def _fast_put_records(svc: Service, raw: dict) -> bytes | None:
    if _wire is not None:       # put_records_params + put_records_response + json_dumps, fused in C
        got = _wire.put_records_batch(_PUT_RECORDS_SHAPE(), raw)
        if got is None or not svc.validate:
            return None
        batch, p = got
        s = svc.engine.stream(p.get("StreamName"), p.get("StreamARN"))
        return _wire.put_records_json(s.put_records(batch), s.encryption_type == "KMS")
    params = put_records_params(_PUT_RECORDS_SHAPE(), raw, False)
    if params is None or not svc.validate:
        return None
    return json_dumps(put_records_response(svc.engine, params))


def _fast_get_records(svc: Service, raw: dict) -> bytes | None:
    it, limit = raw.get("ShardIterator"), raw.get("Limit")
    if (type(it) is not str or not 1 <= len(it) <= 512 or raw.get("StreamARN") is not None
            or (limit is not None and (type(limit) is not int or not 1 <= limit <= 10000))
            or not _GET_RECORDS_MEMBERS.issuperset(raw) or not svc.validate):
        return None
    res = svc.engine.get_records(it, 10000 if limit is None else limit)
    body = None if _wire is None else _wire.records_json(res)   # None: not the compiled core's records
    return records_json(res) if body is None else body


def _put_records_shape():
    return service_model().operation_model("PutRecords").input_shape


_PUT_RECORDS_SHAPE = functools.lru_cache(maxsize=1)(_put_records_shape)
_PUT_RECORD_MEMBERS = frozenset({"StreamName", "StreamARN", "Data", "PartitionKey", "ExplicitHashKey",
                                 "SequenceNumberForOrdering"})
_GET_RECORDS_MEMBERS = frozenset({"ShardIterator", "Limit", "StreamARN"})
_PUTS = frozenset({"PutRecord", "PutRecords"})
_FAST = {"PutRecord": _fast_put_record, "PutRecords": _fast_put_records, "GetRecords": _fast_get_records}


# ---------------------------------------------------------------------------------------------

def ssl_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """The server's TLS context: ALPN offers ``h2`` then ``http/1.1``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certfile, keyfile)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (the server extra brings it), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not available everywhere (Windows)
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def serve_async(app: KinesisApp, host: str = "127.0.0.1", port: int = 4567, access_log=None,
                      shutdown: asyncio.Event | None = None, on_ready=None, certfile: str | None = None,
                      keyfile: str | None = None, fd: int | None = None, read_timeout: float = 20.0,
                      idle_timeout: float = 60.0, grace: float = 5.0) -> None:
    """Serve until ``shutdown`` is set (or SIGTERM/SIGINT in the main thread). With ``certfile`` and
    ``keyfile``, serve TLS. ``fd``: serve on this already bound socket (see listen()). ``access_log``: a
    callable taking one line per answered request."""
    from .server import Server

    shutdown = shutdown or asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shutdown.set)
    sock = socket.socket(fileno=fd) if fd is not None else listen(host, port)
    sock.setblocking(False)
    server = Server(app, read_timeout=read_timeout, idle_timeout=idle_timeout, access_log=access_log)
    await server.start(sock, ssl=ssl_context(certfile, keyfile) if certfile is not None else None)
    if on_ready is not None:
        loop.call_soon(on_ready)
    await shutdown.wait()
    await server.stop(grace)


class ServerThread:
    """Run a server in a background thread (tests, notebooks): ``with ServerThread(port=0) as s: s.url``.

    ``tls=True`` serves HTTPS with a self-signed certificate generated into a temporary directory (removed
    on stop) unless ``certfile``/``keyfile`` are given; ``.cafile`` is the certificate to trust."""

    def __init__(self, app: KinesisApp | None = None, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False,
                 certfile: str | None = None, keyfile: str | None = None, read_timeout: float = 20.0,
                 idle_timeout: float = 60.0, **app_kw) -> None:
        self.app = app or KinesisApp(**app_kw)
        self.read_timeout, self.idle_timeout = read_timeout, idle_timeout
        self.host = host
        self._sock = listen(host, port)                 # bound now: the port is known and no one else takes it
        self.port = self._sock.getsockname()[1]
        self.tls = tls or certfile is not None
        self.certfile, self.keyfile = certfile, keyfile
        self._tmpdir: str | None = None
        self.url = f"{'https' if self.tls else 'http'}://{host}:{self.port}"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None

    @property
    def cafile(self) -> str | None:
        return self.certfile if self.tls else None

    def start(self) -> ServerThread:

        if self.tls and self.certfile is None:
            self._tmpdir = tempfile.mkdtemp(prefix="fastkin-tls-")
            self.certfile, self.keyfile = self_signed_certificate(self._tmpdir, _cert_hosts(self.host))

        ready = threading.Event()
        fd = self._sock.detach()

        def run():
            self._loop = new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._shutdown = asyncio.Event()
            self._loop.run_until_complete(serve_async(self.app, self.host, self.port, shutdown=self._shutdown,
                                                      certfile=self.certfile, keyfile=self.keyfile, fd=fd,
                                                      on_ready=ready.set, read_timeout=self.read_timeout,
                                                      idle_timeout=self.idle_timeout))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fastkin-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"fastkin server did not start on {self.url}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._shutdown is not None:
            self._loop.call_soon_threadsafe(self._shutdown.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._tmpdir is not None:
            import shutil
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port (SO_REUSEADDR, TCP_NODELAY); OSError when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)                 # connections made before the loop serves wait in the backlog
    except BaseException:
        sock.close()
        raise
    return sock


def main(argv: list[str] | None = None) -> int:
    import argparse
    import shutil

    p = argparse.ArgumentParser(prog="fastkin serve", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description="Serve the Kinesis wire protocol (JSON 1.1 and CBOR; HTTP/1.1, HTTP/2 "
                                            "by prior knowledge or upgrade, TLS with ALPN) for any AWS SDK and the "
                                            "AWS CLI. Each region has its own streams; state lives in memory unless "
                                            "--data-dir is given.")
    add_arguments(p)
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"fastkin serve: --port must be between 0 and 65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        import h2  # noqa: F401 - the HTTP parsers: say which extra is missing, in one line
        import httptools  # noqa: F401
    except ImportError as exc:
        print(f"fastkin serve needs {exc.name}: pip install 'fastkin[server]' (from a checkout: pip install "
              "'.[server]')", file=sys.stderr)
        return 2
    if (args.cert is None) != (args.key is None):
        p.error("--cert and --key go together")
    if args.cert_dir is not None and args.cert is not None:
        p.error("--cert-dir is where a generated certificate goes; it does not combine with --cert/--key")
    if args.no_auth_check and args.credentials:
        p.error("--no-auth-check accepts unsigned requests; it does not combine with --credentials")
    creds = None
    if args.credentials:
        creds = dict(c.split(":", 1) for c in args.credentials)
    if args.channel_s3_endpoint and args.channel_s3_dir:
        p.error("--channel-s3-endpoint and --channel-s3-dir are two destinations; give one")
    channel_s3 = args.channel_s3_endpoint or (f"file://{args.channel_s3_dir}" if args.channel_s3_dir else None)
    if args.channel_s3_dir and not os.path.isdir(args.channel_s3_dir):
        print(f"fastkin serve: --channel-s3-dir {args.channel_s3_dir} is not a directory", file=sys.stderr)
        return 2
    limits = DEFAULT_LIMITS.replace(shard_limit=args.shard_limit)
    if args.fsync_interval_ms <= 0:
        p.error(f"--fsync-interval-ms must be positive, got {args.fsync_interval_ms:g}")
    try:
        app = KinesisApp(region=args.region, account_id=args.account_id, limits=limits, quotas=not args.no_quotas,
                         create_latency=args.create_stream_ms / 1000.0, delete_latency=args.delete_stream_ms / 1000.0,
                         update_latency=args.update_stream_ms / 1000.0,
                         consumer_latency=args.consumer_ms / 1000.0, credentials=creds,
                         auth_check=not args.no_auth_check, max_body_bytes=args.max_body_bytes,
                         data_dir=args.data_dir, fsync=args.fsync, fsync_interval=args.fsync_interval_ms / 1000.0,
                         verify_data=args.verify_data, channel_s3=channel_s3,
                         channel_freshness_min=args.channel_freshness_min, channel_iceberg=args.channel_iceberg_dir)
    except E.DataDirError as exc:
        print(f"fastkin serve: {exc.message}", file=sys.stderr)
        return 2
    tls = args.tls or args.cert is not None or args.cert_dir is not None
    certfile, keyfile, tmpdir = args.cert, args.key, None
    if tls and certfile is None:
        directory = args.cert_dir
        if directory is None:
            directory = tmpdir = tempfile.mkdtemp(prefix="fastkin-tls-")
        certfile, keyfile = self_signed_certificate(directory, _cert_hosts(args.host))
    try:                                      # bind first: only a server that listens is announced
        sock = listen(args.host, args.port)
    except OSError as e:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        print(f"fastkin serve: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    scheme = "https" if tls else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"{scheme}://{host}:{port}"
    protocols = "HTTP/1.1 and HTTP/2 (ALPN h2, http/1.1)" if tls else "HTTP/1.1 and HTTP/2 (h2c)"
    print(f"fastkin serving Kinesis on {url} over {protocols} (region {args.region}, account {args.account_id})",
          flush=True)
    print(f"  AWS CLI and SDKs: export AWS_ENDPOINT_URL_KINESIS={url} AWS_DEFAULT_REGION={args.region} "
          "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test", flush=True)
    if tls:
        generated = "self-signed, generated now" if args.cert is None else "given"
        print(f"TLS certificate ({generated}): {certfile} (trust it: AWS_CA_BUNDLE={certfile})", flush=True)
    if args.access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    access = logging.getLogger("fastkin.access").info if args.access_log else None
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve_async(app, args.host, port, access_log=access, certfile=certfile,
                                            keyfile=keyfile, fd=sock.detach(), read_timeout=args.read_timeout,
                                            idle_timeout=args.idle_timeout))
    finally:
        loop.close()
        app.close()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    print("fastkin stopped", flush=True)
    return 0


def add_arguments(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (the default is loopback only)")
    p.add_argument("--port", type=int, default=4567, help="port (0: any free port, printed on start)")
    p.add_argument("--region", default="us-east-1", help="region for requests that carry none")
    p.add_argument("--account-id", default="123456789012", help="12-digit account id")
    p.add_argument("--create-stream-ms", type=float, default=0.0, help="CREATING -> ACTIVE delay")
    p.add_argument("--delete-stream-ms", type=float, default=0.0, help="DELETING -> gone delay")
    p.add_argument("--update-stream-ms", type=float, default=0.0, help="UPDATING -> ACTIVE delay")
    p.add_argument("--consumer-ms", type=float, default=0.0, help="consumer CREATING -> ACTIVE delay")
    p.add_argument("--shard-limit", type=int, default=DEFAULT_LIMITS.shard_limit, help="open shards per account")
    p.add_argument("--no-quotas", action="store_true", help="do not enforce per-shard read/write limits")
    p.add_argument("--data-dir", metavar="PATH",
                   help="keep streams and records in this directory (recovered on start); default: memory only")
    p.add_argument("--fsync", choices=["always", "interval", "never"], default="interval",
                   help="with --data-dir: fsync before answering a put (always), every --fsync-interval-ms "
                        "(interval), or leave it to the OS (never)")
    p.add_argument("--fsync-interval-ms", type=float, default=100.0, help="with --fsync interval")
    p.add_argument("--verify-data", action="store_true",
                   help="with --data-dir: on start, read every stored record and check its CRC (by default "
                        "recovery trusts the indexes of closed segment files and reads only unsynced tails)")
    p.add_argument("--credentials", action="append", metavar="AKID:SECRET",
                   help="verify SigV4 against these credentials (repeatable; default: only the Authorization "
                        "header's presence and shape are checked)")
    p.add_argument("--no-auth-check", action="store_true",
                   help="accept requests without an Authorization header (hand-written clients, load generators)")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY, help="larger requests get 413")
    p.add_argument("--read-timeout", type=float, default=20.0,
                   help="seconds a request's headers or body may stall before a 408 closes the connection")
    p.add_argument("--idle-timeout", type=float, default=60.0,
                   help="seconds an idle keep-alive connection stays open")
    p.add_argument("--channel-s3-endpoint", metavar="URL",
                   help="channels write their S3 objects through this S3-compatible endpoint (default: boto3's own "
                        "S3 endpoint and credentials, e.g. AWS_ENDPOINT_URL_S3)")
    p.add_argument("--channel-s3-dir", metavar="DIR",
                   help="channels write their S3 objects under DIR instead: bucket B is the folder DIR/B (it must "
                        "exist, as a bucket must)")
    p.add_argument("--channel-iceberg-dir", metavar="DIR",
                   help="S3 Tables channels create their Iceberg tables here: a SQLite catalog DIR/catalog.db, the "
                        "warehouse DIR/warehouse, JSON Schemas in DIR/schemas/REGISTRY/SCHEMA.json (default: a "
                        "temporary directory)")
    p.add_argument("--channel-freshness-min", type=int, default=300,
                   help="the smallest DataFreshnessInSeconds accepted (AWS: 300; lower it for quick tests)")
    p.add_argument("--access-log", action="store_true",
                   help="print a line per request: client, request line, operation, status, time")
    p.add_argument("--tls", action="store_true",
                   help="serve HTTPS (ALPN h2 and http/1.1) with a self-signed certificate generated on start")
    p.add_argument("--cert", metavar="PEM", help="serve HTTPS with this certificate (chain) instead (implies --tls)")
    p.add_argument("--key", metavar="PEM", help="the private key of --cert")
    p.add_argument("--cert-dir", metavar="DIR",
                   help="write the generated cert.pem/key.pem here, to trust it from clients (implies --tls; "
                        "default: a temporary directory removed on exit)")

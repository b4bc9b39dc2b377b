"""``fastkin serve``: the Kinesis wire protocol over HTTP, on hypercorn (an ASGI server).

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

Transports (all hypercorn's, through the h11 and h2 libraries): HTTP/1.1 and HTTP/2 on the same port. In
cleartext, HTTP/2 by prior knowledge (h2c, what the JavaScript SDK v3 speaks to an ``http://`` endpoint) and
by ``Upgrade: h2c`` for requests without a body (hypercorn answers an upgrade that carries a body in
HTTP/1.1, which RFC 9113 allows). With TLS (``--tls``: a self-signed certificate generated on start unless
``--cert``/``--key`` are given), ALPN offers ``h2`` and ``http/1.1``. SubscribeToShard streams are ordinary
HTTP/2 streams: several share a connection, and a stream whose flow-control window is closed makes its
``send`` wait (hypercorn buffers at most a few frames), which pauses that subscription's reads only.

Each request's region is the one in its SigV4 credential scope (else ``--region``), and each region
has its own engine, as in the in-process mock. SigV4 signatures are verified only when credentials are
configured (``--credentials AKID:SECRET``). Request bodies above ``max_body_bytes`` get 413; at most
``max_concurrency`` requests are handled at once (the rest wait). SIGTERM/SIGINT stop accepting,
end open subscriptions and let hypercorn finish in-flight requests.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import uuid

from .. import errors as E
from ..clock import RealClock
from ..engine import Engine, RegionEngines
from ..limits import DEFAULT_LIMITS
from .eventstream import encode_event
from .model import cbor_dumps, cbor_loads, from_wire, json_loads, put_records_params, service_model, to_wire
from .service import Service, service_for
from .sigv4 import CREDENTIAL, check_present, verify
from .tls import _cert_hosts, self_signed_certificate

TARGET_PREFIX = "Kinesis_20131202."
JSON_TYPE = "application/x-amz-json-1.1"
JSON_TYPES = (JSON_TYPE, "application/json")     # application/x-amz-json-1.0 is not Kinesis's: 403, as from AWS
CBOR_TYPE = "application/x-amz-cbor-1.1"
EVENTSTREAM_TYPE = "application/vnd.amazon.eventstream"
DEFAULT_MAX_BODY = 16 * 1024 * 1024     # a 10 MiB PutRecords in base64 plus JSON overhead
HEALTH_PATHS = ("/health", "/_health")
EXPOSE_HEADERS = b"x-amz-request-id, x-amz-id-2"   # AWS's recorded value (the SDK reads errors from the body)


def _xml_error(code: str, message: str) -> bytes:
    return f"<{code}>\n  <Message>{message}</Message>\n</{code}>\n".encode()


MISSING_TOKEN_XML = _xml_error("MissingAuthenticationTokenException", "Missing Authentication Token")
ACCESS_DENIED_XML = _xml_error("AccessDeniedException", "Unable to determine service/operation name to be authorized")


def _id2() -> bytes:
    return base64.b64encode(os.urandom(72))


# ---------------------------------------------------------------------------------------------

class KinesisApp(RegionEngines):
    """The ASGI application. One engine per region, all on one clock, created on first use."""

    def __init__(self, engine: Engine | None = None, *, clock=None, region: str = "us-east-1",
                 account_id: str = "123456789012", limits=DEFAULT_LIMITS, quotas: bool = True,
                 create_latency: float = 0.0, delete_latency: float = 0.0, update_latency: float = 0.0,
                 consumer_latency: float | None = None, core: str | None = None,
                 credentials: dict[str, str] | None = None, auth_check: bool = True,
                 max_body_bytes: int = DEFAULT_MAX_BODY, max_concurrency: int = 256) -> None:
        self.region = engine.region if engine is not None else region
        self.clock = clock or (engine.clock if engine is not None else RealClock())
        self._kw = dict(account_id=engine.account_id if engine is not None else account_id, limits=limits,
                        quotas=quotas, create_latency=create_latency, delete_latency=delete_latency,
                        update_latency=update_latency, consumer_latency=consumer_latency or 0.0, core=core)
        self._engines: dict[str, Engine] = {}
        if engine is not None:
            self._engines[engine.region] = engine
            if consumer_latency is not None:
                engine.consumer_latency = float(consumer_latency)
        self._consumer_latency = consumer_latency
        self._lock = threading.Lock()
        self.credentials = credentials
        self.auth_check = auth_check
        self.max_body_bytes = max_body_bytes
        self.max_concurrency = max_concurrency
        self._sem: asyncio.Semaphore | None = None
        self._subs: set = set()
        self.stopping = False
        self._model = service_model()
        self.http_versions: collections.Counter = collections.Counter()     # "1.1" / "2" -> requests served

    def reset(self, engine: Engine | None = None) -> None:
        """Forget every stream; with ``engine``, serve it for its region (and its clock for others)."""
        with self._lock:
            self.close_subscriptions()
            self.stopping = False
            self._engines = {}
            if engine is not None:
                self._engines[engine.region] = engine
                self.clock = engine.clock
                if self._consumer_latency is not None:
                    engine.consumer_latency = float(self._consumer_latency)

    @property
    def engine(self) -> Engine:
        return self.engine_for(self.region)

    def service(self, region: str) -> Service:
        return service_for(self.engine_for(region))

    def close_subscriptions(self) -> None:
        self.stopping = True
        for s in list(self._subs):
            s.close()

    # -- ASGI ------------------------------------------------------------------------------------
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
        self.http_versions[scope.get("http_version", "1.1")] += 1
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_concurrency)
        async with self._sem:
            await self._handle(scope, receive, send)

    async def _handle(self, scope, receive, send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        origin = "origin" in headers
        base = [(b"x-amzn-requestid", str(uuid.uuid4()).encode())]
        if origin:
            base.append((b"access-control-allow-origin", b"*"))
        if method == "OPTIONS" and origin:          # a CORS preflight: no authentication, no x-amz-id-2
            for asked, allow in (("access-control-request-headers", b"access-control-allow-headers"),
                                 ("access-control-request-method", b"access-control-allow-methods")):
                if headers.get(asked):
                    base.append((allow, headers[asked].encode("latin-1")))
            base.append((b"access-control-max-age", b"172800"))
            await _send(send, 200, None, b"", base)
            return
        base.append((b"x-amz-id-2", _id2()))
        if origin:
            base.append((b"access-control-expose-headers", EXPOSE_HEADERS))
        if method in ("GET", "HEAD") and scope["path"] in HEALTH_PATHS:
            health = json.dumps({"status": "ok",
                                 "streams": sum(len(e._live_streams()) for e in self._engines.values())})
            await _send(send, 200, "application/json", health.encode(), base)
            return
        if method != "POST":     # GET/PUT/DELETE/PATCH/OPTIONS without Origin: AWS's 403 in XML
            await self._forbidden(send, headers, base)
            return
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        cbor = ctype == CBOR_TYPE
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._too_large(send, base, cbor)
            return
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send, base, cbor)
                return
            chunks.append(chunk)
            if not msg.get("more_body"):
                break
        body = b"".join(chunks)
        if not cbor and ctype not in JSON_TYPES:
            # no (or another) content type: AWS cannot tell the operation, whatever the target says
            await self._forbidden(send, headers, base)
            return
        try:
            op, params, region, typed = self._parse(scope, headers, body, cbor)
            out = self.service(region).dispatch(op, params, types=not typed)
        except E.FastkinError as exc:
            await self._error(send, exc.code, exc.message, exc.status, cbor, base)
            return
        except Exception as exc:  # noqa: BLE001 - a bug must still answer as AWS would (500)
            await self._error(send, E.InternalFailure.code, f"Internal service failure: {type(exc).__name__}", 500,
                              cbor, base)
            return
        if op == "SubscribeToShard":
            await self._stream(receive, send, out["EventStream"], cbor, base)
            return
        oshape = self._model.operation_model(op).output_shape
        if oshape is None or not out:
            payload = b"" if oshape is None else (b"{}" if not cbor else cbor_dumps({}))
        else:
            wire = out if op == "PutRecords" else to_wire(oshape, out, cbor)   # strings and integers only
            payload = cbor_dumps(wire) if cbor else json.dumps(wire, separators=(",", ":")).encode()
        await _send(send, 200, CBOR_TYPE if cbor else JSON_TYPE, payload, base)

    async def _forbidden(self, send, headers: dict, base: list) -> None:
        # AWS (recorded): 403, no Content-Type, an XML body; which one depends on an Authorization header only
        # (DELETE: AWS resets the connection, which ASGI cannot do; it gets the same 403 as GET)
        body = ACCESS_DENIED_XML if headers.get("authorization") else MISSING_TOKEN_XML
        await _send(send, 403, None, body, base)

    def _parse(self, scope, headers: dict, body: bytes, cbor: bool):
        # AWS's order (recorded): empty body, malformed body, unknown target, then authentication, then types
        target = headers.get("x-amz-target", "")
        op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
        known = op in self._model.operation_names
        if not body:
            if known:
                raise E.SerializationException("")     # AWS: {"__type":"SerializationException"}, no message
            raise E.UnknownOperationException("")
        if cbor:
            raw = cbor_loads(body)                      # SerializationException on any malformed body
        else:
            try:
                raw = json_loads(body)
            except Exception:  # noqa: BLE001 - any decoder failure (or RecursionError) is a malformed body
                raise E.SerializationException("") from None
        if type(raw) is not dict:
            raise E.SerializationException("")
        if not known:
            raise E.UnknownOperationException("")
        region = self.region
        query = _query(scope)
        if self.auth_check or self.credentials is not None:
            check_present(headers, query)
        auth = headers.get("authorization")
        m = CREDENTIAL.search(auth or query.get("X-Amz-Credential", ""))
        if m is not None:
            region = m.group(3)
        if self.credentials is not None:
            verify(self.credentials, scope, headers, body)
        ishape = self._model.operation_model(op).input_shape
        if op == "PutRecords":
            params = put_records_params(ishape, raw, cbor)
            if params is not None:
                return op, params, region, True
        try:
            params = from_wire(ishape, raw, cbor) if ishape is not None else {}
        except (RecursionError, ValueError, OverflowError, ArithmeticError, TypeError) as exc:
            if isinstance(exc, E.FastkinError):
                raise
            raise E.SerializationException("") from None  # a value no decoder rule foresaw: still the caller's
        return op, params, region, False

    async def _too_large(self, send, base: list, cbor: bool = False) -> None:
        doc = {"message": f"Request must be smaller than {self.max_body_bytes} bytes."}
        await _send(send, 413, CBOR_TYPE if cbor else "application/json",
                    cbor_dumps(doc) if cbor else json.dumps(doc).encode(), base)

    async def _error(self, send, code: str, message: str, status: int, cbor: bool, base: list) -> None:
        # AWS's bodies: SerializationException carries "Message" (capital M), every other error "message";
        # errors without a text (UnknownOperationException, a malformed body) carry no message field at all.
        doc = {"__type": code}
        if message:
            doc["Message" if code == "SerializationException" else "message"] = message
        payload = cbor_dumps(doc) if cbor else json.dumps(doc).encode()
        await _send(send, status, CBOR_TYPE if cbor else JSON_TYPE, payload,
                    [*base, (b"x-amzn-errortype", code.encode())])

    async def _stream(self, receive, send, sub, cbor: bool, base: list) -> None:
        self._subs.add(sub)

        async def watch_disconnect():
            while (await receive())["type"] != "http.disconnect":
                pass
            sub.close()

        watcher = asyncio.ensure_future(watch_disconnect())
        shape = self._model.shape_for("SubscribeToShardEvent")
        ptype = CBOR_TYPE if cbor else "application/json"
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", EVENTSTREAM_TYPE.encode()), *base]})
            first = encode_event({":message-type": "event", ":event-type": "initial-response",
                                  ":content-type": ptype}, cbor_dumps({}) if cbor else b"{}")
            await send({"type": "http.response.body", "body": first, "more_body": True})
            last_sent = asyncio.get_running_loop().time()
            while not self.stopping:
                ev = sub.poll()
                if ev is None:
                    break
                body = ev["SubscribeToShardEvent"]
                now = asyncio.get_running_loop().time()
                if not body["Records"] and "ChildShards" not in body and now - last_sent < 1.0:
                    await asyncio.sleep(0.05)
                    continue
                wire = to_wire(shape, body, cbor)
                payload = cbor_dumps(wire) if cbor else json.dumps(wire, separators=(",", ":")).encode()
                msg = encode_event({":message-type": "event", ":event-type": "SubscribeToShardEvent",
                                    ":content-type": ptype}, payload)
                await send({"type": "http.response.body", "body": msg, "more_body": True})
                last_sent = now
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            sub.close()
            self._subs.discard(sub)


async def _send(send, status: int, ctype: str | None, payload: bytes, headers: list) -> None:
    head = [(b"content-length", str(len(payload)).encode()), *headers]
    if ctype is not None:
        head.insert(0, (b"content-type", ctype.encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": payload})


def _query(scope) -> dict[str, str]:
    qs = scope.get("query_string", b"")
    if not qs:
        return {}
    from urllib.parse import parse_qsl
    return dict(parse_qsl(qs.decode("latin-1"), keep_blank_values=True))


# ---------------------------------------------------------------------------------------------

def hypercorn_config(host: str = "127.0.0.1", port: int = 4567, access_log: str | None = None,
                     certfile: str | None = None, keyfile: str | None = None, fd: int | None = None):
    """hypercorn's Config for one listening socket: HTTP/1.1 and HTTP/2 (h2c in cleartext; with
    ``certfile``/``keyfile``, TLS with ALPN ``h2`` then ``http/1.1``). ``fd``: an already bound socket's
    file descriptor, which hypercorn then owns (host and port are not used)."""
    from hypercorn.config import Config
    cfg = Config()
    cfg.bind = [f"fd://{fd}"] if fd is not None else [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    cfg.accesslog = access_log
    cfg.errorlog = "-"
    cfg.graceful_timeout = 5.0
    cfg.keep_alive_timeout = 75.0
    cfg.alpn_protocols = ["h2", "http/1.1"]
    cfg.h2_max_concurrent_streams = 256         # SDKs multiplex requests and subscriptions on one connection
    if certfile is not None:
        cfg.certfile, cfg.keyfile = certfile, keyfile
    return cfg


async def serve_async(app: KinesisApp, host: str = "127.0.0.1", port: int = 4567, access_log: str | None = None,
                      shutdown: asyncio.Event | None = None, on_ready=None, certfile: str | None = None,
                      keyfile: str | None = None, fd: int | None = None) -> None:
    """Serve until ``shutdown`` is set (or SIGTERM/SIGINT in the main thread). With ``certfile`` and
    ``keyfile``, serve TLS. ``fd``: serve on this already bound socket (see listen())."""
    from hypercorn.asyncio import serve

    shutdown = shutdown or asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shutdown.set)

    async def trigger():
        await shutdown.wait()
        app.close_subscriptions()

    cfg = hypercorn_config(host, port, access_log, certfile, keyfile, fd)
    if on_ready is not None:
        loop.call_soon(on_ready)
    await serve(app, cfg, shutdown_trigger=trigger, mode="asgi")


class ServerThread:
    """Run a server in a background thread (tests, notebooks): ``with ServerThread(port=0) as s: s.url``.

    ``tls=True`` serves HTTPS with a self-signed certificate generated into a temporary directory (removed
    on stop) unless ``certfile``/``keyfile`` are given; ``.cafile`` is the certificate to trust."""

    def __init__(self, app: KinesisApp | None = None, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False,
                 certfile: str | None = None, keyfile: str | None = None, **app_kw) -> None:
        import socket
        self.app = app or KinesisApp(**app_kw)
        self.host = host
        if port == 0:
            with socket.socket() as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
        self.port = port
        self.tls = tls or certfile is not None
        self.certfile, self.keyfile = certfile, keyfile
        self._tmpdir: str | None = None
        self.url = f"{'https' if self.tls else 'http'}://{host}:{port}"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None

    @property
    def cafile(self) -> str | None:
        return self.certfile if self.tls else None

    def start(self) -> ServerThread:
        import socket
        import time

        if self.tls and self.certfile is None:
            self._tmpdir = tempfile.mkdtemp(prefix="fastkin-tls-")
            self.certfile, self.keyfile = self_signed_certificate(self._tmpdir, _cert_hosts(self.host))

        def run():
            self._loop = asyncio.new_event_loop()
            self._shutdown = asyncio.Event()
            self._loop.run_until_complete(serve_async(self.app, self.host, self.port, shutdown=self._shutdown,
                                                      certfile=self.certfile, keyfile=self.keyfile))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fastkin-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"fastkin server did not start on {self.url}")

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
    """A TCP socket bound to host:port (SO_REUSEADDR, as hypercorn sets it); OSError when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
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
                                            "AWS CLI. Each region has its own streams; state lives in memory.")
    add_arguments(p)
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"fastkin serve: --port must be between 0 and 65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        import hypercorn  # noqa: F401 - the HTTP server: say which extra is missing, in one line
    except ImportError:
        print("fastkin serve needs hypercorn: pip install 'fastkin[server]' (from a checkout: pip install "
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
    limits = DEFAULT_LIMITS.replace(shard_limit=args.shard_limit)
    app = KinesisApp(region=args.region, account_id=args.account_id, limits=limits, quotas=not args.no_quotas,
                     create_latency=args.create_stream_ms / 1000.0, delete_latency=args.delete_stream_ms / 1000.0,
                     update_latency=args.update_stream_ms / 1000.0,
                     consumer_latency=args.consumer_ms / 1000.0, credentials=creds, auth_check=not args.no_auth_check,
                     max_body_bytes=args.max_body_bytes, max_concurrency=args.max_concurrency)
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
    try:
        asyncio.run(serve_async(app, args.host, port, access_log="-" if args.access_log else None,
                                certfile=certfile, keyfile=keyfile, fd=sock.detach()))
    finally:
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
    p.add_argument("--credentials", action="append", metavar="AKID:SECRET",
                   help="verify SigV4 against these credentials (repeatable; default: only the Authorization "
                        "header's presence and shape are checked)")
    p.add_argument("--no-auth-check", action="store_true",
                   help="accept requests without an Authorization header (hand-written clients, load generators)")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY, help="larger requests get 413")
    p.add_argument("--max-concurrency", type=int, default=256, help="requests handled at once")
    p.add_argument("--access-log", action="store_true", help="print an access log line per request")
    p.add_argument("--tls", action="store_true",
                   help="serve HTTPS (ALPN h2 and http/1.1) with a self-signed certificate generated on start")
    p.add_argument("--cert", metavar="PEM", help="serve HTTPS with this certificate (chain) instead (implies --tls)")
    p.add_argument("--key", metavar="PEM", help="the private key of --cert")
    p.add_argument("--cert-dir", metavar="DIR",
                   help="write the generated cert.pem/key.pem here, to trust it from clients (implies --tls; "
                        "default: a temporary directory removed on exit)")

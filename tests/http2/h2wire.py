"""Wire-level helpers for tests/http2: a small blocking HTTP/2 client on the ``h2`` library (prior
knowledge, ``Upgrade: h2c`` or TLS with ALPN; per-stream control over flow-control acknowledgements),
CBOR written the way the Java SDKs' Jackson CBORGenerator writes it, a strict reader for what they
expect back, and an event-stream decoder. Connects to 127.0.0.1 only."""
from __future__ import annotations

import datetime as _dt
import json
import socket
import ssl
import struct
import time

import cbor2
import h2.config
import h2.connection
import h2.events
import h2.settings
from botocore.eventstream import EventStreamBuffer

from fastkin.wire.sigv4 import placeholder_auth

TARGET = "Kinesis_20131202."
JSON_CT = "application/x-amz-json-1.1"
CBOR_CT = "application/x-amz-cbor-1.1"
START = 1_700_000_000.0                 # the virtual clock every test engine starts at


# ---------------------------------------------------------------------------------------------
# CBOR as the Java SDKs write it (aws-sdk-java SdkCborGenerator / aws-sdk-java-v2 SdkCborGenerator
# on Jackson's CBORGenerator): objects and arrays of indefinite length (0xBF/0x9F ... 0xFF, as
# writeStartObject()/writeStartArray() emit them), definite text and byte strings, the shortest
# integer encoding, and a timestamp as tag 1 followed by an integer of epoch MILLISECONDS.

class JavaDate:
    """A java.util.Date / Instant: epoch milliseconds."""

    def __init__(self, millis: int) -> None:
        self.millis = int(millis)


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | extra]) + struct.pack(fmt, n)
    raise ValueError(n)


def java_cbor(obj) -> bytes:
    if isinstance(obj, JavaDate):
        return b"\xc1" + java_cbor(obj.millis)               # tag 1, then the long
    if obj is True or obj is False:
        return b"\xf5" if obj else b"\xf4"
    if isinstance(obj, int):
        return _head(0, obj) if obj >= 0 else _head(1, -1 - obj)
    if isinstance(obj, float):
        return b"\xfb" + struct.pack(">d", obj)
    if isinstance(obj, (bytes, bytearray)):
        return _head(2, len(obj)) + bytes(obj)
    if isinstance(obj, str):
        b = obj.encode()
        return _head(3, len(b)) + b
    if isinstance(obj, (list, tuple)):
        return b"\x9f" + b"".join(java_cbor(v) for v in obj) + b"\xff"
    if isinstance(obj, dict):
        return b"\xbf" + b"".join(java_cbor(k) + java_cbor(v) for k, v in obj.items()) + b"\xff"
    raise TypeError(type(obj))


class Millis(int):
    """A CBOR tag-1 value read back (what Java's Date/Instant unmarshaller receives)."""


def _epoch_millis(value, immutable):
    # aws-sdk-java-v2 reads it with Long.parseLong / Instant.ofEpochMilli: an integer, nothing else
    assert isinstance(value, int) and not isinstance(value, bool), f"tag 1 holds {value!r}"
    return Millis(value)


def _other_tag(decoder, tag):
    raise AssertionError(f"unexpected CBOR tag {tag.tag}")


def java_read(body: bytes):
    return cbor2.loads(body, semantic_decoders={1: _epoch_millis}, tag_hook=_other_tag)


def check_java_shape(shape, value, path: str = "$") -> None:
    """Assert ``value`` (decoded by java_read) is what a Java SDK unmarshaller accepts for ``shape``."""
    t = shape.type_name
    if t == "structure":
        assert isinstance(value, dict), f"{path}: not a map"
        for name in shape.required_members:
            if name == "ContinuationSequenceNumber" and value.get("ChildShards"):
                continue                        # null at a shard's end, as AWS sends it (the KCL checks this)
            assert name in value, f"{path}: required member {name} missing"
        for k, v in value.items():
            assert k in shape.members, f"{path}: unknown member {k}"
            check_java_shape(shape.members[k], v, f"{path}.{k}")
    elif t == "list":
        assert isinstance(value, list), f"{path}: not an array"
        for i, v in enumerate(value):
            check_java_shape(shape.member, v, f"{path}[{i}]")
    elif t == "map":
        assert isinstance(value, dict), f"{path}: not a map"
        for k, v in value.items():
            check_java_shape(shape.key, k, f"{path}.key")
            check_java_shape(shape.value, v, f"{path}[{k}]")
    elif t == "string":
        assert isinstance(value, str), f"{path}: {value!r} is not a text string"
    elif t in ("integer", "long"):
        assert type(value) is int, f"{path}: {value!r} is not an integer"
    elif t == "boolean":
        assert isinstance(value, bool), f"{path}: {value!r} is not a boolean"
    elif t == "timestamp":
        assert isinstance(value, Millis), f"{path}: {value!r} is not tag 1 + epoch milliseconds"
        assert 10 ** 12 < value < 10 ** 14, f"{path}: {value} does not look like epoch milliseconds"
    elif t == "blob":
        assert isinstance(value, bytes), f"{path}: {value!r} is not a byte string"
    else:  # pragma: no cover
        raise AssertionError(f"{path}: unexpected shape type {t}")


def events(data: bytes) -> list:
    """Decode an AWS event stream body into botocore EventStreamMessages (CRCs checked)."""
    buf = EventStreamBuffer()
    buf.add_data(data)
    return list(buf)


def event_payload(msg):
    """An event-stream message's payload, decoded by its :content-type."""
    ctype = msg.headers.get(":content-type", "application/json")
    return java_read(msg.payload) if ctype == CBOR_CT else json.loads(msg.payload)


def utc(millis: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(millis / 1000, _dt.timezone.utc)


# ---------------------------------------------------------------------------------------------

class Stream:
    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.data = bytearray()
        self.ended = False
        self.reset = False
        self.unacked = 0           # flow-controlled bytes received and not yet acknowledged
        self.max_unacked = 0


class H2Client:
    """A blocking HTTP/2 client that sees every frame. ``window`` sets SETTINGS_INITIAL_WINDOW_SIZE (the
    per-stream receive window); data of streams in ``hold`` is not acknowledged until ``release``."""

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None = None, window: int | None = None,
                 upgrade: bool = False, timeout: float = 10.0) -> None:
        assert host == "127.0.0.1"
        self.timeout = timeout
        sock = socket.create_connection((host, port), timeout=timeout)
        self.alpn = None
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host)
            self.alpn = sock.selected_alpn_protocol()
        self.sock = sock
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.streams: dict[int, Stream] = {}
        self.hold: set[int] = set()
        self.settings_acked = 0
        self.authority = f"{host}:{port}"
        self.upgrade_response = b""
        if upgrade:
            self._upgrade()
        else:
            self.conn.initiate_connection()
            self.flush()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
            self.flush()
            acked = self.settings_acked
            self.pump_until(lambda: self.settings_acked > acked)

    def _upgrade(self) -> None:
        """RFC 7540 §3.2: a body-less HTTP/1.1 request with Upgrade: h2c; its response comes on stream 1."""
        settings = self.conn.initiate_upgrade_connection()
        self.sock.sendall(b"GET /health HTTP/1.1\r\nHost: " + self.authority.encode() + b"\r\n"
                          b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: " + settings +
                          b"\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed during the upgrade"
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        self.upgrade_response = head
        self.streams[1] = Stream()
        self.flush()                    # the client connection preface, after the 101
        if rest:
            self._handle(self.conn.receive_data(rest))
            self.flush()

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self.flush()
        except Exception:  # noqa: BLE001 - best effort
            pass
        self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    # -- requests -------------------------------------------------------------------------------
    def request(self, method: str, headers: list[tuple[str, str]], body: bytes = b"", path: str = "/") -> int:
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = Stream()
        hdrs = [(":method", method), (":path", path), (":scheme", "https" if self.alpn else "http"),
                (":authority", self.authority), *headers]
        if body:
            hdrs.append(("content-length", str(len(body))))
        self.conn.send_headers(sid, [(k.encode(), v.encode()) for k, v in hdrs], end_stream=not body)
        self.flush()
        view = memoryview(body)
        while view:
            n = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size, len(view))
            if n <= 0:
                self.pump_once()
                continue
            self.conn.send_data(sid, bytes(view[:n]), end_stream=n == len(view))
            view = view[n:]
            self.flush()
        return sid

    def call(self, op: str, body, ctype: str = JSON_CT, extra: list | None = None) -> int:
        data = body if isinstance(body, bytes) else (java_cbor(body) if ctype == CBOR_CT else json.dumps(body).encode())
        auth = [(k.lower(), v) for k, v in placeholder_auth().items()]
        return self.request("POST", [("x-amz-target", TARGET + op), ("content-type", ctype), *auth, *(extra or [])],
                            data)

    def response(self, sid: int) -> Stream:
        self.pump_until(lambda: self.streams[sid].ended or self.streams[sid].reset)
        return self.streams[sid]

    def reset(self, sid: int) -> None:
        self.conn.reset_stream(sid, error_code=8)   # CANCEL
        self.flush()

    def release(self, sid: int) -> None:
        self.hold.discard(sid)
        s = self.streams[sid]
        if s.unacked:
            self.conn.acknowledge_received_data(s.unacked, sid)
            s.unacked = 0
            self.flush()

    # -- receiving ------------------------------------------------------------------------------
    def pump_once(self, timeout: float | None = None) -> None:
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("server closed the connection")
        self._handle(self.conn.receive_data(data))   # h2 raises FlowControlError if the server overruns a window
        self.flush()

    def pump_until(self, pred, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("condition not reached")
            try:
                self.pump_once(left)
            except TimeoutError:
                raise TimeoutError("condition not reached") from None

    def pump_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.pump_once(left)
            except TimeoutError:
                return

    def _handle(self, evs) -> None:
        for ev in evs:
            if isinstance(ev, h2.events.ResponseReceived):
                s = self.streams[ev.stream_id]
                hd = {k.decode(): v.decode() for k, v in ev.headers}
                if hd.get(":status", "").startswith("1"):
                    continue
                s.status = int(hd[":status"])
                s.headers = hd
            elif isinstance(ev, h2.events.DataReceived):
                s = self.streams[ev.stream_id]
                s.data += ev.data
                if ev.stream_id in self.hold:
                    s.unacked += ev.flow_controlled_length
                    s.max_unacked = max(s.max_unacked, s.unacked)
                else:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.streams[ev.stream_id].ended = True
            elif isinstance(ev, h2.events.StreamReset):
                self.streams[ev.stream_id].reset = True
            elif isinstance(ev, h2.events.SettingsAcknowledged):
                self.settings_acked += 1
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise ConnectionError(f"server ended the connection: {ev}")

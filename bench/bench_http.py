"""fastkin serve over HTTP/1.1 and HTTP/2: server records/s and CPU per call for PutRecords (500 x 100 B).

The server runs in a subprocess (``python -m fastkin serve --no-quotas --no-auth-check``, since the
requests are unsigned; its CPU time is read from /proc). The load generator is this process: asyncio on
raw sockets with every request body encoded once in advance, so a call costs it a few socket writes and
reads and (for HTTP/2) the h2 library's framing, far less than the server's work. Its own CPU time is
reported next to the server's so that can be checked: the server is the bottleneck when it is near
100 % of a core and the load generator is well below.

  HTTP/1.1         8 keep-alive connections, one request in flight on each
  HTTP/2 (h2c)     1 connection, 16 concurrent streams (prior knowledge, as the JavaScript SDK connects)
  HTTP/2 (h2c) x4  4 connections, 8 concurrent streams each
  HTTP/2 (TLS)     1 connection over TLS (ALPN h2), 16 concurrent streams
  HTTP/1.1 CBOR    as HTTP/1.1, with the body in CBOR (the Java SDKs' default)

    PYTHONPATH=src python bench/bench_http.py                      # all modes, prints a markdown table
    PYTHONPATH=src python bench/bench_http.py --seconds 10 h2c     # one mode, longer
    PYTHONPATH=src python -m pytest bench/bench_http.py -p no:cacheprovider -o python_files='bench_*.py'
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import time

RECORDS = 500
DATA_BYTES = 100
SHARDS = 16
TARGET = "Kinesis_20131202."

MODES = {
    # name: (label, protocol, connections, streams per connection, tls, body encoding)
    "http1": ("HTTP/1.1, 8 connections", "1.1", 8, 1, False, "json"),
    "h2c": ("HTTP/2 (h2c), 1 connection x 16 streams", "2", 1, 16, False, "json"),
    "h2c-4": ("HTTP/2 (h2c), 4 connections x 8 streams", "2", 4, 8, False, "json"),
    "h2-tls": ("HTTP/2 (TLS, ALPN h2), 1 connection x 16 streams", "2", 1, 16, True, "json"),
    "http1-cbor": ("HTTP/1.1 CBOR, 8 connections", "1.1", 8, 1, False, "cbor"),
}


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _body(encoding: str) -> tuple[bytes, str]:
    rnd = random.Random(0)
    recs = [(bytes(rnd.getrandbits(8) for _ in range(DATA_BYTES)), f"user-{rnd.randrange(10**6)}")
            for _ in range(RECORDS)]
    if encoding == "cbor":
        import cbor2
        doc = {"StreamName": "bench", "Records": [{"Data": d, "PartitionKey": k} for d, k in recs]}
        return cbor2.dumps(doc), "application/x-amz-cbor-1.1"
    doc = {"StreamName": "bench", "Records": [{"Data": base64.b64encode(d).decode(), "PartitionKey": k}
                                              for d, k in recs]}
    return json.dumps(doc, separators=(",", ":")).encode(), "application/x-amz-json-1.1"


class Server:
    """``python -m fastkin serve`` in a subprocess on a free loopback port."""

    def __init__(self, tls: bool) -> None:
        self.port = _free_port()
        self.tmp = tempfile.mkdtemp(prefix="fastkin-bench-") if tls else None
        cmd = [sys.executable, "-m", "fastkin", "serve", "--port", str(self.port), "--no-quotas",
               "--no-auth-check"]      # the load generator sends unsigned requests
        if tls:
            cmd += ["--cert-dir", self.tmp]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ssl = None
        self.cafile = os.path.join(self.tmp, "cert.pem") if tls else None
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("fastkin serve did not start") from None
                time.sleep(0.05)
        if tls:
            self.ssl = ssl.create_default_context(cafile=self.cafile)      # the load generator's own
            self.ssl.set_alpn_protocols(["h2", "http/1.1"])

    def cpu(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.tmp:
            import shutil
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- load generators ------------------------------------------------------------------------------

async def _h1_worker(port: int, request: bytes, stop: float, counts: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < stop:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head[:200])
            i = head.lower().index(b"content-length:") + 15
            n = int(head[i:head.index(b"\r\n", i)])
            await reader.readexactly(n)
            counts[0] += 1
    finally:
        writer.close()


async def _h2_worker(port: int, body: bytes, ctype: str, streams: int, stop: float, counts: list,
                     ssl_ctx: ssl.SSLContext | None) -> None:
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings

    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_ctx,
                                                   server_hostname="127.0.0.1" if ssl_ctx else None)
    if ssl_ctx is not None:
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
    conn.increment_flow_control_window((1 << 24) - 65535)
    headers = [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"https" if ssl_ctx else b"http"),
               (b":authority", b"127.0.0.1:%d" % port), (b"x-amz-target", (TARGET + "PutRecords").encode()),
               (b"content-type", ctype.encode()), (b"content-length", b"%d" % len(body))]
    to_send: dict[int, memoryview] = {}
    status: dict[int, bytes] = {}
    in_flight = 0

    def start() -> None:
        nonlocal in_flight
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers)
        to_send[sid] = memoryview(body)
        in_flight += 1

    def push() -> None:
        for sid in list(to_send):
            view = to_send[sid]
            while view:
                n = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, len(view))
                if n <= 0:
                    break
                conn.send_data(sid, view[:n].tobytes(), end_stream=n == len(view))
                view = view[n:]
            if view:
                to_send[sid] = view
            else:
                del to_send[sid]

    for _ in range(streams):
        start()
    push()
    writer.write(conn.data_to_send())
    while in_flight:
        data = await reader.read(1 << 18)
        if not data:
            raise RuntimeError("server closed the connection")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status[ev.stream_id] = dict(ev.headers)[b":status"]
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                if status.pop(ev.stream_id, None) != b"200":
                    raise RuntimeError(f"stream {ev.stream_id} failed")
                in_flight -= 1
                counts[0] += 1
                if time.monotonic() < stop:
                    start()
            elif isinstance(ev, h2.events.StreamReset):
                raise RuntimeError(f"stream {ev.stream_id} reset")
        push()
        out = conn.data_to_send()
        if out:
            writer.write(out)
    conn.close_connection()
    writer.write(conn.data_to_send())
    writer.close()


def measure(mode: str, seconds: float = 5.0, warmup: float = 1.0) -> dict:
    """Drive one server with one mode for ``seconds`` (after ``warmup``); return the figures."""
    label, proto, conns, streams, tls, enc = MODES[mode]
    body, ctype = _body(enc)
    server = Server(tls)
    try:
        import httpx
        url = f"{'https' if tls else 'http'}://127.0.0.1:{server.port}/"
        r = httpx.post(url, content=json.dumps({"StreamName": "bench", "ShardCount": SHARDS}).encode(),
                       headers={"X-Amz-Target": TARGET + "CreateStream", "Content-Type": "application/x-amz-json-1.1"},
                       verify=ssl.create_default_context(cafile=server.cafile) if tls else True)
        r.raise_for_status()
        request = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Amz-Target: %sPutRecords\r\nContent-Type: %s\r\n"
                   b"Content-Length: %d\r\n\r\n" % (server.port, TARGET.encode(), ctype.encode(), len(body))) + body

        async def run(duration: float) -> int:
            counts = [0]
            stop = time.monotonic() + duration
            if proto == "1.1":
                jobs = [_h1_worker(server.port, request, stop, counts) for _ in range(conns)]
            else:
                jobs = [_h2_worker(server.port, body, ctype, streams, stop, counts, server.ssl) for _ in range(conns)]
            await asyncio.gather(*jobs)
            return counts[0]

        asyncio.run(run(warmup))
        cpu0, own0, t0 = server.cpu(), time.process_time(), time.perf_counter()
        calls = asyncio.run(run(seconds))
        wall = time.perf_counter() - t0
        cpu, own = server.cpu() - cpu0, time.process_time() - own0
    finally:
        server.close()
    return {"mode": mode, "label": label, "calls": calls, "wall_s": wall,
            "records_per_s": calls * RECORDS / wall, "calls_per_s": calls / wall,
            "server_cpu_ms_per_call": 1000 * cpu / calls, "server_cpu_util": cpu / wall,
            "loadgen_cpu_ms_per_call": 1000 * own / calls, "loadgen_cpu_util": own / wall,
            "body_bytes": len(body), "in_flight": conns * streams}


def table(rows: list[dict]) -> str:
    out = ["| transport | records/s | calls/s | server CPU per call | server CPU | load generator CPU per call | "
           "load generator CPU |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['label']} | {r['records_per_s']:,.0f} | {r['calls_per_s']:,.0f} | "
                   f"{r['server_cpu_ms_per_call']:.2f} ms | {100 * r['server_cpu_util']:.0f} % | "
                   f"{r['loadgen_cpu_ms_per_call']:.2f} ms | {100 * r['loadgen_cpu_util']:.0f} % |")
    return "\n".join(out)


# -- pytest entry (bench/ is its own rootdir: see bench/pytest.ini) --------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:
    _ROWS: list[dict] = []

    @pytest.fixture(scope="module", autouse=True)
    def _summary():
        yield
        if _ROWS:
            print(f"\n\nfastkin serve, PutRecords (500 x 100 B), load average {os.getloadavg()[0]:.1f}\n")
            print(table(_ROWS))

    @pytest.mark.parametrize("mode", list(MODES))
    def test_http(benchmark, mode):
        res = {}

        def run():
            res.update(measure(mode, seconds=float(os.environ.get("FASTKIN_BENCH_HTTP_SECONDS", "5"))))

        benchmark.pedantic(run, rounds=1, iterations=1)
        benchmark.extra_info.update(res)
        _ROWS.append(res)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("modes", nargs="*", metavar="MODE", help=f"any of {', '.join(MODES)} (default: all)")
    p.add_argument("--seconds", type=float, default=5.0, help="timed seconds per mode (default 5)")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        p.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    rows = []
    for m in args.modes or list(MODES):
        rows.append(measure(m, args.seconds))
        print(f"{m}: {rows[-1]['records_per_s']:,.0f} records/s", file=sys.stderr, flush=True)
    print(f"fastkin serve, PutRecords ({RECORDS} x {DATA_BYTES} B), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

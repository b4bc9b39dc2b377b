"""Kinesis servers under a real load generator (issue 13): requests/s, records/s, server CPU per request, p50/p99.

Each row starts one server in a subprocess pinned to CPU 0 (``taskset -c 0``) on a free loopback port, creates the
stream it needs, and drives it from CPU 1 with wrk (HTTP/1.1: 1 thread, 16 keep-alive connections) or h2load
(h2c, HTTP/2 by prior knowledge: 16 connections x 1 stream), after a short warm-up run. Server CPU is read from
/proc (utime + stime of the server's process tree) at the start and end of the measured run and divided by the
requests answered in it. A fresh server for every row, so no row inherits another's stored records.

  servers     fastkin serve (--no-auth-check --no-quotas); kinesalite 3.3.3 (node, npm-installed once into a cache
              dir); moto's server (needs flask and flask-cors); and, for the record of the server design, the same
              fastkin ASGI app (bench/_asgi_factory.py: quotas off, no auth check) on uvicorn (httptools, uvloop)
              and on granian (1 worker, 1 runtime thread); only when named with --only: fastkin-interval and
              fastkin-always (fastkin serve --data-dir on a fresh temporary directory, --fsync interval / always)
  workloads   PutRecord (100 B; wrk varies the partition key per request, h2load sends one fixed key),
              PutRecords (500 x 100 B, random keys), GetRecords (Limit 10,000 from a 1-shard stream holding 10,000
              x 100 B, one TRIM_HORIZON iterator reused for the whole run: iterators stay valid for 5 minutes)

Every request carries the same placeholder Authorization and X-Amz-Date headers (kinesalite and moto's server need
them; fastkin checks only their shape, and not at all with --no-auth-check). Ratios are against kinesalite measured
in the same run; absolute figures move with whatever else the machine runs. Nothing here asserts a time.

Load generators (Debian/Ubuntu): ``apt-get install wrk nghttp2-client`` (h2load is in nghttp2-client). A row
whose tool, runtime or server is missing is skipped with the reason printed.

    PYTHONPATH=src python bench/bench_server.py                     # every row, ~8 s each
    PYTHONPATH=src python bench/bench_server.py --quick             # ~3 s each
    PYTHONPATH=src python bench/bench_server.py --only fastkin kinesalite --only put_record h1 --json out.json
    PYTHONPATH=src python bench/bench_server.py --only fastkin,fastkin-interval,fastkin-always --only put_records,h1
"""
from __future__ import annotations

import argparse
import atexit
import base64
import http.client
import importlib.metadata
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from fastkin.wire.sigv4 import placeholder_auth

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
TARGET = "Kinesis_20131202."
JSON_TYPE = "application/x-amz-json-1.1"
AUTH = placeholder_auth()
STREAM, GET_STREAM = "bench", "bench-get"
SHARDS = 8            # kinesalite allows 10 open shards per account by default: 8 + GET_STREAM's 1
DATA_BYTES, BATCH, GET_LIMIT = 100, 500, 10_000

CACHE = os.path.join(os.path.expanduser("~"), ".cache", "fastkin-bench")
KINESALITE = "kinesalite@3.3.3"
# the same install bench_boto.py uses: npm install --prefix $FASTKIN_KINESALITE_DIR (default ~/.cache/fastkin-bench)
KINESALITE_DIR = os.environ.get("FASTKIN_KINESALITE_DIR", CACHE)
# kinesalite's cli.js listens on every interface; this is cli.js --createStreamMs 0 ... on 127.0.0.1 only
KINESALITE_JS = ("require(process.argv[1])({createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0})"
                 ".listen(+process.argv[2], '127.0.0.1')")
# flask and flask-cors for moto's server when the venv lacks them, without touching the venv:
MOTO_DEPS = os.environ.get("FASTKIN_MOTO_DEPS", os.path.join(CACHE, "moto-server-deps"))
MOTO_DEPS_INSTALL = (f"python -m pip install --no-deps --target {MOTO_DEPS} flask flask-cors jinja2 itsdangerous "
                     "blinker   (or pip install 'moto[server]')")

PROTOCOLS = {"h1": "HTTP/1.1", "h2c": "h2c"}
WORKLOADS = {"put_record": "PutRecord (100 B)", "put_records": "PutRecords (500 x 100 B)",
             "get_records": "GetRecords (10,000 x 100 B)"}
ALIASES = {"putrecord": "put_record", "putrecords": "put_records", "getrecords": "get_records",
           "http1": "h1", "http/1.1": "h1", "h2": "h2c", "moto-server": "moto", "fastkin-serve": "fastkin"}


class Skip(Exception):
    """A row that cannot run here; the message says why."""


class RowFailed(Exception):
    """A row that started and went wrong."""


# -- child processes: each in its own process group, all stopped on exit (Ctrl-C and SIGTERM included) ------------

_CHILDREN: list[subprocess.Popen] = []


def _spawn(cmd: list[str], *, cpu: int | None, env: dict | None = None, out=None) -> subprocess.Popen:
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out if out is not None else subprocess.DEVNULL,
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _CHILDREN.append(p)
    return p


def _stop(p: subprocess.Popen, timeout: float = 10.0) -> None:
    try:
        if p.poll() is None:
            _signal_group(p, signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                p.wait(timeout=5)
        _signal_group(p, signal.SIGKILL)         # a worker the leader left behind (granian spawns one)
    finally:
        if p in _CHILDREN:
            _CHILDREN.remove(p)


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_all() -> None:
    for p in list(_CHILDREN):
        try:
            _stop(p, timeout=3)
        except Exception:                              # noqa: BLE001 - best effort at exit
            pass


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")      # as Ctrl-C: stop the children, print what was measured


# -- measuring ----------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree_cpu(pid: int) -> float:
    """utime + stime (seconds) of ``pid`` and every live descendant (all threads included)."""
    parent, ticks = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d)] = int(fields[1])
        ticks[int(d)] = int(fields[11]) + int(fields[12])
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for c, pp in parent.items():
            if pp == p and c not in tree:
                tree.add(c)
                frontier.append(c)
    return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def _wait_idle(pid: int, timeout: float = 60.0) -> None:
    """Until the server stops burning CPU: a slow server is still answering requests a load generator gave up on
    (its warm-up run's last ones), and that must not land in the measured window."""
    deadline = time.monotonic() + timeout
    last = _tree_cpu(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = _tree_cpu(pid)
        if now - last < 0.03:
            return
        last = now


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def call(port: int, op: str, body: dict, timeout: float = 120.0) -> dict:
    """One raw Kinesis JSON call (placeholder auth); the decoded reply, or RowFailed on a non-200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/", json.dumps(body).encode(),
                     {"X-Amz-Target": TARGET + op, "Content-Type": JSON_TYPE, **AUTH})
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    if r.status != 200:
        raise RowFailed(f"{op}: HTTP {r.status}: {raw[:300]!r}")
    return json.loads(raw) if raw else {}


def _timed_call(port: int, op: str, body: bytes) -> tuple[float, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        t0 = time.perf_counter()
        conn.request("POST", "/", body, {"X-Amz-Target": TARGET + op, "Content-Type": JSON_TYPE, **AUTH})
        r = conn.getresponse()
        raw = r.read()
        dt = time.perf_counter() - t0
    finally:
        conn.close()
    if r.status != 200:
        raise RowFailed(f"{op}: HTTP {r.status}: {raw[:300]!r}")
    return dt, raw


def _create_stream(port: int, name: str, shards: int, deadline_s: float = 30.0) -> None:
    call(port, "CreateStream", {"StreamName": name, "ShardCount": shards})
    deadline = time.monotonic() + deadline_s
    while call(port, "DescribeStreamSummary", {"StreamName": name})["StreamDescriptionSummary"]["StreamStatus"] \
            != "ACTIVE":
        if time.monotonic() > deadline:
            raise RowFailed(f"stream {name} did not become ACTIVE in {deadline_s:.0f} s")
        time.sleep(0.05)


def _wait_ready(p: subprocess.Popen, port: int, log_path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        if p.poll() is not None:
            raise RowFailed(f"server exited with status {p.returncode} before answering:\n{_tail(log_path)}")
        try:
            call(port, "ListStreams", {}, timeout=5)
            return
        except (OSError, http.client.HTTPException, RowFailed, ValueError) as e:
            last = str(e)
        if time.monotonic() > deadline:
            raise RowFailed(f"server did not answer ListStreams within {timeout:.0f} s ({last}):\n{_tail(log_path)}")
        time.sleep(0.1)


def _tail(path: str, n: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in lines[-n:]) or "    (empty log)"


# -- the servers ----------------------------------------------------------------------------------------------------

def _pythonpath(*extra: str) -> dict:
    env = dict(os.environ)
    parts = [*extra, SRC] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _imports(python: str, modules: str, env: dict) -> tuple[bool, str]:
    try:
        r = subprocess.run([python, "-c", f"import {modules}"], env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return r.returncode == 0, (r.stderr.strip().splitlines() or [""])[-1]


def _kinesalite_pkg() -> tuple[str, str]:
    """(node, kinesalite's package dir), npm-installing it into KINESALITE_DIR on first use; Skip if impossible."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise Skip(f"kinesalite needs node and npm on PATH (node: {node}, npm: {npm})")
    pkg = os.path.join(KINESALITE_DIR, "node_modules", "kinesalite")
    if not os.path.exists(os.path.join(pkg, "index.js")):
        cmd = [npm, "install", "--prefix", KINESALITE_DIR, "--no-audit", "--no-fund", "--no-save", KINESALITE]
        print(f"installing {KINESALITE} (once): {' '.join(cmd)}", file=sys.stderr, flush=True)
        try:
            os.makedirs(KINESALITE_DIR, exist_ok=True)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Skip(f"`{' '.join(cmd)}` failed: {e}") from None
        if r.returncode != 0 or not os.path.exists(os.path.join(pkg, "index.js")):
            raise Skip(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {(r.stderr or r.stdout)[-500:]}")
    return node, pkg


class ServerKind:
    key = ""
    h2c: str | None = None        # None: probe for h2c; a string: the reason it is never tried

    def __init__(self, python: str) -> None:
        self.python = python
        self.label = self.key

    def command(self, port: int) -> tuple[list[str], dict | None]:
        raise NotImplementedError

    def check(self) -> None:
        """Raise Skip when this server cannot run here; set ``label``."""


class FastkinServe(ServerKind):
    key = "fastkin"

    def check(self) -> None:
        self.label = "fastkin serve"

    def command(self, port):
        return [self.python, "-m", "fastkin", "serve", "--port", str(port), "--no-auth-check", "--no-quotas"], \
            _pythonpath()


class Kinesalite(ServerKind):
    key = "kinesalite"
    h2c = "kinesalite (node's http module) speaks HTTP/1.1 only"

    def check(self) -> None:
        self.node, self.pkg = _kinesalite_pkg()
        try:
            with open(os.path.join(self.pkg, "package.json")) as f:
                version = json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            version = "?"
        self.label = f"kinesalite {version} (node)"

    def command(self, port):
        return [self.node, "-e", KINESALITE_JS, self.pkg, str(port)], None


class MotoServer(ServerKind):
    key = "moto"
    h2c = "moto's server (werkzeug) speaks HTTP/1.1 only"

    def check(self) -> None:
        self.env = _pythonpath()
        ok, why = _imports(self.python, "moto.server, flask, flask_cors", self.env)
        if not ok and os.path.isdir(MOTO_DEPS):
            self.env = _pythonpath(MOTO_DEPS)
            ok, why = _imports(self.python, "moto.server, flask, flask_cors", self.env)
        if not ok:
            raise Skip(f"moto's server needs moto, flask and flask-cors importable ({why}); {MOTO_DEPS_INSTALL}")
        self.label = f"moto {_version('moto')} server"

    def command(self, port):
        return [self.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], self.env


class Uvicorn(ServerKind):
    key = "uvicorn"
    h2c = "uvicorn speaks HTTP/1.1 only"

    def check(self) -> None:
        ok, why = _imports(self.python, "uvicorn, httptools, uvloop, _asgi_factory", _pythonpath(HERE))
        if not ok:
            raise Skip(f"uvicorn with httptools and uvloop is not importable ({why}); pip install 'uvicorn[standard]'")
        self.label = f"fastkin app on uvicorn {_version('uvicorn')} (httptools, uvloop)"

    def command(self, port):
        return [self.python, "-m", "uvicorn", "--factory", "_asgi_factory:app", "--http", "httptools", "--loop",
                "uvloop", "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"], \
            _pythonpath(HERE)


class Granian(ServerKind):
    key = "granian"

    def check(self) -> None:
        ok, why = _imports(self.python, "granian, _asgi_factory", _pythonpath(HERE))
        if not ok:
            raise Skip(f"granian is not importable ({why}); pip install granian")
        self.label = f"fastkin app on granian {_version('granian')} (ASGI)"

    def command(self, port):
        return [self.python, "-m", "granian", "--interface", "asgi", "--factory", "_asgi_factory:app",
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--runtime-threads", "1",
                "--runtime-mode", "st", "--loop", "uvloop", "--http", "auto", "--no-access-log",
                "--log-level", "warning"], _pythonpath(HERE)


class FastkinDurable(FastkinServe):
    """fastkin serve on a data directory (a fresh temporary one per row, removed at exit): only with --only."""
    fsync = ""

    def check(self) -> None:
        self.label = f"fastkin serve --data-dir --fsync {self.fsync}"

    def command(self, port):
        cmd, env = super().command(port)
        d = tempfile.mkdtemp(prefix=f"fastkin-bench-{self.fsync}-")
        atexit.register(shutil.rmtree, d, True)
        return [*cmd, "--data-dir", d, "--fsync", self.fsync], env


class FastkinInterval(FastkinDurable):
    key, fsync = "fastkin-interval", "interval"


class FastkinAlways(FastkinDurable):
    key, fsync = "fastkin-always", "always"


SERVERS = {k.key: k for k in (FastkinServe, Kinesalite, MotoServer, Uvicorn, Granian, FastkinInterval, FastkinAlways)}
OPT_IN = ("fastkin-interval", "fastkin-always")   # run only when --only names them


# -- request bodies --------------------------------------------------------------------------------------------------

def _payloads(seed: int = 0) -> tuple[str, list[dict]]:
    rnd = random.Random(seed)
    one = base64.b64encode(rnd.randbytes(DATA_BYTES)).decode()
    batch = [{"Data": base64.b64encode(rnd.randbytes(DATA_BYTES)).decode(),
              "PartitionKey": f"pk-{rnd.randrange(10**9)}"} for _ in range(BATCH)]
    return one, batch


def _compact(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


# -- load generators -------------------------------------------------------------------------------------------------

def _lua_str(s: str) -> str:
    level = "=" * 4
    assert f"]{level}]" not in s
    return f"[{level}[{s}]{level}]"


def _wrk_script(path: str, op: str, body_file: str, key_prefix: bytes | None) -> None:
    """A wrk script: POST the body in body_file (or, with key_prefix, that prefix + a counter + '"}', i.e. a fresh
    partition key per request), and print the figures in one line when done."""
    lines = ['wrk.method = "POST"',
             f'wrk.headers["Content-Type"] = {_lua_str(JSON_TYPE)}',
             f'wrk.headers["X-Amz-Target"] = {_lua_str(TARGET + op)}']
    lines += [f'wrk.headers[ {_lua_str(k)} ] = {_lua_str(v)}' for k, v in AUTH.items()]
    lines.append(f'local f = assert(io.open({_lua_str(body_file)}, "rb")); wrk.body = f:read("*a"); f:close()')
    if key_prefix is not None:
        lines += [f"local head = {_lua_str(key_prefix.decode())}",
                  "local n = 0",
                  "request = function()",
                  "  n = n + 1",
                  "  return wrk.format(nil, nil, nil, head .. n .. '\"}')",
                  "end"]
    lines += ["done = function(summary, latency, requests)",
              "  local e = summary.errors",
              '  io.write(string.format("FASTKIN_WRK %d %d %d %d %d %d %d %d %.1f %.1f %.1f %.1f\\n",',
              "    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,",
              "    e.timeout, latency:percentile(50), latency:percentile(99), latency.mean, latency.max))",
              "end"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _run_tool(cmd: list[str], cpu: int | None, timeout: float, out_path: str) -> tuple[str, float]:
    """Run a load generator to completion; (its output, its CPU seconds)."""
    c0 = _children_cpu()
    with open(out_path, "w+b") as out:
        p = _spawn(cmd, cpu=cpu, out=out)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RowFailed(f"{cmd[0]} did not finish within {timeout:.0f} s") from None
        finally:
            _stop(p)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if p.returncode != 0:
        raise RowFailed(f"{' '.join(cmd[:3])}... exited with status {p.returncode}:\n{text[-1500:]}")
    return text, _children_cpu() - c0


def wrk(port: int, script: str, seconds: int, opts, out_path: str) -> dict:
    cmd = ["wrk", "-t", str(opts.threads), "-c", str(opts.connections), "-d", f"{seconds}s",
           "--timeout", f"{seconds + 30}s", "--latency", "-s", script, f"http://127.0.0.1:{port}/"]
    text, client_cpu = _run_tool(cmd, opts.client_cpu, seconds + 60, out_path)
    m = re.search(r"^FASTKIN_WRK (.+)$", text, re.M)
    if not m:
        raise RowFailed(f"no summary in wrk's output:\n{text[-1500:]}")
    v = [float(x) for x in m.group(1).split()]
    requests, duration_s = int(v[0]), v[1] / 1e6
    errors = {"connect": int(v[3]), "read": int(v[4]), "write": int(v[5]), "status": int(v[6]), "timeout": int(v[7])}
    return {"answered": requests - errors["status"], "seconds": duration_s, "errors": errors,
            "p50_us": v[8], "p99_us": v[9], "mean_us": v[10], "max_us": v[11], "client_cpu_s": client_cpu}


def _h2load_cmd(port: int, op: str, body_file: str, clients: int, streams: int) -> list[str]:
    cmd = ["h2load", "-t", "1", "-c", str(clients), "-m", str(streams), "-d", body_file,
           "-H", f"content-type: {JSON_TYPE}", "-H", f"x-amz-target: {TARGET}{op}"]
    for k, v in AUTH.items():
        cmd += ["-H", f"{k.lower()}: {v}"]
    return cmd


def _h2load_counts(text: str) -> tuple[int, dict]:
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
                  r"(\d+) timeout", text)
    s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not m or not s:
        raise RowFailed(f"unexpected h2load output:\n{text[-1500:]}")
    return int(s.group(1)), {"failed": int(m.group(5)), "errored": int(m.group(6)), "timeout": int(m.group(7)),
                             "4xx": int(s.group(3)), "5xx": int(s.group(4))}


def h2c_probe(port: int, opts, tmp: str) -> None:
    body = os.path.join(tmp, "list.json")
    with open(body, "wb") as f:
        f.write(b"{}")
    cmd = _h2load_cmd(port, "ListStreams", body, 1, 1) + ["-n", "1", f"http://127.0.0.1:{port}/"]
    try:
        text, _ = _run_tool(cmd, opts.client_cpu, 30, os.path.join(tmp, "h2c-probe.out"))
        ok, _ = _h2load_counts(text)
    except RowFailed as e:
        raise Skip(f"does not answer h2c (HTTP/2 prior knowledge): {str(e)[-300:]}") from None
    if ok != 1:
        raise Skip(f"does not answer h2c (HTTP/2 prior knowledge) with a 2xx: {text.strip()[-300:]}")


def h2load(port: int, op: str, body_file: str, seconds: int, opts, out_path: str) -> dict:
    log = out_path + ".log"
    cmd = _h2load_cmd(port, op, body_file, opts.connections, opts.h2_streams) + [
        "-D", str(seconds), "--log-file", log, f"http://127.0.0.1:{port}/"]
    text, client_cpu = _run_tool(cmd, opts.client_cpu, seconds + 60, out_path)
    ok, errors = _h2load_counts(text)
    m = re.search(r"finished in ([\d.]+)(ms|s)", text)
    if not m:
        raise RowFailed(f"unexpected h2load output:\n{text[-1500:]}")
    secs = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    lat = []
    with open(log) as f:        # per request: start time, status, duration in microseconds
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1].startswith("2"):
                lat.append(float(parts[2]))
    lat.sort()

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(math.ceil(q * len(lat))) - 1)] if lat else float("nan")

    return {"answered": ok, "seconds": secs, "errors": errors, "p50_us": pct(0.50), "p99_us": pct(0.99),
            "mean_us": sum(lat) / len(lat) if lat else float("nan"), "max_us": lat[-1] if lat else float("nan"),
            "client_cpu_s": client_cpu}


# -- one row ---------------------------------------------------------------------------------------------------------

def _prepare(port: int, workload: str, tmp: str) -> dict:
    """Create the stream(s), write the body file, probe one request; what the row needs."""
    one, batch = _payloads()
    if workload == "put_record":
        _create_stream(port, STREAM, SHARDS)
        head = b'{"StreamName":"%s","Data":"%s","PartitionKey":"pk-' % (STREAM.encode(), one.encode())
        body = head + b'0"}'
        latency, _ = _timed_call(port, "PutRecord", body)
        return {"op": "PutRecord", "body": body, "key_prefix": head, "records": 1, "latency": latency,
                "note": "wrk: a new partition key per request; h2load: one fixed key"}
    if workload == "put_records":
        _create_stream(port, STREAM, SHARDS)
        body = _compact({"StreamName": STREAM, "Records": batch})
        latency, raw = _timed_call(port, "PutRecords", body)
        failed = json.loads(raw).get("FailedRecordCount")
        if failed:
            raise RowFailed(f"PutRecords probe: FailedRecordCount {failed}")
        return {"op": "PutRecords", "body": body, "key_prefix": None, "records": BATCH, "latency": latency, "note": ""}
    _create_stream(port, GET_STREAM, 1)
    fill = _compact({"StreamName": GET_STREAM, "Records": batch})
    for _ in range(GET_LIMIT // BATCH):
        _, raw = _timed_call(port, "PutRecords", fill)
        if json.loads(raw).get("FailedRecordCount"):
            raise RowFailed("filling the GetRecords stream: some records failed")
    shard = call(port, "ListShards", {"StreamName": GET_STREAM})["Shards"][0]["ShardId"]
    it = call(port, "GetShardIterator", {"StreamName": GET_STREAM, "ShardId": shard,
                                         "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
    body = _compact({"ShardIterator": it, "Limit": GET_LIMIT})
    counts, latency = [], []
    for _ in range(2):                 # the same iterator twice: the load generator reuses it for the whole run
        dt, raw = _timed_call(port, "GetRecords", body)
        counts.append(len(json.loads(raw)["Records"]))
        latency.append(dt)
    if counts != [GET_LIMIT, GET_LIMIT]:
        raise RowFailed(f"GetRecords with one TRIM_HORIZON iterator, twice, returned {counts} records, "
                        f"not {GET_LIMIT} each")
    return {"op": "GetRecords", "body": body, "key_prefix": None, "records": GET_LIMIT, "latency": min(latency),
            "note": "one TRIM_HORIZON iterator reused"}


def run_row(kind: ServerKind, proto: str, workload: str, opts, tmp: str) -> dict:
    name = f"{kind.key}-{proto}-{workload}"
    port = _free_port()
    log_path = os.path.join(tmp, name + ".server.log")
    cmd, env = kind.command(port)
    with open(log_path, "w+b") as log:
        p = _spawn(cmd, cpu=opts.server_cpu, env=env, out=log)
    try:
        _wait_ready(p, port, log_path)
        if proto == "h2c":
            h2c_probe(port, opts, tmp)
        prep = _prepare(port, workload, tmp)
        body_file = os.path.join(tmp, name + ".body")
        with open(body_file, "wb") as f:
            f.write(prep["body"])
        in_flight = opts.connections * (opts.h2_streams if proto == "h2c" else 1)
        # a run must be long next to one round of every connection's request, or a slow server answers none
        seconds = min(opts.max_seconds, max(opts.seconds, 4 * in_flight * prep["latency"]))
        seconds = max(1, math.ceil(seconds))
        warm = max(1, math.ceil(opts.warmup))
        out = os.path.join(tmp, name + ".out")
        if proto == "h1":
            script = os.path.join(tmp, name + ".lua")
            _wrk_script(script, prep["op"], body_file, prep["key_prefix"])
            wrk(port, script, warm, opts, out + ".warmup")
            _wait_idle(p.pid)
            cpu0 = _tree_cpu(p.pid)
            res = wrk(port, script, seconds, opts, out)
        else:
            h2load(port, prep["op"], body_file, warm, opts, out + ".warmup")
            _wait_idle(p.pid)
            cpu0 = _tree_cpu(p.pid)
            res = h2load(port, prep["op"], body_file, seconds, opts, out)
        cpu = _tree_cpu(p.pid) - cpu0
        if p.poll() is not None:
            raise RowFailed(f"server exited (status {p.returncode}) during the run:\n{_tail(log_path)}")
    finally:
        _stop(p)
    n = res["answered"]
    if n == 0:
        raise RowFailed(f"no request answered with a 2xx in {res['seconds']:.1f} s (errors: {res['errors']})")
    return {"server": kind.label, "server_key": kind.key, "protocol": PROTOCOLS[proto], "protocol_key": proto,
            "workload": WORKLOADS[workload], "workload_key": workload, "tool": "wrk" if proto == "h1" else "h2load",
            "connections": opts.connections, "streams_per_connection": opts.h2_streams if proto == "h2c" else 1,
            "seconds": res["seconds"], "requests": n, "errors": res["errors"],
            "error_count": sum(res["errors"].values()),
            "req_per_s": n / res["seconds"], "records_per_s": n * prep["records"] / res["seconds"],
            "records_per_request": prep["records"], "server_cpu_us_per_req": 1e6 * cpu / n,
            "server_cpu_util": cpu / res["seconds"], "client_cpu_util": res["client_cpu_s"] / res["seconds"],
            "p50_us": res["p50_us"], "p99_us": res["p99_us"], "mean_us": res["mean_us"], "max_us": res["max_us"],
            "probe_latency_s": prep["latency"], "note": prep["note"]}


# -- report ----------------------------------------------------------------------------------------------------------

def _ms(us: float) -> str:
    if us != us:
        return "-"
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e4:
        return f"{us / 1e3:.0f} ms"
    return f"{us / 1e3:.2f} ms"


def _cpu(us: float) -> str:
    return f"{us / 1e3:,.1f} ms" if us >= 1e4 else f"{us:,.0f} µs"


def table(rows: list[dict]) -> str:
    out = ["| server | protocol | workload | req/s | records/s | server CPU per req | server CPU | client CPU | p50 "
           "| p99 | answered |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        err = f" ({r['error_count']:,} errors)" if r["error_count"] else ""
        out.append(f"| {r['server']} | {r['protocol']} | {r['workload']} | {r['req_per_s']:,.0f}{err} | "
                   f"{r['records_per_s']:,.0f} | {_cpu(r['server_cpu_us_per_req'])} | "
                   f"{100 * r['server_cpu_util']:.0f} % | {100 * r['client_cpu_util']:.0f} % | {_ms(r['p50_us'])} | "
                   f"{_ms(r['p99_us'])} | {r['requests']:,} in {r['seconds']:.0f} s |")
    return "\n".join(out)


def ratios(rows: list[dict]) -> str | None:
    base = {r["workload_key"]: r for r in rows if r["server_key"] == "kinesalite" and r["protocol_key"] == "h1"}
    if not base:
        return None
    out = ["| server | protocol | workload | records/s vs kinesalite | kinesalite's CPU per req / this one's |",
           "|---|---|---|---:|---:|"]
    for r in rows:
        b = base.get(r["workload_key"])
        if b is None or r["server_key"] == "kinesalite":
            continue
        out.append(f"| {r['server']} | {r['protocol']} | {r['workload']} | "
                   f"{r['records_per_s'] / b['records_per_s']:.2f}x | "
                   f"{b['server_cpu_us_per_req'] / r['server_cpu_us_per_req']:.2f}x |")
    return "\n".join(out)


def _git_rev() -> str:
    try:
        r = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           timeout=10)
        dirty = subprocess.run(["git", "-C", SRC, "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return r.stdout.strip() + (" + uncommitted changes in src/" if dirty else "") if r.returncode == 0 else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


# -- main ------------------------------------------------------------------------------------------------------------

def _selection(only: list[str], parser) -> tuple[list[str], list[str], list[str]]:
    servers, protos, workloads = [], [], []
    for group in only:
        for tok in re.split(r"[,\s]+", group.strip()):
            if not tok:
                continue
            t = ALIASES.get(tok.lower(), tok.lower())
            if t in SERVERS:
                servers.append(t)
            elif t in PROTOCOLS:
                protos.append(t)
            elif t in WORKLOADS:
                workloads.append(t)
            else:
                parser.error(f"--only: unknown {tok!r}; choose from servers {', '.join(SERVERS)}, protocols "
                             f"{', '.join(PROTOCOLS)}, workloads {', '.join(WORKLOADS)}")
    return servers or [k for k in SERVERS if k not in OPT_IN], protos or list(PROTOCOLS), workloads or list(WORKLOADS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="~3 s per row (--seconds 3 --warmup 1 --max-seconds 15)")
    p.add_argument("--only", action="append", default=[], metavar="NAMES",
                   help=f"run only these (repeatable, comma or space separated): servers {', '.join(SERVERS)}; "
                        f"protocols {', '.join(PROTOCOLS)}; workloads {', '.join(WORKLOADS)}")
    p.add_argument("--seconds", type=float, default=None, help="measured seconds per row (default 8; --quick 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per row (not measured)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="a slow server's row runs longer, 4 x connections x its one-request latency, up to this "
                        "(default 40; --quick 15)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections / h2load clients")
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--h2-streams", type=int, default=1, help="h2load -m: concurrent streams per connection")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to")
    p.add_argument("--client-cpu", type=int, default=1, help="CPU the load generator is pinned to")
    p.add_argument("--no-pin", action="store_true", help="do not pin anything (taskset)")
    p.add_argument("--python", default=sys.executable, help="the Python that runs the Python servers")
    p.add_argument("--json", metavar="PATH", help="also write every row (and the skipped ones) here")
    opts = p.parse_args(argv)
    if opts.seconds is None:
        opts.seconds = 3.0 if opts.quick else 8.0
    if opts.max_seconds is None:
        opts.max_seconds = 15.0 if opts.quick else 40.0
    servers, protos, workloads = _selection(opts.only, p)

    notes = []
    if opts.no_pin:
        opts.server_cpu = opts.client_cpu = None
    elif shutil.which("taskset") is None:
        notes.append("taskset not found (util-linux): nothing is pinned")
        opts.server_cpu = opts.client_cpu = None
    elif len(os.sched_getaffinity(0)) < 2:
        notes.append(f"only {len(os.sched_getaffinity(0))} CPU available: nothing is pinned")
        opts.server_cpu = opts.client_cpu = None
    tools = {"h1": shutil.which("wrk"), "h2c": shutil.which("h2load")}
    tool_missing = {"h1": "wrk not found on PATH (apt-get install wrk)",
                    "h2c": "h2load not found on PATH (apt-get install nghttp2-client)"}

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(_stop_all)
    tmp = tempfile.mkdtemp(prefix="fastkin-bench-server-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)

    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load0 = os.getloadavg()
    rows, skipped, failed = [], [], []
    interrupted = False
    kinds: dict[str, ServerKind | Skip] = {}
    try:
        for key in servers:
            kind = SERVERS[key](opts.python)
            try:
                kind.check()
                kinds[key] = kind
            except Skip as e:
                kinds[key] = e
            for proto in protos:
                for wl in workloads:
                    what = f"{key} {proto} {wl}"
                    reason = None
                    if isinstance(kinds[key], Skip):
                        reason = str(kinds[key])
                    elif tools[proto] is None:
                        reason = tool_missing[proto]
                    elif proto == "h2c" and kind.h2c is not None:
                        reason = kind.h2c
                    if reason is not None:
                        skipped.append({"row": what, "reason": reason})
                        print(f"skip {what}: {reason}", file=sys.stderr, flush=True)
                        continue
                    print(f"run  {what} ...", file=sys.stderr, end=" ", flush=True)
                    try:
                        r = run_row(kind, proto, wl, opts, tmp)
                    except Skip as e:
                        skipped.append({"row": what, "reason": str(e)})
                        print(f"skipped: {e}", file=sys.stderr, flush=True)
                        if proto == "h2c":       # the server will not speak h2c for the next workload either
                            kind.h2c = str(e)
                        continue
                    except (RowFailed, OSError, http.client.HTTPException, ValueError, KeyError) as e:
                        failed.append({"row": what, "reason": f"{type(e).__name__}: {e}"})
                        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                        continue
                    rows.append(r)
                    print(f"{r['req_per_s']:,.0f} req/s, {r['records_per_s']:,.0f} records/s, "
                          f"{_cpu(r['server_cpu_us_per_req'])} CPU/req ({r['seconds']:.0f} s)",
                          file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: the rows measured so far follow", file=sys.stderr)
    finally:
        _stop_all()

    load1 = os.getloadavg()
    pin = "unpinned" if opts.server_cpu is None else f"server on CPU {opts.server_cpu}, load generator on CPU " \
                                                     f"{opts.client_cpu}"
    print(f"\nfastkin {_git_rev()}; {started}; {os.cpu_count()} CPUs, {pin}; load average {load0[0]:.2f} at the "
          f"start, {load1[0]:.2f} at the end; wrk -t {opts.threads} -c {opts.connections} / h2load -c "
          f"{opts.connections} -m {opts.h2_streams}; {opts.seconds:g} s per row (slow servers longer, up to "
          f"{opts.max_seconds:g} s) after {opts.warmup:g} s of warm-up\n")
    for n in notes:
        print(f"note: {n}")
    if rows:
        print(table(rows))
        r = ratios(rows)
        if r:
            print("\nAgainst kinesalite over HTTP/1.1, same run:\n")
            print(r)
    for s in skipped:
        print(f"- skipped {s['row']}: {s['reason']}")
    for f in failed:
        print(f"- FAILED {f['row']}: {f['reason']}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"started": started, "fastkin": _git_rev(), "load_average": [load0, load1],
                       "options": {k: v for k, v in vars(opts).items()}, "rows": rows, "skipped": skipped,
                       "failed": failed}, f, indent=1)
    return 130 if interrupted else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

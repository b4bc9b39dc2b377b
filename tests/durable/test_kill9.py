"""kill -9 under load: a real ``fastkin serve --data-dir`` process, SIGKILLed at random moments while a client
puts records and logs every acknowledged (shard, sequence number, data); restarted on the same directory
each time. After the last restart every acknowledged record is there exactly once, on its shard, with its
sequence number and data, and the sequence numbers acknowledged after each restart are above those before.

25 kills in all (20 with --fsync always, 5 with interval: a process crash loses nothing acknowledged in any
mode, since records reach the kernel before the answer), each bounded in time."""
from __future__ import annotations

import base64
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

TARGET = "Kinesis_20131202."
SRC = str(Path(__file__).resolve().parents[2] / "src")
STREAM = "kill9"


class Server:
    def __init__(self, data_dir: Path, fsync: str, *extra: str) -> None:
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastkin", "serve", "--port", "0", "--no-auth-check", "--no-quotas",
             "--data-dir", str(data_dir), "--fsync", fsync, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if m is None:
            self.proc.kill()
            raise AssertionError(f"no banner: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.port = int(m.group(1))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def call(conn: http.client.HTTPConnection, op: str, body: dict) -> dict:
    conn.request("POST", "/", json.dumps(body), {"Content-Type": "application/x-amz-json-1.1",
                                                 "X-Amz-Target": TARGET + op})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise AssertionError(f"{op}: {resp.status} {data!r}")
    return json.loads(data) if data else {}


def producer(port: int, tag: str, acked: list, stop: threading.Event) -> None:
    """Put batches until the server dies; log each acknowledged record as (shard, sequence number, data)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        n = 0
        while not stop.is_set():
            datas = [f"{tag}-{n + i}".encode() for i in range(20)]
            entries = [{"Data": base64.b64encode(d).decode(), "PartitionKey": f"k{(n + i) % 7}"}
                       for i, d in enumerate(datas)]
            out = call(conn, "PutRecords", {"StreamName": STREAM, "Records": entries})
            for d, r in zip(datas, out["Records"]):
                acked.append((r["ShardId"], int(r["SequenceNumber"]), d))
            n += 20
    except (OSError, http.client.HTTPException):
        return                      # the server was killed: what was not answered was not acknowledged
    finally:
        conn.close()


def read_all(port: int) -> dict[str, list[tuple[int, bytes]]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    shards = call(conn, "ListShards", {"StreamName": STREAM})["Shards"]
    out = {}
    for sh in shards:
        it = call(conn, "GetShardIterator", {"StreamName": STREAM, "ShardId": sh["ShardId"],
                                             "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        got: list[tuple[int, bytes]] = []
        while it:
            res = call(conn, "GetRecords", {"ShardIterator": it})
            got += [(int(r["SequenceNumber"]), base64.b64decode(r["Data"])) for r in res["Records"]]
            if not res["Records"]:
                break
            it = res.get("NextShardIterator")
        out[sh["ShardId"]] = got
    conn.close()
    return out


@pytest.mark.parametrize(("fsync", "kills"), [("always", 20), ("interval", 5)])
def test_every_acknowledged_record_survives_kill9(tmp_path, fsync, kills):
    rng = random.Random(15)
    deadline = time.monotonic() + 120
    acked_by_cycle: list[list] = []
    for cycle in range(kills):
        assert time.monotonic() < deadline, f"only {cycle} kills in the time allowed"
        srv = Server(tmp_path, fsync)
        if cycle == 0:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            call(conn, "CreateStream", {"StreamName": STREAM, "ShardCount": 2})
            conn.close()
        acked: list = []
        stop = threading.Event()
        threads = [threading.Thread(target=producer, args=(srv.port, f"c{cycle}t{t}", acked, stop))
                   for t in range(2)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.05, 0.4))
        srv.kill()
        stop.set()
        for t in threads:
            t.join(10)
        acked_by_cycle.append(acked)
    srv = Server(tmp_path, fsync, "--verify-data")       # the last start reads and CRC-checks every record
    try:
        stored = read_all(srv.port)
    finally:
        srv.kill()
    total = sum(len(a) for a in acked_by_cycle)
    assert total > kills * 20, "the producers hardly ran"
    where = {}
    for shard, got in stored.items():
        seqs = [q for q, _ in got]
        assert seqs == sorted(set(seqs)), f"{shard}: sequence numbers not strictly increasing"
        for q, d in got:
            where[q] = (shard, d)
    datas = [d for got in stored.values() for _, d in got]
    for cycle, acked in enumerate(acked_by_cycle):
        for shard, q, d in acked:
            assert where.get(q) == (shard, d), f"cycle {cycle}: acknowledged {shard} {q} {d!r} lost or changed"
    assert len(set(datas)) == len(datas), "a record is stored twice"
    # sequence numbers keep increasing across restarts, per shard
    high: dict[str, int] = {}
    for cycle, acked in enumerate(acked_by_cycle):
        low_now: dict[str, int] = {}
        for shard, q, _ in acked:
            low_now[shard] = min(low_now.get(shard, q), q)
        for shard, q in low_now.items():
            assert q > high.get(shard, -1), f"cycle {cycle}: {shard} reused a sequence number"
        for shard, q, _ in acked:
            high[shard] = max(high.get(shard, q), q)

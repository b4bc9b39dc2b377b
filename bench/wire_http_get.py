"""GetRecords 10,000 x 100 B over HTTP/1.1 against `fastkin serve` (a subprocess, bench_http.Server): server CPU
per call, one keep-alive connection, one call at a time.

    PYTHONPATH=src python bench/wire_http_get.py                    # compiled wire paths
    PYTHONPATH=bench/nowire:src python bench/wire_http_get.py       # Python ones (bench/nowire/sitecustomize.py)
"""
from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_http import Server  # noqa: E402


def request(target: str, doc: dict) -> bytes:
    body = json.dumps(doc).encode()
    return (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
            b"X-Amz-Target: Kinesis_20131202." + target.encode() + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def roundtrip(sock: socket.socket, req: bytes) -> bytes:
    sock.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(1 << 20)
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    i = head.lower().index(b"content-length:") + 15
    n = int(head[i:head.index(b"\r\n", i)])
    while len(rest) < n:
        rest += sock.recv(1 << 22)
    return rest


def call(sock: socket.socket, target: str, doc: dict) -> dict:
    out = roundtrip(sock, request(target, doc))
    return json.loads(out) if out else {}


def main(n: int = 100) -> None:
    srv = Server(tls=False)
    try:
        s = socket.create_connection(("127.0.0.1", srv.port))
        call(s, "CreateStream", {"StreamName": "g", "ShardCount": 1})
        while call(s, "DescribeStreamSummary", {"StreamName": "g"})["StreamDescriptionSummary"][
                "StreamStatus"] != "ACTIVE":
            time.sleep(0.05)
        recs = [{"Data": base64.b64encode(b"x" * 100).decode(), "PartitionKey": f"k{j}"} for j in range(500)]
        for _ in range(20):
            call(s, "PutRecords", {"StreamName": "g", "Records": recs})
        it = call(s, "GetShardIterator", {"StreamName": "g", "ShardId": "shardId-000000000000",
                                          "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        req = request("GetRecords", {"ShardIterator": it, "Limit": 10000})
        assert len(json.loads(roundtrip(s, req))["Records"]) == 10000
        c0, t0 = srv.cpu(), time.perf_counter()
        for _ in range(n):
            roundtrip(s, req)
        cpu = (srv.cpu() - c0) / n
        wall = (time.perf_counter() - t0) / n
        print(f"GetRecords 10k over HTTP/1.1: server CPU {cpu * 1e3:.2f} ms/call = {10000 / cpu / 1e6:.2f} M "
              f"records/s per server core; wall {wall * 1e3:.2f} ms/call")
    finally:
        srv.close()


if __name__ == "__main__":
    main()

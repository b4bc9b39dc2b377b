"""aiobotocore PutRecord: in-process (``fastkin.mock_kinesis``) vs through ``fastkin serve`` (loopback HTTP),
measured in the same run with the same client code.

The server runs in a subprocess (so client and server do not share a GIL); it needs the ``server`` extra in
the Python given by ``--server-python`` (default: this one). The client side needs the ``async`` extra:

    .venv-aio/bin/python bench/bench_aio.py --server-python .venv-ci/bin/python
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

import fastkin

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
NO_RETRY = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})


async def _rate(client, calls: int, rounds: int) -> float:
    await client.create_stream(StreamName="bench", ShardCount=4)
    await client.get_waiter("stream_exists").wait(StreamName="bench", WaiterConfig={"Delay": 0.05})
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(calls):
            await client.put_record(StreamName="bench", Data=b"x" * 100, PartitionKey=str(i))
        best = max(best, calls / (time.perf_counter() - t0))
    return best


async def in_process(calls: int, rounds: int) -> float:
    with fastkin.mock_kinesis(quotas=False):
        async with get_session().create_client("kinesis", region_name="us-east-1", config=NO_RETRY,
                                               **CREDS) as k:
            return await _rate(k, calls, rounds)


async def over_http(url: str, calls: int, rounds: int) -> float:
    async with get_session().create_client("kinesis", region_name="us-east-1", endpoint_url=url,
                                           config=NO_RETRY, **CREDS) as k:
        return await _rate(k, calls, rounds)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--server-python", default=sys.executable)
    args = ap.parse_args()
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")}
    server = subprocess.Popen([args.server_python, "-m", "fastkin", "serve", "--port", str(port), "--no-quotas",
                               "--no-auth-check"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("fastkin serve did not start") from None
                time.sleep(0.1)
        inproc = asyncio.run(in_process(args.calls, args.rounds))
        http = asyncio.run(over_http(f"http://127.0.0.1:{port}", args.calls, args.rounds))
    finally:
        server.terminate()
        server.wait(10)
    print("| aiobotocore PutRecord (100 B) | calls/s | vs serve |")
    print("|---|---:|---:|")
    print(f"| fastkin mock_kinesis (in-process) | {inproc:,.0f} | {inproc / http:.1f}x |")
    print(f"| fastkin serve (loopback HTTP) | {http:,.0f} | 1.0x |")


if __name__ == "__main__":
    main()

"""aiobotocore PutRecord and PutRecords: fastkin in-process (``fastkin.mock_kinesis``), through ``fastkin serve``
(loopback HTTP), and moto (its in-process ``mock_aws`` where it answers aiobotocore, and its server), measured
in the same run with the same client code.

The servers run in subprocesses (so client and server do not share a GIL): ``fastkin serve`` needs the
``server`` extra and moto's server ``moto[server]``, in the Python given by ``--server-python`` (default: this
one). The client side needs the ``async`` extra (and moto for the moto rows):

    .venv-aio/bin/pip install -e '.[async,server]' 'moto[server]'
    .venv-aio/bin/python bench/bench_aio.py

Each figure is the best of ``--rounds`` timed loops of back-to-back awaited calls on one client (4 shards, quotas
off; PutRecord: 100-byte records; PutRecords: 500 records of 100 bytes per call). A moto variant that does not
answer aiobotocore is not timed: its row says why.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

import fastkin

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
NO_RETRY = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})
BATCH = 500
DATA = b"x" * 100


async def _setup(client, name: str) -> None:
    await client.create_stream(StreamName=name, ShardCount=4)
    await client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.05})


async def _put_record(client, calls: int, rounds: int) -> float:
    await _setup(client, "bench-put-record")
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(calls):
            await client.put_record(StreamName="bench-put-record", Data=DATA, PartitionKey=str(i))
        best = max(best, calls / (time.perf_counter() - t0))
    return best


async def _put_records(client, calls: int, rounds: int) -> float:
    await _setup(client, "bench-put-records")
    records = [{"Data": DATA, "PartitionKey": str(i)} for i in range(BATCH)]
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = await client.put_records(StreamName="bench-put-records", Records=records)
            if out["FailedRecordCount"]:
                raise SystemExit(f"PutRecords failed {out['FailedRecordCount']} records (quotas should be off)")
        best = max(best, calls / (time.perf_counter() - t0))
    return best


async def measure(calls: int, batch_calls: int, rounds: int, url: str | None = None) -> tuple[float, float]:
    """(PutRecord calls/s, PutRecords calls/s) of one aiobotocore client (``url``: its endpoint)."""
    kw = {"endpoint_url": url} if url else {}
    async with get_session().create_client("kinesis", region_name="us-east-1", config=NO_RETRY, **CREDS,
                                           **kw) as k:
        return await _put_record(k, calls, rounds), await _put_records(k, batch_calls, rounds)


def in_process(calls: int, batch_calls: int, rounds: int) -> tuple[float, float]:
    with fastkin.mock_kinesis(quotas=False):
        return asyncio.run(measure(calls, batch_calls, rounds))


def moto_mock(calls: int, batch_calls: int, rounds: int) -> tuple[float, float] | str:
    """moto's in-process mock_aws with aiobotocore, or why it cannot be measured."""
    try:
        import moto
        from moto import mock_aws
    except ImportError:
        return "moto is not installed (pip install moto)"
    try:
        with mock_aws():
            return asyncio.run(measure(calls, batch_calls, rounds))
    except Exception as exc:  # noqa: BLE001 - the reason goes in the output
        return (f"moto {moto.__version__} `mock_aws` does not answer aiobotocore "
                f"{sys.modules['aiobotocore'].__version__}: {type(exc).__name__}: {exc}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _server(argv: list[str], port: int, name: str):
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"{name} did not start: {' '.join(argv)}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=500, help="PutRecord calls per round")
    ap.add_argument("--batch-calls", type=int, default=50, help=f"PutRecords ({BATCH} records) calls per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--server-python", default=sys.executable)
    ap.add_argument("--no-moto", action="store_true", help="leave out the moto rows")
    args = ap.parse_args()
    n = (args.calls, args.batch_calls, args.rounds)

    rows: list[tuple[str, tuple[float, float] | str]] = [("fastkin `mock_kinesis` (in-process)", in_process(*n))]
    port = _free_port()
    with _server([args.server_python, "-m", "fastkin", "serve", "--port", str(port), "--no-quotas",
                  "--no-auth-check"], port, "fastkin serve") as url:
        serve = asyncio.run(measure(*n, url=url))
    rows.append(("fastkin serve (loopback HTTP)", serve))
    if not args.no_moto:
        rows.append(("moto `mock_aws` (in-process)", moto_mock(*n)))
        port = _free_port()
        with _server([args.server_python, "-m", "moto.server", "-p", str(port)], port, "moto server") as url:
            rows.append(("moto server (loopback HTTP)", asyncio.run(measure(*n, url=url))))

    print(f"| aiobotocore, {args.calls} PutRecord / {args.batch_calls} PutRecords calls, best of {args.rounds} "
          f"| PutRecord (100 B) calls/s | vs serve | PutRecords ({BATCH} x 100 B) calls/s | records/s | vs serve |")
    print("|---|---:|---:|---:|---:|---:|")
    skipped = []
    for name, r in rows:
        if isinstance(r, str):
            print(f"| {name} | skipped | | skipped | | |")
            skipped.append(f"{name}: skipped: {r}")
            continue
        one, batch = r
        print(f"| {name} | {one:,.0f} | {one / serve[0]:.2f}x | {batch:,.0f} | {batch * BATCH:,.0f} "
              f"| {batch / serve[1]:.2f}x |")
    for line in skipped:
        print(f"\n{line}")


if __name__ == "__main__":
    main()

"""Nothing prints "Exception ignored" (an exception in __del__/__dealloc__, a callback or at interpreter exit
that Python can only report on stderr): a workload touching every layer runs in a fresh interpreter, leaves
objects alive at exit, and its stderr is checked."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

WORKLOAD = textwrap.dedent("""
    import threading
    import boto3
    import fastkin
    from fastkin.wire.http import ServerThread

    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    engine = fastkin.Engine(clock=clock)
    s = engine.create_stream("s", shard_count=4)
    for core in ("cy", "ref"):
        e = fastkin.Engine(clock=clock, core=core)
        x = e.create_stream("x", shard_count=2)
        x.put_records([(b"d" * 100, f"k{i}") for i in range(500)])
        it = x.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON")
        x.get_records(it)
        del e, x                           # freed while the interpreter runs

    def writer(n):
        for i in range(200):
            s.put_record(b"x", f"{n}-{i}")
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()

    p = fastkin.Producer(engine, "s", background=True)
    futs = [p.put(b"y", f"k{i}") for i in range(100)]
    p.flush(); p.close()
    assert all(f.result() for f in futs)

    with fastkin.mock_kinesis(engine=engine):
        client = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
        client.put_record(StreamName="s", Data=b"z", PartitionKey="k")
        try:
            client.describe_stream(StreamName="missing")
        except client.exceptions.ResourceNotFoundException:
            pass

    with ServerThread(port=0) as srv:
        client = boto3.client("kinesis", region_name="us-east-1", endpoint_url=srv.url,
                              aws_access_key_id="a", aws_secret_access_key="b")
        client.create_stream(StreamName="h", ShardCount=1)
        client.put_record(StreamName="h", Data=b"z", PartitionKey="k")
    # engine, streams and logs stay alive until interpreter exit
    print("done")
""")


@pytest.mark.slow
def test_no_exception_ignored_on_stderr():
    r = subprocess.run([sys.executable, "-X", "dev", "-c", WORKLOAD], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("done")
    assert "Exception ignored" not in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr

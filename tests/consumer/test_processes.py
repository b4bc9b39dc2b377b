"""Workers in several processes share a SQLite lease table against `fastkin serve`; one is killed -9."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastkin

pytest.importorskip("boto3")
WORKER = Path(__file__).with_name("worker_proc.py")


def lines(paths):
    out = []
    for p in paths:
        if p.exists():
            out += [tuple(line.split()) for line in p.read_text().splitlines() if line.strip()]
    return out


def wait_for(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_processes_share_leases_and_survive_a_kill(tmp_path):
    from fastkin.wire.http import ServerThread

    engine = fastkin.Engine(quotas=False)
    s = engine.create_stream("s", shard_count=4)
    s.put_records([(f"{i}".encode(), f"k{i % 17}") for i in range(400)])
    db = tmp_path / "leases.db"
    outs = [tmp_path / f"w{i}.txt" for i in range(2)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(fastkin.__file__).parents[1])] + sys.path))
    with ServerThread(port=0) as srv:
        srv.app.reset(engine)
        procs = [subprocess.Popen([sys.executable, str(WORKER), srv.url, str(db), str(outs[i]), f"w{i}"], env=env)
                 for i in range(2)]
        try:
            assert wait_for(lambda: len({v for _, v in lines(outs)}) >= 400, 60)
            from fastkin.kcl.leases import SQLiteLeaseStore

            store = SQLiteLeaseStore(str(db))
            assert wait_for(lambda: {lease["leaseOwner"] for lease in store.list()} == {"w0", "w1"}, 30)
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            s.put_records([(f"{i}".encode(), f"k{i % 17}") for i in range(400, 800)])
            assert wait_for(lambda: len({v for _, v in lines(outs)}) >= 800, 60)
            assert wait_for(lambda: {lease["leaseOwner"] for lease in store.list()} == {"w1"}, 30)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait()
    got = lines(outs)
    assert sorted({int(v) for _, v in got}) == list(range(800))
    by_key = {}
    for k, v in got:
        by_key.setdefault(k, []).append(int(v))
    assert all(list(dict.fromkeys(v)) == sorted(dict.fromkeys(v)) for v in by_key.values())

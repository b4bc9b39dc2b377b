"""Quota accuracy at scale (a small version of bench/bench_capacity.py's 10,000-shard run): every shard
offered 1.5x its write limit accepts the limit, within 1 %, plus at most one second of burst."""
import numpy as np

import fastkin
from fastkin._common import initial_hash_ranges
from fastkin.metrics import IN_BYTES, W_THR_RECORDS


def test_every_shard_accepts_its_write_limit_under_1_5x_offer():
    n, secs, size = 200, 10, 128 * 1024
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    eng = fastkin.Engine(clock=clock)
    s = eng.create_stream("quota", shard_count=n, storage="metadata")
    s.set_retention_seconds(30.0)
    data = b"\0" * (size - 1)
    recs = [(data, "k", str(a)) for a, _ in initial_hash_ranges(n)]
    order = [r for _ in range(12) for r in recs]                 # 12 x 128 KiB = 1.5 MiB per shard per second
    per_call = eng.limits.put_records_max_bytes // size
    for _ in range(secs * 2):                                    # half a second's offer every 0.5 s
        for i in range(0, len(order) // 2, per_call):
            s.put_records(order[i:min(i + per_call, len(order) // 2)])
        clock.advance(0.5)
    ctr = s.core.counters(list(range(n)))
    accepted = ctr[:, IN_BYTES].astype(np.float64)
    limit = eng.limits.write_bytes_per_second
    assert (accepted >= 0.99 * secs * limit).all()
    assert (accepted <= 1.01 * (secs + 1) * limit).all()
    assert ctr[:, W_THR_RECORDS].sum() > 0

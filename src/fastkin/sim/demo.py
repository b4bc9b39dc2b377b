"""`python -m fastkin demo`: producers push above the shard limits on the virtual clock.

Four producers offer records to a stream for N engine-seconds (replayed as fast as the machine
goes); one of them hammers a single hot partition key. Per-shard quotas throttle what exceeds
1 MiB/s or 1,000 records/s per shard, and a polling consumer is held to 5 reads/s per shard.
"""
from __future__ import annotations

import random
import time

from ..clock import VirtualClock
from ..engine import Engine
from ..errors import ProvisionedThroughputExceededException


def run(seconds: int = 20, shards: int = 4, tick: float = 0.1, core: str | None = None, seed: int = 0,
        out=print) -> dict:
    rng = random.Random(seed)
    clock = VirtualClock(start=1_700_000_000.0)
    eng = Engine(clock=clock, core=core)
    stream = eng.create_stream("demo", shard_count=shards)
    ids = [s.shard_id for s in stream.visible_shards()]
    offered = dict.fromkeys(ids, 0)
    accepted = dict.fromkeys(ids, 0)
    nbytes = dict.fromkeys(ids, 0)
    reads_ok = reads_throttled = records_read = 0
    # offered load: 1,500 records/s of ~100 B per shard spread over keys, plus a hot key at 800/s
    per_tick_spread = int(1500 * shards * tick)
    per_tick_hot = int(800 * tick)
    iterators: dict[str, str | None] = {sid: stream.get_shard_iterator(sid, "TRIM_HORIZON") for sid in ids}
    hot_shard = stream.core.shards[stream.core.shard_for_key("hot-customer")].shard_id
    t0 = time.perf_counter()
    for step in range(int(seconds / tick)):
        batch = [(rng.randbytes(rng.randint(60, 140)), f"user-{rng.randrange(10**6)}") for _ in range(per_tick_spread)]
        batch += [(rng.randbytes(100), "hot-customer") for _ in range(per_tick_hot)]
        rng.shuffle(batch)
        for i in range(0, len(batch), 500):
            chunk = batch[i:i + 500]
            res = stream.put_records(chunk)
            for (data, key), r in zip(chunk, res):
                sid = r.shard_id or _shard_of(stream, key)
                offered[sid] += 1
                if r.error_code is None:
                    accepted[sid] += 1
                    nbytes[sid] += len(data) + len(key)
        # a consumer polls every shard 10 times per engine-second (twice the read limit)
        if step % max(1, int(0.1 / tick)) == 0:
            for sid in ids:
                try:
                    got = stream.get_records(iterators[sid])
                    iterators[sid] = got.next_shard_iterator
                    records_read += len(got.records)
                    reads_ok += 1
                except ProvisionedThroughputExceededException:
                    reads_throttled += 1
        clock.advance(tick)
    wall = time.perf_counter() - t0
    out(f"fastkin demo: {shards} shards, {seconds} engine-seconds on the virtual clock, core={eng.core_name}")
    out(f"offered per shard: ~1,500 records/s of 60-140 B, plus a hot key at 800 records/s on {hot_shard}\n")
    out(f"{'shard':<22}{'offered':>10}{'accepted':>10}{'throttled':>11}{'acc rec/s':>11}{'acc KiB/s':>11}")
    for sid in ids:
        out(f"{sid:<22}{offered[sid]:>10,}{accepted[sid]:>10,}{offered[sid] - accepted[sid]:>11,}"
            f"{accepted[sid] / seconds:>11,.0f}{nbytes[sid] / seconds / 1024:>11,.0f}")
    tot_off, tot_acc = sum(offered.values()), sum(accepted.values())
    out(f"{'total':<22}{tot_off:>10,}{tot_acc:>10,}{tot_off - tot_acc:>11,}")
    out(f"\nwhy more than 1,000 records/s per shard got in: a shard's quota is a token bucket that starts full "
        f"(one second's allowance) and refills at 1,000 records/s, so {seconds} s admit at most "
        f"{(seconds + 1) * 1000:,} records ({(seconds + 1) * 1000 / seconds:,.0f}/s)")
    out(f"\nreads: {reads_ok:,} GetRecords calls served, {reads_throttled:,} throttled (5 calls/s per shard), "
        f"{records_read:,} records read")
    out(f"replayed {seconds} engine-seconds in {wall:.2f} s of wall time")
    return {"offered": offered, "accepted": accepted, "bytes": nbytes, "reads_ok": reads_ok,
            "reads_throttled": reads_throttled, "records_read": records_read}


def _shard_of(stream, key: str) -> str:
    return stream.core.shards[stream.core.shard_for_key(key)].shard_id

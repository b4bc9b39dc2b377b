"""fastkin data-plane benchmarks: compiled core ("cy") vs the pure-Python reference ("ref") vs a
plain-Python md5 + bisect + list.append loop, all measured in the same run.

Every benchmark uses benchmark.pedantic with fixed rounds (keeps the whole run to a few minutes on
2 cores), builds its inputs outside the timed region, and reports throughput through
``benchmark.extra_info`` (records/s, bytes/s, calls/s) computed from the measured mean.
"""
from __future__ import annotations

import bisect
import gc
import hashlib
import tracemalloc

import pytest

from conftest import (
    BATCH,
    ENGINES,
    G_GET_RECORDS,
    G_MD5,
    G_MEMORY,
    G_PUT_RECORD,
    G_PUT_RECORDS,
    G_PUT_RECORDS_RESULTS,
    G_ROUTING,
    make_records,
    make_stream,
    payload_bytes,
    python_put_loop,
    record_value,
    report,
    shard_starts,
)
from fastkin._cy import core as cy_core

QUOTAS = [pytest.param(True, id="quotas_on"), pytest.param(False, id="quotas_off")]
SHARDS = [pytest.param(4, id="4shards"), pytest.param(1000, id="1000shards")]
# rounds per engine: the compiled core is ~20-100x faster, so it gets more rounds for the same time
PUT_ROUNDS = {"cy": 1000, "ref": 40}


def _q(quotas: bool) -> str:
    return "quotas on" if quotas else "quotas off"


# ---------------------------------------------------------------------------------------------
# PutRecords: one 500-record batch per timed call; the virtual clock advances 1 s between calls
# (in setup, untimed), so with quotas on no shard ever passes 1,000 records/s or 1 MiB/s. Each call
# therefore also pays the stream's once-per-engine-second tick (metrics roll, retention, scaler);
# test_put_records_steady runs that tick once per 1,000 calls instead.

@pytest.mark.benchmark(group=G_PUT_RECORDS)
@pytest.mark.parametrize("shards", SHARDS)
@pytest.mark.parametrize("quotas", QUOTAS)
@pytest.mark.parametrize("engine", ENGINES)
def test_put_records(benchmark, engine, quotas, shards, batch500):
    clock, _, stream = make_stream(engine, shards, quotas)

    def setup():
        clock.advance(1.0)

    res = benchmark.pedantic(stream.put_records, args=(batch500,), setup=setup,
                             rounds=PUT_ROUNDS[engine], warmup_rounds=5)
    assert res.failed_record_count == 0 and len(res) == BATCH
    report(benchmark, scenario=f"{shards} shards, {_q(quotas)}", impl=engine,
           records=BATCH, nbytes=payload_bytes(batch500), calls=1)


@pytest.mark.benchmark(group=G_PUT_RECORDS)
@pytest.mark.parametrize("shards", SHARDS)
@pytest.mark.parametrize("engine", ENGINES)
def test_put_records_steady(benchmark, engine, shards, batch500):
    """The data plane at a steady rate: quotas off and the clock advances 1 ms per call, so the
    once-per-engine-second work (Stream.tick: metrics roll, retention trim, scaler) runs once per
    1,000 calls as it would at ~500k records/s of real time, instead of before every call as above."""
    clock, _, stream = make_stream(engine, shards, False)

    def setup():
        clock.advance(0.001)

    res = benchmark.pedantic(stream.put_records, args=(batch500,), setup=setup,
                             rounds=PUT_ROUNDS[engine], warmup_rounds=5)
    assert res.failed_record_count == 0 and len(res) == BATCH
    report(benchmark, scenario=f"{shards} shards, quotas off, 1 ms per call (tick every 1,000 calls)", impl=engine,
           records=BATCH, nbytes=payload_bytes(batch500), calls=1)


@pytest.mark.benchmark(group=G_PUT_RECORDS)
@pytest.mark.parametrize("shards", SHARDS)
def test_put_records_python_loop(benchmark, shards, batch500):
    """Baseline: hashlib.md5 + bisect + list.append over the same batch (stores references only)."""
    starts = shard_starts(shards)
    logs = [[] for _ in starts]

    def setup():
        if sum(map(len, logs)) > 200_000:
            for log in logs:
                log.clear()

    benchmark.pedantic(python_put_loop, args=(batch500, starts, logs), setup=setup, rounds=300, warmup_rounds=5)
    report(benchmark, scenario=f"{shards} shards", impl="python-loop",
           records=BATCH, nbytes=payload_bytes(batch500), calls=1)


@pytest.mark.benchmark(group=G_PUT_RECORDS_RESULTS)
@pytest.mark.parametrize("engine", ENGINES)
def test_put_records_read_results(benchmark, engine, batch500):
    """put_records then read every result's shard_id and sequence_number (the compiled core makes
    its PutResult objects lazily, the reference eagerly: this is the like-for-like figure)."""
    clock, _, stream = make_stream(engine, 4, False)

    def put_and_read():
        res = stream.put_records(batch500)
        return [(r.shard_id, r.sequence_number) for r in res.records]

    def setup():
        clock.advance(1.0)   # returns None: pedantic treats a setup's return value as arguments

    out = benchmark.pedantic(put_and_read, setup=setup,
                             rounds=PUT_ROUNDS[engine], warmup_rounds=5)
    assert len(out) == BATCH and out[0][1].isdigit()
    report(benchmark, scenario="4 shards, quotas off", impl=engine,
           records=BATCH, nbytes=payload_bytes(batch500), calls=1)


# ---------------------------------------------------------------------------------------------
# PutRecord: a timed round is 500 single calls (the batch's records, one by one).
# layer=stream: Stream.put_record (the public API); layer=core: StreamCore.put_record directly,
# to show what the Python facade (Stream._check_io, clock read) costs per call.

@pytest.mark.benchmark(group=G_PUT_RECORD)
@pytest.mark.parametrize("layer", ["stream", "core"])
@pytest.mark.parametrize("quotas", QUOTAS)
@pytest.mark.parametrize("engine", ENGINES)
def test_put_record(benchmark, engine, quotas, layer, batch500):
    clock, _, stream = make_stream(engine, 4, quotas)
    if layer == "stream":
        def loop(put=stream.put_record, batch=batch500):
            for d, k in batch:
                put(d, k)
    else:
        core = stream.core
        def loop(put=core.put_record, batch=batch500):
            now = clock()
            for d, k in batch:
                put(d, k, None, now)

    def setup():
        clock.advance(1.0)

    benchmark.pedantic(loop, setup=setup, rounds=PUT_ROUNDS[engine], warmup_rounds=5)
    assert stream.core.record_count() == (PUT_ROUNDS[engine] + 5) * BATCH
    report(benchmark, scenario=f"{layer} layer, {_q(quotas)}", impl=engine, unit="calls/s",
           records=BATCH, nbytes=payload_bytes(batch500), calls=BATCH)


# ---------------------------------------------------------------------------------------------
# GetRecords: drain one pre-filled shard with get_records(limit=10000) from TRIM_HORIZON.

GET_FILL = {"cy": 1_000_000, "ref": 100_000}
GET_ROUNDS = {"cy": 7, "ref": 3}


def _filled_stream(engine, n, fill_pool):
    clock, eng, stream = make_stream(engine, 1, False)
    for i in range(n // BATCH):
        stream.put_records(fill_pool[i % len(fill_pool)])
        if i % 100 == 99:
            clock.advance(0.001)
    clock.advance(1.0)
    return clock, eng, stream


def _drain(stream, n, touch, with_gc=False):
    if with_gc:              # the cyclic GC as users have it (the run itself uses --benchmark-disable-gc)
        gc.enable()
        try:
            return _drain(stream, n, touch)
        finally:
            gc.disable()
    it = stream.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON")
    got = 0
    while got < n:
        out = stream.get_records(it, limit=10_000)
        if touch:
            for r in out.records:
                _ = r.data, r.sequence_number
        got += len(out.records)
        it = out.next_shard_iterator
    return got


@pytest.mark.benchmark(group=G_GET_RECORDS)
@pytest.mark.parametrize("mode", ["drain", "drain+read_seq", "drain+gc_on"])
@pytest.mark.parametrize("engine", ENGINES)
def test_get_records_drain(benchmark, engine, mode, fill_pool):
    """drain: get_records loop only; drain+read_seq: also read each record's .data and
    .sequence_number (the compiled core formats sequence numbers lazily, the reference eagerly);
    drain+gc_on: plain drain with Python's cyclic GC enabled inside the timed region."""
    n = GET_FILL[engine]
    _, _, stream = _filled_stream(engine, n, fill_pool)
    got = benchmark.pedantic(_drain, args=(stream, n, mode == "drain+read_seq", mode == "drain+gc_on"),
                             rounds=GET_ROUNDS[engine], warmup_rounds=1)
    assert got == n
    per_cycle = payload_bytes(r for b in fill_pool for r in b) / (len(fill_pool) * BATCH)
    scen = {"drain": "drain", "drain+read_seq": "drain + read .data/.sequence_number",
            "drain+gc_on": "drain, gc enabled"}[mode]
    report(benchmark, scenario=scen + " (fill cy 1M / ref 100k)", impl=engine, records=n,
           nbytes=round(n * per_cycle), calls=-(-n // 10_000), fill=n)


# ---------------------------------------------------------------------------------------------
# Routing alone: partition key -> shard index, per key (a timed round routes the 500 batch keys).

@pytest.mark.benchmark(group=G_ROUTING)
@pytest.mark.parametrize("shards", SHARDS)
@pytest.mark.parametrize("engine", ENGINES)
def test_shard_for_key(benchmark, engine, shards, keys500):
    _, _, stream = make_stream(engine, shards, False)

    def loop(route=stream.core.shard_for_key, keys=keys500):
        for k in keys:
            route(k)

    benchmark.pedantic(loop, rounds=300 if engine == "cy" else 20, warmup_rounds=3)
    report(benchmark, scenario=f"StreamCore.shard_for_key, {shards} shards", impl=engine, unit="keys/s",
           records=len(keys500), calls=len(keys500))


@pytest.mark.benchmark(group=G_ROUTING)
@pytest.mark.parametrize("shards", SHARDS)
def test_routing_python_baseline(benchmark, shards, keys500):
    starts = shard_starts(shards)

    def loop(keys=keys500, starts=starts, md5=hashlib.md5, fb=int.from_bytes, br=bisect.bisect_right):
        for k in keys:
            br(starts, fb(md5(k.encode()).digest(), "big")) - 1

    benchmark.pedantic(loop, rounds=300, warmup_rounds=3)
    # sanity: the baseline routes like the engine
    _, _, stream = make_stream("cy", shards, False)
    k = keys500[0]
    assert bisect.bisect_right(starts, cy_core.md5_hash_key(k)) - 1 == stream.core.shard_for_key(k)
    report(benchmark, scenario=f"StreamCore.shard_for_key, {shards} shards", impl="python-loop", unit="keys/s",
           records=len(keys500), calls=len(keys500))


@pytest.mark.benchmark(group=G_MD5)
@pytest.mark.parametrize("impl", ["cy", "python-loop"])
def test_md5_hash_key(benchmark, impl, keys500):
    """cy: fastkin._cy.core.md5_hash_key (C MD5 + a 128-bit Python int);
    python-loop: int.from_bytes(hashlib.md5(key.encode()).digest(), "big") (the reference engine's hash)."""
    if impl == "cy":
        def loop(h=cy_core.md5_hash_key, keys=keys500):
            for k in keys:
                h(k)
    else:
        def loop(keys=keys500, md5=hashlib.md5, fb=int.from_bytes):
            for k in keys:
                fb(md5(k.encode()).digest(), "big")
    benchmark.pedantic(loop, rounds=300, warmup_rounds=3)
    k = keys500[0]
    assert cy_core.md5_hash_key(k) == int.from_bytes(hashlib.md5(k.encode()).digest(), "big")
    report(benchmark, scenario="md5_hash_key(key)", impl=impl, unit="keys/s",
           records=len(keys500), calls=len(keys500))


# ---------------------------------------------------------------------------------------------
# Memory: bytes held per stored 100-byte record, beyond its data + key bytes. Runs once.

@pytest.mark.benchmark(group=G_MEMORY)
@pytest.mark.parametrize("shards", [pytest.param(1, id="1shard"), pytest.param(1000, id="1000shards")])
def test_memory_cy(benchmark, shards, fill_pool):
    """engine.memory_bytes() after 1M puts (shard logs: arenas + 18 B/record index + segment headers)."""
    n = 1_000_000
    clock, eng, stream = make_stream("cy", shards, False)

    def fill():
        for i in range(n // BATCH):
            stream.put_records(fill_pool[i % len(fill_pool)])

    benchmark.pedantic(fill, rounds=1)
    mem = eng.memory_bytes()
    assert stream.core.record_count() == n
    payload = payload_bytes(r for b in fill_pool for r in b) * n // (len(fill_pool) * BATCH)
    overhead = (mem - payload) / n
    report(benchmark, scenario=f"fill 1M puts, {shards} shard(s), quotas off", impl="cy",
           records=n, nbytes=payload, calls=n // BATCH)   # the fill rate, for the record
    benchmark.extra_info.update(memory_bytes=mem, payload_bytes=payload, overhead_bytes_per_record=overhead,
                                bytes_per_record=mem / n)
    record_value(benchmark, scenario=f"overhead beyond data+key, {shards} shard(s)", impl="cy",
                 value=overhead, unit="B/record")


@pytest.mark.benchmark(group=G_MEMORY)
def test_memory_ref(benchmark):
    """The reference core's memory_bytes() is a model (payload + the compiled index's 18 B per record), not its
    real footprint: tracemalloc over 100k distinct records whose inputs are dropped afterwards (the reference keeps
    the caller's bytes/str objects, not copies)."""
    n = 100_000
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        clock, eng, stream = make_stream("ref", 1, False)
        recs = make_records(n, seed=1)
        payload = payload_bytes(recs)
        batches = [recs[i:i + BATCH] for i in range(0, n, BATCH)]
        del recs

        def fill():
            for b in batches:  # noqa: F821 - fill() runs before the `del batches` below (which frees the inputs)
                stream.put_records(b)

        benchmark.pedantic(fill, rounds=1)
        del batches
        gc.collect()
        mem = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert stream.core.record_count() == n
    overhead = (mem - payload) / n
    benchmark.extra_info.update(traced_bytes=mem, payload_bytes=payload, overhead_bytes_per_record=overhead,
                                bytes_per_record=mem / n, note="fill timed under tracemalloc (slow)")
    record_value(benchmark, scenario="overhead beyond data+key, 1 shard(s)", impl="ref",
                 value=overhead, unit="B/record")

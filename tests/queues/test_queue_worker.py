"""QueueWorker: the same loop against the engine and through boto3 (in-process and over HTTP)."""
from __future__ import annotations

import fastkin


def setup_engine(engine, n=25, mrc=2):
    s = engine.create_stream("s")
    q = engine.create_queue("q", [{"StreamARN": s.arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}],
                            {"VisibilityTimeoutSeconds": 10, "DeadLetterConfiguration": {
                                "TargetType": "BUILT_IN", "MaxReceiveCount": mrc}})["QueueDescription"]["QueueARN"]
    s.put_records([(f"r{i}".encode(), f"k{i}") for i in range(n)])
    return q


def test_worker_acknowledges_what_it_processes_and_failures_dead_letter(engine, clock):
    q = setup_engine(engine)
    seen: list[bytes] = []

    def handler(r):
        seen.append(r["Data"])
        if r["Data"] == b"r7":
            raise RuntimeError("poison")

    w = fastkin.QueueWorker(engine, q, handler)
    assert w.visibility == 10
    m = w.run(stop_after_empty=3)          # each empty receive waits 20 s of engine time: r7 times out twice
    assert (m.processed, m.acknowledged, m.failed, m.redelivered) == (24, 24, 2, 1)
    assert seen.count(b"r7") == 2 and len(set(seen)) == 25
    dead = fastkin.QueueWorker(engine, q, lambda r: None, dead_letter=True)
    got = []
    dead.handler = got.append
    dead.drain()
    assert [r["Data"] for r in got] == [b"r7"] and dead.metrics.acknowledged == 1


def test_worker_extends_visibility_of_a_slow_batch(engine, clock):
    q = setup_engine(engine, n=10)

    def slow(r):
        clock.advance(3.0)                 # 30 s for the batch of 10, visibility 10 s

    w = fastkin.QueueWorker(engine, q, slow)
    w.run_once()
    assert w.metrics.acknowledged == 10 and w.metrics.extended > 0
    assert engine.queue(q).counts()["tracked"] == 0


def test_release_on_error_redelivers_at_once(engine, clock):
    q = setup_engine(engine, n=1, mrc=5)
    calls = []

    def flaky(r):
        calls.append(r["ReceiveCount"])
        if len(calls) < 3:
            raise ValueError("not yet")

    t0 = clock()
    fastkin.QueueWorker(engine, q, flaky, release_on_error=True).run(max_records=3)
    assert calls == [1, 2, 3] and clock() == t0        # no timeout waited for


def test_restore_from_a_dead_letter_worker(engine, clock):
    q = setup_engine(engine, n=2, mrc=1)

    def fail(r):
        raise RuntimeError("bad consumer")

    fastkin.QueueWorker(engine, q, fail).run_once()
    clock.advance(10.0)                     # received once, timed out: both are dead letters
    held: list[dict] = []

    def hold(r):                            # inspect, keep unacknowledged
        held.append(r)
        raise RuntimeError("keep it for the restore")

    w = fastkin.QueueWorker(engine, q, hold, dead_letter=True, visibility_timeout_seconds=60)
    w.run_once()
    assert w.restore(held) == 2
    again: list[dict] = []
    fastkin.QueueWorker(engine, q, again.append).drain()
    assert sorted(r["ReceiveCount"] for r in again) == [1, 1]


def test_worker_through_boto3(kin):
    c = kin.client
    arn = kin.stream()
    q = c.create_queue(QueueName="q", StreamConfigurationList=[{"StreamARN": arn, "StartingPosition": {
        "Type": "TRIM_HORIZON"}}])["QueueDescription"]["QueueARN"]
    c.put_records(StreamARN=arn, Records=[{"Data": f"{i}".encode(), "PartitionKey": f"{i}"} for i in range(15)])
    got = []
    m = fastkin.QueueWorker(c, q, lambda r: got.append(r["Data"]), wait_time_seconds=1).drain()
    assert sorted(got, key=int) == [f"{i}".encode() for i in range(15)] and m.acknowledged == 15

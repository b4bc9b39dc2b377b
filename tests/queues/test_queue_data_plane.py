"""ReceiveQueueRecords, AcknowledgeQueueRecords, UpdateQueueRecordsVisibility: delivery, visibility, handles."""
from __future__ import annotations

import asyncio
import datetime as _dt
import threading

import boto3
import pytest

import fastkin
from fastkin import errors as E, topology
from fastkin.wire.service import Service


def make_queue(engine, arn, start="TRIM_HORIZON", **attrs) -> str:
    return engine.create_queue("q", [{"StreamARN": arn, "StartingPosition": {"Type": start}}],
                               attrs or None)["QueueDescription"]["QueueARN"]


def put(engine, n, prefix="k"):
    s = engine.stream("s")
    return [s.put_record(f"r{i}".encode(), f"{prefix}{i}") for i in range(n)]


def handles(recs):
    return [{"ReceiptHandle": r["ReceiptHandle"]} for r in recs]


def test_receive_returns_queue_records(od, clock):
    engine, arn = od
    written = put(engine, 3)
    q = make_queue(engine, arn)
    recs = engine.receive_queue_records(q)["QueueRecords"]
    assert sorted(r["Data"] for r in recs) == [b"r0", b"r1", b"r2"]
    by_data = {r["Data"]: r for r in recs}
    now = _dt.datetime.fromtimestamp(clock(), _dt.timezone.utc)
    for i, w in enumerate(written):
        r = by_data[f"r{i}".encode()]
        assert r["RecordId"] == w.sequence_number and r["PartitionKey"] == f"k{i}"
        assert (r["ReceiveCount"], r["FirstReceiveTimestamp"], r["ApproximateArrivalTimestamp"]) == (1, now, now)
        assert 1 <= len(r["ReceiptHandle"]) <= 1024
    assert engine.queue(q).in_flight == 3


def test_latest_starts_after_creation(od):
    engine, arn = od
    put(engine, 2, "old")
    q = make_queue(engine, arn, "LATEST")
    put(engine, 1, "new")
    assert [r["PartitionKey"] for r in engine.receive_queue_records(q)["QueueRecords"]] == ["new0"]


def test_at_most_limit_records_and_never_one_twice_while_in_flight(od):
    engine, arn = od
    put(engine, 25)
    q = make_queue(engine, arn)
    seen = []
    for _ in range(3):
        seen += [r["RecordId"] for r in engine.receive_queue_records(q, limit=10, wait_time_seconds=1)["QueueRecords"]]
    assert len(seen) == 25 == len(set(seen))
    with pytest.raises(E.ValidationException, match="'limit' failed to satisfy constraint: Member must have value "
                       "between 1 and 10"):
        engine.receive_queue_records(q, limit=11)


def test_acknowledged_records_are_not_delivered_again(od, clock):
    engine, arn = od
    put(engine, 4)
    q = make_queue(engine, arn, VisibilityTimeoutSeconds=10)
    recs = engine.receive_queue_records(q)["QueueRecords"]
    out = engine.acknowledge_queue_records(q, handles(recs[:3]))
    assert out == {"Successful": handles(recs[:3]), "Failed": []}
    clock.advance(10.0)
    again = engine.receive_queue_records(q, wait_time_seconds=1)["QueueRecords"]
    assert [r["RecordId"] for r in again] == [recs[3]["RecordId"]]
    assert again[0]["ReceiveCount"] == 2 and again[0]["ReceiptHandle"] != recs[3]["ReceiptHandle"]
    assert again[0]["FirstReceiveTimestamp"] == recs[3]["FirstReceiveTimestamp"]
    # the first handle is no longer current; the new one is
    out = engine.acknowledge_queue_records(q, handles([recs[3], again[0]]))
    assert out["Successful"] == handles(again)
    assert out["Failed"] == [{"ReceiptHandle": recs[3]["ReceiptHandle"], "ErrorCode": "ResourceNotFoundException",
                              "ErrorMessage": "The receipt handle is no longer current: its record was acknowledged, "
                              "received again, restored or moved to the dead-letter records since it was issued."}]
    assert engine.queue(q).in_flight == 0


def test_a_handle_still_acknowledges_after_its_timeout_until_the_record_is_received_again(od, clock):
    engine, arn = od
    put(engine, 1)
    q = make_queue(engine, arn, VisibilityTimeoutSeconds=5)
    [r] = engine.receive_queue_records(q)["QueueRecords"]
    clock.advance(6.0)
    assert engine.acknowledge_queue_records(q, handles([r]))["Failed"] == []
    assert engine.receive_queue_records(q, wait_time_seconds=1)["QueueRecords"] == []


def test_visibility_changes(od, clock):
    engine, arn = od
    put(engine, 2)
    q = make_queue(engine, arn)
    a, b = engine.receive_queue_records(q)["QueueRecords"]
    out = engine.update_queue_records_visibility(q, [{"ReceiptHandle": a["ReceiptHandle"],
                                                      "VisibilityTimeoutSeconds": 0},
                                                     {"ReceiptHandle": b["ReceiptHandle"],
                                                      "VisibilityTimeoutSeconds": 300}])
    assert out == {"Successful": handles([a, b]), "Failed": []}
    t0 = clock()
    again = engine.receive_queue_records(q)["QueueRecords"]
    assert [r["RecordId"] for r in again] == [a["RecordId"]]
    assert clock() == t0                                  # visible at once: no waiting
    engine.acknowledge_queue_records(q, handles(again))
    clock.advance(299.0)
    assert engine.receive_queue_records(q, limit=1, visibility_timeout_seconds=1000,
                                        wait_time_seconds=1)["QueueRecords"][0]["RecordId"] == b["RecordId"]


def test_per_receive_visibility_override(od, clock):
    engine, arn = od
    put(engine, 1)
    q = make_queue(engine, arn, VisibilityTimeoutSeconds=600)
    engine.receive_queue_records(q, visibility_timeout_seconds=2)
    clock.advance(2.0)
    assert len(engine.receive_queue_records(q, wait_time_seconds=1)["QueueRecords"]) == 1


def test_bad_handles(od, engine):
    _, arn = od
    put(engine, 1)
    q = make_queue(engine, arn)
    other = engine.create_queue("other", [{"StreamARN": arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}])
    other = other["QueueDescription"]["QueueARN"]
    [r] = engine.receive_queue_records(other)["QueueRecords"]
    out = engine.acknowledge_queue_records(q, [{"ReceiptHandle": "garbage"}, {"ReceiptHandle": r["ReceiptHandle"]}])
    assert out["Successful"] == []
    assert out["Failed"] == [
        {"ReceiptHandle": "garbage", "ErrorCode": "InvalidArgumentException",
         "ErrorMessage": "The receipt handle is not valid."},
        {"ReceiptHandle": r["ReceiptHandle"], "ErrorCode": "InvalidArgumentException",
         "ErrorMessage": f"The receipt handle was not issued by queue {q}."}]
    tampered = r["ReceiptHandle"][:-3] + ("AAA" if r["ReceiptHandle"][-3:] != "AAA" else "BBB")
    assert engine.acknowledge_queue_records(other, [{"ReceiptHandle": tampered}])["Failed"][0]["ErrorCode"] == \
        "InvalidArgumentException"
    foreign = fastkin.Engine(clock=engine.clock)
    foreign.create_stream("s")
    fq = foreign.create_queue("q", [{"StreamARN": arn}])["QueueDescription"]["QueueARN"]
    assert foreign.acknowledge_queue_records(fq, handles([r]))["Failed"][0]["ErrorMessage"] == \
        "The receipt handle is not valid."


def test_record_ids_are_the_same_in_every_queue(od):
    engine, arn = od
    put(engine, 5)
    ids = []
    for name in ("a", "b"):
        q = engine.create_queue(name, [{"StreamARN": arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}])
        recs = engine.receive_queue_records(q["QueueDescription"]["QueueARN"])["QueueRecords"]
        ids.append(sorted(r["RecordId"] for r in recs))
    assert ids[0] == ids[1] and len(ids[0]) == 5


def test_in_flight_limit(make_engine):
    engine = make_engine(limits=fastkin.Limits(queue_in_flight_max=5))
    engine.create_stream("s")
    arn = engine.stream("s").arn
    put(engine, 8)
    q = make_queue(engine, arn)
    assert len(engine.receive_queue_records(q)["QueueRecords"]) == 5         # only what fits
    with pytest.raises(E.ThrottlingException, match="has 5 records in flight, the maximum"):
        engine.receive_queue_records(q)


def test_records_follow_resharding(od):
    engine, arn = od
    q = make_queue(engine, arn, "LATEST")
    s = engine.stream("s")
    put(engine, 20)
    first = s.open_shards()[0]
    # the on-demand scaler's own split (SplitShard is provisioned-only): the parent keeps its 20 records
    topology.split_shard(s, first.shard_id, str((first.start_hash + first.end_hash) // 2), internal=True)
    a, b = s.open_shards()[0], s.open_shards()[1]
    topology.merge_shards(s, a.shard_id, b.shard_id, internal=True)
    put(engine, 20, "later")
    got = set()
    while True:
        recs = engine.receive_queue_records(q, wait_time_seconds=1)["QueueRecords"]
        if not recs:
            break
        got |= {r["Data"] for r in recs}
    assert got == {f"r{i}".encode() for i in range(20)}
    assert len(s.visible_shards()) == 4 + 3


def test_retention_expires_queue_records(od, clock):
    engine, arn = od
    put(engine, 2)
    q = make_queue(engine, arn, VisibilityTimeoutSeconds=10)
    a, b = engine.receive_queue_records(q)["QueueRecords"]
    engine.stream("s").set_retention_seconds(5.0)
    clock.advance(6.0)
    engine.stream("s").trim()
    out = engine.acknowledge_queue_records(q, handles([a]))
    assert out["Failed"] == [{"ReceiptHandle": a["ReceiptHandle"], "ErrorCode": "ResourceNotFoundException",
                              "ErrorMessage": "The record of the receipt handle is past the stream's retention "
                              "period."}]
    clock.advance(10.0)
    assert engine.receive_queue_records(q, wait_time_seconds=1)["QueueRecords"] == []      # b expired too
    assert engine.queue(q).counts()["tracked"] == 0


def test_long_poll_on_a_virtual_clock_advances_to_the_next_visible_record(od, clock):
    engine, arn = od
    q = make_queue(engine, arn, VisibilityTimeoutSeconds=3)
    t0 = clock()
    assert engine.receive_queue_records(q, wait_time_seconds=5)["QueueRecords"] == []
    assert clock() == t0 + 5
    put(engine, 1)
    engine.receive_queue_records(q)
    t1 = clock()
    again = engine.receive_queue_records(q, wait_time_seconds=20)["QueueRecords"]
    assert len(again) == 1 and clock() == t1 + 3
    engine.acknowledge_queue_records(q, handles(again))
    t2 = clock()
    engine.receive_queue_records(q)          # default wait: 9 s
    assert clock() == t2 + 9


def test_long_poll_on_the_real_clock_returns_when_a_record_arrives():
    engine = fastkin.Engine()
    engine.create_stream("s")
    q = engine.create_queue("q", [{"StreamARN": engine.stream("s").arn}])["QueueDescription"]["QueueARN"]
    timer = threading.Timer(0.05, lambda: engine.stream("s").put_record(b"late", "k"))
    timer.start()
    try:
        recs = engine.receive_queue_records(q, wait_time_seconds=20)["QueueRecords"]
    finally:
        timer.cancel()
    assert [r["Data"] for r in recs] == [b"late"]


def test_non_blocking_dispatch_for_the_server():
    engine = fastkin.Engine()
    engine.create_stream("s")
    svc = Service(engine)
    q = svc.dispatch("CreateQueue", {"QueueName": "q", "StreamConfigurationList": [
        {"StreamARN": engine.stream("s").arn}]})["QueueDescription"]["QueueARN"]
    params = {"QueueARN": q, "WaitTimeSeconds": 20}
    before = engine.clock()
    deadline = svc.long_poll_deadline("ReceiveQueueRecords", params)
    assert deadline is not None and before + 20 <= deadline <= engine.clock() + 20
    assert svc.dispatch("ReceiveQueueRecords", params, wait=False) == {"QueueRecords": []}
    assert engine.clock() < deadline                       # answered without waiting out the 20 s
    assert svc.long_poll_deadline("ReceiveQueueRecords", {"QueueARN": q}) <= engine.clock() + 9
    assert svc.long_poll_deadline("DescribeQueue", {"QueueARN": q}) is None
    virtual = Service(fastkin.Engine(clock=fastkin.VirtualClock(1_700_000_000.0)))
    assert virtual.long_poll_deadline("ReceiveQueueRecords", params) is None


def test_several_receivers_in_threads_share_the_records(od):
    engine, arn = od
    q = make_queue(engine, arn, VisibilityTimeoutSeconds=43200)
    s = engine.stream("s")
    s.put_records([(f"r{i}".encode(), f"k{i}") for i in range(400)])
    got: list[str] = []
    lock = threading.Lock()

    def worker():
        while True:
            recs = engine.receive_queue_records(q, wait_time_seconds=1, _wait=False)["QueueRecords"]
            if not recs:
                return
            out = engine.acknowledge_queue_records(q, handles(recs))
            assert not out["Failed"]
            with lock:
                got.extend(r["RecordId"] for r in recs)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 400 == len(set(got))


def test_acknowledged_records_do_not_pile_up_in_the_timer_heap(od):
    engine, arn = od
    q = make_queue(engine, arn, VisibilityTimeoutSeconds=43200)
    s = engine.stream("s")
    for _ in range(40):
        s.put_records([(b"x", f"k{i}") for i in range(500)])
        while True:
            recs = engine.receive_queue_records(q, wait_time_seconds=1, _wait=False)["QueueRecords"]
            if not recs:
                break
            engine.acknowledge_queue_records(q, handles(recs))
    queue = engine.queue(q)
    assert queue.in_flight == 0 and len(queue._heap) <= 4096 + 10 and not queue._entries


def test_the_mock_long_polls_without_blocking_on_the_real_clock():
    engine = fastkin.Engine()
    engine.create_stream("s")
    q = engine.create_queue("q", [{"StreamARN": engine.stream("s").arn}])["QueueDescription"]["QueueARN"]
    with fastkin.mock_kinesis(engine=engine):
        c = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
        timer = threading.Timer(0.05, lambda: engine.stream("s").put_record(b"late", "k"))
        timer.start()
        try:
            recs = c.receive_queue_records(QueueARN=q, WaitTimeSeconds=20)["QueueRecords"]
        finally:
            timer.cancel()
    assert [r["Data"] for r in recs] == [b"late"]


def test_a_long_poll_inside_an_event_loop_never_sleeps():
    engine = fastkin.Engine()
    engine.create_stream("s")
    svc = Service(engine)
    q = svc.dispatch("CreateQueue", {"QueueName": "q", "StreamConfigurationList": [
        {"StreamARN": engine.stream("s").arn}]})["QueueDescription"]["QueueARN"]

    async def handler():          # a server calling dispatch the blocking way from its event loop
        return svc.dispatch("ReceiveQueueRecords", {"QueueARN": q, "WaitTimeSeconds": 20})

    start = engine.clock()
    assert asyncio.run(handler()) == {"QueueRecords": []}
    assert engine.clock() < start + 20


def test_dispatch_async_long_polls_without_blocking_the_event_loop():
    engine = fastkin.Engine()
    engine.create_stream("s")
    svc = Service(engine)
    q = svc.dispatch("CreateQueue", {"QueueName": "q", "StreamConfigurationList": [
        {"StreamARN": engine.stream("s").arn}]})["QueueDescription"]["QueueARN"]
    ticks = []

    async def main():
        async def ticker():                      # other work the loop keeps doing meanwhile
            while True:
                ticks.append(1)
                await asyncio.sleep(0.005)

        t = asyncio.ensure_future(ticker())
        asyncio.get_running_loop().call_later(0.05, lambda: engine.stream("s").put_record(b"late", "k"))
        out = await svc.dispatch_async("ReceiveQueueRecords", {"QueueARN": q, "WaitTimeSeconds": 20})
        t.cancel()
        return out

    out = asyncio.run(main())
    assert [r["Data"] for r in out["QueueRecords"]] == [b"late"] and len(ticks) > 2
    assert asyncio.run(svc.dispatch_async("DescribeQueue", {"QueueARN": q}))["QueueDescription"]["QueueARN"] == q

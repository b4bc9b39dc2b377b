"""Dead-letter handling: MaxReceiveCount, the four dead-letter operations, restore, NONE, UpdateQueue."""
from __future__ import annotations

import pytest

from fastkin import errors as E


def setup(engine, arn, n=1, **dlc):
    attrs = {"VisibilityTimeoutSeconds": 10}
    if dlc:
        attrs["DeadLetterConfiguration"] = dlc
    q = engine.create_queue("q", [{"StreamARN": arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}],
                            attrs)["QueueDescription"]["QueueARN"]
    engine.stream("s").put_records([(f"r{i}".encode(), f"k{i}") for i in range(n)])
    return q


def handles(recs):
    return [{"ReceiptHandle": r["ReceiptHandle"]} for r in recs]


def fail_n_times(engine, q, clock, n):
    """Receive the records and let their visibility run out, n times."""
    for _ in range(n):
        recs = engine.receive_queue_records(q, wait_time_seconds=1)["QueueRecords"]
        assert recs
        clock.advance(10.0)
    return recs


def test_a_record_dead_letters_exactly_at_max_receive_count(od, clock):
    engine, arn = od
    q = setup(engine, arn, TargetType="BUILT_IN", MaxReceiveCount=3)
    last = fail_n_times(engine, q, clock, 3)
    assert last[0]["ReceiveCount"] == 3
    assert engine.receive_queue_records(q, wait_time_seconds=1)["QueueRecords"] == []
    [d] = engine.receive_dead_letter_queue_records(q, wait_time_seconds=1)["QueueRecords"]
    assert (d["Data"], d["PartitionKey"], d["RecordId"]) == (b"r0", "k0", last[0]["RecordId"])
    assert d["ReceiveCount"] == 4 and d["FirstReceiveTimestamp"] == last[0]["FirstReceiveTimestamp"]
    # the last normal handle ended when the record became a dead letter
    out = engine.acknowledge_queue_records(q, handles(last))
    assert out["Failed"][0]["ErrorCode"] == "ResourceNotFoundException"
    assert engine.queue(q).counts() == {"in_flight": 1, "waiting_redelivery": 0, "dead_letter": 1, "tracked": 1}


def test_default_max_receive_count_is_6(od, clock):
    engine, arn = od
    q = setup(engine, arn)
    fail_n_times(engine, q, clock, 6)
    assert engine.receive_queue_records(q, wait_time_seconds=1)["QueueRecords"] == []
    assert len(engine.receive_dead_letter_queue_records(q, wait_time_seconds=1)["QueueRecords"]) == 1


def test_none_redelivers_forever(od, clock):
    engine, arn = od
    q = setup(engine, arn, TargetType="NONE")
    recs = fail_n_times(engine, q, clock, 12)
    assert recs[0]["ReceiveCount"] == 12
    assert engine.receive_dead_letter_queue_records(q, wait_time_seconds=1)["QueueRecords"] == []


def test_restore_resets_the_receive_count(od, clock):
    engine, arn = od
    q = setup(engine, arn, TargetType="BUILT_IN", MaxReceiveCount=2)
    fail_n_times(engine, q, clock, 2)
    dl = engine.receive_dead_letter_queue_records(q)["QueueRecords"]
    out = engine.restore_dead_letter_queue_records(q, handles(dl))
    assert out == {"Successful": handles(dl), "Failed": []}
    assert engine.restore_dead_letter_queue_records(q, handles(dl))["Failed"][0]["ErrorCode"] == \
        "ResourceNotFoundException"                        # a restore ends the handle
    again = fail_n_times(engine, q, clock, 2)
    assert again[0]["ReceiveCount"] == 2                     # counted from 0 again, dead-letters again at 2
    assert engine.receive_queue_records(q, wait_time_seconds=1)["QueueRecords"] == []
    dl = engine.receive_dead_letter_queue_records(q)["QueueRecords"]
    assert engine.acknowledge_dead_letter_queue_records(q, handles(dl)) == {"Successful": handles(dl), "Failed": []}
    clock.advance(60.0)
    assert engine.receive_dead_letter_queue_records(q, wait_time_seconds=1)["QueueRecords"] == []
    assert engine.queue(q).counts()["tracked"] == 0


def test_dead_letter_visibility(od, clock):
    engine, arn = od
    q = setup(engine, arn, 2, TargetType="BUILT_IN", MaxReceiveCount=1)
    fail_n_times(engine, q, clock, 1)
    a, b = engine.receive_dead_letter_queue_records(q)["QueueRecords"]
    out = engine.update_dead_letter_queue_records_visibility(
        q, [{"ReceiptHandle": a["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}])
    assert out == {"Successful": handles([a]), "Failed": []}
    assert [r["RecordId"] for r in engine.receive_dead_letter_queue_records(q)["QueueRecords"]] == [a["RecordId"]]


def test_handles_belong_to_their_family(od, clock):
    engine, arn = od
    q = setup(engine, arn, 2, TargetType="BUILT_IN", MaxReceiveCount=1)
    [n] = engine.receive_queue_records(q, limit=1)["QueueRecords"]
    clock.advance(10.0)
    [d] = engine.receive_dead_letter_queue_records(q, limit=1)["QueueRecords"]
    [live] = engine.receive_queue_records(q)["QueueRecords"]
    bad = engine.acknowledge_queue_records(q, handles([d]))["Failed"][0]
    assert (bad["ErrorCode"], bad["ErrorMessage"]) == (
        "InvalidArgumentException",
        "The receipt handle was issued by ReceiveDeadLetterQueueRecords: use it with the dead-letter operations.")
    bad = engine.restore_dead_letter_queue_records(q, handles([live]))["Failed"][0]
    assert (bad["ErrorCode"], bad["ErrorMessage"]) == (
        "InvalidArgumentException", "The receipt handle was issued by ReceiveQueueRecords: use it with "
        "AcknowledgeQueueRecords, UpdateQueueRecordsVisibility.")
    del n


def test_lowering_max_receive_count_applies_to_counted_records(od, clock):
    engine, arn = od
    q = setup(engine, arn, TargetType="BUILT_IN", MaxReceiveCount=10)
    fail_n_times(engine, q, clock, 3)
    engine.update_queue(q, {"DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 2}})
    assert engine.receive_queue_records(q, wait_time_seconds=1)["QueueRecords"] == []
    assert len(engine.receive_dead_letter_queue_records(q)["QueueRecords"]) == 1


def test_dead_letter_records_expire_with_retention(od, clock):
    engine, arn = od
    q = setup(engine, arn, TargetType="BUILT_IN", MaxReceiveCount=1)
    fail_n_times(engine, q, clock, 1)
    engine.stream("s").set_retention_seconds(5.0)
    assert engine.receive_dead_letter_queue_records(q, wait_time_seconds=1)["QueueRecords"] == []
    assert engine.queue(q).counts()["tracked"] == 0


def test_dead_letter_ops_refuse_bad_entries(od):
    engine, arn = od
    q = setup(engine, arn)
    with pytest.raises(E.ValidationException, match="'entries' failed to satisfy constraint"):
        engine.restore_dead_letter_queue_records(q, [])
    with pytest.raises(E.ValidationException, match="entries.1.member.visibilityTimeoutSeconds"):
        engine.update_dead_letter_queue_records_visibility(q, [{"ReceiptHandle": "x",
                                                                "VisibilityTimeoutSeconds": 43201}])

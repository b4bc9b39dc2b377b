"""The queue data plane and dead-letter operations through boto3, in-process and over HTTP."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def test_receive_acknowledge_visibility_and_dead_letters(kin, shape_ok):
    c = kin.client
    arn = kin.stream()
    q = c.create_queue(QueueName="q", StreamConfigurationList=[{"StreamARN": arn, "StartingPosition":
                                                                {"Type": "TRIM_HORIZON"}}],
                       QueueAttributes={"VisibilityTimeoutSeconds": 5, "DeadLetterConfiguration": {
                           "TargetType": "BUILT_IN", "MaxReceiveCount": 1}})["QueueDescription"]["QueueARN"]
    c.put_records(StreamARN=arn, Records=[{"Data": b"a", "PartitionKey": "1"}, {"Data": b"b", "PartitionKey": "2"}])
    out = c.receive_queue_records(QueueARN=q, WaitTimeSeconds=1)
    shape_ok("ReceiveQueueRecords", out)
    a, b = sorted(out["QueueRecords"], key=lambda r: r["Data"])
    out = c.update_queue_records_visibility(QueueARN=q, Entries=[{"ReceiptHandle": b["ReceiptHandle"],
                                                                  "VisibilityTimeoutSeconds": 100}])
    shape_ok("UpdateQueueRecordsVisibility", out)
    out = c.acknowledge_queue_records(QueueARN=q, Entries=[{"ReceiptHandle": a["ReceiptHandle"]},
                                                           {"ReceiptHandle": "nope"}])
    shape_ok("AcknowledgeQueueRecords", out)
    assert out["Successful"] == [{"ReceiptHandle": a["ReceiptHandle"]}]
    assert [(f["ReceiptHandle"], f["ErrorCode"]) for f in out["Failed"]] == [("nope", "InvalidArgumentException")]
    kin.clock.advance(100.0)
    out = c.receive_dead_letter_queue_records(QueueARN=q, WaitTimeSeconds=1)
    shape_ok("ReceiveDeadLetterQueueRecords", out)
    [d] = out["QueueRecords"]
    assert (d["Data"], d["RecordId"]) == (b"b", b["RecordId"])
    out = c.update_dead_letter_queue_records_visibility(QueueARN=q, Entries=[{"ReceiptHandle": d["ReceiptHandle"],
                                                                              "VisibilityTimeoutSeconds": 0}])
    shape_ok("UpdateDeadLetterQueueRecordsVisibility", out)
    out = c.restore_dead_letter_queue_records(QueueARN=q, Entries=[{"ReceiptHandle": d["ReceiptHandle"]}])
    shape_ok("RestoreDeadLetterQueueRecords", out)
    [again] = c.receive_queue_records(QueueARN=q)["QueueRecords"]
    assert again["ReceiveCount"] == 1
    kin.clock.advance(5.0)
    [d] = c.receive_dead_letter_queue_records(QueueARN=q)["QueueRecords"]
    out = c.acknowledge_dead_letter_queue_records(QueueARN=q, Entries=[{"ReceiptHandle": d["ReceiptHandle"]}])
    shape_ok("AcknowledgeDeadLetterQueueRecords", out)
    assert out["Failed"] == []


@pytest.mark.parametrize("op, params, message", [
    ("receive_queue_records", {"Limit": 11}, "1 validation error detected: Value '11' at 'limit' failed to satisfy "
     "constraint: Member must have value less than or equal to 10"),
    ("receive_queue_records", {"WaitTimeSeconds": 21}, "1 validation error detected: Value '21' at "
     "'waitTimeSeconds' failed to satisfy constraint: Member must have value less than or equal to 20"),
    ("receive_queue_records", {"VisibilityTimeoutSeconds": 43201}, "1 validation error detected: Value '43201' at "
     "'visibilityTimeoutSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200"),
    ("update_queue_records_visibility", {"Entries": [{"ReceiptHandle": "h", "VisibilityTimeoutSeconds": 50000}]},
     "1 validation error detected: Value '50000' at 'entries.1.member.visibilityTimeoutSeconds' failed to satisfy "
     "constraint: Member must have value less than or equal to 43200"),
])
def test_the_server_side_maxima(kin, op, params, message):
    c = kin.client
    arn = kin.stream()
    q = c.create_queue(QueueName="q", StreamConfigurationList=[{"StreamARN": arn}])["QueueDescription"]["QueueARN"]
    with pytest.raises(ClientError) as ei:
        getattr(c, op)(QueueARN=q, **params)
    assert ei.value.response["Error"] == {"Code": "ValidationException", "Message": message}


def test_eleven_entries_are_refused(kin):
    c = kin.client
    arn = kin.stream()
    q = c.create_queue(QueueName="q", StreamConfigurationList=[{"StreamARN": arn}])["QueueDescription"]["QueueARN"]
    with pytest.raises(ClientError) as ei:
        c.acknowledge_queue_records(QueueARN=q, Entries=[{"ReceiptHandle": "h"}] * 11)
    err = ei.value.response["Error"]
    assert err["Code"] == "ValidationException"
    assert err["Message"].endswith("at 'entries' failed to satisfy constraint: Member must have length less than or "
                                   "equal to 10")


def test_a_missing_queue_and_an_empty_long_poll(kin):
    c = kin.client
    arn = kin.stream()
    missing = arn.replace(":stream/s", ":queue/0000-none")
    with pytest.raises(ClientError) as ei:
        c.receive_queue_records(QueueARN=missing)
    assert ei.value.response["Error"] == {"Code": "ResourceNotFoundException",
                                          "Message": f"Queue {missing} under account 123456789012 not found."}
    q = c.create_queue(QueueName="q", StreamConfigurationList=[{"StreamARN": arn}])["QueueDescription"]["QueueARN"]
    t0 = kin.clock()
    assert c.receive_queue_records(QueueARN=q, WaitTimeSeconds=20)["QueueRecords"] == []
    assert kin.clock() == t0 + 20

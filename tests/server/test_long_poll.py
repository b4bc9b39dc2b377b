"""Queue long polls over HTTP (issue 14 on the issue 13 server): a waiting ReceiveQueueRecords holds neither the
event loop nor other connections; it answers as soon as a record is visible; on one HTTP/1.1 connection the
requests pipelined behind it are answered after it, in order."""
from __future__ import annotations

import json
import threading
import time

import boto3
from rawhttp import Conn, request

from fastkin.wire.http import ServerThread


def _client(url: str):
    return boto3.session.Session().client("kinesis", region_name="us-east-1", endpoint_url=url,
                                          aws_access_key_id="test", aws_secret_access_key="test")


def _queue(c) -> tuple[str, str]:
    c.create_stream(StreamName="s", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    arn = c.describe_stream_summary(StreamName="s")["StreamDescriptionSummary"]["StreamARN"]
    q = c.create_queue(QueueName="q", StreamConfigurationList=[{"StreamARN": arn}])["QueueDescription"]["QueueARN"]
    return arn, q


def test_a_long_poll_waits_without_holding_anyone_and_answers_when_a_record_arrives():
    with ServerThread(port=0) as srv:                  # a real clock: the wait is in real time
        waiter, other = _client(srv.url), _client(srv.url)
        arn, q = _queue(other)
        got: dict = {}

        def receive():
            t0 = time.monotonic()
            got["out"] = waiter.receive_queue_records(QueueARN=q, WaitTimeSeconds=10)
            got["seconds"] = time.monotonic() - t0

        t = threading.Thread(target=receive)
        t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        for _ in range(20):                             # the server answers others while the poll waits
            other.list_streams()
        busy = time.monotonic() - t0
        assert t.is_alive()
        other.put_record(StreamARN=arn, Data=b"hello", PartitionKey="k")
        t.join(10)
        assert not t.is_alive()
        [rec] = got["out"]["QueueRecords"]
        assert rec["Data"] == b"hello"
        assert got["seconds"] < 5, got                  # well before the 10 s wait ran out
        assert busy < 5, busy


def test_requests_pipelined_behind_a_long_poll_are_answered_after_it_in_order():
    with ServerThread(port=0, auth_check=False) as srv:
        c = _client(srv.url)
        _, q = _queue(c)
        poll = request("ReceiveQueueRecords", json.dumps({"QueueARN": q, "WaitTimeSeconds": 1}).encode())
        with Conn((srv.host, srv.port), timeout=10) as conn:
            t0 = time.monotonic()
            conn.send(poll + request("ListStreams"))
            first = conn.read_response()
            second = conn.read_response()
            waited = time.monotonic() - t0
        assert first.status == 200 and first.json() == {"QueueRecords": []}
        assert second.status == 200 and second.json()["StreamNames"] == ["s"]
        assert waited >= 0.9                            # the empty receive waited out its second

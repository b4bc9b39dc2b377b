"""fsync="always" behind fastkin serve: puts answered in the same event-loop turn share one fsync (run in a thread,
so the loop keeps serving), and each is acknowledged only after it."""
from __future__ import annotations

import asyncio
import base64
import json

import fastkin
from fastkin.durable import Durable
from fastkin.wire import http


def test_answers_waiting_together_share_one_fsync(monkeypatch):
    calls: list[list] = []
    monkeypatch.setattr(Durable, "sync_owed", staticmethod(lambda owed: calls.append(list(owed))))
    group = http._GroupCommit()

    async def main():
        await asyncio.gather(*(group.sync([(f"log{i}", i)]) for i in range(5)))
        await group.sync([("log9", 9)])                 # after the first fsync: a second one

    asyncio.run(main())
    assert calls == [[(f"log{i}", i) for i in range(5)], [("log9", 9)]]


def test_an_always_put_over_http_is_acknowledged_after_its_fsync(tmp_path, monkeypatch):
    synced: list[int] = []
    real = Durable.sync_owed
    monkeypatch.setattr(Durable, "sync_owed", staticmethod(lambda owed: (real(owed), synced.append(len(owed)))))
    app = http.KinesisApp(clock=fastkin.VirtualClock(start=1_700_000_000.0), auth_check=False,
                          data_dir=str(tmp_path), fsync="always")
    h = {"content-type": "application/x-amz-json-1.1"}

    def call(op, body):
        return app.handle("POST", "/", b"", {**h, "x-amz-target": f"Kinesis_20131202.{op}"}, json.dumps(body).encode())

    assert call("CreateStream", {"StreamName": "s", "ShardCount": 1})[0] == 200
    reply = call("PutRecord", {"StreamName": "s", "Data": base64.b64encode(b"x").decode(), "PartitionKey": "k"})
    assert type(reply) is http.StreamReply and reply.result is not None     # not answered before the fsync
    assert synced == []
    status, _, body = asyncio.run(reply.result())
    assert status == 200 and json.loads(body)["ShardId"] == "shardId-000000000000" and synced == [1]
    for e in app._engines.values():
        e.close()

"""The wire layer only translates: every implemented operation is an Engine method of its boto3 snake_case
name, reached generically from the botocore model; only the data plane has hand-written handlers."""
from __future__ import annotations

import inspect

import botocore.session
from botocore import xform_name

import fastkin
from fastkin.wire import service as S

MODEL = botocore.session.get_session().get_service_model("kinesis")


def test_the_engine_has_every_operation_under_its_boto3_name():
    missing = [op for op in S.IMPLEMENTED if not callable(getattr(fastkin.Engine, xform_name(op), None))]
    assert not missing


def test_only_the_data_plane_has_hand_written_handlers():
    assert set(S._HANDLERS) == {"PutRecord", "PutRecords", "GetRecords", "GetShardIterator", "SubscribeToShard"}


def test_every_member_reaches_an_engine_argument_and_every_required_argument_has_a_member():
    problems = []
    for name in [n for n in S.IMPLEMENTED if n in MODEL.operation_names]:    # an older botocore lacks the newest
        op = S._Operation(name, fastkin.Engine)
        input_shape = MODEL.operation_model(name).input_shape
        members = list(input_shape.members) if input_shape else []
        if name not in S._HANDLERS:
            for m in members:
                if m not in op.args and m not in S.IGNORED_MEMBERS:
                    problems.append(f"{name}.{m} reaches no argument of Engine.{op.method}")
        sig = inspect.signature(getattr(fastkin.Engine, op.method))
        for p in list(sig.parameters.values())[1:]:
            if p.default is inspect.Parameter.empty and p.name not in op.args.values():
                problems.append(f"Engine.{op.method}({p.name}) has no member in {name}")
    assert not problems, "\n".join(problems)


def test_generic_dispatch_calls_the_engine_with_snake_case_arguments(monkeypatch):
    engine = fastkin.Engine(clock=fastkin.VirtualClock(1_700_000_000.0))
    svc = S.Service(engine)
    svc.dispatch("CreateStream", {"StreamName": "s", "ShardCount": 2, "Tags": {"a": "b"}, "MaxRecordSizeInKiB": 2048})
    s = engine.stream("s")
    assert (len(s.open_shards()), s.tags, s.max_record_kib) == (2, {"a": "b"}, 2048)
    seen = {}

    def fake(self, retention_period_hours, stream_name=None, stream_arn=None):
        seen.update(hours=retention_period_hours, name=stream_name, arn=stream_arn)

    monkeypatch.setattr(fastkin.Engine, "increase_stream_retention_period", fake)
    assert svc.dispatch("IncreaseStreamRetentionPeriod", {"StreamName": "s", "RetentionPeriodHours": 48}) == {}
    assert seen == {"hours": 48, "name": "s", "arn": None}


def test_timestamps_reach_the_engine_as_epoch_seconds():
    engine = fastkin.Engine(clock=fastkin.VirtualClock(1_700_000_000.0))
    svc = S.Service(engine)
    svc.dispatch("CreateStream", {"StreamName": "s", "ShardCount": 1})
    for ts in ("2023-11-14T22:13:20Z", 1_700_000_000, "1700000000"):
        out = svc.dispatch("ListShards", {"StreamName": "s", "ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": ts}})
        assert [x["ShardId"] for x in out["Shards"]] == ["shardId-000000000000"]

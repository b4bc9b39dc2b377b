"""What the Producer (fastkin.kpl) and the Consumer (fastkin.kcl) talk to: one adapter over an Engine, a
Stream, or any boto3 Kinesis client (against AWS, ``fastkin serve`` or a mock).

Both adapters take boto3's request shape (``call("GetShardIterator", StreamName=..., ShardId=...)``) and
answer boto3's response dicts, so the clients' code is the same for every target. Against an Engine the
call goes straight to the Engine method of the same snake_case name (no botocore, no validation walk, no
serialisation): with only numpy installed, Producer and Consumer work in-process. GetRecords answers the
engine's Record objects (same field names as boto3's dicts, as attributes) instead of one dict per record.
"""
from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable

from .engine import Engine
from .limits import DEFAULT_LIMITS, Limits
from .stream import Stream

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(name: str) -> str:
    """boto3's snake_case of an operation or member name: ``ShardIteratorType`` -> ``shard_iterator_type``,
    ``StreamARN`` -> ``stream_arn``."""
    return _CAMEL.sub("_", name).lower()


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a fastkin error or a botocore ClientError (None for anything else)."""
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        return resp.get("Error", {}).get("Code")
    return None


def shard_ranges(shards: list[dict]) -> list[tuple[int, int, str]]:
    """(start hash, end hash, shard id) of the open shards among ListShards' Shards, by start hash."""
    open_ = [s for s in shards if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})]
    return sorted((int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]), s["ShardId"])
                  for s in open_)


class Target:
    """The interface both adapters implement."""

    clock: Callable[[], float]     # zero-argument callable: epoch seconds (the engine's clock, or time.time)
    limits: Limits                 # the shard limits of the service behind it
    quotas: bool                   # whether those limits are enforced

    def call(self, operation: str, **params) -> dict:
        raise NotImplementedError

    def put_records(self, stream_name: str, wire: list) -> list[tuple]:
        """PutRecords of ``(data, partition_key, explicit_hash_key or None)`` entries: one
        ``(shard_id, sequence_number, error_code, error_message)`` per entry, in order."""
        raise NotImplementedError

    def open_shards(self, stream_name: str) -> list[tuple[int, int, str]]:
        """The stream's open shards as (start hash, end hash, shard id), through ListShards(AT_LATEST)."""
        out: list[dict] = []
        page = self.call("ListShards", StreamName=stream_name, ShardFilter={"Type": "AT_LATEST"})
        while True:
            out += page["Shards"]
            if not page.get("NextToken"):
                return shard_ranges(out)
            page = self.call("ListShards", NextToken=page["NextToken"])


class EngineTarget(Target):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.clock = engine.clock
        self.limits = engine.limits

    @property
    def quotas(self) -> bool:          # type: ignore[override]
        return self.engine.quotas

    def call(self, operation: str, **params) -> dict:
        kwargs = {snake(k): v for k, v in params.items()}
        if operation == "GetRecords":
            res = self.engine.get_records(kwargs["shard_iterator"], kwargs.get("limit", 10_000))
            out = {"Records": res.records, "MillisBehindLatest": res.millis_behind_latest}
            if res.next_shard_iterator is not None:
                out["NextShardIterator"] = res.next_shard_iterator
            if res.child_shards:
                out["ChildShards"] = res.child_shards
            return out
        if operation == "GetShardIterator":
            return {"ShardIterator": self.engine.get_shard_iterator(**kwargs)}
        if operation == "SubscribeToShard":
            return {"EventStream": self.engine.subscribe_to_shard(**kwargs)}
        out = getattr(self.engine, snake(operation))(**kwargs)
        return out if isinstance(out, dict) else {}

    def put_records(self, stream_name: str, wire: list) -> list[tuple]:
        res = self.engine.put_records(wire, stream_name=stream_name)
        return [(r.shard_id, r.sequence_number, r.error_code, r.error_message) for r in res]


class Boto3Target(Target):
    def __init__(self, client) -> None:
        self.client = client
        self.clock = time.time
        self.limits = DEFAULT_LIMITS
        self.quotas = True

    def call(self, operation: str, **params) -> dict:
        return getattr(self.client, snake(operation))(**params)

    def put_records(self, stream_name: str, wire: list) -> list[tuple]:
        recs = []
        for data, key, ehk in wire:
            r = {"Data": data, "PartitionKey": key}
            if ehk is not None:
                r["ExplicitHashKey"] = ehk
            recs.append(r)
        out = self.client.put_records(StreamName=stream_name, Records=recs)
        return [(r.get("ShardId"), r.get("SequenceNumber"), r.get("ErrorCode"), r.get("ErrorMessage"))
                for r in out["Records"]]


def adapt(target, required: tuple[str, ...]) -> tuple[Target, str | None]:
    """(adapter, stream name or None) for an Engine, a Stream (its engine and name) or a boto3 Kinesis client
    (anything with the ``required`` methods)."""
    if isinstance(target, Stream):
        return EngineTarget(target.engine), target.name
    if isinstance(target, Engine):
        return EngineTarget(target), None
    if inspect.iscoroutinefunction(getattr(target, "_make_api_call", None)):
        raise TypeError(f"target is an async client ({type(target).__module__}.{type(target).__name__}); the Producer "
                        "and the Consumer call their target from threads and need a sync boto3 client (or an "
                        "Engine): see the README, 'Producer and Consumer in asyncio applications'")
    if all(hasattr(target, m) for m in required):
        return Boto3Target(target), None
    raise TypeError("target must be a fastkin Engine or Stream, or a boto3 Kinesis client, "
                    f"not {type(target).__name__}")

"""The AWS operation dispatcher: ``Service.dispatch(operation_name, params) -> response dict``.

``params`` is shaped as botocore shapes a Kinesis request before serialisation (blobs as bytes,
timestamps as datetimes, epoch seconds or strings); the response is the dict botocore returns, without
``ResponseMetadata``. Both the in-process mock (fastkin.wire.mock) and the HTTP server
(fastkin.wire.http) call this one dispatcher, so the two modes answer identically.

The Engine owns every piece of state and implements every operation under its boto3 snake_case name;
this layer only translates. Requests are checked against the constraints of botocore's Kinesis model
(fastkin.wire.model), timestamps are normalised, and each operation is then dispatched generically: the
Engine method ``xform_name(operation)`` is called with ``xform_name(member)`` keyword arguments, and a
returned dict is the response (None answers ``{}``). Only the data plane, whose Engine methods return
objects rather than boto3 dicts, has hand-written handlers (``_HANDLERS``).
"""
from __future__ import annotations

import asyncio
import binascii
import inspect
import threading
import time
import weakref

from botocore import xform_name

from .. import errors as E
from ..clock import VirtualClock
from ..stream import records_dicts, to_epoch
from .model import _lower_camel, check_request, json_dumps, put_record_ok, put_records_ok, service_model

# The 39 operations of the 2026-02 Kinesis model and those of newer models fastkin implements (all 57 of
# botocore 1.44's); operations of a model newer still are answered with UnknownOperationException.
IMPLEMENTED = (
    "AddTagsToStream", "CreateStream", "DecreaseStreamRetentionPeriod", "DeleteResourcePolicy", "DeleteStream",
    "DeregisterStreamConsumer", "DescribeAccountSettings", "DescribeLimits", "DescribeStream",
    "DescribeStreamConsumer", "DescribeStreamSummary", "DisableEnhancedMonitoring", "EnableEnhancedMonitoring",
    "GetRecords", "GetResourcePolicy", "GetShardIterator", "IncreaseStreamRetentionPeriod", "ListShards",
    "ListStreamConsumers", "ListStreams", "ListTagsForResource", "ListTagsForStream", "MergeShards", "PutRecord",
    "PutRecords", "PutResourcePolicy", "RegisterStreamConsumer", "RemoveTagsFromStream", "SplitShard",
    "StartStreamEncryption", "StopStreamEncryption", "SubscribeToShard", "TagResource", "UntagResource",
    "UpdateAccountSettings", "UpdateMaxRecordSize", "UpdateShardCount", "UpdateStreamMode",
    "UpdateStreamWarmThroughput",
    # queues (botocore 1.44)
    "CreateQueue", "DeleteQueue", "DescribeQueue", "ListQueues", "UpdateQueue",
    "ReceiveQueueRecords", "AcknowledgeQueueRecords", "UpdateQueueRecordsVisibility",
    "ReceiveDeadLetterQueueRecords", "AcknowledgeDeadLetterQueueRecords", "RestoreDeadLetterQueueRecords",
    "UpdateDeadLetterQueueRecordsVisibility",
    "UpdateStreamRecordDistributionStrategy",
    # channels (botocore 1.44)
    "CreateChannel", "DescribeChannel", "ListChannels", "UpdateChannel", "DeleteChannel",
)

# The operations that long-poll (WaitTimeSeconds): dispatch(..., wait=False) answers them without sleeping.
LONG_POLL = frozenset({"ReceiveQueueRecords", "ReceiveDeadLetterQueueRecords"})
LONG_POLL_DEFAULT_SECONDS = 9

# Data-plane operations checked by a fast test of the common well-formed request first (their handlers
# below); only a request that fails it takes the generic walk, which then words AWS's errors.
_ENGINE_CHECKED = frozenset({"PutRecord", "PutRecords", "GetRecords"})

# xform_name splits unit suffixes ("MiBps" -> "mi_bps"); the Engine spells them as one word.
_ARG_ALIASES = {"max_record_size_in_ki_b": "max_record_size_in_kib", "warm_throughput_mi_bps": "warm_throughput_mibps"}

# Members of newer models that the Engine does not take; they are accepted and have no effect. (StreamId names
# the stream of a cross-account request.) A test checks that every other member reaches an Engine argument, and
# the data-plane handlers pass DryRun on.
IGNORED_MEMBERS = frozenset({"StreamId"})


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _timestamp_paths(shape, path: tuple = ()) -> list[tuple]:
    """Member paths (tuples of member names) of the timestamp members below ``shape`` (structures only)."""
    out: list[tuple] = []
    if shape is None or shape.type_name != "structure":
        return out
    for name, m in shape.members.items():
        if m.type_name == "timestamp":
            out.append((*path, name))
        elif m.type_name == "structure":
            out += _timestamp_paths(m, (*path, name))
    return out


def _parse_timestamp(v, where: str) -> float:
    if isinstance(v, str):
        from botocore.utils import parse_timestamp
        try:
            v = parse_timestamp(v)
        except (ValueError, TypeError, OverflowError):
            raise E.ValidationException(f"{where} is not a valid timestamp: {v!r}") from None
    elif isinstance(v, int) and not isinstance(v, bool):
        try:
            v = float(v)
        except OverflowError:       # as the wire refuses a number beyond every timestamp
            raise E.SerializationException("class com.amazon.coral.value.json.numbers.TruncatingBigNumber "
                                           "can not be converted to milliseconds since epoch") from None
    return to_epoch(v, where)


class _Operation:
    """How one operation reaches the Engine: its method name, member -> argument names, timestamp paths."""

    __slots__ = ("name", "method", "args", "timestamps")

    def __init__(self, name: str, engine_cls) -> None:
        op = service_model().operation_model(name)
        self.name = name
        self.method = xform_name(name)
        members = list(op.input_shape.members) if op.input_shape is not None else []
        fn = getattr(engine_cls, self.method, None)
        accepted = set(inspect.signature(fn).parameters) if fn is not None else set()
        self.args = {}
        for m in members:
            arg = xform_name(m)
            arg = _ARG_ALIASES.get(arg, arg)
            if arg in accepted:
                self.args[m] = arg
        self.timestamps = _timestamp_paths(op.input_shape)

    def kwargs(self, params: dict) -> dict:
        args = self.args
        return {args[k]: v for k, v in params.items() if v is not None and k in args}

    def normalise_timestamps(self, params: dict) -> dict:
        """Copy of params with every timestamp member as epoch seconds (strings parsed as botocore does)."""
        for path in self.timestamps:
            node: object = params
            for name in path[:-1]:
                node = node.get(name) if isinstance(node, dict) else None
            if isinstance(node, dict) and node.get(path[-1]) is not None:
                params = _set_path(params, path, _parse_timestamp(
                    node[path[-1]], ".".join(_lower_camel(p) for p in path)))
        return params


def _set_path(params: dict, path: tuple, value) -> dict:
    out = dict(params)
    if len(path) == 1:
        out[path[0]] = value
    else:
        out[path[0]] = _set_path(params[path[0]], path[1:], value)
    return out


_SERVICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SERVICES_LOCK = threading.Lock()


def service_for(engine) -> Service:
    """The one Service bound to an Engine (created on first use)."""
    s = _SERVICES.get(engine)
    if s is None:
        with _SERVICES_LOCK:
            s = _SERVICES.get(engine)
            if s is None:
                s = _SERVICES[engine] = Service(engine)
    return s


class Service:
    """Answers the implemented operations of botocore's Kinesis model on one Engine (one account and region)."""

    def __init__(self, engine, *, validate: bool = True) -> None:
        self.engine = engine
        self.validate = validate
        # An older botocore's model lacks some of them (e.g. the account settings): those are not offered.
        known = set(service_model().operation_names)
        self._ops = {name: _Operation(name, type(engine)) for name in IMPLEMENTED if name in known}

    def dispatch(self, operation: str, params: dict, *, types: bool = False, wait: bool = True):
        """Answer one operation. ``types=True`` also type-checks params (for requests that did not come
        through botocore's validator). Raises FastkinError subclasses carrying AWS's code and status.

        ``wait=False`` is the contract for a server that must not block its event loop: the long-polling
        operations (LONG_POLL) then never sleep in real time and answer what is visible now (on a VirtualClock
        the engine still advances the clock, which costs no real time). The server loop
        (``dispatch_async`` implements it) is::

            deadline = service.long_poll_deadline(op, params)       # before the first call
            out = service.dispatch(op, params, types=..., wait=False)
            while deadline is not None and not out["QueueRecords"] and service.engine.clock() < deadline:
                await asyncio.sleep(0.005)
                out = service.dispatch(op, params, types=..., wait=False)

        A long poll called with ``wait=True`` from a thread running an asyncio event loop (a server that does not
        follow the contract) is answered as with ``wait=False``: sleeping there would stall every other request.
        """
        op = self._ops.get(operation)
        if op is None:
            if operation in service_model().operation_names:
                raise E.UnknownOperationException(
                    f"fastkin does not implement the Kinesis operation {operation} (newer than the 2026-02 model).")
            raise E.UnknownOperationException("")      # AWS's answer carries no message
        if (self.validate and operation not in _ENGINE_CHECKED) or types:
            check_request(service_model().operation_model(operation), params, types)
        elif self.validate and not _well_formed(operation, params):
            check_request(service_model().operation_model(operation), params, False)
        if op.timestamps:
            params = op.normalise_timestamps(params)
        handler = _HANDLERS.get(operation)
        if handler is not None:
            return handler(self.engine, params)
        kwargs = op.kwargs(params)
        if operation in LONG_POLL and (not wait or _in_event_loop()):
            kwargs["_wait"] = False
        out = getattr(self.engine, op.method)(**kwargs)
        return out if isinstance(out, dict) else {}

    async def dispatch_async(self, operation: str, params: dict, *, types: bool = False,
                             poll_seconds: float = 0.005):
        """``dispatch`` for an asyncio server: the long-polling operations are re-polled with ``await
        asyncio.sleep(poll_seconds)`` between non-blocking calls (the loop in ``dispatch``'s docstring), every other
        operation is answered at once. Never blocks the event loop for longer than one ordinary call."""
        deadline = self.long_poll_deadline(operation, params)
        out = self.dispatch(operation, params, types=types, wait=False)
        if deadline is None:
            return out
        real_end = time.monotonic() + (deadline - self.engine.clock()) + 1.0   # a frozen clock (freezegun) ends too
        while not out.get("QueueRecords") and self.engine.clock() < deadline and time.monotonic() < real_end:
            await asyncio.sleep(poll_seconds)
            out = self.dispatch(operation, params, types=types, wait=False)
        return out

    def long_poll_deadline(self, operation: str, params: dict) -> float | None:
        """For a server re-polling ``dispatch(..., wait=False)``: the engine-clock time until which an empty
        answer to ``operation`` should be asked again, or None when the first answer is final (every other
        operation, and any operation on a VirtualClock engine, whose waits advance the clock instead)."""
        if operation not in LONG_POLL or isinstance(self.engine.clock, VirtualClock):
            return None
        wait = params.get("WaitTimeSeconds") if isinstance(params, dict) else None
        if type(wait) is not int or not 1 <= wait <= 20:
            wait = LONG_POLL_DEFAULT_SECONDS          # an invalid value is refused by the first call anyway
        return self.engine.clock() + wait


# ---------------------------------------------------------------------------------------------
# The data plane: Engine methods that return objects (results, records, iterators, event streams).

def put_record_response(engine, p: dict) -> dict:
    """PutRecord on the Engine from checked params: the response dict."""
    s = engine.stream(p.get("StreamName"), p.get("StreamARN"))
    if p.get("DryRun"):
        s.dry_run_put([(p.get("Data"), p.get("PartitionKey"), p.get("ExplicitHashKey"))],
                      p.get("SequenceNumberForOrdering"), batch=False)
    r = s.put_record(p["Data"], p.get("PartitionKey"), p.get("ExplicitHashKey"), p.get("SequenceNumberForOrdering"))
    out = {"ShardId": r.shard_id, "SequenceNumber": r.sequence_number}
    if s.encryption_type == "KMS":
        out["EncryptionType"] = "KMS"
    return out


def _well_formed(operation: str, p: dict) -> bool:
    """The common well-formed PutRecord(s) / GetRecords request, tested quickly (the rest takes the walk)."""
    if operation == "PutRecords":
        return put_records_ok(p)
    if operation == "PutRecord":
        return put_record_ok(p)
    it, limit = p.get("ShardIterator"), p.get("Limit")
    return (type(it) is str and 1 <= len(it) <= 512 and p.get("StreamARN") is None
            and (limit is None or (type(limit) is int and 1 <= limit <= 10000)))


def put_records_response(engine, p: dict) -> dict:
    """PutRecords on the Engine from checked params: the response dict."""
    s = engine.stream(p.get("StreamName"), p.get("StreamARN"))
    batch = [(r["Data"], r.get("PartitionKey"), r["ExplicitHashKey"]) if r.get("ExplicitHashKey") is not None
             else (r["Data"], r.get("PartitionKey")) for r in p["Records"]]
    if p.get("DryRun"):
        s.dry_run_put(batch, batch=True)
    res = s.put_records(batch)
    out_recs = []
    for r in res:
        if r.error_code is None:
            out_recs.append({"SequenceNumber": r.sequence_number, "ShardId": r.shard_id})
        else:
            out_recs.append({"ErrorCode": r.error_code, "ErrorMessage": r.error_message})
    out = {"FailedRecordCount": res.failed_record_count, "Records": out_recs}
    if s.encryption_type == "KMS":
        out["EncryptionType"] = "KMS"
    return out


def _get_shard_iterator(engine, p: dict) -> dict:
    it = engine.get_shard_iterator(p["ShardId"], p["ShardIteratorType"], p.get("StreamName"), p.get("StreamARN"),
                                   p.get("StartingSequenceNumber"), p.get("Timestamp"), dry_run=bool(p.get("DryRun")))
    return {"ShardIterator": it}


def _get_records(engine, p: dict) -> dict:
    limit = p.get("Limit")
    return records_response(engine.get_records(p["ShardIterator"], 10000 if limit is None else limit,
                                               stream_arn=p.get("StreamARN"), dry_run=bool(p.get("DryRun"))))


def records_response(res) -> dict:
    """GetRecords' response dict from a GetRecordsResult."""
    out = {"Records": records_dicts(res.records), "MillisBehindLatest": res.millis_behind_latest}
    if res.next_shard_iterator is not None:
        out["NextShardIterator"] = res.next_shard_iterator
    if res.child_shards:
        out["ChildShards"] = res.child_shards
    return out


def records_json(res) -> bytes:
    """GetRecords' JSON 1.1 response body from a GetRecordsResult, written in one pass (blobs in base64,
    arrival times as epoch seconds): what ``to_wire`` of ``records_response`` gives, without the dicts."""
    b64 = binascii.b2a_base64
    dumps = json_dumps
    parts = [b'{"Records":[']
    append = parts.append
    first = True
    for r in res.records:
        if not first:
            append(b",")
        first = False
        pk = r.partition_key
        if not pk:                              # an AUTO-distributed record written without a key
            append(b'{"SequenceNumber":"%s","ApproximateArrivalTimestamp":%s,"Data":"%s"}' % (
                r.sequence_number.encode(), repr(r.approximate_arrival_timestamp).encode(),
                b64(r.data, newline=False)))
            continue
        append(b'{"SequenceNumber":"%s","ApproximateArrivalTimestamp":%s,"Data":"%s","PartitionKey":%s}' % (
            r.sequence_number.encode(), repr(r.approximate_arrival_timestamp).encode(),
            b64(r.data, newline=False), dumps(pk)))
    append(b'],"MillisBehindLatest":%d' % res.millis_behind_latest)
    if res.next_shard_iterator is not None:
        append(b',"NextShardIterator":"%s"' % res.next_shard_iterator.encode())
    if res.child_shards:
        append(b',"ChildShards":' + dumps(res.child_shards))
    append(b"}")
    return b"".join(parts)


def _subscribe_to_shard(engine, p: dict) -> dict:
    return {"EventStream": engine.subscribe_to_shard(p["ConsumerARN"], p["ShardId"], p["StartingPosition"],
                                                     dry_run=bool(p.get("DryRun")))}


_HANDLERS = {
    "PutRecord": put_record_response,
    "PutRecords": put_records_response,
    "GetShardIterator": _get_shard_iterator,
    "GetRecords": _get_records,
    "SubscribeToShard": _subscribe_to_shard,
}

__all__ = ["IMPLEMENTED", "IGNORED_MEMBERS", "LONG_POLL", "Service", "service_for", "records_response", "records_json",
           "put_record_response", "put_records_response"]

"""The AWS operation dispatcher: ``Service.dispatch(operation_name, params) -> response dict``.

``params`` is shaped as botocore shapes a Kinesis request before serialisation (blobs as bytes,
timestamps as datetimes or epoch seconds); the response is the dict botocore returns, without
``ResponseMetadata``. Both the in-process mock (fastkin.mock) and the HTTP server (fastkin.server)
call this one dispatcher, so the two modes answer identically.

Operations with Engine semantics are delegated to the Engine. The state of those that have no
local meaning yet (stream consumers, encryption settings, resource policies, account settings,
warm throughput, maximum record size and consumer tags) is kept here, validated as AWS validates it
and reflected in later responses (DescribeStream, DescribeStreamSummary, ...).

Requests are checked against the constraints of botocore's Kinesis service model (length, range,
pattern, enum: what AWS checks server-side and botocore does not) with AWS's ValidationException
text. Thread-safety: one lock guards the service state; the Engine has its own locks.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import re
import threading
import weakref

import botocore.session

from .. import errors as E
from ..fanout import Consumer, Subscription
from ..stream import to_datetime, to_epoch

_MODEL = None
_MODEL_LOCK = threading.Lock()

CONSUMERS_PER_STREAM = 20
CONSUMERS_CREATING_MAX = 5
WARM_THROUGHPUT_MAX_MIBPS = 10240
COMMITMENT_MIN_SECONDS = 24 * 3600
_CONSUMER_ARN = re.compile(r"(arn:aws[\w-]*:kinesis:[\w-]+:\d{12}:stream/[a-zA-Z0-9_.-]+)/consumer/([a-zA-Z0-9_.-]+):(\d+)\Z")
_STREAM_ARN = re.compile(r"arn:aws[\w-]*:kinesis:([\w-]+):(\d{12}):stream/([a-zA-Z0-9_.-]{1,128})\Z")


def service_model():
    """botocore's Kinesis service model (loaded once per process)."""
    global _MODEL
    if _MODEL is None:
        with _MODEL_LOCK:
            if _MODEL is None:
                _MODEL = botocore.session.get_session().get_service_model("kinesis")
    return _MODEL


# ---------------------------------------------------------------------------------------------
# Server-side constraint checks from the model (botocore checks types, required and min only).

def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


class _Checker:
    """Walks an input shape and collects AWS-style constraint violations.

    With ``types=True`` (requests that did not pass through botocore's own validator, i.e. the
    HTTP server) wrong JSON types raise SerializationException, as AWS answers them."""

    def __init__(self, types: bool) -> None:
        self.types = types
        self.errors: list[str] = []
        self._patterns: dict[str, re.Pattern] = {}

    def _bad(self, value, where: str, constraint: str) -> None:
        self.errors.append(f"Value '{_show(value)}' at '{where}' failed to satisfy constraint: Member must {constraint}")

    def _type_error(self, value, shape) -> None:
        raise SerializationError(
            f"Unexpected value type {type(value).__name__} for {shape.type_name} member {shape.name}")

    def check(self, shape, value, where: str) -> None:
        t = shape.type_name
        md = shape.metadata
        if t == "structure":
            if not isinstance(value, dict):
                if self.types:
                    self._type_error(value, shape)
                return
            for name in shape.required_members:
                if value.get(name) is None:
                    self.errors.append(f"Value null at '{_join(where, _lower_camel(name))}' failed to satisfy "
                                       "constraint: Member must not be null")
            members = shape.members
            for k, v in value.items():
                m = members.get(k)
                if m is not None and v is not None:     # AWS ignores unknown members
                    self.check(m, v, _join(where, _lower_camel(k)))
        elif t == "list":
            if not isinstance(value, (list, tuple)):
                if self.types:
                    self._type_error(value, shape)
                return
            self._length(value, len(value), md, where)
            for i, v in enumerate(value):
                self.check(shape.member, v, f"{where}.{i + 1}.member")
        elif t == "map":
            if not isinstance(value, dict):
                if self.types:
                    self._type_error(value, shape)
                return
            self._length(value, len(value), md, where)
            for k, v in value.items():
                self.check(shape.key, k, f"{where}.key")
                self.check(shape.value, v, f"{where}.value")
        elif t == "string":
            if not isinstance(value, str):
                if self.types:
                    self._type_error(value, shape)
                return
            self._length(value, len(value), md, where)
            enum = md.get("enum")
            if enum and value not in enum:
                self._bad(value, where, f"satisfy enum value set: [{', '.join(enum)}]")
            pat = md.get("pattern")
            if pat:
                rx = self._patterns.get(pat)
                if rx is None:
                    rx = self._patterns[pat] = re.compile(pat)
                if rx.fullmatch(value) is None:
                    self._bad(value, where, f"satisfy regular expression pattern: {pat}")
        elif t in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                if self.types:
                    self._type_error(value, shape)
                return
            lo, hi = md.get("min"), md.get("max")
            if lo is not None and value < lo:
                self._bad(value, where, f"have value greater than or equal to {lo}")
            elif hi is not None and value > hi:
                self._bad(value, where, f"have value less than or equal to {hi}")
        elif t == "boolean":
            if self.types and not isinstance(value, bool):
                self._type_error(value, shape)
        elif t == "blob":
            if isinstance(value, str):
                value = value.encode()
            if not isinstance(value, (bytes, bytearray, memoryview)):
                if self.types:
                    self._type_error(value, shape)
                return
            hi = md.get("max")
            if hi is not None and len(value) > hi:
                self._bad(f"java.nio.HeapByteBuffer[pos=0 lim={len(value)} cap={len(value)}]", where,
                          f"have length less than or equal to {hi}")
        elif t == "timestamp":
            if self.types and (isinstance(value, bool) or not isinstance(value, (int, float, _dt.datetime))):
                self._type_error(value, shape)

    def _length(self, value, n: int, md: dict, where: str) -> None:
        lo, hi = md.get("min"), md.get("max")
        if lo is not None and n < lo:
            self._bad(value, where, f"have length greater than or equal to {lo}")
        elif hi is not None and n > hi:
            self._bad(value, where, f"have length less than or equal to {hi}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    return str(value)


class SerializationError(E.FastkinError):
    """A request body that does not match the operation's shape (AWS: SerializationException)."""

    code = "SerializationException"


class UnknownOperationError(E.FastkinError):
    code = "UnknownOperationException"


def check_request(op_model, params: dict, types: bool) -> None:
    """Raise ValidationException (AWS's text) when params break the model's constraints."""
    shape = op_model.input_shape
    if shape is None:
        return
    c = _Checker(types)
    c.check(shape, params, "")
    if c.errors:
        n = len(c.errors)
        raise E.ValidationException(
            f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(c.errors))


# The 39 operations of the 2026-02 Kinesis model; newer botocore models add more (queues, channels),
# which are answered with UnknownOperationException until fastkin implements them.
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
)

# Data-plane operations whose members the engine validates itself (kept off the generic walk for speed).
_ENGINE_CHECKED = frozenset({"PutRecord", "PutRecords", "GetRecords"})


# ---------------------------------------------------------------------------------------------

def records_dicts(records) -> list[dict]:
    """GetRecords' Records list from engine records. Arrival datetimes are shared between records of the
    same millisecond (datetimes are immutable).
    NOTE: one datetime per record was 40 % of a 10,000-record response; batches share a few ms values."""
    utc = _dt.timezone.utc
    fromts = _dt.datetime.fromtimestamp
    stamps: dict = {}
    out = []
    append = out.append
    for r in records:
        t = r.approximate_arrival_timestamp
        d = stamps.get(t)
        if d is None:
            d = stamps[t] = fromts(t, utc)
        append({"SequenceNumber": r.sequence_number, "ApproximateArrivalTimestamp": d, "Data": r.data,
                "PartitionKey": r.partition_key})
    return out


class _StreamExtra:
    """Per-stream state the Engine does not keep: consumers, policy, warm throughput."""

    __slots__ = ("stream", "consumers", "policy", "_warm_target", "warm_current")

    def __init__(self, stream) -> None:
        self.stream = stream
        self.consumers: dict[str, Consumer] = {}
        self.policy: str | None = None
        self._warm_target: int | None = None
        self.warm_current: int = 0
        consumers = self.consumers
        stream.consumer_count_fn = lambda: len(consumers)     # DescribeStreamSummary on the engine too

    @property
    def warm_target(self) -> int | None:
        return self._warm_target

    @warm_target.setter
    def warm_target(self, value: int | None) -> None:
        self._warm_target = value
        self.stream.warm_throughput_mibps = value or 0         # the on-demand scaler keeps this capacity


_SERVICES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_SERVICES_LOCK = threading.Lock()


def service_for(engine) -> "Service":
    """The one Service bound to an Engine (created on first use)."""
    s = _SERVICES.get(engine)
    if s is None:
        with _SERVICES_LOCK:
            s = _SERVICES.get(engine)
            if s is None:
                s = _SERVICES[engine] = Service(engine)
    return s


class Service:
    """Answers the 39 operations of botocore's Kinesis model on one Engine (one account and region)."""

    def __init__(self, engine, *, consumer_latency: float = 0.0, validate: bool = True) -> None:
        self.engine = engine
        self.consumer_latency = float(consumer_latency)
        self.validate = validate
        self._lock = threading.RLock()
        self._extra: dict[int, _StreamExtra] = {}           # id(stream) -> extra; checked against the object
        self._account_commitment: dict | None = None
        self._handlers = {name: getattr(self, "op_" + name) for name in IMPLEMENTED}

    # -- entry point ------------------------------------------------------------------------------
    def dispatch(self, operation: str, params: dict, *, types: bool = False):
        """Answer one operation. ``types=True`` also type-checks params (for requests that did not come
        through botocore's validator). Raises FastkinError subclasses carrying AWS's code and status."""
        h = self._handlers.get(operation)
        if h is None:
            if operation in service_model().operation_names:
                raise UnknownOperationError(
                    f"fastkin does not implement the Kinesis operation {operation} (newer than the 2026-02 model).")
            raise UnknownOperationError(f"Operation {operation} is not supported.")
        if (self.validate and operation not in _ENGINE_CHECKED) or types:
            check_request(service_model().operation_model(operation), params, types)
        return h(params)

    # -- helpers ----------------------------------------------------------------------------------
    def _stream(self, p: dict):
        return self.engine.stream(p.get("StreamName"), p.get("StreamARN"))

    def _extra_for(self, stream) -> _StreamExtra:
        x = self._extra.get(id(stream))
        if x is None or x.stream is not stream:
            with self._lock:
                self._gc()
                x = self._extra[id(stream)] = _StreamExtra(stream)
        return x

    def _gc(self) -> None:
        live = {id(s): s for s in self.engine._live_streams()}
        for k in [k for k, x in self._extra.items() if live.get(k) is not x.stream]:
            del self._extra[k]

    def _now(self) -> float:
        return self.engine.clock()

    def _enc(self, stream) -> dict:
        return {"EncryptionType": stream.encryption_type} if stream.encryption_type == "KMS" else {}

    @staticmethod
    def _timestamp(v, where: str) -> float:
        if isinstance(v, str):
            from botocore.utils import parse_timestamp
            try:
                v = parse_timestamp(v)
            except (ValueError, TypeError):
                raise E.ValidationException(f"{where} is not a valid timestamp: {v!r}") from None
        return to_epoch(v, where)

    # -- streams: create / delete / describe / list -------------------------------------------
    def op_CreateStream(self, p: dict) -> dict:
        warm = p.get("WarmThroughputMiBps")
        mode = (p.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
        if warm is not None:
            self._check_warm(warm, mode)
        kw = {}
        if "MaxRecordSizeInKiB" in p:
            kw["max_record_size_in_kib"] = p["MaxRecordSizeInKiB"]
        s = self.engine.create_stream(p["StreamName"], p.get("ShardCount"),
                                      stream_mode_details=p.get("StreamModeDetails"), tags=p.get("Tags"), **kw)
        if warm is not None:
            x = self._extra_for(s)
            x.warm_target = x.warm_current = warm
        return {}

    def op_DeleteStream(self, p: dict) -> dict:
        s = self._stream(p)
        with self._lock:
            x = self._extra_for(s)
            if x.consumers and not p.get("EnforceConsumerDeletion"):
                raise E.ResourceInUseException(
                    f"Stream {s.name} under account {self.engine.account_id} has registered consumers. "
                    "Deregister them first or set EnforceConsumerDeletion.")
            self.engine.delete_stream(stream_name=s.name)
            for c in x.consumers.values():
                c.close_subscriptions()
            x.consumers.clear()
        return {}

    def op_DescribeStream(self, p: dict) -> dict:
        kw = {"limit": p["Limit"]} if "Limit" in p else {}
        return self.engine.describe_stream(p.get("StreamName"), p.get("StreamARN"),
                                           exclusive_start_shard_id=p.get("ExclusiveStartShardId"), **kw)

    def op_DescribeStreamSummary(self, p: dict) -> dict:
        s = self._stream(p)
        out = s.describe_summary()
        d = out["StreamDescriptionSummary"]
        x = self._extra_for(s)
        d["ConsumerCount"] = len(x.consumers)
        d["MaxRecordSizeInKiB"] = s.max_record_kib
        if x.warm_target is not None:
            d["WarmThroughput"] = {"TargetMiBps": x.warm_target, "CurrentMiBps": x.warm_current}
        return out

    def op_ListStreams(self, p: dict) -> dict:
        kw = {"limit": p["Limit"]} if "Limit" in p else {}
        return self.engine.list_streams(exclusive_start_stream_name=p.get("ExclusiveStartStreamName"),
                                        next_token=p.get("NextToken"), **kw)

    def op_ListShards(self, p: dict) -> dict:
        kw = {"max_results": p["MaxResults"]} if "MaxResults" in p else {}
        ts = p.get("StreamCreationTimestamp")
        filt = p.get("ShardFilter")
        if filt and filt.get("Timestamp") is not None:
            filt = {**filt, "Timestamp": self._timestamp(filt["Timestamp"], "shardFilter.timestamp")}
        return self.engine.list_shards(
            p.get("StreamName"), p.get("StreamARN"), next_token=p.get("NextToken"),
            exclusive_start_shard_id=p.get("ExclusiveStartShardId"),
            stream_creation_timestamp=None if ts is None else self._timestamp(ts, "streamCreationTimestamp"),
            shard_filter=filt, **kw)

    def op_DescribeLimits(self, p: dict) -> dict:
        return self.engine.describe_limits()

    # -- retention, tags, monitoring ----------------------------------------------------------------
    def op_IncreaseStreamRetentionPeriod(self, p: dict) -> dict:
        self.engine.increase_stream_retention_period(p["RetentionPeriodHours"], p.get("StreamName"), p.get("StreamARN"))
        return {}

    def op_DecreaseStreamRetentionPeriod(self, p: dict) -> dict:
        self.engine.decrease_stream_retention_period(p["RetentionPeriodHours"], p.get("StreamName"), p.get("StreamARN"))
        return {}

    def op_AddTagsToStream(self, p: dict) -> dict:
        self.engine.add_tags_to_stream(p["Tags"], p.get("StreamName"), p.get("StreamARN"))
        return {}

    def op_RemoveTagsFromStream(self, p: dict) -> dict:
        self.engine.remove_tags_from_stream(p["TagKeys"], p.get("StreamName"), p.get("StreamARN"))
        return {}

    def op_ListTagsForStream(self, p: dict) -> dict:
        kw = {"limit": p["Limit"]} if "Limit" in p else {}
        return self.engine.list_tags_for_stream(p.get("StreamName"), p.get("StreamARN"),
                                                exclusive_start_tag_key=p.get("ExclusiveStartTagKey"), **kw)

    def op_EnableEnhancedMonitoring(self, p: dict) -> dict:
        return self._engine_op("enable_enhanced_monitoring", p["ShardLevelMetrics"],
                               stream_name=p.get("StreamName"), stream_arn=p.get("StreamARN"))

    def op_DisableEnhancedMonitoring(self, p: dict) -> dict:
        return self._engine_op("disable_enhanced_monitoring", p["ShardLevelMetrics"],
                               stream_name=p.get("StreamName"), stream_arn=p.get("StreamARN"))

    # -- resharding and capacity (Engine semantics) ---------------------------------------------
    def _engine_op(self, name: str, *args, **kw):
        fn = getattr(self.engine, name, None)
        if fn is None:   # pragma: no cover - only while the engine lacks the operation
            raise E.UnsupportedOperationError(f"this fastkin engine does not implement {name} yet")
        out = fn(*args, **kw)
        return out if isinstance(out, dict) else {}

    def op_SplitShard(self, p: dict) -> dict:
        self._engine_op("split_shard", p["ShardToSplit"], p["NewStartingHashKey"],
                        stream_name=p.get("StreamName"), stream_arn=p.get("StreamARN"))
        return {}

    def op_MergeShards(self, p: dict) -> dict:
        self._engine_op("merge_shards", p["ShardToMerge"], p["AdjacentShardToMerge"],
                        stream_name=p.get("StreamName"), stream_arn=p.get("StreamARN"))
        return {}

    def op_UpdateShardCount(self, p: dict) -> dict:
        return self._engine_op("update_shard_count", p["TargetShardCount"], p["ScalingType"],
                               stream_name=p.get("StreamName"), stream_arn=p.get("StreamARN"))

    def op_UpdateStreamMode(self, p: dict) -> dict:
        warm = p.get("WarmThroughputMiBps")
        mode = p["StreamModeDetails"].get("StreamMode")
        s = self.engine.stream(None, p["StreamARN"])
        if warm is not None:
            self._check_warm(warm, mode)
        self._engine_op("update_stream_mode", p["StreamARN"], p["StreamModeDetails"])
        x = self._extra_for(s)
        if warm is not None:
            x.warm_target = x.warm_current = warm
        elif mode == "PROVISIONED":
            x.warm_target = None
        return {}

    def _commitment_enabled(self) -> bool:
        c = self._account_commitment
        if c is None:
            return False
        if c["Status"] == "ENABLED":
            return True
        return c["Status"] == "ENABLED_UNTIL_EARLIEST_ALLOWED_END" and self._now() < c["_until"]

    def _check_warm(self, warm: int, mode: str) -> None:
        if mode != "ON_DEMAND":
            raise E.InvalidArgumentException("Warm throughput can only be set on streams in ON_DEMAND mode.")
        if not self._commitment_enabled():
            raise E.ValidationException(
                "Warm throughput requires a minimum throughput billing commitment on the account "
                "(UpdateAccountSettings).")
        if warm > WARM_THROUGHPUT_MAX_MIBPS:
            raise E.InvalidArgumentException(
                f"WarmThroughputMiBps {warm} exceeds the maximum of {WARM_THROUGHPUT_MAX_MIBPS} MiBps.")

    def op_UpdateStreamWarmThroughput(self, p: dict) -> dict:
        s = self._stream(p)
        warm = p["WarmThroughputMiBps"]
        self._check_warm(warm, s.mode)
        x = self._extra_for(s)
        x.warm_target = x.warm_current = warm
        return {"StreamARN": s.arn, "StreamName": s.name,
                "WarmThroughput": {"TargetMiBps": warm, "CurrentMiBps": warm}}

    def op_UpdateMaxRecordSize(self, p: dict) -> dict:
        s = self.engine.stream(None, p["StreamARN"])
        kib = p["MaxRecordSizeInKiB"]
        self.engine._check_max_record_kib(kib)
        with self._lock:
            s.max_record_kib = kib
            s.core.max_record_bytes = kib * 1024
        return {}

    # -- encryption ----------------------------------------------------------------------------
    def _check_kms(self, p: dict) -> None:
        if p["EncryptionType"] != "KMS":
            raise E.InvalidArgumentException(
                f"Unsupported encryption type {p['EncryptionType']}. EncryptionType must be KMS.")

    @staticmethod
    def _begin_update(s) -> None:
        """ResourceInUseException unless ACTIVE; then UPDATING for the engine's update latency."""
        require = getattr(s, "require_active", None)
        if require is None:      # an engine without the UPDATING state
            if s.status != "ACTIVE":
                raise E.ResourceInUseException(
                    f"Stream {s.name} under account {s.engine.account_id} not ACTIVE, instead in state {s.status}")
            return
        now = require()
        s.begin_update(now)

    def op_StartStreamEncryption(self, p: dict) -> dict:
        s = self._stream(p)
        self._check_kms(p)
        with self._lock:
            self._begin_update(s)
            s.encryption_type = "KMS"
            s.key_id = p["KeyId"]
        return {}

    def op_StopStreamEncryption(self, p: dict) -> dict:
        s = self._stream(p)
        self._check_kms(p)
        with self._lock:
            if s.encryption_type != "KMS":
                raise E.InvalidArgumentException(
                    f"Stream {s.name} under account {self.engine.account_id} is not encrypted.")
            self._begin_update(s)
            s.encryption_type = "NONE"
            s.key_id = None
        return {}

    # -- data plane ----------------------------------------------------------------------------
    def op_PutRecord(self, p: dict) -> dict:
        s = self.engine.stream(p.get("StreamName"), p.get("StreamARN"))
        r = s.put_record(p["Data"], p["PartitionKey"], p.get("ExplicitHashKey"), p.get("SequenceNumberForOrdering"))
        out = {"ShardId": r.shard_id, "SequenceNumber": r.sequence_number}
        if s.encryption_type == "KMS":
            out["EncryptionType"] = "KMS"
        return out

    def op_PutRecords(self, p: dict) -> dict:
        s = self.engine.stream(p.get("StreamName"), p.get("StreamARN"))
        recs = p["Records"]
        if not isinstance(recs, list):
            raise E.ValidationException("records must be a list")
        try:
            batch = [(r["Data"], r["PartitionKey"], r["ExplicitHashKey"]) if "ExplicitHashKey" in r
                     else (r["Data"], r["PartitionKey"]) for r in recs]
        except (KeyError, TypeError):
            raise E.ValidationException("Each record needs Data and PartitionKey.") from None
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

    def op_GetShardIterator(self, p: dict) -> dict:
        ts = p.get("Timestamp")
        if ts is not None:
            ts = self._timestamp(ts, "timestamp")
        it = self.engine.get_shard_iterator(p["ShardId"], p["ShardIteratorType"], p.get("StreamName"),
                                            p.get("StreamARN"), p.get("StartingSequenceNumber"), ts)
        return {"ShardIterator": it}

    def op_GetRecords(self, p: dict) -> dict:
        it = p["ShardIterator"]
        if not isinstance(it, str) or not 1 <= len(it) <= 512:
            raise E.validation_error(it, "shardIterator", "have length between 1 and 512")
        limit = p.get("Limit", 10000)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise E.validation_error(limit, "limit", "have value between 1 and 10000")
        res = self.engine.get_records(it, limit, stream_arn=p.get("StreamARN"))
        return self.records_response(res)

    @staticmethod
    def records_response(res, kms: bool = False) -> dict:
        recs = records_dicts(res.records)
        out = {"Records": recs, "MillisBehindLatest": res.millis_behind_latest}
        if res.next_shard_iterator is not None:
            out["NextShardIterator"] = res.next_shard_iterator
        if res.child_shards:
            out["ChildShards"] = res.child_shards
        return out

    # -- consumers (enhanced fan-out) --------------------------------------------------------------
    def _consumer_by(self, p: dict) -> tuple:
        """(stream, extra, consumer) from ConsumerARN, or StreamARN + ConsumerName."""
        arn, name, sarn = p.get("ConsumerARN"), p.get("ConsumerName"), p.get("StreamARN")
        if arn is not None:
            if name is not None or sarn is not None:
                raise E.InvalidArgumentException(
                    "ConsumerARN cannot be combined with StreamARN or ConsumerName.")
            m = _CONSUMER_ARN.match(arn)
            if m is None:
                raise E.ResourceNotFoundException(f"Consumer {arn} not found.")
            sarn, name = m.group(1), m.group(2)
            s = self.engine.stream(None, sarn)
            x = self._extra_for(s)
            c = x.consumers.get(name)
            if c is None or c.arn != arn:
                raise E.ResourceNotFoundException(f"Consumer {arn} not found.")
            return s, x, c
        if name is None or sarn is None:
            raise E.InvalidArgumentException("Either ConsumerARN, or both StreamARN and ConsumerName, must be given.")
        s = self.engine.stream(None, sarn)
        x = self._extra_for(s)
        c = x.consumers.get(name)
        if c is None:
            raise E.ResourceNotFoundException(
                f"Consumer {name} under stream {s.name} under account {self.engine.account_id} not found.")
        return s, x, c

    def op_RegisterStreamConsumer(self, p: dict) -> dict:
        s = self.engine.stream(None, p["StreamARN"])
        name = p["ConsumerName"]
        tags = self.engine._check_tags(p.get("Tags") or {})
        now = self._now()
        with self._lock:
            x = self._extra_for(s)
            if name in x.consumers:
                raise E.ResourceInUseException(
                    f"Consumer {name} under stream {s.name} already exists for account {self.engine.account_id}.")
            if len(x.consumers) >= CONSUMERS_PER_STREAM:
                raise E.LimitExceededException(
                    f"Stream {s.name} under account {self.engine.account_id} already has {CONSUMERS_PER_STREAM} "
                    "registered consumers, the maximum.")
            creating = sum(1 for xx in self._extra.values() for c in xx.consumers.values() if c.status_at(now) == "CREATING")
            if creating >= CONSUMERS_CREATING_MAX:
                raise E.LimitExceededException(
                    f"Account {self.engine.account_id} already has {CONSUMERS_CREATING_MAX} consumers in CREATING state.")
            c = Consumer(s, name, now, self.consumer_latency, tags)
            x.consumers[name] = c
        return {"Consumer": c.summary(now)}

    def op_DescribeStreamConsumer(self, p: dict) -> dict:
        s, _, c = self._consumer_by(p)
        d = c.summary(self._now())
        d["StreamARN"] = s.arn
        return {"ConsumerDescription": d}

    def op_DeregisterStreamConsumer(self, p: dict) -> dict:
        _, x, c = self._consumer_by(p)
        with self._lock:
            if x.consumers.get(c.name) is c:
                del x.consumers[c.name]
            c.close_subscriptions()
        return {}

    def op_ListStreamConsumers(self, p: dict) -> dict:
        s = self.engine.stream(None, p["StreamARN"])
        limit = p.get("MaxResults", 100)
        now = self._now()
        ts = p.get("StreamCreationTimestamp")
        if ts is not None and math.floor(self._timestamp(ts, "streamCreationTimestamp")) != math.floor(s.created):
            raise E.ResourceNotFoundException(
                f"Stream {s.name} under account {self.engine.account_id} with the given creation time not found.")
        x = self._extra_for(s)
        cs = sorted(x.consumers.values(), key=lambda c: c.name)
        token = p.get("NextToken")
        if token is not None:
            _, after = self.engine._tokens.open_next_token(token, "consumers", math.floor(now * 1000), 300_000)
            cs = [c for c in cs if c.name > after]
        page = cs[:limit]
        out = {"Consumers": [c.summary(now) for c in page]}
        if len(cs) > limit:
            out["NextToken"] = self.engine._tokens.next_token("consumers", s.incarnation, math.floor(now * 1000),
                                                              page[-1].name)
        return out

    def op_SubscribeToShard(self, p: dict) -> dict:
        s, _, c = self._consumer_by({"ConsumerARN": p["ConsumerARN"]})
        now = self._now()
        if c.status_at(now) != "ACTIVE":
            raise E.ResourceInUseException(f"Consumer {c.arn} is not ACTIVE.")
        info = s.shard(p["ShardId"])
        sp = p["StartingPosition"]
        t = sp.get("Type")
        ts = sp.get("Timestamp")
        it = self.engine.get_shard_iterator(
            info.shard_id, t, stream_name=s.name, starting_sequence_number=sp.get("SequenceNumber"),
            timestamp=None if ts is None else self._timestamp(ts, "startingPosition.timestamp"))
        sub = Subscription(self.engine, s, c, info.index, it, now)
        c.attach(sub, info.index, now)
        return {"EventStream": sub}

    # -- resource tags and policies ---------------------------------------------------------------
    def _resource(self, arn: str):
        """(stream, consumer or None) named by a ResourceARN."""
        m = _CONSUMER_ARN.match(arn)
        if m is not None:
            return self._consumer_by({"ConsumerARN": arn})[::2]
        if _STREAM_ARN.match(arn) is None:
            raise E.InvalidArgumentException(f"Invalid ResourceARN {arn}.")
        return self.engine.stream(None, arn), None

    def op_TagResource(self, p: dict) -> dict:
        s, c = self._resource(p["ResourceARN"])
        if c is None:
            self.engine.add_tags_to_stream(p["Tags"], stream_arn=s.arn)
            return {}
        tags = self.engine._check_tags(p["Tags"])
        with self._lock:
            merged = {**c.tags, **tags}
            if len(merged) > 50:
                raise E.LimitExceededException(
                    f"Failed to add tags to consumer {c.name} because a resource can have a maximum of 50 tags.")
            c.tags = merged
        return {}

    def op_UntagResource(self, p: dict) -> dict:
        s, c = self._resource(p["ResourceARN"])
        if c is None:
            self.engine.remove_tags_from_stream(p["TagKeys"], stream_arn=s.arn)
            return {}
        with self._lock:
            for k in p["TagKeys"]:
                c.tags.pop(k, None)
        return {}

    def op_ListTagsForResource(self, p: dict) -> dict:
        s, c = self._resource(p["ResourceARN"])
        tags = s.tags if c is None else c.tags
        return {"Tags": [{"Key": k, "Value": tags[k]} for k in sorted(tags)]}

    def op_PutResourcePolicy(self, p: dict) -> dict:
        s, c = self._resource(p["ResourceARN"])
        policy = p["Policy"]
        try:
            doc = json.loads(policy)
        except ValueError:
            raise E.InvalidArgumentException("Policy is not valid JSON.") from None
        if not isinstance(doc, dict) or "Statement" not in doc:
            raise E.InvalidArgumentException("Policy must be a JSON object with a Statement.")
        with self._lock:
            if c is None:
                self._extra_for(s).policy = policy
            else:
                c.policy = policy
        return {}

    def op_GetResourcePolicy(self, p: dict) -> dict:
        s, c = self._resource(p["ResourceARN"])
        policy = self._extra_for(s).policy if c is None else c.policy
        return {"Policy": policy if policy is not None else "{}"}

    def op_DeleteResourcePolicy(self, p: dict) -> dict:
        s, c = self._resource(p["ResourceARN"])
        with self._lock:
            holder = self._extra_for(s) if c is None else c
            if holder.policy is None:
                raise E.ResourceNotFoundException(f"No resource policy found for resource ARN {p['ResourceARN']}.")
            holder.policy = None
        return {}

    # -- account settings -------------------------------------------------------------------------
    def _commitment_view(self) -> dict:
        c = self._account_commitment
        if c is None:
            return {}
        now = self._now()
        if c["Status"] == "ENABLED_UNTIL_EARLIEST_ALLOWED_END" and now >= c["_until"]:
            c["Status"] = "DISABLED"
        return {"MinimumThroughputBillingCommitment": {k: (to_datetime(v) if k.endswith("At") else v)
                                                       for k, v in c.items() if not k.startswith("_")}}

    def op_DescribeAccountSettings(self, p: dict) -> dict:
        with self._lock:
            return self._commitment_view()

    def op_UpdateAccountSettings(self, p: dict) -> dict:
        want = p["MinimumThroughputBillingCommitment"]["Status"]
        now = self._now()
        with self._lock:
            self._commitment_view()
            c = self._account_commitment
            active = c is not None and c["Status"] in ("ENABLED", "ENABLED_UNTIL_EARLIEST_ALLOWED_END")
            if want == "ENABLED":
                if not active:
                    start = math.floor(now)
                    self._account_commitment = {"Status": "ENABLED", "StartedAt": start,
                                                "EarliestAllowedEndAt": start + COMMITMENT_MIN_SECONDS,
                                                "_until": start + COMMITMENT_MIN_SECONDS}
                elif c["Status"] == "ENABLED_UNTIL_EARLIEST_ALLOWED_END":
                    c["Status"] = "ENABLED"
                    c.pop("EndedAt", None)
            else:
                if not active:
                    raise E.InvalidArgumentException("The minimum throughput billing commitment is not enabled.")
                if now < c["_until"]:
                    c["Status"] = "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
                    c["EndedAt"] = c["EarliestAllowedEndAt"]
                else:
                    c["Status"] = "DISABLED"
                    c["EndedAt"] = math.floor(now)
            return self._commitment_view()

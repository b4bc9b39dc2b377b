"""The Engine: streams of one account and region, on one clock, with one set of limits.

Method names are boto3's Kinesis operation names in snake_case. A stream is named by
``stream_name`` or ``stream_arn`` (either, or both when they agree).
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from . import errors as E, topology
from ._core import get_core
from .channels import FRESHNESS_MIN, LIST_DEFAULT as LIST_CHANNELS_DEFAULT, Channel, Channels
from .clock import RealClock
from .fanout import StreamConsumer, Subscription
from .limits import (
    DEFAULT_LIMITS,
    GET_RECORDS_MAX_RECORDS,
    LIST_SHARDS_MAX_RESULTS,
    LIST_STREAMS_MAX,
    MAX_RECORD_KIB_DEFAULT,
    MAX_RECORD_KIB_MAX,
    ON_DEMAND_INITIAL_SHARDS,
    RETENTION_HOURS_DEFAULT,
    RETENTION_HOURS_MAX,
    RETENTION_HOURS_MIN,
    TAGS_MAX,
    Limits,
)
from .metrics import SHARD_LEVEL_NAMES
from .queues import (
    MAX_RECEIVE_DEFAULT,
    MAX_RECEIVE_MAX,
    STARTING_POSITIONS,
    VISIBILITY_DEFAULT,
    VISIBILITY_MAX,
    WAIT_DEFAULT,
    Queue,
)
from .stream import Stream, parse_shard_id, shard_not_found, to_datetime, to_epoch
from .tokens import TokenCodec

_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}\Z")
_TAG_CHARS = re.compile(r"[\w .:/=+\-@%]*\Z", re.UNICODE)
_ARN = re.compile(r"arn:aws[\w-]*:kinesis:([\w-]+):(\d{12}):stream/([a-zA-Z0-9_.-]{1,128})\Z")
_QUEUE_ARN = re.compile(r"arn:aws[\w-]*:kinesis:([\w-]+):(\d{12}):queue/(\S+)\Z")
_CONSUMER_ARN = re.compile(
    r"(arn:aws[\w-]*:kinesis:[\w-]+:\d{12}:stream/[a-zA-Z0-9_.-]+)/consumer/([a-zA-Z0-9_.-]+):(\d+)\Z")
# The order AWS lists shard-level metrics in (aws-cli's recorded EnableEnhancedMonitoring ["ALL"] output, facts
# §10: "ALL" is expanded, never echoed). Explicitly named metrics are listed in the same order whatever the
# request's order (AWS's order for those is unrecorded; its metric set prints in one fixed order).
SHARD_LEVEL_METRICS_AWS_ORDER = ("IncomingBytes", "OutgoingRecords", "IteratorAgeMilliseconds", "IncomingRecords",
                                 "ReadProvisionedThroughputExceeded", "WriteProvisionedThroughputExceeded",
                                 "OutgoingBytes")
LIST_TOKEN_TTL_MS = 300_000
CONSUMERS_PER_STREAM = 20
CONSUMERS_CREATING_MAX = 5
QUEUES_CHANGING_MAX = 5          # queues in CREATING or DELETING per account and region
LIST_QUEUES_DEFAULT = 100        # ListQueues page size (default, and the cap of MaxResults)
DISTRIBUTIONS = ("AUTO", "USER_PARTITION_KEY")
WARM_THROUGHPUT_MAX_MIBPS = 10240
COMMITMENT_MIN_SECONDS = 24 * 3600


class Engine:
    """An in-process Kinesis Data Streams service.

    >>> engine = Engine()
    >>> s = engine.create_stream("orders", shard_count=2)
    >>> s.put_record(b"x", "k").shard_id
    'shardId-000000000001'
    """

    def __init__(self, clock=None, *, account_id: str = "123456789012", region: str = "us-east-1",
                 limits: Limits = DEFAULT_LIMITS, quotas: bool = True, core: str | None = None,
                 create_latency: float = 0.0, delete_latency: float = 0.0, update_latency: float = 0.0,
                 consumer_latency: float = 0.0, data_dir: str | os.PathLike | None = None, fsync: str = "interval",
                 fsync_interval: float = 0.1, verify_data: bool = False, channel_s3=None,
                 channel_freshness_min: int = FRESHNESS_MIN, channel_iceberg=None) -> None:
        if not re.fullmatch(r"\d{12}", account_id):
            raise ValueError(f"account_id must be 12 digits, got {account_id!r}")
        self.clock = clock if clock is not None else RealClock()
        self.account_id = account_id
        self.region = region
        self.limits = limits
        self.quotas = quotas
        self.core = get_core(core)             # the data-plane core module (compiled, or the reference)
        self.core_name: str = self.core.NAME
        self.create_latency = float(create_latency)
        self.delete_latency = float(delete_latency)
        self.update_latency = float(update_latency)
        self.consumer_latency = float(consumer_latency)     # a registered consumer's CREATING -> ACTIVE delay
        self.account_commitment: dict | None = None          # MinimumThroughputBillingCommitment (account settings)
        self._streams: dict[str, Stream] = {}
        self._lock = threading.RLock()
        self._tokens = TokenCodec(os.urandom(32))
        self._incarnations = 0
        self._queues: dict[str, Queue] = {}     # queue ARN -> Queue (DELETING ones until they are gone)
        self._queue_serials = 0
        # channels: where S3 objects go (None: boto3's S3 client; "file://DIR"; an endpoint URL; a client)
        # S3 Tables channels: where tables go (None: a temporary directory; a directory; a pyiceberg Catalog)
        self._channels = Channels(self, channel_s3, channel_freshness_min, channel_iceberg)
        self.durable = None          # the data directory (fastkin.durable.Durable) when data_dir is given
        if data_dir is not None:
            from .durable import Durable  # only with a data directory: it needs fcntl (POSIX), sqlite3, the files

            self.durable = Durable(self, os.fspath(data_dir), fsync, fsync_interval, verify_data)

    def close(self) -> None:
        """Flush and close the data directory, if any (releasing its lock); an in-memory engine has nothing to do."""
        if self.durable is not None:
            self.durable.close()

    # -- quotas switch ----------------------------------------------------------------------
    def set_quotas(self, enabled: bool) -> None:
        """Turn per-shard quota enforcement on or off for every stream, now and later."""
        with self._lock:
            self.quotas = bool(enabled)
            for s in self._streams.values():
                s.core.quotas = self.quotas

    def _now_ms(self) -> int:
        return math.floor(self.clock() * 1000.0)

    # -- lookup -----------------------------------------------------------------------------
    def stream(self, stream_name: str | None = None, stream_arn: str | None = None) -> Stream:
        """The Stream named by name or ARN; ResourceNotFoundException when there is none."""
        name = self._resolve_name(stream_name, stream_arn)
        s = self._streams.get(name)
        if s is None or (s.deleting_at is not None and s.now() >= s.deleting_at):
            if s is not None:
                self._reap(s)
            raise E.stream_not_found(name, self.account_id)
        return s

    def _stream_for_shards(self, stream_name, stream_arn, *shard_ids) -> Stream:
        """The stream of an operation on named shards. A shard id that does not parse (see
        stream.parse_shard_id) is reported before the stream is looked up, as AWS does:
        ``Could not find shard {raw} in stream {name} ...`` whether or not the stream exists."""
        name = self._resolve_name(stream_name, stream_arn)
        for raw in shard_ids:
            if isinstance(raw, str) and parse_shard_id(raw) is None:
                raise shard_not_found(raw, name, self.account_id)
        return self.stream(stream_name, stream_arn)

    def _resolve_name(self, stream_name, stream_arn) -> str:
        if stream_name is None and stream_arn is None:
            raise E.ValidationException("Either StreamName or StreamARN must be specified.")
        if stream_arn is not None:
            m = _ARN.match(stream_arn) if isinstance(stream_arn, str) else None
            if m is None:
                raise E.validation_error(stream_arn, "streamARN",
                                         "satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+")
            region, account, name = m.groups()
            if account != self.account_id or region != self.region:
                raise E.stream_not_found(name, account)
            if stream_name is not None and stream_name != name:
                raise E.InvalidArgumentException(
                    f"StreamARN {stream_arn} and StreamName {stream_name} do not name the same stream.")
            return name
        self._check_name(stream_name)
        return stream_name

    @staticmethod
    def _check_name(name) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            if isinstance(name, str) and not 1 <= len(name) <= 128:
                raise E.validation_error(
                    name, "streamName",
                    f"have length {'greater than or equal to 1' if not name else 'less than or equal to 128'}")
            raise E.validation_error(name, "streamName", "satisfy regular expression pattern: [a-zA-Z0-9_.-]+")

    def _reap(self, s: Stream) -> None:
        with self._lock:
            if self._streams.get(s.name) is s:
                del self._streams[s.name]

    def _live_streams(self) -> list[Stream]:
        for s in list(self._streams.values()):
            if s.deleting_at is not None and s.now() >= s.deleting_at:
                self._reap(s)
        return list(self._streams.values())

    # -- create / delete --------------------------------------------------------------------
    def create_stream(self, stream_name: str, shard_count: int | None = None, *,
                      stream_mode_details: dict | None = None, stream_mode: str | None = None, tags: dict | None = None,
                      retention_period_hours: int = RETENTION_HOURS_DEFAULT,
                      max_record_size_in_kib: int = MAX_RECORD_KIB_DEFAULT, warm_throughput_mibps: int | None = None,
                      storage: str = "full", record_distribution_strategy: str | None = None) -> Stream:
        """Create a stream and return it. boto3's ``stream_mode_details`` (or fastkin's ``stream_mode``) is
        PROVISIONED (needs shard_count) or ON_DEMAND (4 shards); with neither and no shard_count the stream
        is ON_DEMAND, as AWS makes it. ShardCount with ``stream_mode_details`` ON_DEMAND is a
        ValidationException (AWS's text is unrecorded; fastkin uses CloudFormation's); fastkin's own
        ``stream_mode="ON_DEMAND"`` may start with ``shard_count`` shards (for simulations).
        ``warm_throughput_mibps`` (ON_DEMAND, with a billing commitment) keeps that write capacity ready.
        ``storage="metadata"`` keeps only each record's sizes and times (reads return empty data and
        keys): for simulations that send more than memory holds; quotas and metrics are unchanged.
        ``record_distribution_strategy`` AUTO (on-demand only) spreads records over the open shards in turn."""
        if storage not in ("full", "metadata"):
            raise ValueError(f"storage must be 'full' or 'metadata', got {storage!r}")
        if warm_throughput_mibps is not None:
            self._check_warm(warm_throughput_mibps,
                             stream_mode or (stream_mode_details or {}).get(
                                 "StreamMode", "PROVISIONED" if shard_count is not None else "ON_DEMAND"))
        self._check_name(stream_name)
        mode = stream_mode or (stream_mode_details or {}).get("StreamMode")
        if mode is None:
            mode = "PROVISIONED" if shard_count is not None else "ON_DEMAND"
        if mode not in ("PROVISIONED", "ON_DEMAND"):
            raise E.validation_error(mode, "streamModeDetails.streamMode",
                                     "satisfy enum value set: [PROVISIONED, ON_DEMAND]")
        if shard_count is not None and mode == "ON_DEMAND" and stream_mode is None:
            raise E.ValidationException("ShardCount is not expected when StreamMode=ON_DEMAND")
        if shard_count is None:
            if mode == "PROVISIONED":
                raise E.InvalidArgumentException("ShardCount is required for a stream in PROVISIONED mode.")
            shard_count = ON_DEMAND_INITIAL_SHARDS
        if isinstance(shard_count, bool) or not isinstance(shard_count, int):
            raise E.ValidationException(f"ShardCount must be an integer, got {type(shard_count).__name__}")
        if shard_count < 1:
            raise E.validation_error(shard_count, "shardCount", "have value greater than or equal to 1")
        self._check_retention(retention_period_hours)
        self._check_max_record_kib(max_record_size_in_kib)
        if record_distribution_strategy is not None:
            self._check_distribution(record_distribution_strategy, mode, stream_name)
        tags = self._check_tags(tags or {})
        with self._lock:
            self._live_streams()                # reaps streams whose deletion has finished
            if stream_name in self._streams:
                raise E.ResourceInUseException(f"Stream {stream_name} under account {self.account_id} already exists.")
            self.check_shard_quota(shard_count)
            if mode == "ON_DEMAND":
                self.check_on_demand_quota()
            self._incarnations += 1
            s = Stream(self, stream_name, shard_count, mode, retention_period_hours, tags,
                       max_record_size_in_kib, self._incarnations, storage)
            if warm_throughput_mibps is not None:
                s.warm_target = s.warm_current = warm_throughput_mibps
            if record_distribution_strategy is not None:
                s.record_distribution = record_distribution_strategy
            self._streams[stream_name] = s
            return s

    @staticmethod
    def _check_distribution(strategy, mode: str, name: str) -> None:
        if strategy not in DISTRIBUTIONS:
            raise E.validation_error(strategy, "recordDistributionStrategy",
                                     "satisfy enum value set: [AUTO, USER_PARTITION_KEY]")
        if strategy == "AUTO" and mode != "ON_DEMAND":
            raise E.InvalidArgumentException(
                f"RecordDistributionStrategy=AUTO is only supported for on-demand streams. Stream {name} is using "
                f"{mode} mode.")

    def update_stream_record_distribution_strategy(self, stream_arn: str, record_distribution_strategy: str) -> None:
        """UpdateStreamRecordDistributionStrategy: takes effect at once for new records (no UPDATING state); records
        already written keep their shards."""
        s = self.stream(None, stream_arn)
        self._check_distribution(record_distribution_strategy, s.mode, s.name)
        if s.mode != "ON_DEMAND":
            raise E.InvalidArgumentException(
                "UpdateStreamRecordDistributionStrategy is only supported for on-demand streams. Stream "
                f"{s.name} is using {s.mode} mode.")
        st = s.status
        if st in ("CREATING", "DELETING"):
            raise E.ResourceInUseException(
                f"Stream {s.name} under account {self.account_id} not ACTIVE, instead in state {st}")
        with s._lock:
            s.record_distribution = record_distribution_strategy

    def check_shard_quota(self, extra: int) -> None:
        """LimitExceededException when ``extra`` more open shards would pass the account's shard limit."""
        current = self.open_shard_count()
        if current + extra > self.limits.shard_limit:
            raise E.LimitExceededException(
                f"This request would exceed the shard limit for the account {self.account_id} in {self.region}. "
                f"Current shard count for the account: {current}. Limit: {self.limits.shard_limit}. Number of "
                f"additional shards that would have resulted from this request: {extra}. Refer to the AWS Service "
                "Limits page (https://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current "
                "limits and how to request higher limits.")

    def check_on_demand_quota(self) -> None:
        """LimitExceededException when one more on-demand stream would pass the account's limit."""
        with self._lock:
            n = sum(1 for s in self._live_streams() if s.mode == "ON_DEMAND")
            if n >= self.limits.on_demand_stream_limit:
                raise E.LimitExceededException(
                    f"This request would exceed the on-demand stream limit for account {self.account_id} "
                    f"({self.limits.on_demand_stream_limit} streams).")

    def open_shard_count(self) -> int:
        return sum(len(s.open_shards()) for s in self._live_streams())

    @staticmethod
    def _check_max_record_kib(v) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or not MAX_RECORD_KIB_DEFAULT <= v <= MAX_RECORD_KIB_MAX:
            raise E.validation_error(v, "maxRecordSizeInKiB",
                                     f"have value between {MAX_RECORD_KIB_DEFAULT} and {MAX_RECORD_KIB_MAX}")

    def delete_stream(self, stream_name: str | None = None, stream_arn: str | None = None,
                      enforce_consumer_deletion: bool = False) -> None:
        with self._lock:
            s = self.stream(stream_name, stream_arn)
            self._live_queues()                 # drops queues whose deletion has finished
            self._channels.live()
            if s.channels:
                raise E.ResourceInUseException(
                    f"Stream {s.name} under account {self.account_id} has {len(s.channels)} channel(s). Delete them "
                    "first (DeleteChannel).")
            if s.queues:
                raise E.ResourceInUseException(
                    f"Stream {s.name} under account {self.account_id} has {len(s.queues)} queue(s). Delete them first "
                    "(DeleteQueue): EnforceConsumerDeletion does not delete queues.")
            if s.consumers and not enforce_consumer_deletion:
                raise E.ResourceInUseException(
                    f"Stream {s.name} under account {self.account_id} has registered consumers. "
                    "Deregister them first or set EnforceConsumerDeletion.")
            for c in s.consumers.values():
                c.close_subscriptions()
            s.consumers.clear()
            if s.deleting_at is not None:
                return
            s.deleting_at = s.now() + self.delete_latency
            if self.delete_latency <= 0:
                self._reap(s)

    # -- describe / list --------------------------------------------------------------------
    def describe_stream(self, stream_name=None, stream_arn=None, limit: int = 100,
                        exclusive_start_shard_id: str | None = None) -> dict:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise E.validation_error(limit, "limit", "have value between 1 and 10000")
        return self.stream(stream_name, stream_arn).describe(min(limit, 100), exclusive_start_shard_id)

    def describe_stream_summary(self, stream_name=None, stream_arn=None) -> dict:
        return self.stream(stream_name, stream_arn).describe_summary()

    def list_streams(self, limit: int = 100, exclusive_start_stream_name: str | None = None,
                     next_token: str | None = None) -> dict:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise E.validation_error(limit, "limit", "have value between 1 and 10000")
        limit = min(limit, LIST_STREAMS_MAX)
        after = exclusive_start_stream_name
        if next_token is not None:
            if exclusive_start_stream_name is not None:
                raise E.InvalidArgumentException("NextToken and ExclusiveStartStreamName cannot be provided together.")
            _, after = self._tokens.open_next_token(next_token, "streams", self._now_ms(), LIST_TOKEN_TTL_MS)
        streams = sorted(self._live_streams(), key=lambda s: s.name)
        if after is not None:
            streams = [s for s in streams if s.name > after]
        page, more = streams[:limit], len(streams) > limit
        out = {
            "StreamNames": [s.name for s in page],
            "HasMoreStreams": more,
            "StreamSummaries": [{
                "StreamName": s.name, "StreamARN": s.arn, "StreamStatus": s.status,
                "StreamModeDetails": {"StreamMode": s.mode},
                "StreamCreationTimestamp": s.describe_summary()["StreamDescriptionSummary"]["StreamCreationTimestamp"],
            } for s in page],
        }
        if more:
            out["NextToken"] = self._tokens.next_token("streams", 0, self._now_ms(), page[-1].name)
        return out

    def list_shards(self, stream_name=None, stream_arn=None, next_token: str | None = None,
                    exclusive_start_shard_id: str | None = None, max_results: int = LIST_SHARDS_MAX_RESULTS,
                    stream_creation_timestamp=None, shard_filter: dict | None = None) -> dict:
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= 10000:
            raise E.validation_error(max_results, "maxResults", "have value between 1 and 10000")
        max_results = min(max_results, LIST_SHARDS_MAX_RESULTS)
        if next_token is not None:
            if stream_name is not None or stream_arn is not None:
                raise E.InvalidArgumentException("NextToken and StreamName cannot be provided together.")
            if exclusive_start_shard_id is not None or stream_creation_timestamp is not None:
                raise E.InvalidArgumentException(
                    "NextToken and ExclusiveStartShardId or StreamCreationTimestamp cannot be provided together.")
            inc, cursor = self._tokens.open_next_token(next_token, "shards", self._now_ms(), LIST_TOKEN_TTL_MS)
            name, after, filt = cursor.split("\x00", 2)
            s = self.stream(name)
            if s.incarnation != inc:
                raise E.stream_not_found(name, self.account_id)
            shards = s.filter_shards(json.loads(filt) or None, None)
            shards = [x for x in shards if x.index > int(after)]
        else:
            s = self.stream(stream_name, stream_arn)
            if stream_creation_timestamp is not None:
                to_epoch(stream_creation_timestamp, "streamCreationTimestamp")
            shards = s.filter_shards(shard_filter, exclusive_start_shard_id)
            filt = _json_filter(shard_filter)
        page = shards[:max_results]
        out: dict = {"Shards": [s.shard_dict(x) for x in page]}
        if len(shards) > max_results:
            out["NextToken"] = self._tokens.next_token(
                "shards", s.incarnation, self._now_ms(), f"{s.name}\x00{page[-1].index}\x00{filt}")
        return out

    def describe_limits(self) -> dict:
        live = self._live_streams()
        return {
            "ShardLimit": self.limits.shard_limit,
            "OpenShardCount": sum(len(s.open_shards()) for s in live),
            "OnDemandStreamCount": sum(1 for s in live if s.mode == "ON_DEMAND"),
            "OnDemandStreamCountLimit": self.limits.on_demand_stream_limit,
            "ChannelCount": self._channels.count(),
            "ChannelCountLimit": self.limits.on_demand_stream_limit,
        }

    # -- retention ----------------------------------------------------------------------------
    def increase_stream_retention_period(self, retention_period_hours: int, stream_name=None, stream_arn=None) -> None:
        s = self.stream(stream_name, stream_arn)
        self._check_retention(retention_period_hours)
        if retention_period_hours < s.retention_hours:
            raise E.InvalidArgumentException(
                f"Requested retention period ({retention_period_hours} hours) for stream {s.name} can not be shorter "
                f"than existing retention period ({s.retention_hours} hours). Use DecreaseRetentionPeriod API.")
        s.retention_hours = retention_period_hours

    def decrease_stream_retention_period(self, retention_period_hours: int, stream_name=None, stream_arn=None) -> None:
        s = self.stream(stream_name, stream_arn)
        self._check_retention(retention_period_hours)
        if retention_period_hours > s.retention_hours:
            raise E.InvalidArgumentException(
                f"Requested retention period ({retention_period_hours} hours) for stream {s.name} can not be longer "
                f"than existing retention period ({s.retention_hours} hours). Use IncreaseRetentionPeriod API.")
        s.retention_hours = retention_period_hours
        s.trim()

    @staticmethod
    def _check_retention(h) -> None:
        if isinstance(h, bool) or not isinstance(h, int):
            raise E.ValidationException(f"RetentionPeriodHours must be an integer, got {type(h).__name__}")
        if h < RETENTION_HOURS_MIN:
            raise E.InvalidArgumentException(
                f"Minimum allowed retention period is {RETENTION_HOURS_MIN} hours. "
                f"Requested retention period ({h} hours) is too short.")
        if h > RETENTION_HOURS_MAX:
            raise E.InvalidArgumentException(
                f"Maximum allowed retention period is {RETENTION_HOURS_MAX} hours. "
                f"Requested retention period ({h} hours) is too long.")

    # -- tags -----------------------------------------------------------------------------------
    @staticmethod
    def _check_tags(tags) -> dict:
        if not isinstance(tags, dict):
            raise E.ValidationException("Tags must be a map of tag keys to values.")
        if len(tags) > TAGS_MAX:
            raise E.validation_error(tags, "tags", f"have length less than or equal to {TAGS_MAX}")
        for k, v in tags.items():
            if not isinstance(k, str) or not 1 <= len(k) <= 128 or not _TAG_CHARS.match(k):
                raise E.InvalidArgumentException(
                    f"Tag key {k!r} is invalid: 1 to 128 letters, digits, spaces or _ . : / = + - @ %.")
            if v is None:
                v = ""
            if not isinstance(v, str) or len(v) > 256 or not _TAG_CHARS.match(v):
                raise E.InvalidArgumentException(
                    f"Tag value {v!r} is invalid: up to 256 letters, digits, spaces or _ . : / = + - @ %.")
        return {k: ("" if v is None else v) for k, v in tags.items()}

    def add_tags_to_stream(self, tags: dict, stream_name=None, stream_arn=None) -> None:
        s = self.stream(stream_name, stream_arn)
        tags = self._check_tags(tags)
        if not tags:
            raise E.validation_error(tags, "tags", "have length greater than or equal to 1")
        with self._lock:
            merged = {**s.tags, **tags}
            if len(merged) > TAGS_MAX:
                raise E.LimitExceededException(
                    f"Failed to add tags to stream {s.name} under account {self.account_id} because a given stream can "
                    f"have a maximum of {TAGS_MAX} tags.")
            s.tags = merged

    def remove_tags_from_stream(self, tag_keys: list, stream_name=None, stream_arn=None) -> None:
        s = self.stream(stream_name, stream_arn)
        if not isinstance(tag_keys, (list, tuple)) or not 1 <= len(tag_keys) <= TAGS_MAX:
            raise E.validation_error(tag_keys, "tagKeys", f"have length between 1 and {TAGS_MAX}")
        with self._lock:
            for k in tag_keys:
                s.tags.pop(k, None)

    def list_tags_for_stream(self, stream_name=None, stream_arn=None, exclusive_start_tag_key: str | None = None,
                             limit: int = 50) -> dict:
        s = self.stream(stream_name, stream_arn)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
            raise E.validation_error(limit, "limit", "have value between 1 and 50")
        keys = sorted(s.tags)
        if exclusive_start_tag_key is not None:
            keys = [k for k in keys if k > exclusive_start_tag_key]
        return {"Tags": [{"Key": k, "Value": s.tags[k]} for k in keys[:limit]], "HasMoreTags": len(keys) > limit}

    # -- resharding and capacity mode --------------------------------------------------------------
    def split_shard(self, shard_to_split: str, new_starting_hash_key: str, stream_name=None, stream_arn=None) -> None:
        topology.split_shard(self._stream_for_shards(stream_name, stream_arn, shard_to_split), shard_to_split,
                             new_starting_hash_key)

    def merge_shards(self, shard_to_merge: str, adjacent_shard_to_merge: str, stream_name=None,
                     stream_arn=None) -> None:
        topology.merge_shards(self._stream_for_shards(stream_name, stream_arn, shard_to_merge, adjacent_shard_to_merge),
                              shard_to_merge, adjacent_shard_to_merge)

    def update_shard_count(self, target_shard_count: int, scaling_type: str = "UNIFORM_SCALING", stream_name=None,
                           stream_arn=None) -> dict:
        return topology.update_shard_count(self.stream(stream_name, stream_arn), target_shard_count, scaling_type)

    def update_stream_mode(self, stream_arn: str, stream_mode_details: dict,
                           warm_throughput_mibps: int | None = None) -> None:
        if not isinstance(stream_mode_details, dict):
            raise E.ValidationException("StreamModeDetails must be a map with a StreamMode.")
        s = self.stream(None, stream_arn)
        mode = stream_mode_details.get("StreamMode")
        if warm_throughput_mibps is not None:
            self._check_warm(warm_throughput_mibps, mode)
        if mode == "PROVISIONED" and s.mode == "ON_DEMAND":
            self._live_queues()
            if self._channels.live() and s.channels:
                raise E.ResourceInUseException(
                    f"Stream {s.name} under account {self.account_id} has {len(s.channels)} channel(s). Delete them "
                    "(DeleteChannel) before switching the stream to PROVISIONED capacity mode.")
            if s.queues:
                raise E.ResourceInUseException(
                    f"Stream {s.name} under account {self.account_id} has {len(s.queues)} queue(s). Delete them "
                    "(DeleteQueue) before switching the stream to PROVISIONED capacity mode.")
            if s.record_distribution == "AUTO":
                raise E.InvalidArgumentException(
                    "RecordDistributionStrategy=AUTO is only supported for on-demand streams. Set "
                    f"USER_PARTITION_KEY on stream {s.name} before switching it to PROVISIONED mode.")
        topology.update_stream_mode(s, mode)
        if warm_throughput_mibps is not None:
            s.warm_target = s.warm_current = warm_throughput_mibps

    # -- warm throughput, maximum record size, encryption -------------------------------------------
    def _check_warm(self, warm: int, mode: str | None) -> None:
        if mode != "ON_DEMAND":
            raise E.InvalidArgumentException("Warm throughput can only be set on streams in ON_DEMAND mode.")
        if not self._commitment_enabled():
            raise E.ValidationException(
                "Warm throughput requires a minimum throughput billing commitment on the account "
                "(UpdateAccountSettings).")
        if warm > WARM_THROUGHPUT_MAX_MIBPS:
            raise E.InvalidArgumentException(
                f"WarmThroughputMiBps {warm} exceeds the maximum of {WARM_THROUGHPUT_MAX_MIBPS} MiBps.")

    def update_stream_warm_throughput(self, warm_throughput_mibps: int, stream_name: str | None = None,
                                      stream_arn: str | None = None) -> dict:
        s = self.stream(stream_name, stream_arn)
        self._check_warm(warm_throughput_mibps, s.mode)
        s.warm_target = s.warm_current = warm_throughput_mibps
        return {"StreamARN": s.arn, "StreamName": s.name,
                "WarmThroughput": {"TargetMiBps": warm_throughput_mibps, "CurrentMiBps": warm_throughput_mibps}}

    def update_max_record_size(self, stream_arn: str, max_record_size_in_kib: int) -> None:
        s = self.stream(None, stream_arn)
        self._check_max_record_kib(max_record_size_in_kib)
        with self._lock:
            s.max_record_kib = max_record_size_in_kib
            s.core.max_record_bytes = max_record_size_in_kib * 1024

    @staticmethod
    def _check_kms(encryption_type) -> None:
        if encryption_type != "KMS":
            raise E.InvalidArgumentException(
                f"Unsupported encryption type {encryption_type}. EncryptionType must be KMS.")

    def start_stream_encryption(self, encryption_type: str, key_id: str, stream_name: str | None = None,
                                stream_arn: str | None = None) -> None:
        s = self.stream(stream_name, stream_arn)
        self._check_kms(encryption_type)
        with self._lock:
            s.begin_update(s.require_active())
            s.encryption_type = "KMS"
            s.key_id = key_id

    def stop_stream_encryption(self, encryption_type: str, key_id: str, stream_name: str | None = None,
                               stream_arn: str | None = None) -> None:
        s = self.stream(stream_name, stream_arn)
        self._check_kms(encryption_type)
        with self._lock:
            if s.encryption_type != "KMS":
                raise E.InvalidArgumentException(f"Stream {s.name} under account {self.account_id} is not encrypted.")
            s.begin_update(s.require_active())
            s.encryption_type = "NONE"
            s.key_id = None

    # -- account settings ---------------------------------------------------------------------------
    def _commitment_view(self) -> dict:
        c = self.account_commitment
        if c is None:
            return {}
        if c["Status"] == "ENABLED_UNTIL_EARLIEST_ALLOWED_END" and self.clock() >= c["_until"]:
            c["Status"] = "DISABLED"
        return {"MinimumThroughputBillingCommitment": {k: (to_datetime(v) if k.endswith("At") else v)
                                                       for k, v in c.items() if not k.startswith("_")}}

    def _commitment_enabled(self) -> bool:
        c = self.account_commitment
        if c is None:
            return False
        if c["Status"] == "ENABLED":
            return True
        return c["Status"] == "ENABLED_UNTIL_EARLIEST_ALLOWED_END" and self.clock() < c["_until"]

    def describe_account_settings(self) -> dict:
        with self._lock:
            return self._commitment_view()

    def update_account_settings(self, minimum_throughput_billing_commitment: dict) -> dict:
        """Enable or disable the account's minimum throughput billing commitment (needed for warm throughput).
        Once enabled it lasts at least COMMITMENT_MIN_SECONDS: disabling earlier ends it then."""
        want = minimum_throughput_billing_commitment["Status"]
        now = self.clock()
        with self._lock:
            self._commitment_view()
            c = self.account_commitment
            active = c is not None and c["Status"] in ("ENABLED", "ENABLED_UNTIL_EARLIEST_ALLOWED_END")
            if want == "ENABLED":
                if not active:
                    start = math.floor(now)
                    self.account_commitment = {"Status": "ENABLED", "StartedAt": start,
                                               "EarliestAllowedEndAt": start + COMMITMENT_MIN_SECONDS,
                                               "_until": start + COMMITMENT_MIN_SECONDS}
                elif c is not None and c["Status"] == "ENABLED_UNTIL_EARLIEST_ALLOWED_END":
                    c["Status"] = "ENABLED"
                    c.pop("EndedAt", None)
            else:
                if not active or c is None:
                    raise E.InvalidArgumentException("The minimum throughput billing commitment is not enabled.")
                if now < c["_until"]:
                    c["Status"] = "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
                    c["EndedAt"] = c["EarliestAllowedEndAt"]
                else:
                    c["Status"] = "DISABLED"
                    c["EndedAt"] = math.floor(now)
            return self._commitment_view()

    # -- registered consumers (enhanced fan-out) ----------------------------------------------------
    def _consumer(self, stream_arn=None, consumer_name=None, consumer_arn=None) -> tuple[Stream, StreamConsumer]:
        """(stream, consumer) named by ConsumerARN, or by StreamARN + ConsumerName.

        ConsumerARN may come with StreamARN and/or ConsumerName: AWS answers when they agree (facts §12).
        When they disagree (AWS's answer is unrecorded) fastkin raises InvalidArgumentException naming
        both. An unknown consumer is ResourceNotFoundException naming what was given (the ARN, or the
        name), ``Consumer {arn}, account {acct} not found.``; also when the ARN's stream does not exist."""
        acct = self.account_id
        if consumer_arn is not None:
            m = _CONSUMER_ARN.match(consumer_arn) if isinstance(consumer_arn, str) else None
            if m is None:
                raise E.ResourceNotFoundException(f"Consumer {consumer_arn}, account {acct} not found.")
            if stream_arn is not None and stream_arn != m.group(1):
                raise E.InvalidArgumentException(
                    f"ConsumerARN {consumer_arn} does not belong to the stream StreamARN {stream_arn} names.")
            if consumer_name is not None and consumer_name != m.group(2):
                raise E.InvalidArgumentException(
                    f"ConsumerARN {consumer_arn} does not name the consumer ConsumerName {consumer_name} names.")
            try:
                s = self.stream(None, m.group(1))
            except E.ResourceNotFoundException:
                raise E.ResourceNotFoundException(f"Consumer {consumer_arn}, account {acct} not found.") from None
            c = s.consumers.get(m.group(2))
            if c is None or c.arn != consumer_arn:
                raise E.ResourceNotFoundException(f"Consumer {consumer_arn}, account {acct} not found.")
            return s, c
        if consumer_name is None or stream_arn is None:
            raise E.InvalidArgumentException("Either ConsumerARN, or both StreamARN and ConsumerName, must be given.")
        s = self.stream(None, stream_arn)
        c = s.consumers.get(consumer_name)
        if c is None:
            raise E.ResourceNotFoundException(f"Consumer {consumer_name}, account {acct} not found.")
        return s, c

    def register_stream_consumer(self, stream_arn: str, consumer_name: str, tags: dict | None = None) -> dict:
        """Register an enhanced fan-out consumer: CREATING for ``consumer_latency`` engine seconds, then ACTIVE."""
        s = self.stream(None, stream_arn)
        tags = self._check_tags(tags or {})
        now = s.now()
        with self._lock:
            if consumer_name in s.consumers:
                raise E.ResourceInUseException(
                    f"Consumer {consumer_name} under stream {s.name} already exists for account {self.account_id}.")
            self._live_queues()
            if len(s.consumers) + len(s.queues) >= CONSUMERS_PER_STREAM:
                raise E.LimitExceededException(
                    f"Stream {s.name} under account {self.account_id} already has {CONSUMERS_PER_STREAM} "
                    "registered consumers, the maximum." if not s.queues else
                    f"Stream {s.name} under account {self.account_id} already has {CONSUMERS_PER_STREAM} "
                    "registered consumers and queues, the maximum.")
            creating = sum(1 for x in self._live_streams() for c in x.consumers.values()
                           if c.status_at(now) == "CREATING")
            if creating >= CONSUMERS_CREATING_MAX:
                raise E.LimitExceededException(
                    f"Account {self.account_id} already has {CONSUMERS_CREATING_MAX} consumers in CREATING state.")
            c = s.consumers[consumer_name] = StreamConsumer(s, consumer_name, now, self.consumer_latency, tags)
        return {"Consumer": c.summary(now)}

    def describe_stream_consumer(self, stream_arn: str | None = None, consumer_name: str | None = None,
                                 consumer_arn: str | None = None) -> dict:
        s, c = self._consumer(stream_arn, consumer_name, consumer_arn)
        d = c.summary(s.now())
        d["StreamARN"] = s.arn
        return {"ConsumerDescription": d}

    def deregister_stream_consumer(self, stream_arn: str | None = None, consumer_name: str | None = None,
                                   consumer_arn: str | None = None) -> None:
        s, c = self._consumer(stream_arn, consumer_name, consumer_arn)
        with self._lock:
            if s.consumers.get(c.name) is c:
                del s.consumers[c.name]
            c.close_subscriptions()

    def list_stream_consumers(self, stream_arn: str, next_token: str | None = None, max_results: int = 100,
                              stream_creation_timestamp=None) -> dict:
        s = self.stream(None, stream_arn)
        now = s.now()
        if stream_creation_timestamp is not None and \
                math.floor(to_epoch(stream_creation_timestamp, "streamCreationTimestamp")) != math.floor(s.created):
            raise E.ResourceNotFoundException(
                f"Stream {s.name} under account {self.account_id} with the given creation time not found.")
        cs = sorted(s.consumers.values(), key=lambda c: c.name)
        if next_token is not None:
            _, after = self._tokens.open_next_token(next_token, "consumers", math.floor(now * 1000), LIST_TOKEN_TTL_MS)
            cs = [c for c in cs if c.name > after]
        page = cs[:max_results]
        out: dict = {"Consumers": [c.summary(now) for c in page]}
        if len(cs) > max_results:
            out["NextToken"] = self._tokens.next_token("consumers", s.incarnation, math.floor(now * 1000),
                                                       page[-1].name)
        return out

    def subscribe_to_shard(self, consumer_arn: str, shard_id: str, starting_position: dict,
                           dry_run: bool = False) -> Subscription:
        """An enhanced fan-out subscription: an iterable of ``{"SubscribeToShardEvent": ...}`` events (see
        fastkin.fanout.Subscription) with its own 2 MiB/s per shard, for 5 minutes of engine time."""
        s, c = self._consumer(consumer_arn=consumer_arn)
        now = s.now()
        if c.status_at(now) != "ACTIVE":
            raise E.ResourceInUseException(f"Consumer {c.arn} is not ACTIVE.")
        info = s.shard(shard_id)
        ts = starting_position.get("Timestamp")
        it = self.get_shard_iterator(
            info.shard_id, starting_position.get("Type"), stream_name=s.name,
            starting_sequence_number=starting_position.get("SequenceNumber"),
            timestamp=None if ts is None else to_epoch(ts, "startingPosition.timestamp"))
        if dry_run:
            c.check_attach(info.index, now)
            raise E.dry_run()
        sub = Subscription(self, s, c, info.index, it, now)
        c.attach(sub, info.index, now)
        return sub

    # -- queues ---------------------------------------------------------------------------------------
    def _live_queues(self) -> list[Queue]:
        """Every queue not yet gone (DELETING ones included until their deletion completes)."""
        for q in list(self._queues.values()):
            if q.gone_at(q.stream.now()):
                self._drop_queue(q)
        return list(self._queues.values())

    def _drop_queue(self, q: Queue) -> None:
        with self._lock:
            if self._queues.get(q.arn) is q:
                del self._queues[q.arn]
            q.stream.queues.pop(q.arn, None)

    def queue(self, queue_arn: str) -> Queue:
        """The Queue a QueueARN names (DELETING included); ResourceNotFoundException when there is none."""
        q = self._queues.get(queue_arn) if isinstance(queue_arn, str) else None
        if q is not None and q.gone_at(q.stream.now()):
            self._drop_queue(q)
            q = None
        if q is None:
            if not isinstance(queue_arn, str) or _QUEUE_ARN.match(queue_arn) is None:
                raise E.validation_error(queue_arn, "queueARN", "satisfy regular expression pattern: "
                                         "arn:aws.*:kinesis:.*:\\d{12}:queue/\\S+")
            raise E.ResourceNotFoundException(f"Queue {queue_arn} under account {self.account_id} not found.")
        return q

    def _queue_attributes(self, attrs, base: Queue | None) -> tuple[int, str, int | None]:
        """(visibility, dead-letter target, max receive count) from QueueAttributes over ``base``'s (or defaults)."""
        if attrs is None:
            attrs = {}
        if not isinstance(attrs, dict):
            raise E.ValidationException("QueueAttributes must be a structure.")
        vt = attrs.get("VisibilityTimeoutSeconds", VISIBILITY_DEFAULT if base is None else base.visibility)
        if isinstance(vt, bool) or not isinstance(vt, int) or not 0 <= vt <= VISIBILITY_MAX:
            raise E.validation_error(vt, "queueAttributes.visibilityTimeoutSeconds",
                                     f"have value between 0 and {VISIBILITY_MAX}")
        dlc = attrs.get("DeadLetterConfiguration")
        if dlc is None:
            if base is None:
                return vt, "BUILT_IN", MAX_RECEIVE_DEFAULT
            return vt, base.dead_letter, base.max_receive
        target = dlc.get("TargetType") if isinstance(dlc, dict) else None
        if target not in ("BUILT_IN", "NONE"):
            raise E.validation_error(target, "queueAttributes.deadLetterConfiguration.targetType",
                                     "satisfy enum value set: [BUILT_IN, NONE]")
        mrc = dlc.get("MaxReceiveCount")
        if target == "NONE":
            return vt, "NONE", None
        if mrc is None:
            raise E.ValidationException("MaxReceiveCount is required when the DeadLetterConfiguration TargetType "
                                        "is BUILT_IN.")
        if isinstance(mrc, bool) or not isinstance(mrc, int) or not 1 <= mrc <= MAX_RECEIVE_MAX:
            raise E.validation_error(mrc, "queueAttributes.deadLetterConfiguration.maxReceiveCount",
                                     f"have value between 1 and {MAX_RECEIVE_MAX}")
        return vt, "BUILT_IN", mrc

    def _check_queues_changing(self, now: float) -> None:
        changing = sum(1 for q in self._live_queues() if q.status_at(now) in ("CREATING", "DELETING"))
        if changing >= QUEUES_CHANGING_MAX:
            raise E.LimitExceededException(
                f"Account {self.account_id} already has {QUEUES_CHANGING_MAX} queues in CREATING or DELETING state "
                "in this Region, the maximum.")

    def create_queue(self, queue_name: str, stream_configuration_list: list, queue_attributes: dict | None = None,
                     tags: dict | None = None) -> dict:
        """CreateQueue: a queue on one on-demand stream (CREATING for ``create_latency`` engine seconds, then
        ACTIVE). Returns {"QueueDescription": ...}; ``engine.queue(arn)`` is the Queue object."""
        if not isinstance(queue_name, str) or not _NAME.match(queue_name):
            if isinstance(queue_name, str) and not 1 <= len(queue_name) <= 128:
                raise E.validation_error(queue_name, "queueName", "have length between 1 and 128")
            raise E.validation_error(queue_name, "queueName", "satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
        confs = stream_configuration_list
        if not isinstance(confs, (list, tuple)) or not confs:
            raise E.validation_error(confs, "streamConfigurationList", "have length greater than or equal to 1")
        if len(confs) > 1:
            raise E.ValidationException(
                "1 validation error detected: Value at 'streamConfigurationList' failed to satisfy constraint: "
                "Member must have length less than or equal to 1 (a queue reads exactly one stream)")
        conf = confs[0] if isinstance(confs[0], dict) else {}
        s = self.stream(None, conf.get("StreamARN"))
        pos = conf.get("StartingPosition") or {"Type": "LATEST"}
        ptype = pos.get("Type") if isinstance(pos, dict) else None
        if ptype not in STARTING_POSITIONS:
            raise E.validation_error(ptype, "streamConfigurationList.1.member.startingPosition.type",
                                     "satisfy enum value set: [TRIM_HORIZON, LATEST, AT_TIMESTAMP]")
        ts = pos.get("Timestamp")
        if (ts is not None) != (ptype == "AT_TIMESTAMP"):
            raise E.ValidationException(
                "StartingPosition Timestamp is required when Type is AT_TIMESTAMP and not allowed for "
                f"{ptype}." if ptype != "AT_TIMESTAMP" else
                "StartingPosition Timestamp is required when Type is AT_TIMESTAMP.")
        start = {"Type": ptype}
        if ts is not None:
            start["Timestamp"] = _epoch(ts, "streamConfigurationList.1.member.startingPosition.timestamp")
        vt, target, mrc = self._queue_attributes(queue_attributes, None)
        tags = self._check_tags(tags or {})
        with self._lock:
            now = s.now()
            st = s.status
            if st in ("CREATING", "DELETING"):
                raise E.ResourceInUseException(
                    f"Stream {s.name} under account {self.account_id} not ACTIVE, instead in state {st}")
            if start.get("Timestamp") is not None and start["Timestamp"] > now:
                raise E.InvalidArgumentException(
                    "The StartingPosition Timestamp cannot be later than the current time: "
                    f"{math.floor(start['Timestamp'] * 1000)} > {math.floor(now * 1000)} (epoch milliseconds).")
            if s.mode != "ON_DEMAND":
                raise E.ValidationException(
                    f"Queues are supported only on streams in on-demand capacity mode. Stream {s.name} under account "
                    f"{self.account_id} is using PROVISIONED mode.")
            live = self._live_queues()
            if any(q.name == queue_name for q in live):
                raise E.ResourceInUseException(f"Queue {queue_name} under account {self.account_id} already exists.")
            if len(s.consumers) + len(s.queues) >= CONSUMERS_PER_STREAM:
                raise E.LimitExceededException(
                    f"Stream {s.name} under account {self.account_id} already has {CONSUMERS_PER_STREAM} registered "
                    "consumers and queues, the maximum.")
            self._check_queues_changing(now)
            self._queue_serials += 1
            q = Queue(self, s, queue_name, str(uuid.uuid4()), self._queue_serials, now, start, vt, target, mrc, tags)
            self._queues[q.arn] = q
            s.queues[q.arn] = q
            return {"QueueDescription": q.description(now)}

    def describe_queue(self, queue_arn: str) -> dict:
        q = self.queue(queue_arn)
        return {"QueueDescription": q.description(q.stream.now())}

    def list_queues(self, max_results: int = LIST_QUEUES_DEFAULT, next_token: str | None = None,
                    stream_filter: list | None = None) -> dict:
        """ListQueues, by name (then ARN); ``stream_filter`` keeps the queues of the listed streams."""
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= 10000:
            raise E.validation_error(max_results, "maxResults", "have value between 1 and 10000")
        limit = min(max_results, LIST_QUEUES_DEFAULT)
        queues = sorted(self._live_queues(), key=lambda q: (q.name, q.arn))
        if stream_filter is not None:
            wanted = []
            for i, f in enumerate(stream_filter):
                arn = f.get("StreamARN") if isinstance(f, dict) else None
                ts = f.get("StreamCreationTimestamp") if isinstance(f, dict) else None
                wanted.append((arn, None if ts is None else
                               math.floor(_epoch(ts, f"streamFilter.{i + 1}.member.streamCreationTimestamp"))))
            queues = [q for q in queues if any(
                arn == q.stream.arn and (ts is None or ts == math.floor(q.stream.created)) for arn, ts in wanted)]
        if next_token is not None:
            _, after = self._tokens.open_next_token(next_token, "queues", self._now_ms(), LIST_TOKEN_TTL_MS)
            queues = [q for q in queues if f"{q.name}\x00{q.arn}" > after]
        page = queues[:limit]
        now = self.clock()
        out: dict = {"QueueSummaries": [q.summary(now) for q in page]}
        if len(queues) > limit:
            last = page[-1]
            out["NextToken"] = self._tokens.next_token("queues", 0, self._now_ms(), f"{last.name}\x00{last.arn}")
        return out

    def update_queue(self, queue_arn: str, queue_attributes: dict) -> dict:
        """UpdateQueue: omitted attributes stay; a new visibility timeout applies to later receives; a new
        MaxReceiveCount applies to the counts records already have (at their next timeout)."""
        q = self.queue(queue_arn)
        with self._lock:
            now = q.stream.now()
            st = q.status_at(now)
            if st != "ACTIVE":
                raise E.ResourceInUseException(
                    f"Queue {q.arn} under account {self.account_id} is not ACTIVE, instead in state {st}.")
            vt, target, mrc = self._queue_attributes(queue_attributes, q)
            with q._lock:
                q.visibility, q.dead_letter, q.max_receive = vt, target, mrc
            q.updating_until = now + self.update_latency
            return {"QueueDescription": q.description(now)}

    def delete_queue(self, queue_arn: str) -> None:
        """DeleteQueue: DELETING for ``delete_latency`` engine seconds, then gone. From the call on no record
        is delivered and every receipt handle is dead; the stream and its records are untouched."""
        q = self.queue(queue_arn)
        with self._lock:
            now = q.stream.now()
            if q.deleting_at is not None:
                return
            self._check_queues_changing(now)
            q.deleting_at = now + self.delete_latency
            q.close()
            if self.delete_latency <= 0:
                self._drop_queue(q)

    def receive_queue_records(self, queue_arn: str, limit: int = 10, wait_time_seconds: int = WAIT_DEFAULT,
                              visibility_timeout_seconds: int | None = None, *, _wait: bool = True) -> dict:
        """ReceiveQueueRecords: {"QueueRecords": [...]}, long polling up to ``wait_time_seconds`` (see Queue.receive).
        ``_wait=False`` never sleeps in real time: the HTTP server's non-blocking contract (see
        fastkin.wire.service.Service.long_poll_deadline)."""
        return {"QueueRecords": self.queue(queue_arn).receive(limit, wait_time_seconds, visibility_timeout_seconds,
                                                              _wait=_wait)}

    def acknowledge_queue_records(self, queue_arn: str, entries: list) -> dict:
        return self.queue(queue_arn).acknowledge(entries)

    def update_queue_records_visibility(self, queue_arn: str, entries: list) -> dict:
        return self.queue(queue_arn).update_visibility(entries)

    def receive_dead_letter_queue_records(self, queue_arn: str, limit: int = 10,
                                          wait_time_seconds: int = WAIT_DEFAULT,
                                          visibility_timeout_seconds: int | None = None, *,
                                          _wait: bool = True) -> dict:
        """ReceiveDeadLetterQueueRecords: as receive_queue_records, from the queue's dead-letter records."""
        return {"QueueRecords": self.queue(queue_arn).receive(limit, wait_time_seconds, visibility_timeout_seconds,
                                                              dead_letter=True, _wait=_wait)}

    def acknowledge_dead_letter_queue_records(self, queue_arn: str, entries: list) -> dict:
        return self.queue(queue_arn).acknowledge_dead_letter(entries)

    def update_dead_letter_queue_records_visibility(self, queue_arn: str, entries: list) -> dict:
        return self.queue(queue_arn).update_dead_letter_visibility(entries)

    def restore_dead_letter_queue_records(self, queue_arn: str, entries: list) -> dict:
        return self.queue(queue_arn).restore_dead_letter(entries)

    # -- channels (the logic is fastkin.channels) ----------------------------------------------------
    def channel(self, channel_arn: str) -> Channel:
        """The Channel a ChannelARN names (DELETING included); ResourceNotFoundException when there is none."""
        return self._channels.get(channel_arn)

    def create_channel(self, channel_name: str, service_execution_role_arn: str, stream_configuration_list: list,
                       s3_destination_configuration: dict | None = None,
                       s3_tables_destination_configuration: dict | None = None,
                       encryption_configuration: dict | None = None, tags: dict | None = None,
                       logging_configuration: dict | None = None) -> dict:
        """CreateChannel: {"ChannelDescription": ...} in CREATING; ACTIVE after ``create_latency`` engine seconds
        (or FAILED with ChannelStatusReason when the destination cannot be written)."""
        return self._channels.create(channel_name, service_execution_role_arn, stream_configuration_list,
                                     s3_destination_configuration, s3_tables_destination_configuration,
                                     encryption_configuration, tags, logging_configuration)

    def describe_channel(self, channel_arn: str) -> dict:
        return self._channels.describe(channel_arn)

    def list_channels(self, stream_filter: list | None = None, max_results: int = LIST_CHANNELS_DEFAULT,
                      next_token: str | None = None) -> dict:
        return self._channels.list(stream_filter, max_results, next_token)

    def update_channel(self, channel_arn: str, s3_destination_configuration: dict | None = None,
                       s3_tables_destination_configuration: dict | None = None,
                       logging_configuration: dict | None = None) -> dict:
        """UpdateChannel: only DataFreshnessInSeconds and LoggingConfiguration; UPDATING for ``update_latency``."""
        return self._channels.update(channel_arn, s3_destination_configuration, s3_tables_destination_configuration,
                                     logging_configuration)

    def delete_channel(self, channel_arn: str) -> None:
        """DeleteChannel: objects already written stay; records not yet delivered are dropped."""
        self._channels.delete(channel_arn)

    def set_channel_destination(self, channel_s3) -> None:
        """Where channels write from now on: None (boto3's S3 client), "file://DIR", an S3 endpoint URL, a client."""
        self._channels.set_target(channel_s3)

    def set_channel_iceberg(self, channel_iceberg) -> None:
        """Where S3 Tables channels create their tables from now on: None (a temporary directory), a directory
        (``DIR/catalog.db``, a SQLite catalog, and ``DIR/warehouse``) or a pyiceberg Catalog."""
        self._channels.set_iceberg(channel_iceberg)

    def deliver_channels(self) -> None:
        """Not an AWS operation: deliver what engine time has made due now (a VirtualClock's advance does it)."""
        self._channels.pump()

    # -- resource tags and policies (streams, consumers, queues and channels by ARN) ------------------
    def _resource(self, arn: str) -> tuple[Stream | None, Any]:
        """(stream, None) for a stream ARN; (stream, consumer) for a consumer ARN; (None, queue) for a queue ARN;
        (None, channel) for a channel ARN."""
        if Channels.is_arn(arn):
            try:
                return None, self._channels.get(arn)
            except E.ResourceNotFoundException:
                raise E.ResourceNotFoundException(
                    f"Channel {arn} under account {self.account_id} not found.") from None
        if isinstance(arn, str) and _QUEUE_ARN.match(arn) is not None:
            try:
                return None, self.queue(arn)
            except E.ResourceNotFoundException:
                raise E.ResourceNotFoundException(f"Queue {arn} under account {self.account_id} not found.") from None
        if isinstance(arn, str) and _CONSUMER_ARN.match(arn) is not None:
            return self._consumer(consumer_arn=arn)
        if not isinstance(arn, str) or _ARN.match(arn) is None:
            raise E.InvalidArgumentException(f"Invalid ResourceARN {arn}.")
        try:
            return self.stream(None, arn), None
        except E.ResourceNotFoundException:
            # as moto answers (AWS's text unrecorded): the ARN given where the stream name would be
            raise E.ResourceNotFoundException(f"Stream {arn} under account {self.account_id} not found.") from None

    @staticmethod
    def _policy_holder(s: Stream | None, c: Any) -> Any:
        return c if c is not None else s

    def tag_resource(self, resource_arn: str, tags: dict) -> None:
        s, c = self._resource(resource_arn)
        if c is None and s is not None:
            self.add_tags_to_stream(tags, stream_arn=s.arn)
            return
        tags = self._check_tags(tags)
        what = "consumer" if s is not None else getattr(c, "KIND", "queue")
        with self._lock:
            merged = {**c.tags, **tags}
            if len(merged) > TAGS_MAX:
                raise E.LimitExceededException(
                    f"Failed to add tags to {what} {c.name} because a resource can have a maximum of "
                    f"{TAGS_MAX} tags.")
            c.tags = merged

    def untag_resource(self, resource_arn: str, tag_keys: list) -> None:
        s, c = self._resource(resource_arn)
        if c is None and s is not None:
            self.remove_tags_from_stream(tag_keys, stream_arn=s.arn)
            return
        with self._lock:
            for k in tag_keys:
                c.tags.pop(k, None)

    def list_tags_for_resource(self, resource_arn: str) -> dict:
        s, c = self._resource(resource_arn)
        tags = c.tags if c is not None else s.tags if s is not None else {}
        return {"Tags": [{"Key": k, "Value": tags[k]} for k in sorted(tags)]}

    def put_resource_policy(self, resource_arn: str, policy: str) -> None:
        s, c = self._resource(resource_arn)
        try:
            doc = json.loads(policy)
        except ValueError:
            raise E.InvalidArgumentException("Policy is not valid JSON.") from None
        if not isinstance(doc, dict) or "Statement" not in doc:
            raise E.InvalidArgumentException("Policy must be a JSON object with a Statement.")
        with self._lock:
            self._policy_holder(s, c).policy = policy

    def get_resource_policy(self, resource_arn: str) -> dict:
        s, c = self._resource(resource_arn)
        policy = self._policy_holder(s, c).policy
        return {"Policy": policy if policy is not None else "{}"}

    def delete_resource_policy(self, resource_arn: str) -> None:
        s, c = self._resource(resource_arn)
        with self._lock:
            holder = self._policy_holder(s, c)
            if holder.policy is None:
                raise E.ResourceNotFoundException(f"No resource policy found for resource ARN {resource_arn}.")
            holder.policy = None

    # -- enhanced monitoring ----------------------------------------------------------------------
    def enable_enhanced_monitoring(self, shard_level_metrics: list, stream_name=None, stream_arn=None) -> dict:
        return self._enhanced(shard_level_metrics, True, stream_name, stream_arn)

    def disable_enhanced_monitoring(self, shard_level_metrics: list, stream_name=None, stream_arn=None) -> dict:
        return self._enhanced(shard_level_metrics, False, stream_name, stream_arn)

    def _enhanced(self, names, enable: bool, stream_name, stream_arn) -> dict:
        s = self.stream(stream_name, stream_arn)
        allowed = SHARD_LEVEL_NAMES + ["ALL"]
        if not isinstance(names, (list, tuple)) or not 1 <= len(names) <= 7 or any(n not in allowed for n in names):
            raise E.validation_error(names, "shardLevelMetrics",
                                     "have length between 1 and 7 and contain only [" + ", ".join(allowed) + "]")
        chosen = set(SHARD_LEVEL_NAMES) if "ALL" in names else set(names)
        with s._lock:
            current = list(s.shard_level_metrics)
            new = set(current) | chosen if enable else set(current) - chosen
            s.shard_level_metrics = [m for m in SHARD_LEVEL_METRICS_AWS_ORDER if m in new]
            s.metrics.set_enhanced(s.shard_level_metrics)
        return {"StreamName": s.name, "CurrentShardLevelMetrics": current,
                "DesiredShardLevelMetrics": list(s.shard_level_metrics), "StreamARN": s.arn}

    # -- data plane by name -------------------------------------------------------------------
    # DryRun (PutRecord, PutRecords, GetRecords, GetShardIterator, SubscribeToShard): the request is checked in full,
    # with the errors it would raise, then DryRunOperationException; nothing changes and no quota is used.
    def put_record(self, data, partition_key, stream_name=None, stream_arn=None, explicit_hash_key=None,
                   sequence_number_for_ordering=None, dry_run: bool = False):
        s = self.stream(stream_name, stream_arn)
        if dry_run:
            s.dry_run_put([(data, partition_key, explicit_hash_key)], sequence_number_for_ordering, batch=False)
        return s.put_record(data, partition_key, explicit_hash_key, sequence_number_for_ordering)

    def put_records(self, records, stream_name=None, stream_arn=None, dry_run: bool = False):
        s = self.stream(stream_name, stream_arn)
        if dry_run:
            s.dry_run_put(records, batch=True)
        return s.put_records(records)

    def get_shard_iterator(self, shard_id, shard_iterator_type, stream_name=None, stream_arn=None,
                           starting_sequence_number=None, timestamp=None, dry_run: bool = False) -> str:
        it = self._stream_for_shards(stream_name, stream_arn, shard_id).get_shard_iterator(
            shard_id, shard_iterator_type, starting_sequence_number, timestamp)
        if dry_run:
            raise E.dry_run()
        return it

    def get_records(self, shard_iterator: str, limit: int = GET_RECORDS_MAX_RECORDS, stream_arn=None, *,
                    quota: bool = True, dry_run: bool = False):
        """Read from an iterator: .records, .next_shard_iterator, .millis_behind_latest, .child_shards.
        ``quota=False`` (not an AWS parameter) reads outside the shard's shared read quota: the
        enhanced fan-out pipe, which has its own 2 MiB/s per consumer. ``dry_run`` checks the iterator, the
        limit and the shard, then raises DryRunOperationException (no read, no read quota used)."""
        now = self.clock()
        now_ms = math.floor(now * 1000.0)
        name, inc, shard, pos, _ = self._tokens.open_iterator(shard_iterator, now_ms,
                                                              round(self.limits.iterator_ttl_seconds * 1000))
        s = self._iterator_stream(name, inc, shard)
        if stream_arn is not None and stream_arn != s.arn:
            raise E.InvalidArgumentException(f"The shard iterator does not belong to stream {stream_arn}.")
        if dry_run:
            s.dry_run_get_records(shard, limit)
        return s._get_records(shard, pos, limit, s._check_io(), quota)

    def decode_shard_iterator(self, shard_iterator: str) -> tuple[Stream, str, int]:
        """(stream, shard id, position) of a valid, unexpired iterator: the position is the index in the
        shard's log of the next record it reads. Raises as GetRecords would."""
        now_ms = math.floor(self.clock() * 1000.0)
        name, inc, shard, pos, _ = self._tokens.open_iterator(shard_iterator, now_ms,
                                                              round(self.limits.iterator_ttl_seconds * 1000))
        return self._iterator_stream(name, inc, shard), E.shard_name(shard), pos

    def _iterator_stream(self, name: str, incarnation: int, shard: int) -> Stream:
        """The stream of a decoded iterator. Its stream deleted (or re-created since): AWS answers as for a
        deleted shard, ``Shard ... does not exist`` (facts §4)."""
        try:
            s = self.stream(name)
        except E.ResourceNotFoundException:
            s = None
        if s is None or s.incarnation != incarnation:
            raise E.ResourceNotFoundException(
                f"Shard {E.shard_name(shard)} in stream {name} under account {self.account_id} does not exist")
        return s

    # -- introspection ----------------------------------------------------------------------------
    def memory_bytes(self) -> int:
        """Bytes held by all shard logs (StreamCore.memory_bytes of each live stream; the reference
        engine counts payload bytes plus a modelled 18-byte index per record)."""
        return sum(s.core.memory_bytes() for s in self._live_streams())

    def __repr__(self) -> str:
        return f"Engine(core={self.core_name!r}, streams={len(self._streams)}, clock={self.clock!r})"


def _epoch(t: object, where: str) -> float:
    """A timestamp inside a list member (the wire layer normalises only top-level structures): datetime,
    epoch seconds, or an ISO 8601 string."""
    if isinstance(t, str):
        try:
            t = _dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise E.ValidationException(f"{where} is not a valid timestamp: {t!r}") from None
    return to_epoch(t, where)


def _json_filter(f) -> str:
    return json.dumps(f, default=lambda o: to_epoch(o, "shardFilter.timestamp"), sort_keys=True)


class RegionEngines:
    """Mixin for what answers several regions (the boto3 mock, the server): one Engine per region,
    made on first use. The class provides ``_engines`` (region -> Engine), ``_lock``, ``clock`` and
    ``_kw`` (the other Engine arguments)."""

    _engines: dict[str, Engine]
    _lock: threading.Lock
    clock: Callable[[], float]
    _kw: dict[str, Any]

    def engine_for(self, region: str) -> Engine:
        e = self._engines.get(region)
        if e is None:
            with self._lock:
                e = self._engines.get(region)
                if e is None:
                    kw = self._kw
                    if kw.get("data_dir") is not None:     # one data directory per region, under the given one
                        kw = {**kw, "data_dir": os.path.join(kw["data_dir"], "regions", region)}
                    e = self._engines[region] = Engine(self.clock, region=region, **kw)
        return e

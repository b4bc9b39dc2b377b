"""Kinesis channels: delivery of one on-demand stream's records to an S3 general-purpose bucket.

A ``Channel`` copies no payload while it buffers: the records stay in the stream's shard logs, and the
channel keeps one cursor per shard (the log position of the next record it has not delivered). Delivery
runs in fixed windows of ``DataFreshnessInSeconds`` engine seconds anchored at the moment the channel
became ACTIVE: once engine time passes a window's end, every record that arrived inside the window is
read, validated per record format, concatenated, compressed and written as one object (plus one
dead-letter object for the records that failed validation). Records that arrived before ACTIVE are never
delivered (no backfill).

Delivery is driven by the engine's time, never by a thread of its own on a VirtualClock:
- a ``VirtualClock`` calls the engine back after every ``advance``/``set`` (``VirtualClock.subscribe``),
  so advancing the clock past a window's end writes its object before ``advance`` returns;
- every channel operation of the Engine delivers what is due first;
- on any other clock a daemon thread of the engine wakes at the next window end (at most a second apart).

Destinations (``Engine(channel_s3=...)``) implement ``put_object(bucket, key, body, storage_class, owner)``
and ``bucket_exists(bucket)``: a boto3 S3 client (the default: ``boto3.client("s3")`` made on first use,
so under moto's ``mock_aws`` the objects land in moto), an S3-compatible endpoint URL, or a local
directory (``file://DIR``: bucket ``b`` is the folder ``DIR/b``, which must exist as a bucket must).

Thread safety: each channel's delivery holds the channel's lock; destinations are written outside the
engine's lock.
"""
from __future__ import annotations

import base64
import datetime as _dt
import gzip
import json
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from . import errors as E, iceberg
from .iceberg import IcebergSink, IcebergTarget, RecordError, SchemaError, gsr_payload
from .stream import to_epoch

FRESHNESS_DEFAULT = 300
FRESHNESS_MIN = 300
FRESHNESS_MAX = 900
CONTROL_TPS = 5                  # per channel operation and account
CHANNELS_PER_STREAM = {"S3": 1, "S3_TABLES": 1}
LIST_DEFAULT = 100               # ListChannels page size (default, and the cap of MaxResults)
READ_BATCH = 10_000
KEY_MAX = 986                    # an expanded key template; the unique suffix (<= 38) makes at most 1024
ERROR_PREFIX_DEFAULT = "kinesis-channel/errors/"
DEFAULT_TEMPLATE = ("kinesis-channel/!{channel-name}/!{channel-id}/!{yyyy}/!{MM}/!{dd}/!{HH}/"
                    "!{channel-name}-!{channel-id}-!{yyyy}-!{MM}-!{dd}-!{HH}-!{mm}!{extension}")
EXTENSIONS = {"NONE": "", "GZIP": ".gz", "ZSTD": ".zst"}
S3_FORMATS = ("JSON", "STRING", "BYTE_ARRAY")
TABLES_FORMATS = ("JSON", "GSR_JSON")
DATE_VARS = ("yyyy", "yy", "MM", "dd", "HH", "mm")
_LITERAL = re.compile(r"[0-9A-Za-z!\-_'.*()/=]*\Z")
_EXT_LITERAL = re.compile(r"\.[a-z.]*\Z")
_BUCKET = re.compile(r"arn:aws[-a-z0-9]*:s3:::([a-z0-9._-]{3,63})\Z")
_UTC = _dt.timezone.utc
_fromts = _dt.datetime.fromtimestamp
log = logging.getLogger("fastkin.channels")

DELIVERY_METRICS = {      # name -> statistic (seconds roll into minutes by it)
    "DeliveryToS3.RecordCount": "Sum",
    "DeliveryToS3.SuccessfulRecordCount": "Sum",
    "DeliveryToS3.FailedRecordCount": "Sum",
    "DeliveryToS3.Bytes": "Sum",
    "DeliveryToS3.ObjectCount": "Sum",
    "DeliveryToS3.DLQDeliverySuccess": "Sum",
    "DeliveryToS3.DataFreshness": "Maximum",
    "DeliveryToIceberg.RecordCount": "Sum",
    "DeliveryToIceberg.SuccessfulRowCount": "Sum",
    "DeliveryToIceberg.FailedRecordCount": "Sum",
    "DeliveryToIceberg.Bytes": "Sum",
    "DeliveryToIceberg.DataFileCount": "Sum",
    "DeliveryToIceberg.CommitSuccess": "Sum",
    "DeliveryToIceberg.DLQDeliverySuccess": "Sum",
    "DeliveryToIceberg.DataFreshness": "Maximum",
}


# -- key templates ----------------------------------------------------------------------------------
def parse_template(template: str, compression: str) -> list[tuple[str, str]]:
    """The template as [("lit", text) | ("var", name) | ("ext", literal)] parts; InvalidArgumentException
    naming the rule a bad template breaks."""
    def bad(why: str) -> E.InvalidArgumentException:
        return E.InvalidArgumentException(f"Invalid OutputKeyTemplate {template!r}: {why}.")

    parts: list[tuple[str, str]] = []
    i = 0
    while i < len(template):
        j = template.find("!{", i)
        lit = template[i:] if j < 0 else template[i:j]
        if lit:
            if not _LITERAL.match(lit):
                raise bad(f"the literal {lit!r} has a character outside [0-9A-Za-z!-_'.*()/=]")
            parts.append(("lit", lit))
        if j < 0:
            break
        k = template.find("}", j)
        if k < 0:
            raise bad(f"the placeholder at offset {j} is not closed")
        name = template[j + 2:k]
        if name == "extension" or name.startswith("extension:"):
            literal = name[len("extension:"):] if ":" in name else ""
            if ":" in name and not _EXT_LITERAL.match(literal):
                raise bad(f"the extension literal {literal!r} must start with '.' and hold only lowercase letters "
                          "and dots")
            if any(p[0] == "ext" for p in parts):
                raise bad("it has more than one extension placeholder")
            parts.append(("ext", literal))
        elif name in ("channel-name", "channel-id", "stream-name", *DATE_VARS):
            parts.append(("var", name))
        else:
            raise bad(f"!{{{name}}} is not a known variable (channel-name, channel-id, stream-name, yyyy, yy, MM, "
                      "dd, HH, mm, extension, extension:.literal)")
        i = k + 1
    if any(p[0] == "ext" for p in parts[:-1]):
        raise bad("the extension placeholder must end the template")
    if compression != "NONE" and not (parts and parts[-1][0] == "ext"):
        raise bad(f"CompressionType {compression} needs an extension placeholder (!{{extension}}) at the end")
    return parts


def render(parts: list[tuple[str, str]], values: dict[str, str], suffix: str, compression: str) -> str:
    """The key: the unique suffix goes where the extension placeholder is (or at the end)."""
    out = []
    ext = None
    for kind, v in parts:
        if kind == "lit":
            out.append(v)
        elif kind == "var":
            out.append(values[v])
        else:
            ext = v + EXTENSIONS[compression]
    out.append(suffix)
    if ext:
        out.append(ext)
    return "".join(out)


def check_key(key: str, template: str) -> None:
    """The rules an expanded key must keep: no leading '/', no '//', no '.' or '..' segment, <= 986 characters."""
    why = None
    if key.startswith("/"):
        why = "the key starts with '/'"
    elif "//" in key:
        why = "the key holds '//'"
    elif any(seg in (".", "..") for seg in key.split("/")):
        why = "the key has a '.' or '..' segment"
    elif len(key) > KEY_MAX:
        why = f"the expanded key has {len(key)} characters, more than {KEY_MAX}"
    if why:
        raise E.InvalidArgumentException(f"Invalid OutputKeyTemplate {template!r}: {why}.")


def date_values(t: float) -> dict[str, str]:
    d = _fromts(t, _UTC)
    return {"yyyy": f"{d.year:04d}", "yy": f"{d.year % 100:02d}", "MM": f"{d.month:02d}", "dd": f"{d.day:02d}",
            "HH": f"{d.hour:02d}", "mm": f"{d.minute:02d}"}


# -- record formats ---------------------------------------------------------------------------------
def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def invalid_reason(fmt: str, data: bytes) -> tuple[str, str] | None:
    """(error code, message) when ``data`` is not a valid record of ``fmt``; None when it is."""
    if fmt == "BYTE_ARRAY":
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return "InvalidUTF8", f"The record is not valid UTF-8: byte {e.start} (0x{data[e.start]:02x}) {e.reason}."
    if fmt == "STRING":
        return None
    try:
        json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        return "InvalidJSON", f"The record is not valid JSON: {e}."
    return None


def compress(body: bytes, compression: str) -> bytes:
    if compression == "GZIP":
        return gzip.compress(body, mtime=0)
    if compression == "ZSTD":
        import zstandard  # the channels extra
        return zstandard.ZstdCompressor().compress(body)
    return body


def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


# -- destinations -----------------------------------------------------------------------------------
DestinationError = E.ChannelDestinationError


class DirectoryTarget:
    """``file://DIR``: bucket ``b`` is the folder ``DIR/b`` (it must exist); a key's '/' make subfolders.
    Objects are written to a temporary file and renamed, so a reader never sees half an object."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def bucket_exists(self, bucket: str) -> bool:
        return os.path.isdir(os.path.join(self.root, bucket))

    def put_object(self, bucket: str, key: str, body: bytes, storage_class: str, owner: str) -> None:
        base = os.path.join(self.root, bucket)
        if not os.path.isdir(base):
            raise DestinationError(f"The bucket {bucket} does not exist (no folder {base}).")
        path = os.path.join(base, *key.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".fastkin-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def __repr__(self) -> str:
        return f"DirectoryTarget({self.root!r})"


class S3ClientTarget:
    """A boto3 S3 client (or anything with its ``put_object``/``head_bucket``)."""

    def __init__(self, client) -> None:
        self.client = client

    def bucket_exists(self, bucket: str) -> bool:
        client = self.client            # DestinationError (no client can be made) is the caller's to report
        try:
            client.head_bucket(Bucket=bucket)
        except Exception:
            return False
        return True

    def put_object(self, bucket: str, key: str, body: bytes, storage_class: str, owner: str) -> None:
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=body, StorageClass=storage_class,
                                   ExpectedBucketOwner=owner)
        except Exception as e:
            raise DestinationError(f"PutObject s3://{bucket}/{key} failed: {e}") from None


class LazyS3Target(S3ClientTarget):
    """``boto3.client("s3", region_name=..., endpoint_url=...)``, made on first use (so a moto ``mock_aws``
    active at that moment answers it)."""

    def __init__(self, region: str, endpoint_url: str | None = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._client = None

    @property
    def client(self):
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise DestinationError("fastkin delivers to S3 through boto3: pip install 'fastkin[channels]' "
                                       "(or configure a directory target, channel_s3='file://DIR')") from None
            if not self.endpoint_url and not _s3_is_local():
                raise DestinationError(
                    "no S3 destination is configured, and fastkin does not write to real S3 unasked: run under "
                    "moto's mock_aws, set AWS_ENDPOINT_URL_S3, or pass channel_s3='file://DIR', an endpoint URL "
                    "or an S3 client")
            kw = {"endpoint_url": self.endpoint_url} if self.endpoint_url else {}
            self._client = boto3.client("s3", region_name=self.region, **kw)
        return self._client

    @client.setter
    def client(self, value) -> None:
        self._client = value


def _s3_is_local() -> bool:
    """Whether a default boto3 S3 client stays local: moto's mock_aws is active (moto already imported by the
    caller), or the environment names an S3 endpoint. Anything else would reach real S3."""
    if os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"):
        return True
    models = sys.modules.get("moto.core.models")
    stubber = getattr(models, "botocore_stubber", None)
    return bool(getattr(stubber, "enabled", False))


def make_target(spec, region: str):
    """The destination of ``Engine(channel_s3=spec)``."""
    if spec is None:
        return LazyS3Target(region)
    if isinstance(spec, str):
        if spec.startswith("file://"):
            return DirectoryTarget(spec[len("file://"):])
        if spec.startswith(("http://", "https://")):
            return LazyS3Target(region, spec)
        raise ValueError(f"channel_s3 must be None, 'file://DIR', an http(s) endpoint URL or an S3 client, "
                         f"got {spec!r}")
    if hasattr(spec, "put_object") and hasattr(spec, "bucket_exists"):
        return spec
    if hasattr(spec, "put_object"):
        return S3ClientTarget(spec)
    raise ValueError(f"channel_s3 must be None, 'file://DIR', an http(s) endpoint URL or an S3 client, got {spec!r}")


# -- metrics ----------------------------------------------------------------------------------------
class ChannelMetrics:
    """DeliveryToS3.* of one channel, per engine-second of delivery (dimensions: the channel and its stream)."""

    def __init__(self) -> None:
        self._seconds: dict[int, dict[str, float]] = defaultdict(dict)

    def add(self, t: float, name: str, value: float) -> None:
        point = self._seconds[math.floor(t)]
        if DELIVERY_METRICS[name] == "Maximum":
            point[name] = max(point.get(name, 0.0), value)
        else:
            point[name] = point.get(name, 0.0) + value

    def total(self, name: str) -> float:
        if DELIVERY_METRICS[name] == "Maximum":
            return max((p.get(name, 0.0) for p in self._seconds.values()), default=0.0)
        return sum(p.get(name, 0.0) for p in self._seconds.values())

    def series(self, metric: str, resolution: int = 60, start: float | None = None,
               end: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(times, values) as numpy arrays, dense (0 where nothing was delivered), like stream metrics."""
        if metric not in DELIVERY_METRICS:
            raise ValueError(f"unknown channel metric {metric!r}; known: {', '.join(DELIVERY_METRICS)}")
        if resolution not in (1, 60):
            raise ValueError(f"resolution must be 1 or 60, got {resolution}")
        if not self._seconds:
            return np.zeros(0), np.zeros(0)
        lo = math.floor(start if start is not None else min(self._seconds))
        hi = math.floor(end if end is not None else max(self._seconds))
        lo -= lo % resolution
        times = np.arange(lo, hi + 1, resolution, dtype=np.float64)
        values = np.zeros(len(times))
        is_max = DELIVERY_METRICS[metric] == "Maximum"
        for t, point in self._seconds.items():
            if metric in point and lo <= t <= hi:
                i = (t - lo) // resolution
                values[i] = max(values[i], point[metric]) if is_max else values[i] + point[metric]
        return times, values


# -- the channel ------------------------------------------------------------------------------------
class Channel:
    """One channel on one stream. Obtain it from ``engine.channel(channel_arn)``."""

    KIND = "channel"

    def __init__(self, engine, stream, name: str, role: str, record_format: dict, destination_type: str,
                 destination: dict, encryption: dict | None, logging_config: dict, tags: dict, now: float,
                 target) -> None:
        self.engine = engine
        self.stream = stream
        self.name = name
        self.id = str(uuid.uuid4())
        self.arn = f"arn:aws:kinesis:{engine.region}:{engine.account_id}:channel/{self.id}"
        self.role = role
        self.record_format = dict(record_format)
        self.format = record_format["RecordFormatType"]
        self.destination_type = destination_type         # S3 | S3_TABLES
        self.destination = destination                   # the description's destination member, defaults filled
        self.encryption = encryption
        self.logging = logging_config
        self.tags = dict(tags)
        self.policy: str | None = None
        self.created = now
        self.ready_at = now + engine.create_latency
        self.updating_until = now
        self.deleting_at: float | None = None
        self.failed_reason: str | None = None
        self.target = target
        self.freshness = int(destination["DataFreshnessInSeconds"])
        self.anchor: float | None = None                 # start of the current window once ACTIVE
        self.cursors: dict[int, int] = {}
        self.metrics = ChannelMetrics()
        self.objects: list[tuple[str, str]] = []         # (bucket, key) of every object written, in order
        self._lock = threading.RLock()
        self._template: list[tuple[str, str]] = []
        core = stream.core            # the shard ends at creation: nothing written before it is delivered
        self._created_ends = {index: core.shard_end(index) for index in list(core.shards)}
        if destination_type == "S3":
            storage = destination["StorageConfiguration"]
            self.bucket = _BUCKET.match(storage["BucketARN"]).group(1)      # type: ignore[union-attr]
            self.owner = storage["ExpectedBucketOwner"]
            self.compression = storage["CompressionType"]
            self.storage_class = storage["StorageClass"]
            self._template = parse_template(storage["OutputKeyTemplate"], self.compression)
            dlq = destination["DeadLetterQueueS3Configuration"]
            self.dlq_bucket = _BUCKET.match(dlq["BucketARN"]).group(1)      # type: ignore[union-attr]
            self.dlq_owner = dlq["ExpectedBucketOwner"]
            self.dlq_prefix = dlq["ErrorOutputPrefix"]
            values = {"channel-name": name, "channel-id": self.id, "stream-name": stream.name, **date_values(now)}
            check_key(render(self._template, values, "", self.compression), storage["OutputKeyTemplate"])
        else:
            dlq = destination["DeadLetterQueueS3Configuration"]
            self.dlq_bucket = _BUCKET.match(dlq["BucketARN"]).group(1)      # type: ignore[union-attr]
            self.dlq_owner = dlq["ExpectedBucketOwner"]
            self.dlq_prefix = dlq["ErrorOutputPrefix"]
            self.table_config = destination["S3TablesConfigurationList"][0]
        self.iceberg: IcebergTarget | None = None        # S3_TABLES: where the table goes (the engine's)
        self.sink: IcebergSink | None = None             # S3_TABLES: the table once ACTIVE

    @property
    def table(self):
        """S3 Tables channels: the pyiceberg Table the channel created (None before ACTIVE or when FAILED)."""
        return None if self.sink is None else self.sink.table

    # -- state -------------------------------------------------------------------------------------
    def status_at(self, now: float) -> str:
        if self.deleting_at is not None:
            return "DELETING"
        if self.failed_reason is not None:
            return "FAILED"
        if now < self.ready_at:
            return "CREATING"
        return "UPDATING" if now < self.updating_until else "ACTIVE"

    def gone_at(self, now: float) -> bool:
        return self.deleting_at is not None and now >= self.deleting_at

    def description(self, now: float, status: str | None = None) -> dict:
        status = status or self.status_at(now)
        d: dict = {"ChannelName": self.name, "ChannelARN": self.arn, "ChannelId": self.id, "ChannelStatus": status,
                   "ChannelCreationTimestamp": _fromts(self.created, _UTC), "ServiceExecutionRoleARN": self.role,
                   "StreamConfigurationList": [{"StreamARN": self.stream.arn,
                                                "StreamCreationTimestamp": _fromts(self.stream.created, _UTC),
                                                "RecordConfiguration": dict(self.record_format)}]}
        if status == "FAILED" and self.failed_reason:
            d["ChannelStatusReason"] = self.failed_reason
        key = "S3DestinationConfiguration" if self.destination_type == "S3" else "S3TablesDestinationConfiguration"
        d[key] = json.loads(json.dumps(self.destination))
        d[key]["DataFreshnessInSeconds"] = self.freshness
        if self.encryption is not None:
            d["EncryptionConfiguration"] = dict(self.encryption)
        d["LoggingConfiguration"] = {"CloudWatchLogs": dict(self.logging["CloudWatchLogs"])}
        return d

    def summary(self, now: float) -> dict:
        status = self.status_at(now)
        d = {"ChannelName": self.name, "ChannelARN": self.arn, "ChannelId": self.id, "ChannelStatus": status,
             "ChannelCreationTimestamp": _fromts(self.created, _UTC), "ChannelDestinationType": self.destination_type,
             "Streams": [{"StreamARN": self.stream.arn, "StreamCreationTimestamp": _fromts(self.stream.created, _UTC)}]}
        if status == "FAILED" and self.failed_reason:
            d["ChannelStatusReason"] = self.failed_reason
        return d

    def next_deadline(self) -> float | None:
        """Engine time of the next thing this channel waits for (activation or a window's end)."""
        if self.deleting_at is not None or self.failed_reason is not None:
            return None
        if self.anchor is None:
            return self.ready_at
        return self.anchor + self.freshness

    def fail(self, reason: str) -> None:
        self.failed_reason = reason[:2048]
        log.warning("channel %s (%s) FAILED: %s", self.name, self.arn, reason)

    # -- activation and delivery ---------------------------------------------------------------------
    def _activate(self) -> None:
        """CREATING -> ACTIVE: check the destination, put the cursors at the first record of ACTIVE time."""
        if self.destination_type == "S3_TABLES":
            if not self._activate_table():
                return
        elif self.compression == "ZSTD" and not zstd_available():
            self.fail("CompressionType ZSTD needs the zstandard package: pip install 'fastkin[channels]'.")
            return
        try:
            buckets = (self.dlq_bucket,) if self.destination_type == "S3_TABLES" else (self.bucket, self.dlq_bucket)
            for bucket in dict.fromkeys(buckets):
                if not self.target.bucket_exists(bucket):
                    self.fail(f"The destination bucket {bucket} does not exist or cannot be written "
                              f"(destination {self.target!r}).")
                    return
        except DestinationError as e:
            self.fail(str(e))
            return
        core = self.stream.core
        start_ms = math.floor(self.ready_at * 1000.0)
        for index in list(core.shards):
            self.cursors[index] = max(core.shard_horizon(index), core.seek_timestamp(index, start_ms),
                                      self._created_ends.get(index, 0))
        self._topology = self.stream.topology_version
        self.anchor = self.ready_at

    def _activate_table(self) -> bool:
        """S3 Tables: read the schema and create the table (FAILED when either cannot be done)."""
        why = iceberg.available()
        if why is not None:
            self.fail(why)
            return False
        assert self.iceberg is not None
        try:
            self.sink = IcebergSink(self.iceberg, self.table_config, self.record_format["GSRSchemaARN"],
                                            self.engine.region)
        except SchemaError as e:
            self.fail(str(e))
            return False
        except Exception as e:            # the catalog or the warehouse cannot be written
            self.fail(f"Cannot create the table {self.table_config['Namespace']}.{self.table_config['TableName']}: "
                      f"{type(e).__name__}: {e}")
            return False
        return True

    def pump(self, now: float) -> None:
        """Do what engine time ``now`` makes due: activation, then every window that ended by ``now``."""
        with self._lock:
            if self.deleting_at is not None or self.failed_reason is not None:
                return
            if self.anchor is None:
                if now < self.ready_at:
                    return
                self._activate()
                if self.anchor is None:
                    return
            assert self.anchor is not None
            if now < self.anchor + self.freshness:
                return
            windows = math.floor((now - self.anchor) / self.freshness)
            end = self.anchor + windows * self.freshness
            self._deliver(self.anchor, end, now)
            self.anchor = end

    def flush(self) -> None:
        """Not an AWS operation: deliver every record buffered so far now, as if the window had ended."""
        with self._lock:
            now = self.stream.now()
            self.pump(now)
            if self.anchor is not None and self.failed_reason is None and self.deleting_at is None:
                self._deliver(self.anchor, math.nextafter(now, math.inf), now, force=True)

    def set_freshness(self, seconds: int, now: float) -> None:
        """UpdateChannel: deliver what is due, then the current window runs on with the new interval."""
        with self._lock:
            self.pump(now)
            self.freshness = seconds

    def _read_until(self, end_ms: int) -> dict[int, list]:
        """Per shard, the undelivered records that arrived before ``end_ms``; the cursors move past them."""
        s = self.stream
        core = s.core
        shards = core.shards
        if getattr(self, "_topology", None) != s.topology_version:
            for gone in [i for i in self.cursors if i not in shards]:
                del self.cursors[gone]
            self._topology = s.topology_version
        now = s.now()
        out: dict[int, list] = {}
        for index in sorted(shards):
            pos = self.cursors.get(index)
            if pos is None:          # a shard made after the channel became ACTIVE: all of it
                pos = core.shard_horizon(index)
            pos = max(pos, core.shard_horizon(index))
            stop = core.seek_timestamp(index, end_ms)
            got: list = []
            while pos < stop:
                records, nxt, _ = core.get_records(index, pos, min(READ_BATCH, stop - pos), now, False)
                if not records:
                    break
                got += records
                pos = nxt
            self.cursors[index] = pos
            if got:
                out[index] = got
        return out

    def _deliver(self, start: float, end: float, now: float, force: bool = False) -> None:
        """Write the records that arrived in [start, end) (windows of ``freshness``): one object per window."""
        per_shard = self._read_until(math.ceil(end * 1000.0) if force else math.floor(end * 1000.0))
        if not per_shard:
            return
        fmt = self.format
        windows: dict[int, list] = defaultdict(list)           # window -> [(shard, record)]
        f_ms = self.freshness * 1000.0
        a_ms = start * 1000.0
        if force or all(rs[-1].approximate_arrival_timestamp < start + self.freshness for rs in per_shard.values()):
            windows[0] = [(index, r) for index, rs in per_shard.items() for r in rs]     # the common case
        else:
            for index, records in per_shard.items():
                for r in records:
                    w = max(0, math.floor((r.approximate_arrival_timestamp * 1000.0 - a_ms) / f_ms))
                    windows[w].append((index, r))
        shard_ids = {i: f"shardId-{i:012d}" for i in per_shard}
        for w in sorted(windows):
            items = windows[w]
            w_start = start + w * self.freshness
            good: list[bytes] = []
            bad: list[dict] = []
            oldest = min(r.approximate_arrival_timestamp for _, r in items)
            when = now if force else min(now, w_start + self.freshness)
            if self.sink is not None:
                if not self._write_table(w_start, items, shard_ids, when, oldest):
                    return
                continue
            if fmt == "BYTE_ARRAY":                  # nothing to validate
                good = [r.data for _, r in items]
                items = []
            for index, r in items:
                data = r.data
                why = invalid_reason(fmt, data)
                if why is None:
                    good.append(data)
                else:
                    bad.append({"ErrorCode": why[0], "ErrorMessage": why[1], "ChannelARN": self.arn,
                                "StreamARN": self.stream.arn, "ShardId": shard_ids[index],
                                "SequenceNumber": r.sequence_number,
                                "ApproximateArrivalTimestamp": _fromts(r.approximate_arrival_timestamp, _UTC)
                                .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                                "RecordFormatType": fmt, "RawData": base64.b64encode(data).decode()})
            # a window is delivered as of its end (the clock may have jumped past several ends at once)
            if not self._write(w_start, good, bad, when, oldest):
                return

    def _dead_letters(self, w_start: float, bad: list[dict]) -> None:
        v = date_values(w_start)
        key = (f"{self.dlq_prefix}{v['yyyy']}/{v['MM']}/{v['dd']}/{v['HH']}/{self.name}-{self.id}-"
               f"{v['yyyy']}-{v['MM']}-{v['dd']}-{v['HH']}-{v['mm']}-{uuid.uuid4()}.json")
        body = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in bad).encode()
        self.target.put_object(self.dlq_bucket, key, body, "STANDARD", self.dlq_owner)
        self.objects.append((self.dlq_bucket, key))

    def _write_table(self, w_start: float, items: list, shard_ids: dict, now: float, oldest: float) -> bool:
        """S3 Tables: the window's valid records as one snapshot; the others (ids and error context, no payload)
        to the dead-letter prefix."""
        assert self.sink is not None
        convert = self.sink.converter.row
        gsr = self.format == "GSR_JSON"
        rows: list[dict] = []
        bad: list[dict] = []
        size = 0
        for index, r in items:
            data = r.data
            try:
                rows.append(convert(gsr_payload(data) if gsr else data))
                size += len(data)
            except RecordError as e:
                bad.append({"ErrorCode": e.code, "ErrorMessage": str(e), "ChannelARN": self.arn,
                            "StreamARN": self.stream.arn, "ShardId": shard_ids[index],
                            "SequenceNumber": r.sequence_number,
                            "ApproximateArrivalTimestamp": _fromts(r.approximate_arrival_timestamp, _UTC)
                            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                            "RecordFormatType": self.format, "Table": ".".join(self.sink.identifier)})
        m = self.metrics
        m.add(now, "DeliveryToIceberg.RecordCount", len(items))
        try:
            if rows:
                files, _ = self.sink.append(rows)
                m.add(now, "DeliveryToIceberg.SuccessfulRowCount", len(rows))
                m.add(now, "DeliveryToIceberg.Bytes", size)
                m.add(now, "DeliveryToIceberg.DataFileCount", files)
                m.add(now, "DeliveryToIceberg.CommitSuccess", 1)
                m.add(now, "DeliveryToIceberg.DataFreshness", max(0.0, now - oldest))
            if bad:
                self._dead_letters(w_start, bad)
                m.add(now, "DeliveryToIceberg.FailedRecordCount", len(bad))
                m.add(now, "DeliveryToIceberg.DLQDeliverySuccess", 1)
        except (DestinationError, OSError) as e:
            self.fail(f"Delivery to the dead-letter bucket failed: {e}")
            return False
        except Exception as e:            # the commit failed (the catalog, the warehouse)
            self.fail(f"The Iceberg commit failed: {type(e).__name__}: {e}")
            return False
        if self.logging["CloudWatchLogs"].get("Enabled"):
            log.info("channel %s committed %d rows (%d records to the dead-letter prefix)", self.name, len(rows),
                     len(bad))
        return True

    def _write(self, w_start: float, good: list[bytes], bad: list[dict], now: float, oldest: float) -> bool:
        values = {"channel-name": self.name, "channel-id": self.id, "stream-name": self.stream.name,
                  **date_values(w_start)}
        m = self.metrics
        m.add(now, "DeliveryToS3.RecordCount", len(good) + len(bad))
        try:
            if good:
                body = b"".join(good)
                key = render(self._template, values, "-" + str(uuid.uuid4()), self.compression)
                self.target.put_object(self.bucket, key, compress(body, self.compression), self.storage_class,
                                       self.owner)
                self.objects.append((self.bucket, key))
                m.add(now, "DeliveryToS3.SuccessfulRecordCount", len(good))
                m.add(now, "DeliveryToS3.Bytes", len(body))
                m.add(now, "DeliveryToS3.ObjectCount", 1)
                m.add(now, "DeliveryToS3.DataFreshness", max(0.0, now - oldest))
            if bad:
                self._dead_letters(w_start, bad)
                m.add(now, "DeliveryToS3.FailedRecordCount", len(bad))
                m.add(now, "DeliveryToS3.DLQDeliverySuccess", 1)
        except (DestinationError, OSError) as e:
            self.fail(f"Delivery to the destination failed: {e}")
            return False
        if self.logging["CloudWatchLogs"].get("Enabled"):
            log.info("channel %s delivered %d records (%d to the dead-letter prefix)", self.name, len(good) + len(bad),
                     len(bad))
        return True

    # -- persistence (fastkin.durable) -------------------------------------------------------------
    def state_doc(self) -> dict:
        """Configuration (everything DescribeChannel, tags and policies show) and delivery progress (the window
        anchor, the per-shard cursors, the shard ends at creation, FAILED's reason), JSON-able. Taken under the
        channel's lock: one consistent moment. The destinations are the engine's, not the channel's."""
        with self._lock:
            return {"name": self.name, "id": self.id, "stream": self.stream.name,
                    "incarnation": self.stream.incarnation, "role": self.role, "record_format": self.record_format,
                    "destination_type": self.destination_type, "destination": self.destination,
                    "encryption": self.encryption, "logging": self.logging, "tags": self.tags, "policy": self.policy,
                    "created": self.created, "ready_at": self.ready_at, "updating_until": self.updating_until,
                    "deleting_at": self.deleting_at, "failed_reason": self.failed_reason, "freshness": self.freshness,
                    "anchor": self.anchor, "cursors": sorted(self.cursors.items()),
                    "created_ends": sorted(self._created_ends.items())}

    def _reopen_table(self) -> None:
        """S3 Tables, restarted while ACTIVE: the channel's table from the engine's Iceberg target (made again
        when that target does not hold it, e.g. the default temporary directory)."""
        why = iceberg.available()
        if why is not None:
            self.fail(why)
            return
        assert self.iceberg is not None
        try:
            self.sink = IcebergSink(self.iceberg, self.table_config, self.record_format["GSRSchemaARN"],
                                    self.engine.region, reopen=True)
        except Exception as e:            # the schema, the catalog or the warehouse
            self.fail(f"Cannot open the table {self.table_config['Namespace']}.{self.table_config['TableName']}: "
                      f"{type(e).__name__}: {e}")

    def __repr__(self) -> str:
        return f"Channel({self.name!r}, arn={self.arn!r}, status={self.status_at(self.stream.now())!r})"


# -- the control plane ------------------------------------------------------------------------------
_CHANNEL_ARN = re.compile(r"arn:aws[\w-]*:kinesis:([\w-]+):(\d{12}):channel/(\S+)\Z")
_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}\Z")
_ROLE = re.compile(r"arn:aws[-a-z0-9]*:iam::\d{12}:role/[a-zA-Z_0-9+=,.@\-_/]+\Z")
_OPS = ("CreateChannel", "DescribeChannel", "ListChannels", "UpdateChannel", "DeleteChannel")


def _struct(v, where: str) -> dict:
    if not isinstance(v, dict):
        raise E.ValidationException(f"1 validation error detected: Value null at '{where}' failed to satisfy "
                                    "constraint: Member must not be null")
    return v


def _freshness(v, where: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= FRESHNESS_MAX:
        raise E.validation_error(v, where, f"have value between {lo} and {FRESHNESS_MAX}")
    return v


def _logging(cfg, name: str, channel_id: str, where: str) -> dict:
    if cfg is None:
        return {"CloudWatchLogs": {"Enabled": False}}
    cw = _struct(_struct(cfg, where).get("CloudWatchLogs"), f"{where}.cloudWatchLogs")
    enabled = cw.get("Enabled")
    if not isinstance(enabled, bool):
        raise E.validation_error(enabled, f"{where}.cloudWatchLogs.enabled", "not be null")
    out: dict = {"Enabled": enabled}
    if enabled:
        out["LogGroupName"] = cw.get("LogGroupName") or f"/aws/kinesis/{name}/{channel_id}"
        out["LogStreamName"] = cw.get("LogStreamName") or "DestinationDelivery"
    else:
        for k in ("LogGroupName", "LogStreamName"):
            if cw.get(k):
                out[k] = cw[k]
    return {"CloudWatchLogs": out}


class Channels:
    """The channels of one Engine (account and region): the five operations, the 5 TPS limit per
    operation, and what drives delivery (a VirtualClock's callback, or a thread on any other clock)."""

    def __init__(self, engine, target_spec=None, freshness_min: int = FRESHNESS_MIN, iceberg_spec=None) -> None:
        self.engine = engine
        self.target = make_target(target_spec, engine.region)
        self.iceberg = IcebergTarget(iceberg_spec)
        self.freshness_min = int(freshness_min)
        self._channels: dict[str, Channel] = {}       # ARN -> Channel (DELETING ones until gone)
        self._buckets: dict[str, list] = {op: [float(CONTROL_TPS), None] for op in _OPS}
        self._lock = threading.RLock()
        self._pumping = False
        self._pumper = 0                # the thread that pumps (while _pumping)
        self._subscribed = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self.on_change: Callable[[], None] | None = None    # after a pump that activated, delivered or failed one
        self._stopped = False

    def stop(self) -> None:
        """Deliver nothing from now on (a durable engine's close: what it delivered later could not be saved);
        returns once a delivery in progress in another thread has ended (its progress is then saved)."""
        self._stopped = True
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(60)
        deadline = time.monotonic() + 60
        while self._pumping and self._pumper != threading.get_ident() and time.monotonic() < deadline:
            time.sleep(0.005)           # a pump run by a VirtualClock's advance in another thread

    def set_iceberg(self, spec) -> None:
        """Where S3 Tables channels that become ACTIVE from now on create their tables."""
        self.iceberg = IcebergTarget(spec)
        for c in self._channels.values():
            if c.sink is None:
                c.iceberg = self.iceberg

    def set_target(self, spec) -> None:
        self.target = make_target(spec, self.engine.region)
        for c in self._channels.values():
            c.target = self.target

    # -- driving delivery ---------------------------------------------------------------------------
    def _start_driver(self) -> None:
        clock = self.engine.clock
        if hasattr(clock, "subscribe"):
            if not self._subscribed:
                clock.subscribe(self._on_clock)
                self._subscribed = True
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="fastkin-channels", daemon=True)
            self._thread.start()
        self._wake.set()

    def _on_clock(self, now: float) -> None:
        self.pump(now)

    def _run(self) -> None:
        while True:
            with self._lock:
                live = [c for c in self._channels.values() if not c.gone_at(self.engine.clock())]
                if not live or self._stopped:
                    self._thread = None
                    return
            self.pump()
            nexts = [d for d in (c.next_deadline() for c in live) if d is not None]
            wait = 1.0 if not nexts else min(1.0, max(0.01, min(nexts) - self.engine.clock()))
            self._wake.wait(wait)
            self._wake.clear()

    def pump(self, now: float | None = None) -> None:
        """Deliver everything engine time has made due (every channel; re-entrant calls return at once)."""
        if self._pumping or self._stopped:
            return
        self._pumping = True
        self._pumper = threading.get_ident()
        changed = False
        try:
            for c in list(self._channels.values()):
                t = c.stream.now() if now is None else max(now, c.stream.now())
                if c.gone_at(t):
                    self._drop(c)
                else:
                    before = (c.anchor, c.failed_reason)
                    c.pump(t)
                    changed = changed or (c.anchor, c.failed_reason) != before
        finally:
            self._pumping = False
        if changed and self.on_change is not None:
            self.on_change()          # a data directory commits the progress (fastkin.durable)

    def _drop(self, c: Channel) -> None:
        with self._lock:
            if self._channels.get(c.arn) is c:
                del self._channels[c.arn]
            c.stream.channels.pop(c.arn, None)

    def live(self) -> list[Channel]:
        now = self.engine.clock()
        for c in list(self._channels.values()):
            if c.gone_at(max(now, c.stream.now())):
                self._drop(c)
        return list(self._channels.values())

    def count(self) -> int:
        return len(self.live())

    def restore(self, stream, doc: dict, objects: list[tuple[str, str]]) -> Channel:
        """Put back a channel ``Channel.state_doc`` described (a restarted engine's data directory), writing to
        this engine's destinations; delivery resumes at the saved window and cursors."""
        eng = self.engine
        c = Channel(eng, stream, doc["name"], doc["role"], doc["record_format"], doc["destination_type"],
                    doc["destination"], doc["encryption"], doc["logging"], doc["tags"], doc["created"], self.target)
        c.id = doc["id"]
        c.arn = f"arn:aws:kinesis:{eng.region}:{eng.account_id}:channel/{c.id}"
        c.policy = doc["policy"]
        c.ready_at, c.updating_until, c.deleting_at = doc["ready_at"], doc["updating_until"], doc["deleting_at"]
        c.failed_reason = doc["failed_reason"]
        c.freshness = doc["freshness"]
        c.anchor = doc["anchor"]
        # held at the recovered shard ends: the progress commit can reach the disk before the records it
        # points past (a power cut in "interval" or "never" mode); the positions are then given again
        live = stream.core.shards

        def held(pairs) -> dict[int, int]:
            return {int(i): min(int(p), stream.core.shard_end(int(i))) if int(i) in live else int(p)
                    for i, p in pairs}
        c.cursors = held(doc["cursors"])
        c._created_ends = held(doc["created_ends"])
        c.objects = [tuple(o) for o in objects]      # type: ignore[misc]
        c.iceberg = self.iceberg
        if c.destination_type == "S3_TABLES" and c.anchor is not None and c.failed_reason is None \
                and c.deleting_at is None:
            c._reopen_table()
        self._channels[c.arn] = c
        stream.channels[c.arn] = c
        return c

    # -- the TPS limit --------------------------------------------------------------------------------
    def _throttle(self, op: str) -> None:
        if not self.engine.quotas:
            return
        now = self.engine.clock()
        tokens, last = self._buckets[op]
        if last is not None:
            tokens = min(float(CONTROL_TPS), tokens + (now - last) * CONTROL_TPS)
        self._buckets[op] = [tokens, now]
        if tokens < 1.0:
            raise E.LimitExceededException(
                f"Rate exceeded for {op} for account {self.engine.account_id}: at most {CONTROL_TPS} requests per "
                "second.")
        self._buckets[op][0] = tokens - 1.0

    def _begin(self, op: str) -> None:
        self._throttle(op)
        self.pump()

    # -- lookup ---------------------------------------------------------------------------------------
    def get(self, channel_arn) -> Channel:
        c = self._channels.get(channel_arn) if isinstance(channel_arn, str) else None
        if c is not None and c.gone_at(c.stream.now()):
            self._drop(c)
            c = None
        if c is None:
            if not isinstance(channel_arn, str) or _CHANNEL_ARN.match(channel_arn) is None:
                raise E.validation_error(channel_arn, "channelARN", "satisfy regular expression pattern: "
                                         "arn:aws.*:kinesis:.*:\\d{12}:channel/\\S+")
            raise E.ResourceNotFoundException(
                f"Channel {channel_arn} under account {self.engine.account_id} not found.")
        return c

    @staticmethod
    def is_arn(arn) -> bool:
        return isinstance(arn, str) and _CHANNEL_ARN.match(arn) is not None

    # -- CreateChannel --------------------------------------------------------------------------------
    def create(self, channel_name, service_execution_role_arn, stream_configuration_list,
               s3_destination_configuration=None, s3_tables_destination_configuration=None,
               encryption_configuration=None, tags=None, logging_configuration=None) -> dict:
        eng = self.engine
        self._begin("CreateChannel")
        if not isinstance(channel_name, str) or not _NAME.match(channel_name):
            if isinstance(channel_name, str) and not 1 <= len(channel_name) <= 128:
                raise E.validation_error(channel_name, "channelName", "have length between 1 and 128")
            raise E.validation_error(channel_name, "channelName", "satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
        if not isinstance(service_execution_role_arn, str) or not _ROLE.match(service_execution_role_arn):
            raise E.validation_error(service_execution_role_arn, "serviceExecutionRoleARN",
                                     "satisfy regular expression pattern: "
                                     "arn:aws[-a-z0-9]*:iam::\\d{12}:role/[a-zA-Z_0-9+=,.@\\-_/]+")
        if not isinstance(stream_configuration_list, (list, tuple)) or len(stream_configuration_list) != 1:
            raise E.ValidationException(
                "1 validation error detected: Value at 'streamConfigurationList' failed to satisfy constraint: "
                "Member must have length less than or equal to 1 (a channel reads exactly one stream)"
                if isinstance(stream_configuration_list, (list, tuple)) and stream_configuration_list else
                "1 validation error detected: Value at 'streamConfigurationList' failed to satisfy constraint: "
                "Member must have length greater than or equal to 1")
        sc = _struct(stream_configuration_list[0], "streamConfigurationList.1.member")
        rc = _struct(sc.get("RecordConfiguration"), "streamConfigurationList.1.member.recordConfiguration")
        fmt = rc.get("RecordFormatType")
        if fmt not in S3_FORMATS + ("GSR_JSON",):
            raise E.validation_error(fmt, "streamConfigurationList.1.member.recordConfiguration.recordFormatType",
                                     "satisfy enum value set: [GSR_JSON, JSON, STRING, BYTE_ARRAY]")
        if (s3_destination_configuration is None) == (s3_tables_destination_configuration is None):
            raise E.InvalidArgumentException(
                "Exactly one of S3DestinationConfiguration and S3TablesDestinationConfiguration must be specified.")
        if tags is not None and not tags:
            raise E.validation_error("{}", "tags", "have length greater than or equal to 1")
        tags = eng._check_tags(tags or {})
        if encryption_configuration is not None:
            enc = _struct(encryption_configuration, "encryptionConfiguration")
            key = enc.get("KeyId")
            if enc.get("EncryptionType") != "KMS":
                raise E.validation_error(enc.get("EncryptionType"), "encryptionConfiguration.encryptionType",
                                         "satisfy enum value set: [KMS]")
            if not isinstance(key, str) or not key:
                raise E.validation_error(key, "encryptionConfiguration.keyId", "not be null")
            if key.endswith("aws/kinesis"):
                raise E.InvalidArgumentException(
                    "Channels need a customer managed KMS key; the AWS managed key alias/aws/kinesis cannot be used.")
        if s3_destination_configuration is not None:
            dtype = "S3"
            dest = self._s3_destination(s3_destination_configuration, fmt, rc)
        else:
            dtype = "S3_TABLES"
            dest = self._tables_destination(s3_tables_destination_configuration, fmt, rc)
        s = eng.stream(stream_arn=sc.get("StreamARN"))
        with eng._lock:
            now = s.now()
            if s.mode != "ON_DEMAND":
                raise E.ValidationException(
                    f"Channels are supported only on streams in on-demand capacity mode. Stream {s.name} under "
                    f"account {eng.account_id} is in PROVISIONED mode.")
            if s.status != "ACTIVE":
                raise E.ResourceInUseException(
                    f"Stream {s.name} under account {eng.account_id} not ACTIVE, instead in state {s.status}")
            if s.encryption_type == "KMS" and (s.key_id or "").endswith("aws/kinesis"):
                raise E.InvalidArgumentException(
                    f"Stream {s.name} under account {eng.account_id} is encrypted with the AWS managed key "
                    "alias/aws/kinesis; channels need a stream encrypted with a customer managed key or not at all.")
            live = self.live()
            if any(c.name == channel_name for c in live):
                raise E.ResourceInUseException(
                    f"Channel {channel_name} under account {eng.account_id} already exists.")
            same = [c for c in s.channels.values() if c.destination_type == dtype]
            if len(same) >= CHANNELS_PER_STREAM[dtype]:
                raise E.LimitExceededException(
                    f"Stream {s.name} under account {eng.account_id} already has a channel with an {dtype} "
                    "destination: a stream has at most one S3 and one S3 Tables channel.")
            if len(live) >= eng.limits.on_demand_stream_limit:
                raise E.LimitExceededException(
                    f"Account {eng.account_id} already has {len(live)} channels, the maximum "
                    f"({eng.limits.on_demand_stream_limit}, the on-demand stream limit).")
            c = Channel(eng, s, channel_name, service_execution_role_arn, dict(rc), dtype, dest,
                        dict(encryption_configuration) if encryption_configuration is not None else None,
                        {"CloudWatchLogs": {"Enabled": False}}, tags, now, self.target)
            c.logging = _logging(logging_configuration, channel_name, c.id, "loggingConfiguration")
            c.iceberg = self.iceberg
            self._channels[c.arn] = c
            s.channels[c.arn] = c
            out = {"ChannelDescription": c.description(now, "CREATING")}
        self._start_driver()
        self.pump()
        return out

    def _dlq(self, cfg, where: str, default: dict | None) -> dict:
        if cfg is None:
            assert default is not None
            return default
        cfg = _struct(cfg, where)
        bucket = cfg.get("BucketARN")
        if not isinstance(bucket, str) or not _BUCKET.match(bucket):
            raise E.validation_error(bucket, f"{where}.bucketARN",
                                     "satisfy regular expression pattern: arn:aws[-a-z0-9]*:s3:::[a-z0-9._-]{3,63}")
        owner = cfg.get("ExpectedBucketOwner")
        if not isinstance(owner, str) or not re.fullmatch(r"\d{12}", owner):
            raise E.validation_error(owner, f"{where}.expectedBucketOwner",
                                     "satisfy regular expression pattern: \\d{12}")
        return {"BucketARN": bucket, "ExpectedBucketOwner": owner,
                "ErrorOutputPrefix": cfg.get("ErrorOutputPrefix") or ERROR_PREFIX_DEFAULT}

    def _s3_destination(self, cfg, fmt: str, rc: dict) -> dict:
        cfg = _struct(cfg, "s3DestinationConfiguration")
        if fmt not in S3_FORMATS:
            raise E.InvalidArgumentException(
                f"RecordFormatType {fmt} is not supported for S3 destinations (use JSON, STRING or BYTE_ARRAY).")
        if rc.get("GSRSchemaARN") is not None:
            raise E.InvalidArgumentException("GSRSchemaARN is supported only for S3 Tables destinations.")
        fresh = _freshness(cfg.get("DataFreshnessInSeconds", FRESHNESS_DEFAULT),
                           "s3DestinationConfiguration.dataFreshnessInSeconds", self.freshness_min)
        st = _struct(cfg.get("StorageConfiguration"), "s3DestinationConfiguration.storageConfiguration")
        base = self._dlq(st, "s3DestinationConfiguration.storageConfiguration", None)
        comp = st.get("CompressionType")
        if comp not in EXTENSIONS:
            raise E.validation_error(comp, "s3DestinationConfiguration.storageConfiguration.compressionType",
                                     "satisfy enum value set: [NONE, GZIP, ZSTD]")
        sclass = st.get("StorageClass") or "STANDARD"
        if sclass not in ("STANDARD", "INTELLIGENT_TIERING", "GLACIER_IR"):
            raise E.validation_error(sclass, "s3DestinationConfiguration.storageConfiguration.storageClass",
                                     "satisfy enum value set: [STANDARD, INTELLIGENT_TIERING, GLACIER_IR]")
        template = st.get("OutputKeyTemplate") or DEFAULT_TEMPLATE
        parse_template(template, comp)
        storage = {"BucketARN": base["BucketARN"], "ExpectedBucketOwner": base["ExpectedBucketOwner"],
                   "OutputKeyTemplate": template, "StorageClass": sclass, "CompressionType": comp}
        dlq = self._dlq(cfg.get("DeadLetterQueueS3Configuration"), "s3DestinationConfiguration."
                        "deadLetterQueueS3Configuration", {"BucketARN": base["BucketARN"],
                                                           "ExpectedBucketOwner": base["ExpectedBucketOwner"],
                                                           "ErrorOutputPrefix": ERROR_PREFIX_DEFAULT})
        return {"DataFreshnessInSeconds": fresh, "DeadLetterQueueS3Configuration": dlq, "StorageConfiguration": storage}

    def _tables_destination(self, cfg, fmt: str, rc: dict) -> dict:
        cfg = _struct(cfg, "s3TablesDestinationConfiguration")
        if fmt not in TABLES_FORMATS:
            raise E.InvalidArgumentException(
                f"RecordFormatType {fmt} is not supported for S3 Tables destinations (use JSON or GSR_JSON).")
        if rc.get("GSRSchemaARN") is None:
            raise E.InvalidArgumentException("S3 Tables destinations need a Glue schema: GSRSchemaARN is required.")
        fresh = _freshness(cfg.get("DataFreshnessInSeconds", FRESHNESS_DEFAULT),
                           "s3TablesDestinationConfiguration.dataFreshnessInSeconds", self.freshness_min)
        dlq = self._dlq(_struct(cfg.get("DeadLetterQueueS3Configuration"), "s3TablesDestinationConfiguration."
                                "deadLetterQueueS3Configuration"),
                        "s3TablesDestinationConfiguration.deadLetterQueueS3Configuration", None)
        tables = cfg.get("S3TablesConfigurationList")
        if not isinstance(tables, (list, tuple)) or len(tables) != 1:
            raise E.ValidationException(
                "1 validation error detected: Value at 's3TablesDestinationConfiguration.s3TablesConfigurationList' "
                "failed to satisfy constraint: Member must have length less than or equal to 1 (one table per "
                "channel)")
        t = dict(_struct(tables[0], "s3TablesDestinationConfiguration.s3TablesConfigurationList.1.member"))
        arn = t.get("TableBucketARN", "")
        m = re.fullmatch(r"arn:aws[-a-z0-9]*:s3tables:([-a-z0-9]+):(\d{12}):bucket/[a-z0-9_-]{3,63}", arn or "")
        if m is None or m.group(1) != self.engine.region or m.group(2) != self.engine.account_id:
            raise E.InvalidArgumentException(
                f"TableBucketARN {arn} must name a table bucket of account {self.engine.account_id} in "
                f"{self.engine.region}: S3 Tables delivery is same-account and same-Region only.")
        where = "s3TablesDestinationConfiguration.s3TablesConfigurationList.1.member"
        for k in ("Namespace", "TableName"):
            v = t.get(k)
            if not isinstance(v, str) or not re.fullmatch(r"[0-9a-z_]{1,255}", v):
                raise E.validation_error(v, f"{where}.{k[0].lower()}{k[1:]}", "satisfy regular expression pattern: "
                                         "[0-9a-z_]+")
        if t.get("CompressionType") not in ("NONE", "ZSTD", "SNAPPY"):
            raise E.validation_error(t.get("CompressionType"), f"{where}.compressionType",
                                     "satisfy enum value set: [NONE, ZSTD, SNAPPY]")
        if t.get("PartitionSpec") is not None:
            ps = _struct(t["PartitionSpec"], f"{where}.partitionSpec")
            pf = ps.get("PartitionFields")
            if not isinstance(pf, (list, tuple)) or not 1 <= len(pf) <= 10:
                raise E.validation_error(pf, f"{where}.partitionSpec.partitionFields",
                                         "have length between 1 and 10")
            for i, f in enumerate(pf):
                f = _struct(f, f"{where}.partitionSpec.partitionFields.{i + 1}.member")
                if f.get("Transform") != "TIME_HOUR":
                    raise E.validation_error(f.get("Transform"), f"{where}.partitionSpec.partitionFields.{i + 1}."
                                             "member.transform", "satisfy enum value set: [TIME_HOUR]")
                if not isinstance(f.get("SourceName"), str) or not re.fullmatch(r"[a-zA-Z0-9._]+", f["SourceName"]):
                    raise E.validation_error(f.get("SourceName"),
                                             f"{where}.partitionSpec.partitionFields.{i + 1}.member.sourceName",
                                             "satisfy regular expression pattern: [a-zA-Z0-9\\._]+")
        return {"DataFreshnessInSeconds": fresh, "DeadLetterQueueS3Configuration": dlq,
                "S3TablesConfigurationList": [t]}

    # -- Describe / List / Update / Delete --------------------------------------------------------------
    def describe(self, channel_arn) -> dict:
        self._begin("DescribeChannel")
        c = self.get(channel_arn)
        return {"ChannelDescription": c.description(c.stream.now())}

    def list(self, stream_filter=None, max_results=LIST_DEFAULT, next_token=None) -> dict:
        eng = self.engine
        self._begin("ListChannels")
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= 10000:
            raise E.validation_error(max_results, "maxResults", "have value between 1 and 10000")
        limit = min(max_results, LIST_DEFAULT)
        channels = sorted(self.live(), key=lambda c: (c.name, c.arn))
        if stream_filter is not None:
            wanted = []
            for i, f in enumerate(stream_filter):
                f = _struct(f, f"streamFilter.{i + 1}.member")
                ts = f.get("StreamCreationTimestamp")
                wanted.append((f.get("StreamARN"), None if ts is None else to_epoch(ts, "streamCreationTimestamp")))
            channels = [c for c in channels if any(
                arn == c.stream.arn and (ts is None or math.floor(ts) == math.floor(c.stream.created))
                for arn, ts in wanted)]
        if next_token is not None:
            _, after = eng._tokens.open_next_token(next_token, "channels", eng._now_ms(), 300_000)
            channels = [c for c in channels if f"{c.name}\x00{c.arn}" > after]
        page = channels[:limit]
        now = eng.clock()
        out: dict = {"ChannelSummaries": [c.summary(max(now, c.stream.now())) for c in page]}
        if len(channels) > limit:
            last = page[-1]
            out["NextToken"] = eng._tokens.next_token("channels", 0, eng._now_ms(), f"{last.name}\x00{last.arn}")
        return out

    def update(self, channel_arn, s3_destination_configuration=None, s3_tables_destination_configuration=None,
               logging_configuration=None) -> dict:
        eng = self.engine
        self._begin("UpdateChannel")
        c = self.get(channel_arn)
        with eng._lock:
            now = c.stream.now()
            st = c.status_at(now)
            if st != "ACTIVE":
                raise E.ResourceInUseException(
                    f"Channel {c.arn} under account {eng.account_id} is not ACTIVE, instead in state {st}.")
            given = {"S3": s3_destination_configuration, "S3_TABLES": s3_tables_destination_configuration}
            other = "S3_TABLES" if c.destination_type == "S3" else "S3"
            if given[other] is not None:
                raise E.InvalidArgumentException(
                    f"Channel {c.name} has an {c.destination_type} destination; "
                    f"{'S3TablesDestinationConfiguration' if other == 'S3_TABLES' else 'S3DestinationConfiguration'} "
                    "cannot be updated on it (only DataFreshnessInSeconds and LoggingConfiguration are mutable).")
            if given[c.destination_type] is None and logging_configuration is None:
                raise E.InvalidArgumentException(
                    "UpdateChannel needs a destination configuration (DataFreshnessInSeconds) or a "
                    "LoggingConfiguration to change.")
            fresh = c.freshness
            if given[c.destination_type] is not None:
                where = "s3DestinationConfiguration" if c.destination_type == "S3" else \
                    "s3TablesDestinationConfiguration"
                cfg = _struct(given[c.destination_type], where)
                extra = set(cfg) - {"DataFreshnessInSeconds"}
                if extra:
                    raise E.InvalidArgumentException(
                        f"Only DataFreshnessInSeconds is mutable in {where}; got {', '.join(sorted(extra))}.")
                fresh = _freshness(cfg.get("DataFreshnessInSeconds"), f"{where}.dataFreshnessInSeconds",
                                   self.freshness_min)
            logging_new = _logging(logging_configuration, c.name, c.id, "loggingConfiguration") \
                if logging_configuration is not None else c.logging
            c.set_freshness(fresh, now)
            c.logging = logging_new
            c.updating_until = now + eng.update_latency
            return {"ChannelDescription": c.description(now, "UPDATING")}

    def delete(self, channel_arn) -> None:
        eng = self.engine
        self._begin("DeleteChannel")
        c = self.get(channel_arn)
        with eng._lock:
            now = c.stream.now()
            if c.deleting_at is not None:
                return
            c.deleting_at = now + eng.delete_latency     # undelivered records are dropped; objects stay
            if eng.delete_latency <= 0:
                self._drop(c)


__all__ = ["Channel", "Channels", "ChannelMetrics", "DirectoryTarget", "S3ClientTarget", "DEFAULT_TEMPLATE",
           "FRESHNESS_DEFAULT", "DELIVERY_METRICS", "make_target", "parse_template", "render", "invalid_reason"]

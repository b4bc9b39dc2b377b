"""A stream: Kinesis semantics (names, validation, response shapes, iterators) over one data-plane core.

Data-plane calls make exactly one core call per request (never a Python loop per record).
Control-plane calls return the same dicts boto3 returns (without ResponseMetadata), with
timestamps as timezone-aware datetimes.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
import threading
from dataclasses import dataclass, field

from . import errors as E
from ._common import SEQ_INDEX_END, initial_hash_ranges, parse_hash_key
from .autoscaling import OnDemandScaler
from .limits import GET_RECORDS_MAX_RECORDS, PARTITION_KEY_MAX_CHARS, PUT_RECORDS_MAX_RECORDS
from .metrics import StreamMetrics
from .topology import ShardInfo

ITERATOR_TYPES = ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
SHARD_FILTER_TYPES = ("AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP",
                      "FROM_TIMESTAMP")


_SHARD_DIGITS = re.compile(r"[0-9]+\Z")
SHARD_INDEX_MAX = 2_147_483_647


def parse_shard_id(shard_id: str) -> int | None:
    """A ShardId's index, parsed as leniently as AWS does: the part after the last ``-`` (or the whole id)
    is a decimal integer 0..2147483647, so ``shardId-000000000005``, ``shardId-5``, ``shard-5``, ``abc-5`` and
    ``5`` name the same shard; anything else (``2147483648``, ``ABKLFD8``, ``2.14E4``) is None."""
    digits = shard_id.rsplit("-", 1)[-1]
    if not _SHARD_DIGITS.match(digits):
        return None
    n = int(digits)
    return n if n <= SHARD_INDEX_MAX else None


def shard_not_found(shard_id: str, stream: str, account: str) -> E.ResourceNotFoundException:
    return E.ResourceNotFoundException(f"Could not find shard {shard_id} in stream {stream} under account {account}.")


def to_datetime(t: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc)


def to_epoch(t: object, where: str) -> float:
    """A timestamp argument: datetime (naive = UTC), or epoch seconds."""
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        return t.timestamp()
    if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t):
        return float(t)
    raise E.ValidationException(f"{where} must be a datetime or epoch seconds, got {t!r}")


def records_dicts(records) -> list[dict]:
    """GetRecords' Records list from engine records. Arrival datetimes are shared between records of the
    same millisecond (datetimes are immutable).
    NOTE: one datetime per record was 40 % of a 10,000-record response; batches share a few ms values."""
    utc = _dt.timezone.utc
    fromts = _dt.datetime.fromtimestamp
    stamps: dict = {}
    out: list[dict] = []
    append = out.append
    for r in records:
        t = r.approximate_arrival_timestamp
        d = stamps.get(t)
        if d is None:
            d = stamps[t] = fromts(t, utc)
        pk = r.partition_key
        if pk:
            append({"SequenceNumber": r.sequence_number, "ApproximateArrivalTimestamp": d, "Data": r.data,
                    "PartitionKey": pk})
        else:                   # written without a key (AUTO distribution): the field is absent, as on AWS
            append({"SequenceNumber": r.sequence_number, "ApproximateArrivalTimestamp": d, "Data": r.data})
    return out


@dataclass(frozen=True)
class GetRecordsResult:
    records: list
    next_shard_iterator: str | None
    millis_behind_latest: int
    child_shards: list = field(default_factory=list)


class Stream:
    """One Kinesis data stream inside an Engine. Obtain it from ``engine.create_stream`` or ``engine.stream``."""

    def __init__(self, engine, name: str, shard_count: int, mode: str, retention_hours: int,
                 tags: dict[str, str], max_record_kib: int, incarnation: int, storage: str = "full") -> None:
        self.engine = engine
        self.name = name
        self.arn = f"arn:aws:kinesis:{engine.region}:{engine.account_id}:stream/{name}"
        self.mode = mode
        self.retention_hours = retention_hours
        self.tags = dict(tags)
        self.max_record_kib = max_record_kib
        self.incarnation = incarnation
        self.encryption_type = "NONE"
        self.key_id: str | None = None
        self.shard_level_metrics: list[str] = []
        self._clock = engine.clock              # the engine's clock, raw (the core's put fast path reads it)
        now = self._clock()
        self._latest = now                      # the latest engine time this stream has seen (see now())
        self.created = now
        self._ready_at = now + engine.create_latency
        self._deleting_at: float | None = None
        self._updating_until = now
        self.scaling_history: list[float] = []       # engine times of UpdateShardCount calls
        self.mode_history: list[float] = []          # engine times of UpdateStreamMode calls
        self._lock = threading.RLock()
        self.storage = storage
        self.retention_override: float | None = None   # seconds; simulations only (see set_retention_seconds)
        self.consumers: dict = {}              # registered (enhanced fan-out) consumers: name -> StreamConsumer
        self.queues: dict = {}                 # queues on this stream: ARN -> fastkin.queues.Queue
        self.channels: dict = {}               # channels reading this stream: ARN -> fastkin.channels.Channel
        self.policy: str | None = None         # resource policy document (JSON text), None when unset
        self.warm_target: int | None = None    # WarmThroughput TargetMiBps (ON_DEMAND only; the scaler keeps it)
        self.warm_current: int = 0             # WarmThroughput CurrentMiBps
        self._core = engine.core.StreamCore(name, engine.account_id, engine.limits, engine.quotas,
                                            max_record_kib * 1024, storage == "full")
        self._shards: dict[int, ShardInfo] = {}
        self._open: tuple[ShardInfo, ...] = ()
        self._closed_live: set[int] = set()   # closed shards whose log the core still holds
        self.topology_version = 0             # bumped by every change of the shard table
        self._next_tick = math.floor(now) + 1.0
        self._sync_io_gate()
        self.metrics = StreamMetrics(self)
        self.scaler = None            # the on-demand scaler while mode == ON_DEMAND
        for i, (a, b) in enumerate(initial_hash_ranges(shard_count) if shard_count else ()):
            self._add_shard(i, a, b, now)      # shard_count 0: restored from a data directory (restore_shard)
        if mode == "ON_DEMAND":
            self.scaler = OnDemandScaler(self, now)

    # -- bookkeeping ------------------------------------------------------------------------
    def now(self) -> float:
        """Engine time for this stream: the clock, but never earlier than a time the stream already saw.

        A clock that goes back (freezegun's ``freeze_time`` to before the stream existed, a wall clock
        stepped back by NTP) reads as the latest time seen: the stream stays ACTIVE, iterators do not
        expire early, and arrival times stay monotonic per shard. A VirtualClock never goes back, so
        there this is the clock itself."""
        t = self._clock()
        if t > self._latest:
            self._latest = t
            return t
        return self._latest

    def _add_shard(self, index: int, start: int, end: int, now: float) -> ShardInfo:
        info = ShardInfo(index, start, end, now, int(now))
        self._shards[index] = info
        self._core.add_shard(index, start, end, info.created_secs)
        self._refresh_topology()
        return info

    def restore_shard(self, info: ShardInfo, live: bool) -> None:
        """Put back a shard read from a data directory (fastkin.durable): its ShardInfo, and an empty log in
        the core unless the shard had expired (records then come back through core.restore_record)."""
        self._shards[info.index] = info
        if live and info.closed_at is None:
            self._core.add_shard(info.index, info.start_hash, info.end_hash, info.created_secs)
        elif live:
            self._core.reshard([], [(info.index, info.start_hash, info.end_hash, info.created_secs, False)])
        self._refresh_topology()

    @property
    def status(self) -> str:
        if self.deleting_at is not None:
            return "DELETING"
        now = self.now()
        if now < self._ready_at:
            return "CREATING"
        return "UPDATING" if now < self._updating_until else "ACTIVE"

    def require_active(self) -> float:
        """Engine time now; ResourceInUseException unless the stream is ACTIVE."""
        st = self.status
        if st != "ACTIVE":
            raise E.ResourceInUseException(
                f"Stream {self.name} under account {self.engine.account_id} not ACTIVE, instead in state {st}")
        return self.now()

    def set_mode(self, mode: str, now: float) -> None:
        """Switch capacity mode; the shard count is kept in both directions."""
        self.mode = mode
        if mode == "ON_DEMAND":
            if self.scaler is None:
                self.scaler = OnDemandScaler(self, now)
        else:
            self.warm_target = None            # warm throughput exists only in ON_DEMAND mode
            if self.scaler is not None:
                self.scaler.detach()
                self.scaler = None

    def begin_update(self, now: float) -> None:
        self._updating_until = now + self.engine.update_latency

    # -- topology changes -------------------------------------------------------------------
    def next_shard_index(self) -> int:
        return max(self._shards) + 1

    def apply_topology(self, now: float, close: list[int], new: list[ShardInfo],
                       transient: set[int] | frozenset[int] = frozenset()) -> None:
        """Close ``close`` and add ``new`` (children know their parents) in one atomic core change.

        Shards in ``transient`` are created and closed within this change (UpdateShardCount's
        intermediate shards): they are readable, empty, and lead on to their own children."""
        if now >= self._next_tick:
            self.tick(now)                      # file the last second's metrics with the old topology
        for info in new:
            self._shards[info.index] = info
            for p in (info.parent, info.adjacent_parent):
                if p is not None:
                    self._shards[p].children.append(info.index)
        for index in close:
            self._shards[index].closed_at = now
        for index in transient:
            self._shards[index].closed_at = now
        self._core.reshard(list(close), [(i.index, i.start_hash, i.end_hash, i.created_secs, i.index not in transient)
                                         for i in new])
        self._refresh_topology()
        self.metrics.note_open_shards(len(self._open))

    @property
    def core(self):
        """The data-plane core behind this stream (fastkin._cy.core.StreamCore or its reference twin)."""
        return self._core

    @property
    def retention_seconds(self) -> float:
        if self.retention_override is not None:
            return self.retention_override
        return self.retention_hours * 3600.0

    def set_retention_seconds(self, seconds: float | None) -> None:
        """Not an AWS operation: a retention shorter than AWS's 24 h minimum, for long simulations that
        must not keep everything they send (None restores RetentionPeriodHours)."""
        if seconds is not None and not seconds > 0:
            raise ValueError(f"retention must be positive, got {seconds}")
        self.retention_override = seconds
        self.trim()

    @property
    def deleting_at(self) -> float | None:
        """Engine time at which a deleted stream disappears (None unless deleted)."""
        return self._deleting_at

    @deleting_at.setter
    def deleting_at(self, t: float | None) -> None:
        self._deleting_at = t
        self._sync_io_gate()

    def _sync_io_gate(self) -> None:
        # The core's put_record_io skips _check_io while ready_at <= now < min(next tick, deleting_at),
        # i.e. exactly while _check_io would neither raise nor tick.
        hi = self._next_tick if self._deleting_at is None else min(self._next_tick, self._deleting_at)
        self._core.set_io_gate(self._ready_at, hi)

    def _check_io(self, now: float | None = None) -> float:
        if now is None or now < self._latest:
            now = self.now()
        else:
            self._latest = now
        if now < self._ready_at or (self.deleting_at is not None and now >= self.deleting_at):
            raise E.stream_not_found(self.name, self.engine.account_id)
        if now >= self._next_tick:
            self.tick(now)
        return now

    def tick(self, now: float) -> None:
        """Once per engine-second of I/O: file metrics, apply retention, let the on-demand scaler act."""
        with self._lock:
            if now < self._next_tick:
                return
            self._next_tick = math.floor(now) + 1.0
            self._sync_io_gate()
            self.metrics.roll(now)
            self._core.trim(now, self.retention_seconds)
            for index in list(self._closed_live):      # only closed shards can expire
                if self._expired(self._shards[index]):
                    self._core.drop_shard(index)
                    self._closed_live.discard(index)
                    self.topology_version += 1
            if self.scaler is not None:
                self.scaler.evaluate(now)

    def trim(self) -> int:
        """Apply retention now (it is also applied at most once per engine second on I/O)."""
        return self._core.trim(self.now(), self.retention_seconds)

    def shard(self, shard_id: object) -> ShardInfo:
        """The shard a ShardId names (parsed leniently, see parse_shard_id); ResourceNotFoundException
        ``Could not find shard ...`` naming the normalised id (or the raw one when it does not parse)."""
        if not isinstance(shard_id, str):
            raise E.ValidationException(f"ShardId must be a string, got {type(shard_id).__name__}")
        n = parse_shard_id(shard_id)
        info = None if n is None else self._shards.get(n)
        if info is None or self._expired(info):
            raise shard_not_found(shard_id if n is None else E.shard_name(n), self.name, self.engine.account_id)
        return info

    def _expired(self, info: ShardInfo) -> bool:
        return info.closed_at is not None and self.now() - info.closed_at >= self.retention_seconds

    def open_shards(self) -> tuple[ShardInfo, ...]:
        """The open shards (a tuple kept up to date by every topology change: cheap to ask for)."""
        return self._open

    def _refresh_topology(self) -> None:
        shards = list(self._shards.values())
        self._open = tuple(s for s in shards if s.closed_at is None)
        self._closed_live = {s.index for s in shards if s.closed_at is not None} & set(self._core.shards)
        self.topology_version += 1

    # -- put ----------------------------------------------------------------------------------
    @property
    def record_distribution(self) -> str:
        """RecordDistributionStrategy: USER_PARTITION_KEY (MD5 of the key) or AUTO (on-demand only: the open
        shards in turn, PartitionKey optional, ExplicitHashKey ignored)."""
        return "AUTO" if self._core.auto else "USER_PARTITION_KEY"

    @record_distribution.setter
    def record_distribution(self, value: str) -> None:
        self._core.auto = value == "AUTO"

    def put_record(self, data, partition_key, explicit_hash_key=None, sequence_number_for_ordering=None):
        """Put one record: returns r.shard_id, r.sequence_number; raises ProvisionedThroughputExceededException."""
        if sequence_number_for_ordering is not None:
            self._check_sfo(sequence_number_for_ordering)
        # NOTE: the core reads the clock and puts in one call while no check or tick is due (~150 ns
        # less Python per call); otherwise it returns (now,) untouched and we take the full path.
        r = self._core.put_record_io(data, partition_key, explicit_hash_key, self._clock)
        if r.__class__ is tuple:
            r = self._core.put_record(data, partition_key, explicit_hash_key, self._check_io(r[0]))
        return r

    def put_records(self, records):
        """Put a batch of (data, partition_key[, explicit_hash_key]) tuples: one result per record, in order."""
        return self._core.put_records(records, self._check_io())

    # -- DryRun -------------------------------------------------------------------------------
    def dry_run_put(self, records, sequence_number_for_ordering=None, *, batch: bool) -> None:
        """Every check PutRecord (``batch=False``, one record) or PutRecords makes, in the core's order and with its
        texts, then DryRunOperationException: nothing is written and no write quota is used."""
        self._check_io()
        if sequence_number_for_ordering is not None:
            self._check_sfo(sequence_number_for_ordering)
        if batch:
            if not isinstance(records, (list, tuple)):
                raise E.ValidationException("records must be a list of (data, partition_key[, explicit_hash_key]) "
                                            f"tuples, got {type(records).__name__}")
            if not records:
                raise E.validation_error("[]", "records", "have length greater than or equal to 1")
            if len(records) > PUT_RECORDS_MAX_RECORDS:
                raise E.too_many_records(len(records), PUT_RECORDS_MAX_RECORDS)
        total = 0
        for i, rec in enumerate(records):
            if not isinstance(rec, (tuple, list)) or not 2 <= len(rec) <= 3:
                raise E.ValidationException(
                    f"records.{i + 1}.member must be a (data, partition_key[, explicit_hash_key]) tuple")
            total += self._record_size(i if batch else None, rec[0], rec[1], rec[2] if len(rec) == 3 else None)
        if batch and total > self.engine.limits.put_records_max_bytes:
            raise E.records_size_exceeded(self.engine.limits.put_records_max_bytes)
        raise E.dry_run()

    def _record_size(self, i, data, key, ehk) -> int:
        if isinstance(data, str):
            data = data.encode()
        elif type(data) is not bytes:
            try:
                data = bytes(memoryview(data))
            except TypeError:
                raise E.bad_data(i, data) from None
        auto = self._core.auto
        if key is None and auto:
            kb = b""
        elif not isinstance(key, str) or not 1 <= len(key) <= PARTITION_KEY_MAX_CHARS:
            raise E.missing_partition_key(i) if key is None else E.bad_partition_key(i, key)
        else:
            try:
                kb = key.encode("utf-8")
            except UnicodeEncodeError:
                raise E.bad_key_encoding(i) from None
        size = len(data) + len(kb)
        if size > self._core.max_record_bytes:
            raise E.record_too_large(i, size, self._core.max_record_bytes)
        if ehk is not None and not auto:
            parse_hash_key(ehk)
        return size

    def _check_sfo(self, value) -> None:
        # Sequence numbers are strictly increasing per shard (and a child shard's are above its
        # parents'), so any number this stream issued is below the next one; we only validate it.
        if self._core.auto:
            raise E.InvalidArgumentException(
                f"SequenceNumberForOrdering is not supported on stream {self.name} under account "
                f"{self.engine.account_id}: its RecordDistributionStrategy is AUTO, which does not keep order.")
        if not isinstance(value, str) or not value.isdigit() or len(value) > 129 \
                or (len(value) > 1 and value[0] == "0"):
            raise E.validation_error(value, "sequenceNumberForOrdering",
                                     "satisfy regular expression pattern: 0|([1-9]\\d{0,128})")

    # -- read ---------------------------------------------------------------------------------
    def get_shard_iterator(self, shard_id, shard_iterator_type, starting_sequence_number=None, timestamp=None) -> str:
        now = self._check_io()
        info = self.shard(shard_id)
        t = shard_iterator_type
        if t not in ITERATOR_TYPES:
            raise E.validation_error(t, "shardIteratorType",
                                     "satisfy enum value set: [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, "
                                     "TRIM_HORIZON, LATEST, AT_TIMESTAMP]")
        wants_seq = t in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")
        if wants_seq != (starting_sequence_number is not None) or (t == "AT_TIMESTAMP") != (timestamp is not None):
            raise E.InvalidArgumentException(
                "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or "
                "(2) TRIM_HORIZON or LATEST and no StartingSequenceNumber or (3) AT_TIMESTAMP and Timestamp. "
                f"Request specified {t} and {'a' if starting_sequence_number is not None else 'no'} "
                f"StartingSequenceNumber and {'a' if timestamp is not None else 'no'} Timestamp.")
        core = self._core
        idx = info.index
        if t == "TRIM_HORIZON":
            pos = core.shard_horizon(idx)
        elif t == "LATEST":
            pos = core.shard_end(idx)
        elif t == "AT_TIMESTAMP":
            ts = to_epoch(timestamp, "timestamp")
            if ts > now:
                raise E.InvalidArgumentException(
                    f"The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. "
                    f"timestampInMillis: {math.floor(ts * 1000)}, currentTimestampInMillis: {math.floor(now * 1000)}")
            pos = core.seek_timestamp(idx, math.floor(ts * 1000.0))
        else:
            pos = self._seq_position(info, starting_sequence_number, t == "AFTER_SEQUENCE_NUMBER")
        return self.engine._tokens.iterator(self.name, self.incarnation, idx, pos, math.floor(now * 1000.0))

    def _seq_position(self, info: ShardInfo, seq, after: bool) -> int:
        """The log position AT_/AFTER_SEQUENCE_NUMBER ``seq`` starts at. A record's seqIndex is its
        position + 1; the shard's StartingSequenceNumber (0) is before every record and its
        EndingSequenceNumber (SEQ_INDEX_END) after them all."""
        if not isinstance(seq, str) or not seq.isdigit():
            raise E.validation_error(seq, "startingSequenceNumber",
                                     "satisfy regular expression pattern: 0|([1-9]\\d{0,128})")
        parsed = self.engine.core.parse_sequence_number(seq)
        where = (f"used in GetShardIterator on shard {info.shard_id} in stream {self.name} "
                 f"under account {self.engine.account_id}")
        if parsed is None:
            raise E.InvalidArgumentException(f"StartingSequenceNumber {seq} {where} is invalid.")
        create, shard, q, _ = parsed
        if shard != info.index:
            raise E.InvalidArgumentException(
                f"Invalid StartingSequenceNumber. It encodes {E.shard_name(shard)}, while it was used in a call to a "
                f"shard with {info.shard_id}")
        end = self._core.shard_end(info.index)
        if q == SEQ_INDEX_END:
            return end
        if create != info.created_secs or q > end:
            raise E.InvalidArgumentException(f"StartingSequenceNumber {seq} {where} is invalid.")
        if q == 0:
            return 0
        return q if after else q - 1

    def get_records(self, shard_iterator, limit: int = GET_RECORDS_MAX_RECORDS) -> GetRecordsResult:
        return self.engine.get_records(shard_iterator, limit, stream_arn=self.arn)   # this stream's iterators only

    def _get_records(self, shard: int, pos: int, limit, now: float, quota: bool = True) -> GetRecordsResult:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise E.ValidationException(f"limit must be an integer, got {type(limit).__name__}")
        info = self._shards.get(shard)
        if info is None or self._expired(info):
            raise E.ResourceNotFoundException(
                f"Shard {E.shard_name(shard)} in stream {self.name} under account {self.engine.account_id} "
                "does not exist")
        records, pos, behind = self._core.get_records(shard, pos, limit, now, quota)
        child_shards = []
        if info.closed_at is not None and pos >= self._core.shard_end(shard):
            nxt = None
            child_shards = [self._child_shard(c) for c in info.children]
        else:
            nxt = self.engine._tokens.iterator(self.name, self.incarnation, shard, pos, math.floor(now * 1000.0))
        return GetRecordsResult(records, nxt, behind, child_shards)

    def dry_run_get_records(self, shard: int, limit) -> None:
        """GetRecords' checks of a decoded iterator (limit, the shard still readable), then DryRunOperationException."""
        self._check_io()
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise E.ValidationException(f"limit must be an integer, got {type(limit).__name__}")
        if not 1 <= limit <= GET_RECORDS_MAX_RECORDS:
            raise E.validation_error(limit, "limit", f"have value between 1 and {GET_RECORDS_MAX_RECORDS}")
        info = self._shards.get(shard)
        if info is None or self._expired(info):
            raise E.ResourceNotFoundException(
                f"Shard {E.shard_name(shard)} in stream {self.name} under account {self.engine.account_id} "
                "does not exist")
        raise E.dry_run()

    def sequence_number_at(self, shard_id: str, position: int) -> str:
        """The sequence number of the record at ``position`` of a shard's log (it must still be readable)."""
        info = self.shard(shard_id)
        ms = self._core.arrival_ms(info.index, position)
        return self.engine.core.format_sequence_number(info.created_secs, info.index, position + 1, ms // 1000)

    def starting_sequence_number(self, shard_id: str) -> str:
        info = self.shard(shard_id)
        return self.engine.core.format_sequence_number(info.created_secs, info.index, 0, info.created_secs)

    def _child_shard(self, index: int) -> dict:
        c = self._shards[index]
        parents = [E.shard_name(p) for p in (c.parent, c.adjacent_parent) if p is not None]
        return {"ShardId": c.shard_id, "ParentShards": parents,
                "HashKeyRange": {"StartingHashKey": str(c.start_hash), "EndingHashKey": str(c.end_hash)}}

    # -- describe -----------------------------------------------------------------------------
    def shard_dict(self, info: ShardInfo) -> dict:
        d: dict = {"ShardId": info.shard_id}
        if info.parent is not None:
            d["ParentShardId"] = E.shard_name(info.parent)
        if info.adjacent_parent is not None:
            d["AdjacentParentShardId"] = E.shard_name(info.adjacent_parent)
        d["HashKeyRange"] = {"StartingHashKey": str(info.start_hash), "EndingHashKey": str(info.end_hash)}
        fmt = self.engine.core.format_sequence_number
        rng = {"StartingSequenceNumber": fmt(info.created_secs, info.index, 0, info.created_secs)}
        if info.closed_at is not None:
            rng["EndingSequenceNumber"] = fmt(info.created_secs, info.index, SEQ_INDEX_END, int(info.closed_at))
        d["SequenceNumberRange"] = rng
        return d

    def visible_shards(self) -> list[ShardInfo]:
        return sorted((s for s in list(self._shards.values()) if not self._expired(s)), key=lambda s: s.index)

    def describe(self, limit: int = 100, exclusive_start_shard_id: str | None = None) -> dict:
        shards = self.visible_shards()
        if exclusive_start_shard_id is not None:
            start = self._shard_number(exclusive_start_shard_id)
            shards = [s for s in shards if s.index > start]
        page = shards[:limit]
        return {"StreamDescription": {
            "StreamName": self.name,
            "StreamARN": self.arn,
            "StreamStatus": self.status,
            "StreamModeDetails": {"StreamMode": self.mode},
            "Shards": [self.shard_dict(s) for s in page],
            "HasMoreShards": len(shards) > limit,
            "RetentionPeriodHours": self.retention_hours,
            "StreamCreationTimestamp": to_datetime(self.created),
            "EnhancedMonitoring": [{"ShardLevelMetrics": list(self.shard_level_metrics)}],
            "EncryptionType": self.encryption_type,
            **({"KeyId": self.key_id} if self.key_id else {}),
        }}

    def describe_summary(self) -> dict:
        d = {
            "StreamName": self.name,
            "StreamARN": self.arn,
            "StreamStatus": self.status,
            "StreamModeDetails": {"StreamMode": self.mode},
            "RetentionPeriodHours": self.retention_hours,
            "StreamCreationTimestamp": to_datetime(self.created),
            "EnhancedMonitoring": [{"ShardLevelMetrics": list(self.shard_level_metrics)}],
            "EncryptionType": self.encryption_type,
            "OpenShardCount": len(self.open_shards()),
            "ConsumerCount": len(self.consumers),           # enhanced fan-out consumers only, not queues
            "MaxRecordSizeInKiB": self.max_record_kib,
            "QueueCount": len(self.queues),
            "ChannelCount": len(self.channels),
        }
        if self.mode == "ON_DEMAND":
            d["RecordDistributionStrategy"] = self.record_distribution
        if self.key_id:
            d["KeyId"] = self.key_id
        if self.warm_target is not None:
            d["WarmThroughput"] = {"TargetMiBps": self.warm_target, "CurrentMiBps": self.warm_current}
        return {"StreamDescriptionSummary": d}

    @staticmethod
    def _shard_number(shard_id: object) -> int:
        if not isinstance(shard_id, str):
            raise E.ValidationException(f"ShardId must be a string, got {type(shard_id).__name__}")
        digits = shard_id.rsplit("-", 1)[-1]
        if not digits.isdigit():
            raise E.InvalidArgumentException(f"Invalid ShardId {shard_id}.")
        return int(digits)

    def filter_shards(self, shard_filter: dict | None, exclusive_start_shard_id: str | None) -> list[ShardInfo]:
        shards = self.visible_shards()
        if exclusive_start_shard_id is not None:
            start = self._shard_number(exclusive_start_shard_id)
            shards = [s for s in shards if s.index > start]
        if not shard_filter:
            return shards
        if not isinstance(shard_filter, dict) or shard_filter.get("Type") not in SHARD_FILTER_TYPES:
            raise E.validation_error(shard_filter, "shardFilter.type",
                                     "satisfy enum value set: [" + ", ".join(SHARD_FILTER_TYPES) + "]")
        t = shard_filter["Type"]
        sid, ts = shard_filter.get("ShardId"), shard_filter.get("Timestamp")
        if (t == "AFTER_SHARD_ID") != (sid is not None) \
                or (t in ("AT_TIMESTAMP", "FROM_TIMESTAMP")) != (ts is not None):
            needs = ("a ShardId" if t == "AFTER_SHARD_ID" else "a Timestamp" if "TIMESTAMP" in t
                     else "no ShardId or Timestamp")
            raise E.InvalidArgumentException(f"ShardFilter type {t} requires {needs}.")
        if t == "AFTER_SHARD_ID":
            start = self._shard_number(sid)
            return [s for s in shards if s.index > start]
        if t == "AT_LATEST":
            return [s for s in shards if s.closed_at is None]
        if t == "FROM_TRIM_HORIZON":
            return shards
        if t == "AT_TRIM_HORIZON":
            # the shards open at the trim horizon: those with no visible parent
            visible = {s.index for s in shards}
            return [s for s in shards if s.parent not in visible and s.adjacent_parent not in visible]
        at = to_epoch(ts, "shardFilter.timestamp")
        if t == "AT_TIMESTAMP":   # shards open at that time
            return [s for s in shards if s.created <= at and (s.closed_at is None or s.closed_at > at)] or \
                [s for s in shards if s.closed_at is None]
        return [s for s in shards if s.closed_at is None or s.closed_at > at]   # FROM_TIMESTAMP

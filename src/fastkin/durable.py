"""Data directories: an Engine whose state survives restarts and kill -9 (issue 15).

``Engine(data_dir=PATH, fsync="interval", fsync_interval=0.1)`` opens (creating it when empty) and
recovers PATH, then keeps it up to date::

    PATH/FORMAT                  "fastkin-data <version>": another version is refused (DataDirError)
    PATH/LOCK                    fcntl.flock'ed by the one process that has the directory open
    PATH/meta.sqlite3            SQLite, WAL mode: engine, streams, shards, consumers, queues, channels,
                                 channel_objects, scalers, scaler_peaks (below)
    PATH/streams/<incarnation:08d>-<name>/<shard index:012d>/<base:020d>.seg   records (fastkin.segments)
    PATH/streams/.../<base:020d>.idx, .tix   a closed file's index; the newest file's tail index
    PATH/quarantine/...          what recovery cut off or moved aside (never deleted by fastkin)

Metadata. Each control-plane call that changes state (CreateStream, tags, retention, resharding, modes,
consumers, policies, encryption, account settings, ...) is committed to SQLite before the call returns,
under one lock, so the database sees changes in the order they happened. A change of the shard table made
inside the data plane (the on-demand scaler, retention dropping a closed shard) is committed before the
first record that lands after it is written. Stored: everything a describe call shows, the shard lineage
and hash ranges, consumers and their tags and policies, the stream counters (incarnations) and the account
settings, ``stream.set_retention_seconds`` overrides (committed before it returns), the key that seals
iterators, NextTokens and receipt handles (those issued before a restart stay valid); a shard's next sequence
position comes from its segment files. Not stored: metrics series (streams' and channels'), the channels'
control-plane rate-limit buckets, enhanced fan-out subscriptions (connections).

Queues, channels, the on-demand scaler (tables queues, channels, channel_objects, scalers, scaler_peaks):

- Queue configuration (CreateQueue, UpdateQueue, DeleteQueue, tags and policies on queue ARNs: what DescribeQueue
  and ListQueues show, the ARN, id and serial, the CREATING/UPDATING/DELETING times, which continue on the engine
  clock) is committed like a stream's, before the call returns; a new queue's starting cursors go in the same
  transaction. Queue *delivery state* (per-shard cursors; per tracked record its state, visibility deadline,
  receive count, first receive time and delivery number; the redelivery and dead-letter order; the counters) is
  a snapshot, one blob per queue (``Queue.export_state``, ~37 bytes a tracked record), written by
  ``save_state`` for each queue whose change counter moved since its last save: every ``fsync_interval`` (by
  the fsync thread's ``flush`` in "interval" and "always" modes; by a light "fastkin-state" thread in "never"
  mode), after an explicit ``flush()``, and at ``close()``. Queues are at least once across a crash (process
  or machine): the queue comes back as of its last save, so a record received or acknowledged after it may be
  delivered again (an acknowledged record can come back), but an unacknowledged one never vanishes (one first
  delivered after the save is behind the saved cursor; one in flight at the save is still tracked). After a
  clean close nothing comes back. Visibility deadlines are engine times and run on after a restart; receipt
  handles issued before the save stay current; those of receives the save did not see are stale (delivery
  numbers go on 2**32 above the saved counter), and the record is delivered again with a new one.
- Channel configuration (what DescribeChannel shows, tags, policy, the CREATING/UPDATING/DELETING times) is
  committed before CreateChannel, UpdateChannel, DeleteChannel and the tag/policy calls return. Delivery
  progress (the window anchor, per-shard cursors, the shard ends at creation, FAILED and its reason) and the
  list of objects written are committed after each pump that delivered a window, activated or failed a channel
  (``Channels.on_change``), in a transaction of their own. A restarted channel resumes at the next undelivered
  window: on a VirtualClock no window is delivered twice or skipped; on another clock the windows that ended
  while the engine was down are delivered when it starts (the channels' thread catches up). A crash between
  writing a window's object and that commit delivers the window again (at least once: a second object under
  another key). Destinations are the restarted Engine's ``channel_s3``/``channel_iceberg``, not stored; an S3
  Tables channel loads its table from that Iceberg target (made again when the target lacks it). After
  ``close()`` a durable engine's channels deliver nothing more (it could not record it).
- The on-demand scaler's state (window start, next evaluation and release, offered bytes per shard in the
  window, the trailing per-minute peaks, its split/merge events) is written whenever it changed, with every
  control-plane commit (so a split or merge it made is in the same transaction as the shard-table change) and
  with the queue snapshots: a restarted on-demand stream continues its window and its 30-day peak. A crash loses
  the bytes observed since the last save (the window under-counts them).

Records. After the core accepts a put, the accepted records are framed (fastkin._cy.journal: CRC32C in C)
and appended to their shards' newest segment files with os.write before the call returns, so a process
crash (kill -9) loses nothing that was acknowledged, in every mode. ``fsync`` decides what a crash of the
machine (power loss, kernel panic) can lose:

- ``"always"``: PutRecord/PutRecords return after the files they wrote are fsynced (and a new segment's
  directory entry); metadata commits with synchronous=FULL. Loses nothing acknowledged. Concurrent
  callers in threads share fsyncs (group commit: an fsync that starts after a write covers every waiting
  caller of that file).
- ``"interval"`` (the default): a background thread fsyncs written files every ``fsync_interval`` seconds
  (default 0.1). Loses at most the records acknowledged in the last interval (plus the fsync's own time).
- ``"never"``: the OS writes back when it likes (Linux: typically within 30 s). Loses whatever it had not.

Recovery (on open) reads the metadata, re-creates streams, shards and consumers, then gives each shard's
segment files to the core: a closed file with a valid index is adopted whole without reading its payload
(``StreamCore.adopt_segment``: the compiled core maps it read-only); a file without one (after a crash, each
shard's newest) is read past the end of its tail index (the entries the background thread appends after
each fsync: fsync "interval" and "always") and CRC-checked frame by frame, then indexed and adopted
(fastkin.segments). Sequence numbers are the ones that were acknowledged and new ones continue above them.
Torn or corrupt data is cut off and reported (``engine.durable.damage``); ``engine.durable.recovery`` counts
what was read. Recovery time grows with the index bytes (18 a record) plus the unsynced tails (about one
interval of records; with fsync "never", each shard's whole newest file), not with the stored payloads.
"""
from __future__ import annotations

import contextlib
import fcntl
import inspect
import json
import logging
import os
import shutil
import sqlite3
import sys
import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import errors as E
from .fanout import StreamConsumer
from .queues import Queue
from .segments import SEGMENT_BYTES, SEGMENT_MS, Damage, ShardLog, journal_module
from .stream import Stream
from .tokens import TokenCodec
from .topology import ShardInfo

FORMAT_VERSION = 2                      # 1: phase 1 (frames with the key before the data, no index files)
FORMAT_PREFIX = "fastkin-data "
FSYNC_MODES = ("always", "interval", "never")
log = logging.getLogger(__name__)

# Engine methods that change control-plane state: each is committed to SQLite before it returns.
MUTATING = (
    "create_stream", "delete_stream", "increase_stream_retention_period", "decrease_stream_retention_period",
    "add_tags_to_stream", "remove_tags_from_stream", "tag_resource", "untag_resource", "split_shard",
    "merge_shards", "update_shard_count", "update_stream_mode", "update_stream_warm_throughput",
    "update_max_record_size", "start_stream_encryption", "stop_stream_encryption", "update_account_settings",
    "register_stream_consumer", "deregister_stream_consumer", "put_resource_policy", "delete_resource_policy",
    "enable_enhanced_monitoring", "disable_enhanced_monitoring", "set_quotas",
    "update_stream_record_distribution_strategy",
)
# Engine methods that change queue or channel configuration: committed the same way (the tag and policy calls on
# their ARNs are in MUTATING). Queue delivery state is saved apart (save_state), channel progress after each
# delivery (_commit_state).
STATE_MUTATING = ("create_queue", "update_queue", "delete_queue", "create_channel", "update_channel",
                  "delete_channel")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS engine (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (name TEXT PRIMARY KEY, incarnation INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (
    incarnation INTEGER NOT NULL, idx INTEGER NOT NULL, start_hash TEXT NOT NULL, end_hash TEXT NOT NULL,
    created REAL NOT NULL, created_secs INTEGER NOT NULL, parent INTEGER, adjacent_parent INTEGER,
    closed_at REAL, live INTEGER NOT NULL, PRIMARY KEY (incarnation, idx));
CREATE TABLE IF NOT EXISTS consumers (
    incarnation INTEGER NOT NULL, name TEXT NOT NULL, created REAL NOT NULL, ready_at REAL NOT NULL,
    tags TEXT NOT NULL, policy TEXT, PRIMARY KEY (incarnation, name));
"""
_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (arn TEXT PRIMARY KEY, incarnation INTEGER NOT NULL, doc TEXT NOT NULL,
    state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS channels (arn TEXT PRIMARY KEY, incarnation INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS channel_objects (arn TEXT NOT NULL, n INTEGER NOT NULL, bucket TEXT NOT NULL,
    key TEXT NOT NULL, PRIMARY KEY (arn, n));
CREATE TABLE IF NOT EXISTS scalers (incarnation INTEGER PRIMARY KEY, doc TEXT NOT NULL, window BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS scaler_peaks (incarnation INTEGER NOT NULL, minute INTEGER NOT NULL, rate REAL NOT NULL,
    PRIMARY KEY (incarnation, minute));
"""


def lock_directory(path: str) -> int:
    """Create ``path`` if needed, take its LOCK (fcntl.flock, exclusive) and check its FORMAT; returns the
    lock's file descriptor (closing it releases the lock). DataDirError when another process holds it or the
    directory is of another format version."""
    if sys.byteorder != "little":           # index files hold the arrays in host order
        raise E.DataDirError("data directories need a little-endian machine (index files are little-endian)")
    os.makedirs(path, exist_ok=True)
    fd = os.open(os.path.join(path, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "another process"
        finally:
            os.close(fd)
        raise E.DataDirError(f"data directory {path} is in use by process {holder} (its LOCK is held)") from None
    try:
        _check_format(path)
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _fsync_path(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:           # (no WAL yet, or SQLite just reset it after a checkpoint)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _named_stream(signature: inspect.Signature, args: tuple, kw: dict) -> str | None:
    """The stream an Engine call names (by stream_name, or in a stream, consumer or resource ARN), or None
    (an account-level call, a queue's or channel's ARN, or arguments that do not bind)."""
    try:
        bound = signature.bind_partial(*args, **kw).arguments
    except TypeError:
        return None
    name = bound.get("stream_name")
    if isinstance(name, str):
        return name
    for key in ("stream_arn", "consumer_arn", "resource_arn"):
        arn = bound.get(key)
        if isinstance(arn, str) and ":stream/" in arn:
            return arn.split(":stream/", 1)[1].split("/", 1)[0]
    return None


def _check_format(path: str) -> None:
    fmt = os.path.join(path, "FORMAT")
    try:
        with open(fmt) as f:
            text = f.read().strip()
    except FileNotFoundError:
        if set(os.listdir(path)) - {"LOCK"}:
            raise E.DataDirError(f"{path} is not a fastkin data directory (no FORMAT file, and it is not empty)") \
                from None
        tmp = fmt + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{FORMAT_PREFIX}{FORMAT_VERSION}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, fmt)
        return
    version = text[len(FORMAT_PREFIX):] if text.startswith(FORMAT_PREFIX) else None
    if version == "1":
        raise E.DataDirError(f"data directory {path} has format {text!r} (written by fastkin's first data-directory "
                             f"release: frames with the key before the data, no index files); this fastkin reads "
                             f"{FORMAT_PREFIX}{FORMAT_VERSION!s} only: open it with that release, or start a new "
                             f"directory")
    if version != str(FORMAT_VERSION):
        raise E.DataDirError(f"data directory {path} has format {text!r}; this fastkin reads "
                             f"{FORMAT_PREFIX}{FORMAT_VERSION!s} only")


class Durable:
    """An Engine's data directory: opened, recovered, then kept up to date (``engine.durable``)."""

    def __init__(self, engine, path: str, fsync: str = "interval", fsync_interval: float = 0.1,
                 verify: bool = False) -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}, got {fsync!r}")
        if not fsync_interval > 0:
            raise ValueError(f"fsync_interval must be positive, got {fsync_interval!r}")
        self.engine = engine
        self.path = os.path.abspath(path)
        self._owed = threading.local()       # deferring(): the syncs a thread's puts owe
        self.fsync = fsync
        self.fsync_interval = float(fsync_interval)
        self.verify = bool(verify)              # recovery reads and CRC-checks every stored record
        self.segment_bytes = SEGMENT_BYTES      # settable: when a shard's newest file is rolled
        self.segment_ms = SEGMENT_MS
        self.damage: list[Damage] = []          # what recovery cut off, moved aside or rebuilt
        self.recovered_records = 0
        # what recovery read: files and records adopted from their index (payload not read), files scanned
        # frame by frame (the newest after a crash, or a missing/bad index), their payload bytes and records,
        # indexes written, records replayed one by one (metadata-only streams)
        self.recovery = {"adopted_files": 0, "adopted_records": 0, "scanned_files": 0, "scanned_bytes": 0,
                         "scanned_records": 0, "tail_indexed_records": 0, "indexes_written": 0,
                         "replayed_records": 0}
        self._lock = threading.RLock()
        self.failed: BaseException | None = None    # what could not be written (see _fail): nothing is taken
        self._lockfd = lock_directory(self.path)
        self._closed = False
        try:
            self.db = sqlite3.connect(os.path.join(self.path, "meta.sqlite3"), isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={'FULL' if fsync == 'always' else 'NORMAL'}")
            self.db.executescript(_SCHEMA)
            self.db.executescript(_STATE_SCHEMA)
            self.journal = journal_module(engine.core_name)
            self._logs: dict[tuple[int, int], ShardLog] = {}
            self._saved: dict[str, tuple] = {}      # stream name -> what the database holds for it
            self._saved_engine: dict[str, str] = {}
            self._versions: dict[str, int] = {}     # stream name -> topology_version last saved
            self._dirty: set[ShardLog] = set()
            self._wal_synced = -1                   # db.total_changes at the last fsync of the WAL
            self._ticks: dict[str, float] = {}      # stream name -> its next tick when its files were last retained
            self._recover()
            self._install()
            self.sync()
        except BaseException:
            os.close(self._lockfd)
            raise
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if fsync != "never":            # (interval: fsyncs then tail indexes; always: tail indexes)
            self._flusher = threading.Thread(target=self._every_interval, args=(self.flush, "the background flush"),
                                             name="fastkin-fsync", daemon=True)
            self._flusher.start()
        self._start_state()

    # -- paths --------------------------------------------------------------------------------------------
    def stream_dir(self, name: str, incarnation: int) -> str:
        return os.path.join(self.path, "streams", f"{incarnation:08d}-{name}")

    def _log(self, s: Stream, index: int) -> ShardLog:
        key = (s.incarnation, index)
        lg = self._logs.get(key)
        if lg is None:
            d = os.path.join(self.stream_dir(s.name, s.incarnation), f"{index:012d}")
            q = os.path.join(self.path, "quarantine", f"{s.incarnation:08d}-{s.name}", f"{index:012d}")
            lg = self._logs[key] = ShardLog(d, index, self.journal, q)
        return lg

    # -- metadata -----------------------------------------------------------------------------------------
    def _snapshot(self, s: Stream, versions: dict | None = None) -> tuple:
        """What the database holds for a stream; ``versions[name]`` gets the topology version it was taken at
        (both under the stream's lock: a tick in another thread cannot change the shard table in between)."""
        with s._lock:
            if versions is not None:
                versions[s.name] = s.topology_version
            return self._snapshot_locked(s)

    def _snapshot_locked(self, s: Stream) -> tuple:
        doc = {
            "mode": s.mode, "retention_hours": s.retention_hours, "retention_override": s.retention_override,
            "tags": s.tags, "max_record_kib": s.max_record_kib, "encryption_type": s.encryption_type,
            "key_id": s.key_id, "shard_level_metrics": s.shard_level_metrics, "created": s.created,
            "ready_at": s._ready_at, "deleting_at": s.deleting_at, "updating_until": s._updating_until,
            "scaling_history": s.scaling_history, "mode_history": s.mode_history, "policy": s.policy,
            "warm_target": s.warm_target, "warm_current": s.warm_current, "storage": s.storage,
            "record_distribution": s.record_distribution,
        }
        live = s.core.shards
        shards = {i.index: (str(i.start_hash), str(i.end_hash), i.created, i.created_secs, i.parent,
                            i.adjacent_parent, i.closed_at, int(i.index in live)) for i in list(s._shards.values())}
        consumers = {c.name: (c.created, c.ready_at, json.dumps(c.tags, sort_keys=True), c.policy)
                     for c in list(s.consumers.values())}
        return s.incarnation, json.dumps(doc, sort_keys=True), shards, consumers

    def sync(self, only: str | None = None) -> None:
        """Commit every control-plane change not yet in the database (one transaction), in call order.
        ``only``: the stream a call named (the others are compared only for having appeared, gone or been
        re-created: a call changes the stream it names, so a commit costs the same with one stream or
        thousands); None compares every stream."""
        with self._lock:
            e = self.engine
            engine_rows = {"incarnations": str(e._incarnations), "quotas": json.dumps(e.quotas),
                           "token_secret": e._tokens.secret.hex(),
                           "account_commitment": json.dumps(e.account_commitment, sort_keys=True)}
            current = {s.name: s for s in list(e._streams.values())}
            saved = self._saved
            versions: dict[str, int] = {}
            if only is None:
                snaps = {name: self._snapshot(s, versions) for name, s in current.items()}
            else:
                snaps = {name: self._snapshot(s, versions) for name, s in current.items()
                         if name == only or name not in saved or saved[name][0] != s.incarnation}
            gone = [name for name in saved if name not in current or current[name].incarnation != saved[name][0]]
            changed = [name for name, snap in snaps.items() if self._saved.get(name) != snap]
            extra, after = self._state_changes()
            if not gone and not changed and engine_rows == self._saved_engine and not extra:
                self._versions.update(versions)     # (a version bump that changed nothing stored)
                return
            with self._transaction() as db:
                for k, v in engine_rows.items():
                    if self._saved_engine.get(k) != v:
                        db.execute("INSERT OR REPLACE INTO engine VALUES (?, ?)", (k, v))
                for name in gone:
                    inc = self._saved[name][0]
                    db.execute("DELETE FROM streams WHERE name = ? AND incarnation = ?", (name, inc))
                    db.execute("DELETE FROM shards WHERE incarnation = ?", (inc,))
                    db.execute("DELETE FROM consumers WHERE incarnation = ?", (inc,))
                for name in changed:
                    inc, doc, shards, consumers = snaps[name]
                    old = self._saved.get(name)
                    if old is not None and old[0] != inc:
                        old = None
                    if old is None or old[1] != doc:
                        db.execute("INSERT OR REPLACE INTO streams VALUES (?, ?, ?)", (name, inc, doc))
                    old_shards = {} if old is None else old[2]
                    for idx, row in shards.items():
                        if old_shards.get(idx) != row:
                            db.execute("INSERT OR REPLACE INTO shards VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                       (inc, idx, *row))
                    old_consumers = {} if old is None else old[3]
                    for cname, row in consumers.items():
                        if old_consumers.get(cname) != row:
                            db.execute("INSERT OR REPLACE INTO consumers VALUES (?, ?, ?, ?, ?, ?)",
                                       (inc, cname, *row))
                    for cname in old_consumers:
                        if cname not in consumers:
                            db.execute("DELETE FROM consumers WHERE incarnation = ? AND name = ?", (inc, cname))
                for sql, args in extra:
                    db.execute(sql, args)
            self._applied(after)
            self._saved_engine = engine_rows
            for name in gone:
                self._forget(name, self._saved.pop(name)[0])
            self._versions.update(versions)         # as of the snapshots just committed
            for name in changed:
                self._saved[name] = snaps[name]
                self._drop_expired_logs(current[name], snaps[name][2])

    def _forget(self, name: str, incarnation: int) -> None:
        """A deleted (or re-created) stream: close its files, then remove its directory."""
        for key in [k for k in self._logs if k[0] == incarnation]:
            self._logs.pop(key).close()
        self._durable_commits()
        shutil.rmtree(self.stream_dir(name, incarnation), ignore_errors=True)
        if os.path.isdir(os.path.join(self.path, "streams")):
            _fsync_path(os.path.join(self.path, "streams"))      # (else a power cut may bring it back)

    def _durable_commits(self) -> None:
        """Before files are deleted: the commit that deleted them must survive a power cut (else the database
        would bring back a stream or shard whose files are gone). "always" syncs every commit already."""
        if self.fsync != "always":
            _fsync_path(os.path.join(self.path, "meta.sqlite3-wal"))

    def _drop_expired_logs(self, s: Stream, shards: dict) -> None:
        """Delete the files of the shards that expired (not live): once the commit saying so is durable."""
        gone = [(idx, os.path.join(self.stream_dir(s.name, s.incarnation), f"{idx:012d}"))
                for idx, row in shards.items() if not row[7]]
        gone = [(idx, d) for idx, d in gone if (s.incarnation, idx) in self._logs or os.path.isdir(d)]
        if not gone:
            return
        self._durable_commits()
        for idx, d in gone:
            lg = self._logs.pop((s.incarnation, idx), None)
            if lg is not None:
                lg.delete_all()
            else:
                shutil.rmtree(d, ignore_errors=True)

    # -- hooks --------------------------------------------------------------------------------------------
    def _install(self) -> None:
        """Wrap the engine's mutating methods (commit after each) and every stream's put methods."""
        e = self.engine
        for name in MUTATING + STATE_MUTATING:
            setattr(e, name, self._committing(getattr(e, name), name == "create_stream"))
        for s in list(e._streams.values()):
            self._hook_stream(s)

    def _committing(self, method, creates: bool):
        signature = inspect.signature(method)

        def call(*args: Any, **kw: Any):
            with self._lock:
                self._usable()
                try:
                    out = method(*args, **kw)
                except BaseException:
                    self._commit_or_fail(_named_stream(signature, args, kw))   # (had it changed anything)
                    raise
                if creates:
                    self._hook_stream(out)
                    self._commit_or_fail(out.name)
                else:
                    self._commit_or_fail(_named_stream(signature, args, kw))
                return out
        call.__name__ = method.__name__
        call.__doc__ = method.__doc__
        call.__wrapped__ = method  # type: ignore[attr-defined]
        return call

    def _hook_stream(self, s: Stream) -> None:
        put_record, put_records = Stream.put_record, Stream.put_records
        lock = self._lock

        def put_one(data, partition_key, explicit_hash_key=None, sequence_number_for_ordering=None):
            with lock:
                self._usable()
                r = put_record(s, data, partition_key, explicit_hash_key, sequence_number_for_ordering)
                logs = self._write_or_fail(s, self._frame_one, s, r, partition_key, data)
            self._commit(logs)
            return r

        def put_many(records):
            with lock:
                self._usable()
                r = put_records(s, records)
                logs = self._write_or_fail(s, self._frame_many, s, r, records)
            self._commit(logs)
            return r

        put_one.__doc__ = put_record.__doc__
        put_many.__doc__ = put_records.__doc__
        s.put_record = put_one          # type: ignore[method-assign]
        s.put_records = put_many        # type: ignore[method-assign]
        self._hook_retention(s)

    def _frame_one(self, s: Stream, r, partition_key, data) -> dict:
        index = int(r.shard_id.rsplit("-", 1)[1])
        position = s.core.shard_end(index) - 1      # under the lock: this record is the newest
        ms = s.core.arrival_ms(index, position)
        return {index: [self.journal.frame(position, ms, partition_key, data), position, ms, 1]}

    def _frame_many(self, s: Stream, r, records) -> dict:
        out: dict = {}
        if len(r) != r.failed_record_count:
            self.journal.frame_batch(s.core, r, records, out)
        return out

    def _write_or_fail(self, s: Stream, frame, *args) -> list[tuple[ShardLog, int]]:
        """Frame (``frame(*args)``) and write what the core just took; if that fails, fail the directory."""
        try:
            return self._write(s, frame(*args))
        except Exception as exc:
            raise self._fail(exc) from exc
        except BaseException as exc:        # (an interrupt: refuse more all the same)
            self._fail(exc)
            raise

    def _write(self, s: Stream, out: dict) -> list[tuple[ShardLog, int]]:
        if self._versions.get(s.name) != s.topology_version:
            self.sync(s.name)           # a shard-table change made by the data plane: committed first
        if self._ticks.get(s.name) != s._next_tick:
            self._ticks[s.name] = s._next_tick      # the stream ticked (retention ran): delete emptied files
            self._retain(s)
        always = self.fsync == "always"
        logs = []
        for index, (frames, first, ms, _) in out.items():
            lg = self._log(s, index)
            n = lg.append(frames, first, ms, self.segment_bytes, self.segment_ms, always)
            logs.append((lg, n))
            self._dirty.add(lg)
        return logs

    def _commit(self, logs: list[tuple[ShardLog, int]]) -> None:
        if self.fsync == "always":
            owed = getattr(self._owed, "logs", None)
            if owed is not None:            # the caller syncs later, for many puts at once (see deferring)
                owed.extend(logs)
                return
            try:
                for lg, n in logs:
                    lg.sync(n)
            except OSError as exc:
                raise self._fail(exc) from exc

    # -- failure ------------------------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> E.InternalFailure:
        """The directory could not be written (disk full, I/O error, ...) after the core took a change: memory
        and disk may now disagree, so from now on every put and control-plane call is refused (until the
        engine is closed and reopened: recovery then restores what the directory holds) and close() leaves the
        directory as a crash would. Returns the error to raise."""
        with self._lock:
            if self.failed is None:
                self.failed = exc
                log.error("data directory %s could not be written; no further changes are taken until a restart",
                          self.path, exc_info=exc)
        return self._failure()

    def _failure(self) -> E.InternalFailure:
        return E.InternalFailure(f"Internal service failure: the data directory could not be written "
                                 f"({type(self.failed).__name__}: {self.failed}); restart the engine")

    def _usable(self) -> None:
        if self.failed is not None:
            raise self._failure()

    def _commit_or_fail(self, only: str | None) -> None:
        try:
            self.sync(only)
        except Exception as exc:
            raise self._fail(exc) from exc

    @contextlib.contextmanager
    def deferring(self):
        """Within this block (in this thread) ``fsync="always"`` puts do not fsync: the (log, append number)
        pairs they owe are collected in the yielded list, for the caller to pass to ``sync_owed`` before it
        acknowledges them. The server uses it for group commit: one fsync for every put answered meanwhile."""
        self._owed.logs = owed = []
        try:
            yield owed
        finally:
            self._owed.logs = None

    @staticmethod
    def sync_owed(owed) -> None:
        """fsync what ``deferring`` collected: each file once, up to its newest append (thread-safe)."""
        newest: dict = {}
        for lg, n in owed:
            newest[lg] = max(n, newest.get(lg, 0))
        for lg, n in newest.items():
            lg.sync(n)

    def _retain(self, s: Stream) -> None:
        """Delete the segment files retention emptied (whole files only; see ShardLog.delete_below)."""
        core = s.core
        for (inc, idx), lg in list(self._logs.items()):
            if inc == s.incarnation and idx in core.shards:
                lg.delete_below(core.shard_horizon(idx))

    def maintain(self) -> None:
        """Apply retention to the files of every stream now (also done whenever a stream's shard table or
        trim horizon moves on I/O)."""
        with self._lock:
            for s in list(self.engine._streams.values()):
                s.trim()
                self._retain(s)
            self.sync()

    def flush(self) -> None:
        """fsync SQLite's WAL if anything was committed since the last flush, then every file written since
        (in ``fsync="always"`` mode both already are), then append what that made durable to the files' tail
        indexes (what recovery need not read again), then save queue and scaler state (``save_state``)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            changes = self.db.total_changes
        if changes != self._wal_synced and self.fsync != "always":
            # synchronous=NORMAL syncs SQLite's WAL only at its checkpoints: the commits since the last flush
            # become durable here, before the records written after them (always: FULL syncs each commit)
            _fsync_path(os.path.join(self.path, "meta.sqlite3-wal"))
            self._wal_synced = changes
        for lg in dirty:
            try:
                lg.sync(lg.written)
            except OSError as exc:      # what was written may not be on disk, nor ever be: refuse more
                self._fail(exc)
                continue
            try:
                lg.checkpoint()
            except OSError:             # (only the tail index: recovery then reads more of the file)
                log.exception("writing a tail index in %s failed", self.path)
        self.save_state()

    def _every_interval(self, work, what: str) -> None:
        """A background thread: ``work()`` every fsync_interval until close; what fails is logged, the loop
        goes on (a silently dead thread would stop the fsyncs)."""
        while not self._stop.wait(self.fsync_interval):
            try:
                work()
            except Exception:                                      # pragma: no cover - kept alive, and seen
                log.exception("%s of %s failed", what, self.path)

    def close(self) -> None:
        """Flush, fsync and close everything, and release the directory's lock."""
        self._release(True)

    def abandon(self) -> None:
        """Let go of the directory the way a crash (kill -9) would: stop the background thread and close
        every descriptor, the lock's included, without flushing, sealing or writing any index. The
        directory is then what a killed process leaves behind (for tests and benchmarks of recovery);
        the engine must not be used afterwards."""
        self._release(False)

    def _release(self, clean: bool) -> None:
        if self._closed:
            return
        self._closed = True
        clean = clean and self.failed is None       # after a failed write: left as a crash leaves it
        self._stop.set()
        try:
            if self._flusher is not None:
                self._flusher.join()
            self._stop_state(clean)
            with self._lock:
                if clean:
                    self.sync()
                for lg in self._logs.values():
                    if clean:
                        lg.seal()           # fsync, close, and write the newest file's index
                    else:
                        lg.close()
        finally:
            with self._lock:
                for lg in self._logs.values():
                    lg.close()
                self.db.close()
                os.close(self._lockfd)

    # -- recovery -----------------------------------------------------------------------------------------
    def _recover(self) -> None:
        e = self.engine
        db = self.db
        rows = dict(db.execute("SELECT key, value FROM engine"))
        if "token_secret" in rows:      # iterators, NextTokens and receipt handles issued before stay valid
            e._tokens = TokenCodec(bytes.fromhex(rows["token_secret"]))
        if "incarnations" in rows:
            e._incarnations = int(rows["incarnations"])
            e.set_quotas(json.loads(rows["quotas"]))
            e.account_commitment = json.loads(rows["account_commitment"])
        now = e.clock()
        streams = list(db.execute("SELECT name, incarnation, doc FROM streams ORDER BY incarnation"))
        for name, inc, doc_text in streams:
            doc = json.loads(doc_text)
            if doc["deleting_at"] is not None and doc["deleting_at"] <= now:
                # its deletion finished while we were down: the first sync() removes its rows and files
                self._saved[name] = (inc, None, {}, {})
                continue
            s = Stream(e, name, 0, doc["mode"], doc["retention_hours"], doc["tags"], doc["max_record_kib"], inc,
                       doc["storage"])
            s.created = doc["created"]
            s._ready_at = doc["ready_at"]
            s._updating_until = doc["updating_until"]
            s.deleting_at = doc["deleting_at"]       # (re-syncs the core's I/O gate with _ready_at too)
            s.retention_override = doc["retention_override"]
            s.encryption_type, s.key_id = doc["encryption_type"], doc["key_id"]
            s.shard_level_metrics = list(doc["shard_level_metrics"])
            s.metrics.set_enhanced(s.shard_level_metrics)
            s.scaling_history, s.mode_history = list(doc["scaling_history"]), list(doc["mode_history"])
            s.policy, s.warm_target, s.warm_current = doc["policy"], doc["warm_target"], doc["warm_current"]
            s.record_distribution = doc["record_distribution"]
            infos = []
            for (idx, start, end, created, created_secs, parent, adjacent, closed_at, live) in db.execute(
                    "SELECT idx, start_hash, end_hash, created, created_secs, parent, adjacent_parent, closed_at, "
                    "live FROM shards WHERE incarnation = ? ORDER BY idx", (inc,)):
                info = ShardInfo(idx, int(start), int(end), created, created_secs, parent, adjacent, closed_at)
                infos.append((info, bool(live)))
            for info, live in infos:
                for p in (info.parent, info.adjacent_parent):
                    if p is not None and p in s._shards:
                        s._shards[p].children.append(info.index)
                s.restore_shard(info, live)
            for cname, created, ready_at, tags, policy in db.execute(
                    "SELECT name, created, ready_at, tags, policy FROM consumers WHERE incarnation = ? "
                    "ORDER BY created, name", (inc,)):
                c = StreamConsumer(s, cname, created, ready_at - created, json.loads(tags))
                c.policy = policy
                s.consumers[cname] = c
            e._streams[name] = s
            for info, live in infos:
                if live:
                    self.recovered_records += self._recover_shard(s, info.index)
            s.core.trim(s.now(), s.retention_seconds)   # what expired while we were down (or was in a kept file)
            s.metrics.rebase()          # restored records are not new I/O (the scaler's window: _recover_state)
        self._recover_state()
        self._remove_strays()
        for d in self.damage:
            log.warning("recovery of %s: %s", self.path, d)

    def _remove_strays(self) -> None:
        """Remove the directories of streams the database does not hold (a DeleteStream whose removal of the
        files a crash interrupted, or a power cut undid on disk): their deletion was committed."""
        root = os.path.join(self.path, "streams")
        keep = {os.path.basename(self.stream_dir(name, inc)) for name, (inc, *_) in self._saved.items()}
        keep |= {os.path.basename(self.stream_dir(st.name, st.incarnation)) for st in self.engine._streams.values()}
        try:
            names = os.listdir(root)
        except FileNotFoundError:
            return
        for n in names:
            if n not in keep:
                log.info("%s: removing %s (its stream was deleted)", self.path, n)
                shutil.rmtree(os.path.join(root, n), ignore_errors=True)

    def _recover_shard(self, s: Stream, index: int) -> int:
        core = s.core

        def adopt(position: int, path: str, size: int, ms, off, dlen, klen) -> None:
            core.adopt_segment(index, position, path, size, ms, off, dlen, klen)

        def restore(position: int, ms: int, data: bytes, key: str) -> None:
            core.restore_record(index, position, ms, data, key)

        return self._log(s, index).recover(adopt if core.store_payload else None, restore, self.damage,
                                           self.recovery, self.verify)

    # -- queues, channels, the on-demand scaler ---------------------------------------------------------
    def _hook_retention(self, s: Stream) -> None:
        """``stream.set_retention_seconds`` (not an AWS operation) is committed before it returns, too."""
        set_retention = Stream.set_retention_seconds

        def set_retention_seconds(seconds: float | None) -> None:
            with self._lock:
                set_retention(s, seconds)
                self.sync(s.name)

        set_retention_seconds.__doc__ = set_retention.__doc__
        s.set_retention_seconds = set_retention_seconds     # type: ignore[method-assign]

    @staticmethod
    def _scaler_signature(sc) -> tuple:
        """What changes whenever the scaler's window state does (cheap: no copy of its arrays)."""
        return (sc, sc.since, sc.next_eval, sc.window_start, sc.next_release, len(sc.events), int(sc._window.sum()))

    @staticmethod
    def _peaks_changes(inc: int, sc, saved: tuple | None, stmts: list) -> tuple:
        """The rows of scaler_peaks to write: the minute peaks are a 30-day deque appended at the right and
        trimmed at the left, so only its newest minutes and the trimmed ones change (O(1) a save, not the
        43,200 rows of a month). Returns what is saved afterwards: (scaler, first minute, last (minute, rate))."""
        peaks = sc._minute_peaks
        first = peaks[0][0] if peaks else None
        last = peaks[-1] if peaks else None
        if saved is not None and saved[0] is sc and saved[1:] == (first, last):
            return saved
        if saved is None or saved[0] is not sc or saved[2] is None:
            stmts.append(("DELETE FROM scaler_peaks WHERE incarnation = ?", (inc,)))
            stmts += [("INSERT INTO scaler_peaks VALUES (?, ?, ?)", (inc, m, r)) for m, r in peaks]
        else:
            if first is None or first > saved[1]:
                stmts.append(("DELETE FROM scaler_peaks WHERE incarnation = ? AND minute < ?",
                              (inc, first if first is not None else saved[2][0] + 1)))
            newest = saved[2][0]
            for m, r in reversed(peaks):
                if m < newest:
                    break
                stmts.append(("INSERT OR REPLACE INTO scaler_peaks VALUES (?, ?, ?)", (inc, m, r)))
        return sc, first, last

    def _state_changes(self) -> tuple[list[tuple[str, tuple]], list[tuple[dict, Any, Any]]]:
        """The statements that bring the queue and channel configurations, channel progress and scaler state in
        the database up to date, and what to note as saved once they commit (see _applied). Under self._lock."""
        e = self.engine
        stmts: list[tuple[str, tuple]] = []
        after: list[tuple[dict, Any, Any]] = []
        serials = str(e._queue_serials)
        if self._saved_state_engine.get("queue_serials") != serials:
            stmts.append(("INSERT OR REPLACE INTO engine VALUES (?, ?)", ("queue_serials", serials)))
            after.append((self._saved_state_engine, "queue_serials", serials))
        queues = dict(e._queues)
        for arn, q in queues.items():
            doc = json.dumps(q.config_doc(), sort_keys=True)
            old = self._saved_queues.get(arn)
            if old == doc:
                continue
            if old is None:             # a new queue: its delivery state too (the cursors it was created with)
                version, blob = q.export_state()
                stmts.append(("INSERT OR REPLACE INTO queues VALUES (?, ?, ?, ?)",
                              (arn, q.stream.incarnation, doc, blob)))
                after.append((self._queue_versions, arn, version))
            else:
                stmts.append(("UPDATE queues SET doc = ? WHERE arn = ?", (doc, arn)))
            after.append((self._saved_queues, arn, doc))
        for arn in self._saved_queues:
            if arn not in queues:
                stmts.append(("DELETE FROM queues WHERE arn = ?", (arn,)))
                after += [(self._saved_queues, arn, None), (self._queue_versions, arn, None)]
        channels = dict(e._channels._channels)
        for arn, c in channels.items():
            # never wait under self._lock for a channel busy delivering (an upload can take seconds: puts and
            # the fsync thread would wait with it); its progress is committed by the on_change after that pump
            if not c._lock.acquire(blocking=False):
                if arn not in self._saved_channels:
                    c._lock.acquire()       # (a new channel's configuration is committed before its call returns)
                else:
                    continue
            try:
                doc = json.dumps(c.state_doc(), sort_keys=True)
                first = self._channel_objects.get(arn, 0)
                new_objects = c.objects[first:]
            finally:
                c._lock.release()
            if self._saved_channels.get(arn) != doc:
                stmts.append(("INSERT OR REPLACE INTO channels VALUES (?, ?, ?)", (arn, c.stream.incarnation, doc)))
                after.append((self._saved_channels, arn, doc))
            if new_objects:
                stmts += [("INSERT OR REPLACE INTO channel_objects VALUES (?, ?, ?, ?)", (arn, first + i, b, k))
                          for i, (b, k) in enumerate(new_objects)]
                after.append((self._channel_objects, arn, first + len(new_objects)))
        for arn in self._saved_channels:
            if arn not in channels:
                stmts += [("DELETE FROM channels WHERE arn = ?", (arn,)),
                          ("DELETE FROM channel_objects WHERE arn = ?", (arn,))]
                after += [(self._saved_channels, arn, None), (self._channel_objects, arn, None)]
        scaled = set()
        for s in list(e._streams.values()):
            sc = s.scaler
            if sc is None:
                continue
            scaled.add(s.incarnation)
            with s._lock:               # the stream's tick (observe, evaluate) holds it
                saved = self._scaler_peaks.get(s.incarnation)
                now_peaks = self._peaks_changes(s.incarnation, sc, saved, stmts)
                if now_peaks is not saved:
                    after.append((self._scaler_peaks, s.incarnation, now_peaks))
                sig = self._scaler_signature(sc)
                if self._scaler_sigs.get(s.incarnation) == sig:
                    continue
                doc = json.dumps({"since": sc.since, "next_eval": sc.next_eval, "window_start": sc.window_start,
                                  "next_release": sc.next_release, "events": sc.events})
                window = sc._window.astype("<i8").tobytes()
            stmts.append(("INSERT OR REPLACE INTO scalers VALUES (?, ?, ?)", (s.incarnation, doc, window)))
            after.append((self._scaler_sigs, s.incarnation, sig))
        for inc in set(self._scaler_sigs) | set(self._scaler_peaks):
            if inc not in scaled:
                stmts += [("DELETE FROM scalers WHERE incarnation = ?", (inc,)),
                          ("DELETE FROM scaler_peaks WHERE incarnation = ?", (inc,))]
                after += [(self._scaler_sigs, inc, None), (self._scaler_peaks, inc, None)]
        return stmts, after

    @staticmethod
    def _applied(after: list[tuple[dict, Any, Any]]) -> None:
        for table, key, value in after:
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value

    @contextlib.contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK if the block raises); yields the connection."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _commit_state(self, blobs: Sequence[tuple[str, int, bytes]] = (), final: bool = False) -> None:
        """One transaction: what _state_changes finds, and the queue delivery states in ``blobs`` ((ARN,
        version, state) from Queue.export_state) that are newer than the saved ones. The channels call it after
        a pump that delivered, activated or failed one (Channels.on_change)."""
        with self._lock:
            if self._closed and not final:
                return
            stmts, after = self._state_changes()
            for arn, version, blob in blobs:
                saved = self._queue_versions.get(arn)
                if saved is not None and version > saved:
                    stmts.append(("UPDATE queues SET state = ? WHERE arn = ?", (blob, arn)))
                    after.append((self._queue_versions, arn, version))
            if not stmts:
                return
            with self._transaction() as db:
                for sql, args in stmts:
                    db.execute(sql, args)
            self._applied(after)

    def _on_channel_change(self) -> None:
        try:
            self._commit_state()
        except Exception:                                          # pragma: no cover - disk trouble
            log.exception("saving channel progress in %s failed (retried at the next save)", self.path)

    def save_state(self, final: bool = False) -> None:
        """Snapshot into the database every queue whose delivery state changed since its last save (one blob per
        queue, packed off the engine's lock), with the scalers' state and anything else _state_changes finds.
        Called by flush() (the fsync thread, every ``fsync_interval``), by the state thread in the "never" mode
        (same period), and by close(). Errors are logged (the next save retries) unless ``final``."""
        if self._closed and not final:
            return
        with self._lock:                # a split or merge made by a tick since: its shard table goes with it
            for st in list(self.engine._streams.values()):
                if self._versions.get(st.name) != st.topology_version:
                    self.sync(st.name)
        with self._state_lock:
            blobs = []
            for q in list(self.engine._queues.values()):
                saved = self._queue_versions.get(q.arn)
                if saved is None or saved == q.version:
                    continue                # not committed yet (sync does it), or unchanged
                version, blob = q.export_state()
                blobs.append((q.arn, version, blob))
            try:
                self._commit_state(blobs, final)
            except sqlite3.Error:
                if final:
                    raise
                log.exception("saving queue and scaler state in %s failed (retried at the next save)", self.path)

    def _start_state(self) -> None:
        """After recovery: channels report progress, restored channels deliver again (a VirtualClock's callback,
        or the channels' thread on another clock, which at once delivers the windows that ended while the
        engine was down), and in "never" mode a light thread saves queue state every fsync_interval (in the
        others the fsync thread's flush does)."""
        self._stater: threading.Thread | None = None
        chans = self.engine._channels
        chans.on_change = self._on_channel_change
        if chans._channels:
            chans._start_driver()
        if self._flusher is None:       # ("never": the fsync thread, which saves it otherwise, does not run)
            self._stater = threading.Thread(target=self._every_interval, args=(self.save_state, "saving state"),
                                            name="fastkin-state", daemon=True)
            self._stater.start()

    def _stop_state(self, save: bool) -> None:
        """close(): stop the state thread and channel delivery, then the last save (abandon: none)."""
        if self._stater is not None:
            self._stater.join()
        self.engine._channels.stop()
        self.engine._channels.on_change = None
        if save:
            self.save_state(final=True)

    def _recover_state(self) -> None:
        """Queues (configuration and delivery state), channels (configuration, progress, the objects they wrote)
        and the on-demand scalers' windows, once the streams and their records are back."""
        e = self.engine
        db = self.db
        self._state_lock = threading.Lock()
        self._stater = None
        self._saved_state_engine: dict[str, str] = {}
        self._saved_queues: dict[str, str] = {}         # queue ARN -> its config doc as saved
        self._queue_versions: dict[str, int] = {}       # queue ARN -> Queue.version of the saved state
        self._saved_channels: dict[str, str] = {}       # channel ARN -> its doc as saved
        self._channel_objects: dict[str, int] = {}      # channel ARN -> objects saved
        self._scaler_sigs: dict[int, tuple] = {}        # incarnation -> _scaler_signature as saved
        self._scaler_peaks: dict[int, tuple] = {}       # incarnation -> what _peaks_changes saved
        for (serials,) in db.execute("SELECT value FROM engine WHERE key = 'queue_serials'"):
            e._queue_serials = int(serials)
            self._saved_state_engine["queue_serials"] = serials
        now = e.clock()
        streams = {(s.name, s.incarnation): s for s in e._streams.values()}
        by_inc = {s.incarnation: s for s in e._streams.values()}
        for arn, inc, doc_text, blob in list(db.execute("SELECT arn, incarnation, doc, state FROM queues")):
            self._saved_queues[arn] = doc_text          # (what is not restored is deleted by the first sync)
            self._queue_versions[arn] = -1
            doc = json.loads(doc_text)
            s = streams.get((doc["stream"], inc))
            if s is None or (doc["deleting_at"] is not None and doc["deleting_at"] <= now):
                continue
            q = Queue.from_doc(e, s, doc)
            q.import_state(blob)
            if q.deleting_at is not None:
                q.close()
            e._queues[q.arn] = q
            s.queues[q.arn] = q
            self._queue_versions[arn] = q.version
        objects: dict[str, list] = defaultdict(list)
        for arn, bucket, key in db.execute("SELECT arn, bucket, key FROM channel_objects ORDER BY arn, n"):
            objects[arn].append((bucket, key))
        for arn, inc, doc_text in list(db.execute("SELECT arn, incarnation, doc FROM channels")):
            self._saved_channels[arn] = doc_text
            self._channel_objects[arn] = len(objects[arn])
            doc = json.loads(doc_text)
            s = streams.get((doc["stream"], inc))
            if s is None or (doc["deleting_at"] is not None and doc["deleting_at"] <= now):
                continue
            e._channels.restore(s, doc, objects[arn])
        for inc, doc_text, window in list(db.execute("SELECT incarnation, doc, window FROM scalers")):
            s = by_inc.get(inc)
            sc = None if s is None else s.scaler
            if sc is None:
                self._scaler_sigs[inc] = ()             # deleted by the first sync
                continue
            doc = json.loads(doc_text)
            sc.since, sc.next_eval = doc["since"], doc["next_eval"]
            sc.window_start, sc.next_release = doc["window_start"], doc["next_release"]
            sc.events = [tuple(x) for x in doc["events"]]
            sc._window = np.frombuffer(window, dtype="<i8").astype(np.int64)
            sc._minute_peaks = deque(db.execute(
                "SELECT minute, rate FROM scaler_peaks WHERE incarnation = ? ORDER BY minute", (inc,)))
            peaks = sc._minute_peaks
            self._scaler_sigs[inc] = self._scaler_signature(sc)
            self._scaler_peaks[inc] = (sc, peaks[0][0] if peaks else None, peaks[-1] if peaks else None)

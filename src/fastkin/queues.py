"""Kinesis queues: at-least-once delivery of one stream's records with visibility timeouts and dead letters.

A ``Queue`` never copies a payload: the records stay in the stream's shard logs and are read from there
at every delivery. The queue keeps
- ``cursors``: per shard, the log position of the next record it has never delivered;
- ``_entries``: per delivered and not yet acknowledged record (key ``shard << 44 | position``) a small
  list ``[state, deadline, receive count, first receive time, delivery number]``; a record delivered and
  acknowledged has no entry, and one never delivered is only below-or-above a cursor;
- ``_heap``: (visibility deadline, key, delivery) of in-flight records, a binary heap; stale items
  (acknowledged, re-hidden, received again) are skipped when they surface;
- ``_ready`` / ``_dead_ready``: keys of records whose visibility ran out, waiting for redelivery through
  the normal / the dead-letter receive path (a key is checked against its entry's state when popped).

A receipt handle names (queue serial, key, delivery number, kind); it is current while the record's entry
still carries that delivery number: every receive issues a new number, and dead-lettering or restoring
a record ends the current one. Timeouts are applied lazily, at the start of every queue operation, in
deadline order, so each call sees the same state whatever happened before it.

Thread safety: every public method takes the queue's lock; waiting (long polling) happens outside it.

NOTE: the per-record work stays in Python: receive + acknowledge runs at ~224,000 records/s in-process on the
compiled core (bench/bench_queues.py, goal 200,000), ~290 B per in-flight record. Of a 100,000-record drain
(1.36 s under cProfile) ~0.5 s is sealing/opening receipt handles (hashlib BLAKE2b, base64, struct), ~0.5 s the
delivery loop, ~0.3 s the acknowledgement loop, < 5 % the core's reads; a Cython port would still call hashlib
per handle (~2x at best), so it was not worth a second implementation to keep in step.
"""
from __future__ import annotations

import datetime as _dt
import heapq
import math
import struct
import threading
import time
from collections import deque

import numpy as np

from . import errors as E
from .clock import VirtualClock

VISIBILITY_DEFAULT = 30
VISIBILITY_MAX = 43_200
MAX_RECEIVE_DEFAULT = 6
MAX_RECEIVE_MAX = 1000
WAIT_DEFAULT = 9
WAIT_MAX = 20
RECEIVE_MAX = 10
ENTRIES_MAX = 10
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")

# entry states
_IN_FLIGHT = 0          # received through ReceiveQueueRecords, hidden until its deadline
_VISIBLE = 1            # its timeout ran out: waiting in _ready for redelivery
_DEAD = 2               # a dead-letter record waiting in _dead_ready
_DEAD_IN_FLIGHT = 3     # a dead-letter record received through ReceiveDeadLetterQueueRecords

_KEY_BITS = 44
_POS_MASK = (1 << _KEY_BITS) - 1
NORMAL, DEAD_LETTER = 0, 1
_STATE = struct.Struct("<4sqqqqqq")      # magic, deliveries, round robin, cursors, entries, ready, dead ready
_STATE_MAGIC = b"FKQ1"
_UTC = _dt.timezone.utc
_fromts = _dt.datetime.fromtimestamp
_heappush = heapq.heappush
_heappop = heapq.heappop


def _int_in(v, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


class Queue:
    """One queue on one stream. Obtain it from ``engine.queue(queue_arn)`` (``engine.create_queue`` makes one)."""

    def __init__(self, engine, stream, name: str, queue_id: str, serial: int, now: float, start: dict,
                 visibility: int, dead_letter: str, max_receive: int | None, tags: dict) -> None:
        self.engine = engine
        self.stream = stream
        self.name = name
        self.id = queue_id
        self.serial = serial
        self.arn = f"arn:aws:kinesis:{engine.region}:{engine.account_id}:queue/{queue_id}"
        self.created = now
        self.ready_at = now + engine.create_latency
        self.updating_until = now
        self.deleting_at: float | None = None
        self.tags = dict(tags)
        self.policy: str | None = None
        self.visibility = visibility
        self.dead_letter = dead_letter              # BUILT_IN | NONE
        self.max_receive = max_receive              # None when dead_letter == NONE
        self.start_type = start["Type"]
        self.start_given: float | None = start.get("Timestamp")
        self.start_effective = self._effective_start(now)
        self.cursors: dict[int, int] = {}
        self._entries: dict[int, list] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._ready: deque[int] = deque()
        self._dead_ready: deque[int] = deque()
        self.in_flight = 0
        self._deliveries = 0
        self._rr = 0
        self.version = 0                        # bumped by every change of the delivery state (fastkin.durable)
        self._topology = -1                     # stream.topology_version that _indices was built at
        self._indices: list[int] = []           # the core's shard indices, sorted
        self._lock = threading.Lock()
        self._receipt = engine._tokens.receipt
        self._open_receipt = engine._tokens.open_receipt
        core = stream.core
        for index in list(core.shards):
            self.cursors[index] = self._start_position(core, index)

    # -- creation --------------------------------------------------------------------------------
    def _effective_start(self, now: float) -> float:
        earliest = max(self.stream.created, now - self.stream.retention_seconds)
        if self.start_type == "LATEST":
            return now
        if self.start_type == "TRIM_HORIZON":
            return earliest
        return max(float(self.start_given or 0.0), earliest)

    def _start_position(self, core, index: int) -> int:
        if self.start_type == "LATEST":
            return core.shard_end(index)
        if self.start_type == "TRIM_HORIZON":
            return core.shard_horizon(index)
        return core.seek_timestamp(index, math.floor(float(self.start_given or 0.0) * 1000.0))

    # -- state -----------------------------------------------------------------------------------
    def status_at(self, now: float) -> str:
        if self.deleting_at is not None:
            return "DELETING"
        if now < self.ready_at:
            return "CREATING"
        return "UPDATING" if now < self.updating_until else "ACTIVE"

    def gone_at(self, now: float) -> bool:
        return self.deleting_at is not None and now >= self.deleting_at

    def attributes(self) -> dict:
        dlc: dict = {"TargetType": self.dead_letter}
        if self.max_receive is not None:
            dlc["MaxReceiveCount"] = self.max_receive
        return {"VisibilityTimeoutSeconds": self.visibility, "DeadLetterConfiguration": dlc}

    def description(self, now: float) -> dict:
        status = self.status_at(now)
        pos: dict = {"Type": self.start_type}
        if status != "CREATING":
            pos["Timestamp"] = _fromts(self.start_effective, _UTC)
        elif self.start_type == "AT_TIMESTAMP":
            pos["Timestamp"] = _fromts(float(self.start_given or 0.0), _UTC)
        return {"QueueName": self.name, "QueueARN": self.arn, "QueueStatus": status,
                "QueueCreationTimestamp": _fromts(self.created, _UTC),
                "StreamConfigurationList": [{"StreamARN": self.stream.arn, "StartingPosition": pos}],
                "QueueAttributes": self.attributes()}

    def summary(self, now: float) -> dict:
        return {"QueueName": self.name, "QueueARN": self.arn, "QueueStatus": self.status_at(now),
                "QueueCreationTimestamp": _fromts(self.created, _UTC),
                "Streams": [{"StreamARN": self.stream.arn,
                             "StreamCreationTimestamp": _fromts(self.stream.created, _UTC)}]}

    def close(self) -> None:
        """DeleteQueue: every handle dies and no record is delivered again."""
        with self._lock:
            self._entries.clear()
            self._heap.clear()
            self._ready.clear()
            self._dead_ready.clear()
            self.in_flight = 0
            self.version += 1

    def counts(self) -> dict:
        """Introspection (not an AWS operation): records in each delivery state."""
        with self._lock:
            self._expire(self.stream.now())
            states = [e[0] for e in self._entries.values()]
            return {"in_flight": states.count(_IN_FLIGHT) + states.count(_DEAD_IN_FLIGHT),
                    "waiting_redelivery": states.count(_VISIBLE), "dead_letter": states.count(_DEAD)
                    + states.count(_DEAD_IN_FLIGHT), "tracked": len(states)}

    # -- the data plane --------------------------------------------------------------------------
    def _usable(self, now: float) -> None:
        st = self.status_at(now)
        if st == "DELETING":
            raise E.ResourceNotFoundException(f"Queue {self.arn} under account {self.engine.account_id} not found.")
        if st == "CREATING":
            raise E.InvalidArgumentException(
                f"Queue {self.arn} under account {self.engine.account_id} is not ACTIVE, instead in state CREATING.")

    def _expire(self, now: float) -> None:
        """Apply every visibility timeout that ran out by ``now``, in deadline order."""
        heap = self._heap
        entries = self._entries
        if heap and heap[0][0] <= now:
            self.version += 1
        while heap and heap[0][0] <= now:
            deadline, key, d = _heappop(heap)
            e = entries.get(key)
            if e is None or e[4] != d or e[1] != deadline:
                continue                              # acknowledged, re-hidden or received again since
            st = e[0]
            if st == _IN_FLIGHT:
                self.in_flight -= 1
                if self.max_receive is not None and e[2] >= self.max_receive:
                    e[0] = _DEAD
                    e[4] = 0                          # dead-lettering ends the normal handle
                    self._dead_ready.append(key)
                else:
                    e[0] = _VISIBLE
                    self._ready.append(key)
            elif st == _DEAD_IN_FLIGHT:
                self.in_flight -= 1
                e[0] = _DEAD
                self._dead_ready.append(key)

    def _compact(self) -> None:
        """Rebuild the heap from the in-flight entries: acknowledged records leave their heap items behind
        (removal from the middle of a heap is O(n)), so without this a long visibility timeout at a high
        rate would keep millions of dead items. Called when the heap is over twice the in-flight count, so
        the rebuild is amortised O(1) per delivery."""
        live = [(e[1], key, e[4]) for key, e in self._entries.items() if e[0] == _IN_FLIGHT or e[0] == _DEAD_IN_FLIGHT]
        heapq.heapify(live)
        self._heap = live

    def receive(self, limit: int = RECEIVE_MAX, wait_time_seconds: int = WAIT_DEFAULT,
                visibility_timeout_seconds: int | None = None, *, dead_letter: bool = False,
                _wait: bool = True) -> list[dict]:
        """ReceiveQueueRecords (or ReceiveDeadLetterQueueRecords with ``dead_letter=True``): up to ``limit``
        QueueRecord dicts. Long polling: with nothing visible it waits up to ``wait_time_seconds`` of engine
        time and returns as soon as a record is visible. On a VirtualClock it advances the clock (to the next
        visibility deadline, or to the end of the wait); on any other clock it sleeps in short steps.

        ``_wait=False`` (the HTTP server's contract) never sleeps: it answers what is visible now (on a
        VirtualClock it still advances the clock, which costs no real time). The server then re-polls an empty
        answer from its event loop (``await asyncio.sleep`` a few ms) until records come or the engine clock
        passes the deadline that fastkin.wire.service.Service.long_poll_deadline gave before the first call."""
        if not _int_in(limit, 1, RECEIVE_MAX):
            raise E.validation_error(limit, "limit", f"have value between 1 and {RECEIVE_MAX}")
        if not _int_in(wait_time_seconds, 1, WAIT_MAX):
            raise E.validation_error(wait_time_seconds, "waitTimeSeconds", f"have value between 1 and {WAIT_MAX}")
        if visibility_timeout_seconds is not None and not _int_in(visibility_timeout_seconds, 0, VISIBILITY_MAX):
            raise E.validation_error(visibility_timeout_seconds, "visibilityTimeoutSeconds",
                                     f"have value between 0 and {VISIBILITY_MAX}")
        clock = self.engine.clock
        virtual = isinstance(clock, VirtualClock)
        start = self.stream.now()
        deadline = start + wait_time_seconds
        real_end = time.monotonic() + wait_time_seconds      # also bounds a frozen clock (freezegun)
        pause = 0.001
        while True:
            out, next_deadline = self._receive_now(limit, visibility_timeout_seconds, dead_letter)
            if out:
                return out
            now = self.stream.now()
            if now >= deadline:
                return out
            if virtual:
                step = (deadline if next_deadline is None else min(deadline, next_deadline)) - now
                clock.advance(max(step, 0.0))
                continue
            if not _wait or time.monotonic() >= real_end:
                return out
            time.sleep(min(pause, max(deadline - now, 0.0)))
            pause = min(pause * 2, 0.02)

    def _receive_now(self, limit: int, vt: int | None, dead_letter: bool) -> tuple[list[dict], float | None]:
        """One non-waiting receive: (records, the earliest pending visibility deadline or None)."""
        s = self.stream
        now = s._check_io()
        self._usable(now)
        if vt is None:
            vt = self.visibility
        with self._lock:
            self._expire(now)
            room = self.engine.limits.queue_in_flight_max - self.in_flight
            if room <= 0:
                raise E.ThrottlingException(
                    f"Queue {self.arn} has {self.in_flight} records in flight, the maximum. Acknowledge records or "
                    "let their visibility timeout run out before receiving more.")
            want = min(limit, room)
            if len(self._heap) > 2 * self.in_flight + 4096:
                self._compact()
            out: list[dict] = []
            deadline = now + vt
            waiting = len(self._ready) + len(self._dead_ready)
            if dead_letter:
                self._deliver_waiting(self._dead_ready, _DEAD, _DEAD_IN_FLIGHT, DEAD_LETTER, want, now, deadline, out)
            else:
                self._deliver_waiting(self._ready, _VISIBLE, _IN_FLIGHT, NORMAL, want, now, deadline, out)
                if len(out) < want:
                    self._deliver_new(want - len(out), now, deadline, out)
            if out or waiting != len(self._ready) + len(self._dead_ready):
                self.version += 1
            return out, (self._heap[0][0] if self._heap else None)

    def _record_dict(self, r, handle: str, e: list, stamps: dict) -> dict:
        t = r.approximate_arrival_timestamp
        at = stamps.get(t)
        if at is None:
            at = stamps[t] = _fromts(t, _UTC)
        first = e[3]
        ft = stamps.get(first)
        if ft is None:
            ft = stamps[first] = _fromts(first, _UTC)
        d = {"ReceiptHandle": handle, "RecordId": r.sequence_number, "Data": r.data,
             "ApproximateArrivalTimestamp": at, "FirstReceiveTimestamp": ft, "ReceiveCount": e[2]}
        if r.partition_key:
            d["PartitionKey"] = r.partition_key
        return d

    def _deliver_new(self, want: int, now: float, deadline: float, out: list) -> None:
        """Records never delivered: read from the shard cursors, one shard after another from a rotating start."""
        s = self.stream
        core = s.core
        cursors = self.cursors
        if self._topology != s.topology_version:        # the shard set changed: forget dropped shards
            shards = core.shards
            self._indices = sorted(shards)
            for gone in [i for i in cursors if i not in shards]:
                del cursors[gone]
            self._topology = s.topology_version
        indices = self._indices
        n = len(indices)
        if n == 0:
            return
        entries = self._entries
        heap = self._heap
        receipt = self._receipt
        serial = self.serial
        d = self._deliveries
        stamps: dict = {}
        first = _fromts(now, _UTC)
        start = self._rr % n
        self._rr += 1
        for k in range(n):
            index = indices[(start + k) % n]
            pos = cursors.get(index)
            if pos is None:
                pos = cursors[index] = core.shard_horizon(index)   # a shard made after the queue: all of it
            if pos >= core.shard_end(index):
                continue
            records, nxt, _ = core.get_records(index, pos, want, now, False)
            cursors[index] = nxt
            key = (index << _KEY_BITS) | (nxt - len(records))
            for r in records:
                d += 1
                entries[key] = [_IN_FLIGHT, deadline, 1, now, d]
                _heappush(heap, (deadline, key, d))
                t = r.approximate_arrival_timestamp
                at = stamps.get(t)
                if at is None:
                    at = stamps[t] = _fromts(t, _UTC)
                rec = {"ReceiptHandle": receipt(serial, key, d, NORMAL), "RecordId": r.sequence_number,
                       "Data": r.data, "ApproximateArrivalTimestamp": at, "FirstReceiveTimestamp": first,
                       "ReceiveCount": 1}
                pk = r.partition_key
                if pk:
                    rec["PartitionKey"] = pk
                out.append(rec)
                key += 1
            self.in_flight += len(records)
            want -= len(records)
            if want <= 0:
                break
        self._deliveries = d

    def _deliver_waiting(self, ready: deque, waiting: int, to: int, kind: int, want: int, now: float,
                         deadline: float, out: list) -> None:
        """Redeliveries: records whose visibility ran out (or dead-letter records), oldest timeout first."""
        entries = self._entries
        core = self.stream.core
        stamps: dict = {}
        while ready and want > 0:
            key = ready.popleft()
            e = entries.get(key)
            if e is None or e[0] != waiting:
                continue
            if waiting == _VISIBLE and self.max_receive is not None and e[2] >= self.max_receive:
                e[0] = _DEAD            # MaxReceiveCount lowered by UpdateQueue while it waited
                e[4] = 0
                self._dead_ready.append(key)
                continue
            r = self._read(core, key, now)
            if r is None:
                del entries[key]        # past the stream's retention: gone for good
                continue
            d = self._deliveries = self._deliveries + 1
            e[0], e[1], e[4] = to, deadline, d
            e[2] += 1
            _heappush(self._heap, (deadline, key, d))
            self.in_flight += 1
            out.append(self._record_dict(r, self._receipt(self.serial, key, d, kind), e, stamps))
            want -= 1

    @staticmethod
    def _read(core, key: int, now: float):
        """The stream record a key names, or None when retention (or a dropped shard) took it."""
        index, pos = key >> _KEY_BITS, key & _POS_MASK
        if index not in core.shards or pos < core.shard_horizon(index):
            return None
        records, _, _ = core.get_records(index, pos, 1, now, False)
        return records[0] if records else None

    # -- per-entry operations ----------------------------------------------------------------------
    def _entries_of(self, entries, op: str) -> list:
        if not isinstance(entries, (list, tuple)) or not 1 <= len(entries) <= ENTRIES_MAX:
            raise E.validation_error(entries, "entries", f"have length between 1 and {ENTRIES_MAX}")
        for i, x in enumerate(entries):
            if not isinstance(x, dict) or not isinstance(x.get("ReceiptHandle"), str):
                raise E.ValidationException(
                    f"1 validation error detected: Value null at 'entries.{i + 1}.member.receiptHandle' failed to "
                    "satisfy constraint: Member must not be null")
            if op == "visibility":
                vt = x.get("VisibilityTimeoutSeconds")
                if not _int_in(vt, 0, VISIBILITY_MAX):
                    raise E.validation_error(vt, f"entries.{i + 1}.member.visibilityTimeoutSeconds",
                                             f"have value between 0 and {VISIBILITY_MAX}")
        return list(entries)

    def _per_entry(self, entries, kind: int, op: str, act) -> dict:
        entries = self._entries_of(entries, op)
        s = self.stream
        now = s._check_io()
        self._usable(now)
        ok: list[dict] = []
        failed: list[dict] = []
        core = s.core
        horizons: dict[int, int] = {}       # shard -> trim horizon, looked up once per request
        open_receipt = self._open_receipt
        table = self._entries
        with self._lock:
            self._expire(now)
            for x in entries:
                h = x["ReceiptHandle"]
                opened = open_receipt(h)
                if opened is None:
                    failed.append({"ReceiptHandle": h, "ErrorCode": "InvalidArgumentException",
                                   "ErrorMessage": "The receipt handle is not valid."})
                    continue
                _, serial, key, d, k = opened
                e = table.get(key)
                if serial != self.serial or k != kind or e is None or e[4] != d:
                    failed.append(self._stale(h, serial, k, kind))
                    continue
                index = key >> _KEY_BITS
                horizon = horizons.get(index)
                if horizon is None:
                    horizon = horizons[index] = core.shard_horizon(index) if index in core.shards else _POS_MASK + 1
                if key & _POS_MASK < horizon:
                    self._forget(key, e)
                    failed.append({"ReceiptHandle": h, "ErrorCode": "ResourceNotFoundException",
                                   "ErrorMessage": "The record of the receipt handle is past the stream's retention "
                                   "period."})
                    continue
                act(key, e, x, now)
                ok.append({"ReceiptHandle": h})
            if ok or failed:
                self.version += 1           # (a Failed entry past retention forgets its record)
        return {"Successful": ok, "Failed": failed}

    def _stale(self, h: str, serial: int, k: int, kind: int) -> dict:
        """The Failed entry of a sealed handle that is not a current one of this queue and operation family."""
        if serial != self.serial:
            code, msg = "InvalidArgumentException", f"The receipt handle was not issued by queue {self.arn}."
        elif k != kind:
            other = ("ReceiveQueueRecords", "AcknowledgeQueueRecords, UpdateQueueRecordsVisibility") if k == NORMAL \
                else ("ReceiveDeadLetterQueueRecords", "the dead-letter operations")
            code = "InvalidArgumentException"
            msg = f"The receipt handle was issued by {other[0]}: use it with {other[1]}."
        else:
            code, msg = ("ResourceNotFoundException",
                         "The receipt handle is no longer current: its record was acknowledged, received again, "
                         "restored or moved to the dead-letter records since it was issued.")
        return {"ReceiptHandle": h, "ErrorCode": code, "ErrorMessage": msg}

    def _forget(self, key: int, e: list) -> None:
        if e[0] in (_IN_FLIGHT, _DEAD_IN_FLIGHT):
            self.in_flight -= 1
        del self._entries[key]

    def _ack(self, key: int, e: list, x: dict, now: float) -> None:
        if e[0] in (_IN_FLIGHT, _DEAD_IN_FLIGHT):
            self.in_flight -= 1
        del self._entries[key]

    def _set_visibility(self, key: int, e: list, x: dict, now: float) -> None:
        deadline = now + x["VisibilityTimeoutSeconds"]
        if e[0] == _VISIBLE:
            e[0] = _IN_FLIGHT
            self.in_flight += 1
        elif e[0] == _DEAD:
            e[0] = _DEAD_IN_FLIGHT
            self.in_flight += 1
        e[1] = deadline
        _heappush(self._heap, (deadline, key, e[4]))

    def _restore(self, key: int, e: list, x: dict, now: float) -> None:
        if e[0] == _DEAD_IN_FLIGHT:
            self.in_flight -= 1
        e[0], e[2], e[4] = _VISIBLE, 0, 0           # the receive count starts again; the handle ends
        self._ready.append(key)

    def acknowledge(self, entries) -> dict:
        """AcknowledgeQueueRecords: ``entries`` is [{"ReceiptHandle": ...}, ...] (1 to 10)."""
        return self._per_entry(entries, NORMAL, "ack", self._ack)

    def update_visibility(self, entries) -> dict:
        """UpdateQueueRecordsVisibility: [{"ReceiptHandle", "VisibilityTimeoutSeconds"}, ...]; 0 = visible now."""
        return self._per_entry(entries, NORMAL, "visibility", self._set_visibility)

    def acknowledge_dead_letter(self, entries) -> dict:
        """AcknowledgeDeadLetterQueueRecords: discard dead-letter records (for this queue only)."""
        return self._per_entry(entries, DEAD_LETTER, "ack", self._ack)

    def update_dead_letter_visibility(self, entries) -> dict:
        return self._per_entry(entries, DEAD_LETTER, "visibility", self._set_visibility)

    def restore_dead_letter(self, entries) -> dict:
        """RestoreDeadLetterQueueRecords: back to the normal receive path with a receive count of 0."""
        return self._per_entry(entries, DEAD_LETTER, "restore", self._restore)

    # -- persistence (fastkin.durable) ---------------------------------------------------------
    def config_doc(self) -> dict:
        """Everything DescribeQueue/ListQueues/tags/policies show, for a data directory (JSON-able)."""
        return {"name": self.name, "id": self.id, "serial": self.serial, "stream": self.stream.name,
                "incarnation": self.stream.incarnation, "created": self.created, "ready_at": self.ready_at,
                "updating_until": self.updating_until, "deleting_at": self.deleting_at, "tags": self.tags,
                "policy": self.policy, "visibility": self.visibility, "dead_letter": self.dead_letter,
                "max_receive": self.max_receive, "start_type": self.start_type, "start_given": self.start_given,
                "start_effective": self.start_effective}

    @classmethod
    def from_doc(cls, engine, stream, doc: dict) -> Queue:
        """The queue ``config_doc`` describes, with the delivery state of a new one (see ``import_state``)."""
        start = {"Type": doc["start_type"]}
        if doc["start_given"] is not None:
            start["Timestamp"] = doc["start_given"]
        q = cls(engine, stream, doc["name"], doc["id"], doc["serial"], doc["created"], start, doc["visibility"],
                doc["dead_letter"], doc["max_receive"], doc["tags"])
        q.ready_at, q.updating_until, q.deleting_at = doc["ready_at"], doc["updating_until"], doc["deleting_at"]
        q.policy = doc["policy"]
        q.start_effective = doc["start_effective"]
        return q

    def export_state(self) -> tuple[int, bytes]:
        """(version, blob): the delivery state packed for a data directory, taken under the queue's lock (so
        it is one consistent moment): the shard cursors, every entry, the redelivery and dead-letter queues
        in their order, the delivery and round-robin counters. The heap and the in-flight count are derived
        from the entries on import. Little-endian arrays, ~37 bytes a tracked record."""
        with self._lock:
            entries = self._entries
            n = len(entries)
            keys = np.fromiter(entries.keys(), dtype="<i8", count=n)
            values = list(entries.values())
            cols = np.array(values, dtype="<f8").reshape(n, 5)
            deliveries = np.fromiter((e[4] for e in values), dtype="<i8", count=n)
            head = _STATE.pack(_STATE_MAGIC, self._deliveries, self._rr, len(self.cursors), n, len(self._ready),
                               len(self._dead_ready))
            parts = [head, np.fromiter(self.cursors.keys(), "<i8", len(self.cursors)).tobytes(),
                     np.fromiter(self.cursors.values(), "<i8", len(self.cursors)).tobytes(), keys.tobytes(),
                     cols[:, 1].tobytes(), cols[:, 3].tobytes(), deliveries.tobytes(),
                     cols[:, 2].astype("<i4").tobytes(), cols[:, 0].astype("<i1").tobytes(),
                     np.fromiter(self._ready, "<i8", len(self._ready)).tobytes(),
                     np.fromiter(self._dead_ready, "<i8", len(self._dead_ready)).tobytes()]
            return self.version, b"".join(parts)

    def import_state(self, blob: bytes) -> None:
        """Put back what ``export_state`` packed (a restarted engine). Records the stream no longer has at or
        above a shard's end (a data directory that lost its newest records in a machine crash) are dropped
        and the cursors are kept at the shard ends. Delivery numbers continue 2**32 above the saved counter,
        so a receipt handle issued after the save (before a crash) never names a delivery made after the
        restart; handles issued before the save stay current."""
        magic, deliveries, rr, nc, n, nr, nd = _STATE.unpack_from(blob, 0)
        if magic != _STATE_MAGIC:
            raise ValueError(f"queue {self.arn}: not a queue state blob (magic {magic!r})")
        off = _STATE.size

        def take(dtype: str, count: int) -> np.ndarray:
            nonlocal off
            a = np.frombuffer(blob, dtype=dtype, count=count, offset=off)
            off += a.nbytes
            return a

        c_idx, c_pos = take("<i8", nc).tolist(), take("<i8", nc).tolist()
        keys, deadlines, firsts = take("<i8", n).tolist(), take("<f8", n).tolist(), take("<f8", n).tolist()
        dnums, counts, states = take("<i8", n).tolist(), take("<i4", n).tolist(), take("<i1", n).tolist()
        ready, dead_ready = take("<i8", nr).tolist(), take("<i8", nd).tolist()
        core = self.stream.core
        shards = core.shards
        ends = {index: core.shard_end(index) for index in list(shards)}
        with self._lock:
            self.cursors = {i: min(p, ends[i]) if i in ends else p for i, p in zip(c_idx, c_pos)}
            entries = {k: [st, dl, rc, ft, d] for k, st, dl, rc, ft, d in
                       zip(keys, states, deadlines, counts, firsts, dnums)}
            for k in [k for k in entries if (k >> _KEY_BITS) in ends and k & _POS_MASK >= ends[k >> _KEY_BITS]]:
                del entries[k]
            self._entries = entries
            self._ready = deque(ready)
            self._dead_ready = deque(dead_ready)
            self._deliveries = deliveries + (1 << 32)
            self._rr = rr
            self._topology = -1
            self.in_flight = sum(1 for e in entries.values() if e[0] == _IN_FLIGHT or e[0] == _DEAD_IN_FLIGHT)
            self._compact()

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, arn={self.arn!r}, in_flight={self.in_flight})"


__all__ = ["Queue", "VISIBILITY_DEFAULT", "MAX_RECEIVE_DEFAULT", "WAIT_DEFAULT", "NORMAL", "DEAD_LETTER"]

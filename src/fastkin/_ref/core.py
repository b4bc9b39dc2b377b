"""Reference engine: the behaviour of fastkin's core, written for clarity, not speed.

Any difference between this module and the compiled core (fastkin._cy.core) is a bug in the
compiled core. Both take the same arguments and return results with the same attributes; the
differential tests in tests/differential drive them side by side.

Model:
- a shard's log is a list of (data, key, arrival_ms) with ``base`` = the seq index of entry 0;
  trimming drops a prefix and moves ``base``;
- routing is md5(key) as a big-endian 128-bit int, then bisect over the open shards' start keys;
- quotas are token buckets holding one second's allowance, refilled continuously (float seconds).
"""
from __future__ import annotations

import bisect
import hashlib
import math
import threading

import numpy as np

from .. import errors as E
from .._common import SEQ_INDEX_END, format_sequence_number, parse_hash_key
from ..limits import GET_RECORDS_MAX_RECORDS, PARTITION_KEY_MAX_CHARS, PUT_RECORDS_MAX_RECORDS, Limits

ENGINE = "ref"
# counters: accepted bytes/records, write-throttled records/bytes, read bytes/records, GetRecords calls,
# read-throttled calls, max iterator age (ms) since the last reset, PutRecords entries / throttled entries
(C_IN_BYTES, C_IN_RECORDS, C_W_THR_RECORDS, C_W_THR_BYTES, C_OUT_BYTES, C_OUT_RECORDS, C_GET_CALLS,
 C_R_THR_CALLS, C_AGE_MAX, C_PR_RECORDS, C_PR_THROTTLED, NCTR) = range(12)


def now_ms(now: float) -> int:
    return math.floor(now * 1000.0)


class PutResult:
    """One record's outcome: shard_id + sequence_number, or error_code + error_message."""

    __slots__ = ("shard_id", "sequence_number", "error_code", "error_message")

    def __init__(self, shard_id=None, sequence_number=None, error_code=None, error_message=None):
        self.shard_id = shard_id
        self.sequence_number = sequence_number
        self.error_code = error_code
        self.error_message = error_message

    def __repr__(self):
        if self.error_code:
            return f"PutResult(error_code={self.error_code!r})"
        return f"PutResult(shard_id={self.shard_id!r}, sequence_number={self.sequence_number!r})"


class PutRecordsResult:
    """The PutRecords contract: one PutResult per request entry, in request order."""

    def __init__(self, results: list[PutResult]):
        self.records = results
        self.failed_record_count = sum(1 for r in results if r.error_code is not None)

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def __iter__(self):
        return iter(self.records)


class Record:
    __slots__ = ("sequence_number", "data", "partition_key", "approximate_arrival_timestamp")

    def __init__(self, sequence_number, data, partition_key, arrival_ms):
        self.sequence_number = sequence_number
        self.data = data
        self.partition_key = partition_key
        self.approximate_arrival_timestamp = arrival_ms / 1000.0

    def __repr__(self):
        return f"Record(sequence_number={self.sequence_number!r}, partition_key={self.partition_key!r}, data={self.data[:32]!r})"


class Shard:
    def __init__(self, index: int, start_hash: int, end_hash: int, created_secs: int, limits: Limits):
        self.index = index
        self.shard_id = E.shard_name(index)
        self.start_hash = start_hash
        self.end_hash = end_hash
        self.created_secs = created_secs
        self.log: list[tuple[bytes, str, int, int]] = []   # (data, key, arrival ms, size)
        self.base = 0            # seq index of log[0]
        self.last_ms = 0         # newest arrival (arrivals never go back within a shard)
        self.closed_at: int | None = None   # seq index end when closed
        # write buckets (bytes, records) and read buckets (calls, bytes)
        self.wb = float(limits.write_bytes_per_second)
        self.wr = float(limits.write_records_per_second)
        self.wt: float | None = None
        self.rc = float(limits.read_calls_per_second)
        self.rb = float(limits.read_bytes_per_second)
        self.rt: float | None = None
        self.penalty_until = -math.inf
        self.ctr = [0] * NCTR     # cumulative counters, indexed by the C_* constants below

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def seq(self, position: int, arrival_ms: int) -> str:
        """The record at ``position`` has seqIndex position + 1: StartingSequenceNumber (0) precedes it."""
        return format_sequence_number(self.created_secs, self.index, position + 1, arrival_ms // 1000)


class StreamCore:
    """One stream's data plane: shard logs, routing, sequence numbers and quotas."""

    def __init__(self, name: str, account: str, limits: Limits, quotas: bool, max_record_bytes: int,
                 store_payload: bool = True):
        self.store_payload = store_payload   # False: keep sizes and times only (simulations)
        self.name = name
        self.account = account
        self.limits = limits
        self.quotas = quotas
        self.max_record_bytes = max_record_bytes
        self.shards: dict[int, Shard] = {}
        self.open: list[Shard] = []          # sorted by start_hash; they tile [0, 2^128-1]
        self.lock = threading.Lock()
        self.gate = (math.inf, -math.inf)    # put_record_io's I/O gate (closed until the stream sets it)

    # -- topology -------------------------------------------------------------------------
    def add_shard(self, index: int, start_hash: int, end_hash: int, created_secs: int) -> None:
        with self.lock:
            s = Shard(index, start_hash, end_hash, created_secs, self.limits)
            self.shards[index] = s
            self.open.append(s)
            self.open.sort(key=lambda sh: sh.start_hash)

    def reshard(self, close: list[int], add: list[tuple[int, int, int, int, bool]]) -> None:
        """Atomically close shards (no longer routed to) and add new ones (index, start, end, created_secs, open);
        a shard added closed is one that lived only inside this change (UpdateShardCount's intermediates).

        The caller guarantees that the open shards still tile the hash space afterwards."""
        with self.lock:
            for index in close:                 # check everything first: a failed reshard changes nothing
                if index not in self.shards:
                    raise KeyError(index)
                if self.shards[index].closed_at is not None:
                    raise ValueError(f"shard {index} is already closed")
            for index in close:
                s = self.shards[index]
                self.open.remove(s)
                s.closed_at = s.end
            for index, start, end, created, is_open in add:
                s = Shard(index, start, end, created, self.limits)
                self.shards[index] = s
                if is_open:
                    self.open.append(s)
                else:
                    s.closed_at = 0
            self.open.sort(key=lambda sh: sh.start_hash)

    def drop_shard(self, index: int) -> None:
        """Forget a closed shard whose records have all expired."""
        with self.lock:
            del self.shards[index]

    def shard_end(self, index: int) -> int:
        return self.shards[index].end

    def shard_horizon(self, index: int) -> int:
        return self.shards[index].base

    def seek_timestamp(self, index: int, ts_ms: int) -> int:
        s = self.shards[index]
        for i, (_, _, t, _) in enumerate(s.log):
            if t >= ts_ms:
                return s.base + i
        return s.end

    def arrival_ms(self, index: int, seq_index: int) -> int:
        s = self.shards[index]
        if not s.base <= seq_index < s.end:
            raise IndexError(seq_index)
        return s.log[seq_index - s.base][2]

    # -- routing --------------------------------------------------------------------------
    def route(self, hash_key: int) -> Shard:
        starts = [s.start_hash for s in self.open]
        return self.open[bisect.bisect_right(starts, hash_key) - 1]

    def shard_for_key(self, partition_key: str) -> int:
        _, _, h = self._check(None, b"", partition_key, None)
        with self.lock:
            return self.route(h).index

    # -- validation -----------------------------------------------------------------------
    def _check(self, i, data, key, ehk) -> tuple[bytes, bytes, int]:
        if isinstance(data, str):
            data = data.encode()
        elif type(data) is not bytes:           # bytes subclasses and bytes-likes are stored as plain bytes
            try:
                data = bytes(memoryview(data))
            except TypeError:
                raise E.bad_data(i, data) from None
        if not isinstance(key, str) or not 1 <= len(key) <= PARTITION_KEY_MAX_CHARS:
            raise E.bad_partition_key(i, key)
        try:
            kb = key.encode("utf-8")
        except UnicodeEncodeError:
            raise E.bad_key_encoding(i) from None
        size = len(data) + len(kb)
        if size > self.max_record_bytes:
            raise E.record_too_large(i, size, self.max_record_bytes)
        h = parse_hash_key(ehk) if ehk is not None else int.from_bytes(hashlib.md5(kb).digest(), "big")
        return data, kb, h

    # -- quotas ---------------------------------------------------------------------------
    def _write_ok(self, s: Shard, size: int, now: float) -> bool:
        if not self.quotas:
            return True
        lim = self.limits
        if s.wt is None:
            s.wt = now
        elif now > s.wt:
            dt = now - s.wt
            s.wb = min(float(lim.write_bytes_per_second), s.wb + lim.write_bytes_per_second * dt)
            s.wr = min(float(lim.write_records_per_second), s.wr + lim.write_records_per_second * dt)
            s.wt = now
        need = min(size, lim.write_bytes_per_second)
        if s.wr >= 1.0 and s.wb >= need:
            s.wr -= 1.0
            s.wb -= size
            return True
        return False

    @staticmethod
    def _count_write(s: Shard, size: int, ok: bool) -> None:
        if ok:
            s.ctr[C_IN_RECORDS] += 1
            s.ctr[C_IN_BYTES] += size
        else:
            s.ctr[C_W_THR_RECORDS] += 1
            s.ctr[C_W_THR_BYTES] += size

    def _append(self, s: Shard, data: bytes, key: str, size: int, now: float) -> PutResult:
        ms = max(now_ms(now), s.last_ms)
        s.last_ms = ms
        seq = s.end
        s.log.append((data, key, ms, size) if self.store_payload else (b"", "", ms, size))
        return PutResult(s.shard_id, s.seq(seq, ms))

    # -- put ------------------------------------------------------------------------------
    def put_record(self, data, key, ehk, now: float) -> PutResult:
        data, kb, h = self._check(None, data, key, ehk)
        with self.lock:
            s = self.route(h)
            ok = self._write_ok(s, len(data) + len(kb), now)
            self._count_write(s, len(data) + len(kb), ok)
            if not ok:
                raise E.ProvisionedThroughputExceededException(E.shard_throttled(s.shard_id, self.name, self.account))
            return self._append(s, data, key, len(data) + len(kb), now)

    def set_io_gate(self, lo: float, hi: float) -> None:
        """put_record_io puts only while lo <= clock() < hi (the stream is ready, not being deleted,
        and no per-second tick is due); outside it returns (clock value,) and does nothing."""
        self.gate = (lo, hi)

    def put_record_io(self, data, key, ehk, clock):
        """put_record at ``clock()``, when that time is inside the I/O gate (see set_io_gate) and is a
        float; otherwise ``(time,)`` (nothing done: the stream handles the time, then calls put_record)."""
        now = clock()
        lo, hi = self.gate
        if type(now) is not float or not lo <= now < hi:
            return (now,)
        return self.put_record(data, key, ehk, now)

    def put_records(self, records, now: float) -> PutRecordsResult:
        if not isinstance(records, (list, tuple)):
            raise E.ValidationException(f"records must be a list of (data, partition_key[, explicit_hash_key]) tuples, got {type(records).__name__}")
        n = len(records)
        if n < 1:
            raise E.validation_error("[]", "records", "have length greater than or equal to 1")
        if n > PUT_RECORDS_MAX_RECORDS:
            raise E.validation_error(f"[{n} records]", "records", f"have length less than or equal to {PUT_RECORDS_MAX_RECORDS}")
        checked = []
        total = 0
        for i, rec in enumerate(records):
            if not isinstance(rec, (tuple, list)) or not 2 <= len(rec) <= 3:
                raise E.ValidationException(f"records.{i + 1}.member must be a (data, partition_key[, explicit_hash_key]) tuple")
            data, kb, h = self._check(i, rec[0], rec[1], rec[2] if len(rec) == 3 else None)
            total += len(data) + len(kb)
            checked.append((data, rec[1], len(data) + len(kb), h))
        if total > self.limits.put_records_max_bytes:
            raise E.InvalidArgumentException(f"Records size of {total} bytes exceeds the PutRecords request limit of {self.limits.put_records_max_bytes} bytes.")
        out = []
        with self.lock:
            for data, key, size, h in checked:
                s = self.route(h)
                ok = self._write_ok(s, size, now)
                self._count_write(s, size, ok)
                s.ctr[C_PR_RECORDS] += 1
                s.ctr[C_PR_THROTTLED] += not ok
                if ok:
                    out.append(self._append(s, data, key, size, now))
                else:
                    out.append(PutResult(None, None, "ProvisionedThroughputExceededException",
                                         E.shard_throttled(s.shard_id, self.name, self.account)))
        return PutRecordsResult(out)

    # -- read -----------------------------------------------------------------------------
    def _read_ok(self, s: Shard, now: float) -> bool:
        if not self.quotas:
            return True
        lim = self.limits
        if s.rt is None:
            s.rt = now
        elif now > s.rt:
            dt = now - s.rt
            s.rc = min(float(lim.read_calls_per_second), s.rc + lim.read_calls_per_second * dt)
            s.rb = min(float(lim.read_bytes_per_second), s.rb + lim.read_bytes_per_second * dt)
            s.rt = now
        return now >= s.penalty_until and s.rc >= 1.0 and s.rb > 0.0

    def get_records(self, index: int, pos: int, limit: int, now: float, quota: bool = True):
        """Read from position ``pos`` (clamped to the trim horizon): (records, next_pos, millis_behind).
        ``quota=False`` reads outside the shard's shared read quota (enhanced fan-out has its own pipe)."""
        if not 1 <= limit <= GET_RECORDS_MAX_RECORDS:
            raise E.validation_error(limit, "limit", f"have value between 1 and {GET_RECORDS_MAX_RECORDS}")
        with self.lock:
            s = self.shards[index]
            if quota and not self._read_ok(s, now):
                s.ctr[C_R_THR_CALLS] += 1
                raise E.ProvisionedThroughputExceededException(E.shard_throttled(s.shard_id, self.name, self.account))
            pos = max(pos, s.base)
            out = []
            nbytes = 0
            cap = self.limits.get_records_max_bytes
            cut = False
            while pos < s.end and len(out) < limit:
                data, key, ms, size = s.log[pos - s.base]
                if nbytes + size > cap:
                    cut = True
                    break
                nbytes += size
                out.append(Record(s.seq(pos, ms), data, key, ms))
                pos += 1
            if self.quotas and quota:
                s.rc -= 1.0
                s.rb -= nbytes
                if cut or nbytes >= cap:
                    s.penalty_until = now + self.limits.read_penalty_seconds
            behind = 0 if pos >= s.end else max(0, now_ms(now) - s.log[pos - s.base][2])
            s.ctr[C_OUT_BYTES] += nbytes
            s.ctr[C_OUT_RECORDS] += len(out)
            s.ctr[C_GET_CALLS] += 1
            s.ctr[C_AGE_MAX] = max(s.ctr[C_AGE_MAX], behind)
            return out, pos, behind

    # -- retention ------------------------------------------------------------------------
    def trim(self, now: float, retention_secs: float) -> int:
        """Drop records that arrived before now - retention; returns how many were dropped."""
        cutoff = now_ms(now) - math.floor(retention_secs * 1000.0)
        dropped = 0
        with self.lock:
            for s in self.shards.values():
                k = 0
                while k < len(s.log) and s.log[k][2] < cutoff:
                    k += 1
                if k:
                    del s.log[:k]
                    s.base += k
                    dropped += k
        return dropped

    def counters(self, indices, reset_age: bool = False) -> np.ndarray:
        """Cumulative counters of the given shards as a uint64 array (len(indices), NCTR)."""
        with self.lock:
            out = np.array([self.shards[i].ctr for i in indices], dtype=np.uint64).reshape(len(indices), NCTR)
            if reset_age:
                for i in indices:
                    self.shards[i].ctr[C_AGE_MAX] = 0
            return out

    def record_count(self) -> int:
        return sum(len(s.log) for s in self.shards.values())


END_SEQ_INDEX = SEQ_INDEX_END

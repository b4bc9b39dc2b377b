"""Reference engine: the behaviour of fastkin's core, written for clarity, not speed.

Any difference between this module and the compiled core (fastkin._cy.core) is a bug in the
compiled core. Both take the same arguments and return results with the same attributes; the
differential tests in tests/differential drive them side by side.

Model:
- a shard's log is a list of (data, key, arrival_ms) with ``base`` = the seq index of entry 0;
  trimming drops a prefix and moves ``base``;
- routing is md5(key) as a big-endian 128-bit int, then bisect over the open shards' start keys;
- quotas are token buckets holding one second's allowance, refilled continuously (float seconds).

The module's public surface is exactly fastkin._protocols.CoreModuleProtocol (checked by
tests/unit/test_core_contract.py); the per-shard counter columns are fastkin._protocols' C_*.

Sequence-number layout (47 hex nibbles, most significant first; reverse-engineered from real
56-digit AWS numbers, see shared/spec §7):

    2 | shardCreateEpochSecs(9) | shardIndex & 0xF (1) | seqIndex(16) | 00(2) | recordEpochSecs(9) | shardIndex(8) | 2

seqIndex is the record's position in its shard's log plus one (1, 2, 3, ...), so numbers are strictly
increasing per shard and unique per stream; the shard's StartingSequenceNumber has seqIndex 0 (before
every record) and a closed shard's EndingSequenceNumber has seqIndex 0x7FFFFFFFFFFFFFFF (after them).
"""
from __future__ import annotations

import bisect
import hashlib
import math
import re
import threading

import numpy as np

from .. import errors as E
from .._common import SEQ_INDEX_END, parse_hash_key
from .._protocols import (
    C_AGE_MAX,
    C_GET_CALLS,
    C_IN_BYTES,
    C_IN_RECORDS,
    C_OUT_BYTES,
    C_OUT_RECORDS,
    C_PR_RECORDS,
    C_PR_THROTTLED,
    C_R_THR_CALLS,
    C_W_THR_BYTES,
    C_W_THR_RECORDS,
    COUNTER_LAYOUT,
    NCTR,
)
from ..limits import GET_RECORDS_MAX_RECORDS, PARTITION_KEY_MAX_CHARS, PUT_RECORDS_MAX_RECORDS, Limits

NAME = "ref"
# The reference has no build modes: its invariants are checked when check_invariants() is called,
# never automatically after each mutation (that is what the compiled core's debug build adds).
DEBUG = False
END_SEQ_INDEX = SEQ_INDEX_END

# memory_bytes() of the reference counts a record as its payload (data + key bytes; none when
# metadata-only) plus this many bytes: the compiled core's per-record index (offset u32, data length
# u32, key length u16, arrival ms i64), so both cores report comparable figures. It is a model of
# the storage, not the Python objects' real size.
_RECORD_OVERHEAD = 18

_DECIMAL = re.compile(r"(?:0|[1-9][0-9]{0,128})\Z")


def _now_ms(now: float) -> int:
    return math.floor(now * 1000.0)


def format_sequence_number(create_secs: int, shard_index: int, seq_index: int, record_secs: int) -> str:
    value = (
        (2 << 184)
        | (create_secs << 148)
        | ((shard_index & 0xF) << 144)
        | (seq_index << 80)
        | (record_secs << 36)
        | (shard_index << 4)
        | 2
    )
    return str(value)


def parse_sequence_number(s: object) -> tuple[int, int, int, int] | None:
    """(create_secs, shard_index, seq_index, record_secs), or None when s is not one of ours."""
    if not isinstance(s, str) or not _DECIMAL.match(s):
        return None
    v = int(s)
    if v >> 188 or (v >> 184) != 2 or (v & 0xF) != 2 or (v >> 72) & 0xFF:
        return None
    shard = (v >> 4) & 0xFFFFFFFF
    if (v >> 144) & 0xF != shard & 0xF:
        return None
    return (v >> 148) & 0xFFFFFFFFF, shard, (v >> 80) & 0xFFFFFFFFFFFFFFFF, (v >> 36) & 0xFFFFFFFFF


def md5_hash_key(key) -> int:
    """The Kinesis hash of a partition key: MD5 of its UTF-8 bytes as a big-endian 128-bit int."""
    kb = key.encode() if isinstance(key, str) else bytes(key)
    return int.from_bytes(hashlib.md5(kb).digest(), "big")


def md5_hash_keys(keys) -> list[int]:
    """md5_hash_key of each key."""
    return [md5_hash_key(k) for k in keys]


def md5_lanes() -> int:
    """Which batch-MD5 path put_records uses: always 0 here (one key at a time, hashlib)."""
    return 0


def counter_layout() -> dict[str, int]:
    """The columns of StreamCore.counters(): {"C_IN_BYTES": 0, ...} (fastkin._protocols.COUNTER_LAYOUT)."""
    return dict(COUNTER_LAYOUT)


def _corrupt(invariant: str, where: str, **values) -> E.CorruptStateError:
    detail = ", ".join(f"{k}={v!r}" for k, v in values.items())
    return E.CorruptStateError(f"invariant {invariant!r} broken on {where}: {detail}")


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
        return (f"Record(sequence_number={self.sequence_number!r}, partition_key={self.partition_key!r}, "
                f"data={self.data[:32]!r})")


class Shard:
    """One shard: its log, hash range and quota buckets (public: fastkin._protocols.ShardProtocol)."""

    def __init__(self, index: int, start_hash: int, end_hash: int, created_secs: int, limits: Limits,
                 meta_only: bool = False):
        self.index = index
        self.shard_id = E.shard_name(index)
        self.start_hash = start_hash
        self.end_hash = end_hash
        self.created_secs = created_secs
        self.meta_only = meta_only   # keep sizes and times only: log entries are (b"", "", ms, size)
        self.closed = False          # no longer routed to (after a split or merge)
        self.base = 0                # seq index of _log[0] (the trim horizon)
        self._log: list[tuple[bytes, str, int, int]] = []   # (data, key, arrival ms, size)
        self._last_ms = 0            # newest arrival (arrivals never go back within a shard)
        # write buckets (bytes, records) and read buckets (calls, bytes)
        self._wb = float(limits.write_bytes_per_second)
        self._wr = float(limits.write_records_per_second)
        self._wt: float | None = None
        self._rc = float(limits.read_calls_per_second)
        self._rb = float(limits.read_bytes_per_second)
        self._rt: float | None = None
        self._penalty_until = -math.inf
        self._ctr = [0] * NCTR       # cumulative counters, indexed by fastkin._protocols' C_* constants

    @property
    def end(self) -> int:
        return self.base + len(self._log)

    def memory_bytes(self) -> int:
        """Bytes this shard's log holds: payload bytes plus _RECORD_OVERHEAD per record (see there)."""
        if self.meta_only:
            return _RECORD_OVERHEAD * len(self._log)
        return sum(size for _, _, _, size in self._log) + _RECORD_OVERHEAD * len(self._log)

    def _seq(self, position: int, arrival_ms: int) -> str:
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
        self._max_record_bytes_hw = 0        # the largest max_record_bytes ever set (bounds a bucket's debt)
        self.max_record_bytes = max_record_bytes
        self.shards: dict[int, Shard] = {}
        self._open: list[Shard] = []         # sorted by start_hash; they tile [0, 2^128-1]
        self._lock = threading.Lock()
        self._gate = (math.inf, -math.inf)   # put_record_io's I/O gate (closed until the stream sets it)
        self.auto = False                    # RecordDistributionStrategy AUTO: round-robin, keys optional
        self._rr = 0                         # AUTO: the next position in _open

    @property
    def max_record_bytes(self) -> int:
        return self._max_record_bytes

    @max_record_bytes.setter
    def max_record_bytes(self, value: int) -> None:
        self._max_record_bytes = value
        self._max_record_bytes_hw = max(self._max_record_bytes_hw, value)

    # -- topology -------------------------------------------------------------------------
    def add_shard(self, index: int, start_hash: int, end_hash: int, created_secs: int) -> None:
        with self._lock:
            s = Shard(index, start_hash, end_hash, created_secs, self.limits, not self.store_payload)
            self.shards[index] = s
            self._open.append(s)
            self._open.sort(key=lambda sh: sh.start_hash)

    def reshard(self, close: list[int], add: list[tuple[int, int, int, int, bool]]) -> None:
        """Atomically close shards (no longer routed to) and add new ones (index, start, end, created_secs, open);
        a shard added closed is one that lived only inside this change (UpdateShardCount's intermediates).

        The caller guarantees that the open shards still tile the hash space afterwards."""
        with self._lock:
            for index in close:                 # check everything first: a failed reshard changes nothing
                if index not in self.shards:
                    raise KeyError(index)
                if self.shards[index].closed:
                    raise ValueError(f"shard {index} is already closed")
            for index in close:
                s = self.shards[index]
                self._open.remove(s)
                s.closed = True
            for index, start, end, created, is_open in add:
                s = Shard(index, start, end, created, self.limits, not self.store_payload)
                self.shards[index] = s
                if is_open:
                    self._open.append(s)
                else:
                    s.closed = True
            self._open.sort(key=lambda sh: sh.start_hash)

    def drop_shard(self, index: int) -> None:
        """Forget a closed shard whose records have all expired."""
        with self._lock:
            del self.shards[index]

    def restore_record(self, index: int, seq_index: int, arrival_ms: int, data: bytes, key: str) -> None:
        """Put back a record read from a data directory, with its original position and arrival time (no
        quota, no routing; the shard may be closed). ``seq_index`` must be the shard's end, or above it while
        the shard holds no readable record (the positions in between expired before a restart): the
        horizon then moves up to it. Arrivals never go back in a shard. Counts as an accepted write."""
        with self._lock:
            s = self.shards[index]
            if seq_index < s.end or (seq_index > s.end and s.base < s.end):
                raise ValueError(f"cannot restore position {seq_index} on {s.shard_id}: its log holds "
                                 f"[{s.base}, {s.end})")
            if arrival_ms < s._last_ms:
                raise ValueError(f"cannot restore an arrival at {arrival_ms} ms on {s.shard_id} after one at "
                                 f"{s._last_ms} ms")
            kb = key.encode("utf-8")
            size = len(data) + len(kb)
            self._max_record_bytes_hw = max(self._max_record_bytes_hw, size)
            if seq_index > s.end:
                s.base = seq_index
            s._last_ms = arrival_ms
            s._log.append((b"", "", arrival_ms, size) if s.meta_only else (bytes(data), key, arrival_ms, size))
            s._ctr[C_IN_RECORDS] = s.end
            s._ctr[C_IN_BYTES] += size

    def adopt_segment(self, index: int, seq_index: int, path: str, size: int, ms, off, dlen, klen) -> int:
        """Take a closed segment file of a data directory as the shard's next records: record i (position
        ``seq_index + i``) is ``dlen[i]`` data bytes then ``klen[i]`` key bytes at byte ``off[i]`` of the file's
        first ``size`` bytes, arriving at ``ms[i]`` (the arrays: buffers of i64, u32, u32, u16 in host order,
        from the file's index). The same rules as restore_record (position at the end, or above it on a shard
        holding no readable record; arrivals never go back); the arrays are checked against the file
        (ValueError; nothing changes). Counts as accepted writes. Returns the number of records.

        The compiled core maps the file and copies nothing; this one reads it into bytes (same behaviour)."""
        s = self.shards[index]
        if s.meta_only:
            raise ValueError(f"{s.shard_id} stores no payloads: its records are restored one by one")
        if not 0 < size <= 0xFFFFFFFF:
            raise ValueError(f"a segment file of {size} bytes cannot be mapped (1 byte to 4 GiB)")
        a_ms, a_off, a_dlen, a_klen = (np.frombuffer(b, dtype=t) for b, t in
                                       ((ms, np.int64), (off, np.uint32), (dlen, np.uint32), (klen, np.uint16)))
        n = len(a_ms)
        if n == 0 or not len(a_off) == len(a_dlen) == len(a_klen) == n:
            raise ValueError(f"adopt_segment needs 1 or more records and arrays of one length (bytes: "
                             f"{a_ms.nbytes}, {a_off.nbytes}, {a_dlen.nbytes}, {a_klen.nbytes})")
        end_prev = 0
        for i in range(n):
            if i and a_ms[i] < a_ms[i - 1]:
                raise ValueError(f"{path}: record {i} arrives before record {i - 1}")
            o, rec = int(a_off[i]), int(a_dlen[i]) + int(a_klen[i])
            if o < end_prev or o + rec > size:
                raise ValueError(f"{path}: record {i} at bytes [{o}, {o + rec}) overlaps the one "
                                 f"before or runs past the file's {size} bytes")
            end_prev = o + rec
        with open(path, "rb") as f:
            buf = f.read(size)
        if len(buf) < size:
            raise ValueError(f"{path} is shorter than the {size} bytes its index covers")
        entries = []
        for i in range(n):
            o, d, k = int(a_off[i]), int(a_dlen[i]), int(a_klen[i])
            entries.append((buf[o:o + d], buf[o + d:o + d + k].decode("utf-8"), int(a_ms[i]), d + k))
        with self._lock:
            if seq_index < s.end or (seq_index > s.end and s.base < s.end):
                raise ValueError(f"cannot adopt position {seq_index} on {s.shard_id}: its log holds "
                                 f"[{s.base}, {s.end})")
            if entries[0][2] < s._last_ms:
                raise ValueError(f"cannot adopt an arrival at {entries[0][2]} ms on {s.shard_id} after one at "
                                 f"{s._last_ms} ms")
            if seq_index > s.end:
                s.base = seq_index
            s._log.extend(entries)
            s._last_ms = entries[-1][2]
            self._max_record_bytes_hw = max(self._max_record_bytes_hw, max(e[3] for e in entries))
            s._ctr[C_IN_RECORDS] = s.end
            s._ctr[C_IN_BYTES] += sum(e[3] for e in entries)
        return n

    def shard_end(self, index: int) -> int:
        return self.shards[index].end

    def shard_horizon(self, index: int) -> int:
        return self.shards[index].base

    def seek_timestamp(self, index: int, ts_ms: int) -> int:
        s = self.shards[index]
        for i, (_, _, t, _) in enumerate(s._log):
            if t >= ts_ms:
                return s.base + i
        return s.end

    def arrival_ms(self, index: int, seq_index: int) -> int:
        s = self.shards[index]
        if not s.base <= seq_index < s.end:
            raise IndexError(seq_index)
        return s._log[seq_index - s.base][2]

    # -- routing --------------------------------------------------------------------------
    def _route(self, hash_key: int | None) -> Shard:
        """The open shard of a hash key; None (AUTO) takes the open shards in turn."""
        if hash_key is None:
            s = self._open[self._rr % len(self._open)]
            self._rr += 1
            return s
        starts = [s.start_hash for s in self._open]
        return self._open[bisect.bisect_right(starts, hash_key) - 1]

    def shard_for_key(self, partition_key: str) -> int:
        _, _, h = self._check(None, b"", partition_key, None)
        with self._lock:
            return self._route(h).index

    # -- validation -----------------------------------------------------------------------
    def _check(self, i, data, key, ehk) -> tuple[bytes, bytes, int | None]:
        if isinstance(data, str):
            data = data.encode()
        elif type(data) is not bytes:           # bytes subclasses and bytes-likes are stored as plain bytes
            try:
                data = bytes(memoryview(data))
            except TypeError:
                raise E.bad_data(i, data) from None
        if key is None and self.auto:
            kb = b""
        elif not isinstance(key, str) or not 1 <= len(key) <= PARTITION_KEY_MAX_CHARS:
            raise E.missing_partition_key(i) if key is None else E.bad_partition_key(i, key)
        else:
            try:
                kb = key.encode("utf-8")
            except UnicodeEncodeError:
                raise E.bad_key_encoding(i) from None
        size = len(data) + len(kb)
        if size > self.max_record_bytes:
            raise E.record_too_large(i, size, self.max_record_bytes)
        if self.auto:           # AUTO ignores the key and ExplicitHashKey for routing
            return data, kb, None
        h = parse_hash_key(ehk) if ehk is not None else int.from_bytes(hashlib.md5(kb).digest(), "big")
        return data, kb, h

    # -- quotas ---------------------------------------------------------------------------
    def _write_ok(self, s: Shard, size: int, now: float) -> bool:
        if not self.quotas:
            return True
        lim = self.limits
        if s._wt is None:
            s._wt = now
        elif now > s._wt:
            dt = now - s._wt
            s._wb = min(float(lim.write_bytes_per_second), s._wb + lim.write_bytes_per_second * dt)
            s._wr = min(float(lim.write_records_per_second), s._wr + lim.write_records_per_second * dt)
            s._wt = now
        need = min(size, lim.write_bytes_per_second)
        if s._wr >= 1.0 and s._wb >= need:
            s._wr -= 1.0
            s._wb -= size
            return True
        return False

    @staticmethod
    def _count_write(s: Shard, size: int, ok: bool) -> None:
        if ok:
            s._ctr[C_IN_RECORDS] += 1
            s._ctr[C_IN_BYTES] += size
        else:
            s._ctr[C_W_THR_RECORDS] += 1
            s._ctr[C_W_THR_BYTES] += size

    def _append(self, s: Shard, data: bytes, key: str, size: int, now: float) -> PutResult:
        ms = max(_now_ms(now), s._last_ms)
        s._last_ms = ms
        seq = s.end
        s._log.append((b"", "", ms, size) if s.meta_only else (data, key, ms, size))
        return PutResult(s.shard_id, s._seq(seq, ms))

    # -- put ------------------------------------------------------------------------------
    def put_record(self, data, key, ehk, now: float) -> PutResult:
        data, kb, h = self._check(None, data, key, ehk)
        with self._lock:
            s = self._route(h)
            ok = self._write_ok(s, len(data) + len(kb), now)
            self._count_write(s, len(data) + len(kb), ok)
            if not ok:
                raise E.ProvisionedThroughputExceededException(E.shard_throttled(s.shard_id, self.name, self.account))
            return self._append(s, data, key or "", len(data) + len(kb), now)

    def set_io_gate(self, lo: float, hi: float) -> None:
        """put_record_io puts only while lo <= clock() < hi (the stream is ready, not being deleted,
        and no per-second tick is due); outside it returns (clock value,) and does nothing."""
        self._gate = (lo, hi)

    def put_record_io(self, data, key, ehk, clock):
        """put_record at ``clock()``, when that time is inside the I/O gate (see set_io_gate) and is a
        float; otherwise ``(time,)`` (nothing done: the stream handles the time, then calls put_record)."""
        now = clock()
        lo, hi = self._gate
        if type(now) is not float or not lo <= now < hi:
            return (now,)
        return self.put_record(data, key, ehk, now)

    def put_records(self, records, now: float) -> PutRecordsResult:
        if not isinstance(records, (list, tuple)):
            raise E.ValidationException("records must be a list of (data, partition_key[, explicit_hash_key]) tuples, "
                                        f"got {type(records).__name__}")
        n = len(records)
        if n < 1:
            raise E.validation_error("[]", "records", "have length greater than or equal to 1")
        if n > PUT_RECORDS_MAX_RECORDS:
            raise E.too_many_records(n, PUT_RECORDS_MAX_RECORDS)
        checked = []
        total = 0
        for i, rec in enumerate(records):
            if not isinstance(rec, (tuple, list)) or not 2 <= len(rec) <= 3:
                raise E.ValidationException(
                    f"records.{i + 1}.member must be a (data, partition_key[, explicit_hash_key]) tuple")
            data, kb, h = self._check(i, rec[0], rec[1], rec[2] if len(rec) == 3 else None)
            total += len(data) + len(kb)
            checked.append((data, rec[1] or "", len(data) + len(kb), h))
        if total > self.limits.put_records_max_bytes:
            raise E.records_size_exceeded(self.limits.put_records_max_bytes)
        out = []
        with self._lock:
            for data, key, size, h in checked:
                s = self._route(h)
                ok = self._write_ok(s, size, now)
                self._count_write(s, size, ok)
                s._ctr[C_PR_RECORDS] += 1
                s._ctr[C_PR_THROTTLED] += not ok
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
        if s._rt is None:
            s._rt = now
        elif now > s._rt:
            dt = now - s._rt
            s._rc = min(float(lim.read_calls_per_second), s._rc + lim.read_calls_per_second * dt)
            s._rb = min(float(lim.read_bytes_per_second), s._rb + lim.read_bytes_per_second * dt)
            s._rt = now
        return now >= s._penalty_until and s._rc >= 1.0 and s._rb > 0.0

    def get_records(self, index: int, pos: int, limit: int, now: float, quota: bool = True):
        """Read from position ``pos`` (clamped to the trim horizon): (records, next_pos, millis_behind).
        ``quota=False`` reads outside the shard's shared read quota (enhanced fan-out has its own pipe)."""
        if not 1 <= limit <= GET_RECORDS_MAX_RECORDS:
            raise E.validation_error(limit, "limit", f"have value between 1 and {GET_RECORDS_MAX_RECORDS}")
        with self._lock:
            s = self.shards[index]
            if quota and not self._read_ok(s, now):
                s._ctr[C_R_THR_CALLS] += 1
                raise E.ProvisionedThroughputExceededException(E.shard_throttled(s.shard_id, self.name, self.account))
            pos = max(pos, s.base)
            out: list[Record] = []
            nbytes = 0
            cap = self.limits.get_records_max_bytes
            cut = False
            while pos < s.end and len(out) < limit:
                data, key, ms, size = s._log[pos - s.base]
                if nbytes + size > cap:
                    cut = True
                    break
                nbytes += size
                out.append(Record(s._seq(pos, ms), data, key, ms))
                pos += 1
            if self.quotas and quota:
                s._rc -= 1.0
                s._rb -= nbytes
                if cut or nbytes >= cap:
                    s._penalty_until = now + self.limits.read_penalty_seconds
            behind = 0 if pos >= s.end else max(0, _now_ms(now) - s._log[pos - s.base][2])
            s._ctr[C_OUT_BYTES] += nbytes
            s._ctr[C_OUT_RECORDS] += len(out)
            s._ctr[C_GET_CALLS] += 1
            s._ctr[C_AGE_MAX] = max(s._ctr[C_AGE_MAX], behind)
            return out, pos, behind

    # -- retention ------------------------------------------------------------------------
    def trim(self, now: float, retention_secs: float) -> int:
        """Drop records that arrived before now - retention; returns how many were dropped."""
        cutoff = _now_ms(now) - math.floor(retention_secs * 1000.0)
        dropped = 0
        with self._lock:
            for s in self.shards.values():
                k = 0
                while k < len(s._log) and s._log[k][2] < cutoff:
                    k += 1
                if k:
                    del s._log[:k]
                    s.base += k
                    dropped += k
        return dropped

    def counters(self, indices, reset_age: bool = False) -> np.ndarray:
        """Cumulative counters of the given shards as a uint64 array (len(indices), NCTR)."""
        with self._lock:
            out = np.array([self.shards[i]._ctr for i in indices], dtype=np.uint64).reshape(len(indices), NCTR)
            if reset_age:
                for i in indices:
                    self.shards[i]._ctr[C_AGE_MAX] = 0
            return out

    def record_count(self) -> int:
        return sum(len(s._log) for s in self.shards.values())

    def memory_bytes(self) -> int:
        """Bytes the shard logs hold (Shard.memory_bytes: payload + a modelled per-record index)."""
        with self._lock:
            return sum(s.memory_bytes() for s in self.shards.values())

    # -- invariants -----------------------------------------------------------------------
    def check_invariants(self) -> None:
        """Check every invariant of this core's state now; CorruptStateError names the first broken one."""
        with self._lock:
            for s in self.shards.values():
                self._check_shard(s)
            self._check_routing()

    def _check_shard(self, s: Shard) -> None:
        where = f"{s.shard_id} of stream {self.name}"
        if s.base < 0:
            raise _corrupt("base >= 0", where, base=s.base)
        if s._ctr[C_IN_RECORDS] != s.end:
            raise _corrupt("end == accepted records", where, end=s.end, accepted=s._ctr[C_IN_RECORDS])
        prev = None
        for k, (data, key, ms, size) in enumerate(s._log):
            pos = s.base + k
            if prev is not None and ms < prev:
                raise _corrupt("arrivals non-decreasing", where, pos=pos, ms=ms, previous_ms=prev)
            prev = ms
            if ms > s._last_ms:
                raise _corrupt("arrival <= newest arrival", where, pos=pos, ms=ms, last_ms=s._last_ms)
            if not 0 <= size <= self._max_record_bytes_hw:
                raise _corrupt("0 <= record size <= max_record_bytes", where, pos=pos, size=size,
                               max_record_bytes=self._max_record_bytes_hw)
            if s.meta_only:
                if data != b"" or key != "":
                    raise _corrupt("metadata-only shards store no bytes", where, pos=pos, data_len=len(data),
                                   key=key)
            elif size != len(data) + len(key.encode("utf-8")):
                raise _corrupt("record size == data + key bytes", where, pos=pos, size=size,
                               data_len=len(data), key_len=len(key.encode("utf-8")))
        self._check_buckets(s, where)

    def _check_buckets(self, s: Shard, where: str) -> None:
        """Each bucket holds at most one second's allowance. Only the write-byte bucket can go below zero:
        a record larger than one second's bytes is accepted from a full bucket and leaves a debt of at most
        (largest record - allowance); the read-byte bucket is charged a response's bytes (at most
        get_records_max_bytes) while it is positive. Call and record buckets never go negative."""
        lim = self.limits
        wbps, wrps = float(lim.write_bytes_per_second), float(lim.write_records_per_second)
        rcps, rbps = float(lim.read_calls_per_second), float(lim.read_bytes_per_second)
        wb_min = min(0.0, wbps - self._max_record_bytes_hw)
        if not wb_min <= s._wb <= wbps:
            raise _corrupt("write byte bucket in [allowance - largest record, allowance]", where,
                           bucket=s._wb, low=wb_min, high=wbps)
        if not 0.0 <= s._wr <= wrps:
            raise _corrupt("write record bucket in [0, allowance]", where, bucket=s._wr, high=wrps)
        if not 0.0 <= s._rc <= rcps:
            raise _corrupt("read call bucket in [0, allowance]", where, bucket=s._rc, high=rcps)
        if not -float(lim.get_records_max_bytes) <= s._rb <= rbps:
            raise _corrupt("read byte bucket in [-get_records_max_bytes, allowance]", where, bucket=s._rb,
                           low=-float(lim.get_records_max_bytes), high=rbps)

    def _check_routing(self) -> None:
        where = f"stream {self.name}"
        starts = [s.start_hash for s in self._open]
        if starts != sorted(starts):
            raise _corrupt("open shards sorted by start hash", where, starts=starts)
        opened = {id(s) for s in self._open}
        for s in self._open:
            if s.closed:
                raise _corrupt("open shards are not closed", where, shard=s.shard_id)
        for s in self.shards.values():
            if not s.closed and id(s) not in opened:
                raise _corrupt("every shard not closed is routed to", where, shard=s.shard_id)

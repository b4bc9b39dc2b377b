# cython: language_level=3
"""Compiled core: shard logs over segmented ring storage, MD5 routing, sequence numbers, quotas.

The layout is described field by field in core.pxd. Behaviour is defined by fastkin._ref.core;
this module must match it exactly (results, state, exception types and messages).
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.ref cimport PyObject
from posix.stat cimport struct_stat, fstat
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8, PyUnicode_GET_LENGTH
from libc.math cimport floor, INFINITY
from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t, INT64_MAX, INT64_MIN
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

import os

import numpy as np

from .. import errors as E
from .._common import SEQ_INDEX_END, parse_hash_key
from ..limits import HASH_MAX
from ..limits import GET_RECORDS_MAX_RECORDS, PARTITION_KEY_MAX_CHARS, PUT_RECORDS_MAX_RECORDS

NAME = "cy"


cdef extern from "md5.h":
    void fk_md5_u128(const unsigned char *data, size_t length, uint64_t *hi, uint64_t *lo) nogil
    void fk_md5_u128_many(size_t n, const unsigned char **p, const size_t *length, uint64_t *hi, uint64_t *lo) nogil
    int fk_md5_lanes() nogil

cdef extern from "seqnum.h":
    int seq_format(uint64_t create_secs, uint32_t shard_index, uint64_t seq_index,
                   uint64_t record_secs, char *out) nogil
    int seq_parse(const char *s, size_t length, uint64_t *create_secs, uint32_t *shard_index,
                  uint64_t *seq_index, uint64_t *record_secs) nogil

cdef extern from "fk_mem.h":
    int fk_prefault(void *p, size_t n) nogil
    int fk_populate_read(void *p, size_t n) nogil
    void *fk_huge_reserve(size_t n) nogil
    size_t fk_huge_shrink(void *p, size_t n, size_t keep) nogil
    void fk_huge_release(void *p, size_t n) nogil

cdef extern from "<sys/mman.h>" nogil:
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void *addr, size_t length)
    enum: PROT_READ
    enum: MAP_SHARED
    void *MAP_FAILED

cdef extern from "<fcntl.h>" nogil:
    int c_open "open"(const char *path, int flags)
    enum: O_RDONLY
    enum: O_CLOEXEC

cdef extern from "<unistd.h>" nogil:
    int c_close "close"(int fd)

cdef extern from "<errno.h>" nogil:
    int errno

cdef extern from "fastkin_debug.h":
    const int FASTKIN_DEBUG

# Whether this build checks the core's invariants after every mutation (FASTKIN_DEBUG=1 builds; see
# core.pxd). check_invariants() runs the same checks on demand in every build.
DEBUG = bool(FASTKIN_DEBUG)

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *PyUnicode_DATA(object o)
    bint PyUnicode_IS_COMPACT_ASCII(object o)

# NOTE: segments also close after an hour of arrivals, so a slow shard frees trimmed memory within
# retention + 1 h instead of waiting for 65,536 records.
cdef int64_t SEG_MAX_AGE_MS = 3600 * 1000


cdef inline int64_t now_ms(double now) noexcept nogil:
    return <int64_t>floor(now * 1000.0)


cdef inline bint _is_ascii(const unsigned char *p, size_t n) noexcept nogil:
    """No byte of p[0..n) has its top bit set (8 bytes at a time)."""
    cdef uint64_t acc = 0, w
    cdef size_t i = 0
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        acc |= w
        i += 8
    while i < n:
        acc |= p[i]
        i += 1
    return (acc & 0x8080808080808080ULL) == 0


cdef inline str _ascii_str(const char *p, Py_ssize_t n):
    """A str from n bytes known to be ASCII: one allocation + memcpy, no decoding pass."""
    cdef object u = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(u), p, <size_t>n)
    return <str>u


cdef inline str _key_str(const char *p, Py_ssize_t n):
    # NOTE: ASCII keys (the common case) skip PyUnicode_DecodeUTF8's scan + decode: ~2x cheaper per key.
    if _is_ascii(<const unsigned char*>p, <size_t>n):
        return _ascii_str(p, n)
    return PyUnicode_DecodeUTF8(p, n, NULL)


cdef inline str _format_seq(int64_t create, uint32_t shard, uint64_t seq, int64_t ms):
    """The sequence number of the record at position ``seq``: its seqIndex field is seq + 1, so the
    shard's StartingSequenceNumber (seqIndex 0) comes before every record."""
    cdef char buf[80]
    cdef int n = seq_format(<uint64_t>create, shard, seq + 1, <uint64_t>(ms // 1000), buf)
    return _ascii_str(buf, n)


def format_sequence_number(create_secs, shard_index, seq_index, record_secs):
    cdef char buf[80]
    cdef int n = seq_format(create_secs, shard_index, seq_index, record_secs, buf)
    return PyUnicode_DecodeUTF8(buf, n, NULL)


def parse_sequence_number(s):
    """(create_secs, shard_index, seq_index, record_secs), or None when s is not one of ours."""
    cdef uint64_t c, q, r
    cdef uint32_t sh
    cdef const char *p
    cdef Py_ssize_t n
    if not isinstance(s, str):
        return None
    try:
        p = PyUnicode_AsUTF8AndSize(s, &n)
    except UnicodeEncodeError:
        return None
    if seq_parse(p, <size_t>n, &c, &sh, &q, &r) != 0:
        return None
    return (c, sh, q, r)


def counter_layout():
    """The columns of StreamCore.counters(): {"C_IN_BYTES": 0, ...}, from the C enum in core.pxd (it must
    equal fastkin._protocols.COUNTER_LAYOUT)."""
    return {
        "C_IN_BYTES": C_IN_BYTES, "C_IN_RECORDS": C_IN_RECORDS, "C_W_THR_RECORDS": C_W_THR_RECORDS,
        "C_W_THR_BYTES": C_W_THR_BYTES, "C_OUT_BYTES": C_OUT_BYTES, "C_OUT_RECORDS": C_OUT_RECORDS,
        "C_GET_CALLS": C_GET_CALLS, "C_R_THR_CALLS": C_R_THR_CALLS, "C_AGE_MAX": C_AGE_MAX,
        "C_PR_RECORDS": C_PR_RECORDS, "C_PR_THROTTLED": C_PR_THROTTLED,
    }


def md5_lanes():
    """Which batch-MD5 path put_records uses here: 0 one key at a time, 1 portable SIMD lanes, 2 AVX2 lanes."""
    return fk_md5_lanes()


def md5_hash_keys(keys):
    """md5_hash_key of each key, through the batch path put_records uses (for tests)."""
    cdef Py_ssize_t i, n = len(keys)
    cdef list raw = [k.encode() if isinstance(k, str) else bytes(k) for k in keys]
    cdef const unsigned char **p = <const unsigned char**>malloc((n + 1) * sizeof(char*))
    cdef size_t *ln = <size_t*>malloc((n + 1) * sizeof(size_t))
    cdef uint64_t *hi = <uint64_t*>malloc((n + 1) * sizeof(uint64_t))
    cdef uint64_t *lo = <uint64_t*>malloc((n + 1) * sizeof(uint64_t))
    try:
        if p == NULL or ln == NULL or hi == NULL or lo == NULL:
            raise MemoryError()
        for i in range(n):
            p[i] = <const unsigned char*>PyBytes_AS_STRING(raw[i])
            ln[i] = <size_t>PyBytes_GET_SIZE(raw[i])
        fk_md5_u128_many(<size_t>n, p, ln, hi, lo)
        return [(<object>hi[i] << 64) | <object>lo[i] for i in range(n)]
    finally:
        free(p)
        free(ln)
        free(hi)
        free(lo)


def md5_hash_key(key):
    """The Kinesis hash of a partition key: MD5 of its UTF-8 bytes as a big-endian 128-bit int."""
    cdef uint64_t hi, lo
    cdef const char *p
    cdef Py_ssize_t n
    if isinstance(key, str):
        p = PyUnicode_AsUTF8AndSize(key, &n)
    else:
        b = bytes(key)
        p = PyBytes_AS_STRING(b)
        n = PyBytes_GET_SIZE(b)
    fk_md5_u128(<const unsigned char*>p, <size_t>n, &hi, &lo)
    return (<object>hi << 64) | <object>lo


# ----------------------------------------------------------------------------------------------
# Results

# NOTE: PutResult and Record hold only a Shard, bytes, str and ints, none of which can refer back to
# them, so they cannot be part of a cycle: @cython.no_gc keeps them out of the cyclic GC, whose
# collections took ~45 % of a 10,000-record GetRecords drain with the GC enabled.
@cython.final
@cython.no_gc
@cython.freelist(64)
cdef class PutResult:
    """One record's outcome: shard_id + sequence_number, or error_code + error_message."""
    cdef Shard _shard
    cdef uint64_t _seq
    cdef int64_t _ms
    cdef readonly object error_code
    cdef readonly object error_message

    @property
    def shard_id(self):
        return None if self._shard is None else self._shard.shard_id

    @property
    def sequence_number(self):
        if self._shard is None:
            return None
        return _format_seq(self._shard.created_secs, self._shard.index, self._seq, self._ms)

    def __repr__(self):
        if self.error_code:
            return f"PutResult(error_code={self.error_code!r})"
        return f"PutResult(shard_id={self.shard_id!r}, sequence_number={self.sequence_number!r})"


cdef inline PutResult _ok_result(Shard s, uint64_t seq, int64_t ms):
    cdef PutResult r = PutResult.__new__(PutResult)
    r._shard = s
    r._seq = seq
    r._ms = ms
    return r


@cython.final
@cython.no_gc
cdef class PutRecordsResult:
    """The PutRecords contract: one PutResult per request entry, in request order.

    Stored as typed arrays (one allocation: seq u64, ms i64, shard position u32 per entry); PutResult
    objects are made only when asked for. A shard is named by its position in the routing list the
    batch was routed with (``_routing``, which the core replaces on a reshard and never mutates).
    Its fields are declared in core.pxd (fastkin._cy.wire writes the PutRecords response from them)."""

    def __cinit__(self):
        self._seq = NULL

    def __dealloc__(self):
        free(self._seq)

    def __len__(self):
        return self._n

    def __getitem__(self, i):
        return self.records[i]

    def __iter__(self):
        return iter(self.records)

    @property
    def records(self):
        cdef Py_ssize_t i
        cdef Shard s
        cdef PutResult r
        if self._cache is None:
            out = []
            for i in range(self._n):
                s = <Shard>PyList_GET_ITEM(self._routing, self._pos[i])
                if self._seq[i] == <uint64_t>-1:
                    r = PutResult.__new__(PutResult)
                    r.error_code = "ProvisionedThroughputExceededException"
                    r.error_message = E.shard_throttled(s.shard_id, self._stream, self._account)
                else:
                    r = _ok_result(s, self._seq[i], self._ms[i])
                out.append(r)
            self._cache = out
        return self._cache


@cython.final
@cython.no_gc
@cython.freelist(10240)
cdef class Record:
    """A record read from a shard (the GetRecords Record shape, in snake_case). Its fields are declared in
    core.pxd (fastkin._cy.wire writes the GetRecords response from them)."""

    @property
    def sequence_number(self):
        return _format_seq(self._shard.created_secs, self._shard.index, self._seq, self._ms)

    @property
    def approximate_arrival_timestamp(self):
        return self._ms / 1000.0

    def __repr__(self):
        return (f"Record(sequence_number={self.sequence_number!r}, "
                f"partition_key={self.partition_key!r}, data={self.data[:32]!r})")


# ----------------------------------------------------------------------------------------------
# Shard log

cdef void _free_segment(Segment *g) noexcept nogil:
    if g != NULL:
        free(g.off)
        free(g.dlen)
        free(g.klen)
        free(g.ms)
        if g.filemap:
            munmap(g.arena, g.filemap)
        elif g.mapped:
            fk_huge_release(g.arena, g.mapped)
        else:
            free(g.arena)
        free(g)


cdef int _seal_segment(Segment *g) noexcept nogil:
    """Shrink a full segment's arrays and arena to fit (best effort: a failed shrink keeps them)."""
    cdef void *p
    if g.count == 0 or g.filemap:
        return 0
    if g.cap > g.count:
        # a failed shrink keeps the larger block, which stays valid, so each result is checked alone
        p = realloc(g.off, g.count * sizeof(uint32_t))
        if p != NULL: g.off = <uint32_t*>p
        p = realloc(g.dlen, g.count * sizeof(uint32_t))
        if p != NULL: g.dlen = <uint32_t*>p
        p = realloc(g.klen, g.count * sizeof(uint16_t))
        if p != NULL: g.klen = <uint16_t*>p
        p = realloc(g.ms, g.count * sizeof(int64_t))
        if p != NULL: g.ms = <int64_t*>p
        g.cap = g.count
    if g.mapped:
        if g.used:
            g.mapped = fk_huge_shrink(g.arena, g.mapped, g.used)
            g.acap = g.mapped
    elif g.used and g.used < g.acap:
        p = realloc(g.arena, g.used)
        if p != NULL:
            g.arena = <unsigned char*>p
            g.acap = g.used
    return 0


cdef int _grow_index(Segment *g) noexcept nogil:
    # doubling up to INDEX_STEP entries, then INDEX_STEP more at a time (bounded slack per shard)
    cdef uint32_t cap = (g.cap * 2 if g.cap < INDEX_STEP else g.cap + INDEX_STEP) if g.cap else 16
    cdef void *a
    cdef void *b
    cdef void *c
    cdef void *d
    if cap > SEG_MAX_RECORDS:
        cap = SEG_MAX_RECORDS
    a = realloc(g.off, cap * sizeof(uint32_t))
    if a == NULL: return -1
    g.off = <uint32_t*>a
    b = realloc(g.dlen, cap * sizeof(uint32_t))
    if b == NULL: return -1
    g.dlen = <uint32_t*>b
    c = realloc(g.klen, cap * sizeof(uint16_t))
    if c == NULL: return -1
    g.klen = <uint16_t*>c
    d = realloc(g.ms, cap * sizeof(int64_t))
    if d == NULL: return -1
    g.ms = <int64_t*>d
    g.cap = cap
    return 0


@cython.final
cdef class Shard:
    """One shard: its log, hash range and quota buckets."""

    def __cinit__(self):
        self._segs = NULL
        self._nseg = 0
        self._seg_head = 0
        self._seg_cap = 0

    def __init__(self, uint32_t index, start_hash, end_hash, int64_t created_secs, limits, bint meta_only=False):
        self.index = index
        self.shard_id = E.shard_name(index)
        self.start_hash = start_hash
        self.end_hash = end_hash
        self._shi = <uint64_t>(start_hash >> 64)
        self._slo = <uint64_t>(start_hash & 0xFFFFFFFFFFFFFFFF)
        self.created_secs = created_secs
        self.base = 0
        self.end = 0
        self._last_ms = 0
        self.closed = False
        self.meta_only = meta_only
        self._wb = <double>limits.write_bytes_per_second
        self._wr = <double>limits.write_records_per_second
        self._wt_set = False
        self._rc = <double>limits.read_calls_per_second
        self._rb = <double>limits.read_bytes_per_second
        self._rt_set = False
        self._penalty_until = -1e300
        memset(self._ctr, 0, sizeof(self._ctr))

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._segs != NULL:
            for i in range(self._nseg):
                _free_segment(self._segs[(self._seg_head + i) & (self._seg_cap - 1)])
            free(self._segs)

    cdef Segment* _new_segment(self, size_t need) except NULL:
        cdef Segment *g
        cdef Segment **ring
        cdef Py_ssize_t i, cap
        if self._nseg == self._seg_cap:
            cap = self._seg_cap * 2 if self._seg_cap else 4
            ring = <Segment**>malloc(cap * sizeof(Segment*))
            if ring == NULL:
                raise MemoryError()
            for i in range(self._nseg):
                ring[i] = self._segs[(self._seg_head + i) & (self._seg_cap - 1)]
            free(self._segs)
            self._segs = ring
            self._seg_head = 0
            self._seg_cap = cap
        if self._nseg:
            _seal_segment(self._segs[(self._seg_head + self._nseg - 1) & (self._seg_cap - 1)])
        g = <Segment*>malloc(sizeof(Segment))
        if g == NULL:
            raise MemoryError()
        g.base = self.end
        g.count = 0
        g.cap = 0
        g.off = NULL
        g.dlen = NULL
        g.klen = NULL
        g.ms = NULL
        g.used = 0
        g.mapped = 0
        g.filemap = 0
        g.acap = need if need > 256 else 256
        g.arena = <unsigned char*>malloc(g.acap)
        if g.arena == NULL or _grow_index(g) != 0:
            _free_segment(g)
            raise MemoryError()
        self._segs[(self._seg_head + self._nseg) & (self._seg_cap - 1)] = g
        self._nseg += 1
        return g

    cdef int _append(self, const char *data, size_t dlen, const char *key, size_t klen, int64_t ms) except -1:
        cdef Segment *g = NULL
        cdef size_t need = 0 if self.meta_only else dlen + klen
        cdef size_t acap
        cdef void *p
        if self._nseg:
            g = self._segs[(self._seg_head + self._nseg - 1) & (self._seg_cap - 1)]
            if (g.count >= SEG_MAX_RECORDS or g.used + need > SEG_MAX_BYTES
                    or (g.count and ms - g.ms[0] > SEG_MAX_AGE_MS) or g.filemap):
                g = NULL
        if g == NULL:
            g = self._new_segment(need)
        if g.count == g.cap and _grow_index(g) != 0:
            raise MemoryError()
        if g.used + need > g.acap:
            # NOTE: doubling up to 1 MiB, then 1 MiB more at a time: a segment is at most 64 MiB, so
            # growth stays amortised O(1) per record while an open segment wastes at most 1 MiB
            # (doubling alone measured 37 B/record of overhead at 65k records; this keeps it < 32).
            # NOTE: from HUGE_ARENA on, the arena moves (once) to its own SEG_MAX_BYTES mapping advised
            # for transparent huge pages and then grows in place, FK_HUGE at a time: first-touch page
            # faults were ~49 % of put_records time with 4 KiB pages (~90 ns per 128 B record on this
            # VM), ~22 ns with 2 MiB pages. Where mmap or THP is unavailable it is still one populate
            # call per 2 MiB (or the malloc path below).
            if g.mapped:
                acap = (g.used + need + HUGE_ARENA - 1) & ~(<size_t>HUGE_ARENA - 1)
                fk_prefault(g.arena + g.acap, acap - g.acap)
                g.acap = acap
            else:
                acap = g.acap
                while acap < g.used + need:
                    acap = acap * 2 if acap < ARENA_STEP else acap + ARENA_STEP
                p = NULL
                if HUGE_ARENA <= acap <= SEG_MAX_BYTES:
                    p = fk_huge_reserve(SEG_MAX_BYTES)
                if p != NULL:
                    memcpy(p, g.arena, g.used)
                    free(g.arena)
                    g.arena = <unsigned char*>p
                    g.mapped = SEG_MAX_BYTES
                    acap = (g.used + need + HUGE_ARENA - 1) & ~(<size_t>HUGE_ARENA - 1)
                    fk_prefault(g.arena + g.used, acap - g.used)
                    g.acap = acap
                else:
                    p = realloc(g.arena, acap)
                    if p == NULL:
                        raise MemoryError()
                    g.arena = <unsigned char*>p
                    g.acap = acap
                    if acap - g.used >= PREFAULT_MIN:
                        fk_prefault(g.arena + g.used, acap - g.used)
        if need:
            memcpy(g.arena + g.used, data, dlen)
            memcpy(g.arena + g.used + dlen, key, klen)
        g.off[g.count] = <uint32_t>g.used
        g.dlen[g.count] = <uint32_t>dlen
        g.klen[g.count] = <uint16_t>klen
        g.ms[g.count] = ms
        g.used += need
        g.count += 1
        self.end += 1
        return 0

    cdef Segment* _find(self, uint64_t pos) noexcept:
        """The segment holding seq index pos (base <= pos < end), by binary search."""
        cdef Py_ssize_t lo = 0, hi = self._nseg - 1, mid
        cdef Segment *g = self._segs[(self._seg_head + hi) & (self._seg_cap - 1)]
        if pos >= g.base:
            return g
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            if self._segs[(self._seg_head + mid) & (self._seg_cap - 1)].base <= pos:
                lo = mid
            else:
                hi = mid - 1
        return self._segs[(self._seg_head + lo) & (self._seg_cap - 1)]

    cdef int64_t _ms_at(self, uint64_t pos) noexcept:
        cdef Segment *g = self._find(pos)
        return g.ms[pos - g.base]

    cdef uint64_t _seek_ms(self, int64_t ms) noexcept:
        """First seq index >= base whose arrival is >= ms (end if none)."""
        cdef Py_ssize_t lo = 0, hi = self._nseg, mid
        cdef Segment *g
        cdef uint64_t a, b, m, pos
        if self.base >= self.end:
            return self.end
        # first segment whose last arrival >= ms
        while lo < hi:
            mid = (lo + hi) >> 1
            g = self._segs[(self._seg_head + mid) & (self._seg_cap - 1)]
            if g.count == 0 or g.ms[g.count - 1] < ms:
                lo = mid + 1
            else:
                hi = mid
        if lo == self._nseg:
            return self.end
        g = self._segs[(self._seg_head + lo) & (self._seg_cap - 1)]
        a = 0
        b = g.count
        while a < b:
            m = (a + b) >> 1
            if g.ms[m] < ms:
                a = m + 1
            else:
                b = m
        pos = g.base + a
        return pos if pos > self.base else self.base

    cdef void _trim_to(self, uint64_t pos) noexcept:
        """Move the trim horizon to pos and free every segment wholly below it."""
        cdef Segment *g
        if pos <= self.base:
            return
        self.base = pos
        while self._nseg > 1:
            g = self._segs[self._seg_head]
            if g.base + g.count > pos:
                break
            _free_segment(g)
            self._seg_head = (self._seg_head + 1) & (self._seg_cap - 1)
            self._nseg -= 1
        if self._nseg == 1 and self.base == self.end:
            g = self._segs[self._seg_head]
            if g.count and g.base + g.count <= pos:
                _free_segment(g)
                self._seg_head = 0
                self._nseg = 0

    def memory_bytes(self):
        """Bytes allocated for this shard's log (arenas, index arrays, segment headers)."""
        cdef Py_ssize_t i
        cdef Segment *g
        cdef size_t total = self._seg_cap * sizeof(Segment*)
        for i in range(self._nseg):
            g = self._segs[(self._seg_head + i) & (self._seg_cap - 1)]
            total += sizeof(Segment) + g.acap + g.cap * (2 * sizeof(uint32_t) + sizeof(uint16_t) + sizeof(int64_t))
        return total

    def _segment_count(self):
        """Live segments (for debugging; not part of the core contract)."""
        return self._nseg


# ----------------------------------------------------------------------------------------------
# Stream core

cdef inline bint _u128_le(uint64_t ahi, uint64_t alo, uint64_t bhi, uint64_t blo) noexcept nogil:
    return ahi < bhi or (ahi == bhi and alo <= blo)


cdef int _key_bytes(object key, Py_ssize_t i, const char **p, Py_ssize_t *n, bint auto=False) except -1:
    """Validate a partition key and point at its (cached) UTF-8 bytes. With ``auto`` (AUTO distribution) a
    missing key (None) is an empty one."""
    cdef Py_ssize_t chars
    if key is None:
        if not auto:
            raise E.missing_partition_key(None if i < 0 else i)
        p[0] = ""
        n[0] = 0
        return 0
    if not isinstance(key, str):
        raise E.bad_partition_key(None if i < 0 else i, key)
    chars = PyUnicode_GET_LENGTH(key)
    if chars < 1 or chars > PARTITION_KEY_MAX_CHARS:
        raise E.bad_partition_key(None if i < 0 else i, key)
    if PyUnicode_IS_COMPACT_ASCII(key):
        # NOTE: an ASCII str's characters are its UTF-8 bytes; skipping the try/except below (which
        # saves and restores the exception state) takes ~15 ns per key off put_records.
        p[0] = <const char*>PyUnicode_DATA(key)
        n[0] = chars
        return 0
    try:
        p[0] = PyUnicode_AsUTF8AndSize(key, n)
    except UnicodeEncodeError:
        raise E.bad_key_encoding(None if i < 0 else i) from None
    return 0


cdef object _data_bytes(object data, Py_ssize_t i):
    """data as a bytes object (bytes pass through; str is UTF-8 encoded; bytes-likes are copied)."""
    if PyBytes_CheckExact(data):
        return data
    if isinstance(data, str):
        return (<str>data).encode()
    try:
        return bytes(memoryview(data))
    except TypeError:
        raise E.bad_data(None if i < 0 else i, data) from None


cdef int _hash_of(object ehk, const char *kp, Py_ssize_t kl, uint64_t *hi, uint64_t *lo) except -1:
    cdef object v
    if ehk is None:
        fk_md5_u128(<const unsigned char*>kp, <size_t>kl, hi, lo)
    else:
        v = parse_hash_key(ehk)
        hi[0] = <uint64_t>(v >> 64)
        lo[0] = <uint64_t>(v & 0xFFFFFFFFFFFFFFFF)
    return 0


cdef void _hash_some(Py_ssize_t n, const char **kp, Py_ssize_t *kl, bint *ehk, uint64_t *hhi,
                     uint64_t *hlo) noexcept:
    """MD5 of the batch entries without an explicit hash key (ehk[i] false): all keys go through
    the lanes (a few wasted hashes on this rare path), then only those entries are kept."""
    cdef uint64_t hi[BATCH_MAX]
    cdef uint64_t lo[BATCH_MAX]
    cdef Py_ssize_t i
    fk_md5_u128_many(<size_t>n, <const unsigned char**>kp, <const size_t*>kl, hi, lo)
    for i in range(n):
        if not ehk[i]:
            hhi[i] = hi[i]
            hlo[i] = lo[i]


@cython.final
cdef class StreamCore:
    """One stream's data plane: shard logs, routing, sequence numbers and quotas."""

    def __cinit__(self):
        self._ohi = NULL
        self._olo = NULL
        self._nopen = 0
        self._min_ms = INT64_MAX
        self._gate_lo = INFINITY       # closed until the stream sets it
        self._gate_hi = -INFINITY

    def __init__(self, str name not None, str account not None, limits not None, bint quotas,
                 Py_ssize_t max_record_bytes, bint store_payload=True):
        self.name = name
        self.account = account
        self.limits = limits
        self.quotas = quotas
        self._max_record_bytes = max_record_bytes
        self._max_record_bytes_hw = max_record_bytes
        self.store_payload = store_payload
        self.shards = {}
        self._open = []
        self._wbps = <double>limits.write_bytes_per_second
        self._wrps = <double>limits.write_records_per_second
        self._rcps = <double>limits.read_calls_per_second
        self._rbps = <double>limits.read_bytes_per_second
        self._penalty = <double>limits.read_penalty_seconds
        self._get_max_bytes = limits.get_records_max_bytes
        self._put_max_bytes = limits.put_records_max_bytes

    def __dealloc__(self):
        free(self._ohi)
        free(self._olo)

    @property
    def max_record_bytes(self):
        """Largest record accepted (data + key bytes); settable (UpdateMaxRecordSize)."""
        return self._max_record_bytes

    @max_record_bytes.setter
    def max_record_bytes(self, Py_ssize_t value):
        self._max_record_bytes = value
        if value > self._max_record_bytes_hw:
            self._max_record_bytes_hw = value

    # -- topology -------------------------------------------------------------------------
    cdef int _rebuild_routing(self, list opened) except -1:
        """Route to ``opened`` (a new list, never mutated afterwards: PutRecordsResults keep a reference
        to the list they were routed with and name shards by their position in it)."""
        cdef Py_ssize_t i, n
        cdef Shard s
        opened.sort(key=lambda sh: sh.start_hash)
        self._open = opened
        n = len(self._open)
        free(self._ohi)
        free(self._olo)
        self._ohi = <uint64_t*>malloc((n + 1) * sizeof(uint64_t))
        self._olo = <uint64_t*>malloc((n + 1) * sizeof(uint64_t))
        if self._ohi == NULL or self._olo == NULL:
            self._nopen = 0
            raise MemoryError()
        for i in range(n):
            s = <Shard>self._open[i]
            self._ohi[i] = s._shi
            self._olo[i] = s._slo
        self._nopen = n
        return 0

    def add_shard(self, uint32_t index, start_hash, end_hash, int64_t created_secs):
        s = Shard(index, start_hash, end_hash, created_secs, self.limits, not self.store_payload)
        with self._lock:
            self.shards[index] = s
            self._rebuild_routing(self._open + [s])
            if FASTKIN_DEBUG:
                self._check_routing()

    def reshard(self, list close not None, list add not None):
        """Atomically close shards (no longer routed to) and add new ones (index, start, end, created_secs, open);
        a shard added closed is one that lived only inside this change (UpdateShardCount's intermediates).

        The caller guarantees that the open shards still tile the hash space afterwards."""
        cdef Shard s
        new = []
        for index, start, end, created, is_open in add:
            s = Shard(index, start, end, created, self.limits, not self.store_payload)
            s.closed = not is_open
            new.append(s)
        with self._lock:
            for index in close:                 # check everything first: a failed reshard changes nothing
                if index not in self.shards:
                    raise KeyError(index)
                if (<Shard>self.shards[index]).closed:
                    raise ValueError(f"shard {index} is already closed")
            opened = list(self._open)
            for index in close:
                s = <Shard>self.shards[index]
                opened.remove(s)
                s.closed = True
            for s in new:
                self.shards[s.index] = s
                if not s.closed:
                    opened.append(s)
            self._rebuild_routing(opened)
            if FASTKIN_DEBUG:
                for s in new:
                    self._check_ring(s)
                self._check_routing()

    def drop_shard(self, uint32_t index):
        """Forget a closed shard whose records have all expired (its memory is freed)."""
        with self._lock:
            del self.shards[index]
            if FASTKIN_DEBUG:
                self._check_routing()

    def restore_record(self, uint32_t index, uint64_t seq_index, int64_t arrival_ms, bytes data not None,
                       str key not None):
        """Put back a record read from a data directory, with its original position and arrival time (no
        quota, no routing; the shard may be closed). ``seq_index`` must be the shard's end, or above it while
        the shard holds no readable record (the positions in between expired before a restart): the
        horizon then moves up to it. Arrivals never go back in a shard. Counts as an accepted write."""
        cdef Shard s = <Shard>self.shards[index]
        cdef bytes kb = key.encode("utf-8")
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data) + PyBytes_GET_SIZE(kb)
        cdef Py_ssize_t i
        with self._lock:
            if seq_index < s.end or (seq_index > s.end and s.base < s.end):
                raise ValueError(f"cannot restore position {seq_index} on {s.shard_id}: its log holds "
                                 f"[{s.base}, {s.end})")
            if arrival_ms < s._last_ms:
                raise ValueError(f"cannot restore an arrival at {arrival_ms} ms on {s.shard_id} after one at "
                                 f"{s._last_ms} ms")
            if size > self._max_record_bytes_hw:
                self._max_record_bytes_hw = size
            if seq_index > s.end:
                # no readable record: at most one (empty or expired) segment is left; the log restarts at seq_index
                for i in range(s._nseg):
                    _free_segment(s._segs[(s._seg_head + i) & (s._seg_cap - 1)])
                s._nseg = 0
                s._seg_head = 0
                s.base = seq_index
                s.end = seq_index
            s._last_ms = arrival_ms
            if arrival_ms < self._min_ms:
                self._min_ms = arrival_ms
            s._append(PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data), PyBytes_AS_STRING(kb),
                      <size_t>PyBytes_GET_SIZE(kb), arrival_ms)
            s._ctr[C_IN_RECORDS] = s.end
            s._ctr[C_IN_BYTES] += <uint64_t>size
            if FASTKIN_DEBUG:
                self._debug_after_append(s)

    def adopt_segment(self, uint32_t index, uint64_t seq_index, str path not None, size_t size, ms, off, dlen,
                      klen):
        """Take a closed segment file of a data directory as the shard's next records without copying them:
        the file's first ``size`` bytes are mapped read-only and record i (position ``seq_index + i``) is
        ``dlen[i]`` data bytes then ``klen[i]`` key bytes at byte ``off[i]``, arriving at ``ms[i]`` (the
        arrays: buffers of i64, u32, u32, u16 in host order, from the file's index). The same rules as
        restore_record (position at the end, or above it on a shard holding no readable record; arrivals
        never go back) and the arrays are checked against the file (ValueError; nothing changes). The
        mapping is released when retention frees the segment. Counts as accepted writes."""
        cdef Shard s = <Shard>self.shards[index]
        cdef Py_buffer bms, boff, bdlen, bklen
        cdef const int64_t *vms
        cdef const uint32_t *voff
        cdef const uint32_t *vdlen
        cdef const uint16_t *vklen
        cdef Py_ssize_t n, i, k
        cdef size_t end_prev = 0, rec, biggest = 0, total = 0
        cdef Segment *g = NULL
        cdef Segment *last
        cdef Segment **ring
        cdef Py_ssize_t cap
        cdef void *m
        cdef int fd
        cdef bytes bpath = os.fsencode(path)
        if s.meta_only:
            raise ValueError(f"{s.shard_id} stores no payloads: its records are restored one by one")
        if size == 0 or size > 0xFFFFFFFF:
            raise ValueError(f"a segment file of {size} bytes cannot be mapped (1 byte to 4 GiB)")
        PyObject_GetBuffer(ms, &bms, PyBUF_SIMPLE)
        PyObject_GetBuffer(off, &boff, PyBUF_SIMPLE)
        PyObject_GetBuffer(dlen, &bdlen, PyBUF_SIMPLE)
        PyObject_GetBuffer(klen, &bklen, PyBUF_SIMPLE)
        try:
            n = bms.len // 8
            if (n == 0 or bms.len != n * 8 or boff.len != n * 4 or bdlen.len != n * 4 or bklen.len != n * 2):
                raise ValueError(f"adopt_segment needs 1 or more records and arrays of one length (bytes: "
                                 f"{bms.len}, {boff.len}, {bdlen.len}, {bklen.len})")
            vms = <const int64_t*>bms.buf
            voff = <const uint32_t*>boff.buf
            vdlen = <const uint32_t*>bdlen.buf
            vklen = <const uint16_t*>bklen.buf
            for i in range(n):
                if i and vms[i] < vms[i - 1]:
                    raise ValueError(f"{path}: record {i} arrives before record {i - 1}")
                rec = <size_t>vdlen[i] + vklen[i]
                if voff[i] < end_prev or voff[i] + rec > size:
                    raise ValueError(f"{path}: record {i} at bytes [{voff[i]}, {voff[i] + rec}) overlaps the one "
                                     f"before or runs past the file's {size} bytes")
                end_prev = voff[i] + rec
                total += rec
                if rec > biggest:
                    biggest = rec
            return self._adopt(s, seq_index, path, bpath, size, n, vms, voff, vdlen, vklen, biggest, total)
        finally:
            PyBuffer_Release(&bms)
            PyBuffer_Release(&boff)
            PyBuffer_Release(&bdlen)
            PyBuffer_Release(&bklen)

    cdef Py_ssize_t _adopt(self, Shard s, uint64_t seq_index, str path, bytes bpath, size_t size, Py_ssize_t n,
                           const int64_t *vms, const uint32_t *voff, const uint32_t *vdlen, const uint16_t *vklen,
                           size_t biggest, size_t total) except -1:
        cdef Segment *g = NULL
        cdef Segment *last
        cdef Segment **ring
        cdef Py_ssize_t cap, k
        cdef void *m
        cdef int fd
        cdef struct_stat st
        fd = c_open(bpath, O_RDONLY | O_CLOEXEC)
        if fd < 0:
            raise OSError(errno, os.strerror(errno), path)
        if fstat(fd, &st) != 0 or <size_t>st.st_size < size:
            c_close(fd)
            raise ValueError(f"{path} is shorter than the {size} bytes its index covers")
        m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0)
        c_close(fd)
        if m == MAP_FAILED:
            raise OSError(errno, os.strerror(errno), path)
        g = <Segment*>malloc(sizeof(Segment))
        if g == NULL:
            munmap(m, size)
            raise MemoryError()
        try:
            memset(g, 0, sizeof(Segment))
            g.arena = <unsigned char*>m
            g.filemap = size
            g.used = size
            g.acap = size
            g.off = <uint32_t*>malloc(n * sizeof(uint32_t))
            g.dlen = <uint32_t*>malloc(n * sizeof(uint32_t))
            g.klen = <uint16_t*>malloc(n * sizeof(uint16_t))
            g.ms = <int64_t*>malloc(n * sizeof(int64_t))
            if g.off == NULL or g.dlen == NULL or g.klen == NULL or g.ms == NULL:
                raise MemoryError()
            memcpy(g.off, voff, n * sizeof(uint32_t))
            memcpy(g.dlen, vdlen, n * sizeof(uint32_t))
            memcpy(g.klen, vklen, n * sizeof(uint16_t))
            memcpy(g.ms, vms, n * sizeof(int64_t))
            g.count = <uint32_t>n
            g.cap = <uint32_t>n
            with self._lock:
                if seq_index < s.end or (seq_index > s.end and s.base < s.end):
                    raise ValueError(f"cannot adopt position {seq_index} on {s.shard_id}: its log holds "
                                     f"[{s.base}, {s.end})")
                if vms[0] < s._last_ms:
                    raise ValueError(f"cannot adopt an arrival at {vms[0]} ms on {s.shard_id} after one at "
                                     f"{s._last_ms} ms")
                if seq_index > s.end or (s._nseg and s.base == s.end):
                    # nothing readable is left: the log restarts at seq_index (as restore_record)
                    for k in range(s._nseg):
                        _free_segment(s._segs[(s._seg_head + k) & (s._seg_cap - 1)])
                    s._nseg = 0
                    s._seg_head = 0
                    s.base = seq_index
                    s.end = seq_index
                if s._nseg == s._seg_cap:
                    cap = s._seg_cap * 2 if s._seg_cap else 4
                    ring = <Segment**>malloc(cap * sizeof(Segment*))
                    if ring == NULL:
                        raise MemoryError()
                    for k in range(s._nseg):
                        ring[k] = s._segs[(s._seg_head + k) & (s._seg_cap - 1)]
                    free(s._segs)
                    s._segs = ring
                    s._seg_head = 0
                    s._seg_cap = cap
                if s._nseg:
                    last = s._segs[(s._seg_head + s._nseg - 1) & (s._seg_cap - 1)]
                    _seal_segment(last)
                g.base = s.end
                s._segs[(s._seg_head + s._nseg) & (s._seg_cap - 1)] = g
                s._nseg += 1
                g = NULL                     # the shard owns it now
                s.end += <uint64_t>n
                s._last_ms = vms[n - 1]
                if vms[0] < self._min_ms:
                    self._min_ms = vms[0]
                if <Py_ssize_t>biggest > self._max_record_bytes_hw:
                    self._max_record_bytes_hw = <Py_ssize_t>biggest
                s._ctr[C_IN_RECORDS] = s.end
                s._ctr[C_IN_BYTES] += <uint64_t>total
                if FASTKIN_DEBUG:
                    self._check_ring(s)
                    self._check_segment(s, s._nseg - 1)
        finally:
            if g != NULL:
                _free_segment(g)
        return n

    def shard_end(self, uint32_t index):
        return (<Shard>self.shards[index]).end

    def shard_horizon(self, uint32_t index):
        return (<Shard>self.shards[index]).base

    def seek_timestamp(self, uint32_t index, int64_t ts_ms):
        cdef Shard s = <Shard>self.shards[index]
        with self._lock:
            return s._seek_ms(ts_ms)

    def arrival_ms(self, uint32_t index, uint64_t seq_index):
        cdef Shard s = <Shard>self.shards[index]
        with self._lock:
            if not s.base <= seq_index < s.end:
                raise IndexError(seq_index)
            return s._ms_at(seq_index)

    # -- routing --------------------------------------------------------------------------
    cdef Py_ssize_t _route_pos(self, uint64_t hi, uint64_t lo) noexcept:
        """Position in _open of the open shard whose range holds (hi, lo): the last one whose start <= hash."""
        cdef Py_ssize_t a = 0, b = self._nopen - 1, m
        while a < b:
            m = (a + b + 1) >> 1
            if _u128_le(self._ohi[m], self._olo[m], hi, lo):
                a = m
            else:
                b = m - 1
        return a

    cdef Shard _route(self, uint64_t hi, uint64_t lo):
        return <Shard>PyList_GET_ITEM(self._open, self._route_pos(hi, lo))

    def shard_for_key(self, partition_key):
        cdef const char *kp
        cdef Py_ssize_t kl
        cdef uint64_t hi, lo
        _key_bytes(partition_key, -1, &kp, &kl)
        fk_md5_u128(<const unsigned char*>kp, <size_t>kl, &hi, &lo)
        with self._lock:
            return self._route(hi, lo).index

    # -- quotas (token buckets holding one second's allowance, refilled continuously) -------
    cdef bint _write_ok(self, Shard s, Py_ssize_t size, double now) noexcept:
        cdef double dt, need
        if not self.quotas:
            return True
        if not s._wt_set:
            s._wt = now
            s._wt_set = True
        elif now > s._wt:
            dt = now - s._wt
            s._wb = min(self._wbps, s._wb + self._wbps * dt)
            s._wr = min(self._wrps, s._wr + self._wrps * dt)
            s._wt = now
        need = <double>size if <double>size < self._wbps else self._wbps
        if s._wr >= 1.0 and s._wb >= need:
            s._wr -= 1.0
            s._wb -= <double>size
            return True
        return False

    cdef bint _read_ok(self, Shard s, double now) noexcept:
        cdef double dt
        if not self.quotas:
            return True
        if not s._rt_set:
            s._rt = now
            s._rt_set = True
        elif now > s._rt:
            dt = now - s._rt
            s._rc = min(self._rcps, s._rc + self._rcps * dt)
            s._rb = min(self._rbps, s._rb + self._rbps * dt)
            s._rt = now
        return now >= s._penalty_until and s._rc >= 1.0 and s._rb > 0.0

    # -- put ------------------------------------------------------------------------------
    def set_io_gate(self, double lo, double hi):
        """put_record_io puts only while lo <= clock() < hi (the stream is ready, not being deleted,
        and no per-second tick is due); outside it returns (clock value,) and does nothing."""
        self._gate_lo = lo
        self._gate_hi = hi

    def put_record_io(self, data, key, ehk, clock):
        """put_record at ``clock()``, when that time is inside the I/O gate (see set_io_gate) and is a
        float; otherwise ``(time,)`` (nothing done: the stream handles the time, then calls put_record)."""
        t = clock()
        if type(t) is not float or not (self._gate_lo <= <double>t < self._gate_hi):
            return (t,)
        return self._put_one(data, key, ehk, <double>t)

    def put_record(self, data, key, ehk, double now):
        return self._put_one(data, key, ehk, now)

    cdef object _put_one(self, data, key, ehk, double now):
        cdef const char *kp
        cdef Py_ssize_t kl, dl, size
        cdef uint64_t hi, lo, seq
        cdef int64_t ms
        cdef Shard s
        cdef bytes b = _data_bytes(data, -1)
        _key_bytes(key, -1, &kp, &kl, self.auto)
        dl = PyBytes_GET_SIZE(b)
        size = dl + kl
        if size > self._max_record_bytes:
            raise E.record_too_large(None, size, self._max_record_bytes)
        if not self.auto:
            _hash_of(ehk, kp, kl, &hi, &lo)
        with self._lock:
            if self.auto:               # AUTO: no MD5, the open shards in turn
                s = <Shard>PyList_GET_ITEM(self._open, self._rr % self._nopen)
                self._rr += 1
            else:
                s = self._route(hi, lo)
            if not self._write_ok(s, size, now):
                s._ctr[C_W_THR_RECORDS] += 1
                s._ctr[C_W_THR_BYTES] += <uint64_t>size
                if FASTKIN_DEBUG:
                    self._check_buckets(s)
                raise E.ProvisionedThroughputExceededException(E.shard_throttled(s.shard_id, self.name, self.account))
            s._ctr[C_IN_RECORDS] += 1
            s._ctr[C_IN_BYTES] += <uint64_t>size
            ms = now_ms(now)
            if ms < s._last_ms:
                ms = s._last_ms
            s._last_ms = ms
            if ms < self._min_ms:
                self._min_ms = ms
            seq = s.end
            s._append(PyBytes_AS_STRING(b), <size_t>dl, kp, <size_t>kl, ms)
            if FASTKIN_DEBUG:
                self._debug_after_append(s)
            return _ok_result(s, seq, ms)

    def put_records(self, records, double now):
        cdef Py_ssize_t n, i, total = 0, size, rl
        cdef PyObject *rec
        cdef object data, key, ehk
        cdef list keep = None
        cdef PutRecordsResult res
        cdef Shard s
        cdef int64_t ms, base_ms
        cdef bint is_list
        cdef Py_ssize_t n_ehk = 0, k
        # NOTE: per-call scratch on the C stack (~26 KiB). It was per-stream, filled before the lock, and
        # pass 1 can run Python code (explicit hash keys, bytes-like data): a concurrent put_records
        # then overwrote another request's pointers and hashes (records stored with other data).
        cdef const char *_dp[BATCH_MAX]
        cdef Py_ssize_t _dl[BATCH_MAX]
        cdef const char *_kp[BATCH_MAX]
        cdef Py_ssize_t _kl[BATCH_MAX]
        cdef uint64_t _hhi[BATCH_MAX]
        cdef uint64_t _hlo[BATCH_MAX]
        cdef bint _ehk[BATCH_MAX]
        if not isinstance(records, (list, tuple)):
            raise E.ValidationException(
                f"records must be a list of (data, partition_key[, explicit_hash_key]) tuples, got {type(records).__name__}")
        is_list = isinstance(records, list)
        n = len(records)
        if n < 1:
            raise E.validation_error("[]", "records", "have length greater than or equal to 1")
        if n > PUT_RECORDS_MAX_RECORDS:
            raise E.too_many_records(n, PUT_RECORDS_MAX_RECORDS)
        # Pass 1: validate everything and hash; nothing is stored unless the whole request is valid.
        for i in range(n):
            rec = PyList_GET_ITEM(records, i) if is_list else PyTuple_GET_ITEM(records, i)
            if isinstance(<object>rec, tuple):
                rl = PyTuple_GET_SIZE(<object>rec)
                if rl != 2 and rl != 3:
                    raise E.ValidationException(
                        f"records.{i + 1}.member must be a (data, partition_key[, explicit_hash_key]) tuple")
                data = <object>PyTuple_GET_ITEM(<object>rec, 0)
                key = <object>PyTuple_GET_ITEM(<object>rec, 1)
                ehk = <object>PyTuple_GET_ITEM(<object>rec, 2) if rl == 3 else None
            elif isinstance(<object>rec, list) and 2 <= len(<object>rec) <= 3:
                data = (<object>rec)[0]
                key = (<object>rec)[1]
                ehk = (<object>rec)[2] if len(<object>rec) == 3 else None
            else:
                raise E.ValidationException(
                    f"records.{i + 1}.member must be a (data, partition_key[, explicit_hash_key]) tuple")
            if not PyBytes_CheckExact(data):
                data = _data_bytes(data, i)
                if keep is None:
                    keep = []
                keep.append(data)
            _key_bytes(key, i, &_kp[i], &_kl[i], self.auto)
            _dp[i] = PyBytes_AS_STRING(data)
            _dl[i] = PyBytes_GET_SIZE(data)
            size = _dl[i] + _kl[i]
            if size > self._max_record_bytes:
                raise E.record_too_large(i, size, self._max_record_bytes)
            total += size
            if ehk is not None and not self.auto:
                _hash_of(ehk, _kp[i], _kl[i], &_hhi[i], &_hlo[i])
                _ehk[i] = True
                n_ehk += 1
            else:
                _ehk[i] = False
        # NOTE: the MD5s are computed here, all at once, so that short keys go through the lockstep
        # lanes (fk_md5_u128_many): ~35-45 ns per 10-36 byte key instead of ~100-135 ns one by one.
        if self.auto:
            pass                        # AUTO routes without hashing
        elif n_ehk == 0:
            fk_md5_u128_many(<size_t>n, <const unsigned char**>_kp, <const size_t*>_kl,
                             _hhi, _hlo)
        elif n_ehk < n:
            _hash_some(n, _kp, _kl, _ehk, _hhi, _hlo)
        if total > self._put_max_bytes:
            raise E.records_size_exceeded(self._put_max_bytes)
        # Pass 2: route, charge quotas, append.
        res = PutRecordsResult.__new__(PutRecordsResult)
        res._n = n
        res._stream = self.name
        res._account = self.account
        res._seq = <uint64_t*>malloc(n * (2 * sizeof(uint64_t) + sizeof(uint32_t)))
        if res._seq == NULL:
            raise MemoryError()
        res._ms = <int64_t*>(res._seq + n)
        res._pos = <uint32_t*>(res._ms + n)
        base_ms = now_ms(now)
        with self._lock:
            if base_ms < self._min_ms:      # every arrival of this batch is >= base_ms
                self._min_ms = base_ms
            res._routing = self._open
            for i in range(n):
                if self.auto:
                    k = self._rr % self._nopen
                    self._rr += 1
                else:
                    k = self._route_pos(_hhi[i], _hlo[i])
                res._pos[i] = <uint32_t>k
                s = <Shard>PyList_GET_ITEM(self._open, k)
                size = _dl[i] + _kl[i]
                s._ctr[C_PR_RECORDS] += 1
                if self._write_ok(s, size, now):
                    s._ctr[C_IN_RECORDS] += 1
                    s._ctr[C_IN_BYTES] += <uint64_t>size
                    ms = base_ms if base_ms >= s._last_ms else s._last_ms
                    s._last_ms = ms
                    res._seq[i] = s.end
                    res._ms[i] = ms
                    s._append(_dp[i], <size_t>_dl[i], _kp[i], <size_t>_kl[i], ms)
                    if FASTKIN_DEBUG:
                        self._debug_after_append(s)
                else:
                    res._seq[i] = <uint64_t>-1
                    res._ms[i] = 0
                    res.failed_record_count += 1
                    s._ctr[C_PR_THROTTLED] += 1
                    s._ctr[C_W_THR_RECORDS] += 1
                    s._ctr[C_W_THR_BYTES] += <uint64_t>size
                    if FASTKIN_DEBUG:
                        self._check_buckets(s)
        return res

    # -- read -----------------------------------------------------------------------------
    def get_records(self, uint32_t index, uint64_t pos, object limit, double now, bint quota=True):
        """Read from position ``pos`` (clamped to the trim horizon): (records, next_pos, millis_behind).
        ``quota=False`` reads outside the shard's shared read quota (enhanced fan-out has its own pipe)."""
        cdef Py_ssize_t nmax
        cdef Shard s
        cdef Segment *g
        cdef Py_ssize_t nbytes = 0, size, cap = self._get_max_bytes, got = 0
        cdef uint64_t j
        cdef bint cut = False
        cdef Record r
        cdef int64_t behind = 0
        cdef list out = []
        if not 1 <= limit <= GET_RECORDS_MAX_RECORDS:
            raise E.validation_error(limit, "limit", f"have value between 1 and {GET_RECORDS_MAX_RECORDS}")
        nmax = limit
        with self._lock:
            s = <Shard>self.shards[index]
            if quota and not self._read_ok(s, now):
                s._ctr[C_R_THR_CALLS] += 1
                if FASTKIN_DEBUG:
                    self._check_buckets(s)
                raise E.ProvisionedThroughputExceededException(E.shard_throttled(s.shard_id, self.name, self.account))
            if pos < s.base:
                pos = s.base
            while pos < s.end and got < nmax:
                g = s._find(pos)
                if g.filemap and not g.populated:
                    g.populated = 1                 # first read of an adopted file: map its pages at once
                    fk_populate_read(g.arena, g.filemap)
                j = pos - g.base
                while j < g.count and got < nmax:
                    size = g.dlen[j] + g.klen[j]
                    if nbytes + size > cap:
                        cut = True
                        break
                    nbytes += size
                    r = Record.__new__(Record)
                    if s.meta_only:
                        r.data = b""
                        r.partition_key = ""
                    else:
                        r.data = PyBytes_FromStringAndSize(<char*>g.arena + g.off[j], g.dlen[j])
                        r.partition_key = _key_str(<char*>g.arena + g.off[j] + g.dlen[j], g.klen[j])
                    r._shard = s
                    r._seq = pos
                    r._ms = g.ms[j]
                    out.append(r)
                    got += 1
                    pos += 1
                    j += 1
                if cut:
                    break
            if self.quotas and quota:
                s._rc -= 1.0
                s._rb -= <double>nbytes
                if cut or nbytes >= cap:
                    s._penalty_until = now + self._penalty
            if pos < s.end:
                behind = now_ms(now) - s._ms_at(pos)
                if behind < 0:
                    behind = 0
            s._ctr[C_OUT_BYTES] += <uint64_t>nbytes
            s._ctr[C_OUT_RECORDS] += <uint64_t>got
            s._ctr[C_GET_CALLS] += 1
            if <uint64_t>behind > s._ctr[C_AGE_MAX]:
                s._ctr[C_AGE_MAX] = <uint64_t>behind
            if FASTKIN_DEBUG:
                self._check_buckets(s)
            return out, pos, behind

    # -- retention ------------------------------------------------------------------------
    def trim(self, double now, double retention_secs):
        """Drop records that arrived before now - retention; returns how many were dropped."""
        cdef int64_t cutoff = now_ms(now) - <int64_t>floor(retention_secs * 1000.0)
        cdef int64_t oldest, new_min = INT64_MAX
        cdef Shard s
        cdef Segment *g
        cdef uint64_t pos, dropped = 0
        with self._lock:
            # NOTE: O(1) when nothing is old enough: _min_ms is a lower bound of every stored arrival.
            # Streams call trim once per engine-second; scanning 1,000 shards (a binary search each)
            # cost 100-170 us per call even when nothing expired.
            if cutoff <= self._min_ms:
                return 0
            for s in self.shards.values():
                if s.base < s.end:
                    g = s._segs[s._seg_head]          # the oldest segment holds base
                    oldest = g.ms[s.base - g.base]
                    if oldest < cutoff:
                        pos = s._seek_ms(cutoff)
                        dropped += pos - s.base
                        s._trim_to(pos)
                        if s.base < s.end:
                            g = s._segs[s._seg_head]
                            oldest = g.ms[s.base - g.base]
                        else:
                            oldest = INT64_MAX
                    if oldest < new_min:
                        new_min = oldest
            self._min_ms = new_min
            if FASTKIN_DEBUG:
                for s in self.shards.values():
                    self._check_ring(s)
                self._check_min_ms()
        return dropped

    def counters(self, indices, bint reset_age=False):
        """Cumulative counters of the given shards as a uint64 array (len(indices), NCTR); see core.pxd C_*.
        ``reset_age`` zeroes each shard's max-iterator-age after all rows are read (a shard listed
        twice shows the same values in both rows, as in the reference core)."""
        cdef Py_ssize_t i, j, n = len(indices)
        cdef Shard s
        out = np.zeros((n, NCTR), dtype=np.uint64)
        cdef uint64_t[:, ::1] view = out
        with self._lock:
            for i in range(n):
                s = <Shard>self.shards[indices[i]]
                for j in range(NCTR):
                    view[i, j] = s._ctr[j]
            if reset_age:
                for i in range(n):
                    (<Shard>self.shards[indices[i]])._ctr[C_AGE_MAX] = 0
        return out

    def record_count(self):
        cdef Shard s
        cdef uint64_t n = 0
        for s in self.shards.values():
            n += s.end - s.base
        return n

    def memory_bytes(self):
        cdef Shard s
        with self._lock:
            return sum([s.memory_bytes() for s in self.shards.values()])

    # -- invariants (listed at the top of core.pxd) ------------------------------------------
    def check_invariants(self):
        """Check every invariant of this core's state now (O(records)); CorruptStateError names the
        first broken one. Debug builds (DEBUG) also check after every mutation."""
        with self._lock:
            self._check_all()

    cdef int _check_all(self) except -1:
        cdef Shard s
        cdef Py_ssize_t k
        for s in self.shards.values():
            self._check_ring(s)
            for k in range(s._nseg):
                self._check_segment(s, k)
            self._check_buckets(s)
        self._check_routing()
        self._check_min_ms()
        return 0

    cdef int _check_ring(self, Shard s) except -1:
        """O(segments): ring bounds, contiguous segment bases, base/end against the ring, per-segment sizes."""
        cdef Py_ssize_t k, mask
        cdef Segment *g
        cdef Segment *first
        cdef Segment *last
        cdef Segment *prev = NULL
        if s._seg_cap == 0:
            if s._segs != NULL or s._nseg != 0 or s._seg_head != 0:
                _corrupt("an empty ring has no segments", s, self.name,
                         f"segs_null={s._segs == NULL}, nseg={s._nseg}, head={s._seg_head}")
        elif (s._seg_cap & (s._seg_cap - 1)) != 0 or s._segs == NULL:
            _corrupt("ring capacity is a power of two", s, self.name, f"seg_cap={s._seg_cap}")
        if not (0 <= s._seg_head and (s._seg_head < s._seg_cap or s._seg_cap == 0)):
            _corrupt("ring head < ring capacity", s, self.name, f"head={s._seg_head}, seg_cap={s._seg_cap}")
        if not 0 <= s._nseg <= s._seg_cap:
            _corrupt("0 <= segments <= ring capacity", s, self.name, f"nseg={s._nseg}, seg_cap={s._seg_cap}")
        if s.base > s.end:
            _corrupt("base <= end", s, self.name, f"base={s.base}, end={s.end}")
        if s.end != s._ctr[C_IN_RECORDS]:
            _corrupt("end == accepted records", s, self.name, f"end={s.end}, accepted={s._ctr[C_IN_RECORDS]}")
        if s._nseg == 0:
            if s.base != s.end:
                _corrupt("a shard without segments has base == end", s, self.name, f"base={s.base}, end={s.end}")
            return 0
        mask = s._seg_cap - 1
        for k in range(s._nseg):
            g = s._segs[(s._seg_head + k) & mask]
            if g == NULL:
                _corrupt("live ring slots hold a segment", s, self.name, f"segment={k}")
            if prev != NULL and g.base != prev.base + prev.count:
                _corrupt("segment bases contiguous", s, self.name,
                         f"segment={k}, base={g.base}, previous base={prev.base}, previous count={prev.count}")
            if g.count > g.cap or (g.cap > SEG_MAX_RECORDS and not g.filemap):
                _corrupt("count <= index capacity <= SEG_MAX_RECORDS", s, self.name,
                         f"segment={k}, count={g.count}, cap={g.cap}")
            if g.count == 0 and k != s._nseg - 1:
                _corrupt("only the newest segment may be empty", s, self.name, f"segment={k}, nseg={s._nseg}")
            if g.filemap and (g.used != g.filemap or g.mapped or s.meta_only or g.count == 0):
                _corrupt("a file segment maps its whole file and holds records", s, self.name,
                         f"segment={k}, used={g.used}, filemap={g.filemap}, mapped={g.mapped}, count={g.count}")
            if not g.filemap and (g.used > g.acap or g.used > SEG_MAX_BYTES or (g.mapped and g.acap > g.mapped)):
                _corrupt("used <= acap (<= mapped), used <= SEG_MAX_BYTES", s, self.name,
                         f"segment={k}, used={g.used}, acap={g.acap}, mapped={g.mapped}")
            if s.meta_only and g.used != 0:
                _corrupt("metadata-only segments store no bytes", s, self.name, f"segment={k}, used={g.used}")
            if g.count and g.ms[g.count - 1] - g.ms[0] > SEG_MAX_AGE_MS and not g.filemap:
                _corrupt("a segment spans at most SEG_MAX_AGE_MS of arrivals", s, self.name,
                         f"segment={k}, first ms={g.ms[0]}, last ms={g.ms[g.count - 1]}")
            prev = g
        first = s._segs[s._seg_head]
        last = prev
        if not first.base <= s.base <= first.base + first.count:
            _corrupt("the oldest segment holds base", s, self.name,
                     f"base={s.base}, oldest segment=[{first.base}, {first.base + first.count})")
        if s._nseg > 1 and s.base == first.base + first.count:
            _corrupt("a wholly trimmed segment is freed", s, self.name,
                     f"base={s.base}, oldest segment=[{first.base}, {first.base + first.count}), nseg={s._nseg}")
        if last.base + last.count != s.end:
            _corrupt("the newest segment ends at end", s, self.name,
                     f"end={s.end}, newest segment=[{last.base}, {last.base + last.count})")
        return 0

    cdef int _check_segment(self, Shard s, Py_ssize_t k) except -1:
        """O(records of segment k): arrival order, offsets and byte accounting (after _check_ring)."""
        cdef Segment *g = s._segs[(s._seg_head + k) & (s._seg_cap - 1)]
        cdef Segment *prev = s._segs[(s._seg_head + k - 1) & (s._seg_cap - 1)] if k > 0 else NULL
        cdef uint32_t i
        cdef size_t expect = 0, size
        cdef int64_t last_ms = prev.ms[prev.count - 1] if prev != NULL and prev.count else INT64_MIN
        for i in range(g.count):
            if g.ms[i] < last_ms:
                _corrupt("arrivals non-decreasing", s, self.name,
                         f"segment={k}, record={i}, seq index={g.base + i}, ms={g.ms[i]}, previous ms={last_ms}")
            last_ms = g.ms[i]
            if g.ms[i] > s._last_ms:
                _corrupt("arrival <= newest arrival", s, self.name,
                         f"segment={k}, record={i}, ms={g.ms[i]}, last_ms={s._last_ms}")
            size = <size_t>g.dlen[i] + g.klen[i]
            if size > <size_t>self._max_record_bytes_hw:
                _corrupt("record size <= max_record_bytes", s, self.name,
                         f"segment={k}, record={i}, dlen={g.dlen[i]}, klen={g.klen[i]}, "
                         f"max_record_bytes={self._max_record_bytes_hw}")
            if s.meta_only:
                if g.off[i] != 0:
                    _corrupt("metadata-only offsets are 0", s, self.name, f"segment={k}, record={i}, off={g.off[i]}")
                continue
            if g.off[i] != expect and not (g.filemap and g.off[i] > expect):
                _corrupt("offsets contiguous (file segments: ascending)", s, self.name,
                         f"segment={k}, record={i}, off={g.off[i]}, expected={expect}")
            if g.off[i] + size > g.used:
                _corrupt("off + dlen + klen <= used", s, self.name,
                         f"segment={k}, record={i}, off={g.off[i]}, size={size}, used={g.used}")
            expect = g.off[i] + size
        if not s.meta_only and expect != g.used and not g.filemap:
            _corrupt("sum of record sizes == used", s, self.name, f"segment={k}, sum={expect}, used={g.used}")
        return 0

    cdef int _check_buckets(self, Shard s) except -1:
        """Buckets hold at most one second's allowance; the write-byte bucket's debt is at most one
        oversized record's excess (largest max_record_bytes - allowance); the read-byte bucket's at most
        one response (get_records_max_bytes); the record and call buckets never go negative."""
        cdef double wb_min = self._wbps - <double>self._max_record_bytes_hw
        if wb_min > 0.0:
            wb_min = 0.0
        if not (wb_min <= s._wb <= self._wbps):
            _corrupt("write byte bucket in [allowance - largest record, allowance]", s, self.name,
                     f"bucket={s._wb!r}, low={wb_min!r}, high={self._wbps!r}")
        if not (0.0 <= s._wr <= self._wrps):
            _corrupt("write record bucket in [0, allowance]", s, self.name, f"bucket={s._wr!r}, high={self._wrps!r}")
        if not (0.0 <= s._rc <= self._rcps):
            _corrupt("read call bucket in [0, allowance]", s, self.name, f"bucket={s._rc!r}, high={self._rcps!r}")
        if not (-<double>self._get_max_bytes <= s._rb <= self._rbps):
            _corrupt("read byte bucket in [-get_records_max_bytes, allowance]", s, self.name,
                     f"bucket={s._rb!r}, low={-<double>self._get_max_bytes!r}, high={self._rbps!r}")
        return 0

    cdef int _check_routing(self) except -1:
        """O(shards): the routing arrays match the open list, which holds exactly the shards not closed."""
        cdef Py_ssize_t i
        cdef Shard s
        cdef set opened = set()
        if self._nopen != len(self._open) or (self._nopen and (self._ohi == NULL or self._olo == NULL)):
            _corrupt("routing arrays match the open shards", None, self.name,
                     f"nopen={self._nopen}, open={len(self._open)}")
        for i in range(self._nopen):
            s = <Shard>self._open[i]
            if self._ohi[i] != s._shi or self._olo[i] != s._slo:
                _corrupt("routing arrays match the open shards", s, self.name, f"position={i}")
            if i and not _u128_le(self._ohi[i - 1], self._olo[i - 1], self._ohi[i], self._olo[i]):
                _corrupt("open shards sorted by start hash", s, self.name, f"position={i}")
            if s.closed:
                _corrupt("open shards are not closed", s, self.name, f"position={i}")
            opened.add(id(s))
        for s in self.shards.values():
            if not s.closed and id(s) not in opened:
                _corrupt("every shard not closed is routed to", s, self.name, "not in the open list")
        return 0

    cdef int _check_min_ms(self) except -1:
        """_min_ms (trim's O(1) shortcut) is <= the oldest readable arrival of every shard."""
        cdef Shard s
        for s in self.shards.values():
            if s.base < s.end and s._nseg and s._ms_at(s.base) < self._min_ms:
                _corrupt("min_ms <= oldest arrival", s, self.name,
                         f"min_ms={self._min_ms}, oldest ms={s._ms_at(s.base)}")
        return 0

    cdef int _debug_after_append(self, Shard s) except -1:
        """O(1) amortised, after each append (debug builds): the newest record against the one before it,
        the ring when a segment was just started (and then the sealed one in full), the write buckets."""
        cdef Segment *g = s._segs[(s._seg_head + s._nseg - 1) & (s._seg_cap - 1)]
        cdef Segment *prev
        cdef uint32_t i = g.count - 1
        cdef size_t size = <size_t>g.dlen[i] + g.klen[i]
        if g.count == 1:                       # a new segment: check the ring and the segment just sealed
            self._check_ring(s)
            if s._nseg > 1:
                self._check_segment(s, s._nseg - 2)
        if g.count > g.cap or g.base + g.count != s.end or s.end != s._ctr[C_IN_RECORDS]:
            _corrupt("the newest segment ends at end == accepted records", s, self.name,
                     f"count={g.count}, cap={g.cap}, segment base={g.base}, end={s.end}, "
                     f"accepted={s._ctr[C_IN_RECORDS]}")
        if g.ms[i] != s._last_ms:
            _corrupt("the newest record has the newest arrival", s, self.name, f"ms={g.ms[i]}, last_ms={s._last_ms}")
        if i:
            if g.ms[i] < g.ms[i - 1]:
                _corrupt("arrivals non-decreasing", s, self.name, f"seq index={g.base + i}, ms={g.ms[i]}, "
                         f"previous ms={g.ms[i - 1]}")
        elif s._nseg > 1:
            prev = s._segs[(s._seg_head + s._nseg - 2) & (s._seg_cap - 1)]
            if prev.count and g.ms[0] < prev.ms[prev.count - 1]:
                _corrupt("arrivals non-decreasing", s, self.name, f"seq index={g.base}, ms={g.ms[0]}, "
                         f"previous ms={prev.ms[prev.count - 1]}")
        if g.used > g.acap:
            _corrupt("used <= acap (<= mapped), used <= SEG_MAX_BYTES", s, self.name, f"used={g.used}, acap={g.acap}")
        if s.meta_only:
            if g.used != 0 or g.off[i] != 0:
                _corrupt("metadata-only segments store no bytes", s, self.name, f"used={g.used}, off={g.off[i]}")
        else:
            if i and g.off[i] != g.off[i - 1] + g.dlen[i - 1] + g.klen[i - 1]:
                _corrupt("offsets contiguous", s, self.name, f"record={i}, off={g.off[i]}, expected="
                         f"{g.off[i - 1] + g.dlen[i - 1] + g.klen[i - 1]}")
            if (i == 0 and g.off[0] != 0) or g.off[i] + size != g.used:
                _corrupt("sum of record sizes == used", s, self.name, f"record={i}, off={g.off[i]}, size={size}, "
                         f"used={g.used}")
        if self._min_ms > g.ms[i]:
            _corrupt("min_ms <= oldest arrival", s, self.name, f"min_ms={self._min_ms}, ms={g.ms[i]}")
        self._check_buckets(s)
        return 0


END_SEQ_INDEX = SEQ_INDEX_END


cdef int _corrupt(str invariant, Shard s, str stream, str detail) except -1:
    """Raise CorruptStateError naming the broken invariant, the shard and the values."""
    where = f"stream {stream}" if s is None else f"{s.shard_id} of stream {stream}"
    raise E.CorruptStateError(f"invariant {invariant!r} broken on {where}: {detail}")




if FASTKIN_DEBUG:
    def _debug_corrupt(StreamCore core, uint32_t index, str kind):
        """Debug builds only: break one invariant of shard ``index`` on purpose (tests of the checks).
        Every kind leaves the state safe to free and to check."""
        cdef Shard s = <Shard>core.shards[index]
        cdef Segment *g = NULL
        if s._nseg:
            g = s._segs[(s._seg_head + s._nseg - 1) & (s._seg_cap - 1)]
        if kind in ("arrival", "offset", "used", "segment_base", "ring_head") and (g == NULL or g.count < 2):
            raise ValueError(f"{kind}: needs a shard whose newest segment has 2 records or more")
        if kind == "arrival":            # the newest record arrived before the one before it
            g.ms[g.count - 1] = g.ms[g.count - 2] - 1
        elif kind == "offset":           # the newest record's offset skips a byte
            g.off[g.count - 1] += 1
        elif kind == "used":             # more bytes in use than allocated
            g.used = g.acap + 1
        elif kind == "segment_base":     # the newest segment no longer ends at the shard's end
            g.base += 1
        elif kind == "ring_head":        # head outside the ring (the mask still addresses the same slot)
            s._seg_head += s._seg_cap
        elif kind == "end":              # more records than were accepted
            s.end += 1
        elif kind == "bucket":           # more than one second's allowance
            s._wb = core._wbps * 2.0
        elif kind == "debt":             # deeper in debt than one oversized record can leave
            s._wb = core._wbps - <double>core._max_record_bytes_hw - 1.0
        elif kind == "min_ms":           # trim's shortcut above a stored arrival
            core._min_ms = INT64_MAX
        elif kind == "routing":          # a routing array no longer matches the open shards
            core._olo[0] ^= 1
        else:
            raise ValueError(f"unknown corruption {kind!r}")

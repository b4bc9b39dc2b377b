# fastkin._cy.core — compiled twin of fastkin._ref.core (same classes, same behaviour).
#
# Storage layout of one shard (Shard):
#   a log of Segments in a ring of pointers (segs[head .. head+nseg)), oldest first.
#   Segment = a contiguous payload arena (record i = data bytes then key bytes, at off[i])
#             + typed index arrays: off u32, dlen u32, klen u16, ms i64  => 18 bytes per record.
#   A segment holds at most SEG_MAX_RECORDS records / SEG_MAX_BYTES of payload / SEG_MAX_AGE_MS of
#   arrivals; when full it is sealed (its arrays shrunk to fit) and a new one is started.
#   Retention moves the logical trim horizon (``base``) record by record and frees whole segments:
#   the unit a later disk layer writes, recovers and deletes.
#   A record's sequence index is its position in the shard's log; the 56-digit sequence number
#   is derived from (shard creation secs, shard index, seq index, arrival secs) on demand.
#
# Thread-safety: a StreamCore serialises every mutation and read of its shards with one mutex
# (held without calling back into Python code); Shard objects are not safe to use directly.
#
# Invariants (StreamCore._check_*; check_invariants() runs them all; a debug build, FASTKIN_DEBUG=1,
# also runs the relevant ones after every mutation and raises fastkin.errors.CorruptStateError):
#   ring      _seg_cap is 0 or a power of two, _seg_head < _seg_cap, _nseg <= _seg_cap; segment bases are
#             contiguous (seg[k+1].base == seg[k].base + seg[k].count); the oldest segment holds ``base``
#             (base == end when none does), the newest ends at ``end``; end == counter C_IN_RECORDS;
#             only the newest segment may be empty; a segment spans at most SEG_MAX_AGE_MS of arrivals.
#   index     arrivals non-decreasing within and across segments and <= _last_ms; offsets contiguous
#             (off[0] == 0, off[i+1] == off[i] + dlen[i] + klen[i]) and off[i] + dlen[i] + klen[i] <= used;
#             file segments (filemap): offsets ascending without overlap (off[i+1] >= off[i] + dlen[i] + klen[i]),
#             any count, used == filemap, no age bound of their own (the data directory's roll rules apply);
#             dlen + klen <= the largest max_record_bytes ever set (klen 0: a key-less AUTO record).
#   bytes     used <= acap (<= mapped for mapped arenas), used <= SEG_MAX_BYTES; full-payload segments:
#             sum of record sizes == used; metadata-only segments: used == 0 and every offset 0.
#   quotas    every bucket <= one second's allowance; the record and call buckets >= 0; the write-byte
#             bucket >= allowance - largest record (the debt an oversized record leaves: it is accepted
#             from a full bucket); the read-byte bucket >= -get_records_max_bytes (a response is charged
#             while the bucket is positive).
#   routing   _nopen == len(_open), _ohi/_olo are the open shards' start hashes in non-decreasing
#             order, open shards are not closed and every shard that is not closed is open;
#             _min_ms <= the oldest readable arrival of every shard.
from libc.stdint cimport uint64_t, uint32_t, uint16_t, int64_t, int32_t
cimport cython

cdef enum:
    SEG_MAX_RECORDS = 65536
    SEG_MAX_BYTES = 64 * 1024 * 1024
    BATCH_MAX = 500
    INDEX_STEP = 4096             # index arrays grow by doubling up to this, then linearly
    ARENA_STEP = 1024 * 1024      # arenas grow by doubling up to this, then linearly
    PREFAULT_MIN = 64 * 1024      # arena extensions at least this big are faulted in at once
    HUGE_ARENA = 2 * 1024 * 1024  # arenas this big move to their own huge-page mapping (= FK_HUGE)

# Per-shard cumulative counters (metrics read them once per engine-second; the hot path only adds).
# The layout is defined in fastkin/_protocols.py (C_* there, with a comment per column); this enum must
# carry the same numbers: counter_layout() reports them and tests/unit/test_core_contract.py compares.
cdef enum:
    C_IN_BYTES = 0          # accepted write bytes (data + key)
    C_IN_RECORDS = 1        # accepted records
    C_W_THR_RECORDS = 2     # records refused by the write quota
    C_W_THR_BYTES = 3       # bytes of those records
    C_OUT_BYTES = 4         # bytes returned by GetRecords
    C_OUT_RECORDS = 5       # records returned by GetRecords
    C_GET_CALLS = 6         # successful GetRecords calls
    C_R_THR_CALLS = 7       # GetRecords calls refused by the read quota
    C_AGE_MAX = 8           # max iterator age (ms) seen by GetRecords since the last reset
    C_PR_RECORDS = 9        # entries of PutRecords requests (the rest of C_IN_RECORDS came by PutRecord)
    C_PR_THROTTLED = 10     # of those, throttled
    NCTR = 11

ctypedef struct Segment:
    uint64_t base            # seq index of record 0 of this segment
    uint32_t count           # records stored
    uint32_t cap             # capacity of the index arrays
    uint32_t *off            # payload offset of record i in arena
    uint32_t *dlen           # data length of record i
    uint16_t *klen           # partition key length (UTF-8 bytes) of record i
    int64_t *ms              # arrival time of record i, epoch milliseconds (non-decreasing)
    unsigned char *arena     # payloads: data then key, back to back
    size_t used              # arena bytes in use
    size_t acap              # arena bytes allocated (mapped arenas: used rounded up to FK_HUGE)
    size_t mapped            # 0: arena is malloc'd; else its own mmap of this many bytes (huge pages)
    size_t filemap           # 0; else arena is a read-only mmap of this many bytes of a closed segment file
    #                          (StreamCore.adopt_segment): never appended to, offsets ascending with the file's
    #                          framing between records, any number of records, freed by munmap
    int populated            # a file mapping: its pages were mapped in at its first read (fk_populate_read)


@cython.final
cdef class Shard:
    cdef readonly uint32_t index          # shard number: shardId-<index:012d>
    cdef readonly str shard_id
    cdef readonly object start_hash       # Python ints, inclusive hash-key range
    cdef readonly object end_hash
    cdef uint64_t _shi, _slo              # start_hash as two u64 halves (routing)
    cdef readonly int64_t created_secs    # creation time, epoch seconds (in sequence numbers)
    cdef Segment **_segs                  # ring of segment pointers
    cdef Py_ssize_t _seg_head             # index of the oldest segment in _segs
    cdef Py_ssize_t _nseg                 # live segments
    cdef Py_ssize_t _seg_cap              # allocated slots in _segs (0 or a power of two: slots are masked)
    cdef readonly uint64_t base           # trim horizon: seq index of the oldest readable record
    cdef readonly uint64_t end            # seq index the next record gets
    cdef int64_t _last_ms                 # newest arrival (arrivals never go back in a shard)
    cdef readonly bint closed             # no longer routed to (after a split or merge)
    cdef readonly bint meta_only          # keep sizes and times only: no payload bytes are stored
    cdef double _wb, _wr, _wt             # write buckets: bytes, records; last refill time
    cdef bint _wt_set                     # _wt holds a time (first touch initialises it)
    cdef double _rc, _rb, _rt             # read buckets: calls, bytes; last refill time
    cdef bint _rt_set
    cdef double _penalty_until            # no reads before this time (after a max-size response)
    cdef uint64_t _ctr[NCTR]              # cumulative counters, see C_* above

    cdef Segment* _new_segment(self, size_t need) except NULL
    cdef int _append(self, const char *data, size_t dlen, const char *key, size_t klen, int64_t ms) except -1
    cdef Segment* _find(self, uint64_t pos) noexcept
    cdef uint64_t _seek_ms(self, int64_t ms) noexcept
    cdef void _trim_to(self, uint64_t pos) noexcept
    cdef int64_t _ms_at(self, uint64_t pos) noexcept


@cython.final
cdef class StreamCore:
    cdef readonly str name
    cdef readonly str account
    cdef readonly object limits
    cdef public bint quotas               # per-shard quotas enforced
    cdef public bint auto                 # RecordDistributionStrategy AUTO: round-robin over _open, keys optional
    cdef Py_ssize_t _rr                   # AUTO: the next position in _open (taken modulo _nopen)
    cdef Py_ssize_t _max_record_bytes     # the max_record_bytes property (data + key bytes of one record)
    cdef Py_ssize_t _max_record_bytes_hw  # the largest max_record_bytes ever set (bounds a bucket's debt)
    cdef readonly bint store_payload      # False: metadata-only storage (simulations)
    cdef readonly dict shards             # index -> Shard, every shard not yet expired
    cdef list _open                       # open shards sorted by start hash; replaced, never mutated
    cdef uint64_t *_ohi                   # open shards' start hash, high half
    cdef uint64_t *_olo                   # open shards' start hash, low half
    cdef Py_ssize_t _nopen
    cdef double _gate_lo, _gate_hi        # put_record_io's I/O gate: puts only while lo <= now < hi
    cdef int64_t _min_ms                  # <= every stored arrival (INT64_MAX: none); trim() is O(1) below it
    cdef cython.pymutex _lock
    # limits copied to C
    cdef double _wbps, _wrps, _rcps, _rbps, _penalty
    cdef Py_ssize_t _get_max_bytes, _put_max_bytes

    cdef Py_ssize_t _route_pos(self, uint64_t hi, uint64_t lo) noexcept
    cdef Shard _route(self, uint64_t hi, uint64_t lo)
    cdef object _put_one(self, data, key, ehk, double now)
    cdef bint _write_ok(self, Shard s, Py_ssize_t size, double now) noexcept
    cdef bint _read_ok(self, Shard s, double now) noexcept
    cdef int _rebuild_routing(self, list opened) except -1
    cdef Py_ssize_t _adopt(self, Shard s, uint64_t seq_index, str path, bytes bpath, size_t size, Py_ssize_t n,
                           const int64_t *vms, const uint32_t *voff, const uint32_t *vdlen, const uint16_t *vklen,
                           size_t biggest, size_t total) except -1
    # invariant checks (see the top of this file); the _debug_* ones run after mutations in debug builds
    cdef int _check_ring(self, Shard s) except -1
    cdef int _check_segment(self, Shard s, Py_ssize_t k) except -1
    cdef int _check_buckets(self, Shard s) except -1
    cdef int _check_routing(self) except -1
    cdef int _check_min_ms(self) except -1
    cdef int _check_all(self) except -1
    cdef int _debug_after_append(self, Shard s) except -1


# Declared here (not in core.pyx) so that fastkin._cy.wire can read them: it writes the PutRecords and
# GetRecords JSON bodies straight from these fields.
@cython.final
cdef class PutRecordsResult:
    cdef Py_ssize_t _n
    cdef readonly Py_ssize_t failed_record_count
    cdef list _routing         # StreamCore._open at put time
    cdef uint64_t *_seq        # sequence index per entry, or (uint64_t)-1 when throttled
    cdef int64_t *_ms          # arrival ms per entry (inside the _seq block)
    cdef uint32_t *_pos        # position of the entry's shard in _routing (inside the _seq block)
    cdef str _stream, _account
    cdef list _cache


@cython.final
cdef class Record:
    cdef readonly bytes data
    cdef readonly str partition_key
    cdef Shard _shard
    cdef uint64_t _seq         # position in the shard's log (the sequence number's seqIndex is _seq + 1)
    cdef int64_t _ms           # arrival, epoch milliseconds

# fastkin._cy.journal — record framing for data directories (issue 15), compiled twin of fastkin._ref.journal.
#
# A segment file (fastkin.segments) is a header then frames, back to back, little-endian:
#   frame = u32 body length | u32 CRC32C(body) | body
#   body  = u64 position | i64 arrival ms | u16 key length | data | key (UTF-8)
# (data then key: the core's arena layout, so a closed file is adopted by mapping it; format 1 had key first)
# "position" is the record's index in its shard's log (its sequence number's seqIndex is position + 1).
# CRC32C is csrc/crc32c.c (slicing-by-8). frame_batch reads a compiled-core PutRecordsResult's fields
# (declared in core.pxd) so a PutRecords batch is framed without a Python object per record.
# tests/durable/test_journal.py compares this module with the reference byte for byte.
cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t, INT64_MIN
from libc.string cimport memcpy
from libc.stdlib cimport free, malloc, realloc

from .core cimport PutRecordsResult, Shard

cdef extern from "crc32c.h":
    void fk_crc32c_init() nogil
    uint32_t fk_crc32c(uint32_t crc, const void *buf, size_t len) nogil

fk_crc32c_init()

NAME = "cy"
FRAME_HEAD = 8          # u32 length + u32 crc
BODY_HEAD = 18          # u64 position + i64 ms + u16 key length
BODY_MAX = 64 * 1024 * 1024   # a body longer than this is corrupt (a record is at most 10 MiB + key)

cdef enum:
    C_FRAME_HEAD = 8
    C_BODY_HEAD = 18
    C_BODY_MAX = 64 * 1024 * 1024
    GIL_FREE_MIN = 5 * 1024    # below this a CRC is cheaper than releasing the GIL


cdef inline void _put_u32(char *p, uint32_t v) noexcept nogil:
    p[0] = <char>(v & 0xFF)
    p[1] = <char>((v >> 8) & 0xFF)
    p[2] = <char>((v >> 16) & 0xFF)
    p[3] = <char>(v >> 24)


cdef inline void _put_u64(char *p, uint64_t v) noexcept nogil:
    _put_u32(p, <uint32_t>v)
    _put_u32(p + 4, <uint32_t>(v >> 32))


cdef inline uint32_t _get_u32(const unsigned char *p) noexcept nogil:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline uint64_t _get_u64(const unsigned char *p) noexcept nogil:
    return <uint64_t>_get_u32(p) | (<uint64_t>_get_u32(p + 4) << 32)


cdef uint32_t _crc(uint32_t crc, const char *p, size_t n) noexcept:
    cdef uint32_t c
    if n < GIL_FREE_MIN:
        return fk_crc32c(crc, p, n)
    with nogil:
        c = fk_crc32c(crc, p, n)
    return c


def crc32c(data, unsigned int crc=0):
    """CRC32C of a bytes-like object, continuing from ``crc`` (crc32c(a + b) == crc32c(b, crc32c(a)))."""
    cdef Py_buffer view
    cdef uint32_t out
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        out = _crc(crc, <const char*>view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return out


cdef bytes _as_bytes(object data):
    if PyBytes_CheckExact(data):
        return <bytes>data
    if isinstance(data, str):
        return (<str>data).encode("utf-8")
    return bytes(memoryview(data))


cdef bytes _key_bytes(object key):
    if key is None:                    # AUTO distribution: no partition key
        return b""
    return (<str>key).encode("utf-8")


cdef Py_ssize_t _write_frame(bytearray out, uint64_t pos, int64_t ms, bytes kb, bytes data) except -1:
    cdef Py_ssize_t kl = PyBytes_GET_SIZE(kb), dl = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t body = C_BODY_HEAD + kl + dl
    cdef Py_ssize_t at = PyByteArray_GET_SIZE(out)
    cdef char *p
    if PyByteArray_Resize(out, at + C_FRAME_HEAD + body) < 0:
        raise MemoryError()
    p = PyByteArray_AS_STRING(out) + at
    _put_u32(p, <uint32_t>body)
    _put_u64(p + 8, pos)
    _put_u64(p + 16, <uint64_t>ms)
    p[24] = <char>(kl & 0xFF)
    p[25] = <char>(kl >> 8)
    memcpy(p + 26, PyBytes_AS_STRING(data), <size_t>dl)
    memcpy(p + 26 + dl, PyBytes_AS_STRING(kb), <size_t>kl)
    _put_u32(p + 4, _crc(0, p + 8, <size_t>body))
    return C_FRAME_HEAD + body


def frame(uint64_t position, int64_t arrival_ms, key, data):
    """One record's frame (bytes)."""
    cdef bytearray out = bytearray()
    _write_frame(out, position, arrival_ms, _key_bytes(key), _as_bytes(data))
    return bytes(out)


def frame_batch(core, result, records, dict out):
    """Frame the accepted entries of a PutRecords ``result`` (of ``records``, the request's tuples) into
    ``out``: shard index -> [bytearray of frames, first position, first arrival ms, count], in request order
    (which is position order within each shard). Returns the number of records framed."""
    cdef PutRecordsResult res
    cdef Py_ssize_t i, n = 0
    cdef Shard s
    cdef list entry
    cdef tuple rec
    if not isinstance(result, PutRecordsResult):
        raise TypeError("frame_batch takes the compiled core's PutRecordsResult")
    res = <PutRecordsResult>result
    for i in range(res._n):
        if res._seq[i] == <uint64_t>-1:
            continue
        s = <Shard>res._routing[res._pos[i]]
        rec = tuple(records[i])
        entry = out.get(s.index)
        if entry is None:
            entry = out[s.index] = [bytearray(), res._seq[i], res._ms[i], 0]
        _write_frame(<bytearray>entry[0], res._seq[i], res._ms[i], _key_bytes(rec[1]), _as_bytes(rec[0]))
        entry[3] += 1
        n += 1
    return n


def scan(buf, Py_ssize_t offset=0):
    """Read frames from ``offset``: (records, end, problem). records: (position, arrival ms, key, data) of
    every valid frame up to the first invalid one; end: the offset just after the last valid frame;
    problem: None when the buffer ends exactly there, else "torn" (a frame runs past the end), "length" (an
    impossible length) or "crc" (the body does not match its CRC)."""
    cdef Py_buffer view
    cdef const unsigned char *p
    cdef Py_ssize_t n, at = offset
    cdef uint32_t body, kl, dl
    cdef list out = []
    cdef object problem = None
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char*>view.buf
        n = view.len
        while at < n:
            if n - at < C_FRAME_HEAD:
                problem = "torn"
                break
            body = _get_u32(p + at)
            if body < C_BODY_HEAD or body > C_BODY_MAX:
                problem = "length"
                break
            if n - at - C_FRAME_HEAD < <Py_ssize_t>body:
                problem = "torn"
                break
            if _crc(0, <const char*>(p + at + 8), body) != _get_u32(p + at + 4):
                problem = "crc"
                break
            kl = <uint32_t>p[at + 24] | (<uint32_t>p[at + 25] << 8)
            if kl > body - C_BODY_HEAD:
                problem = "length"
                break
            dl = body - C_BODY_HEAD - kl
            out.append((_get_u64(p + at + 8), <int64_t>_get_u64(p + at + 16),
                        (<const char*>(p + at + 26 + dl))[:kl].decode("utf-8"),
                        PyBytes_FromStringAndSize(<const char*>(p + at + 26), dl)))
            at += C_FRAME_HEAD + body
    finally:
        PyBuffer_Release(&view)
    return out, at, problem


def index_frames(buf, Py_ssize_t offset, uint64_t base, bint check_crc=True, Py_ssize_t shift=0):
    """Index the frames of a segment file from ``offset``: (count, end, problem, ms, off, dlen, klen).
    The four arrays are little-endian bytes (i64, u32, u32, u16 per record): arrival ms, offset of the data
    in ``buf`` plus ``shift`` (where ``buf`` starts in its file, when it is a piece of one), data length, key
    length. Stops at the first frame that is torn, of an impossible length,
    fails its CRC (when ``check_crc``), is not at position ``base + count`` or arrives before the previous
    one ("order"); ``end`` is the offset just after the last indexed frame, ``problem`` None when that is
    the end of ``buf``. Data is not copied (a closed file is indexed at roll and rebuilt by recovery)."""
    cdef Py_buffer view
    cdef const unsigned char *p
    cdef Py_ssize_t n, at = offset, count = 0, cap = 0
    cdef uint32_t body, kl, crc
    cdef int64_t ms, last = INT64_MIN
    cdef int64_t *a_ms = NULL
    cdef uint32_t *a_off = NULL
    cdef uint32_t *a_dlen = NULL
    cdef uint16_t *a_klen = NULL
    cdef void *q
    cdef object problem = None
    cdef bytes r_ms, r_off, r_dlen, r_klen
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char*>view.buf
        n = view.len
        if n + shift > 0xFFFFFFFF:
            raise ValueError("a segment file of 4 GiB or more cannot be indexed (u32 offsets)")
        while at < n:
            if n - at < C_FRAME_HEAD:
                problem = "torn"
                break
            body = _get_u32(p + at)
            if body < C_BODY_HEAD or body > C_BODY_MAX:
                problem = "length"
                break
            if n - at - C_FRAME_HEAD < <Py_ssize_t>body:
                problem = "torn"
                break
            if check_crc:
                with nogil:
                    crc = fk_crc32c(0, <const char*>(p + at + 8), body)
                if crc != _get_u32(p + at + 4):
                    problem = "crc"
                    break
            kl = <uint32_t>p[at + 24] | (<uint32_t>p[at + 25] << 8)
            if kl > body - C_BODY_HEAD:
                problem = "length"
                break
            ms = <int64_t>_get_u64(p + at + 16)
            if _get_u64(p + at + 8) != base + <uint64_t>count or ms < last:
                problem = "order"
                break
            last = ms
            if count == cap:
                cap = cap * 2 if cap else 1024
                q = realloc(a_ms, cap * sizeof(int64_t))
                if q == NULL: raise MemoryError()
                a_ms = <int64_t*>q
                q = realloc(a_off, cap * sizeof(uint32_t))
                if q == NULL: raise MemoryError()
                a_off = <uint32_t*>q
                q = realloc(a_dlen, cap * sizeof(uint32_t))
                if q == NULL: raise MemoryError()
                a_dlen = <uint32_t*>q
                q = realloc(a_klen, cap * sizeof(uint16_t))
                if q == NULL: raise MemoryError()
                a_klen = <uint16_t*>q
            a_ms[count] = ms
            a_off[count] = <uint32_t>(at + shift + C_FRAME_HEAD + C_BODY_HEAD)
            a_dlen[count] = body - C_BODY_HEAD - kl
            a_klen[count] = <uint16_t>kl
            count += 1
            at += C_FRAME_HEAD + body
        # NOTE: the arrays are in host order; fastkin.segments refuses big-endian hosts (x86/arm64: little)
        r_ms = PyBytes_FromStringAndSize(<const char*>a_ms, count * sizeof(int64_t))
        r_off = PyBytes_FromStringAndSize(<const char*>a_off, count * sizeof(uint32_t))
        r_dlen = PyBytes_FromStringAndSize(<const char*>a_dlen, count * sizeof(uint32_t))
        r_klen = PyBytes_FromStringAndSize(<const char*>a_klen, count * sizeof(uint16_t))
    finally:
        PyBuffer_Release(&view)
        free(a_ms)
        free(a_off)
        free(a_dlen)
        free(a_klen)
    return count, at, problem, r_ms, r_off, r_dlen, r_klen

# fastkin._cy.wire — the JSON data-plane wire paths of ``fastkin serve`` in C (issue 13).
#
# Compiled twins of Python functions in fastkin.wire (which stay as the fallback: the reference core,
# FASTKIN_NO_EXTENSIONS=1, a missing extension):
#   records_json(res)                  service.records_json: GetRecords' JSON body, from the compiled
#                                      core's Record objects (fields read directly, see core.pxd)
#   put_records_params(shape, raw)     model.put_records_params(shape, raw, cbor=False), same result
#   put_records_batch(shape, raw)      the same checks, giving what the engine takes: (batch, params)
#   put_records_json(res, kms)         json_dumps(service.put_records_response(...)) from the engine's result
# The per-record work (base64 both ways, sequence numbers, arrival times, partition keys, the
# ExplicitHashKey pattern) is C; per-request work (StreamName/StreamARN checks, ChildShards) calls the
# same Python code as the Python versions. tests/differential/test_wire_fast.py compares the two.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_CheckExact, PyDict_GetItem, PyDict_Size
from cpython.list cimport PyList_CheckExact, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.ref cimport PyObject
from cpython.unicode cimport PyUnicode_CheckExact, PyUnicode_GET_LENGTH
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from .core cimport PutRecordsResult, Record, Shard

cdef extern from "seqnum.h":
    int seq_format(uint64_t create_secs, uint32_t shard_index, uint64_t seq_index,
                   uint64_t record_secs, char *out) nogil

cdef extern from "Python.h":
    void *PyUnicode_DATA(object o)
    bint PyUnicode_IS_COMPACT_ASCII(object o)

cdef extern from *:
    """
    /* A bytes object of n bytes to fill (NULL + MemoryError when out of memory). */
    static PyObject *fk_bytes_new(Py_ssize_t n) { return PyBytes_FromStringAndSize(NULL, n); }
    /* b (stolen; the only reference) cut to its first n bytes in place; NULL when b is NULL or on failure. */
    static PyObject *fk_bytes_done(PyObject *b, Py_ssize_t n) {
        if (b == NULL || _PyBytes_Resize(&b, n) < 0) return NULL;
        return b;
    }
    """
    PyObject *fk_bytes_new(Py_ssize_t n)
    object fk_bytes_done(PyObject *b, Py_ssize_t n)

cdef enum:
    SEQ_MAX = 57                     # digits of a sequence number (2^188 < 10^57)
    TS_MAX = 24                      # "<secs>.<ms>" of an arrival time below TS_FAST_LIMIT
    BATCH_MAX = 500
    PK_MAX = 256
    BLOB_MAX = 10 * 1024 * 1024

# Arrival times below this (epoch ms; ~31,700 years) are written by hand, exactly as repr(ms / 1000.0);
# others (and negative ones) go through repr.
cdef int64_t TS_FAST_LIMIT = 1000000000000000

cdef const char *B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
cdef uint8_t B64_INV[256]            # alphabet index, or 0xFF


cdef void _init_tables() noexcept:
    cdef int i
    for i in range(256):
        B64_INV[i] = 0xFF
    for i in range(64):
        B64_INV[<uint8_t>B64[i]] = <uint8_t>i


_init_tables()

# Python helpers, bound on first use (fastkin.wire.model imports botocore; the core must not need it)
cdef object _dumps = None            # model.json_dumps
cdef object _checker = None          # model.Checker
cdef object _ehk_re = None           # model._EXPLICIT_HASH_KEY (non-ASCII keys only: \d is Unicode there)
cdef object _py_params = None        # model.put_records_params


cdef int _bind() except -1:
    global _dumps, _checker, _ehk_re, _py_params
    if _dumps is None:
        from ..wire import model
        _checker = model.Checker
        _ehk_re = model._EXPLICIT_HASH_KEY
        _py_params = model.put_records_params
        _dumps = model.json_dumps
    return 0


# ---------------------------------------------------------------------------------------------
# GetRecords

cdef inline Py_ssize_t _b64_len(Py_ssize_t n) noexcept:
    return (n + 2) // 3 * 4


cdef char *_b64_encode(const uint8_t *p, Py_ssize_t n, char *o) noexcept:
    cdef Py_ssize_t i = 0
    cdef uint32_t v
    while i + 3 <= n:
        v = (<uint32_t>p[i] << 16) | (<uint32_t>p[i + 1] << 8) | p[i + 2]
        o[0] = B64[v >> 18]
        o[1] = B64[(v >> 12) & 63]
        o[2] = B64[(v >> 6) & 63]
        o[3] = B64[v & 63]
        o += 4
        i += 3
    if n - i == 1:
        v = <uint32_t>p[i] << 16
        o[0] = B64[v >> 18]
        o[1] = B64[(v >> 12) & 63]
        o[2] = c'='
        o[3] = c'='
        o += 4
    elif n - i == 2:
        v = (<uint32_t>p[i] << 16) | (<uint32_t>p[i + 1] << 8)
        o[0] = B64[v >> 18]
        o[1] = B64[(v >> 12) & 63]
        o[2] = B64[(v >> 6) & 63]
        o[3] = c'='
        o += 4
    return o


cdef int _ts_format(int64_t ms, char *o) noexcept:
    """repr(ms / 1000.0) for 0 <= ms < TS_FAST_LIMIT: "<secs>.<fraction>", the fraction's trailing zeros
    dropped ("0" when it is whole). It is the shortest decimal that reads back as the double nearest
    ms / 1000 (a double's spacing there is < 0.0002 and other decimals this short are >= 0.001 away), which
    is what repr writes: byte-identical to the Python version."""
    cdef char tmp[24]
    cdef int n = 0, k = 0
    cdef int64_t secs = ms // 1000
    cdef int frac = <int>(ms % 1000)
    while True:
        tmp[n] = <char>(c'0' + secs % 10)
        n += 1
        secs //= 10
        if secs == 0:
            break
    while n:
        n -= 1
        o[k] = tmp[n]
        k += 1
    o[k] = c'.'
    k += 1
    if frac == 0:
        o[k] = c'0'
        return k + 1
    o[k] = <char>(c'0' + frac // 100)
    o[k + 1] = <char>(c'0' + frac // 10 % 10)
    o[k + 2] = <char>(c'0' + frac % 10)
    k += 3
    while o[k - 1] == c'0':
        k -= 1
    return k


cdef inline bint _plain_ascii(str s) noexcept:
    """A compact ASCII str that JSON writes as itself between quotes (no '"', '\\' or control character)."""
    cdef const uint8_t *p
    cdef Py_ssize_t i, n
    cdef uint8_t c
    if not PyUnicode_IS_COMPACT_ASCII(s):
        return False
    p = <const uint8_t*>PyUnicode_DATA(s)
    n = PyUnicode_GET_LENGTH(s)
    for i in range(n):
        c = p[i]
        if c < 0x20 or c == 0x22 or c == 0x5C or c == 0x7F:
            return False
    return True


def records_json(res):
    """``service.records_json(res)`` byte for byte, or None when ``res.records`` are not all the compiled
    core's Records (the caller then uses the Python version). Partition keys that need escaping or are not
    ASCII are written by model.json_dumps, as the Python version writes every key, and arrival times outside
    [0, TS_FAST_LIMIT) by repr."""
    cdef object recs_o = res.records
    cdef list recs
    cdef Py_ssize_t n, i, size, nk
    cdef Record r
    cdef Shard sh
    cdef list kspec = None           # per record: the key's JSON (bytes) when not plain ASCII, else None
    cdef list tspec = None           # per record: repr of the arrival time (bytes) when not written by hand
    cdef object kj
    cdef bytes tail_b
    cdef PyObject *out
    cdef char *o
    cdef char *start
    cdef PyObject *op
    if type(recs_o) is not list:
        return None
    recs = <list>recs_o
    n = PyList_GET_SIZE(recs)
    _bind()
    # pass 1: types, the Python-written pieces, an upper bound of the body's size
    size = 64
    for i in range(n):
        op = PyList_GET_ITEM(recs, i)
        if type(<object>op) is not Record:
            return None
        r = <Record>op
        if r.data is None or r.partition_key is None or r._shard is None:
            return None
        size += 19 + SEQ_MAX + 32 + TS_MAX + 9 + _b64_len(PyBytes_GET_SIZE(r.data)) + 17 + 2
        if _plain_ascii(r.partition_key):
            size += PyUnicode_GET_LENGTH(r.partition_key) + 2
        else:
            if kspec is None:
                kspec = [None] * n
            kj = _dumps(r.partition_key)
            kspec[i] = kj
            size += PyBytes_GET_SIZE(kj)
        if not 0 <= r._ms < TS_FAST_LIMIT:
            if tspec is None:
                tspec = [None] * n
            kj = repr(r._ms / 1000.0).encode()
            tspec[i] = kj
            size += PyBytes_GET_SIZE(kj)
    tail = [b'],"MillisBehindLatest":%d' % res.millis_behind_latest]
    if res.next_shard_iterator is not None:
        tail.append(b',"NextShardIterator":"%s"' % res.next_shard_iterator.encode())
    if res.child_shards:
        tail.append(b',"ChildShards":' + _dumps(res.child_shards))
    tail.append(b"}")
    tail_b = b"".join(tail)
    size += PyBytes_GET_SIZE(tail_b)
    # pass 2: C only (nothing in it raises: ``out`` is a bare reference until fk_bytes_done)
    out = fk_bytes_new(size)
    if out == NULL:
        return fk_bytes_done(NULL, 0)   # raises the MemoryError
    start = o = PyBytes_AS_STRING(<object>out)
    memcpy(o, b'{"Records":[', 12)
    o += 12
    for i in range(n):
        r = <Record>PyList_GET_ITEM(recs, i)
        sh = r._shard
        if i:
            o[0] = c','
            o += 1
        memcpy(o, b'{"SequenceNumber":"', 19)
        o += 19
        o += seq_format(<uint64_t>sh.created_secs, sh.index, r._seq + 1, <uint64_t>(r._ms // 1000), o)
        memcpy(o, b'","ApproximateArrivalTimestamp":', 32)
        o += 32
        if 0 <= r._ms < TS_FAST_LIMIT:
            o += _ts_format(r._ms, o)
        else:
            kj = tspec[i]
            memcpy(o, PyBytes_AS_STRING(kj), PyBytes_GET_SIZE(kj))
            o += PyBytes_GET_SIZE(kj)
        memcpy(o, b',"Data":"', 9)
        o += 9
        o = _b64_encode(<const uint8_t*>PyBytes_AS_STRING(r.data), PyBytes_GET_SIZE(r.data), o)
        if PyUnicode_GET_LENGTH(r.partition_key) == 0:
            # written without a key (AUTO distribution): the field is absent, as records_dicts leaves it
            memcpy(o, b'"}', 2)
            o += 2
            continue
        memcpy(o, b'","PartitionKey":', 17)
        o += 17
        if kspec is not None and kspec[i] is not None:
            kj = kspec[i]
            memcpy(o, PyBytes_AS_STRING(kj), PyBytes_GET_SIZE(kj))
            o += PyBytes_GET_SIZE(kj)
        else:
            nk = PyUnicode_GET_LENGTH(r.partition_key)
            o[0] = c'"'
            memcpy(o + 1, PyUnicode_DATA(r.partition_key), nk)
            o[nk + 1] = c'"'
            o += nk + 2
        o[0] = c'}'
        o += 1
    memcpy(o, PyBytes_AS_STRING(tail_b), PyBytes_GET_SIZE(tail_b))
    o += PyBytes_GET_SIZE(tail_b)
    return fk_bytes_done(out, o - start)


# ---------------------------------------------------------------------------------------------
# PutRecords

cdef object _b64_decode(str s):
    """binascii.a2b_base64(s, strict_mode=True) when it succeeds and the padding is canonical (model's
    ``_canonical_tail``), else None: the length is a multiple of 4, every character is in the alphabet but
    one or two '=' at the end, and the bits the last data character carries past the data are zero. That is
    exactly the set strict mode accepts (it refuses leading, excess, discontinuous and missing padding and
    non-alphabet characters; the empty string decodes to b"") minus non-canonical tails. A str that is not
    ASCII is refused too (a2b_base64 raises ValueError)."""
    cdef const uint8_t *p
    cdef Py_ssize_t n, m, i, pad = 0
    cdef uint32_t v
    cdef uint8_t a, b, c, d
    cdef bytes out
    cdef uint8_t *o
    if not PyUnicode_IS_COMPACT_ASCII(s):
        return None
    p = <const uint8_t*>PyUnicode_DATA(s)
    n = PyUnicode_GET_LENGTH(s)
    if n & 3:
        return None
    if n == 0:
        return b""
    if p[n - 1] == c'=':
        pad = 2 if p[n - 2] == c'=' else 1
    m = n // 4 * 3 - pad
    out = PyBytes_FromStringAndSize(NULL, m)
    o = <uint8_t*>PyBytes_AS_STRING(out)
    # whole groups but the last
    i = 0
    while i + 4 < n:
        a = B64_INV[p[i]]
        b = B64_INV[p[i + 1]]
        c = B64_INV[p[i + 2]]
        d = B64_INV[p[i + 3]]
        if (a | b | c | d) & 0xC0:
            return None
        v = (<uint32_t>a << 18) | (<uint32_t>b << 12) | (<uint32_t>c << 6) | d
        o[0] = <uint8_t>(v >> 16)
        o[1] = <uint8_t>(v >> 8)
        o[2] = <uint8_t>v
        o += 3
        i += 4
    a = B64_INV[p[i]]
    b = B64_INV[p[i + 1]]
    c = 0 if pad == 2 else B64_INV[p[i + 2]]
    d = 0 if pad else B64_INV[p[i + 3]]
    if (a | b | c | d) & 0xC0:
        return None
    if pad == 2 and b & 15 or pad == 1 and c & 3:
        return None                  # stray bits after the data: not canonical
    v = (<uint32_t>a << 18) | (<uint32_t>b << 12) | (<uint32_t>c << 6) | d
    o[0] = <uint8_t>(v >> 16)
    if pad < 2:
        o[1] = <uint8_t>(v >> 8)
    if pad < 1:
        o[2] = <uint8_t>v
    return out


cdef bint _ehk_ok(str s) except -1:
    """model._EXPLICIT_HASH_KEY.fullmatch(s) is not None: "0|([1-9]\\d{0,38})". By hand for ASCII strings;
    others go to the regex (its \\d takes any Unicode decimal digit)."""
    cdef const uint8_t *p
    cdef Py_ssize_t n, i
    if not PyUnicode_IS_COMPACT_ASCII(s):
        return _ehk_re.fullmatch(s) is not None
    p = <const uint8_t*>PyUnicode_DATA(s)
    n = PyUnicode_GET_LENGTH(s)
    if n == 1 and p[0] == c'0':
        return True
    if not 1 <= n <= 39 or not c'1' <= p[0] <= c'9':
        return False
    for i in range(1, n):
        if not c'0' <= p[i] <= c'9':
            return False
    return True


cdef object _parse(shape, raw, bint as_batch):
    """model.put_records_params(shape, raw, cbor=False); as_batch: (batch, params without "Records")."""
    cdef object recs, r, data, pk, ehk, k, v
    cdef PyObject *op
    cdef Py_ssize_t n, i, nr
    cdef list out
    if not PyDict_CheckExact(raw):
        return _py_params(shape, raw, False)      # not what the server passes: the Python version says
    op = PyDict_GetItem(raw, "Records")
    if op == NULL:
        return None
    recs = <object>op
    if not PyList_CheckExact(recs):
        return None
    n = PyList_GET_SIZE(recs)
    if not 1 <= n <= BATCH_MAX:
        return None
    out = [None] * n
    for i in range(n):
        r = <object>PyList_GET_ITEM(recs, i)
        if not PyDict_CheckExact(r):
            return None
        op = PyDict_GetItem(r, "PartitionKey")
        if op == NULL or not PyUnicode_CheckExact(<object>op):
            return None
        pk = <object>op
        if not 1 <= PyUnicode_GET_LENGTH(pk) <= PK_MAX:
            return None
        op = PyDict_GetItem(r, "Data")
        if op == NULL or not PyUnicode_CheckExact(<object>op):
            return None
        data = _b64_decode(<str>op)
        if data is None or PyBytes_GET_SIZE(data) > BLOB_MAX:
            return None
        nr = PyDict_Size(r)
        if nr == 2:
            out[i] = (data, pk) if as_batch else {"Data": data, "PartitionKey": pk}
            continue
        op = PyDict_GetItem(r, "ExplicitHashKey")
        if nr != 3 or op == NULL or not PyUnicode_CheckExact(<object>op) or not _ehk_ok(<str>op):
            return None
        ehk = <object>op
        out[i] = (data, pk, ehk) if as_batch else {"Data": data, "PartitionKey": pk, "ExplicitHashKey": ehk}
    params = {} if as_batch else {"Records": out}
    members = shape.members
    for k, v in raw.items():
        if k == "Records" or v is None or k not in members:
            continue                                  # unknown members are ignored, as AWS does
        if k not in ("StreamName", "StreamARN") or type(v) is not str:
            return None
        params[k] = v
    if "StreamName" in params or "StreamARN" in params:
        checker = _checker(True)                      # the model's constraints on the stream's name and ARN
        for k in ("StreamName", "StreamARN"):
            if k in params:
                checker.check(members[k], params[k], k[:1].lower() + k[1:])
        if checker.errors:
            return None
    return (out, params) if as_batch else params


def put_records_params(shape, raw, cbor=False):
    """``model.put_records_params(shape, raw, cbor)``: the same result for every input (CBOR requests go to
    the Python version: their blobs are bytes already)."""
    _bind()
    if cbor:
        return _py_params(shape, raw, True)
    return _parse(shape, raw, False)


def put_records_batch(shape, raw):
    """The checks of ``put_records_params(shape, raw, False)`` giving what the engine takes: None where it
    gives None, else (batch, params): batch the (data, partition_key[, explicit_hash_key]) tuples
    ``service.put_records_response`` builds from its Records, params its StreamName/StreamARN."""
    _bind()
    return _parse(shape, raw, True)


cdef bytes _put_json_py(res, bint kms):
    """The Python version's body (service.put_records_response's dict, then json_dumps)."""
    recs = []
    for r in res:
        if r.error_code is None:
            recs.append({"SequenceNumber": r.sequence_number, "ShardId": r.shard_id})
        else:
            recs.append({"ErrorCode": r.error_code, "ErrorMessage": r.error_message})
    doc = {"FailedRecordCount": res.failed_record_count, "Records": recs}
    if kms:
        doc["EncryptionType"] = "KMS"
    return _dumps(doc)


def put_records_json(res, bint kms):
    """``json_dumps(service.put_records_response(...))``'s bytes from the stream's put_records result (kms:
    the stream's encryption_type is "KMS"). Written in C for a compiled-core result without failures;
    otherwise from the PutResult objects, as the Python version does."""
    cdef PutRecordsResult p
    cdef Shard sh
    cdef Py_ssize_t n, i, size
    cdef PyObject *out
    cdef char *o
    cdef char *start
    cdef str sid
    _bind()
    if type(res) is not PutRecordsResult or (<PutRecordsResult>res).failed_record_count:
        return _put_json_py(res, kms)
    p = <PutRecordsResult>res
    n = p._n
    size = 64
    for i in range(n):
        sh = <Shard>PyList_GET_ITEM(p._routing, p._pos[i])
        if not _plain_ascii(sh.shard_id):
            return _put_json_py(res, kms)
        size += 19 + SEQ_MAX + 13 + PyUnicode_GET_LENGTH(sh.shard_id) + 3
    out = fk_bytes_new(size)
    if out == NULL:
        return fk_bytes_done(NULL, 0)
    start = o = PyBytes_AS_STRING(<object>out)
    memcpy(o, b'{"FailedRecordCount":0,"Records":[', 34)
    o += 34
    for i in range(n):
        sh = <Shard>PyList_GET_ITEM(p._routing, p._pos[i])
        if i:
            o[0] = c','
            o += 1
        memcpy(o, b'{"SequenceNumber":"', 19)
        o += 19
        o += seq_format(<uint64_t>sh.created_secs, sh.index, p._seq[i] + 1, <uint64_t>(p._ms[i] // 1000), o)
        memcpy(o, b'","ShardId":"', 13)
        o += 13
        sid = sh.shard_id
        memcpy(o, PyUnicode_DATA(sid), PyUnicode_GET_LENGTH(sid))
        o += PyUnicode_GET_LENGTH(sid)
        memcpy(o, b'"}', 2)
        o += 2
    if kms:
        memcpy(o, b'],"EncryptionType":"KMS"}', 25)
        o += 25
    else:
        memcpy(o, b']}', 2)
        o += 2
    return fk_bytes_done(out, o - start)

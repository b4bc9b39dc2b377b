"""Record framing for data directories (issue 15), written for clarity: the behaviour of fastkin._cy.journal.

A segment file (fastkin.segments) is a header then frames, back to back, little-endian:

    frame = u32 body length | u32 CRC32C(body) | body
    body  = u64 position | i64 arrival ms | u16 key length | data | key (UTF-8)

"position" is the record's index in its shard's log (its sequence number's seqIndex is position + 1). Data then
key, back to back, is the compiled core's arena layout: a closed segment file is adopted by mapping it, its
index (fastkin.segments) pointing at each record's data (frame offset + FRAME_HEAD + BODY_HEAD).
(Format 1, phase 1, had the key before the data.)
CRC32C is the Castagnoli CRC (reflected polynomial 0x82F63B78) of RFC 3720, bit by bit into one table here.
"""
from __future__ import annotations

import struct
from array import array

NAME = "ref"
FRAME_HEAD = 8          # u32 length + u32 crc
BODY_HEAD = 18          # u64 position + i64 ms + u16 key length
BODY_MAX = 64 * 1024 * 1024   # a body longer than this is corrupt (a record is at most 10 MiB + key)

_POLY = 0x82F63B78
_HEAD = struct.Struct("<II")
_BODY = struct.Struct("<QqH")


def _table() -> list[int]:
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (_POLY if c & 1 else 0)
        out.append(c)
    return out


_TABLE = _table()


def crc32c(data, crc: int = 0) -> int:
    """CRC32C of a bytes-like object, continuing from ``crc`` (crc32c(a + b) == crc32c(b, crc32c(a)))."""
    c = crc ^ 0xFFFFFFFF
    table = _TABLE
    for b in bytes(memoryview(data)):
        c = (c >> 8) ^ table[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def _as_bytes(data) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(memoryview(data))


def frame(position: int, arrival_ms: int, key, data) -> bytes:
    """One record's frame (bytes)."""
    kb = b"" if key is None else key.encode("utf-8")     # None: AUTO distribution, no partition key
    body = _BODY.pack(position, arrival_ms, len(kb)) + _as_bytes(data) + kb
    return _HEAD.pack(len(body), crc32c(body)) + body


def frame_batch(core, result, records, out: dict) -> int:
    """Frame the accepted entries of a PutRecords ``result`` (of ``records``, the request's tuples) into
    ``out``: shard index -> [bytearray of frames, first position, first arrival ms, count], in request order
    (which is position order within each shard). Returns the number of records framed."""
    n = 0
    for r, rec in zip(result, records):
        if r.error_code is not None:
            continue
        index = int(r.shard_id.rsplit("-", 1)[1])
        position = core_position(r.sequence_number)
        ms = core.arrival_ms(index, position)
        entry = out.get(index)
        if entry is None:
            entry = out[index] = [bytearray(), position, ms, 0]
        entry[0] += frame(position, ms, rec[1], rec[0])
        entry[3] += 1
        n += 1
    return n


def core_position(sequence_number: str) -> int:
    """The log position of a sequence number (its seqIndex field - 1; see fastkin._ref.core)."""
    return ((int(sequence_number) >> 80) & 0xFFFFFFFFFFFFFFFF) - 1


def scan(buf, offset: int = 0) -> tuple[list[tuple[int, int, str, bytes]], int, str | None]:
    """Read frames from ``offset``: (records, end, problem). records: (position, arrival ms, key, data) of
    every valid frame up to the first invalid one; end: the offset just after the last valid frame;
    problem: None when the buffer ends exactly there, else "torn" (a frame runs past the end), "length" (an
    impossible length) or "crc" (the body does not match its CRC)."""
    view = memoryview(buf).cast("B")
    n = len(view)
    at = offset
    out: list[tuple[int, int, str, bytes]] = []
    while at < n:
        if n - at < FRAME_HEAD:
            return out, at, "torn"
        body, crc = _HEAD.unpack_from(view, at)
        if not BODY_HEAD <= body <= BODY_MAX:
            return out, at, "length"
        if n - at - FRAME_HEAD < body:
            return out, at, "torn"
        b = bytes(view[at + FRAME_HEAD:at + FRAME_HEAD + body])
        if crc32c(b) != crc:
            return out, at, "crc"
        position, ms, kl = _BODY.unpack_from(b)
        if kl > body - BODY_HEAD:
            return out, at, "length"
        dl = body - BODY_HEAD - kl
        out.append((position, ms, b[BODY_HEAD + dl:].decode("utf-8"), b[BODY_HEAD:BODY_HEAD + dl]))
        at += FRAME_HEAD + body
    return out, at, None


def index_frames(buf, offset: int, base: int, check_crc: bool = True, shift: int = 0):
    """Index the frames of a segment file from ``offset``: (count, end, problem, ms, off, dlen, klen).
    The four arrays are little-endian bytes (i64, u32, u32, u16 per record): arrival ms, offset of the data
    in ``buf`` plus ``shift`` (where ``buf`` starts in its file, when it is a piece of one), data length, key
    length. Stops at the first frame that is torn, of an impossible length,
    fails its CRC (when ``check_crc``), is not at position ``base + count`` or arrives before the previous
    one ("order"); ``end`` is the offset just after the last indexed frame, ``problem`` None when that is
    the end of ``buf``. Data is not copied (a closed file is indexed at roll and rebuilt by recovery)."""
    view = memoryview(buf).cast("B")
    n = len(view)
    at = offset
    ms_a, off_a, dlen_a, klen_a = array("q"), array("I"), array("I"), array("H")
    problem = None
    last = None
    while at < n:
        if n - at < FRAME_HEAD:
            problem = "torn"
            break
        body, crc = _HEAD.unpack_from(view, at)
        if not BODY_HEAD <= body <= BODY_MAX:
            problem = "length"
            break
        if n - at - FRAME_HEAD < body:
            problem = "torn"
            break
        if check_crc and crc32c(view[at + FRAME_HEAD:at + FRAME_HEAD + body]) != crc:
            problem = "crc"
            break
        position, ms, kl = _BODY.unpack_from(view, at + FRAME_HEAD)
        if kl > body - BODY_HEAD:
            problem = "length"
            break
        if position != base + len(ms_a) or (last is not None and ms < last):
            problem = "order"
            break
        last = ms
        ms_a.append(ms)
        off_a.append(at + shift + FRAME_HEAD + BODY_HEAD)
        dlen_a.append(body - BODY_HEAD - kl)
        klen_a.append(kl)
        at += FRAME_HEAD + body
    # host order, as the compiled twin (index files are written in it: fastkin.segments assumes little-endian)
    return (len(ms_a), at, problem, ms_a.tobytes(), off_a.tobytes(), dlen_a.tobytes(), klen_a.tobytes())

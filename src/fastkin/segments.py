"""One shard's records on disk: append-only segment files and their indexes (issue 15; fastkin.durable drives them).

A shard's directory holds ``<base:020d>.seg`` files, ``base`` being the log position of the file's first
record. A file is a 32-byte header then frames (the frame layout is in fastkin._ref.journal):

    header = "fastkseg" | u32 format version (2) | u32 shard index | u64 base | u32 CRC32C(the 24 bytes before) | 4x0

A closed file (rolled, or the newest at engine.close) gets ``<base:020d>.idx`` (INDEX_HEADER, then the arrays
i64 ms[count], u32 off[count] (data offset in the .seg), u32 dlen[count], u16 klen[count]; written to a
temporary file, fsynced, renamed). Recovery adopts a file whose index is valid without reading its payload.
The index is built in memory as frames are appended (index_frames over the frames just written: the file
is never read back). The newest file's entries reach its ``<base:020d>.tix`` (tail index, CHUNK below) as
fsyncs make them durable (``checkpoint``, from fastkin.durable's background thread): after a crash, recovery
reads the newest file only past the end of its tail index, i.e. the unsynced tail.

Invariants: files are appended to only, the newest one alone; positions are contiguous within a file and
across files (file k+1's base is file k's base plus its record count); arrivals never go back. A file is
started (rolled) when the current one would pass ``segment_bytes`` or its first record is older than
``segment_ms``; retention deletes whole files, never the newest (its name keeps the shard's next position
on disk even when every record expired). A closed shard's files are left as they are; children have
their own directories, nothing is copied.

Recovery (ShardLog.recover) checks every file's header and the positions across files; files without a valid
index are read (past their tail index's end) and each frame's CRC and position checked. At the first
damage it keeps every valid record before it and stops: the bad tail of the file is copied to the data
directory's ``quarantine/`` and cut off; later files of the shard (after a gap or a damaged file) are moved
there whole. Every such step is reported (``Damage``). Nothing is ever deleted by recovery.

Thread-safety: a ShardLog is used under fastkin.durable's lock, except ``sync`` (group commit, own lock).
"""
from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass

HEADER = struct.Struct("<8sIIQI4x")
MAGIC = b"fastkseg"
SEGMENT_VERSION = 2                    # 1 (phase 1): key before data in a frame's body
# magic | u32 version | u32 shard index | u64 base | u64 count | u64 segment file size | i64 first ms | i64 last ms
#       | u32 CRC32C(body) | u32 CRC32C(the 60 bytes before)
INDEX_HEADER = struct.Struct("<8sIIQQQqqII")
INDEX_MAGIC = b"fastkidx"
INDEX_VERSION = 1
INDEX_RECORD = 18                      # i64 ms + u32 offset + u32 data length + u16 key length
# The newest file's tail index <base:020d>.tix: a header (HEADER's layout, TAIL_MAGIC) then chunks, each
# u64 first position | u64 start offset | u64 end offset (in the .seg) | u32 count | u32 CRC32C(body)
# | u32 CRC32C(the 32 bytes before) | 4x0, then the body: i64 ms[count] | u32 off[count] | u32 dlen[count]
# | u16 klen[count]
TAIL_MAGIC = b"fastktix"
CHUNK = struct.Struct("<QQQIII4x")
SEGMENT_BYTES = 64 * 1024 * 1024       # roll before a file would pass this (the core's segment size)
SEGMENT_MS = 3600 * 1000               # roll when the file's first record is older than this (as the core)


# One CRC32C for headers and indexes: the compiled one when built (an index is MBs, which the reference's table
# loop would take seconds over); both give the same values (tests/durable/test_journal.py).
try:
    from ._cy.journal import crc32c
except ImportError:  # pragma: no cover - a build without the extension
    from ._ref.journal import crc32c


def journal_module(core_name: str):
    """The record framing for an engine's core: the compiled one for the compiled core (it reads that core's
    PutRecordsResult), the reference otherwise (or when the extension is missing)."""
    if core_name == "cy":
        try:
            from ._cy import journal
            return journal
        except ImportError:  # pragma: no cover - a build without the journal extension
            pass
    from ._ref import journal as ref_journal
    return ref_journal


def header(index: int, base: int, magic: bytes = MAGIC) -> bytes:
    head = HEADER.pack(magic, SEGMENT_VERSION, index, base, 0)[:24]
    return HEADER.pack(magic, SEGMENT_VERSION, index, base, crc32c(head))


def tail_header(index: int, base: int) -> bytes:
    return header(index, base, TAIL_MAGIC)


@dataclass
class Damage:
    """What recovery found wrong in one file, and what it did about it."""

    path: str                  # the segment file
    offset: int                # byte offset of the first bad byte
    problem: str               # "torn", "crc", "length", "header", "order", "gap", "missing" (an index without
    #                            its segment file), "index-missing" / "index-bad" (rebuilt)
    dropped_bytes: int         # bytes no longer in the shard's log (kept under quarantine/)
    first_position: int | None  # log position the damage starts at (None when unknown)
    dropped_records: int       # complete frames dropped (a torn write counts 0; after a bad CRC, the frames that
    #                            still validate behind it, which recovery cannot put back without a gap)
    action: str                # "truncated" or "quarantined"

    def __str__(self) -> str:
        at = "" if self.first_position is None else f" at position {self.first_position}"
        return (f"{self.path}: {self.problem} at byte {self.offset}{at}: {self.dropped_bytes} bytes, "
                f"{self.dropped_records} complete records {self.action}")


class ShardLog:
    """The segment files of one shard, and the open file of the newest."""

    def __init__(self, directory: str, index: int, journal, quarantine: str) -> None:
        self.directory = directory
        self.index = index
        self.journal = journal
        self.quarantine = quarantine          # where recovery puts what it cuts off
        self.bases: list[int] = []            # bases of the files on disk, oldest first
        self._fd = -1                         # the newest file, open for appending (-1: none yet)
        self._size = 0                        # its size in bytes
        self._first_ms = 0                    # arrival of its first record
        self.written = 0                      # appends so far (group commit: sync() covers every append <= it)
        self.synced = 0
        self._sync_lock = threading.Lock()    # the newest file's descriptor and fsyncs
        self._dirs: list[str] = []            # directories to fsync with the newest file's next fsync
        # the newest file's index, built as frames are appended (no read-back): its four arrays, the end of
        # the last append and the records so far; the part of it known fsynced (sync: (end, count)); and
        # the part already in its tail index file (checkpoint)
        self._ix_lock = threading.Lock()
        self._ix = (bytearray(), bytearray(), bytearray(), bytearray())
        self._ix_end = 0
        self._ix_count = 0
        self._synced_mark = (0, 0)
        self._tix_fd = -1
        self._tix_count = 0
        self._tix_start = HEADER.size

    def path(self, base: int) -> str:
        return os.path.join(self.directory, f"{base:020d}.seg")

    def index_path(self, base: int) -> str:
        return os.path.join(self.directory, f"{base:020d}.idx")

    def tail_path(self, base: int) -> str:
        return os.path.join(self.directory, f"{base:020d}.tix")

    # -- writing ------------------------------------------------------------------------------------------
    def append(self, frames, first_position: int, first_ms: int, segment_bytes: int, segment_ms: int,
               sync_dir: bool) -> int:
        """Write frames (whose first record is at ``first_position``); returns this append's number."""
        if (self._fd < 0 or first_ms - self._first_ms > segment_ms
                or (self._size > HEADER.size and self._size + len(frames) > segment_bytes)):
            self._roll(first_position, first_ms, sync_dir)
        at = self._size
        view = memoryview(frames)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except BaseException:
            try:                            # a partial write (disk full): no stray bytes behind the last frame
                os.ftruncate(self._fd, at)
            except OSError:
                pass                        # (recovery cuts them off: a torn frame)
            raise
        self._size = end = at + len(frames)
        count, _, _, ms, off, dlen, klen = self.journal.index_frames(frames, 0, first_position, False, at)
        ix = self._ix
        with self._ix_lock:
            ix[0].extend(ms)
            ix[1].extend(off)
            ix[2].extend(dlen)
            ix[3].extend(klen)
            self._ix_end = end
            self._ix_count += count
        self.written += 1
        return self.written

    def _close_newest(self) -> None:
        """fsync and close the newest file, then write its index from the arrays built as it was appended to
        (it is closed: immutable from now on) and remove its tail index."""
        with self._sync_lock:               # the fsync thread may be in sync() on the old descriptor
            if self._fd < 0:
                return
            self._sync_dirs()
            os.fsync(self._fd)              # a closed file holds nothing unsynced (sync() sees only the newest)
            os.close(self._fd)
            self._fd = -1
        with self._ix_lock:
            if self._ix_count:
                base = self.bases[-1]
                write_index(self.index_path(base), self.index, base, self._ix_end, self._ix_count, *self._ix)
            if self._tix_fd >= 0:
                os.close(self._tix_fd)
                self._tix_fd = -1
            _unlink(self.tail_path(self.bases[-1]))
            self._reset_index(0)

    def _reset_index(self, end: int) -> None:
        self._ix = (bytearray(), bytearray(), bytearray(), bytearray())
        self._ix_end, self._ix_count = end, 0
        self._synced_mark = (end, 0)
        self._tix_count = 0
        self._tix_start = end

    def _roll(self, base: int, first_ms: int, sync_dir: bool) -> None:
        self._close_newest()
        dirs = [self.directory]             # whose entries change: the new file's, and each directory created
        parent = self.directory
        while not os.path.isdir(parent):
            parent = os.path.dirname(parent)
            dirs.append(parent)
        dirs.reverse()                      # outermost first: a name is persisted after its parent's
        os.makedirs(self.directory, exist_ok=True)
        path = self.path(base)
        if self.bases and self.bases[-1] == base:
            # the newest file holds no record yet (started just before a crash): append to it
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            size = os.fstat(fd).st_size
        else:
            _unlink(self.index_path(base))      # a stale index of a file recovery moved aside
            _unlink(self.tail_path(base))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            os.write(fd, header(self.index, base))
            size = HEADER.size
            self.bases.append(base)
        with self._ix_lock:
            self._reset_index(size)
        with self._sync_lock:
            self._fd, self._size, self._first_ms = fd, size, first_ms
            self._dirs = dirs               # fsynced before the file's first fsync (then a power loss keeps it)
            if sync_dir:
                self._sync_dirs()
                os.fsync(fd)

    def _sync_dirs(self) -> None:
        """fsync the directories whose entries the newest file's creation changed (under _sync_lock)."""
        while self._dirs:
            _fsync_dir(self._dirs[0])
            del self._dirs[0]

    def sync(self, upto: int) -> None:
        """fsync the newest file unless an fsync that began after append number ``upto`` already did."""
        if self.synced >= upto:
            return
        with self._sync_lock:
            if self.synced >= upto or self._fd < 0:
                return
            target = self.written
            with self._ix_lock:
                mark = (self._ix_end, self._ix_count)   # appended before the fsync: on disk after it
            self._sync_dirs()               # first: when the file's fsync completes, its name is durable too
            os.fsync(self._fd)
            self.synced = max(self.synced, target)
            self._synced_mark = mark

    def checkpoint(self) -> int:
        """Append the index entries of the newest file's fsynced records not yet there to its tail index
        (``<base>.tix``): after a crash, recovery reads the file only from where that index ends (the
        unsynced tail). Returns the entries written. Called by fastkin.durable's background thread after
        its fsyncs; nothing is fsynced here (a torn chunk fails its CRC: recovery then reads more)."""
        with self._ix_lock:
            end, count = self._synced_mark
            first = self._tix_count
            if count <= first or self._fd < 0:
                return 0
            base = self.bases[-1]
            if self._tix_fd < 0:
                self._tix_fd = os.open(self.tail_path(base), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                                       0o644)
                os.write(self._tix_fd, tail_header(self.index, base))
                self._tix_start = HEADER.size
            body = b"".join(bytes(memoryview(a)[first * w:count * w]) for a, w in zip(self._ix, (8, 4, 4, 2)))
            head = CHUNK.pack(base + first, self._tix_start, end, count - first, crc32c(body), 0)
            head = head[:32] + crc32c(head[:32]).to_bytes(4, "little") + bytes(4)
            _write_all(self._tix_fd, head + body)
            self._tix_count, self._tix_start = count, end
            return count - first

    def close(self) -> None:
        with self._sync_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        with self._ix_lock:
            if self._tix_fd >= 0:
                os.close(self._tix_fd)
                self._tix_fd = -1

    def seal(self) -> None:
        """Close the newest file for good (engine.close): fsync it and write its index, so that the next
        recovery scans nothing (a restart starts a new file per shard anyway)."""
        self._close_newest()

    # -- retention ----------------------------------------------------------------------------------------
    def delete_below(self, horizon: int) -> int:
        """Delete every file whose records are all below log position ``horizon`` (never the newest)."""
        n = 0
        while len(self.bases) > 1 and self.bases[1] <= horizon:
            base = self.bases.pop(0)
            os.unlink(self.path(base))
            _unlink(self.index_path(base))
            n += 1
        if n:
            _fsync_dir(self.directory)      # (else a power cut may bring them back: retention drops them again)
        return n

    def delete_all(self) -> None:
        self.close()
        for base in self.bases:
            _unlink(self.path(base))
            _unlink(self.index_path(base))
            _unlink(self.tail_path(base))
        self.bases = []
        try:
            os.rmdir(self.directory)
        except OSError:
            pass

    # -- recovery -----------------------------------------------------------------------------------------
    def recover(self, adopt, restore, damage: list[Damage], stats: dict, verify: bool = False) -> int:
        """Recover the shard's files, oldest first; returns how many records the core got.

        A file with a valid index (header and body CRC, its shard, base and file size) is handed whole to
        ``adopt(position, path, size, ms, off, dlen, klen)`` (StreamCore.adopt_segment) without reading its
        payload. Any other file (the newest after a crash, or one whose index is missing or bad) is read
        and every frame's CRC checked; damage is cut off as described at the top; then its index is
        written (every file recovery keeps is closed) and it is adopted too. A missing or bad index of a
        file that is not the newest is reported (problem "index-missing"/"index-bad", action "rebuilt").
        With ``adopt=None`` (a metadata-only stream) the records are replayed one by one with
        ``restore(position, arrival_ms, data, key)`` instead. ``stats`` counts what was read (see
        fastkin.durable.Durable.recovery). ``verify``: read every file whole and check every frame's CRC, as
        if it had no index nor tail index (a valid index is then not rewritten nor reported)."""
        try:
            names = sorted(n for n in os.listdir(self.directory) if n.endswith(".seg") and n[:-4].isdigit())
        except FileNotFoundError:
            names = []
        bases = [int(n[:-4]) for n in names]
        expected: int | None = None
        restored = 0
        for k, base in enumerate(bases):
            path = self.path(base)
            last = k == len(bases) - 1
            with open(path, "rb") as f:
                head = f.read(HEADER.size)
                size = os.fstat(f.fileno()).st_size
            bad = _bad_header(head, self.index, base)
            if bad is None and expected is not None and base != expected:
                bad = "gap"
            if bad is not None:
                self._quarantine_files(bases[k:], bad, expected, damage)
                break
            idx, why = read_index(self.index_path(base), self.index, base, size)
            indexed = idx is not None
            if verify:
                idx = None
            tail = self.tail_path(base)
            buf = None
            problem = None
            if idx is not None:
                count, ms, off, dlen, klen = idx
                end = size
                _unlink(tail)               # (a crash between writing the index and removing it)
            else:
                # what the tail index covers is taken as it is; the rest of the file is read and checked
                t_count, at, t_parts = (0, HEADER.size, None) if verify else \
                    read_tail_index(tail, self.index, base, size)
                with open(path, "rb") as f:
                    f.seek(at)
                    buf = f.read()
                stats["scanned_files"] += 1
                stats["scanned_bytes"] += len(buf)
                stats["tail_indexed_records"] += t_count
                count, end, problem, ms, off, dlen, klen = self.journal.index_frames(buf, 0, base + t_count, True,
                                                                                     at)
                stats["scanned_records"] += count
                if not last and not indexed:
                    damage.append(Damage(self.index_path(base), 0, why, 0, base, 0, "rebuilt"))
                if problem is not None:
                    damage.append(Damage(path, at + end, problem, len(buf) - end, base + t_count + count,
                                         _frames_after(self.journal, buf, end), "truncated"))
                    self._cut(path, buf[end:], at + end)
                if t_parts is not None:
                    ms, off, dlen, klen = (t + b for t, b in zip(t_parts, (ms, off, dlen, klen)))
                count += t_count
                end += at
                if count and (not indexed or problem is not None):
                    write_index(self.index_path(base), self.index, base, end, count, ms, off, dlen, klen)
                    stats["indexes_written"] += 1
                _unlink(tail)
                buf = None                  # (_give reads the whole file when it needs it)
            if count:
                try:
                    self._give(adopt, restore, base, path, end, buf, count, ms, off, dlen, klen, stats)
                except ValueError:
                    # the core refuses the file (its first arrival is before the previous file's last)
                    if buf is None:
                        with open(path, "rb") as f:
                            buf = f.read()
                    damage.append(Damage(path, HEADER.size, "order", end - HEADER.size, base, count, "truncated"))
                    self._cut(path, buf[HEADER.size:], HEADER.size)
                    count, problem = 0, "order"
            restored += count
            self.bases.append(base)
            expected = base + count
            if problem is not None:
                if not last:
                    self._quarantine_files(bases[k + 1:], "gap", expected, damage)
                break
        self._orphans(damage)
        return restored

    def _orphans(self, damage: list[Damage]) -> None:
        """Indexes whose segment file is gone (deleted by hand, say the newest): reported as "missing" with
        the records they list, and moved to quarantine/. (A file deleted with its index leaves no trace but a
        gap, reported as such, unless it was the newest; the positions of lost records are then given again.)"""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return
        for n in names:
            stem, _, ext = n.partition(".")
            if ext not in ("idx", "tix") or not stem.isdigit() or os.path.exists(self.path(int(stem))):
                continue
            base, path = int(stem), os.path.join(self.directory, n)
            if ext == "tix":
                records = read_tail_index(path, self.index, base, 1 << 62)[0]
            else:
                with open(path, "rb") as f:
                    head = f.read(INDEX_HEADER.size)
                ok = len(head) == INDEX_HEADER.size and crc32c(head[:-4]) == int.from_bytes(head[-4:], "little")
                records = INDEX_HEADER.unpack(head)[4] if ok else 0
            damage.append(Damage(self.path(base), 0, "missing", 0, base, records, "quarantined"))
            os.makedirs(self.quarantine, exist_ok=True)
            os.replace(path, os.path.join(self.quarantine, n))

    def _give(self, adopt, restore, base, path, size, buf, count, ms, off, dlen, klen, stats) -> None:
        if adopt is not None:
            adopt(base, path, size, ms, off, dlen, klen)
            stats["adopted_files"] += 1
            stats["adopted_records"] += count
            return
        if buf is None:
            with open(path, "rb") as f:
                buf = f.read()
        a_ms, a_off = memoryview(ms).cast("q"), memoryview(off).cast("I")
        a_dlen, a_klen = memoryview(dlen).cast("I"), memoryview(klen).cast("H")
        for i in range(count):
            o, d = a_off[i], a_dlen[i]
            restore(base + i, a_ms[i], buf[o:o + d], buf[o + d:o + d + a_klen[i]].decode("utf-8"))
        stats["replayed_records"] += count

    def _cut(self, path: str, dropped: bytes, end: int) -> None:
        """Copy ``dropped`` (the file's bytes from ``end`` on) to quarantine/, then truncate the file at
        ``end`` (its index goes)."""
        os.makedirs(self.quarantine, exist_ok=True)
        keep = os.path.join(self.quarantine, f"{os.path.basename(path)}.from-{end}")
        with open(keep, "wb") as f:
            f.write(dropped)
            f.flush()
            os.fsync(f.fileno())
        _unlink(path[:-4] + ".idx")
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())

    def _quarantine_files(self, bases: list[int], problem: str, position: int | None, damage: list[Damage]) -> None:
        os.makedirs(self.quarantine, exist_ok=True)
        for base in bases:
            path = self.path(base)
            with open(path, "rb") as f:
                buf = f.read()
            n = len(self.journal.scan(buf, HEADER.size)[0]) if len(buf) >= HEADER.size else 0
            damage.append(Damage(path, 0, problem, len(buf), position, n, "quarantined"))
            os.replace(path, os.path.join(self.quarantine, os.path.basename(path)))
            for side in (self.index_path(base), self.tail_path(base)):
                if os.path.exists(side):
                    os.replace(side, os.path.join(self.quarantine, os.path.basename(side)))
            position = None
        _fsync_dir(self.directory)


def write_index(path: str, index: int, base: int, size: int, count: int, ms, off, dlen, klen) -> None:
    """Write a closed segment file's index (``path`` = its .idx) atomically: a temporary file, fsynced,
    renamed. ``size``: the bytes of the segment file it covers (its whole size: the file is closed)."""
    a_ms = memoryview(ms).cast("q")
    body_crc = 0
    for part in (ms, off, dlen, klen):
        body_crc = crc32c(part, body_crc)
    head = INDEX_HEADER.pack(INDEX_MAGIC, INDEX_VERSION, index, base, count, size, a_ms[0], a_ms[-1], body_crc, 0)
    head = head[:-4] + crc32c(head[:-4]).to_bytes(4, "little")
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for part in (head, ms, off, dlen, klen):
            view = memoryview(part).cast("B")
            while view:
                view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))   # the index's name is durable too (else recovery rebuilds it)


def read_index(path: str, index: int, base: int, size: int):
    """A segment file's index if it is valid for this file (magic, version, CRCs, shard, base, and the file's
    ``size``): ((count, ms, off, dlen, klen), None), the arrays as memoryviews of the file's bytes; else
    (None, "index-missing" or "index-bad")."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except FileNotFoundError:
        return None, "index-missing"
    if len(buf) < INDEX_HEADER.size or crc32c(buf[:INDEX_HEADER.size - 4]) != \
            int.from_bytes(buf[INDEX_HEADER.size - 4:INDEX_HEADER.size], "little"):
        return None, "index-bad"
    magic, version, idx, b, count, covered, _, _, body_crc, _ = INDEX_HEADER.unpack_from(buf)
    if (magic != INDEX_MAGIC or version != INDEX_VERSION or idx != index or b != base or covered != size
            or count == 0 or len(buf) != INDEX_HEADER.size + INDEX_RECORD * count):
        return None, "index-bad"
    view = memoryview(buf)
    at = INDEX_HEADER.size
    parts = []
    for width in (8, 4, 4, 2):
        parts.append(view[at:at + width * count])
        at += width * count
    if crc32c(view[INDEX_HEADER.size:], 0) != body_crc:
        return None, "index-bad"
    return (count, *parts), None


def read_tail_index(path: str, index: int, base: int, size: int):
    """What a newest file's tail index (``path`` = its .tix) says of it: (count, end, (ms, off, dlen, klen)),
    the entries of its first ``count`` records, which end at byte ``end`` of the segment file. Chunks are
    taken in order while each is whole, passes its CRCs and continues the one before (positions and byte
    offsets) within the file's ``size``; a missing or bad file gives (0, HEADER.size, None)."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except FileNotFoundError:
        return 0, HEADER.size, None
    if _bad_header(buf[:HEADER.size], index, base, TAIL_MAGIC) is not None:
        return 0, HEADER.size, None
    view = memoryview(buf)
    parts: tuple[list, list, list, list] = ([], [], [], [])
    count, end, at = 0, HEADER.size, HEADER.size
    while len(buf) - at >= CHUNK.size:
        first, start, stop, n, body_crc, head_crc = CHUNK.unpack_from(buf, at)
        if crc32c(view[at:at + 32]) != head_crc or first != base + count or start != end or stop > size or n == 0:
            break
        body = view[at + CHUNK.size:at + CHUNK.size + INDEX_RECORD * n]
        if len(body) != INDEX_RECORD * n or crc32c(body) != body_crc:
            break
        k = 0
        for part, width in zip(parts, (8, 4, 4, 2)):
            part.append(body[k:k + width * n])
            k += width * n
        count, end = count + n, stop
        at += CHUNK.size + INDEX_RECORD * n
    if not count:
        return 0, HEADER.size, None
    return count, end, tuple(b"".join(p) for p in parts)


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _bad_header(buf: bytes, index: int, base: int, expect: bytes = MAGIC) -> str | None:
    if len(buf) < HEADER.size:
        return "header"
    magic, version, idx, b, crc = HEADER.unpack_from(buf)
    if magic != expect or version != SEGMENT_VERSION or idx != index or b != base or crc != crc32c(buf[:24]):
        return "header"
    return None


def _frames_after(journal, buf: bytes, end: int) -> int:
    """Complete frames behind a damaged one whose length is intact (a bad CRC): what a gap-free log loses."""
    if len(buf) - end < journal.FRAME_HEAD:
        return 0
    body = int.from_bytes(buf[end:end + 4], "little")
    nxt = end + journal.FRAME_HEAD + body
    if body < journal.BODY_HEAD or nxt > len(buf):
        return 0
    return 1 + len(journal.scan(buf, nxt)[0])


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

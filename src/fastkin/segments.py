"""One shard's records on disk: append-only segment files and their indexes (issue 15; fastkin.durable drives them).

A shard's directory holds ``<base:020d>.seg`` files, ``base`` being the log position of the file's first
record. A file is a 32-byte header then frames (the frame layout is in fastkin._ref.journal):

    header = "fastkseg" | u32 format version (2) | u32 shard index | u64 base | u32 CRC32C(the 24 bytes before) | 4x0

A closed file (rolled, or the newest at engine.close) gets ``<base:020d>.idx`` (INDEX_HEADER, then the arrays
i64 ms[count], u32 off[count] (data offset in the .seg), u32 dlen[count], u16 klen[count]; written to a
temporary file, fsynced, renamed). Recovery adopts a file whose index is valid without reading its payload.

Invariants: files are appended to only, the newest one alone; positions are contiguous within a file and
across files (file k+1's base is file k's base plus its record count); arrivals never go back. A file is
started (rolled) when the current one would pass ``segment_bytes`` or its first record is older than
``segment_ms``; retention deletes whole files, never the newest (its name keeps the shard's next position
on disk even when every record expired). A closed shard's files are left as they are; children have
their own directories, nothing is copied.

Recovery (ShardLog.recover) checks every file's header and the positions across files; files without a valid
index are read and each frame's CRC and position checked. At the first
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


def header(index: int, base: int) -> bytes:
    head = HEADER.pack(MAGIC, SEGMENT_VERSION, index, base, 0)[:24]
    return HEADER.pack(MAGIC, SEGMENT_VERSION, index, base, crc32c(head))


@dataclass
class Damage:
    """What recovery found wrong in one file, and what it did about it."""

    path: str                  # the segment file
    offset: int                # byte offset of the first bad byte
    problem: str               # "torn", "crc", "length", "header", "order", "gap"
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
        self._sync_lock = threading.Lock()
        self._new_entries: list[str] = []     # directories whose new entries (the newest file, new directories)
        #                                       are not fsynced yet: the next sync() of the file fsyncs them first

    def path(self, base: int) -> str:
        return os.path.join(self.directory, f"{base:020d}.seg")

    def index_path(self, base: int) -> str:
        return os.path.join(self.directory, f"{base:020d}.idx")

    # -- writing ------------------------------------------------------------------------------------------
    def append(self, frames, first_position: int, first_ms: int, segment_bytes: int, segment_ms: int,
               sync_dir: bool) -> int:
        """Write frames (whose first record is at ``first_position``); returns this append's number."""
        if (self._fd < 0 or first_ms - self._first_ms > segment_ms
                or (self._size > HEADER.size and self._size + len(frames) > segment_bytes)):
            self._roll(first_position, first_ms, sync_dir)
        view = memoryview(frames)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(frames)
        self.written += 1
        return self.written

    def _close_newest(self) -> None:
        """fsync and close the newest file, then write its index (it is closed: immutable from now on)."""
        with self._sync_lock:               # the fsync thread may be in sync() on the old descriptor
            if self._fd < 0:
                return
            self._sync_entries()
            os.fsync(self._fd)              # a closed file holds nothing unsynced (sync() sees only the newest)
            os.close(self._fd)
            self._fd = -1
            size = self._size
        if size > HEADER.size:
            base = self.bases[-1]
            with open(self.path(base), "rb") as f:
                buf = f.read()
            count, end, problem, ms, off, dlen, klen = self.journal.index_frames(buf, HEADER.size, base, False)
            if problem is None and count:       # (else recovery rebuilds it, checking every CRC)
                write_index(self.index_path(base), self.index, base, end, count, ms, off, dlen, klen)

    def _roll(self, base: int, first_ms: int, sync_dir: bool) -> None:
        self._close_newest()
        made = _makedirs(self.directory)
        path = self.path(base)
        if self.bases and self.bases[-1] == base:
            # the newest file holds no record yet (started just before a crash): append to it
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            size = os.fstat(fd).st_size
        else:
            _unlink(self.index_path(base))      # a stale index of a file recovery moved aside
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            os.write(fd, header(self.index, base))
            size = HEADER.size
            self.bases.append(base)
        # The names to persist: the new file's, and each new directory's in its parent (outermost first).
        entries = [os.path.dirname(made[0]), *made] if made else [self.directory]
        with self._sync_lock:
            self._fd, self._size, self._first_ms = fd, size, first_ms
            self._new_entries += [d for d in entries if d not in self._new_entries]
            if sync_dir:
                self._sync_entries()
                os.fsync(fd)

    def sync(self, upto: int) -> None:
        """fsync the newest file unless an fsync that began after append number ``upto`` already did."""
        if self.synced >= upto:
            return
        with self._sync_lock:
            if self.synced >= upto or self._fd < 0:
                return
            target = self.written
            self._sync_entries()            # before the file: when its fsync completes, its name is durable too
            os.fsync(self._fd)
            self.synced = max(self.synced, target)

    def _sync_entries(self) -> None:
        """fsync the directories holding entries made since the last sync (under _sync_lock)."""
        while self._new_entries:
            _fsync_dir(self._new_entries[0])
            del self._new_entries[0]

    def close(self) -> None:
        with self._sync_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

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
        return n

    def delete_all(self) -> None:
        self.close()
        for base in self.bases:
            _unlink(self.path(base))
            _unlink(self.index_path(base))
        self.bases = []
        try:
            os.rmdir(self.directory)
        except OSError:
            pass

    # -- recovery -----------------------------------------------------------------------------------------
    def recover(self, adopt, restore, damage: list[Damage], stats: dict) -> int:
        """Recover the shard's files, oldest first; returns how many records the core got.

        A file with a valid index (header and body CRC, its shard, base and file size) is handed whole to
        ``adopt(position, path, size, ms, off, dlen, klen)`` (StreamCore.adopt_segment) without reading its
        payload. Any other file (the newest after a crash, or one whose index is missing or bad) is read
        and every frame's CRC checked; damage is cut off as described at the top; then its index is
        written (every file recovery keeps is closed) and it is adopted too. A missing or bad index of a
        file that is not the newest is reported (problem "index-missing"/"index-bad", action "rebuilt").
        With ``adopt=None`` (a metadata-only stream) the records are replayed one by one with
        ``restore(position, arrival_ms, data, key)`` instead. ``stats`` counts what was read (see
        fastkin.durable.Durable.recovery)."""
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
            buf = None
            problem = None
            if idx is not None:
                count, ms, off, dlen, klen = idx
                end = size
            else:
                with open(path, "rb") as f:
                    buf = f.read()
                stats["scanned_files"] += 1
                stats["scanned_bytes"] += len(buf) - HEADER.size
                count, end, problem, ms, off, dlen, klen = self.journal.index_frames(buf, HEADER.size, base, True)
                stats["scanned_records"] += count
                if not last:
                    damage.append(Damage(self.index_path(base), 0, why, 0, base, 0, "rebuilt"))
                if problem is not None:
                    damage.append(Damage(path, end, problem, len(buf) - end, base + count,
                                         _frames_after(self.journal, buf, end), "truncated"))
                    self._cut(path, buf, end)
                if count:
                    write_index(self.index_path(base), self.index, base, end, count, ms, off, dlen, klen)
                    stats["indexes_written"] += 1
            if count:
                try:
                    self._give(adopt, restore, base, path, end, buf, count, ms, off, dlen, klen, stats)
                except ValueError:
                    # the core refuses the file (its first arrival is before the previous file's last)
                    if buf is None:
                        with open(path, "rb") as f:
                            buf = f.read()
                    damage.append(Damage(path, HEADER.size, "order", end - HEADER.size, base, count, "truncated"))
                    self._cut(path, buf, HEADER.size)
                    count, problem = 0, "order"
            restored += count
            self.bases.append(base)
            expected = base + count
            if problem is not None:
                if not last:
                    self._quarantine_files(bases[k + 1:], "gap", expected, damage)
                break
        return restored

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

    def _cut(self, path: str, buf: bytes, end: int) -> None:
        """Copy the bytes from ``end`` on to quarantine/, then truncate the file there (its index goes)."""
        os.makedirs(self.quarantine, exist_ok=True)
        keep = os.path.join(self.quarantine, f"{os.path.basename(path)}.from-{end}")
        with open(keep, "wb") as f:
            f.write(buf[end:])
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
            idx = self.index_path(base)
            if os.path.exists(idx):
                os.replace(idx, os.path.join(self.quarantine, os.path.basename(idx)))
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


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _bad_header(buf: bytes, index: int, base: int) -> str | None:
    if len(buf) < HEADER.size:
        return "header"
    magic, version, idx, b, crc = HEADER.unpack_from(buf)
    if magic != MAGIC or version != SEGMENT_VERSION or idx != index or b != base or crc != crc32c(buf[:24]):
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


def _makedirs(path: str) -> list[str]:
    """os.makedirs(path, exist_ok=True); returns the directories it made, outermost first."""
    made = []
    p = path
    while not os.path.isdir(p):
        made.append(p)
        p = os.path.dirname(p)
    os.makedirs(path, exist_ok=True)
    return made[::-1]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

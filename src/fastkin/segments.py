"""One shard's records on disk: append-only segment files (issue 15, phase 1; fastkin.durable drives them).

A shard's directory holds ``<base:020d>.seg`` files, ``base`` being the log position of the file's first
record. A file is a 32-byte header then frames (the frame layout is in fastkin._ref.journal):

    header = "fastkseg" | u32 format version (1) | u32 shard index | u64 base | u32 CRC32C(the 24 bytes before) | 4x0

Invariants: files are appended to only, the newest one alone; positions are contiguous within a file and
across files (file k+1's base is file k's base plus its record count); arrivals never go back. A file is
started (rolled) when the current one would pass ``segment_bytes`` or its first record is older than
``segment_ms``; retention deletes whole files, never the newest (its name keeps the shard's next position
on disk even when every record expired). A closed shard's files are left as they are; children have
their own directories, nothing is copied.

Recovery reads every file in order and checks the header, each frame's CRC, and the positions. At the first
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
SEGMENT_VERSION = 1
SEGMENT_BYTES = 64 * 1024 * 1024       # roll before a file would pass this (the core's segment size)
SEGMENT_MS = 3600 * 1000               # roll when the file's first record is older than this (as the core)


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
    from ._ref.journal import crc32c
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

    def path(self, base: int) -> str:
        return os.path.join(self.directory, f"{base:020d}.seg")

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

    def _roll(self, base: int, first_ms: int, sync_dir: bool) -> None:
        with self._sync_lock:               # the fsync thread may be in sync() on the old descriptor
            if self._fd >= 0:
                os.fsync(self._fd)          # a closed file holds nothing unsynced (sync() sees only the newest)
                os.close(self._fd)
                self._fd = -1
        os.makedirs(self.directory, exist_ok=True)
        path = self.path(base)
        if self.bases and self.bases[-1] == base:
            # the newest file holds no record yet (started just before a crash): append to it
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            size = os.fstat(fd).st_size
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            os.write(fd, header(self.index, base))
            size = HEADER.size
            self.bases.append(base)
        self._fd, self._size, self._first_ms = fd, size, first_ms
        if sync_dir:
            os.fsync(fd)
            _fsync_dir(self.directory)

    def sync(self, upto: int) -> None:
        """fsync the newest file unless an fsync that began after append number ``upto`` already did."""
        if self.synced >= upto:
            return
        with self._sync_lock:
            if self.synced >= upto or self._fd < 0:
                return
            target = self.written
            os.fsync(self._fd)
            self.synced = max(self.synced, target)

    def close(self) -> None:
        with self._sync_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    # -- retention ----------------------------------------------------------------------------------------
    def delete_below(self, horizon: int) -> int:
        """Delete every file whose records are all below log position ``horizon`` (never the newest)."""
        n = 0
        while len(self.bases) > 1 and self.bases[1] <= horizon:
            os.unlink(self.path(self.bases.pop(0)))
            n += 1
        return n

    def delete_all(self) -> None:
        self.close()
        for base in self.bases:
            try:
                os.unlink(self.path(base))
            except FileNotFoundError:
                pass
        self.bases = []
        try:
            os.rmdir(self.directory)
        except OSError:
            pass

    # -- recovery -----------------------------------------------------------------------------------------
    def recover(self, restore, damage: list[Damage]) -> int:
        """Read every file, oldest first, calling ``restore(position, arrival_ms, data, key)`` for each valid
        record (it raises ValueError for one the core refuses); returns how many were restored."""
        try:
            names = sorted(n for n in os.listdir(self.directory) if n.endswith(".seg") and n[:-4].isdigit())
        except FileNotFoundError:
            names = []
        bases = [int(n[:-4]) for n in names]
        expected: int | None = None
        restored = 0
        for k, base in enumerate(bases):
            path = self.path(base)
            with open(path, "rb") as f:
                buf = f.read()
            last = k == len(bases) - 1
            head = _bad_header(buf, self.index, base)
            if head is None and expected is not None and base != expected:
                head = "gap"
            if head is not None:
                self._quarantine_files(bases[k:], head, expected, damage)
                break
            records, end, problem = self.journal.scan(buf, HEADER.size)
            pos = base
            offset = HEADER.size
            for i, (position, ms, key, data) in enumerate(records):
                bad = position != pos
                if not bad:
                    try:
                        restore(position, ms, data, key)
                    except ValueError:
                        bad = True
                if bad:
                    problem, end = "order", offset
                    records = records[:i]
                    break
                pos += 1
                offset += self.journal.FRAME_HEAD + self.journal.BODY_HEAD + len(key.encode("utf-8")) + len(data)
            restored += len(records)
            self.bases.append(base)
            expected = pos
            if problem is not None:
                damage.append(Damage(path, end, problem, len(buf) - end, pos, _frames_after(self.journal, buf, end),
                                     "truncated"))
                self._cut(path, buf, end)
                if not last:
                    self._quarantine_files(bases[k + 1:], "gap", pos, damage)
                break
        return restored

    def _cut(self, path: str, buf: bytes, end: int) -> None:
        """Copy the bytes from ``end`` on to quarantine/, then truncate the file there."""
        os.makedirs(self.quarantine, exist_ok=True)
        keep = os.path.join(self.quarantine, f"{os.path.basename(path)}.from-{end}")
        with open(keep, "wb") as f:
            f.write(buf[end:])
            f.flush()
            os.fsync(f.fileno())
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
            position = None
        _fsync_dir(self.directory)


def _bad_header(buf: bytes, index: int, base: int) -> str | None:
    if len(buf) < HEADER.size:
        return "header"
    magic, version, idx, b, crc = HEADER.unpack_from(buf)
    from ._ref.journal import crc32c
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


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""A power cut in ``fsync="interval"`` mode loses nothing beyond the window (issue 15).

A process kill cannot test this (the page cache survives it), so the test records what the disk would hold.
While ``Engine(data_dir, fsync="interval", fsync_interval=0.05)`` takes PutRecords from a producer thread
that logs each acknowledgement with time.monotonic(), ``os.fsync``, ``os.open``, ``os.mkdir`` and
``os.replace`` are wrapped to log, with monotonic times, each fsync (start, end, the path behind the
descriptor and, for a file, its size when the fsync started) and each new directory entry (a file created,
a directory made, a rename's target). Then, for random moments ``cut`` during the run, a copy of the
directory is made as a disk could hold it after the power went at ``cut``, the harshest plausible way:

- a directory entry under ``streams/`` (a directory, a segment file, an index) exists only if an fsync of
  its parent directory that started after the entry was made completed before ``cut``; otherwise it is
  absent, and so is everything below it (POSIX: fsync of a file does not persist its name);
- a segment file holds exactly the bytes it had when its last fsync completed before ``cut`` started (its
  size then): nothing written later, even though a real disk often holds more; a file with no such fsync
  is empty (its name persisted, none of its data);
- an index file that exists is whole (write_index fsyncs it under a temporary name before the rename);
  temporary files are left out;
- FORMAT, LOCK and meta.sqlite3 with its -wal are copied as they are. Assumed: SQLite (WAL,
  synchronous=NORMAL) holds every commit made before the run (the streams are created, and the engine
  opened, before the first put; nothing is committed during the run). (Commits made during a run are
  fsynced with the WAL by the next flush: tests/durable/test_data_dir.py checks that.)
- deletions are not modelled (there are none during the run: no retention, no resharding).

The copy is opened, and checked:

- the precise guarantee: every record whose segment file had an fsync that STARTED after the record was
  acknowledged and completed before ``cut`` is there, once, on its shard, with its sequence number and data;
- nothing is duplicated or altered: every record recovered is one that was written, with the shard and
  sequence number it was acknowledged with, and each shard holds a prefix of what was acknowledged on it;
- new puts get sequence numbers above every recovered one on their shard;
- the user-facing figure: the records lost were acknowledged at most (the longest gap between fsync starts
  of a file + the longest fsync) before the cut (a consequence of the first point, given the observed
  timings). The figures themselves are printed (``-s``), not asserted: this is a shared, noisy machine.

The same run with ``fsync="always"`` (compiled core): there every record acknowledged before the cut is
guaranteed (its fsync, and its new names', completed before the answer).

One run of about 1.5 s per core with small segment files (so files and directories are created during
the run), 15 cuts each: 10 at random moments, 5 just after the first fsync of a new segment file completed
(the moment its records become guaranteed: its name, and its new directories', must be durable by then)."""
from __future__ import annotations

import os
import random
import shutil
import threading
import time
from bisect import bisect_left

import pytest
from durable_util import shard_records

import fastkin

STREAM = "pc"
INTERVAL = 0.05
RUN_SECONDS = 1.5
CUTS = 10                # at random moments
TARGETED = 5             # just after the first fsync of a new file


class DiskLog:
    """What the wrapped os calls saw: fsyncs and new directory entries, with monotonic times."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.fsyncs: list[tuple[str, float, float, int | None]] = []   # (path, start, end, file size at start)
        self.created: dict[str, float] = {}                             # path -> when its entry was made

    def install(self, mp: pytest.MonkeyPatch) -> None:
        real_fsync, real_open, real_mkdir, real_replace = os.fsync, os.open, os.mkdir, os.replace

        def fsync(fd):
            path = os.readlink(f"/proc/self/fd/{fd}")
            t0 = time.monotonic()
            st = os.fstat(fd)
            real_fsync(fd)
            t1 = time.monotonic()
            with self.lock:
                self.fsyncs.append((path, t0, t1, st.st_size if os.path.isfile(path) else None))

        def open_(path, flags, mode=0o777, *, dir_fd=None):
            new = bool(flags & os.O_CREAT) and not os.path.exists(path)
            fd = real_open(path, flags, mode, dir_fd=dir_fd)
            if new:
                self.note(path)
            return fd

        def mkdir(path, mode=0o777, *, dir_fd=None):
            real_mkdir(path, mode, dir_fd=dir_fd)
            self.note(path)

        def replace(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
            real_replace(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
            self.note(dst)

        mp.setattr(os, "fsync", fsync)
        mp.setattr(os, "open", open_)
        mp.setattr(os, "mkdir", mkdir)
        mp.setattr(os, "replace", replace)

    def note(self, path) -> None:
        t = time.monotonic()
        with self.lock:
            self.created[os.path.realpath(os.fspath(path))] = t

    # -- the disk at a moment ---------------------------------------------------------------------------
    def entry_durable(self, path: str, cut: float) -> bool:
        made = self.created.get(path)
        if made is None:
            return True                     # there before the run
        parent = os.path.dirname(path)
        return any(p == parent and t0 > made and t1 < cut for p, t0, t1, _ in self.fsyncs)

    def durable_size(self, path: str, cut: float) -> int:
        return max((size for p, _, t1, size in self.fsyncs if p == path and t1 < cut and size is not None), default=0)

    def image(self, dest: str, cut: float) -> dict:
        """Copy the directory as the disk held it after a power cut at ``cut``; returns what it dropped of what
        existed at ``cut`` (entries whose names were not durable; bytes of segment files, at most those written
        since: the files are copied at the end)."""
        dropped = {"entries": 0, "bytes": 0}
        streams = os.path.join(self.root, "streams")
        for name in os.listdir(self.root):
            src = os.path.join(self.root, name)
            if name != "streams" and os.path.isfile(src) and not name.endswith("-shm"):
                shutil.copy2(src, os.path.join(dest, name))
        if not os.path.isdir(streams):
            return dropped
        for dirpath, dirnames, filenames in os.walk(streams):
            if not self.entry_durable(dirpath, cut):
                dirnames[:] = []
                dropped["entries"] += self.created[dirpath] < cut
                continue
            out = os.path.join(dest, os.path.relpath(dirpath, self.root))
            os.makedirs(out, exist_ok=True)
            for f in filenames:
                src = os.path.join(dirpath, f)
                if f.endswith(".tmp") or not self.entry_durable(src, cut):
                    dropped["entries"] += self.created.get(src, 0.0) < cut
                    continue
                with open(src, "rb") as fh:
                    data = fh.read()
                if f.endswith(".seg"):
                    keep = self.durable_size(src, cut)
                    dropped["bytes"] += len(data) - keep
                    data = data[:keep]
                with open(os.path.join(out, f), "wb") as fh:
                    fh.write(data)
        return dropped


def producer(s, acked: list, stop: threading.Event) -> None:
    """PutRecords batches until told to stop; log (ack time, [(shard id, sequence number, data)])."""
    n = 0
    while not stop.is_set():
        batch = [(f"r{n + i:07d}".encode(), f"k{(n + i) % 13}") for i in range(8)]
        r = s.put_records(batch)
        t = time.monotonic()
        assert r.failed_record_count == 0
        acked.append((t, [(x.shard_id, x.sequence_number, d) for x, (d, _) in zip(r, batch)]))
        n += 8
        time.sleep(0.0005)


def stored(e) -> dict:
    """shard id -> [(sequence number, data)] of every record, oldest first."""
    return {sid: [(r.sequence_number, bytes(r.data)) for r in recs] for sid, recs in shard_records(e, STREAM).items()}


@pytest.mark.parametrize(("core", "fsync"), [("cy", "interval"), ("ref", "interval"), ("cy", "always")])
def test_power_cut_loses_nothing_beyond_the_interval(tmp_path, core, fsync, monkeypatch):
    root = str((tmp_path / "data").resolve())
    os.makedirs(root)
    disk = DiskLog(root)
    with monkeypatch.context() as mp:
        disk.install(mp)
        e = fastkin.Engine(data_dir=root, fsync=fsync, fsync_interval=INTERVAL, quotas=False, core=core)
        s = e.create_stream(STREAM, 2)
        e.durable.segment_bytes = 24 * 1024        # a new file about every 0.1-0.3 s per shard
        acked: list = []
        stop = threading.Event()
        t = threading.Thread(target=producer, args=(s, acked, stop), daemon=True)
        start = time.monotonic()
        t.start()
        time.sleep(RUN_SECONDS)
        stop.set()
        t.join(30)
        end = time.monotonic()
    # (what the engine does from here on, e.close() included, is not recorded: every cut is before `end`)
    fsyncs, created = disk.fsyncs, disk.created
    e.close()
    stream_dir = os.path.join(root, "streams", f"{s.incarnation:08d}-{STREAM}")
    files = {f"shardId-{i:012d}": sorted((t_made, p) for p, t_made in created.items()
                                         if os.path.dirname(p) == os.path.join(stream_dir, f"{i:012d}")
                                         and p.endswith(".seg"))
             for i in range(2)}
    assert acked and len(files["shardId-000000000000"]) >= 2, "the run made too few files to test new entries"

    def file_of(shard_id: str, t_ack: float) -> str:
        made = files[shard_id]
        k = bisect_left(made, (t_ack, "")) - 1      # the newest file made before the ack (one producer thread)
        return made[k][1]

    file_fsyncs: dict[str, list[tuple[float, float]]] = {}
    for p, t0, t1, size in fsyncs:
        if size is not None:
            file_fsyncs.setdefault(p, []).append((t0, t1))
    longest_fsync = max(t1 - t0 for _, t0, t1, _ in fsyncs)      # any fsync (the WAL's, a directory's too)
    longest_gap = max((b[0] - a[0] for v in file_fsyncs.values() for a, b in zip(sorted(v), sorted(v)[1:])),
                      default=0.0)
    starts = sorted(t0 for v in file_fsyncs.values() for t0, _ in v)
    if fsync == "interval":     # the background thread ran (a quarter of its rounds, whatever the machine's load)
        rounds = sum(1 for t in starts if start <= t <= end)
        assert rounds >= RUN_SECONDS / INTERVAL / 4, f"only {rounds} segment fsyncs in {end - start:.2f} s"

    rng = random.Random(15)
    cuts = [rng.uniform(start + 0.2, end - 0.05) for _ in range(CUTS)]
    # ... and the harshest moments: just after the first fsync of a file made during the run completed (its
    # records are guaranteed from then on, so its name must be durable by then too)
    firsts = sorted(min(t1 for t0, t1 in v) for p, v in file_fsyncs.items()
                    if p.endswith(".seg") and p in created and start < min(t1 for t0, t1 in v) < end)
    cuts += [t + 1e-6 for t in rng.sample(firsts, min(TARGETED, len(firsts)))]
    figures = []
    for k, cut in enumerate(cuts):
        image = os.path.join(str(tmp_path), f"cut{k}")
        os.makedirs(image)
        dropped = disk.image(image, cut)
        e2 = fastkin.Engine(data_dir=image, fsync="never", quotas=False, core=core)
        try:
            got = stored(e2)
            by_data = {}
            for sid, recs in got.items():
                for seq, data in recs:
                    assert data not in by_data, f"cut {k}: {data!r} recovered twice"
                    by_data[data] = (sid, seq)
            written = {d: (sid, seq) for _, recs in acked for sid, seq, d in recs}
            per_shard: dict[str, list] = {}
            for _, recs in acked:
                for sid, seq, d in recs:
                    per_shard.setdefault(sid, []).append((seq, d))
            for sid, recs in got.items():
                assert recs == per_shard.get(sid, [])[:len(recs)], f"cut {k}: {sid} is not a prefix of its acks"
            for d, where in by_data.items():
                assert written.get(d) == where, f"cut {k}: {d!r} recovered as {where}, acknowledged {written.get(d)}"
            guaranteed = lost = 0
            oldest_lost_ack = None
            for t_ack, recs in acked:
                for sid, seq, d in recs:
                    path = file_of(sid, t_ack)
                    if (t_ack < cut if fsync == "always" else
                            any(t0 > t_ack and t1 < cut for t0, t1 in file_fsyncs.get(path, ()))):
                        guaranteed += 1
                        assert by_data.get(d) == (sid, seq), \
                            f"cut {k}: {d!r} ({sid} {seq}) acknowledged at {t_ack - start:.3f} s, guaranteed by the " \
                            f"cut at {cut - start:.3f} s, is missing after the cut (the image dropped {dropped})"
                    elif t_ack < cut and d not in by_data:
                        lost += 1
                        if oldest_lost_ack is None:
                            oldest_lost_ack = t_ack
            window = 0.0 if oldest_lost_ack is None else cut - oldest_lost_ack
            # what the observed fsync schedule allows: a gap between fsync starts (the open one up to the cut
            # included: a loaded machine may stall the thread) plus the longest fsync
            open_gap = cut - max((t for t in starts if t < cut), default=start)
            assert window <= max(longest_gap, open_gap) + longest_fsync + 0.001, \
                (k, window, longest_gap, open_gap, longest_fsync)
            # new records continue above the recovered ones
            last = {sid: int(recs[-1][0]) for sid, recs in got.items() if recs}
            for x in e2.stream(STREAM).put_records([(b"after", f"k{i}") for i in range(13)]):
                assert int(x.sequence_number) > last.get(x.shard_id, -1)
            figures.append((k, round(cut - start, 3), guaranteed, lost, round(window * 1000, 1), dropped,
                            len(e2.durable.damage)))
        finally:
            e2.close()
    n_acked = sum(len(r) for _, r in acked)
    print(f"\n[{core}, fsync={fsync}] fsync_interval {INTERVAL * 1000:.0f} ms; longest fsync "
          f"{longest_fsync * 1000:.1f} ms; longest gap between a file's fsync starts {longest_gap * 1000:.1f} ms; "
          f"{n_acked} records acknowledged in {end - start:.2f} s")
    for k, at, g, lost, window, dropped, damage in figures:
        print(f"  cut {k} at {at:.3f} s: {g} guaranteed records present; {lost} acknowledged before the cut lost, "
              f"the oldest {window} ms before it; dropped {dropped}; recovery damage reports {damage}")

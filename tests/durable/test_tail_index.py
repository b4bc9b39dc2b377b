"""Tail indexes (issue 15: "no payload scan except the unsynced tail"): the newest segment file of a shard has a
``.tix`` beside it, to which the background thread appends the index entries of the records each fsync made
durable. After a crash, recovery takes those entries as they are and reads the file only from where they end;
a bad or missing tail index only makes it read more. A closed file's ``.idx`` is written from the index kept
in memory as the file was appended to (the file is not read back). Both cores."""
from __future__ import annotations

import shutil

import pytest
from durable_util import shard_records

import fastkin
from fastkin.segments import CHUNK, HEADER, INDEX_HEADER, read_index

T0 = 1_700_000_000.0
SHARD = "shardId-000000000000"
FRAME = 35              # 8 B frame head + 18 B body head + 8 B data + 1 B key


@pytest.fixture(params=["cy", "ref"])
def core_name(request):
    return request.param


def engine(path, clock, core, **kw):
    kw.setdefault("fsync", "always")
    kw.setdefault("fsync_interval", 3600.0)     # the background thread stays out of the way: flush() by hand
    return fastkin.Engine(clock=clock, data_dir=path, core=core, quotas=False, **kw)


def stored(e, stream="s"):
    return [(sid, r.sequence_number, r.data, r.partition_key) for sid, recs in shard_records(e, stream).items()
            for r in recs]


def shard_dir(path):
    return path / "streams" / "00000001-s" / "000000000000"


def crashed(tmp_path, clock, core, plan, mode="always"):
    """For each (count, flush) of ``plan``: put ``count`` records, then, if ``flush``, flush twice (their entries
    reach the tail index as one chunk: the second flush finds nothing new). Then copy the directory while the
    engine is open (what a crash leaves behind). Returns (copy, the records)."""
    e = engine(tmp_path / "live", clock, core, fsync=mode)
    s = e.create_stream("s", 1)
    n = 0
    for count, flush in plan:
        for i in range(n, n + count):
            s.put_record(f"rec-{i:04d}".encode(), "k")
        n += count
        if flush:
            e.durable.flush()
            e.durable.flush()
    before = stored(e)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "live", copy)
    e.close()
    return copy, before


def test_recovery_reads_only_what_the_tail_index_does_not_cover(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    copy, before = crashed(tmp_path, clock, core_name, [(50, True), (7, False)])
    tix = list(shard_dir(copy).glob("*.tix"))
    assert len(tix) == 1 and tix[0].read_bytes()[:8] == b"fastktix"
    assert len(tix[0].read_bytes()) == HEADER.size + CHUNK.size + 18 * 50
    e = engine(copy, clock, core_name)
    r = e.durable.recovery
    assert (r["tail_indexed_records"], r["scanned_records"], r["scanned_bytes"]) == (50, 7, 7 * FRAME)
    assert e.durable.damage == [] and stored(e) == before
    assert not list(shard_dir(copy).glob("*.tix"))            # the file is closed now: its .idx replaces it
    e.stream("s").put_record(b"after", "k")
    assert e.stream("s").core.shard_end(0) == 58
    e.close()


def test_several_checkpoints_make_several_chunks(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    copy, before = crashed(tmp_path, clock, core_name, [(10, True)] * 4, "interval")
    tix = next(shard_dir(copy).glob("*.tix")).read_bytes()
    assert len(tix) == HEADER.size + 4 * (CHUNK.size + 18 * 10)
    e = engine(copy, clock, core_name)
    assert (e.durable.recovery["tail_indexed_records"], e.durable.recovery["scanned_bytes"]) == (40, 0)
    assert stored(e) == before and e.durable.damage == []
    e.close()


@pytest.mark.parametrize("where", ["chunk-head", "chunk-body", "file-head"])
def test_a_damaged_tail_index_only_makes_recovery_read_more(tmp_path, core_name, where):
    clock = fastkin.VirtualClock(start=T0)
    copy, before = crashed(tmp_path, clock, core_name, [(10, True)] * 3)
    tix = next(shard_dir(copy).glob("*.tix"))
    buf = bytearray(tix.read_bytes())
    second = HEADER.size + CHUNK.size + 18 * 10
    at = {"chunk-head": second + 3, "chunk-body": second + CHUNK.size + 5, "file-head": 2}[where]
    buf[at] ^= 0x40
    tix.write_bytes(bytes(buf))
    e = engine(copy, clock, core_name)
    r = e.durable.recovery
    covered = 0 if where == "file-head" else 10
    assert (r["tail_indexed_records"], r["scanned_records"]) == (covered, 30 - covered)
    assert stored(e) == before and e.durable.damage == []
    e.close()


def test_a_tail_index_past_the_end_of_its_file_is_not_trusted(tmp_path, core_name):
    """The segment file lost bytes the tail index covers (it should not happen: entries are written only
    after the fsync of their bytes; a file cut by hand, say): the chunk past the end is ignored and the file
    is read from the chunk before; what was cut is reported."""
    clock = fastkin.VirtualClock(start=T0)
    copy, before = crashed(tmp_path, clock, core_name, [(10, True)] * 2)
    seg = next(shard_dir(copy).glob("*.seg"))
    with open(seg, "r+b") as f:
        f.truncate(HEADER.size + 15 * FRAME + 10)               # 15 records and a torn one
    e = engine(copy, clock, core_name)
    r = e.durable.recovery
    assert (r["tail_indexed_records"], r["scanned_records"]) == (10, 5)
    assert stored(e) == before[:15]
    [d] = e.durable.damage
    assert (d.problem, d.offset, d.first_position, d.action) == ("torn", HEADER.size + 15 * FRAME, 15, "truncated")
    e.close()


def test_a_torn_tail_behind_the_tail_index_is_cut(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    copy, before = crashed(tmp_path, clock, core_name, [(20, True), (5, False)])
    seg = next(shard_dir(copy).glob("*.seg"))
    with open(seg, "r+b") as f:
        f.truncate(HEADER.size + 23 * FRAME + 4)
    e = engine(copy, clock, core_name)
    assert (e.durable.recovery["tail_indexed_records"], e.durable.recovery["scanned_records"]) == (20, 3)
    assert stored(e) == before[:23]
    [d] = e.durable.damage
    assert (d.problem, d.first_position, d.dropped_bytes) == ("torn", 23, 4)
    e.close()


def test_never_mode_writes_no_tail_index(tmp_path, core_name):
    """``fsync="never"``: nothing is known durable, so nothing is tail-indexed; after a crash the newest file
    is read whole."""
    clock = fastkin.VirtualClock(start=T0)
    copy, before = crashed(tmp_path, clock, core_name, [(15, False)], "never")
    assert not list(shard_dir(copy).glob("*.tix"))
    e = engine(copy, clock, core_name, fsync="never")
    assert (e.durable.recovery["tail_indexed_records"], e.durable.recovery["scanned_records"]) == (0, 15)
    assert stored(e) == before
    e.close()


def test_the_index_written_at_roll_is_the_one_recovery_would_build(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path, clock, core_name, fsync="never")
    s = e.create_stream("s", 1)
    e.durable.segment_bytes = HEADER.size + 10 * FRAME
    recs = [(f"rec-{i:04d}".encode(), "k") for i in range(25)]
    s.put_records(recs[:4])
    for data, key in recs[4:9]:
        s.put_record(data, key)
    s.put_records(recs[9:25])
    e.close()
    segs = sorted(shard_dir(tmp_path).glob("*.seg"))
    written = {p: p.with_suffix(".idx").read_bytes() for p in segs}
    assert all(len(b) > INDEX_HEADER.size for b in written.values())
    for p in segs:
        p.with_suffix(".idx").unlink()
    e = engine(tmp_path, clock, core_name, fsync="never")
    assert e.durable.recovery["indexes_written"] == len(segs)
    e.close()
    for p in segs:
        assert p.with_suffix(".idx").read_bytes() == written[p]
        base = int(p.stem)
        assert read_index(str(p.with_suffix(".idx")), 0, base, p.stat().st_size)[0] is not None

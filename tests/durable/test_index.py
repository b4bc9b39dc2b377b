"""Index files (issue 15, phase 2): a closed segment file gets a ``.idx`` beside it (written when it is rolled,
or at engine.close for the newest), and recovery adopts every file with a valid index without reading its
payload (the compiled core maps it read-only; the reference reads it into bytes). Only files without a valid
index are read frame by frame (after a crash: each shard's newest); a missing or bad index of an older file is
rebuilt from the payload and reported. Both cores."""
from __future__ import annotations

import pytest
from durable_util import shard_records

import fastkin
from fastkin.segments import HEADER, INDEX_HEADER

T0 = 1_700_000_000.0
SHARD = "shardId-000000000000"


@pytest.fixture(params=["cy", "ref"])
def core_name(request):
    return request.param


def engine(path, clock, core, **kw):
    return fastkin.Engine(clock=clock, data_dir=path, core=core, quotas=False, **kw)


def stored(e, stream="s"):
    return {sid: [(r.sequence_number, r.data, r.partition_key, r.approximate_arrival_timestamp) for r in recs]
            for sid, recs in shard_records(e, stream).items()}


def filled(path, clock, core, n=100, per_file=10):
    e = engine(path, clock, core, fsync="never")
    s = e.create_stream("s", 1)
    e.durable.segment_bytes = HEADER.size + per_file * 35        # 10 records of 8 B data + 1 B key a file
    for i in range(n):
        s.put_record(f"rec-{i:04d}".encode(), "k")
    before = stored(e)
    e.close()
    return before, sorted((path / "streams" / "00000001-s" / "000000000000").glob("*.seg"))


def test_index_written_on_roll_and_close_and_recovery_reads_no_payload(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    before, segs = filled(tmp_path, clock, core_name)
    assert len(segs) == 10 and all(p.with_suffix(".idx").exists() for p in segs)
    idx = segs[3].with_suffix(".idx").read_bytes()
    assert idx[:8] == b"fastkidx" and len(idx) == INDEX_HEADER.size + 18 * 10
    e = engine(tmp_path, clock, core_name)
    r = e.durable.recovery
    assert (r["adopted_files"], r["adopted_records"], r["scanned_files"], r["scanned_bytes"]) == (10, 100, 0, 0)
    assert e.durable.damage == [] and stored(e) == before
    e.stream("s").put_record(b"after", "k")                    # new positions continue above the adopted ones
    assert e.stream("s").core.shard_end(0) == 101
    e.close()
    e = engine(tmp_path, clock, core_name)
    assert e.durable.recovery["scanned_files"] == 0 and len(stored(e)[SHARD]) == 101
    e.close()


def test_after_a_crash_only_the_newest_file_is_scanned(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    before, segs = filled(tmp_path, clock, core_name, n=95)
    segs[-1].with_suffix(".idx").unlink()                       # a crash: the open file had no index yet
    e = engine(tmp_path, clock, core_name)
    r = e.durable.recovery
    assert (r["adopted_files"], r["scanned_files"], r["scanned_records"], r["indexes_written"]) == (10, 1, 5, 1)
    assert r["scanned_bytes"] == 5 * 35 and e.durable.damage == [] and stored(e) == before
    assert segs[-1].with_suffix(".idx").exists()                # written by recovery: the file is closed now
    e.close()


def test_a_flipped_payload_byte_in_an_indexed_file_is_not_read_by_recovery(tmp_path, core_name):
    # the documented trade-off of index-only recovery: a closed file's payload is not CRC-checked again on
    # open (it was when written; its index has its own CRC); GetRecords returns what the file holds
    clock = fastkin.VirtualClock(start=T0)
    before, segs = filled(tmp_path, clock, core_name)
    raw = bytearray(segs[2].read_bytes())
    at = HEADER.size + 35 * 4 + 26                              # the first data byte of record 24
    assert raw[at:at + 8] == b"rec-0024"
    raw[at] = ord("X")
    segs[2].write_bytes(bytes(raw))
    e = engine(tmp_path, clock, core_name)
    assert e.durable.damage == [] and e.durable.recovery["scanned_files"] == 0
    got = stored(e)[SHARD]
    assert got[24][1] == b"Xec-0024" and got[:24] == before[SHARD][:24] and got[25:] == before[SHARD][25:]
    e.close()
    segs[2].with_suffix(".idx").unlink()                        # without its index the CRC scan catches it
    e = engine(tmp_path, clock, core_name)
    assert [(d.problem, d.first_position, d.action) for d in e.durable.damage] == \
        [("index-missing", 20, "rebuilt"), ("crc", 24, "truncated"), ("gap", 24, "quarantined")] + \
        [("gap", None, "quarantined")] * 6
    assert stored(e)[SHARD] == before[SHARD][:24]
    e.close()


def test_verify_data_reads_every_record_and_catches_a_flipped_payload_byte(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    before, segs = filled(tmp_path, clock, core_name)
    e = engine(tmp_path, clock, core_name, verify_data=True)      # undamaged: everything read, nothing rewritten
    r = e.durable.recovery
    assert (r["scanned_files"], r["scanned_records"], r["indexes_written"], r["adopted_files"]) == (10, 100, 0, 10)
    assert e.durable.damage == [] and stored(e) == before
    e.close()
    raw = bytearray(segs[2].read_bytes())
    raw[HEADER.size + 35 * 4 + 26] ^= 0x20                       # a data byte of record 24
    segs[2].write_bytes(bytes(raw))
    e = engine(tmp_path, clock, core_name, verify_data=True)
    assert [(d.problem, d.first_position, d.action) for d in e.durable.damage] == \
        [("crc", 24, "truncated"), ("gap", 24, "quarantined")] + [("gap", None, "quarantined")] * 6
    assert stored(e)[SHARD] == before[SHARD][:24]
    e.stream("s").put_record(b"next", "k")                       # the log goes on from the last valid record
    assert e.stream("s").core.shard_end(0) == 25
    e.close()
    assert sorted(p.name for p in (tmp_path / "quarantine" / "00000001-s" / "000000000000").iterdir()) == sorted(
        [f"{segs[2].name}.from-{HEADER.size + 35 * 4}"] + [p.name for p in segs[3:]]
        + [p.with_suffix(".idx").name for p in segs[3:]])


def test_a_deleted_or_corrupt_index_is_rebuilt_and_reported(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    before, segs = filled(tmp_path, clock, core_name)
    segs[1].with_suffix(".idx").unlink()
    bad = bytearray(segs[4].with_suffix(".idx").read_bytes())
    bad[INDEX_HEADER.size + 3] ^= 0x10                          # an arrival time in the body: body CRC fails
    segs[4].with_suffix(".idx").write_bytes(bytes(bad))
    head = bytearray(segs[6].with_suffix(".idx").read_bytes())
    head[24] ^= 0x01                                            # the record count: header CRC fails
    segs[6].with_suffix(".idx").write_bytes(bytes(head))
    with open(segs[8], "ab") as f:                             # the payload file no longer matches its index
        f.write(b"\x00" * 3)
    e = engine(tmp_path, clock, core_name)
    assert [(d.path.rsplit("/", 1)[1], d.problem, d.action) for d in e.durable.damage] == [
        (segs[1].stem + ".idx", "index-missing", "rebuilt"), (segs[4].stem + ".idx", "index-bad", "rebuilt"),
        (segs[6].stem + ".idx", "index-bad", "rebuilt"), (segs[8].stem + ".idx", "index-bad", "rebuilt"),
        (segs[8].name, "torn", "truncated"), (segs[9].name, "gap", "quarantined")]
    r = e.durable.recovery
    assert (r["scanned_files"], r["indexes_written"], r["adopted_files"]) == (4, 4, 9)
    assert stored(e)[SHARD] == before[SHARD][:90]
    e.close()
    e = engine(tmp_path, clock, core_name)                          # rebuilt: nothing is read the next time
    assert e.durable.damage == [] and e.durable.recovery["scanned_files"] == 0
    assert stored(e)[SHARD] == before[SHARD][:90]
    e.close()


def test_adopted_and_replayed_segments_across_resharding_and_retention(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path, clock, core_name, fsync="never")
    e.durable.segment_ms = 600_000                              # a file per 10 minutes of arrivals
    s = e.create_stream("s", 2)
    for minute in range(30):
        s.put_records([(f"a{minute}-{i}".encode() * 3, f"k{i}") for i in range(20)])
        clock.advance(60.0)
    e.split_shard("shardId-000000000000", str(2 ** 126), stream_name="s")
    clock.advance(5.0)
    for minute in range(40):
        s.put_records([(f"b{minute}-{i}".encode(), f"k{i}") for i in range(20)])
        clock.advance(60.0)
    e.close()
    root = tmp_path / "streams" / "00000001-s"
    for shard in ("000000000002", "000000000003"):             # a crash in the children: newest files unindexed
        newest = sorted((root / shard).glob("*.seg"))[-1]
        newest.with_suffix(".idx").unlink()
    clock.advance(24 * 3600 - 45 * 60)                          # retention: the parents' first files expire
    e = engine(tmp_path, clock, core_name)
    r = e.durable.recovery
    assert r["scanned_files"] == 2 and r["adopted_files"] > 6 and e.durable.damage == []
    assert len(list((root / "000000000000").glob("*.seg"))) == 3       # minutes 0, 10, 20 of the parent
    e.durable.maintain()
    assert len(list((root / "000000000000").glob("*.seg"))) == 1       # retention deleted two adopted files
    assert all(p.with_suffix(".seg").exists() for p in root.glob("*/*.idx"))          # and their indexes
    kept = stored(e)
    assert all(x[1].startswith(b"a2") for x in kept["shardId-000000000000"][:1])  # minutes < 20 expired
    assert sum(x[1].startswith(b"b") for recs in kept.values() for x in recs) == 40 * 20     # none expired
    e.stream("s").put_records([(b"new", f"k{i}") for i in range(20)])
    after = stored(e)
    e.close()
    e = engine(tmp_path, clock, core_name)
    assert stored(e) == after
    e.stream("s").core.check_invariants()
    e.close()


@pytest.mark.parametrize("newest", [True, False])
def test_a_deleted_segment_file_is_reported_by_its_index(tmp_path, core_name, newest):
    clock = fastkin.VirtualClock(start=T0)
    before, segs = filled(tmp_path, clock, core_name)
    gone = segs[-1] if newest else segs[5]
    gone.unlink()
    e = engine(tmp_path, clock, core_name)
    damage = [(d.path.rsplit("/", 1)[1], d.problem, d.first_position, d.dropped_records, d.action)
              for d in e.durable.damage]
    missing = (gone.name, "missing", int(gone.stem), 10, "quarantined")
    if newest:
        assert damage == [missing] and stored(e)[SHARD] == before[SHARD][:90]
    else:                                      # the files after it are moved aside too (no gap in a log)
        assert damage == [(p.name, "gap", 50 if p == segs[6] else None, 10, "quarantined") for p in segs[6:]] + \
            [missing] and stored(e)[SHARD] == before[SHARD][:50]
    assert not gone.with_suffix(".idx").exists()
    e.close()

"""Engine(data_dir=...): restart on the same directory and find every record, stream, tag, consumer, policy and
counter; damaged files (torn tail, flipped payload byte, a deleted file, a bad header); the lock (another
process); the format version; retention deleting whole segment files under a VirtualClock."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastkin
from fastkin import errors as E
from fastkin.segments import HEADER

T0 = 1_700_000_000.0
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(params=["cy", "ref"])
def core(request):
    return request.param


def engine(path, clock, core="cy", **kw):
    return fastkin.Engine(clock=clock, data_dir=path, core=core, **kw)


def everything(e: fastkin.Engine) -> dict:
    """Every control-plane fact a describe/list call shows, and every record with its sequence number."""
    out: dict = {"streams": e.list_streams(), "limits": e.describe_limits(), "account": e.describe_account_settings()}
    for name in out["streams"]["StreamNames"]:
        s = e.stream(name)
        out[name] = {
            "describe": e.describe_stream(stream_name=name), "summary": e.describe_stream_summary(stream_name=name),
            "shards": e.list_shards(stream_name=name), "tags": e.list_tags_for_stream(stream_name=name),
            "policy": e.get_resource_policy(s.arn), "consumers": e.list_stream_consumers(s.arn),
            "records": {},
        }
        for c in out[name]["consumers"]["Consumers"]:
            out[name][c["ConsumerName"]] = (e.describe_stream_consumer(consumer_arn=c["ConsumerARN"]),
                                            e.list_tags_for_resource(c["ConsumerARN"]),
                                            e.get_resource_policy(c["ConsumerARN"]))
        for sh in out[name]["shards"]["Shards"]:
            it = e.get_shard_iterator(sh["ShardId"], "TRIM_HORIZON", stream_name=name)
            recs = e.get_records(it, quota=False).records
            out[name]["records"][sh["ShardId"]] = [(r.sequence_number, r.data, r.partition_key,
                                                    r.approximate_arrival_timestamp) for r in recs]
    return out


def test_restart_finds_every_record_and_control_plane_fact(tmp_path, core):
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path, clock, core, fsync="always")
    e.update_account_settings({"Status": "ENABLED"})
    s = e.create_stream("orders", 2, tags={"team": "a"}, retention_period_hours=48)
    e.create_stream("gone", 1)
    e.delete_stream("gone")
    od = e.create_stream("od", stream_mode="ON_DEMAND", warm_throughput_mibps=8)
    for i in range(30):
        s.put_record(f"one-{i}".encode(), f"k{i}")
        clock.advance(0.01)
    s.put_records([(f"batch-{i}", f"k{i}") for i in range(100)])
    od.put_records([(bytearray(b"od"), f"k{i}") for i in range(10)])
    e.update_stream_record_distribution_strategy(od.arn, "AUTO")
    od.put_records([(b"keyless", None) for _ in range(6)])        # AUTO: no partition key, round-robin
    e.split_shard("shardId-000000000000", str(2 ** 125), stream_name="orders")
    clock.advance(1.5)
    s.put_records([(b"after-split", f"k{i}") for i in range(50)])
    e.merge_shards("shardId-000000000002", "shardId-000000000003", stream_name="orders")
    s.put_records([(b"after-merge", f"k{i}") for i in range(50)])
    e.add_tags_to_stream({"env": "test"}, stream_name="orders")
    e.remove_tags_from_stream(["team"], stream_name="orders")
    e.enable_enhanced_monitoring(["IncomingBytes"], stream_name="orders")
    e.start_stream_encryption("KMS", "alias/k", stream_name="orders")
    e.put_resource_policy(s.arn, json.dumps({"Statement": [{"Effect": "Allow"}]}))
    c = e.register_stream_consumer(s.arn, "reader", tags={"c": "1"})["Consumer"]
    e.put_resource_policy(c["ConsumerARN"], json.dumps({"Statement": []}))
    e.register_stream_consumer(s.arn, "second")
    e.deregister_stream_consumer(s.arn, "second")
    e.update_max_record_size(s.arn, 2048)
    e.increase_stream_retention_period(72, stream_name="orders")
    e.update_shard_count(4, stream_name="orders")
    s.put_records([(b"after-scaling", f"k{i}") for i in range(50)])
    clock.advance(2.0)
    before = everything(e)
    e.close()
    e2 = engine(tmp_path, clock, core)
    assert e2.durable.damage == []
    assert e2.durable.recovered_records == 296
    assert everything(e2) == before
    # sequence numbers continue above the restored ones; the incarnation counter too
    s2 = e2.stream("orders")
    last = {sh: recs[-1][0] for sh, recs in before["orders"]["records"].items() if recs}
    r = s2.put_record(b"new", "k1")
    assert int(r.sequence_number) > int(last.get(r.shard_id, "0"))
    assert e2.create_stream("again", 1).incarnation > e2.stream("od").incarnation
    for name in ("orders", "od"):
        e2.stream(name).core.check_invariants()
    e2.close()


def test_second_process_gets_a_clear_error(tmp_path):
    e = fastkin.Engine(data_dir=tmp_path)
    code = ("import fastkin, sys\n"
            "try:\n    fastkin.Engine(data_dir=sys.argv[1])\n"
            "except fastkin.errors.DataDirError as exc:\n    print(exc); sys.exit(3)\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert p.returncode == 3, p.stderr
    assert f"data directory {tmp_path} is in use by process {os.getpid()}" in p.stdout
    with pytest.raises(E.DataDirError, match="in use"):          # a second open in this process, too
        fastkin.Engine(data_dir=tmp_path)
    e.close()
    fastkin.Engine(data_dir=tmp_path).close()                    # released on close


def test_unknown_format_version_is_a_clear_error(tmp_path):
    fastkin.Engine(data_dir=tmp_path).close()
    assert (tmp_path / "FORMAT").read_text() == "fastkin-data 2\n"
    (tmp_path / "FORMAT").write_text("fastkin-data 99\n")
    with pytest.raises(E.DataDirError, match="has format 'fastkin-data 99'; this fastkin reads fastkin-data 2 only"):
        fastkin.Engine(data_dir=tmp_path)
    (tmp_path / "FORMAT").write_text("fastkin-data 1\n")       # phase 1's layout (key before data, no indexes)
    with pytest.raises(E.DataDirError, match="first data-directory release.*reads fastkin-data 2 only"):
        fastkin.Engine(data_dir=tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(E.DataDirError, match="is not a fastkin data directory"):
        fastkin.Engine(data_dir=other)


def _filled(path, clock, n=40, segment_records=None):
    e = engine(path, clock, fsync="never")
    s = e.create_stream("s", 1)
    if segment_records is not None:     # small files: every `segment_records` records
        e.durable.segment_bytes = HEADER.size + segment_records * 35
    acked = []
    for i in range(n):
        acked.append(s.put_record(f"rec-{i:04d}".encode(), "k").sequence_number)  # 8 + 18 + 1 + 8 = 35 bytes
    e.close()
    seg_dir = path / "streams" / "00000001-s" / "000000000000"
    return acked, sorted(seg_dir.glob("*.seg"))


def _stored(e):
    it = e.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON", stream_name="s")
    return [(r.sequence_number, r.data) for r in e.get_records(it, quota=False).records]


def test_torn_tail_is_truncated_and_reported(tmp_path):
    clock = fastkin.VirtualClock(start=T0)
    acked, (seg,) = _filled(tmp_path, clock)
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - 10)                  # the last record half written
    e = engine(tmp_path, clock)
    (d,) = e.durable.damage
    assert (d.problem, d.offset, d.dropped_bytes, d.first_position, d.action) == \
        ("torn", size - 35, 25, 39, "truncated")
    assert [q for q, _ in _stored(e)] == acked[:39]
    assert seg.stat().st_size == size - 35
    assert (tmp_path / "quarantine" / "00000001-s" / "000000000000" / f"{seg.name}.from-{size - 35}").stat().st_size \
        == 25
    e.stream("s").put_record(b"next", "k")              # the position of the torn record is issued again
    assert e.stream("s").core.shard_end(0) == 40
    e.close()
    e = engine(tmp_path, clock)
    assert e.durable.damage == [] and len(_stored(e)) == 40
    e.close()


def test_flipped_payload_byte_keeps_the_records_before_it(tmp_path):
    clock = fastkin.VirtualClock(start=T0)
    acked, (seg,) = _filled(tmp_path, clock)
    seg.with_suffix(".idx").unlink()            # a crash: the newest file has no index, recovery reads it
    raw = bytearray(seg.read_bytes())
    at = HEADER.size + 35 * 10 + 30             # in record 10's data
    raw[at] ^= 0x01
    seg.write_bytes(bytes(raw))
    e = engine(tmp_path, clock)
    (d,) = e.durable.damage
    assert (d.problem, d.first_position, d.dropped_records, d.dropped_bytes) == ("crc", 10, 30, 35 * 30)
    assert [q for q, _ in _stored(e)] == acked[:10]
    assert "crc at byte" in str(d) and "30 complete records truncated" in str(d)
    e.close()


def test_deleted_middle_file_keeps_the_records_before_it(tmp_path):
    clock = fastkin.VirtualClock(start=T0)
    acked, segs = _filled(tmp_path, clock, segment_records=10)
    assert [int(p.stem) for p in segs] == [0, 10, 20, 30]
    segs[1].unlink()
    e = engine(tmp_path, clock)
    assert [(d.problem, d.first_position, d.dropped_records, d.action) for d in e.durable.damage] == \
        [("gap", 10, 10, "quarantined"), ("gap", None, 10, "quarantined"), ("missing", 10, 10, "quarantined")]
    assert [q for q, _ in _stored(e)] == acked[:10]
    assert sorted(p.name for p in (tmp_path / "quarantine" / "00000001-s" / "000000000000").iterdir()) == \
        sorted([segs[2].name, segs[3].name, segs[2].stem + ".idx", segs[3].stem + ".idx",   # indexes go along,
                segs[1].stem + ".idx"])                                  # the deleted file's too (reported)
    e.stream("s").put_record(b"again at 10", "k")
    e.close()
    e = engine(tmp_path, clock)
    assert e.durable.damage == [] and [d for _, d in _stored(e)][-1] == b"again at 10" and len(_stored(e)) == 11
    e.close()


def test_bad_header_and_torn_new_file(tmp_path):
    clock = fastkin.VirtualClock(start=T0)
    acked, segs = _filled(tmp_path, clock, segment_records=10)
    segs[-1].write_bytes(segs[-1].read_bytes()[:HEADER.size - 5])      # a file started just before a crash
    e = engine(tmp_path, clock)
    assert [(d.problem, d.first_position, d.action) for d in e.durable.damage] == [("header", 30, "quarantined")]
    assert [q for q, _ in _stored(e)] == acked[:30]
    e.stream("s").put_record(b"x", "k")        # a new file at position 30
    e.close()
    e = engine(tmp_path, clock)
    assert e.durable.damage == [] and len(_stored(e)) == 31
    e.close()


def test_retention_deletes_whole_segment_files(tmp_path):
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path, clock, quotas=False)
    e.durable.segment_ms = 600_000           # a file per 10 minutes of arrivals
    s = e.create_stream("s", 1)
    seg_dir = tmp_path / "streams" / "00000001-s" / "000000000000"
    counts = []
    for minute in range(26 * 60):            # 26 hours of traffic, a batch a minute, 24 h retention
        s.put_records([(b"x" * 100, f"k{i}") for i in range(10)])
        clock.advance(60.0)
        if minute % 60 == 59:
            counts.append(len(list(seg_dir.glob("*.seg"))))
    assert max(counts) <= 24 * 6 + 2
    assert abs(counts[-1] - counts[-3]) <= 1 and counts[-1] <= counts[23] + 1   # flat once retention holds
    assert {p.stem for p in seg_dir.glob("*.idx")} <= {p.stem for p in seg_dir.glob("*.seg")}   # deleted along
    first = min(int(p.stem) for p in seg_dir.glob("*.seg"))
    assert first > 0 and s.core.shard_horizon(0) >= first
    before = _stored(e)
    e.close()
    e = engine(tmp_path, clock, quotas=False)
    assert _stored(e) == before
    e.close()


def test_tokens_issued_before_a_restart_still_work_and_expire_as_aws_s(tmp_path):
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    e = fastkin.Engine(clock=clock, data_dir=tmp_path, fsync="never")
    e.create_stream("t", shard_count=1)
    e.create_stream("u", shard_count=1)
    e.stream("t").put_records([(b"r%d" % i, "k") for i in range(5)])
    it = e.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON", "t")
    page = e.list_streams(limit=1)
    assert page["StreamNames"] == ["t"] and "NextToken" in page
    e.close()
    e = fastkin.Engine(clock=clock, data_dir=tmp_path, fsync="never")
    try:
        assert [r.data for r in e.get_records(it).records] == [b"r%d" % i for i in range(5)]
        assert e.list_streams(next_token=page["NextToken"])["StreamNames"] == ["u"]
        clock.advance(301.0)                            # iterators expire after 5 minutes, as AWS's do
        with pytest.raises(E.ExpiredIteratorException):
            e.get_records(it)
    finally:
        e.close()


def test_each_call_commits_the_stream_it_names_by_name_or_arn(tmp_path):
    """A control-plane call commits the stream it names (by stream_name, positionally or by keyword, or inside a
    stream, consumer or resource ARN), without comparing the other streams: checked by a crash (no close, whose
    full commit would hide a miss) after calls of each shape on one of three streams."""
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path, clock)
    for name in ("a", "b", "c"):
        e.create_stream(name, 1)
    arn = e.describe_stream_summary(stream_name="b")["StreamDescriptionSummary"]["StreamARN"]
    e.add_tags_to_stream({"pos": "1"}, "b")                            # positional stream_name
    e.add_tags_to_stream({"arn": "1"}, stream_arn=arn)
    consumer = e.register_stream_consumer(arn, "c1")["Consumer"]["ConsumerARN"]
    e.tag_resource(consumer, {"consumer": "1"})
    policy = '{"Version":"2012-10-17","Statement":[]}'
    e.put_resource_policy(arn, policy)
    e.increase_stream_retention_period(48, stream_name="b")
    e.durable.abandon()
    e = engine(tmp_path, clock)
    assert e.list_tags_for_stream(stream_name="b")["Tags"] == [{"Key": "arn", "Value": "1"},
                                                                {"Key": "pos", "Value": "1"}]
    assert e.list_tags_for_resource(consumer)["Tags"] == [{"Key": "consumer", "Value": "1"}]
    assert e.get_resource_policy(arn)["Policy"] == policy
    assert e.describe_stream_summary(stream_name="b")["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48
    assert sorted(e.list_streams()["StreamNames"]) == ["a", "b", "c"]
    e.close()


@pytest.mark.parametrize("mode", ["always", "interval"])
def test_a_new_file_and_the_directories_created_for_it_are_fsynced(tmp_path, monkeypatch, mode):
    """A power loss must not take a new segment file's directory entry (nor a new shard's or stream's
    directory) with it: ``always`` fsyncs them before the put that created them returns, ``interval`` with
    the file's next fsync."""
    import os as os_module

    from fastkin import segments
    synced: list[str] = []
    real = os_module.fsync

    def fsync(fd):
        synced.append(os_module.readlink(f"/proc/self/fd/{fd}"))
        real(fd)
    monkeypatch.setattr(segments.os, "fsync", fsync)
    e = fastkin.Engine(clock=fastkin.VirtualClock(start=T0), data_dir=tmp_path, fsync=mode, fsync_interval=3600.0,
                       quotas=False)
    s = e.create_stream("s", 1)
    synced.clear()
    s.put_record(b"x", "k")
    if mode == "interval":
        assert synced == []
        e.durable.flush()
    shard = tmp_path / "streams" / "00000001-s" / "000000000000"
    want = [str(p) for p in (tmp_path, shard.parent.parent, shard.parent, shard, shard / ("0" * 20 + ".seg"))]
    files = [p for p in synced if "meta.sqlite3" not in p]
    assert files[:5] == want                    # outermost first, the file last: then its name is durable
    e.close()


def test_interval_mode_fsyncs_the_metadata_wal_when_something_was_committed(tmp_path, monkeypatch):
    """synchronous=NORMAL leaves SQLite's WAL unsynced until a checkpoint: a power cut could undo a CreateStream
    or a split whose records were fsynced. The interval thread's flush fsyncs the WAL, when it changed, before
    the segment files."""
    import os as os_module

    from fastkin import durable
    synced: list[str] = []
    real = os_module.fsync

    def fsync(fd):
        synced.append(os_module.path.basename(os_module.readlink(f"/proc/self/fd/{fd}")))
        real(fd)
    monkeypatch.setattr(durable.os, "fsync", fsync)
    e = fastkin.Engine(clock=fastkin.VirtualClock(start=T0), data_dir=tmp_path, fsync="interval",
                       fsync_interval=3600.0, quotas=False)
    e.durable.flush()
    synced.clear()
    s = e.create_stream("s", 1)
    s.put_record(b"x", "k")
    e.durable.flush()
    assert synced[0] == "meta.sqlite3-wal" and synced[-1].endswith(".seg")
    synced.clear()
    s.put_record(b"y", "k")
    e.durable.flush()                           # nothing committed since: the WAL is not fsynced again
    assert "meta.sqlite3-wal" not in synced and synced
    e.close()


def test_a_deletion_that_finished_while_down_removes_the_rows_and_files(tmp_path):
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path, clock, delete_latency=30.0)
    e.create_stream("gone", 1).put_record(b"x", "k")
    e.create_stream("kept", 1)
    e.delete_stream(stream_name="gone")                 # DELETING for 30 s
    e.close()
    assert (tmp_path / "streams" / "00000001-gone").is_dir()
    clock.advance(60)
    e = engine(tmp_path, clock, delete_latency=30.0)
    assert e.list_streams()["StreamNames"] == ["kept"]
    assert not (tmp_path / "streams" / "00000001-gone").exists()
    e.close()
    import sqlite3
    db = sqlite3.connect(tmp_path / "meta.sqlite3")
    assert [r[0] for r in db.execute("SELECT name FROM streams")] == ["kept"]
    assert [r[0] for r in db.execute("SELECT DISTINCT incarnation FROM shards")] == [2]
    db.close()


def test_the_directory_of_a_stream_the_database_does_not_hold_is_removed(tmp_path):
    """A DeleteStream is committed before its files are removed: a crash between the two (or a power cut
    that undid the removal on disk) leaves a directory that the next recovery removes."""
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path, clock)
    e.create_stream("s", 1).put_record(b"x", "k")
    e.close()
    stray = tmp_path / "streams" / "00000007-old"
    (stray / "000000000000").mkdir(parents=True)
    (stray / "000000000000" / ("0" * 20 + ".seg")).write_bytes(b"left over")
    e = engine(tmp_path, clock)
    assert not stray.exists() and (tmp_path / "streams" / "00000001-s").is_dir()
    assert e.durable.damage == [] and len(e.get_records(e.get_shard_iterator(
        "shardId-000000000000", "TRIM_HORIZON", stream_name="s")).records) == 1
    e.close()


@pytest.mark.parametrize("partial", [False, True])
def test_a_failed_write_refuses_further_changes_and_recovery_keeps_what_was_acknowledged(tmp_path, monkeypatch,
                                                                                      partial):
    """A put whose records the core took but the directory could not write (disk full) answers InternalFailure;
    memory and disk may now disagree, so every later put and control-plane call is refused until a restart,
    which restores exactly the acknowledged records (none moved, none lost)."""
    import errno

    from fastkin import segments
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path, clock, fsync="interval")
    s = e.create_stream("s", 1)
    acked = [(s.put_record(d, "k").sequence_number, d) for d in (b"r0", b"r1")]
    real = segments.os.write
    calls = []

    def full(fd, data):
        calls.append(fd)
        if partial and len(calls) == 1:
            return real(fd, bytes(memoryview(data)[:7]))       # some bytes reach the file, then ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(segments.os, "write", full)
    with pytest.raises(fastkin.errors.InternalFailure, match="data directory could not be written"):
        s.put_record(b"lost", "k")
    monkeypatch.setattr(segments.os, "write", real)
    with pytest.raises(fastkin.errors.InternalFailure):
        s.put_record(b"r3", "k")
    with pytest.raises(fastkin.errors.InternalFailure):
        s.put_records([(b"r4", "k")])
    with pytest.raises(fastkin.errors.InternalFailure):
        e.add_tags_to_stream({"a": "b"}, stream_name="s")
    assert e.durable.failed is not None
    e.close()                                   # left as a crash leaves it (no index from memory)
    e = engine(tmp_path, clock)
    got = [(r.sequence_number, r.data) for r in e.get_records(e.get_shard_iterator(
        "shardId-000000000000", "TRIM_HORIZON", stream_name="s")).records]
    assert got == acked and e.durable.damage == []
    assert e.list_tags_for_stream(stream_name="s")["Tags"] == []
    r = e.stream("s").put_record(b"again", "k")
    assert int(r.sequence_number) > int(acked[-1][0])
    e.close()

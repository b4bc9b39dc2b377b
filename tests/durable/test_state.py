"""Engine(data_dir=...) keeps queues, channels and the on-demand scaler, not only streams and records: after a
clean close and reopen every queue and channel answers as before and delivery goes on where it was (each
checked against a twin engine that never restarted), and after a crash (a copy of the directory taken while the
engine runs, or a SIGKILLed process) queues are at least once: nothing acknowledged before the last save comes
back, nothing unacknowledged is lost. Both cores; VirtualClock throughout."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import fastkin
from fastkin.autoscaling import OnDemandScaler

T0 = 1_700_000_000.0
SRC = str(Path(__file__).resolve().parents[2] / "src")
ROLE = "arn:aws:iam::123456789012:role/kinesis-delivery"
OWNER = "123456789012"
POLICY = json.dumps({"Statement": [{"Effect": "Allow"}]})


def engine(path, clock, core_name, **kw) -> fastkin.Engine:
    return fastkin.Engine(clock=clock, data_dir=path, core=core_name, **kw)


def crash_copy(src: Path, dst: Path) -> Path:
    """What a crash right now would leave: the directory's files as they are, the engine still open (no close,
    no final save). SQLite's WAL and shared-memory files are copied with it, as a crash leaves them."""
    shutil.copytree(src, dst)
    os.unlink(dst / "LOCK")
    return dst


def recs(out: dict) -> list[tuple]:
    """What a receive returns, minus the receipt handles (sealed with delivery numbers, which jump on restart)."""
    return [(r["RecordId"], r["Data"], r.get("PartitionKey"), r["ReceiveCount"], r["FirstReceiveTimestamp"],
             r["ApproximateArrivalTimestamp"]) for r in out["QueueRecords"]]


def answer(out: dict) -> tuple[int, list[str]]:
    """A per-entry operation's answer, minus the handles (sealed with each engine's own key)."""
    return len(out["Successful"]), [f["ErrorCode"] for f in out["Failed"]]


def handles(out: dict) -> list[dict]:
    return [{"ReceiptHandle": r["ReceiptHandle"]} for r in out["QueueRecords"]]


def queue_facts(e: fastkin.Engine) -> dict:
    out: dict = {"list": e.list_queues()}
    for qs in out["list"]["QueueSummaries"]:
        arn = qs["QueueARN"]
        out[arn] = (e.describe_queue(arn), e.list_tags_for_resource(arn), e.get_resource_policy(arn),
                    e.queue(arn).counts())
    out["stream"] = e.describe_stream_summary(stream_name="s")
    return out


# -- queues: configuration ---------------------------------------------------------------------------------
def test_queue_configuration_survives_restart_and_its_timeline_continues(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path, clock, core_name, create_latency=10, delete_latency=20, update_latency=5)
    s = e.create_stream("s", stream_mode="ON_DEMAND")
    clock.advance(10)
    a = e.create_queue("a", [{"StreamARN": s.arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}],
                       {"VisibilityTimeoutSeconds": 45, "DeadLetterConfiguration": {"TargetType": "BUILT_IN",
                                                                                  "MaxReceiveCount": 3}},
                       tags={"team": "a"})["QueueDescription"]["QueueARN"]
    b = e.create_queue("b", [{"StreamARN": s.arn, "StartingPosition": {"Type": "AT_TIMESTAMP",
                                                                         "Timestamp": T0 + 5}}],
                       {"DeadLetterConfiguration": {"TargetType": "NONE"}})["QueueDescription"]["QueueARN"]
    c = e.create_queue("c", [{"StreamARN": s.arn}])["QueueDescription"]["QueueARN"]
    gone = e.create_queue("gone", [{"StreamARN": s.arn}])["QueueDescription"]["QueueARN"]
    clock.advance(10)                                           # all ACTIVE
    e.tag_resource(a, {"env": "test", "x": "1"})
    e.untag_resource(a, ["x"])
    e.put_resource_policy(b, POLICY)
    e.update_queue(c, {"VisibilityTimeoutSeconds": 7})          # UPDATING for 5 s
    e.delete_queue(gone)                                        # DELETING for 20 s
    before = queue_facts(e)
    assert before[c][0]["QueueDescription"]["QueueStatus"] == "UPDATING"
    assert before[gone][0]["QueueDescription"]["QueueStatus"] == "DELETING"
    e.close()

    e = engine(tmp_path, fastkin.VirtualClock(start=clock()), core_name, delete_latency=20)
    assert queue_facts(e) == before                             # ARNs, ids, attributes, tags, policies, states
    e.clock.advance(5)
    assert e.describe_queue(c)["QueueDescription"]["QueueStatus"] == "ACTIVE"
    assert e.describe_queue(c)["QueueDescription"]["QueueAttributes"]["VisibilityTimeoutSeconds"] == 7
    e.clock.advance(15)                                         # the deletion finishes on the clock
    assert [q["QueueName"] for q in e.list_queues()["QueueSummaries"]] == ["a", "b", "c"]
    d = e.create_queue("d", [{"StreamARN": s.arn}])["QueueDescription"]["QueueARN"]
    serial = e.queue(d).serial
    e.close()

    e = engine(tmp_path, fastkin.VirtualClock(start=clock() + 20), core_name)
    assert [q["QueueName"] for q in e.list_queues()["QueueSummaries"]] == ["a", "b", "c", "d"]
    with pytest.raises(fastkin.errors.ResourceNotFoundException):
        e.describe_queue(gone)
    assert e.queue(d).serial == serial
    e.delete_queue(d)                                           # no latency here: gone at once
    assert e.create_queue("e", [{"StreamARN": s.arn}])["QueueDescription"]["QueueARN"]
    assert e.queue(e.list_queues()["QueueSummaries"][-1]["QueueARN"]).serial == serial + 1
    e.close()
    e = engine(tmp_path, fastkin.VirtualClock(start=clock() + 30), core_name)
    assert [q["QueueName"] for q in e.list_queues()["QueueSummaries"]] == ["a", "b", "c", "e"]
    e.close()


def test_a_new_queue_keeps_its_starting_cursors_across_a_crash(tmp_path, core_name):
    """A LATEST queue created just before a crash still delivers the records put after its creation (its
    cursors are committed with it, not computed again from the shard ends at restart)."""
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path / "d", clock, core_name)
    s = e.create_stream("s", stream_mode="ON_DEMAND")
    s.put_records([(b"old", f"k{i}") for i in range(10)])
    q = e.create_queue("q", [{"StreamARN": s.arn}])["QueueDescription"]["QueueARN"]
    s.put_records([(b"new-%d" % i, f"k{i}") for i in range(10)])
    copy = crash_copy(tmp_path / "d", tmp_path / "crash")
    e2 = engine(copy, fastkin.VirtualClock(start=clock()), core_name)
    got = e2.receive_queue_records(q, limit=10)["QueueRecords"] + e2.receive_queue_records(q, limit=10)["QueueRecords"]
    assert sorted(r["Data"] for r in got) == sorted(b"new-%d" % i for i in range(10))
    e2.close()
    e.close()


# -- queues: delivery state --------------------------------------------------------------------------------
def queue_script(e: fastkin.Engine, clock, restart):
    """One history of a queue: receives, acknowledgements, visibility changes, dead letters, restores, with
    ``restart(e) -> e`` called between steps. Returns what every receive answered and the final counts."""
    s = e.create_stream("s", stream_mode="ON_DEMAND")
    q = e.create_queue("q", [{"StreamARN": s.arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}],
                       {"VisibilityTimeoutSeconds": 30,
                        "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 2}}
                       )["QueueDescription"]["QueueARN"]
    s.put_records([(b"r%02d" % i, f"k{i}") for i in range(40)])
    log: list = []
    first = e.receive_queue_records(q, limit=10, visibility_timeout_seconds=60)
    second = e.receive_queue_records(q, limit=10)
    log += [recs(first), recs(second)]
    e.acknowledge_queue_records(q, handles(first)[:4])
    e.update_queue_records_visibility(q, [{**handles(first)[4], "VisibilityTimeoutSeconds": 200}])
    clock.advance(31)                         # `second` is visible again
    again = e.receive_queue_records(q, limit=5)
    log.append(recs(again))                   # receive count 2
    keep = handles(first)[5:]                 # in flight until T0 + 60, their handles cross the restart
    e = restart(e)
    q_now = e.queue(q)
    log.append(q_now.counts())
    log.append(recs(e.receive_queue_records(q, limit=10)))     # the 5 left of `second`, then new ones
    log.append(answer(e.acknowledge_queue_records(q, keep[:2])))     # handles from before the restart
    clock.advance(31)                         # `again` times out at count 2: dead letters
    dead = e.receive_dead_letter_queue_records(q, limit=10)
    log.append(recs(dead))
    e = restart(e)
    log.append(e.queue(q).counts())
    e.acknowledge_dead_letter_queue_records(q, handles(dead)[:2])
    log.append(answer(e.restore_dead_letter_queue_records(q, handles(dead)[2:3])))
    clock.advance(200)                        # everything in flight times out
    e = restart(e)
    rest = []
    for _ in range(10):
        out = e.receive_queue_records(q, limit=10, wait_time_seconds=1)
        rest += recs(out)
        if out["QueueRecords"]:
            e.acknowledge_queue_records(q, handles(out))
    log.append(rest)
    log.append(recs(e.receive_dead_letter_queue_records(q, limit=10, wait_time_seconds=1)))
    log.append(e.queue(q).counts())
    return e, log


def test_queue_delivery_state_survives_close_and_reopen(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    twin, expected = queue_script(fastkin.Engine(clock=clock, core=core_name), clock, lambda e: e)
    clock2 = fastkin.VirtualClock(start=T0)
    n = 0

    def restart(e):
        nonlocal n
        e.close()
        n += 1
        return engine(tmp_path, clock2, core_name)

    e, got = queue_script(engine(tmp_path, clock2, core_name), clock2, restart)
    assert n == 3
    assert got == expected
    assert got[3]["in_flight"] == 11 and got[5] == (2, []) and len(got[6]) == 10 and all(r[3] == 3 for r in got[6])
    e.close()


def test_receipt_handles_before_a_restart_still_answer(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path, clock, core_name)
    s = e.create_stream("s", stream_mode="ON_DEMAND")
    q = e.create_queue("q", [{"StreamARN": s.arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}]
                       )["QueueDescription"]["QueueARN"]
    s.put_records([(b"x%d" % i, "k") for i in range(6)])
    out = e.receive_queue_records(q, limit=6)
    e.acknowledge_queue_records(q, handles(out)[:1])
    e.close()
    e = engine(tmp_path, fastkin.VirtualClock(start=clock() + 1), core_name)
    h = handles(out)
    res = e.acknowledge_queue_records(q, h[:3])
    assert [x["ReceiptHandle"] for x in res["Successful"]] == [x["ReceiptHandle"] for x in h[1:3]]
    assert [f["ErrorCode"] for f in res["Failed"]] == ["ResourceNotFoundException"]      # acknowledged before
    res = e.update_queue_records_visibility(q, [{**h[3], "VisibilityTimeoutSeconds": 0}])
    assert len(res["Successful"]) == 1
    again = e.receive_queue_records(q, limit=6, visibility_timeout_seconds=100)["QueueRecords"]
    assert [(r["Data"], r["ReceiveCount"]) for r in again] == [(b"x3", 2)]     # the others still hidden
    e.clock.advance(30)
    assert sorted(r["Data"] for r in e.receive_queue_records(q, limit=6)["QueueRecords"]) == [b"x4", b"x5"]
    e.close()


def test_a_crash_is_at_least_once_for_queues(tmp_path, core_name):
    """Copy the directory while the engine runs, after more receives and acknowledgements than the last save
    saw: the copy redelivers what was received or acknowledged after the save, never what was acknowledged
    before it, and loses nothing that was never acknowledged."""
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path / "d", clock, core_name, fsync="interval", fsync_interval=3600)    # no timed save
    s = e.create_stream("s", stream_mode="ON_DEMAND")
    q = e.create_queue("q", [{"StreamARN": s.arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}],
                       {"VisibilityTimeoutSeconds": 10})["QueueDescription"]["QueueARN"]
    everything = {b"r%03d" % i for i in range(120)}
    s.put_records([(d, d.decode()) for d in sorted(everything)])
    acked_before: set = set()
    for _ in range(4):
        out = e.receive_queue_records(q, limit=10)["QueueRecords"]
        e.acknowledge_queue_records(q, [{"ReceiptHandle": r["ReceiptHandle"]} for r in out[:7]])
        acked_before |= {r["Data"] for r in out[:7]}
    e.durable.flush()                                     # the last save before the crash
    acked_after: set = set()
    for _ in range(3):
        out = e.receive_queue_records(q, limit=10)["QueueRecords"]
        e.acknowledge_queue_records(q, [{"ReceiptHandle": r["ReceiptHandle"]} for r in out[:5]])
        acked_after |= {r["Data"] for r in out[:5]}
    copy = crash_copy(tmp_path / "d", tmp_path / "crash")
    e.close()

    e = engine(copy, fastkin.VirtualClock(start=clock()), core_name)
    delivered: list = []
    for _ in range(40):
        out = e.receive_queue_records(q, limit=10, wait_time_seconds=20)["QueueRecords"]
        if not out:
            break
        delivered += [r["Data"] for r in out]
        e.acknowledge_queue_records(q, [{"ReceiptHandle": r["ReceiptHandle"]} for r in out])
    assert not set(delivered) & acked_before              # acknowledged before the save: never again
    assert set(delivered) == everything - acked_before    # nothing unacknowledged lost
    assert acked_after <= set(delivered)                  # acknowledged after the save: redelivered (allowed)
    assert len(delivered) == len(set(delivered))
    e.close()


def test_a_handle_issued_after_the_last_save_does_not_name_a_later_delivery(tmp_path, core_name):
    """After a crash the queue redelivers what it handed out after its last save; the handles of those lost
    receives are stale (delivery numbers continue far above the saved counter), the new ones are current."""
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path / "d", clock, core_name, fsync_interval=3600)
    s = e.create_stream("s", stream_mode="ON_DEMAND")
    q = e.create_queue("q", [{"StreamARN": s.arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}]
                       )["QueueDescription"]["QueueARN"]
    s.put_records([(b"a", "k"), (b"b", "k")])
    e.durable.flush()
    lost = e.receive_queue_records(q, limit=1)
    copy = crash_copy(tmp_path / "d", tmp_path / "crash")
    e.close()
    e = engine(copy, fastkin.VirtualClock(start=clock()), core_name)
    again = e.receive_queue_records(q, limit=1)
    assert recs(again)[0][1] == recs(lost)[0][1] == b"a"
    assert answer(e.acknowledge_queue_records(q, handles(lost))) == (0, ["ResourceNotFoundException"])
    assert answer(e.acknowledge_queue_records(q, handles(again))) == (1, [])
    e.close()


def test_sigkill_after_a_save_keeps_acknowledgements(tmp_path, core_name):
    """A real process killed with SIGKILL (no close, no final save): the acknowledgements its last timed save
    (fsync="always": the state thread) covered stay, the rest is redelivered."""
    path = tmp_path / "d"
    script = textwrap.dedent(f"""
        import sys, time, fastkin
        e = fastkin.Engine(clock=fastkin.VirtualClock(start={T0}), data_dir={str(path)!r}, core={core_name!r},
                           fsync="always", fsync_interval=0.01)
        s = e.create_stream("s", stream_mode="ON_DEMAND")
        q = e.create_queue("q", [{{"StreamARN": s.arn, "StartingPosition": {{"Type": "TRIM_HORIZON"}}}}]
                           )["QueueDescription"]["QueueARN"]
        s.put_records([(b"r%d" % i, "k%d" % i) for i in range(30)])
        out = e.receive_queue_records(q, limit=10)["QueueRecords"]
        e.acknowledge_queue_records(q, [{{"ReceiptHandle": r["ReceiptHandle"]}} for r in out])
        version = e.queue(q).version
        while e.durable._queue_versions.get(q) != version:      # the state thread's save
            time.sleep(0.01)
        print(q, ",".join(r["Data"].decode() for r in out), flush=True)
        time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    q, acked = line[0], set(line[1].encode().split(b","))
    e = engine(path, fastkin.VirtualClock(start=T0 + 1), core_name)
    got = set()
    for _ in range(5):
        got |= {r["Data"] for r in e.receive_queue_records(q, limit=10)["QueueRecords"]}
    assert len(acked) == 10 and not got & acked and got == {b"r%d" % i for i in range(30)} - acked
    e.close()


# -- channels ----------------------------------------------------------------------------------------------
def s3_dest():
    return {"StorageConfiguration": {"BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": OWNER,
                                     "CompressionType": "NONE"}}


def channel_script(e: fastkin.Engine, clock, restart, lake_of):
    """Records put across eight 300 s windows, with ``restart`` (-> a new engine) at chosen moments. Returns
    the bodies of the objects written, in order, and what describe/tags/policy answered before each restart."""
    s = e.create_stream("s", stream_mode="ON_DEMAND")
    arn = e.create_channel("ch", ROLE, [{"StreamARN": s.arn, "RecordConfiguration": {"RecordFormatType":
                                                                                     "BYTE_ARRAY"}}],
                           s3_destination_configuration=s3_dest(), tags={"t": "1"})["ChannelDescription"]["ChannelARN"]
    clock.advance(1)
    e.put_resource_policy(arn, POLICY)
    seen = []
    for w in range(8):
        for i in range(5):
            e.stream("s").put_records([(b"w%d-%d;" % (w, i), f"k{i}")])
            clock.advance(37)
            if (w, i) in ((1, 2), (3, 0), (5, 4)):
                seen.append((e.describe_channel(arn), e.list_tags_for_resource(arn), e.get_resource_policy(arn),
                             e.list_channels()))
                e = restart(e)
                assert (e.describe_channel(arn), e.list_tags_for_resource(arn), e.get_resource_policy(arn),
                        e.list_channels()) == seen[-1]
        clock.advance(300 - 5 * 37)
        if w == 4:
            e.update_channel(arn, s3_destination_configuration={"DataFreshnessInSeconds": 600})
    clock.advance(1200)
    bodies = [(lake_of(e) / bucket / key).read_bytes() for bucket, key in e.channel(arn).objects]
    return e, bodies


def test_channels_resume_delivery_without_duplicate_or_missing_windows(tmp_path, core_name):
    (tmp_path / "ref" / "lake").mkdir(parents=True)
    (tmp_path / "lake" / "lake").mkdir(parents=True)
    clock = fastkin.VirtualClock(start=T0)
    twin = fastkin.Engine(clock=clock, core=core_name, channel_s3=f"file://{tmp_path / 'ref'}")
    _, expected = channel_script(twin, clock, lambda e: e, lambda e: tmp_path / "ref")
    assert len(expected) >= 7 and b"".join(expected).count(b";") == 40

    clock2 = fastkin.VirtualClock(start=T0)
    target = f"file://{tmp_path / 'lake'}"

    def restart(e):
        e.close()
        return engine(tmp_path / "d", clock2, core_name, channel_s3=target)

    e, got = channel_script(engine(tmp_path / "d", clock2, core_name, channel_s3=target), clock2, restart,
                            lambda e: tmp_path / "lake")
    assert got == expected
    assert len([p for p in (tmp_path / "lake" / "lake").rglob("*") if p.is_file()]) == len(expected)   # no stray
    e.close()


def test_a_crash_after_a_delivery_does_not_deliver_its_window_again(tmp_path, core_name):
    """Channel progress is committed after each delivery: a copy taken right after one (no flush) resumes with
    the next window. The copy writes to another lake; the two lakes together hold each window once."""
    for lake in ("ref", "one", "two"):
        (tmp_path / lake / "lake").mkdir(parents=True)
    clock = fastkin.VirtualClock(start=T0)
    e = fastkin.Engine(clock=clock, core=core_name, channel_s3=f"file://{tmp_path / 'ref'}")

    def run(e, clock, stop_after=None):
        s = e.create_stream("s", stream_mode="ON_DEMAND")
        arn = e.create_channel("ch", ROLE, [{"StreamARN": s.arn, "RecordConfiguration": {
            "RecordFormatType": "BYTE_ARRAY"}}], s3_destination_configuration=s3_dest())["ChannelDescription"][
            "ChannelARN"]
        for w in range(6):
            s.put_records([(b"w%d-%d;" % (w, i), f"k{i}") for i in range(3)])
            clock.advance(300)
            if w == stop_after:
                return arn
        return arn

    arn = run(e, clock)
    expected = [(tmp_path / "ref" / b / k).read_bytes() for b, k in e.channel(arn).objects]

    clock2 = fastkin.VirtualClock(start=T0)
    e1 = engine(tmp_path / "d", clock2, core_name, channel_s3=f"file://{tmp_path / 'one'}", fsync_interval=3600)
    arn = run(e1, clock2, stop_after=2)
    first = [(tmp_path / "one" / b / k).read_bytes() for b, k in e1.channel(arn).objects]
    copy = crash_copy(tmp_path / "d", tmp_path / "crash")
    e1.close()
    e2 = engine(copy, clock2, core_name, channel_s3=f"file://{tmp_path / 'two'}")
    s = e2.stream("s")
    for w in range(3, 6):
        s.put_records([(b"w%d-%d;" % (w, i), f"k{i}") for i in range(3)])
        clock2.advance(300)
    objects = e2.channel(arn).objects
    assert objects[:len(first)] == e1.channel(arn).objects
    later = [(tmp_path / "two" / b / k).read_bytes() for b, k in objects[len(first):]]
    assert first + later == expected
    e2.close()


def test_an_s3_tables_channel_appends_to_its_table_after_a_restart(tmp_path, core_name):
    pytest.importorskip("pyiceberg", reason="S3 Tables delivery needs pyiceberg (fastkin[channels])")
    pytest.importorskip("pyarrow", reason="S3 Tables delivery needs pyarrow (fastkin[channels])")
    from pyiceberg.catalog.sql import SqlCatalog
    (tmp_path / "lake").mkdir()
    schemas = tmp_path / "tables" / "schemas" / "reg"
    schemas.mkdir(parents=True)
    (schemas / "clicks.json").write_text(json.dumps({"type": "object", "properties": {
        "user": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}, "required": ["user", "at"]}))
    kw = {"channel_s3": f"file://{tmp_path}", "channel_iceberg": str(tmp_path / "tables")}
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path / "d", clock, core_name, **kw)
    s = e.create_stream("s", stream_mode="ON_DEMAND")
    dest = {"DeadLetterQueueS3Configuration": {"BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": OWNER},
            "S3TablesConfigurationList": [{"TableBucketARN": "arn:aws:s3tables:us-east-1:123456789012:bucket/tables",
                                           "Namespace": "web", "TableName": "clicks", "CompressionType": "NONE"}]}
    arn = e.create_channel("t", ROLE, [{"StreamARN": s.arn, "RecordConfiguration": {
        "RecordFormatType": "JSON", "GSRSchemaARN": "arn:aws:glue:us-east-1:123456789012:schema/reg/clicks"}}],
        s3_tables_destination_configuration=dest)["ChannelDescription"]["ChannelARN"]

    def click(i):
        return json.dumps({"user": i, "at": "2023-11-14T22:15:00Z"}).encode()

    s.put_records([(click(i), "k") for i in range(3)])
    clock.advance(300)
    e.close()
    e = engine(tmp_path / "d", clock, core_name, **kw)
    assert e.describe_channel(arn)["ChannelDescription"]["ChannelStatus"] == "ACTIVE"
    e.stream("s").put_records([(click(i), "k") for i in range(3, 5)])
    clock.advance(300)
    cat = SqlCatalog("tables", uri=f"sqlite:///{tmp_path / 'tables' / 'catalog.db'}",
                     warehouse=f"file://{tmp_path / 'tables' / 'warehouse' / 'tables'}")
    t = cat.load_table(("web", "clicks"))
    assert len(list(t.snapshots())) == 2
    assert sorted(t.scan().to_arrow().column("user").to_pylist()) == [0, 1, 2, 3, 4]
    e.close()


class ManualClock:
    """A clock with no subscribe(): channels deliver from their own thread, as on a real clock."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_windows_that_ended_while_down_are_delivered_on_start(tmp_path, core_name):
    (tmp_path / "lake").mkdir()
    clock = ManualClock(T0)
    e = engine(tmp_path / "d", clock, core_name, channel_s3=f"file://{tmp_path}")
    s = e.create_stream("s", stream_mode="ON_DEMAND")
    arn = e.create_channel("ch", ROLE, [{"StreamARN": s.arn, "RecordConfiguration": {"RecordFormatType":
                                                                                     "BYTE_ARRAY"}}],
                           s3_destination_configuration=s3_dest())["ChannelDescription"]["ChannelARN"]
    e.deliver_channels()                                       # ACTIVE
    clock.t += 10
    s.put_records([(b"a;", "k"), (b"b;", "k")])
    clock.t += 300
    s.put_records([(b"c;", "k")])
    e.close()                                                  # down before the window [T0, T0 + 300) was delivered
    e = engine(tmp_path / "d", ManualClock(T0 + 2000), core_name, channel_s3=f"file://{tmp_path}")
    deadline = time.monotonic() + 60
    while len(e.channel(arn).objects) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)                                       # the channels' thread, started by the restart
    bodies = [(tmp_path / b / k).read_bytes() for b, k in e.channel(arn).objects]
    assert bodies == [b"a;b;", b"c;"]
    e.close()


def test_channel_cursors_are_held_at_shard_ends_that_a_power_cut_moved_back(tmp_path, core_name):
    """A channel's progress commit can reach the disk before the records it points past (interval or never
    mode, then a power cut): the restored cursor is held at the recovered shard end, so the records that
    take those positions again are delivered, not skipped."""
    (tmp_path / "lake").mkdir()
    clock = fastkin.VirtualClock(start=T0)
    kw = {"channel_s3": f"file://{tmp_path}", "fsync_interval": 3600.0}
    e = engine(tmp_path / "d", clock, core_name, **kw)
    s = e.create_stream("s", stream_mode="ON_DEMAND")
    arn = e.create_channel("ch", ROLE, [{"StreamARN": s.arn, "RecordConfiguration": {"RecordFormatType":
                                                                                     "BYTE_ARRAY"}}],
                           s3_destination_configuration=s3_dest())["ChannelDescription"]["ChannelARN"]
    clock.advance(300)
    s.put_records([(b"a%d;" % i, "k") for i in range(5)])
    clock.advance(300)
    assert len(e.channel(arn).objects) == 1
    e.durable.abandon()
    from fastkin.segments import HEADER
    for seg in (tmp_path / "d" / "streams").rglob("*.seg"):      # the records never reached the disk
        os.truncate(seg, HEADER.size)
    for tix in (tmp_path / "d" / "streams").rglob("*.tix"):
        tix.unlink()
    e = engine(tmp_path / "d", clock, core_name, **kw)
    s = e.stream("s")
    assert all(p <= s.core.shard_end(i) for i, p in e.channel(arn).cursors.items())
    s.put_records([(b"b%d;" % i, "k") for i in range(5)])
    clock.advance(300)
    clock.advance(300)
    bodies = [(tmp_path / b / k).read_bytes() for b, k in e.channel(arn).objects]
    assert bodies[0] == b"a0;a1;a2;a3;a4;" and b"".join(bodies[1:]) == b"b0;b1;b2;b3;b4;"
    e.close()


def test_a_slow_channel_upload_does_not_hold_up_puts_or_the_flush(tmp_path, core_name, monkeypatch):
    """Saving state never waits under the data directory's lock for a channel that is delivering: while an
    upload is in progress, puts and the flush (fsyncs, state saves) go on."""
    import threading

    from fastkin.channels import DirectoryTarget
    (tmp_path / "lake").mkdir()
    started, release, outcome = threading.Event(), threading.Event(), []
    real = DirectoryTarget.put_object

    def slow(self, *args, **kw):
        started.set()
        outcome.append(release.wait(30))        # False: nobody got through while this upload went on
        return real(self, *args, **kw)
    monkeypatch.setattr(DirectoryTarget, "put_object", slow)
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path / "d", clock, core_name, channel_s3=f"file://{tmp_path}", fsync_interval=3600.0)
    s = e.create_stream("s", stream_mode="ON_DEMAND")
    e.create_channel("ch", ROLE, [{"StreamARN": s.arn, "RecordConfiguration": {"RecordFormatType": "BYTE_ARRAY"}}],
                     s3_destination_configuration=s3_dest())
    clock.advance(300)
    s.put_records([(b"a;", "k")])
    pump = threading.Thread(target=clock.advance, args=(300,))
    pump.start()
    assert started.wait(30)
    s.put_record(b"during", "k")
    e.durable.flush()
    release.set()
    pump.join(60)
    assert outcome == [True]
    e.close()


# -- the on-demand scaler ----------------------------------------------------------------------------------
def scaler_script(e: fastkin.Engine, clock, restart):
    e.create_stream("od", stream_mode="ON_DEMAND")
    history = []
    for t in range(200):
        e.stream("od").put_record(b"x" * (400 + t), "hot", explicit_hash_key="0")
        clock.advance(1)
        if t in (30, 95, 150):
            sc = e.stream("od").scaler
            history.append((sc.since, sc.next_eval, sc.window_start, sc.next_release, sc._window.tolist(),
                            list(sc._minute_peaks), list(sc.events)))
            e = restart(e)
            sc = e.stream("od").scaler
            assert (sc.since, sc.next_eval, sc.window_start, sc.next_release, sc._window.tolist(),
                    list(sc._minute_peaks), list(sc.events)) == history[-1]
    e.stream("od").put_record(b"x", "k")
    sc = e.stream("od").scaler
    return e, (sc.events, list(sc._minute_peaks), e.list_shards(stream_name="od"))


def test_the_scaler_continues_its_window_across_restarts(tmp_path, core_name, monkeypatch):
    monkeypatch.setattr(OnDemandScaler, "SPLIT_BYTES_PER_SECOND", 300)       # 400 B/s on one shard is hot
    monkeypatch.setattr(OnDemandScaler, "PEAK_WINDOW", 70)                   # minute peaks trimmed as it runs
    clock = fastkin.VirtualClock(start=T0)
    _, expected = scaler_script(fastkin.Engine(clock=clock, core=core_name), clock, lambda e: e)
    assert [k for _, k, _ in expected[0]] == ["split", "split", "split"]
    assert 1 <= len(expected[1]) < 3                # 200 s cover 4 minutes: the older peaks were trimmed

    clock2 = fastkin.VirtualClock(start=T0)

    def restart(e):
        e.close()
        return engine(tmp_path, clock2, core_name)

    e, got = scaler_script(engine(tmp_path, clock2, core_name), clock2, restart)
    assert got == expected                    # the same splits at the same engine times, the same shards
    e.close()


def test_scaler_state_is_in_the_last_save_after_a_crash(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path / "d", clock, core_name, fsync_interval=3600)
    s = e.create_stream("od", stream_mode="ON_DEMAND")
    for _ in range(30):
        s.put_record(b"y" * 100, "k")
        clock.advance(1)
    s.put_record(b"y", "k")                    # the last second is observed
    e.durable.flush()
    sc = s.scaler
    saved = (sc.window_start, sc.next_eval, sc._window.tolist(), list(sc._minute_peaks))
    assert sum(saved[2]) > 0
    copy = crash_copy(tmp_path / "d", tmp_path / "crash")
    e.close()
    e = engine(copy, fastkin.VirtualClock(start=clock()), core_name)
    sc = e.stream("od").scaler
    assert (sc.window_start, sc.next_eval, sc._window.tolist(), list(sc._minute_peaks)) == saved
    e.close()


# -- stream.set_retention_seconds ---------------------------------------------------------------------------
def test_a_direct_retention_override_is_committed_at_once(tmp_path, core_name):
    clock = fastkin.VirtualClock(start=T0)
    e = engine(tmp_path / "d", clock, core_name, fsync_interval=3600)
    s = e.create_stream("s", 1)
    s.set_retention_seconds(120)
    copy = crash_copy(tmp_path / "d", tmp_path / "crash")
    e.close()
    e = engine(copy, fastkin.VirtualClock(start=clock()), core_name)
    assert e.stream("s").retention_override == 120 and e.stream("s").retention_seconds == 120
    e.close()

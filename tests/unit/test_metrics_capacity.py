import pytest

from fastkin import InvalidArgumentException, ProvisionedThroughputExceededException, ValidationException


def test_stream_metrics_per_second_and_minute(make_engine, clock):
    eng = make_engine()
    s = eng.create_stream("s", shard_count=1)
    for sec in range(3):
        s.put_records([(b"x" * 90, "k" * 10)] * 500)      # 500 x 100 B
        s.put_records([(b"x" * 90, "k" * 10)] * 500)
        s.put_records([(b"x" * 90, "k" * 10)] * 500)      # the third batch is throttled (1,000 records/s)
        if sec == 0:
            with pytest.raises(ProvisionedThroughputExceededException):
                s.put_record(b"x" * 90, "k" * 10)
        clock.advance(1.0)
    it = s.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON")
    got = s.get_records(it, limit=100)
    t, v = s.metrics.series("IncomingRecords", resolution=1)
    assert t[0] == 1_700_000_000 and list(v[:3]) == [1000, 1000, 1000]
    assert list(s.metrics.series("PutRecords.ThrottledRecords", 1)[1][:3]) == [500, 500, 500]
    assert list(s.metrics.series("WriteProvisionedThroughputExceeded", 1)[1][:3]) == [501, 500, 500]
    assert list(s.metrics.series("PutRecords.Records", 1)[1][:3]) == [1500, 1500, 1500]
    assert list(s.metrics.series("PutRecord.Success", 1)[1][:3]) == [0, 0, 0]   # the single put was throttled
    assert s.metrics.series("IncomingBytes", 60)[1][0] == 3000 * 100
    assert s.metrics.series("GetRecords.Records", 60)[1][0] == 100 == len(got.records)
    assert s.metrics.series("GetRecords.Success", 60)[1][0] == 1
    assert s.metrics.series("GetRecords.IteratorAgeMilliseconds", 60)[1][0] == 3000 - 0   # oldest unread: 3 s old
    assert s.metrics.series("OpenShardCount", 1)[1][-1] == 1
    csv = s.metrics.to_csv()
    assert csv.splitlines()[0].startswith("Timestamp,IncomingBytes,IncomingRecords")
    assert '"IncomingRecords": [3001' not in s.metrics.to_json() and "IncomingRecords" in s.metrics.to_json()


def test_enhanced_monitoring_enables_shard_level_metrics(make_engine, clock):
    eng = make_engine()
    s = eng.create_stream("s", shard_count=2)
    with pytest.raises(InvalidArgumentException):
        s.metrics.series("IncomingBytes", 1, shard_id="shardId-000000000000")
    out = eng.enable_enhanced_monitoring(["IncomingRecords", "OutgoingRecords"], stream_name="s")
    assert out["CurrentShardLevelMetrics"] == [] \
        and out["DesiredShardLevelMetrics"] == ["OutgoingRecords", "IncomingRecords"]   # AWS's order
    s.put_records([(b"x", "k", "0")] * 7 + [(b"x", "k", str(2**127 + 1))] * 3)
    clock.advance(1.0)
    assert s.metrics.series("IncomingRecords", 1, shard_id="shardId-000000000000")[1][0] == 7
    assert s.metrics.series("IncomingRecords", 1, shard_id="shardId-000000000001")[1][0] == 3
    d = eng.describe_stream(stream_name="s")["StreamDescription"]
    assert d["EnhancedMonitoring"] == [{"ShardLevelMetrics": ["OutgoingRecords", "IncomingRecords"]}]
    out = eng.disable_enhanced_monitoring(["ALL"], stream_name="s")
    assert out["DesiredShardLevelMetrics"] == []
    with pytest.raises(ValidationException):
        eng.enable_enhanced_monitoring(["NoSuchMetric"], stream_name="s")


def test_on_demand_splits_hot_shards_and_keeps_headroom(make_engine, clock):
    eng = make_engine()
    s = eng.create_stream("od", stream_mode="ON_DEMAND", storage="metadata")   # 2 GB offered: keep no payload
    assert len(s.open_shards()) == 4
    rec = (b"x" * 99_988, None)
    import random
    rng = random.Random(3)
    counts = []
    for _sec in range(6 * 60):
        s.put_records([(rec[0], f"{rng.getrandbits(48):012x}") for _ in range(60)])     # ~6 MB/s offered
        clock.advance(1.0)
        counts.append(len(s.open_shards()))
    # 1.5 MB/s per shard is above 500 KiB/s: split after the first minute, again until under it
    assert counts[59] == 4 and counts[61] == 8 and counts[121] == 16
    assert counts[-1] == 16                                # 6 MB/s / 16 = 0.375 MB/s per shard: stable
    thr = s.metrics.series("WriteProvisionedThroughputExceeded", 60)[1]
    assert thr[:2].sum() > 500                             # 4 shards: well over 1 MiB/s each, throttled
    assert thr[3:].sum() < 0.002 * 60 * 60 * 3             # 16 shards: only random bursts of 100 KB records
    assert s.scaler.target_shards() >= 12                 # capacity for 2x the ~6 MB/s peak


def test_on_demand_releases_idle_capacity_slowly(make_engine, clock):
    eng = make_engine()
    s = eng.create_stream("od", stream_mode="ON_DEMAND")
    s.scaler.PEAK_WINDOW = 600                            # shorten the 30-day memory for the test
    import random
    rng = random.Random(4)
    for _sec in range(3 * 60):
        s.put_records([(b"x" * 99_988, f"{rng.getrandbits(48):012x}") for _ in range(40)])
        clock.advance(1.0)
    peak = len(s.open_shards())
    assert peak > 4
    for _hour in range(30):
        clock.advance(3600.0)
        s.put_record(b"x", "k")
    assert 4 <= len(s.open_shards()) < peak
    assert len(s.open_shards()) == 4


def test_provisioned_stream_does_not_scale(make_engine, clock):
    eng = make_engine()
    s = eng.create_stream("p", shard_count=1)
    for _sec in range(180):
        s.put_records([(b"x" * 20_000, f"k{i}") for i in range(100)])
        clock.advance(1.0)
    assert len(s.open_shards()) == 1


def test_open_shard_count_belongs_to_the_second_it_describes(make_engine, clock):
    eng = make_engine()
    s = eng.create_stream("s", shard_count=1)
    s.put_record(b"x", "k")
    clock.advance(1.0)
    eng.split_shard("shardId-000000000000", str(2**127), stream_name="s")   # before the second's first I/O
    s.put_record(b"x", "k")
    clock.advance(1.0)
    s.put_record(b"x", "k")
    assert list(s.metrics.series("OpenShardCount", 1)[1][:3]) == [1, 2, 2]


def test_hourly_release_does_not_merge_busy_shards(clock):
    import fastkin

    eng = fastkin.Engine(clock=clock, core="cy")      # the scaler is engine-independent Python
    s = eng.create_stream("od", stream_mode="ON_DEMAND", storage="metadata")
    import random
    rng = random.Random(9)
    opened = []
    for sec in range(3600 + 120):
        if sec % 10 == 0:          # ~3 MB/s offered, in 10-second chunks to keep the test quick
            for _ in range(6):
                s.put_records([(b"x" * 99_988, f"{rng.getrandbits(48):012x}") for _ in range(50)])
        clock.advance(1.0)
        opened.append(len(s.open_shards()))
    assert not any(e[1] == "merge" for e in s.scaler.events)
    assert opened[-1] == max(opened)


def test_put_records_counts_are_filed_with_their_records_under_concurrency():
    import sys
    import threading

    import fastkin

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        clock = fastkin.VirtualClock(start=1_700_000_000.0)
        eng = fastkin.Engine(clock=clock, quotas=False)
        s = eng.create_stream("m", shard_count=4)
        stop = threading.Event()

        def writer(t):
            c = 0
            while not stop.is_set():
                s.put_records([(b"x", f"k{t}-{c}")])
                c += 1

        ths = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
        for t in ths:
            t.start()
        for _ in range(100):
            clock.advance(1.0)
            s.put_records([(b"y", "tick")])
        stop.set()
        for t in ths:
            t.join()
    finally:
        sys.setswitchinterval(old)
    clock.advance(2.0)
    single = s.metrics.series("PutRecord.Success", resolution=1)[1]
    assert single.min() == 0 and single.max() == 0          # no PutRecord call was ever made
    assert s.metrics.series("PutRecords.Records", 60)[1].sum() == s.metrics.series("IncomingRecords", 60)[1].sum()

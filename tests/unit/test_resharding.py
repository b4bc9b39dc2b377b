import random

import pytest

from fastkin import InvalidArgumentException, LimitExceededException, ResourceInUseException, ValidationException
from fastkin._common import initial_hash_ranges
from fastkin._ref.core import parse_sequence_number
from fastkin.limits import HASH_MAX

HALF = 2**127


def shards_of(engine, name="s"):
    return {x["ShardId"]: x for x in engine.list_shards(stream_name=name)["Shards"]}


def test_split_creates_children_with_next_ids_and_closes_parent(make_engine):
    eng = make_engine(quotas=False)
    s = eng.create_stream("s", shard_count=1)
    before = s.put_record(b"old", "k").sequence_number
    eng.split_shard("shardId-000000000000", str(HALF), stream_name="s")
    sh = shards_of(eng)
    assert sh["shardId-000000000001"]["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": str(HALF - 1)}
    assert sh["shardId-000000000002"]["HashKeyRange"] == {"StartingHashKey": str(HALF), "EndingHashKey": str(HASH_MAX)}
    assert sh["shardId-000000000001"]["ParentShardId"] == "shardId-000000000000"
    assert "EndingSequenceNumber" in sh["shardId-000000000000"]["SequenceNumberRange"]
    end = parse_sequence_number(sh["shardId-000000000000"]["SequenceNumberRange"]["EndingSequenceNumber"])
    assert end[2] == 0x7FFFFFFFFFFFFFFF
    # new records route only to open shards, with numbers above the parent's
    r = s.put_record(b"new", "k")
    assert r.shard_id in ("shardId-000000000001", "shardId-000000000002")
    assert int(r.sequence_number) > int(before)
    assert [x["ShardId"] for x in eng.list_shards(stream_name="s", shard_filter={"Type": "AT_LATEST"})["Shards"]] == \
        ["shardId-000000000001", "shardId-000000000002"]


def test_reading_a_closed_shard_ends_with_child_shards(make_engine):
    eng = make_engine(quotas=False)
    s = eng.create_stream("s", shard_count=1)
    s.put_records([(b"p%d" % i, f"k{i}") for i in range(5)])
    it = s.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON")
    eng.split_shard("shardId-000000000000", str(HALF), stream_name="s")
    got = s.get_records(it, limit=3)
    assert len(got.records) == 3 and got.next_shard_iterator and got.child_shards == []
    got = s.get_records(got.next_shard_iterator)
    assert len(got.records) == 2 and got.next_shard_iterator is None
    assert got.child_shards == [
        {"ShardId": "shardId-000000000001", "ParentShards": ["shardId-000000000000"],
         "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(HALF - 1)}},
        {"ShardId": "shardId-000000000002", "ParentShards": ["shardId-000000000000"],
         "HashKeyRange": {"StartingHashKey": str(HALF), "EndingHashKey": str(HASH_MAX)}}]


def test_split_validation(engine):
    engine.create_stream("s", shard_count=2)
    s0 = "shardId-000000000000"
    for bad in ("0", "1", str(HALF)):                   # must be > start + 1 and <= end
        with pytest.raises(InvalidArgumentException, match="NewStartingHashKey"):
            engine.split_shard(s0, bad, stream_name="s")
    with pytest.raises(InvalidArgumentException, match="ExplicitHashKey|range"):
        engine.split_shard(s0, "-5", stream_name="s")
    engine.split_shard(s0, "2", stream_name="s")
    with pytest.raises(InvalidArgumentException, match="already been merged or split"):     # AWS: IAE, not RIU
        engine.split_shard(s0, "100", stream_name="s")
    assert len(shards_of(engine)) == 4


def test_merge(make_engine):
    eng = make_engine(quotas=False)
    s = eng.create_stream("s", shard_count=3)
    with pytest.raises(InvalidArgumentException, match="not an adjacent pair"):
        eng.merge_shards("shardId-000000000000", "shardId-000000000002", stream_name="s")
    with pytest.raises(InvalidArgumentException, match="not an adjacent pair"):     # the upper one first
        eng.merge_shards("shardId-000000000002", "shardId-000000000001", stream_name="s")
    eng.merge_shards("shardId-000000000001", "shardId-000000000002", stream_name="s")
    c = shards_of(eng)["shardId-000000000003"]
    r = initial_hash_ranges(3)
    assert c["ParentShardId"] == "shardId-000000000001" and c["AdjacentParentShardId"] == "shardId-000000000002"
    assert c["HashKeyRange"] == {"StartingHashKey": str(r[1][0]), "EndingHashKey": str(HASH_MAX)}
    assert {x.shard_id for x in s.open_shards()} == {"shardId-000000000000", "shardId-000000000003"}


def test_updating_state_blocks_a_second_reshard(make_engine, clock):
    eng = make_engine(update_latency=2.0)
    s = eng.create_stream("s", shard_count=2)
    eng.split_shard("shardId-000000000000", "1000", stream_name="s")
    assert s.status == "UPDATING"
    s.put_record(b"x", "k")                            # I/O goes on while UPDATING
    with pytest.raises(ResourceInUseException, match="not ACTIVE, instead in state UPDATING"):
        eng.merge_shards("shardId-000000000002", "shardId-000000000003", stream_name="s")
    clock.advance(2.0)
    eng.merge_shards("shardId-000000000002", "shardId-000000000003", stream_name="s")


@pytest.mark.parametrize("start,target,total", [(5, 3, 7), (4, 8, 12), (3, 5, 10), (7, 4, 10), (1, 2, 3), (6, 6, 6),
                                                (10, 19, 31), (2, 4, 6), (4, 5, 15), (10, 13, 37), (4, 2, 6),
                                                (10, 3, 17)])
def test_update_shard_count_plan(make_engine, start, target, total):
    # AWS's counts of shards left (open + closed) for a uniform scaling (facts §9); was equal-sized ranges
    eng = make_engine(quotas=False)
    s = eng.create_stream("s", shard_count=start)
    s.put_records([(b"x", f"k{i}") for i in range(200)])
    out = eng.update_shard_count(target, stream_name="s")
    assert out["CurrentShardCount"] == start and out["TargetShardCount"] == target
    open_ = sorted(s.open_shards(), key=lambda x: x.start_hash)
    assert len(open_) == target and len(s.visible_shards()) == total
    assert open_[0].start_hash == 0 and open_[-1].end_hash == HASH_MAX
    assert all(a.end_hash + 1 == b.start_hash for a, b in zip(open_, open_[1:]))
    if target & (target - 1) == 0 and start & (start - 1) == 0:      # power-of-two ratios stay equal-sized
        assert [(x.start_hash, x.end_hash) for x in open_] == initial_hash_ranges(target)
    for info in s.visible_shards():                     # every shard has at most two parents, all older
        parents = [p for p in (info.parent, info.adjacent_parent) if p is not None]
        assert all(p < info.index for p in parents)


def test_update_shard_count_limits(make_engine, clock):
    eng = make_engine()
    eng.create_stream("s", shard_count=4)
    with pytest.raises(InvalidArgumentException, match="double"):
        eng.update_shard_count(9, stream_name="s")
    eng.update_shard_count(1, stream_name="s")            # a quarter is allowed (AWS did 10 -> 3)
    clock.advance(60)
    eng.update_shard_count(2, stream_name="s")
    clock.advance(60)
    eng.update_shard_count(4, stream_name="s")
    clock.advance(60)
    eng.create_stream("t", shard_count=9)
    with pytest.raises(InvalidArgumentException, match="quarter"):
        eng.update_shard_count(2, stream_name="t")
    with pytest.raises(ValidationException):
        eng.update_shard_count(4, scaling_type="OTHER", stream_name="s")
    for i in range(7):
        eng.update_shard_count(5 if i % 2 == 0 else 4, stream_name="s")
        clock.advance(60)
    with pytest.raises(LimitExceededException, match="24 hours"):
        eng.update_shard_count(5, stream_name="s")
    clock.advance(86_400 - 10 * 60)                     # the first call leaves the rolling window
    eng.update_shard_count(5, stream_name="s")


def test_on_demand_rejects_provisioned_operations(engine):
    engine.create_stream("od", stream_mode="ON_DEMAND")
    with pytest.raises(ValidationException, match="is in On-Demand mode"):
        engine.split_shard("shardId-000000000000", "1000", stream_name="od")
    with pytest.raises(ValidationException, match="is in On-Demand mode"):
        engine.merge_shards("shardId-000000000000", "shardId-000000000001", stream_name="od")
    with pytest.raises(ValidationException, match="is in On-Demand mode"):
        engine.update_shard_count(5, stream_name="od")


def test_mode_switch_keeps_shards_and_is_limited(make_engine, clock):
    eng = make_engine()
    s = eng.create_stream("s", shard_count=5)
    eng.update_stream_mode(s.arn, {"StreamMode": "ON_DEMAND"})
    assert s.mode == "ON_DEMAND" and len(s.open_shards()) == 5
    eng.update_stream_mode(s.arn, {"StreamMode": "PROVISIONED"})
    assert len(s.open_shards()) == 5
    with pytest.raises(LimitExceededException):
        eng.update_stream_mode(s.arn, {"StreamMode": "ON_DEMAND"})
    clock.advance(86_400)
    eng.update_stream_mode(s.arn, {"StreamMode": "ON_DEMAND"})


def read_in_lineage_order(s):
    """Read every shard from TRIM_HORIZON, a child only after all its parents are finished."""
    done, out = set(), []
    pending = {x.index: x for x in s.visible_shards()}
    while pending:
        ready = [x for x in pending.values() if all(p is None or p in done for p in (x.parent, x.adjacent_parent))]
        assert ready, "lineage has a cycle"
        for x in ready:
            it = s.get_shard_iterator(x.shard_id, "TRIM_HORIZON")
            while it is not None:
                got = s.get_records(it)
                out += [(r.partition_key, r.data) for r in got.records]
                it = got.next_shard_iterator
                if not got.records and x.is_open:
                    break
            done.add(x.index)
            del pending[x.index]
    return out


def test_trim_horizon_across_generations_in_parent_before_child_order(make_engine, clock):
    eng = make_engine(quotas=False)
    s = eng.create_stream("s", shard_count=2)
    rng = random.Random(7)
    sent = []
    counter = 0

    def put_some():
        nonlocal counter
        batch = [(f"{counter + i}".encode(), f"key-{rng.randrange(40)}") for i in range(300)]
        counter += 300
        s.put_records(batch)
        sent.extend((k, d) for d, k in batch)

    put_some()
    for step in range(8):
        clock.advance(1.0)
        open_ = sorted(s.open_shards(), key=lambda x: x.start_hash)
        if step % 3 == 0:
            x = rng.choice(open_)
            eng.split_shard(x.shard_id, str((x.start_hash + x.end_hash) // 2), stream_name="s")
        elif step % 3 == 1 and len(open_) > 1:
            i = rng.randrange(len(open_) - 1)
            eng.merge_shards(open_[i].shard_id, open_[i + 1].shard_id, stream_name="s")
        else:
            eng.update_shard_count(len(open_) + 1, stream_name="s")
        put_some()
    got = read_in_lineage_order(s)
    assert sorted(got) == sorted(sent) and len(got) == len(sent)
    # within a partition key, records come in the order they were put
    by_key = {}
    for k, d in got:
        by_key.setdefault(k, []).append(int(d))
    assert all(v == sorted(v) for v in by_key.values())


def test_split_does_not_copy_records():
    import fastkin

    eng = fastkin.Engine(clock=fastkin.VirtualClock(1_700_000_000.0), core="cy", quotas=False)
    s = eng.create_stream("s", shard_count=1)
    for _ in range(200):
        s.put_records([(b"x" * 100, f"k{i}") for i in range(500)])
    mem = eng.memory_bytes()
    eng.split_shard("shardId-000000000000", str(HALF), stream_name="s")
    assert s.core.shard_end(1) == 0 and s.core.shard_end(2) == 0 and s.core.shard_end(0) == 100_000
    assert eng.memory_bytes() - mem < 4096


def test_switching_to_on_demand_respects_the_on_demand_stream_limit(make_engine):
    from fastkin import Limits

    eng = make_engine(limits=Limits(on_demand_stream_limit=1))
    eng.create_stream("od", stream_mode="ON_DEMAND")
    p = eng.create_stream("p", shard_count=2)
    with pytest.raises(LimitExceededException, match="on-demand stream limit"):
        eng.update_stream_mode(p.arn, {"StreamMode": "ON_DEMAND"})
    assert p.mode == "PROVISIONED" and p.mode_history == []

import hashlib
import random

import pytest

from fastkin import InvalidArgumentException, ValidationException
from fastkin._common import initial_hash_ranges
from fastkin.limits import HASH_MAX


def md5_int(key: str) -> int:
    return int.from_bytes(hashlib.md5(key.encode()).digest(), "big")


def test_initial_ranges_match_aws_for_three_shards():
    # Real DescribeStream output for a 3-shard stream (aws-cli examples).
    assert initial_hash_ranges(3) == [
        (0, 113427455640312821154458202477256070484),
        (113427455640312821154458202477256070485, 226854911280625642308916404954512140969),
        (226854911280625642308916404954512140970, 340282366920938463463374607431768211455),
    ]


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_initial_ranges_tile_the_hash_space(n):
    r = initial_hash_ranges(n)
    assert r[0][0] == 0 and r[-1][1] == HASH_MAX
    assert all(r[i][1] + 1 == r[i + 1][0] for i in range(n - 1))


def test_describe_shows_exact_ranges(engine):
    engine.create_stream("s", shard_count=3)
    shards = engine.describe_stream(stream_name="s")["StreamDescription"]["Shards"]
    assert [(int(x["HashKeyRange"]["StartingHashKey"]), int(x["HashKeyRange"]["EndingHashKey"])) for x in shards] \
        == initial_hash_ranges(3)
    assert [x["ShardId"] for x in shards] == ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"]


@pytest.mark.parametrize("shards", [1, 5, 64])
def test_md5_routing_matches_hashlib(engine, shards):
    s = engine.create_stream("s", shard_count=shards)
    ranges = initial_hash_ranges(shards)
    rng = random.Random(1)
    alphabet = "abcXYZ09-_ éüß漢字🙂"
    keys = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 256))) for _ in range(300)]
    res = s.put_records([(b"x", k) for k in keys])
    for k, r in zip(keys, res):
        h = md5_int(k)
        expect = next(i for i, (a, b) in enumerate(ranges) if a <= h <= b)
        assert r.shard_id == f"shardId-{expect:012d}"
        assert s.core.shard_for_key(k) == expect


def test_md5_hash_key_in_c_matches_hashlib():
    from fastkin._cy.core import md5_hash_key

    rng = random.Random(2)
    for n in list(range(0, 130)) + [255, 256, 1000, 1024]:
        b = rng.randbytes(n)
        assert md5_hash_key(b) == int.from_bytes(hashlib.md5(b).digest(), "big")
    for k in ["", "a", "user-17", "é", "漢字かな", "🙂" * 256]:
        assert md5_hash_key(k) == md5_int(k)


def test_explicit_hash_key_overrides_md5(engine):
    s = engine.create_stream("s", shard_count=4)
    ranges = initial_hash_ranges(4)
    for i, (a, b) in enumerate(ranges):
        for h in (a, b, (a + b) // 2):
            assert s.put_record(b"x", "same-key", explicit_hash_key=str(h)).shard_id == f"shardId-{i:012d}"
    res = s.put_records([(b"x", "k", "0"), (b"y", "k", str(HASH_MAX))])
    assert [r.shard_id for r in res] == ["shardId-000000000000", "shardId-000000000003"]


@pytest.mark.parametrize("bad", ["-1", str(HASH_MAX + 1), "abc", "01", "", "1.5", 2**128])
def test_bad_explicit_hash_key_is_rejected_and_changes_nothing(engine, bad):
    s = engine.create_stream("s", shard_count=2)
    with pytest.raises(InvalidArgumentException, match="Invalid ExplicitHashKey"):
        s.put_record(b"x", "k", explicit_hash_key=bad)
    with pytest.raises(InvalidArgumentException, match="Invalid ExplicitHashKey"):
        s.put_records([(b"ok", "k"), (b"x", "k", bad)])
    assert s.core.record_count() == 0


def test_partition_key_type_is_checked(engine):
    s = engine.create_stream("s", shard_count=1)
    with pytest.raises(ValidationException):
        s.put_record(b"x", 17)


def test_batch_md5_lanes_match_hashlib():
    """put_records hashes short keys (< 56 UTF-8 bytes) several at a time in SIMD lanes."""
    from fastkin._cy.core import md5_hash_keys, md5_lanes

    assert md5_lanes() in (0, 1, 2)
    rng = random.Random(3)
    alphabet = "abcXYZ09-_ éüß漢字🙂"
    for n in [0, 1, 3, 4, 15, 16, 17, 31, 33, 64, 500]:
        keys = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(n)]
        keys += [rng.randbytes(m) for m in (0, 54, 55, 56, 57, 63, 64, 65)]
        assert md5_hash_keys(keys) == [int.from_bytes(hashlib.md5(k.encode() if isinstance(k, str) else k).digest(),
                                                      "big") for k in keys]


@pytest.mark.parametrize("with_ehk", [False, True])
def test_short_key_batches_route_like_hashlib(engine, with_ehk):
    s = engine.create_stream("s", shard_count=16)
    ranges = initial_hash_ranges(16)
    rng = random.Random(4)
    keys = ["".join(rng.choice("abcdef0123-é") for _ in range(rng.randint(1, 40))) for _ in range(500)]
    recs = [(b"x", k, str(HASH_MAX // 2)) if with_ehk and i % 7 == 3 else (b"x", k) for i, k in enumerate(keys)]
    res = s.put_records(recs)
    for rec, r in zip(recs, res):
        h = int(rec[2]) if len(rec) == 3 else md5_int(rec[1])
        expect = next(i for i, (a, b) in enumerate(ranges) if a <= h <= b)
        assert r.shard_id == f"shardId-{expect:012d}"

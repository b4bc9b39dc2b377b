"""A stream's shard topology: ShardInfo (one shard's hash range, lineage and open/closed times, kept by
the Python layer; the log itself lives in the core) and the operations that change it: SplitShard,
MergeShards, UpdateShardCount, UpdateStreamMode.

A parent shard is closed, never copied: its records stay in its own log (readable until retention
trims them) and its children start empty, so a split or merge costs the same whatever the parent holds.
Children take the next unused shard indices and are created one second after the parent closes as
far as their sequence numbers are concerned (as real ones decode), so every child number is above
every parent number.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import errors as E
from ._common import parse_hash_key
from .limits import HASH_MAX

SCALINGS_PER_DAY = 10
MODE_SWITCHES_PER_DAY = 2
MAX_SHARDS_PER_STREAM = 10_000
SCALE_DOWN_FACTOR = 4                   # UpdateShardCount may go down to 1/4 of the open shards
DAY = 86_400.0


@dataclass
class ShardInfo:
    """Shard metadata kept by the Python layer (the log itself lives in the core)."""

    index: int
    start_hash: int
    end_hash: int
    created: float                          # engine epoch seconds
    created_secs: int                       # creation secs as encoded in its sequence numbers
    parent: int | None = None
    adjacent_parent: int | None = None
    closed_at: float | None = None          # engine time the shard closed
    children: list[int] = field(default_factory=list)

    @property
    def shard_id(self) -> str:
        return E.shard_name(self.index)

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


def _provisioned_only(stream) -> None:
    if stream.mode != "PROVISIONED":
        raise E.ValidationException(
            f"Request is invalid. Stream {stream.name} under account {stream.engine.account_id} is in On-Demand mode.")


def _open(stream, info: ShardInfo) -> ShardInfo:
    if not info.is_open:
        raise E.InvalidArgumentException(
            f"Shard {info.shard_id} in stream {stream.name} under account {stream.engine.account_id} has already "
            f"been merged or split, and thus is not eligible for merging or splitting.")
    return info


def _child(stream, index: int, start: int, end: int, now: float, parent: int, adjacent: int | None = None):
    return ShardInfo(index, start, end, now, int(now) + 1, parent, adjacent)


# Precedence of SplitShard / MergeShards errors (AWS's, facts §4/§5): an unparseable shard id
# (Engine._stream_for_shards) > stream lookup > On-Demand mode > shard lookup (ShardToMerge first) >
# shard already closed > hash key range / adjacency > stream not ACTIVE > account shard limit.

def split_shard(stream, shard_to_split, new_starting_hash_key, *, internal: bool = False) -> None:
    """SplitShard. ``internal`` is the on-demand scaler's own split: no state or mode checks, no UPDATING."""
    with stream._lock:
        if not internal:
            _provisioned_only(stream)
        info = _open(stream, stream.shard(shard_to_split))
        k = parse_hash_key(new_starting_hash_key)
        s, e = info.start_hash, info.end_hash
        if not (s + 1 < k < e):              # AWS: k = EndingHashKey fails too (facts §5)
            raise E.InvalidArgumentException(
                f"NewStartingHashKey {k} used in SplitShard() on shard {info.shard_id} in stream {stream.name} under "
                f"account {stream.engine.account_id} is not both greater than one plus the shard's StartingHashKey {s} "
                f"and less than the shard's EndingHashKey {e}.")
        now = stream.now() if internal else stream.require_active()
        stream.engine.check_shard_quota(1)
        i = stream.next_shard_index()
        left = _child(stream, i, s, k - 1, now, info.index)
        right = _child(stream, i + 1, k, e, now, info.index)
        stream.apply_topology(now, [info.index], [left, right])
        if not internal:
            stream.begin_update(now)


def merge_shards(stream, shard_to_merge, adjacent_shard_to_merge, *, internal: bool = False) -> None:
    """MergeShards: ShardToMerge must be the lower hash range, AdjacentShardToMerge the one right above it."""
    with stream._lock:
        if not internal:
            _provisioned_only(stream)
        a = stream.shard(shard_to_merge)
        b = stream.shard(adjacent_shard_to_merge)
        _open(stream, a)
        _open(stream, b)
        if a.end_hash + 1 != b.start_hash:
            raise E.InvalidArgumentException(
                f"Shards {a.shard_id} and {b.shard_id} in stream {stream.name} under account "
                f"{stream.engine.account_id} are not an adjacent pair of shards eligible for merging")
        now = stream.now() if internal else stream.require_active()
        child = _child(stream, stream.next_shard_index(), a.start_hash, b.end_hash, now, a.index, b.index)
        stream.apply_topology(now, [a.index, b.index], [child])
        if not internal:
            stream.begin_update(now)


def plan_uniform(stream, target: int, now: float):
    """The splits and merges UpdateShardCount (UNIFORM_SCALING) makes, as AWS makes them (facts §9; the shard
    counts AWS leaves, open + closed, are reproduced exactly: 2->4: 6, 4->5: 15, 10->13: 37, 4->2: 6, 5->3: 7,
    10->3: 17).

    1. Scaling up: every open shard is split once in the middle of its range (children take the next two
       indices, the lower half first).
    2. Then, while there are more open shards than ``target``: the open shards, in hash-key order, are paired
       (0, 1), (2, 3), ... and each pair is merged in turn (the lower shard is the parent, the upper one the
       adjacent parent), stopping as soon as ``target`` shards are open; passes repeat if needed.
    The result is not equal-sized unless the ratio is a power of two. Shards made and merged again inside
    the one change are transient (see Stream.apply_topology).
    Returns (shards to close, new ShardInfos, indices of the transient ones)."""
    nxt = stream.next_shard_index()
    close: list[int] = []
    new: list[ShardInfo] = []
    transient: set[int] = set()
    created: set[int] = set()

    def retire(x: ShardInfo) -> None:
        if x.index in created:
            transient.add(x.index)
        else:
            close.append(x.index)

    opened = sorted(stream.open_shards(), key=lambda x: x.start_hash)
    if target > len(opened):
        pieces = []
        for sh in opened:
            if sh.end_hash - sh.start_hash < 2:
                raise E.InvalidArgumentException(
                    f"UpdateShardCount failed for stream {stream.name} under account {stream.engine.account_id}: "
                    f"shard {sh.shard_id} is too narrow to split.")
            mid = sh.start_hash + (sh.end_hash - sh.start_hash + 1) // 2
            left = _child(stream, nxt, sh.start_hash, mid - 1, now, sh.index)
            right = _child(stream, nxt + 1, mid, sh.end_hash, now, sh.index)
            nxt += 2
            retire(sh)
            new += [left, right]
            created.update((left.index, right.index))
            pieces += [left, right]
        opened = pieces
    while len(opened) > target:
        merges = len(opened) - target
        nxt_pass: list[ShardInfo] = []
        i = 0
        while i < len(opened):
            if merges and i + 1 < len(opened):
                lo, hi = opened[i], opened[i + 1]
                m = _child(stream, nxt, lo.start_hash, hi.end_hash, now, lo.index, hi.index)
                nxt += 1
                retire(lo)
                retire(hi)
                new.append(m)
                created.add(m.index)
                nxt_pass.append(m)
                merges -= 1
                i += 2
            else:
                nxt_pass.append(opened[i])
                i += 1
        opened = nxt_pass
    return close, new, transient


def update_shard_count(stream, target_shard_count, scaling_type="UNIFORM_SCALING") -> dict:
    if scaling_type != "UNIFORM_SCALING":
        raise E.validation_error(scaling_type, "scalingType", "satisfy enum value set: [UNIFORM_SCALING]")
    if isinstance(target_shard_count, bool) or not isinstance(target_shard_count, int) or target_shard_count < 1:
        raise E.validation_error(target_shard_count, "targetShardCount", "have value greater than or equal to 1")
    with stream._lock:
        _provisioned_only(stream)
        now = stream.require_active()
        current = len(stream.open_shards())
        acct = stream.engine.account_id
        recent = [t for t in stream.scaling_history if now - t < DAY]
        if len(recent) >= SCALINGS_PER_DAY:
            raise E.LimitExceededException(
                f"UpdateShardCount failed for stream {stream.name} under account {acct}: the stream was already "
                f"scaled {SCALINGS_PER_DAY} times in the last 24 hours.")
        if target_shard_count > 2 * current:
            raise E.InvalidArgumentException(
                f"UpdateShardCount failed for stream {stream.name} under account {acct}: cannot scale up to more than "
                f"double the current open shard count ({current}); requested {target_shard_count}.")
        # AWS documents "at least half", yet AWS itself scaled 10 -> 3 (facts §9): two merge passes. fastkin
        # allows what two passes reach: down to a quarter of the open shards (rounded up).
        if SCALE_DOWN_FACTOR * target_shard_count < current:
            raise E.InvalidArgumentException(
                f"UpdateShardCount failed for stream {stream.name} under account {acct}: cannot scale down below a "
                f"quarter of the current open shard count ({current}); requested {target_shard_count}.")
        if target_shard_count > MAX_SHARDS_PER_STREAM:
            raise E.LimitExceededException(
                f"UpdateShardCount failed for stream {stream.name} under account {acct}: a stream can have at most "
                f"{MAX_SHARDS_PER_STREAM} shards.")
        stream.engine.check_shard_quota(max(0, target_shard_count - current))
        if target_shard_count != current:
            close, new, transient = plan_uniform(stream, target_shard_count, now)
            stream.apply_topology(now, close, new, transient)
        stream.scaling_history = recent + [now]
        stream.begin_update(now)
        return {"StreamName": stream.name, "CurrentShardCount": current, "TargetShardCount": target_shard_count,
                "StreamARN": stream.arn}


def update_stream_mode(stream, mode: str | None) -> None:
    if mode not in ("PROVISIONED", "ON_DEMAND"):
        raise E.validation_error(mode, "streamModeDetails.streamMode",
                                 "satisfy enum value set: [PROVISIONED, ON_DEMAND]")
    with stream._lock:
        now = stream.require_active()
        recent = [t for t in stream.mode_history if now - t < DAY]
        if len(recent) >= MODE_SWITCHES_PER_DAY:
            raise E.LimitExceededException(
                f"Stream {stream.name} under account {stream.engine.account_id} has already switched capacity mode "
                f"{MODE_SWITCHES_PER_DAY} times in the last 24 hours.")
        if mode == stream.mode:
            raise E.InvalidArgumentException(
                f"Stream {stream.name} under account {stream.engine.account_id} is already in {mode} mode.")
        if mode == "ON_DEMAND":
            stream.engine.check_on_demand_quota()
        stream.mode_history = recent + [now]
        stream.set_mode(mode, now)
        stream.begin_update(now)


__all__ = ["split_shard", "merge_shards", "update_shard_count", "update_stream_mode", "plan_uniform", "HASH_MAX"]

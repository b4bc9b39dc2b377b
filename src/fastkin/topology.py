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
from ._common import initial_hash_ranges, parse_hash_key
from .limits import HASH_MAX

SCALINGS_PER_DAY = 10
MODE_SWITCHES_PER_DAY = 2
MAX_SHARDS_PER_STREAM = 10_000
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


def _provisioned_only(stream, op: str) -> None:
    if stream.mode != "PROVISIONED":
        raise E.ValidationException(
            f"{op} is not supported for stream {stream.name} under account {stream.engine.account_id} "
            "because it is in ON_DEMAND capacity mode.")


def _open_shard(stream, shard_id, op: str):
    info = stream.shard(shard_id)
    if not info.is_open:
        raise E.ResourceInUseException(
            f"Shard {info.shard_id} in stream {stream.name} under account {stream.engine.account_id} has already "
            f"been merged or split, and thus is not eligible for merging or splitting.")
    return info


def _child(stream, index: int, start: int, end: int, now: float, parent: int, adjacent: int | None = None):
    return ShardInfo(index, start, end, now, int(now) + 1, parent, adjacent)


def split_shard(stream, shard_to_split, new_starting_hash_key, *, internal: bool = False) -> None:
    """SplitShard. ``internal`` is the on-demand scaler's own split: no state or mode checks, no UPDATING."""
    with stream._lock:
        now = stream._clock() if internal else stream.require_active()
        if not internal:
            _provisioned_only(stream, "SplitShard")
        info = _open_shard(stream, shard_to_split, "SplitShard")
        k = parse_hash_key(new_starting_hash_key)
        s, e = info.start_hash, info.end_hash
        if not (s + 1 < k <= e):
            raise E.InvalidArgumentException(
                f"NewStartingHashKey {k} used in SplitShard() on shard {info.shard_id} in stream {stream.name} under "
                f"account {stream.engine.account_id} is not both greater than one plus the shard's StartingHashKey {s} "
                f"and less than the shard's EndingHashKey {e}.")
        stream.engine.check_shard_quota(1)
        i = stream.next_shard_index()
        left = _child(stream, i, s, k - 1, now, info.index)
        right = _child(stream, i + 1, k, e, now, info.index)
        stream.apply_topology(now, [info.index], [left, right])
        if not internal:
            stream.begin_update(now)


def merge_shards(stream, shard_to_merge, adjacent_shard_to_merge, *, internal: bool = False) -> None:
    with stream._lock:
        now = stream._clock() if internal else stream.require_active()
        if not internal:
            _provisioned_only(stream, "MergeShards")
        a = _open_shard(stream, shard_to_merge, "MergeShards")
        b = _open_shard(stream, adjacent_shard_to_merge, "MergeShards")
        if a.end_hash + 1 != b.start_hash and b.end_hash + 1 != a.start_hash:
            raise E.InvalidArgumentException(
                f"Shards {a.shard_id} and {b.shard_id} in stream {stream.name} under account "
                f"{stream.engine.account_id} are not an adjacent pair of shards eligible for merging")
        lo, hi = (a, b) if a.start_hash < b.start_hash else (b, a)
        child = _child(stream, stream.next_shard_index(), lo.start_hash, hi.end_hash, now, a.index, b.index)
        stream.apply_topology(now, [a.index, b.index], [child])
        if not internal:
            stream.begin_update(now)


def plan_uniform(stream, target: int, now: float):
    """Splits then merges that turn the open shards into ``target`` equal ranges (UNIFORM_SCALING).

    Every open shard is split at each new boundary inside it, then the pieces of each target range are
    merged left to right, so each new shard has at most two parents, as AWS's shards do.
    Returns (shards to close, new ShardInfos, indices of the transient ones)."""
    ranges = initial_hash_ranges(target)
    bounds = [a for a, _ in ranges[1:]]
    nxt = stream.next_shard_index()
    close, new, transient = [], [], set()
    pieces = []
    for sh in sorted(stream.open_shards(), key=lambda x: x.start_hash):
        cur_idx, cur_s, cur_e = sh.index, sh.start_hash, sh.end_hash
        cuts = [b for b in bounds if cur_s < b <= cur_e]
        if cuts:
            close.append(sh.index)
        for j, b in enumerate(cuts):
            left = _child(stream, nxt, cur_s, b - 1, now, cur_idx)
            right = _child(stream, nxt + 1, b, cur_e, now, cur_idx)
            nxt += 2
            new += [left, right]
            if j:                      # the piece being cut again lived only inside this change
                transient.add(cur_idx)
            pieces.append(left)
            cur_idx, cur_s = right.index, b
        pieces.append(new[-1] if cuts else sh)
    created = {n.index for n in new}
    k = 0
    for _a, b in ranges:
        group = []
        while k < len(pieces) and pieces[k].end_hash <= b:
            group.append(pieces[k])
            k += 1
        cur = group[0]
        for p in group[1:]:
            m = _child(stream, nxt, cur.start_hash, p.end_hash, now, cur.index, p.index)
            nxt += 1
            for x in (cur, p):
                if x.index in created:
                    transient.add(x.index)
                else:
                    close.append(x.index)
            new.append(m)
            created.add(m.index)
            cur = m
    return close, new, transient


def update_shard_count(stream, target_shard_count, scaling_type="UNIFORM_SCALING") -> dict:
    if scaling_type != "UNIFORM_SCALING":
        raise E.validation_error(scaling_type, "scalingType", "satisfy enum value set: [UNIFORM_SCALING]")
    if isinstance(target_shard_count, bool) or not isinstance(target_shard_count, int) or target_shard_count < 1:
        raise E.validation_error(target_shard_count, "targetShardCount", "have value greater than or equal to 1")
    with stream._lock:
        now = stream.require_active()
        _provisioned_only(stream, "UpdateShardCount")
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
        if 2 * target_shard_count < current:
            raise E.InvalidArgumentException(
                f"UpdateShardCount failed for stream {stream.name} under account {acct}: cannot scale down below half "
                f"the current open shard count ({current}); requested {target_shard_count}.")
        if target_shard_count > MAX_SHARDS_PER_STREAM:
            raise E.LimitExceededException(
                f"UpdateShardCount failed for stream {stream.name} under account {acct}: a stream can have at most "
                f"{MAX_SHARDS_PER_STREAM} shards.")
        stream.engine.check_shard_quota(max(0, target_shard_count - current))
        if target_shard_count != current or not _is_uniform(stream):
            close, new, transient = plan_uniform(stream, target_shard_count, now)
            stream.apply_topology(now, close, new, transient)
        stream.scaling_history = recent + [now]
        stream.begin_update(now)
        return {"StreamName": stream.name, "CurrentShardCount": current, "TargetShardCount": target_shard_count,
                "StreamARN": stream.arn}


def _is_uniform(stream) -> bool:
    shards = sorted(stream.open_shards(), key=lambda x: x.start_hash)
    return [(s.start_hash, s.end_hash) for s in shards] == initial_hash_ranges(len(shards))


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

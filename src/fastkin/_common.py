"""Pure-Python helpers shared by both engines and the API layer (no per-record hot path here).

Sequence-number layout (47 hex nibbles, most significant first; reverse-engineered from real
56-digit AWS numbers, see shared/spec §7):

    2 | shardCreateEpochSecs(9) | shardIndex & 0xF (1) | seqIndex(16) | 00(2) | recordEpochSecs(9) | shardIndex(8) | 2

seqIndex is the record's position in its shard's log plus one (1, 2, 3, ...), so numbers are strictly
increasing per shard and unique per stream; the shard's StartingSequenceNumber has seqIndex 0 (before
every record) and a closed shard's EndingSequenceNumber has seqIndex 0x7FFFFFFFFFFFFFFF (after them).
"""
from __future__ import annotations

import re

from .errors import bad_hash_key
from .limits import HASH_MAX

SEQ_INDEX_END = 0x7FFFFFFFFFFFFFFF
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]{0,128})\Z")
_HASH_KEY = re.compile(r"(?:0|[1-9][0-9]{0,38})\Z")


def format_sequence_number(create_secs: int, shard_index: int, seq_index: int, record_secs: int) -> str:
    value = (
        (2 << 184)
        | (create_secs << 148)
        | ((shard_index & 0xF) << 144)
        | (seq_index << 80)
        | (record_secs << 36)
        | (shard_index << 4)
        | 2
    )
    return str(value)


def parse_sequence_number(s: object) -> tuple[int, int, int, int] | None:
    """(create_secs, shard_index, seq_index, record_secs), or None when s is not one of ours."""
    if not isinstance(s, str) or not _DECIMAL.match(s):
        return None
    v = int(s)
    if v >> 188 or (v >> 184) != 2 or (v & 0xF) != 2 or (v >> 72) & 0xFF:
        return None
    shard = (v >> 4) & 0xFFFFFFFF
    if (v >> 144) & 0xF != shard & 0xF:
        return None
    return (v >> 148) & 0xFFFFFFFFF, shard, (v >> 80) & 0xFFFFFFFFFFFFFFFF, (v >> 36) & 0xFFFFFFFFF


def parse_hash_key(value: object) -> int:
    """ExplicitHashKey / NewStartingHashKey: a decimal string in [0, 2^128-1] (an int is accepted too)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= HASH_MAX:
            return value
        raise bad_hash_key(value)
    if isinstance(value, str) and _HASH_KEY.match(value):
        v = int(value)
        if v <= HASH_MAX:
            return v
    raise bad_hash_key(value)


def initial_hash_ranges(n: int) -> list[tuple[int, int]]:
    """CreateStream(N): shard i covers [i*w, (i+1)*w - 1] with w = floor(2^128 / N); the last ends at 2^128-1."""
    w = (1 << 128) // n
    return [(i * w, HASH_MAX if i == n - 1 else (i + 1) * w - 1) for i in range(n)]

"""Pure-Python helpers shared by both cores and the API layer (no per-record hot path here).

Sequence numbers are formatted and parsed by the core (``format_sequence_number`` /
``parse_sequence_number`` of fastkin._ref.core, C versions in fastkin._cy.core; the layout is
described in fastkin._ref.core). A closed shard's EndingSequenceNumber has seqIndex SEQ_INDEX_END.
"""
from __future__ import annotations

import re

from .errors import bad_hash_key
from .limits import HASH_MAX

SEQ_INDEX_END = 0x7FFFFFFFFFFFFFFF
_HASH_KEY = re.compile(r"(?:0|[1-9][0-9]{0,38})\Z")


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

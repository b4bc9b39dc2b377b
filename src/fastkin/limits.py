"""Kinesis limits as Python values (the compiled core takes them from here, never hard-codes them)."""
from __future__ import annotations

from dataclasses import dataclass, replace

KiB = 1024
MiB = 1024 * 1024
HASH_MAX = (1 << 128) - 1

PUT_RECORDS_MAX_RECORDS = 500
PARTITION_KEY_MAX_CHARS = 256
MAX_RECORD_KIB_DEFAULT = 1024
MAX_RECORD_KIB_MAX = 10240
GET_RECORDS_MAX_RECORDS = 10_000
ITERATOR_TTL_SECONDS = 300.0
RETENTION_HOURS_DEFAULT = 24
RETENTION_HOURS_MIN = 24
RETENTION_HOURS_MAX = 8760
DESCRIBE_STREAM_MAX_SHARDS = 100
LIST_SHARDS_MAX_RESULTS = 1000
LIST_STREAMS_MAX = 100
TAGS_MAX = 50
ON_DEMAND_INITIAL_SHARDS = 4
QUEUE_IN_FLIGHT_MAX = 120_000


@dataclass(frozen=True)
class Limits:
    """Per-engine limits. Defaults are AWS's; change them to model a different service."""

    write_bytes_per_second: int = 1 * MiB      # per shard, data + partition key bytes
    write_records_per_second: int = 1000       # per shard
    read_calls_per_second: int = 5             # per shard, shared by all polling consumers
    read_bytes_per_second: int = 2 * MiB       # per shard
    get_records_max_bytes: int = 10 * MiB      # per GetRecords response
    read_penalty_seconds: float = 5.0          # after a response that reached get_records_max_bytes
    put_records_max_bytes: int = 10 * MiB      # per PutRecords request (data + keys)
    shard_limit: int = 20_000                  # open shards per account (us-east-1)
    on_demand_stream_limit: int = 50
    iterator_ttl_seconds: float = ITERATOR_TTL_SECONDS
    queue_in_flight_max: int = QUEUE_IN_FLIGHT_MAX   # in-flight records per queue (normal + dead-letter)

    def replace(self, **changes) -> Limits:
        return replace(self, **changes)


DEFAULT_LIMITS = Limits()

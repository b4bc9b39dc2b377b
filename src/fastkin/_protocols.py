"""The contract between the Python layer and a data-plane core.

Two modules implement it: the compiled core ``fastkin._cy.core`` and the pure-Python reference
``fastkin._ref.core`` (``fastkin._core`` binds one of them). Everything the rest of fastkin uses
from a core is declared here, and nothing else is public on either core:
tests/unit/test_core_contract.py checks both modules against these Protocols (members, signatures,
``isinstance``) and fails on a public member that is not declared here, so the cores cannot drift.

This module also defines, once, the layout of the per-shard counters that ``StreamCore.counters``
returns (the compiled core keeps the same numbers in a C enum in core.pxd and reports them through
``counter_layout()``; the contract test checks that both agree with ``COUNTER_LAYOUT``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from .limits import Limits

# ---------------------------------------------------------------------------------------------
# Per-shard cumulative counters: the columns of StreamCore.counters() (a uint64 array (n, NCTR)).
# The hot path only adds to them; metrics.py reads them once per engine-second and files differences.

C_IN_BYTES = 0          # accepted write bytes (data + partition key, UTF-8)
C_IN_RECORDS = 1        # accepted records (PutRecord + accepted PutRecords entries)
C_W_THR_RECORDS = 2     # records refused by the write quota (both put paths)
C_W_THR_BYTES = 3       # bytes of those refused records
C_OUT_BYTES = 4         # bytes returned by GetRecords
C_OUT_RECORDS = 5       # records returned by GetRecords
C_GET_CALLS = 6         # successful GetRecords calls
C_R_THR_CALLS = 7       # GetRecords calls refused by the read quota
C_AGE_MAX = 8           # max iterator age (ms) seen by GetRecords since the last counters(reset_age=True)
C_PR_RECORDS = 9        # entries of PutRecords requests (the rest of C_IN_RECORDS came by PutRecord)
C_PR_THROTTLED = 10     # of those entries, throttled
NCTR = 11               # number of columns

# {"C_IN_BYTES": 0, ...}: what the compiled core's counter_layout() must return (built from the names above)
COUNTER_LAYOUT: dict[str, int] = {name: value for name, value in globals().items() if name.startswith("C_")}
assert list(COUNTER_LAYOUT.values()) == list(range(NCTR))


# ---------------------------------------------------------------------------------------------
# Results

@runtime_checkable
class PutResultProtocol(Protocol):
    """One record's outcome: shard_id + sequence_number, or error_code + error_message (the others None)."""

    @property
    def shard_id(self) -> str | None: ...
    @property
    def sequence_number(self) -> str | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def error_message(self) -> str | None: ...


@runtime_checkable
class PutRecordsResultProtocol(Protocol):
    """The PutRecords contract: one PutResult per request entry, in request order."""

    @property
    def records(self) -> list[PutResultProtocol]: ...
    @property
    def failed_record_count(self) -> int: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> PutResultProtocol: ...
    def __iter__(self) -> Iterator[PutResultProtocol]: ...


@runtime_checkable
class RecordProtocol(Protocol):
    """A record read from a shard (the GetRecords Record shape, in snake_case). A metadata-only
    core (store_payload=False) returns b"" and "" as data and partition key."""

    @property
    def sequence_number(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def partition_key(self) -> str: ...
    @property
    def approximate_arrival_timestamp(self) -> float: ...


# ---------------------------------------------------------------------------------------------
# Shards and the stream core

@runtime_checkable
class ShardProtocol(Protocol):
    """One shard as seen through ``StreamCore.shards`` (read-only: every change goes through StreamCore)."""

    @property
    def index(self) -> int: ...               # shard number: shardId-<index:012d>
    @property
    def shard_id(self) -> str: ...
    @property
    def start_hash(self) -> int: ...          # inclusive hash-key range
    @property
    def end_hash(self) -> int: ...
    @property
    def created_secs(self) -> int: ...        # creation time, epoch seconds (in sequence numbers)
    @property
    def base(self) -> int: ...                # trim horizon: seq index of the oldest readable record
    @property
    def end(self) -> int: ...                 # seq index the next record gets
    @property
    def closed(self) -> bool: ...             # no longer routed to (after a split or merge)
    @property
    def meta_only(self) -> bool: ...          # sizes and times only: no payload bytes are stored
    def memory_bytes(self) -> int: ...        # bytes held by this shard's log


@runtime_checkable
class StreamCoreProtocol(Protocol):
    """One stream's data plane: shard logs, routing, sequence numbers and quotas.

    Positions (``pos``, ``seq_index``) are sequence indices: a record's position in its shard's log;
    its sequence number's seqIndex field is position + 1."""

    @property
    def name(self) -> str: ...
    @property
    def account(self) -> str: ...
    @property
    def limits(self) -> Limits: ...
    @property
    def store_payload(self) -> bool: ...
    @property
    def shards(self) -> dict[int, ShardProtocol]: ...    # every shard not yet dropped
    quotas: bool                                         # settable: per-shard quotas enforced
    auto: bool                                           # settable: AUTO distribution (round-robin, no MD5;
                                                         # a None partition key is stored as "")
    max_record_bytes: int                                # settable: data + key bytes of one record

    # topology
    def add_shard(self, index: int, start_hash: int, end_hash: int, created_secs: int) -> None: ...
    def reshard(self, close: list[int], add: list[tuple[int, int, int, int, bool]]) -> None: ...
    def drop_shard(self, index: int) -> None: ...
    def restore_record(self, index: int, seq_index: int, arrival_ms: int, data: bytes, key: str) -> None: ...
    def adopt_segment(self, index: int, seq_index: int, path: str, size: int, ms: Any, off: Any, dlen: Any,
                      klen: Any) -> int: ...
    def shard_end(self, index: int) -> int: ...
    def shard_horizon(self, index: int) -> int: ...
    def seek_timestamp(self, index: int, ts_ms: int) -> int: ...
    def arrival_ms(self, index: int, seq_index: int) -> int: ...
    def shard_for_key(self, partition_key: str) -> int: ...

    # put
    def set_io_gate(self, lo: float, hi: float) -> None: ...
    def put_record_io(self, data: Any, key: str, ehk: Any, clock: Callable[[], Any]) -> PutResultProtocol | tuple: ...
    def put_record(self, data: Any, key: str, ehk: Any, now: float) -> PutResultProtocol: ...
    def put_records(self, records: Sequence, now: float) -> PutRecordsResultProtocol: ...

    # read
    def get_records(self, index: int, pos: int, limit: int, now: float,
                    quota: bool = True) -> tuple[list[RecordProtocol], int, int]: ...

    # retention, monitoring, debugging
    def trim(self, now: float, retention_secs: float) -> int: ...
    def counters(self, indices: Sequence[int], reset_age: bool = False) -> np.ndarray: ...
    def record_count(self) -> int: ...
    def memory_bytes(self) -> int: ...
    def check_invariants(self) -> None: ...             # raises fastkin.errors.CorruptStateError


# ---------------------------------------------------------------------------------------------
# The core module

@runtime_checkable
class CoreModuleProtocol(Protocol):
    """What a core module provides (``fastkin._core.core`` / ``get_core(name)``)."""

    NAME: str                   # "cy" or "ref"
    DEBUG: bool                 # invariants are checked after every mutation (debug builds)
    END_SEQ_INDEX: int          # seqIndex of a closed shard's EndingSequenceNumber
    StreamCore: type[StreamCoreProtocol]
    Shard: type[ShardProtocol]
    PutResult: type[PutResultProtocol]
    PutRecordsResult: type[PutRecordsResultProtocol]
    Record: type[RecordProtocol]

    def format_sequence_number(self, create_secs: int, shard_index: int, seq_index: int,
                               record_secs: int) -> str: ...
    def parse_sequence_number(self, s: object) -> tuple[int, int, int, int] | None: ...
    def md5_hash_key(self, key: str | bytes) -> int: ...
    def md5_hash_keys(self, keys: Sequence[str | bytes]) -> list[int]: ...
    def md5_lanes(self) -> int: ...
    def counter_layout(self) -> dict[str, int]: ...


# The class Protocols of a core module, by the module attribute that holds the class.
CLASS_PROTOCOLS: dict[str, type] = {
    "StreamCore": StreamCoreProtocol,
    "Shard": ShardProtocol,
    "PutResult": PutResultProtocol,
    "PutRecordsResult": PutRecordsResultProtocol,
    "Record": RecordProtocol,
}

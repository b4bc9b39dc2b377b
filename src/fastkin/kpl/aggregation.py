"""KPL record aggregation: many user records packed into one Kinesis record, and back.

Wire format (the KPL's aggregation-format.md): the 4 magic bytes F3 89 9A C2, then a protobuf
``AggregatedRecord``, then the 16-byte MD5 of the protobuf bytes::

    message AggregatedRecord { repeated string partition_key_table = 1;
                               repeated string explicit_hash_key_table = 2;
                               repeated Record records = 3; }
    message Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
                     required bytes data = 3; repeated Tag tags = 4; }
    message Tag { required string key = 1; optional string value = 2; }

The message is small and fixed, so it is encoded and decoded here directly (varints and
length-delimited fields) rather than through a protobuf runtime.
"""
from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from .. import errors as E
from .._core import core as _core

md5_hash_key = _core.md5_hash_key     # partition key -> 128-bit hash key, through the selected core

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST = 16
AGGREGATED_PARTITION_KEY = "a"     # what the KPL puts on a multi-record container


# -- protobuf primitives -----------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise E.AggregationError("truncated or oversized varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _fields(buf: bytes):
    """Yield (field number, wire type, value) over a message: value is an int (varint) or bytes."""
    i = 0
    value: int | bytes
    while i < len(buf):
        key, i = _read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 2:
            n, i = _read_varint(buf, i)
            if i + n > len(buf):
                raise E.AggregationError("truncated length-delimited field")
            value, i = buf[i:i + n], i + n
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise E.AggregationError(f"unsupported wire type {wire}")
        if number == 0:
            raise E.AggregationError("field number 0")
        yield number, wire, value


# -- aggregation ---------------------------------------------------------------------------------------
class Aggregator:
    """Collects user records (all bound for one shard) into one aggregated Kinesis record."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._pk: dict[str, int] = {}
        self._ehk: dict[str, int] = {}
        self._records: list[bytes] = []
        self._size = 0
        self.first_partition_key: str | None = None
        self.first_explicit_hash_key: str | None = None

    def __len__(self) -> int:
        return len(self._records)

    def _encoded_record(self, partition_key: str, data: bytes, explicit_hash_key: str | None) -> tuple[bytes, int]:
        extra = 0
        pk_index = self._pk.get(partition_key)
        if pk_index is None:
            pk_index = len(self._pk)
            extra += len(_field(1, partition_key.encode()))
        body = _varint(1 << 3 | 0) + _varint(pk_index)
        if explicit_hash_key is not None:
            ehk_index = self._ehk.get(explicit_hash_key)
            if ehk_index is None:
                ehk_index = len(self._ehk)
                extra += len(_field(2, explicit_hash_key.encode()))
            body += _varint(2 << 3 | 0) + _varint(ehk_index)
        body += _field(3, data)
        return _field(3, body), extra

    def size_with(self, partition_key: str, data: bytes, explicit_hash_key: str | None = None) -> int:
        """Bytes of the aggregated record (magic + protobuf + MD5) if this user record were added."""
        rec, extra = self._encoded_record(partition_key, data, explicit_hash_key)
        return len(MAGIC) + self._size + len(rec) + extra + DIGEST

    def add(self, partition_key: str, data: bytes, explicit_hash_key: str | None = None) -> None:
        rec, extra = self._encoded_record(partition_key, data, explicit_hash_key)
        if partition_key not in self._pk:
            self._pk[partition_key] = len(self._pk)
        if explicit_hash_key is not None and explicit_hash_key not in self._ehk:
            self._ehk[explicit_hash_key] = len(self._ehk)
        self._records.append(rec)
        self._size += len(rec) + extra
        if self.first_partition_key is None:
            self.first_partition_key = partition_key
            self.first_explicit_hash_key = explicit_hash_key

    def serialize(self) -> bytes:
        body = b"".join(_field(1, k.encode()) for k in self._pk)
        body += b"".join(_field(2, k.encode()) for k in self._ehk)
        body += b"".join(self._records)
        return MAGIC + body + hashlib.md5(body).digest()


def aggregate(records) -> bytes:
    """Aggregate (data, partition_key[, explicit_hash_key]) tuples into one record's bytes."""
    agg = Aggregator()
    for r in records:
        agg.add(r[1], r[0], r[2] if len(r) > 2 else None)
    return agg.serialize()


# -- de-aggregation --------------------------------------------------------------------------------------
class UserRecord(NamedTuple):
    data: bytes
    partition_key: str
    explicit_hash_key: str | None
    sequence_number: str | None
    sub_sequence_number: int | None          # None for a record that was not aggregated
    approximate_arrival_timestamp: object = None
    aggregated: bool = False


def is_aggregated(data: bytes) -> bool:
    """As the KCL decides: the magic, more than 16 bytes after it, and a matching MD5."""
    if len(data) <= len(MAGIC) + DIGEST or not data.startswith(MAGIC):
        return False
    body = data[len(MAGIC):-DIGEST]
    return hashlib.md5(body).digest() == data[-DIGEST:]


def _parse(body: bytes) -> list[tuple[str, str | None, bytes]]:
    pks, ehks, recs = [], [], []
    for number, wire, value in _fields(body):
        if number == 1 and wire == 2:
            pks.append(value.decode())
        elif number == 2 and wire == 2:
            ehks.append(value.decode())
        elif number == 3 and wire == 2:
            pk_i = ehk_i = data = None
            for n2, w2, v2 in _fields(value):
                if n2 == 1 and w2 == 0:
                    pk_i = v2
                elif n2 == 2 and w2 == 0:
                    ehk_i = v2
                elif n2 == 3 and w2 == 2:
                    data = bytes(v2)
            if pk_i is None or data is None:
                raise E.AggregationError("a record lacks its partition_key_index or data")
            recs.append((pk_i, ehk_i, data))
    out = []
    for pk_i, ehk_i, data in recs:
        if pk_i >= len(pks) or (ehk_i is not None and ehk_i >= len(ehks)):
            raise E.AggregationError("a key-table index is out of range")
        out.append((pks[pk_i], ehks[ehk_i] if ehk_i is not None else None, data))
    return out


def deaggregate(records, hash_range: tuple[int, int] | None = None) -> list[UserRecord]:
    """User records from Kinesis records (fastkin Records or boto3 GetRecords dicts).

    Aggregated ones expand into their sub-records (sharing the outer sequence number, with
    sub-sequence numbers 0..n-1); others pass through unchanged, as the KCL does. With
    ``hash_range`` (the shard's inclusive range), sub-records whose hash falls outside it are dropped."""
    out: list[UserRecord] = []
    for r in records:
        data: Any           # bytes, and pk a str: the values of a boto3 dict are untyped
        pk: Any
        if isinstance(r, dict):
            data, pk, seq, ts = r.get("Data"), r.get("PartitionKey"), r.get("SequenceNumber"), \
                r.get("ApproximateArrivalTimestamp")
        else:
            data, pk, seq, ts = r.data, r.partition_key, r.sequence_number, r.approximate_arrival_timestamp
        if data[:4] == MAGIC and is_aggregated(data):
            try:
                subs = _parse(data[len(MAGIC):-DIGEST])
            except (E.AggregationError, UnicodeDecodeError):
                subs = None
            if subs is not None:
                for i, (spk, sehk, sdata) in enumerate(subs):
                    if hash_range is not None:
                        h = int(sehk) if sehk is not None else md5_hash_key(spk)
                        if not hash_range[0] <= h <= hash_range[1]:
                            continue
                    out.append(UserRecord(sdata, spk, sehk, seq, i, ts, True))
                continue
        out.append(UserRecord(data, pk, None, seq, None, ts, False))
    return out

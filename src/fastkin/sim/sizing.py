"""Provisioned shard sizing, as AWS documents it ("Choose the data stream capacity mode", provisioned mode):

    number_of_shards = max(incoming_write_bandwidth_in_KiB / 1024, outgoing_read_bandwidth_in_KiB / 2048)

    incoming_write_bandwidth_in_KiB = average_data_size_in_KiB (rounded up to a whole KiB) x records_per_second
    outgoing_read_bandwidth_in_KiB  = incoming_write_bandwidth_in_KiB x number_of_consumers

rounded up to a whole shard. The arithmetic is exact (fractions), so 2048 KiB/s needs exactly 2 shards.

AWS's formula looks at bandwidth only. A shard also takes at most 1,000 records/s, and with records
rounded up to 1 KiB the formula can ask for fewer shards than the record rate needs (5,100 records/s of
1 KiB: 4.98 -> 5 shards, which take 5,000 records/s): ``records_limit_shards`` reports that figure and
``explain()`` prints a note when it is higher.

>>> shards_needed(record_kib=2.5, records_per_second=1000, consumers=2).number_of_shards
3
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from fractions import Fraction

from ..limits import MAX_RECORD_KIB_DEFAULT as MAX_RECORD_KIB

WRITE_KIB_PER_SHARD = 1024      # 1 MiB/s per shard
READ_KIB_PER_SHARD = 2048       # 2 MiB/s per shard, shared by the consumers that poll it
RECORDS_PER_SHARD = 1000        # records/s per shard


@dataclass(frozen=True)
class ShardEstimate:
    record_kib: float               # the average record size given
    record_kib_rounded: int         # rounded up to a whole KiB, as AWS asks
    records_per_second: float
    consumers: int
    incoming_kib: Fraction          # incoming write bandwidth, KiB/s
    outgoing_kib: Fraction          # outgoing read bandwidth, KiB/s
    write_shards: Fraction          # incoming / 1024
    read_shards: Fraction           # outgoing / 2048
    number_of_shards: int           # max of the two, rounded up (at least 1)
    records_limit_shards: int       # records_per_second / 1000, rounded up (not part of AWS's formula)

    def explain(self) -> str:
        """The inputs and the arithmetic, one step a line."""
        rps = _num(self.records_per_second)
        lines = [
            "inputs:",
            f"  average record size      {_num(self.record_kib)} KiB -> rounded up to {self.record_kib_rounded} KiB",
            f"  records per second       {rps}",
            f"  consumers                {self.consumers}",
            "arithmetic:",
            f"  incoming write bandwidth = {self.record_kib_rounded} KiB x {rps} records/s = "
            f"{_num(self.incoming_kib)} KiB/s",
            f"  outgoing read bandwidth  = {_num(self.incoming_kib)} KiB/s x {self.consumers} "
            f"consumer{'s' if self.consumers != 1 else ''} = {_num(self.outgoing_kib)} KiB/s",
            f"  number_of_shards = max({_num(self.incoming_kib)}/1024, {_num(self.outgoing_kib)}/2048)"
            f" = max({_dec(self.write_shards)}, {_dec(self.read_shards)})"
            f" = {_dec(max(self.write_shards, self.read_shards))}"
            f" -> {self.number_of_shards} shard{'s' if self.number_of_shards != 1 else ''} (rounded up)",
        ]
        if self.records_limit_shards > self.number_of_shards:
            lines.append(
                f"note: {self.number_of_shards} shard{'s take' if self.number_of_shards != 1 else ' takes'} at most "
                f"{self.number_of_shards * RECORDS_PER_SHARD:,} "
                f"records/s (1,000 per shard); {rps} records/s needs {self.records_limit_shards} shards. "
                "AWS's formula counts bandwidth only.")
        return "\n".join(lines)


def shards_needed(record_kib: float, records_per_second: float, consumers: int = 1) -> ShardEstimate:
    """Shards a provisioned stream needs for records of ``record_kib`` KiB on average (data + partition
    key), ``records_per_second`` written and ``consumers`` applications each reading everything."""
    for name, v in (("record_kib", record_kib), ("records_per_second", records_per_second)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    if isinstance(consumers, bool) or not isinstance(consumers, int) or consumers < 1:
        raise ValueError(f"consumers must be a whole number >= 1, got {consumers!r}")
    kib = math.ceil(Fraction(record_kib))
    rps = Fraction(records_per_second)
    incoming = kib * rps
    outgoing = incoming * consumers
    w, r = incoming / WRITE_KIB_PER_SHARD, outgoing / READ_KIB_PER_SHARD
    return ShardEstimate(float(record_kib), kib, float(records_per_second), consumers, incoming, outgoing, w, r,
                         max(1, math.ceil(max(w, r))), max(1, math.ceil(rps / RECORDS_PER_SHARD)))


def _num(v) -> str:
    f = float(v)
    return f"{int(f):,}" if f.is_integer() else f"{f:,.3f}".rstrip("0")


def _dec(v: Fraction) -> str:
    f = float(v)
    return f"{int(f)}" if f.is_integer() else f"{f:.3f}".rstrip("0")


def main(args) -> int:
    """`python -m fastkin shards`: print the inputs and the arithmetic."""
    if not 0 < args.record_kib <= MAX_RECORD_KIB:
        print(f"fastkin shards: --record-kib must be more than 0 and at most {MAX_RECORD_KIB} (a record's maximum "
              f"size on a shard's 1 MiB/s write limit), got {args.record_kib:g}", file=sys.stderr)
        return 2
    try:
        est = shards_needed(args.record_kib, args.records_per_second, args.consumers)
    except ValueError as e:
        print(f"fastkin shards: {e}", file=sys.stderr)
        return 2
    print(est.explain())
    return 0


def add_arguments(p) -> None:
    p.add_argument("--record-kib", type=float, required=True,
                   help="average record size in KiB (data + partition key); rounded up to a whole KiB")
    p.add_argument("--records-per-second", type=float, required=True, help="records written per second")
    p.add_argument("--consumers", type=int, default=1,
                   help="applications reading the whole stream concurrently and independently")

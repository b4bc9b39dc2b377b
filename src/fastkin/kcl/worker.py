"""fastkin.Consumer: the KCL's job in Python — a group of workers sharing a stream's shards through
leases, with checkpoints, failover, parent-before-child order, polling or enhanced fan-out.

    class Printer(fastkin.RecordProcessor):
        def process_records(self, records, checkpointer):
            for r in records: print(r.partition_key, r.data)
            checkpointer.checkpoint()

    worker = fastkin.Consumer(engine_or_boto3_client, "orders", "my-app", Printer)
    worker.start()          # a background thread; worker.shutdown() checkpoints and releases

Each Consumer is one worker. Workers of one application (the same ``application_name`` and lease
store) split the shards between them. Every ``lease_interval`` a worker reads the lease table once and:

1. hands off: for each lease it holds that another worker asked for (``pendingOwner`` set), it stops
   processing the shard (the batch in hand is done: ``process_records`` is synchronous), calls the
   processor's ``shutdown_requested``, then checkpoints the last record it handed over (sub-sequence
   granularity) and transfers the lease to the requester in one conditional write;
2. renews the rest (a renewal bumps the lease's counter: the counter moving is the owner's heartbeat);
3. adopts leases handed to it (``leaseOwner`` is itself) and resumes them after their checkpoint;
4. takes free or expired leases up to its fair share, ceil(leases / workers), where the workers are the
   owners and requesters of unexpired leases plus itself. A lease whose counter has not moved for
   ``failover_time`` on this worker's clock is expired (its owner stopped renewing: a failover); it is
   taken and resumed after its last checkpoint, so records after it are processed again (at-least-once —
   the only case with duplicates);
5. balances: with nothing free or expired, and only once it has watched the table for ``failover_time``
   (so every owner it counts has shown itself alive by renewing, and a dead one's leases would be
   expired), it asks the busiest worker for one lease (``request``: sets ``pendingOwner``, leaves the
   counter alone) if that worker holds more than the fair share or two more than itself. At most one
   request of its own is outstanding. A lease never moves from a live owner without the owner's
   checkpoint; if the owner does not hand off it stops renewing, the lease expires after
   ``failover_time`` and is taken as in 4.

A child shard's lease is created only when all its parents are checkpointed at SHARD_END, and is
processed from TRIM_HORIZON: parents before children.

Records reach ``process_records`` de-aggregated (``fastkin.aggregation.UserRecord``), in sequence
order per shard; ``checkpointer.checkpoint()`` records the last one handed over (sub-sequence
granularity for KPL aggregates); ``checkpointer.checkpoint(seq, sub)`` any earlier position.

Against an Engine on a VirtualClock nothing runs by itself: ``run_once()`` does one round of work
and ``fastkin.consumer.drive(workers, until=..., clock=...)`` alternates rounds and clock steps.
"""
from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

from .. import errors as E
from ..clock import VirtualClock
from ..kpl.aggregation import deaggregate
from ..target import adapt, error_code
from .leases import SHARD_END, LeaseStore, MemoryLeaseStore, new_lease

SENTINELS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", SHARD_END)


class RecordProcessor:
    """Subclass and override what you need (the factory is called once per shard lease)."""

    def initialize(self, shard_id: str, starting_position: tuple[str, int]) -> None:
        pass

    def process_records(self, records: list, checkpointer: Checkpointer) -> None:
        pass

    def lease_lost(self) -> None:
        pass

    def shard_ended(self, checkpointer: Checkpointer) -> None:
        checkpointer.checkpoint()

    def shutdown_requested(self, checkpointer: Checkpointer) -> None:
        pass


@dataclass
class ConsumerMetrics:
    records_processed: int = 0
    batches: int = 0
    get_records_calls: int = 0
    throttled_reads: int = 0
    checkpoints: int = 0
    leases_taken: int = 0
    leases_stolen: int = 0          # leases received from a live worker by graceful handoff
    leases_handed_off: int = 0      # leases this worker checkpointed and gave to a requester
    lease_requests: int = 0         # handoff requests this worker made
    leases_lost: int = 0
    shards_completed: int = 0
    millis_behind_latest: dict = field(default_factory=dict)   # shard id -> last MillisBehindLatest
    rebalance_seconds: list = field(default_factory=list)       # lease expiry noticed -> lease taken

    @property
    def leases_held(self) -> int:
        return len(self.millis_behind_latest)


class Checkpointer:
    def __init__(self, sc: _ShardConsumer) -> None:
        self._sc = sc

    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        """Record progress: by default the last record handed to the processor (SHARD_END at a shard's end)."""
        sc = self._sc
        if sequence_number is None:
            if sc.ended:
                cp, sub = SHARD_END, 0
            elif sc.last_delivered is None:
                return
            else:
                cp, sub = sc.last_delivered
        else:
            cp, sub = sequence_number, sub_sequence_number or 0
        sc.worker._checkpoint(sc, cp, sub)


class _ShardConsumer:
    def __init__(self, worker: Consumer, lease: dict) -> None:
        self.worker = worker
        self.shard_id = lease["leaseKey"]
        self.lease = lease
        self.state = "WAITING"          # WAITING (on parents) -> PROCESSING -> ENDED
        self.processor: RecordProcessor | None = None
        self.iterator: str | None = None
        self.subscription: Iterator[dict] | None = None
        self.skip: tuple[str, int] | None = None            # (seq, sub): skip user records up to here after a resume
        self.last_delivered: tuple[str, int] | None = None  # (seq, sub) of the last user record handed over
        self.ended = False
        self.next_read = 0.0
        self.next_parent_check = 0.0
        self.hash_range = (int(lease["startingHashKey"]), int(lease["endingHashKey"]))
        self.checkpointer = Checkpointer(self)


class Consumer:
    def __init__(self, target, stream_name: str, application_name: str, processor_factory, *,
                 worker_id: str | None = None, lease_store: LeaseStore | None = None,
                 initial_position: str = "TRIM_HORIZON", initial_timestamp=None, retrieval: str = "polling",
                 max_records: int = 10_000, idle_time_between_reads: float = 1.0, min_read_interval: float = 0.2,
                 failover_time: float = 10.0, lease_interval: float | None = None,
                 shard_sync_interval: float = 60.0, background: bool | None = None, sleep=None) -> None:
        self._target, _ = adapt(target, ("get_records", "list_shards"))
        if initial_position not in ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"):
            raise ValueError(f"initial_position must be TRIM_HORIZON, LATEST or AT_TIMESTAMP, got {initial_position!r}")
        if initial_position == "AT_TIMESTAMP" and initial_timestamp is None:
            raise ValueError("initial_position AT_TIMESTAMP needs initial_timestamp")
        if retrieval not in ("polling", "fanout"):
            raise ValueError(f"retrieval must be 'polling' or 'fanout', got {retrieval!r}")
        self.stream_name = stream_name
        self.application_name = application_name
        self.factory = processor_factory
        self.worker_id = worker_id or f"{application_name}-{uuid.uuid4().hex[:12]}"
        self.store = lease_store if lease_store is not None else MemoryLeaseStore.shared(application_name)
        self.initial_position = initial_position
        self.initial_timestamp = initial_timestamp
        self.retrieval = retrieval
        self.max_records = max_records
        self.idle_time = idle_time_between_reads
        self.min_read_interval = min_read_interval
        self.failover_time = failover_time
        self.lease_interval = lease_interval if lease_interval is not None else failover_time / 3
        self.shard_sync_interval = shard_sync_interval
        self._clock = self._target.clock
        virtual = isinstance(self._clock, VirtualClock)
        self.background = (not virtual) if background is None else background
        self._sleep = sleep or time.sleep
        self.metrics = ConsumerMetrics()
        self._shards: dict[str, _ShardConsumer] = {}
        self._seen: dict[str, tuple[int, float]] = {}      # lease key -> (counter, when first seen)
        self._watching_since: float | None = None          # the first lease round: balancing waits failover_time
        self._next_sync = -math.inf
        self._next_lease = -math.inf
        self._stream_arn = None
        self._consumer_arn = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> Consumer:
        if self.background:
            self._thread = threading.Thread(target=self._run, name=f"fastkin-consumer-{self.worker_id}", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.run_once()
                self._stop.wait(0.01 if self._busy() else 0.05)
        except Exception as exc:  # noqa: BLE001 - kept for the caller to see
            self.error = exc

    def _busy(self) -> bool:
        now = self._clock()
        return any(sc.state == "PROCESSING" and sc.next_read <= now for sc in self._shards.values())

    def shutdown(self, graceful: bool = True) -> None:
        """Stop. Graceful: each processor gets shutdown_requested (it may checkpoint), then leases are released."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for sc in list(self._shards.values()):
                if graceful and sc.processor is not None and sc.state == "PROCESSING":
                    try:
                        sc.processor.shutdown_requested(sc.checkpointer)
                    except E.LeaseLostError:
                        pass
                if graceful:
                    self.store.release(sc.shard_id, sc.lease["leaseCounter"], self.worker_id)
                self._drop(sc)

    def kill(self) -> None:
        """Stop at once without releasing anything (what a crash looks like to the other workers)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._shards.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.shutdown()

    @property
    def owned_shards(self) -> list[str]:
        return sorted(self._shards)

    # -- one round of work ---------------------------------------------------------------------------------
    def run_once(self) -> None:
        with self._lock:
            now = self._clock()
            if now >= self._next_sync:
                self._sync_shards()
                self._next_sync = now + self.shard_sync_interval
            if now >= self._next_lease:
                rows = {lease["leaseKey"]: lease for lease in self.store.list()}
                self._renew(now, rows)
                self._take(now, rows)
                self._next_lease = now + self.lease_interval
            for sc in list(self._shards.values()):
                self._step(sc, now)

    # -- shard sync: leases for the shards to process -------------------------------------------------
    def _list_shards(self) -> list[dict]:
        out, kw = [], {"StreamName": self.stream_name}
        while True:
            page = self._target.call("ListShards", **kw)
            out += page["Shards"]
            if not page.get("NextToken"):
                return out
            kw = {"NextToken": page["NextToken"]}

    def _sync_shards(self) -> None:
        shards = self._list_shards()
        by_id = {s["ShardId"]: s for s in shards}
        leases = {lease["leaseKey"]: lease for lease in self.store.list()}
        if not leases:
            # the first worker of the application seeds the roots
            if self.initial_position == "TRIM_HORIZON":
                roots = [s for s in shards if not any(p in by_id for p in _parents(s))]
            elif self.initial_position == "LATEST":
                roots = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
            else:
                ts = self.initial_timestamp
                roots = self._target.call("ListShards", StreamName=self.stream_name,
                                          ShardFilter={"Type": "AT_TIMESTAMP", "Timestamp": ts})["Shards"]
            for s in roots:
                self._create_lease(s, self.initial_position)
            return
        # children whose parents have all ended (or are gone) get a lease from TRIM_HORIZON
        for s in shards:
            if s["ShardId"] in leases:
                continue
            parents = _parents(s)
            if parents and all(p not in by_id or leases.get(p, {}).get("checkpoint") == SHARD_END for p in parents) \
                    and any(p in leases for p in parents):
                self._create_lease(s, "TRIM_HORIZON")

    def _create_lease(self, shard: dict, checkpoint: str) -> None:
        rng = shard["HashKeyRange"]
        self.store.create_if_absent(new_lease(shard["ShardId"], checkpoint, _parents(shard),
                                              int(rng["StartingHashKey"]), int(rng["EndingHashKey"])))

    # -- leases ----------------------------------------------------------------------------------------
    def _renew(self, now: float, rows: dict[str, dict]) -> None:
        for sc in list(self._shards.values()):
            row = rows.get(sc.shard_id)
            to = row.get("pendingOwner") if row is not None and row["leaseOwner"] == self.worker_id else None
            if to is not None and to != self.worker_id:
                self._hand_off(sc, to, rows)
            elif self.store.renew(sc.shard_id, sc.lease["leaseCounter"], self.worker_id):
                sc.lease["leaseCounter"] += 1
                if row is not None:
                    row["leaseCounter"] = sc.lease["leaseCounter"]
            else:
                self._lost(sc)
                rows.pop(sc.shard_id, None)

    def _hand_off(self, sc: _ShardConsumer, to: str, rows: dict[str, dict]) -> None:
        """Graceful handoff: the processor may checkpoint; then checkpoint what was handed over and give the lease."""
        if sc.processor is not None and sc.state == "PROCESSING":
            try:
                sc.processor.shutdown_requested(sc.checkpointer)
            except E.LeaseLostError:
                rows.pop(sc.shard_id, None)
                return
        if sc.last_delivered is not None:
            cp, sub = sc.last_delivered
        else:
            cp, sub = sc.lease["checkpoint"], sc.lease["checkpointSubSequenceNumber"]
        if self.store.handoff(sc.shard_id, sc.lease["leaseCounter"], self.worker_id, to, cp, sub):
            self.metrics.leases_handed_off += 1
            self.metrics.checkpoints += 1
            self._drop(sc)
        else:
            self._lost(sc)
        rows.pop(sc.shard_id, None)             # changed: _take leaves it for the next round

    def _lost(self, sc: _ShardConsumer) -> None:
        self.metrics.leases_lost += 1
        if sc.processor is not None:
            sc.processor.lease_lost()
        self._drop(sc)

    def _drop(self, sc: _ShardConsumer) -> None:
        self._shards.pop(sc.shard_id, None)
        self.metrics.millis_behind_latest.pop(sc.shard_id, None)
        if sc.subscription is not None:
            close = getattr(sc.subscription, "close", None)
            if close is not None:
                close()
            sc.subscription = None

    def _take(self, now: float, rows: dict[str, dict]) -> None:
        if self._watching_since is None:
            self._watching_since = now
        leases = [lease for lease in rows.values() if lease["checkpoint"] != SHARD_END]
        expired: list[tuple[dict, float]] = []
        alive_owner: dict[str, list[dict]] = {}     # worker -> the unexpired leases it holds or was promised
        requested = False                           # a request of ours is outstanding
        for lease in leases:
            key, counter = lease["leaseKey"], lease["leaseCounter"]
            seen = self._seen.get(key)
            if seen is None or seen[0] != counter:
                self._seen[key] = seen = (counter, now)
            owner, pending = lease["leaseOwner"], lease.get("pendingOwner")
            if owner == self.worker_id and key not in self._shards:
                # handed to us (or ours from an earlier life of this worker id): resume after its checkpoint
                if self._try_take(lease, now):
                    self.metrics.leases_stolen += 1
                continue
            if owner is None or (owner != self.worker_id and now - seen[1] >= self.failover_time):
                expired.append((lease, seen[1]))
            else:
                if pending == self.worker_id:
                    requested = True
                alive_owner.setdefault(pending or owner, []).append(lease)
        alive_owner.pop(self.worker_id, None)
        workers = set(alive_owner) | {self.worker_id}
        target = math.ceil(len(leases) / len(workers)) if leases else 0
        mine = len(self._shards) + (1 if requested else 0)
        want = target - mine
        if want <= 0:
            return
        taken = 0
        for lease, since in sorted(expired, key=lambda x: x[0]["leaseKey"]):
            if taken >= want:
                break
            if self._try_take(lease, now):
                taken += 1
                self.metrics.leases_taken += 1
                if lease["leaseOwner"] is not None:
                    self.metrics.rebalance_seconds.append(now - since - self.failover_time)
        if taken == 0 and not expired and not requested and now - self._watching_since >= self.failover_time:
            others = alive_owner
            if others:
                busiest = max(others, key=lambda w: (len(others[w]), w))
                if len(others[busiest]) > target or (len(others[busiest]) > mine + 1):
                    # ask for a lease the busiest worker holds and nobody asked for yet
                    free = [x for x in others[busiest] if x.get("pendingOwner") is None]
                    if free:
                        victim = sorted(free, key=lambda x: x["leaseKey"])[-1]
                        if self.store.request(victim["leaseKey"], victim["leaseCounter"], victim["leaseOwner"],
                                              self.worker_id):
                            self.metrics.lease_requests += 1

    def _try_take(self, lease: dict, now: float) -> bool:
        if not self.store.take(lease["leaseKey"], lease["leaseCounter"], self.worker_id):
            return False
        lease = dict(lease, leaseOwner=self.worker_id, leaseCounter=lease["leaseCounter"] + 1)
        self._seen[lease["leaseKey"]] = (lease["leaseCounter"], now)
        self._shards[lease["leaseKey"]] = _ShardConsumer(self, lease)
        return True

    def _checkpoint(self, sc: _ShardConsumer, cp: str, sub: int) -> None:
        if not self.store.checkpoint(sc.shard_id, sc.lease["leaseCounter"], self.worker_id, cp, sub):
            self._lost(sc)
            raise E.LeaseLostError(f"lease {sc.shard_id} is no longer held by {self.worker_id}")
        sc.lease["leaseCounter"] += 1
        sc.lease["checkpoint"] = cp
        sc.lease["checkpointSubSequenceNumber"] = sub
        self.metrics.checkpoints += 1

    # -- processing one shard ----------------------------------------------------------------------------
    def _parents_done(self, sc: _ShardConsumer) -> bool:
        for p in sc.lease["parentShardIds"]:
            pl = self.store.get(p)
            if pl is not None and pl["checkpoint"] != SHARD_END:
                return False
        return True

    def _step(self, sc: _ShardConsumer, now: float) -> None:
        if sc.state == "WAITING":
            if now < sc.next_parent_check:
                return
            if not self._parents_done(sc):
                sc.next_parent_check = now + min(1.0, self.lease_interval)
                return
            self._initialize(sc)
        if sc.state == "PROCESSING" and now >= sc.next_read:
            try:
                if self.retrieval == "polling":
                    self._poll(sc, now)
                else:
                    self._fanout(sc, now)
            except E.LeaseLostError:
                return
        if sc.state == "ENDED":
            self._finish(sc)

    def _initialize(self, sc: _ShardConsumer) -> None:
        cp, sub = sc.lease["checkpoint"], sc.lease["checkpointSubSequenceNumber"]
        processor = self.factory() if not isinstance(self.factory, type) else self.factory()
        sc.processor = processor
        processor.initialize(sc.shard_id, (cp, sub))
        if cp not in SENTINELS:
            sc.skip = (cp, sub)
        sc.state = "PROCESSING"
        self.metrics.millis_behind_latest[sc.shard_id] = None

    def _iterator_args(self, sc: _ShardConsumer) -> dict:
        if sc.last_delivered is not None:
            return {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": sc.last_delivered[0]}
        cp = sc.lease["checkpoint"]
        if cp in ("TRIM_HORIZON", "LATEST"):
            return {"ShardIteratorType": cp}
        if cp == "AT_TIMESTAMP":
            return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": self.initial_timestamp}
        return {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": cp}

    def _deliver(self, sc: _ShardConsumer, raw: list, behind) -> None:
        users = deaggregate(raw, sc.hash_range)
        mark = sc.last_delivered or sc.skip         # None when both are (a set one is a non-empty tuple)
        if mark is not None:
            users = [u for u in users if _after(u, mark)]
        self.metrics.millis_behind_latest[sc.shard_id] = behind
        if not users:
            return
        # records read from a shard always carry a sequence number (UserRecord allows None for foreign dicts)
        sc.last_delivered = (cast(str, users[-1].sequence_number), users[-1].sub_sequence_number or 0)
        self.metrics.records_processed += len(users)
        self.metrics.batches += 1
        assert sc.processor is not None                     # PROCESSING: _initialize made it
        sc.processor.process_records(users, sc.checkpointer)

    def _poll(self, sc: _ShardConsumer, now: float) -> None:
        t = self._target
        if sc.iterator is None:
            sc.iterator = t.call("GetShardIterator", StreamName=self.stream_name, ShardId=sc.shard_id,
                                 **self._iterator_args(sc))["ShardIterator"]
        try:
            self.metrics.get_records_calls += 1
            out = t.call("GetRecords", ShardIterator=sc.iterator, Limit=self.max_records)
        except Exception as exc:
            code = error_code(exc)
            if code == "ProvisionedThroughputExceededException":
                self.metrics.throttled_reads += 1
                sc.next_read = now + max(self.min_read_interval, 0.5)
                return
            if code == "ExpiredIteratorException":
                sc.iterator = None
                return
            raise
        self._deliver(sc, out["Records"], out.get("MillisBehindLatest"))
        sc.iterator = out.get("NextShardIterator")
        if sc.iterator is None:
            sc.state = "ENDED"
            return
        caught_up = not out["Records"] or out.get("MillisBehindLatest", 0) == 0
        sc.next_read = now + (self.idle_time if caught_up else self.min_read_interval)

    def _fanout(self, sc: _ShardConsumer, now: float) -> None:
        t = self._target
        if self._consumer_arn is None:
            self._register()
        if sc.subscription is None:
            args = self._iterator_args(sc)
            pos = {"Type": args["ShardIteratorType"]}
            if "StartingSequenceNumber" in args:
                pos["SequenceNumber"] = args["StartingSequenceNumber"]
            if "Timestamp" in args:
                pos["Timestamp"] = args["Timestamp"]
            try:
                sc.subscription = iter(t.call("SubscribeToShard", ConsumerARN=self._consumer_arn, ShardId=sc.shard_id,
                                              StartingPosition=pos)["EventStream"])
            except Exception as exc:
                if error_code(exc) in ("ResourceInUseException", "LimitExceededException"):
                    sc.next_read = now + 1.0
                    return
                raise
        try:
            event = next(sc.subscription)
        except StopIteration:                   # the 5-minute subscription ended: resubscribe
            sc.subscription = None
            return
        ev = event.get("SubscribeToShardEvent")
        if ev is None:
            return
        self._deliver(sc, ev.get("Records", []), ev.get("MillisBehindLatest"))
        if ev.get("ContinuationSequenceNumber") is None and ev.get("ChildShards"):
            sc.state = "ENDED"
            sc.subscription = None
            return
        if not ev.get("Records"):
            sc.next_read = now + self.min_read_interval

    def _register(self) -> None:
        t = self._target
        summ = t.call("DescribeStreamSummary", StreamName=self.stream_name)["StreamDescriptionSummary"]
        self._stream_arn = summ["StreamARN"]
        try:
            c = t.call("RegisterStreamConsumer", StreamARN=self._stream_arn,
                       ConsumerName=self.application_name)["Consumer"]
        except Exception as exc:
            if error_code(exc) != "ResourceInUseException":
                raise
            c = t.call("DescribeStreamConsumer", StreamARN=self._stream_arn,
                       ConsumerName=self.application_name)["ConsumerDescription"]
        while c["ConsumerStatus"] != "ACTIVE":
            self._sleep(0.05)
            c = t.call("DescribeStreamConsumer", ConsumerARN=c["ConsumerARN"])["ConsumerDescription"]
        self._consumer_arn = c["ConsumerARN"]

    def _finish(self, sc: _ShardConsumer) -> None:
        sc.ended = True
        assert sc.processor is not None                     # ENDED after PROCESSING: _initialize made it
        try:
            sc.processor.shard_ended(sc.checkpointer)
        except E.LeaseLostError:
            return
        if sc.lease["checkpoint"] != SHARD_END:
            self._drop(sc)
            self.store.release(sc.shard_id, sc.lease["leaseCounter"], self.worker_id)
            raise E.ShardEndNotCheckpointedError(
                f"the processor of {sc.shard_id} did not checkpoint at SHARD_END in shard_ended()")
        self.metrics.shards_completed += 1
        self.store.release(sc.shard_id, sc.lease["leaseCounter"], self.worker_id)
        self._drop(sc)
        self._sync_shards()                     # children of this shard may be ready now


def _parents(shard: dict) -> list[str]:
    return [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]


def _after(u, mark: tuple[str, int]) -> bool:
    seq, sub = int(u.sequence_number), u.sub_sequence_number or 0
    mseq, msub = int(mark[0]), mark[1]
    return seq > mseq or (seq == mseq and u.sub_sequence_number is not None and sub > msub)


def drive(workers, until, clock: VirtualClock, step: float = 0.1, max_seconds: float = 3600.0) -> float:
    """Run workers on a virtual clock: a round of each, then ``step`` seconds, until ``until()`` is true.
    Returns the engine-seconds it took; raises TimeoutError after ``max_seconds`` of engine time."""
    start = clock()
    while not until():
        for w in workers:
            if not w._stop.is_set():
                w.run_once()
        if clock() - start > max_seconds:
            raise TimeoutError(f"not done after {max_seconds} engine-seconds")
        clock.advance(step)
    return clock() - start

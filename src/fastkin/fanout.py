"""Enhanced fan-out: registered stream consumers and SubscribeToShard subscriptions.

A ``StreamConsumer`` (a registered consumer; not the KCL worker, which is ``fastkin.kcl.Consumer``) is
CREATING for ``latency`` engine-seconds after registration, then ACTIVE. Its ARN is
``<stream ARN>/consumer/<name>:<creation epoch seconds>``, so re-registering a name gives a new ARN.

A ``Subscription`` is what SubscribeToShard returns: an iterable of ``{"SubscribeToShardEvent": {...}}``
dicts (the shape botocore's EventStream yields), ending after 5 minutes of engine time, after the
event that carries a closed shard's ChildShards, or when the consumer is deregistered / replaced.
Each consumer gets 2 MiB/s per shard (a token bucket on the engine clock, charged after each read).

``poll()`` never blocks (the HTTP server drives it from its event loop); iterating blocks for up to
``idle_wait`` real seconds waiting for records when the engine runs on the real clock, and never
when it runs on a virtual clock.

Reads go through GetRecords with quota=False: they do not use the shard's shared read quota (5 calls/s,
2 MiB/s), so each consumer's pipe is dedicated as on AWS. No read is made while the subscription is at the
tip of an open shard.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import math
import threading
import time

from . import errors as E
from .clock import RealClock
from .stream import records_dicts

SUBSCRIPTION_SECONDS = 300.0
EFO_BYTES_PER_SECOND = 2 * 1024 * 1024
RESUBSCRIBE_SECONDS = 5.0


class StreamConsumer:
    """A registered enhanced fan-out consumer of one stream: its ARN, state, tags, policy and subscriptions."""

    def __init__(self, stream, name: str, now: float, latency: float, tags: dict) -> None:
        self.stream = stream
        self.name = name
        self.created = now
        self.ready_at = now + latency
        self.arn = f"{stream.arn}/consumer/{name}:{math.floor(now)}"
        self.tags = dict(tags)
        self.policy: str | None = None
        self._subs: dict[int, Subscription] = {}
        self._lock = threading.Lock()

    def status_at(self, now: float) -> str:
        return "ACTIVE" if now >= self.ready_at else "CREATING"

    def summary(self, now: float) -> dict:
        return {"ConsumerName": self.name, "ConsumerARN": self.arn, "ConsumerStatus": self.status_at(now),
                "ConsumerCreationTimestamp": _dt.datetime.fromtimestamp(self.created, _dt.timezone.utc)}

    def check_attach(self, shard: int, now: float) -> None:
        """The error attach would raise now (another subscription to the shard younger than 5 s), changing nothing."""
        with self._lock:
            old = self._subs.get(shard)
            if old is not None and not old.finished and now - old.started < RESUBSCRIBE_SECONDS:
                raise E.ResourceInUseException(
                    f"Another active subscription exists for consumer {self.arn} and shard "
                    f"{E.shard_name(shard)}. Try again after {RESUBSCRIBE_SECONDS:g} seconds.")

    def attach(self, sub: Subscription, shard: int, now: float) -> None:
        with self._lock:
            old = self._subs.get(shard)
            if old is not None and not old.finished:
                if now - old.started < RESUBSCRIBE_SECONDS:
                    raise E.ResourceInUseException(
                        f"Another active subscription exists for consumer {self.arn} and shard "
                        f"{E.shard_name(shard)}. Try again after {RESUBSCRIBE_SECONDS:g} seconds.")
                old.close()
            self._subs[shard] = sub

    def close_subscriptions(self) -> None:
        with self._lock:
            for s in self._subs.values():
                s.close()
            self._subs.clear()


class Subscription:
    """The event stream of one SubscribeToShard call."""

    idle_wait = 1.0     # real seconds a blocking iteration waits for records before an empty event

    def __init__(self, engine, stream, consumer: StreamConsumer, shard: int, iterator: str, now: float) -> None:
        self.engine = engine
        self.stream = stream
        self.consumer = consumer
        self.shard = shard
        self.started = now
        self.ends_at = now + SUBSCRIPTION_SECONDS
        self._iterator: str | None = iterator
        self._budget = float(EFO_BYTES_PER_SECOND)
        self._budget_t = now
        self._behind = 0
        self.finished = False
        self._last_seq = self._initial_continuation(iterator, now)

    # -- botocore EventStream look-alike ------------------------------------------------------
    def get_initial_response(self) -> dict:
        return {}

    def close(self) -> None:
        self.finished = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        deadline = self._deadline()
        while True:
            ev = self.poll()
            if ev is None:
                raise StopIteration
            if self._deliverable(ev, deadline):
                return ev
            time.sleep(0.01)

    def _deadline(self) -> float | None:
        """When an iteration stops waiting for records: None on a virtual clock (it never waits)."""
        return time.monotonic() + self.idle_wait if isinstance(self.engine.clock, RealClock) else None

    @staticmethod
    def _deliverable(ev: dict, deadline: float | None) -> bool:
        """An event an iteration hands over now: records, the shard's end, a virtual clock, or waited enough."""
        body = ev["SubscribeToShardEvent"]
        return bool(body["Records"]) or "ChildShards" in body or deadline is None or time.monotonic() >= deadline

    def aio(self) -> AioSubscription:
        """This subscription as aiobotocore's event stream looks: ``async for`` / ``async with``."""
        return AioSubscription(self)

    # -- core ----------------------------------------------------------------------------------
    def _initial_continuation(self, iterator: str, now: float) -> str:
        _, shard_id, pos = self.engine.decode_shard_iterator(iterator)
        core = self.stream.core
        if pos > core.shard_horizon(self.shard) and pos - 1 < core.shard_end(self.shard):
            return self.stream.sequence_number_at(shard_id, pos - 1)
        return self.stream.starting_sequence_number(shard_id)

    def _may_have_records(self, now: float) -> bool:
        """False when the iterator is at the tip of an open shard: then no read is made (and no read quota used)."""
        info = self.stream._shards.get(self.shard)
        if info is None or info.closed_at is not None:
            return True
        try:
            _, _, pos = self.engine.decode_shard_iterator(self._iterator)
        except E.FastkinError:
            return True
        return pos < self.stream.core.shard_end(self.shard)

    def poll(self) -> dict | None:
        """The next event, or None when the subscription has ended. Never blocks."""
        if self.finished:
            return None
        now = self.stream.now()
        if now >= self.ends_at or self._iterator is None:
            self.finished = True
            return None
        if now > self._budget_t:
            self._budget = min(float(EFO_BYTES_PER_SECOND),
                               self._budget + EFO_BYTES_PER_SECOND * (now - self._budget_t))
            self._budget_t = now
        records = []
        children = None
        if self._budget > 0 and self._may_have_records(now):
            try:
                res = self.engine.get_records(self._iterator, 10_000, quota=False)   # the consumer's own pipe
            except E.ProvisionedThroughputExceededException:
                res = None
            except (E.ResourceNotFoundException, E.ExpiredIteratorException):
                self.finished = True
                return None
            if res is not None:
                nbytes = 0
                for r in res.records:
                    nbytes += len(r.data) + len(r.partition_key.encode())
                self._budget -= nbytes
                records = res.records
                self._behind = res.millis_behind_latest
                self._iterator = res.next_shard_iterator
                if records:
                    self._last_seq = records[-1].sequence_number
                if res.next_shard_iterator is None:
                    children = res.child_shards
        body = {
            "Records": records_dicts(records),
            "MillisBehindLatest": self._behind,
        }
        if children is not None:
            body["ChildShards"] = children     # shard end: no ContinuationSequenceNumber
            self.finished = True
        else:
            body["ContinuationSequenceNumber"] = self._last_seq
        return {"SubscribeToShardEvent": body}


class AioSubscription:
    """A Subscription as aiobotocore's AioEventStream: ``async for event in stream`` (and ``async with``).

    It never blocks the event loop: on the real clock it waits for records (up to ``idle_wait`` seconds before
    an empty event, as the blocking iteration does) with ``await asyncio.sleep``; on a virtual clock each
    event comes at once."""

    def __init__(self, sub: Subscription) -> None:
        self.subscription = sub

    async def get_initial_response(self) -> dict:
        return {}

    def close(self) -> None:
        self.subscription.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        sub = self.subscription
        deadline = sub._deadline()
        while True:
            ev = sub.poll()
            if ev is None:
                raise StopAsyncIteration
            if sub._deliverable(ev, deadline):
                return ev
            await asyncio.sleep(0.01)

"""fastkin.Producer: the KPL's job in Python, against an Engine, a Stream, or any boto3 Kinesis client.

    with fastkin.Producer(target, "orders") as p:
        fut = p.put(b"payload", "user-17")          # a concurrent.futures.Future
        fut.result().sequence_number

What it does:
- batching: records are grouped into PutRecords calls of up to 500 records / ``max_request_bytes``,
  sent when full or when the oldest record has waited ``linger`` seconds (or on flush);
- per-shard rate limiting: it keeps the shard map (ListShards, AT_LATEST) and token buckets at
  ``rate_limit`` x each shard's write limit (1 MiB/s, 1,000 records/s), so it is rarely throttled;
  the map is refreshed periodically and whenever a record lands on an unexpected shard;
- retries: throttled or internally failed records are retried with exponential backoff and full
  jitter until ``record_ttl``; then their future fails with the last error. Nothing is dropped
  silently: every future resolves;
- ``ordered=True`` keeps the order of records with the same partition key: at most one request in
  flight per shard and at most one record (or aggregate) per partition key in a request, so a
  retried record can never be overtaken by a later one of its key;
- ``aggregate=True`` packs user records bound for the same shard into KPL aggregated records
  (``fastkin.aggregation``), each sent with an ExplicitHashKey inside the target shard;
- backpressure: at most ``max_buffered_records`` unresolved records; ``on_full="block"`` waits,
  ``"raise"`` raises BufferFullError.

Time: against an Engine on a VirtualClock the producer runs in the caller's thread (``poll()`` /
``flush()``) and its waits advance the virtual clock; otherwise a background thread sends, with up to
``max_in_flight`` requests at once.
"""
from __future__ import annotations

import bisect
import collections
import heapq
import itertools
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

from .. import errors as E
from .._common import parse_hash_key
from .._core import core as _selected_core
from ..clock import VirtualClock
from ..limits import MiB
from ..target import adapt, error_code
from .aggregation import AGGREGATED_PARTITION_KEY, Aggregator

_md5_int = _selected_core.md5_hash_key   # MD5 through the selected core (compiled: ~3x faster than hashlib)

RETRYABLE = {"ProvisionedThroughputExceededException", "InternalFailure", "InternalFailureException",
             "ServiceUnavailable", "ThrottlingException", "LimitExceededException", "KMSThrottlingException",
             "RequestTimeout", "RequestTimeoutException", "SlowDown"}


class _DrivingFuture(Future):
    """A manual-mode future: waiting on it drives the producer (there is no thread to do it)."""

    def __init__(self, producer: Producer) -> None:
        super().__init__()
        self._producer = producer

    def result(self, timeout=None):
        if not self.done():
            self._producer._drive(self)
        return super().result(timeout)

    def exception(self, timeout=None):
        if not self.done():
            self._producer._drive(self)
        return super().exception(timeout)


class ProducerResult(NamedTuple):
    shard_id: str
    sequence_number: str
    sub_sequence_number: int | None = None
    attempts: int = 1


@dataclass
class ProducerMetrics:
    user_records: int = 0          # put() calls accepted
    records_sent: int = 0          # user records that reached the stream
    bytes_sent: int = 0            # their data + key bytes
    kinesis_records_sent: int = 0  # records on the wire (aggregates count once)
    requests: int = 0
    retried: int = 0               # user-record retries scheduled
    throttled: int = 0             # user records throttled (per attempt)
    failed: int = 0                # user records whose future failed
    request_seconds: float = 0.0   # total PutRecords latency (target clock)
    max_request_seconds: float = 0.0
    buffered: int = 0              # unresolved user records now

    @property
    def mean_request_seconds(self) -> float:
        return self.request_seconds / self.requests if self.requests else 0.0


@dataclass(eq=False, slots=True)
class _Item:
    data: bytes
    key: str
    ehk: str | None
    hash: int
    size: int
    future: Future
    deadline: float
    order: int
    enqueued: float = 0.0
    attempts: int = 0
    last_error: BaseException | None = None
    shard: str | None = None


@dataclass
class _Bucket:
    bytes: float
    records: float
    t: float


def _retryable(exc: BaseException) -> bool:
    code = error_code(exc)
    if code is not None:
        return code in RETRYABLE
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError, HTTPClientError
    except ImportError:  # pragma: no cover
        return isinstance(exc, (ConnectionError, TimeoutError))
    return isinstance(exc, (ConnectionError, TimeoutError, BotoConnectionError, HTTPClientError))


# -- the producer --------------------------------------------------------------------------------------------
class Producer:
    def __init__(self, target, stream_name: str | None = None, *, linger: float = 0.1,
                 max_records_per_request: int = 500, max_request_bytes: int = 5 * MiB, max_in_flight: int = 4,
                 rate_limit: float = 1.0, record_ttl: float = 30.0, max_buffered_records: int = 100_000,
                 on_full: str = "block", aggregate: bool = False, aggregation_max_size: int = 51_200,
                 ordered: bool = False, retry_base: float = 0.1, retry_max: float = 5.0,
                 shard_map_refresh: float = 60.0, background: bool | None = None, sleep=None,
                 seed: int | None = None, limits=None) -> None:
        self._target, own_name = adapt(target, ("put_records", "list_shards"))
        stream_name = stream_name or own_name
        if stream_name is None:
            raise ValueError("stream_name is required")
        if on_full not in ("block", "raise"):
            raise ValueError(f"on_full must be 'block' or 'raise', got {on_full!r}")
        if not 1 <= max_records_per_request <= 500:
            raise ValueError("max_records_per_request must be between 1 and 500")
        self.stream_name = stream_name
        self._clock = self._target.clock
        virtual = isinstance(self._clock, VirtualClock)
        self.background = (not virtual) if background is None else background
        self._sleep = sleep or (self._clock.advance if isinstance(self._clock, VirtualClock) and not self.background
                                else time.sleep)
        self.linger = linger
        self.max_records = max_records_per_request
        self.max_bytes = max_request_bytes
        self.max_in_flight = max_in_flight if not ordered else max(1, max_in_flight)
        self.record_ttl = record_ttl
        self.max_buffered = max_buffered_records
        self.on_full = on_full
        self.aggregate = aggregate
        self.aggregation_max_size = aggregation_max_size
        self.ordered = ordered
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.shard_map_refresh = shard_map_refresh
        lim = limits or self._target.limits     # the shard limits to stay under (an engine's own by default)
        if limits is None and not self._target.quotas:
            rate_limit = float("inf")           # an engine with quotas off: nothing to stay under
        self._rate_bytes = rate_limit * lim.write_bytes_per_second
        self._rate_records = rate_limit * lim.write_records_per_second
        self._rng = random.Random(seed)
        self.metrics = ProducerMetrics()
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._queues: dict[str, collections.deque[_Item]] = {}
        self._retries: list[tuple[float, int, _Item]] = []
        self._buckets: dict[str, _Bucket] = {}
        self._busy_shards: set[str] = set()
        self._hold: dict[str, float] = {}        # ordered mode: shard -> no sends before this time
        self._in_flight = 0
        self._pending = 0                       # unresolved futures
        self._order = itertools.count()
        self._flush_requested = 0
        self._closed = False
        self._map: list[tuple[int, int, str]] = []
        self._starts: list[int] = []
        self._map_time = -float("inf")
        self._map_stale = True
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        if self.background:
            self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="fastkin-producer-send")
            self._thread = threading.Thread(target=self._run, name="fastkin-producer", daemon=True)
            self._thread.start()

    # -- public API ---------------------------------------------------------------------------------------
    def put(self, data, partition_key: str, explicit_hash_key: str | None = None, callback=None) -> Future:
        """Queue one record; returns a Future resolving to a ProducerResult (or failing with the final error)."""
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, bytes):
            data = bytes(memoryview(data))
        if not isinstance(partition_key, str) or not 1 <= len(partition_key) <= 256:
            raise E.bad_partition_key(None, partition_key)
        h = _parse_ehk(explicit_hash_key) if explicit_hash_key is not None else _md5_int(partition_key)
        size = len(data) + len(partition_key.encode())
        fut: Future = Future() if self.background else _DrivingFuture(self)
        if callback is not None:
            fut.add_done_callback(callback)
        with self._cond:
            if self._closed:
                raise E.ProducerClosedError("the producer is closed")
            while self._pending >= self.max_buffered:
                if self.on_full == "raise":
                    raise E.BufferFullError(
                        f"{self._pending} records are buffered (max_buffered_records={self.max_buffered})")
                if self.background:
                    self._cond.wait(0.05)
                else:
                    self._pump_once(block=True)
            now = self._clock()
            item = _Item(data, partition_key, explicit_hash_key, h, size, fut, now + self.record_ttl,
                         next(self._order), now)
            self._pending += 1
            self.metrics.user_records += 1
            self.metrics.buffered = self._pending
            self._enqueue(item, now)
            if self.background:
                self._cond.notify_all()
        return fut

    def flush(self, timeout: float | None = None) -> None:
        """Send everything buffered and wait until every future has resolved."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_requested += 1
            try:
                while self._pending:
                    if self.background:
                        self._cond.notify_all()
                        self._cond.wait(0.05)
                    else:
                        self._pump_once(block=True)
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"{self._pending} records still unresolved after {timeout} s")
            finally:
                self._flush_requested -= 1

    def _drive(self, fut: Future) -> None:
        with self._cond:
            self._flush_requested += 1
            try:
                while not fut.done():
                    self._pump_once(block=True)
            finally:
                self._flush_requested -= 1

    def poll(self) -> int:
        """Manual mode: send whatever is ready now, without waiting; returns requests sent."""
        with self._cond:
            n = 0
            while self._pump_once(block=False):
                n += 1
            return n

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            assert self._pool is not None               # made with the thread
            self._pool.shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def buffered(self) -> int:
        return self._pending

    # -- shard map ------------------------------------------------------------------------------------------
    def _refresh_map(self, now: float) -> None:
        self._map = self._target.open_shards(self.stream_name)
        self._starts = [s for s, _, _ in self._map]
        self._map_time = now
        self._map_stale = False
        queued = [it for q in self._queues.values() for it in q]
        self._queues = {}
        for it in sorted(queued, key=lambda i: i.order):
            self._route(it)
        for sid in list(self._buckets):
            if sid not in {x[2] for x in self._map}:
                del self._buckets[sid]

    def _route(self, item: _Item) -> None:
        i = bisect.bisect_right(self._starts, item.hash) - 1
        sid = self._map[i][2] if i >= 0 else self._map[0][2]
        item.shard = sid
        q = self._queues.get(sid)
        if q is None:
            q = self._queues[sid] = collections.deque()
        q.append(item)

    def _enqueue(self, item: _Item, now: float) -> None:
        if self._map_stale or now - self._map_time >= self.shard_map_refresh or not self._map:
            try:
                self._refresh_map(now)
            except Exception as exc:  # the stream is gone or unreachable: the record fails or waits
                if _retryable(exc):
                    self._schedule_retry(item, now, exc)
                else:
                    self._fail(item, exc)
                return
        self._route(item)

    # -- scheduling -----------------------------------------------------------------------------------------
    def _bucket(self, sid: str, now: float) -> _Bucket:
        b = self._buckets.get(sid)
        if b is None:
            b = self._buckets[sid] = _Bucket(self._rate_bytes, self._rate_records, now)
        elif now > b.t:
            dt = now - b.t
            b.bytes = min(self._rate_bytes, b.bytes + self._rate_bytes * dt)
            b.records = min(self._rate_records, b.records + self._rate_records * dt)
            b.t = now
        return b

    def _release_retries(self, now: float) -> None:
        ready = []
        while self._retries and self._retries[0][0] <= now:
            ready.append(heapq.heappop(self._retries)[2])
        if not ready:
            return
        if self._map_stale or now - self._map_time >= self.shard_map_refresh:
            try:
                self._refresh_map(now)
            except Exception as exc:
                for it in ready:
                    self._schedule_retry(it, now, exc) if _retryable(exc) else self._fail(it, exc)
                return
        # retried records go back in front of their shard's queue, oldest first
        by_shard: dict[str, list[_Item]] = {}
        for it in ready:
            i = bisect.bisect_right(self._starts, it.hash) - 1
            it.shard = self._map[max(i, 0)][2]
            by_shard.setdefault(it.shard, []).append(it)
        for sid, items in by_shard.items():
            q = self._queues.setdefault(sid, collections.deque())
            merged = sorted(list(q) + items, key=lambda x: x.order) if self.ordered else items + list(q)
            self._queues[sid] = collections.deque(merged)

    def _take(self, now: float):
        """Build one request from the queues within the rate limits; returns (wire, groups, wait)."""
        self._release_retries(now)
        wire: list[tuple] = []
        groups: list[tuple[str, list[_Item], int]] = []
        nbytes = 0
        wait = None
        oldest = None
        full = False
        for sid, q in list(self._queues.items()):
            if not q:
                continue
            if self.ordered and sid in self._busy_shards:
                continue
            hold = self._hold.get(sid)
            if hold is not None:
                if hold > now:
                    wait = hold - now if wait is None else min(wait, hold - now)
                    continue
                del self._hold[sid]
            b = self._bucket(sid, now)
            keys_in_request: set[str] = set()
            while q and len(wire) < self.max_records:
                if self.aggregate:
                    agg = Aggregator()
                    members: list[_Item] = []
                    for it in q:
                        if self.ordered and it.key in keys_in_request:
                            break
                        if members and agg.size_with(it.key, it.data, it.ehk) > self.aggregation_max_size:
                            break
                        agg.add(it.key, it.data, it.ehk)     # one aggregate keeps its records' order
                        members.append(it)
                    if not members:
                        break
                    if len(members) == 1:
                        it = members[0]
                        rec, size = (it.data, it.key, it.ehk), it.size
                    else:
                        payload = agg.serialize()
                        rec = (payload, AGGREGATED_PARTITION_KEY, str(members[0].hash))
                        size = len(payload) + len(AGGREGATED_PARTITION_KEY)
                else:
                    it = q[0]
                    if self.ordered and it.key in keys_in_request:
                        break
                    members, rec, size = [it], (it.data, it.key, it.ehk), it.size
                if nbytes + size > self.max_bytes and wire:
                    full = True
                    break
                need = min(size, self._rate_bytes)
                if b.records < 1.0 or b.bytes < need:
                    # NOTE: wait for a useful amount of capacity (up to 50 ms, or linger if shorter),
                    # not for one record's worth: that sent ~4 records a request and 4x the calls.
                    short = max((1.0 - b.records) / self._rate_records, (need - b.bytes) / self._rate_bytes, 0.05)
                    wait = short if wait is None else min(wait, short)
                    break
                b.records -= 1.0
                b.bytes -= size
                for _ in members:
                    q.popleft()
                    keys_in_request.add(_.key)
                wire.append(rec)
                groups.append((sid, members, size))
                nbytes += size
                for m in members:
                    oldest = m.enqueued if oldest is None else min(oldest, m.enqueued)
            if len(wire) >= self.max_records:
                full = True
                break
        return wire, groups, wait, oldest, full

    def _give_back(self, groups, now: float) -> None:
        """Undo a request that was built but not sent (linger not reached): items and tokens go back."""
        for sid, members, size in reversed(groups):
            q = self._queues.setdefault(sid, collections.deque())
            for m in reversed(members):
                q.appendleft(m)
            b = self._bucket(sid, now)
            b.records = min(self._rate_records, b.records + 1.0)
            b.bytes = min(self._rate_bytes, b.bytes + size)

    def _next_request(self, now: float):
        """(wire, groups) ready to send now, or (None, seconds to wait or None)."""
        if self._in_flight >= self.max_in_flight:
            return None, None
        wire, groups, wait, oldest, full = self._take(now)
        if wire:
            if full or self._flush_requested or self._closed or now - oldest >= self.linger:
                return (wire, groups), None
            self._give_back(groups, now)
            wait = self.linger - (now - oldest) if wait is None else min(wait, self.linger - (now - oldest))
        if self._retries:
            t = self._retries[0][0] - now
            wait = t if wait is None else min(wait, t)
        if wait is None and any(self._queues.values()):
            wait = self.linger
        return None, wait

    # -- sending --------------------------------------------------------------------------------------------
    def _pump_once(self, block: bool) -> bool:
        """Manual mode: send one request if one is ready; otherwise sleep (advancing a virtual clock) if blocking."""
        now = self._clock()
        req, wait = self._next_request(now)
        if req is not None:
            self._begin(req)
            self._send(req, now)
            return True
        if block and self._pending:
            self._sleep(max(wait if wait is not None else self.linger, 1e-3))
        return False

    def _begin(self, req) -> None:
        self._in_flight += 1
        if self.ordered:
            for sid, _, _ in req[1]:
                self._busy_shards.add(sid)

    def _send(self, req, sent_at: float) -> None:
        wire, groups = req
        exc = results = None
        self._lock.release() if self.background else None
        interrupted = False
        t0 = self._clock()
        try:
            results = self._target.put_records(self.stream_name, wire)
        except Exception as e:  # noqa: BLE001 - every failure must reach the futures
            exc = e
        except BaseException:
            interrupted = True      # Ctrl-C / SystemExit propagate; the request's records stay buffered
            raise
        finally:
            if self.background:
                self._lock.acquire()
            if interrupted:
                self._requeue(groups)
        now = self._clock()
        self._in_flight -= 1
        if self.ordered:
            for sid, _, _ in groups:
                self._busy_shards.discard(sid)
        m = self.metrics
        m.requests += 1
        lat = max(0.0, now - t0)
        m.request_seconds += lat
        m.max_request_seconds = max(m.max_request_seconds, lat)
        if exc is not None:
            for _, members, _ in groups:
                for it in members:
                    if _retryable(exc):
                        self._schedule_retry(it, now, exc)
                    else:
                        self._fail(it, exc)
            if error_code(exc) in ("ResourceNotFoundException",):
                self._map_stale = True
        else:
            assert results is not None                  # put_records returned
            for (sid, members, _), (shard_id, seq, code, msg) in zip(groups, results):
                if code is None:
                    if shard_id != sid:
                        self._map_stale = True
                    m.kinesis_records_sent += 1
                    agg = len(members) > 1
                    for k, it in enumerate(members):
                        it.attempts += 1
                        m.records_sent += 1
                        m.bytes_sent += it.size
                        self._resolve(it, ProducerResult(shard_id, seq, k if agg else None, it.attempts))
                else:
                    if code == "ProvisionedThroughputExceededException":
                        m.throttled += len(members)
                        b = self._buckets.get(sid)
                        if b is not None:              # the service says the shard is full: believe it
                            b.records = min(b.records, 0.0)
                            b.bytes = min(b.bytes, 0.0)
                    err = (E.ProvisionedThroughputExceededException(msg)
                           if code == "ProvisionedThroughputExceededException"
                           else E.InternalFailure(msg or code))
                    for it in members:
                        it.attempts += 1
                        self._schedule_retry(it, now, err, counted=True)
        self._cond.notify_all()

    def _requeue(self, groups) -> None:
        """A request interrupted before it answered: its records are retried later (at least once, as after a
        timeout)."""
        self._in_flight -= 1
        now = self._clock()
        for sid, members, _ in groups:
            self._busy_shards.discard(sid)
            for it in members:
                self._schedule_retry(it, now, InterruptedError("the request was interrupted"), counted=True)

    def _schedule_retry(self, it: _Item, now: float, err: BaseException, counted: bool = False) -> None:
        if not counted:
            it.attempts += 1
        it.last_error = err
        delay = self._rng.uniform(0, min(self.retry_max, self.retry_base * 2 ** min(it.attempts, 30)))
        if now + delay > it.deadline:
            self._fail(it, err)
            return
        self.metrics.retried += 1
        if self.ordered and it.shard is not None:
            # later records of this key must not overtake it: it waits at the front of its shard's
            # queue and the whole shard is held until the backoff ends
            q = self._queues.setdefault(it.shard, collections.deque())
            q.appendleft(it)
            self._queues[it.shard] = collections.deque(sorted(q, key=lambda x: x.order))
            self._hold[it.shard] = max(self._hold.get(it.shard, 0.0), now + delay)
            return
        heapq.heappush(self._retries, (now + delay, it.order, it))

    def _resolve(self, it: _Item, result: ProducerResult) -> None:
        self._pending -= 1
        self.metrics.buffered = self._pending
        it.future.set_result(result)

    def _fail(self, it: _Item, err: BaseException) -> None:
        self._pending -= 1
        self.metrics.failed += 1
        self.metrics.buffered = self._pending
        it.future.set_exception(err)

    # -- background thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        pool = self._pool
        assert pool is not None                         # background mode: made before the thread starts
        with self._cond:
            while True:
                if self._closed and not self._pending:
                    return
                now = self._clock()
                req, wait = self._next_request(now)
                if req is not None:
                    self._begin(req)
                    pool.submit(self._send_in_pool, req, now)
                    continue
                self._cond.wait(min(wait, 0.5) if wait is not None else 0.5)

    def _send_in_pool(self, req, now: float) -> None:
        with self._cond:
            self._send(req, now)


def _parse_ehk(value) -> int:
    return parse_hash_key(value)

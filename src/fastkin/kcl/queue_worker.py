"""QueueWorker: a Kinesis queue consumer loop (receive, process, acknowledge), the same code against a fastkin
Engine, ``fastkin serve`` or AWS through any boto3 Kinesis client (see fastkin.target).

Each batch is received with long polling; every record is handed to ``handler(record)`` (the QueueRecord dict
boto3 answers). A record whose handler returns is acknowledged (one AcknowledgeQueueRecords per batch); a record
whose handler raises is not, so its visibility timeout redelivers it (or, with ``release_on_error=True``, it is
made visible at once) and, after MaxReceiveCount failures, the queue dead-letters it. While a batch is being
worked through, the records not yet processed get their visibility extended once half of it has gone by, so a
slow batch is not redelivered to another worker meanwhile; a handler working long on one record can call
``worker.extend(record)`` itself.

``dead_letter=True`` works the queue's dead-letter records instead (ReceiveDeadLetterQueueRecords and the
dead-letter twins), e.g. to inspect and then acknowledge or ``restore`` them.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..clock import VirtualClock
from ..target import adapt, error_code


@dataclass
class QueueWorkerMetrics:
    received: int = 0          # records received (redeliveries included)
    redelivered: int = 0       # of those, with ReceiveCount > 1
    processed: int = 0         # handler returned
    failed: int = 0            # handler raised
    acknowledged: int = 0      # Successful entries of the acknowledgements
    ack_failed: int = 0        # Failed entries (a handle no longer current: the record went to another worker)
    extended: int = 0          # visibility extensions (records)
    empty_receives: int = 0


class QueueWorker:
    """Work one queue: ``QueueWorker(target, queue_arn, handler).run(...)``.

    ``target``: an Engine, a Stream's engine or a boto3 Kinesis client. ``batch`` (1-10) records per receive,
    ``wait_time_seconds`` (1-20) of long polling, ``visibility_timeout_seconds`` for the received records (None:
    the queue's own, read once with DescribeQueue)."""

    def __init__(self, target, queue_arn: str, handler: Callable[[dict], object], *, batch: int = 10,
                 wait_time_seconds: int = 20, visibility_timeout_seconds: int | None = None,
                 release_on_error: bool = False, dead_letter: bool = False) -> None:
        if not 1 <= batch <= 10:
            raise ValueError(f"batch must be 1 to 10, got {batch}")
        self.target, _ = adapt(target, ("receive_queue_records", "acknowledge_queue_records"))
        self.queue_arn = queue_arn
        self.handler = handler
        self.batch = batch
        self.wait_time_seconds = wait_time_seconds
        if visibility_timeout_seconds is None:
            d = self.target.call("DescribeQueue", QueueARN=queue_arn)["QueueDescription"]
            visibility_timeout_seconds = d.get("QueueAttributes", {}).get("VisibilityTimeoutSeconds", 30)
        self.visibility = int(visibility_timeout_seconds)
        self.release_on_error = release_on_error
        self.dead_letter = dead_letter
        prefix = "DeadLetter" if dead_letter else ""
        self._receive_op = f"Receive{prefix}QueueRecords"
        self._ack_op = f"Acknowledge{prefix}QueueRecords"
        self._visibility_op = f"Update{prefix}QueueRecordsVisibility"
        self.metrics = QueueWorkerMetrics()
        self.stopped = False

    # -- one batch -----------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Receive one batch (long polling) and work it: the number of records received."""
        kw = {"QueueARN": self.queue_arn, "Limit": self.batch, "WaitTimeSeconds": self.wait_time_seconds,
              "VisibilityTimeoutSeconds": self.visibility}
        records = self.target.call(self._receive_op, **kw)["QueueRecords"]
        m = self.metrics
        if not records:
            m.empty_receives += 1
            return 0
        m.received += len(records)
        m.redelivered += sum(1 for r in records if r.get("ReceiveCount", 1) > 1)
        clock = self.target.clock
        extend_at = clock() + self.visibility / 2.0
        done: list[dict] = []
        failed: list[dict] = []
        for i, r in enumerate(records):
            if self.visibility and clock() >= extend_at:
                self._set_visibility(records[i:], self.visibility)
                extend_at = clock() + self.visibility / 2.0
            try:
                self.handler(r)
            except Exception:          # noqa: BLE001 - the record is redelivered; the worker goes on
                m.failed += 1
                failed.append(r)
                continue
            m.processed += 1
            done.append(r)
        if done:
            out = self.target.call(self._ack_op, QueueARN=self.queue_arn,
                                   Entries=[{"ReceiptHandle": r["ReceiptHandle"]} for r in done])
            m.acknowledged += len(out["Successful"])
            m.ack_failed += len(out["Failed"])
        if failed and self.release_on_error:
            self._set_visibility(failed, 0)
        return len(records)

    def extend(self, record: dict, seconds: int | None = None) -> bool:
        """Keep ``record`` hidden for ``seconds`` more (default: the visibility timeout); False if its handle is
        no longer current."""
        return self._set_visibility([record], self.visibility if seconds is None else seconds) == 1

    def _set_visibility(self, records: list[dict], seconds: int) -> int:
        out = self.target.call(self._visibility_op, QueueARN=self.queue_arn, Entries=[
            {"ReceiptHandle": r["ReceiptHandle"], "VisibilityTimeoutSeconds": seconds} for r in records])
        if seconds:
            self.metrics.extended += len(out["Successful"])
        return len(out["Successful"])

    def restore(self, records: list[dict]) -> int:
        """RestoreDeadLetterQueueRecords of dead-letter records (``dead_letter=True`` workers): how many succeeded."""
        n = 0
        for i in range(0, len(records), 10):
            out = self.target.call("RestoreDeadLetterQueueRecords", QueueARN=self.queue_arn, Entries=[
                {"ReceiptHandle": r["ReceiptHandle"]} for r in records[i:i + 10]])
            n += len(out["Successful"])
        return n

    # -- the loop --------------------------------------------------------------------------------------
    def run(self, *, max_records: int | None = None, stop_after_empty: int | None = None,
            until: Callable[[], bool] | None = None) -> QueueWorkerMetrics:
        """Work batches until ``stop()``, ``max_records`` received, ``stop_after_empty`` consecutive empty receives
        or ``until()`` is true. A ThrottlingException (the queue's in-flight limit) ends nothing: the next
        receive comes a second later (of engine time on a VirtualClock)."""
        empty = 0
        while not self.stopped and (until is None or not until()):
            if max_records is not None and self.metrics.received >= max_records:
                break
            try:
                n = self.run_once()
            except Exception as exc:
                if error_code(exc) != "ThrottlingException":
                    raise
                n = 0
                clock = self.target.clock
                if isinstance(clock, VirtualClock):
                    clock.advance(1.0)
                else:
                    time.sleep(1.0)
            empty = 0 if n else empty + 1
            if stop_after_empty is not None and empty >= stop_after_empty:
                break
        return self.metrics

    def drain(self) -> QueueWorkerMetrics:
        """Work until a receive comes back empty (tests, scripts)."""
        return self.run(stop_after_empty=1)

    def stop(self) -> None:
        self.stopped = True


__all__ = ["QueueWorker", "QueueWorkerMetrics"]

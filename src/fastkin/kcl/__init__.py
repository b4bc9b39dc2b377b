"""KCL equivalent: the Consumer worker (leases, checkpoints, failover) and its lease stores; the queue worker."""
from .leases import DynamoDBLeaseStore, LeaseStore, MemoryLeaseStore, SQLiteLeaseStore
from .queue_worker import QueueWorker, QueueWorkerMetrics
from .worker import Checkpointer, Consumer, ConsumerMetrics, RecordProcessor, drive

__all__ = ["Consumer", "RecordProcessor", "Checkpointer", "ConsumerMetrics", "drive", "LeaseStore",
           "MemoryLeaseStore", "SQLiteLeaseStore", "DynamoDBLeaseStore", "QueueWorker", "QueueWorkerMetrics"]

"""KCL equivalent: the Consumer worker (leases, checkpoints, failover) and its lease stores."""
from .leases import DynamoDBLeaseStore, LeaseStore, MemoryLeaseStore, SQLiteLeaseStore
from .worker import Checkpointer, Consumer, ConsumerMetrics, RecordProcessor, drive

__all__ = ["Consumer", "RecordProcessor", "Checkpointer", "ConsumerMetrics", "drive", "LeaseStore",
           "MemoryLeaseStore", "SQLiteLeaseStore", "DynamoDBLeaseStore"]

"""A consumer worker in its own process (used by test_processes.py): appends 'key value' lines to a file."""
import sys
import time

import boto3

from fastkin.kcl.leases import SQLiteLeaseStore
from fastkin.kcl.worker import Consumer, RecordProcessor

url, db, out_path, worker_id = sys.argv[1:5]
out = open(out_path, "a", buffering=1)


class P(RecordProcessor):
    def process_records(self, records, checkpointer):
        for r in records:
            out.write(f"{r.partition_key} {int(r.data)}\n")
        checkpointer.checkpoint()


client = boto3.client("kinesis", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="x")
w = Consumer(client, "s", "app", P, worker_id=worker_id, lease_store=SQLiteLeaseStore(db), failover_time=2.0,
             idle_time_between_reads=0.1, min_read_interval=0.05).start()
while True:
    time.sleep(0.2)
    if w.error is not None:
        raise w.error

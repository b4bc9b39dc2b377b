"""The producer through boto3: in-process (mock_kinesis) and against `fastkin serve`, real clock."""
import boto3
import pytest

import fastkin
from fastkin import Limits
from fastkin.kpl.producer import Producer

pytest.importorskip("botocore")
LIMITS = Limits(write_records_per_second=100)


@pytest.fixture(params=["mock", "server"])
def client_and_engine(request):
    engine = fastkin.Engine(limits=LIMITS)
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    if request.param == "mock":
        with fastkin.mock_kinesis(engine=engine):
            yield session.client("kinesis"), engine
    else:
        from fastkin.wire.http import ServerThread

        with ServerThread(port=0) as srv:
            srv.app.reset(engine)
            yield session.client("kinesis", endpoint_url=srv.url), engine


def test_overload_through_boto3_is_delivered_in_key_order(client_and_engine):
    client, engine = client_and_engine
    client.create_stream(StreamName="s", ShardCount=2)
    n = 600                                                   # 3x the 200 records/s of two small shards
    with Producer(client, "s", ordered=True, linger=0.02, limits=LIMITS, seed=2) as p:
        futs = [p.put(f"{i}".encode(), f"key-{i % 13}") for i in range(n)]
    res = [f.result() for f in futs]
    assert len({r.sequence_number for r in res}) == n
    by_key = {}
    for i, r in enumerate(res):
        by_key.setdefault(f"key-{i % 13}", []).append(int(r.sequence_number))
    assert all(v == sorted(v) for v in by_key.values())        # same key, same shard: increasing numbers
    stream = engine.stream("s")
    assert stream.core.record_count() == n
    thr = stream.metrics.series("WriteProvisionedThroughputExceeded", 60)[1].sum()
    assert thr < n / 10


def test_aggregated_through_boto3(client_and_engine):
    client, engine = client_and_engine
    client.create_stream(StreamName="s", ShardCount=2)
    with Producer(client, "s", aggregate=True, limits=LIMITS) as p:
        futs = [p.put(b"x" * 50, f"k{i}") for i in range(400)]
    assert all(f.result().shard_id for f in futs)
    it = client.get_shard_iterator(StreamName="s", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")
    recs = client.get_records(ShardIterator=it["ShardIterator"])["Records"]
    users = fastkin.deaggregate(recs)
    assert len(recs) < len(users) and all(u.data == b"x" * 50 for u in users)

"""Restart preserves every control-plane fact a describe call shows (issue 15): a property test.

Hypothesis draws a list of random operations (streams created PROVISIONED with 1-4 shards or ON_DEMAND and
deleted, tags on streams and consumers, retention, split/merge/UpdateShardCount, capacity mode, consumers,
resource policies, encryption, enhanced monitoring, max record size, warm throughput, account settings,
record distribution, a few PutRecords, and a VirtualClock advancing so CREATING/UPDATING/DELETING pass and
retention expires), with restarts among them. Many of the operations are rejected (a stream that does not
exist or is not ACTIVE, a shard already closed, a hash key outside the shard, limits): a rejection is a
valid step, and must be the same rejection whether or not the engine was restarted.

Two engines run every operation on one clock: ``durable`` on a data directory, and ``twin`` in memory that is
never restarted. Checked:

- every operation's outcome (result, or error class and message) is the same on both (so restarts change
  no later answer, rejections included);
- at each restart, "describe everything" (every page of ListStreams, DescribeStream, ListShards with several
  filters, ListTagsForStream, ListStreamConsumers; DescribeStreamSummary, DescribeStreamConsumer,
  ListTagsForResource and GetResourcePolicy of every stream and consumer, DescribeLimits,
  DescribeAccountSettings, and GetRecords from TRIM_HORIZON of every shard) answers exactly the same
  before and after the restart (NextTokens too: their key is kept), and the same as the twin (NextTokens
  aside: the twin's key differs); recovery reports no damage;
- a restart is either ``engine.close()`` then reopening the directory, or a crash: the directory copied at
  the OS level while the engine is open (after its last call returned; the copy's LOCK is not flock'ed)
  and the copy opened. ``fsync="never"``: a process crash loses nothing (the page cache holds the writes).

The on-demand scaler's observation window is documented as not stored (a restored on-demand stream starts a
new window), so its actions would differ between the twin and a restarted engine; the test disables them
(its evaluation and release intervals are made longer than any run) to compare everything else exactly.
Queues and channels are not among the operations (their persistence is separate work).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastkin
from fastkin import errors as E
from fastkin.autoscaling import OnDemandScaler

T0 = 1_700_000_000.0
NAMES = ["a", "b", "c"]
CONSUMERS = ["r1", "r2"]
TAG_KEYS = ["k1", "k2", "k3"]
METRICS = ["IncomingBytes", "OutgoingRecords", "ALL"]
LATENCY = 1.0
ACCOUNT = "123456789012"


# -- operations -------------------------------------------------------------------------------------------
name = st.sampled_from(["a", "a", "b", "b", "c"])    # "a" and "b" exist from the prelude on; "c" may not
consumer = st.sampled_from(CONSUMERS)
target = st.one_of(st.none(), consumer)            # None: the stream itself, else one of its consumers
tags = st.dictionaries(st.sampled_from(TAG_KEYS), st.sampled_from(["x", "y", ""]), max_size=3)
keys = st.lists(st.sampled_from(TAG_KEYS), max_size=3)
shard = st.one_of(st.integers(0, 3), st.integers(0, 11))

OPS = st.one_of(
    st.tuples(st.just("create"), name, st.one_of(st.integers(1, 4), st.just("ON_DEMAND"))),
    st.tuples(st.just("delete"), name, st.booleans()),
    st.tuples(st.just("add_tags"), name, tags),
    st.tuples(st.just("remove_tags"), name, keys),
    st.tuples(st.just("tag_resource"), name, target, tags),
    st.tuples(st.just("untag_resource"), name, target, keys),
    st.tuples(st.just("increase_retention"), name, st.sampled_from([24, 25, 48, 168])),
    st.tuples(st.just("decrease_retention"), name, st.sampled_from([24, 25, 48])),
    st.tuples(st.just("split"), name, shard, st.sampled_from([0.0, 0.25, 0.5, 0.75, 2.0])),
    st.tuples(st.just("merge"), name, shard, st.one_of(st.just("adjacent"), shard)),
    st.tuples(st.just("update_shard_count"), name, st.integers(1, 8)),
    st.tuples(st.just("mode"), name, st.sampled_from(["PROVISIONED", "ON_DEMAND"]), st.sampled_from([None, 5])),
    st.tuples(st.just("register"), name, consumer, tags),
    st.tuples(st.just("deregister"), name, consumer),
    st.tuples(st.just("put_policy"), name, target),
    st.tuples(st.just("delete_policy"), name, target),
    st.tuples(st.just("start_encryption"), name, st.sampled_from(["alias/one", "alias/two"])),
    st.tuples(st.just("stop_encryption"), name),
    st.tuples(st.just("enable_monitoring"), name, st.lists(st.sampled_from(METRICS), min_size=1, max_size=2)),
    st.tuples(st.just("disable_monitoring"), name, st.lists(st.sampled_from(METRICS), min_size=1, max_size=2)),
    st.tuples(st.just("max_record_size"), name, st.sampled_from([1024, 2048, 10240])),
    st.tuples(st.just("warm"), name, st.sampled_from([2, 10])),
    st.tuples(st.just("account"), st.sampled_from(["ENABLED", "DISABLED"])),
    st.tuples(st.just("distribution"), name, st.sampled_from(["AUTO", "USER_PARTITION_KEY"])),
    st.tuples(st.just("put"), name, st.lists(st.sampled_from(["p", "q", "r", "s", "t"]), min_size=1, max_size=5)),
    st.tuples(st.just("put"), name, st.lists(st.sampled_from(["p", "q"]), min_size=1, max_size=5)),
    st.tuples(st.just("put"), name, st.just([None, None])),       # no partition key: AUTO distribution only
    st.tuples(st.just("advance"), st.sampled_from([0.001, 0.5, 1.0, 1.5, 30.0, 3600.0, 25 * 3600.0])),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 1.5])),      # (latencies are 1 s: states pass often)
    st.tuples(st.just("restart"), st.sampled_from(["close", "crash"])),
)


def stream_arn(n: str) -> str:
    return f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{n}"


def resource_arn(twin: fastkin.Engine, n: str, c: str | None) -> str:
    """The ARN an operation names: the stream's, or its consumer's (as the twin knows it; a made-up one when
    the consumer does not exist, which both engines must reject alike)."""
    if c is None:
        return stream_arn(n)
    s = twin._streams.get(n)
    if s is not None and c in s.consumers:
        return s.consumers[c].arn
    return f"{stream_arn(n)}/consumer/{c}:1700000000"


def args_for(twin: fastkin.Engine, op: tuple):
    """Operation arguments that depend on the state (hash keys, adjacent shards): computed from the twin, so
    both engines get the same call."""
    kind, n = op[0], op[1]
    s = twin._streams.get(n)
    info = s._shards.get(op[2]) if s is not None and kind in ("split", "merge") else None
    if kind == "split":
        if info is None:
            return str(2 ** 127)
        return str(info.start_hash + int((info.end_hash - info.start_hash) * op[3]))
    if kind == "merge":
        if op[3] != "adjacent":
            return f"shardId-{op[3]:012d}"
        if info is not None:
            for other in s._shards.values():
                if other.closed_at is None and other.start_hash == info.end_hash + 1:
                    return other.shard_id
        return f"shardId-{(op[2] + 1):012d}"
    return None


def apply(e: fastkin.Engine, twin: fastkin.Engine, op: tuple):
    kind = op[0]
    if kind == "create":
        if op[2] == "ON_DEMAND":
            return e.create_stream(op[1], stream_mode_details={"StreamMode": "ON_DEMAND"}).name
        return e.create_stream(op[1], op[2]).name
    if kind == "delete":
        return e.delete_stream(op[1], enforce_consumer_deletion=op[2])
    if kind == "add_tags":
        return e.add_tags_to_stream(op[2], stream_name=op[1])
    if kind == "remove_tags":
        return e.remove_tags_from_stream(op[2], stream_name=op[1])
    if kind == "tag_resource":
        return e.tag_resource(resource_arn(twin, op[1], op[2]), op[3])
    if kind == "untag_resource":
        return e.untag_resource(resource_arn(twin, op[1], op[2]), op[3])
    if kind == "increase_retention":
        return e.increase_stream_retention_period(op[2], stream_name=op[1])
    if kind == "decrease_retention":
        return e.decrease_stream_retention_period(op[2], stream_name=op[1])
    if kind == "split":
        return e.split_shard(f"shardId-{op[2]:012d}", args_for(twin, op), stream_name=op[1])
    if kind == "merge":
        return e.merge_shards(f"shardId-{op[2]:012d}", args_for(twin, op), stream_name=op[1])
    if kind == "update_shard_count":
        return e.update_shard_count(op[2], stream_name=op[1])
    if kind == "mode":
        return e.update_stream_mode(stream_arn(op[1]), {"StreamMode": op[2]}, warm_throughput_mibps=op[3])
    if kind == "register":
        return e.register_stream_consumer(stream_arn(op[1]), op[2], tags=op[3])
    if kind == "deregister":
        return e.deregister_stream_consumer(stream_arn(op[1]), op[2])
    if kind == "put_policy":
        return e.put_resource_policy(resource_arn(twin, op[1], op[2]),
                                     json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": op[1]}]}))
    if kind == "delete_policy":
        return e.delete_resource_policy(resource_arn(twin, op[1], op[2]))
    if kind == "start_encryption":
        return e.start_stream_encryption("KMS", op[2], stream_name=op[1])
    if kind == "stop_encryption":
        s = twin._streams.get(op[1])
        return e.stop_stream_encryption("KMS", (s.key_id if s is not None else None) or "alias/one",
                                        stream_name=op[1])
    if kind == "enable_monitoring":
        return e.enable_enhanced_monitoring(op[2], stream_name=op[1])
    if kind == "disable_monitoring":
        return e.disable_enhanced_monitoring(op[2], stream_name=op[1])
    if kind == "max_record_size":
        return e.update_max_record_size(stream_arn(op[1]), op[2])
    if kind == "warm":
        return e.update_stream_warm_throughput(op[2], stream_name=op[1])
    if kind == "account":
        return e.update_account_settings({"Status": op[1]})
    if kind == "distribution":
        return e.update_stream_record_distribution_strategy(stream_arn(op[1]), op[2])
    if kind == "put":
        r = e.put_records([(f"{op[1]}-{i}".encode(), k) for i, k in enumerate(op[2])], stream_name=op[1])
        return r.failed_record_count, [(x.shard_id, x.sequence_number, x.error_code, x.error_message) for x in r]
    raise AssertionError(op)


def outcome(fn, *args, **kw):
    """("ok", value) or ("error", class name, message): a rejection is an answer like any other."""
    try:
        return ("ok", fn(*args, **kw))
    except E.FastkinError as exc:
        return ("error", type(exc).__name__, str(exc))


# -- describe everything ----------------------------------------------------------------------------------
def pages(call, keep=(), **kw):
    """Every page of a paginated call (NextToken; the arguments named in ``keep`` go along), or its error."""
    out = []
    r = outcome(call, **kw)
    out.append(r)
    while r[0] == "ok" and r[1].get("NextToken"):
        r = outcome(call, next_token=r[1]["NextToken"], **{k: kw[k] for k in keep})
        out.append(r)
    return out


def everything(e: fastkin.Engine) -> dict:
    """Every control-plane fact a describe/list call shows, and every record of every shard (TRIM_HORIZON)."""
    now = e.clock()
    out: dict = {"limits": outcome(e.describe_limits), "account": outcome(e.describe_account_settings),
                 "list_streams": pages(e.list_streams, ("limit",), limit=1)}
    names = sorted(e._streams)          # every stream the engine holds (also those whose deletion finished)
    for n in NAMES:
        if n not in names:
            names.append(n)              # ... and the names that do not exist: the same ResourceNotFound
    for n in names:
        arn = stream_arn(n)
        d: dict = {}
        out[n] = d
        d["summary"] = outcome(e.describe_stream_summary, stream_name=n)
        desc = [outcome(e.describe_stream, stream_name=n, limit=2)]
        while desc[-1][0] == "ok" and desc[-1][1]["StreamDescription"]["HasMoreShards"]:
            last = desc[-1][1]["StreamDescription"]["Shards"][-1]["ShardId"]
            desc.append(outcome(e.describe_stream, stream_name=n, limit=2, exclusive_start_shard_id=last))
        d["describe"] = desc
        d["list_shards"] = pages(e.list_shards, ("max_results",), stream_name=n, max_results=2)
        for f in ({"Type": "AT_LATEST"}, {"Type": "AT_TRIM_HORIZON"}, {"Type": "FROM_TRIM_HORIZON"},
                  {"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000001"},
                  {"Type": "AT_TIMESTAMP", "Timestamp": dt.datetime.fromtimestamp(now - 2.0, dt.timezone.utc)},
                  {"Type": "FROM_TIMESTAMP", "Timestamp": now - 3600.0}):
            d[f"list_shards {f['Type']}"] = pages(e.list_shards, ("max_results",), stream_name=n, shard_filter=f,
                                                  max_results=3)
        tag_pages = [outcome(e.list_tags_for_stream, stream_name=n, limit=1)]
        while tag_pages[-1][0] == "ok" and tag_pages[-1][1]["HasMoreTags"]:
            tag_pages.append(outcome(e.list_tags_for_stream, stream_name=n, limit=1,
                                     exclusive_start_tag_key=tag_pages[-1][1]["Tags"][-1]["Key"]))
        d["tags"] = tag_pages
        d["tags_for_resource"] = outcome(e.list_tags_for_resource, arn)
        d["policy"] = outcome(e.get_resource_policy, arn)
        consumers = pages(e.list_stream_consumers, ("stream_arn", "max_results"), stream_arn=arn, max_results=1)
        d["consumers"] = consumers
        for c in CONSUMERS:
            by_name = outcome(e.describe_stream_consumer, stream_arn=arn, consumer_name=c)
            d[f"consumer {c}"] = by_name
            if by_name[0] == "ok":
                carn = by_name[1]["ConsumerDescription"]["ConsumerARN"]
                d[f"consumer {c} by arn"] = (outcome(e.describe_stream_consumer, consumer_arn=carn),
                                             outcome(e.list_tags_for_resource, carn),
                                             outcome(e.get_resource_policy, carn))
        records: dict = {}
        ls = outcome(e.list_shards, stream_name=n, max_results=1000)
        if ls[0] == "ok":
            for sh in ls[1]["Shards"]:
                it = outcome(e.get_shard_iterator, sh["ShardId"], "TRIM_HORIZON", stream_name=n)
                if it[0] != "ok":
                    records[sh["ShardId"]] = it
                    continue
                got = outcome(e.get_records, it[1], quota=False)
                records[sh["ShardId"]] = got if got[0] != "ok" else (
                    [(r.sequence_number, bytes(r.data), r.partition_key, r.approximate_arrival_timestamp)
                     for r in got[1].records],
                    got[1].millis_behind_latest, got[1].child_shards)
        d["records"] = records
    return out


def without_tokens(x):
    """The same facts without the NextTokens (they are sealed with each engine's own key)."""
    if isinstance(x, dict):
        return {k: without_tokens(v) for k, v in x.items() if k != "NextToken"}
    if isinstance(x, (list, tuple)):
        return type(x)(without_tokens(v) for v in x)
    return x


# -- the property ----------------------------------------------------------------------------------------
class Run:
    def __init__(self, root: str, core: str, clock: fastkin.VirtualClock) -> None:
        self.root, self.core, self.clock = root, core, clock
        self.generation = 0
        self.durable = self.open(os.path.join(root, "d0"))
        self.twin = fastkin.Engine(clock=clock, core=core, **self.options())

    def options(self) -> dict:
        return {"quotas": False, "create_latency": LATENCY, "delete_latency": LATENCY,
                "update_latency": LATENCY, "consumer_latency": LATENCY}

    def open(self, path: str) -> fastkin.Engine:
        e = fastkin.Engine(clock=self.clock, core=self.core, data_dir=path, fsync="never", **self.options())
        assert e.durable.damage == []
        return e

    def restart(self, how: str) -> None:
        before = everything(self.durable)
        twin = everything(self.twin)
        assert without_tokens(before) == without_tokens(twin)
        path = self.durable.durable.path
        if how == "crash":
            self.generation += 1
            copy = os.path.join(self.root, f"d{self.generation}")
            shutil.copytree(path, copy)         # what a kill -9 leaves: every write, no close
            self.durable.close()                # (closes the original only; the copy is as the crash left it)
            path = copy
        else:
            self.durable.close()
        self.durable = self.open(path)
        after = everything(self.durable)
        assert after == before
        for s in list(self.durable._streams.values()):
            s.core.check_invariants()

    def step(self, op: tuple) -> None:
        if op[0] == "advance":
            self.clock.advance(op[1])
        elif op[0] == "restart":
            self.restart(op[1])
        else:
            got = outcome(apply, self.durable, self.twin, op)
            want = outcome(apply, self.twin, self.twin, op)
            assert without_tokens(got) == without_tokens(want), op

    def close(self) -> None:
        self.durable.close()


@contextlib.contextmanager
def scaler_idle():
    """The on-demand scaler's window is not persisted (documented): keep it from acting in these runs."""
    saved = OnDemandScaler.EVAL_INTERVAL, OnDemandScaler.RELEASE_INTERVAL
    OnDemandScaler.EVAL_INTERVAL = OnDemandScaler.RELEASE_INTERVAL = 1e12
    try:
        yield
    finally:
        OnDemandScaler.EVAL_INTERVAL, OnDemandScaler.RELEASE_INTERVAL = saved


# Every run starts with two ACTIVE streams (most operations then do something) and maybe the account's
# billing commitment (warm throughput needs it).
PRELUDE = st.tuples(
    st.tuples(st.just("create"), st.just("a"), st.integers(1, 4)),
    st.tuples(st.just("create"), st.just("b"), st.sampled_from(["ON_DEMAND", 2])),
    st.sampled_from([("account", "ENABLED"), ("advance", 0.0)]),
    st.just(("advance", 1.5)),
).map(list)


def check(core: str, ops: list, final: str) -> None:
    with tempfile.TemporaryDirectory() as root, scaler_idle():
        run = Run(root, core, fastkin.VirtualClock(start=T0))
        try:
            for op in ops:
                run.step(op)
            run.restart(final)
        finally:
            run.close()


@pytest.mark.parametrize("core", ["cy", "ref"])
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(prelude=PRELUDE, ops=st.lists(OPS, min_size=3, max_size=40), final=st.sampled_from(["close", "crash"]))
def test_restart_preserves_every_described_fact(core, prelude, ops, final):
    check(core, prelude + ops, final)

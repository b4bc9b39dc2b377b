"""Differential tests of the compiled wire paths (fastkin._cy.wire, issue 13) against the Python versions.

* ``records_json``: byte-identical to ``service.records_json`` for compiled-core Records (any data, ASCII and
  non-ASCII partition keys, keys needing escapes, arrival times on and off the millisecond grid's short
  forms, far beyond the hand-written range); None for the reference core's Records (the caller's fallback).
* ``put_records_params`` / ``put_records_batch``: None exactly where ``model.put_records_params(shape, raw,
  cbor=False)`` gives None, else the same params (the batch: the tuples ``service.put_records_response``
  builds from them), across generated requests: invalid and non-canonical base64, wrong types, 0/1/500/501
  entries, extra and null members, long keys, bad ExplicitHashKeys (Unicode digits too), stream names.
* ``put_records_json``: byte-identical to ``json_dumps(service.put_records_response(...))``, compiled and
  reference results, with and without throttled entries and KMS.

The module is skipped when the extension is not built.
"""
from __future__ import annotations

import base64
import binascii
import json

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from fastkin import _core
from fastkin._common import initial_hash_ranges
from fastkin.engine import Engine
from fastkin.limits import Limits
from fastkin.stream import GetRecordsResult
from fastkin.wire import model, service
from fastkin.wire.http import _PUT_RECORDS_SHAPE

wire = pytest.importorskip("fastkin._cy.wire", reason="the compiled wire extension is not built")
CY = _core.get_core("cy")
REF = _core.get_core("ref")
SHAPE = _PUT_RECORDS_SHAPE()
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
T0 = 1_700_000_000.0


# ---------------------------------------------------------------------------------------------
# GetRecords

def _core_with_records(mod, records, nows):
    c = mod.StreamCore("s", "123456789012", Limits(), False, 1024 * 1024)
    for i, (a, b) in enumerate(initial_hash_ranges(1)):
        c.add_shard(i, a, b, int(T0))
    for rec, now in zip(records, nows):
        c.put_records([rec], now)
    return c


keys = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),   # plain ASCII
    st.text(min_size=1, max_size=20),                                                         # anything
    st.sampled_from(['"', "\\", "a\nb", "\x00", "\x7f", "é", "日本", "\U0001F600", "a/b", "\u2028"]),
)
# arrival times (epoch seconds): whole, tenths, ms, off-grid floats, past the hand-written range (1e12 s)
nows = st.one_of(
    st.integers(0, 4_000_000_000_000).map(lambda ms: ms / 1000),
    st.integers(0, 4_000_000).map(lambda s: s * 1.0),
    st.integers(0, 40_000_000).map(lambda d: d / 10),
    st.floats(0, 4e9, allow_nan=False),
    st.floats(9.99e11, 1.001e12),
    st.floats(1e12, 9e12),
)


@settings(max_examples=200, **SETTINGS)
@given(recs=st.lists(st.tuples(st.binary(max_size=300), keys), min_size=0, max_size=30),
       times=st.lists(nows, min_size=30, max_size=30),
       nsi=st.one_of(st.none(), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)),
       mbl=st.integers(0, 2**40),
       children=st.sampled_from([[], [{"ShardId": "shardId-000000000001", "ParentShards": ["shardId-000000000000"],
                                       "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"}}]]))
def test_records_json_matches(recs, times, nsi, mbl, children):
    recs = [(d or b"x", k) for d, k in recs]     # an empty record (no data) is refused by the core
    times = sorted(times)[:len(recs)]
    c = _core_with_records(CY, recs, times)
    got = c.get_records(0, 0, 10000, 5e12, False)[0] if recs else []
    assert len(got) == len(recs)
    res = GetRecordsResult(got, nsi, mbl, children)
    assert wire.records_json(res) == service.records_json(res)


def test_records_json_reference_records_fall_back():
    recs = [(b"abc", "k1"), (b"de", "k2")]
    ref = _core_with_records(REF, recs, [T0, T0 + 1])
    cy = _core_with_records(CY, recs, [T0, T0 + 1])
    r_ref = ref.get_records(0, 0, 10, T0 + 2, False)[0]
    r_cy = cy.get_records(0, 0, 10, T0 + 2, False)[0]
    assert wire.records_json(GetRecordsResult(r_ref, None, 0)) is None
    assert wire.records_json(GetRecordsResult(r_cy[:1] + r_ref[1:], None, 0)) is None
    a = GetRecordsResult(r_ref, "it", 5)
    b = GetRecordsResult(r_cy, "it", 5)
    assert wire.records_json(b) == service.records_json(b) == service.records_json(a)


def test_records_json_keyless_auto_records_have_no_partition_key():
    engine = Engine(quotas=False, core="cy")           # compiled-core records (the reference core's fall back)
    s = engine.create_stream("auto", stream_mode="ON_DEMAND", record_distribution_strategy="AUTO")
    s.put_records([(b"no key", None), (b"key", "k"), (b"unicode", "\u00e9")] * 4)
    for shard in engine.list_shards(stream_name="auto")["Shards"]:
        res = engine.get_records(engine.get_shard_iterator(shard["ShardId"], "TRIM_HORIZON", "auto"))
        body = wire.records_json(res)
        assert body == service.records_json(res)
        want = service.records_response(res)["Records"]     # the dicts boto3's mock answers (no key: no field)
        got = json.loads(body)["Records"]
        assert [("PartitionKey" in r, r.get("PartitionKey")) for r in got] == \
               [("PartitionKey" in r, r.get("PartitionKey")) for r in want]


def test_records_json_timestamps_match_repr():
    """Arrival times written by hand are repr(ms / 1000) exactly: every ms of a few seconds + edges."""
    ms = list(range(0, 3001)) + [999_999_999_999_999, 1_000_000_000_000_000, 1_700_000_000_000,
                                 1_700_000_000_100, 1_700_000_000_120, 1_700_000_000_001]
    ms += [1_700_000_000_000 + i for i in range(0, 100_000, 7)]
    recs = [(b"x", "k")] * len(ms)
    c = _core_with_records(CY, recs, [m / 1000 for m in ms])
    got = c.get_records(0, 0, 10000, 2e12, False)[0] + c.get_records(0, 10000, 10000, 2e12, False)[0]
    assert len(got) == len(ms)
    for i in range(0, len(got), 5000):
        res = GetRecordsResult(got[i:i + 5000], None, 0)
        assert wire.records_json(res) == service.records_json(res)


# ---------------------------------------------------------------------------------------------
# PutRecords params

B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _noncanonical(s: str) -> str:
    """s (padded base64) with stray bits set in its last data character."""
    if not s.endswith("="):
        return s
    i = len(s) - (3 if s.endswith("==") else 2)
    idx = B64_CHARS.index(s[i])
    return s[:i] + B64_CHARS[idx | (15 if s.endswith("==") else 3)] + s[i + 1:]


valid_b64 = st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())
datas = st.one_of(
    valid_b64,
    valid_b64.map(_noncanonical),
    st.text(B64_CHARS + "=", max_size=12),                                 # mostly invalid shapes
    st.text(B64_CHARS + "=\n -_.é", max_size=12),
    st.sampled_from(["", "=", "==", "====", "A===", "AB=", "AB==", "ABC=", "AB=C", "ABCD=", "AB===", "QQ==",
                     "QR==", "QUI=", "QUJ=", "QUJD", "QUJD\n", " QUJD", "QUJDé==="]),
    st.none(), st.integers(), st.binary(max_size=4), st.lists(st.integers(), max_size=2),
)
pkeys = st.one_of(
    st.text(min_size=1, max_size=8),
    st.sampled_from(["", "a" * 256, "a" * 257, "é" * 256, "é" * 257, "\U0001F600" * 256, "\x00"]),
    st.none(), st.integers(), st.binary(max_size=3),
)
ehks = st.one_of(
    st.from_regex(r"0|([1-9][0-9]{0,38})", fullmatch=True),
    st.sampled_from(["", "00", "01", "0" * 39, "1" * 39, "1" * 40, "9" * 39, "1٣", "٣", "1" + "٣" * 38,
                     "1" + "٣" * 39, "-1", "+1", "1.0", " 1", "1 ", "1\n", "１",
                     "340282366920938463463374607431768211456"]),
    st.text(max_size=5), st.none(), st.integers(0, 10),
)
extra = st.sampled_from(["Foo", "data", "StreamName", "ExplicitHashKey2"])


@st.composite
def entries(draw):
    d = {}
    for name, strat in (("Data", datas), ("PartitionKey", pkeys), ("ExplicitHashKey", ehks)):
        if draw(st.integers(0, 9)) < (8 if name != "ExplicitHashKey" else 4):
            d[name] = draw(strat)
    if draw(st.integers(0, 9)) == 0:
        d[draw(extra)] = draw(st.one_of(st.none(), st.text(max_size=3)))
    if draw(st.booleans()) and draw(st.booleans()):
        return d if draw(st.integers(0, 19)) else draw(st.one_of(st.none(), st.text(max_size=3), st.lists(st.none())))
    return d


good_entry = st.fixed_dictionaries({"Data": valid_b64, "PartitionKey": st.text(min_size=1, max_size=8)},
                                   optional={"ExplicitHashKey": st.from_regex(r"0|([1-9][0-9]{0,38})",
                                                                              fullmatch=True)})
record_lists = st.one_of(
    st.lists(entries(), min_size=0, max_size=4),
    st.lists(good_entry, min_size=1, max_size=4),
    st.tuples(good_entry, st.sampled_from([1, 499, 500, 501])).map(lambda t: [t[0]] * t[1]),
    st.tuples(good_entry, entries()).map(lambda t: [t[0]] * 499 + [t[1]]),
    st.none(), st.text(max_size=3), st.dictionaries(st.text(max_size=2), st.none(), max_size=1),
)
names = st.one_of(st.sampled_from(["s", "my-stream_1.x", "a" * 128, "a" * 129, "", "bad name", "é"]),
                  st.none(), st.integers(), st.text(max_size=4))
arns = st.one_of(st.sampled_from(["arn:aws:kinesis:us-east-1:123456789012:stream/s", "arn:aws:kinesis:x:1:stream/s",
                                  "arn:aws:kinesis:us-east-1:123456789012:stream/", "x" * 2049]),
                 st.none(), st.integers(), st.text(max_size=4))


@st.composite
def requests(draw):
    raw = {}
    if draw(st.integers(0, 19)):
        raw["Records"] = draw(record_lists)
    if draw(st.booleans()):
        raw["StreamName"] = draw(names)
    if draw(st.integers(0, 3)) == 0:
        raw["StreamARN"] = draw(arns)
    if draw(st.integers(0, 5)) == 0:
        raw[draw(st.sampled_from(["Foo", "records", "StreamConsumer", "ShardId"]))] = draw(
            st.one_of(st.none(), st.text(max_size=3), st.integers()))
    return raw


def _outcome(fn, *args):
    try:
        return True, fn(*args)
    except Exception as e:  # noqa: BLE001 - both versions must raise alike
        return False, (type(e), str(e))


def _batch(params):
    return [(r["Data"], r["PartitionKey"], r["ExplicitHashKey"]) if r.get("ExplicitHashKey") is not None
            else (r["Data"], r["PartitionKey"]) for r in params["Records"]]


@settings(max_examples=1500, **SETTINGS)
@given(raw=requests())
def test_put_records_params_match(raw):
    ok_py, py = _outcome(model.put_records_params, SHAPE, raw, False)
    ok_cy, cy = _outcome(wire.put_records_params, SHAPE, raw)
    event("raised" if not ok_py else "refused" if py is None else "accepted")
    assert (ok_py, py) == (ok_cy, cy)
    assert not ok_py or py is None or list(py) == list(cy)        # same member order too
    ok_b, b = _outcome(wire.put_records_batch, SHAPE, raw)
    assert ok_b == ok_py
    if not ok_py:
        assert b == cy
    elif py is None:
        assert b is None
    else:
        assert b == (_batch(py), {k: v for k, v in py.items() if k != "Records"})


def test_put_records_params_examples():
    """Hand-picked edges, each against the Python version (and the expected outcome)."""
    def check(raw, accepted):
        py = model.put_records_params(SHAPE, raw, False)
        assert wire.put_records_params(SHAPE, raw) == py
        assert (py is not None) == accepted, raw
        b = wire.put_records_batch(SHAPE, raw)
        assert (b is None) == (py is None)
        if py is not None:
            assert b[0] == _batch(py)

    rec = {"Data": "QUJD", "PartitionKey": "k"}
    check({"Records": [rec]}, True)
    check({"Records": [rec], "StreamName": "s"}, True)
    check({"Records": [rec], "StreamName": None, "StreamARN": None, "Unknown": 1}, True)
    check({"Records": [rec], "StreamName": 5}, False)
    check({"Records": [rec], "StreamName": "bad name"}, False)
    check({"Records": []}, False)
    check({"Records": [rec] * 500}, True)
    check({"Records": [rec] * 501}, False)
    check({"Records": [{"Data": "", "PartitionKey": "k"}]}, True)            # empty blob: the engine refuses it
    for s in ("QQ==", "QUI=", "QUJD"):
        check({"Records": [{"Data": s, "PartitionKey": "k"}]}, True)
    for s in ("QR==", "QUJ=", "QUJ", "QUJD=", "=", "====", "QU=I", "QUJD\n", "QUJ\u00e9"):
        check({"Records": [{"Data": s, "PartitionKey": "k"}]}, False)
    for k, ok in (("k" * 256, True), ("k" * 257, False), ("\U0001F600" * 256, True), ("", False)):
        check({"Records": [{"Data": "QUJD", "PartitionKey": k}]}, ok)
    for h, ok in (("0", True), ("1" * 39, True), ("1" * 40, False), ("01", False), ("1٣", True),
                  ("٣", False), ("-1", False)):
        check({"Records": [{"Data": "QUJD", "PartitionKey": "k", "ExplicitHashKey": h}]}, ok)
    check({"Records": [{"Data": "QUJD", "PartitionKey": "k", "ExplicitHashKey": None}]}, False)
    check({"Records": [{"Data": "QUJD", "PartitionKey": "k", "Other": "x"}]}, False)
    check({"Records": [{"Data": "QUJD", "PartitionKey": "k", "ExplicitHashKey": "1", "Other": "x"}]}, False)


def test_put_records_params_blob_limit():
    limit = 10 * 1024 * 1024
    for n, ok in ((limit, True), (limit + 1, False)):
        raw = {"Records": [{"Data": base64.b64encode(b"\0" * n).decode(), "PartitionKey": "k"}]}
        py = model.put_records_params(SHAPE, raw, False)
        assert (py is not None) == ok
        assert wire.put_records_params(SHAPE, raw) == py


@settings(max_examples=300, **SETTINGS)
@given(data=st.binary(max_size=64))
def test_base64_decoding_matches_binascii(data):
    s = base64.b64encode(data).decode()
    raw = {"Records": [{"Data": s, "PartitionKey": "k"}]}
    assert wire.put_records_batch(SHAPE, raw)[0] == [(binascii.a2b_base64(s, strict_mode=True), "k")]


# ---------------------------------------------------------------------------------------------
# PutRecords response

class _OneStream:
    """An engine whose stream() is a fixed stream: runs service.put_records_response on a given result."""

    def __init__(self, res, kms):
        self.res, self.encryption_type = res, "KMS" if kms else "NONE"

    def stream(self, name, arn):
        return self

    def put_records(self, batch):
        return self.res


@pytest.mark.parametrize("core", ["cy", "ref"])
@pytest.mark.parametrize("quotas", [False, True])
@pytest.mark.parametrize("kms", [False, True])
def test_put_records_json_matches(core, quotas, kms):
    eng = Engine(core=core, quotas=quotas)
    s = eng.create_stream("s", 2)
    for n in (1, 7, 500, 500):                                        # the quota throttles later batches
        res = s.put_records([(b"d" * 8000, f"k{i}") for i in range(n)])
        want = model.json_dumps(service.put_records_response(_OneStream(res, kms), {"Records": []}))
        assert wire.put_records_json(res, kms) == want
    if quotas:
        assert res.failed_record_count > 0

"""AWS's exact error answers to malformed requests (facts §1-3, 14): ValidationException texts (several
constraints, order, quoting, the 10-error cap), SerializationException texts for wrong types, bodies
without a message, null members, and never a 5xx for hostile input (deep nesting, huge numbers,
out-of-range timestamps, self-referencing CBOR, trailing bytes).

Each row runs over the in-process ASGI app (no sockets) in JSON 1.1 and in CBOR, and where botocore's
client-side validator does not intercept first, in-process through the boto3 mock."""
from __future__ import annotations

import base64
import json

import boto3
import botocore.session
import cbor2
import pytest
from asgi import asgi_request
from botocore.config import Config
from hypothesis import HealthCheck, given, settings, strategies as st

import fastkin
from fastkin.wire.http import KinesisApp
from fastkin.wire.sigv4 import placeholder_auth

JSON_CT = "application/x-amz-json-1.1"
CBOR_CT = "application/x-amz-cbor-1.1"
ACCT = "123456789012"
ARN = f"arn:aws:kinesis:us-east-1:{ACCT}:stream/s"
HASH_PAT = r"0|([1-9]\d{0,38})"
SEQ_PAT = r"0|([1-9]\d{0,128})"
NAME_PAT = "[a-zA-Z0-9_.-]+"
ITER_TYPES = "[AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]"


def v(n: int, *errors: str) -> str:
    assert n == len(errors) or n == 10
    return f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(errors)


def e(value: str | None, where: str, constraint: str) -> str:
    shown = "Value" if value is None else f"Value {value}"
    return f"{shown} at '{where}' failed to satisfy constraint: Member must {constraint}"


NULL = "not be null"


class Blob(bytes):
    """A blob in a row: base64 text in JSON, a byte string in CBOR."""


def wire(value, cbor: bool):
    if isinstance(value, Blob):
        return bytes(value) if cbor else base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: wire(x, cbor) for k, x in value.items()}
    if isinstance(value, list):
        return [wire(x, cbor) for x in value]
    return value


# (operation, request, code, exact message); every row is a 400.
VALIDATION = [
    ("CreateStream", {"StreamName": "s", "ShardCount": 0},
     e("'0'", "shardCount", "have value greater than or equal to 1")),
    ("CreateStream", {}, e("null", "streamName", NULL)),
    ("CreateStream", {"StreamName": None, "ShardCount": None}, e("null", "streamName", NULL)),
    ("DescribeStream", {"StreamName": "s" * 129}, e("'" + "s" * 129 + "'", "streamName",
                                                    "have length less than or equal to 128")),
    ("DescribeStream", {"StreamName": "s", "Limit": 10001},
     e("'10001'", "limit", "have value less than or equal to 10000")),
    ("ListStreams", {"Limit": 1.5e12}, e("'2147483647'", "limit", "have value less than or equal to 10000")),
    ("GetShardIterator", {"StreamName": "s", "ShardId": "shardId-0", "ShardIteratorType": "NOPE"},
     e("'NOPE'", "shardIteratorType", f"satisfy enum value set: {ITER_TYPES}")),
    ("GetShardIterator", {"StreamName": "s", "ShardId": "shardId-0", "ShardIteratorType": "AT_SEQUENCE_NUMBER",
                          "StartingSequenceNumber": "2023-01-30T10:25:46.090Z"},
     e("'2023-01-30T10:25:46.090Z'", "startingSequenceNumber", f"satisfy regular expression pattern: {SEQ_PAT}")),
    ("PutRecord", {"StreamName": "s", "Data": Blob(b"x"), "PartitionKey": ""},
     e("''", "partitionKey", "have length greater than or equal to 1")),
    ("PutRecord", {"StreamName": "s", "Data": Blob(b"x"), "PartitionKey": "k", "ExplicitHashKey": "-1"},
     e("'-1'", "explicitHashKey", f"satisfy regular expression pattern: {HASH_PAT}")),
    ("PutRecords", {"StreamName": "s", "Records": []}, e("'[]'", "records", "have length greater than or equal to 1")),
    # a missing PartitionKey is the stream's to judge (optional under AUTO): tests/queues/test_auto_dry_run.py
    ("PutRecords", {"StreamName": "s", "Records": [{"Data": Blob(b""), "PartitionKey": "k"}, None]},
     e("null", "records.2.member", NULL)),
    ("SplitShard", {"StreamName": "s", "ShardToSplit": "shardId-0", "NewStartingHashKey": "x"},
     e("'x'", "newStartingHashKey", f"satisfy regular expression pattern: {HASH_PAT}")),
    ("RemoveTagsFromStream", {"StreamName": "s", "TagKeys": ["a", ""]},
     "1 validation error detected: Value '[a, ]' at 'tagKeys' failed to satisfy constraint: Member must satisfy "
     "constraint: [Member must have length less than or equal to 128, Member must have length greater than or "
     "equal to 1]"),
    ("AddTagsToStream", {"StreamName": "s", "Tags": {"k": "v" * 257}},
     "1 validation error detected: Value '{k=" + "v" * 257 + "}' at 'tags' failed to satisfy constraint: Map value "
     "must satisfy constraint: [Member must have length less than or equal to 256, Member must have length greater "
     "than or equal to 0]"),
    ("UpdateMaxRecordSize", {"MaxRecordSizeInKiB": 1024}, e("null", "streamARN", NULL)),
    ("UpdateMaxRecordSize", {"StreamARN": ARN, "MaxRecordSizeInKiB": 1}, e("'1'", "maxRecordSizeInKiB",
                                                                           "have value greater than or equal to 1024")),
]
if "ReceiveQueueRecords" in botocore.session.get_session().get_service_model("kinesis").operation_names:
    QUEUE = ARN.replace(":stream/", ":queue/")
    VALIDATION += [     # the queue data plane's maxima (botocore checks only minimums)
        ("ReceiveQueueRecords", {"QueueARN": QUEUE, "Limit": 11}, e("'11'", "limit", "have value less than or equal "
                                                                    "to 10")),
        ("UpdateQueueRecordsVisibility", {"QueueARN": QUEUE, "Entries": [
            {"ReceiptHandle": "h", "VisibilityTimeoutSeconds": 43201}]},
         e("'43201'", "entries.1.member.visibilityTimeoutSeconds", "have value less than or equal to 43200")),
    ]


def _multi_rows():
    name_errs = [e("''", "streamName", f"satisfy regular expression pattern: {NAME_PAT}"),
                 e("''", "streamName", "have length greater than or equal to 1")]
    yield ("CreateStream", {"StreamName": ""}, v(2, *name_errs))
    yield ("CreateStream", {"StreamName": "", "ShardCount": 0},
           v(3, e("'0'", "shardCount", "have value greater than or equal to 1"), *name_errs))
    yield ("GetRecords", {"ShardIterator": "", "Limit": 0},
           v(2, e("'0'", "limit", "have value greater than or equal to 1"),
             e("''", "shardIterator", "have length greater than or equal to 1")))
    yield ("GetRecords", {"ShardIterator": "x" * 513, "Limit": 100000},
           v(2, e("'100000'", "limit", "have value less than or equal to 10000"),
             e(f"'{'x' * 513}'", "shardIterator", "have length less than or equal to 512")))
    yield ("MergeShards", {"StreamName": "a b", "ShardToMerge": "", "AdjacentShardToMerge": None},
           v(4, e("''", "shardToMerge", f"satisfy regular expression pattern: {NAME_PAT}"),
             e("''", "shardToMerge", "have length greater than or equal to 1"),
             e("null", "adjacentShardToMerge", NULL),
             e("'a b'", "streamName", f"satisfy regular expression pattern: {NAME_PAT}")))
    # within an entry: partitionKey, explicitHashKey, data; records before streamName
    yield ("PutRecords", {"StreamName": "a b",
                          "Records": [{"Data": Blob(b""), "PartitionKey": "", "ExplicitHashKey": "x"}]},
           v(3, e("''", "records.1.member.partitionKey", "have length greater than or equal to 1"),
             e("'x'", "records.1.member.explicitHashKey", f"satisfy regular expression pattern: {HASH_PAT}"),
             e("'a b'", "streamName", f"satisfy regular expression pattern: {NAME_PAT}")))
    # 501 entries with empty keys: the records error, then records.1..9: ten listed, N capped at 10
    entry = {"Data": Blob(b""), "PartitionKey": ""}
    yield ("PutRecords", {"StreamName": "s", "Records": [entry] * 501}, "10 validation errors detected: Value at "
           "'records' failed to satisfy constraint: Member must have length less than or equal to 500; "
           + "; ".join(e("''", f"records.{i}.member.partitionKey", "have length greater than or equal to 1")
                       for i in range(1, 10)))


ROWS = [(op, params, msg if msg[0].isdigit() else v(1, msg)) for op, params, msg in VALIDATION
        if msg is not None] + list(_multi_rows())


def _hashless(msg: str) -> str:
    import re
    return re.sub(r"(PutRecordsRequestEntry@)[0-9a-f]+", r"\1", msg)


SERIALIZATION = [
    ("CreateStream", {"StreamName": True}, "class java.lang.Boolean can not be converted to an String"),
    ("CreateStream", {"StreamName": 23}, "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be "
                                         "converted to an String"),
    ("CreateStream", {"StreamName": []}, "Start of list found where not expected"),
    ("CreateStream", {"StreamName": {}}, "Start of structure or map found where not expected."),
    ("CreateStream", {"StreamName": "s", "ShardCount": "23"},
     "class java.lang.String can not be converted to an Integer"),
    ("CreateStream", {"StreamName": "s", "ShardCount": False},
     "class java.lang.Boolean can not be converted to an Integer"),
    ("CreateStream", {"StreamName": "s", "StreamModeDetails": "x"}, "Expected null"),
    ("CreateStream", {"StreamName": "s", "StreamModeDetails": []}, "Start of list found where not expected"),
    ("CreateStream", {"StreamName": "s", "Tags": 1}, "Expected map or null"),
    ("CreateStream", {"StreamName": "s", "Tags": []}, "Start of list found where not expected"),
    ("PutRecords", {"StreamName": "s", "Records": "x"}, "Expected list or null"),
    ("PutRecords", {"StreamName": "s", "Records": {}}, "Start of structure or map found where not expected."),
    ("DeleteStream", {"StreamName": "s", "EnforceConsumerDeletion": "hello"},
     "'HELLO' can not be converted to an Boolean"),
    ("DeleteStream", {"StreamName": "s", "EnforceConsumerDeletion": 1},
     "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean"),
    ("PutRecord", {"StreamName": "s", "PartitionKey": "k", "Data": True},
     "class java.lang.Boolean can not be converted to a Blob"),
    ("PutRecord", {"StreamName": "s", "PartitionKey": "k", "Data": 12},
     "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to a Blob"),
    ("GetShardIterator", {"StreamName": "s", "ShardId": "shardId-0", "ShardIteratorType": "AT_TIMESTAMP",
                          "Timestamp": "2018-01-07"},
     "class java.lang.String can not be converted to milliseconds since epoch"),
    ("GetShardIterator", {"StreamName": "s", "ShardId": "shardId-0", "ShardIteratorType": "AT_TIMESTAMP",
                          "Timestamp": True},
     "class java.lang.Boolean can not be converted to milliseconds since epoch"),
]
# JSON only: base64 texts (CBOR sends byte strings)
BASE64 = [
    ("23456", "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but "
              "found: 5"),
    ("=+/=", "'=+/=' can not be converted to a Blob: Invalid Base64 character: '='"),
    ("+/+=", "'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"),
]


# -- driving the ASGI app in-process -----------------------------------------------------------

@pytest.fixture(scope="module")
def app():
    return KinesisApp(clock=fastkin.VirtualClock(start=1_700_000_000.0))


def call(app, op: str, body: bytes, ctype: str = JSON_CT, target: str | None = None, auth: bool = True):
    headers = {"content-type": ctype, "x-amz-target": target if target is not None else f"Kinesis_20131202.{op}"}
    if auth:
        headers.update(placeholder_auth())
    status, _, payload = asgi_request(app, "POST", "/", headers, body)
    doc = (cbor2.loads(payload) if ctype == CBOR_CT else json.loads(payload)) if payload else {}
    return status, doc


def post(app, op: str, params: dict, cbor: bool):
    body = cbor2.dumps(wire(params, True)) if cbor else json.dumps(wire(params, False)).encode()
    return call(app, op, body, CBOR_CT if cbor else JSON_CT)


@pytest.mark.parametrize("cbor", [False, True], ids=["json", "cbor"])
@pytest.mark.parametrize("op, params, message", ROWS, ids=[f"{r[0]}-{i}" for i, r in enumerate(ROWS)])
def test_validation_over_http(app, op, params, message, cbor):
    status, doc = post(app, op, params, cbor)
    assert (status, set(doc), doc["__type"]) == (400, {"__type", "message"}, "ValidationException")
    assert _hashless(doc["message"]) == message


def test_null_optional_member_is_absent(app):
    for cbor in (False, True):
        status, doc = post(app, "PutRecords", {"StreamName": "nope", "Records": [
            {"Data": Blob(b""), "PartitionKey": "k", "ExplicitHashKey": None}], "StreamARN": None}, cbor)
        assert (status, doc) == (400, {"__type": "ResourceNotFoundException",
                                       "message": f"Stream nope under account {ACCT} not found."})


def test_a_list_of_entries_holding_blobs_prints_no_value(app):
    recs = [{"Data": Blob(b"x"), "PartitionKey": "k"}] * 501
    a = post(app, "PutRecords", {"StreamName": "s", "Records": recs}, False)[1]["message"]
    b = post(app, "PutRecords", {"StreamName": "s", "Records": recs}, True)[1]["message"]
    assert a == b == v(1, e(None, "records", "have length less than or equal to 500"))


@pytest.mark.parametrize("cbor", [False, True], ids=["json", "cbor"])
@pytest.mark.parametrize("op, params, message", SERIALIZATION, ids=[f"{r[0]}-{i}" for i, r in enumerate(SERIALIZATION)])
def test_serialization_over_http(app, op, params, message, cbor):
    status, doc = post(app, op, params, cbor)
    assert (status, doc) == (400, {"__type": "SerializationException", "Message": message})


@pytest.mark.parametrize("data, message", BASE64)
def test_base64_texts(app, data, message):
    for op, params in (("PutRecord", {"StreamName": "s", "PartitionKey": "k", "Data": data}),
                       ("PutRecords", {"StreamName": "s", "Records": [{"PartitionKey": "k", "Data": data}]})):
        status, doc = call(app, op, json.dumps(params).encode())
        assert (status, doc) == (400, {"__type": "SerializationException", "Message": message})


def test_cbor_specific_types(app):
    # a text string for a blob, a byte string for a string (AWS's CBOR texts are unknown: the JSON wording)
    assert post(app, "PutRecord", {"StreamName": "s", "PartitionKey": "k", "Data": "text"}, True)[1] == \
        {"__type": "SerializationException", "Message": "class java.lang.String can not be converted to a Blob"}
    assert post(app, "DescribeStream", {"StreamName": b"s"}, True)[1] == \
        {"__type": "SerializationException",
         "Message": "class java.nio.HeapByteBuffer can not be converted to an String"}


@pytest.mark.parametrize("body, ctype, target, doc", [
    (b"", JSON_CT, None, {"__type": "SerializationException"}),
    (b"hello", JSON_CT, None, {"__type": "SerializationException"}),
    (b"[]", JSON_CT, None, {"__type": "SerializationException"}),
    (b"{} {}", JSON_CT, None, {"__type": "SerializationException"}),
    (b'{"Limit": NaN}', JSON_CT, None, {"__type": "SerializationException"}),
    (b"", CBOR_CT, None, {"__type": "SerializationException"}),
    (cbor2.dumps({}) + b"\x00", CBOR_CT, None, {"__type": "SerializationException"}),
    (b"{}", JSON_CT, "Kinesis_20131202.ListStream", {"__type": "UnknownOperationException"}),
    (b"{}", JSON_CT, "Kinesis_20131203.ListStreams", {"__type": "UnknownOperationException"}),
    (b"{}", JSON_CT, "", {"__type": "UnknownOperationException"}),
])
def test_bodies_without_message(app, body, ctype, target, doc):
    assert call(app, "ListStreams", body, ctype, target) == (400, doc)


def test_missing_authentication_after_body_and_target_checks(app):
    # AWS's order: empty or malformed body and unknown target answer first, even without Authorization
    missing = {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"}
    assert call(app, "ListStreams", b"{}", auth=False) == (400, missing)
    assert call(app, "ListStreams", cbor2.dumps({}), CBOR_CT, auth=False) == (400, missing)
    assert call(app, "ListStreams", b"", auth=False) == (400, {"__type": "SerializationException"})
    assert call(app, "ListStreams", b"[]", auth=False) == (400, {"__type": "SerializationException"})
    assert call(app, "ListStream", b"{}", auth=False) == (400, {"__type": "UnknownOperationException"})


_TS_TOO_FAR = {"__type": "SerializationException", "Message": "class com.amazon.coral.value.json.numbers."
               "TruncatingBigNumber can not be converted to milliseconds since epoch"}


def _gsi(ts) -> dict:
    return {"StreamName": "s", "ShardId": "shardId-0", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": ts}


@pytest.mark.parametrize("op, body, ctype, expected", [
    # a 325-level nested list inside a too-long list (type error before validation)
    ("PutRecords", b'{"StreamName":"s","Records":[' + b"[" * 325 + b"]" * 325 + b',{"Data":"","PartitionKey":"k"}'
     * 500 + b"]}", JSON_CT, {"__type": "SerializationException", "Message": "Start of list found where not expected"}),
    ("PutRecords", cbor2.dumps({"StreamName": "s", "Records": [{"Data": b"", "PartitionKey": "k"}] * 500 + [
        [[[[[[[[]]]]]]]]]}), CBOR_CT,
     {"__type": "SerializationException", "Message": "Start of list found where not expected"}),
    ("ListStreams", b"[" * 100000 + b"]" * 100000, JSON_CT, {"__type": "SerializationException"}),
    ("ListStreams", b"\x81" * 100000 + b"\x00", CBOR_CT, {"__type": "SerializationException"}),
    # integers beyond 64 bits and beyond Python's 4,300-digit conversion limit: clamped, then validated
    ("ListStreams", b'{"Limit": ' + b"9" * 5000 + b"}", JSON_CT,
     {"__type": "ValidationException", "message": v(1, e("'2147483647'", "limit",
                                                         "have value less than or equal to 10000"))}),
    ("ListStreams", cbor2.dumps({"Limit": cbor2.CBORTag(2, b"\xff" * 3000)}), CBOR_CT,
     {"__type": "ValidationException", "message": v(1, e("'2147483647'", "limit",
                                                         "have value less than or equal to 10000"))}),
    ("ListStreams", cbor2.dumps({"Limit": cbor2.CBORTag(3, b"\xff" * 3000)}), CBOR_CT,
     {"__type": "ValidationException", "message": v(1, e("'-2147483648'", "limit",
                                                         "have value greater than or equal to 1"))}),
    # timestamps out of range
    ("GetShardIterator", json.dumps(_gsi(-1e16)).encode(), JSON_CT, _TS_TOO_FAR),
    ("GetShardIterator", json.dumps(_gsi(10 ** 400)).encode(), JSON_CT, _TS_TOO_FAR),
    ("GetShardIterator", cbor2.dumps(_gsi(cbor2.CBORTag(1, -1.8e308))), CBOR_CT, _TS_TOO_FAR),
    ("GetShardIterator", cbor2.dumps(_gsi(cbor2.CBORTag(1, float("nan")))), CBOR_CT, _TS_TOO_FAR),
    ("GetShardIterator", cbor2.dumps(_gsi(cbor2.CBORTag(1, float("inf")))), CBOR_CT, _TS_TOO_FAR),
    ("GetShardIterator", cbor2.dumps(_gsi(cbor2.CBORTag(1, 10 ** 400))), CBOR_CT, _TS_TOO_FAR),
    # a self-referencing CBOR value (tags 28/29)
    ("PutRecords", bytes.fromhex("d81ca1675265636f726473d81c81d81d01"), CBOR_CT,
     {"__type": "SerializationException", "Message": "Start of list found where not expected"}),
    ("AddTagsToStream", bytes.fromhex("d81ca26a53747265616d4e616d6561736454616773a16161d81d00"), CBOR_CT,
     {"__type": "SerializationException", "Message": "Start of structure or map found where not expected."}),
])
def test_hostile_input_gets_a_4xx(app, op, body, ctype, expected):
    assert call(app, op, body, ctype) == (400, expected)


# -- in-process through the boto3 mock (constraints botocore does not check client-side) -------

@pytest.fixture(scope="module")
def mock_client():
    with fastkin.mock_kinesis(engine=fastkin.Engine(clock=fastkin.VirtualClock(start=1_700_000_000.0))):
        yield boto3.session.Session().client(
            "kinesis", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t",
            config=Config(retries={"total_max_attempts": 1}))


def _botocore_passes(message: str) -> bool:
    """botocore's client-side validator checks types, required members and minimums (not maximums, patterns,
    enums, or the members AWS requires though the model does not)."""
    rest = message
    for ok in ("Value null at 'partitionKey'", "Value null at 'streamARN'", "Value null at 'records.1.member.pa"):
        rest = rest.replace(ok, "")
    return "greater than or equal" not in message and "Value null" not in rest


MOCK_ROWS = [r for r in ROWS if _botocore_passes(r[2]) and r[0] != "ListStreams"]   # 1.5e12: a float
assert len(MOCK_ROWS) >= 10


@pytest.mark.parametrize("op, params, message", MOCK_ROWS, ids=[f"{r[0]}-{i}" for i, r in enumerate(MOCK_ROWS)])
def test_validation_in_process(mock_client, op, params, message):
    from botocore import xform_name
    with pytest.raises(mock_client.exceptions.ClientError) as ei:
        getattr(mock_client, xform_name(op))(**{k: (bytes(x) if isinstance(x, Blob) else x) for k, x in
                                               wire(params, True).items()})
    err = ei.value.response["Error"]
    assert (err["Code"], _hashless(err["Message"])) == ("ValidationException", message)


def test_mock_validates_before_the_stream_lookup(mock_client):
    with pytest.raises(mock_client.exceptions.ClientError) as ei:
        mock_client.put_records(StreamName="a b", Records=[{"Data": b"x", "PartitionKey": "k"}])
    assert ei.value.response["Error"]["Message"] == v(1, e("'a b'", "streamName",
                                                           f"satisfy regular expression pattern: {NAME_PAT}"))


# -- fuzz: mutated valid requests never get a 5xx ------------------------------------------------

SEEDS = [
    ("CreateStream", {"StreamName": "f", "ShardCount": 1, "Tags": {"a": "b"}}),
    ("PutRecord", {"StreamName": "f", "Data": Blob(b"abc"), "PartitionKey": "k", "ExplicitHashKey": "1"}),
    ("PutRecords", {"StreamName": "f", "Records": [{"Data": Blob(b"a"), "PartitionKey": "k"},
                                                  {"Data": Blob(b"b"), "PartitionKey": "j", "ExplicitHashKey": "7"}]}),
    ("GetShardIterator", {"StreamName": "f", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP",
                          "Timestamp": 1_700_000_000}),
    ("ListShards", {"StreamName": "f", "MaxResults": 5, "ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": 1.0}}),
    ("GetRecords", {"ShardIterator": "AAAA", "Limit": 10}),
    ("RemoveTagsFromStream", {"StreamName": "f", "TagKeys": ["a"]}),
    ("UpdateShardCount", {"StreamName": "f", "TargetShardCount": 2, "ScalingType": "UNIFORM_SCALING"}),
    ("SubscribeToShard", {"ConsumerARN": ARN + "/consumer/c:1", "ShardId": "shardId-000000000000",
                          "StartingPosition": {"Type": "AT_TIMESTAMP", "Timestamp": 5}}),
]

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.sampled_from([10 ** 400, -(10 ** 30), 2 ** 63, -1e16, 1e300, 1.5, -0.5]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6), st.binary(max_size=6),
    st.sampled_from(["", "=", "AAAA", "AA==", "A===", "shardId-0", "LATEST", "AT_TIMESTAMP", "x" * 600]))
_values = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    st.sampled_from(["Data", "PartitionKey", "Type", "Timestamp", "a", "StreamName"]), kids, max_size=3),
    max_leaves=6)


def _mutate(value, path: list, new):
    if not path:
        return new
    k, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = dict(value)
        out[k] = _mutate(value.get(k), rest, new)
        return out
    if isinstance(value, list) and value and isinstance(k, int):
        out = list(value)
        out[k % len(out)] = _mutate(out[k % len(out)], rest, new)
        return out
    return new


def _paths(value, prefix=()):
    yield list(prefix)
    if isinstance(value, dict):
        for k, x in value.items():
            yield from _paths(x, (*prefix, k))
    elif isinstance(value, list):
        for i, x in enumerate(value):
            yield from _paths(x, (*prefix, i))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), cbor=st.booleans(), data=st.data())
def test_fuzz_never_5xx(app, seed, cbor, data):
    op, params = seed
    body = wire(params, cbor)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(_paths(body))))
        if path and data.draw(st.booleans()):
            path = [*path[:-1], data.draw(st.sampled_from(["Extra", "Records", "Data", "Timestamp", "Tags"]))]
        body = _mutate(body, path, data.draw(_values))
    if cbor:
        if data.draw(st.booleans()):
            body = cbor2.CBORTag(1, body) if data.draw(st.booleans()) else body
        raw = cbor2.dumps(body)
    else:
        try:
            raw = json.dumps(body, default=lambda b: base64.b64encode(b).decode()).encode()
        except (ValueError, TypeError):
            return
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(raw)))
        raw = raw[:cut] + data.draw(st.binary(max_size=4)) + raw[cut:]
    status, _ = call(app, op, raw, CBOR_CT if cbor else JSON_CT)
    assert status < 500, (op, raw[:300])

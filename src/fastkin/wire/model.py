"""botocore's Kinesis service model and what the wire layer derives from it: the server-side constraint
checks (length, range, pattern, enum: what AWS checks and botocore's client-side validator does not),
AWS's ValidationException text, and the codecs between wire bodies (JSON 1.1 with base64 blobs and epoch
seconds; CBOR with byte strings and tag-1 epoch milliseconds) and botocore-shaped params.
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import io
import json
import math
import re
import sys
import threading
import zlib
from decimal import Decimal
from fractions import Fraction
from typing import Any

import botocore.session

from .. import errors as E

_MODEL = None
_MODEL_LOCK = threading.Lock()


def service_model():
    """botocore's Kinesis service model (loaded once per process)."""
    global _MODEL
    if _MODEL is None:
        with _MODEL_LOCK:
            if _MODEL is None:
                _MODEL = botocore.session.get_session().get_service_model("kinesis")
    return _MODEL


# ---------------------------------------------------------------------------------------------
# Server-side constraint checks from the model (botocore checks types, required and min only).
#
# AWS's ValidationException text (facts §1, recorded against the service by kinesalite's tests):
#   "{N} validation error{s} detected: " + "; ".join(errors), N capped at 10 and at most 10 errors listed,
#   each "Value {v} at '{path}' failed to satisfy constraint: {constraint}".
# Paths are member names in lowerCamel, list entries "records.1.member.partitionKey" (1-based).
# Values: null unquoted; strings and numbers in single quotes ('abc', '0'); lists of strings '[a, b]';
# lists of structures as Java prints them, '[com.amazonaws.kinesis.v20131202.ShardFilter@c965e310, ...]',
# where fastkin's "hash" is the CRC-32 of the entry's members, so it is stable for the same request (AWS's
# varies); maps '{k=v}' (Java's Map.toString). Blobs, and values that hold blobs (PutRecords' Records), print
# no value at all ("Value at 'records.1.member.data' ...", "Value at 'records' ...": the newer service's form
# for blobs; for lists of entries the old recordings printed the Java names, and fastkin follows the newer
# blob form so that the engine and the wire word the 500-record limit alike).
# Order: members in the order AWS emitted them where recorded (_MEMBER_ORDER), else model order; within a
# member enum or pattern before length. Lists of scalars and maps are checked as a whole, as AWS words it:
# "Member must satisfy constraint: [...]", "Map keys must satisfy constraint: [...]".

MAX_ERRORS = 10

# AWS's member order in its messages where recorded (kinesalite's validations/*.js list the members in the
# order AWS emitted them; facts §1). Members not listed follow in model order.
_MEMBER_ORDER: dict[str, tuple[str, ...]] = {
    "CreateStreamInput": ("ShardCount", "StreamName"),
    "PutRecordInput": ("SequenceNumberForOrdering", "PartitionKey", "ExplicitHashKey", "Data", "StreamName"),
    "PutRecordsInput": ("Records", "StreamName"),
    "PutRecordsRequestEntry": ("PartitionKey", "ExplicitHashKey", "Data"),
    "GetShardIteratorInput": ("ShardId", "ShardIteratorType", "StartingSequenceNumber", "StreamName"),
    "GetRecordsInput": ("Limit", "ShardIterator"),
    "SplitShardInput": ("NewStartingHashKey", "StreamName", "ShardToSplit"),
    "MergeShardsInput": ("ShardToMerge", "AdjacentShardToMerge", "StreamName"),
    "ListShardsInput": ("ExclusiveStartShardId", "MaxResults", "NextToken", "StreamCreationTimestamp", "StreamName"),
    "DescribeStreamInput": ("Limit", "ExclusiveStartShardId", "StreamName"),
    "ListStreamsInput": ("Limit", "ExclusiveStartStreamName"),
    "ListTagsForStreamInput": ("Limit", "ExclusiveStartTagKey", "StreamName"),
    "AddTagsToStreamInput": ("Tags", "StreamName"),
    "RemoveTagsFromStreamInput": ("TagKeys", "StreamName"),
    "UpdateShardCountInput": ("ScalingType", "StreamName", "TargetShardCount"),
    "IncreaseStreamRetentionPeriodInput": ("RetentionPeriodHours", "StreamName"),
    "DecreaseStreamRetentionPeriodInput": ("RetentionPeriodHours", "StreamName"),
}

# Enum value sets in the order AWS prints them (a Java hash-set order, so only a recording tells; facts §1).
# Enums not listed print in model order.
_ENUM_ORDER: dict[str, tuple[str, ...]] = {
    "ShardIteratorType": ("AFTER_SEQUENCE_NUMBER", "LATEST", "AT_TIMESTAMP", "AT_SEQUENCE_NUMBER", "TRIM_HORIZON"),
}

# Members AWS still requires though the newest model marks them optional (UpdateMaxRecordSize names its stream
# by ARN only). Missing or null, they get "Member must not be null" like any required member. PartitionKey is
# optional since AUTO record distribution: the stream decides (fastkin.stream raises the same "Member must not
# be null" text on a USER_PARTITION_KEY stream, after the stream is found).
AWS_REQUIRED: dict[str, tuple[str, ...]] = {
    "UpdateMaxRecordSizeInput": ("StreamARN",),
}


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def printed_pattern(pattern: str) -> str:
    """A model pattern as AWS prints it: the model's ``^(...)$`` wrapping (botocore's newer models anchor
    some patterns) dropped, so ``^(0|([1-9]\\d{0,38}))$`` prints ``0|([1-9]\\d{0,38})``; others verbatim."""
    if pattern.startswith("^(") and pattern.endswith(")$"):
        depth = 0
        inner = pattern[1:-1]
        for i, ch in enumerate(inner):
            if ch == "(" and (i == 0 or inner[i - 1] != "\\"):
                depth += 1
            elif ch == ")" and inner[i - 1] != "\\":
                depth -= 1
                if depth == 0 and i != len(inner) - 1:
                    return pattern          # the first group closes early: not one wrapping group
        return inner[1:-1]
    return pattern


_SHAPE_INFO: dict[int, tuple] = {}


def _members(shape) -> tuple[tuple[tuple[str, Any], ...], frozenset[str]]:
    """(name, member shape) in AWS's order, and the required names, of a structure shape (cached)."""
    info = _SHAPE_INFO.get(id(shape))
    if info is None:
        members = shape.members
        first = [n for n in _MEMBER_ORDER.get(shape.name, ()) if n in members]
        order = tuple((n, members[n]) for n in first + [n for n in members if n not in first])
        required = frozenset(shape.required_members) | frozenset(AWS_REQUIRED.get(shape.name, ()))
        info = _SHAPE_INFO[id(shape)] = (shape, order, required)
    return info[1], info[2]


def _scalar_constraints(shape) -> list[str]:
    """The constraints of a list's or map's scalar members, as AWS lists them inside "[...]"."""
    md = shape.metadata
    out = []
    if md.get("max") is not None:
        out.append(f"Member must have length less than or equal to {md['max']}")
    if md.get("min") is not None:
        out.append(f"Member must have length greater than or equal to {md['min']}")
    if md.get("pattern"):
        out.append(f"Member must satisfy regular expression pattern: {printed_pattern(md['pattern'])}")
    if md.get("enum"):
        out.append(f"Member must satisfy enum value set: [{', '.join(_ENUM_ORDER.get(shape.name, md['enum']))}]")
    return out


def _java_str(shape, value) -> str:
    """A value inside a list or map as Java's toString prints it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if shape is not None and shape.type_name == "structure" and isinstance(value, dict):
        h = zlib.crc32(repr(sorted((k, len(v) if isinstance(v, (bytes, bytearray, memoryview)) else v)
                                   for k, v in value.items())).encode("utf-8", "replace"))
        return f"com.amazonaws.kinesis.v20131202.{shape.name}@{h:x}"
    if isinstance(value, (list, tuple)):
        m = shape.member if shape is not None and shape.type_name == "list" else None
        return "[" + ", ".join(_java_str(m, v) for v in value) + "]"
    if isinstance(value, dict):
        v_shape = shape.value if shape is not None and shape.type_name == "map" else None
        return "{" + ", ".join(f"{k}={_java_str(v_shape, v)}" for k, v in value.items()) + "}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"java.nio.HeapByteBuffer[pos=0 lim={len(value)} cap={len(value)}]"
    return str(value)


# The Python types a botocore-shaped param may have (after from_wire, or as boto3 users pass them).
_PY_TYPES: dict[str, tuple] = {
    "string": (str,), "integer": (int,), "long": (int,), "boolean": (bool,),
    "blob": (bytes, bytearray, memoryview, str), "timestamp": (int, float, str, _dt.datetime)}


class Checker:
    """Walks an input shape and collects AWS-style constraint violations (at most MAX_ERRORS).

    With ``types=True`` (requests that did not pass through botocore's own validator) a value of the
    wrong type raises SerializationException with AWS's text (the HTTP server decodes bodies with
    from_wire, which does the same on the wire's types first)."""

    def __init__(self, types: bool) -> None:
        self.types = types
        self.errors: list[str] = []
        self._patterns: dict[str, re.Pattern] = {}

    def add(self, shown: str | None, where: str, constraint: str) -> None:
        value = "Value" if shown is None else f"Value {shown}"
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{value} at '{where}' failed to satisfy constraint: {constraint}")

    def run(self, shape, value, where: str = "") -> None:
        self.check(shape, value, where)

    def _mistyped(self, shape, value) -> None:
        if self.types:
            raise E.SerializationException(type_error_text(shape.type_name, value, cbor=False))

    def check(self, shape, value, where: str) -> None:
        t = shape.type_name
        md = shape.metadata
        if t == "structure":
            if not isinstance(value, dict):
                return self._mistyped(shape, value)
            order, required = _members(shape)
            for name, m in order:
                if len(self.errors) >= MAX_ERRORS:
                    return                              # ten collected: AWS lists no more
                v = value.get(name)
                if v is None:
                    if name in required:
                        self.add("null", _join(where, _lower_camel(name)), "Member must not be null")
                    continue
                self.check(m, v, _join(where, _lower_camel(name)))
        elif t == "list":
            if not isinstance(value, (list, tuple)):
                return self._mistyped(shape, value)
            member = shape.member
            if member.type_name == "structure":
                self._length(shape, value, len(value), md, where)
                for i, v in enumerate(value):
                    if len(self.errors) >= MAX_ERRORS:
                        return
                    if v is None:
                        self.add("null", f"{where}.{i + 1}.member", "Member must not be null")
                    else:
                        self.check(member, v, f"{where}.{i + 1}.member")
                return
            for v in value:
                if self.types and v is not None:
                    self._scalar_type(member, v)
            self._length(shape, value, len(value), md, where)
            if any(v is None or self._violations(member, v) for v in value):
                self.add(f"'{_java_str(shape, value)}'", where,
                         "Member must satisfy constraint: [" + ", ".join(_scalar_constraints(member)) + "]")
        elif t == "map":
            if not isinstance(value, dict):
                return self._mistyped(shape, value)
            if self.types:
                for k, v in value.items():
                    self._scalar_type(shape.key, k)
                    if v is not None:
                        self._scalar_type(shape.value, v)
            self._length(shape, value, len(value), md, where)
            shown = _java_str(shape, value)
            if any(self._violations(shape.key, k) for k in value):
                self.add(f"'{shown}'", where,
                         "Map keys must satisfy constraint: [" + ", ".join(_scalar_constraints(shape.key)) + "]")
            if any(v is None or self._violations(shape.value, v) for v in value.values()):
                self.add(f"'{shown}'", where,
                         "Map value must satisfy constraint: [" + ", ".join(_scalar_constraints(shape.value)) + "]")
        else:
            if self.types:
                self._scalar_type(shape, value)
            for constraint in self._violations(shape, value):
                self.add(None if t == "blob" else f"'{_java_str(shape, value)}'", where, constraint)

    def _scalar_type(self, shape, value) -> None:
        t = shape.type_name
        ok = _PY_TYPES.get(t)
        if ok is not None and (not isinstance(value, ok) or (isinstance(value, bool) and t not in ("boolean",))):
            raise E.SerializationException(type_error_text(t, value, cbor=False))

    def _violations(self, shape, value) -> list[str]:
        """The constraints a scalar value breaks, in AWS's order (enum or pattern, then length or range)."""
        t = shape.type_name
        md = shape.metadata
        out: list[str] = []
        if t == "string":
            if not isinstance(value, str):
                return out
            enum = md.get("enum")
            if enum and value not in enum:
                out.append("Member must satisfy enum value set: [" + ", ".join(_ENUM_ORDER.get(shape.name, enum)) + "]")
            pat = md.get("pattern")
            if pat:
                rx = self._patterns.get(pat)
                if rx is None:
                    rx = self._patterns[pat] = re.compile(pat)
                if rx.fullmatch(value) is None:
                    out.append(f"Member must satisfy regular expression pattern: {printed_pattern(pat)}")
            n = len(value)
        elif t in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                return out
            lo, hi = md.get("min"), md.get("max")
            if lo is not None and value < lo:
                out.append(f"Member must have value greater than or equal to {lo}")
            elif hi is not None and value > hi:
                out.append(f"Member must have value less than or equal to {hi}")
            return out
        elif t == "blob":
            if isinstance(value, str):
                value = value.encode()
            if not isinstance(value, (bytes, bytearray, memoryview)):
                return out
            n = len(value)
        else:
            return out
        lo, hi = md.get("min"), md.get("max")
        if lo is not None and n < lo:
            out.append(f"Member must have length greater than or equal to {lo}")
        elif hi is not None and n > hi:
            out.append(f"Member must have length less than or equal to {hi}")
        return out

    def _length(self, shape, value, n: int, md: dict, where: str) -> None:
        lo, hi = md.get("min"), md.get("max")
        shown = None if value and _holds_blob(shape) else f"'{_java_str(shape, value)}'"   # '[]' is recorded
        if lo is not None and n < lo:
            self.add(shown, where, f"Member must have length greater than or equal to {lo}")
        elif hi is not None and n > hi:
            self.add(shown, where, f"Member must have length less than or equal to {hi}")


_BLOB_HOLDERS: dict[str, bool] = {}


def _holds_blob(shape, _seen: frozenset = frozenset()) -> bool:
    """Whether values of ``shape`` contain a blob: the service prints no value for those ("Value at 'records'
    failed to satisfy constraint: ..."), as it prints none for a blob itself."""
    key = shape.name
    if key in _BLOB_HOLDERS:
        return _BLOB_HOLDERS[key]
    t = shape.type_name
    if t == "blob":
        out = True
    elif key in _seen:
        out = False
    elif t == "list":
        out = _holds_blob(shape.member, _seen | {key})
    elif t == "map":
        out = _holds_blob(shape.value, _seen | {key})
    elif t == "structure":
        out = any(_holds_blob(m, _seen | {key}) for m in shape.members.values())
    else:
        out = False
    _BLOB_HOLDERS[key] = out
    return out


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def validation_message(errors: list[str]) -> str:
    n = min(len(errors), MAX_ERRORS)
    return f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(errors[:MAX_ERRORS])


def check_request(op_model, params: dict, types: bool) -> None:
    """Raise ValidationException (AWS's text) when params break the model's constraints."""
    shape = op_model.input_shape
    if shape is None:
        return
    c = Checker(types)
    c.run(shape, params, "")
    if c.errors:
        raise E.ValidationException(validation_message(c.errors))


# ---------------------------------------------------------------------------------------------
# wire <-> botocore shapes
#
# Decoding checks the wire types as AWS's (Java, Coral) deserializer does and raises SerializationException
# with its texts (facts §2, recorded for JSON 1.1): "class java.lang.Boolean can not be converted to an
# String", "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an
# Integer" (any number where a string, blob or, for integers, boolean is expected), "Start of list found where
# not expected", "Start of structure or map found where not expected.", "Expected list or null", "Expected
# map or null", "Expected null" (a scalar for a structure), base64 errors for blobs, "... can not be
# converted to milliseconds since epoch" for timestamps. Integers accept numbers with a fraction (floored)
# and clamp to the Java int (long) range, so validation then reports the clamped value. Booleans accept
# 'true'/'false'/'yes'/'no'/'1'/'0' and numbers with a fraction (AWS does). null means absent.
# CBOR uses the same rules and texts (AWS's CBOR texts are not recorded): text strings are strings, byte
# strings blobs (a byte string elsewhere is "class java.nio.HeapByteBuffer ...", a text string for a blob
# "class java.lang.String can not be converted to a Blob"), tag 1 an epoch-milliseconds timestamp.
# Timestamps whose milliseconds do not fit a Java long (or are NaN/infinite) are refused with the
# TruncatingBigNumber text (AWS's answer unknown).

_INT_RANGE = {"integer": (-2 ** 31, 2 ** 31 - 1), "long": (-2 ** 63, 2 ** 63 - 1)}
_TARGET = {"string": "an String", "integer": "an Integer", "long": "an Long", "boolean": "an Boolean",
           "blob": "a Blob", "timestamp": "milliseconds since epoch", "float": "an Float", "double": "an Double"}
_NUMBER_CLASS = "com.amazon.coral.value.json.numbers.TruncatingBigNumber"
_LONG_MAX = 2 ** 63 - 1
_B64_BAD = re.compile(r"[^A-Za-z0-9+/=]|=[^=]")


class EpochMillis:
    """A CBOR tag-1 value: epoch milliseconds, as the Java SDK writes timestamps."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value


def _is_number(value) -> bool:
    return isinstance(value, (int, float, Decimal, Fraction)) and not isinstance(value, bool)


def _java_class(value) -> str:
    if isinstance(value, bool):
        return "java.lang.Boolean"
    if _is_number(value):
        return _NUMBER_CLASS
    if isinstance(value, str):
        return "java.lang.String"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "java.nio.HeapByteBuffer"
    if isinstance(value, (EpochMillis, _dt.datetime)):
        return "java.util.Date"
    return "java.lang.Object"


def type_error_text(t: str, value, cbor: bool = False) -> str:
    """AWS's SerializationException text for ``value`` where a ``t`` (model type name) is expected."""
    if isinstance(value, (list, tuple)):
        return "Start of list found where not expected"
    if isinstance(value, dict):
        return "Start of structure or map found where not expected."
    if t == "list":
        return "Expected list or null"
    if t == "map":
        return "Expected map or null"
    if t == "structure":
        return "Expected null"
    if t == "boolean" and isinstance(value, str):
        return f"'{value.upper()}' can not be converted to an Boolean"
    return f"class {_java_class(value)} can not be converted to {_TARGET.get(t, 'an ' + t.capitalize())}"


def _bad_type(t: str, value, cbor: bool) -> E.SerializationException:
    return E.SerializationException(type_error_text(t, value, cbor))


# The last data character of a padded group carries unused low bits, which must be zero: before "==" it holds
# 2 bits of data (an alphabet index divisible by 16), before "=" 4 bits (an index divisible by 4).
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_CLEAN_BEFORE_2PAD = frozenset(_ALPHABET[::16])
_CLEAN_BEFORE_1PAD = frozenset(_ALPHABET[::4])


def _canonical_tail(s: str, data: bytes) -> bool:
    """A padded base64 string whose last group has no stray bits (what Java's decoder insists on); ``data`` is
    its decoding (empty for a string of padding only)."""
    if not data:
        return False
    if s[-2] == "=":
        return s[-3] in _CLEAN_BEFORE_2PAD
    return s[-2] in _CLEAN_BEFORE_1PAD


def decode_base64(s: str) -> bytes:
    """A JSON blob: strict, canonical base64, else SerializationException with AWS's text."""
    try:
        data = _b64(s)
        if not s.endswith("=") or _canonical_tail(s, data):
            return data
    except (binascii.Error, ValueError):
        pass
    prefix = f"'{s}' can not be converted to a Blob: "
    if len(s) % 4:
        raise E.SerializationException(
            f"{prefix}Base64 encoded length is expected a multiple of 4 bytes but found: {len(s)}")
    m = _B64_BAD.search(s)
    if m is not None:
        raise E.SerializationException(f"{prefix}Invalid Base64 character: '{m.group()[0]}'")
    raise E.SerializationException(f"{prefix}Invalid last non-pad Base64 character dectected")


def _to_int(t: str, value, cbor: bool) -> int:
    if not _is_number(value) or value != value:         # NaN: refused (AWS's answer unknown)
        raise _bad_type(t, value, cbor)
    lo, hi = _INT_RANGE[t]
    if value > hi:
        return hi
    if value < lo:
        return lo
    return value if type(value) is int else math.floor(value)


def _to_timestamp(value, cbor: bool):
    if isinstance(value, _dt.datetime):
        return value
    millis = isinstance(value, EpochMillis)
    if millis:
        value = value.value
    if not _is_number(value):
        raise _bad_type("timestamp", value, cbor)
    try:
        secs = float(value) / 1000.0 if millis else float(value)
    except (OverflowError, ValueError, ArithmeticError):
        secs = math.inf
    if not math.isfinite(secs) or abs(secs * 1000.0) > _LONG_MAX:
        raise E.SerializationException(f"class {_NUMBER_CLASS} can not be converted to milliseconds since epoch")
    return secs


def from_wire(shape, value, cbor: bool):
    """Decode a request body (JSON or CBOR, already parsed) into botocore-shaped params: blobs as bytes,
    timestamps as epoch seconds, members of the wrong wire type refused with AWS's SerializationException.
    Unknown members and null members are dropped (null means absent); nulls inside lists stay (validation
    reports them)."""
    t = shape.type_name
    if t == "structure":
        if type(value) is not dict:
            raise _bad_type(t, value, cbor)
        members = shape.members
        out = {}
        for k, v in value.items():
            m = members.get(k) if type(k) is str else None
            if m is not None and v is not None:
                out[k] = from_wire(m, v, cbor)
        return out
    if t == "list":
        if type(value) is not list:
            raise _bad_type(t, value, cbor)
        m = shape.member
        return [None if v is None else from_wire(m, v, cbor) for v in value]
    if t == "map":
        if type(value) is not dict:
            raise _bad_type(t, value, cbor)
        ks, vs = shape.key, shape.value
        return {from_wire(ks, k, cbor): (None if v is None else from_wire(vs, v, cbor)) for k, v in value.items()}
    if t == "string":
        if type(value) is str:
            return value
        raise _bad_type(t, value, cbor)
    if t in _INT_RANGE:
        return _to_int(t, value, cbor)
    if t == "blob":
        if cbor:
            if isinstance(value, (bytes, bytearray)):
                return bytes(value)
            raise _bad_type(t, value, cbor)
        if type(value) is not str:
            raise _bad_type(t, value, cbor)
        return decode_base64(value)
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            v = value.lower()
            if v in ("true", "yes", "1"):
                return True
            if v in ("false", "no", "0"):
                return False
        elif isinstance(value, float):
            return value != 0.0                         # AWS accepts numbers with a fraction here
        raise _bad_type(t, value, cbor)
    if t == "timestamp":
        return _to_timestamp(value, cbor)
    return value


def _json_int(s: str):
    # Python refuses int() of more than 4,300 digits; such a number is out of every range anyway.
    if len(s) > 4000:
        return -math.inf if s.startswith("-") else math.inf
    return int(s)


def _json_constant(s: str):
    raise ValueError(f"{s} is not JSON")


def json_loads(body: bytes):
    """Parse a JSON 1.1 body (NaN/Infinity literals are not JSON; huge integers become infinities)."""
    return json.loads(body, parse_int=_json_int, parse_constant=_json_constant)


_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson comes with the server extra; the standard library serves too
    _orjson = None


def json_body(body: bytes):
    """Parse a request body: orjson for speed; whatever orjson refuses (numbers beyond 64 bits, lone
    surrogates, deep nesting) goes to json_loads, which decides as before (a value, or SerializationException)."""
    if _orjson is not None:
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError:
            pass
    try:
        return json_loads(body)
    except Exception:  # noqa: BLE001 - any decoder failure (or RecursionError) is a malformed body
        raise E.SerializationException("") from None


def json_dumps(obj) -> bytes:
    """Compact JSON bytes (orjson when installed)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj)
        except TypeError:       # a string orjson cannot encode (a lone surrogate): json escapes it
            pass
    return json.dumps(obj, separators=(",", ":")).encode()


def to_wire(shape, value, cbor: bool):
    t = shape.type_name
    if t == "structure":
        members = shape.members
        return {k: to_wire(members[k], v, cbor) for k, v in value.items() if k in members and v is not None}
    if t == "list":
        m = shape.member
        return [to_wire(m, v, cbor) for v in value]
    if t == "map":
        return {k: to_wire(shape.value, v, cbor) for k, v in value.items()}
    if t == "blob":
        return bytes(value) if cbor else base64.b64encode(value).decode("ascii")
    if t == "timestamp":
        secs = value.timestamp() if isinstance(value, _dt.datetime) else float(value)
        if cbor:
            import cbor2
            return cbor2.CBORTag(1, math.floor(secs * 1000 + 0.5))
        return secs
    return value


_EXPLICIT_HASH_KEY = re.compile(r"0|([1-9]\d{0,38})")
_BLOB_MAX = 10 * 1024 * 1024
if sys.version_info >= (3, 11):
    def _b64(s: str) -> bytes:
        return binascii.a2b_base64(s, strict_mode=True)
else:  # pragma: no cover
    def _b64(s: str) -> bytes:
        return base64.b64decode(s, validate=True)


_STREAM_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
_STREAM_ARN = re.compile(r"arn:aws.*:kinesis:.*:\d{12}:stream/\S+")


def put_records_ok(params: dict) -> bool:
    """True for the common well-formed PutRecords params (botocore-shaped): 1-500 entries, each with a
    partition key of 1-256 characters, data of at most 10 MiB and a well-formed ExplicitHashKey if any, and
    a well-formed StreamName/StreamARN. Anything else takes the generic walk (check_request), which then
    words AWS's errors. The engine checks the rest (record sizes, the hash key's range)."""
    recs = params.get("Records")
    if type(recs) is not list or not 1 <= len(recs) <= 500:
        return False
    for r in recs:
        if type(r) is not dict:
            return False
        pk, data = r.get("PartitionKey"), r.get("Data")
        if type(pk) is not str or not 1 <= len(pk) <= 256 or data is None or len(data) > _BLOB_MAX:
            return False
        ehk = r.get("ExplicitHashKey")
        if ehk is not None and (type(ehk) is not str or _EXPLICIT_HASH_KEY.fullmatch(ehk) is None):
            return False
    return _stream_ok(params)


b64decode_strict = _b64


def _stream_ok(params: dict) -> bool:
    name, arn = params.get("StreamName"), params.get("StreamARN")
    if name is not None and (type(name) is not str or _STREAM_NAME.fullmatch(name) is None):
        return False
    return arn is None or (type(arn) is str and len(arn) <= 2048 and _STREAM_ARN.fullmatch(arn) is not None)


_PUT_RECORD_MEMBERS = frozenset({"StreamName", "StreamARN", "Data", "PartitionKey", "ExplicitHashKey",
                                 "SequenceNumberForOrdering"})
_SEQUENCE_NUMBER = re.compile(r"0|([1-9]\d{0,128})")


def put_record_ok(params: dict) -> bool:
    """True for the common well-formed PutRecord params (botocore-shaped), tested quickly: anything else (another
    member, a bad type or constraint) takes the generic walk, which words AWS's errors.
    NOTE: the walk costs ~3 us per call, a sixth of a PutRecord through the mock."""
    if not _PUT_RECORD_MEMBERS.issuperset(params):
        return False
    pk, data = params.get("PartitionKey"), params.get("Data")
    if type(pk) is not str or not 1 <= len(pk) <= 256 or data is None or len(data) > _BLOB_MAX:
        return False
    ehk, sfo = params.get("ExplicitHashKey"), params.get("SequenceNumberForOrdering")
    if ehk is not None and (type(ehk) is not str or _EXPLICIT_HASH_KEY.fullmatch(ehk) is None):
        return False
    if sfo is not None and (type(sfo) is not str or _SEQUENCE_NUMBER.fullmatch(sfo) is None):
        return False
    return _stream_ok(params)


def put_records_params(shape, raw: dict, cbor: bool) -> dict | None:
    """PutRecords params decoded in one pass, when the request is well-formed: the right types, 1-500
    entries, partition keys of 1-256 characters, ExplicitHashKeys matching the model's pattern, blobs of at
    most 10 MiB and nothing else. The engine checks the rest (sizes, the hash key's range, the stream), as
    for the in-process mock. Anything else returns None: the generic walk then decodes and checks the
    request and raises AWS's errors.
    NOTE: the generic walk (_from_wire, then the service's type and constraint check) cost 6 of the 9 ms
    of server CPU that a PutRecords of 500 x 100 B took (cProfile); this pass costs well under 1 ms."""
    recs = raw.get("Records")
    if type(recs) is not list or not 1 <= len(recs) <= 500:
        return None
    out: list[dict] = []
    append = out.append
    try:
        for r in recs:
            if type(r) is not dict:
                return None
            data, pk = r.get("Data"), r.get("PartitionKey")
            if type(pk) is not str or not 1 <= len(pk) <= 256:
                return None
            if cbor:
                if type(data) is not bytes:
                    return None
            elif type(data) is str:
                s, data = data, _b64(data)
                if s.endswith("=") and not _canonical_tail(s, data):
                    return None                         # non-canonical padding bits: the generic walk words it
            else:
                return None
            if len(data) > _BLOB_MAX:
                return None
            if len(r) == 2:
                append({"Data": data, "PartitionKey": pk})
                continue
            ehk = r.get("ExplicitHashKey")
            if len(r) != 3 or ehk is None or type(ehk) is not str or _EXPLICIT_HASH_KEY.fullmatch(ehk) is None:
                return None
            append({"Data": data, "PartitionKey": pk, "ExplicitHashKey": ehk})
    except (binascii.Error, ValueError):
        return None
    params: dict[str, object] = {"Records": out}
    members = shape.members
    for k, v in raw.items():
        if k == "Records" or v is None or k not in members:
            continue                                    # unknown members are ignored, as AWS does
        if k not in ("StreamName", "StreamARN") or type(v) is not str:
            return None
        params[k] = v
    checker = Checker(types=True)                      # the model's constraints on the stream's name and ARN
    for k in ("StreamName", "StreamARN"):
        if k in params:
            checker.check(members[k], params[k], k[:1].lower() + k[1:])
    return None if checker.errors else params


def cbor_loads(body: bytes):
    """Parse a CBOR body: exactly one top-level item (bytes after it are refused, as JSON refuses trailing
    text); tag 1 gives an EpochMillis. Any decoder failure (including cbor2's nesting cap of 400) is the
    client's malformed body: SerializationException without a message."""
    import cbor2

    fp = io.BytesIO(body)
    try:
        value = cbor2.CBORDecoder(fp, semantic_decoders={1: lambda value, immutable: EpochMillis(value)}).decode()
    except Exception:  # noqa: BLE001 - cbor2 raises several types (CBORDecodeError, ValueError, RecursionError)
        raise E.SerializationException("") from None
    if fp.tell() != len(body):
        raise E.SerializationException("")
    return value


def cbor_dumps(obj) -> bytes:
    import cbor2
    return cbor2.dumps(obj)

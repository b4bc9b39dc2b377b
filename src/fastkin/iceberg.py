"""Channels to S3 Tables: an Apache Iceberg v2 table written with pyiceberg and pyarrow (``fastkin[channels]``).

Nothing here imports pyiceberg or pyarrow at module level: they load when an S3 Tables channel becomes ACTIVE.

- **Catalog** (``Engine(channel_iceberg=...)``): ``None`` (a temporary directory made on first use), a directory
  ``DIR`` (a SQLite SQL catalog ``DIR/catalog.db`` and the warehouse ``DIR/warehouse``; the table bucket's name is
  the pyiceberg catalog name, so the tables of one table bucket are ``SqlCatalog(bucket, uri=...)``'s and every
  table's files are under ``DIR/warehouse/{bucket}/{namespace}/{table}``), or a pyiceberg ``Catalog`` (used
  for every table bucket).
- **Schema**: the channel's ``GSRSchemaARN`` (``arn:aws:glue:{region}:{acct}:schema/{registry}/{schema}``) names a
  JSON Schema. fastkin reads it from ``DIR/schemas/{registry}/{schema}.json`` when that file exists (the local
  equivalent of the Glue Schema Registry), otherwise from Glue through boto3 (``get_schema_version``, latest
  version) only where that stays local: under moto's ``mock_aws`` (moto's Glue) or with AWS_ENDPOINT_URL_GLUE.
- **JSON Schema -> Iceberg**: an object's ``properties`` are the columns, in order; ``required`` ones are
  required. ``string`` -> string (``format: date-time`` -> timestamptz, ``date`` -> date), ``integer`` -> long,
  ``number`` -> double, ``boolean`` -> boolean, ``object`` -> struct, ``array`` -> list of ``items``; a type list
  with ``"null"`` is that type, optional.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import sys
import tempfile
import zlib
from typing import Any

from . import errors as E

_GSR_ARN = re.compile(r"arn:aws[-a-z0-9]*:glue:([-a-z0-9]+):(\d{12}):schema/([-a-zA-Z0-9_$#.]+)/([-a-zA-Z0-9_$#.]+)\Z")
CODECS = {"NONE": "uncompressed", "ZSTD": "zstd", "SNAPPY": "snappy"}
_UTC = _dt.timezone.utc


SchemaError = E.ChannelSchemaError
RecordError = E.ChannelRecordError


def available() -> str | None:
    """None when pyiceberg and pyarrow import; else what to install."""
    try:
        import pyarrow  # noqa: F401
        import pyiceberg  # noqa: F401
    except ImportError:
        return ("S3 Tables delivery needs pyiceberg and pyarrow: pip install 'fastkin[channels]' "
                "(pyiceberg[sql-sqlite,pyarrow,pyiceberg-core] and pyarrow).")
    return None


# -- catalogs -----------------------------------------------------------------------------------------
class IcebergTarget:
    """Where S3 Tables channels write: ``catalog(table_bucket)`` is the pyiceberg catalog of a table bucket."""

    def __init__(self, spec=None) -> None:
        if spec is not None and not isinstance(spec, (str, os.PathLike)) and not hasattr(spec, "create_table"):
            raise ValueError(f"channel_iceberg must be None, a directory or a pyiceberg Catalog, got {spec!r}")
        self.spec = spec
        self._root: str | None = None if spec is None or hasattr(spec, "create_table") else os.path.abspath(spec)
        self._catalogs: dict[str, Any] = {}

    @property
    def root(self) -> str | None:
        """The directory (made on first use when none was given); None for a configured Catalog."""
        if self.spec is None and self._root is None:
            self._root = tempfile.mkdtemp(prefix="fastkin-iceberg-")
        return self._root

    @property
    def uri(self) -> str | None:
        return None if self.root is None else f"sqlite:///{os.path.join(self.root, 'catalog.db')}"

    def catalog(self, bucket: str):
        if hasattr(self.spec, "create_table"):
            return self.spec
        c = self._catalogs.get(bucket)
        if c is None:
            from pyiceberg.catalog.sql import SqlCatalog
            root = self.root
            assert root is not None
            warehouse = os.path.join(root, "warehouse", bucket)
            os.makedirs(warehouse, exist_ok=True)
            c = self._catalogs[bucket] = SqlCatalog(bucket, uri=f"sqlite:///{os.path.join(root, 'catalog.db')}",
                                                    warehouse=f"file://{warehouse}")
        return c

    def schema_document(self, arn: str, region: str) -> dict:
        """The JSON Schema a GSRSchemaARN names: ``DIR/schemas/{registry}/{schema}.json``, else Glue."""
        m = _GSR_ARN.match(arn)
        if m is None:
            raise SchemaError(f"GSRSchemaARN {arn} is not a Glue schema ARN.")
        registry, name = m.group(3), m.group(4)
        root = self._root if self.spec is not None else None
        if root is not None:
            path = os.path.join(root, "schemas", registry, name + ".json")
            if os.path.isfile(path):
                try:
                    with open(path, encoding="utf-8") as f:
                        return _document(f.read(), path)
                except OSError as e:
                    raise SchemaError(f"Cannot read the schema {path}: {e}") from None
        try:
            import boto3
        except ImportError:
            raise SchemaError(f"The schema {arn} is not in {root or 'a channel_iceberg directory'}/schemas/{registry}/"
                              f"{name}.json and boto3 (for Glue) is not installed.") from None
        if not _glue_is_local():
            raise SchemaError(f"The schema {arn} is not in {root or 'a channel_iceberg directory'}/schemas/{registry}/"
                              f"{name}.json, and fastkin does not read real Glue unasked: put the JSON Schema there, "
                              "run under moto's mock_aws or set AWS_ENDPOINT_URL_GLUE.")
        try:
            glue = boto3.client("glue", region_name=m.group(1))
            v = glue.get_schema_version(SchemaId={"SchemaArn": arn}, SchemaVersionNumber={"LatestVersion": True})
        except Exception as e:
            raise SchemaError(f"Cannot read the Glue schema {arn}: {e}") from None
        if v.get("DataFormat") != "JSON":
            raise SchemaError(f"The Glue schema {arn} has DataFormat {v.get('DataFormat')}; channels need JSON.")
        return _document(v["SchemaDefinition"], arn)

    def __repr__(self) -> str:
        return f"IcebergTarget({self.spec if self._root is None else self._root!r})"


def _glue_is_local() -> bool:
    """Whether a default boto3 Glue client stays local: moto's mock_aws is active, or the environment names a Glue
    endpoint (as for the default S3 destination of channels)."""
    if os.environ.get("AWS_ENDPOINT_URL_GLUE") or os.environ.get("AWS_ENDPOINT_URL"):
        return True
    models = sys.modules.get("moto.core.models")
    stubber = getattr(models, "botocore_stubber", None)
    return bool(getattr(stubber, "enabled", False))


def _document(text: str, where: str) -> dict:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise SchemaError(f"The schema {where} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise SchemaError(f"The schema {where} is not a JSON Schema object.")
    return doc


# -- JSON Schema -> Iceberg ----------------------------------------------------------------------------
def _kind(node: dict, where: str) -> tuple[str, bool]:
    """(JSON Schema type, nullable)."""
    t = node.get("type")
    nullable = False
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        nullable = len(rest) < len(t)
        if len(rest) != 1:
            raise SchemaError(f"{where}: a type list must name one type (and optionally null), got {t}.")
        t = rest[0]
    if t not in ("string", "integer", "number", "boolean", "object", "array"):
        raise SchemaError(f"{where}: type {t!r} has no Iceberg column type (string, integer, number, boolean, "
                          "object, array).")
    return t, nullable


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


def _type(node: dict, where: str, ids: _Ids):
    from pyiceberg import types as T
    t, _ = _kind(node, where)
    if t == "string":
        fmt = node.get("format")
        return T.TimestamptzType() if fmt == "date-time" else T.DateType() if fmt == "date" else T.StringType()
    if t == "integer":
        return T.LongType()
    if t == "number":
        return T.DoubleType()
    if t == "boolean":
        return T.BooleanType()
    if t == "array":
        items = node.get("items")
        if not isinstance(items, dict):
            raise SchemaError(f"{where}: an array needs an 'items' schema.")
        eid = ids()
        _, null = _kind(items, where + "[]")
        return T.ListType(eid, _type(items, where + "[]", ids), element_required=not null)
    return T.StructType(*_fields(node, where, ids))


def _fields(node: dict, where: str, ids: _Ids) -> list:
    from pyiceberg.types import NestedField
    props = node.get("properties")
    if not isinstance(props, dict) or not props:
        raise SchemaError(f"{where}: an object needs 'properties' (the table's columns).")
    required = set(node.get("required") or ())
    out = []
    for name, sub in props.items():
        if not isinstance(sub, dict):
            raise SchemaError(f"{where}.{name}: not a schema object.")
        _, null = _kind(sub, f"{where}.{name}")
        fid = ids()
        out.append(NestedField(fid, name, _type(sub, f"{where}.{name}", ids), required=name in required and not null))
    return out


def iceberg_schema(doc: dict):
    """The pyiceberg Schema of a JSON Schema document (SchemaError when it has no mapping)."""
    from pyiceberg.schema import Schema
    if _kind(doc, "$")[0] != "object":
        raise SchemaError("$: the schema must describe a JSON object (its properties are the columns).")
    return Schema(*_fields(doc, "$", _Ids()))


# -- records -> rows -----------------------------------------------------------------------------------
def gsr_payload(data: bytes) -> bytes:
    """The JSON of a Glue Schema Registry record: header version 3, compression (0 none, 5 zlib), the 16-byte
    schema version id, then the payload."""
    if len(data) < 18 or data[0] != 3 or data[1] not in (0, 5):
        raise RecordError("InvalidGSRHeader", "The record has no Glue Schema Registry header (version byte 3, "
                                              "compression byte 0 or 5, 16-byte schema version id).")
    body = data[18:]
    if data[1] == 5:
        try:
            body = zlib.decompress(body)
        except zlib.error as e:
            raise RecordError("InvalidGSRHeader", f"The record's zlib payload is corrupt: {e}.") from None
    return body


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


_DECODE = json.JSONDecoder(parse_constant=_reject_constant).decode      # one decoder, not one per record


def _timestamp(v, where: str) -> _dt.datetime:
    if not isinstance(v, str):
        raise RecordError("SchemaMismatch", f"{where} must be an ISO 8601 date-time string, got {type(v).__name__}.")
    try:
        d = _dt.datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith(("Z", "z")) else v)
    except ValueError:
        raise RecordError("SchemaMismatch", f"{where} is not an ISO 8601 date-time: {v!r}.") from None
    return d.replace(tzinfo=_UTC) if d.tzinfo is None else d.astimezone(_UTC)


class RowConverter:
    """A JSON record -> a row of the table (extra fields dropped; RecordError when it does not fit). The checks are
    compiled once per schema into one function per column."""

    def __init__(self, schema) -> None:
        self.schema = schema
        self._row = _struct_of(schema.fields)

    def row(self, data: bytes) -> dict:
        try:
            doc = _DECODE(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise RecordError("InvalidUTF8", f"The record is not valid UTF-8: byte {e.start} {e.reason}.") from None
        except ValueError as e:
            raise RecordError("InvalidJSON", f"The record is not valid JSON: {e}.") from None
        if not isinstance(doc, dict):
            raise RecordError("SchemaMismatch", f"The record is a JSON {_json_type(doc)}, not an object.")
        return self._row(doc, "$")


def _mismatch(v, t, where: str) -> RecordError:
    return RecordError("SchemaMismatch", f"{where} is a JSON {_json_type(v)}, the column is {t}.")


def _struct_of(fields):
    cols = [(f.name, f.required, _converter(f.field_type)) for f in fields]

    def struct(doc: dict, where: str) -> dict:
        out: dict[str, Any] = {}
        get = doc.get
        for name, required, conv in cols:
            v = get(name)
            if v is None:
                if required:
                    raise RecordError("MissingRequiredField", f"The required field {where}.{name} is missing or null.")
                out[name] = None
            else:
                out[name] = conv(v, where + "." + name)
        return out
    return struct


def _converter(t):
    """A function (JSON value, its path) -> the column's value, for an Iceberg type."""
    from pyiceberg import types as T
    if isinstance(t, T.StringType):
        def string(v, where):
            if v.__class__ is str:
                return v
            raise _mismatch(v, t, where)
        return string
    if isinstance(t, T.LongType):
        def long(v, where):
            if v.__class__ is int and -2**63 <= v < 2**63:
                return v
            if v.__class__ is float and v.is_integer() and abs(v) < 2**63:
                return int(v)
            raise _mismatch(v, t, where)
        return long
    if isinstance(t, T.DoubleType):
        def double(v, where):
            if (v.__class__ is float or v.__class__ is int) and math.isfinite(v):
                return float(v)
            raise _mismatch(v, t, where)
        return double
    if isinstance(t, T.BooleanType):
        def boolean(v, where):
            if v.__class__ is bool:
                return v
            raise _mismatch(v, t, where)
        return boolean
    if isinstance(t, T.TimestamptzType):
        return _timestamp
    if isinstance(t, T.DateType):
        def date(v, where):
            if v.__class__ is str:
                try:
                    return _dt.date.fromisoformat(v)
                except ValueError:
                    pass
            raise _mismatch(v, t, where)
        return date
    if isinstance(t, T.StructType):
        inner = _struct_of(t.fields)

        def struct(v, where):
            if v.__class__ is dict:
                return inner(v, where)
            raise _mismatch(v, t, where)
        return struct
    if isinstance(t, T.ListType):
        elem = _converter(t.element_type)
        elem_required = t.element_required

        def array(v, where):
            if v.__class__ is not list:
                raise _mismatch(v, t, where)
            out: list[Any] = []
            for i, x in enumerate(v):
                if x is None:
                    if elem_required:
                        raise RecordError("MissingRequiredField", f"{where}[{i}] is null.")
                    out.append(None)
                else:
                    out.append(elem(x, f"{where}[{i}]"))
            return out
        return array
    raise SchemaError(f"fastkin cannot write Iceberg columns of type {t}.")


def _json_type(v) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(v), type(v).__name__)


# -- the table -----------------------------------------------------------------------------------------
class IcebergSink:
    """The table of one channel: created at activation (an existing table is refused; ``reopen``: a restarted
    channel loads its own), appended per window."""

    def __init__(self, target: IcebergTarget, table_config: dict, schema_arn: str, region: str,
                 reopen: bool = False) -> None:
        from pyiceberg.partitioning import PartitionField, PartitionSpec
        from pyiceberg.transforms import HourTransform
        from pyiceberg.types import TimestamptzType
        doc = target.schema_document(schema_arn, region)
        self.schema = iceberg_schema(doc)
        self.converter = RowConverter(self.schema)
        bucket = table_config["TableBucketARN"].rsplit("/", 1)[1]
        self.identifier = (table_config["Namespace"], table_config["TableName"])
        self.catalog = target.catalog(bucket)
        fields = []
        for i, p in enumerate((table_config.get("PartitionSpec") or {}).get("PartitionFields") or ()):
            name = p["SourceName"]
            try:
                src = self.schema.find_field(name)
            except ValueError:
                raise SchemaError(f"The partition column {name} is not in the schema {schema_arn}.") from None
            if not isinstance(src.field_type, TimestamptzType):
                raise SchemaError(f"The partition column {name} is {src.field_type}; TIME_HOUR needs timestamptz "
                                  "(a JSON Schema string with format date-time).")
            fields.append(PartitionField(src.field_id, 1000 + i, HourTransform(), f"{name.replace('.', '_')}_hour"))
        ns, table = self.identifier
        self.catalog.create_namespace_if_not_exists(ns)
        if reopen and self.catalog.table_exists(self.identifier):     # a restarted channel's own table
            self.table = self.catalog.load_table(self.identifier)
            self.arrow_schema = self.table.schema().as_arrow()
            return
        if self.catalog.table_exists(self.identifier):
            raise SchemaError(f"The table {ns}.{table} already exists in table bucket {bucket}: a channel creates "
                              "its table and refuses an existing one.")
        self.table = self.catalog.create_table(
            self.identifier, self.schema, partition_spec=PartitionSpec(*fields),
            properties={"format-version": "2",
                        "write.parquet.compression-codec": CODECS[table_config.get("CompressionType", "NONE")]})
        self.arrow_schema = self.table.schema().as_arrow()

    def append(self, rows: list[dict]) -> tuple[int, int]:
        """One snapshot with the rows: (data files added, bytes of those files)."""
        import pyarrow as pa
        self.table.append(pa.Table.from_pylist(rows, schema=self.arrow_schema))
        snap = self.table.current_snapshot()
        summary = snap.summary if snap is not None else None
        files = int(summary.get("added-data-files", 0)) if summary else 0
        size = int(summary.get("added-files-size", 0)) if summary else 0
        return files, size


__all__ = ["IcebergTarget", "IcebergSink", "RowConverter", "RecordError", "SchemaError", "iceberg_schema",
           "gsr_payload", "available"]

"""The one exception module of fastkin, shared by both cores and every interface.

Each AWS error class is named exactly as AWS names the error code, so ``type(e).__name__ == e.code``,
and carries the HTTP status AWS answers it with (all modeled Kinesis errors are 400; boto3's retry
logic relies on ProvisionedThroughputExceededException and LimitExceededException being 400).
"""
from __future__ import annotations


class FastkinError(Exception):
    """Base of every error fastkin raises on purpose."""

    code = "FastkinError"
    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self):  # keep pickling (multiprocessing) simple
        return (type(self), (self.message,))


class _Coded(FastkinError):
    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.code = cls.__name__


class ResourceNotFoundException(_Coded, LookupError):
    pass


class ResourceInUseException(_Coded):
    pass


class InvalidArgumentException(_Coded, ValueError):
    pass


class ValidationException(_Coded, ValueError):
    pass


class LimitExceededException(_Coded):
    pass


class ProvisionedThroughputExceededException(_Coded):
    pass


class ExpiredIteratorException(_Coded):
    pass


class ExpiredNextTokenException(_Coded):
    pass


class ThrottlingException(_Coded):
    """The queue data plane's throttling error (fastkin raises it at a queue's in-flight record limit)."""


class DryRunOperationException(_Coded):
    """A request with DryRun=True that would have succeeded: it was checked in full and nothing was done."""


class SerializationException(_Coded):
    """A request body that does not match the operation's shape (wrong JSON/CBOR types, bad base64)."""


class UnknownOperationException(_Coded):
    """An operation fastkin does not answer: unknown to the model, or newer than what fastkin implements."""


class InternalFailure(_Coded):
    """AWS's common 500 answer: what the server says when fastkin itself failed (a bug, never the caller's)."""

    status = 500


# SigV4 verification (``fastkin serve --credentials``): AWS's common authentication errors.
class MissingAuthenticationTokenException(_Coded):
    pass


class IncompleteSignatureException(_Coded):
    pass


class UnrecognizedClientException(_Coded):
    pass


class InvalidSignatureException(_Coded):
    pass


# ---------------------------------------------------------------------------------------------
# fastkin's own errors (not AWS codes): ``code`` is the class name.

class _Own(FastkinError):
    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.code = cls.__name__


class BufferFullError(_Own):
    """The Producer holds max_buffered_records unresolved records and on_full="raise"."""


class ProducerClosedError(_Own):
    """put() on a Producer that was closed."""


class LeaseLostError(_Own):
    """The lease is no longer this worker's (it expired and was taken): stop processing the shard."""


class ShardEndNotCheckpointedError(_Own):
    """A shard's end was reached but its processor did not checkpoint it (children cannot start)."""


class AggregationError(_Own, ValueError):
    """A KPL aggregated record that cannot be decoded (bad magic, truncated protobuf, MD5 mismatch)."""


class ScenarioError(_Own, ValueError):
    """A simulator scenario that cannot run: the message names the file, the place in it, and what was expected."""


class ChannelDestinationError(Exception):
    """Internal to channels: a destination could not be written. Never reaches a caller: the channel goes FAILED
    with this text as its ChannelStatusReason."""


class DataDirError(_Own, RuntimeError):
    """A data directory (``Engine(data_dir=...)``, ``fastkin serve --data-dir``) that cannot be opened: another
    process holds its lock, or its format version is not one this fastkin reads."""


class CorruptStateError(FastkinError, RuntimeError):
    """An internal invariant broke (checked by FASTKIN_DEBUG builds): a fastkin bug, never the caller's fault.
    On the wire it answers as AWS's InternalFailure (500)."""

    code = "InternalFailure"
    status = 500


# ---------------------------------------------------------------------------------------------
# Message builders used by BOTH engines so their text is identical (differential tests compare it).

def validation_error(value: object, where: str, constraint: str) -> ValidationException:
    return ValidationException(
        f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy constraint: "
        f"Member must {constraint}"
    )


def stream_not_found(name: str, account: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Stream {name} under account {account} not found.")


def shard_throttled(shard_id: str, stream: str, account: str) -> str:
    return f"Rate exceeded for shard {shard_id} in stream {stream} under account {account}."


def bad_partition_key(i: int | None, key: object) -> FastkinError:
    where = "partitionKey" if i is None else f"records.{i + 1}.member.partitionKey"
    if not isinstance(key, str):
        return ValidationException(f"{where} must be a string, got {type(key).__name__}")
    if len(key) < 1:
        return validation_error(key, where, "have length greater than or equal to 1")
    return validation_error(key, where, "have length less than or equal to 256")


def missing_partition_key(i: int | None) -> ValidationException:
    """A record without a PartitionKey on a USER_PARTITION_KEY stream (AWS's text for a null required member)."""
    where = "partitionKey" if i is None else f"records.{i + 1}.member.partitionKey"
    return ValidationException(
        f"1 validation error detected: Value null at '{where}' failed to satisfy constraint: Member must not be null")


def dry_run() -> DryRunOperationException:
    return DryRunOperationException("The request would have succeeded, but the DryRun parameter was specified.")


def bad_key_encoding(i: int | None) -> ValidationException:
    where = "partitionKey" if i is None else f"records.{i + 1}.member.partitionKey"
    return ValidationException(f"{where} is not valid Unicode (it cannot be encoded as UTF-8)")


def bad_data(i: int | None, data: object) -> FastkinError:
    where = "data" if i is None else f"records.{i + 1}.member.data"
    return ValidationException(f"{where} must be bytes, got {type(data).__name__}")


def record_too_large(i: int | None, size: int, limit: int) -> FastkinError:
    """A record over the stream's maximum record size (data plus partition key are compared, as AWS's quota
    counts them). AWS's text names the blob without printing it (recorded 2022-2025, facts §8)."""
    where = "data" if i is None else f"records.{i + 1}.member.data"
    return ValidationException(
        f"1 validation error detected: Value at '{where}' failed to satisfy constraint: "
        f"Member must have length less than or equal to {limit}"
    )


def too_many_records(n: int, limit: int) -> ValidationException:
    """PutRecords with more than ``limit`` (500) records. AWS printed the list as Java object names with a
    varying hash (facts §8); fastkin uses the newer no-value form, as for blobs."""
    return ValidationException(
        "1 validation error detected: Value at 'records' failed to satisfy constraint: "
        f"Member must have length less than or equal to {limit}"
    )


def records_size_exceeded(limit: int) -> InvalidArgumentException:
    """A PutRecords request whose data plus partition keys pass ``limit`` bytes. AWS's recorded text is
    ``Records size exceeds 5 MB limit`` (the 5 MiB era); the limit is printed in whole MiB."""
    mb = limit // (1024 * 1024) if limit % (1024 * 1024) == 0 else limit / (1024 * 1024)
    return InvalidArgumentException(f"Records size exceeds {mb} MB limit")


def bad_hash_key(value: object) -> InvalidArgumentException:
    return InvalidArgumentException(
        "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
        f"Specified value was {value}"
    )


def shard_name(index: int) -> str:
    return f"shardId-{index:012d}"

"""The one exception module of fastkin, shared by both engines and every interface.

Each class is named exactly as AWS names the error code, so ``type(e).__name__ == e.code``, and
carries the HTTP status AWS answers it with (all modeled Kinesis errors are 400; boto3's retry
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


class AccessDeniedException(_Coded):
    pass


class InternalFailureException(_Coded):
    status = 500


class KMSDisabledException(_Coded):
    pass


class KMSInvalidStateException(_Coded):
    pass


class KMSAccessDeniedException(_Coded):
    pass


class KMSNotFoundException(_Coded):
    pass


class KMSOptInRequired(_Coded):
    pass


class KMSThrottlingException(_Coded):
    pass


class UnsupportedOperationError(FastkinError, NotImplementedError):
    """An operation fastkin does not implement (yet): says so instead of pretending."""

    code = "UnsupportedOperation"


class CorruptStateError(FastkinError, RuntimeError):
    """An internal invariant broke: a fastkin bug, never the caller's fault."""

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


def bad_key_encoding(i: int | None) -> ValidationException:
    where = "partitionKey" if i is None else f"records.{i + 1}.member.partitionKey"
    return ValidationException(f"{where} is not valid Unicode (it cannot be encoded as UTF-8)")


def bad_data(i: int | None, data: object) -> FastkinError:
    where = "data" if i is None else f"records.{i + 1}.member.data"
    return ValidationException(f"{where} must be bytes, got {type(data).__name__}")


def record_too_large(i: int | None, size: int, limit: int) -> FastkinError:
    where = "" if i is None else f" (record {i})"
    return InvalidArgumentException(
        f"Record size{where} of {size} bytes (data plus partition key) exceeds the stream's "
        f"maximum record size of {limit} bytes."
    )


def bad_hash_key(value: object) -> InvalidArgumentException:
    return InvalidArgumentException(
        "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
        f"Specified value was {value}"
    )


def shard_name(index: int) -> str:
    return f"shardId-{index:012d}"

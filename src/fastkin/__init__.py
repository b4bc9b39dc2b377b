"""fastkin: AWS Kinesis Data Streams in your own process, with a compiled core.

    import fastkin
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    engine = fastkin.Engine(clock=clock)
    stream = engine.create_stream("orders", shard_count=4)
    r = stream.put_record(b"payload", "user-17")
"""
from . import errors
from ._core import ENGINE
from .clock import RealClock, VirtualClock
from .kcl.worker import Checkpointer, Consumer, RecordProcessor
from .engine import Engine
from .errors import (
    ExpiredIteratorException, ExpiredNextTokenException, FastkinError, InternalFailureException,
    InvalidArgumentException, LimitExceededException, ProvisionedThroughputExceededException,
    ResourceInUseException, ResourceNotFoundException, UnsupportedOperationError, ValidationException,
)
from .kpl.aggregation import deaggregate
from .limits import Limits
from .kpl.producer import Producer, ProducerResult
from .stream import GetRecordsResult, Stream

__version__ = "0.1.0"


def __getattr__(name):
    # botocore is imported only when the boto3 drop-in is used
    if name == "mock_kinesis":
        from .wire.mock import mock_kinesis

        return mock_kinesis
    raise AttributeError(f"module 'fastkin' has no attribute {name!r}")


__all__ = [
    "ENGINE", "Engine", "Stream", "GetRecordsResult", "Limits", "RealClock", "VirtualClock", "errors",
    "FastkinError", "ExpiredIteratorException", "ExpiredNextTokenException", "InternalFailureException",
    "InvalidArgumentException", "LimitExceededException", "ProvisionedThroughputExceededException",
    "ResourceInUseException", "ResourceNotFoundException", "UnsupportedOperationError", "ValidationException",
    "mock_kinesis", "Producer", "ProducerResult", "deaggregate", "Consumer", "RecordProcessor", "Checkpointer",
]

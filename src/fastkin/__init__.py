"""fastkin: AWS Kinesis Data Streams in your own process, with a compiled core.

    import fastkin
    clock = fastkin.VirtualClock(start=1_700_000_000.0)
    engine = fastkin.Engine(clock=clock)
    stream = engine.create_stream("orders", shard_count=4)
    r = stream.put_record(b"payload", "user-17")

Layers (each imports only the ones before it): the core (this package's modules: Engine, Stream, clocks,
limits, errors, topology, metrics, fan-out, queues; the data-plane cores in _cy/ and _ref/), then kpl/ (Producer),
kcl/ (Consumer), wire/ (botocore model, the boto3 mock, ``fastkin serve``), sim/ (simulator, sizing,
demo) and testing/ (the pytest plugin). Subpackages load on first use: ``fastkin.wire.http`` works after
``import fastkin`` without importing botocore until then.
"""
from . import errors
from ._core import CORE
from ._lazy import lazy_getattr
from .clock import RealClock, VirtualClock
from .engine import Engine
from .errors import (
    ExpiredIteratorException,
    ExpiredNextTokenException,
    FastkinError,
    InvalidArgumentException,
    LimitExceededException,
    ProvisionedThroughputExceededException,
    ResourceInUseException,
    ResourceNotFoundException,
    UnknownOperationException,
    ValidationException,
)
from .kcl import Checkpointer, Consumer, QueueWorker, RecordProcessor
from .kpl import Producer, ProducerResult, deaggregate
from .limits import Limits
from .queues import Queue
from .stream import GetRecordsResult, Stream

__version__ = "0.1.0"

__getattr__ = lazy_getattr(__name__, frozenset({"wire", "sim", "testing", "durable", "segments"}),
                           {"mock_kinesis": "wire.mock"})

__all__ = [
    "CORE", "Engine", "Stream", "Queue", "GetRecordsResult", "Limits", "RealClock", "VirtualClock", "errors",
    "FastkinError", "ExpiredIteratorException", "ExpiredNextTokenException", "InvalidArgumentException",
    "LimitExceededException", "ProvisionedThroughputExceededException", "ResourceInUseException",
    "ResourceNotFoundException", "UnknownOperationException", "ValidationException",
    "mock_kinesis", "Producer", "ProducerResult", "deaggregate", "Consumer", "RecordProcessor", "Checkpointer",
    "QueueWorker",
]

"""``fastkin.mock_kinesis``: every botocore/boto3 Kinesis client answered by fastkin, in-process.

    with fastkin.mock_kinesis() as m:
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        kinesis.create_stream(StreamName="s", ShardCount=1)
        m.engine.stream("s")            # the Engine behind us-east-1

How it hooks in: while a mock is active, ``botocore.client.BaseClient._make_api_call`` is wrapped.
For Kinesis clients the wrapper keeps what botocore does before a request is built (the
``provide-client-params`` and ``before-parameter-build`` events, then botocore's own parameter
validation against the service model when the client's config asks for it), then answers from the
engine: no endpoint resolution, no serialisation, no signing, no HTTP, no JSON or base64 round trip
(blobs stay bytes). Errors are raised as the client's modeled ClientError subclasses with AWS's code,
message and HTTP status; retryable ones (throttling, LimitExceeded) go through botocore's own
``needs-retry`` handlers, so a client's retry mode behaves as against AWS (the delays botocore asks
for are slept on the real clock and skipped on a virtual one). Calls of every other service, and
Kinesis calls made outside any mock, go to botocore unchanged, so moto can mock the others.

aiobotocore (and so aioboto3) clients are answered the same way: if aiobotocore is installed, its
``AioBaseClient._make_api_call`` (a coroutine) is wrapped too when a mock starts. One generator
(``mock_kinesis._steps``) holds the call's logic for both; it yields the effects it needs of the client (its
parameter events, the needs-retry event, a retry delay), which ``_run`` performs botocore's way and ``_run_aio``
aiobotocore's (awaiting its emitters, sleeping with ``asyncio.sleep``). SubscribeToShard's event stream becomes
an ``AioSubscription`` (``async for``), which waits without blocking the loop.

NOTE: hooking here rather than at ``before-call`` (after serialisation) or ``before-send`` (after
signing) is what makes the mock fast: bench/bench_boto.py measures all three in the same run.
"""
from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import threading
import time
import uuid

import botocore.client
from botocore.awsrequest import AWSResponse
from botocore.model import OperationNotFoundError
from botocore.validate import validate_parameters

from .. import errors as E
from ..clock import RealClock, VirtualClock
from ..engine import Engine, RegionEngines
from ..fanout import Subscription
from ..limits import DEFAULT_LIMITS
from .service import Service, service_for

__all__ = ["mock_kinesis"]

_STACK: list[mock_kinesis] = []
_STACK_LOCK = threading.RLock()
_ORIGINAL = botocore.client.BaseClient._make_api_call
_RETRYABLE = frozenset({"ProvisionedThroughputExceededException", "LimitExceededException",
                        "InternalFailureException"})


def _patched_make_api_call(self, operation_name, api_params):
    if _STACK and self._service_model.service_name == "kinesis":
        return _run(self, _STACK[-1]._steps(self, operation_name, api_params))
    return _ORIGINAL(self, operation_name, api_params)


async def _patched_aio_make_api_call(self, operation_name, api_params):
    if _STACK and self._service_model.service_name == "kinesis":
        return await _run_aio(self, _STACK[-1]._steps(self, operation_name, api_params))
    return await _AIO_ORIGINAL[0](self, operation_name, api_params)


# aiobotocore's AioBaseClient and its original _make_api_call, looked up when a mock first starts (it is optional).
_AIO_CLIENT: list = []
_AIO_ORIGINAL: list = []


def _aio_client_class():
    if not _AIO_CLIENT:
        cls = None
        if importlib.util.find_spec("aiobotocore") is not None:
            import aiobotocore.client

            cls = aiobotocore.client.AioBaseClient
            _AIO_ORIGINAL.append(cls._make_api_call)
        _AIO_CLIENT.append(cls)
    return _AIO_CLIENT[0]


def _install() -> None:
    botocore.client.BaseClient._make_api_call = _patched_make_api_call
    aio = _aio_client_class()
    if aio is not None:
        aio._make_api_call = _patched_aio_make_api_call


def _uninstall() -> None:
    if botocore.client.BaseClient._make_api_call is _patched_make_api_call:
        botocore.client.BaseClient._make_api_call = _ORIGINAL
    aio = _aio_client_class()
    if aio is not None and aio._make_api_call is _patched_aio_make_api_call:
        aio._make_api_call = _AIO_ORIGINAL[0]


# The effects a call asks of its client (see mock_kinesis._steps): the sync and the async drivers below perform
# them, botocore's way or aiobotocore's (whose event emitters are coroutines, and which sleeps with asyncio).
_EMIT_PARAMS, _EMIT, _SLEEP = "emit-api-params", "emit", "sleep"


def _run(client, steps):
    """Drive a call for a botocore client."""
    try:
        kind, arg = next(steps)
        while True:
            if kind is _EMIT_PARAMS:
                res = client._emit_api_params(**arg)
            elif kind is _EMIT:
                res = client.meta.events.emit(arg[0], **arg[1])
            else:
                time.sleep(arg)
                res = None
            kind, arg = steps.send(res)
    except StopIteration as done:
        return done.value


async def _run_aio(client, steps):
    """Drive a call for an aiobotocore client: its emitters are awaited, its retry delays slept with asyncio."""
    try:
        kind, arg = next(steps)
        while True:
            if kind is _EMIT_PARAMS:
                res = await client._emit_api_params(**arg)
            elif kind is _EMIT:
                res = await client.meta.events.emit(arg[0], **arg[1])
            else:
                await asyncio.sleep(arg)
                res = None
            kind, arg = steps.send(res)
    except StopIteration as done:
        if isinstance(done.value, dict) and isinstance(done.value.get("EventStream"), Subscription):
            done.value["EventStream"] = done.value["EventStream"].aio()
        return done.value


class mock_kinesis(RegionEngines):
    """Route every boto3/botocore Kinesis client to fastkin while active.

    Use as a context manager, or as a decorator of functions (sync or async) and classes (each
    ``test*`` method is wrapped). Each ``with`` block / decorated call starts from fresh engines
    unless ``engine=`` is given.

    Options: ``engine`` (an Engine to serve its region; others get fresh engines on its clock),
    ``clock`` (e.g. a VirtualClock), ``quotas`` (per-shard limits on/off), ``limits``,
    ``create_latency`` / ``delete_latency`` / ``update_latency`` / ``consumer_latency`` (engine seconds; default
    ACTIVE at once), ``account_id`` (default 123456789012), ``core`` ("cy" or "ref"). The region of each client
    selects its engine.
    """

    def __init__(self, engine: Engine | None = None, *, clock=None, quotas: bool = True, limits=DEFAULT_LIMITS,
                 create_latency: float = 0.0, delete_latency: float = 0.0, update_latency: float = 0.0,
                 consumer_latency: float | None = None, account_id: str = "123456789012",
                 core: str | None = None, channel_s3=None) -> None:
        self._given = engine
        if engine is not None and consumer_latency is not None:
            engine.consumer_latency = float(consumer_latency)      # given: it applies to that engine too
        self._clock = clock if clock is not None else (engine.clock if engine is not None else None)
        self._kw = dict(quotas=quotas, limits=limits, create_latency=create_latency, delete_latency=delete_latency,
                        update_latency=update_latency, consumer_latency=consumer_latency or 0.0, core=core,
                        account_id=engine.account_id if engine is not None else account_id,
                        channel_s3=channel_s3)
        self._engines: dict[str, Engine] = {}
        self._services: dict[str, Service] = {}
        self._lock = threading.Lock()
        self._depth = 0
        self.reset()

    # -- state ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every stream (a given engine is kept as it is)."""
        with self._lock:
            self._engines = {}
            self._services = {}
            if self._given is not None:
                self._engines[self._given.region] = self._given
            self.clock = self._clock if self._clock is not None else RealClock()

    @property
    def engine(self) -> Engine:
        """The engine of the given engine's region, else of us-east-1."""
        return self.engine_for(self._given.region if self._given is not None else "us-east-1")

    def service_for(self, region: str) -> Service:
        s = self._services.get(region)
        if s is None:
            s = self._services[region] = service_for(self.engine_for(region))
        return s

    # -- activation -------------------------------------------------------------------------------
    def start(self) -> mock_kinesis:
        with _STACK_LOCK:
            if self._depth == 0 and self._given is None:
                self.reset()
            self._depth += 1
            _STACK.append(self)
            _install()
        return self

    def stop(self) -> None:
        with _STACK_LOCK:
            for i in range(len(_STACK) - 1, -1, -1):
                if _STACK[i] is self:
                    del _STACK[i]
                    break
            self._depth = max(0, self._depth - 1)
            if not _STACK:
                _uninstall()

    def __enter__(self) -> mock_kinesis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __call__(self, obj):
        if inspect.isclass(obj):
            for name, fn in list(vars(obj).items()):
                if name.startswith("test") and callable(fn):
                    setattr(obj, name, self._wrap(fn))
            return obj
        return self._wrap(obj)

    def _wrap(self, fn):
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def awrapper(*a, **kw):
                with self:
                    return await fn(*a, **kw)
            return awrapper

        @functools.wraps(fn)
        def wrapper(*a, **kw):
            with self:
                return fn(*a, **kw)
        return wrapper

    # -- the call -----------------------------------------------------------------------------------
    def _steps(self, client, operation_name: str, api_params: dict):
        """One call, as a generator shared by the sync and async paths: it yields the effects it needs of the
        client ((_EMIT_PARAMS, kwargs), (_EMIT, (event, kwargs)), (_SLEEP, seconds)), is sent their results,
        and returns the response or raises the client's ClientError."""
        sm = client._service_model
        try:
            op = sm.operation_model(operation_name)
        except OperationNotFoundError:
            exc = E.UnknownOperationException(
                f"fastkin cannot answer the Kinesis operation {operation_name}: it is not in the client's model.")
            raise client.exceptions.from_code(exc.code)(_error_response(exc, 0), operation_name) from None
        ctx = {"client_region": client.meta.region_name, "client_config": client.meta.config,
               "has_streaming_input": False, "auth_type": None}
        api_params = yield _EMIT_PARAMS, {"api_params": api_params, "operation_model": op, "context": ctx}
        if client.meta.config.parameter_validation:
            if operation_name == "PutRecords":
                _validate_put_records(api_params, op.input_shape)
            else:
                validate_parameters(api_params, op.input_shape)
        service = self._services.get(client.meta.region_name) or self.service_for(client.meta.region_name)
        # Long polling on a real clock (ReceiveQueueRecords): non-blocking calls, slept between by the client's
        # driver (asyncio.sleep for aiobotocore, so the event loop keeps running); None answers at once.
        poll_until = service.long_poll_deadline(operation_name, api_params)
        real_until = time.monotonic() + 21.0
        pause = 0.002
        attempts = 1
        while True:
            try:
                out = service.dispatch(operation_name, api_params, wait=poll_until is None)
            except E.FastkinError as exc:
                err = _error_response(exc, attempts - 1)
                if exc.code in _RETRYABLE:
                    http = AWSResponse("", exc.status, {}, None)
                    responses = yield _EMIT, (
                        f"needs-retry.{sm.service_id.hyphenize()}.{op.name}",
                        {"response": (http, err), "endpoint": None, "operation": op, "attempts": attempts,
                         "caught_exception": None, "request_dict": {"context": ctx}})
                    delay = next((r[1] for r in responses if r[1] is not None), None)
                    if delay is not None and delay is not False:
                        if delay and not isinstance(self.clock, VirtualClock):
                            yield _SLEEP, delay
                        attempts += 1
                        continue
                raise client.exceptions.from_code(exc.code)(err, operation_name) from None
            if poll_until is not None and not out.get("QueueRecords") and service.engine.clock() < poll_until \
                    and time.monotonic() < real_until:
                yield _SLEEP, pause
                pause = min(pause * 2, 0.02)
                continue
            out["ResponseMetadata"] = {
                "RequestId": str(uuid.uuid4()), "HTTPStatusCode": 200,
                "HTTPHeaders": {"content-type": "application/x-amz-json-1.1"}, "RetryAttempts": attempts - 1}
            return out


_RECORD_KEYS = frozenset({"Data", "PartitionKey", "ExplicitHashKey"})


def _validate_put_records(params: dict, shape) -> None:
    """botocore's validation of a PutRecords request, with its per-record walk done in one loop.

    The top level and the first record go through botocore's validator. The other records take a
    stricter check (exact types only); any record that fails it sends the whole request through
    botocore's validator, so every error raised is botocore's own ParamValidationError.
    NOTE: botocore's generic walk costs ~5 us per record (about 2.5 ms per 500-record call)."""
    recs = params.get("Records")
    if not isinstance(recs, list) or len(recs) < 2:
        validate_parameters(params, shape)
        return
    validate_parameters({**params, "Records": recs[:1]}, shape)
    keys = _RECORD_KEYS
    for r in recs:
        if (type(r) is not dict or not keys.issuperset(r) or type(r.get("PartitionKey")) is not str
                or not r["PartitionKey"] or type(r.get("Data")) not in (bytes, bytearray, str)
                or type(r.get("ExplicitHashKey", "")) is not str):
            validate_parameters(params, shape)
            return


def _error_response(exc: E.FastkinError, retries: int) -> dict:
    return {
        "Error": {"Code": exc.code, "Message": exc.message},
        "ResponseMetadata": {"RequestId": str(uuid.uuid4()), "HTTPStatusCode": exc.status,
                             "HTTPHeaders": {"content-type": "application/x-amz-json-1.1"},
                             "RetryAttempts": retries},
        "message": exc.message,
    }

"""pytest fixtures for code that talks to Kinesis through boto3 (registered by the ``pytest11`` entry point).

    def test_orders(fastkin_kinesis):
        fastkin_kinesis.create_stream(StreamName="orders", ShardCount=1)
        ...                                   # your code: sleeps and retries behave as against AWS

    def test_orders_deterministic(fastkin_kinesis, fastkin_virtual_clock):
        fastkin_kinesis.create_stream(StreamName="orders", ShardCount=1)
        fastkin_virtual_clock.advance(1.0)    # engine time moves only here

Fixtures (each test gets fresh ones, so tests are isolated):
  fastkin_engine          an Engine (us-east-1, account 123456789012). Its clock is the real clock, so code under
                          test that sleeps and retries (on ProvisionedThroughputExceededException, say) gets through
                          as against AWS, and botocore's retry sleeps really wait; unless the test also asks for
                          fastkin_virtual_clock, which then drives it.
  fastkin_virtual_clock   a VirtualClock at 2023-11-14T22:13:20Z that moves only when advanced (also named
                          fastkin_clock): for deterministic tests of quotas, retention and iterator expiry. Sleeping
                          does not move it, so a sleep-and-retry loop under it never gets through by itself.
  fastkin_mock            a started ``mock_kinesis`` serving that engine; every boto3 Kinesis client is routed to it
  fastkin_kinesis         a boto3 Kinesis client in us-east-1, answered by the engine
  fastkin_aio_kinesis     an aiobotocore Kinesis client in us-east-1 answered by the engine, closed after the test.
                          For async tests run by anyio's pytest plugin (``@pytest.mark.anyio``, asyncio backend)
                          or by pytest-asyncio (``@pytest.mark.asyncio``, strict or auto mode): the client is made
                          on the loop that runs the test. Needs aiobotocore, ``pip install 'fastkin[async]'``.
  fastkin_server          a ``fastkin serve`` on a free loopback port in a thread (``.url``, ``.app``)
"""
from __future__ import annotations

import pytest

START = 1_700_000_000.0
_VIRTUAL = ("fastkin_virtual_clock", "fastkin_clock")


@pytest.fixture
def fastkin_virtual_clock():
    from ..clock import VirtualClock

    return VirtualClock(start=START)


@pytest.fixture
def fastkin_clock(fastkin_virtual_clock):
    """The same VirtualClock as fastkin_virtual_clock (its older name)."""
    return fastkin_virtual_clock


@pytest.fixture
def fastkin_engine(request):
    from ..clock import RealClock
    from ..engine import Engine

    virtual = any(name in request.fixturenames for name in _VIRTUAL)
    clock = request.getfixturevalue("fastkin_virtual_clock") if virtual else RealClock()
    return Engine(clock=clock)


@pytest.fixture
def fastkin_mock(fastkin_engine):
    from ..wire.mock import mock_kinesis

    with mock_kinesis(engine=fastkin_engine) as m:
        yield m


@pytest.fixture
def fastkin_kinesis(fastkin_mock):
    import boto3

    return boto3.session.Session().client(
        "kinesis", region_name=fastkin_mock.engine.region, aws_access_key_id="testing",
        aws_secret_access_key="testing")


def _aio_client(engine):
    """An aiobotocore client context (``async with``) in the engine's region."""
    from aiobotocore.session import get_session

    return get_session().create_client("kinesis", region_name=engine.region, aws_access_key_id="testing",
                                       aws_secret_access_key="testing")


@pytest.fixture
def fastkin_aio_kinesis(request):
    """An aiobotocore Kinesis client answered by the test's engine, made and closed on the test's event loop.

    A sync fixture handing over to the async fixture of the plugin that runs the test: anyio's plugin runs the
    async fixtures of tests that use ``anyio_backend`` (every ``@pytest.mark.anyio`` test); pytest-asyncio runs
    fixtures made with ``pytest_asyncio.fixture`` on its test's loop. (One async fixture for both would land
    on whichever loop the two plugins' hook order gives it.)"""
    if "anyio_backend" in request.fixturenames:
        return request.getfixturevalue("_fastkin_aio_kinesis_anyio")
    if _pytest_asyncio is not None and _pytest_asyncio.is_async_test(request.node):
        return request.getfixturevalue("_fastkin_aio_kinesis_asyncio")
    raise pytest.UsageError(
        f"{request.node.nodeid}: fastkin_aio_kinesis is an async fixture; mark the test @pytest.mark.anyio "
        "(anyio's pytest plugin) or @pytest.mark.asyncio (pytest-asyncio)")


@pytest.fixture
async def _fastkin_aio_kinesis_anyio(fastkin_mock, anyio_backend):
    name = anyio_backend if isinstance(anyio_backend, str) else anyio_backend[0]
    if name != "asyncio":
        raise pytest.UsageError(f"fastkin_aio_kinesis needs anyio's asyncio backend (aiobotocore runs on asyncio "
                                f"only), not {name!r}: have the anyio_backend fixture return 'asyncio'")
    async with _aio_client(fastkin_mock.engine) as client:
        yield client


try:
    import pytest_asyncio as _pytest_asyncio
except ImportError:           # optional: without it anyio's plugin runs fastkin_aio_kinesis
    _pytest_asyncio = None
else:
    @_pytest_asyncio.fixture(loop_scope="function")
    async def _fastkin_aio_kinesis_asyncio(fastkin_mock):
        async with _aio_client(fastkin_mock.engine) as client:
            yield client


@pytest.fixture
def fastkin_server():
    from ..wire.http import ServerThread

    with ServerThread(port=0) as srv:
        yield srv

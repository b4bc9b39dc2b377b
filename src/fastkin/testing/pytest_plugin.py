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
  fastkin_aio_kinesis     an aiobotocore Kinesis client in us-east-1 answered by the engine, closed after the test
                          (an async fixture: for ``@pytest.mark.anyio`` tests, with anyio's pytest plugin; needs
                          aiobotocore, ``pip install 'fastkin[async]'``)
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


@pytest.fixture
async def fastkin_aio_kinesis(fastkin_mock, anyio_backend):
    """An aiobotocore Kinesis client answered by the test's engine. Requesting ``anyio_backend`` (anyio's
    pytest plugin) is what has anyio run this async fixture; aiobotocore needs the asyncio backend."""
    from aiobotocore.session import get_session

    async with get_session().create_client(
            "kinesis", region_name=fastkin_mock.engine.region, aws_access_key_id="testing",
            aws_secret_access_key="testing") as client:
        yield client


@pytest.fixture
def fastkin_server():
    from ..wire.http import ServerThread

    with ServerThread(port=0) as srv:
        yield srv

"""pytest fixtures for code that talks to Kinesis through boto3 (registered by the ``pytest11`` entry point).

    def test_orders(fastkin_kinesis, fastkin_clock):
        fastkin_kinesis.create_stream(StreamName="orders", ShardCount=1)
        fastkin_clock.advance(1.0)

Fixtures (each test gets fresh ones, so tests are isolated):
  fastkin_clock    a VirtualClock at 2023-11-14T22:13:20Z that moves only when advanced
  fastkin_engine   an Engine (us-east-1, account 123456789012) on that clock
  fastkin_mock     a started ``mock_kinesis`` serving that engine; every boto3 Kinesis client is routed to it
  fastkin_kinesis  a boto3 Kinesis client in us-east-1, answered by the engine
  fastkin_server   a ``fastkin serve`` on a free loopback port in a thread (``.url``, ``.app``)
"""
from __future__ import annotations

import pytest

START = 1_700_000_000.0


@pytest.fixture
def fastkin_clock():
    from ..clock import VirtualClock

    return VirtualClock(start=START)


@pytest.fixture
def fastkin_engine(fastkin_clock):
    from ..engine import Engine

    return Engine(clock=fastkin_clock)


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
def fastkin_server():
    from ..wire.http import ServerThread

    with ServerThread(port=0) as srv:
        yield srv

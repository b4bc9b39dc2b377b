"""Shared pieces of the async tests (aiobotocore / aioboto3; run in the ``fastkin[async]`` venv, see .ci/run)."""
from __future__ import annotations

import asyncio
import socket

import pytest

from fastkin import _core


def pytest_sessionstart(session):
    # tests/aio is its own rootdir (pytest.ini), so tests/conftest.py's check is repeated: the compiled core
    # must have loaded unless the pure engine was asked for explicitly.
    if not _core.NO_EXTENSIONS and _core.CORE != "cy":
        raise pytest.UsageError(f"the compiled core did not load: {_core.IMPORT_ERROR!r}")


@pytest.fixture
def anyio_backend():
    return "asyncio"          # aiobotocore runs on asyncio only


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection (sync or asyncio) fails the test: everything must be answered in-process."""
    attempts: list = []

    def refuse(*a, **kw):
        attempts.append(a)
        raise AssertionError(f"fastkin mock: a network connection was attempted: {a!r}")

    async def refuse_async(*a, **kw):
        refuse(*a, **kw)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", refuse_async)
    monkeypatch.setattr(asyncio.BaseEventLoop, "sock_connect", refuse_async)
    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", refuse_async)
    return attempts



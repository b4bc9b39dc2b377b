"""fastkin serve over HTTP/2: servers on loopback ports, in threads, shared by the tests of this folder.
Each test gets a fresh engine on a virtual clock (``app.reset``)."""
from __future__ import annotations

import ssl

import pytest
from h2wire import START

import fastkin
from fastkin.wire.http import ServerThread


@pytest.fixture(scope="session")
def h2c_server():
    with ServerThread(port=0) as srv:
        yield srv


@pytest.fixture(scope="session")
def tls_server():
    with ServerThread(port=0, tls=True) as srv:          # a certificate generated on start
        yield srv


def _fresh(srv):
    clock = fastkin.VirtualClock(start=START)
    srv.app.reset(fastkin.Engine(clock=clock))
    srv.app.http_versions.clear()
    return srv


@pytest.fixture
def h2c(h2c_server):
    yield _fresh(h2c_server)
    h2c_server.app.reset()


@pytest.fixture
def tls(tls_server):
    yield _fresh(tls_server)
    tls_server.app.reset()


@pytest.fixture
def tls_context(tls_server):
    """A client context that verifies the server against its generated certificate, offering h2 and http/1.1."""
    ctx = ssl.create_default_context(cafile=tls_server.cafile)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx

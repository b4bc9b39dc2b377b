"""Servers for the raw-socket tests: ``srv``, one ServerThread shared by a module (any server), and
``new_server``, a factory for the server of issue 13, whose ServerThread takes ``read_timeout`` and
``idle_timeout``. On a server without them (hypercorn's) a test that needs them is an expected failure."""
from __future__ import annotations

import pytest

from fastkin.wire.http import ServerThread

APP = {"auth_check": False, "quotas": False}     # hand-written requests: no Authorization needed


@pytest.fixture(scope="module")
def srv():
    with ServerThread(port=0, **APP) as s:
        yield s


def start_new_server(read_timeout: float = 20.0, idle_timeout: float = 60.0, **app_kw) -> ServerThread:
    kw = {**APP, **app_kw}
    try:
        s = ServerThread(port=0, read_timeout=read_timeout, idle_timeout=idle_timeout, **kw)
    except TypeError as exc:      # today's ServerThread hands unknown keywords to KinesisApp, which rejects them
        if "read_timeout" in str(exc) or "idle_timeout" in str(exc):
            pytest.xfail("server without timeouts")
        raise
    return s.start()


class Servers:
    """``new_server(read_timeout=..., idle_timeout=..., **app_kw)``: a started server, stopped after the test
    unless the test stopped it through ``new_server.stop(s)``."""

    def __init__(self) -> None:
        self.running: list[ServerThread] = []

    def __call__(self, **kw) -> ServerThread:
        s = start_new_server(**kw)
        self.running.append(s)
        return s

    def stop(self, s: ServerThread) -> None:
        self.running.remove(s)
        s.stop()


@pytest.fixture
def new_server():
    servers = Servers()
    yield servers
    for s in servers.running:
        s.stop()

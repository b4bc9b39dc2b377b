"""Servers for the raw-socket tests: ``srv``, one ServerThread shared by a module, and ``new_server``, a
factory for servers with their own ``read_timeout``/``idle_timeout`` and KinesisApp options."""
from __future__ import annotations

import pytest

from fastkin.wire.http import ServerThread

APP = {"auth_check": False, "quotas": False}     # hand-written requests: no Authorization needed


@pytest.fixture(scope="module")
def srv():
    with ServerThread(port=0, **APP) as s:
        yield s


def start_new_server(read_timeout: float = 20.0, idle_timeout: float = 60.0, **app_kw) -> ServerThread:
    return ServerThread(port=0, read_timeout=read_timeout, idle_timeout=idle_timeout, **{**APP, **app_kw}).start()


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

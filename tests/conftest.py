"""Shared fixtures: every unit test runs on both cores (the reference and the compiled one)."""
from __future__ import annotations

import os

import pytest

import fastkin
from fastkin import _core

ENGINES = ["ref", "cy"]


def pytest_report_header(config):
    return [f"fastkin core: {_core.CORE} (FASTKIN_NO_EXTENSIONS={os.environ.get('FASTKIN_NO_EXTENSIONS', '')!r})"]


def pytest_sessionstart(session):
    # The compiled core must have loaded unless the pure engine was asked for explicitly.
    if not _core.NO_EXTENSIONS and _core.CORE != "cy":
        raise pytest.UsageError(f"the compiled core did not load: {_core.IMPORT_ERROR!r}")


@pytest.fixture(params=ENGINES)
def core_name(request) -> str:
    return request.param


@pytest.fixture
def core(core_name):
    return _core.get_core(core_name)


@pytest.fixture
def clock():
    return fastkin.VirtualClock(start=1_700_000_000.0)


@pytest.fixture
def engine(core_name, clock):
    return fastkin.Engine(clock=clock, core=core_name)


@pytest.fixture
def make_engine(core_name, clock):
    def make(**kw):
        kw.setdefault("clock", clock)
        return fastkin.Engine(core=core_name, **kw)

    return make

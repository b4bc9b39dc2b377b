"""The README's ```python async blocks (they need the async extra, so tests/api/test_readme.py leaves them out):
each runs in a fresh namespace, and a ``main`` coroutine function it defines is run too; a block of pytest tests
(``def test_...``) is also run by pytest itself, with the plugins installed here (anyio and pytest-asyncio)."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

pytest.importorskip("aioboto3")

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python async\n(.*?)```", README.read_text(), re.S)


def test_there_are_async_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_async_block_runs(i, monkeypatch, no_network):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ns = {"__name__": "__readme__"}
    exec(compile(BLOCKS[i], f"README.md async block {i}", "exec"), ns)
    if "main" in ns:
        asyncio.run(ns["main"]())
    assert no_network == []


TEST_BLOCKS = [b for b in BLOCKS if re.search(r"^async def test_|^def test_", b, re.M)]


def test_there_is_a_pytest_block():
    assert TEST_BLOCKS


@pytest.mark.parametrize("i", range(len(TEST_BLOCKS)))
def test_readme_pytest_block_passes(i, pytester):
    pytest.importorskip("pytest_asyncio")
    pytester.makeini("[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_readme_block=TEST_BLOCKS[i])
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    n = len(re.findall(r"^(?:async )?def test_", TEST_BLOCKS[i], re.M))
    res.assert_outcomes(passed=n)

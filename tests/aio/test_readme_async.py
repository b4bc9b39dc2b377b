"""The README's ```python async blocks (they need the async extra, so tests/api/test_readme.py leaves them out):
each runs in a fresh namespace, and a ``main`` coroutine function it defines is run too."""
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

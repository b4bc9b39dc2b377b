"""Lazy submodule access for packages: ``fastkin.wire.http`` works after a bare ``import fastkin``, while
importing fastkin loads nothing of botocore, httptools, matplotlib or the other optional layers."""
from __future__ import annotations

import importlib


def lazy_getattr(package: str, submodules: frozenset[str], names: dict[str, str]):
    """A module ``__getattr__`` that imports ``package.<submodule>`` on first access, and resolves each name in
    ``names`` (attribute -> "submodule" or "submodule:attr") from its submodule."""

    def __getattr__(name: str):
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        where = names.get(name)
        if where is not None:
            mod, _, attr = where.partition(":")
            return getattr(importlib.import_module(f"{package}.{mod}"), attr or name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__

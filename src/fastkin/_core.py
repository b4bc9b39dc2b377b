"""Binds the data-plane core once: the compiled core, or the pure-Python reference.

FASTKIN_NO_EXTENSIONS=1 forces the reference core; otherwise the compiled core is used and the
reference is the fallback only when the extension cannot be imported (tests fail in that case
unless the reference was asked for explicitly).
"""
from __future__ import annotations

import os

from ._ref import core as ref_core

NO_EXTENSIONS = os.environ.get("FASTKIN_NO_EXTENSIONS", "") not in ("", "0")
IMPORT_ERROR: ImportError | None = None

if NO_EXTENSIONS:
    core = ref_core
else:
    try:
        from ._cy import core  # type: ignore[no-redef]
    except ImportError as exc:  # pragma: no cover - exercised only on broken installs
        IMPORT_ERROR = exc
        core = ref_core

CORE: str = core.NAME        # the name of the bound core: "cy" or "ref"


def get_core(name: str | None = None):
    """The core module by name ("cy" or "ref"); None means the bound default."""
    if name is None:
        return core
    if name == "ref":
        return ref_core
    if name == "cy":
        from ._cy import core as cy_core

        return cy_core
    raise ValueError(f"unknown core {name!r} (expected 'cy' or 'ref')")

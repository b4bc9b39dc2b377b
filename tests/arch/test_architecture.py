"""The package's architecture, checked: no import cycles (not even through imports inside functions), the
layers import only downwards, every module imports alone in a fresh interpreter, the core layer and the
client libraries work without botocore, every dotted name the README uses resolves after ``import fastkin``,
and errors.py is the one exception module."""
from __future__ import annotations

import ast
import os
import pathlib
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

import fastkin

PKG = pathlib.Path(fastkin.__file__).parent
ROOT = PKG.parent.parent
SUBPACKAGES = ("wire", "kpl", "kcl", "sim", "testing")
# What each layer may import (besides the standard library and numpy). "core" is every module directly in
# fastkin/ (with _cy/ and _ref/), except the facade (__init__) and the command line (__main__).
ALLOWED = {
    "core": {"core"},
    "kpl": {"core", "kpl"},
    "kcl": {"core", "kpl", "kcl"},
    "wire": {"core", "wire"},
    "sim": {"core", "sim"},
    "testing": {"core", "wire", "testing"},
}
OPTIONAL = ("botocore", "boto3", "httptools", "uvloop", "orjson", "cbor2", "cryptography", "matplotlib", "tqdm", "h2",
            "httpx",
            "aiobotocore", "aioboto3", "aiohttp", "pyiceberg", "pyiceberg_core", "pyarrow", "sqlalchemy", "duckdb")


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in SUBPACKAGES:
        return parts[1]
    return "core"


def _imports(module: str, path: pathlib.Path) -> list[tuple[str, int, bool]]:
    """(imported fastkin module, line, at module level) for every import in the file, in functions too."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top_level = {id(n) for n in tree.body}
    for n in tree.body:                      # imports under a module-level try/if count as module level
        if isinstance(n, (ast.Try, ast.If)):
            top_level |= {id(x) for x in ast.walk(n)}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for name in names:
            # the longest prefix that is a fastkin module (``from . import errors`` imports fastkin.errors)
            parts = name.split(".")
            while parts and ".".join(parts) not in MODULES:
                parts.pop()
            if parts:
                out.append((".".join(parts), node.lineno, id(node) in top_level))
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_no_import_cycles_even_through_function_level_imports():
    edges = {m: sorted({t for t, _, _ in imps if t != m and not m.startswith(t + ".") and t != "fastkin"})
             for m, imps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in edges.get(m, ()):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_layers_import_only_downwards():
    bad = []
    for m, imps in GRAPH.items():
        if m in ("fastkin", "fastkin.__main__"):
            continue                      # the facade and the command line stand above every layer
        for target, line, _ in imps:
            if target == "fastkin":
                continue
            if _layer(target) not in ALLOWED[_layer(m)]:
                bad.append(f"{MODULES[m].relative_to(ROOT)}:{line}: {m} ({_layer(m)}) imports {target}")
    assert not bad, "\n".join(bad)


def test_optional_libraries_are_imported_at_module_level_only_by_the_layers_that_need_them():
    bad = []
    for m, path in MODULES.items():
        if _layer(m) in ("wire", "testing") or m in ("fastkin.sim.plot",):
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                if name.split(".")[0] in OPTIONAL:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not bad, "\n".join(bad)


def _import_alone(module: str) -> tuple[str, int, str]:
    r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "error"})
    return module, r.returncode, r.stderr


def test_every_module_imports_alone_in_a_fresh_interpreter():
    mods = [m for m in MODULES if m != "fastkin.__main__"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = [(m, err) for m, rc, err in pool.map(_import_alone, mods) if rc != 0]
    assert not failed, "\n\n".join(f"{m}:\n{err}" for m, err in failed)


def test_import_fastkin_loads_no_optional_library():
    code = textwrap.dedent(f"""
        import sys
        import fastkin, fastkin.kpl, fastkin.kcl, fastkin.sim
        fastkin.sim.run, fastkin.sim.shards_needed
        loaded = sorted(m for m in {OPTIONAL!r} if m in sys.modules)
        assert not loaded, loaded
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_dotted_name_in_the_readme_resolves_after_import_fastkin():
    text = (ROOT / "README.md").read_text()
    names = sorted(set(re.findall(r"\bfastkin(?:\.[A-Za-z_]\w*)+", text)))
    assert len(names) > 10
    code = textwrap.dedent(f"""
        import functools, fastkin
        bad = []
        for name in {names!r}:
            try:
                functools.reduce(getattr, name.split(".")[1:], fastkin)
            except AttributeError as e:
                bad.append(f"{{name}}: {{e}}")
        assert not bad, bad
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _venv_without_botocore(tmp_path: pathlib.Path) -> pathlib.Path:
    """A real venv holding numpy and this checkout's fastkin (built in place), and nothing else."""
    import numpy

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    numpy_dir = pathlib.Path(numpy.__file__).parent
    for entry in numpy_dir.parent.iterdir():
        if entry.name == "numpy" or entry.name.startswith("numpy.libs") or entry.name.startswith("numpy-"):
            (site / entry.name).symlink_to(entry)
    (site / "fastkin-src.pth").write_text(str(PKG.parent) + "\n")
    return venv / "bin" / "python"


def test_producer_and_consumer_round_trip_with_only_numpy(tmp_path):
    python = _venv_without_botocore(tmp_path)
    code = textwrap.dedent("""
        import sys
        for banned in ("botocore", "boto3"):
            try:
                __import__(banned)
            except ImportError:
                pass
            else:
                raise SystemExit(f"{banned} is importable: this venv is not what the test needs")
        import fastkin

        clock = fastkin.VirtualClock(start=1_700_000_000.0)
        engine = fastkin.Engine(clock=clock)
        stream = engine.create_stream("orders", shard_count=2)
        producer = fastkin.Producer(stream, linger=0.0)
        futures = [producer.put(f"r{i}".encode(), f"k{i}") for i in range(200)]
        producer.flush()
        assert all(f.result().sequence_number for f in futures)
        seen = []

        class Collect(fastkin.RecordProcessor):
            def process_records(self, records, checkpointer):
                seen.extend(r.data for r in records)
                checkpointer.checkpoint()

        worker = fastkin.Consumer(engine, "orders", "app", Collect)
        fastkin.kcl.drive([worker], until=lambda: len(seen) >= 200, clock=clock, max_seconds=120)
        assert sorted(seen) == sorted(f"r{i}".encode() for i in range(200)), len(seen)
        assert "botocore" not in sys.modules
        try:
            fastkin.mock_kinesis
        except ImportError as e:                 # a missing extra is one line naming it
            assert "pip install 'fastkin[boto]'" in str(e) and chr(10) not in str(e), e
        else:
            raise AssertionError("mock_kinesis without botocore")
        print("ok", fastkin.CORE)
    """)
    r = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok ")
    r = subprocess.run([str(python), "-m", "fastkin", "serve"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    assert len(r.stderr.splitlines()) == 1 and "pip install 'fastkin[server]'" in r.stderr, r.stderr


def _exception_classes(path: pathlib.Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            if any(re.search(r"(Error|Exception|Warning)$", b) for b in bases):
                out.append((node.name, node.lineno))
    return out


def test_errors_py_is_the_one_exception_module():
    elsewhere = [f"{p.relative_to(ROOT)}:{line}: class {name}" for m, p in MODULES.items()
                 if m != "fastkin.errors" for name, line in _exception_classes(p)]
    assert not elsewhere, "\n".join(elsewhere)


def test_aws_error_classes_are_named_as_their_codes_and_every_class_is_raised():
    from fastkin import errors as E

    sources = "\n".join(p.read_text() for m, p in MODULES.items() if m != "fastkin.errors")
    sources += (PKG / "_cy" / "core.pyx").read_text()
    classes = [c for c in vars(E).values() if isinstance(c, type) and issubclass(c, E.FastkinError)]
    for cls in classes:
        if cls.__name__.startswith("_") or cls is E.FastkinError:
            continue
        if issubclass(cls, E._Coded) or issubclass(cls, E._Own):
            assert cls.code == cls.__name__, cls
        assert re.search(rf"\b{cls.__name__}\b", sources), f"{cls.__name__} is never used outside errors.py"


def test_no_except_baseexception_swallows_interrupts():
    bad = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is not None and \
                    ast.unparse(node.type) in ("BaseException", "KeyboardInterrupt"):
                if not any(isinstance(x, ast.Raise) and x.exc is None for x in ast.walk(node)):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, "except BaseException without re-raising: " + ", ".join(bad)


def test_every_reference_to_an_error_class_names_one_that_exists():
    from fastkin import errors as E

    bad = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "E" \
                    and not hasattr(E, node.attr):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: E.{node.attr}")
    assert not bad, "\n".join(bad)

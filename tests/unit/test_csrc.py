"""Runs the plain-C tests of csrc/ (MD5 vectors, sequence-number formatting) when a compiler exists."""
import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[2] / "csrc"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler on this machine")
def test_csrc_c_tests(tmp_path):
    exe = tmp_path / "test_csrc"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(exe), str(CSRC / "test_csrc.c"), str(CSRC / "md5.c")],
                   check=True, capture_output=True)
    r = subprocess.run([str(exe), "--no-bench"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

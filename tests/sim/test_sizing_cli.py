"""Shard sizing (AWS's provisioned-mode formula) and the `simulate` / `shards` command lines."""
from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

import fastkin
from fastkin.sim.sizing import shards_needed

SRC = str(Path(fastkin.__file__).resolve().parent.parent)


# -- the formula, as AWS documents it ------------------------------------------------------------------
# number_of_shards = max(incoming_write_bandwidth_in_KiB/1024, outgoing_read_bandwidth_in_KiB/2048)
# incoming = average_data_size_in_KiB (rounded up to the nearest 1 KiB) x records_per_second
# outgoing = incoming x number_of_consumers

@pytest.mark.parametrize("kib, rps, consumers, incoming, outgoing, shards", [
    (1, 1000, 1, 1000, 1000, 1),          # one shard's worth: 1,000 KiB/s < 1,024
    (1, 1024, 1, 1024, 1024, 1),          # exactly 1 MiB/s: exactly one shard (exact arithmetic)
    (1, 1025, 1, 1025, 1025, 2),          # one KiB/s more: rounded up to a whole shard
    (0.1, 1000, 1, 1000, 1000, 1),        # 100 B records count as 1 KiB
    (2.5, 1000, 2, 3000, 6000, 3),        # 2.5 KiB rounds up to 3 KiB; 3000/1024 = 6000/2048 = 2.93
    (1, 1000, 3, 1000, 3000, 2),          # read-bound: 3 consumers x 1000 KiB/s = 3000/2048 = 1.46
    (100, 10, 10, 1000, 10000, 5),        # read-bound: 10,000/2048 = 4.88
    (1023.5, 1, 1, 1024, 1024, 1),
    (4, 2560, 1, 10240, 10240, 10),       # 10 MiB/s of 4 KiB records
    (1, 20_480, 2, 20_480, 40_960, 20),   # write and read both exactly 20 shards
])
def test_shards_formula(kib, rps, consumers, incoming, outgoing, shards):
    est = shards_needed(kib, rps, consumers)
    assert est.incoming_kib == incoming and est.outgoing_kib == outgoing
    assert est.write_shards == Fraction(incoming, 1024) and est.read_shards == Fraction(outgoing, 2048)
    assert est.number_of_shards == shards


def test_record_rate_note_when_the_formula_is_short_of_the_1000_records_limit():
    est = shards_needed(1, 5100)
    assert est.number_of_shards == 5 and est.records_limit_shards == 6
    assert "5 shards take at most 5,000 records/s" in est.explain()
    assert "note" not in shards_needed(2.5, 1000, 2).explain()


@pytest.mark.parametrize("args", [(0, 10, 1), (1, -5, 1), (1, 10, 0), (float("nan"), 1, 1), (1, 1, 1.5)])
def test_invalid_inputs(args):
    with pytest.raises(ValueError):
        shards_needed(*args)


# -- command lines -------------------------------------------------------------------------------------

def fastkin_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "fastkin", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_cli_shards_prints_inputs_and_arithmetic():
    p = fastkin_cli("shards", "--record-kib", "2.5", "--records-per-second", "1000", "--consumers", "2")
    assert p.returncode == 0, p.stderr
    assert "2.5 KiB -> rounded up to 3 KiB" in p.stdout
    assert "incoming write bandwidth = 3 KiB x 1,000 records/s = 3,000 KiB/s" in p.stdout
    assert "outgoing read bandwidth  = 3,000 KiB/s x 2 consumers = 6,000 KiB/s" in p.stdout
    assert "number_of_shards = max(3,000/1024, 6,000/2048) = max(2.93, 2.93) = 2.93 -> 3 shards" in p.stdout
    bad = fastkin_cli("shards", "--record-kib", "0", "--records-per-second", "10")
    assert bad.returncode == 2 and "--record-kib must be more than 0" in bad.stderr and bad.stdout == ""


def test_cli_simulate_scenario_file(tmp_path):
    f = tmp_path / "burst.toml"
    f.write_text("""
[simulation]
name = "burst"
duration = "20s"

[[streams]]
name = "clicks"
shards = 1

[[producers]]
stream = "clicks"
record_size = "10 KB"
schedule = [{ at = 0, rate = "500 KB/s" }, { at = "10s", rate = "2 MB/s" }]

[[consumers]]
stream = "clicks"
""")
    p = fastkin_cli("simulate", str(f), "--out", str(tmp_path / "out"), "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "fastkin simulate: burst" in p.stdout and "throttling: 0:10-0:20" in p.stdout
    assert (tmp_path / "out" / "burst.csv").exists()
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        assert "matplotlib is not installed" in p.stdout
    else:
        assert (tmp_path / "out" / "burst.png").exists()


def test_cli_simulate_reports_scenario_errors(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[simulation]\nduration = "1m"\n[[streams]]\nname = "s"\nshards = 2\n'
                 '[[producers]]\nrecord_size = 100\nrate = "fast"\n')
    p = fastkin_cli("simulate", str(f))
    assert p.returncode == 2
    assert f"{f}: producers[0].rate: expected a rate with a unit like '1000 records/s'" in p.stderr
    p = fastkin_cli("simulate")
    assert p.returncode == 2 and "give a scenario file or --builtin NAME" in p.stderr
    p = fastkin_cli("simulate", "--builtin", "nope")
    assert p.returncode == 2 and "no built-in scenario 'nope'" in p.stderr


def test_cli_simulate_builtin_blog_runs_in_seconds(tmp_path):
    p = fastkin_cli("simulate", "--builtin", "aws-on-demand-blog", "--no-plot", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "open shards: 5 -> 10 at 8:00, 20 at 9:00, 40 at 10:00" in p.stdout
    assert (tmp_path / "aws-on-demand-blog.csv").exists() and not (tmp_path / "aws-on-demand-blog.png").exists()
    p = fastkin_cli("simulate", "--list")
    assert p.returncode == 0 and p.stdout.startswith("aws-on-demand-blog: ")

import subprocess
import sys

from fastkin.sim.demo import run


def test_demo_throttles_at_the_shard_limits(core_name):
    lines = []
    res = run(seconds=5, shards=2, core=core_name, out=lines.append)
    for sid, acc in res["accepted"].items():
        assert res["offered"][sid] > acc
        assert acc <= 1000 * 5 + 1000            # 1,000 records/s plus one second of burst
        assert acc >= 1000 * 5 - 100
    assert res["reads_throttled"] > 0 and res["records_read"] == sum(res["accepted"].values())
    assert any("throttled" in line for line in lines)


def test_cli_demo_runs():
    r = subprocess.run([sys.executable, "-m", "fastkin", "demo", "--seconds", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "shardId-000000000003" in r.stdout and "total" in r.stdout

"""The command line as a user meets it: usage and version, a description and defaults on every command, bad values
refused up front in one line with exit status 2, and `fastkin serve` binding before it announces itself."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

import fastkin


def fastkin_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastkin", *args], capture_output=True, text=True, timeout=timeout)


def test_bare_command_prints_usage_and_the_commands():
    r = fastkin_cli()
    assert r.returncode == 2
    assert r.stdout.startswith("usage: fastkin") and "AWS Kinesis Data Streams" in r.stdout
    for cmd in ("demo", "serve", "simulate", "shards"):
        assert re.search(rf"^\s+{cmd}\s+\S", r.stdout, re.M), cmd
    assert "required" not in r.stdout + r.stderr


def test_version():
    r = fastkin_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"fastkin {fastkin.__version__}"


@pytest.mark.parametrize("cmd", ["demo", "serve", "simulate", "shards"])
def test_every_command_has_a_description_and_every_option_help_with_its_default(cmd):
    r = fastkin_cli(cmd, "--help")
    assert r.returncode == 0, r.stderr
    usage, _, rest = r.stdout.partition("\n\n")
    assert usage.startswith(f"usage: fastkin {cmd}") and not rest.startswith("options:")      # a description first
    options = rest[rest.index("options:"):]
    entries = re.split(r"\n  (?=-)", options)[1:]
    assert entries
    for entry in entries:
        name = entry.split()[0]
        if name in ("-h,",):
            continue
        text = " ".join(entry.split())
        takes_value = re.match(r"--?[\w-]+ [A-Z]", entry) or "{" in entry.split("\n")[0]
        assert len(text) > len(entry.split("\n")[0].split("  ")[0]) + 3, f"{cmd} {name} has no help"
        if takes_value and "default" not in text:
            pytest.fail(f"fastkin {cmd} {name}: the help does not show its default: {text}")


@pytest.mark.parametrize("args, says", [
    (["demo", "--shards", "0"], "--shards must be at least 1, got 0"),
    (["demo", "--seconds", "-5"], "--seconds must be at least 1, got -5"),
    (["shards", "--record-kib", "2000", "--records-per-second", "10"],
     "--record-kib must be more than 0 and at most 1024"),
    (["serve", "--port", "70000"], "--port must be between 0 and 65535, got 70000"),
    (["demo", "--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_bad_values_are_refused_in_one_line(args, says):
    r = fastkin_cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr


def test_simulate_checks_its_output_directory_before_the_run(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    t0 = time.monotonic()
    r = fastkin_cli("simulate", "--builtin", "aws-on-demand-blog", "--out", str(blocker / "out"), "--no-progress")
    assert r.returncode == 2 and r.stdout == "", r.stdout          # nothing ran: no summary
    assert len(r.stderr.strip().splitlines()) == 1 and "Not a directory" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 30


def test_demo_explains_why_a_shard_accepted_more_than_its_limit():
    r = fastkin_cli("demo", "--seconds", "5")
    assert r.returncode == 0, r.stderr
    assert "starts full" in r.stdout and "5 s admit at most 6,000 records" in r.stdout


def test_serve_on_a_taken_port_says_so_in_one_line_without_announcing():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = fastkin_cli("serve", "--port", str(port), timeout=30)
    assert r.returncode == 2
    assert "serving" not in r.stdout, r.stdout
    assert r.stderr.strip() == f"fastkin serve: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_serve_binds_then_announces_the_url_and_the_variables_to_export():
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("httptools")
    proc = subprocess.Popen([sys.executable, "-m", "fastkin", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        hint = proc.stdout.readline()
        url = re.search(r"on (http://127\.0\.0\.1:\d+) ", banner).group(1)
        env = dict(kv.split("=", 1) for kv in hint.split("export", 1)[1].split())
        assert env == {"AWS_ENDPOINT_URL_KINESIS": url, "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        client = boto3.client("kinesis", endpoint_url=url, region_name=env["AWS_DEFAULT_REGION"],
                              aws_access_key_id="test", aws_secret_access_key="test")
        client.create_stream(StreamName="s", ShardCount=1)        # the announced server already answers
        assert client.list_streams()["StreamNames"] == ["s"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "fastkin stopped" in out


@pytest.mark.skipif(os.environ.get("FASTKIN_NO_EXTENSIONS") == "1",
                    reason="minutes on the reference core; the line is built the same on both")
def test_simulate_summary_reports_start_and_end_mode_and_shards(tmp_path):
    from fastkin.sim import builtin, run

    res = run(builtin("aws-on-demand-blog"), plot=False, progress=False)
    line = next(x for x in res.summary().splitlines() if x.startswith("stream "))
    first, last = res.column("mode")[[0, -1]]
    shards = res.column("open_shards")
    assert f"{first} with {int(shards[0])} shards at the start, {last} with {int(shards[-1])} at the end" in line

"""The AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis) with its default configuration against
fastkin serve: HTTP/2 by prior knowledge (h2c) to an http:// endpoint, and HTTP/2 over TLS (ALPN) with
the generated certificate trusted through NODE_EXTRA_CA_CERTS. The SDK is installed with npm into
``.cache/js-sdk`` (git-ignored; ``FASTKIN_JS_SDK_DIR`` overrides it) on first use. Skipped, with the
reason, when node or npm is missing or the install fails."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from fastkin.wire.http import ServerThread

SDK = "@aws-sdk/client-kinesis"
SDK_VERSION = "3.1143.0"                 # pinned: the version this test was written against
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("js_sdk_v3.mjs")


def _sdk_dir() -> Path:
    return Path(os.environ.get("FASTKIN_JS_SDK_DIR", ROOT / ".cache" / "js-sdk"))


def _installed(d: Path) -> bool:
    pkg = d / "node_modules" / SDK / "package.json"
    try:
        return json.loads(pkg.read_text())["version"] == SDK_VERSION
    except (OSError, ValueError, KeyError):
        return False


@pytest.fixture(scope="module")
def js_sdk() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(f"the JavaScript SDK test needs node and npm on PATH (node: {node}, npm: {npm})")
    d = _sdk_dir()
    if not _installed(d):
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="js-sdk-", dir=d.parent))      # install aside, then move in place
        (tmp / "package.json").write_text(json.dumps(
            {"name": "fastkin-js-sdk-test", "private": True, "type": "module",
             "dependencies": {SDK: SDK_VERSION}}))
        try:
            p = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--fetch-retries=1",
                                "--fetch-retry-mintimeout=1000", "--fetch-retry-maxtimeout=5000",
                                "--fetch-timeout=30000"], cwd=tmp, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.skip(f"npm install {SDK}@{SDK_VERSION} took more than 120 s (no registry access?)")
        if p.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.skip(f"npm install {SDK}@{SDK_VERSION} failed (rc {p.returncode}): {p.stderr.strip()[-400:]}")
        if not _installed(d):
            shutil.rmtree(d, ignore_errors=True)
            try:
                tmp.rename(d)
            except OSError:                     # another run installed it meanwhile
                shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    assert _installed(d)
    return d


def _run(js_sdk: Path, url: str, extra_env: dict | None = None) -> dict:
    script = js_sdk / SCRIPT.name                  # next to its node_modules, so the import resolves
    shutil.copyfile(SCRIPT, script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NODE_"))}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "NODE_NO_WARNINGS": "1", **(extra_env or {})})
    p = subprocess.run(["node", str(script), url], cwd=js_sdk, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, f"node exited with {p.returncode}:\n{p.stderr[-3000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def _check(out: dict, srv) -> None:
    assert out["handler"] == "NodeHttp2Handler"            # the SDK's default for Kinesis
    assert out["failed"] == 0 and len(out["shards"]) == 2
    assert out["created"].startswith(("20", "19")) and not out["created"].startswith("1970")
    data = sorted(r["data"] for r in out["records"])
    assert data == sorted(["hello"] + [f"r{i}" for i in range(20)])
    assert all(not r["arrival"].startswith("1970") for r in out["records"])
    assert out["error"]["name"] == "ResourceNotFoundException" and out["error"]["status"] == 400
    for shard in out["shards"]:
        assert out["subscribed"][shard] == [r["data"] for r in out["records"] if r["shard"] == shard]
    assert srv.app.http_versions["2"] > 0 and srv.app.http_versions.get("1.1", 0) == 0   # HTTP/2 only


def test_js_sdk_v3_default_client_over_h2c(js_sdk):
    with ServerThread(port=0) as srv:
        _check(_run(js_sdk, srv.url), srv)


def test_js_sdk_v3_default_client_over_tls(js_sdk):
    with ServerThread(port=0, tls=True) as srv:
        _check(_run(js_sdk, srv.url, {"NODE_EXTRA_CA_CERTS": srv.cafile}), srv)

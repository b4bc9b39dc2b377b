"""The capacity simulator: the built-in AWS on-demand scenario's story, scenario parsing and validation,
producers' key distributions, consumers across reshards, timed actions, the CSV and the PNG."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from fastkin.sim.simulator import COLUMNS, ScenarioError, builtin, builtin_names, load_scenario, run


@pytest.fixture(scope="module")
def blog(tmp_path_factory):
    out = tmp_path_factory.mktemp("blog")
    return run(builtin("aws-on-demand-blog"), out_dir=out, progress=False)


def at(result, col, t0, t1=None):
    """Values of a timeline column for engine-seconds [t0, t1)."""
    t = result.column("time_s")
    v = result.column(col)
    return v[(t >= t0) & (t < (t1 if t1 is not None else t0 + 1))]


# -- the built-in AWS example ---------------------------------------------------------------------------

def test_blog_builtin_is_listed_and_described():
    assert "aws-on-demand-blog" in builtin_names()
    sc = builtin("aws-on-demand-blog")
    assert sc.streams[0].mode == "PROVISIONED" and sc.streams[0].shards == 5
    assert [a.at for a in sc.actions] == [420.0] and sc.actions[0].args == {"mode": "ON_DEMAND"}


def test_blog_throttling_begins_when_load_rises_and_not_before(blog):
    assert at(blog, "throttled_records_per_s", 0, 180).sum() == 0
    assert (at(blog, "offered_bytes_per_s", 0, 180) == 4e6).all()
    thr = at(blog, "throttled_records_per_s", 181, 420)
    assert (thr > 0).all()                                   # every second from 3:01 to the switch
    acc = at(blog, "accepted_bytes_per_s", 182, 420)         # 5 shards accept 5 MiB/s of the 12 MB/s offered
    assert abs(acc.mean() - 5 * 1024 * 1024) < 0.01 * 5 * 1024 * 1024
    assert at(blog, "offered_bytes_per_s", 200)[0] == 12e6


def test_blog_switch_scales_on_demand_then_throttling_stops(blog):
    assert list(at(blog, "mode", 419, 421)) == ["PROVISIONED", "ON_DEMAND"]
    shards = blog.column("open_shards")
    assert shards[419] == 5 and shards[420] == 5             # the shard count is kept by the switch
    assert shards[420 + 3 * 60] >= 10                        # 10 shards within about 3 minutes of the switch
    assert shards[480] == 10 and shards[540] == 20 and shards[600] == 40
    assert shards[-1] == 40
    per_shard = at(blog, "offered_bytes_per_s", 780, 840) / at(blog, "open_shards", 780, 840)
    assert (per_shard < 0.5e6).all()                          # each shard carries under 0.5 MB/s
    assert at(blog, "throttled_records_per_s", 545, 840).sum() == 0   # throttling stops
    assert at(blog, "accepted_bytes_per_s", 545, 840).mean() == pytest.approx(12e6, rel=0.01)
    splits = [e for e in blog.events if e.kind == "split"]
    assert len(splits) == 5 + 10 + 20


def test_blog_summary_tells_the_story(blog):
    text = blog.summary()
    assert "throttling: 3:00-9:00" in text
    assert "open shards: 5 -> 10 at 8:00, 20 at 9:00, 40 at 10:00" in text
    assert "switch to ON_DEMAND" in text


def test_blog_runs_in_seconds(blog):
    assert blog.engine_seconds == 840 and blog.wall_seconds < 20
    assert blog.speed > 40


def test_simulations_default_to_metadata_storage_and_short_retention(blog):
    s = blog.streams["orders"]
    assert s.storage == "metadata" and s.retention_seconds == 300.0
    sc = load_scenario({"simulation": {"duration": 10}, "streams": [{"name": "s", "shards": 1}]})
    assert sc.streams[0].storage == "metadata" and sc.streams[0].retention == 600.0


# -- timeline CSV and plot ----------------------------------------------------------------------------

def test_csv_has_the_documented_columns(blog):
    with open(blog.csv_path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == COLUMNS
    assert len(rows) == 1 + 840
    body = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert body[0]["time_s"] == "0" and body[0]["stream"] == "orders" and body[0]["mode"] == "PROVISIONED"
    assert body[420]["events"] == "switch to ON_DEMAND"
    assert body[480]["events"] == "on-demand scaling -> 10 shards"
    assert float(body[300]["offered_bytes_per_s"]) == 12e6
    assert blog.to_csv().splitlines()[0] == ",".join(COLUMNS)


def test_png_is_written_when_matplotlib_is_present(blog):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: pip install 'fastkin[plot]'")
    assert blog.png_path is not None
    with open(blog.png_path, "rb") as f:
        head = f.read(8)
        f.seek(0, 2)
        size = f.tell()
    assert head == b"\x89PNG\r\n\x1a\n" and size > 20_000


def test_no_png_without_matplotlib_is_reported(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_mpl(name, *a, **kw):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError("No module named 'matplotlib'")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    r = run(TINY, out_dir=tmp_path, progress=False)
    assert r.png_path is None and "matplotlib is not installed" in r.plot_note
    assert (tmp_path / "tiny.csv").exists() and not (tmp_path / "tiny.png").exists()


# -- scenario parsing and validation -------------------------------------------------------------------

TINY = """
[simulation]
name = "tiny"
duration = "30s"
step = "250ms"

[[streams]]
name = "s"
shards = 2
retention = "1m"

[[producers]]
stream = "s"
record_size = "1 KiB"
rate = "500 records/s"
"""


def test_toml_text_units_and_defaults():
    sc = load_scenario(TINY)
    assert sc.name == "tiny" and sc.duration == 30 and sc.step == 0.25
    st = sc.streams[0]
    assert (st.mode, st.shards, st.storage, st.retention) == ("PROVISIONED", 2, "metadata", 60.0)
    p = sc.producers[0]
    assert p.record_size == 1024 and p.schedule == [(0.0, 500.0, "records")] and p.keys == "uniform"
    assert p.records_per_second(10) == 500


def test_schedule_steps_and_ramps():
    d = {"simulation": {"duration": "1h30m"}, "streams": [{"name": "s", "shards": 1}],
         "producers": [{"record_size": "10 KB", "ramp": True,
                        "schedule": [{"at": "1m", "rate": "1 MB/s"}, {"at": "3m", "rate": "3 MB/s"}]}]}
    sc = load_scenario(d)
    p = sc.producers[0]
    assert sc.duration == 5400
    assert p.records_per_second(30) == 0 and p.records_per_second(60) == 100
    assert p.records_per_second(120) == pytest.approx(200) and p.records_per_second(1000) == 300
    d["producers"][0]["ramp"] = False
    assert load_scenario(d).producers[0].records_per_second(170) == 100


def test_scenario_file_path(tmp_path):
    f = tmp_path / "x.toml"
    f.write_text(TINY)
    assert load_scenario(str(f)).source == str(f)
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(str(tmp_path / "missing.toml"))


BASE = {"simulation": {"duration": 60}, "streams": [{"name": "s", "shards": 2}],
        "producers": [{"record_size": 1000, "rate": "10 records/s"}]}


def _with(path, value):
    import copy

    d = copy.deepcopy(BASE)
    cur = d
    for k in path[:-1]:
        cur = cur[k]
    if value is _DEL:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return d


_DEL = object()


@pytest.mark.parametrize("scenario, message", [
    ("[simulation\nduration = 1", "not valid TOML"),
    ({"streams": [{"name": "s", "shards": 1}]}, r"missing \[simulation\] section"),
    (_with(["simulation", "duration"], _DEL), r"\[simulation\]: missing required key 'duration'"),
    (_with(["simulation", "duration"], "ten minutes"), r"\[simulation\]\.duration: expected a duration like 90"),
    (_with(["simulation", "step"], 2), r"step must be at most 1 s"),
    (_with(["simulation", "colour"], 1), r"\[simulation\]: unknown key colour \(allowed: "),
    (_with(["stream"], []), r"unknown section stream"),
    (_with(["streams"], []), r"at least one \[\[streams\]\]"),
    (_with(["streams", 0, "shard"], 3), r"streams\[0\]: unknown key shard"),
    (_with(["streams", 0, "shards"], _DEL), r"streams\[0\]: a PROVISIONED stream needs 'shards'"),
    (_with(["streams", 0, "shards"], 0), r"streams\[0\]\.shards: expected a whole number >= 1, got 0"),
    (_with(["streams", 0, "mode"], "ONDEMAND"), r"streams\[0\]\.mode: expected 'PROVISIONED' or 'ON_DEMAND'"),
    (_with(["streams", 0, "storage"], "disk"), r"streams\[0\]\.storage: expected 'metadata'"),
    (_with(["producers", 0, "rate"], "10"), r"producers\[0\]\.rate: expected a rate with a unit like"),
    (_with(["producers", 0, "rate"], "10 MB"), r"producers\[0\]\.rate: expected a rate with a unit"),
    (_with(["producers", 0, "rate"], _DEL), r"producers\[0\]: give either 'rate' .* or 'schedule'"),
    (_with(["producers", 0, "schedule"], [{"at": 0, "rate": "1 MB/s"}]), r"not both or neither"),
    (_with(["producers", 0, "record_size"], "big"), r"producers\[0\]\.record_size: expected a size like"),
    (_with(["producers", 0, "record_size"], 2_000_000), r"record_size: at most 1 MiB"),
    (_with(["producers", 0, "record_size"], 10), r"leaves no room for data after a 24-byte partition key"),
    (_with(["producers", 0, "stream"], "nope"), r"producers\[0\]\.stream: no stream named 'nope' \(streams: s\)"),
    (_with(["producers", 0, "keys"], "zipf"), r"producers\[0\]\.keys: expected 'uniform'"),
    (_with(["producers", 0, "hot_fraction"], 1.5), r"hot_fraction: expected a fraction between 0 and 1"),
    (_with(["producers", 0, "schedule"], None), r"not both or neither"),
    ({**BASE, "producers": [{"record_size": 1000, "schedule": [{"at": 5, "rate": "1 MB/s"},
                                                               {"at": 5, "rate": "2 MB/s"}]}]},
     r"schedule\[1\]\.at: schedule times must increase"),
    ({**BASE, "consumers": [{"start": "EARLIEST"}]}, r"consumers\[0\]\.start: expected 'LATEST' or 'TRIM_HORIZON'"),
    ({**BASE, "consumers": [{"limit": 20_000}]}, r"consumers\[0\]\.limit: GetRecords returns at most 10000"),
    ({**BASE, "actions": [{"at": 10, "action": "reboot"}]},
     r"actions\[0\]\.action: expected one of update_stream_mode"),
    ({**BASE, "actions": [{"at": 60, "action": "update_shard_count", "target": 4}]},
     r"actions\[0\]\.at: 60 s is not before the end of the simulation \(60 s\)"),
    ({**BASE, "actions": [{"at": 1, "action": "update_shard_count"}]}, r"action update_shard_count needs 'target'"),
    ({**BASE, "actions": [{"at": 1, "action": "update_stream_mode", "mode": "FAST"}]}, r"actions\[0\]\.mode"),
    ({**BASE, "actions": [{"at": 1, "action": "split_shard", "shard": "shardId-0", "target": 3}]},
     r"action split_shard takes no target"),
    ({**BASE, "streams": [{"name": "a", "shards": 1}, {"name": "b", "shards": 1}]},
     r"producers\[0\]: missing 'stream' \(there are several streams: a, b\)"),
])
def test_validation_errors_are_clear(scenario, message):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(scenario)


# -- producers, consumers, actions -----------------------------------------------------------------

def _scenario(**producer):
    p = {"record_size": 1000, "rate": "2000 records/s"}
    p.update(producer)
    return {"simulation": {"name": "keys", "duration": 20}, "streams": [{"name": "s", "shards": 4}], "producers": [p]}


def test_uniform_keys_spread_under_the_limits():
    r = run(_scenario(), progress=False)
    assert r.column("throttled_records_per_s").sum() == 0
    assert r.column("accepted_records_per_s").sum() == 2000 * 20


def test_hot_key_fraction_throttles_one_shard():
    # 60 % of 2,000 records/s on one key: 1,200/s plus a quarter of the other 800/s to one shard,
    # 1,400/s against its 1,000 records/s; the other three shards take 200/s each
    r = run(_scenario(hot_fraction=0.6, hot_keys=1), progress=False)
    thr = r.column("throttled_records_per_s")[2:]
    assert 330 < thr.mean() < 470


def test_fixed_key_set():
    r = run(_scenario(keys=["only-key"], rate="1500 records/s"), progress=False)
    assert r.column("accepted_records_per_s")[2:].mean() == pytest.approx(1000, rel=0.01)
    r = run(_scenario(keys="fixed", key_count=1000), progress=False)
    assert r.column("throttled_records_per_s").sum() == 0


def test_consumer_reads_every_accepted_record_across_reshards():
    d = {"simulation": {"name": "reshard", "duration": 40},
         "streams": [{"name": "s", "shards": 2}],
         "producers": [{"record_size": "2 KB", "rate": "1 MB/s", "keys": "fixed", "key_count": 500}],
         "consumers": [{"name": "all", "start": "TRIM_HORIZON", "poll_interval": "500ms"}],
         "actions": [{"at": 10, "action": "split_shard", "shard": "shardId-000000000000"},
                     {"at": 20, "action": "merge_shards", "shard": "shardId-000000000002",
                      "adjacent": "shardId-000000000003"},
                     {"at": 30, "action": "update_shard_count", "target": 4},
                     {"at": 35, "action": "split_shard", "shard": "shardId-000000000000"}]}
    r = run(d, progress=False)
    kinds = [(e.time_s, e.kind) for e in r.events]
    assert kinds[:3] == [(10, "split_shard"), (20, "merge_shards"), (30, "update_shard_count")]
    assert kinds[3][1] == "error" and "InvalidArgumentException" in r.events[3].detail   # already closed (AWS: IAE)
    shards = r.column("open_shards")
    # OpenShardCount is the maximum within each second: the merge at 20 s shows from 21 s
    assert shards[9] == 2 and shards[10] == 3 and shards[20] == 3 and shards[21] == 2 and shards[30] == 4
    c = r.consumers["all"]
    accepted = int(r.column("accepted_records_per_s").sum())
    last = r.streams["s"]
    # everything accepted up to the consumer's last poll has been read, once, parents before children
    assert accepted - 600 <= c.records <= accepted and c.throttled == 0
    assert "ERROR split" in r.timeline["events"][35]
    assert last.mode == "PROVISIONED"


def test_a_slow_consumer_lags_and_on_demand_rejects_provisioned_actions():
    d = {"simulation": {"name": "lag", "duration": 30},
         "streams": [{"name": "s", "mode": "ON_DEMAND"}],
         "producers": [{"record_size": "1 KB", "rate": "400 records/s"}],
         "consumers": [{"name": "slow", "max_records_per_second": 200, "start": "TRIM_HORIZON"}],
         "actions": [{"at": 5, "action": "update_shard_count", "target": 8}]}
    r = run(d, progress=False)
    lag = r.consumers["slow"].lag_ms
    assert lag[-1] > 10_000 and lag[-1] > lag[10]            # half the rate it is offered: falls behind
    assert r.column("consumer_lag_ms")[-1] == lag[-1]
    err = [e for e in r.events if e.kind == "error"]
    assert len(err) == 1 and "ValidationException" in err[0].detail
    assert r.column("open_shards")[0] == 4


def test_progress_bar_falls_back_silently_when_not_a_tty(capsys):
    run(TINY, progress=None)
    assert capsys.readouterr().err == ""


def test_result_timeline_at_minute_resolution():
    sc = load_scenario(TINY.replace('step = "250ms"', 'step = "250ms"\nresolution = 60').replace('"30s"', '"3m"'))
    r = run(sc, progress=False)
    assert r.resolution == 60 and list(r.column("time_s")) == [0, 60, 120]
    assert np.allclose(r.column("accepted_records_per_s"), 500)


def test_summary_printed_through_out():
    lines = []
    run(TINY, progress=False, out=lines.append)
    assert lines and lines[0].startswith("fastkin simulate: tiny") and "throttling: none" in lines[0]


def test_csv_writer_formats_numbers():
    r = run(TINY, progress=False)
    rows = list(csv.reader(io.StringIO(r.to_csv())))
    assert rows[1][COLUMNS.index("accepted_records_per_s")] == "500"


def test_a_scenario_channel_delivers_closed_windows_into_its_directory(tmp_path):
    import gzip

    sc = {"simulation": {"name": "lake", "duration": "12m"},
          "streams": [{"name": "s", "mode": "ON_DEMAND", "storage": "full"}],
          "producers": [{"record_size": 100, "rate": "200 records/s"}],
          "channels": [{"name": "to-lake", "freshness": "5m", "compression": "GZIP"}]}
    r = run(sc, out_dir=tmp_path, plot=False)
    ch = r.channels["to-lake"]
    assert ch.status == "ACTIVE" and ch.failed_records == 0
    assert (ch.objects, ch.records) == (2, 2 * 300 * 200)          # windows 0-5 and 5-10 min; 10-12 still open
    objs = sorted(p for p in (tmp_path / "lake-channels" / "sim-to-lake").rglob("*") if p.is_file())
    assert len(objs) == 2 and all(p.name.endswith(".gz") for p in objs)
    payload = sum(len(gzip.decompress(p.read_bytes())) for p in objs)
    assert payload == ch.bytes and ch.bytes % ch.records == 0 and 0 < ch.bytes // ch.records < 100  # data < size
    assert "channel to-lake on s (ACTIVE): 2 objects, 120,000 records" in r.summary()


def test_a_channel_needs_an_on_demand_stream_that_keeps_its_records():
    sc = {"simulation": {"duration": "1m"}, "streams": [{"name": "s", "mode": "ON_DEMAND"}],
          "channels": [{"name": "c"}]}
    with pytest.raises(ScenarioError, match=r"channels\[0\]: channels read on-demand streams that keep their "
                                            r"records: stream 's' needs mode = 'ON_DEMAND' and storage = 'full'"):
        load_scenario(sc)

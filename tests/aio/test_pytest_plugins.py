"""``fastkin_aio_kinesis`` under pytest-asyncio and under anyio's plugin, both installed in one run: the client is
made, used and closed on the loop that runs the test, and neither plugin warns."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

pytest.importorskip("aiobotocore")
pytest_asyncio = pytest.importorskip("pytest_asyncio")

import fastkin  # noqa: E402
from fastkin.testing import pytest_plugin  # noqa: E402


@pytest.fixture(autouse=True)
def client_loops(monkeypatch):
    """The running loop each fastkin_aio_kinesis client was entered and exited on."""
    loops: list = []
    real = pytest_plugin._aio_client

    @contextlib.asynccontextmanager
    async def recording(engine):
        loops.append(asyncio.get_running_loop())
        async with real(engine) as client:
            yield client
        loops.append(asyncio.get_running_loop())
    monkeypatch.setattr(pytest_plugin, "_aio_client", recording)
    return loops


@pytest.mark.asyncio
async def test_pytest_asyncio_fixture(fastkin_aio_kinesis, fastkin_engine, client_loops, no_network):
    await fastkin_aio_kinesis.create_stream(StreamName="orders", ShardCount=2)
    await fastkin_aio_kinesis.put_record(StreamName="orders", Data=b"hi", PartitionKey="user-1")
    summary = (await fastkin_aio_kinesis.describe_stream_summary(StreamName="orders"))["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2 and fastkin_engine.stream("orders") is not None
    assert client_loops == [asyncio.get_running_loop()]
    assert no_network == []


@pytest.mark.asyncio
async def test_pytest_asyncio_virtual_clock(fastkin_aio_kinesis, fastkin_virtual_clock):
    await fastkin_aio_kinesis.create_stream(StreamName="s", ShardCount=1)
    summary = (await fastkin_aio_kinesis.describe_stream_summary(StreamName="s"))["StreamDescriptionSummary"]
    assert summary["StreamCreationTimestamp"].timestamp() == fastkin_virtual_clock()


@pytest.mark.asyncio
async def test_pytest_asyncio_event_stream(fastkin_aio_kinesis, fastkin_virtual_clock):
    k = fastkin_aio_kinesis
    await k.create_stream(StreamName="s", ShardCount=1)
    arn = (await k.describe_stream_summary(StreamName="s"))["StreamDescriptionSummary"]["StreamARN"]
    c = (await k.register_stream_consumer(StreamARN=arn, ConsumerName="c"))["Consumer"]["ConsumerARN"]
    await k.put_records(StreamName="s", Records=[{"Data": b"r%d" % i, "PartitionKey": "p"} for i in range(3)])
    resp = await k.subscribe_to_shard(ConsumerARN=c, ShardId="shardId-000000000000",
                                      StartingPosition={"Type": "TRIM_HORIZON"})
    async with resp["EventStream"] as stream:
        async for ev in stream:
            assert [r["Data"] for r in ev["SubscribeToShardEvent"]["Records"]] == [b"r0", b"r1", b"r2"]
            break


@pytest.mark.asyncio
async def test_pytest_asyncio_errors(fastkin_aio_kinesis):
    with pytest.raises(fastkin_aio_kinesis.exceptions.ResourceNotFoundException):
        await fastkin_aio_kinesis.describe_stream(StreamName="missing")


@pytest.mark.anyio
async def test_anyio_in_the_same_module(fastkin_aio_kinesis, fastkin_engine, client_loops):
    await fastkin_aio_kinesis.create_stream(StreamName="orders", ShardCount=1)
    assert fastkin_engine.stream("orders") is not None
    assert client_loops == [asyncio.get_running_loop()]


@pytest_asyncio.fixture
async def app_stream(fastkin_aio_kinesis):
    """A user's own pytest-asyncio fixture built on fastkin_aio_kinesis."""
    await fastkin_aio_kinesis.create_stream(StreamName="app", ShardCount=1)
    return "app"


@pytest.mark.asyncio
async def test_pytest_asyncio_user_fixture_on_top(app_stream, fastkin_aio_kinesis, client_loops):
    assert (await fastkin_aio_kinesis.list_streams())["StreamNames"] == [app_stream]
    assert client_loops == [asyncio.get_running_loop()]


@fastkin.mock_kinesis()
@pytest.mark.asyncio
async def test_pytest_asyncio_decorated_test():
    from aiobotocore.session import get_session

    async with get_session().create_client("kinesis", region_name="us-east-1", aws_access_key_id="t",
                                           aws_secret_access_key="t") as k:
        await k.create_stream(StreamName="deco", ShardCount=1)
        assert (await k.list_streams())["StreamNames"] == ["deco"]


INNER_TEST = """
import asyncio

async def test_inner(fastkin_aio_kinesis, fastkin_engine):
    await fastkin_aio_kinesis.create_stream(StreamName="s", ShardCount=1)
    assert fastkin_engine.stream("s") is not None
"""


def _inner(pytester, ini: str, *args):
    pytester.makeini("[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n" + ini)
    pytester.makepyfile(INNER_TEST)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error", *args)


def test_pytest_asyncio_auto_mode(pytester):
    """Auto mode runs every async test with pytest-asyncio: the fixture follows, unmarked tests included."""
    res = _inner(pytester, "asyncio_mode = auto\n")
    res.assert_outcomes(passed=1)
    assert "warning" not in res.stdout.str().lower()


def test_unmarked_test_in_strict_mode_is_told_what_to_do(pytester):
    res = _inner(pytester, "asyncio_mode = strict\n")
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["*fastkin_aio_kinesis is an async fixture; mark the test @pytest.mark.anyio*"])


def test_anyio_alone(pytester):
    """Without pytest-asyncio loaded, anyio's plugin runs the fixture as before."""
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile("import pytest\npytestmark = pytest.mark.anyio\n" + INNER_TEST
                        + "\n@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n")
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "-W", "error")
    res.assert_outcomes(passed=1)

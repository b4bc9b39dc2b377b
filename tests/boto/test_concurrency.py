"""The server handles at most max_concurrency requests at once; the rest wait their turn (none is lost)."""
import asyncio

from fastkin.wire.http import KinesisApp


def test_requests_beyond_max_concurrency_wait():
    app = KinesisApp(max_concurrency=2)
    running = 0
    peak = 0
    done = []

    async def handle(scope, receive, send):      # stands in for the real handler: holds its slot a while
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        done.append(scope["path"])

    app._handle = handle

    async def main():
        scopes = [{"type": "http", "http_version": "1.1", "path": f"/{i}", "method": "POST", "headers": []}
                  for i in range(7)]
        await asyncio.gather(*(app(s, None, None) for s in scopes))

    asyncio.run(main())
    assert peak == 2 and sorted(done) == sorted(f"/{i}" for i in range(7))

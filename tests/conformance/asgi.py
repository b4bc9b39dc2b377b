"""Drive the ASGI app in-process, as an ASGI server would for one request (no sockets): the conformance tests'
one HTTP client."""
from __future__ import annotations

import asyncio


def asgi_request(app, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                 query: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """(status, response headers with lower-case names, body) of one request."""
    async def run():
        msgs = [{"type": "http.request", "body": body, "more_body": False}]
        out: list = []

        async def receive():
            return msgs.pop(0) if msgs else {"type": "http.disconnect"}

        async def send(m):
            out.append(m)

        scope = {"type": "http", "method": method, "path": path, "query_string": query,
                 "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
        await app(scope, receive, send)
        return out

    out = asyncio.run(run())
    head = {k.decode().lower(): v.decode() for k, v in out[0]["headers"]}
    return out[0]["status"], head, b"".join(m.get("body", b"") for m in out[1:])

"""fastkin's ASGI app as bench_server.py serves it on uvicorn and granian: quotas off and no Authorization check,
as ``fastkin serve --no-quotas --no-auth-check`` (the benchmark still sends a placeholder Authorization header).

    uvicorn --factory _asgi_factory:app ...       (with bench/ and src/ on PYTHONPATH)
"""
from fastkin.wire.http import KinesisApp


def app() -> KinesisApp:
    return KinesisApp(quotas=False, auth_check=False)

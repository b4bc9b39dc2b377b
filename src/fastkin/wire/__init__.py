"""The boto3 / HTTP wire layer: the botocore model (model), the dispatcher (service), the in-process boto3 mock
(mock), ``fastkin serve`` (http, on the server transport, with eventstream, sigv4 and tls). Everything here needs
botocore (the ``boto`` or ``server`` extra); the core layer never imports it. Submodules load on first use."""
from .._lazy import lazy_getattr

try:
    import botocore  # noqa: F401 - only to say which extra is missing, once, in one line
except ImportError:
    raise ImportError("fastkin.wire (mock_kinesis, fastkin serve) needs botocore: pip install 'fastkin[boto]' "
                      "(in-process) or 'fastkin[server]' (the server); from a checkout: "
                      "pip install '.[server]'") from None

__getattr__ = lazy_getattr(__name__, frozenset({"model", "service", "mock", "http", "server", "eventstream",
                                                     "sigv4", "tls"}),
                           {"mock_kinesis": "mock", "ServerThread": "http", "KinesisApp": "http"})

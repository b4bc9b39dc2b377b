"""AWS event stream framing (``application/vnd.amazon.eventstream``), as SubscribeToShard answers over HTTP:
each message is a prelude (total length, headers length, CRC32 of the two), string headers, the payload
and a CRC32 of the whole message."""
from __future__ import annotations

import struct
import zlib


def _es_header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    hb = b"".join(_es_header(k, v) for k, v in headers.items())
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hb))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    msg = prelude + hb + payload
    return msg + struct.pack(">I", zlib.crc32(msg))

"""Shard iterators, pagination tokens and queue receipt handles: opaque and tamper-evident.

An iterator is base64 of ``00*7 01`` (as real ones begin), a packed payload and a truncated
HMAC-SHA256 under a per-engine secret. The payload names the stream (so GetRecords needs nothing
else), the stream's incarnation (a re-created stream does not accept old iterators), the shard,
the position (seq index of the next record to read) and the issue time in engine milliseconds.

A receipt handle (ReceiveQueueRecords) is base64 of ``02``, a packed payload (the queue's serial number in
its engine, the record's key in the queue, the delivery number, the kind: 0 normal, 1 dead-letter) and a
16-byte keyed BLAKE2b MAC under the same secret.
NOTE: BLAKE2b keyed is ~0.5 us per handle against ~1.3 us for HMAC-SHA256; a receive issues one per record.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

from .errors import ExpiredIteratorException, ExpiredNextTokenException, InvalidArgumentException

_RECEIPT = struct.Struct(">BIQQB")   # version 2, queue serial, record key, delivery number, kind
_blake2b = hashlib.blake2b
_b2a = binascii.b2a_base64
_a2b = binascii.a2b_base64
_pack_receipt = _RECEIPT.pack
_unpack_receipt = _RECEIPT.unpack_from
_RECEIPT_SIZE = _RECEIPT.size

_PREFIX = b"\x00" * 7 + b"\x01"
_ITER = struct.Struct(">QIQq")      # incarnation, shard index, position, issued ms
_TOKEN = struct.Struct(">Qq")       # incarnation, issued ms
_MAC = 16


class TokenCodec:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @property
    def secret(self) -> bytes:
        """The key every token is sealed with (a data directory keeps it, so tokens survive a restart)."""
        return self._secret

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:_MAC]

    def _seal(self, body: bytes) -> str:
        return base64.b64encode(body + self._mac(body)).decode("ascii")

    def _open(self, token: object, what: str) -> bytes:
        if not isinstance(token, str) or not 1 <= len(token) <= 2048:
            raise InvalidArgumentException(f"Invalid {what}.")
        try:
            raw = base64.b64decode(token.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise InvalidArgumentException(f"Invalid {what}.") from None
        body, mac = raw[:-_MAC], raw[-_MAC:]
        if len(raw) <= _MAC or not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidArgumentException(f"Invalid {what}.")
        return body

    # -- shard iterators ------------------------------------------------------------------
    def iterator(self, stream: str, incarnation: int, shard: int, pos: int, issued_ms: int) -> str:
        return self._seal(_PREFIX + _ITER.pack(incarnation, shard, pos, issued_ms) + stream.encode())

    def open_iterator(self, token: object, now_ms: int, ttl_ms: int) -> tuple[str, int, int, int, int]:
        """(stream, incarnation, shard, pos, issued_ms); raises on a bad or expired iterator.
        One pair of surrounding double quotes is ignored, as AWS ignores it (``aws kinesis get-shard-iterator
        --query ShardIterator`` without ``--output text`` prints the iterator quoted)."""
        if isinstance(token, str) and len(token) >= 2 and token[0] == '"' and token[-1] == '"':
            token = token[1:-1]
        body = self._open(token, "ShardIterator")
        if not body.startswith(_PREFIX) or len(body) < len(_PREFIX) + _ITER.size + 1:
            raise InvalidArgumentException("Invalid ShardIterator.")
        inc, shard, pos, issued = _ITER.unpack_from(body, len(_PREFIX))
        stream = body[len(_PREFIX) + _ITER.size:].decode()
        if now_ms - issued > ttl_ms:
            raise ExpiredIteratorException(
                f"Iterator expired. The iterator was created at time {_fmt_ms(issued)} while right now it is "
                f"{_fmt_ms(now_ms)} which is further in the future than the tolerated delay of {ttl_ms} milliseconds."
            )
        return stream, inc, shard, pos, issued

    # -- queue receipt handles ------------------------------------------------------------------
    def receipt(self, serial: int, key: int, delivery: int, kind: int) -> str:
        body = _pack_receipt(2, serial, key, delivery, kind)
        return _b2a(body + _blake2b(body, key=self._secret, digest_size=_MAC).digest(), newline=False).decode()

    def open_receipt(self, handle: object) -> tuple[int, int, int, int, int] | None:
        """(2, queue serial, record key, delivery number, kind) of a handle this codec sealed; None for anything
        else (not a string, not base64, wrong length or version, a MAC that does not match)."""
        if type(handle) is not str or len(handle) != 52:
            return None
        try:
            raw = _a2b(handle)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _RECEIPT_SIZE + _MAC or raw[0] != 2 or not hmac.compare_digest(
                raw[_RECEIPT_SIZE:], _blake2b(raw[:_RECEIPT_SIZE], key=self._secret, digest_size=_MAC).digest()):
            return None
        return _unpack_receipt(raw)

    # -- NextToken for list calls -------------------------------------------------------------
    def next_token(self, kind: str, incarnation: int, issued_ms: int, cursor: str) -> str:
        return self._seal(kind.encode() + b"\x00" + _TOKEN.pack(incarnation, issued_ms) + cursor.encode())

    def open_next_token(self, token: object, kind: str, now_ms: int, ttl_ms: int) -> tuple[int, str]:
        body = self._open(token, "NextToken")
        head = kind.encode() + b"\x00"
        if not body.startswith(head) or len(body) < len(head) + _TOKEN.size:
            raise InvalidArgumentException("Invalid NextToken.")
        inc, issued = _TOKEN.unpack_from(body, len(head))
        if now_ms - issued > ttl_ms:
            raise ExpiredNextTokenException("The nextToken has expired.")
        return inc, body[len(head) + _TOKEN.size:].decode()


def _fmt_ms(ms: int) -> str:
    import datetime as _dt

    t = _dt.datetime.fromtimestamp(ms / 1000.0, tz=_dt.timezone.utc)
    return t.strftime("%a %b %d %H:%M:%S UTC %Y")

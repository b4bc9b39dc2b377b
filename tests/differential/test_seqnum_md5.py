"""The compiled core's sequence-number codec and MD5 routing hash vs the pure-Python definitions.

``fastkin._cy.core.format_sequence_number`` / ``parse_sequence_number`` (csrc/seqnum.h) must equal
``fastkin._ref.core``'s, and ``fastkin._cy.core.md5_hash_key`` (csrc/md5.c) must equal hashlib's MD5
read as a big-endian 128-bit integer.
"""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import example, given, settings, strategies as st

from fastkin._cy import core as cy
from fastkin._ref import core as ref

SECS = st.integers(0, 2 ** 36 - 1)
SHARD = st.integers(0, 2 ** 32 - 1)
SEQ = st.integers(0, 2 ** 64 - 1)
# realistic values next to the full ranges
SECS_ANY = st.one_of(SECS, st.integers(1_500_000_000, 2_000_000_000), st.sampled_from([0, 1, 2 ** 36 - 1]))
SHARD_ANY = st.one_of(SHARD, st.integers(0, 100), st.sampled_from([0, 15, 16, 2 ** 32 - 1]))
SEQ_ANY = st.one_of(SEQ, st.integers(0, 10 ** 6), st.sampled_from([0, 2 ** 63 - 1, 2 ** 64 - 1, 2 ** 48, 2 ** 48 - 1]))

S = settings(max_examples=300, deadline=None)


def md5_int(b: bytes) -> int:
    return int.from_bytes(hashlib.md5(b).digest(), "big")


@S
@given(create=SECS_ANY, shard=SHARD_ANY, seq=SEQ_ANY, rec=SECS_ANY)
def test_format_matches(create, shard, seq, rec):
    s = cy.format_sequence_number(create, shard, seq, rec)
    assert s == ref.format_sequence_number(create, shard, seq, rec)
    assert type(s) is str
    # and both parse it back to the fields
    assert cy.parse_sequence_number(s) == ref.parse_sequence_number(s) == (create, shard, seq, rec)


def _mutations(s: str):
    """Strings next to a valid sequence number: one digit changed, dropped, doubled, prefixed, suffixed."""
    return st.one_of(
        st.tuples(st.integers(0, len(s) - 1), st.sampled_from("0123456789"))
          .map(lambda t: s[:t[0]] + t[1] + s[t[0] + 1:]),
        st.integers(0, len(s) - 1).map(lambda i: s[:i] + s[i + 1:]),
        st.integers(0, len(s) - 1).map(lambda i: s[:i] + s[i] + s[i:]),
        st.sampled_from(["0", "00", " ", "+", "-", "\u0660", "٣", "1", "9", "_", "\x00"]).map(lambda p: p + s),
        st.sampled_from(["0", " ", "\n", "_", "\x00", "a", "\ud800", "9" * 80]).map(lambda p: s + p),
        st.just(s.replace("4", "\u0664")),   # ARABIC-INDIC DIGIT FOUR: int() accepts it, the codec must not
        st.just(s[:10] + "_" + s[10:]),     # int() accepts underscores, the codec must not
    )


VALID = st.builds(ref.format_sequence_number, SECS_ANY, SHARD_ANY, SEQ_ANY, SECS_ANY)
NEAR_VALID = VALID.flatmap(_mutations)
DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=140)
BIG_INTS = st.integers(0, 2 ** 200).map(str)
ANY_TEXT = st.text(max_size=80)


@S
@given(s=st.one_of(VALID, NEAR_VALID, NEAR_VALID, DIGITS, BIG_INTS, ANY_TEXT))
@example("0")
@example("")
@example("2")
@example(str(2 << 184 | 2))
@example(str((2 << 184) - 1))
@example(str(1 << 188))
@example("0abc")
@example("0" + ref.format_sequence_number(1, 2, 3, 4))
@example("9" * 57)
@example("9" * 129)
@example("9" * 130)
@example("1" * 56 + "\ud800")
def test_parse_matches(s):
    c = cy.parse_sequence_number(s)
    r = ref.parse_sequence_number(s)
    assert c == r, (s, c, r)
    if r is not None:
        assert ref.format_sequence_number(*r) == s


@S
@given(s=st.one_of(st.none(), st.integers(), st.binary(max_size=60), st.floats(), st.lists(st.integers(), max_size=2)))
def test_parse_non_str_is_none(s):
    assert cy.parse_sequence_number(s) is None
    assert ref.parse_sequence_number(s) is None


@S
@given(key=st.one_of(st.text(max_size=300), st.text(alphabet=st.characters(min_codepoint=0x80), max_size=64),
                     st.sampled_from(["", "a", "ключ", "键", "🔑" * 64, "x" * 55, "x" * 56, "x" * 63, "x" * 64,
                                      "x" * 65, "\ud800", "a\udfff"])))
def test_md5_str_matches(key):
    try:
        kb = key.encode()
    except UnicodeEncodeError as e:      # lone surrogates: both must refuse the same way
        with pytest.raises(UnicodeEncodeError) as got:
            cy.md5_hash_key(key)
        assert str(got.value) == str(e)
        return
    assert cy.md5_hash_key(key) == md5_int(kb)


@S
@given(b=st.one_of(st.binary(max_size=600), st.integers(0, 200).map(lambda n: b"\xff" * n)))
def test_md5_bytes_matches(b):
    assert cy.md5_hash_key(b) == md5_int(b)
    assert cy.md5_hash_key(bytearray(b)) == md5_int(b)


def test_md5_known_vectors():
    # RFC 1321 test suite
    assert cy.md5_hash_key("") == 0xd41d8cd98f00b204e9800998ecf8427e
    assert cy.md5_hash_key("abc") == 0x900150983cd24fb0d6963f7d28e17f72
    assert cy.md5_hash_key("1234567890" * 8) == 0x57edf4a22be3c955ac49da2e2107b67a

"""The record framing of data directories: CRC32C (C, slicing-by-8) against RFC 3720's vectors and the reference,
and the compiled framing against the reference byte for byte (frame, frame_batch, scan)."""
from __future__ import annotations

import random

import pytest

from fastkin import _core
from fastkin._common import initial_hash_ranges
from fastkin._ref import journal as ref_journal
from fastkin.limits import Limits

cy_journal = pytest.importorskip("fastkin._cy.journal")
JOURNALS = {"ref": ref_journal, "cy": cy_journal}
T0 = 1_700_000_000.0

# RFC 3720 (iSCSI) appendix B.4 test vectors, and the customary check value
VECTORS = [
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (b"", 0),
]


@pytest.fixture(params=list(JOURNALS))
def journal(request):
    return JOURNALS[request.param]


@pytest.mark.parametrize(("data", "crc"), VECTORS)
def test_crc32c_vectors(journal, data, crc):
    assert journal.crc32c(data) == crc


def test_crc32c_compiled_equals_reference_at_every_length_and_alignment():
    rng = random.Random(0)
    blob = rng.randbytes(300)
    for start in range(9):
        for n in range(0, 150, 7):
            piece = blob[start:start + n]
            assert cy_journal.crc32c(piece) == ref_journal.crc32c(piece)
            assert cy_journal.crc32c(memoryview(blob)[start:start + n]) == ref_journal.crc32c(piece)
    big = rng.randbytes(64 * 1024)                       # above the size where the GIL is released
    assert cy_journal.crc32c(big) == ref_journal.crc32c(big)
    assert cy_journal.crc32c(big[1000:], cy_journal.crc32c(big[:1000])) == cy_journal.crc32c(big)


def test_frames_are_identical_and_scan_back():
    rng = random.Random(1)
    recs = [(i, 1_700_000_000_000 + i // 3, f"kéy-{rng.random()}", rng.randbytes(rng.randrange(0, 200)))
            for i in range(50)] + [(50, 1_700_000_000_100, None, "text data")]
    buf = b"".join(ref_journal.frame(*r) for r in recs)
    assert buf == b"".join(cy_journal.frame(*r) for r in recs)
    want = [(p, ms, k or "", d.encode() if isinstance(d, str) else d) for p, ms, k, d in recs]
    for j in JOURNALS.values():
        assert j.scan(buf) == (want, len(buf), None)
        assert j.scan(buf[:-3]) == (want[:-1], len(buf) - len(ref_journal.frame(*recs[-1])), "torn")
        flipped = bytearray(buf)
        flipped[len(ref_journal.frame(*recs[0])) + 30] ^= 0x40          # a byte of record 1's key or data
        assert j.scan(bytes(flipped))[0] == want[:1] and j.scan(bytes(flipped))[2] == "crc"
        assert j.scan(b"\x05\x00\x00\x00" + bytes(20))[2] == "length"


@pytest.mark.parametrize("core_name", ["ref", "cy"])
def test_frame_batch_frames_the_accepted_entries_per_shard(core_name):
    mod = _core.get_core(core_name)
    core = mod.StreamCore("s", "123456789012", Limits(write_records_per_second=100), True, 1024 * 1024)
    for i, (a, b) in enumerate(initial_hash_ranges(3)):
        core.add_shard(i, a, b, int(T0))
    records = [(f"r{i}".encode() * 50, f"k{i % 11}") for i in range(499)] + [(bytearray(b"ba"), "kx")]
    res = core.put_records(records, T0)         # 100 records/s per shard: most entries are throttled
    assert 0 < res.failed_record_count < len(res)
    journal = cy_journal if core_name == "cy" else ref_journal
    out: dict = {}
    n = journal.frame_batch(core, res, records, out)
    assert n == len(res) - res.failed_record_count
    ref_out: dict = {}
    ref_journal.frame_batch(core, res, records, ref_out)
    assert {k: [bytes(v[0]), *v[1:]] for k, v in out.items()} == {k: [bytes(v[0]), *v[1:]] for k, v in ref_out.items()}
    for index, (frames, first, _, count) in out.items():
        got, _, problem = ref_journal.scan(frames)
        assert problem is None and len(got) == count and got[0][0] == first
        stored, _, _ = core.get_records(index, first, 10_000, T0, quota=False)
        assert [(r.data, r.partition_key) for r in stored] == [(d, k) for _, _, k, d in got]


def test_index_frames_is_identical_and_stops_at_the_first_bad_frame():
    recs = [(7 + i, 1000 + i // 3, None if i == 4 else f"k{i}", b"d" * (i * 7 % 40)) for i in range(30)]
    buf = b"head" + b"".join(ref_journal.frame(*r) for r in recs)
    for check in (True, False):
        want = ref_journal.index_frames(buf, 4, 7, check)
        assert cy_journal.index_frames(buf, 4, 7, check) == want and want[:3] == (30, len(buf), None)
    count, _, _, ms, off, dlen, klen = want
    for i, (_, t, key, data) in enumerate(recs):         # data then key at off[i], as the core's arena
        o, d, k = (memoryview(off).cast("I")[i], memoryview(dlen).cast("I")[i], memoryview(klen).cast("H")[i])
        assert buf[o:o + d] == data and buf[o + d:o + d + k] == (key or "").encode()
        assert memoryview(ms).cast("q")[i] == t
    flipped = bytearray(buf)
    flipped[4 + sum(len(ref_journal.frame(*r)) for r in recs[:10]) + 20] ^= 1     # record 10's arrival time
    for j in (ref_journal, cy_journal):
        assert j.index_frames(bytes(flipped), 4, 7)[:2] == (10, 4 + sum(len(ref_journal.frame(*r)) for r in recs[:10]))
        assert j.index_frames(bytes(flipped), 4, 7)[2] == "crc"
        assert j.index_frames(buf, 4, 8)[:3] == (0, 4, "order")
        assert j.index_frames(buf[:-1], 4, 7)[2] == "torn"

"""The core contract: both core modules implement exactly fastkin._protocols, nothing more or less.

Checks, for the compiled core (fastkin._cy.core) and the reference (fastkin._ref.core):
* every Protocol member exists, with the same parameters (names, kinds, defaults) where it is a method;
* ``isinstance`` against the runtime-checkable Protocols, for the module and an instance of every class;
* no public member on either core's classes (or public function/class in the module) that the
  Protocols do not declare, so the two cannot drift apart again;
* the per-shard counter layout (fastkin._protocols.C_*) equals the compiled core's C enum and is
  what metrics.py uses;
* check_invariants() holds after a mixed workload (oversized records, reads, trims, reshards) and
  reports a deliberately corrupted reference core.
"""
from __future__ import annotations

import inspect
import re
import typing

import numpy as np
import pytest

from fastkin import _core, _protocols as P, errors as E, metrics
from fastkin._common import initial_hash_ranges
from fastkin.limits import HASH_MAX, Limits

CORES = {name: _core.get_core(name) for name in ("ref", "cy")}
T0 = 1_700_000_000.0
_DUNDERS = ("__len__", "__getitem__", "__iter__")


def declared(proto: type) -> set[str]:
    """The members a Protocol declares (annotations, methods, properties), without typing's own."""
    names: set[str] = set()
    for base in proto.__mro__:
        if base in (object, typing.Protocol, typing.Generic):
            continue
        names |= set(base.__dict__.get("__annotations__", {}))
        names |= {n for n in base.__dict__ if not n.startswith("_") or n in _DUNDERS}
    return names


def public(obj) -> set[str]:
    """Public names of an instance: its class's attributes plus instance attributes."""
    names = {n for n in dir(obj) if not n.startswith("_")}
    names |= {n for n in getattr(obj, "__dict__", {}) if not n.startswith("_")}
    return names


def params(fn, drop_self: bool):
    ps = list(inspect.signature(fn).parameters.values())
    if drop_self:
        ps = ps[1:]
    return [(p.name, p.kind, p.default) for p in ps]


def make_core(mod, **kw):
    c = mod.StreamCore("s", "123456789012", kw.pop("limits", Limits()), kw.pop("quotas", True),
                       kw.pop("max_record_bytes", 1024 * 1024), *kw.pop("extra", ()))
    for i, (a, b) in enumerate(initial_hash_ranges(kw.pop("shards", 2))):
        c.add_shard(i, a, b, int(T0))
    return c


def instances(mod) -> dict[str, object]:
    """One instance of every class the contract names, made through the core's own API."""
    c = make_core(mod)
    put = c.put_record(b"data", "key", None, T0)
    batch = c.put_records([(b"x", "a"), (b"y", "b")], T0)
    records, _, _ = c.get_records(0, 0, 10, T0)
    if not records:
        records, _, _ = c.get_records(1, 0, 10, T0)
    return {"StreamCore": c, "Shard": c.shards[0], "PutResult": put, "PutRecordsResult": batch,
            "Record": records[0]}


@pytest.fixture(params=list(CORES))
def mod(request):
    return CORES[request.param]


# -- the module --------------------------------------------------------------------------------

def test_module_implements_the_module_protocol(mod):
    assert isinstance(mod, P.CoreModuleProtocol)
    for name in declared(P.CoreModuleProtocol):
        assert hasattr(mod, name), (mod.NAME, name)
    assert mod.NAME in ("ref", "cy") and isinstance(mod.DEBUG, bool)
    assert mod.END_SEQ_INDEX == 0x7FFFFFFFFFFFFFFF


def test_module_function_signatures_match_the_protocol(mod):
    for name, member in vars(P.CoreModuleProtocol).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        assert params(getattr(mod, name), False) == params(member, True), (mod.NAME, name)


def test_module_has_no_undeclared_public_functions_or_classes(mod):
    allowed = declared(P.CoreModuleProtocol)
    extra = []
    for name, obj in vars(mod).items():
        if name.startswith("_") or not callable(obj):
            continue
        if getattr(obj, "__module__", None) == mod.__name__ and name not in allowed:
            extra.append(name)
    assert not extra, f"{mod.__name__} exports {extra}, which fastkin._protocols.CoreModuleProtocol does not declare"


def test_both_modules_export_the_same_surface():
    def surface(m):
        return {n for n, o in vars(m).items() if not n.startswith("_") and getattr(o, "__module__", None) == m.__name__}
    assert surface(CORES["ref"]) == surface(CORES["cy"]) == declared(P.CoreModuleProtocol) - {
        "NAME", "DEBUG", "END_SEQ_INDEX"}


# -- the classes -------------------------------------------------------------------------------

@pytest.mark.parametrize("cls_name", list(P.CLASS_PROTOCOLS))
def test_class_implements_exactly_its_protocol(mod, cls_name):
    proto = P.CLASS_PROTOCOLS[cls_name]
    obj = instances(mod)[cls_name]
    assert type(obj) is getattr(mod, cls_name)
    assert isinstance(obj, proto), (mod.NAME, cls_name)
    want = declared(proto)
    have = public(obj) | {n for n in _DUNDERS if hasattr(type(obj), n)}
    assert want - have == set(), f"{mod.NAME}.{cls_name} lacks {sorted(want - have)}"
    assert have - want == set(), f"{mod.NAME}.{cls_name} has {sorted(have - want)}, undeclared in {proto.__name__}"


@pytest.mark.parametrize("cls_name", list(P.CLASS_PROTOCOLS))
def test_method_signatures_match_the_protocol(mod, cls_name):
    proto = P.CLASS_PROTOCOLS[cls_name]
    cls = getattr(mod, cls_name)
    for name, member in vars(proto).items():
        # (dunders are C slot wrappers on the compiled classes: their signatures are the slot's, not ours)
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        assert params(getattr(cls, name), True) == params(member, True), (mod.NAME, cls_name, name)


def test_settable_attributes_are_settable(mod):
    c = make_core(mod)
    c.quotas = False
    c.max_record_bytes = 2048
    assert c.quotas is False and c.max_record_bytes == 2048
    with pytest.raises(E.ValidationException):     # AWS: a data-length validation error
        c.put_record(b"x" * 2048, "k", None, T0)


def test_shard_constructor_and_closed_flag(mod):
    c = make_core(mod, shards=1)
    half = 1 << 127
    c.reshard([0], [(1, 0, half - 1, int(T0), True), (2, half, HASH_MAX, int(T0), True),
                    (3, 0, HASH_MAX, int(T0), False)])
    assert [(i, s.closed) for i, s in sorted(c.shards.items())] == [(0, True), (1, False), (2, False), (3, True)]
    assert all(isinstance(s, P.ShardProtocol) for s in c.shards.values())
    s = mod.Shard(7, 0, HASH_MAX, 5, Limits(), True)
    assert (s.index, s.shard_id, s.created_secs, s.meta_only, s.closed, s.base, s.end) == \
        (7, "shardId-000000000007", 5, True, False, 0, 0)


# -- the counter layout ------------------------------------------------------------------------

def test_counter_layout_is_defined_once(mod):
    assert mod.counter_layout() == P.COUNTER_LAYOUT
    assert list(P.COUNTER_LAYOUT.values()) == list(range(P.NCTR))
    c = make_core(mod, shards=3)
    assert c.counters([0, 1, 2]).shape == (3, P.NCTR)


def test_counter_columns_mean_what_the_layout_says(mod):
    c = make_core(mod, shards=1)
    c.put_record(b"abc", "k", None, T0)                     # 4 bytes
    c.put_records([(b"defg", "k"), (b"h", "kk")], T0)       # 5 + 3 bytes
    c.get_records(0, 0, 10, T0)
    row = c.counters([0])[0]
    assert row[P.C_IN_RECORDS] == 3 and row[P.C_IN_BYTES] == 12
    assert row[P.C_PR_RECORDS] == 2 and row[P.C_PR_THROTTLED] == 0
    assert row[P.C_OUT_RECORDS] == 3 and row[P.C_OUT_BYTES] == 12 and row[P.C_GET_CALLS] == 1


def test_metrics_takes_the_layout_from_protocols():
    for short in ("IN_BYTES", "IN_RECORDS", "W_THR_RECORDS", "W_THR_BYTES", "OUT_BYTES", "OUT_RECORDS", "GET_CALLS",
                  "R_THR_CALLS", "AGE_MAX", "PR_RECORDS", "PR_THROTTLED"):
        assert getattr(metrics, short) == P.COUNTER_LAYOUT["C_" + short]
    assert metrics.NCTR == P.NCTR


# -- memory_bytes ------------------------------------------------------------------------------

def test_memory_bytes_on_both_cores(mod):
    c = make_core(mod, shards=1, quotas=False)
    assert c.memory_bytes() >= 0
    c.put_records([(b"d" * 100, f"key-{j:03d}") for j in range(500)], T0)     # 107 bytes each
    mem = c.memory_bytes()
    assert isinstance(mem, int) and mem >= 500 * 107
    if mod.NAME == "ref":                 # payload + the documented 18-byte index per record
        assert mem == 500 * (107 + 18) == c.shards[0].memory_bytes()
    c.trim(T0 + 100, 10)
    assert c.record_count() == 0 and c.memory_bytes() < mem


def test_metadata_only_reference_counts_no_payload():
    c = make_core(CORES["ref"], shards=1, quotas=False, extra=(False,))
    c.put_records([(b"d" * 100, "k")] * 10, T0)
    assert c.memory_bytes() == 10 * 18


def test_engine_memory_bytes_sums_on_both_engines(engine):
    s = engine.create_stream("m", shard_count=2)
    s.put_records([(b"x" * 50, f"k{i}") for i in range(100)])
    assert isinstance(engine.memory_bytes(), int) and engine.memory_bytes() >= 100 * 52


# -- check_invariants --------------------------------------------------------------------------

def _workload(c):
    """Puts (one oversized: the write bucket goes into debt), reads, a read penalty, trims, reshards, drops."""
    now = T0
    c.put_records([(b"p" * 300, f"k{i}") for i in range(20)], now)
    c.put_record(b"big" * 1500, "k-big", None, now + 2.0)            # 4.5 kB against a 2 kB/s bucket
    c.check_invariants()
    for i in range(3):
        try:
            c.get_records(i % 2, 0, 10_000, now + 3.0 + i)
        except E.ProvisionedThroughputExceededException:
            pass
    c.max_record_bytes = 100                  # lowering the limit keeps the debt bound of earlier records
    c.check_invariants()
    half = (1 << 127)
    c.reshard([0], [(2, 0, half // 2 - 1, int(now), True), (3, half // 2, half - 1, int(now), True)])
    c.put_records([(b"q", f"z{i}") for i in range(30)], now + 10.0)
    c.check_invariants()
    assert c.trim(now + 100.0, 50.0) > 0
    c.check_invariants()
    c.drop_shard(0)
    c.check_invariants()
    c.trim(now + 1000.0, 50.0)
    c.check_invariants()
    assert c.record_count() == 0


@pytest.mark.parametrize("store_payload", [True, False])
def test_invariants_hold_through_a_workload(mod, store_payload):
    lim = Limits(write_bytes_per_second=2000, write_records_per_second=50, read_calls_per_second=2,
                 read_bytes_per_second=3000, get_records_max_bytes=5000, put_records_max_bytes=20000)
    c = make_core(mod, limits=lim, max_record_bytes=5000, extra=(store_payload,))
    c.check_invariants()
    _workload(c)


def _ref_core_with_records():
    c = make_core(CORES["ref"], shards=1, quotas=False)
    c.put_records([(b"abc", "k1"), (b"de", "k2"), (b"f", "k3")], T0)
    c.check_invariants()
    return c, c.shards[0]


@pytest.mark.parametrize("kind, invariant", [
    ("arrival", "arrivals non-decreasing"),
    ("size", "record size == data + key bytes"),
    ("end", "end == accepted records"),
    ("bucket", "write byte bucket"),
    ("routing", "every shard not closed is routed to"),
])
def test_reference_check_invariants_reports_corruption(kind, invariant):
    c, s = _ref_core_with_records()
    if kind == "arrival":
        d, k, ms, size = s._log[2]
        s._log[2] = (d, k, ms - 10, size)
        s._log[1] = (s._log[1][0], s._log[1][1], ms, s._log[1][3])
    elif kind == "size":
        d, k, ms, size = s._log[0]
        s._log[0] = (d, k, ms, size + 1)
    elif kind == "end":
        s._ctr[P.C_IN_RECORDS] += 1
    elif kind == "bucket":
        s._wb = 10.0 * c.limits.write_bytes_per_second
    elif kind == "routing":
        c._open.clear()
    with pytest.raises(E.CorruptStateError, match=re.escape(invariant)) as info:
        c.check_invariants()
    assert "shardId-000000000000" in str(info.value) or kind == "routing"


# -- the compiled core's debug build -----------------------------------------------------------

CY = CORES["cy"]
needs_debug = pytest.mark.skipif(
    not CY.DEBUG, reason="the compiled core is a release build; build it with "
                         "FASTKIN_DEBUG=1 python setup.py build_ext --inplace to run the debug-only checks")


def test_debug_hook_exists_only_in_debug_builds():
    assert hasattr(CY, "_debug_corrupt") == CY.DEBUG
    assert not hasattr(CORES["ref"], "_debug_corrupt") and CORES["ref"].DEBUG is False


def _cy_core(quotas=False):
    c = make_core(CY, shards=1, quotas=quotas)
    c.put_records([(b"abc", "k1"), (b"de", "k2"), (b"f", "k3")], T0)
    c.check_invariants()
    return c


@needs_debug
@pytest.mark.parametrize("kind, invariant", [
    ("arrival", "arrivals non-decreasing"),
    ("offset", "offsets contiguous"),
    ("used", "used <= acap"),
    ("segment_base", "the oldest segment holds base"),     # one segment: it is the oldest as well
    ("ring_head", "ring head < ring capacity"),
    ("end", "end == accepted records"),
    ("bucket", "write byte bucket"),
    ("debt", "write byte bucket"),
    ("min_ms", "min_ms <= oldest arrival"),
    ("routing", "routing arrays match the open shards"),
])
def test_debug_check_invariants_reports_each_corruption(kind, invariant):
    c = _cy_core()
    CY._debug_corrupt(c, 0, kind)
    with pytest.raises(E.CorruptStateError, match=re.escape(invariant)) as info:
        c.check_invariants()
    assert "stream s" in str(info.value)
    with pytest.raises(E.CorruptStateError):       # the lock was released: checking again does not hang
        c.check_invariants()


@needs_debug
@pytest.mark.parametrize("kind, invariant", [
    ("offset", "offsets contiguous"),
    ("segment_base", "the newest segment ends at end"),
    ("end", "the newest segment ends at end"),
    ("bucket", "write byte bucket"),
    ("debt", "write byte bucket"),
])
def test_debug_build_checks_after_each_put(kind, invariant):
    c = _cy_core(quotas=True)
    CY._debug_corrupt(c, 0, kind)
    with pytest.raises(E.CorruptStateError, match=re.escape(invariant)):
        c.put_record(b"g", "k4", None, T0)
    c2 = _cy_core(quotas=True)
    CY._debug_corrupt(c2, 0, kind)
    with pytest.raises(E.CorruptStateError, match=re.escape(invariant)):
        c2.put_records([(b"g", "k4")], T0)


@needs_debug
def test_debug_build_checks_after_trim_and_topology_changes():
    c = _cy_core()
    CY._debug_corrupt(c, 0, "end")
    with pytest.raises(E.CorruptStateError, match="end == accepted records"):
        c.trim(T0 + 100.0, 10.0)
    c = _cy_core()
    c.reshard([0], [(1, 0, HASH_MAX, int(T0), True)])
    CY._debug_corrupt(c, 0, "routing")
    with pytest.raises(E.CorruptStateError, match="routing arrays match the open shards"):
        c.drop_shard(0)


@needs_debug
def test_debug_build_checks_sealed_segments():
    # a segment is sealed when the next record arrives more than an hour after its first one
    c = make_core(CY, shards=1, quotas=False)
    for h in range(3):
        c.put_records([(b"r" * 10, f"k{i}") for i in range(100)], T0 + 3601.0 * h)
    assert c.shards[0]._segment_count() == 3
    c.check_invariants()
    assert np.asarray(c.counters([0]))[0, P.C_IN_RECORDS] == 300


def test_restore_record_puts_back_positions_and_arrivals(mod):
    # what fastkin.durable does on recovery: records come back at their positions with their arrival times
    src = make_core(mod, shards=1, quotas=False)
    for i in range(5):
        src.put_record(f"d{i}".encode(), f"k{i}", None, T0 + i * 0.5)
    want, _, _ = src.get_records(0, 0, 100, T0 + 10, quota=False)
    dst = make_core(mod, shards=1, quotas=False)
    for pos, r in enumerate(want):
        dst.restore_record(0, pos, round(r.approximate_arrival_timestamp * 1000), r.data, r.partition_key)
    got, _, _ = dst.get_records(0, 0, 100, T0 + 10, quota=False)
    assert [(r.sequence_number, r.data, r.partition_key, r.approximate_arrival_timestamp) for r in got] == \
        [(r.sequence_number, r.data, r.partition_key, r.approximate_arrival_timestamp) for r in want]
    assert np.asarray(dst.counters([0]))[0, P.C_IN_RECORDS] == 5 and dst.shard_end(0) == 5
    nxt = dst.put_record(b"new", "k", None, T0 + 11)
    assert int(nxt.sequence_number) > int(want[-1].sequence_number)
    dst.check_invariants()


def test_restore_record_jumps_over_expired_positions_only_on_an_empty_shard(mod):
    c = make_core(mod, shards=1, quotas=False)
    c.restore_record(0, 1000, 1_700_000_000_000, b"a", "k")     # positions 0..999 expired before the restart
    assert (c.shard_horizon(0), c.shard_end(0)) == (1000, 1001)
    c.restore_record(0, 1001, 1_700_000_000_000, b"b", "k")
    with pytest.raises(ValueError, match="cannot restore position 1005"):
        c.restore_record(0, 1005, 1_700_000_000_001, b"gap", "k")
    with pytest.raises(ValueError, match="cannot restore position 1000"):
        c.restore_record(0, 1000, 1_700_000_000_001, b"again", "k")
    with pytest.raises(ValueError, match="cannot restore an arrival"):
        c.restore_record(0, 1002, 1_699_999_999_999, b"back in time", "k")
    with pytest.raises(KeyError):
        c.restore_record(7, 0, 1_700_000_000_000, b"", "k")
    c.reshard([0], [(1, 0, HASH_MAX, int(T0), True)])
    c.restore_record(0, 1002, 1_700_000_000_002, b"c", "k")     # closed shards take their records back too
    c.trim(T0 + 10 * 86400, 86400.0)                             # all expired; then a restart's jump again
    c.restore_record(0, 2000, 1_700_000_000_003 + 10 * 86400 * 1000, b"d", "k")
    assert (c.shard_horizon(0), c.shard_end(0)) == (2000, 2001)
    c.check_invariants()


def _segment_file(tmp_path, base, recs, name="seg"):
    """A segment file as fastkin.segments writes it (header + frames) and its index arrays."""
    from fastkin._ref import journal
    from fastkin.segments import HEADER, header
    buf = header(0, base) + b"".join(journal.frame(base + i, ms, k, d) for i, (ms, k, d) in enumerate(recs))
    path = tmp_path / name
    path.write_bytes(buf)
    count, end, problem, *arrays = journal.index_frames(buf, HEADER.size, base)
    assert (count, end, problem) == (len(recs), len(buf), None)
    return str(path), len(buf), arrays


def test_adopt_segment_serves_a_closed_file_as_restored_records(mod, tmp_path):
    # what fastkin.durable does for a closed, indexed segment file: the same records as restore_record gives
    ms0 = 1_700_000_000_000
    recs = [(ms0 + i, f"k{i}", f"data-{i}".encode() * (i % 3)) for i in range(50)]
    path, size, arrays = _segment_file(tmp_path, 0, recs)
    c = make_core(mod, shards=1, quotas=False)
    assert c.adopt_segment(0, 0, path, size, *arrays) == 50
    want = make_core(mod, shards=1, quotas=False)
    for i, (ms, k, d) in enumerate(recs):
        want.restore_record(0, i, ms, d, k)
    got, nxt, _ = c.get_records(0, 0, 100, T0 + 10, quota=False)
    exp, _, _ = want.get_records(0, 0, 100, T0 + 10, quota=False)
    assert nxt == 50 and [(r.sequence_number, r.data, r.partition_key, r.approximate_arrival_timestamp)
                          for r in got] == [(r.sequence_number, r.data, r.partition_key,
                                             r.approximate_arrival_timestamp) for r in exp]
    assert np.array_equal(np.asarray(c.counters([0])), np.asarray(want.counters([0])))
    assert c.seek_timestamp(0, ms0 + 10) == 10 and c.arrival_ms(0, 49) == ms0 + 49
    c.check_invariants()
    # a second file follows it; a put after adoption lands in a new (memory) segment, not in the file
    path2, size2, arrays2 = _segment_file(tmp_path, 50, [(ms0 + 100, "k", b"second")], "seg2")
    c.adopt_segment(0, 50, path2, size2, *arrays2)
    r = c.put_record(b"new", "k", None, (ms0 + 200) / 1000)
    assert c.shard_end(0) == 52 and int(r.sequence_number) > int(got[-1].sequence_number)
    assert (tmp_path / "seg2").read_bytes()[-len("second") - 1:] == b"second" + b"k"    # the file is untouched
    assert [x.data for x in c.get_records(0, 49, 10, T0 + 10, quota=False)[0]] == [got[49].data, b"second", b"new"]
    c.check_invariants()
    c.trim((ms0 + 150) / 1000, 0.0)      # retention frees (unmaps) the first file's segment
    assert c.shard_horizon(0) == 51
    c.check_invariants()


def test_adopt_segment_refuses_what_restore_record_refuses_and_bad_arrays(mod, tmp_path):
    ms0 = 1_700_000_000_000
    path, size, (ms, off, dlen, klen) = _segment_file(tmp_path, 5, [(ms0, "a", b"x"), (ms0 + 1, "b", b"yy")])
    c = make_core(mod, shards=1, quotas=False)
    c.restore_record(0, 0, ms0 - 5, b"r", "k")
    with pytest.raises(ValueError, match="cannot adopt position 5"):
        c.adopt_segment(0, 5, path, size, ms, off, dlen, klen)          # a gap above a readable record
    old = _segment_file(tmp_path, 1, [(ms0 - 10, "a", b"x")], "old")
    with pytest.raises(ValueError, match="cannot adopt an arrival"):
        c.adopt_segment(0, 1, old[0], old[1], *old[2])                  # back in time
    with pytest.raises(ValueError, match="runs past the file"):
        c.adopt_segment(0, 1, path, size - 1, ms, off, dlen, klen)
    with pytest.raises(ValueError, match="arrays of one length"):
        c.adopt_segment(0, 1, path, size, ms, off[:4], dlen, klen)
    with pytest.raises(ValueError, match="arrives before"):
        c.adopt_segment(0, 1, path, size, ms[8:] + ms[:8], off, dlen, klen)
    assert c.shard_end(0) == 1
    c.check_invariants()
    c.trim(T0 + 10 * 86400, 86400.0)                                    # all expired: a jump is allowed
    assert c.adopt_segment(0, 5, path, size, ms, off, dlen, klen) == 2
    assert (c.shard_horizon(0), c.shard_end(0)) == (5, 7)
    c.check_invariants()

"""check_invariants() after every step of the differential state machines, on both cores.

The machines of test_core_differential.py (random puts, oversized records, reads, read penalties,
trims, splits, merges, transient shards, drops) are reused with one more invariant: both cores'
internal invariants hold (segment ring, index, byte accounting, quota buckets, routing). On a debug
build of the compiled core the same checks also run inside the core after every mutation.
"""
from __future__ import annotations

from hypothesis import settings
from hypothesis.stateful import invariant
from test_core_differential import _SETTINGS, MetadataOnlyMachine, QuotaMachine, UnthrottledSmallMachine


class _Checked:
    @invariant()
    def core_invariants_hold(self):
        if self.ref is None:
            return
        self.ref.check_invariants()
        self.cy.check_invariants()


class CheckedQuotaMachine(_Checked, QuotaMachine):
    pass


class CheckedUnthrottledMachine(_Checked, UnthrottledSmallMachine):
    pass


class CheckedMetadataOnlyMachine(_Checked, MetadataOnlyMachine):
    pass


TestCheckedQuotaMachine = CheckedQuotaMachine.TestCase
TestCheckedQuotaMachine.settings = settings(max_examples=40, stateful_step_count=40, **_SETTINGS)
TestCheckedUnthrottledMachine = CheckedUnthrottledMachine.TestCase
TestCheckedUnthrottledMachine.settings = settings(max_examples=15, stateful_step_count=40, **_SETTINGS)
TestCheckedMetadataOnlyMachine = CheckedMetadataOnlyMachine.TestCase
TestCheckedMetadataOnlyMachine.settings = settings(max_examples=15, stateful_step_count=40, **_SETTINGS)

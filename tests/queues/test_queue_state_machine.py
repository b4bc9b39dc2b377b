"""A hypothesis state machine: receive / acknowledge / visibility changes / clock advances / dead letters /
restore against a small model of each record's delivery state. It checks every response exactly (which
handles succeed, receive counts, that a receive returns only deliverable records and all of them when there
are fewer than its limit), and at the end that no record was lost."""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import fastkin

MRC = 2
NEW, IN_FLIGHT, VISIBLE, DEAD, DEAD_IN_FLIGHT, ACKED = "new", "in flight", "visible", "dead", "dead in flight", "acked"


@dataclass
class Rec:
    state: str = NEW
    deadline: float = 0.0
    count: int = 0
    handle: str | None = None          # the current handle (normal or dead-letter kind)
    dead_handle: bool = False          # the current handle is a dead-letter one
    gone: bool = False                 # past the stream's retention: never delivered again, handles fail


def machine(core: str):
    class QueueMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.clock = fastkin.VirtualClock(start=1_700_000_000.0)
            self.engine = fastkin.Engine(clock=self.clock, core=core)
            self.stream = self.engine.create_stream("s")
            self.q = self.engine.create_queue(
                "q", [{"StreamARN": self.stream.arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}],
                {"VisibilityTimeoutSeconds": 5, "DeadLetterConfiguration": {"TargetType": "BUILT_IN",
                                                                            "MaxReceiveCount": MRC}}
            )["QueueDescription"]["QueueARN"]
            self.recs: dict[str, Rec] = {}
            self.handles: list[str] = []          # every handle ever issued (current or not)
            self.n = 0

        # -- the model's clock -------------------------------------------------------------------
        def expire(self):
            now = self.clock()
            for r in self.recs.values():
                if r.state == IN_FLIGHT and r.deadline <= now:
                    if r.count >= MRC:
                        r.state, r.handle = DEAD, None
                    else:
                        r.state = VISIBLE
                elif r.state == DEAD_IN_FLIGHT and r.deadline <= now:
                    r.state = DEAD

        # -- rules ---------------------------------------------------------------------------------
        @rule(n=st.integers(1, 12))
        def put(self, n):
            res = self.stream.put_records([(f"r{self.n + i}".encode(), f"k{self.n + i}") for i in range(n)])
            self.n += n
            for r in res:
                self.recs[r.sequence_number] = Rec()

        @rule(limit=st.integers(1, 10), vt=st.one_of(st.none(), st.integers(0, 12)), dead=st.booleans())
        def receive(self, limit, vt, dead):
            if dead:
                out = self.engine.receive_dead_letter_queue_records(self.q, limit, 1, vt)["QueueRecords"]
            else:
                out = self.engine.receive_queue_records(self.q, limit, 1, vt)["QueueRecords"]
            self.expire()                        # the engine answered at the clock's time after the call
            now = self.clock()
            deliverable = (DEAD,) if dead else (NEW, VISIBLE)
            ids = [x["RecordId"] for x in out]
            assert len(ids) == len(set(ids)) <= limit
            for x in out:
                r = self.recs[x["RecordId"]]
                assert r.state in deliverable and not r.gone, (x["RecordId"], r)
                r.count += 1
                assert x["ReceiveCount"] == r.count
                r.state = DEAD_IN_FLIGHT if dead else IN_FLIGHT
                r.deadline = now + (5 if vt is None else vt)
                r.handle, r.dead_handle = x["ReceiptHandle"], dead
                self.handles.append(x["ReceiptHandle"])
            if len(out) < limit:
                left = [k for k, r in self.recs.items() if r.state in deliverable and not r.gone]
                assert not left, left

        def _chosen(self, data, dead):
            """Mostly current handles of the operation's kind, and some of the others (stale, other kind)."""
            current = [r.handle for r in self.recs.values() if r.handle is not None and r.dead_handle == dead]
            pool = st.sampled_from(self.handles)
            if current:
                pool = st.one_of(st.sampled_from(current), st.sampled_from(current), pool)
            return data.draw(st.lists(pool, min_size=1, max_size=4, unique=True))

        def _check(self, out, hs, valid, dead):
            assert {x["ReceiptHandle"] for x in out["Successful"]} == {h for h in hs if valid(h)}
            assert len(out["Successful"]) + len(out["Failed"]) == len(hs)
            for h in hs:                          # a current handle of a record past retention: the engine forgets it
                r = self._current(h, None)
                if r is not None and r.gone and r.dead_handle == dead:
                    r.state, r.handle = ACKED, None

        def _current(self, h, dead):
            """The record whose current handle h is (of the given kind, or either kind for None), not gone."""
            for r in self.recs.values():
                if r.handle == h and (dead is None or r.dead_handle == dead) and r.state != ACKED:
                    return r if dead is None or not r.gone else None
            return None

        @precondition(lambda self: self.handles)
        @rule(data=st.data(), dead=st.booleans())
        def acknowledge(self, data, dead):
            hs = self._chosen(data, dead)
            entries = [{"ReceiptHandle": h} for h in hs]
            fn = self.engine.acknowledge_dead_letter_queue_records if dead else self.engine.acknowledge_queue_records
            out = fn(self.q, entries)
            self.expire()
            valid = {h for h in hs if self._current(h, dead) is not None}
            self._check(out, hs, valid.__contains__, dead)
            for h in valid:
                r = self._current(h, dead)
                r.state, r.handle = ACKED, None

        @precondition(lambda self: self.handles)
        @rule(data=st.data(), dead=st.booleans(), vt=st.integers(0, 12))
        def change_visibility(self, data, dead, vt):
            hs = self._chosen(data, dead)
            entries = [{"ReceiptHandle": h, "VisibilityTimeoutSeconds": vt} for h in hs]
            fn = self.engine.update_dead_letter_queue_records_visibility if dead else \
                self.engine.update_queue_records_visibility
            out = fn(self.q, entries)
            self.expire()
            valid = {h for h in hs if self._current(h, dead) is not None}
            self._check(out, hs, valid.__contains__, dead)
            for h in valid:
                r = self._current(h, dead)
                r.state = DEAD_IN_FLIGHT if dead else IN_FLIGHT
                r.deadline = self.clock() + vt

        @precondition(lambda self: self.handles)
        @rule(data=st.data())
        def restore(self, data):
            hs = self._chosen(data, True)
            out = self.engine.restore_dead_letter_queue_records(self.q, [{"ReceiptHandle": h} for h in hs])
            self.expire()
            valid = {h for h in hs if self._current(h, True) is not None}
            self._check(out, hs, valid.__contains__, True)
            for h in valid:
                r = self._current(h, True)
                r.state, r.count, r.handle = VISIBLE, 0, None

        @rule(dead=st.booleans())
        def receive_and_time_out(self, dead):
            """Receive up to 10 and let them all time out: drives receive counts up to MaxReceiveCount."""
            self.receive(10, None, dead)
            self.advance(5.0)

        @rule()
        def retention_cut(self):
            """Every record written so far passes the stream's retention (then retention is 24 h again)."""
            self.clock.advance(2.0)
            self.stream.set_retention_seconds(1.0)
            self.stream.set_retention_seconds(None)
            self.expire()
            for r in self.recs.values():
                r.gone = True

        @rule(dt=st.sampled_from([0.5, 1.0, 3.0, 5.0, 7.5]))
        def advance(self, dt):
            self.clock.advance(dt)
            self.expire()

        @invariant()
        def in_flight_matches(self):
            self.expire()
            assert self.engine.queue(self.q).counts()["in_flight"] == sum(
                r.state in (IN_FLIGHT, DEAD_IN_FLIGHT) for r in self.recs.values())

        def teardown(self):
            # never lost: after every timeout, each unacknowledged record is deliverable on one of the two paths
            self.clock.advance(60.0)
            self.expire()
            got = set()
            for dead in (False, True):
                while True:
                    fn = self.engine.receive_dead_letter_queue_records if dead else self.engine.receive_queue_records
                    out = fn(self.q, 10, 1, 3600)["QueueRecords"]
                    if not out:
                        break
                    got |= {x["RecordId"] for x in out}
            assert got == {k for k, r in self.recs.items() if r.state != ACKED and not r.gone}

    QueueMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=50, deadline=None,
                                              suppress_health_check=[HealthCheck.too_slow])
    return QueueMachine


TestQueueMachineRef = machine("ref").TestCase
TestQueueMachineCy = machine("cy").TestCase

"""The contract of ``StepStore``: step checkpoints (fenced ``save_step``, ``list_steps``)
and the record of every step attempt."""

from __future__ import annotations

from typing import Any

from hydra.status import Status, StepStatus
from hydra.store.base import (
    Lease,
    StepAttemptRow,
    StepRow,
)
from hydra.testing.contract._support import (
    LONG_LEASE,
    T0,
    Check,
    StoreFactory,
    assert_fields,
    assert_lease_lost,
    assert_nothing_claimable,
    assert_same,
    claim_exactly,
    create_one,
    fresh_id,
    fresh_namespace,
    get_row,
    opened,
    step_record,
)


def check_save_step_upsert(make_store: StoreFactory) -> None:
    """save_step replaces the whole row of a step with the same name."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        failing = step_record(
            eid,
            "charge",
            0,
            status=StepStatus.RETRYING,
            attempts=1,
            output=None,
            error_type="TimeoutError",
            error_message="gateway\ntimed out",
            started_at=T0 + 1,
            completed_at=None,
        )
        store.save_step(claim.lease, failing, now_ms=T0 + 2, lease_ms=LONG_LEASE)
        assert_same(store.list_steps(eid), [failing], "a step with every field set")
        done = step_record(
            eid,
            "charge",
            0,
            status=StepStatus.COMPLETED,
            attempts=2,
            output=b"receipt",
            error_type=None,
            error_message=None,
            started_at=T0 + 3,
            completed_at=T0 + 4,
        )
        store.save_step(claim.lease, done, now_ms=T0 + 5, lease_ms=LONG_LEASE)
        assert_same(store.list_steps(eid), [done], "the step after it was saved again")
        empty = step_record(eid, "charge", 0, output=b"", started_at=None, completed_at=None)
        store.save_step(claim.lease, empty, now_ms=T0 + 6, lease_ms=LONG_LEASE)
        got = store.list_steps(eid)
        assert_same(got, [empty], "a step with an empty output")
        assert got[0].output == b"" and got[0].output is not None, "b'' became None"
        assert isinstance(got[0].status, StepStatus), "step status is not a StepStatus"


def check_save_step_extends_lease(make_store: StoreFactory) -> None:
    """save_step extends the lease like a heartbeat."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid, lease_ms=1_000)
        store.save_step(claim.lease, step_record(eid), now_ms=T0 + 800, lease_ms=1_000)
        assert_fields(
            get_row(store, ns, eid),
            "the row after save_step",
            lease_expires_at=T0 + 1_800,
            wake_at=T0 + 1_800,
            status=Status.RUNNING,
        )
        assert_nothing_claimable(store, ns, T0 + 1_000, "save_step extended the lease to t0+1800")
        claim_exactly(store, ns, "w2", T0 + 1_800, eid)


def check_list_steps_order(make_store: StoreFactory) -> None:
    """list_steps returns the execution's steps by their order, not by insertion."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        other = create_one(store, ns, run_at=T0 + 1)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        assert store.list_steps(eid) == [], "a new execution has steps"
        made = {
            order: step_record(eid, name, order) for name, order in (("c", 2), ("a", 0), ("b", 1))
        }
        for order in (2, 0, 1):
            store.save_step(claim.lease, made[order], now_ms=T0, lease_ms=LONG_LEASE)
        for order in range(3, 13):
            made[order] = step_record(eid, f"s{order}", order)
            store.save_step(claim.lease, made[order], now_ms=T0, lease_ms=LONG_LEASE)
        assert_same(store.list_steps(eid), [made[i] for i in range(13)], "list_steps order")
        assert store.list_steps(other) == [], "another execution's steps leaked"


def attempt_record(
    step: StepRow, lease: Lease, status: StepStatus = StepStatus.COMPLETED
) -> StepAttemptRow:
    """The attempt record a store must derive from writing ``step`` under ``lease``."""
    return StepAttemptRow(
        execution_id=step.execution_id,
        step_name=step.name,
        lease_token=lease.token,
        attempt=step.attempts,
        status=status,
        error_type=step.error_type,
        error_message=step.error_message,
        started_at=step.started_at,
        completed_at=step.completed_at,
    )


def failing_step(eid: str, name: str, order: int, attempt: int, message: str, **kw: Any) -> StepRow:
    return step_record(
        eid,
        name,
        order,
        status=kw.pop("status", StepStatus.RETRYING),
        attempts=attempt,
        output=None,
        error_type="ConnectionError",
        error_message=message,
        started_at=T0 + 10 * attempt,
        completed_at=T0 + 10 * attempt + 3,
        **kw,
    )


def check_step_attempts_recorded(make_store: StoreFactory) -> None:
    """Every step attempt that reached a result or an error keeps a record (the step row
    keeps only the latest): failed ones (suspend with a retrying step, save_step of a
    failed one) and completed ones; sleeps keep none. list_step_attempts returns them by
    step name, each step's in the order they were made, across leases."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        other = create_one(store, ns, workflow="other")
        assert store.list_step_attempts(eid) == [], "a new execution has step attempts"
        first = claim_exactly(store, ns, "w1", T0, eid)
        one = failing_step(eid, "charge", 0, 1, "gateway\ntimed out")
        store.suspend(first.lease, wake_at_ms=T0 + 1_000, now_ms=T0 + 14, step=one)
        second = claim_exactly(store, ns, "w2", T0 + 1_000, eid)
        two = failing_step(eid, "charge", 0, 2, "reset by peer")
        store.suspend(second.lease, wake_at_ms=T0 + 2_000, now_ms=T0 + 24, step=two)
        third = claim_exactly(store, ns, "w3", T0 + 2_000, eid)
        done = step_record(eid, "charge", 0, attempts=3, started_at=T0 + 30, completed_at=T0 + 33)
        store.save_step(third.lease, done, now_ms=T0 + 34, lease_ms=LONG_LEASE)
        broken = failing_step(eid, "audit", 1, 1, "denied", status=StepStatus.FAILED)
        store.save_step(third.lease, broken, now_ms=T0 + 35, lease_ms=LONG_LEASE)
        nap = step_record(eid, "nap", 2, status=StepStatus.SLEEPING, output=b"9000")
        store.suspend(third.lease, wake_at_ms=T0 + 9_000, now_ms=T0 + 40, step=nap)
        assert_same(
            store.list_step_attempts(eid),
            [
                attempt_record(broken, third.lease, StepStatus.FAILED),
                attempt_record(one, first.lease, StepStatus.FAILED),
                attempt_record(two, second.lease, StepStatus.FAILED),
                attempt_record(done, third.lease),
            ],
            "the step attempts (by step name, then as they were made)",
        )
        assert_same(
            store.list_steps(eid), [done, broken, nap], "the step rows keep the latest attempt"
        )
        assert store.list_step_attempts(other) == [], "another execution's attempts leaked"
        assert store.list_step_attempts(fresh_id()) == [], "attempts of an unknown id"


def check_step_attempt_rewrite_is_one_record(make_store: StoreFactory) -> None:
    """Writing the same attempt again under the same lease (what a retry after a lost
    reply does) leaves one record, holding the last write; a retried execution starts a
    failed step's attempts at 1 again, under a new lease, and both rounds are kept."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        done = step_record(eid, "fetch", 0)
        for _ in range(2):
            store.save_step(claim.lease, done, now_ms=T0 + 5, lease_ms=LONG_LEASE)
        assert_same(
            store.list_step_attempts(eid), [attempt_record(done, claim.lease)], "after a rewrite"
        )
        broken = failing_step(eid, "charge", 1, 1, "declined", status=StepStatus.FAILED)
        store.save_step(claim.lease, broken, now_ms=T0 + 6, lease_ms=LONG_LEASE)
        store.save_step(claim.lease, broken, now_ms=T0 + 6, lease_ms=LONG_LEASE)
        store.finish(
            claim.lease, status=Status.FAILED, now_ms=T0 + 7, error_type="E", error_message="x"
        )
        assert store.retry_execution(ns, eid, now_ms=T0 + 8), "retry of a failed execution"
        again = claim_exactly(store, ns, "w2", T0 + 8, eid)
        fixed = step_record(eid, "charge", 1, attempts=1, started_at=T0 + 9, completed_at=T0 + 10)
        store.save_step(again.lease, fixed, now_ms=T0 + 11, lease_ms=LONG_LEASE)
        assert_same(
            store.list_step_attempts(eid),
            [
                attempt_record(broken, claim.lease, StepStatus.FAILED),
                attempt_record(fixed, again.lease),
                attempt_record(done, claim.lease),
            ],
            "the attempts after a retried execution ran a failed step again",
        )


def check_step_attempts_fenced(make_store: StoreFactory) -> None:
    """A worker whose lease was taken over records no attempt: save_step and suspend are
    refused before anything is written, the attempt record included."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        old = claim_exactly(store, ns, "w-old", T0, eid, lease_ms=1_000)
        kept = failing_step(eid, "charge", 0, 1, "timeout")
        store.save_step(old.lease, kept, now_ms=T0 + 14, lease_ms=1_000)
        new = claim_exactly(store, ns, "w-new", T0 + 2_000, eid)
        late = failing_step(eid, "charge", 0, 2, "late")
        assert_lease_lost(
            lambda: store.suspend(old.lease, wake_at_ms=T0 + 5_000, now_ms=T0 + 2_001, step=late),
            "suspend with a failed step attempt after a takeover",
        )
        late_done = step_record(eid, "charge", 0, attempts=2)
        assert_lease_lost(
            lambda: store.save_step(old.lease, late_done, now_ms=T0 + 2_001, lease_ms=1_000),
            "save_step of a completed attempt after a takeover",
        )
        assert_same(
            store.list_step_attempts(eid),
            [attempt_record(kept, old.lease, StepStatus.FAILED)],
            "the attempts after the old owner's refused writes",
        )
        mine = step_record(
            eid, "charge", 0, attempts=2, started_at=T0 + 2_002, completed_at=T0 + 2_003
        )
        store.save_step(new.lease, mine, now_ms=T0 + 2_004, lease_ms=LONG_LEASE)
        assert_same(
            store.list_step_attempts(eid),
            [attempt_record(kept, old.lease, StepStatus.FAILED), attempt_record(mine, new.lease)],
            "the attempts after the new owner's write",
        )


#: the checks of this module, in order
CHECKS: list[Check] = [
    check_save_step_upsert,
    check_save_step_extends_lease,
    check_list_steps_order,
    check_step_attempts_recorded,
    check_step_attempt_rewrite_is_one_record,
    check_step_attempts_fenced,
]

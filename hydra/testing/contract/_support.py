"""What the contract's checks share: the factory and check types, fixed times, and
helpers that make executions, steps and claims and assert with messages that say what
went wrong."""

from __future__ import annotations

import dataclasses
import reprlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hydra.errors import LeaseLostError
from hydra.status import Status, StepStatus
from hydra.store.base import (
    Claim,
    ExecutionRow,
    Lease,
    NewExecution,
    StepAttemptRow,
    StepRow,
    Store,
)

#: makes a fresh store (connected to a migrated database, for a SQL store)
StoreFactory = Callable[[], Store]
#: one check of the contract: raises AssertionError saying what went wrong
Check = Callable[[StoreFactory], None]

#: a fixed "now" (2023-11-14T22:13:20Z); every check's times are offsets from it
T0 = 1_700_000_000_000
#: a lease long enough never to expire by accident within a check
LONG_LEASE = 600_000
#: "far in the future": anything still claimable would be claimed at this time
FAR = T0 + 10**12
#: the workflow name of a check's executions unless it says otherwise
WF = "wf"

#: values in assertion messages, cut short
short_repr = reprlib.Repr()
short_repr.maxstring = 80
short_repr.maxother = 80


@contextmanager
def opened(make_store: StoreFactory) -> Iterator[Store]:
    store = make_store()
    try:
        yield store
    finally:
        store.close()


def fresh_namespace() -> str:
    return f"contract-{uuid.uuid4().hex}"


def fresh_id() -> str:
    return str(uuid.uuid4())


def new_execution(
    ns: str,
    *,
    workflow: str = WF,
    run_at: int = T0,
    created_at: int | None = None,
    key: str | None = None,
    timeout_ms: int | None = None,
    input: bytes = b"input",
    execution_id: str | None = None,
) -> NewExecution:
    return NewExecution(
        id=execution_id or fresh_id(),
        namespace=ns,
        workflow_name=workflow,
        input=input,
        max_attempts=3,
        retry_backoff_ms=1_000,
        timeout_ms=timeout_ms,
        idempotency_key=key,
        run_at_ms=run_at,
        created_at_ms=run_at if created_at is None else created_at,
    )


def create_one(store: Store, ns: str, **kwargs: Any) -> str:
    new = new_execution(ns, **kwargs)
    got, created = store.create_execution(new)
    assert (got, created) == (new.id, True), (
        f"create_execution of a new execution returned {(got, created)!r}, "
        f"expected {(new.id, True)!r}"
    )
    return got


def get_row(store: Store, ns: str, execution_id: str) -> ExecutionRow:
    row = store.get_execution(ns, execution_id)
    assert row is not None, f"get_execution({execution_id!r}) returned None for a stored row"
    return row


def claim_due(
    store: Store,
    ns: str,
    worker: str,
    now: int,
    *,
    lease_ms: int = LONG_LEASE,
    workflows: tuple[str, ...] = (WF,),
    limit: int = 100,
) -> list[Claim]:
    return store.claim(ns, list(workflows), worker, now_ms=now, lease_ms=lease_ms, limit=limit)


def claim_exactly(
    store: Store,
    ns: str,
    worker: str,
    now: int,
    execution_id: str,
    *,
    lease_ms: int = LONG_LEASE,
    workflows: tuple[str, ...] = (WF,),
) -> Claim:
    claims = claim_due(store, ns, worker, now, lease_ms=lease_ms, workflows=workflows)
    ids = [c.execution.id for c in claims]
    assert ids == [execution_id], (
        f"claim at t0+{now - T0} by {worker} returned {ids}, expected exactly [{execution_id!r}]"
    )
    return claims[0]


def assert_nothing_claimable(store: Store, ns: str, now: int, why: str, **kwargs: Any) -> None:
    claims = claim_due(store, ns, "w-probe", now, **kwargs)
    assert not claims, (
        f"{why}: claim at t0+{now - T0} returned {[c.execution.id for c in claims]}, "
        f"expected nothing"
    )


def step_record(
    execution_id: str,
    name: str = "step",
    order: int = 0,
    *,
    status: StepStatus = StepStatus.COMPLETED,
    attempts: int = 1,
    output: bytes | None = b"step-output",
    error_type: str | None = None,
    error_message: str | None = None,
    started_at: int | None = T0,
    completed_at: int | None = T0 + 1,
) -> StepRow:
    return StepRow(
        execution_id=execution_id,
        name=name,
        order=order,
        status=status,
        attempts=attempts,
        output=output,
        error_type=error_type,
        error_message=error_message,
        started_at=started_at,
        completed_at=completed_at,
    )


def assert_fields(obj: Any, what: str, **expected: Any) -> None:
    """Assert that ``obj`` has these attribute values, naming every mismatch at once."""
    wrong = [
        f"{name}={short_repr.repr(getattr(obj, name))} (expected {short_repr.repr(value)})"
        for name, value in expected.items()
        if getattr(obj, name) != value
    ]
    assert not wrong, f"{what}: " + ", ".join(wrong)


def assert_same(actual: Any, expected: Any, what: str) -> None:
    """Assert two records (or lists of records, or None) are equal, naming the fields."""
    if actual == expected:
        return
    if dataclasses.is_dataclass(actual) and type(actual) is type(expected):
        diffs = [
            f"{f.name}={short_repr.repr(getattr(actual, f.name))} "
            f"(expected {short_repr.repr(getattr(expected, f.name))})"
            for f in dataclasses.fields(actual)
            if getattr(actual, f.name) != getattr(expected, f.name)
        ]
        raise AssertionError(f"{what}: " + ", ".join(diffs))
    if isinstance(actual, list) and isinstance(expected, list) and len(actual) == len(expected):
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{what} [{i}]")
    raise AssertionError(
        f"{what}: got {short_repr.repr(actual)}, expected {short_repr.repr(expected)}"
    )


Snapshot = tuple[ExecutionRow | None, list[StepRow], list[StepAttemptRow]]


def snapshot_of(store: Store, ns: str, execution_id: str) -> Snapshot:
    return (
        store.get_execution(ns, execution_id),
        store.list_steps(execution_id),
        store.list_step_attempts(execution_id),
    )


def assert_unchanged(
    store: Store, ns: str, execution_id: str, before: Snapshot, after_what: str
) -> None:
    row, steps, attempts = snapshot_of(store, ns, execution_id)
    assert_same(row, before[0], f"the execution row changed after {after_what}")
    assert_same(steps, before[1], f"the step rows changed after {after_what}")
    assert_same(attempts, before[2], f"the step attempt records changed after {after_what}")


def assert_lease_lost(call: Callable[[], object], what: str) -> None:
    try:
        call()
    except LeaseLostError:
        return
    raise AssertionError(f"{what} with a lost lease did not raise LeaseLostError")


def fenced_writes(store: Store, lease: Lease, now: int) -> list[tuple[str, Callable[[], object]]]:
    """Every fenced write an owner can make, as (description, call)."""
    eid = lease.execution_id
    return [
        (
            "save_step (new step)",
            lambda: store.save_step(
                lease, step_record(eid, "stale-new", 90), now_ms=now, lease_ms=LONG_LEASE
            ),
        ),
        (
            "save_step (existing step)",
            lambda: store.save_step(
                lease, step_record(eid, "a", 0, output=b"stale"), now_ms=now, lease_ms=LONG_LEASE
            ),
        ),
        (
            "suspend with a step",
            lambda: store.suspend(
                lease,
                wake_at_ms=now + 5_000,
                now_ms=now,
                step=step_record(eid, "stale-sleep", 91, status=StepStatus.SLEEPING),
            ),
        ),
        (
            "suspend with a failed step attempt",
            lambda: store.suspend(
                lease,
                wake_at_ms=now + 5_000,
                now_ms=now,
                step=step_record(
                    eid,
                    "stale-retry",
                    92,
                    status=StepStatus.RETRYING,
                    output=None,
                    error_type="E",
                    error_message="stale",
                ),
            ),
        ),
        ("suspend", lambda: store.suspend(lease, wake_at_ms=now + 5_000, now_ms=now)),
        (
            "schedule_retry",
            lambda: store.schedule_retry(
                lease, run_at_ms=now + 5_000, error_type="E", error_message="stale", now_ms=now
            ),
        ),
        (
            "finish(completed)",
            lambda: store.finish(lease, status=Status.COMPLETED, now_ms=now, output=b"stale"),
        ),
        (
            "finish(failed)",
            lambda: store.finish(
                lease, status=Status.FAILED, now_ms=now, error_type="E", error_message="stale"
            ),
        ),
    ]


def assert_fenced(store: Store, ns: str, lease: Lease, now: int, situation: str) -> None:
    """Every write with ``lease`` raises LeaseLostError and changes nothing."""
    eid = lease.execution_id
    before = snapshot_of(store, ns, eid)
    for what, call in fenced_writes(store, lease, now):
        assert_lease_lost(call, f"{what} {situation}")
        assert_unchanged(store, ns, eid, before, f"a rejected {what} {situation}")
    lost = store.heartbeat([lease], now_ms=now, lease_ms=LONG_LEASE)
    assert lost == [eid], f"heartbeat {situation} returned {lost}, expected [{eid!r}]"
    assert_unchanged(store, ns, eid, before, f"a rejected heartbeat {situation}")
    assert store.release(lease, now_ms=now) is False, f"release {situation} returned True"
    assert_unchanged(store, ns, eid, before, f"a rejected release {situation}")

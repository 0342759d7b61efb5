"""The Store contract: what every store implementation must do, as plain check functions.

Modelled on trio's ``check_*`` conformance helpers: each ``check_<behaviour>`` takes a
zero-argument factory that makes a fresh store (connected to a migrated database, for a
SQL store), exercises one behaviour through the public ``Store`` interface only, and fails
with an ``AssertionError`` that says what went wrong. There is no pytest dependency, so a
third-party store can run the suite from any test runner::

    from hydra.testing.contract import run_all

    def test_my_store_follows_the_contract():
        run_all(lambda: MyStore(...))

Every check works in its own fresh namespace, so many checks (and many runs) can share
one database. All times are fixed Unix milliseconds passed in explicitly, as the engine
does: a store never reads a clock (``check_database_time`` reads the one clock a store
may report, its server's).

Checks that need a capability (``Store.supports_notify``, ``Store.shared_across_processes``)
are listed in ``REQUIRES``; ``run_all`` skips the ones a store does not support, and
``unsupported_reason`` tells a test runner why.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import reprlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from hydra.errors import LeaseLostError
from hydra.status import Status, StepStatus
from hydra.store.base import (
    Claim,
    CronFire,
    CronJobRow,
    ExecutionRow,
    Lease,
    NewExecution,
    StepAttemptRow,
    StepRow,
    Store,
    take_lease,
)

StoreFactory = Callable[[], Store]
Check = Callable[[StoreFactory], None]

#: a fixed "now" (2023-11-14T22:13:20Z); every check's times are offsets from it
T0 = 1_700_000_000_000
#: a lease long enough never to expire by accident within a check
LONG_LEASE = 600_000
#: "far in the future": anything still claimable would be claimed at this time
FAR = T0 + 10**12
WF = "wf"

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80


# -- helpers ----------------------------------------------------------------------------
@contextmanager
def _opened(make_store: StoreFactory) -> Iterator[Store]:
    store = make_store()
    try:
        yield store
    finally:
        store.close()


def _ns() -> str:
    return f"contract-{uuid.uuid4().hex}"


def _id() -> str:
    return str(uuid.uuid4())


def _new(
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
        id=execution_id or _id(),
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


def _create(store: Store, ns: str, **kwargs: Any) -> str:
    new = _new(ns, **kwargs)
    got, created = store.create_execution(new)
    assert (got, created) == (new.id, True), (
        f"create_execution of a new execution returned {(got, created)!r}, "
        f"expected {(new.id, True)!r}"
    )
    return got


def _get(store: Store, ns: str, execution_id: str) -> ExecutionRow:
    row = store.get_execution(ns, execution_id)
    assert row is not None, f"get_execution({execution_id!r}) returned None for a stored row"
    return row


def _claim(
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


def _claim_one(
    store: Store,
    ns: str,
    worker: str,
    now: int,
    execution_id: str,
    *,
    lease_ms: int = LONG_LEASE,
    workflows: tuple[str, ...] = (WF,),
) -> Claim:
    claims = _claim(store, ns, worker, now, lease_ms=lease_ms, workflows=workflows)
    ids = [c.execution.id for c in claims]
    assert ids == [execution_id], (
        f"claim at t0+{now - T0} by {worker} returned {ids}, expected exactly [{execution_id!r}]"
    )
    return claims[0]


def _nothing_claimable(store: Store, ns: str, now: int, why: str, **kwargs: Any) -> None:
    claims = _claim(store, ns, "w-probe", now, **kwargs)
    assert not claims, (
        f"{why}: claim at t0+{now - T0} returned {[c.execution.id for c in claims]}, "
        f"expected nothing"
    )


def _step(
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


def _fields(obj: Any, what: str, **expected: Any) -> None:
    """Assert that ``obj`` has these attribute values, naming every mismatch at once."""
    wrong = [
        f"{name}={_repr.repr(getattr(obj, name))} (expected {_repr.repr(value)})"
        for name, value in expected.items()
        if getattr(obj, name) != value
    ]
    assert not wrong, f"{what}: " + ", ".join(wrong)


def _same(actual: Any, expected: Any, what: str) -> None:
    """Assert two records (or lists of records, or None) are equal, naming the fields."""
    if actual == expected:
        return
    if dataclasses.is_dataclass(actual) and type(actual) is type(expected):
        diffs = [
            f"{f.name}={_repr.repr(getattr(actual, f.name))} "
            f"(expected {_repr.repr(getattr(expected, f.name))})"
            for f in dataclasses.fields(actual)
            if getattr(actual, f.name) != getattr(expected, f.name)
        ]
        raise AssertionError(f"{what}: " + ", ".join(diffs))
    if isinstance(actual, list) and isinstance(expected, list) and len(actual) == len(expected):
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _same(a, e, f"{what} [{i}]")
    raise AssertionError(f"{what}: got {_repr.repr(actual)}, expected {_repr.repr(expected)}")


Snapshot = tuple[ExecutionRow | None, list[StepRow], list[StepAttemptRow]]


def _snapshot(store: Store, ns: str, execution_id: str) -> Snapshot:
    return (
        store.get_execution(ns, execution_id),
        store.list_steps(execution_id),
        store.list_step_attempts(execution_id),
    )


def _unchanged(store: Store, ns: str, execution_id: str, before: Snapshot, after_what: str) -> None:
    row, steps, attempts = _snapshot(store, ns, execution_id)
    _same(row, before[0], f"the execution row changed after {after_what}")
    _same(steps, before[1], f"the step rows changed after {after_what}")
    _same(attempts, before[2], f"the step attempt records changed after {after_what}")


def _lease_lost(call: Callable[[], object], what: str) -> None:
    try:
        call()
    except LeaseLostError:
        return
    raise AssertionError(f"{what} with a lost lease did not raise LeaseLostError")


def _fenced_writes(store: Store, lease: Lease, now: int) -> list[tuple[str, Callable[[], object]]]:
    """Every fenced write an owner can make, as (description, call)."""
    eid = lease.execution_id
    return [
        (
            "save_step (new step)",
            lambda: store.save_step(
                lease, _step(eid, "stale-new", 90), now_ms=now, lease_ms=LONG_LEASE
            ),
        ),
        (
            "save_step (existing step)",
            lambda: store.save_step(
                lease, _step(eid, "a", 0, output=b"stale"), now_ms=now, lease_ms=LONG_LEASE
            ),
        ),
        (
            "suspend with a step",
            lambda: store.suspend(
                lease,
                wake_at_ms=now + 5_000,
                now_ms=now,
                step=_step(eid, "stale-sleep", 91, status=StepStatus.SLEEPING),
            ),
        ),
        (
            "suspend with a failed step attempt",
            lambda: store.suspend(
                lease,
                wake_at_ms=now + 5_000,
                now_ms=now,
                step=_step(
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


def _assert_fenced(store: Store, ns: str, lease: Lease, now: int, situation: str) -> None:
    """Every write with ``lease`` raises LeaseLostError and changes nothing."""
    eid = lease.execution_id
    before = _snapshot(store, ns, eid)
    for what, call in _fenced_writes(store, lease, now):
        _lease_lost(call, f"{what} {situation}")
        _unchanged(store, ns, eid, before, f"a rejected {what} {situation}")
    lost = store.heartbeat([lease], now_ms=now, lease_ms=LONG_LEASE)
    assert lost == [eid], f"heartbeat {situation} returned {lost}, expected [{eid!r}]"
    _unchanged(store, ns, eid, before, f"a rejected heartbeat {situation}")
    assert store.release(lease, now_ms=now) is False, f"release {situation} returned True"
    _unchanged(store, ns, eid, before, f"a rejected release {situation}")


# -- executions -------------------------------------------------------------------------
def check_create_get_list_roundtrip(make_store: StoreFactory) -> None:
    """Every field of a new execution comes back from get_execution and list_executions."""
    with _opened(make_store) as store:
        ns = _ns()
        new = NewExecution(
            id=_id(),
            namespace=ns,
            workflow_name="billing.charge",
            input=bytes(range(256)) + "ünïcode".encode(),
            max_attempts=7,
            retry_backoff_ms=2_500,
            timeout_ms=90_000,
            idempotency_key="order-42",
            run_at_ms=T0 + 5_000,
            created_at_ms=T0,
            trigger_type="cron",
            trigger_source="nightly-report",
        )
        assert store.create_execution(new) == (new.id, True), "create_execution did not create"
        expected = ExecutionRow(
            id=new.id,
            namespace=ns,
            workflow_name="billing.charge",
            status=Status.PENDING,
            input=new.input,
            output=None,
            error_type=None,
            error_message=None,
            attempt=0,
            max_attempts=7,
            retry_backoff_ms=2_500,
            timeout_ms=90_000,
            timeout_at=None,
            idempotency_key="order-42",
            created_at=T0,
            started_at=None,
            completed_at=None,
            updated_at=T0,
            run_at=T0 + 5_000,
            sleep_until=None,
            next_retry_at=None,
            wake_at=T0 + 5_000,
            lease_owner=None,
            lease_token=0,
            lease_expires_at=None,
            trigger_type="cron",
            trigger_source="nightly-report",
        )
        row = _get(store, ns, new.id)
        _same(row, expected, "get_execution after create")
        assert isinstance(row.status, Status), f"status is {type(row.status)}, not Status"
        assert type(row.input) is bytes, f"input is {type(row.input)}, not bytes"
        _same(store.list_executions(ns), [expected], "list_executions after create")

        # The defaults: trigger "api", no source, no timeout, no key.
        plain = _new(ns, created_at=T0 + 1)
        store.create_execution(plain)
        _fields(
            _get(store, ns, plain.id),
            "an execution created with the defaults",
            trigger_type="api",
            trigger_source=None,
            timeout_ms=None,
            timeout_at=None,
            idempotency_key=None,
            wake_at=T0,
            run_at=T0,
        )


def check_get_missing(make_store: StoreFactory) -> None:
    """get_execution is None for an unknown id and for an id of another namespace."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        assert store.get_execution(ns, _id()) is None, "an unknown id returned a row"
        assert store.get_execution(_ns(), eid) is None, "another namespace's id returned a row"
        assert store.list_steps(_id()) == [], "list_steps of an unknown id is not empty"


def check_idempotency_key(make_store: StoreFactory) -> None:
    """A key already used in the namespace returns the existing id and writes nothing."""
    with _opened(make_store) as store:
        ns = _ns()
        first = _create(store, ns, key="order-1", input=b"first")
        before = _get(store, ns, first)
        again = _new(ns, key="order-1", input=b"second", created_at=T0 + 1)
        got = store.create_execution(again)
        assert got == (first, False), f"a reused key returned {got}, expected {(first, False)}"
        assert store.get_execution(ns, again.id) is None, "a reused key still inserted a row"
        listed = [r.id for r in store.list_executions(ns)]
        assert listed == [first], f"after a reused key the namespace holds {listed}"
        _same(_get(store, ns, first), before, "the original after its key was reused")

        # The same key in another namespace is independent.
        other_ns = _ns()
        other = _new(other_ns, key="order-1")
        assert store.create_execution(other) == (other.id, True), (
            "the same key in another namespace did not create a new execution"
        )

        # Executions without a key never collide.
        _create(store, ns, created_at=T0 + 2)
        _create(store, ns, created_at=T0 + 3)
        assert len(store.list_executions(ns)) == 3, "executions without a key collided"

        # A finished execution still holds its key.
        store.cancel(ns, first, now_ms=T0 + 10)
        late = _new(ns, key="order-1", created_at=T0 + 20)
        assert store.create_execution(late) == (first, False), (
            "a key stopped deduplicating once its execution was terminal"
        )


def check_idempotency_key_concurrent(make_store: StoreFactory) -> None:
    """Eight threads starting with one key at once: one execution, all told its id."""
    with _opened(make_store) as store:
        ns = _ns()
        threads = 8
        barrier = threading.Barrier(threads)

        def start(n: int) -> tuple[str, bool]:
            new = _new(ns, key="once", input=f"from {n}".encode(), created_at=T0 + n)
            barrier.wait(timeout=30)
            return store.create_execution(new)

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(start, range(threads)))
        created = [eid for eid, was_created in results if was_created]
        assert len(created) == 1, f"{len(created)} of {threads} concurrent starts created a row"
        ids = {eid for eid, _ in results}
        assert ids == set(created), f"concurrent starts with one key were told {ids}"
        rows = store.list_executions(ns)
        assert [r.id for r in rows] == created, f"the namespace holds {[r.id for r in rows]}"


def check_list_executions(make_store: StoreFactory) -> None:
    """Newest first (created_at, then id, descending), filtered, limited."""
    with _opened(make_store) as store:
        ns = _ns()
        made = [
            (T0 + 1, _create(store, ns, created_at=T0 + 1)),
            (T0 + 3, _create(store, ns, created_at=T0 + 3, workflow="other")),
            (T0 + 2, _create(store, ns, created_at=T0 + 2)),
            (T0 + 2, _create(store, ns, created_at=T0 + 2, workflow="other")),
            (T0 + 2, _create(store, ns, created_at=T0 + 2)),
        ]
        newest_first = [eid for _, eid in sorted(made, reverse=True)]
        got = [r.id for r in store.list_executions(ns)]
        assert got == newest_first, f"list_executions order {got}, expected {newest_first}"
        got = [r.id for r in store.list_executions(ns, limit=2)]
        assert got == newest_first[:2], f"limit=2 returned {got}, expected {newest_first[:2]}"

        others = [eid for eid in newest_first if _get(store, ns, eid).workflow_name == "other"]
        got = [r.id for r in store.list_executions(ns, workflow_name="other")]
        assert got == others, f"workflow_name filter returned {got}, expected {others}"

        cancelled = newest_first[2]
        assert store.cancel(ns, cancelled, now_ms=T0 + 10)
        got = [r.id for r in store.list_executions(ns, status=Status.CANCELLED)]
        assert got == [cancelled], f"status filter returned {got}, expected [{cancelled!r}]"
        pending = [eid for eid in newest_first if eid != cancelled]
        got = [r.id for r in store.list_executions(ns, status=Status.PENDING)]
        assert got == pending, f"status=pending returned {got}, expected {pending}"
        got = [
            r.id for r in store.list_executions(ns, status=Status.PENDING, workflow_name="other")
        ]
        expected = [eid for eid in others if eid != cancelled]
        assert got == expected, f"both filters returned {got}, expected {expected}"
        assert store.list_executions(ns, status=Status.RUNNING) == [], "no row is running"
        assert store.list_executions(_ns()) == [], "an empty namespace listed rows"


def check_records_are_copies(make_store: StoreFactory) -> None:
    """Mutating a record passed in or handed out never changes what is stored."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        original = _get(store, ns, eid)
        row = _get(store, ns, eid)
        row.status = Status.FAILED
        row.input = b"changed"
        listed = store.list_executions(ns)[0]
        listed.attempt = 99
        _same(_get(store, ns, eid), original, "the row after mutating returned copies")

        claim = _claim_one(store, ns, "w1", T0, eid)
        claimed = _get(store, ns, eid)
        claim.execution.lease_owner = "someone else"
        step = _step(eid, "a", 0, output=b"original")
        store.save_step(claim.lease, step, now_ms=T0, lease_ms=LONG_LEASE)
        step.output = b"changed"
        step.attempts = 42
        got = store.list_steps(eid)
        got[0].status = StepStatus.FAILED
        _same(
            store.list_steps(eid),
            [_step(eid, "a", 0, output=b"original")],
            "the steps after mutating the saved and the returned step",
        )
        _fields(_get(store, ns, eid), "the row after mutating a claim", lease_owner="w1")
        _fields(claimed, "the row read after the claim", lease_owner="w1")


def check_names_are_exact(make_store: StoreFactory) -> None:
    """Namespaces, workflow names, idempotency keys and step names compare exactly: a name
    that differs only in letter case (or accents) is a different name."""
    with _opened(make_store) as store:
        ns = _ns()
        first = _create(store, ns, key="Order-1", workflow="Billing")
        for key, workflow in (
            ("order-1", "billing"),
            ("ORDER-1", "BILLING"),
            ("Ordér-1", "Bïlling"),
        ):
            new = _new(ns, key=key, workflow=workflow, created_at=T0 + 1)
            got = store.create_execution(new)
            assert got == (new.id, True), (
                f"idempotency key {key!r} was taken as the same key as 'Order-1': {got}"
            )
        upper = ns.upper()
        assert store.get_execution(upper, first) is None, "namespaces compared without case"
        assert store.list_executions(upper) == [], "namespaces compared without case"
        assert store.cancel(upper, first, now_ms=T0) is False, "namespaces compared without case"
        _nothing_claimable(store, upper, T0, "namespaces compare exactly", workflows=("Billing",))
        got_ids = [r.id for r in store.list_executions(ns, workflow_name="Billing")]
        assert got_ids == [first], f"workflow_name='Billing' listed {len(got_ids)} executions"
        claim = _claim_one(store, ns, "w1", T0, first, workflows=("Billing",))
        lower = _step(first, "fetch", 0, output=b"lower")
        capital = _step(first, "Fetch", 1, output=b"capital")
        accent = _step(first, "fétch", 2, output=b"accent")
        for step in (lower, capital, accent):
            store.save_step(claim.lease, step, now_ms=T0, lease_ms=LONG_LEASE)
        _same(
            store.list_steps(first),
            [lower, capital, accent],
            "steps whose names differ only in case or accents",
        )


# -- execution ids by prefix ------------------------------------------------------------
def check_find_execution_ids(make_store: StoreFactory) -> None:
    """``find_execution_ids`` finds the executions of one namespace whose id starts with a
    prefix: exactly (letter case counts; ``%``, ``_``, ``*``, ``?``, ``[``, ``/`` and ``\\``
    are plain characters, not wildcards), at most ``limit`` of them."""
    with _opened(make_store) as store:
        ns, other_ns = _ns(), _ns()
        # Ids are unique across namespaces: a fresh stem keeps runs sharing a database apart.
        stem = uuid.uuid4().hex[:12]
        first, second = f"{stem}-aa11", f"{stem}-aa22"
        nine, zed = f"{stem}-9z1", f"{stem}-zZ2"
        plain = [first, second, f"{stem}-bb33", f"{stem}-AA44", nine, zed]
        # One id per character that is a wildcard or an escape somewhere (LIKE, GLOB).
        special = {c: f"{stem}{c}x9" for c in "%_*?[/\\"}
        for execution_id in (*plain, *special.values()):
            _create(store, ns, execution_id=execution_id)
        _create(store, other_ns, execution_id=f"{stem}-aa33")

        def found(prefix: str, limit: int = 100) -> list[str]:
            return store.find_execution_ids(ns, prefix, limit=limit)

        got = found(f"{stem}-aa")
        assert got == [first, second], (
            f"prefix {stem}-aa found {got!r}: expected the two ids starting so in this "
            "namespace, in id order (not -AA44: case counts; not the other namespace's)"
        )
        assert found(f"{stem}-AA") == [f"{stem}-AA44"], "a prefix compared without case"
        assert found(first) == [first], "a whole id is a prefix of itself"
        assert found(f"{stem}-cc") == [], "a prefix no id starts with found something"
        for execution_id in (nine, zed):
            for end in range(len(stem) + 2, len(execution_id) + 1):
                got = found(execution_id[:end])
                assert got == [execution_id], f"prefix {execution_id[:end]!r} found {got!r}"
        for char, execution_id in special.items():
            got = found(stem + char)
            assert got == [execution_id], (
                f"prefix {stem + char!r} found {got!r}: {char!r} must be a plain character"
            )
        everything = sorted([*plain, *special.values()])
        assert sorted(found(stem)) == everything, "not every id with the prefix was found"
        assert sorted(found("")) == everything, "the empty prefix must match every id"
        some = found(stem, limit=3)
        assert len(some) == 3 and set(some) <= set(everything), (
            f"limit=3 returned {some!r}: expected 3 of the matching ids"
        )
        assert store.find_execution_ids(other_ns, f"{stem}-aa", limit=100) == [f"{stem}-aa33"]


# -- claims -----------------------------------------------------------------------------
def check_first_claim(make_store: StoreFactory) -> None:
    """A first claim: running, owner, token 1, lease, attempt 1, started_at, timeout_at."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns, run_at=T0, created_at=T0 - 100, timeout_ms=60_000)
        now = T0 + 7
        claim = _claim_one(store, ns, "w1", now, eid, lease_ms=1_234)
        _fields(
            claim,
            "the first claim",
            lease=Lease(eid, 1, "w1"),
            previous_status=Status.PENDING,
            takeover=False,
            steps=[],
        )
        _fields(
            claim.execution,
            "the first claim's execution",
            status=Status.RUNNING,
            lease_owner="w1",
            lease_token=1,
            lease_expires_at=now + 1_234,
            attempt=1,
            started_at=now,
            timeout_at=now + 60_000,
            wake_at=now + 1_234,
            updated_at=now,
            run_at=T0,
            created_at=T0 - 100,
            sleep_until=None,
            next_retry_at=None,
        )
        _same(_get(store, ns, eid), claim.execution, "the stored row after a claim")


def check_claim_exclusive(make_store: StoreFactory) -> None:
    """8 concurrent claimers take 50 executions: each is claimed exactly once."""
    with _opened(make_store) as store:
        ns = _ns()
        count, threads = 50, 8
        ids = {_create(store, ns, run_at=T0 + i) for i in range(count)}
        barrier = threading.Barrier(threads)

        def work(n: int) -> list[tuple[str, Claim]]:
            worker = f"worker-{n}"
            got: list[tuple[str, Claim]] = []
            barrier.wait(timeout=30)
            while True:
                claims = _claim(store, ns, worker, T0 + 1_000, limit=3)
                if not claims:
                    return got
                assert len(claims) <= 3, f"claim(limit=3) returned {len(claims)} executions"
                got.extend((worker, c) for c in claims)

        with ThreadPoolExecutor(threads) as pool:
            results = [x for part in pool.map(work, range(threads)) for x in part]
        times = Counter(c.execution.id for _, c in results)
        twice = {eid: n for eid, n in times.items() if n > 1}
        assert not twice, f"executions claimed more than once: {twice}"
        missing = ids - set(times)
        assert not missing, f"{len(missing)} executions were never claimed"
        assert set(times) == ids, f"claimed unknown executions: {set(times) - ids}"
        for worker, claim in results:
            _fields(claim.lease, "a concurrent claim's lease", worker_id=worker, token=1)
            _fields(
                _get(store, ns, claim.execution.id),
                "a concurrently claimed row",
                status=Status.RUNNING,
                lease_owner=worker,
                lease_token=1,
                attempt=1,
            )
        _nothing_claimable(store, ns, T0 + 1_000, "every execution is leased")


def check_takeover_exclusive(make_store: StoreFactory) -> None:
    """8 concurrent claimers race for 20 expired leases: each is taken over exactly once."""
    with _opened(make_store) as store:
        ns = _ns()
        count, threads = 20, 8
        ids = {_create(store, ns, run_at=T0 + i) for i in range(count)}
        crashed = _claim(store, ns, "crashed", T0 + 100, lease_ms=1_000)
        assert {c.execution.id for c in crashed} == ids, "setup claim failed"
        barrier = threading.Barrier(threads)

        def work(n: int) -> list[Claim]:
            got: list[Claim] = []
            barrier.wait(timeout=30)
            while claims := _claim(store, ns, f"worker-{n}", T0 + 5_000, limit=2):
                got.extend(claims)
            return got

        with ThreadPoolExecutor(threads) as pool:
            results = [c for part in pool.map(work, range(threads)) for c in part]
        times = Counter(c.execution.id for c in results)
        assert all(n == 1 for n in times.values()), f"taken over twice: {times.most_common(3)}"
        assert set(times) == ids, f"{len(ids - set(times))} expired leases never taken over"
        for claim in results:
            _fields(claim, "a concurrent takeover", takeover=True)
            _fields(claim.execution, "a row taken over concurrently", attempt=2, lease_token=2)


def check_claim_only_listed_workflows(make_store: StoreFactory) -> None:
    """Only executions of the workflow names given are claimed."""
    with _opened(make_store) as store:
        ns = _ns()
        a = _create(store, ns, workflow="a")
        b = _create(store, ns, workflow="b")
        _create(store, ns, workflow="c")
        got = _claim(store, ns, "w1", T0, workflows=())
        assert got == [], "claim with no workflow names returned executions"
        got = _claim(store, ns, "w1", T0, workflows=("a", "b"), limit=0)
        assert got == [], "claim with limit=0 returned executions"
        got = _claim(store, ns, "w1", T0, workflows=("a", "b", "unknown"))
        ids = {c.execution.id for c in got}
        assert ids == {a, b}, f"claim of workflows a, b returned {ids}, expected {{a, b}}"
        _nothing_claimable(store, ns, T0 + 1, "only c is left", workflows=("a", "b"))


def check_claim_only_own_namespace(make_store: StoreFactory) -> None:
    """A claim never takes an execution of another namespace."""
    with _opened(make_store) as store:
        ns, other = _ns(), _ns()
        mine = _create(store, ns)
        theirs = _create(store, other)
        got = [c.execution.id for c in _claim(store, ns, "w1", T0)]
        assert got == [mine], f"claim in one namespace returned {got}, expected [{mine!r}]"
        _fields(_get(store, other, theirs), "the other namespace's execution", lease_token=0)
        _claim_one(store, other, "w2", T0, theirs)


def check_claim_only_due(make_store: StoreFactory) -> None:
    """An execution whose run_at is in the future is claimable from run_at on."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns, run_at=T0 + 60_000, created_at=T0)
        _nothing_claimable(store, ns, T0, "run_at is a minute away")
        _nothing_claimable(store, ns, T0 + 59_999, "run_at is 1 ms away")
        claim = _claim_one(store, ns, "w1", T0 + 60_000, eid)
        _fields(claim.execution, "a delayed execution claimed when due", started_at=T0 + 60_000)


def check_claim_order_and_limit(make_store: StoreFactory) -> None:
    """Claims take the earliest wake_at first (not the oldest row), at most ``limit``."""
    with _opened(make_store) as store:
        ns = _ns()
        offsets = [50, 10, 40, 20, 30]
        by_offset = {
            off: _create(store, ns, run_at=T0 + off, created_at=T0 - off) for off in offsets
        }
        expected = [by_offset[off] for off in sorted(offsets)]
        got: list[str] = []
        for limit, size in ((2, 2), (2, 2), (5, 1), (5, 0)):
            claims = _claim(store, ns, "w1", T0 + 100, limit=limit)
            assert len(claims) == size, (
                f"claim(limit={limit}) returned {len(claims)} executions, expected {size}"
            )
            got.extend(c.execution.id for c in claims)
        assert got == expected, f"claims came in order {got}, expected by wake_at {expected}"


def check_claim_order_across_workflows(make_store: StoreFactory) -> None:
    """A claim of several workflow names takes due rows in one order across the names
    (wake_at, then created_at, then id), whatever order the names come in, and skips
    other workflows' rows, due or not, and rows not due (running, finished, future)."""
    with _opened(make_store) as store:
        ns = _ns()
        # Rows of other workflows, due before everything else and in between: skipped.
        for off in (0, 1, 25, 55):
            _create(store, ns, workflow="other", run_at=T0 + off)
        _create(store, ns, workflow="zz-last", run_at=T0 + 2)
        # Three names, interleaved; ties on wake_at settled by created_at, then by id.
        tie_ids = sorted(_id() for _ in range(2))
        plan = [
            ("b", 10, 10, None),
            ("a", 20, 20, None),
            ("c", 30, 5, None),  # oldest row, but wakes later: wake_at decides
            ("a", 30, 6, None),
            ("b", 40, 1, tie_ids[1]),
            ("c", 40, 1, tie_ids[0]),  # same wake_at and created_at: the smaller id first
            ("a", 50, 50, None),
            ("a", 60, 60, None),
            ("b", 70, 70, None),
        ]
        made = {
            (wf, off, created): _create(
                store, ns, workflow=wf, run_at=T0 + off, created_at=T0 + created, execution_id=i
            )
            for wf, off, created, i in plan
        }
        expected = [made[k] for k in sorted(made, key=lambda k: (k[1], k[2], made[k]))]
        # Not due at t0+100: a future row, a running row whose lease runs on, a finished one.
        _create(store, ns, workflow="a", run_at=T0 + 500)
        leased = _create(store, ns, workflow="b", run_at=T0 - 10)
        _claim_one(store, ns, "w0", T0 - 10, leased, workflows=("b",))
        done = _create(store, ns, workflow="c", run_at=T0 - 20)
        finished = _claim_one(store, ns, "w0", T0 - 20, done, workflows=("c",))
        store.finish(finished.lease, status=Status.COMPLETED, now_ms=T0 - 15)

        names = ("c", "a", "b", "a")  # any order; a repeated name claims nothing twice
        got: list[str] = []
        for limit, size in ((1, 1), (3, 3), (2, 2), (2, 2), (5, 1), (5, 0)):
            claims = _claim(store, ns, "w1", T0 + 100, workflows=names, limit=limit)
            assert len(claims) == size, (
                f"claim of {names} (limit={limit}) returned {len(claims)} executions, "
                f"expected {size}"
            )
            got.extend(c.execution.id for c in claims)
        assert got == expected, f"claims across workflows came in order {got}, expected {expected}"
        others = _claim(store, ns, "w2", T0 + 100, workflows=("other",))
        assert len(others) == 4, f"the other workflow's 4 due rows: claimed {len(others)}"


def check_claim_exclusive_across_workflows(make_store: StoreFactory) -> None:
    """8 concurrent claimers of two workflow names take 60 executions of them (and none of
    a third): each is claimed exactly once."""
    with _opened(make_store) as store:
        ns = _ns()
        threads = 8
        ids = {_create(store, ns, workflow=("a", "b")[i % 2], run_at=T0 + i) for i in range(60)}
        _create(store, ns, workflow="c", run_at=T0)
        barrier = threading.Barrier(threads)

        def work(n: int) -> list[Claim]:
            got: list[Claim] = []
            barrier.wait(timeout=30)
            while claims := _claim(store, ns, f"w{n}", T0 + 1_000, workflows=("a", "b"), limit=3):
                assert len(claims) <= 3, f"claim(limit=3) returned {len(claims)} executions"
                got.extend(claims)
            return got

        with ThreadPoolExecutor(threads) as pool:
            results = [c for part in pool.map(work, range(threads)) for c in part]
        times = Counter(c.execution.id for c in results)
        twice = {eid: n for eid, n in times.items() if n > 1}
        assert not twice, f"executions claimed more than once: {twice}"
        assert set(times) == ids, (
            f"{len(ids - set(times))} never claimed, {len(set(times) - ids)} not of a or b"
        )


# -- leases, takeovers, fencing --------------------------------------------------------
def check_lease_expiry_takeover(make_store: StoreFactory) -> None:
    """A running execution is claimable once its lease expires: a takeover, attempt + 1."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        first = _claim_one(store, ns, "w1", T0, eid, lease_ms=1_000)
        step = _step(eid, "a", 0)
        store.save_step(first.lease, step, now_ms=T0, lease_ms=1_000)
        _nothing_claimable(store, ns, T0 + 999, "the lease expires at t0+1000")
        second = _claim_one(store, ns, "w2", T0 + 1_000, eid, lease_ms=5_000)
        _fields(
            second,
            "the takeover claim",
            previous_status=Status.RUNNING,
            takeover=True,
            lease=Lease(eid, first.lease.token + 1, "w2"),
            steps=[step],
        )
        _fields(
            second.execution,
            "the execution taken over",
            status=Status.RUNNING,
            attempt=first.execution.attempt + 1,
            lease_owner="w2",
            lease_expires_at=T0 + 6_000,
            wake_at=T0 + 6_000,
            started_at=T0,
        )
        _same(_get(store, ns, eid), second.execution, "the stored row after a takeover")
        _nothing_claimable(store, ns, T0 + 5_999, "the new lease runs to t0+6000")
        third = _claim_one(store, ns, "w3", T0 + 6_000, eid)
        _fields(third.execution, "a second takeover", attempt=first.execution.attempt + 2)


def check_claim_is_take_lease(make_store: StoreFactory) -> None:
    """Every claim does exactly what ``take_lease`` does to the row it claims.

    A store may compute the claim in SQL (PostgreSQL claims in one statement); this holds
    it to the one Python definition in every state a claim meets: a first claim with and
    without a timeout, a wake-up after a sleep, a retry, a takeover of an expired lease,
    and a takeover of an execution whose timeout already started.
    """
    with _opened(make_store) as store:
        ns = _ns()
        lease_ms = 60_000  # past some timeouts (wake_at is capped) and not others
        # Bring three into their states one at a time (each is the only one due): asleep,
        # retrying, crashed while running. Then two that never ran.
        prepared: list[str] = []
        for timeout_ms in (None, 50_000, 70_000):
            eid = _create(store, ns, run_at=T0, timeout_ms=timeout_ms)
            prepared.append(eid)
            claim = _claim_one(store, ns, "w0", T0 + 5, eid, lease_ms=300)
            store.save_step(claim.lease, _step(eid, "a", 0), now_ms=T0 + 5, lease_ms=300)
            if timeout_ms is None:
                store.suspend(claim.lease, wake_at_ms=T0 + 500, now_ms=T0 + 10)
            elif timeout_ms == 50_000:
                store.schedule_retry(
                    claim.lease,
                    run_at_ms=T0 + 600,
                    error_type="E",
                    error_message="m",
                    now_ms=T0 + 20,
                )
        slept, retried, crashed = prepared
        first = _create(store, ns, run_at=T0 + 30)
        timed = _create(store, ns, run_at=T0 + 40, timeout_ms=9_000)
        before = {eid: _get(store, ns, eid) for eid in (first, timed, slept, retried, crashed)}
        now = T0 + 1_000  # everything is due: run_at, the wake-up, the retry, the expiry
        claims = _claim(store, ns, "w1", now, lease_ms=lease_ms, limit=10)
        assert sorted(c.execution.id for c in claims) == sorted(before), (
            f"claim at t0+1000 returned {[c.execution.id for c in claims]}, expected all five"
        )
        for claim in claims:
            row = before[claim.execution.id]
            expected = take_lease(row, "w1", now_ms=now, lease_ms=lease_ms)
            what = f"the claim of the {row.status.value} execution {row.id}"
            _same(claim.execution, expected.execution, what)
            _fields(claim, what, lease=expected.lease, previous_status=expected.previous_status)
            _same(_get(store, ns, row.id), expected.execution, f"the stored row after {what}")


def check_heartbeat_extends_lease(make_store: StoreFactory) -> None:
    """heartbeat pushes lease_expires_at (and wake_at) out; lost leases are reported."""
    with _opened(make_store) as store:
        ns = _ns()
        e1 = _create(store, ns, run_at=T0)
        e2 = _create(store, ns, run_at=T0 + 1)
        claims = _claim(store, ns, "w1", T0 + 1, lease_ms=1_000)
        assert [c.execution.id for c in claims] == [e1, e2], "setup claim failed"
        leases = [c.lease for c in claims]
        assert store.heartbeat([], now_ms=T0, lease_ms=1_000) == [], "an empty heartbeat"
        lost = store.heartbeat(leases, now_ms=T0 + 500, lease_ms=1_000)
        assert lost == [], f"heartbeat of live leases reported {lost} lost"
        for eid in (e1, e2):
            _fields(
                _get(store, ns, eid),
                "a row after a heartbeat",
                lease_expires_at=T0 + 1_500,
                wake_at=T0 + 1_500,
                updated_at=T0 + 500,
                status=Status.RUNNING,
                lease_owner="w1",
                lease_token=1,
            )
        lost = store.heartbeat([leases[1]], now_ms=T0 + 600, lease_ms=1_000)
        assert lost == [], f"a second heartbeat of a live lease reported {lost} lost"
        _fields(_get(store, ns, e2), "after a second heartbeat", lease_expires_at=T0 + 1_600)
        _nothing_claimable(store, ns, T0 + 1_001, "the old expiry passed but the lease was renewed")
        _nothing_claimable(store, ns, T0 + 1_499, "the renewed lease expires at t0+1500")
        taken = [c.execution.id for c in _claim(store, ns, "w2", T0 + 1_500)]
        assert taken == [e1], f"at t0+1500 claim returned {taken}, expected only [{e1!r}]"
        lost = store.heartbeat(leases, now_ms=T0 + 1_550, lease_ms=1_000)
        assert lost == [e1], f"heartbeat after e1's takeover reported {lost}, expected [{e1!r}]"
        _fields(_get(store, ns, e2), "the row still leased", lease_expires_at=T0 + 2_550)
        lost = store.heartbeat([Lease(_id(), 1, "w1")], now_ms=T0 + 1_600, lease_ms=1_000)
        assert len(lost) == 1, f"heartbeat of an unknown execution reported {lost}"


def check_save_step_extends_lease(make_store: StoreFactory) -> None:
    """save_step extends the lease like a heartbeat."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        claim = _claim_one(store, ns, "w1", T0, eid, lease_ms=1_000)
        store.save_step(claim.lease, _step(eid), now_ms=T0 + 800, lease_ms=1_000)
        _fields(
            _get(store, ns, eid),
            "the row after save_step",
            lease_expires_at=T0 + 1_800,
            wake_at=T0 + 1_800,
            status=Status.RUNNING,
        )
        _nothing_claimable(store, ns, T0 + 1_000, "save_step extended the lease to t0+1800")
        _claim_one(store, ns, "w2", T0 + 1_800, eid)


def check_fencing_after_takeover(make_store: StoreFactory) -> None:
    """After a takeover every write with the old lease raises and changes nothing."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        old = _claim_one(store, ns, "w-old", T0, eid, lease_ms=1_000)
        store.save_step(old.lease, _step(eid, "a", 0), now_ms=T0, lease_ms=1_000)
        new = _claim_one(store, ns, "w-new", T0 + 1_000, eid)
        assert new.lease.token > old.lease.token, "a takeover did not raise the token"
        _assert_fenced(store, ns, old.lease, T0 + 1_100, "after a takeover")
        # The new owner is unaffected.
        assert store.heartbeat([new.lease], now_ms=T0 + 1_200, lease_ms=LONG_LEASE) == []
        store.save_step(new.lease, _step(eid, "b", 1), now_ms=T0 + 1_200, lease_ms=LONG_LEASE)
        store.finish(new.lease, status=Status.COMPLETED, now_ms=T0 + 1_300, output=b"ok")
        _fields(_get(store, ns, eid), "the new owner's result", output=b"ok")


def check_fenced_write_races_takeover(make_store: StoreFactory) -> None:
    """An owner saving steps in a loop while its lease is taken over: nothing it writes
    lands after the takeover (the new owner's claim saw every step that exists)."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        old = _claim_one(store, ns, "w-old", T0, eid, lease_ms=1_000)
        saved: list[str] = []
        started = threading.Event()

        def owner() -> None:
            for i in range(100_000):
                try:
                    store.save_step(old.lease, _step(eid, f"s{i}", i), now_ms=T0, lease_ms=1_000)
                except LeaseLostError:
                    return
                saved.append(f"s{i}")
                started.set()
            raise AssertionError("the old owner never lost its lease")

        def taker() -> Claim:
            assert started.wait(30), "the owner never saved a step"
            for _ in range(100_000):
                claims = _claim(store, ns, "w-new", T0 + 1_000, limit=1)
                if claims:
                    return claims[0]
            raise AssertionError("the expired lease was never taken over")

        with ThreadPoolExecutor(2) as pool:
            owning = pool.submit(owner)
            new = pool.submit(taker).result(timeout=120)
            owning.result(timeout=120)
        assert saved, "the owner saved no step before the takeover"
        names = [s.name for s in new.steps]
        assert names == saved, (
            f"the takeover saw {len(names)} steps but the old owner saved {len(saved)}"
        )
        _same(store.list_steps(eid), new.steps, "the steps after the race: a late write landed")


def check_cancel_fences_owner(make_store: StoreFactory) -> None:
    """Cancelling a running execution fences out its owner."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        claim = _claim_one(store, ns, "w1", T0, eid)
        store.save_step(claim.lease, _step(eid, "a", 0), now_ms=T0, lease_ms=LONG_LEASE)
        assert store.cancel(ns, eid, now_ms=T0 + 5) is True, "cancel of a running one failed"
        _fields(
            _get(store, ns, eid),
            "a cancelled running execution",
            status=Status.CANCELLED,
            completed_at=T0 + 5,
            updated_at=T0 + 5,
            wake_at=None,
            lease_owner=None,
            lease_expires_at=None,
            lease_token=claim.lease.token + 1,
            sleep_until=None,
            next_retry_at=None,
        )
        _assert_fenced(store, ns, claim.lease, T0 + 10, "after a cancel")
        _nothing_claimable(store, ns, FAR, "the execution is cancelled")
        assert store.next_wake_at(ns, [WF]) is None, "a cancelled execution still has a wake time"


def check_retry_execution(make_store: StoreFactory) -> None:
    """retry_execution: a failed execution gets one more attempt from its checkpoints."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns, timeout_ms=1_000)
        assert store.retry_execution(ns, eid, now_ms=T0) is False, "retry of a pending one"
        claim = _claim_one(store, ns, "w1", T0, eid)
        store.save_step(claim.lease, _step(eid, "done", 0), now_ms=T0, lease_ms=LONG_LEASE)
        store.save_step(
            claim.lease,
            _step(
                eid,
                "broken",
                1,
                status=StepStatus.FAILED,
                output=None,
                error_type="E",
                error_message="boom",
            ),
            now_ms=T0,
            lease_ms=LONG_LEASE,
        )
        store.finish(
            claim.lease,
            status=Status.FAILED,
            now_ms=T0 + 1,
            error_type="StepFailedError",
            error_message="broken",
        )
        assert store.retry_execution(_ns(), eid, now_ms=T0 + 2) is False, "retry across namespaces"
        assert store.retry_execution(ns, eid, now_ms=T0 + 10) is True, "retry of a failed one"
        _fields(
            _get(store, ns, eid),
            "a retried execution",
            status=Status.PENDING,
            attempt=2,
            max_attempts=3,
            wake_at=T0 + 10,
            run_at=T0 + 10,
            timeout_at=T0 + 10 + 1_000,
            error_type=None,
            error_message=None,
            completed_at=None,
        )
        assert [s.name for s in store.list_steps(eid)] == ["done"], "failed steps must be reset"
        again = _claim_one(store, ns, "w2", T0 + 10, eid)
        _fields(again.execution, "the claim after a retry", attempt=2)
        assert [s.name for s in again.steps] == ["done"], "completed checkpoints must replay"
        assert store.retry_execution(ns, eid, now_ms=T0 + 11) is False, "retry of a running one"
        assert store.retry_execution(ns, "no-such-id", now_ms=T0) is False, "retry of unknown id"


def check_cancel(make_store: StoreFactory) -> None:
    """cancel: True for pending and sleeping; False if terminal, unknown or foreign."""
    with _opened(make_store) as store:
        ns = _ns()
        pending = _create(store, ns)
        assert store.cancel(_ns(), pending, now_ms=T0) is False, "cancel across namespaces"
        _fields(_get(store, ns, pending), "after a foreign cancel", status=Status.PENDING)
        assert store.cancel(ns, pending, now_ms=T0 + 1) is True, "cancel of a pending one"
        _fields(
            _get(store, ns, pending),
            "a cancelled pending execution",
            status=Status.CANCELLED,
            wake_at=None,
            completed_at=T0 + 1,
            lease_token=1,
        )
        before = _get(store, ns, pending)
        assert store.cancel(ns, pending, now_ms=T0 + 2) is False, "a second cancel returned True"
        _same(_get(store, ns, pending), before, "a cancelled row after a second cancel")
        assert store.cancel(ns, _id(), now_ms=T0) is False, "cancel of an unknown id"

        sleeping = _create(store, ns)
        claim = _claim_one(store, ns, "w1", T0, sleeping)
        store.suspend(claim.lease, wake_at_ms=T0 + 60_000, now_ms=T0 + 1)
        assert store.cancel(ns, sleeping, now_ms=T0 + 2) is True, "cancel of a sleeping one"
        _fields(
            _get(store, ns, sleeping),
            "a cancelled sleeping execution",
            status=Status.CANCELLED,
            wake_at=None,
            sleep_until=None,
        )

        done = _create(store, ns)
        claim = _claim_one(store, ns, "w1", T0, done)
        store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 1, output=b"x")
        before = _get(store, ns, done)
        assert store.cancel(ns, done, now_ms=T0 + 2) is False, "cancel of a completed one"
        _same(_get(store, ns, done), before, "a completed row after a cancel")


def check_release(make_store: StoreFactory) -> None:
    """release: pending, claimable at once by anyone, no attempt used, old lease fenced."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        first = _claim_one(store, ns, "w1", T0, eid)
        step = _step(eid, "a", 0)
        store.save_step(first.lease, step, now_ms=T0, lease_ms=LONG_LEASE)
        assert store.release(first.lease, now_ms=T0 + 5) is True, "release of a live lease"
        _fields(
            _get(store, ns, eid),
            "a released execution",
            status=Status.PENDING,
            wake_at=T0 + 5,
            updated_at=T0 + 5,
            lease_owner=None,
            lease_expires_at=None,
            lease_token=first.lease.token + 1,
            attempt=first.execution.attempt,
        )
        assert store.next_wake_at(ns, [WF]) == T0 + 5, "a released execution is due at once"
        _assert_fenced(store, ns, first.lease, T0 + 5, "after a release")
        second = _claim_one(store, ns, "w2", T0 + 5, eid)
        _fields(
            second,
            "the claim after a release",
            previous_status=Status.PENDING,
            takeover=False,
            steps=[step],
            lease=Lease(eid, first.lease.token + 2, "w2"),
        )
        _fields(
            second.execution,
            "the execution claimed after a release",
            attempt=first.execution.attempt,
            started_at=T0,
        )


def check_owned_leases(make_store: StoreFactory) -> None:
    """owned_leases: the running executions of the namespace leased to one worker id, with
    their current tokens; nothing sleeping, finished, released or of another owner."""
    with _opened(make_store) as store:
        ns, other_ns = _ns(), _ns()
        assert store.owned_leases(ns, "w1") == [], "owned_leases of an empty namespace"
        assert isinstance(store.reconnects, int), "reconnects is a count"
        ids = [_create(store, ns, created_at=T0 + i) for i in range(5)]
        foreign = _create(store, other_ns)
        mine = _claim(store, ns, "w1", T0 + 10, limit=3)
        theirs = _claim(store, ns, "w2", T0 + 10, limit=2)
        _claim(store, other_ns, "w1", T0 + 10, limit=1)
        assert {c.execution.id for c in mine} | {c.execution.id for c in theirs} == set(ids)
        owned = sorted(store.owned_leases(ns, "w1"), key=lambda lease: lease.execution_id)
        expected = sorted((c.lease for c in mine), key=lambda lease: lease.execution_id)
        _same(owned, expected, "owned_leases of w1 (three claimed, none elsewhere)")
        # Suspended, finished and released executions are no longer leased.
        store.suspend(mine[0].lease, wake_at_ms=T0 + 1_000, now_ms=T0 + 20)
        store.finish(mine[1].lease, status=Status.COMPLETED, now_ms=T0 + 20, output=b"1")
        _same(store.owned_leases(ns, "w1"), [mine[2].lease], "owned_leases after a suspend")
        assert store.release(mine[2].lease, now_ms=T0 + 30) is True
        _same(store.owned_leases(ns, "w1"), [], "owned_leases after a release")
        # A takeover moves the lease to its new owner, with the new token.
        later = _claim(store, ns, "w1", T0 + 10 + LONG_LEASE + 1)
        assert {c.execution.id for c in theirs} <= {c.execution.id for c in later}, (
            "the expired leases of w2 were taken over"
        )
        _same(
            sorted(store.owned_leases(ns, "w1"), key=lambda lease: lease.execution_id),
            sorted((c.lease for c in later), key=lambda lease: lease.execution_id),
            "owned_leases after takeovers (the new tokens)",
        )
        _same(store.owned_leases(ns, "w2"), [], "a lease taken over is no longer its old owner's")
        assert [lease.execution_id for lease in store.owned_leases(other_ns, "w1")] == [foreign], (
            "owned_leases stays in its namespace"
        )


# -- sleeps, retries, timeouts --------------------------------------------------------
def check_sleep(make_store: StoreFactory) -> None:
    """suspend: sleeping, lease released, step saved with it, claimable at the wake time."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        claim = _claim_one(store, ns, "w1", T0, eid)
        a = _step(eid, "a", 0)
        store.save_step(claim.lease, a, now_ms=T0, lease_ms=LONG_LEASE)
        nap = _step(eid, "nap", 1, status=StepStatus.SLEEPING, output=b"t0+5000", completed_at=None)
        store.suspend(claim.lease, wake_at_ms=T0 + 5_000, now_ms=T0 + 10, step=nap)
        _fields(
            _get(store, ns, eid),
            "a suspended execution",
            status=Status.SLEEPING,
            sleep_until=T0 + 5_000,
            wake_at=T0 + 5_000,
            updated_at=T0 + 10,
            lease_owner=None,
            lease_expires_at=None,
            lease_token=claim.lease.token,
            attempt=1,
        )
        _same(store.list_steps(eid), [a, nap], "the steps after suspend(step=...)")
        assert store.next_wake_at(ns, [WF]) == T0 + 5_000, "next_wake_at of a sleeper"
        _assert_fenced(store, ns, claim.lease, T0 + 20, "after suspend")
        _nothing_claimable(store, ns, T0 + 4_999, "the sleep ends at t0+5000")
        woken = _claim_one(store, ns, "w2", T0 + 5_000, eid)
        _fields(
            woken,
            "the wake-up claim",
            previous_status=Status.SLEEPING,
            takeover=False,
            steps=[a, nap],
            lease=Lease(eid, claim.lease.token + 1, "w2"),
        )
        _fields(
            woken.execution,
            "the woken execution",
            status=Status.RUNNING,
            attempt=1,
            sleep_until=None,
            started_at=T0,
        )
        # suspend without a step saves none.
        store.suspend(woken.lease, wake_at_ms=T0 + 9_000, now_ms=T0 + 5_001)
        _same(store.list_steps(eid), [a, nap], "the steps after suspend() without a step")
        _fields(_get(store, ns, eid), "suspended again", status=Status.SLEEPING, wake_at=T0 + 9_000)


def check_retry(make_store: StoreFactory) -> None:
    """schedule_retry: pending, attempt + 1, due at run_at, error kept."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        claim = _claim_one(store, ns, "w1", T0, eid)
        a = _step(eid, "a", 0)
        store.save_step(claim.lease, a, now_ms=T0, lease_ms=LONG_LEASE)
        store.schedule_retry(
            claim.lease,
            run_at_ms=T0 + 3_000,
            error_type="ValueError",
            error_message="boom",
            now_ms=T0 + 20,
        )
        _fields(
            _get(store, ns, eid),
            "an execution scheduled for retry",
            status=Status.PENDING,
            attempt=2,
            next_retry_at=T0 + 3_000,
            run_at=T0 + 3_000,
            wake_at=T0 + 3_000,
            error_type="ValueError",
            error_message="boom",
            updated_at=T0 + 20,
            lease_owner=None,
            lease_expires_at=None,
            lease_token=claim.lease.token,
        )
        _assert_fenced(store, ns, claim.lease, T0 + 30, "after schedule_retry")
        _nothing_claimable(store, ns, T0 + 2_999, "the retry is due at t0+3000")
        retry = _claim_one(store, ns, "w2", T0 + 3_000, eid)
        _fields(
            retry,
            "the retry claim",
            previous_status=Status.PENDING,
            takeover=False,
            steps=[a],
        )
        _fields(
            retry.execution,
            "the retried execution",
            status=Status.RUNNING,
            attempt=2,
            next_retry_at=None,
            error_type="ValueError",
            error_message="boom",
            started_at=T0,
        )


def check_timeout_caps_wake_at(make_store: StoreFactory) -> None:
    """Every wake_at is capped by timeout_at = started_at + timeout_ms."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns, timeout_ms=10_000)
        _fields(_get(store, ns, eid), "before the first claim", timeout_at=None, wake_at=T0)
        claim = _claim_one(store, ns, "w1", T0, eid, lease_ms=60_000)
        _fields(
            claim.execution,
            "a claimed execution with a timeout",
            timeout_at=T0 + 10_000,
            lease_expires_at=T0 + 60_000,
            wake_at=T0 + 10_000,
        )
        store.heartbeat([claim.lease], now_ms=T0 + 100, lease_ms=60_000)
        _fields(
            _get(store, ns, eid),
            "after a heartbeat",
            lease_expires_at=T0 + 60_100,
            wake_at=T0 + 10_000,
        )
        store.save_step(claim.lease, _step(eid), now_ms=T0 + 150, lease_ms=60_000)
        _fields(_get(store, ns, eid), "after save_step", wake_at=T0 + 10_000)
        store.suspend(claim.lease, wake_at_ms=T0 + 60_000, now_ms=T0 + 200)
        _fields(
            _get(store, ns, eid),
            "a sleep past the timeout",
            sleep_until=T0 + 60_000,
            wake_at=T0 + 10_000,
        )
        assert store.next_wake_at(ns, [WF]) == T0 + 10_000, "next_wake_at ignores the timeout"
        _nothing_claimable(store, ns, T0 + 9_999, "the timeout is at t0+10000")
        late = _claim_one(store, ns, "w2", T0 + 10_000, eid, lease_ms=60_000)
        _fields(
            late.execution,
            "claimed at its timeout",
            timeout_at=T0 + 10_000,
            started_at=T0,
            wake_at=T0 + 10_000,
        )
        store.schedule_retry(
            late.lease, run_at_ms=T0 + 99_000, error_type="E", error_message="m", now_ms=T0 + 10_001
        )
        _fields(
            _get(store, ns, eid),
            "a retry past the timeout",
            run_at=T0 + 99_000,
            next_retry_at=T0 + 99_000,
            wake_at=T0 + 10_000,
        )


# -- finishing --------------------------------------------------------------------------
def _check_finish(make_store: StoreFactory, status: Status, **result: Any) -> None:
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns, timeout_ms=60_000)
        claim = _claim_one(store, ns, "w1", T0, eid)
        store.schedule_retry(
            claim.lease, run_at_ms=T0 + 1, error_type="Old", error_message="old", now_ms=T0
        )
        claim = _claim_one(store, ns, "w1", T0 + 1, eid)
        store.suspend(claim.lease, wake_at_ms=T0 + 2, now_ms=T0 + 1)
        claim = _claim_one(store, ns, "w1", T0 + 2, eid)
        store.finish(claim.lease, status=status, now_ms=T0 + 50, **result)
        _fields(
            _get(store, ns, eid),
            f"an execution finished {status.value}",
            status=status,
            output=result.get("output"),
            error_type=result.get("error_type"),
            error_message=result.get("error_message"),
            completed_at=T0 + 50,
            updated_at=T0 + 50,
            wake_at=None,
            sleep_until=None,
            next_retry_at=None,
            lease_owner=None,
            lease_expires_at=None,
            lease_token=claim.lease.token,
            attempt=2,
        )
        _nothing_claimable(store, ns, FAR, f"the execution is {status.value}")
        assert store.next_wake_at(ns, [WF]) is None, f"a {status.value} one has a wake time"
        _assert_fenced(store, ns, claim.lease, T0 + 60, f"after finish({status.value})")
        before = _get(store, ns, eid)
        assert store.cancel(ns, eid, now_ms=T0 + 70) is False, "cancel of a finished one"
        _same(_get(store, ns, eid), before, f"a {status.value} row after cancel")


def check_finish_completed(make_store: StoreFactory) -> None:
    """finish(completed) stores the output, clears the error, is terminal."""
    _check_finish(make_store, Status.COMPLETED, output=b"\x00result\xff")


def check_finish_failed(make_store: StoreFactory) -> None:
    """finish(failed) stores the error, is terminal."""
    _check_finish(
        make_store, Status.FAILED, error_type="KeyError", error_message="'missing'\nline 2"
    )


def check_finish_rejects_non_terminal_status(make_store: StoreFactory) -> None:
    """finish takes only completed or failed: anything else is a ValueError, nothing written."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        claim = _claim_one(store, ns, "w1", T0, eid)
        before = _snapshot(store, ns, eid)
        for bad in (Status.RUNNING, Status.PENDING, Status.SLEEPING, Status.CANCELLED):
            try:
                store.finish(claim.lease, status=bad, now_ms=T0 + 1)
            except ValueError:
                pass
            else:
                raise AssertionError(f"finish(status={bad.value}) did not raise ValueError")
            _unchanged(store, ns, eid, before, f"finish(status={bad.value})")


# -- steps ------------------------------------------------------------------------------
def check_save_step_upsert(make_store: StoreFactory) -> None:
    """save_step replaces the whole row of a step with the same name."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        claim = _claim_one(store, ns, "w1", T0, eid)
        failing = _step(
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
        _same(store.list_steps(eid), [failing], "a step with every field set")
        done = _step(
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
        _same(store.list_steps(eid), [done], "the step after it was saved again")
        empty = _step(eid, "charge", 0, output=b"", started_at=None, completed_at=None)
        store.save_step(claim.lease, empty, now_ms=T0 + 6, lease_ms=LONG_LEASE)
        got = store.list_steps(eid)
        _same(got, [empty], "a step with an empty output")
        assert got[0].output == b"" and got[0].output is not None, "b'' became None"
        assert isinstance(got[0].status, StepStatus), "step status is not a StepStatus"


def check_list_steps_order(make_store: StoreFactory) -> None:
    """list_steps returns the execution's steps by their order, not by insertion."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        other = _create(store, ns, run_at=T0 + 1)
        claim = _claim_one(store, ns, "w1", T0, eid)
        assert store.list_steps(eid) == [], "a new execution has steps"
        made = {order: _step(eid, name, order) for name, order in (("c", 2), ("a", 0), ("b", 1))}
        for order in (2, 0, 1):
            store.save_step(claim.lease, made[order], now_ms=T0, lease_ms=LONG_LEASE)
        for order in range(3, 13):
            made[order] = _step(eid, f"s{order}", order)
            store.save_step(claim.lease, made[order], now_ms=T0, lease_ms=LONG_LEASE)
        _same(store.list_steps(eid), [made[i] for i in range(13)], "list_steps order")
        assert store.list_steps(other) == [], "another execution's steps leaked"


# -- step attempts ----------------------------------------------------------------------
def _attempt(
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


def _failing(eid: str, name: str, order: int, attempt: int, message: str, **kw: Any) -> StepRow:
    return _step(
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
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        other = _create(store, ns, workflow="other")
        assert store.list_step_attempts(eid) == [], "a new execution has step attempts"
        first = _claim_one(store, ns, "w1", T0, eid)
        one = _failing(eid, "charge", 0, 1, "gateway\ntimed out")
        store.suspend(first.lease, wake_at_ms=T0 + 1_000, now_ms=T0 + 14, step=one)
        second = _claim_one(store, ns, "w2", T0 + 1_000, eid)
        two = _failing(eid, "charge", 0, 2, "reset by peer")
        store.suspend(second.lease, wake_at_ms=T0 + 2_000, now_ms=T0 + 24, step=two)
        third = _claim_one(store, ns, "w3", T0 + 2_000, eid)
        done = _step(eid, "charge", 0, attempts=3, started_at=T0 + 30, completed_at=T0 + 33)
        store.save_step(third.lease, done, now_ms=T0 + 34, lease_ms=LONG_LEASE)
        broken = _failing(eid, "audit", 1, 1, "denied", status=StepStatus.FAILED)
        store.save_step(third.lease, broken, now_ms=T0 + 35, lease_ms=LONG_LEASE)
        nap = _step(eid, "nap", 2, status=StepStatus.SLEEPING, output=b"9000")
        store.suspend(third.lease, wake_at_ms=T0 + 9_000, now_ms=T0 + 40, step=nap)
        _same(
            store.list_step_attempts(eid),
            [
                _attempt(broken, third.lease, StepStatus.FAILED),
                _attempt(one, first.lease, StepStatus.FAILED),
                _attempt(two, second.lease, StepStatus.FAILED),
                _attempt(done, third.lease),
            ],
            "the step attempts (by step name, then as they were made)",
        )
        _same(store.list_steps(eid), [done, broken, nap], "the step rows keep the latest attempt")
        assert store.list_step_attempts(other) == [], "another execution's attempts leaked"
        assert store.list_step_attempts(_id()) == [], "attempts of an unknown id"


def check_step_attempt_rewrite_is_one_record(make_store: StoreFactory) -> None:
    """Writing the same attempt again under the same lease (what a retry after a lost
    reply does) leaves one record, holding the last write; a retried execution starts a
    failed step's attempts at 1 again, under a new lease, and both rounds are kept."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        claim = _claim_one(store, ns, "w1", T0, eid)
        done = _step(eid, "fetch", 0)
        for _ in range(2):
            store.save_step(claim.lease, done, now_ms=T0 + 5, lease_ms=LONG_LEASE)
        _same(store.list_step_attempts(eid), [_attempt(done, claim.lease)], "after a rewrite")
        broken = _failing(eid, "charge", 1, 1, "declined", status=StepStatus.FAILED)
        store.save_step(claim.lease, broken, now_ms=T0 + 6, lease_ms=LONG_LEASE)
        store.save_step(claim.lease, broken, now_ms=T0 + 6, lease_ms=LONG_LEASE)
        store.finish(
            claim.lease, status=Status.FAILED, now_ms=T0 + 7, error_type="E", error_message="x"
        )
        assert store.retry_execution(ns, eid, now_ms=T0 + 8), "retry of a failed execution"
        again = _claim_one(store, ns, "w2", T0 + 8, eid)
        fixed = _step(eid, "charge", 1, attempts=1, started_at=T0 + 9, completed_at=T0 + 10)
        store.save_step(again.lease, fixed, now_ms=T0 + 11, lease_ms=LONG_LEASE)
        _same(
            store.list_step_attempts(eid),
            [
                _attempt(broken, claim.lease, StepStatus.FAILED),
                _attempt(fixed, again.lease),
                _attempt(done, claim.lease),
            ],
            "the attempts after a retried execution ran a failed step again",
        )


def check_step_attempts_fenced(make_store: StoreFactory) -> None:
    """A worker whose lease was taken over records no attempt: save_step and suspend are
    refused before anything is written, the attempt record included."""
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns)
        old = _claim_one(store, ns, "w-old", T0, eid, lease_ms=1_000)
        kept = _failing(eid, "charge", 0, 1, "timeout")
        store.save_step(old.lease, kept, now_ms=T0 + 14, lease_ms=1_000)
        new = _claim_one(store, ns, "w-new", T0 + 2_000, eid)
        late = _failing(eid, "charge", 0, 2, "late")
        _lease_lost(
            lambda: store.suspend(old.lease, wake_at_ms=T0 + 5_000, now_ms=T0 + 2_001, step=late),
            "suspend with a failed step attempt after a takeover",
        )
        late_done = _step(eid, "charge", 0, attempts=2)
        _lease_lost(
            lambda: store.save_step(old.lease, late_done, now_ms=T0 + 2_001, lease_ms=1_000),
            "save_step of a completed attempt after a takeover",
        )
        _same(
            store.list_step_attempts(eid),
            [_attempt(kept, old.lease, StepStatus.FAILED)],
            "the attempts after the old owner's refused writes",
        )
        mine = _step(eid, "charge", 0, attempts=2, started_at=T0 + 2_002, completed_at=T0 + 2_003)
        store.save_step(new.lease, mine, now_ms=T0 + 2_004, lease_ms=LONG_LEASE)
        _same(
            store.list_step_attempts(eid),
            [_attempt(kept, old.lease, StepStatus.FAILED), _attempt(mine, new.lease)],
            "the attempts after the new owner's write",
        )


def check_next_wake_at(make_store: StoreFactory) -> None:
    """next_wake_at: the earliest wake_at of non-terminal executions of those workflows."""
    with _opened(make_store) as store:
        ns = _ns()
        assert store.next_wake_at(ns, [WF]) is None, "an empty namespace has a wake time"
        e1 = _create(store, ns, run_at=T0 + 500)
        e2 = _create(store, ns, run_at=T0 + 200)
        e3 = _create(store, ns, run_at=T0 + 100, workflow="other")
        cases: list[tuple[list[str], int | None]] = [
            ([WF], T0 + 200),
            ([WF, "other"], T0 + 100),
            (["other"], T0 + 100),
            ([], None),
            (["unknown"], None),
        ]
        for names, expected in cases:
            got = store.next_wake_at(ns, names)
            assert got == expected, f"next_wake_at({names}) = {got}, expected {expected}"
        assert store.next_wake_at(_ns(), [WF]) is None, "next_wake_at crossed namespaces"
        claim = _claim_one(store, ns, "w1", T0 + 100, e3, lease_ms=1_000, workflows=("other",))
        got = store.next_wake_at(ns, ["other"])
        assert got == T0 + 1_100, f"next_wake_at of a running one is {got}, not its lease expiry"
        store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 150)
        got = store.next_wake_at(ns, ["other"])
        assert got is None, f"next_wake_at of a completed one is {got}"
        store.cancel(ns, e2, now_ms=T0 + 150)
        got = store.next_wake_at(ns, [WF, "other"])
        assert got == T0 + 500, f"next_wake_at after a cancel is {got}, expected t0+500"
        assert _get(store, ns, e1).wake_at == T0 + 500


def check_namespace_isolation(make_store: StoreFactory) -> None:
    """Namespaces share nothing: not claims, lists, gets, cancels or wake times."""
    with _opened(make_store) as store:
        a, b = _ns(), _ns()
        ea = _create(store, a, run_at=T0)
        eb = _create(store, b, run_at=T0 + 10)
        assert [r.id for r in store.list_executions(a)] == [ea], "list crossed namespaces"
        assert [r.id for r in store.list_executions(b)] == [eb], "list crossed namespaces"
        assert store.next_wake_at(b, [WF]) == T0 + 10, "next_wake_at crossed namespaces"
        assert store.get_execution(b, ea) is None, "get crossed namespaces"
        assert store.cancel(b, ea, now_ms=T0) is False, "cancel crossed namespaces"
        got = [c.execution.id for c in _claim(store, a, "w1", FAR)]
        assert got == [ea], f"claim in a returned {got}"
        got = [c.execution.id for c in _claim(store, b, "w1", FAR)]
        assert got == [eb], f"claim in b returned {got}"


# -- payloads ---------------------------------------------------------------------------
def check_large_payload(make_store: StoreFactory) -> None:
    """A 5 MB input, step output and result round-trip byte for byte."""
    size = 5 * 1024 * 1024
    payload = os.urandom(size)
    with _opened(make_store) as store:
        ns = _ns()
        eid = _create(store, ns, input=payload)
        got = _get(store, ns, eid).input
        assert got == payload, f"a {size}-byte input came back as {len(got)} bytes"
        claim = _claim_one(store, ns, "w1", T0, eid)
        assert claim.execution.input == payload, "the claimed row's 5 MB input differs"
        output = payload[::-1]
        store.save_step(claim.lease, _step(eid, output=output), now_ms=T0, lease_ms=LONG_LEASE)
        steps = store.list_steps(eid)
        assert len(steps) == 1 and steps[0].output == output, "a 5 MB step output differs"
        store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 1, output=output)
        assert _get(store, ns, eid).output == output, "a 5 MB result differs"
        message = "x" * 100_000
        other = _create(store, ns, created_at=T0 + 1)
        claim = _claim_one(store, ns, "w1", T0 + 1, other)
        store.finish(
            claim.lease, status=Status.FAILED, now_ms=T0 + 2, error_type="E", error_message=message
        )
        assert _get(store, ns, other).error_message == message, "a 100 kB error message differs"


def check_max_value_bytes(make_store: StoreFactory) -> None:
    """``max_value_bytes`` is None or a positive int, and honest: a value of exactly that
    size (every byte one a SQL string literal must escape) is stored as an input, a step
    output and a result of one execution, and read back byte for byte."""
    with _opened(make_store) as store:
        limit = getattr(store, "max_value_bytes", "missing")
        assert limit is None or (
            isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
        ), f"max_value_bytes must be None or a positive int, got {limit!r}"
        if limit is None:
            return
        value = (b"\\'\"\x00" * (limit // 4 + 1))[:limit]
        ns = _ns()
        eid = _create(store, ns, input=value)
        claim = _claim_one(store, ns, "w1", T0, eid)
        assert claim.execution.input == value, f"a {limit}-byte input differs"
        store.save_step(claim.lease, _step(eid, output=value), now_ms=T0, lease_ms=LONG_LEASE)
        steps = store.list_steps(eid)
        assert len(steps) == 1 and steps[0].output == value, f"a {limit}-byte step output differs"
        store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 1, output=value)
        row = _get(store, ns, eid)
        assert (row.input, row.output) == (value, value), f"a {limit}-byte result differs"


# -- capabilities -----------------------------------------------------------------------
def check_shared_between_instances(make_store: StoreFactory) -> None:
    """Two store instances on one database see one state; claims stay exclusive."""
    with _opened(make_store) as one, _opened(make_store) as two:
        ns = _ns()
        eid = _create(one, ns)
        _same(_get(two, ns, eid), _get(one, ns, eid), "the row seen through a second instance")
        claim = _claim_one(two, ns, "w2", T0, eid, lease_ms=1_000)
        _fields(_get(one, ns, eid), "a claim made through the other instance", lease_owner="w2")
        _lease_lost(
            lambda: one.save_step(
                Lease(eid, claim.lease.token - 1, "w1"), _step(eid), now_ms=T0, lease_ms=1_000
            ),
            "save_step through another instance",
        )
        ids = {_create(one, ns, run_at=T0 + i) for i in range(20)}
        barrier = threading.Barrier(4)

        def work(n: int) -> list[str]:
            store = (one, two)[n % 2]
            got: list[str] = []
            barrier.wait(timeout=30)
            while claims := _claim(store, ns, f"w{n}", T0 + 100, limit=2):
                got.extend(c.execution.id for c in claims)
            return got

        with ThreadPoolExecutor(4) as pool:
            claimed = [x for part in pool.map(work, range(4)) for x in part]
        times = Counter(claimed)
        assert all(n == 1 for n in times.values()), f"claimed twice: {times.most_common(3)}"
        assert set(times) == ids, f"{len(ids - set(times))} executions never claimed"


def check_notify_wakes_listener(make_store: StoreFactory) -> None:
    """A store that supports_notify wakes a namespace's listener when work is created."""
    with _opened(make_store) as store:
        ns = _ns()
        listener = store.open_listener(ns)
        elsewhere = store.open_listener(_ns())
        assert listener is not None and elsewhere is not None, (
            "open_listener returned None on a store that supports_notify"
        )
        try:
            # A listener may subscribe lazily on its first wait.
            listener.wait(0.05)
            elsewhere.wait(0.05)
            _create(store, ns)
            assert listener.wait(10.0) is True, "creating an execution did not wake its listener"
            assert elsewhere.wait(0.2) is False, "another namespace's listener was woken"
        finally:
            listener.close()
            elsewhere.close()
        assert listener.wait(0.01) is False, "a closed listener reported a notification"


def check_no_listener_without_notify(make_store: StoreFactory) -> None:
    """A store without notifications returns None from open_listener."""
    with _opened(make_store) as store:
        got = store.open_listener(_ns())
        assert got is None, f"open_listener returned {got!r} but supports_notify is False"


# -- cron -------------------------------------------------------------------------------
def _upsert_job(
    store: Store,
    ns: str,
    name: str,
    *,
    now: int = T0,
    spec: str = "0 2 * * *",
    timezone: str | None = "Europe/Berlin",
    workflow: str | None = "report",
    payload: bytes | None = b'{"kind": "daily"}',
) -> CronJobRow:
    return store.upsert_cron_job(
        ns,
        name,
        spec=spec,
        timezone=timezone,
        workflow_name=workflow,
        payload=payload,
        now_ms=now,
    )


def check_cron_job_upsert(make_store: StoreFactory) -> None:
    """upsert_cron_job inserts a job, keeps it as is when registered again unchanged, and
    replaces the definition (updated_at = now, next_run_at cleared) when it changed."""
    with _opened(make_store) as store:
        ns = _ns()
        expected = CronJobRow(
            namespace=ns,
            name="nightly-report",
            spec="0 2 * * *",
            timezone="Europe/Berlin",
            workflow_name="report",
            payload=b'{"kind": "daily"}',
            enabled=True,
            created_at=T0,
            updated_at=T0,
            next_run_at=None,
        )
        row = _upsert_job(store, ns, "nightly-report")
        _same(row, expected, "upsert_cron_job of a new job")
        assert type(row.payload) is bytes, f"payload is {type(row.payload)}, not bytes"
        assert row.enabled is True, f"enabled is {row.enabled!r}, not True"
        _same(store.list_cron_jobs(ns), [expected], "list_cron_jobs after the first upsert")

        store.set_cron_next_run(ns, "nightly-report", T0 + 3_600_000)
        expected.next_run_at = T0 + 3_600_000
        _same(store.list_cron_jobs(ns), [expected], "after set_cron_next_run")

        # The same definition again (a worker restarting): nothing changes, so the slots
        # missed while it was down are still due.
        again = _upsert_job(store, ns, "nightly-report", now=T0 + 60_000)
        _same(again, expected, "upsert_cron_job of an unchanged definition")

        for change, fields in (
            ({"spec": "30 2 * * *"}, {"spec": "30 2 * * *"}),
            ({"spec": "30 2 * * *", "timezone": None}, {"timezone": None}),
            (
                {"spec": "30 2 * * *", "timezone": None, "payload": b"{}"},
                {"payload": b"{}"},
            ),
            (
                {"spec": "30 2 * * *", "timezone": None, "workflow": None, "payload": None},
                {"workflow_name": None, "payload": None},
            ),
        ):
            now = expected.updated_at + 1_000
            store.set_cron_next_run(ns, "nightly-report", now + 5)
            changed = _upsert_job(store, ns, "nightly-report", now=now, **change)
            expected = dataclasses.replace(expected, updated_at=now, next_run_at=None, **fields)
            _same(changed, expected, f"upsert_cron_job changing {sorted(fields)}")
            _same(store.list_cron_jobs(ns), [expected], f"list after changing {sorted(fields)}")


def check_cron_jobs_by_namespace_and_name(make_store: StoreFactory) -> None:
    """list_cron_jobs lists one namespace's jobs by name; names compare exactly."""
    with _opened(make_store) as store:
        ns, other = _ns(), _ns()
        for name in ("b-job", "c-job", "a-job"):
            _upsert_job(store, ns, name, workflow=None, payload=None)
        _upsert_job(store, other, "a-job", spec="@hourly")
        names = [r.name for r in store.list_cron_jobs(ns)]
        assert names == ["a-job", "b-job", "c-job"], f"list_cron_jobs gave {names}"
        listed = store.list_cron_jobs(other)
        assert [(r.name, r.spec) for r in listed] == [("a-job", "@hourly")], (
            f"the other namespace lists {[(r.name, r.spec) for r in listed]}"
        )
        assert store.list_cron_jobs(_ns()) == [], "an empty namespace lists cron jobs"
        assert store.list_cron_jobs(ns.upper()) == [], "namespaces compared without case"
        _upsert_job(store, ns, "A-job", spec="@daily")
        specs = {r.name: r.spec for r in store.list_cron_jobs(ns)}
        assert (specs.get("a-job"), specs.get("A-job")) == ("0 2 * * *", "@daily"), (
            f"job names that differ only in case were taken as one: {specs}"
        )
        # next_run_at of an unknown job is silently ignored.
        store.set_cron_next_run(ns, "no-such-job", T0)


def check_cron_fire_claimed_once(make_store: StoreFactory) -> None:
    """claim_cron_fire is True once per (namespace, job, slot); last_cron_fire is the fire
    with the latest slot."""
    with _opened(make_store) as store:
        ns = _ns()
        slot = T0 + 3_600_000
        assert store.last_cron_fire(ns, "job") is None, "a job that never fired has a fire"
        first = store.claim_cron_fire(ns, "job", slot, now_ms=slot + 5, worker_id="w1")
        assert first is True, "the first claim of a slot returned False"
        for worker, now in (("w2", slot + 6), ("w1", slot + 7)):
            again = store.claim_cron_fire(ns, "job", slot, now_ms=now, worker_id=worker)
            assert again is False, f"a second claim of the slot (by {worker}) returned True"
        _same(
            store.last_cron_fire(ns, "job"),
            CronFire(ns, "job", slot, slot + 5, "w1", None),
            "last_cron_fire after one fire",
        )
        eid = _id()
        later = slot + 3_600_000
        assert store.claim_cron_fire(
            ns, "job", later, now_ms=later + 1, worker_id="w2", execution_id=eid
        ), "the next slot could not be claimed"
        # An older slot (catching up) is its own slot; the latest stays the latest.
        assert store.claim_cron_fire(ns, "job", T0, now_ms=later + 2, worker_id="w3"), (
            "an older slot could not be claimed"
        )
        _same(
            store.last_cron_fire(ns, "job"),
            CronFire(ns, "job", later, later + 1, "w2", eid),
            "last_cron_fire after fires of three slots",
        )
        for what, args in (
            ("another job", (ns, "other-job")),
            ("a job whose name differs in case", (ns, "Job")),
            ("another namespace", (_ns(), "job")),
            ("a namespace that differs in case", (ns.upper(), "job")),
        ):
            got = store.claim_cron_fire(*args, slot, now_ms=slot, worker_id="w1")
            assert got is True, f"the same slot of {what} was taken as already fired"
        _same(
            store.last_cron_fire(ns, "Job"),
            CronFire(ns, "Job", slot, slot, "w1", None),
            "last_cron_fire of a job whose name differs in case",
        )


def check_cron_fire_concurrent(make_store: StoreFactory) -> None:
    """Eight threads claiming the same slots at once: each slot is claimed exactly once."""
    with _opened(make_store) as store:
        ns = _ns()
        threads, slots = 8, [T0 + i * 60_000 for i in range(10)]
        barrier = threading.Barrier(threads)

        def race(n: int) -> list[int]:
            won = []
            barrier.wait(timeout=30)
            for slot in slots:
                if store.claim_cron_fire(ns, "tick", slot, now_ms=slot + n, worker_id=f"w{n}"):
                    won.append(slot)
            return won

        with ThreadPoolExecutor(threads) as pool:
            wins = Counter(slot for won in pool.map(race, range(threads)) for slot in won)
        assert all(n == 1 for n in wins.values()), f"slots claimed twice: {wins.most_common(3)}"
        assert sorted(wins) == slots, f"{len(set(slots) - set(wins))} slots never claimed"
        last = store.last_cron_fire(ns, "tick")
        assert last is not None and last.slot_at == slots[-1], f"last_cron_fire is {last}"


# -- the database's clock ------------------------------------------------------------------
#: how far a server's clock may be from this machine's (the suites' servers run here)
CLOCK_TOLERANCE_MS = 5_000


def check_database_time(make_store: StoreFactory) -> None:
    """database_time_ms: None (no server clock), or the server's time in Unix ms: an int
    within ``CLOCK_TOLERANCE_MS`` of this machine's clock (a server on this machine or
    one kept in time with it), never going backwards, moving in real time (read when the
    call runs, not frozen at some earlier start)."""
    with _opened(make_store) as store:
        first = store.database_time_ms()
        if first is None:
            assert store.database_time_ms() is None, "database_time_ms: None, then a time"
            return
        readings = [first] + [store.database_time_ms() for _ in range(20)]
        local = time.time_ns() // 1_000_000
        for value in readings:
            assert isinstance(value, int) and not isinstance(value, bool), (
                f"database_time_ms returned {value!r}, not an int"
            )
        times: list[int] = [v for v in readings if v is not None]
        assert abs(times[-1] - local) <= CLOCK_TOLERANCE_MS, (
            f"database_time_ms is {times[-1] - local} ms from this machine's clock"
        )
        back = [(a, b) for a, b in itertools.pairwise(times) if b < a]
        assert not back, f"database_time_ms went backwards: {back}"
        time.sleep(0.05)
        later = store.database_time_ms()
        assert later is not None and later - times[-1] >= 40, (
            f"database_time_ms moved {later} - {times[-1]} ms in 50 ms of real time"
        )


#: every check, in a sensible order
ALL_CHECKS: list[Check] = [
    check_retry_execution,
    check_create_get_list_roundtrip,
    check_get_missing,
    check_idempotency_key,
    check_idempotency_key_concurrent,
    check_list_executions,
    check_records_are_copies,
    check_names_are_exact,
    check_find_execution_ids,
    check_first_claim,
    check_claim_exclusive,
    check_takeover_exclusive,
    check_claim_only_listed_workflows,
    check_claim_only_own_namespace,
    check_claim_only_due,
    check_claim_order_and_limit,
    check_claim_order_across_workflows,
    check_claim_exclusive_across_workflows,
    check_lease_expiry_takeover,
    check_claim_is_take_lease,
    check_heartbeat_extends_lease,
    check_save_step_extends_lease,
    check_fencing_after_takeover,
    check_fenced_write_races_takeover,
    check_cancel_fences_owner,
    check_cancel,
    check_release,
    check_owned_leases,
    check_sleep,
    check_retry,
    check_timeout_caps_wake_at,
    check_finish_completed,
    check_finish_failed,
    check_finish_rejects_non_terminal_status,
    check_save_step_upsert,
    check_list_steps_order,
    check_step_attempts_recorded,
    check_step_attempt_rewrite_is_one_record,
    check_step_attempts_fenced,
    check_next_wake_at,
    check_namespace_isolation,
    check_large_payload,
    check_max_value_bytes,
    check_shared_between_instances,
    check_notify_wakes_listener,
    check_no_listener_without_notify,
    check_cron_job_upsert,
    check_cron_jobs_by_namespace_and_name,
    check_cron_fire_claimed_once,
    check_cron_fire_concurrent,
    check_database_time,
]

#: check name -> (store attribute, value it must have) for checks that need a capability
REQUIRES: dict[str, tuple[str, bool]] = {
    check_shared_between_instances.__name__: ("shared_across_processes", True),
    check_notify_wakes_listener.__name__: ("supports_notify", True),
    check_no_listener_without_notify.__name__: ("supports_notify", False),
}


def unsupported_reason(check: Check, store: Store) -> str | None:
    """Why ``check`` does not apply to ``store`` (a capability flag), or None if it does."""
    need = REQUIRES.get(check.__name__)
    if need is None:
        return None
    flag, value = need
    if bool(getattr(store, flag)) == value:
        return None
    return f"{type(store).__name__}.{flag} is {not value}"


def run_all(make_store: StoreFactory) -> list[str]:
    """Run every check that applies; return the names of those skipped for a capability."""
    with _opened(make_store) as probe:
        skipped = [c.__name__ for c in ALL_CHECKS if unsupported_reason(c, probe) is not None]
    for check in ALL_CHECKS:
        if check.__name__ not in skipped:
            check(make_store)
    return skipped


__all__ = [
    "ALL_CHECKS",
    "REQUIRES",
    "Check",
    "StoreFactory",
    "run_all",
    "unsupported_reason",
    *(c.__name__ for c in ALL_CHECKS),
]

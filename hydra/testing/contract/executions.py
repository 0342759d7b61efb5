"""The contract of ``ExecutionStore``: creating, reading, listing and looking up
executions, idempotency keys, cancelling, retrying, wake times, namespaces."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from hydra.status import Status, StepStatus
from hydra.store.base import ExecutionRow, NewExecution
from hydra.testing.contract._support import (
    FAR,
    LONG_LEASE,
    T0,
    WF,
    Check,
    StoreFactory,
    assert_fields,
    assert_nothing_claimable,
    assert_same,
    claim_due,
    claim_exactly,
    create_one,
    fresh_id,
    fresh_namespace,
    get_row,
    new_execution,
    opened,
    step_record,
)


def check_create_get_list_roundtrip(make_store: StoreFactory) -> None:
    """Every field of a new execution comes back from get_execution and list_executions."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        new = NewExecution(
            id=fresh_id(),
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
        row = get_row(store, ns, new.id)
        assert_same(row, expected, "get_execution after create")
        assert isinstance(row.status, Status), f"status is {type(row.status)}, not Status"
        assert type(row.input) is bytes, f"input is {type(row.input)}, not bytes"
        assert_same(store.list_executions(ns), [expected], "list_executions after create")

        # The defaults: trigger "api", no source, no timeout, no key.
        plain = new_execution(ns, created_at=T0 + 1)
        store.create_execution(plain)
        assert_fields(
            get_row(store, ns, plain.id),
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
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        assert store.get_execution(ns, fresh_id()) is None, "an unknown id returned a row"
        assert store.get_execution(fresh_namespace(), eid) is None, (
            "another namespace's id returned a row"
        )
        assert store.list_steps(fresh_id()) == [], "list_steps of an unknown id is not empty"


def check_idempotency_key(make_store: StoreFactory) -> None:
    """A key already used in the namespace returns the existing id and writes nothing."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        first = create_one(store, ns, key="order-1", input=b"first")
        before = get_row(store, ns, first)
        again = new_execution(ns, key="order-1", input=b"second", created_at=T0 + 1)
        got = store.create_execution(again)
        assert got == (first, False), f"a reused key returned {got}, expected {(first, False)}"
        assert store.get_execution(ns, again.id) is None, "a reused key still inserted a row"
        listed = [r.id for r in store.list_executions(ns)]
        assert listed == [first], f"after a reused key the namespace holds {listed}"
        assert_same(get_row(store, ns, first), before, "the original after its key was reused")

        # The same key in another namespace is independent.
        other_ns = fresh_namespace()
        other = new_execution(other_ns, key="order-1")
        assert store.create_execution(other) == (other.id, True), (
            "the same key in another namespace did not create a new execution"
        )

        # Executions without a key never collide.
        create_one(store, ns, created_at=T0 + 2)
        create_one(store, ns, created_at=T0 + 3)
        assert len(store.list_executions(ns)) == 3, "executions without a key collided"

        # A finished execution still holds its key.
        store.cancel(ns, first, now_ms=T0 + 10)
        late = new_execution(ns, key="order-1", created_at=T0 + 20)
        assert store.create_execution(late) == (first, False), (
            "a key stopped deduplicating once its execution was terminal"
        )


def check_idempotency_key_concurrent(make_store: StoreFactory) -> None:
    """Eight threads starting with one key at once: one execution, all told its id."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        threads = 8
        barrier = threading.Barrier(threads)

        def start(n: int) -> tuple[str, bool]:
            new = new_execution(ns, key="once", input=f"from {n}".encode(), created_at=T0 + n)
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
    with opened(make_store) as store:
        ns = fresh_namespace()
        made = [
            (T0 + 1, create_one(store, ns, created_at=T0 + 1)),
            (T0 + 3, create_one(store, ns, created_at=T0 + 3, workflow="other")),
            (T0 + 2, create_one(store, ns, created_at=T0 + 2)),
            (T0 + 2, create_one(store, ns, created_at=T0 + 2, workflow="other")),
            (T0 + 2, create_one(store, ns, created_at=T0 + 2)),
        ]
        newest_first = [eid for _, eid in sorted(made, reverse=True)]
        got = [r.id for r in store.list_executions(ns)]
        assert got == newest_first, f"list_executions order {got}, expected {newest_first}"
        got = [r.id for r in store.list_executions(ns, limit=2)]
        assert got == newest_first[:2], f"limit=2 returned {got}, expected {newest_first[:2]}"

        others = [eid for eid in newest_first if get_row(store, ns, eid).workflow_name == "other"]
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
        assert store.list_executions(fresh_namespace()) == [], "an empty namespace listed rows"


def check_records_are_copies(make_store: StoreFactory) -> None:
    """Mutating a record passed in or handed out never changes what is stored."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        original = get_row(store, ns, eid)
        row = get_row(store, ns, eid)
        row.status = Status.FAILED
        row.input = b"changed"
        listed = store.list_executions(ns)[0]
        listed.attempt = 99
        assert_same(get_row(store, ns, eid), original, "the row after mutating returned copies")

        claim = claim_exactly(store, ns, "w1", T0, eid)
        claimed = get_row(store, ns, eid)
        claim.execution.lease_owner = "someone else"
        step = step_record(eid, "a", 0, output=b"original")
        store.save_step(claim.lease, step, now_ms=T0, lease_ms=LONG_LEASE)
        step.output = b"changed"
        step.attempts = 42
        got = store.list_steps(eid)
        got[0].status = StepStatus.FAILED
        assert_same(
            store.list_steps(eid),
            [step_record(eid, "a", 0, output=b"original")],
            "the steps after mutating the saved and the returned step",
        )
        assert_fields(get_row(store, ns, eid), "the row after mutating a claim", lease_owner="w1")
        assert_fields(claimed, "the row read after the claim", lease_owner="w1")


def check_names_are_exact(make_store: StoreFactory) -> None:
    """Namespaces, workflow names, idempotency keys and step names compare exactly: a name
    that differs only in letter case (or accents) is a different name."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        first = create_one(store, ns, key="Order-1", workflow="Billing")
        for key, workflow in (
            ("order-1", "billing"),
            ("ORDER-1", "BILLING"),
            ("Ordér-1", "Bïlling"),
        ):
            new = new_execution(ns, key=key, workflow=workflow, created_at=T0 + 1)
            got = store.create_execution(new)
            assert got == (new.id, True), (
                f"idempotency key {key!r} was taken as the same key as 'Order-1': {got}"
            )
        upper = ns.upper()
        assert store.get_execution(upper, first) is None, "namespaces compared without case"
        assert store.list_executions(upper) == [], "namespaces compared without case"
        assert store.cancel(upper, first, now_ms=T0) is False, "namespaces compared without case"
        assert_nothing_claimable(
            store, upper, T0, "namespaces compare exactly", workflows=("Billing",)
        )
        got_ids = [r.id for r in store.list_executions(ns, workflow_name="Billing")]
        assert got_ids == [first], f"workflow_name='Billing' listed {len(got_ids)} executions"
        claim = claim_exactly(store, ns, "w1", T0, first, workflows=("Billing",))
        lower = step_record(first, "fetch", 0, output=b"lower")
        capital = step_record(first, "Fetch", 1, output=b"capital")
        accent = step_record(first, "fétch", 2, output=b"accent")
        for step in (lower, capital, accent):
            store.save_step(claim.lease, step, now_ms=T0, lease_ms=LONG_LEASE)
        assert_same(
            store.list_steps(first),
            [lower, capital, accent],
            "steps whose names differ only in case or accents",
        )


def check_find_execution_ids(make_store: StoreFactory) -> None:
    """``find_execution_ids`` finds the executions of one namespace whose id starts with a
    prefix: exactly (letter case counts; ``%``, ``_``, ``*``, ``?``, ``[``, ``/`` and ``\\``
    are plain characters, not wildcards), at most ``limit`` of them."""
    with opened(make_store) as store:
        ns, other_ns = fresh_namespace(), fresh_namespace()
        # Ids are unique across namespaces: a fresh stem keeps runs sharing a database apart.
        stem = uuid.uuid4().hex[:12]
        first, second = f"{stem}-aa11", f"{stem}-aa22"
        nine, zed = f"{stem}-9z1", f"{stem}-zZ2"
        plain = [first, second, f"{stem}-bb33", f"{stem}-AA44", nine, zed]
        # One id per character that is a wildcard or an escape somewhere (LIKE, GLOB).
        special = {c: f"{stem}{c}x9" for c in "%_*?[/\\"}
        for execution_id in (*plain, *special.values()):
            create_one(store, ns, execution_id=execution_id)
        create_one(store, other_ns, execution_id=f"{stem}-aa33")

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


def check_list_namespaces(make_store: StoreFactory) -> None:
    """``list_namespaces`` names each namespace holding an execution once, in ascending
    order, at most ``limit`` of them; with ``id_prefix``, only those holding an id that
    starts with it, compared as ``find_execution_ids`` compares (letter case counts, no
    wildcards). A namespace with cron jobs but no execution is not one of them."""
    with opened(make_store) as store:
        base = fresh_namespace()
        # The same order in any collation: one letter differs, at the end.
        a, b, c = f"{base}-a", f"{base}-b", f"{base}-c"
        # Ids are unique across namespaces: a fresh stem keeps runs sharing a database apart.
        stem = uuid.uuid4().hex
        create_one(store, a, execution_id=f"{stem}-a1")
        create_one(store, a, execution_id=f"{stem}-a2", created_at=T0 + 1)
        create_one(store, b, execution_id=f"{stem}-b1")
        create_one(store, c, execution_id=f"{stem}-C1")
        cron_only = f"{base}-d"
        store.upsert_cron_job(
            cron_only,
            "job",
            spec="* * * * *",
            timezone=None,
            workflow_name=None,
            payload=None,
            now_ms=T0,
        )

        every = store.list_namespaces(limit=10**6)
        assert len(every) == len(set(every)), f"list_namespaces repeated a namespace: {every}"
        ours = [ns for ns in every if ns.startswith(base)]
        assert ours == [a, b, c], (
            f"list_namespaces gave this check's namespaces as {ours}: expected {[a, b, c]} "
            "(each once, in order; not the one holding only a cron job)"
        )

        def found(prefix: str, limit: int = 100) -> list[str]:
            return store.list_namespaces(id_prefix=prefix, limit=limit)

        assert found(stem) == [a, b, c], f"prefix {stem!r} found {found(stem)}"
        assert found(f"{stem}-a") == [a], "two executions of one namespace: listed once"
        assert found(f"{stem}-b1") == [b], "a whole id is a prefix of itself"
        assert found(f"{stem}-C") == [c] and found(f"{stem}-c") == [], (
            "a prefix compared without letter case"
        )
        for char in "%_*?[":
            got = found(f"{stem}{char}")
            assert got == [], f"prefix {stem + char!r} found {got}: {char!r} is a wildcard"
        assert found(f"{stem}-x") == [], "a prefix no id starts with found a namespace"
        assert found(stem, limit=2) == [a, b], f"limit=2 gave {found(stem, limit=2)}"
        assert found(stem, limit=0) == [], "limit=0 gave namespaces"


def check_cancel(make_store: StoreFactory) -> None:
    """cancel: True for pending and sleeping; False if terminal, unknown or foreign."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        pending = create_one(store, ns)
        assert store.cancel(fresh_namespace(), pending, now_ms=T0) is False, (
            "cancel across namespaces"
        )
        assert_fields(get_row(store, ns, pending), "after a foreign cancel", status=Status.PENDING)
        assert store.cancel(ns, pending, now_ms=T0 + 1) is True, "cancel of a pending one"
        assert_fields(
            get_row(store, ns, pending),
            "a cancelled pending execution",
            status=Status.CANCELLED,
            wake_at=None,
            completed_at=T0 + 1,
            lease_token=1,
        )
        before = get_row(store, ns, pending)
        assert store.cancel(ns, pending, now_ms=T0 + 2) is False, "a second cancel returned True"
        assert_same(get_row(store, ns, pending), before, "a cancelled row after a second cancel")
        assert store.cancel(ns, fresh_id(), now_ms=T0) is False, "cancel of an unknown id"

        sleeping = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, sleeping)
        store.suspend(claim.lease, wake_at_ms=T0 + 60_000, now_ms=T0 + 1)
        assert store.cancel(ns, sleeping, now_ms=T0 + 2) is True, "cancel of a sleeping one"
        assert_fields(
            get_row(store, ns, sleeping),
            "a cancelled sleeping execution",
            status=Status.CANCELLED,
            wake_at=None,
            sleep_until=None,
        )

        done = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, done)
        store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 1, output=b"x")
        before = get_row(store, ns, done)
        assert store.cancel(ns, done, now_ms=T0 + 2) is False, "cancel of a completed one"
        assert_same(get_row(store, ns, done), before, "a completed row after a cancel")


def check_retry_execution(make_store: StoreFactory) -> None:
    """retry_execution: a failed execution gets one more attempt from its checkpoints."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns, timeout_ms=1_000)
        assert store.retry_execution(ns, eid, now_ms=T0) is False, "retry of a pending one"
        claim = claim_exactly(store, ns, "w1", T0, eid)
        store.save_step(claim.lease, step_record(eid, "done", 0), now_ms=T0, lease_ms=LONG_LEASE)
        store.save_step(
            claim.lease,
            step_record(
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
        timed_out = step_record(
            eid,
            "receive-1",
            2,
            status=StepStatus.TIMED_OUT,
            output=None,
            error_type="WaitTimeoutError",
            error_message="no message",
        )
        store.save_step(claim.lease, timed_out, now_ms=T0, lease_ms=LONG_LEASE)
        store.finish(
            claim.lease,
            status=Status.FAILED,
            now_ms=T0 + 1,
            error_type="StepFailedError",
            error_message="broken",
        )
        assert store.retry_execution(fresh_namespace(), eid, now_ms=T0 + 2) is False, (
            "retry across namespaces"
        )
        assert store.retry_execution(ns, eid, now_ms=T0 + 10) is True, "retry of a failed one"
        assert_fields(
            get_row(store, ns, eid),
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
        assert [s.name for s in store.list_steps(eid)] == ["done"], (
            "failed steps and timed-out receives must be reset"
        )
        again = claim_exactly(store, ns, "w2", T0 + 10, eid)
        assert_fields(again.execution, "the claim after a retry", attempt=2)
        assert [s.name for s in again.steps] == ["done"], "completed checkpoints must replay"
        assert store.retry_execution(ns, eid, now_ms=T0 + 11) is False, "retry of a running one"
        assert store.retry_execution(ns, "no-such-id", now_ms=T0) is False, "retry of unknown id"


def check_next_wake_at(make_store: StoreFactory) -> None:
    """next_wake_at: the earliest wake_at of non-terminal executions of those workflows."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        assert store.next_wake_at(ns, [WF]) is None, "an empty namespace has a wake time"
        e1 = create_one(store, ns, run_at=T0 + 500)
        e2 = create_one(store, ns, run_at=T0 + 200)
        e3 = create_one(store, ns, run_at=T0 + 100, workflow="other")
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
        assert store.next_wake_at(fresh_namespace(), [WF]) is None, (
            "next_wake_at crossed namespaces"
        )
        claim = claim_exactly(store, ns, "w1", T0 + 100, e3, lease_ms=1_000, workflows=("other",))
        got = store.next_wake_at(ns, ["other"])
        assert got == T0 + 1_100, f"next_wake_at of a running one is {got}, not its lease expiry"
        store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 150)
        got = store.next_wake_at(ns, ["other"])
        assert got is None, f"next_wake_at of a completed one is {got}"
        store.cancel(ns, e2, now_ms=T0 + 150)
        got = store.next_wake_at(ns, [WF, "other"])
        assert got == T0 + 500, f"next_wake_at after a cancel is {got}, expected t0+500"
        assert get_row(store, ns, e1).wake_at == T0 + 500


def check_namespace_isolation(make_store: StoreFactory) -> None:
    """Namespaces share nothing: not claims, lists, gets, cancels or wake times."""
    with opened(make_store) as store:
        a, b = fresh_namespace(), fresh_namespace()
        ea = create_one(store, a, run_at=T0)
        eb = create_one(store, b, run_at=T0 + 10)
        assert [r.id for r in store.list_executions(a)] == [ea], "list crossed namespaces"
        assert [r.id for r in store.list_executions(b)] == [eb], "list crossed namespaces"
        assert store.next_wake_at(b, [WF]) == T0 + 10, "next_wake_at crossed namespaces"
        assert store.get_execution(b, ea) is None, "get crossed namespaces"
        assert store.cancel(b, ea, now_ms=T0) is False, "cancel crossed namespaces"
        got = [c.execution.id for c in claim_due(store, a, "w1", FAR)]
        assert got == [ea], f"claim in a returned {got}"
        got = [c.execution.id for c in claim_due(store, b, "w1", FAR)]
        assert got == [eb], f"claim in b returned {got}"


#: the checks of this module, in order


def check_purge(make_store: StoreFactory) -> None:
    """purge_executions: only finished executions that ended before the cutoff, oldest
    first, with everything stored for them; a dry run deletes nothing; an execution with
    an unfinished child is kept; a purged idempotency key is free again."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        ended: dict[str, int] = {}
        for i, (status, end) in enumerate(
            [(Status.COMPLETED, T0 + 10), (Status.FAILED, T0 + 20), (Status.COMPLETED, T0 + 500)]
        ):
            eid = create_one(store, ns, key=f"k{i}")
            claim = claim_exactly(store, ns, "w1", T0, eid)
            store.save_step(claim.lease, step_record(eid, "a", 0), now_ms=T0, lease_ms=LONG_LEASE)
            store.finish(
                claim.lease,
                status=status,
                now_ms=end,
                output=b"1",
                error_type=None if status == Status.COMPLETED else "E",
            )
            ended[eid] = end
        running = create_one(store, ns)
        claim_exactly(store, ns, "w1", T0, running)
        old_first = sorted(ended, key=lambda e: ended[e])
        got = store.purge_executions(
            ns,
            ended_before_ms=T0 + 100,
            statuses=[Status.COMPLETED, Status.FAILED],
            limit=10,
            dry_run=True,
        )
        assert got == old_first[:2], f"dry run: {got!r}, expected {old_first[:2]!r}"
        assert all(store.get_execution(ns, e) is not None for e in ended), "a dry run deleted"
        got = store.purge_executions(
            ns, ended_before_ms=T0 + 100, statuses=[Status.COMPLETED], limit=10
        )
        assert got == old_first[:1], f"purge of completed ones: {got!r}"
        gone = old_first[0]
        assert store.get_execution(ns, gone) is None, "a purged execution is still there"
        assert store.list_steps(gone) == [] and store.list_step_attempts(gone) == [], (
            "a purged execution's checkpoints were left"
        )
        again = create_one(store, ns, key="k0")
        assert again != gone, "its idempotency key was not freed"
        assert store.purge_executions(
            ns, ended_before_ms=T0 + 10**9, statuses=[Status.FAILED], limit=1
        ) == [old_first[1]], "limit and status filter"
        assert store.get_execution(ns, running) is not None, "an unfinished one was purged"


def check_purge_ids_of_any_characters(make_store: StoreFactory) -> None:
    """A purge batch names its executions by id however the store sends them (one array
    or JSON parameter for the whole batch on some stores): ids holding quotes,
    backslashes, commas, braces or spaces are purged, with their checkpoints, and only
    they."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        tag = fresh_id()[:8]
        awkward = [
            f'{tag}-"quoted"',
            f"{tag}-back\\slash",
            f"{tag}-a,b",
            f"{tag}-{{braced}}",
            f"{tag}- spaced ",
            f"{tag}-NULL",
        ]
        for eid in awkward:
            create_one(store, ns, execution_id=eid)
            claim = claim_exactly(store, ns, "w1", T0, eid)
            store.save_step(claim.lease, step_record(eid, "a", 0), now_ms=T0, lease_ms=LONG_LEASE)
            store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 1, output=b"1")
        kept = create_one(store, ns, execution_id=f"{tag}-kept")
        got = store.purge_executions(
            ns, ended_before_ms=T0 + 100, statuses=[Status.COMPLETED], limit=100
        )
        assert sorted(got) == sorted(awkward), f"purged {got!r}"
        for eid in awkward:
            assert store.get_execution(ns, eid) is None, f"{eid!r} is still there"
            assert store.list_steps(eid) == [], f"{eid!r}'s checkpoints were left"
        assert store.get_execution(ns, kept) is not None


def check_trace_context_roundtrip(make_store: StoreFactory) -> None:
    """``NewExecution.trace_context`` (a JSON text, up to 16 KiB) comes back as stored
    from get_execution, list_executions and every claim of the execution (a takeover
    and a wake from a sleep too); an execution started without one has None."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        baggage = ",".join(f"k{i}=v{i:04d}" for i in range(1_400))  # ~14 KiB, ASCII
        text = json.dumps(
            {
                "baggage": baggage,
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "tracestate": "vendor=opaque",
            },
            separators=(",", ":"),
        )
        traced = dataclasses.replace(new_execution(ns), trace_context=text)
        assert store.create_execution(traced) == (traced.id, True), "create_execution"
        plain = create_one(store, ns, run_at=T0 + 1)
        assert_fields(get_row(store, ns, traced.id), "get_execution", trace_context=text)
        assert_fields(
            get_row(store, ns, plain), "an execution started without one", trace_context=None
        )
        listed = {row.id: row.trace_context for row in store.list_executions(ns)}
        assert listed == {traced.id: text, plain: None}, f"list_executions: {listed!r}"
        first = claim_exactly(store, ns, "w1", T0, traced.id, lease_ms=1_000)
        assert_fields(first.execution, "the first claim", trace_context=text)
        taken = claim_due(store, ns, "w2", T0 + 2_000)
        assert {c.execution.id: c.execution.trace_context for c in taken} == {
            traced.id: text,
            plain: None,
        }, "a takeover's and a first claim's executions"
        mine = next(c for c in taken if c.execution.id == traced.id)
        store.suspend(mine.lease, wake_at_ms=T0 + 5_000, now_ms=T0 + 2_001)
        woken = claim_exactly(store, ns, "w3", T0 + 5_000, traced.id)
        assert_fields(woken.execution, "the claim after a sleep", trace_context=text)


CHECKS: list[Check] = [
    check_create_get_list_roundtrip,
    check_trace_context_roundtrip,
    check_get_missing,
    check_idempotency_key,
    check_idempotency_key_concurrent,
    check_list_executions,
    check_records_are_copies,
    check_names_are_exact,
    check_find_execution_ids,
    check_list_namespaces,
    check_cancel,
    check_retry_execution,
    check_next_wake_at,
    check_namespace_isolation,
    check_purge,
    check_purge_ids_of_any_characters,
]

"""The contract of ``LeaseStore``: claims (exclusive, in order, only what is due), leases
and takeovers, fencing, and the owner's moves out of ``running`` (sleep, retry, finish)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hydra.errors import LeaseLostError
from hydra.status import Status, StepStatus
from hydra.store.base import (
    Claim,
    Lease,
    take_lease,
)
from hydra.testing.contract._support import (
    FAR,
    LONG_LEASE,
    T0,
    WF,
    Check,
    StoreFactory,
    assert_fenced,
    assert_fields,
    assert_lease_lost,
    assert_nothing_claimable,
    assert_same,
    assert_unchanged,
    claim_due,
    claim_exactly,
    create_one,
    fresh_id,
    fresh_namespace,
    get_row,
    opened,
    snapshot_of,
    step_record,
)


def check_first_claim(make_store: StoreFactory) -> None:
    """A first claim: running, owner, token 1, lease, attempt 1, started_at, timeout_at."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns, run_at=T0, created_at=T0 - 100, timeout_ms=60_000)
        now = T0 + 7
        claim = claim_exactly(store, ns, "w1", now, eid, lease_ms=1_234)
        assert_fields(
            claim,
            "the first claim",
            lease=Lease(eid, 1, "w1"),
            previous_status=Status.PENDING,
            takeover=False,
            steps=[],
        )
        assert_fields(
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
        assert_same(get_row(store, ns, eid), claim.execution, "the stored row after a claim")


def check_claim_exclusive(make_store: StoreFactory) -> None:
    """8 concurrent claimers take 50 executions: each is claimed exactly once."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        count, threads = 50, 8
        ids = {create_one(store, ns, run_at=T0 + i) for i in range(count)}
        barrier = threading.Barrier(threads)

        def work(n: int) -> list[tuple[str, Claim]]:
            worker = f"worker-{n}"
            got: list[tuple[str, Claim]] = []
            barrier.wait(timeout=30)
            while True:
                claims = claim_due(store, ns, worker, T0 + 1_000, limit=3)
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
            assert_fields(claim.lease, "a concurrent claim's lease", worker_id=worker, token=1)
            assert_fields(
                get_row(store, ns, claim.execution.id),
                "a concurrently claimed row",
                status=Status.RUNNING,
                lease_owner=worker,
                lease_token=1,
                attempt=1,
            )
        assert_nothing_claimable(store, ns, T0 + 1_000, "every execution is leased")


def check_takeover_exclusive(make_store: StoreFactory) -> None:
    """8 concurrent claimers race for 20 expired leases: each is taken over exactly once."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        count, threads = 20, 8
        ids = {create_one(store, ns, run_at=T0 + i) for i in range(count)}
        crashed = claim_due(store, ns, "crashed", T0 + 100, lease_ms=1_000)
        assert {c.execution.id for c in crashed} == ids, "setup claim failed"
        barrier = threading.Barrier(threads)

        def work(n: int) -> list[Claim]:
            got: list[Claim] = []
            barrier.wait(timeout=30)
            while claims := claim_due(store, ns, f"worker-{n}", T0 + 5_000, limit=2):
                got.extend(claims)
            return got

        with ThreadPoolExecutor(threads) as pool:
            results = [c for part in pool.map(work, range(threads)) for c in part]
        times = Counter(c.execution.id for c in results)
        assert all(n == 1 for n in times.values()), f"taken over twice: {times.most_common(3)}"
        assert set(times) == ids, f"{len(ids - set(times))} expired leases never taken over"
        for claim in results:
            assert_fields(claim, "a concurrent takeover", takeover=True)
            assert_fields(
                claim.execution, "a row taken over concurrently", attempt=2, lease_token=2
            )


def check_claim_only_listed_workflows(make_store: StoreFactory) -> None:
    """Only executions of the workflow names given are claimed."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        a = create_one(store, ns, workflow="a")
        b = create_one(store, ns, workflow="b")
        create_one(store, ns, workflow="c")
        got = claim_due(store, ns, "w1", T0, workflows=())
        assert got == [], "claim with no workflow names returned executions"
        got = claim_due(store, ns, "w1", T0, workflows=("a", "b"), limit=0)
        assert got == [], "claim with limit=0 returned executions"
        got = claim_due(store, ns, "w1", T0, workflows=("a", "b", "unknown"))
        ids = {c.execution.id for c in got}
        assert ids == {a, b}, f"claim of workflows a, b returned {ids}, expected {{a, b}}"
        assert_nothing_claimable(store, ns, T0 + 1, "only c is left", workflows=("a", "b"))


def check_claim_only_own_namespace(make_store: StoreFactory) -> None:
    """A claim never takes an execution of another namespace."""
    with opened(make_store) as store:
        ns, other = fresh_namespace(), fresh_namespace()
        mine = create_one(store, ns)
        theirs = create_one(store, other)
        got = [c.execution.id for c in claim_due(store, ns, "w1", T0)]
        assert got == [mine], f"claim in one namespace returned {got}, expected [{mine!r}]"
        assert_fields(
            get_row(store, other, theirs), "the other namespace's execution", lease_token=0
        )
        claim_exactly(store, other, "w2", T0, theirs)


def check_claim_only_due(make_store: StoreFactory) -> None:
    """An execution whose run_at is in the future is claimable from run_at on."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns, run_at=T0 + 60_000, created_at=T0)
        assert_nothing_claimable(store, ns, T0, "run_at is a minute away")
        assert_nothing_claimable(store, ns, T0 + 59_999, "run_at is 1 ms away")
        claim = claim_exactly(store, ns, "w1", T0 + 60_000, eid)
        assert_fields(
            claim.execution, "a delayed execution claimed when due", started_at=T0 + 60_000
        )


def check_claim_order_and_limit(make_store: StoreFactory) -> None:
    """Claims take the earliest wake_at first (not the oldest row), at most ``limit``."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        offsets = [50, 10, 40, 20, 30]
        by_offset = {
            off: create_one(store, ns, run_at=T0 + off, created_at=T0 - off) for off in offsets
        }
        expected = [by_offset[off] for off in sorted(offsets)]
        got: list[str] = []
        for limit, size in ((2, 2), (2, 2), (5, 1), (5, 0)):
            claims = claim_due(store, ns, "w1", T0 + 100, limit=limit)
            assert len(claims) == size, (
                f"claim(limit={limit}) returned {len(claims)} executions, expected {size}"
            )
            got.extend(c.execution.id for c in claims)
        assert got == expected, f"claims came in order {got}, expected by wake_at {expected}"


def check_claim_order_across_workflows(make_store: StoreFactory) -> None:
    """A claim of several workflow names takes due rows in one order across the names
    (wake_at, then created_at, then id), whatever order the names come in, and skips
    other workflows' rows, due or not, and rows not due (running, finished, future)."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        # Rows of other workflows, due before everything else and in between: skipped.
        for off in (0, 1, 25, 55):
            create_one(store, ns, workflow="other", run_at=T0 + off)
        create_one(store, ns, workflow="zz-last", run_at=T0 + 2)
        # Three names, interleaved; ties on wake_at settled by created_at, then by id.
        tie_ids = sorted(fresh_id() for _ in range(2))
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
            (wf, off, created): create_one(
                store, ns, workflow=wf, run_at=T0 + off, created_at=T0 + created, execution_id=i
            )
            for wf, off, created, i in plan
        }
        expected = [made[k] for k in sorted(made, key=lambda k: (k[1], k[2], made[k]))]
        # Not due at t0+100: a future row, a running row whose lease runs on, a finished one.
        create_one(store, ns, workflow="a", run_at=T0 + 500)
        leased = create_one(store, ns, workflow="b", run_at=T0 - 10)
        claim_exactly(store, ns, "w0", T0 - 10, leased, workflows=("b",))
        done = create_one(store, ns, workflow="c", run_at=T0 - 20)
        finished = claim_exactly(store, ns, "w0", T0 - 20, done, workflows=("c",))
        store.finish(finished.lease, status=Status.COMPLETED, now_ms=T0 - 15)

        names = ("c", "a", "b", "a")  # any order; a repeated name claims nothing twice
        got: list[str] = []
        for limit, size in ((1, 1), (3, 3), (2, 2), (2, 2), (5, 1), (5, 0)):
            claims = claim_due(store, ns, "w1", T0 + 100, workflows=names, limit=limit)
            assert len(claims) == size, (
                f"claim of {names} (limit={limit}) returned {len(claims)} executions, "
                f"expected {size}"
            )
            got.extend(c.execution.id for c in claims)
        assert got == expected, f"claims across workflows came in order {got}, expected {expected}"
        others = claim_due(store, ns, "w2", T0 + 100, workflows=("other",))
        assert len(others) == 4, f"the other workflow's 4 due rows: claimed {len(others)}"


def check_claim_exclusive_across_workflows(make_store: StoreFactory) -> None:
    """8 concurrent claimers of two workflow names take 60 executions of them (and none of
    a third): each is claimed exactly once."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        threads = 8
        ids = {create_one(store, ns, workflow=("a", "b")[i % 2], run_at=T0 + i) for i in range(60)}
        create_one(store, ns, workflow="c", run_at=T0)
        barrier = threading.Barrier(threads)

        def work(n: int) -> list[Claim]:
            got: list[Claim] = []
            barrier.wait(timeout=30)
            while claims := claim_due(
                store, ns, f"w{n}", T0 + 1_000, workflows=("a", "b"), limit=3
            ):
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


def check_lease_expiry_takeover(make_store: StoreFactory) -> None:
    """A running execution is claimable once its lease expires: a takeover, attempt + 1."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        first = claim_exactly(store, ns, "w1", T0, eid, lease_ms=1_000)
        step = step_record(eid, "a", 0)
        store.save_step(first.lease, step, now_ms=T0, lease_ms=1_000)
        assert_nothing_claimable(store, ns, T0 + 999, "the lease expires at t0+1000")
        second = claim_exactly(store, ns, "w2", T0 + 1_000, eid, lease_ms=5_000)
        assert_fields(
            second,
            "the takeover claim",
            previous_status=Status.RUNNING,
            takeover=True,
            lease=Lease(eid, first.lease.token + 1, "w2"),
            steps=[step],
        )
        assert_fields(
            second.execution,
            "the execution taken over",
            status=Status.RUNNING,
            attempt=first.execution.attempt + 1,
            lease_owner="w2",
            lease_expires_at=T0 + 6_000,
            wake_at=T0 + 6_000,
            started_at=T0,
        )
        assert_same(get_row(store, ns, eid), second.execution, "the stored row after a takeover")
        assert_nothing_claimable(store, ns, T0 + 5_999, "the new lease runs to t0+6000")
        third = claim_exactly(store, ns, "w3", T0 + 6_000, eid)
        assert_fields(third.execution, "a second takeover", attempt=first.execution.attempt + 2)


def check_claim_is_take_lease(make_store: StoreFactory) -> None:
    """Every claim does exactly what ``take_lease`` does to the row it claims.

    A store may compute the claim in SQL (PostgreSQL claims in one statement); this holds
    it to the one Python definition in every state a claim meets: a first claim with and
    without a timeout, a wake-up after a sleep, a retry, a takeover of an expired lease,
    and a takeover of an execution whose timeout already started.
    """
    with opened(make_store) as store:
        ns = fresh_namespace()
        lease_ms = 60_000  # past some timeouts (wake_at is capped) and not others
        # Bring three into their states one at a time (each is the only one due): asleep,
        # retrying, crashed while running. Then two that never ran.
        prepared: list[str] = []
        for timeout_ms in (None, 50_000, 70_000):
            eid = create_one(store, ns, run_at=T0, timeout_ms=timeout_ms)
            prepared.append(eid)
            claim = claim_exactly(store, ns, "w0", T0 + 5, eid, lease_ms=300)
            store.save_step(claim.lease, step_record(eid, "a", 0), now_ms=T0 + 5, lease_ms=300)
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
        first = create_one(store, ns, run_at=T0 + 30)
        timed = create_one(store, ns, run_at=T0 + 40, timeout_ms=9_000)
        before = {eid: get_row(store, ns, eid) for eid in (first, timed, slept, retried, crashed)}
        now = T0 + 1_000  # everything is due: run_at, the wake-up, the retry, the expiry
        claims = claim_due(store, ns, "w1", now, lease_ms=lease_ms, limit=10)
        assert sorted(c.execution.id for c in claims) == sorted(before), (
            f"claim at t0+1000 returned {[c.execution.id for c in claims]}, expected all five"
        )
        for claim in claims:
            row = before[claim.execution.id]
            expected = take_lease(row, "w1", now_ms=now, lease_ms=lease_ms)
            what = f"the claim of the {row.status.value} execution {row.id}"
            assert_same(claim.execution, expected.execution, what)
            assert_fields(
                claim, what, lease=expected.lease, previous_status=expected.previous_status
            )
            assert_same(
                get_row(store, ns, row.id), expected.execution, f"the stored row after {what}"
            )


def check_heartbeat_extends_lease(make_store: StoreFactory) -> None:
    """heartbeat pushes lease_expires_at (and wake_at) out; lost leases are reported."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        e1 = create_one(store, ns, run_at=T0)
        e2 = create_one(store, ns, run_at=T0 + 1)
        claims = claim_due(store, ns, "w1", T0 + 1, lease_ms=1_000)
        assert [c.execution.id for c in claims] == [e1, e2], "setup claim failed"
        leases = [c.lease for c in claims]
        assert store.heartbeat([], now_ms=T0, lease_ms=1_000) == [], "an empty heartbeat"
        lost = store.heartbeat(leases, now_ms=T0 + 500, lease_ms=1_000)
        assert lost == [], f"heartbeat of live leases reported {lost} lost"
        for eid in (e1, e2):
            assert_fields(
                get_row(store, ns, eid),
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
        assert_fields(
            get_row(store, ns, e2), "after a second heartbeat", lease_expires_at=T0 + 1_600
        )
        assert_nothing_claimable(
            store, ns, T0 + 1_001, "the old expiry passed but the lease was renewed"
        )
        assert_nothing_claimable(store, ns, T0 + 1_499, "the renewed lease expires at t0+1500")
        taken = [c.execution.id for c in claim_due(store, ns, "w2", T0 + 1_500)]
        assert taken == [e1], f"at t0+1500 claim returned {taken}, expected only [{e1!r}]"
        lost = store.heartbeat(leases, now_ms=T0 + 1_550, lease_ms=1_000)
        assert lost == [e1], f"heartbeat after e1's takeover reported {lost}, expected [{e1!r}]"
        assert_fields(get_row(store, ns, e2), "the row still leased", lease_expires_at=T0 + 2_550)
        lost = store.heartbeat([Lease(fresh_id(), 1, "w1")], now_ms=T0 + 1_600, lease_ms=1_000)
        assert len(lost) == 1, f"heartbeat of an unknown execution reported {lost}"


def check_fencing_after_takeover(make_store: StoreFactory) -> None:
    """After a takeover every write with the old lease raises and changes nothing."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        old = claim_exactly(store, ns, "w-old", T0, eid, lease_ms=1_000)
        store.save_step(old.lease, step_record(eid, "a", 0), now_ms=T0, lease_ms=1_000)
        new = claim_exactly(store, ns, "w-new", T0 + 1_000, eid)
        assert new.lease.token > old.lease.token, "a takeover did not raise the token"
        assert_fenced(store, ns, old.lease, T0 + 1_100, "after a takeover")
        # The new owner is unaffected.
        assert store.heartbeat([new.lease], now_ms=T0 + 1_200, lease_ms=LONG_LEASE) == []
        store.save_step(new.lease, step_record(eid, "b", 1), now_ms=T0 + 1_200, lease_ms=LONG_LEASE)
        store.finish(new.lease, status=Status.COMPLETED, now_ms=T0 + 1_300, output=b"ok")
        assert_fields(get_row(store, ns, eid), "the new owner's result", output=b"ok")


def check_fenced_write_races_takeover(make_store: StoreFactory) -> None:
    """An owner saving steps in a loop while its lease is taken over: nothing it writes
    lands after the takeover (the new owner's claim saw every step that exists)."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        old = claim_exactly(store, ns, "w-old", T0, eid, lease_ms=1_000)
        saved: list[str] = []
        started = threading.Event()

        def owner() -> None:
            for i in range(100_000):
                try:
                    store.save_step(
                        old.lease, step_record(eid, f"s{i}", i), now_ms=T0, lease_ms=1_000
                    )
                except LeaseLostError:
                    return
                saved.append(f"s{i}")
                started.set()
            raise AssertionError("the old owner never lost its lease")

        def taker() -> Claim:
            assert started.wait(30), "the owner never saved a step"
            for _ in range(100_000):
                claims = claim_due(store, ns, "w-new", T0 + 1_000, limit=1)
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
        assert_same(
            store.list_steps(eid), new.steps, "the steps after the race: a late write landed"
        )


def check_cancel_fences_owner(make_store: StoreFactory) -> None:
    """Cancelling a running execution fences out its owner."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        store.save_step(claim.lease, step_record(eid, "a", 0), now_ms=T0, lease_ms=LONG_LEASE)
        assert store.cancel(ns, eid, now_ms=T0 + 5) is True, "cancel of a running one failed"
        assert_fields(
            get_row(store, ns, eid),
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
        assert_fenced(store, ns, claim.lease, T0 + 10, "after a cancel")
        assert_nothing_claimable(store, ns, FAR, "the execution is cancelled")
        assert store.next_wake_at(ns, [WF]) is None, "a cancelled execution still has a wake time"


def check_release(make_store: StoreFactory) -> None:
    """release: pending, claimable at once by anyone, no attempt used, old lease fenced."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        first = claim_exactly(store, ns, "w1", T0, eid)
        step = step_record(eid, "a", 0)
        store.save_step(first.lease, step, now_ms=T0, lease_ms=LONG_LEASE)
        assert store.release(first.lease, now_ms=T0 + 5) is True, "release of a live lease"
        assert_fields(
            get_row(store, ns, eid),
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
        assert_fenced(store, ns, first.lease, T0 + 5, "after a release")
        second = claim_exactly(store, ns, "w2", T0 + 5, eid)
        assert_fields(
            second,
            "the claim after a release",
            previous_status=Status.PENDING,
            takeover=False,
            steps=[step],
            lease=Lease(eid, first.lease.token + 2, "w2"),
        )
        assert_fields(
            second.execution,
            "the execution claimed after a release",
            attempt=first.execution.attempt,
            started_at=T0,
        )


def check_owned_leases(make_store: StoreFactory) -> None:
    """owned_leases: the running executions of the namespace leased to one worker id, with
    their current tokens; nothing sleeping, finished, released or of another owner."""
    with opened(make_store) as store:
        ns, other_ns = fresh_namespace(), fresh_namespace()
        assert store.owned_leases(ns, "w1") == [], "owned_leases of an empty namespace"
        assert isinstance(store.reconnects, int), "reconnects is a count"
        ids = [create_one(store, ns, created_at=T0 + i) for i in range(5)]
        foreign = create_one(store, other_ns)
        mine = claim_due(store, ns, "w1", T0 + 10, limit=3)
        theirs = claim_due(store, ns, "w2", T0 + 10, limit=2)
        claim_due(store, other_ns, "w1", T0 + 10, limit=1)
        assert {c.execution.id for c in mine} | {c.execution.id for c in theirs} == set(ids)
        owned = sorted(store.owned_leases(ns, "w1"), key=lambda lease: lease.execution_id)
        expected = sorted((c.lease for c in mine), key=lambda lease: lease.execution_id)
        assert_same(owned, expected, "owned_leases of w1 (three claimed, none elsewhere)")
        # Suspended, finished and released executions are no longer leased.
        store.suspend(mine[0].lease, wake_at_ms=T0 + 1_000, now_ms=T0 + 20)
        store.finish(mine[1].lease, status=Status.COMPLETED, now_ms=T0 + 20, output=b"1")
        assert_same(store.owned_leases(ns, "w1"), [mine[2].lease], "owned_leases after a suspend")
        assert store.release(mine[2].lease, now_ms=T0 + 30) is True
        assert_same(store.owned_leases(ns, "w1"), [], "owned_leases after a release")
        # A takeover moves the lease to its new owner, with the new token.
        later = claim_due(store, ns, "w1", T0 + 10 + LONG_LEASE + 1)
        assert {c.execution.id for c in theirs} <= {c.execution.id for c in later}, (
            "the expired leases of w2 were taken over"
        )
        assert_same(
            sorted(store.owned_leases(ns, "w1"), key=lambda lease: lease.execution_id),
            sorted((c.lease for c in later), key=lambda lease: lease.execution_id),
            "owned_leases after takeovers (the new tokens)",
        )
        assert_same(
            store.owned_leases(ns, "w2"), [], "a lease taken over is no longer its old owner's"
        )
        assert [lease.execution_id for lease in store.owned_leases(other_ns, "w1")] == [foreign], (
            "owned_leases stays in its namespace"
        )


def check_sleep(make_store: StoreFactory) -> None:
    """suspend: sleeping, lease released, step saved with it, claimable at the wake time."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        a = step_record(eid, "a", 0)
        store.save_step(claim.lease, a, now_ms=T0, lease_ms=LONG_LEASE)
        nap = step_record(
            eid, "nap", 1, status=StepStatus.SLEEPING, output=b"t0+5000", completed_at=None
        )
        store.suspend(claim.lease, wake_at_ms=T0 + 5_000, now_ms=T0 + 10, step=nap)
        assert_fields(
            get_row(store, ns, eid),
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
        assert_same(store.list_steps(eid), [a, nap], "the steps after suspend(step=...)")
        assert store.next_wake_at(ns, [WF]) == T0 + 5_000, "next_wake_at of a sleeper"
        assert_fenced(store, ns, claim.lease, T0 + 20, "after suspend")
        assert_nothing_claimable(store, ns, T0 + 4_999, "the sleep ends at t0+5000")
        woken = claim_exactly(store, ns, "w2", T0 + 5_000, eid)
        assert_fields(
            woken,
            "the wake-up claim",
            previous_status=Status.SLEEPING,
            takeover=False,
            steps=[a, nap],
            lease=Lease(eid, claim.lease.token + 1, "w2"),
        )
        assert_fields(
            woken.execution,
            "the woken execution",
            status=Status.RUNNING,
            attempt=1,
            sleep_until=None,
            started_at=T0,
        )
        # suspend without a step saves none.
        store.suspend(woken.lease, wake_at_ms=T0 + 9_000, now_ms=T0 + 5_001)
        assert_same(store.list_steps(eid), [a, nap], "the steps after suspend() without a step")
        assert_fields(
            get_row(store, ns, eid), "suspended again", status=Status.SLEEPING, wake_at=T0 + 9_000
        )


def check_retry(make_store: StoreFactory) -> None:
    """schedule_retry: pending, attempt + 1, due at run_at, error kept."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        a = step_record(eid, "a", 0)
        store.save_step(claim.lease, a, now_ms=T0, lease_ms=LONG_LEASE)
        store.schedule_retry(
            claim.lease,
            run_at_ms=T0 + 3_000,
            error_type="ValueError",
            error_message="boom",
            now_ms=T0 + 20,
        )
        assert_fields(
            get_row(store, ns, eid),
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
        assert_fenced(store, ns, claim.lease, T0 + 30, "after schedule_retry")
        assert_nothing_claimable(store, ns, T0 + 2_999, "the retry is due at t0+3000")
        retry = claim_exactly(store, ns, "w2", T0 + 3_000, eid)
        assert_fields(
            retry,
            "the retry claim",
            previous_status=Status.PENDING,
            takeover=False,
            steps=[a],
        )
        assert_fields(
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
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns, timeout_ms=10_000)
        assert_fields(
            get_row(store, ns, eid), "before the first claim", timeout_at=None, wake_at=T0
        )
        claim = claim_exactly(store, ns, "w1", T0, eid, lease_ms=60_000)
        assert_fields(
            claim.execution,
            "a claimed execution with a timeout",
            timeout_at=T0 + 10_000,
            lease_expires_at=T0 + 60_000,
            wake_at=T0 + 10_000,
        )
        store.heartbeat([claim.lease], now_ms=T0 + 100, lease_ms=60_000)
        assert_fields(
            get_row(store, ns, eid),
            "after a heartbeat",
            lease_expires_at=T0 + 60_100,
            wake_at=T0 + 10_000,
        )
        store.save_step(claim.lease, step_record(eid), now_ms=T0 + 150, lease_ms=60_000)
        assert_fields(get_row(store, ns, eid), "after save_step", wake_at=T0 + 10_000)
        store.suspend(claim.lease, wake_at_ms=T0 + 60_000, now_ms=T0 + 200)
        assert_fields(
            get_row(store, ns, eid),
            "a sleep past the timeout",
            sleep_until=T0 + 60_000,
            wake_at=T0 + 10_000,
        )
        assert store.next_wake_at(ns, [WF]) == T0 + 10_000, "next_wake_at ignores the timeout"
        assert_nothing_claimable(store, ns, T0 + 9_999, "the timeout is at t0+10000")
        late = claim_exactly(store, ns, "w2", T0 + 10_000, eid, lease_ms=60_000)
        assert_fields(
            late.execution,
            "claimed at its timeout",
            timeout_at=T0 + 10_000,
            started_at=T0,
            wake_at=T0 + 10_000,
        )
        store.schedule_retry(
            late.lease, run_at_ms=T0 + 99_000, error_type="E", error_message="m", now_ms=T0 + 10_001
        )
        assert_fields(
            get_row(store, ns, eid),
            "a retry past the timeout",
            run_at=T0 + 99_000,
            next_retry_at=T0 + 99_000,
            wake_at=T0 + 10_000,
        )


def _check_finish(make_store: StoreFactory, status: Status, **result: Any) -> None:
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns, timeout_ms=60_000)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        store.schedule_retry(
            claim.lease, run_at_ms=T0 + 1, error_type="Old", error_message="old", now_ms=T0
        )
        claim = claim_exactly(store, ns, "w1", T0 + 1, eid)
        store.suspend(claim.lease, wake_at_ms=T0 + 2, now_ms=T0 + 1)
        claim = claim_exactly(store, ns, "w1", T0 + 2, eid)
        store.finish(claim.lease, status=status, now_ms=T0 + 50, **result)
        assert_fields(
            get_row(store, ns, eid),
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
        assert_nothing_claimable(store, ns, FAR, f"the execution is {status.value}")
        assert store.next_wake_at(ns, [WF]) is None, f"a {status.value} one has a wake time"
        assert_fenced(store, ns, claim.lease, T0 + 60, f"after finish({status.value})")
        before = get_row(store, ns, eid)
        assert store.cancel(ns, eid, now_ms=T0 + 70) is False, "cancel of a finished one"
        assert_same(get_row(store, ns, eid), before, f"a {status.value} row after cancel")


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
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        before = snapshot_of(store, ns, eid)
        for bad in (Status.RUNNING, Status.PENDING, Status.SLEEPING, Status.CANCELLED):
            try:
                store.finish(claim.lease, status=bad, now_ms=T0 + 1)
            except ValueError:
                pass
            else:
                raise AssertionError(f"finish(status={bad.value}) did not raise ValueError")
            assert_unchanged(store, ns, eid, before, f"finish(status={bad.value})")


def check_park(make_store: StoreFactory) -> None:
    """park: pending again at the given time, no attempt used, parks counted, the error
    kept, the lease fenced out; retry_execution makes a parked execution due at once."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        store.park(
            claim.lease,
            wake_at_ms=T0 + 60_000,
            error_type="NonDeterminismError",
            error_message="the history has step 'a', the code did step 'b'",
            now_ms=T0 + 1,
        )
        assert_fields(
            get_row(store, ns, eid),
            "a parked execution",
            status=Status.PENDING,
            attempt=1,
            parks=1,
            wake_at=T0 + 60_000,
            next_retry_at=T0 + 60_000,
            error_type="NonDeterminismError",
            lease_owner=None,
        )
        assert_lease_lost(
            lambda: store.park(
                claim.lease, wake_at_ms=T0, error_type="E", error_message="m", now_ms=T0 + 2
            ),
            "park after parking",
        )
        assert_nothing_claimable(store, ns, T0 + 59_999, "a parked execution before its time")
        again = claim_exactly(store, ns, "w2", T0 + 60_000, eid)
        assert_fields(again.execution, "the claim after a park", attempt=1, parks=1)
        store.park(
            again.lease,
            wake_at_ms=T0 + 10**9,
            error_type="E",
            error_message="m",
            now_ms=T0 + 60_001,
        )
        assert get_row(store, ns, eid).parks == 2, "parks counts every park"
        assert store.retry_execution(ns, eid, now_ms=T0 + 70_000) is True, "resume a parked one"
        assert_fields(
            get_row(store, ns, eid),
            "a resumed execution",
            status=Status.PENDING,
            wake_at=T0 + 70_000,
            attempt=1,
            parks=2,
        )
        claim_exactly(store, ns, "w3", T0 + 70_000, eid)
        other = create_one(store, ns)
        assert store.retry_execution(ns, other, now_ms=T0) is False, "a pending, never parked one"


#: the checks of this module, in order
CHECKS: list[Check] = [
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
    check_fencing_after_takeover,
    check_fenced_write_races_takeover,
    check_cancel_fences_owner,
    check_release,
    check_owned_leases,
    check_sleep,
    check_retry,
    check_timeout_caps_wake_at,
    check_finish_completed,
    check_finish_failed,
    check_finish_rejects_non_terminal_status,
    check_park,
]

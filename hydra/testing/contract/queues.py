"""The contract of ``QueueStore`` and of the claim under a queue's limits (``hydra.queues``):
stored registrations; priority order; global, per-key and per-worker concurrency held by
slots that belong to the execution (kept by a takeover, freed by every move out of
``running``); rate limits on first starts only, exact in time."""

from __future__ import annotations

import dataclasses

from hydra.status import Status
from hydra.store.base import Claim, Store
from hydra.store.queues import QueueRow
from hydra.testing.contract._support import (
    LONG_LEASE,
    T0,
    Check,
    StoreFactory,
    assert_same,
    claim_due,
    fresh_namespace,
    get_row,
    new_execution,
    opened,
)

Q = "emails"


def queued(
    store: Store,
    ns: str,
    count: int = 1,
    *,
    queue: str = Q,
    priority: int = 0,
    key: str | None = None,
    at: int = T0,
) -> list[str]:
    """``count`` pending executions in ``queue``, created 1 ms apart from ``at``."""
    ids = []
    for i in range(count):
        new = dataclasses.replace(
            new_execution(ns, run_at=at + i, created_at=at + i),
            queue=queue,
            priority=priority,
            concurrency_key=key,
        )
        store.create_execution(new)
        ids.append(new.id)
    return ids


def register(store: Store, ns: str, **limits: int) -> QueueRow:
    return store.upsert_queue(QueueRow(ns, Q, **limits), now_ms=T0)


def ids_of(claims: list[Claim]) -> list[str]:
    return [c.execution.id for c in claims]


def slots_held(store: Store, ns: str) -> list[str]:
    return [s.execution_id for s in store.list_slots(ns)]


def check_queue_registration_is_stored(make_store: StoreFactory) -> None:
    """A registration is read back as stored; registering again replaces the limits and
    keeps the first registration's time."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        assert_same(store.get_queue(ns, Q), None, "get_queue of a queue never registered")
        first = register(store, ns, concurrency=3, rate_limit=10, rate_per_ms=60_000)
        assert_same(
            (first.concurrency, first.rate_limit, first.rate_per_ms, first.created_at),
            (3, 10, 60_000, T0),
            "the registration as returned",
        )
        again = store.upsert_queue(
            QueueRow(namespace=ns, name=Q, key_concurrency=1, worker_concurrency=2),
            now_ms=T0 + 5,
        )
        assert_same(
            (again.concurrency, again.key_concurrency, again.worker_concurrency, again.rate_limit),
            (None, 1, 2, None),
            "the limits after registering again",
        )
        assert_same((again.created_at, again.updated_at), (T0, T0 + 5), "created_at, updated_at")
        assert_same(store.get_queue(ns, Q), again, "get_queue after registering again")
        assert_same([q.name for q in store.list_queues(ns)], [Q], "list_queues")
        assert_same(store.list_queues(fresh_namespace()), [], "list_queues of another namespace")


def check_priority_then_fifo(make_store: StoreFactory) -> None:
    """Higher priority first among due executions; FIFO within a priority; in the default
    queue as in a registered one."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        low = queued(store, ns, 2, queue="default", priority=0, at=T0)
        high = queued(store, ns, 2, queue="default", priority=10, at=T0 + 10)
        mid = queued(store, ns, 1, queue="default", priority=5, at=T0 + 20)
        order = [ids_of(claim_due(store, ns, "w", T0 + 100, limit=1)) for _ in range(5)]
        assert_same(
            order,
            [[high[0]], [high[1]], [mid[0]], [low[0]], [low[1]]],
            "claims one at a time (priority 10, 10, 5, 0, 0; created in that order within)",
        )
        ns = fresh_namespace()
        register(store, ns, concurrency=10)
        low = queued(store, ns, 2, priority=-1, at=T0)
        high = queued(store, ns, 2, priority=3, at=T0 + 10)
        got = ids_of(claim_due(store, ns, "w", T0 + 100, limit=3))
        assert_same(got, [high[0], high[1], low[0]], "one claim of 3 in a limited queue")


def check_concurrency_limit_holds_and_frees(make_store: StoreFactory) -> None:
    """``concurrency=2``: two run at once; a finish, a sleep, a retry or a release frees
    a slot in the same write; a sleeping execution holds none."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        register(store, ns, concurrency=2)
        ids = queued(store, ns, 6)
        first = claim_due(store, ns, "w1", T0 + 100, limit=10)
        assert_same(ids_of(first), ids[:2], "a claim of 10 in a queue of concurrency 2")
        assert_same(
            ids_of(claim_due(store, ns, "w2", T0 + 100, limit=10)), [], "a claim with both held"
        )
        assert_same(sorted(slots_held(store, ns)), sorted(ids[:2]), "the slots' holders")
        store.finish(first[0].lease, status=Status.COMPLETED, now_ms=T0 + 101, output=b"1")
        third = claim_due(store, ns, "w2", T0 + 102, limit=10)
        assert_same(ids_of(third), [ids[2]], "the claim after one finished")
        store.suspend(first[1].lease, wake_at_ms=T0 + 10_000, now_ms=T0 + 103)
        fourth = claim_due(store, ns, "w2", T0 + 104, limit=10)
        assert_same(ids_of(fourth), [ids[3]], "the claim after one went to sleep")
        store.schedule_retry(
            third[0].lease,
            run_at_ms=T0 + 20_000,
            error_type="E",
            error_message="e",
            now_ms=T0 + 105,
        )
        fifth = claim_due(store, ns, "w2", T0 + 106, limit=10)
        assert_same(ids_of(fifth), [ids[4]], "the claim after one was scheduled for a retry")
        assert store.release(fifth[0].lease, now_ms=T0 + 107), "release of an owned lease"
        sixth = claim_due(store, ns, "w3", T0 + 108, limit=10)
        assert_same(ids_of(sixth), [ids[5]], "the claim after a release (due before it)")
        assert_same(
            sorted(slots_held(store, ns)), sorted([ids[3], ids[5]]), "the slots' holders now"
        )
        # The sleeper wakes: due, but both slots are held, so it waits its turn.
        assert_same(
            ids_of(claim_due(store, ns, "w3", T0 + 10_000, limit=10)),
            [],
            "a claim when the sleeper is due and both slots are held",
        )
        store.finish(sixth[0].lease, status=Status.COMPLETED, now_ms=T0 + 10_001)
        again = claim_due(store, ns, "w3", T0 + 10_002, limit=10)
        assert_same(ids_of(again), [ids[4]], "the claim after a slot freed (the released one)")
        store.finish(fourth[0].lease, status=Status.COMPLETED, now_ms=T0 + 10_003)
        woke = claim_due(store, ns, "w3", T0 + 10_004, limit=10)
        assert_same(ids_of(woke), [ids[1]], "the claim after another freed (the woken sleeper)")


def check_lowered_concurrency_drains_first(make_store: StoreFactory) -> None:
    """Lowering ``concurrency`` from 3 to 1 stops nothing running; no execution starts
    until fewer than 1 run (those above the new limit have finished)."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        register(store, ns, concurrency=3)
        ids = queued(store, ns, 5)
        running = claim_due(store, ns, "w1", T0 + 10, limit=10)
        assert_same(ids_of(running), ids[:3], "the claim at concurrency 3")
        store.upsert_queue(QueueRow(ns, Q, concurrency=1), now_ms=T0 + 11)
        for claim in running[:2]:
            store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 12)
        assert_same(
            ids_of(claim_due(store, ns, "w2", T0 + 13, limit=10)),
            [],
            "a claim with 1 still running after lowering to 1",
        )
        store.finish(running[2].lease, status=Status.COMPLETED, now_ms=T0 + 14)
        assert_same(
            ids_of(claim_due(store, ns, "w2", T0 + 15, limit=10)), ids[3:4], "once none runs"
        )


def check_takeover_keeps_the_slot(make_store: StoreFactory) -> None:
    """A crashed worker's execution holds its slot until its lease expires; the takeover
    (by another worker) keeps it; nothing else starts meanwhile."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        register(store, ns, concurrency=1)
        ids = queued(store, ns, 3)
        crashed = claim_due(store, ns, "w1", T0 + 10, lease_ms=1_000, limit=10)
        assert_same(ids_of(crashed), ids[:1], "the first claim")
        assert_same(
            ids_of(claim_due(store, ns, "w2", T0 + 500, limit=10)),
            [],
            "a claim while the crashed worker's lease runs",
        )
        taken = claim_due(store, ns, "w2", T0 + 1_010, limit=10)
        assert_same(ids_of(taken), ids[:1], "the claim after the lease expired (the takeover only)")
        assert taken[0].takeover, "the claim after the lease expired is a takeover"
        assert_same(slots_held(store, ns), ids[:1], "the slot's holder after the takeover")
        store.finish(taken[0].lease, status=Status.COMPLETED, now_ms=T0 + 1_020)
        assert_same(slots_held(store, ns), [], "the slots after the finish")
        assert_same(
            ids_of(claim_due(store, ns, "w2", T0 + 1_030, limit=10)), ids[1:2], "the next claim"
        )


def check_cancel_frees_the_slot(make_store: StoreFactory) -> None:
    """Cancelling a running execution frees its slot in the same write."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        register(store, ns, concurrency=1)
        ids = queued(store, ns, 2)
        running = claim_due(store, ns, "w1", T0 + 10, limit=10)
        assert_same(ids_of(running), ids[:1], "the first claim")
        assert store.cancel(ns, ids[0], now_ms=T0 + 11), "cancel of a running execution"
        assert_same(slots_held(store, ns), [], "the slots after the cancel")
        assert_same(
            ids_of(claim_due(store, ns, "w2", T0 + 12, limit=10)), ids[1:], "the claim after it"
        )


def check_key_concurrency(make_store: StoreFactory) -> None:
    """``key_concurrency=1``: different keys in parallel, one key one at a time; an
    execution without a key is not limited by it."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        register(store, ns, key_concurrency=1)
        a = queued(store, ns, 2, key="customer-a", at=T0)
        b = queued(store, ns, 2, key="customer-b", at=T0 + 10)
        free = queued(store, ns, 2, key=None, at=T0 + 20)
        first = claim_due(store, ns, "w1", T0 + 100, limit=10)
        assert_same(
            ids_of(first),
            [a[0], b[0], free[0], free[1]],
            "a claim of 10 (one per key, keyless all)",
        )
        by_id = {c.execution.id: c for c in first}
        store.finish(by_id[a[0]].lease, status=Status.COMPLETED, now_ms=T0 + 101)
        assert_same(
            ids_of(claim_due(store, ns, "w2", T0 + 102, limit=10)),
            [a[1]],
            "the claim after customer-a's first finished",
        )
        keys = sorted((s.scope, s.key) for s in store.list_slots(ns))
        assert_same(keys, [("k", "customer-a"), ("k", "customer-b")], "the key slots held")


def check_a_full_key_does_not_hold_up_other_keys(make_store: StoreFactory) -> None:
    """``key_concurrency=1`` with 20 executions of one key ahead of another key's: the
    other key's runs at once; the first key's run one at a time, in order, each brought
    back when the one before frees the key's slot."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        register(store, ns, key_concurrency=1)
        acme = queued(store, ns, 20, key="acme", at=T0)
        globex = queued(store, ns, 1, key="globex", at=T0 + 100)
        first = claim_due(store, ns, "w1", T0 + 200, limit=5)
        assert_same(ids_of(first), [acme[0], globex[0]], "a claim of 5 (acme's first, globex)")
        assert_same(ids_of(claim_due(store, ns, "w2", T0 + 201, limit=5)), [], "the next claim")
        running = first[0]
        for i in range(1, 4):
            store.finish(running.lease, status=Status.COMPLETED, now_ms=T0 + 201 + i)
            got = claim_due(store, ns, "w2", T0 + 202 + i, limit=5)
            assert_same(ids_of(got), [acme[i]], f"the claim after acme's #{i} finished")
            running = got[0]
        # New limits look at what the key held back again (and a finish still brings one).
        store.upsert_queue(QueueRow(ns, Q, key_concurrency=3), now_ms=T0 + 300)
        got = claim_due(store, ns, "w3", T0 + 301, limit=5)
        assert_same(ids_of(got), acme[4:6], "the claim after raising key_concurrency to 3")


def check_resumes_are_not_behind_rate_limited_first_starts(make_store: StoreFactory) -> None:
    """A retry (a resume: not a first start) is claimed when due, though first starts the
    rate limit holds back are ahead of it."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        register(store, ns, rate_limit=1, rate_per_ms=60_000)
        ids = queued(store, ns, 6)
        first = claim_due(store, ns, "w", T0 + 10, limit=10)
        assert_same(ids_of(first), ids[:1], "a claim of 10 at 1 a minute")
        store.schedule_retry(
            first[0].lease,
            run_at_ms=T0 + 1_000,
            error_type="E",
            error_message="e",
            now_ms=T0 + 20,
        )
        got = claim_due(store, ns, "w", T0 + 1_000, limit=10)
        assert_same(ids_of(got), ids[:1], "the claim when the retry is due (5 first starts wait)")


def check_worker_concurrency(make_store: StoreFactory) -> None:
    """``worker_concurrency=2``: a claim takes at most 2 minus the worker's own runs of
    the queue in flight (``held``)."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        register(store, ns, worker_concurrency=2)
        ids = queued(store, ns, 5)
        got = store.claim(ns, ["wf"], "w1", now_ms=T0 + 10, lease_ms=LONG_LEASE, limit=10)
        assert_same(ids_of(got), ids[:2], "a claim with nothing in flight")
        got = store.claim(
            ns, ["wf"], "w1", now_ms=T0 + 11, lease_ms=LONG_LEASE, limit=10, held={Q: 2}
        )
        assert_same(ids_of(got), [], "a claim with 2 in flight")
        got = store.claim(
            ns, ["wf"], "w2", now_ms=T0 + 12, lease_ms=LONG_LEASE, limit=10, held={Q: 1}
        )
        assert_same(ids_of(got), ids[2:3], "another worker's claim with 1 in flight")


def check_rate_limit_is_exact_and_resumes_are_free(make_store: StoreFactory) -> None:
    """3 first starts per 60 s: the 4th waits until the first start's window ends, to the
    millisecond; an execution resuming after a sleep is not a first start."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        register(store, ns, rate_limit=3, rate_per_ms=60_000)
        ids = queued(store, ns, 5)
        first = claim_due(store, ns, "w", T0 + 100, limit=10)
        assert_same(ids_of(first), ids[:3], "a claim of 10 at 3 per minute")
        assert_same(store.next_rate_at(ns, now_ms=T0 + 100), T0 + 60_100, "next_rate_at")
        store.suspend(first[0].lease, wake_at_ms=T0 + 1_000, now_ms=T0 + 200)
        resumed = claim_due(store, ns, "w", T0 + 1_000, limit=10)
        assert_same(ids_of(resumed), ids[:1], "the claim when the sleeper wakes (a resume)")
        assert_same(
            ids_of(claim_due(store, ns, "w", T0 + 60_099, limit=10)), [], "1 ms before its turn"
        )
        assert_same(
            ids_of(claim_due(store, ns, "w", T0 + 60_100, limit=10)),
            ids[3:5],
            "at its turn (the window of the first 3 starts has passed)",
        )
        # Lowering the limit keeps the newest first starts.
        store.upsert_queue(
            QueueRow(namespace=ns, name=Q, rate_limit=1, rate_per_ms=60_000), now_ms=T0 + 60_200
        )
        late = queued(store, ns, 1, at=T0 + 60_200)
        assert_same(
            ids_of(claim_due(store, ns, "w", T0 + 120_099, limit=10)),
            [],
            "after lowering to 1 a minute, within a minute of the last start",
        )
        assert_same(
            ids_of(claim_due(store, ns, "w", T0 + 120_100, limit=10)), late, "a minute after it"
        )


def check_unregistered_queue_and_stats(make_store: StoreFactory) -> None:
    """Executions of a queue with no registration are not limited; ``queue_stats`` counts
    each queue's backlog, scheduled and running executions."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        ghost = queued(store, ns, 3, queue="ghost")
        register(store, ns, concurrency=1)
        ids = queued(store, ns, 3)
        queued(store, ns, 1, at=T0 + 50_000)  # scheduled later
        got = claim_due(store, ns, "w", T0 + 100, limit=10)
        assert_same(sorted(ids_of(got)), sorted(ghost + ids[:1]), "a claim of 10")
        stats = {s.name: s for s in store.queue_stats(ns, now_ms=T0 + 100)}
        assert_same(sorted(stats), ["emails", "ghost"], "the queues in queue_stats")
        emails = stats["emails"]
        assert_same(
            (
                emails.backlog,
                emails.oldest_due_at,
                emails.scheduled,
                emails.running,
                emails.slots_held,
            ),
            (2, T0 + 1, 1, 1, 1),
            "emails: backlog, oldest due, scheduled, running, slots held",
        )
        assert_same(stats["ghost"].config, None, "an unregistered queue's config")
        assert_same(stats["ghost"].running, 3, "ghost: running")
        assert_same(get_row(store, ns, ids[0]).queue, Q, "an execution's queue as stored")


def check_list_executions_by_queue_time_and_key(make_store: StoreFactory) -> None:
    """``list_executions`` narrowed by queue, by creation time and by idempotency key."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        early = queued(store, ns, 2, queue="emails", at=T0)
        late = queued(store, ns, 2, queue="default", at=T0 + 1_000)
        keyed = dataclasses.replace(
            new_execution(ns, run_at=T0 + 2_000, key="order-7"), queue="emails"
        )
        store.create_execution(keyed)

        def ids(**filters: object) -> list[str]:
            return [r.id for r in store.list_executions(ns, limit=10, **filters)]  # type: ignore[arg-type]

        assert_same(ids(queue="emails"), [keyed.id, early[1], early[0]], "queue='emails'")
        assert_same(ids(queue="default"), [late[1], late[0]], "queue='default'")
        assert_same(
            ids(created_after_ms=T0 + 1_000), [keyed.id, late[1], late[0]], "created_after_ms"
        )
        assert_same(ids(idempotency_key="order-7"), [keyed.id], "idempotency_key")
        assert_same(ids(idempotency_key="order-8"), [], "an unused idempotency_key")
        assert_same(ids(queue="default", created_after_ms=T0 + 1_001), [late[1]], "queue and time")


CHECKS: list[Check] = [
    check_queue_registration_is_stored,
    check_priority_then_fifo,
    check_concurrency_limit_holds_and_frees,
    check_lowered_concurrency_drains_first,
    check_takeover_keeps_the_slot,
    check_cancel_frees_the_slot,
    check_key_concurrency,
    check_a_full_key_does_not_hold_up_other_keys,
    check_resumes_are_not_behind_rate_limited_first_starts,
    check_worker_concurrency,
    check_rate_limit_is_exact_and_resumes_are_free,
    check_unregistered_queue_and_stats,
    check_list_executions_by_queue_time_and_key,
]

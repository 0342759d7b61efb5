"""A queue's limits across workers with their own connections, on every SQL backend:
eight workers never run more than ``concurrency`` executions of a queue at once (and do
reach it); a claim transaction held open by one claimer does not let another exceed the
limit; per-key limits in parallel workers (issue 15)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import hydra
from hydra.store.base import Claim
from hydra.store.queues import QueueRow
from hydra.store.sql import SQLStore

WAIT_S = 120


#: how long a body lingers, at most, for others to join it (``InFlight(linger_for=)``)
LINGER_S = 0.02


class InFlight:
    """Counts bodies running at once, overall and per key.

    ``linger_for``: a body keeps running (up to LINGER_S) until that many run at once.
    On SQLite the workers' stores wait for the database's one write lock in SQLite's busy
    handler, which sleeps 1, 2, 5, 10... ms per try: bodies of 2 ms seldom overlapped
    three at a time on a slow machine (CI once saw at most 2 over 500 executions),
    though nothing held the third back. Lingering gives the claimers that time; it
    cannot raise the count past what the claims let run.
    """

    def __init__(self, linger_for: int | None = None) -> None:
        self.lock = threading.Condition()
        self.linger_for = linger_for
        self.now = 0
        self.most = 0
        self.by_key: dict[str, int] = {}
        self.most_by_key: dict[str, int] = {}

    @contextmanager
    def running(self, key: str) -> Iterator[None]:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.by_key[key] = self.by_key.get(key, 0) + 1
            self.most_by_key[key] = max(self.most_by_key.get(key, 0), self.by_key[key])
            self.lock.notify_all()
        try:
            time.sleep(0.002)  # long enough for other workers to claim meanwhile
            target = self.linger_for
            if target is not None:
                with self.lock:
                    self.lock.wait_for(lambda: self.now >= target, LINGER_S)
            yield
        finally:
            with self.lock:
                self.now -= 1
                self.by_key[key] -= 1


def limited_workflow(name: str, seen: InFlight) -> hydra.Workflow[Any]:
    @hydra.workflow(name)
    def body(ctx: hydra.WorkflowContext, key: str) -> str:
        def work() -> str:
            with seen.running(key):
                return key

        return hydra.step(ctx, "work", work)

    return body


def drain(
    make_store: Callable[[], SQLStore],
    queue: hydra.Queue,
    keys: list[str],
    *,
    workers: int = 8,
    use_keys: bool = False,
    linger_for: int | None = None,
) -> InFlight:
    """Start one execution per key in ``queue`` and run them all on ``workers`` workers,
    each with its own store (connections); the bodies' overlap."""
    seen = InFlight(linger_for)
    ns = f"ql-{uuid.uuid4().hex[:12]}"
    wf = limited_workflow(f"limited-{uuid.uuid4().hex[:6]}", seen)
    engines = [hydra.Engine(make_store(), namespace=ns) for _ in range(workers)]
    engines[0].register_queue(queue)
    ids = [
        engines[0].start_workflow(
            wf, key, queue=queue.name, concurrency_key=key if use_keys else None
        )
        for key in keys
    ]
    with ExitStack() as stack:
        for i, engine in enumerate(engines):
            worker = stack.enter_context(
                hydra.Worker(engine, worker_id=f"w{i}", concurrency=4, poll_interval=0.005)
            )
            worker.register(wf)
        for eid in ids:
            assert engines[0].wait(eid, timeout=WAIT_S).status == "completed"
    assert engines[0].store.list_slots(ns) == [], "every slot freed at the end"
    return seen


def test_eight_workers_never_run_more_than_the_queue_s_concurrency(
    sql_store_factory: Callable[[], SQLStore],
) -> None:
    seen = drain(
        sql_store_factory,
        hydra.Queue("three", concurrency=3),
        [f"k{i}" for i in range(500)],
        linger_for=3,
    )
    assert seen.most == 3, f"at most 3 at once, and 3 reached; saw {seen.most}"


def test_one_key_runs_one_at_a_time_and_keys_run_in_parallel(
    sql_store_factory: Callable[[], SQLStore],
) -> None:
    keys = [f"customer-{i % 4}" for i in range(120)]
    seen = drain(
        sql_store_factory, hydra.Queue("per-customer", key_concurrency=1), keys, use_keys=True
    )
    assert max(seen.most_by_key.values()) == 1, seen.most_by_key
    assert seen.most > 1, "different keys ran in parallel"


def test_a_claim_transaction_held_open_does_not_let_another_exceed_the_limit(
    sql_store_factory: Callable[[], SQLStore],
) -> None:
    """Claimer A takes the only slot and stops inside its claim transaction (not yet
    committed); claimer B's claim meanwhile must not take a second one: it waits for A's
    transaction (PostgreSQL, MariaDB: the slot's primary key; SQLite: the write lock)
    and then finds the slot taken."""
    store_a, store_b = sql_store_factory(), sql_store_factory()
    ns = f"qh-{uuid.uuid4().hex[:12]}"
    store_a.upsert_queue(QueueRow(ns, "one", concurrency=1), now_ms=1)
    engine = hydra.Engine(store_a, namespace=ns)
    ids = [engine.start_workflow("held", i, queue="one") for i in range(2)]
    now = engine.clock.now_ms() + 1_000
    inside = threading.Event()
    let_go = threading.Event()
    real_take_slot = store_a._take_slot

    def take_slot_then_pause(*args: Any, **kwargs: Any) -> Any:
        taken = real_take_slot(*args, **kwargs)
        inside.set()
        assert let_go.wait(WAIT_S)
        return taken

    store_a._take_slot = take_slot_then_pause  # type: ignore[method-assign]
    got: dict[str, list[Claim]] = {}

    def claim(name: str, store: SQLStore) -> None:
        got[name] = store.claim(ns, ["held"], name, now_ms=now, lease_ms=60_000, limit=5)

    a = threading.Thread(target=claim, args=("a", store_a))
    a.start()
    assert inside.wait(WAIT_S), "claimer A reached its slot"
    b = threading.Thread(target=claim, args=("b", store_b))
    b.start()
    b.join(0.5)
    # B cannot have claimed anything while A's transaction is open (if it returned, it
    # returned nothing); then A commits.
    assert got.get("b", []) == []
    let_go.set()
    a.join(WAIT_S)
    b.join(WAIT_S)
    assert [c.execution.id for c in got["a"]] == ids[:1]
    assert got["b"] == [], "B took no second slot"
    assert [s.execution_id for s in store_b.list_slots(ns)] == ids[:1]


def test_worker_concurrency_bounds_each_worker(
    sql_store_factory: Callable[[], SQLStore],
) -> None:
    """``worker_concurrency=2``: three workers of concurrency 8 each run at most 2 of the
    queue at once (and some reach 2)."""
    lock = threading.Lock()
    now: dict[str, int] = {}
    most: dict[str, int] = {}
    name = f"per-worker-{uuid.uuid4().hex[:6]}"

    @hydra.workflow(name)
    def body(ctx: hydra.WorkflowContext, n: int) -> int:
        worker = ctx.worker_id

        def work() -> int:
            with lock:
                now[worker] = now.get(worker, 0) + 1
                most[worker] = max(most.get(worker, 0), now[worker])
            time.sleep(0.003)
            with lock:
                now[worker] -= 1
            return n

        return hydra.step(ctx, "work", work)

    ns = f"qw-{uuid.uuid4().hex[:12]}"
    engines = [hydra.Engine(sql_store_factory(), namespace=ns) for _ in range(3)]
    engines[0].register_queue(hydra.Queue("two-each", worker_concurrency=2))
    ids = [engines[0].start_workflow(body, i, queue="two-each") for i in range(90)]
    with ExitStack() as stack:
        for i, engine in enumerate(engines):
            worker = stack.enter_context(
                hydra.Worker(engine, worker_id=f"pw{i}", concurrency=8, poll_interval=0.005)
            )
            worker.register(body)
        for eid in ids:
            assert engines[0].wait(eid, timeout=WAIT_S).status == "completed"
    assert max(most.values()) == 2, most

"""``engine.wait`` on a store with notifications (PostgreSQL) LISTENs for finished executions.

The waiting engine has its own store object and no worker, as if in another process, so
nothing in-process can wake it. The tests check that the wait's listener was woken by a
notification and that the execution's status was read exactly twice (before blocking, and
once after the notification); the fallback re-read interval is set to a minute, so a missed
notification would fail the wait's timeout rather than pass by polling.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import hydra
from hydra.records import Execution
from hydra.store.base import ExecutionRow, Store, WakeListener

WAIT = 15


@pytest.fixture
def engine(store_factory: Callable[[], Store]) -> hydra.Engine:
    return hydra.Engine(store_factory(), namespace=f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def make_worker(engine: hydra.Engine) -> Iterator[Callable[..., hydra.Worker]]:
    workers: list[hydra.Worker] = []

    def make(*workflows: hydra.Workflow[Any]) -> hydra.Worker:
        worker = hydra.Worker(engine, poll_interval=0.02, heartbeat_interval=0.5)
        for wf in workflows:
            worker.register(wf)
        worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.shutdown(timeout=10)


class CountingEngine:
    """An engine on its own store whose status reads (what ``wait`` polls) are counted."""

    def __init__(self, store: Store, namespace: str) -> None:
        self.engine = hydra.Engine(store, namespace=namespace)
        self.engine._finished_poll_s = 60  # no fallback re-read within the test
        self.reads = 0
        self.first_read = threading.Event()
        original = self.engine._row

        def counted(execution_id: str) -> ExecutionRow:
            row = original(execution_id)
            self.reads += 1
            self.first_read.set()
            return row

        self.engine._row = counted  # type: ignore[method-assign]
        # What the engine's "finished" listener returned, call by call (True: notified).
        self.notified: list[bool] = []
        open_listener = store.open_listener

        def opened(namespace: str, channel: str = "work") -> WakeListener | None:
            listener = open_listener(namespace, channel)
            if listener is not None:
                wait = listener.wait

                def recorded(timeout_s: float) -> bool:
                    got = wait(timeout_s)
                    self.notified.append(got)
                    return got

                listener.wait = recorded  # type: ignore[method-assign]
            return listener

        store.open_listener = opened  # type: ignore[method-assign]

    @property
    def notifications(self) -> int:
        return self.notified.count(True)


def _needs_notify(store: Store) -> None:
    if not store.supports_notify:
        pytest.skip("the store has no cross-process notifications (supports_notify=False)")


def test_wait_in_another_engine_is_woken_by_the_finish(
    store_factory: Callable[[], Store],
    engine: hydra.Engine,
    make_worker: Callable[..., hydra.Worker],
) -> None:
    _needs_notify(engine.store)
    waiter = CountingEngine(store_factory(), engine.namespace)

    @hydra.workflow("wait-finish")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        # Finish only once the waiter has read the execution and is blocking.
        hydra.step(ctx, "hold", lambda: waiter.first_read.wait(WAIT))
        return "done"

    make_worker(wf)
    eid = engine.start_workflow("wait-finish", None)
    ex = waiter.engine.wait(eid, timeout=WAIT)
    assert (ex.status, ex.output) == ("completed", "done")
    # Woken by the notification: one read before blocking, one after it.
    assert (waiter.notifications, waiter.reads) == (1, 2)
    # The engine's listener closes once no wait has used it for idle_s, and its connection
    # goes back to the pool (the store's hot path keeps its own driver connections
    # checked out: hydra/store/sql/driver.py).
    waiter.engine._watch.idle_s = 0.0
    store: Any = waiter.engine.store
    held = store._driver.held if store._driver is not None else 0
    deadline = time.monotonic() + WAIT
    while store.engine.pool.checkedout() != held and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.engine.pool.checkedout() == held


def test_waits_share_one_listener(
    store_factory: Callable[[], Store],
    engine: hydra.Engine,
    make_worker: Callable[..., hydra.Worker],
) -> None:
    _needs_notify(engine.store)
    waiter = CountingEngine(store_factory(), engine.namespace)
    opened: list[str] = []
    open_listener = waiter.engine.store.open_listener

    def counted(namespace: str, channel: str = "work") -> WakeListener | None:
        opened.append(channel)
        return open_listener(namespace, channel)

    waiter.engine.store.open_listener = counted  # type: ignore[method-assign]

    @hydra.workflow("wait-many")
    def wf(ctx: hydra.WorkflowContext, req: int) -> int:
        return hydra.step(ctx, "double", lambda: req * 2)

    make_worker(wf)
    results = [waiter.engine.wait(engine.start_workflow(wf, i), timeout=WAIT) for i in range(5)]
    assert [r.output for r in results] == [0, 2, 4, 6, 8]
    assert opened == ["finished"]  # one LISTEN for the five waits


def test_wait_in_another_engine_is_woken_by_a_cancel(
    store_factory: Callable[[], Store],
    engine: hydra.Engine,
    make_worker: Callable[..., hydra.Worker],
) -> None:
    _needs_notify(engine.store)
    waiter = CountingEngine(store_factory(), engine.namespace)
    release = threading.Event()

    @hydra.workflow("wait-cancel")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        hydra.step(ctx, "hold", lambda: release.wait(WAIT))
        return "not cancelled"

    make_worker(wf)
    eid = engine.start_workflow("wait-cancel", None)
    result: list[Execution] = []
    thread = threading.Thread(target=lambda: result.append(waiter.engine.wait(eid, timeout=WAIT)))
    thread.start()
    try:
        assert waiter.first_read.wait(WAIT)
        assert engine.cancel(eid)
        thread.join(WAIT)
        assert result and result[0].status == "cancelled"
        assert (waiter.notifications, waiter.reads) == (1, 2)
    finally:
        release.set()
        thread.join(WAIT)


def test_wait_without_notifications_polls(
    store_factory: Callable[[], Store],
    engine: hydra.Engine,
    make_worker: Callable[..., hydra.Worker],
) -> None:
    """Every store: wait in another engine still returns (polling where nothing notifies)."""

    @hydra.workflow("wait-any")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return hydra.step(ctx, "a", lambda: "ok")

    make_worker(wf)
    other = hydra.Engine(engine.store, namespace=engine.namespace)
    try:
        assert other._watch.join() == engine.store.supports_notify
    finally:
        other._watch.leave()
    assert other.wait(engine.start_workflow("wait-any", None), timeout=WAIT).output == "ok"

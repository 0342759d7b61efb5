"""Cron with real threaded ``hydra.Worker``s on every store, on a ``FakeClock`` the test
moves: several workers (each with its own engine and store connection, as separate
processes would have) fire each slot once; a long handler delays no other job.

Waits are bounded polls on conditions; nothing asserts a wall-clock duration."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hydra
from hydra.clock import to_ms
from hydra.store.base import Store
from hydra.testing import FakeClock
from tests.waiting import wait_until

WAIT = 20.0  # seconds: a bound against hangs, not an expectation
START = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)


class Calls:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[hydra.CronContext] = []

    def __call__(self, ctx: hydra.CronContext) -> None:
        with self.lock:
            self.calls.append(ctx)

    def slots(self) -> Counter[datetime]:
        with self.lock:
            return Counter(c.scheduled_at for c in self.calls)


@pytest.fixture
def cluster(store_factory: Callable[[], Store]) -> Iterator[Callable[..., list[hydra.Worker]]]:
    """Makes ``n`` workers, each on its own engine (and store, where the store can be shared
    across processes), all on one namespace and one FakeClock."""
    workers: list[hydra.Worker] = []

    def make(n: int, clock: FakeClock, setup: Callable[[hydra.Engine], Any]) -> list[hydra.Worker]:
        namespace = f"cron-{uuid.uuid4().hex[:12]}"
        first = store_factory()
        stores = [first] + [
            store_factory() if first.shared_across_processes else first for _ in range(n - 1)
        ]
        for i, store in enumerate(stores):
            engine = hydra.Engine(store, namespace=namespace, clock=clock)
            setup(engine)
            worker = hydra.Worker(engine, worker_id=f"w{i + 1}", poll_interval=0.005)
            worker.start()
            workers.append(worker)
        return workers[-n:]

    yield make
    for worker in workers:
        worker.shutdown(timeout=5)


def test_three_workers_fire_each_slot_once(cluster: Callable[..., list[hydra.Worker]]) -> None:
    clock = FakeClock(START)
    calls = Calls()
    workers = cluster(3, clock, lambda e: e.register_cron("* * * * *", "tick", calls))
    minutes = 6
    for minute in range(1, minutes + 1):
        slot = datetime(2030, 1, 1, 0, minute, tzinfo=UTC)
        clock.set(slot + timedelta(seconds=1))

        # (defaults bind this iteration's values: the conditions run within it anyway)
        def fired(s: datetime = slot) -> bool:
            return calls.slots()[s] >= 1

        wait_until(fired, f"slot {slot} fired")
        # Every worker has had two more passes at the slot: all of them tried to fire it.
        seen = [w._cron.ticks for w in workers]

        def looked(seen: list[int] = seen) -> bool:
            return all(w._cron.ticks >= n + 2 for w, n in zip(workers, seen, strict=True))

        wait_until(looked, "every worker looked at the slot")
    slots = calls.slots()
    assert sorted(slots) == [datetime(2030, 1, 1, 0, m, tzinfo=UTC) for m in range(1, minutes + 1)]
    assert set(slots.values()) == {1}, f"slots fired more than once: {slots.most_common(2)}"
    engine = workers[0].engine
    last = engine.store.last_cron_fire(engine.namespace, "tick")
    assert last is not None and last.slot_at == to_ms(datetime(2030, 1, 1, 0, minutes, tzinfo=UTC))
    assert last.worker_id in {"w1", "w2", "w3"}


def test_a_long_handler_delays_no_other_job(cluster: Callable[..., list[hydra.Worker]]) -> None:
    clock = FakeClock(START)
    release = threading.Event()
    slow_calls, fast = Calls(), Calls()

    def slow(ctx: hydra.CronContext) -> None:
        slow_calls(ctx)
        release.wait(WAIT)

    def setup(engine: hydra.Engine) -> None:
        engine.register_cron("* * * * *", "slow", slow)
        engine.register_cron("* * * * *", "fast", fast)

    (worker,) = cluster(1, clock, setup)
    engine = worker.engine
    try:
        for minute in (1, 2, 3):
            slot = datetime(2030, 1, 1, 0, minute, tzinfo=UTC)
            clock.set(slot)

            def fast_fired(s: datetime = slot) -> bool:
                return fast.slots()[s] == 1

            def slow_recorded(s: datetime = slot) -> bool:
                fire = engine.store.last_cron_fire(engine.namespace, "slow")
                return fire is not None and fire.slot_at == to_ms(s)

            wait_until(fast_fired, f"fast fired {slot}")
            # The slow job's slot is recorded on time too; only its handler waits its turn.
            wait_until(slow_recorded, f"slow's slot {slot} recorded")
        assert len(slow_calls.calls) == 1  # still inside its first call
    finally:
        release.set()
    wait_until(lambda: len(slow_calls.calls) == 3, "slow ran its queued slots")
    assert [c.fired_at - c.scheduled_at for c in fast.calls] == [timedelta(0)] * 3


def test_a_failing_handler_does_not_stop_the_worker_s_cron(
    cluster: Callable[..., list[hydra.Worker]],
) -> None:
    clock = FakeClock(START)
    calls = Calls()

    def boom(ctx: hydra.CronContext) -> None:
        calls(ctx)
        raise ValueError("nope")

    metrics = hydra.Metrics()

    def setup(engine: hydra.Engine) -> None:
        engine.use_metrics(metrics)
        engine.register_cron("* * * * *", "boom", boom)

    (worker,) = cluster(1, clock, setup)
    for minute in (1, 2):
        clock.set(datetime(2030, 1, 1, 0, minute, tzinfo=UTC))

        def fired(m: int = minute) -> bool:
            return len(calls.calls) == m

        wait_until(fired, f"fire {minute}")
    labels = {"namespace": worker.engine.namespace, "cron_job": "boom"}
    wait_until(
        lambda: metrics.registry.get_sample_value("hydra_cron_failures_total", labels) == 2,
        "both failures counted",
    )


def test_shutdown_lets_a_running_handler_finish(
    cluster: Callable[..., list[hydra.Worker]],
) -> None:
    clock = FakeClock(START)
    started, finished = threading.Event(), threading.Event()

    def handler(ctx: hydra.CronContext) -> None:
        started.set()
        time.sleep(0.05)
        finished.set()

    (worker,) = cluster(1, clock, lambda e: e.register_cron("* * * * *", "job", handler))
    clock.set(datetime(2030, 1, 1, 0, 1, tzinfo=UTC))
    assert started.wait(WAIT)
    worker.shutdown(timeout=WAIT)
    assert finished.is_set()

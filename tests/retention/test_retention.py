"""``Worker(retention=hydra.Retention(...))``: one worker per period purges, on the fake
clock and with real worker threads (issue 15, retention)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

import hydra
from hydra.retention import RetentionRunner
from hydra.store.base import Store
from hydra.testing import FakeClock, TestEnvironment

from .test_purge import noted

DAY = timedelta(days=1)


def test_one_runner_per_period_purges_on_the_fake_clock(
    store_factory: Callable[[], Store],
) -> None:
    env = TestEnvironment(
        store=store_factory(),
        namespace=f"ret-{uuid.uuid4().hex[:12]}",
        clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC)),
    )
    env.register(noted)
    done = env.start(noted, False)
    failed = env.start(noted, True)
    env.run_until_all_complete()
    keep = hydra.Retention(completed=DAY, failed=7 * DAY, every=timedelta(hours=1))
    runners = [RetentionRunner(env.engine, keep, f"w{i}") for i in range(3)]
    env.advance(2 * DAY)
    results = [r.tick() for r in runners]
    assert sorted(results, key=lambda r: -1 if r is None else r) == [None, None, 1]
    assert [r.tick() for r in runners] == [None, None, None]  # this period is done
    with pytest.raises(hydra.ExecutionNotFoundError):
        env.engine.get_execution(done)
    assert env.execution(failed).status == "failed"  # kept 7 days
    env.advance(6 * DAY)
    assert sum(r.tick() or 0 for r in runners) == 1
    assert env.engine.list_executions() == []


def test_retention_is_checked() -> None:
    with pytest.raises(ValueError):
        hydra.Retention(completed=timedelta(days=-1))
    with pytest.raises(ValueError, match="every"):
        hydra.Retention(completed=DAY, every=timedelta(0))
    assert hydra.Retention(failed=DAY).ages() == {"failed": DAY}


def test_a_worker_with_retention_purges_in_its_own_thread(
    sql_store_factory: Callable[[], Store],
) -> None:
    engine = hydra.Engine(sql_store_factory(), namespace=f"ret-{uuid.uuid4().hex[:12]}")
    with hydra.Worker(engine, poll_interval=0.02) as plain:
        plain.register(noted)
        eid = engine.start_workflow(noted, False)
        assert engine.wait(eid, timeout=30).status == "completed"
    keep = hydra.Retention(completed=timedelta(milliseconds=1), every=timedelta(seconds=1))
    with hydra.Worker(engine, poll_interval=0.02, retention=keep) as purging:
        purging.register(noted)
        deadline = time.monotonic() + 30
        while engine.list_executions() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert engine.list_executions() == []

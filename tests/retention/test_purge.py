"""``engine.purge``: finished executions past their age deleted with everything stored
for them, in batches, on every store (issue 15, retention)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hydra
from hydra.store.base import Store
from hydra.testing import FakeClock, TestEnvironment

DAY = timedelta(days=1)


@pytest.fixture
def env(store_factory: Callable[[], Store]) -> TestEnvironment:
    made = TestEnvironment(
        store=store_factory(),
        namespace=f"purge-{uuid.uuid4().hex[:12]}",
        clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC)),
    )
    made.register(noted)
    made.register(waits)
    return made


@hydra.workflow("noted")
def noted(ctx: hydra.WorkflowContext, fail: bool) -> str:
    hydra.set_event(ctx, "stage", "started")
    hydra.step(ctx, "work", lambda: "done")
    if fail:
        raise hydra.NonRetryableError("no")
    return "ok"


@hydra.workflow("waits")
def waits(ctx: hydra.WorkflowContext, _: None) -> Any:
    return hydra.receive(ctx, "go")


def finished(env: TestEnvironment, fail: bool = False, **options: Any) -> str:
    eid = env.start(noted, fail, **options)
    env.run_until_complete(eid)
    return eid


def test_only_old_finished_executions_go_with_everything_stored_for_them(
    env: TestEnvironment,
) -> None:
    old = [finished(env), finished(env, fail=True)]
    waiting = env.start(waits, None)
    env.send(waiting, "later", 1)  # a message it has not received: kept with it
    env.advance(40 * DAY)
    recent = finished(env)
    assert env.engine.purge(older_than=30 * DAY, dry_run=True) == 2
    assert env.engine.purge(older_than=30 * DAY) == 2
    for eid in old:
        with pytest.raises(hydra.ExecutionNotFoundError):
            env.engine.get_execution(eid)
        assert env.store.list_steps(eid) == [] and env.store.get_events(eid) == []
    assert env.execution(recent).status == "completed"
    assert env.execution(waiting).status == "sleeping"
    assert [m.topic for m in env.engine.list_messages(waiting)] == ["later"]


def test_statuses_workflow_and_batches(env: TestEnvironment) -> None:
    done = [finished(env) for _ in range(5)]
    failed = finished(env, fail=True)
    env.advance(2 * DAY)
    assert env.engine.purge(older_than=DAY, statuses=["failed"]) == 1
    assert env.engine.purge(older_than=DAY, workflow_name="other") == 0
    assert env.engine.purge(older_than=DAY, batch_size=2) == 5
    assert env.engine.list_executions() == []
    assert failed not in done


def test_an_idempotency_key_is_free_again_once_purged(env: TestEnvironment) -> None:
    first = finished(env, idempotency_key="order-42")
    assert env.start(noted, False, idempotency_key="order-42") == first
    env.advance(2 * DAY)
    assert env.engine.purge(older_than=DAY) == 1
    assert env.start(noted, False, idempotency_key="order-42") != first


def test_bad_arguments_are_refused(env: TestEnvironment) -> None:
    with pytest.raises(ValueError, match="finished executions only"):
        env.engine.purge(older_than=DAY, statuses=["sleeping"])
    with pytest.raises(ValueError, match="batch_size"):
        env.engine.purge(older_than=DAY, batch_size=0)
    with pytest.raises(ValueError):
        env.engine.purge(older_than=-1)

"""One vocabulary for step and sleep states: ``StepRecord.status`` as ``Engine.get_execution``
reads it (stored values unchanged, derived at read time), on every store."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import hydra
from hydra.status import STORED_STEP_STATUSES, Status, StepStatus, read_step_status
from hydra.store.base import Store
from hydra.testing import TestEnvironment

MakeEnv = Callable[..., TestEnvironment]


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"t-{uuid.uuid4().hex[:10]}")
        options.setdefault("seed", uuid.uuid4().int)
        return TestEnvironment(store=store_factory(), **options)

    return make


@hydra.workflow("napper")
def napper(ctx: hydra.WorkflowContext, req: None) -> str:
    hydra.step(ctx, "before", lambda: "ok")
    hydra.sleep(ctx, timedelta(hours=48), name="nap")
    return hydra.step(ctx, "after", lambda: "woke")


def always_fails() -> Callable[[], str]:
    calls = [0]

    def body() -> str:
        calls[0] += 1
        raise RuntimeError(f"call {calls[0]} failed")

    return body


@hydra.workflow("backoff")
def backoff(ctx: hydra.WorkflowContext, req: None) -> str:
    policy = hydra.RetryPolicy(max_attempts=3, initial_backoff=timedelta(hours=1))
    return hydra.step(ctx, "flaky", always_fails(), retry=policy)


def statuses(env: TestEnvironment, eid: str) -> dict[str, str]:
    return {s.name: s.status.value for s in env.execution(eid).steps}


def test_a_sleep_reads_sleeping_while_waited_on_and_slept_once_passed(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(napper)
    eid = env.start("napper")
    env.run_until_idle()
    ex = env.execution(eid)
    assert ex.status == "sleeping"
    nap = ex.step("nap")
    assert nap is not None and (nap.status, nap.kind) == (StepStatus.SLEEPING, "sleep")
    assert statuses(env, eid) == {"before": "completed", "nap": "sleeping"}
    done = env.run_until_complete(eid)
    assert done.status == "completed"
    assert statuses(env, eid) == {"before": "completed", "nap": "slept", "after": "completed"}
    assert [s.kind for s in done.steps] == ["step", "sleep", "step"]


def test_an_overdue_sleep_still_reads_sleeping(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(napper)
    eid = env.start("napper")
    env.run_until_idle()
    # The wake time passes with no worker running: the execution still waits on it.
    env.clock.advance(timedelta(hours=49))
    assert env.execution(eid).status == "sleeping"
    assert statuses(env, eid)["nap"] == "sleeping"


def test_a_sleep_cut_short_by_a_cancel_reads_cancelled(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(napper)
    eid = env.start("napper")
    env.run_until_idle()
    env.clock.advance(timedelta(hours=1))
    assert env.engine.cancel(eid)
    assert statuses(env, eid) == {"before": "completed", "nap": "cancelled"}


def test_a_sleep_cut_short_by_the_timeout_reads_interrupted(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(napper)
    eid = env.start("napper", timeout=timedelta(hours=2), max_attempts=1)
    ex = env.run_until_complete(eid)
    assert ex.status == "failed"
    assert statuses(env, eid) == {"before": "completed", "nap": "interrupted"}


def test_a_step_waiting_for_its_next_attempt_reads_cancelled_once_cancelled(
    make_env: MakeEnv,
) -> None:
    env = make_env()
    env.register(backoff)
    eid = env.start("backoff")
    env.run_until_idle()
    assert statuses(env, eid) == {"flaky": "retrying"}
    assert env.engine.cancel(eid)
    assert statuses(env, eid) == {"flaky": "cancelled"}


def test_stored_rows_keep_the_stored_values(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(napper)
    eid = env.start("napper")
    env.run_until_complete(eid)
    stored = {row.name: row.status for row in env.store.list_steps(eid)}
    assert stored["nap"] == StepStatus.SLEEPING  # no migration: derived when read
    assert set(stored.values()) <= STORED_STEP_STATUSES


@pytest.mark.parametrize(
    ("execution", "moved_past", "ended_ms", "now_ms", "expected"),
    [
        (Status.SLEEPING, False, None, 500, StepStatus.SLEEPING),
        (Status.SLEEPING, False, None, 5_000, StepStatus.SLEEPING),  # overdue
        (Status.RUNNING, False, None, 5_000, StepStatus.SLEPT),  # a run passes it now
        (Status.RUNNING, False, None, 500, StepStatus.SLEEPING),  # it falls asleep again
        (Status.PENDING, True, None, 500, StepStatus.SLEPT),
        (Status.COMPLETED, False, 1_000, 1_000, StepStatus.SLEPT),
        (Status.CANCELLED, False, 700, 800, StepStatus.CANCELLED),
        (Status.FAILED, False, 700, 800, StepStatus.INTERRUPTED),
        (Status.FAILED, False, 1_200, 1_300, StepStatus.SLEPT),  # woke, then failed
        (Status.CANCELLED, True, 700, 800, StepStatus.SLEPT),
    ],
)
def test_read_step_status_of_a_sleep_waking_at_1000(
    execution: Status, moved_past: bool, ended_ms: int | None, now_ms: int, expected: StepStatus
) -> None:
    got = read_step_status(
        StepStatus.SLEEPING,
        execution,
        moved_past=moved_past,
        wake_ms=1_000,
        ended_ms=ended_ms,
        now_ms=now_ms,
    )
    assert got == expected


@pytest.mark.parametrize("stored", sorted(STORED_STEP_STATUSES - {StepStatus.SLEEPING}))
@pytest.mark.parametrize("execution", list(Status))
def test_read_step_status_of_a_step(stored: StepStatus, execution: Status) -> None:
    got = read_step_status(
        stored, execution, moved_past=False, wake_ms=None, ended_ms=None, now_ms=0
    )
    if stored == StepStatus.RETRYING and execution == Status.CANCELLED:
        assert got == StepStatus.CANCELLED
    elif stored == StepStatus.RETRYING and execution == Status.FAILED:
        assert got == StepStatus.INTERRUPTED
    elif stored == StepStatus.WAITING and execution.terminal:
        # the message it waited for can no longer come
        expected = StepStatus.CANCELLED if execution == Status.CANCELLED else StepStatus.INTERRUPTED
        assert got == expected
    else:
        assert got == stored

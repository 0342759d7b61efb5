"""Every attempt of a step is kept (``StepRecord.attempt_history``), on every store.

The step row keeps only the latest attempt; the history has one entry per attempt that
reached a result or an error, with its own times and error. An attempt in flight when its
worker died leaves no entry (it is at-least-once: the next worker runs it again, under
the same number).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import hydra
from hydra.store.base import Store
from hydra.testing import TestEnvironment

MakeEnv = Callable[..., TestEnvironment]
STEP_TIME = timedelta(milliseconds=250)


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"t-{uuid.uuid4().hex[:10]}")
        options.setdefault("seed", uuid.uuid4().int)
        return TestEnvironment(store=store_factory(), **options)

    return make


def flaky_charge(env: TestEnvironment, failures: int, *, max_attempts: int = 3) -> Any:
    """A workflow whose step ``charge`` takes 250 ms and fails its first ``failures``
    runs with ``ConnectionError("down <n>")``, retried after 1 s, 2 s, ..."""
    runs = {"charge": 0}

    @hydra.workflow(f"flaky-{uuid.uuid4().hex[:6]}")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        def charge() -> str:
            runs["charge"] += 1
            env.clock.advance(STEP_TIME)
            if runs["charge"] <= failures:
                raise ConnectionError(f"down {runs['charge']}")
            return "receipt"

        policy = hydra.RetryPolicy(max_attempts=max_attempts, initial_backoff=timedelta(seconds=1))
        result = hydra.step(ctx, "charge", charge, retry=policy)
        hydra.sleep(ctx, timedelta(minutes=1), name="cool-off")
        return result

    return env.register(wf)


def history(ex: hydra.Execution, step: str) -> list[tuple[int, str, str | None]]:
    record = ex.step(step)
    assert record is not None, f"no step {step!r}"
    return [(a.number, a.status.value, a.error) for a in record.attempt_history]


def test_a_step_failing_twice_then_succeeding_keeps_three_attempts(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()
    wf = flaky_charge(env, failures=2)
    ex = env.run_until_complete(env.start(wf, None))
    assert (ex.status, ex.output) == ("completed", "receipt")
    charge = ex.step("charge")
    assert charge is not None
    assert (charge.status, charge.attempts, charge.error) == ("completed", 3, None)
    assert history(ex, "charge") == [
        (1, "failed", "ConnectionError: down 1"),
        (2, "failed", "ConnectionError: down 2"),
        (3, "completed", None),
    ]
    # Each attempt's own times: 250 ms each, retried 1 s then 2 s after the failure.
    starts = [t0, t0 + STEP_TIME + timedelta(seconds=1), t0 + 2 * STEP_TIME + timedelta(seconds=3)]
    assert [a.started_at for a in charge.attempt_history] == starts
    assert [a.duration for a in charge.attempt_history] == [STEP_TIME] * 3
    assert [a.error_type for a in charge.attempt_history] == ["ConnectionError"] * 2 + [None]
    last = charge.attempt_history[-1]
    assert (last.started_at, last.completed_at) == (charge.started_at, charge.completed_at)
    assert ex.step("cool-off") is not None and history(ex, "cool-off") == []  # a sleep has none


def test_a_step_that_used_up_its_attempts_keeps_every_error(make_env: MakeEnv) -> None:
    env = make_env()
    wf = flaky_charge(env, failures=5, max_attempts=3)
    ex = env.run_until_complete(env.start(wf, None, max_attempts=1))
    assert ex.status == "failed"
    charge = ex.step("charge")
    assert charge is not None
    assert (charge.status, charge.attempts, charge.error) == (
        "failed",
        3,
        "ConnectionError: down 3",
    )
    assert history(ex, "charge") == [
        (1, "failed", "ConnectionError: down 1"),
        (2, "failed", "ConnectionError: down 2"),
        (3, "failed", "ConnectionError: down 3"),
    ]


def test_an_attempt_in_flight_when_its_worker_died_leaves_no_record(make_env: MakeEnv) -> None:
    env = make_env(workers=2)
    wf = flaky_charge(env, failures=2)
    eid = env.start(wf, None, max_attempts=2)
    # The first run of charge: its body ran (and failed) but the worker died before the
    # failure was recorded. The next worker runs attempt 1 again.
    env.crash("charge", "during")
    ex = env.run_until_complete(eid)
    assert (ex.status, ex.attempt) == ("completed", 2)
    assert env.step_runs(eid, "charge") == 3
    assert history(ex, "charge") == [
        (1, "failed", "ConnectionError: down 2"),
        (2, "completed", None),
    ]


def test_a_retried_execution_keeps_the_first_rounds_attempts(make_env: MakeEnv) -> None:
    env = make_env()
    wf = flaky_charge(env, failures=2, max_attempts=2)
    eid = env.start(wf, None, max_attempts=1)
    assert env.run_until_complete(eid).status == "failed"
    env.engine.retry(eid)  # a fresh budget for charge: its numbers start at 1 again
    ex = env.run_until_complete(eid)
    assert ex.status == "completed"
    charge = ex.step("charge")
    assert charge is not None and charge.attempts == 1
    assert history(ex, "charge") == [
        (1, "failed", "ConnectionError: down 1"),
        (2, "failed", "ConnectionError: down 2"),
        (1, "completed", None),
    ]

"""The engine's own behaviour, driven by ``TestEnvironment`` on virtual time.

The same behaviours as ``tests/engine/test_worker_threads.py`` (which uses real worker
threads), on every store (memory, SQLite, PostgreSQL, MySQL) and with exact times: the
fake clock only moves when the environment jumps it to the next due time, so backoffs,
sleeps, timeouts and lease expiries can be asserted to the millisecond. Nothing here
sleeps for real.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hydra
import hydra.testing
from hydra.store.base import Store
from hydra.testing import Event, StuckExecutionError, TestEnvironment

MakeEnv = Callable[..., TestEnvironment]


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    """A fresh ``TestEnvironment`` on a fresh store of the backend under test.

    SQL backends share one database per session, hence the unique namespace; the random
    seed keeps execution ids unique across environments too (two environments with the
    same seed make the same ids, which collide on a shared database: see
    ``test_same_seed_environments_can_share_a_database``).
    """

    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"t-{uuid.uuid4().hex[:10]}")
        options.setdefault("seed", uuid.uuid4().int)
        return TestEnvironment(store=store_factory(), **options)

    return make


def events(env: TestEnvironment, kind: str) -> list[Event]:
    return [e for e in env.history if e.kind == kind]


@dataclass
class Order:
    order_id: str
    amount: int


# -- workflow-level retries -----------------------------------------------------------


def test_fails_twice_then_succeeds_on_attempt_3_with_exact_backoff(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()
    calls: Counter[str] = Counter()
    attempts_seen: list[tuple[int, datetime]] = []

    @hydra.workflow("flaky-workflow")
    def flaky(ctx: hydra.WorkflowContext, req: None) -> str:
        hydra.step(ctx, "one", lambda: calls.update(["one"]))
        hydra.step(ctx, "two", lambda: calls.update(["two"]))
        attempts_seen.append((ctx.attempt, env.clock.now()))
        if ctx.attempt < 3:
            raise ConnectionError(f"upstream down on attempt {ctx.attempt}")
        hydra.step(ctx, "three", lambda: calls.update(["three"]))
        return "done"

    env.register(flaky)
    eid = env.start(flaky, None, max_attempts=3, retry_backoff=timedelta(seconds=10))

    assert env.run_until_idle() == 1
    ex = env.execution(eid)
    assert (ex.status, ex.attempt, ex.next_retry_at) == ("pending", 2, t0 + timedelta(seconds=10))
    assert ex.error == "ConnectionError: upstream down on attempt 1"
    assert env.advance(timedelta(milliseconds=9_999)) == 0  # not a millisecond early
    assert env.advance(timedelta(milliseconds=1)) == 1
    ex = env.execution(eid)
    assert (ex.status, ex.attempt, ex.next_retry_at) == ("pending", 3, t0 + timedelta(seconds=30))

    ex = env.run_until_complete(eid)
    assert (ex.status, ex.output, ex.attempt) == ("completed", "done", 3)
    assert attempts_seen == [
        (1, t0),
        (2, t0 + timedelta(seconds=10)),
        (3, t0 + timedelta(seconds=30)),
    ]
    assert [(e.at, e.detail) for e in events(env, "claim")] == [
        (t0, "flaky-workflow attempt 1"),
        (t0 + timedelta(seconds=10), "flaky-workflow attempt 2"),
        (t0 + timedelta(seconds=30), "flaky-workflow attempt 3"),
    ]
    assert [e.at for e in events(env, "retry")] == [t0, t0 + timedelta(seconds=10)]
    assert (ex.started_at, ex.completed_at) == (t0, t0 + timedelta(seconds=30))
    assert env.clock.now() == t0 + timedelta(seconds=30)
    # Checkpointed steps were replayed, never re-run.
    assert calls == {"one": 1, "two": 1, "three": 1}
    assert [(s.name, s.status, s.attempts) for s in ex.steps] == [
        ("one", "completed", 1),
        ("two", "completed", 1),
        ("three", "completed", 1),
    ]


def test_exhausted_attempts_fail_with_the_last_error(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()

    @hydra.workflow("always-fails")
    def always(ctx: hydra.WorkflowContext, req: None) -> None:
        raise ValueError(f"bad on {ctx.attempt}")

    env.register(always)
    eid = env.start(always, None, max_attempts=2, retry_backoff=timedelta(minutes=1))
    ex = env.run_until_complete(eid)
    assert (ex.status, ex.attempt, ex.error) == ("failed", 2, "ValueError: bad on 2")
    assert ex.completed_at == t0 + timedelta(minutes=1)


def test_non_retryable_error_fails_at_once(make_env: MakeEnv) -> None:
    env = make_env()
    runs: list[int] = []

    class Invalid(hydra.NonRetryableError):
        pass

    @hydra.workflow("non-retryable")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        runs.append(ctx.attempt)
        raise Invalid("card declined")

    env.register(wf)
    eid = env.start(wf, None, max_attempts=5, retry_backoff=1)
    ex = env.run_until_complete(eid)
    assert (ex.status, ex.attempt, ex.error, runs) == ("failed", 1, "Invalid: card declined", [1])
    assert ex.completed_at == ex.started_at == env.clock.now()


def test_non_retryable_step_error_fails_the_step_and_the_execution_at_once(
    make_env: MakeEnv,
) -> None:
    env = make_env()
    calls: Counter[str] = Counter()

    def lookup() -> str:
        calls["lookup"] += 1
        raise KeyError("no such customer")

    @hydra.workflow("non-retryable-step")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        policy = hydra.RetryPolicy(max_attempts=5, non_retryable=(KeyError,))
        return hydra.step(ctx, "lookup", lookup, retry=policy)

    env.register(wf)
    ex = env.run_until_complete(env.start(wf, None, max_attempts=3))
    assert (ex.status, ex.attempt, ex.error_type, calls["lookup"]) == (
        "failed",
        1,
        "StepFailedError",
        1,
    )
    assert "no such customer" in (ex.error or "")
    step = ex.step("lookup")
    assert step is not None and (step.status, step.attempts, step.error_type) == (
        "failed",
        1,
        "KeyError",
    )


# -- step retries -----------------------------------------------------------------------


def test_step_retries_back_off_exactly_and_are_capped_by_max_backoff(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()
    entered: list[datetime] = []

    def flaky_api() -> str:
        entered.append(env.clock.now())
        if len(entered) < 6:
            raise TimeoutError(f"api timed out ({len(entered)})")
        return "ok"

    policy = hydra.RetryPolicy(
        max_attempts=6, initial_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=5)
    )

    @hydra.workflow("step-retry")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return hydra.step(ctx, "api", flaky_api, retry=policy)

    env.register(wf)
    eid = env.start(wf, None)

    env.run_until_idle()
    ex = env.execution(eid)
    # The wait is a durable sleep: the execution sleeps in the store, no worker holds it.
    assert (ex.status, ex.sleep_until, ex.worker_id) == (
        "sleeping",
        t0 + timedelta(seconds=1),
        None,
    )
    step = ex.step("api")
    assert step is not None and (step.status, step.attempts, step.error) == (
        "retrying",
        1,
        "TimeoutError: api timed out (1)",
    )

    ex = env.run_until_complete(eid)
    assert (ex.status, ex.output, ex.attempt) == ("completed", "ok", 1)
    # Waits of 1 s, 2 s, 4 s, then capped at 5 s, 5 s.
    assert [int((t - t0).total_seconds()) for t in entered] == [0, 1, 3, 7, 12, 17]
    step = ex.step("api")
    assert step is not None and (step.status, step.attempts) == ("completed", 6)
    assert ex.completed_at == t0 + timedelta(seconds=17)


def test_step_failed_error_reaches_compensation(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()
    calls: Counter[str] = Counter()

    def reserve() -> None:
        calls["reserve"] += 1
        raise RuntimeError("out of stock")

    @hydra.workflow("compensating")
    def wf(ctx: hydra.WorkflowContext, req: None) -> dict[str, Any]:
        hydra.step(ctx, "charge", lambda: calls.update(["charge"]))
        try:
            hydra.step(
                ctx,
                "reserve",
                reserve,
                retry=hydra.RetryPolicy(max_attempts=2, initial_backoff=timedelta(seconds=30)),
            )
        except hydra.StepFailedError as exc:
            hydra.step(ctx, "refund", lambda: calls.update(["refund"]))
            return {"refunded": True, "step": exc.step_name, "attempts": exc.attempts}
        return {"refunded": False}

    env.register(wf)
    ex = env.run_until_complete(env.start(wf, None))
    assert (ex.status, ex.attempt) == ("completed", 1)
    assert ex.output == {"refunded": True, "step": "reserve", "attempts": 2}
    assert calls == {"charge": 1, "reserve": 2, "refund": 1}
    assert [(s.name, s.status) for s in ex.steps] == [
        ("charge", "completed"),
        ("reserve", "failed"),
        ("refund", "completed"),
    ]
    assert ex.completed_at == t0 + timedelta(seconds=30)


def test_uncaught_step_failure_fails_without_workflow_retries(make_env: MakeEnv) -> None:
    env = make_env()

    @hydra.workflow("uncaught")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "broken", lambda: 1 / 0, retry=hydra.RetryPolicy(max_attempts=2))

    env.register(wf)
    ex = env.run_until_complete(env.start(wf, None, max_attempts=3))
    assert (ex.status, ex.attempt, ex.error_type) == ("failed", 1, "StepFailedError")
    assert "ZeroDivisionError" in (ex.error or "")


# -- durable sleeps ---------------------------------------------------------------------


def test_a_48_hour_sleep_completes_exactly_48_hours_later(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()
    calls: Counter[str] = Counter()

    @hydra.workflow("sleeper")
    def sleeper(ctx: hydra.WorkflowContext, req: None) -> str:
        hydra.step(ctx, "before", lambda: calls.update(["before"]))
        hydra.sleep(ctx, timedelta(hours=48))
        hydra.step(ctx, "after", lambda: calls.update(["after"]))
        return "woke"

    env.register(sleeper)
    eid = env.start(sleeper, None)
    assert env.run_until_idle() == 1
    ex = env.execution(eid)
    assert (ex.status, ex.sleep_until, ex.worker_id) == ("sleeping", t0 + timedelta(hours=48), None)

    assert env.advance(timedelta(hours=47)) == 0
    assert env.execution(eid).status == "sleeping"
    assert env.advance(timedelta(hours=1)) == 1
    ex = env.execution(eid)
    assert (ex.status, ex.output, ex.attempt) == ("completed", "woke", 1)
    assert ex.completed_at == env.clock.now() == t0 + timedelta(hours=48)
    assert calls == {"before": 1, "after": 1}
    sleep = ex.step("sleep-1")
    assert sleep is not None and sleep.status == "slept"


class TickingClock(hydra.testing.FakeClock):
    """A fake clock that moves 1 ms on every read, like a real one between two reads."""

    def now_ms(self) -> int:
        now = super().now_ms()
        self.set_ms(now + 1)
        return now + 1


def test_a_sleep_record_spans_exactly_the_duration_asked_for(make_env: MakeEnv) -> None:
    # Regression: the wake time and the record's start were two clock reads apart, so a
    # 48-hour sleep was recorded (and traced) as 47:59:59.999.
    env = make_env(clock=TickingClock())

    @hydra.workflow("ticking-sleeper")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.sleep(ctx, timedelta(hours=48), name="nap")

    env.register(wf)
    eid = env.start(wf, None)
    env.run_until_idle()
    nap = env.execution(eid).step("nap")
    assert nap is not None and nap.started_at is not None and nap.completed_at is not None
    assert nap.completed_at - nap.started_at == timedelta(hours=48)


def test_run_until_complete_jumps_the_clock_over_the_sleep(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()

    @hydra.workflow("long-sleep")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        hydra.sleep(ctx, timedelta(hours=48), name="two-days")
        return "done"

    env.register(wf)
    ex = env.run_until_complete(env.start(wf, None))
    assert (ex.status, ex.completed_at) == ("completed", t0 + timedelta(hours=48))
    assert env.clock.now() == t0 + timedelta(hours=48)
    assert [(e.at, e.kind) for e in env.history if e.kind in ("claim", "sleep")] == [
        (t0, "claim"),
        (t0, "sleep"),
        (t0 + timedelta(hours=48), "claim"),
    ]


def test_sleep_until_wakes_at_that_instant(make_env: MakeEnv) -> None:
    env = make_env()
    wake = datetime(2030, 1, 4, 9, 30, tzinfo=UTC)
    past = datetime(2029, 12, 31, tzinfo=UTC)
    seen: list[datetime] = []

    @hydra.workflow("sleep-until")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        hydra.sleep_until(ctx, past, name="already-past")  # returns at once
        hydra.sleep_until(ctx, wake.replace(tzinfo=None), name="naive-is-utc")
        hydra.step(ctx, "woke", lambda: seen.append(env.clock.now()))
        return "done"

    env.register(wf)
    eid = env.start(wf, None)
    env.run_until_idle()
    assert env.execution(eid).sleep_until == wake
    ex = env.run_until_complete(eid)
    assert (ex.status, ex.completed_at, seen) == ("completed", wake, [wake])
    assert [s.name for s in ex.steps] == ["naive-is-utc", "woke"]


# -- timeouts ---------------------------------------------------------------------------


def test_a_workflow_sleeping_past_its_timeout_fails_at_exactly_timeout_at(
    make_env: MakeEnv,
) -> None:
    env = make_env()
    t0 = env.clock.now()
    calls: Counter[str] = Counter()

    @hydra.workflow("too-slow")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "first", lambda: calls.update(["first"]))
        hydra.sleep(ctx, timedelta(hours=48))
        hydra.step(ctx, "never", lambda: calls.update(["never"]))

    env.register(wf)
    eid = env.start(wf, None, timeout=timedelta(hours=1), max_attempts=3)
    env.run_until_idle()
    ex = env.execution(eid)
    assert (ex.status, ex.timeout_at) == ("sleeping", t0 + timedelta(hours=1))

    ex = env.run_until_complete(eid)
    assert (ex.status, ex.error_type, ex.attempt) == ("failed", "WorkflowTimeoutError", 1)
    assert ex.completed_at == ex.timeout_at == t0 + timedelta(hours=1)
    assert env.clock.now() == t0 + timedelta(hours=1)
    assert calls == {"first": 1}


def test_a_timeout_passed_inside_a_step_fails_at_the_next_boundary(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()
    calls: Counter[str] = Counter()

    def slow() -> str:
        calls["slow"] += 1
        env.clock.advance(timedelta(minutes=90))  # the step itself took 90 minutes
        return "slow"

    @hydra.workflow("slow-step")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "slow", slow)
        hydra.step(ctx, "next", lambda: calls.update(["next"]))

    env.register(wf)
    ex = env.run_until_complete(env.start(wf, None, timeout=timedelta(hours=1), max_attempts=3))
    assert (ex.status, ex.error_type, ex.attempt) == ("failed", "WorkflowTimeoutError", 1)
    assert ex.completed_at == t0 + timedelta(minutes=90)
    assert calls == {"slow": 1}
    slow_step = ex.step("slow")
    assert slow_step is not None and slow_step.status == "completed"


# -- cancellation -----------------------------------------------------------------------


def test_cancel_a_sleeping_execution(make_env: MakeEnv) -> None:
    env = make_env()
    calls: Counter[str] = Counter()

    @hydra.workflow("cancel-sleeping")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "first", lambda: calls.update(["first"]))
        hydra.sleep(ctx, timedelta(days=7))
        hydra.step(ctx, "after", lambda: calls.update(["after"]))

    env.register(wf)
    eid = env.start(wf, None)
    env.run_until_idle()
    env.clock.advance(timedelta(days=1))
    assert env.engine.cancel(eid) is True
    ex = env.run_until_complete(eid)
    assert (ex.status, ex.completed_at) == ("cancelled", env.clock.now())
    assert env.run_until_all_complete() == 0  # nothing left to wake
    assert env.clock.now() == ex.completed_at  # and the clock did not jump to the wake time
    assert calls == {"first": 1}
    assert env.engine.cancel(eid) is False  # already terminal


def test_cancel_while_a_step_is_in_flight_discards_it_and_stops(make_env: MakeEnv) -> None:
    env = make_env()
    calls: Counter[str] = Counter()

    @hydra.workflow("cancellable")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "blocking", lambda: calls.update(["blocking"]))
        hydra.step(ctx, "next", lambda: calls.update(["next"]))

    env.register(wf)
    eid = env.start(wf, None)
    env.pause("blocking", "during")
    env.run_until_idle()
    assert env.execution(eid).status == "running"
    assert env.engine.cancel(eid) is True
    assert env.resume() == [hydra.runner.Outcome.LOST]
    ex = env.execution(eid)
    assert ex.status == "cancelled"
    assert ex.step("blocking") is None  # its checkpoint was fenced out
    assert calls == {"blocking": 1}
    assert [e.kind for e in env.history if e.worker == "worker-1"][-2:] == ["resume", "lost"]


def test_cancel_between_steps_checkpoints_nothing_more(make_env: MakeEnv) -> None:
    """The cancel lands after step one's checkpoint (the step function cancels it)."""
    env = make_env()
    calls: Counter[str] = Counter()

    @hydra.workflow("cancel-between")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "one", lambda: calls.update(["one"]))
        env.engine.cancel(ctx.execution_id)  # e.g. an operator, right between two steps
        hydra.step(ctx, "two", lambda: calls.update(["two"]))
        hydra.step(ctx, "three", lambda: calls.update(["three"]))

    env.register(wf)
    eid = env.start(wf, None)
    env.run_until_all_complete()
    ex = env.execution(eid)
    assert ex.status == "cancelled"
    assert [s.name for s in ex.steps] == ["one"]
    assert calls["three"] == 0
    assert events(env, "lost")


def test_cancel_between_steps_stops_before_the_next_step_body(make_env: MakeEnv) -> None:
    """README: "a worker running it stops at its next step boundary" (as hydra.Worker does)."""
    env = make_env()
    calls: Counter[str] = Counter()

    @hydra.workflow("cancel-boundary")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "one", lambda: calls.update(["one"]))
        env.engine.cancel(ctx.execution_id)
        hydra.step(ctx, "two", lambda: calls.update(["two"]))

    env.register(wf)
    env.run_until_complete(env.start(wf, None))
    assert calls == {"one": 1}


# -- starting ---------------------------------------------------------------------------


def test_idempotency_key_returns_the_same_execution(make_env: MakeEnv) -> None:
    env = make_env()
    calls: Counter[str] = Counter()

    @hydra.workflow("idempotent")
    def wf(ctx: hydra.WorkflowContext, req: dict[str, int]) -> int:
        return hydra.step(ctx, "once", lambda: calls.update(["once"]) or req["n"])

    env.register(wf)
    first = env.start(wf, {"n": 1}, idempotency_key="order-42")
    again = env.start(wf, {"n": 2}, idempotency_key="order-42")
    assert first == again
    assert env.run_until_all_complete() == 1
    assert env.start(wf, {"n": 3}, idempotency_key="order-42") == first  # after completion too
    assert env.run_until_all_complete() == 0
    ex = env.execution(first)
    assert (ex.status, ex.input, ex.output, ex.idempotency_key) == (
        "completed",
        {"n": 1},
        1,
        "order-42",
    )
    assert len(env.engine.list_executions()) == 1
    assert calls == {"once": 1}
    other = env.start(wf, {"n": 4}, idempotency_key="order-43")
    assert other != first


def test_run_at_in_the_future_delays_the_first_start(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()

    @hydra.workflow("later")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return hydra.step(ctx, "ran", lambda: env.clock.now().isoformat())

    env.register(wf)
    later = t0 + timedelta(hours=2)
    eid = env.start(wf, None, run_at=later)
    assert env.run_until_idle() == 0
    ex = env.execution(eid)
    assert (ex.status, ex.attempt, ex.started_at) == ("pending", 0, None)
    assert env.advance(timedelta(hours=2) - timedelta(milliseconds=1)) == 0
    ex = env.run_until_complete(eid)
    assert (ex.status, ex.started_at, ex.output) == ("completed", later, later.isoformat())
    # run_at in the past means now.
    past = env.start(wf, None, run_at=t0)
    assert env.run_until_complete(past).started_at == later


def test_unknown_workflow_stays_pending(make_env: MakeEnv) -> None:
    env = make_env()

    @hydra.workflow("known")
    def known(ctx: hydra.WorkflowContext, req: None) -> int:
        return 1

    env.register(known)
    unknown = env.start("nobody-runs-this", None)
    done = env.run_until_complete(env.start(known, None))
    assert done.status == "completed"
    assert env.run_until_all_complete() == 0
    with pytest.raises(StuckExecutionError, match="nothing is scheduled to run") as info:
        env.run_until_complete(unknown)
    assert f"execution {unknown} is pending" in str(info.value)
    assert "history:" in str(info.value)
    ex = env.execution(unknown)
    assert (ex.status, ex.attempt, ex.error, ex.worker_id) == ("pending", 0, None, None)


def test_undecodable_payload_fails_that_execution_and_another_completes(
    make_env: MakeEnv,
) -> None:
    env = make_env()

    @hydra.workflow("typed")
    def typed(ctx: hydra.WorkflowContext, req: Order) -> int:
        assert isinstance(req, Order)
        return req.amount

    env.register(typed)
    # By name: stored unchecked (given the workflow itself, the engine would refuse it).
    bad = env.start("typed", {"order_id": "o", "amount": "lots"})
    good = env.start(typed, Order("o", 3))
    env.run_until_all_complete()
    ex = env.execution(bad)
    assert (ex.status, ex.error_type, ex.attempt) == ("failed", "PayloadError", 1)
    assert "amount" in (ex.error_message or "")
    good_ex = env.execution(good)
    assert (good_ex.status, good_ex.output) == ("completed", 3)


def test_unencodable_payload_raises_and_stores_nothing(make_env: MakeEnv) -> None:
    env = make_env()
    with pytest.raises(hydra.PayloadError):
        env.start("typed", {"when": object()})
    assert env.engine.list_executions() == []
    assert [e.kind for e in env.history] == []


# -- async workflows, duplicate names ---------------------------------------------------


def test_async_workflow_with_sync_and_async_steps_and_a_sleep(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()

    @hydra.workflow("async-wf")
    async def wf(ctx: hydra.AsyncWorkflowContext, n: int) -> int:
        async def double() -> int:
            return n * 2

        a = await hydra.step(ctx, "double", double)
        await hydra.sleep(ctx, timedelta(days=1))
        return await hydra.step(ctx, "plus-one", lambda: a + 1)

    env.register(wf)
    eid = env.start(wf, 20)
    env.run_until_idle()
    assert env.execution(eid).status == "sleeping"
    ex = env.run_until_complete(eid)
    assert (ex.status, ex.output, ex.attempt) == ("completed", 41, 1)
    assert [s.name for s in ex.steps] == ["double", "sleep-1", "plus-one"]
    assert ex.completed_at == t0 + timedelta(days=1)


def test_async_workflow_retries_and_crash_recovery(make_env: MakeEnv) -> None:
    env = make_env()
    entries: Counter[str] = Counter()

    @hydra.workflow("async-retry")
    async def wf(ctx: hydra.AsyncWorkflowContext, req: None) -> str:
        async def charge() -> str:
            entries["charge"] += 1
            return "ch_1"

        charge_id = await hydra.step(ctx, "charge", charge)
        if ctx.attempt < 3:
            raise ConnectionError("flaky")
        return charge_id

    env.register(wf)
    env.crash("charge", "after")
    ex = env.run_until_complete(env.start(wf, None, max_attempts=4, retry_backoff=5))
    assert (ex.status, ex.output, ex.attempt) == ("completed", "ch_1", 3)
    assert entries == {"charge": 2}  # once more for the crash after its body returned
    assert [e.kind for e in env.history if e.kind in ("takeover", "retry")] == [
        "takeover",
        "retry",
    ]


def test_duplicate_step_name_fails_the_execution(make_env: MakeEnv) -> None:
    env = make_env()

    @hydra.workflow("dupes")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "same", lambda: 1)
        hydra.step(ctx, "same", lambda: 2)

    env.register(wf)
    ex = env.run_until_complete(env.start(wf, None, max_attempts=3))
    assert (ex.status, ex.error_type, ex.attempt) == ("failed", "DuplicateStepError", 1)
    assert "'same'" in (ex.error_message or "")


def test_a_sleep_named_like_a_step_fails_the_execution(make_env: MakeEnv) -> None:
    env = make_env()

    @hydra.workflow("sleep-dupe")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "wait", lambda: 1)
        hydra.sleep(ctx, 10, name="wait")

    env.register(wf)
    ex = env.run_until_complete(env.start(wf, None, max_attempts=3))
    assert (ex.status, ex.error_type, ex.attempt) == ("failed", "DuplicateStepError", 1)


# -- leases: fencing and takeover -------------------------------------------------------


def test_the_other_worker_takes_over_after_exactly_claim_timeout(make_env: MakeEnv) -> None:
    env = make_env(workers=2, claim_timeout=timedelta(seconds=30))
    t0 = env.clock.now()
    calls: Counter[str] = Counter()

    @hydra.workflow("takeover")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        hydra.step(ctx, "charge", lambda: calls.update(["charge"]))
        hydra.step(ctx, "ship", lambda: calls.update(["ship"]))
        return ctx.worker_id

    env.register(wf)
    eid = env.start(wf, None, max_attempts=2)
    env.crash("ship", "after")
    env.run_until_idle()
    ex = env.execution(eid)
    assert (ex.status, ex.worker_id, ex.attempt) == ("running", "worker-1", 1)
    assert env.workers == ["worker-2"]
    assert env.advance(timedelta(milliseconds=29_999)) == 0  # the dead worker's lease holds
    assert env.advance(timedelta(milliseconds=1)) == 1

    ex = env.execution(eid)
    assert (ex.status, ex.output, ex.attempt) == ("completed", "worker-2", 2)
    assert ex.completed_at == t0 + timedelta(seconds=30)
    takeover = events(env, "takeover")
    assert [(e.at, e.worker, e.detail) for e in takeover] == [
        (t0 + timedelta(seconds=30), "worker-2", "takeover attempt 2")
    ]
    assert events(env, "spawn") == []  # worker-2 was already running
    assert calls == {"charge": 1, "ship": 2}
    assert env.step_runs(eid, "charge") == 1


def test_a_takeover_on_the_last_attempt_fails_with_lease_expired(make_env: MakeEnv) -> None:
    env = make_env(workers=2)
    t0 = env.clock.now()
    calls: Counter[str] = Counter()

    @hydra.workflow("last-attempt")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "charge", lambda: calls.update(["charge"]))
        hydra.step(ctx, "ship", lambda: calls.update(["ship"]))

    env.register(wf)
    eid = env.start(wf, None, max_attempts=1)
    env.crash("charge", "during")
    ex = env.run_until_complete(eid)
    assert (ex.status, ex.error_type) == ("failed", "LeaseExpiredError")
    assert "max_attempts=1" in (ex.error_message or "")
    assert ex.attempt == 2
    assert ex.completed_at == t0 + timedelta(seconds=60)
    assert env.step_runs(eid, "charge") == 1
    assert calls["ship"] == 0
    last = [e for e in env.history if e.execution_id == eid][-1]
    assert (last.at, last.worker, last.kind) == (t0 + timedelta(seconds=60), "worker-2", "failed")


def test_takeover_replays_checkpoints_and_the_zombie_is_fenced_out(make_env: MakeEnv) -> None:
    env = make_env(workers=2)
    calls: Counter[str] = Counter()

    @hydra.workflow("fenced")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        a = hydra.step(ctx, "a", lambda: calls.update(["a"]) or "A")
        b = hydra.step(ctx, "b", lambda: calls.update(["b"]) or ctx.worker_id)
        return f"{a}{b}"

    env.register(wf)
    eid = env.start(wf, None)
    env.pause("b", "after")  # worker-1 froze with b's result in hand, before its checkpoint
    done = env.run_until_complete(eid)
    assert (done.status, done.output, done.attempt) == ("completed", "Aworker-2", 2)
    assert env.resume() == [hydra.runner.Outcome.LOST]
    assert env.execution(eid) == done  # the zombie's checkpoint of b never landed
    assert calls == {"a": 1, "b": 2}


# -- known problems ---------------------------------------------------------------------


def test_same_seed_environments_can_share_a_database(store_factory: Callable[[], Store]) -> None:
    store = store_factory()
    seed = uuid.uuid4().int  # one seed for both, but not 0: keep clear of other tests' ids

    @hydra.workflow("double")
    def double(ctx: hydra.WorkflowContext, n: int) -> int:
        return hydra.step(ctx, "double", lambda: n * 2)

    outputs = []
    for n in (1, 2):
        env = TestEnvironment(store=store, namespace=f"t-{uuid.uuid4().hex[:10]}", seed=seed)
        env.register(double)
        outputs.append(env.run_until_complete(env.start(double, n)).output)
    assert outputs == [2, 4]


def test_a_caught_timeout_still_fails_the_execution() -> None:
    env = TestEnvironment()
    ran: list[str] = []

    def slow() -> None:
        ran.append("slow")
        env.clock.advance(timedelta(hours=2))  # the step takes two (virtual) hours

    @hydra.workflow("swallows-timeout")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        hydra.step(ctx, "slow", slow)
        try:
            hydra.step(ctx, "late", lambda: ran.append("late"))
        except hydra.WorkflowTimeoutError:
            return "pretended to finish"
        return "finished"

    env.register(wf)
    eid = env.start("swallows-timeout", None, timeout=timedelta(hours=1))
    ex = env.run_until_complete(eid)
    assert (ex.status, ex.error_type, ex.output, ran) == (
        "failed",
        "WorkflowTimeoutError",
        None,
        ["slow"],
    )

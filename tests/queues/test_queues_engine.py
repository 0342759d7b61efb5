"""Queues through the engine and the testing kit: what a start may name, the limits on
the fake clock (rate windows are exact; resumes are free), priorities, and crashes around
a queued execution (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hydra
from hydra.testing import FakeClock, TestEnvironment, explore_crashes

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@hydra.workflow("q-job")
def job(ctx: hydra.WorkflowContext, n: int) -> int:
    return hydra.step(ctx, "work", lambda: n * 2)


@hydra.workflow("q-sleeper")
def sleeper(ctx: hydra.WorkflowContext, n: int) -> int:
    hydra.step(ctx, "before", lambda: n)
    hydra.sleep(ctx, timedelta(seconds=10), name="nap")
    return hydra.step(ctx, "after", lambda: n)


def env_with(*queues: hydra.Queue) -> TestEnvironment:
    env = TestEnvironment(clock=FakeClock(T0))
    for queue in queues:
        env.engine.register_queue(queue)
    env.register(job)
    env.register(sleeper)
    return env


def started_at(env: TestEnvironment, eid: str) -> datetime:
    started = env.engine.get_execution(eid).started_at
    assert started is not None
    return started


def test_a_start_names_a_registered_queue_or_none() -> None:
    env = env_with(hydra.Queue("emails", concurrency=2))
    eid = env.start(job, 1, queue="emails", priority=7, concurrency_key="customer-1")
    execution = env.engine.get_execution(eid)
    assert (execution.queue, execution.priority, execution.concurrency_key) == (
        "emails",
        7,
        "customer-1",
    )
    plain = env.engine.get_execution(env.start(job, 2))
    assert (plain.queue, plain.priority, plain.concurrency_key) == ("default", 0, None)
    assert env.engine.get_execution(env.start(job, 3, queue="default")).queue == "default"
    before = len(env.engine.list_executions())
    with pytest.raises(ValueError, match="queue 'emials' is not registered"):
        env.start(job, 4, queue="emials")
    with pytest.raises(TypeError, match="priority must be an int"):
        env.start(job, 4, priority="high")
    with pytest.raises(ValueError, match="priority must be from"):
        env.start(job, 4, priority=2**31)
    with pytest.raises(hydra.InvalidNameError):
        env.start(job, 4, concurrency_key=" padded ")
    assert len(env.engine.list_executions()) == before, "a refused start stored nothing"


def test_queue_and_rate_limit_are_checked() -> None:
    with pytest.raises(ValueError, match="unlimited queue of executions started without"):
        hydra.Queue("default", concurrency=1)
    with pytest.raises(ValueError, match="concurrency must be from 1"):
        hydra.Queue("q", concurrency=0)
    with pytest.raises(TypeError, match="worker_concurrency must be an int"):
        hydra.Queue("q", worker_concurrency=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 100 characters"):
        hydra.Queue("q" * 101)
    with pytest.raises(ValueError, match="limit must be from 1"):
        hydra.RateLimit(0)
    with pytest.raises(ValueError, match="per must be from 1 ms"):
        hydra.RateLimit(5, per=timedelta(0))
    with pytest.raises(TypeError, match=r"register_queue takes a hydra\.Queue"):
        env_with().engine.register_queue("emails")  # type: ignore[arg-type]
    rate = hydra.RateLimit(100, per=timedelta(minutes=1))
    assert str(rate) == "100/min"
    queue = hydra.Queue("q", concurrency=20, worker_concurrency=4, rate_limit=rate)
    assert queue.describe() == "concurrency 20, per worker 4, rate 100/min"
    assert hydra.Queue("q").describe() == "no limits"


def test_register_queue_stores_what_every_engine_reads() -> None:
    env = env_with(hydra.Queue("emails", concurrency=3))
    other = hydra.Engine(env.store, namespace=env.engine.namespace)
    other.register_queue(
        hydra.Queue("emails", key_concurrency=1, rate_limit=hydra.RateLimit(5, timedelta(hours=1)))
    )
    assert env.engine.list_queues() == [
        hydra.Queue("emails", key_concurrency=1, rate_limit=hydra.RateLimit(5, timedelta(hours=1)))
    ]
    # The other engine's start of the queue needs no registration of its own.
    eid = hydra.Engine(env.store, namespace=env.engine.namespace).start_workflow(
        "q-job", 1, queue="emails"
    )
    assert env.engine.get_execution(eid).queue == "emails"


def test_the_101st_start_at_100_a_minute_waits_its_turn_on_the_fake_clock() -> None:
    env = env_with(hydra.Queue("partner", rate_limit=hydra.RateLimit(100, timedelta(minutes=1))))
    ids = [env.start(job, i, queue="partner") for i in range(101)]
    env.run_until_all_complete()
    starts = [started_at(env, eid) for eid in ids]
    assert starts[:100] == [T0] * 100
    assert starts[100] == T0 + timedelta(minutes=1), "exactly when the first start's window ends"
    assert all(env.execution(eid).status == "completed" for eid in ids)


def test_resumes_after_a_sleep_are_not_rate_limited() -> None:
    env = env_with(hydra.Queue("partner", rate_limit=hydra.RateLimit(3, timedelta(minutes=1))))
    ids = [env.start(sleeper, i, queue="partner") for i in range(3)]
    env.run_until_all_complete()
    for eid in ids:
        execution = env.engine.get_execution(eid)
        assert execution.status == "completed"
        # Woke after 10 s and finished then, though 3 first starts used the minute.
        assert execution.completed_at == T0 + timedelta(seconds=10)


def test_priorities_on_the_fake_clock() -> None:
    env = env_with(hydra.Queue("orders", concurrency=1))
    low = []
    for i in range(3):  # FIFO is by start time, to the millisecond
        low.append(env.start(job, i, queue="orders"))
        env.clock.advance(timedelta(milliseconds=1))
    urgent = env.start(job, 99, queue="orders", priority=10)
    order: list[str] = []
    env.engine.add_observer(_Recorder(order))
    env.run_until_all_complete()
    assert order == [urgent, *low]


class _Recorder(hydra.Observer):
    def __init__(self, order: list[str]) -> None:
        self.order = order

    def run_started(self, run: Any, claim: Any) -> None:
        self.order.append(claim.execution.id)


def test_sleeping_executions_hold_no_slot() -> None:
    env = env_with(hydra.Queue("one", concurrency=1))
    first = env.start(sleeper, 1, queue="one")
    second = env.start(job, 2, queue="one")
    env.run_until_idle()
    # The sleeper ran until its sleep and gave its slot back: the job ran meanwhile.
    assert env.execution(first).status == "sleeping"
    assert env.execution(second).status == "completed"
    assert env.store.list_slots(env.engine.namespace) == []
    env.run_until_all_complete()
    assert env.execution(first).status == "completed"


def test_crashes_around_a_queued_execution_keep_exactly_once_and_free_the_slot() -> None:
    def make_env() -> TestEnvironment:
        env = TestEnvironment(clock=FakeClock(T0))
        env.engine.register_queue(hydra.Queue("one", concurrency=1, key_concurrency=1))
        return env

    def check(env: TestEnvironment, execution_id: str) -> None:
        assert env.execution(execution_id).status == "completed"
        assert env.store.list_slots(env.engine.namespace) == []

    report = explore_crashes(
        sleeper,
        5,
        check,
        make_env=make_env,
        start_options={"queue": "one", "concurrency_key": "c1"},
    )
    assert report.cases and not report.violations


@hydra.workflow("q-fanout")
def fanout(ctx: hydra.WorkflowContext, n: int) -> list[int]:
    handles = [
        hydra.start_child(ctx, f"child-{i}", job, i, queue="one", priority=i) for i in range(n)
    ]
    return [hydra.wait_child(ctx, h, result_type=int) for h in handles]


def test_children_take_a_queue_and_a_priority() -> None:
    env = env_with(hydra.Queue("one", concurrency=1))
    env.register(fanout)
    order: list[str] = []
    env.engine.add_observer(_Recorder(order))
    eid = env.start(fanout, 3)
    assert env.run_until_complete(eid).output == [0, 2, 4]
    children = [env.engine.get_execution(x) for x in order if x != eid]
    # Started together, run one at a time, the highest priority first.
    assert [(c.queue, c.priority) for c in children] == [("one", 2), ("one", 1), ("one", 0)]
    env.register(bad_fanout)
    failed = env.run_until_complete(env.start(bad_fanout, 1, max_attempts=1))
    assert failed.status == "failed"
    assert failed.error is not None and "queue 'nowhere' is not registered" in failed.error


@hydra.workflow("q-bad-fanout")
def bad_fanout(ctx: hydra.WorkflowContext, n: int) -> int:
    handle = hydra.start_child(ctx, "child", job, n, queue="nowhere")
    return int(hydra.wait_child(ctx, handle, result_type=int))

"""``hydra.gather`` through the test environment, on every store: branches are ordinary
checkpointed steps, stored in the mapping's order, retried on their own, crash-safe."""

from __future__ import annotations

import asyncio
import functools
import random
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import hydra
from hydra.status import StepStatus
from hydra.testing import explore_crashes

from .conftest import WAIT, Calls, MakeEnv

ONE_ATTEMPT = hydra.RetryPolicy(max_attempts=1)


@dataclass
class Point:
    x: int
    y: int


def _flaky(calls: Calls, name: str, failures: int, value: Any) -> Any:
    """A body that fails its first ``failures`` attempts, then returns ``value``."""
    entered = calls.enter(name)
    calls.leave()
    if entered <= failures:
        raise ConnectionError(f"{name} attempt {entered} failed")
    return value


def _retry_workflows(calls: Calls) -> tuple[hydra.Workflow[Any], hydra.Workflow[Any]]:
    def branches() -> dict[str, Any]:
        return {
            "a": lambda: _flaky(calls, "a", 0, 1),
            "b": lambda: _flaky(calls, "b", 2, 2),
            "c": lambda: _flaky(calls, "c", 0, 3),
        }

    policy = hydra.RetryPolicy(max_attempts=3, initial_backoff=timedelta(minutes=5))

    @hydra.workflow("retry-sync")
    def sync_wf(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.gather(ctx, branches(), retry=policy)

    @hydra.workflow("retry-async")
    async def async_wf(ctx: hydra.AsyncWorkflowContext, _: None) -> Any:
        return await hydra.gather(ctx, branches(), retry=policy)

    return sync_wf, async_wf


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_branch_retried_twice_leaves_the_others_at_one_run_each(
    make_env: MakeEnv, mode: str
) -> None:
    calls = Calls()
    workflow = _retry_workflows(calls)[mode == "async"]
    env = make_env()
    env.register(workflow)
    eid = env.start(workflow, None)
    execution = env.run_until_complete(eid)
    assert execution.status == "completed", env.format_history()
    assert execution.output == {"a": 1, "b": 2, "c": 3}
    assert calls.counts == {"a": 1, "b": 3, "c": 1}
    assert {s.name: s.attempts for s in execution.steps} == {"a": 1, "b": 3, "c": 1}
    b = execution.step("b")
    assert b is not None
    assert [a.status for a in b.attempt_history] == ["failed", "failed", "completed"]


def test_the_fake_clock_skips_the_backoff(make_env: MakeEnv) -> None:
    calls = Calls()
    workflow = _retry_workflows(calls)[0]
    env = make_env()
    env.register(workflow)
    eid = env.start(workflow, None)
    started = env.clock.now()
    env.run_until_idle()
    sleeping = env.execution(eid)
    assert sleeping.status == "sleeping"
    assert sleeping.sleep_until == started + timedelta(minutes=5)
    execution = env.run_until_complete(eid)  # jumps the clock over 5 + 10 minutes
    assert execution.status == "completed"
    assert env.clock.now() >= started + timedelta(minutes=15)


def test_every_retrying_branch_is_written_and_the_run_suspends_until_the_earliest(
    make_env: MakeEnv,
) -> None:
    calls = Calls()

    @hydra.workflow("two-retry")
    def two_retry(ctx: hydra.WorkflowContext, _: None) -> Any:
        slow = hydra.RetryPolicy(initial_backoff=timedelta(hours=1))
        fast = hydra.RetryPolicy(initial_backoff=timedelta(minutes=1))
        return {
            **hydra.gather(ctx, {"slow": lambda: _flaky(calls, "slow", 1, "s")}, retry=slow),
            **hydra.gather(
                ctx,
                {
                    "x": lambda: _flaky(calls, "x", 1, "x"),
                    "ok": lambda: _flaky(calls, "ok", 0, "ok"),
                    "y": lambda: _flaky(calls, "y", 1, "y"),
                },
                retry=fast,
            ),
        }

    env = make_env()
    env.register(two_retry)
    eid = env.start(two_retry, None)
    started = env.clock.now()
    env.run_until_idle()
    env.advance(timedelta(hours=1))  # "slow" ran again; then x and y failed once each
    waiting = env.execution(eid)
    assert waiting.status == "sleeping"
    assert {s.name: (s.status, s.attempts) for s in waiting.steps} == {
        "slow": (StepStatus.COMPLETED, 2),
        "x": (StepStatus.RETRYING, 1),
        "ok": (StepStatus.COMPLETED, 1),
        "y": (StepStatus.RETRYING, 1),
    }
    assert waiting.sleep_until == started + timedelta(hours=1, minutes=1)
    execution = env.run_until_complete(eid)
    assert execution.output == {"slow": "s", "x": "x", "ok": "ok", "y": "y"}
    assert calls.counts == {"slow": 2, "x": 2, "ok": 1, "y": 2}


def _ordered_bodies(names: list[str], finish_order: list[str]) -> dict[str, Any]:
    """Bodies that finish in ``finish_order`` (each waits for the one before it)."""
    done = {name: threading.Event() for name in names}

    def body(name: str) -> str:
        place = finish_order.index(name)
        if place > 0 and not done[finish_order[place - 1]].wait(WAIT):
            raise TimeoutError(f"{finish_order[place - 1]} never finished")
        done[name].set()
        return name.upper()

    return {name: functools.partial(body, name) for name in names}


def _ordered_async_bodies(names: list[str], finish_order: list[str]) -> dict[str, Any]:
    done: dict[str, asyncio.Event] = {}

    async def body(name: str) -> str:
        for n in names:
            done.setdefault(n, asyncio.Event())
        place = finish_order.index(name)
        if place > 0:
            await asyncio.wait_for(done[finish_order[place - 1]].wait(), WAIT)
        done[name].set()
        return name.upper()

    return {name: functools.partial(body, name) for name in names}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_stored_order_is_the_mapping_order_whatever_finishes_first(
    make_env: MakeEnv, mode: str, seed: int
) -> None:
    names = [f"part-{i}" for i in range(6)]
    finish_order = random.Random(seed).sample(names, len(names))

    @hydra.workflow("ordered-sync")
    def ordered_sync(ctx: hydra.WorkflowContext, _: None) -> Any:
        hydra.step(ctx, "first", lambda: 0)
        parts = hydra.gather(ctx, _ordered_bodies(names, finish_order))
        hydra.step(ctx, "last", lambda: 0)
        return list(parts)

    @hydra.workflow("ordered-async")
    async def ordered_async(ctx: hydra.AsyncWorkflowContext, _: None) -> Any:
        await hydra.step(ctx, "first", lambda: 0)
        parts = await hydra.gather(ctx, _ordered_async_bodies(names, finish_order))
        await hydra.step(ctx, "last", lambda: 0)
        return list(parts)

    workflow = ordered_sync if mode == "sync" else ordered_async
    env = make_env()
    env.register(workflow)
    execution = env.run_until_complete(env.start(workflow, None))
    assert execution.status == "completed", env.format_history()
    assert execution.output == names
    assert [s.name for s in execution.steps] == ["first", *names, "last"]
    assert [s.order for s in execution.steps] == list(range(len(names) + 2))


def test_sync_and_async_workflows_give_the_same_result(make_env: MakeEnv) -> None:
    def branches() -> dict[str, Any]:
        async def doubled() -> list[int]:
            await asyncio.sleep(0)
            return [1, 2]

        return {"n": lambda: 1, "text": lambda: "two", "doubled": doubled}

    @hydra.workflow("same-sync")
    def same_sync(ctx: hydra.WorkflowContext, _: None) -> Any:
        parts = hydra.gather(ctx, branches())
        return [list(parts), parts]

    @hydra.workflow("same-async")
    async def same_async(ctx: hydra.AsyncWorkflowContext, _: None) -> Any:
        parts = await hydra.gather(ctx, branches())
        return [list(parts), parts]

    env = make_env()
    env.register(same_sync)
    env.register(same_async)
    sync_ex = env.run_until_complete(env.start(same_sync, None))
    async_ex = env.run_until_complete(env.start(same_async, None))
    assert sync_ex.output == async_ex.output
    assert sync_ex.output == [["n", "text", "doubled"], {"n": 1, "text": "two", "doubled": [1, 2]}]

    def stored(execution: hydra.Execution) -> list[tuple[Any, ...]]:
        return [(s.name, s.order, s.status, s.attempts, s.output) for s in execution.steps]

    assert stored(sync_ex) == stored(async_ex)


def _crash_workflow(calls: Calls) -> hydra.Workflow[Any]:
    @hydra.workflow("crashy")
    def crashy(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.gather(
            ctx, {n: functools.partial(_flaky, calls, n, 0, n) for n in ("a", "b", "c")}
        )

    return crashy


@pytest.mark.parametrize("phase", ["before", "during", "after"])
def test_a_crash_in_one_branch_reruns_only_that_branch(make_env: MakeEnv, phase: Any) -> None:
    calls = Calls()
    workflow = _crash_workflow(calls)
    env = make_env(claim_timeout=timedelta(seconds=30))
    env.register(workflow)
    eid = env.start(workflow, None)
    env.crash("b", phase)
    execution = env.run_until_complete(eid)
    assert execution.status == "completed", env.format_history()
    assert execution.output == {"a": "a", "b": "b", "c": "c"}
    reran = 1 if phase == "before" else 2
    assert calls.counts == {"a": 1, "b": reran, "c": 1}
    assert [e.kind for e in env.history].count("crash") == 1
    env.assert_plans_fired()


def test_explore_crashes_covers_every_branch(make_env: MakeEnv) -> None:
    ledger: list[str] = []

    @hydra.workflow("explored")
    def explored(ctx: hydra.WorkflowContext, _: None) -> Any:
        hydra.step(ctx, "open", lambda: ledger.append("open"))
        parts = hydra.gather(
            ctx, {n: functools.partial(str.__mul__, n, 2) for n in ("x", "y", "z")}
        )
        return hydra.step(ctx, "close", lambda: "".join(parts.values()))

    report = explore_crashes(explored, None, make_env=make_env)
    assert report.ok
    assert report.steps == ["open", "x", "y", "z", "close"]
    assert len(report.cases) == 1 + 5 * 3


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_first_exhausted_branch_in_mapping_order_raises_and_can_be_caught(
    make_env: MakeEnv, mode: str
) -> None:
    calls = Calls()
    late_failed = threading.Event()

    def ok() -> str:
        calls.enter("ok")
        return "fine"

    def early() -> None:
        # First in the mapping, but fails after "late" has failed.
        calls.enter("early")
        if mode == "sync" and not late_failed.wait(WAIT):
            raise TimeoutError("late never failed")
        raise ValueError("early broke")

    def late() -> None:
        calls.enter("late")
        late_failed.set()
        raise KeyError("late broke")

    async def late_async() -> None:
        late()

    async def early_async() -> None:
        await asyncio.sleep(0.01)  # "late" fails meanwhile
        early()

    def branches() -> dict[str, Any]:
        if mode == "sync":
            return {"ok": ok, "early": early, "late": late}
        return {"ok": ok, "early": early_async, "late": late_async}

    @hydra.workflow("first-failure-sync")
    def first_sync(ctx: hydra.WorkflowContext, _: None) -> Any:
        try:
            hydra.gather(ctx, branches(), retry=ONE_ATTEMPT)
        except hydra.StepFailedError as exc:
            failed = exc.step_name
            return hydra.step(ctx, "compensate", lambda: f"undo after {failed}")
        return "no failure"

    @hydra.workflow("first-failure-async")
    async def first_async(ctx: hydra.AsyncWorkflowContext, _: None) -> Any:
        try:
            await hydra.gather(ctx, branches(), retry=ONE_ATTEMPT)
        except hydra.StepFailedError as exc:
            failed = exc.step_name
            return await hydra.step(ctx, "compensate", lambda: f"undo after {failed}")
        return "no failure"

    workflow = first_sync if mode == "sync" else first_async
    env = make_env()
    env.register(workflow)
    execution = env.run_until_complete(env.start(workflow, None))
    assert execution.status == "completed", env.format_history()
    assert execution.output == "undo after early"
    assert {s.name: s.status for s in execution.steps} == {
        "ok": StepStatus.COMPLETED,
        "early": StepStatus.FAILED,
        "late": StepStatus.FAILED,
        "compensate": StepStatus.COMPLETED,
    }
    assert calls.counts == {"ok": 1, "early": 1, "late": 1}


def test_an_uncaught_exhausted_branch_fails_the_execution_after_the_others_settled(
    make_env: MakeEnv,
) -> None:
    release = threading.Event()

    def slow() -> str:
        # Still running when "bad" fails: its checkpoint is written all the same.
        if not release.wait(WAIT):
            raise TimeoutError("never released")
        return "slow done"

    def bad() -> None:
        release.set()
        raise RuntimeError("bad")

    @hydra.workflow("uncaught")
    def uncaught(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.gather(ctx, {"bad": bad, "slow": slow}, retry=ONE_ATTEMPT)

    env = make_env()
    env.register(uncaught)
    execution = env.run_until_complete(env.start(uncaught, None))
    assert execution.status == "failed"
    assert execution.error_type == "StepFailedError"
    slow_step = execution.step("slow")
    assert slow_step is not None and slow_step.status == StepStatus.COMPLETED


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_max_concurrency_is_honoured(make_env: MakeEnv, mode: str) -> None:
    calls = Calls()
    # Pairs of bodies meet at the barrier: two must run at once, a third must not.
    barrier = threading.Barrier(2, timeout=WAIT)

    def body(name: str) -> str:
        calls.enter(name)
        try:
            barrier.wait()
        finally:
            calls.leave()
        return name

    async def async_body(name: str) -> str:
        calls.enter(name)
        try:
            await asyncio.sleep(0.005)  # every admitted task is inside before any leaves
        finally:
            calls.leave()
        return name

    names = [f"job-{i}" for i in range(6)]

    @hydra.workflow("limited-sync")
    def limited_sync(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.gather(
            ctx,
            {n: functools.partial(body, n) for n in names},
            max_concurrency=2,
            retry=ONE_ATTEMPT,
        )

    @hydra.workflow("limited-async")
    async def limited_async(ctx: hydra.AsyncWorkflowContext, _: None) -> Any:
        return await hydra.gather(
            ctx, {n: functools.partial(async_body, n) for n in names}, max_concurrency=2
        )

    workflow = limited_sync if mode == "sync" else limited_async
    env = make_env()
    env.register(workflow)
    execution = env.run_until_complete(env.start(workflow, None))
    assert execution.status == "completed", env.format_history()
    assert list(execution.output) == names
    assert calls.most_at_once == 2


def test_a_sync_gather_runs_at_most_eight_bodies_at_once_by_default(make_env: MakeEnv) -> None:
    calls = Calls()
    barrier = threading.Barrier(8, timeout=WAIT)

    def body(name: str) -> str:
        calls.enter(name)
        try:
            barrier.wait()
        finally:
            calls.leave()
        return name

    @hydra.workflow("sixteen")
    def sixteen(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.gather(
            ctx, {f"n{i}": functools.partial(body, f"n{i}") for i in range(16)}, retry=ONE_ATTEMPT
        )

    env = make_env()
    env.register(sixteen)
    execution = env.run_until_complete(env.start(sixteen, None))
    assert execution.status == "completed", env.format_history()
    assert calls.most_at_once == 8


def test_replay_returns_the_checkpoints_decoded_as_step_does(make_env: MakeEnv) -> None:
    def point() -> Point:
        return Point(1, 2)

    seen: list[Any] = []

    @hydra.workflow("typed")
    def typed(ctx: hydra.WorkflowContext, _: None) -> Any:
        parts = hydra.gather(ctx, {"p": point, "n": lambda: 3})
        seen.append(parts["p"])
        hydra.sleep(ctx, timedelta(hours=1))  # the next run replays the gather
        return parts["n"]

    env = make_env()
    env.register(typed)
    assert env.run_until_complete(env.start(typed, None)).output == 3
    assert seen == [Point(1, 2), Point(1, 2)]


def test_an_empty_mapping_gathers_nothing(make_env: MakeEnv) -> None:
    @hydra.workflow("empty")
    def empty(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.gather(ctx, {})

    env = make_env()
    env.register(empty)
    execution = env.run_until_complete(env.start(empty, None))
    assert execution.output == {} and execution.steps == []


def test_a_branch_named_like_an_earlier_step_is_a_duplicate(make_env: MakeEnv) -> None:
    @hydra.workflow("dup")
    def dup(ctx: hydra.WorkflowContext, _: None) -> Any:
        hydra.step(ctx, "a", lambda: 1)
        return hydra.gather(ctx, {"a": lambda: 2})

    env = make_env()
    env.register(dup)
    execution = env.run_until_complete(env.start(dup, None))
    assert execution.status == "failed" and execution.error_type == "DuplicateStepError"


@pytest.mark.parametrize(
    ("steps", "options", "error"),
    [
        ([("a", 1)], {}, TypeError),
        ([(1, lambda: 1)], {}, TypeError),
        ([("a", lambda: 1)], {"max_concurrency": 0}, ValueError),
        ([("a", lambda: 1)], {"max_concurrency": True}, TypeError),
        ([("bad\x00name", lambda: 1)], {}, hydra.InvalidNameError),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(
    steps: list[tuple[Any, Any]], options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        hydra.gather(None, dict(steps), **options)  # type: ignore[call-overload]

"""The current step is per thread and per asyncio task: steps side by side (a gather's
branches, ``asyncio.gather`` of steps) are not nested, a step called inside a step's
function still is, and outside readers see every step in flight."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any

import pytest

import hydra
from hydra.events import Observer, RunInfo
from hydra.status import StepStatus
from hydra.store.base import Claim

from .conftest import WAIT, Calls, MakeEnv

ONE_ATTEMPT = hydra.RetryPolicy(max_attempts=1)
NESTED = "step 'inner' was called inside step 'b': steps cannot be nested"


def _nested_error(execution: hydra.Execution) -> str:
    assert execution.status == "failed"
    step = execution.step("b")
    assert step is not None and step.status == StepStatus.FAILED and step.error is not None
    return step.error


def test_a_step_inside_a_sync_gather_branch_is_the_nested_step_error(make_env: MakeEnv) -> None:
    @hydra.workflow("nested-sync")
    def nested(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.gather(
            ctx,
            {"a": lambda: 1, "b": lambda: hydra.step(ctx, "inner", lambda: 2)},
            retry=ONE_ATTEMPT,
        )

    env = make_env()
    env.register(nested)
    execution = env.run_until_complete(env.start(nested, None))
    assert NESTED in _nested_error(execution)
    a = execution.step("a")
    assert a is not None and a.status == StepStatus.COMPLETED
    assert execution.step("inner") is None


def test_a_step_inside_an_async_gather_branch_is_the_nested_step_error(
    make_env: MakeEnv,
) -> None:
    @hydra.workflow("nested-async")
    async def nested(ctx: hydra.AsyncWorkflowContext, _: None) -> Any:
        async def b() -> Any:
            return await hydra.step(ctx, "inner", lambda: 2)

        return await hydra.gather(ctx, {"a": lambda: 1, "b": b}, retry=ONE_ATTEMPT)

    env = make_env()
    env.register(nested)
    assert NESTED in _nested_error(env.run_until_complete(env.start(nested, None)))


@pytest.mark.parametrize("where", ["timeout-thread", "own-thread"])
def test_a_step_called_from_a_thread_of_a_step_function_is_still_nested(
    make_env: MakeEnv, where: str
) -> None:
    def from_own_thread(ctx: hydra.WorkflowContext) -> Any:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                hydra.step(ctx, "inner", lambda: 2)
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=target)
        thread.start()
        thread.join(WAIT)
        raise box["error"]

    @hydra.workflow("nested-thread")
    def nested(ctx: hydra.WorkflowContext, _: None) -> Any:
        if where == "timeout-thread":  # the step's body runs in a helper thread
            fn: Any = lambda: hydra.step(ctx, "inner", lambda: 2)  # noqa: E731
            return hydra.step(ctx, "b", fn, timeout=WAIT, retry=ONE_ATTEMPT)
        return hydra.step(ctx, "b", lambda: from_own_thread(ctx), retry=ONE_ATTEMPT)

    env = make_env()
    env.register(nested)
    assert NESTED in _nested_error(env.run_until_complete(env.start(nested, None)))


def test_asyncio_gather_of_steps_with_one_failing_once(make_env: MakeEnv) -> None:
    calls = Calls()

    async def flaky() -> str:
        await asyncio.sleep(0)
        if calls.enter("flaky") == 1:
            raise ConnectionError("first attempt fails")
        return "flaky ok"

    async def slow() -> str:
        calls.enter("slow")
        # Still running when "flaky" fails: the run suspends only once this settled,
        # so its checkpoint is written and it never runs again.
        await asyncio.sleep(0.02)
        return "slow ok"

    @hydra.workflow("asyncio-gather")
    async def both(ctx: hydra.AsyncWorkflowContext, _: None) -> Any:
        return list(
            await asyncio.gather(hydra.step(ctx, "flaky", flaky), hydra.step(ctx, "slow", slow))
        )

    env = make_env()
    env.register(both)
    eid = env.start(both, None)
    env.run_until_idle()
    first = env.execution(eid)
    assert first.status == "sleeping"
    assert {s.name: s.status for s in first.steps} == {
        "flaky": StepStatus.RETRYING,
        "slow": StepStatus.COMPLETED,
    }
    execution = env.run_until_complete(eid)
    assert execution.status == "completed", env.format_history()
    assert execution.output == ["flaky ok", "slow ok"]
    assert calls.counts == {"flaky": 2, "slow": 1}
    assert [s.name for s in execution.steps] == ["flaky", "slow"]


def test_asyncio_gather_of_steps_with_both_failing_suspends_once(make_env: MakeEnv) -> None:
    calls = Calls()

    def flaky(name: str, delay: float) -> Any:
        async def body() -> str:
            await asyncio.sleep(delay)
            if calls.enter(name) == 1:
                raise ConnectionError(f"{name} fails once")
            return name

        return body

    @hydra.workflow("asyncio-gather-two")
    async def both(ctx: hydra.AsyncWorkflowContext, _: None) -> Any:
        return list(
            await asyncio.gather(
                hydra.step(ctx, "x", flaky("x", 0)),
                hydra.step(ctx, "z", flaky("z", 0.01)),
                hydra.step(ctx, "y", flaky("y", 0.02)),
            )
        )

    env = make_env()
    env.register(both)
    eid = env.start(both, None)
    env.run_until_idle()
    first = env.execution(eid)
    assert first.status == "sleeping"
    assert {s.name: s.status for s in first.steps} == {
        "x": StepStatus.RETRYING,
        "z": StepStatus.RETRYING,
        "y": StepStatus.RETRYING,
    }
    assert [e.kind for e in env.history].count("claim") == 1
    execution = env.run_until_complete(eid)
    assert execution.output == ["x", "z", "y"]
    assert calls.counts == {"x": 2, "z": 2, "y": 2}


class _KeepRun(Observer):
    def __init__(self) -> None:
        self.run: RunInfo | None = None

    def run_started(self, run: RunInfo, claim: Claim) -> None:
        self.run = run


def test_outside_readers_see_every_step_in_flight(make_env: MakeEnv) -> None:
    keep = _KeepRun()
    barrier = threading.Barrier(3, timeout=WAIT)
    seen: dict[str, Any] = {}

    def body(name: str) -> str:
        assert keep.run is not None
        seen[f"{name} inside"] = keep.run.current_step
        barrier.wait()  # all three in flight now
        if name == "b":
            # from a thread that is in no step: the earliest-entered step in flight
            outside = threading.Thread(
                target=lambda: seen.update(
                    outside=keep.run.current_step if keep.run else None,
                    running=keep.run.running_steps if keep.run else None,
                )
            )
            outside.start()
            outside.join(WAIT)
        barrier.wait()  # nobody leaves before the outside look
        return name

    @hydra.workflow("observed")
    def observed(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.gather(ctx, {n: functools.partial(body, n) for n in ("a", "b", "c")})

    env = make_env()
    env.engine.add_observer(keep)
    env.register(observed)
    execution = env.run_until_complete(env.start(observed, None))
    assert execution.status == "completed", env.format_history()
    assert {seen[f"{n} inside"] for n in "abc"} == {"a", "b", "c"}
    assert sorted(seen["running"]) == ["a", "b", "c"]
    assert seen["outside"] == seen["running"][0]
    assert keep.run is not None
    assert keep.run.current_step is None and keep.run.running_steps == ()

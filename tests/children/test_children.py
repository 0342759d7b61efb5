"""Child workflows (``hydra.start_child``/``wait_child``/``call_child``) on every store,
through the test environment: one child per start whatever crashes, durable waits, ends
before the wait, failures and compensation, cancellation cascading, a wide fan-out."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hydra
from hydra.status import StepStatus
from hydra.store.base import Store
from hydra.testing import FakeClock, TestEnvironment, explore_crashes

MakeEnv = Callable[..., TestEnvironment]


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"kid-{uuid.uuid4().hex[:12]}")
        options.setdefault("clock", FakeClock(datetime(2030, 1, 1, tzinfo=UTC)))
        return TestEnvironment(store=store_factory(), **options)

    return make


RUNS: Counter[str] = Counter()


@hydra.workflow("ship")
def ship(ctx: hydra.WorkflowContext, warehouse: str) -> str:
    return hydra.step(ctx, "label", lambda: RUNS.update([f"label-{warehouse}"]) or f"L-{warehouse}")


@hydra.workflow("no-stock")
def no_stock(ctx: hydra.WorkflowContext, warehouse: str) -> None:
    raise hydra.NonRetryableError(f"nothing left in {warehouse}")


@hydra.workflow("split-order")
def split_order(ctx: hydra.WorkflowContext, warehouses: list[str]) -> list[str]:
    handles = [hydra.start_child(ctx, f"ship-{w}", ship, w) for w in warehouses]
    return [hydra.wait_child(ctx, h, result_type=str) for h in handles]


def registered(env: TestEnvironment, *workflows: hydra.Workflow[Any]) -> TestEnvironment:
    for wf in workflows:
        env.register(wf)
    return env


def test_children_run_and_their_outputs_come_back_in_the_parent(make_env: MakeEnv) -> None:
    env = registered(make_env(), split_order, ship)
    eid = env.start(split_order, ["north", "south"])
    execution = env.run_until_complete(eid)
    assert execution.output == ["L-north", "L-south"]
    kinds = [(s.name, s.kind, s.status) for s in execution.steps]
    assert kinds == [
        ("ship-north", "child", StepStatus.COMPLETED),
        ("ship-south", "child", StepStatus.COMPLETED),
        ("wait-ship-north", "child_wait", StepStatus.COMPLETED),
        ("wait-ship-south", "child_wait", StepStatus.COMPLETED),
    ]
    children = env.engine.list_executions(parent_id=eid)
    assert sorted((c.workflow_name, c.status, c.parent_id) for c in children) == [
        ("ship", "completed", eid), ("ship", "completed", eid),
    ]  # fmt: skip
    start = execution.step("ship-north")
    assert start is not None and start.detail["workflow"] == "ship"
    child = env.execution(start.detail["child"])
    assert (child.input, child.trigger_type, child.trigger_source) == ("north", "child", eid)
    wait = execution.step("wait-ship-north")
    assert wait is not None and wait.output == "L-north"


def test_one_child_per_start_whatever_crashes(make_env: MakeEnv) -> None:
    """Crashes before and after each start, each wait, and inside the children's step."""

    def check(env: TestEnvironment, eid: str) -> None:
        children = env.engine.list_executions(parent_id=eid)
        assert len(children) == 2, [c.id for c in children]
        assert env.execution(eid).output == ["L-a", "L-b"]

    def make() -> TestEnvironment:
        return registered(make_env(), split_order, ship)

    report = explore_crashes(split_order, ["a", "b"], check, make_env=make, also_register=[ship])
    assert report.steps == ["ship-a", "ship-b", "wait-ship-a", "wait-ship-b"]


def test_a_crash_inside_a_child_runs_only_that_child_s_step_again(make_env: MakeEnv) -> None:
    env = registered(make_env(), split_order, ship)
    RUNS.clear()
    eid = env.start(split_order, ["x", "y"])
    env.crash("label", "during")  # whichever child gets there first
    assert env.run_until_complete(eid).output == ["L-x", "L-y"]
    assert sorted(RUNS.values()) == [1, 2]  # the crashed body ran twice, the other once


def test_a_child_that_ended_before_the_wait_needs_no_suspension(make_env: MakeEnv) -> None:
    @hydra.workflow("late-waiter")
    def late_waiter(ctx: hydra.WorkflowContext, _: None) -> str:
        handle = hydra.start_child(ctx, "ship", ship, "early")
        hydra.sleep(ctx, timedelta(hours=1))  # the child ends meanwhile
        return str(hydra.wait_child(ctx, handle))

    env = registered(make_env(), late_waiter, ship)
    eid = env.start(late_waiter, None)
    assert env.run_until_complete(eid).output == "L-early"
    waits = [e for e in env.history if e.kind == "wait" and e.execution_id == eid]
    assert waits == []  # never suspended for the child


def test_a_failed_child_raises_child_failed_error_and_the_parent_compensates(
    make_env: MakeEnv,
) -> None:
    @hydra.workflow("try-warehouses")
    def try_warehouses(ctx: hydra.WorkflowContext, _: None) -> dict[str, str]:
        try:
            return {"label": hydra.call_child(ctx, "first", "no-stock", "north")}
        except hydra.ChildFailedError as exc:
            status = exc.status
            refund = hydra.step(ctx, "refund", lambda: f"refunded after {status}")
            return {"refund": refund, "error": exc.error or "", "child": exc.execution_id}

    env = registered(make_env(), try_warehouses, no_stock)
    eid = env.start(try_warehouses, None)
    execution = env.run_until_complete(eid)
    (child,) = env.engine.list_executions(parent_id=eid)
    assert execution.output == {
        "refund": "refunded after failed",
        "error": "NonRetryableError: nothing left in north",
        "child": child.id,
    }
    assert child.status == "failed"


def test_an_uncaught_child_failure_fails_the_parent_without_more_attempts(
    make_env: MakeEnv,
) -> None:
    @hydra.workflow("careless")
    def careless(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.call_child(ctx, "first", no_stock, "east")

    env = registered(make_env(), careless, no_stock)
    eid = env.start(careless, None, max_attempts=5)
    execution = env.run_until_complete(eid)
    assert (execution.status, execution.error_type, execution.attempt) == (
        "failed", "ChildFailedError", 1,
    )  # fmt: skip
    assert "nothing left in east" in (execution.error_message or "")


@hydra.workflow("wait-forever")
def wait_forever(ctx: hydra.WorkflowContext, _: None) -> Any:
    return hydra.receive(ctx, "never")


@hydra.workflow("tree")
def tree(ctx: hydra.WorkflowContext, depth: int) -> Any:
    if depth == 0:
        return hydra.call_child(ctx, "leaf", wait_forever, None)
    return hydra.call_child(ctx, f"level-{depth}", tree, depth - 1)


def test_cancel_cascades_to_every_unfinished_descendant(make_env: MakeEnv) -> None:
    env = registered(make_env(), tree, wait_forever)
    root = env.start(tree, 2)
    env.run_until_idle()
    family = [root]
    for _ in range(3):
        (child,) = env.engine.list_executions(parent_id=family[-1])
        family.append(child.id)
    assert [env.execution(e).status for e in family] == ["sleeping"] * 4
    assert env.engine.cancel(root) is True
    assert [env.execution(e).status for e in family] == ["cancelled"] * 4


def test_a_cancelled_child_raises_child_failed_error_in_its_parent(make_env: MakeEnv) -> None:
    @hydra.workflow("patient")
    def patient(ctx: hydra.WorkflowContext, _: None) -> str:
        try:
            return str(hydra.call_child(ctx, "wait", wait_forever, None))
        except hydra.ChildFailedError as exc:
            return f"child {exc.status}"

    env = registered(make_env(), patient, wait_forever)
    eid = env.start(patient, None)
    env.run_until_idle()
    (child,) = env.engine.list_executions(parent_id=eid)
    env.engine.cancel(child.id)
    assert env.run_until_complete(eid).output == "child cancelled"


def test_a_parent_that_ends_without_waiting_leaves_its_children_running(
    make_env: MakeEnv,
) -> None:
    @hydra.workflow("fire-and-forget")
    def fire_and_forget(ctx: hydra.WorkflowContext, _: None) -> str:
        hydra.start_child(ctx, "background", wait_forever, None)
        return "done"

    env = registered(make_env(), fire_and_forget, wait_forever)
    eid = env.start(fire_and_forget, None)
    assert env.run_until_complete(eid).output == "done"
    (child,) = env.engine.list_executions(parent_id=eid)
    assert env.execution(child.id).status == "sleeping"
    env.send(child.id, "never", "finally")  # it goes on; its end reaches no one
    assert env.run_until_complete(child.id).output == "finally"
    assert env.execution(eid).status == "completed"


def test_a_wait_for_a_child_times_out_durably(make_env: MakeEnv) -> None:
    @hydra.workflow("impatient")
    def impatient(ctx: hydra.WorkflowContext, _: None) -> str:
        handle = hydra.start_child(ctx, "slow", wait_forever, None)
        try:
            return str(hydra.wait_child(ctx, handle, timeout=timedelta(hours=2)))
        except hydra.WaitTimeoutError:
            return "gave up"

    env = registered(make_env(), impatient, wait_forever)
    eid = env.start(impatient, None)
    execution = env.run_until_complete(eid)
    assert execution.output == "gave up"
    assert env.clock.now() == datetime(2030, 1, 1, 2, tzinfo=UTC)
    wait = execution.step("wait-slow")
    assert wait is not None and wait.status == StepStatus.TIMED_OUT


@hydra.workflow("fan-out")
def fan_out(ctx: hydra.WorkflowContext, n: int) -> int:
    handles = [hydra.start_child(ctx, f"c{i}", "leaf", i) for i in range(n)]
    return sum(hydra.wait_child(ctx, h, result_type=int) for h in handles)


@hydra.workflow("leaf")
def leaf(ctx: hydra.WorkflowContext, i: int) -> int:
    return i


def test_a_fan_out_of_1000_children_wakes_the_parent_a_bounded_number_of_times(
    store_factory: Callable[[], Store],
) -> None:
    env = registered(
        TestEnvironment(
            store=store_factory(),
            namespace=f"kid-{uuid.uuid4().hex[:12]}",
            clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC)),
        ),
        fan_out,
        leaf,
    )
    eid = env.start(fan_out, 1000)
    assert env.run_until_complete(eid).output == sum(range(1000))
    claims = [e for e in env.history if e.kind == "claim" and e.execution_id == eid]
    assert len(claims) <= 3, len(claims)


@hydra.workflow("async-parent")
async def async_parent(ctx: hydra.AsyncWorkflowContext, warehouses: list[str]) -> list[str]:
    handles = [await hydra.start_child(ctx, f"ship-{w}", ship, w) for w in warehouses]
    got = [await hydra.wait_child(ctx, h) for h in handles]
    got.append(await hydra.call_child(ctx, "extra", "ship", "extra"))
    return got


def test_async_workflows_await_children(make_env: MakeEnv) -> None:
    env = registered(make_env(), async_parent, ship)
    eid = env.start(async_parent, ["a"])
    assert env.run_until_complete(eid).output == ["L-a", "L-extra"]


def test_start_child_refuses_an_idempotency_key_and_bad_input(make_env: MakeEnv) -> None:
    @hydra.workflow("keyed")
    def keyed(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.start_child(ctx, "k", ship, "w", idempotency_key="x")

    @hydra.workflow("mistyped")
    def mistyped(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.start_child(ctx, "k", ship, 42)  # ship takes a str

    env = registered(make_env(), keyed, mistyped, ship)
    first = env.run_until_complete(env.start(keyed, None, max_attempts=1))
    assert first.error_type == "TypeError" and "idempotency_key" in (first.error_message or "")
    second = env.run_until_complete(env.start(mistyped, None, max_attempts=1))
    assert second.error_type == "PayloadError"
    assert env.engine.list_executions(workflow_name="ship") == []


def test_topics_of_hydra_s_own_are_refused(make_env: MakeEnv) -> None:
    env = registered(make_env(), wait_forever)
    eid = env.start(wait_forever, None)
    with pytest.raises(hydra.InvalidNameError, match="hydra's own"):
        env.engine.send(eid, "hydra.child:x", 1)


def test_a_child_s_end_reads_as_its_status_output_and_error(make_env: MakeEnv) -> None:
    @hydra.workflow("two-kids")
    def two_kids(ctx: hydra.WorkflowContext, _: None) -> list[str]:
        good = hydra.start_child(ctx, "good", ship, "w")
        bad = hydra.start_child(ctx, "bad", no_stock, "e")
        out = [hydra.wait_child(ctx, good, result_type=str)]
        try:
            hydra.wait_child(ctx, bad)
        except hydra.ChildFailedError as exc:
            out.append(exc.status)
        return out

    env = registered(make_env(), two_kids, ship, no_stock)
    eid = env.start(two_kids, None)
    assert env.run_until_complete(eid).output == ["L-w", "failed"]
    ends = sorted((m.payload for m in env.engine.list_messages(eid)), key=lambda p: p["status"])
    assert ends == [
        {"status": "completed", "output": "L-w", "error": None},
        {"status": "failed", "output": None, "error": "NonRetryableError: nothing left in e"},
    ]


def test_cancelling_a_cancelled_parent_again_finishes_an_interrupted_cascade(
    make_env: MakeEnv,
) -> None:
    """A cascade cut short (the process died after cancelling the parent) is finished by
    cancelling the parent again: its unfinished descendants are cancelled then."""
    env = registered(make_env(), tree, wait_forever)
    root = env.start(tree, 1)
    env.run_until_idle()
    (child,) = env.engine.list_executions(parent_id=root)
    env.store.cancel(env.engine.namespace, root, now_ms=env.clock.now_ms())  # the parent only
    assert env.execution(child.id).status == "sleeping"
    assert env.engine.cancel(root) is False  # already cancelled...
    (grandchild,) = env.engine.list_executions(parent_id=child.id)
    assert [env.execution(e).status for e in (child.id, grandchild.id)] == ["cancelled"] * 2


def test_start_child_inside_a_step_function_is_a_clear_error_not_retried(
    make_env: MakeEnv,
) -> None:
    @hydra.workflow("misplaced-child")
    def misplaced(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.step(ctx, "outer", lambda: hydra.start_child(ctx, "c", ship, "w"))

    env = registered(make_env(), misplaced, ship)
    execution = env.run_until_complete(env.start(misplaced, None))
    step = execution.step("outer")
    assert step is not None and step.attempts == 1  # not retried: it can never work
    assert "hydra.start_child ('c') was called inside the function of step 'outer'" in (
        step.error or ""
    )

"""``hydra.testing.replay_check`` (issue 14): stored executions replayed against new code
offline, on every store, finds each kind of mismatch live detection finds, with no step
body run and nothing written to the store read from."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import hydra
from hydra.store.base import Store
from hydra.testing import ReplayReport, TestEnvironment, replay_check
from tests.deploys.conftest import MakeEnv
from tests.deploys.test_live_detection import (
    CODE,
    NAP,
    PATCHED,
    VIOLATIONS,
    appended,
    asleep_on_v1,
    order,
    renamed,
    review,
    v1,
)

# Everything replay_check may call on the store it checks.
READS = frozenset(
    {"list_executions", "get_execution", "list_steps", "list_step_attempts", "max_value_bytes"}
)


class ReadOnlyStore:
    """A store that fails the test on anything but a read."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name not in READS:
            raise AssertionError(f"replay_check called store.{name}")
        return getattr(self._store, name)


def snapshot(env: TestEnvironment, eid: str) -> tuple[Any, ...]:
    row = env.store.get_execution(env.engine.namespace, eid)
    return (row, env.store.list_steps(eid), env.store.list_step_attempts(eid))


def check(env: TestEnvironment, workflows: list[hydra.Workflow[Any]], **opts: Any) -> ReplayReport:
    store: Any = ReadOnlyStore(env.store)
    return replay_check(workflows, store, namespace=env.engine.namespace, **opts)


@pytest.mark.parametrize("kind", sorted(VIOLATIONS))
def test_each_mismatch_is_found_without_running_or_writing(make_env: MakeEnv, kind: str) -> None:
    changed, expected = VIOLATIONS[kind]
    env = make_env()
    eid = asleep_on_v1(env)
    before = snapshot(env, eid)
    runs = env.step_runs(eid, "ship")
    CODE["now"] = changed  # the deploy, checked before it goes out
    try:
        report = check(env, [order])
    finally:
        CODE["now"] = v1
    assert (report.ok, report.checked, len(report.violations)) == (False, 1, 1)
    (violation,) = report.violations
    assert (violation.execution_id, violation.workflow_name) == (eid, "order")
    assert violation.status == "sleeping"
    for part in expected:
        assert part in violation.message, violation.message
    assert str(violation) == f"order {eid}: {violation.message}"
    assert report.format().splitlines() == [str(violation), "1 execution checked, 1 violation"]
    assert snapshot(env, eid) == before  # the real store untouched
    assert env.step_runs(eid, "ship") == runs


def test_the_violation_names_the_position_and_both_sides(make_env: MakeEnv) -> None:
    env = make_env()
    eid = asleep_on_v1(env)
    CODE["now"] = renamed
    try:
        (violation,) = check(env, [order]).violations
    finally:
        CODE["now"] = v1
    assert violation.position == 1
    assert (violation.stored or "").startswith("step 'charge' (at ")
    assert (violation.code or "").startswith("step 'charge-card' (at ")
    assert eid in violation.message


def test_unchanged_and_appended_code_replays(make_env: MakeEnv) -> None:
    env = make_env()
    asleep_on_v1(env)
    asleep_on_v1(env)
    assert check(env, [order]) == ReplayReport(checked=2)
    CODE["now"] = appended
    try:
        report = check(env, [order])
    finally:
        CODE["now"] = v1
    assert report.ok and report.checked == 2, report.format()


def test_step_bodies_never_run(make_env: MakeEnv) -> None:
    ran: list[str] = []

    def noting(ctx: hydra.WorkflowContext) -> Any:
        hydra.step(ctx, "reserve", lambda: ran.append("reserve"))
        hydra.step(ctx, "charge", lambda: ran.append("charge"))
        hydra.sleep(ctx, NAP, name="nap")
        hydra.step(ctx, "ship", lambda: ran.append("ship"))

    env = make_env()
    asleep_on_v1(env)
    CODE["now"] = noting
    try:
        assert check(env, [order]).ok
    finally:
        CODE["now"] = v1
    assert ran == []


def test_workflows_not_given_are_skipped(make_env: MakeEnv) -> None:
    env = make_env()
    eid = asleep_on_v1(env)
    report = check(env, [review])
    assert (report.ok, report.checked) == (True, 0)
    assert [(s.execution_id, s.workflow_name) for s in report.skipped] == [(eid, "order")]
    assert report.summary() == "0 executions checked, 0 violations, 1 skipped " + (
        "(no code given for workflow 'order')"
    )


def test_finished_executions_only_when_asked(make_env: MakeEnv) -> None:
    env = make_env()
    eid = asleep_on_v1(env)
    env.run_until_complete(eid)
    CODE["now"] = renamed
    try:
        assert check(env, [order]).checked == 0
        everything = check(env, [order], include_finished=True)
        completed = check(env, [order], statuses=["completed"])
    finally:
        CODE["now"] = v1
    assert [v.execution_id for v in everything.violations] == [eid]
    assert completed.violations == everything.violations
    assert check(env, [order], include_finished=True).ok  # the code it ran with


def test_limit_bounds_the_executions_read(make_env: MakeEnv) -> None:
    env = make_env()
    for _ in range(3):
        asleep_on_v1(env)
    assert check(env, [order], limit=2).checked == 2


def test_a_patched_workflow_checks_clean_for_old_and_new_executions(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(review)
    PATCHED["on"] = False
    old = env.start(review, None)
    env.run_until_idle()
    try:
        # The fraud check inserted without a patch: the old execution no longer replays.
        unpatched = _forced_fraud_check(env)
        assert [v.execution_id for v in unpatched.violations] == [old]
        PATCHED["on"] = True  # the deploy with the patch
        new = env.start(review, None)
        env.run_until_idle()
        report = check(env, [review])
    finally:
        PATCHED["on"] = False
    assert (report.ok, report.checked) == (True, 2), report.format()
    assert env.execution(new).step("patch:fraud-check") is not None
    assert env.execution(old).step("patch:fraud-check") is None  # nothing written


def _forced_fraud_check(env: TestEnvironment) -> ReplayReport:
    @hydra.workflow("review")
    def forced(ctx: hydra.WorkflowContext, _: None) -> Any:
        hydra.step(ctx, "receive-order", lambda: "received")
        hydra.step(ctx, "fraud-check", lambda: "checked")
        hydra.sleep(ctx, NAP, name="wait")
        return hydra.step(ctx, "ship", lambda: "shipped")

    return check(env, [forced])


@hydra.workflow("asker")
def asker(ctx: hydra.WorkflowContext, _: None) -> Any:
    hydra.step(ctx, "ask", lambda: "asked")
    answer = hydra.receive(ctx, "answer", timeout=timedelta(days=1))
    hydra.set_event(ctx, "stage", "answered")
    return hydra.step(ctx, "act", lambda: answer)


def test_waits_replay_up_to_the_message_not_yet_received(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(asker)
    waiting = env.start(asker, None)
    answered = env.start(asker, None)
    env.run_until_idle()
    env.send(answered, "answer", "yes")
    assert env.execution(waiting).status == "sleeping"
    env.send(waiting, "unrelated", 1)  # a message sits unread: still nothing is consumed
    before = snapshot(env, waiting)
    report = check(env, [asker], include_finished=True)
    assert (report.ok, report.checked) == (True, 2), report.format()
    assert snapshot(env, waiting) == before


@hydra.workflow("asyncorder")
async def async_order(ctx: hydra.AsyncWorkflowContext, _: None) -> Any:
    await hydra.step(ctx, "reserve", lambda: "r")
    await hydra.sleep(ctx, NAP, name="nap")
    return await hydra.step(ctx, ASYNC_NAME["now"], lambda: "shipped")


ASYNC_NAME = {"now": "ship"}


def test_async_workflows_replay_too(make_env: MakeEnv) -> None:
    @hydra.workflow("asyncorder")
    async def reordered(ctx: hydra.AsyncWorkflowContext, _: None) -> Any:
        await hydra.sleep(ctx, NAP, name="nap")
        return await hydra.step(ctx, "reserve", lambda: "r")

    env = make_env()
    env.register(async_order)
    eid = env.start(async_order, None)
    env.run_until_idle()
    assert check(env, [async_order]).ok
    (violation,) = check(env, [reordered]).violations
    assert violation.execution_id == eid and "the history has step 'reserve'" in violation.message


def test_an_input_that_no_longer_decodes_is_a_violation(make_env: MakeEnv) -> None:
    @hydra.workflow("order")
    def typed(ctx: hydra.WorkflowContext, req: int) -> Any:
        return v1(ctx)

    env = make_env()
    eid = asleep_on_v1(env)  # started with None as its input
    (violation,) = check(env, [typed]).violations
    assert violation.execution_id == eid and "input no longer decodes" in violation.message


def test_the_marshaller_may_be_given(make_env: MakeEnv) -> None:
    env = make_env()
    asleep_on_v1(env)
    assert check(env, [order], marshaller=hydra.JSONMarshaller()).ok

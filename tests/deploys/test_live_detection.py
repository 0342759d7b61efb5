"""Code changed under live executions, found while they replay (issue 14), on every store:
each kind of mismatch parks the execution (pending, no attempt used, the error shown),
tried again later by itself; the fixed code resumes it. Appending is no mismatch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import hydra
from hydra.testing import TestEnvironment, explore_crashes
from tests.deploys.conftest import MakeEnv

NAP = timedelta(minutes=1)


@dataclass
class Receipt:
    amount: int


def v1(ctx: hydra.WorkflowContext) -> Any:
    hydra.step(ctx, "reserve", lambda: "r")
    hydra.step(ctx, "charge", lambda: {"amount": 5})
    hydra.sleep(ctx, NAP, name="nap")
    return hydra.step(ctx, "ship", lambda: "shipped")


def renamed(ctx: hydra.WorkflowContext) -> Any:
    hydra.step(ctx, "reserve", lambda: "r")
    hydra.step(ctx, "charge-card", lambda: {"amount": 5})
    hydra.sleep(ctx, NAP, name="nap")
    return hydra.step(ctx, "ship", lambda: "shipped")


def removed(ctx: hydra.WorkflowContext) -> Any:
    hydra.step(ctx, "reserve", lambda: "r")
    hydra.sleep(ctx, NAP, name="nap")
    return hydra.step(ctx, "ship", lambda: "shipped")


def inserted(ctx: hydra.WorkflowContext) -> Any:
    hydra.step(ctx, "reserve", lambda: "r")
    hydra.step(ctx, "fraud-check", lambda: "ok")
    hydra.step(ctx, "charge", lambda: {"amount": 5})
    hydra.sleep(ctx, NAP, name="nap")
    return hydra.step(ctx, "ship", lambda: "shipped")


def reordered(ctx: hydra.WorkflowContext) -> Any:
    hydra.step(ctx, "charge", lambda: {"amount": 5})
    hydra.step(ctx, "reserve", lambda: "r")
    hydra.sleep(ctx, NAP, name="nap")
    return hydra.step(ctx, "ship", lambda: "shipped")


def retyped(ctx: hydra.WorkflowContext) -> Any:
    hydra.step(ctx, "reserve", lambda: "r")
    hydra.step(ctx, "charge", lambda: Receipt(5), result_type=list[int])
    hydra.sleep(ctx, NAP, name="nap")
    return hydra.step(ctx, "ship", lambda: "shipped")


def sleep_became_a_step(ctx: hydra.WorkflowContext) -> Any:
    hydra.step(ctx, "reserve", lambda: "r")
    hydra.step(ctx, "charge", lambda: {"amount": 5})
    hydra.step(ctx, "nap", lambda: "no nap")
    return hydra.step(ctx, "ship", lambda: "shipped")


def raising(ctx: hydra.WorkflowContext) -> Any:
    hydra.step(ctx, "reserve", lambda: "r")
    raise ValueError("a new check fails before charge")


def appended(ctx: hydra.WorkflowContext) -> Any:
    v1(ctx)
    return hydra.step(ctx, "notify", lambda: "notified")


CODE: dict[str, Callable[[hydra.WorkflowContext], Any]] = {"now": v1}


@hydra.workflow("order")
def order(ctx: hydra.WorkflowContext, _: None) -> Any:
    return CODE["now"](ctx)


VIOLATIONS: dict[str, tuple[Callable[[hydra.WorkflowContext], Any], tuple[str, ...]]] = {
    "rename": (renamed, ("the history has step 'charge' (at ", "the code did step 'charge-card'")),
    "removal": (removed, ("the history has step 'charge' (at ", "the code did sleep 'nap'")),
    "insertion": (inserted, ("the history has step 'charge'", "the code did step 'fraud-check'")),
    "reorder": (reordered, ("the history has step 'reserve'", "the code did step 'charge'")),
    "decode": (retyped, ("the stored result of step 'charge' no longer decodes into list[int]",)),
    "sleep-to-step": (sleep_became_a_step, ("the history has sleep 'nap'", "the code did step")),
    "raise": (raising, ("the code raised ValueError before reaching checkpoints it reached",)),
}


def asleep_on_v1(env: TestEnvironment) -> str:
    CODE["now"] = v1
    env.register(order)
    eid = env.start(order, None, max_attempts=2)
    env.run_until_idle()
    assert env.execution(eid).status == "sleeping"
    return eid


@pytest.mark.parametrize("kind", sorted(VIOLATIONS))
def test_each_mismatch_parks_the_execution_until_fixed_code_resumes_it(
    make_env: MakeEnv, kind: str
) -> None:
    changed, expected = VIOLATIONS[kind]
    env = make_env()
    eid = asleep_on_v1(env)
    CODE["now"] = changed  # the deploy
    env.advance(NAP)
    parked = env.execution(eid)
    assert (parked.status, parked.error_type, parked.attempt) == (
        "pending", "NonDeterminismError", 1,
    )  # fmt: skip
    for part in expected:
        assert part in (parked.error_message or ""), parked.error_message
    assert "test_live_detection.py:" in (parked.error_message or "") or kind in ("decode", "raise")
    assert eid in (parked.error_message or "")
    assert parked.worker_id is None
    # Tried again by itself after a growing delay: 1 minute, then 2...
    assert parked.next_retry_at == env.clock.now() + timedelta(minutes=1)
    env.advance(timedelta(minutes=1))
    again = env.execution(eid)
    assert (again.status, again.attempt) == ("pending", 1)
    assert again.next_retry_at == env.clock.now() + timedelta(minutes=2)
    CODE["now"] = v1  # the fix
    assert env.run_until_complete(eid).output == "shipped"
    assert env.execution(eid).attempt == 1  # no attempt used by the mismatches


def test_hydra_executions_retry_resumes_a_parked_execution_at_once(make_env: MakeEnv) -> None:
    env = make_env()
    eid = asleep_on_v1(env)
    CODE["now"] = renamed
    env.advance(NAP)
    assert env.execution(eid).error_type == "NonDeterminismError"
    CODE["now"] = v1
    env.engine.retry(eid)
    assert env.run_until_idle() == 1  # due at once, no clock move
    assert env.execution(eid).status == "completed"


def test_appending_steps_after_the_last_checkpoint_is_no_mismatch(make_env: MakeEnv) -> None:
    env = make_env()
    eid = asleep_on_v1(env)
    CODE["now"] = appended
    env.advance(NAP)
    assert env.run_until_complete(eid).output == "notified"


def test_a_swallowed_mismatch_still_parks(make_env: MakeEnv) -> None:
    def swallowing(ctx: hydra.WorkflowContext) -> Any:
        try:
            renamed(ctx)
        except Exception:
            return hydra.step(ctx, "fallback", lambda: "swallowed")
        return None

    env = make_env()
    eid = asleep_on_v1(env)
    CODE["now"] = swallowing
    env.advance(NAP)
    parked = env.execution(eid)
    assert (parked.status, parked.error_type) == ("pending", "NonDeterminismError")
    assert parked.step("fallback") is None  # nothing after the mismatch ran


@hydra.workflow("review")
def review(ctx: hydra.WorkflowContext, _: None) -> list[str]:
    done = [hydra.step(ctx, "receive-order", lambda: "received")]
    # The new code: a fraud check before the wait. An execution already past this point
    # (asleep in "wait") replays the old code here; one that gets here now runs it.
    if PATCHED["on"] and hydra.patched(ctx, "fraud-check"):
        done.append(hydra.step(ctx, "fraud-check", lambda: "checked"))
    hydra.sleep(ctx, NAP, name="wait")
    done.append(hydra.step(ctx, "ship", lambda: "shipped"))
    return done


PATCHED = {"on": False}


def test_patched_keeps_old_executions_on_the_old_path_and_new_ones_on_the_new(
    make_env: MakeEnv,
) -> None:
    env = make_env()
    env.register(review)
    PATCHED["on"] = False
    old = env.start(review, None)
    env.advance(timedelta(seconds=30))
    old_mid = env.start(review, None)  # asleep too, but later
    env.run_until_idle()
    PATCHED["on"] = True  # the deploy with the patch
    new = env.start(review, None)
    env.run_until_all_complete()
    assert env.execution(old).output == ["received", "shipped"]
    assert env.execution(old_mid).output == ["received", "shipped"]
    assert env.execution(new).output == ["received", "checked", "shipped"]
    # The answer is recorded: every later replay agrees.
    answers = {eid: env.execution(eid).step("patch:fraud-check") for eid in (old, old_mid, new)}
    assert {eid: s.output if s else None for eid, s in answers.items()} == {
        old: False, old_mid: False, new: True,
    }  # fmt: skip


def test_patched_is_stable_across_crashes(make_env: MakeEnv) -> None:
    PATCHED["on"] = True

    def check(env: TestEnvironment, eid: str) -> None:
        assert env.execution(eid).output == ["received", "checked", "shipped"]

    report = explore_crashes(review, None, check, make_env=make_env)
    assert "patch:fraud-check" in report.steps

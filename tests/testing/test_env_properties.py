"""Property tests: whatever crashes happen, in whatever interleaving, hydra's guarantees hold.

A four-step workflow with a durable sleep and a step that fails once and is retried runs
as two concurrent executions under every crash schedule and interleaving Hypothesis
draws (``hydra.testing.strategies``). Memory store only; derandomized, so a CI run is
reproducible.
"""

from __future__ import annotations

import ast
from collections import Counter
from datetime import timedelta
from functools import cache
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import hydra
from hydra.testing import PHASES, Phase, TestEnvironment
from hydra.testing.strategies import (
    CrashSchedule,
    Interleaving,
    apply_schedule,
    crash_points,
    crash_schedules,
    interleavings,
)

STEPS = ("validate", "charge", "reserve", "notify")
PAYLOADS = (1, 2)
MAX_CRASHES = 3
LEASE = timedelta(seconds=60)
SLEEP = timedelta(hours=1)
RESERVE_BACKOFF = timedelta(seconds=5)
PROPERTY = settings(max_examples=50, deadline=None, derandomize=True, database=None)


def order_workflow() -> hydra.Workflow[Any]:
    """validate -> charge -> sleep 1 h -> reserve (fails its first run, retried) -> notify."""
    effects: Counter[tuple[str, str]] = Counter()  # (execution, step) -> bodies that ran

    @hydra.workflow("property-order")
    def wf(ctx: hydra.WorkflowContext, n: int) -> dict[str, Any]:
        eid = ctx.execution_id

        def effect(name: str, value: Any) -> Any:
            effects[(eid, name)] += 1
            return value

        def reserve() -> str:
            if effect("reserve", effects[(eid, "reserve")]) == 0:  # its first body run
                raise ConnectionError("warehouse busy")
            return f"res-{n}"

        valid = hydra.step(ctx, "validate", lambda: effect("validate", n > 0))
        charge = hydra.step(ctx, "charge", lambda: effect("charge", f"ch-{n}"))
        hydra.sleep(ctx, SLEEP, name="cool-off")
        reservation = hydra.step(
            ctx,
            "reserve",
            reserve,
            retry=hydra.RetryPolicy(max_attempts=3, initial_backoff=RESERVE_BACKOFF),
        )
        note = hydra.step(ctx, "notify", lambda: effect("notify", f"{charge}/{reservation}"))
        return {"valid": valid, "charge": charge, "reservation": reservation, "note": note}

    return wf


def run(
    schedule: CrashSchedule, interleaving: Interleaving, max_attempts: int
) -> tuple[TestEnvironment, dict[int, str]]:
    env = interleaving.environment()
    env.register(order_workflow())
    eids = {n: env.start("property-order", n, max_attempts=max_attempts) for n in PAYLOADS}
    apply_schedule(env, schedule)  # each crash hits whichever execution gets there first
    env.run_until_all_complete()
    return env, eids


@cache
def baseline() -> tuple[dict[int, Any], dict[str, int]]:
    """Outputs per payload and step runs of the run without crashes."""
    env, eids = run([], Interleaving(seed=0, workers=1), max_attempts=1)
    outputs = {n: env.execution(eid).output for n, eid in eids.items()}
    runs = {s: env.step_runs(eids[1], s) for s in STEPS}
    assert runs == {"validate": 1, "charge": 1, "reserve": 2, "notify": 1}
    assert all(env.execution(eid).status == "completed" for eid in eids.values())
    return outputs, runs


def fired(env: TestEnvironment, eid: str) -> list[tuple[str, Phase]]:
    """The crashes that really happened to ``eid``, from the history."""
    points: list[tuple[str, Phase]] = []
    for event in env.history:
        if event.kind == "crash" and event.execution_id == eid:
            phase, _, step = event.detail.partition(" step ")
            assert phase in PHASES, event
            points.append((ast.literal_eval(step), phase))
    return points


def check_step_runs(env: TestEnvironment, eid: str, crashes: list[tuple[str, Phase]]) -> None:
    _, base = baseline()
    execution = env.execution(eid)
    completed = {s.name for s in execution.steps if s.status == "completed"}
    for step in STEPS:
        in_body = sum(1 for point in crashes if point in ((step, "during"), (step, "after")))
        runs = env.step_runs(eid, step)
        if step in completed:
            # Completed steps ran as often as without crashes, plus at most once per crash
            # inside them (at-least-once for the step in flight, never again once done).
            assert base[step] <= runs <= base[step] + in_body, (step, runs, crashes)
        else:
            assert runs <= base[step] + in_body, (step, runs, crashes)


@PROPERTY
@given(
    schedule=crash_schedules(STEPS, max_crashes=MAX_CRASHES),
    interleaving=interleavings(max_workers=3),
)
def test_any_crash_schedule_completes_with_the_same_outputs(
    schedule: CrashSchedule, interleaving: Interleaving
) -> None:
    outputs, _ = baseline()
    # One attempt more than there can be crashes: completion is certain.
    env, eids = run(schedule, interleaving, max_attempts=MAX_CRASHES + 1)
    t0 = env.history[0].at
    all_fired: Counter[tuple[str, Phase]] = Counter()
    for n, eid in eids.items():
        execution = env.execution(eid)
        crashes = fired(env, eid)
        all_fired.update(crashes)
        assert execution.status == "completed", env.format_history()
        assert execution.output == outputs[n]
        assert execution.attempt == 1 + len(crashes)
        assert [s.name for s in execution.steps] == [
            "validate",
            "charge",
            "cool-off",
            "reserve",
            "notify",
        ]
        check_step_runs(env, eid, crashes)
        # Virtual time is exact: the sleep, the step's backoff and one lease per crash. The
        # backoff happens only if reserve's failed first run was recorded: a crash
        # "during" that run loses the failure, and the next run succeeds without a wait.
        reserve = execution.step("reserve")
        assert reserve is not None
        backoff = RESERVE_BACKOFF * (reserve.attempts - 1)
        assert execution.completed_at == t0 + SLEEP + backoff + len(crashes) * LEASE
    # Every crash that fired was scheduled (a scheduled one may never be reached).
    assert not all_fired - Counter(schedule)
    assert not any(e.kind == "lost" for e in env.history)


@PROPERTY
@given(
    schedule=crash_schedules(STEPS, max_crashes=MAX_CRASHES, min_crashes=1),
    interleaving=interleavings(max_workers=3),
    max_attempts=st.integers(min_value=1, max_value=2),
)
def test_crashes_beyond_max_attempts_fail_only_with_lease_expired(
    schedule: CrashSchedule, interleaving: Interleaving, max_attempts: int
) -> None:
    outputs, _ = baseline()
    env, eids = run(schedule, interleaving, max_attempts=max_attempts)
    for n, eid in eids.items():
        execution = env.execution(eid)
        crashes = fired(env, eid)
        if len(crashes) >= max_attempts:
            assert (execution.status, execution.error_type) == ("failed", "LeaseExpiredError")
            assert execution.attempt == max_attempts + 1
            assert execution.output is None
        else:
            assert execution.status == "completed", env.format_history()
            assert execution.output == outputs[n]
            assert execution.attempt == 1 + len(crashes)
        check_step_runs(env, eid, crashes)


@PROPERTY
@given(
    schedule=crash_schedules(STEPS, max_crashes=2, min_crashes=1),
    interleaving=interleavings(max_workers=2),
)
def test_the_same_schedule_and_interleaving_replay_the_same_history(
    schedule: CrashSchedule, interleaving: Interleaving
) -> None:
    one, _ = run(schedule, interleaving, max_attempts=3)
    two, _ = run(schedule, interleaving, max_attempts=3)
    assert one.format_history() == two.format_history()


# -- the strategies themselves -------------------------------------------------------------


@PROPERTY
@given(
    schedule=crash_schedules(STEPS, max_crashes=2, phases=("before", "after")),
    interleaving=interleavings(max_workers=4, min_workers=2, max_seed=10),
    point=crash_points(["only"]),
)
def test_strategies_draw_within_their_bounds(
    schedule: CrashSchedule, interleaving: Interleaving, point: tuple[str, Phase]
) -> None:
    assert len(schedule) <= 2
    assert all(step in STEPS and phase in ("before", "after") for step, phase in schedule)
    seed, workers = interleaving
    assert 0 <= seed <= 10 and 2 <= workers <= 4
    env = interleaving.environment()
    assert len(env.workers) == workers
    assert point[0] == "only" and point[1] in PHASES

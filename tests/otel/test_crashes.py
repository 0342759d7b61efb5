"""Spans after crashes: a worker dies at every step and phase (``explore_crashes``), a
replacement takes over and replays. Every step body that ran has exactly one span, a
replayed checkpoint none, and every claim one run span."""

from __future__ import annotations

from datetime import timedelta

import hydra
from hydra.testing import TestEnvironment, explore_crashes
from tests.otel.spans import Spans, attr, exceptions, failed, is_child


@hydra.workflow("otel-order")
def order(ctx: hydra.WorkflowContext, n: int) -> int:
    charged = hydra.step(ctx, "charge", lambda: n * 100)
    hydra.sleep(ctx, timedelta(hours=1), name="cool-off")
    parts = hydra.gather(ctx, {"pack": lambda: 1, "label": lambda: 2})
    return hydra.step(ctx, "ship", lambda: charged + parts["pack"] + parts["label"])


def test_every_crash_point_leaves_one_span_per_body_run_and_per_claim() -> None:
    made: list[tuple[TestEnvironment, Spans]] = []  # (kept alive: no id is reused)

    def make_env() -> TestEnvironment:
        env, spans = TestEnvironment(), Spans()
        env.engine.add_observer(spans.tracing)
        made.append((env, spans))
        return env

    def check(env: TestEnvironment, eid: str) -> None:
        assert env.execution(eid).output == 303
        (spans,) = [s for e, s in made if e is env]
        runs = spans.runs(eid)
        claims = [
            e for e in env.history if e.execution_id == eid and e.kind in ("claim", "takeover")
        ]
        assert len(runs) == len(claims), env.format_history(eid)
        steps = spans.steps(eid)
        for name in ("charge", "pack", "label", "ship"):
            mine = [s for s in steps if attr(s, "hydra.step.name") == name]
            # One span per body entered, whether it crashed or completed.
            assert len(mine) == env.step_runs(eid, name), (name, env.format_history(eid))
            # Exactly one of them completed: the one whose checkpoint every replay used.
            assert sum(not failed(s) for s in mine) == 1, name
            assert all(any(is_child(s, run) for run in runs) for s in mine), name
        crashed = [r for r in runs if attr(r, "hydra.run.outcome") == "crashed"]
        crashes = [e for e in env.history if e.execution_id == eid and e.kind == "crash"]
        assert len(crashed) == len(crashes)
        assert all(failed(r) and exceptions(r) == ["SimulatedCrash"] for r in crashed)
        assert spans.tracing._runs == {}

    report = explore_crashes(order, 3, check, make_env=make_env)
    assert len(report.cases) == 1 + 4 * 3  # clean, then 4 steps x before/during/after
    assert len(made) == len(report.cases)


def test_a_takeover_s_run_span_says_so(spans: Spans) -> None:
    env = TestEnvironment()
    env.engine.add_observer(spans.tracing)
    env.register(order)
    eid = env.start(order, 1)
    env.crash("pack", "during")
    assert env.run_until_complete(eid).output == 103
    runs = spans.runs(eid)
    assert [attr(r, "hydra.run.outcome") for r in runs] == ["suspended", "crashed", "completed"]
    assert [attr(r, "hydra.run.takeover") for r in runs] == [False, False, True]
    assert [attr(r, "hydra.attempt") for r in runs] == [1, 1, 2]
    assert [attr(r, "hydra.worker.id") for r in runs] == ["worker-1", "worker-1", "worker-2"]
    # charge: replayed by the two later runs; pack: the crashed body, then the rerun
    assert [attr(r, "hydra.run.replayed_steps") for r in runs] == [None, 1, 2]
    pack = spans.steps(eid, "pack")
    assert [failed(s) for s in pack] == [True, False]
    assert pack[0].status.description == "the run ended (crashed) inside the step"

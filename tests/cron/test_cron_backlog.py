"""A cron job whose workflow no worker runs is noticed (a warning once per job, a metric
per slot), and ``engine.list_cron_jobs()`` gives every job its next slot even before a
worker has scheduled it (issue 10). On every store."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hydra
from hydra.clock import to_ms
from hydra.cron import unclaimed_executions, with_next_run
from hydra.scheduler import CronScheduler
from hydra.store.base import Store
from hydra.testing import FakeClock, TestEnvironment

MakeEnv = Callable[..., TestEnvironment]
T0 = datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC)


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"cron-{uuid.uuid4().hex[:12]}")
        return TestEnvironment(store=store_factory(), clock=FakeClock(T0), **options)

    return make


@hydra.workflow("report")
def report(ctx: hydra.WorkflowContext, req: None) -> str:
    return hydra.step(ctx, "render", lambda: "report")


def backlog_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "does not register" in r.getMessage()
    ]


def unregistered(metrics: hydra.Metrics, ns: str, job: str, workflow: str) -> float | None:
    labels = {"namespace": ns, "cron_job": job, "workflow": workflow}
    return metrics.registry.get_sample_value("hydra_cron_unregistered_workflow_total", labels)


# -- next_run_at ----------------------------------------------------------------------------
def test_list_cron_jobs_computes_the_next_slot_before_any_worker_ran(make_env: MakeEnv) -> None:
    env = make_env()
    env.engine.register_cron("0 * * * *", "hourly", workflow="report")
    env.engine.register_cron("30 9 * * *", "berlin", workflow="report", timezone="Europe/Berlin")

    assert [r.next_run_at for r in env.store.list_cron_jobs(env.engine.namespace)] == [None, None]
    jobs = {job.name: job for job in env.engine.list_cron_jobs()}
    assert jobs["hourly"].next_run_at == to_ms(datetime(2030, 1, 1, 1, tzinfo=UTC))
    # 09:30 in Berlin in winter is 08:30 UTC.
    assert jobs["berlin"].next_run_at == to_ms(datetime(2030, 1, 1, 8, 30, tzinfo=UTC))


def test_list_cron_jobs_keeps_a_stored_next_slot_and_replaces_a_passed_one(
    make_env: MakeEnv,
) -> None:
    env = make_env()
    env.register(report)
    env.engine.register_cron("0 * * * *", "hourly", workflow="report")
    env.advance(timedelta(minutes=1))  # a worker's scheduler stores 01:00
    (stored,) = env.store.list_cron_jobs(env.engine.namespace)
    assert stored.next_run_at == to_ms(datetime(2030, 1, 1, 1, tzinfo=UTC))
    assert env.engine.list_cron_jobs() == [stored]

    env.clock.advance(timedelta(hours=2, minutes=30))  # no worker ran meanwhile
    (listed,) = env.engine.list_cron_jobs()
    assert listed.next_run_at == to_ms(datetime(2030, 1, 1, 3, tzinfo=UTC))


def test_with_next_run_leaves_a_disabled_job_and_an_unreadable_spec_alone(
    make_env: MakeEnv,
) -> None:
    env = make_env()
    env.engine.register_cron("0 * * * *", "hourly", workflow="report")
    (row,) = env.store.list_cron_jobs(env.engine.namespace)
    now = to_ms(T0)
    row.enabled = False
    assert with_next_run(row, now).next_run_at is None
    row.enabled, row.spec = True, "not a spec"
    assert with_next_run(row, now).next_run_at is None


# -- the backlog of a workflow no worker registers ----------------------------------------
def test_a_job_whose_workflow_no_worker_runs_warns_once_and_counts_each_slot(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = hydra.Metrics()
    env = make_env(metrics=metrics)  # "report" is registered nowhere
    env.engine.register_cron("*/15 * * * *", "quarterly", workflow="report")

    with caplog.at_level(logging.WARNING, logger="hydra"):
        env.advance(timedelta(hours=1))  # slots 00:15, 00:30, 00:45, 01:00

    ns = env.engine.namespace
    pending = env.store.list_executions(ns, workflow_name="report")
    assert len(pending) == 4 and {e.status for e in pending} == {"pending"}
    (warning,) = backlog_warnings(caplog)
    assert warning.startswith(
        "cron job quarterly starts workflow 'report', which this worker does not register, "
        "and no worker has claimed the executions of its earlier slots (1 pending, the oldest "
        "for 15 min): is a worker running that registers 'report'?"
    )  # at 00:30, the first slot that found its previous one unclaimed
    # Every slot fired while the previous one's execution waited is counted.
    assert unregistered(metrics, ns, "quarterly", "report") == 3


def test_the_warning_comes_back_after_the_backlog_cleared(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env()
    env.engine.register_cron("*/15 * * * *", "quarterly", workflow="report")
    lacking = CronScheduler(env.engine, "lacking", registered=lambda: ())

    def slot(minutes: int) -> None:
        env.clock.set(T0 + timedelta(minutes=minutes))
        assert lacking.tick() == 1

    with caplog.at_level(logging.WARNING, logger="hydra"):
        slot(15)
        slot(30)  # the 00:15 execution is unclaimed: warned
        slot(45)  # still unclaimed: counted, not warned again
        assert len(backlog_warnings(caplog)) == 1
        env.register(report)
        env.run_until_idle()  # a worker for it turns up and runs the backlog
        assert {e.status for e in env.engine.list_executions()} == {"completed"}
        slot(60)  # the previous slot's execution was claimed: the warning is reset
        slot(75)  # the 01:00 one was not (nothing ran since): warned again
    assert len(backlog_warnings(caplog)) == 2


def test_a_handler_job_and_a_job_with_a_running_worker_never_warn(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = hydra.Metrics()
    env = make_env(metrics=metrics)
    env.register(report)
    env.engine.register_cron("*/15 * * * *", "runs", workflow="report")
    env.engine.register_cron("*/15 * * * *", "handler", lambda ctx: None)
    with caplog.at_level(logging.WARNING, logger="hydra"):
        env.advance(timedelta(hours=2))
    assert backlog_warnings(caplog) == []
    assert unregistered(metrics, env.engine.namespace, "runs", "report") is None


def test_a_worker_that_registers_the_workflow_does_not_warn_about_its_backlog(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """A busy worker that runs the workflow is behind, not missing: no warning. The same
    backlog seen by a scheduler whose worker lacks the workflow is warned about."""
    env = make_env()
    env.engine.register_cron("*/15 * * * *", "quarterly", workflow="report")
    busy = CronScheduler(env.engine, "busy", registered=lambda: ["report"])
    lacking = CronScheduler(env.engine, "lacking", registered=lambda: ["something-else"])
    with caplog.at_level(logging.WARNING, logger="hydra"):
        for minutes in (15, 30, 45):
            env.clock.set(T0 + timedelta(minutes=minutes))
            assert busy.tick() == 1  # nothing runs the executions: they stay pending
        assert backlog_warnings(caplog) == []
        env.clock.set(T0 + timedelta(minutes=60))
        assert lacking.tick() == 1
    (warning,) = backlog_warnings(caplog)
    assert "(3 pending, the oldest for 45 min)" in warning, warning


def test_unclaimed_executions_are_the_job_s_own_never_claimed_ones(make_env: MakeEnv) -> None:
    env = make_env()
    env.engine.register_cron("*/15 * * * *", "quarterly", workflow="report")
    env.advance(timedelta(minutes=46))  # three slots, three pending executions
    ns = env.engine.namespace
    env.engine.start_workflow("report", None)  # not the job's
    now = env.clock.now_ms()

    rows = unclaimed_executions(env.store, ns, "quarterly", "report", created_before_ms=now + 1)
    assert [r.idempotency_key for r in rows] == [
        f"cron:quarterly:{to_ms(T0.replace(second=0) + timedelta(minutes=m))}" for m in (45, 30, 15)
    ]  # newest first
    older = unclaimed_executions(
        env.store, ns, "quarterly", "report", created_before_ms=now - 10 * 60_000
    )
    assert len(older) == 2
    assert unclaimed_executions(env.store, ns, "other", "report", created_before_ms=now + 1) == []

"""``hydra executions purge``: deletes old finished executions, counts in a dry run,
refuses a malformed age (issue 15, retention)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import hydra
from hydra.testing import FakeClock, TestEnvironment

from .helpers import assert_one_error_line, engine_on, hydra_cli, sqlite_url


@hydra.workflow("quick")
def quick(ctx: hydra.WorkflowContext, fail: bool) -> str:
    hydra.step(ctx, "work", lambda: "done")
    if fail:
        raise hydra.NonRetryableError("no")
    return "ok"


@pytest.fixture
def url(tmp_path: Path) -> str:
    """Three executions that ended 40 days ago (two completed, one failed), and one now."""
    url = sqlite_url(tmp_path / "p.db")
    long_ago = datetime.now(UTC) - timedelta(days=40)
    clock = FakeClock(long_ago)
    env = TestEnvironment(store=hydra.SQLStore(url), namespace="default", clock=clock)
    env.register(quick)
    for fail in (False, False, True):
        env.run_until_complete(env.start(quick, fail))
    clock.set(datetime.now(UTC))
    env.run_until_complete(env.start(quick, False))
    env.store.close()
    return url


def test_a_dry_run_counts_and_a_purge_deletes(url: str) -> None:
    dry = hydra_cli("executions", "purge", "--older-than", "30d", "--dry-run", "--db", url)
    assert dry.exit_code == 0, dry.output
    assert dry.output.strip() == (
        "would delete 3 finished executions (completed, failed, cancelled) that ended "
        "more than 30d ago"
    )
    failed = hydra_cli("executions", "purge", "--older-than", "30d", "-s", "failed", "--db", url)
    assert "deleted 1 finished execution (failed)" in failed.output
    rest = hydra_cli("executions", "purge", "--older-than", "4w", "--db", url)
    assert "deleted 2 finished executions" in rest.output
    with engine_on(url) as engine:
        assert [e.status for e in engine.list_executions()] == ["completed"]  # the recent one


def test_a_malformed_age_is_one_error_line(url: str) -> None:
    result = hydra_cli("executions", "purge", "--older-than", "a month", "--db", url)
    assert_one_error_line(result, contains="--older-than takes a number and a unit")
    assert result.exit_code == 2

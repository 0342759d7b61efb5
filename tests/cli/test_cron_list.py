"""``hydra cron list``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import hydra
from hydra.testing import TestEnvironment

from .helpers import assert_one_error_line, hydra_cli, sqlite_url


@hydra.workflow("nightly-report")
def report(ctx: hydra.WorkflowContext, req: None) -> str:
    return hydra.step(ctx, "render", lambda: "report")


def test_cron_list_shows_jobs_and_their_last_fire(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "cron.db")
    env = TestEnvironment(store=hydra.SQLStore(url), namespace="ops")
    env.register(report)
    env.engine.register_cron("0 2 * * *", "nightly", workflow="nightly-report")
    env.engine.register_cron("*/15 * * * *", "[bold red]probe", lambda ctx: None)
    env.advance(timedelta(hours=3))  # 02:00 fires the report; 15-minute probes fire too

    result = hydra_cli("cron", "list", "--db", url, "--namespace", "ops")
    assert result.exit_code == 0, result.output
    assert "nightly  0 2 * * *  (UTC)  → workflow nightly-report" in result.stdout
    assert "[bold red]probe  */15 * * * *  (UTC)  → handler" in result.stdout  # literal
    assert "slot 2030-01-01 02:00:00.000 UTC" in result.stdout

    data = json.loads(hydra_cli("cron", "list", "--json", "--db", url, "-n", "ops").stdout)
    nightly = next(job for job in data if job["name"] == "nightly")
    execution = env.execution(nightly["last_execution"])
    assert (execution.workflow_name, execution.status) == ("nightly-report", "completed")
    assert nightly["last_worker"] == "worker-1"

    empty = hydra_cli("cron", "list", "--db", url, "--namespace", "elsewhere")
    assert empty.exit_code == 0
    assert "no cron jobs in namespace 'elsewhere'" in empty.stdout


def test_cron_list_on_an_unreachable_database() -> None:
    result = hydra_cli("cron", "list", "--db", "postgresql+psycopg://u:secret@127.0.0.1:1/db")
    assert_one_error_line(result, contains="cannot connect")
    assert "secret" not in result.output

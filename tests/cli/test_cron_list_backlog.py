"""``hydra cron list``: the next slot of a job no worker has run yet, and a warning for a
job whose executions no worker claims (issue 10)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hydra
from hydra.clock import to_ms
from hydra.cron import CronSchedule
from hydra.testing import FakeClock, TestEnvironment

from .helpers import engine_on, hydra_cli, sqlite_url


def test_a_job_no_worker_has_run_shows_its_next_slot(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "cron.db")
    with engine_on(url) as engine:
        engine.register_cron("0 6 * * *", "morning", workflow="report", timezone="Asia/Tokyo")
    expected = CronSchedule("0 6 * * *", "Asia/Tokyo").next_after(to_ms(datetime.now(UTC)))

    result = hydra_cli("cron", "list", "--db", url)
    assert result.exit_code == 0, result.output
    assert "next  -" not in result.stdout
    shown = "21:00:00.000 UTC"  # 06:00 in Tokyo
    (line,) = [ln for ln in result.stdout.splitlines() if ln.strip().startswith("next")]
    assert line.strip().endswith(shown), line
    (job,) = json.loads(hydra_cli("cron", "list", "--json", "--db", url).stdout)
    assert job["next_run_at"].startswith(
        datetime.fromtimestamp(expected / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    )
    assert (job["unclaimed"], job["unclaimed_note"]) == (0, None)


def test_a_job_whose_executions_no_worker_claims_gets_a_warning(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "cron.db")
    # Slots fired in the last two hours of real time (the CLI reads the real clock).
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    env = TestEnvironment(store=hydra.SQLStore(url), namespace="ops", clock=FakeClock(start))
    env.engine.register_cron("*/30 * * * *", "half-hourly", workflow="reconcile")
    env.engine.register_cron("*/30 * * * *", "tidy", lambda ctx: None)
    env.advance(timedelta(hours=1, minutes=59))  # four slots; "reconcile" runs nowhere

    result = hydra_cli("cron", "list", "--db", url, "--namespace", "ops")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    (warning,) = [ln for ln in lines if "warning" in ln]
    assert warning.startswith("    warning  4 pending executions it started never claimed by a ")
    assert warning.endswith("ago: is a worker running that registers 'reconcile'?")
    assert re.search(r"the oldest (1h [345]\dm|2h 00m) ago", warning), warning  # 1h30-2h
    # It is the note of the job that starts the workflow, not of the handler job.
    assert lines.index(warning) < next(i for i, ln in enumerate(lines) if ln.startswith("tidy"))

    data = {j["name"]: j for j in json.loads(
        hydra_cli("cron", "list", "--json", "--db", url, "-n", "ops").stdout
    )}  # fmt: skip
    assert data["half-hourly"]["unclaimed"] == 4
    assert data["half-hourly"]["unclaimed_note"] == warning.removeprefix("    warning  ")
    assert data["tidy"]["unclaimed"] == 0

    env.register(hydra.workflow("reconcile")(lambda ctx, req: None))
    env.run_until_idle()  # a worker for it turned up: the warning goes
    after = hydra_cli("cron", "list", "--db", url, "--namespace", "ops")
    assert "warning" not in after.stdout

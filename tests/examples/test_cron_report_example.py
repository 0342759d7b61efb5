"""examples/cron_report.py: a daily report started by cron, and a queue-check handler."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from hydra.clock import to_ms
from hydra.testing import FakeClock, TestEnvironment
from hydra_cli.main import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cron_report.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_cron_report", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_one_report_a_day_for_the_day_before_at_six_in_berlin() -> None:
    example = load()
    env = TestEnvironment(clock=FakeClock(datetime(2030, 10, 25, 12, tzinfo=UTC)), workers=2)
    for wf in example.WORKFLOWS:
        env.register(wf)
    example.register_jobs(env.engine)

    env.advance(timedelta(days=3))  # over the end of summer time (27 October)

    reports = env.engine.list_executions(workflow_name="sales-report")
    reports.sort(key=lambda e: e.created_at)
    assert [(e.status, e.input["day"]) for e in reports] == [
        ("completed", "2030-10-25"),
        ("completed", "2030-10-26"),
        ("completed", "2030-10-27"),
    ]
    # 06:00 CEST, then 06:00 CET.
    assert [e.created_at for e in reports] == [
        datetime(2030, 10, 26, 4, tzinfo=UTC),
        datetime(2030, 10, 27, 5, tzinfo=UTC),
        datetime(2030, 10, 28, 5, tzinfo=UTC),
    ]
    assert [e.idempotency_key for e in reports] == [
        f"cron:daily-sales-report:{to_ms(e.created_at)}" for e in reports
    ]
    day = "2030-10-25"
    assert reports[0].output == f"sent: {example.render(day, example.sales_for(day))}"
    assert example.OUTBOX[-3:] == [e.output.removeprefix("sent: ") for e in reports]
    checks = [e for e in env.history if e.kind == "cron" and "queue-check" in e.detail]
    assert len(checks) == 3 * 24 * 4 + 1  # every 15 min from 12:00 to 12:00, both included
    stored = {job.name: job for job in env.engine.list_cron_jobs()}
    assert stored["daily-sales-report"].timezone == "Europe/Berlin"
    assert stored["queue-check"].spec == "*/15 * * * *"


def test_the_dev_hook_registers_the_jobs_and_runs_yesterday_s_report() -> None:
    example = load()
    env = TestEnvironment(clock=FakeClock(datetime(2030, 1, 1, 23, 30, tzinfo=UTC)))
    for wf in example.WORKFLOWS:
        env.register(wf)
    (eid,) = example.dev(env.engine)
    done = env.run_until_complete(eid)
    assert done.status == "completed"
    assert done.input == {"day": "2030-01-01"}  # 00:30 on 2 January in Berlin
    assert [s.name for s in done.steps] == ["collect-sales", "render", "send"]
    assert {job.name for job in env.engine.list_cron_jobs()} == {
        "daily-sales-report",
        "queue-check",
    }


def test_hydra_dev_run_runs_the_backfill(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["dev", "run", str(EXAMPLE), "--db", f"sqlite:///{tmp_path}/cron.db"]
    )
    assert result.exit_code == 0, result.output
    assert "sales-report" in result.output


@pytest.mark.slow
def test_the_simulation_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--simulate"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 8
    assert lines[3].startswith("2030-03-31T06:00:00+02:00  completed  sent: 2030-03-30:")
    assert lines[-1] == "queue-check ran 673 times"

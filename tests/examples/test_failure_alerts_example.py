"""examples/failure_alerts.py: an observer that reports failed executions to a tracker."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from hydra.testing import TestEnvironment
from hydra_cli import errors
from hydra_cli.main import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "failure_alerts.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_failure_alerts", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_only_the_failed_execution_is_reported_with_its_error() -> None:
    alerts = load()
    env = TestEnvironment()
    for wf in alerts.WORKFLOWS:
        env.register(wf)
    good, bad = alerts.dev(env.engine)

    env.run_until_all_complete()

    assert env.execution(good).status == "completed"
    assert env.execution(bad).status == "failed"
    assert env.step_runs(bad, "mail") == 3  # the step's retries ran before the alert
    assert alerts.TRACKER.reports == [
        {
            "message": "StepFailedError: step 'mail' failed after 3 attempt(s): "
            "ConnectionRefusedError: the mail server refuses list 'beta-testers'",
            "workflow": "send-newsletter",
            "execution_id": bad,
            "attempt": "1",
        }
    ]


def test_a_tracker_that_raises_breaks_no_run(caplog: pytest.LogCaptureFixture) -> None:
    alerts = load()

    def down(message: str, *, tags: dict[str, str]) -> None:
        raise ConnectionError("tracker unreachable")

    alerts.TRACKER.capture = down
    env = TestEnvironment()
    for wf in alerts.WORKFLOWS:
        env.register(wf)
    good, bad = alerts.dev(env.engine)
    env.run_until_all_complete()
    assert env.execution(good).status == "completed"
    assert env.execution(bad).status == "failed"
    assert any("FailureAlerts" in r.getMessage() and "run_finished" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_hydra_dev_run_sends_one_alert(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["dev", "run", str(EXAMPLE), "--fast-forward", "--db", f"sqlite:///{tmp_path}/a.db"]
    )
    assert result.exit_code == errors.EXIT_NOT_COMPLETED, result.output
    assert result.stdout.count("alert sent: send-newsletter ") == 1
    assert "the mail server refuses list 'beta-testers'" in result.stdout

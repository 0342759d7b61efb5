"""examples/approval.py: a 48-hour durable sleep, then pay out or escalate."""

from __future__ import annotations

import importlib.util
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType

from typer.testing import CliRunner

from hydra.testing import TestEnvironment
from hydra_cli.main import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "approval.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_approval", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_managers_get_48_hours_then_it_pays_out_or_escalates() -> None:
    approval = load()
    env = TestEnvironment()
    for wf in approval.WORKFLOWS:
        env.register(wf)
    approved, unanswered = approval.dev(env.engine)

    env.run_until_all_complete()

    paid = env.execution(approved)
    assert paid.status == "completed"
    assert paid.output == {"decision": "approved", "payout": "payout_exp-1001_12500"}
    assert paid.completed_at is not None
    assert paid.completed_at - paid.created_at == timedelta(hours=48)
    assert [s.name for s in paid.steps] == [
        "ask-manager", "approval-window", "read-decision", "pay-out",
    ]  # fmt: skip
    escalated = env.execution(unanswered)
    assert escalated.output["decision"] == "no answer"
    assert escalated.output["escalation"].startswith("escalated exp-1002 to finance")
    assert env.step_runs(unanswered, "ask-manager") == 1  # the sleep did not re-ask


def test_hydra_dev_run_fast_forwards_through_the_48_hours(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["dev", "run", str(EXAMPLE), "--fast-forward", "--db", f"sqlite:///{tmp_path}/a.db"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("sleep approval-window sleeping until") == 2
    assert "step pay-out completed" in result.stdout
    assert "step escalate completed" in result.stdout
    assert "all 2 executions completed" in result.stdout

"""examples/approval.py: the manager's decision is a message, awaited for 48 hours; then
the expense is paid out, its rejection recorded, or it is escalated."""

from __future__ import annotations

import importlib.util
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner

import hydra
from hydra.status import StepStatus
from hydra.testing import TestEnvironment, explore_crashes
from hydra_cli.main import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "approval.py"
WINDOW = timedelta(hours=48)


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_approval", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def approval() -> ModuleType:
    return load()


def started(approval: ModuleType, expense_id: str = "exp-1") -> tuple[TestEnvironment, str, Any]:
    """An environment with the example's workflow (and a fresh payment ledger) and one
    expense started in it, run until it waits for its manager."""
    env = TestEnvironment()
    payments = approval.Payments()
    env.register(approval.ApprovalWorkflow(payments))
    eid = env.start("expense-approval", approval.Expense(expense_id, "ada", "grace", 12_500))
    env.run_until_idle()
    return env, eid, payments


def test_it_waits_for_the_manager_publishing_its_stage(approval: ModuleType) -> None:
    env, eid, payments = started(approval)

    waiting = env.execution(eid)
    assert (waiting.status, waiting.wait_topic) == ("sleeping", "decision")
    assert waiting.sleep_until == waiting.created_at + WINDOW  # the deadline, stored
    assert env.engine.get_event(eid, "stage") == "waiting-for-manager"
    assert [(s.name, s.kind, s.status) for s in waiting.steps] == [
        ("ask-manager", "step", StepStatus.COMPLETED),
        ("event-1", "event", StepStatus.COMPLETED),
        ("receive-1", "receive", StepStatus.WAITING),
    ]
    assert payments.paid == {}


def test_an_approval_pays_out_once(approval: ModuleType) -> None:
    env, eid, payments = started(approval)
    env.advance(timedelta(hours=5))  # the manager answers after 5 hours
    env.send(eid, "decision", approval.Decision(approved=True, by="grace"))

    done = env.run_until_complete(eid)

    assert done.status == "completed", env.format_history(eid)
    assert done.output == {"outcome": "approved", "by": "grace", "payout": "payout_exp-1_12500"}
    assert done.completed_at is not None
    assert done.completed_at - done.created_at == timedelta(hours=5)  # woken at once
    assert [s.name for s in done.steps] == [
        "ask-manager", "event-1", "receive-1", "pay-out", "event-2",
    ]  # fmt: skip
    received = done.step("receive-1")
    assert received is not None and received.output == {
        "approved": True, "by": "grace", "note": None,
    }  # fmt: skip
    assert payments.paid == {"payout-exp-1": 12_500}
    assert env.engine.get_events(eid) == {"stage": "paid"}
    assert env.step_runs(eid, "ask-manager") == 1  # the wait did not re-ask


def test_a_rejection_is_recorded_and_nothing_is_paid(approval: ModuleType) -> None:
    env, eid, payments = started(approval)
    decision = approval.Decision(approved=False, by="grace", note="not a business expense")
    env.send(eid, "decision", decision)

    done = env.run_until_complete(eid)

    assert done.output == {
        "outcome": "rejected",
        "by": "grace",
        "reason": "exp-1 rejected by grace: not a business expense",
    }
    assert [s.name for s in done.steps] == [
        "ask-manager", "event-1", "receive-1", "record-rejection", "event-2",
    ]  # fmt: skip
    assert payments.paid == {}
    assert env.engine.get_event(eid, "stage") == "rejected"


def test_no_answer_escalates_at_exactly_48_hours(approval: ModuleType) -> None:
    env, eid, payments = started(approval)

    done = env.run_until_complete(eid)  # jumps the clock to the receive's deadline

    assert done.status == "completed", env.format_history(eid)
    assert done.output == {
        "outcome": "escalated",
        "escalation": "escalated exp-1 to finance: grace did not answer",
    }
    assert done.completed_at is not None
    assert done.completed_at - done.created_at == WINDOW
    timed_out = done.step("receive-1")
    assert timed_out is not None
    assert (timed_out.status, timed_out.error_type) == (StepStatus.TIMED_OUT, "WaitTimeoutError")
    assert [s.name for s in done.steps] == [
        "ask-manager", "event-1", "receive-1", "escalate", "event-2",
    ]  # fmt: skip
    assert env.engine.get_event(eid, "stage") == "escalated"
    assert payments.paid == {}
    # Too late: the execution has ended, and a decision sent now is refused, not stored.
    with pytest.raises(hydra.ExecutionFinishedError):
        env.send(eid, "decision", approval.Decision(approved=True, by="grace"))
    assert env.engine.list_messages(eid) == []


def test_a_decision_sent_twice_with_one_key_is_received_once(approval: ModuleType) -> None:
    env, eid, _ = started(approval)
    for _ in range(2):  # a webhook delivered twice
        env.send(eid, "decision", approval.Decision(True, "grace"), idempotency_key="slack-991")

    env.run_until_complete(eid)

    (message,) = env.engine.list_messages(eid)
    assert (message.idempotency_key, message.received_by) == ("slack-991", "receive-1")


def test_a_crash_anywhere_receives_the_decision_once_and_pays_once(
    approval: ModuleType,
) -> None:
    payments = approval.Payments()
    approve = approval.Decision(approved=True, by="grace")
    reject = approval.Decision(approved=False, by="grace", note="changed my mind")
    payout_runs: list[int] = []

    def check(env: TestEnvironment, eid: str) -> None:
        ex = env.execution(eid)
        assert ex.output["outcome"] == "approved", env.format_history(eid)
        # The first decision was received, by the one receive; the second waits unread.
        first, second = env.engine.list_messages(eid)
        assert (first.payload["approved"], first.received_by) == (True, "receive-1")
        assert second.received_by is None
        payout_runs.append(env.step_runs(eid, "pay-out"))
        assert payments.paid == {"payout-exp-1": 12_500}  # the provider paid once
        payments.paid.clear()  # every case starts the same expense again

    report = explore_crashes(
        approval.ApprovalWorkflow(payments),
        approval.Expense("exp-1", "ada", "grace", 12_500),
        check,
        messages=[("decision", approve), ("decision", reject)],
    )

    assert report.steps == ["ask-manager", "event-1", "receive-1", "pay-out", "event-2"]
    assert len(report.cases) == 1 + 5 * 3
    # Killed during or after the payout step, a worker left it to run again (its body ran
    # twice: at-least-once); the provider, given the same key, paid once all the same.
    assert payout_runs.count(2) == 2 and set(payout_runs) == {1, 2}


def test_hydra_dev_run_approves_one_and_escalates_the_other(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/a.db"
    result = CliRunner().invoke(app, ["dev", "run", str(EXAMPLE), "--fast-forward", "--db", db])
    assert result.exit_code == 0, result.output
    assert "step pay-out completed" in result.stdout
    assert "step escalate completed" in result.stdout
    assert "all 2 executions completed" in result.stdout
    # The escalation came after 48 virtual hours; the approval at once.
    store = hydra.SQLStore(db)
    try:
        engine = hydra.Engine(store)
        by_expense = {e.input["expense_id"]: e for e in engine.list_executions()}
        approved, escalated = by_expense["exp-1001"], by_expense["exp-1002"]
        assert approved.output["outcome"] == "approved"
        assert approved.completed_at is not None
        assert approved.completed_at - approved.created_at < timedelta(minutes=1)
        assert escalated.output["outcome"] == "escalated"
        assert escalated.completed_at is not None
        assert escalated.completed_at - escalated.created_at >= WINDOW
        assert engine.get_events(escalated.id) == {"stage": "escalated"}
    finally:
        store.close()

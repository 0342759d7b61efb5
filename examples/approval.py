"""Expense approval: ask a manager, give them 48 hours, then pay out or escalate.

The 48-hour wait is a durable sleep: the execution sleeps in the database, no worker
thread is held, and any worker resumes it when the time comes, even after restarts.
To watch it without waiting two days, run it on virtual time:

    hydra dev run examples/approval.py --fast-forward

(The decisions below are a stand-in that keeps its state in memory; a real system would
read them from wherever managers record them.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import hydra

APPROVAL_WINDOW = timedelta(hours=48)


@dataclass
class Expense:
    expense_id: str
    employee: str
    manager: str
    amount_cents: int


# What managers answered within the window, by expense id (absent: no answer).
DECISIONS = {"exp-1001": "approved"}


def ask_manager(expense: Expense) -> str:
    return f"asked {expense.manager} to approve {expense.expense_id}"


def read_decision(expense_id: str) -> str | None:
    return DECISIONS.get(expense_id)


def pay_out(expense: Expense) -> str:
    return f"payout_{expense.expense_id}_{expense.amount_cents}"


def escalate(expense: Expense) -> str:
    return f"escalated {expense.expense_id} to finance: {expense.manager} did not answer"


class ApprovalWorkflow(hydra.Workflow[Expense]):
    name = "expense-approval"

    def run(self, ctx: hydra.WorkflowContext, expense: Expense) -> dict[str, str | None]:
        hydra.step(ctx, "ask-manager", lambda: ask_manager(expense))
        hydra.sleep(ctx, APPROVAL_WINDOW, name="approval-window")
        decision = hydra.step(ctx, "read-decision", lambda: read_decision(expense.expense_id))
        if decision == "approved":
            payout = hydra.step(ctx, "pay-out", lambda: pay_out(expense))
            return {"decision": decision, "payout": payout}
        note = hydra.step(ctx, "escalate", lambda: escalate(expense))
        return {"decision": decision or "no answer", "escalation": note}


WORKFLOWS = [ApprovalWorkflow()]


def dev(engine: hydra.Engine) -> list[str]:
    """The dev-run hook: ``hydra dev run examples/approval.py`` starts these two."""
    return [
        engine.start_workflow(
            "expense-approval", Expense("exp-1001", "ada", "grace", 12_500), max_attempts=1
        ),
        engine.start_workflow(
            "expense-approval", Expense("exp-1002", "alan", "grace", 98_000), max_attempts=1
        ),
    ]

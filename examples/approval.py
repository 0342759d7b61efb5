"""Expense approval: ask a manager, wait up to 48 hours for their decision, then pay out,
record the rejection, or escalate.

The decision is a message. The workflow waits for it in ``hydra.receive``, a durable wait:
the execution sleeps in the database, no worker thread is held, and the message wakes it
at once, even after restarts. Whatever knows the execution id sends it: a web app
(``engine.send``), another workflow (``hydra.send``), or the command line:

    hydra executions send ID decision --data '{"approved": true, "by": "grace"}'

Meanwhile the workflow publishes where it stands as the event ``stage``, which anyone can
read (``engine.get_event(ID, "stage")``). To watch it without waiting two days, run it on
virtual time:

    hydra dev run examples/approval.py --fast-forward

The dev hook below starts two expenses and approves the first at once; nobody answers the
second, which escalates after 48 (virtual) hours. docs/messages.md has the details.
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


@dataclass
class Decision:
    approved: bool
    by: str
    note: str | None = None


class Payments:
    """A stand-in for a payment provider. Like a real one, it pays once per idempotency
    key: a step runs again if its worker dies inside it (at-least-once), the payout not."""

    def __init__(self) -> None:
        self.paid: dict[str, int] = {}  # idempotency key -> cents

    def pay(self, expense: Expense, idempotency_key: str) -> str:
        self.paid.setdefault(idempotency_key, expense.amount_cents)
        return f"payout_{expense.expense_id}_{expense.amount_cents}"


def ask_manager(expense: Expense) -> str:
    return f"asked {expense.manager} to approve {expense.expense_id}"


def record_rejection(expense: Expense, decision: Decision) -> str:
    return f"{expense.expense_id} rejected by {decision.by}: {decision.note or 'no reason given'}"


def escalate(expense: Expense) -> str:
    return f"escalated {expense.expense_id} to finance: {expense.manager} did not answer"


class ApprovalWorkflow(hydra.Workflow[Expense]):
    name = "expense-approval"

    def __init__(self, payments: Payments) -> None:
        self.payments = payments

    def run(self, ctx: hydra.WorkflowContext, expense: Expense) -> dict[str, str]:
        hydra.step(ctx, "ask-manager", lambda: ask_manager(expense))
        hydra.set_event(ctx, "stage", "waiting-for-manager")
        try:
            decision = hydra.receive(ctx, "decision", timeout=APPROVAL_WINDOW, result_type=Decision)
        except hydra.WaitTimeoutError:  # 48 hours passed without a decision
            note = hydra.step(ctx, "escalate", lambda: escalate(expense))
            hydra.set_event(ctx, "stage", "escalated")
            return {"outcome": "escalated", "escalation": note}
        if decision.approved:
            key = f"payout-{expense.expense_id}"
            payout = hydra.step(ctx, "pay-out", lambda: self.payments.pay(expense, key))
            hydra.set_event(ctx, "stage", "paid")
            return {"outcome": "approved", "by": decision.by, "payout": payout}
        why = hydra.step(ctx, "record-rejection", lambda: record_rejection(expense, decision))
        hydra.set_event(ctx, "stage", "rejected")
        return {"outcome": "rejected", "by": decision.by, "reason": why}


WORKFLOWS = [ApprovalWorkflow(Payments())]


def dev(engine: hydra.Engine) -> list[str]:
    """The dev-run hook: ``hydra dev run examples/approval.py`` starts these two."""
    first = engine.start_workflow(
        "expense-approval", Expense("exp-1001", "ada", "grace", 12_500), max_attempts=1
    )
    second = engine.start_workflow(
        "expense-approval", Expense("exp-1002", "alan", "grace", 98_000), max_attempts=1
    )
    # grace approves the first at once (it waits for the workflow to reach its receive);
    # the idempotency key makes a resent decision (a retried webhook) count once.
    engine.send(
        first, "decision", Decision(approved=True, by="grace"), idempotency_key="exp-1001-grace"
    )
    return [first, second]

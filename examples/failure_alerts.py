"""Failure alerts: an observer that sends every failed execution to an error tracker.

``FailureAlerts`` is a ``hydra.Observer`` (docs/observers.md): the engine tells it when
an execution ends, and it reports those that ended ``failed``, with their error, to a
tracker. ``FakeTracker`` stands in for the tracker's client (Sentry, Rollbar, ...): it
keeps the reports and prints one line each. A real client's network call would be handed
to a thread of its own: a run waits for its observers.

``send-newsletter`` renders a newsletter and mails it; the mail server refuses the second
list for good, so that execution fails after its step's three attempts, and one alert is
sent. An observer cannot break a run: if the tracker raised, hydra would log it and the
executions would end exactly as they do.

    hydra dev run examples/failure_alerts.py --fast-forward

``hydra dev run`` exits 3 here: one of the two executions fails, on purpose.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

import hydra
from hydra.store.base import Claim


@dataclass
class Newsletter:
    list_name: str
    subject: str


class FakeTracker:
    """An error tracker's client as far as this example needs one: ``capture``."""

    def __init__(self) -> None:
        self.reports: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def capture(self, message: str, *, tags: dict[str, str]) -> None:
        with self._lock:  # observers are called from several run threads at once
            self.reports.append({"message": message, **tags})
        print(f"alert sent: {tags['workflow']} {tags['execution_id']}: {message}")


class FailureAlerts(hydra.Observer):
    """Reports each execution of ``engine`` that ends ``failed`` to ``tracker``."""

    def __init__(self, engine: hydra.Engine, tracker: FakeTracker) -> None:
        self.engine = engine
        self.tracker = tracker

    def run_finished(self, claim: Claim, status: hydra.Status) -> None:
        if status != hydra.Status.FAILED:
            return
        # The error is stored, not passed to observers: one read, for failures only.
        execution = self.engine.get_execution(claim.execution.id)
        self.tracker.capture(
            execution.error or "failed",
            tags={
                "workflow": execution.workflow_name,
                "execution_id": execution.id,
                "attempt": str(execution.attempt),
            },
        )


class MailServer:
    """Refuses every message to the lists in ``refused``."""

    def __init__(self, refused: set[str]) -> None:
        self.refused = refused

    def send(self, list_name: str, body: str) -> int:
        if list_name in self.refused:
            raise ConnectionRefusedError(f"the mail server refuses list {list_name!r}")
        return len(body)


MAIL = MailServer(refused={"beta-testers"})
TRACKER = FakeTracker()
RETRY = hydra.RetryPolicy(max_attempts=3, initial_backoff=timedelta(seconds=30))


class NewsletterWorkflow(hydra.Workflow[Newsletter]):
    name = "send-newsletter"

    def run(self, ctx: hydra.WorkflowContext, letter: Newsletter) -> int:
        body = hydra.step(ctx, "render", lambda: f"{letter.subject}\n\n(news)")
        return hydra.step(ctx, "mail", lambda: MAIL.send(letter.list_name, body), retry=RETRY)


WORKFLOWS = [NewsletterWorkflow()]


def dev(engine: hydra.Engine) -> list[str]:
    """The dev-run hook: attach the alerts, then send two newsletters (one list fails)."""
    engine.add_observer(FailureAlerts(engine, TRACKER))
    return [
        engine.start_workflow(
            "send-newsletter", Newsletter("customers", "Spring sale"), max_attempts=1
        ),
        engine.start_workflow(
            "send-newsletter", Newsletter("beta-testers", "New build"), max_attempts=1
        ),
    ]

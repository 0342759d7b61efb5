"""Retries: a flaky API that works on the third try, and an error no retry can fix.

``sync-inventory`` calls a flaky API: it times out twice, and the step's ``RetryPolicy``
retries it after 0.5 s, then 1 s (durable backoff: the execution sleeps in the database
between attempts, holding no thread). ``import-invoice`` hits an invalid invoice: the
step raises ``hydra.NonRetryableError``, fails at once, and the execution fails with that
error, shown by ``hydra trace``.

    hydra dev run examples/retries.py               # about 1.5 s of backoff
    hydra dev run examples/retries.py --fast-forward

``hydra dev run`` exits 3 here: one of the two executions fails, on purpose.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

import hydra


@dataclass
class Job:
    job_id: str
    invoice: str | None = None


class InvalidInvoice(hydra.NonRetryableError):
    """The invoice itself is wrong: trying again gives the same answer."""


class FlakyAPI:
    """A stand-in for a remote API that times out on the first ``outages`` calls per job."""

    def __init__(self, outages: int = 2) -> None:
        self.outages = outages
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def sync(self, job_id: str) -> dict[str, int | str]:
        with self._lock:
            call = self.calls[job_id] = self.calls.get(job_id, 0) + 1
        if call <= self.outages:
            raise TimeoutError(f"inventory API timed out (call {call})")
        return {"job": job_id, "synced_items": 42, "calls": call}


API = FlakyAPI()

BACKOFF = hydra.RetryPolicy(
    max_attempts=4, initial_backoff=timedelta(milliseconds=500), backoff_multiplier=2.0
)


def parse_invoice(text: str | None) -> int:
    if not text or not text.startswith("INV-"):
        raise InvalidInvoice(f"not an invoice number: {text!r}")
    return int(text.removeprefix("INV-"))


class SyncWorkflow(hydra.Workflow[Job]):
    name = "sync-and-import"

    def run(self, ctx: hydra.WorkflowContext, job: Job) -> dict[str, object]:
        synced = hydra.step(ctx, "sync-inventory", lambda: API.sync(job.job_id), retry=BACKOFF)
        invoice = hydra.step(
            ctx, "import-invoice", lambda: parse_invoice(job.invoice), retry=BACKOFF
        )
        return {"synced": synced, "invoice": invoice}


WORKFLOWS = [SyncWorkflow()]


def dev(engine: hydra.Engine) -> list[str]:
    """The dev-run hook: one job that succeeds after retries, one that fails for good."""
    return [
        engine.start_workflow("sync-and-import", Job("job-1", invoice="INV-2024")),
        engine.start_workflow("sync-and-import", Job("job-2", invoice="bogus")),
    ]

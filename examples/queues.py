"""Queues: emails sent through a partner's API, within the partner's limits.

The partner (a mail provider) takes at most 5 connections at once from us, 100 sends a
minute, and one send at a time per customer account it hosts. Every email is an
execution of ``deliver-email`` started in the queue ``partner-emails``, whose limits
say exactly that; every worker of the database enforces them together:

- ``concurrency=5``: at most 5 emails being delivered at once, across all workers;
- ``worker_concurrency=2``: at most 2 of them in any one worker (the rest of its
  threads stay free for other work);
- ``key_concurrency=1`` with ``concurrency_key=<customer>``: one email at a time per
  customer account;
- ``rate_limit=RateLimit(100, per=1 minute)``: at most 100 first starts in any minute
  (a retry after a partner error does not count again).

Password resets and order confirmations are started with a higher ``priority``: they
overtake the newsletters waiting in the queue.

    hydra dev run examples/queues.py --fast-forward
    hydra queues list        # the queue, its limits, and what waits in it

The dev hook registers the queue, starts newsletters for two customers and a password
reset, and every email is delivered. docs/queues.md has the details.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import hydra

#: the partner's limits, as a queue
PARTNER_EMAILS = hydra.Queue(
    "partner-emails",
    concurrency=5,
    worker_concurrency=2,
    key_concurrency=1,
    rate_limit=hydra.RateLimit(100, per=timedelta(minutes=1)),
)
#: the priority of emails someone is waiting for; newsletters have 0
URGENT = 10
URGENT_TEMPLATES = frozenset({"password-reset", "order-confirmation"})


@dataclass
class Email:
    customer: str  # the customer account at the partner that sends it
    to: str
    template: str  # "password-reset", "order-confirmation", "newsletter"
    email_id: str  # ours: the partner's idempotency key


class PartnerTemporarilyUnavailable(Exception):
    """The partner answered 503: worth trying again later."""


class PartnerAPI:
    """A stand-in for the partner's mail API. Like the real one, it delivers once per
    idempotency key (a step runs again if its worker dies inside it), and it can be made
    to fail the first ``outages`` calls. It records what it saw: the most sends in flight
    at once, in all and per customer, which the queue's limits bound."""

    def __init__(self, *, latency: float = 0.0, outages: int = 0) -> None:
        self.latency = latency
        self.outages = outages
        self.delivered: dict[str, str] = {}  # email id -> message id
        self.calls = 0
        self.in_flight: dict[str, int] = {}
        self.most_at_once = 0
        self.most_per_customer = 0
        self._lock = threading.Lock()

    def send(self, email: Email, subject: str) -> str:
        with self._lock:
            self.calls += 1
            if self.outages > 0:
                self.outages -= 1
                raise PartnerTemporarilyUnavailable(f"503 while sending {email.email_id}")
            self.in_flight[email.customer] = self.in_flight.get(email.customer, 0) + 1
            self.most_at_once = max(self.most_at_once, sum(self.in_flight.values()))
            self.most_per_customer = max(self.most_per_customer, self.in_flight[email.customer])
        try:
            time.sleep(self.latency)  # the partner's round trip
            with self._lock:
                return self.delivered.setdefault(email.email_id, f"msg-{email.email_id}")
        finally:
            with self._lock:
                self.in_flight[email.customer] -= 1


def render(email: Email) -> str:
    subjects = {
        "password-reset": "Reset your password",
        "order-confirmation": "Your order is confirmed",
        "newsletter": "What's new this month",
    }
    return f"{subjects.get(email.template, email.template)} ({email.customer})"


class DeliverEmail(hydra.Workflow[Email]):
    name = "deliver-email"

    def __init__(self, partner: PartnerAPI) -> None:
        self.partner = partner

    def run(self, ctx: hydra.WorkflowContext, email: Email) -> dict[str, str]:
        subject = hydra.step(ctx, "render", lambda: render(email))
        retry = hydra.RetryPolicy(max_attempts=5, initial_backoff=timedelta(seconds=30))
        message_id = hydra.step(ctx, "send", lambda: self.partner.send(email, subject), retry=retry)
        return {"to": email.to, "subject": subject, "message_id": message_id}


def send_email(engine: hydra.Engine, email: Email) -> str:
    """Start delivering ``email`` (the queue must be registered): urgent templates first,
    one at a time per customer; the email id makes a repeated request start nothing."""
    return engine.start_workflow(
        "deliver-email",
        email,
        queue=PARTNER_EMAILS.name,
        priority=URGENT if email.template in URGENT_TEMPLATES else 0,
        concurrency_key=email.customer,
        idempotency_key=f"email-{email.email_id}",
    )


WORKFLOWS = [DeliverEmail(PartnerAPI(latency=0.05))]


def dev(engine: hydra.Engine) -> list[str]:
    """The dev-run hook: ``hydra dev run examples/queues.py`` registers the queue, starts
    three newsletters for each of two customers, then a password reset that overtakes
    those still waiting."""
    engine.register_queue(PARTNER_EMAILS)
    ids = [
        send_email(engine, Email(customer, f"{who}@{customer}.example", "newsletter", f"nl-{n}"))
        for n, (customer, who) in enumerate(
            [(c, w) for w in ("ada", "alan", "grace") for c in ("acme", "globex")], start=1
        )
    ]
    reset = Email("acme", "grace@acme.example", "password-reset", "reset-1")
    return [*ids, send_email(engine, reset)]

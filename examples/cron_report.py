"""A daily sales report started by cron, and a handler that checks the queue every 15 min.

``daily-sales-report`` starts the ``sales-report`` workflow at 06:00 Berlin time every day,
for the day before. The slot is the execution's idempotency key: one report per day,
however many workers run, and a report that fails half-way is retried from its
checkpoints like any workflow. ``queue-check`` is a plain handler (``hydra.CronContext``):
it runs once per slot on whichever worker claims it, and logs the backlog.

    python examples/cron_report.py --simulate   # a week on a fake clock, in a second
    python examples/cron_report.py              # a worker on .hydra/hydra.db until Ctrl-C
    hydra dev run examples/cron_report.py       # registers the jobs, runs yesterday's report

(The sales figures are a stand-in computed from the date; the "mail" goes to ``OUTBOX``.)
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import hydra

TIMEZONE = "Europe/Berlin"
OUTBOX: list[str] = []


@dataclass
class ReportRequest:
    day: str  # ISO date, in Berlin


def sales_for(day: str) -> list[int]:
    """Stand-in for a query: the day's order amounts in cents."""
    seed = date.fromisoformat(day).toordinal()
    return [1_000 + (seed * 7919 + i * 104_729) % 9_000 for i in range(3 + seed % 5)]


def render(day: str, amounts: list[int]) -> str:
    return f"{day}: {len(amounts)} orders, {sum(amounts) / 100:.2f} EUR"


def send(text: str) -> str:
    OUTBOX.append(text)  # a real report would be mailed; make that call idempotent
    return f"sent: {text}"


class SalesReport(hydra.Workflow[ReportRequest]):
    name = "sales-report"

    def run(self, ctx: hydra.WorkflowContext, req: ReportRequest) -> str:
        amounts = hydra.step(ctx, "collect-sales", lambda: sales_for(req.day))
        text = hydra.step(ctx, "render", lambda: render(req.day, amounts))
        return hydra.step(ctx, "send", lambda: send(text))


WORKFLOWS = [SalesReport()]


def report_for_slot(slot: datetime) -> ReportRequest:
    """The payload of each slot: the report for the day before the slot (Berlin time)."""
    return ReportRequest((slot.date() - timedelta(days=1)).isoformat())


def check_queue(ctx: hydra.CronContext) -> None:
    backlog = ctx.engine.list_executions(status="pending", limit=1000)
    ctx.logger.info("queue check at %s: %d pending", ctx.scheduled_at, len(backlog))


def register_jobs(engine: hydra.Engine) -> None:
    """Register the cron jobs; every worker of ``engine`` then schedules them."""
    engine.register_cron(
        "0 6 * * *",
        "daily-sales-report",
        workflow="sales-report",
        payload=report_for_slot,
        timezone=TIMEZONE,
    )
    engine.register_cron("*/15 * * * *", "queue-check", check_queue)


def dev(engine: hydra.Engine) -> list[str]:
    """The dev-run hook: register the jobs, and run yesterday's report now (a backfill)."""
    register_jobs(engine)
    yesterday = (engine.clock.now().astimezone(ZoneInfo(TIMEZONE)) - timedelta(days=1)).date()
    day = yesterday.isoformat()
    return [
        engine.start_workflow(
            "sales-report", ReportRequest(day), idempotency_key=f"backfill:sales:{day}"
        )
    ]


def simulate(days: int = 7) -> list[str]:
    """A week of the jobs on a fake clock (``hydra.testing``): what would have been sent."""
    from hydra.testing import FakeClock, TestEnvironment

    env = TestEnvironment(clock=FakeClock(datetime(2030, 3, 28, tzinfo=UTC)), workers=3)
    for wf in WORKFLOWS:
        env.register(wf)
    register_jobs(env.engine)
    env.advance(timedelta(days=days))
    reports = env.engine.list_executions(workflow_name="sales-report")
    reports.sort(key=lambda e: e.created_at)
    lines = []
    for ex in reports:
        started = ex.created_at.astimezone(ZoneInfo(TIMEZONE)).isoformat()
        lines.append(f"{started}  {ex.status.value}  {ex.output}")
    checks = sum(1 for e in env.history if e.kind == "cron" and "queue-check" in e.detail)
    lines.append(f"queue-check ran {checks} times")
    return lines


def main(argv: list[str]) -> int:
    if "--simulate" in argv:
        print("\n".join(simulate()))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    url = next((a for a in argv if "://" in a), None)
    url = url or os.environ.get("HYDRA_DATABASE_URL", "sqlite:///.hydra/hydra.db")
    store = hydra.SQLStore(url)
    engine = hydra.Engine(store, namespace="examples")
    register_jobs(engine)
    worker = hydra.Worker(engine)
    for wf in WORKFLOWS:
        worker.register(wf)
    try:
        worker.run()  # until Ctrl-C or SIGTERM
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

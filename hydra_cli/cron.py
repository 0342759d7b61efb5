"""``hydra cron list``: the cron jobs stored in a namespace and their last fires."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from hydra import Engine
from hydra.cron import UNCLAIMED_GRACE_MS, UNCLAIMED_SCAN, unclaimed_executions
from hydra.store.base import CronJobRow, ExecutionRow

from . import output, render
from .db import DEFAULT_NAMESPACE, DbOption, NamespaceOption
from .session import connect
from .visible import visible

app = typer.Typer(name="cron", help="Inspect cron jobs.", no_args_is_help=True)


@app.command(
    "list",
    help=(
        "List the namespace's cron jobs: schedule, timezone, what each fires (a workflow or "
        "a handler), the next slot, and the last slot fired (when, by which worker, which "
        "execution it started). A job is stored when a process registers it "
        "(engine.register_cron). A warning follows a job whose executions have waited over "
        "a minute with no worker claiming them: no running worker may register its workflow."
    ),
)
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    with connect(ctx, db, ns) as (engine, _):
        rows = job_rows(engine, engine.clock.now_ms())
    if as_json:
        output.raw(render.dumps(rows) + "\n")
        return
    console = output.stdout()
    if not rows:
        console.print(Text(f"no cron jobs in namespace {engine.namespace!r}"))
        return
    for row in rows:
        head = Text(visible(row["name"]), "bold")
        head.append(visible(f"  {row['spec']}  ({row['timezone']})  → {row['target']}"))
        if not row["enabled"]:
            head.append("  disabled", "yellow")
        console.print(head, overflow="ignore", crop=False)
        console.print(Text(f"    next  {row['next_run_at'] or '-'}", "dim"))
        if row["last_slot"] is None:
            console.print(Text("    last  never fired", "dim"))
        else:
            fired = Text(f"    last  slot {row['last_slot']}, fired {row['last_fired_at']}")
            fired.append(f" by {visible(row['last_worker'] or '-')}")
            if row["last_execution"]:
                fired.append(f" → execution {visible(row['last_execution'])}")
            console.print(fired, overflow="ignore", crop=False)
        if row["unclaimed_note"] is not None:
            warning = Text(f"    warning  {row['unclaimed_note']}", "yellow")
            console.print(warning, overflow="ignore", crop=False)


def job_rows(engine: Engine, now: int) -> list[dict[str, Any]]:
    """Each cron job of the engine's namespace as ``cron list`` shows it (and the web
    UI: ``hydra.ui``): its schedule, next slot, last fire and unclaimed executions."""
    store = engine.store
    jobs = engine.list_cron_jobs()
    rows: list[dict[str, Any]] = []
    for job in jobs:
        last = store.last_cron_fire(engine.namespace, job.name)
        waiting = waiting_for_a_worker(engine, job, now)
        oldest = min((row.created_at for row in waiting), default=None)
        rows.append(
            {
                "name": job.name,
                "spec": job.spec,
                "timezone": job.timezone or "UTC",
                "target": f"workflow {job.workflow_name}" if job.workflow_name else "handler",
                "enabled": job.enabled,
                "next_run_at": render.fmt_time(job.next_run_at)
                if job.next_run_at is not None
                else None,
                "last_slot": render.fmt_time(last.slot_at) if last else None,
                "last_fired_at": render.fmt_time(last.fired_at) if last else None,
                "last_worker": last.worker_id if last else None,
                "last_execution": last.execution_id if last else None,
                "unclaimed": len(waiting),
                "unclaimed_oldest_created_at": render.fmt_time(oldest)
                if oldest is not None
                else None,
                "unclaimed_note": unclaimed_note(job.workflow_name, len(waiting), oldest, now),
            }
        )
    return rows


def waiting_for_a_worker(engine: Engine, job: CronJobRow, now_ms: int) -> list[ExecutionRow]:
    """The executions ``job`` started that no worker has claimed for over a minute."""
    if job.workflow_name is None:
        return []
    return unclaimed_executions(
        engine.store,
        engine.namespace,
        job.name,
        job.workflow_name,
        created_before_ms=now_ms - UNCLAIMED_GRACE_MS,
    )


def unclaimed_note(workflow: str | None, count: int, oldest: int | None, now_ms: int) -> str | None:
    """What ``cron list`` says of a job whose executions no worker has claimed."""
    if workflow is None or count == 0 or oldest is None:
        return None
    more = "+" if count >= UNCLAIMED_SCAN else ""
    noun = "execution" if count == 1 else "executions"
    return (
        f"{count}{more} pending {noun} it started never claimed by a worker, the oldest "
        f"{render.relative(oldest, now_ms)}: is a worker running that registers {workflow!r}?"
    )

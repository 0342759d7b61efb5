"""``hydra cron list``: the cron jobs stored in a namespace and their last fires."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from . import output, render
from .db import DEFAULT_NAMESPACE, DbOption, NamespaceOption
from .session import connect
from .visible import visible

app = typer.Typer(name="cron", help="Inspect cron jobs.", no_args_is_help=True)


@app.command(
    "list",
    help=(
        "List the namespace's cron jobs: schedule, timezone, what each fires (a workflow or "
        "a handler), the next slot a worker computed, and the last slot fired (when, by which "
        "worker, which execution it started). A job is stored when a process registers it "
        "(engine.register_cron)."
    ),
)
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    with connect(ctx, db, ns) as (engine, _):
        store = engine.store
        jobs = store.list_cron_jobs(engine.namespace)
        rows: list[dict[str, Any]] = []
        for job in jobs:
            last = store.last_cron_fire(engine.namespace, job.name)
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
                }
            )
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

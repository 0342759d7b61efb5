"""``hydra queues list``: each queue of a namespace, its limits, and what waits in it."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from hydra.queues import DEFAULT_QUEUE, queue_of
from hydra.store.queues import QueueStats

from . import output, render
from .db import DEFAULT_NAMESPACE, DbOption, NamespaceOption
from .session import connect, other_namespaces
from .visible import visible

app = typer.Typer(name="queues", help="Inspect queues and their limits.", no_args_is_help=True)

#: the widest a queue name is shown in the table (``--json`` has it in full)
NAME_WIDTH = 30
NOT_REGISTERED = "not registered: no limits apply"
DEFAULT_LIMITS = "no limits (default)"


@app.command(
    "list",
    help=(
        "List the namespace's queues (every registered one, and every one holding an "
        "unfinished execution), one row each: its limits (engine.register_queue); backlog, "
        "the executions due and not yet claimed (waiting for a free slot, the rate limit's "
        "next window, or a worker), and how long the oldest has waited; scheduled, those "
        "pending or sleeping until later or waiting for a message; running; and the slots "
        "the running ones hold of the queue's concurrency. The queue 'default' holds the "
        "executions started without queue= and has no limits.\n\n"
        "Example: hydra queues list --namespace production --json"
    ),
)
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    with connect(ctx, db, ns) as (engine, _):
        # "Now" on the time base the stored times were written on (the database's clock).
        now = engine.clock.now_ms()
        stats = engine.store.queue_stats(engine.namespace, now_ms=now)
        others = [] if stats else other_namespaces(engine.store)
    rows = [queue_data(s, now) for s in stats]
    if as_json:
        output.raw(render.dumps(rows) + "\n")
        return
    console = output.stdout()
    if not rows:
        message = f"no queues in namespace {engine.namespace!r} (none registered, no execution"
        message += " unfinished)"
        elsewhere = [n for n in others if n != engine.namespace]
        if elsewhere:
            message += f"; namespaces with executions: {', '.join(elsewhere)} (use --namespace NS)"
        console.print(Text(message))
        return
    for line in table(rows):
        console.print(line, overflow="ignore", crop=False)


def limits_text(stats: QueueStats) -> str:
    """The queue's limits in a few words (``Queue.describe``), or why it has none."""
    if stats.config is not None:
        return queue_of(stats.config).describe()
    return DEFAULT_LIMITS if stats.name == DEFAULT_QUEUE else NOT_REGISTERED


def queue_data(stats: QueueStats, now_ms: int) -> dict[str, Any]:
    """One queue as JSON-ready data (``--json``), and what the table is drawn from."""
    config = stats.config
    rate = None
    if config is not None and config.rate_limit is not None:
        rate = {"limit": config.rate_limit, "per_ms": config.rate_per_ms}
    oldest = stats.oldest_due_at
    return {
        "name": stats.name,
        "registered": config is not None,
        "limits": limits_text(stats),
        "concurrency": None if config is None else config.concurrency,
        "worker_concurrency": None if config is None else config.worker_concurrency,
        "key_concurrency": None if config is None else config.key_concurrency,
        "rate_limit": rate,
        "backlog": stats.backlog,
        "oldest_due_at": render.iso(oldest),
        # a due time in the future would be a clock that went back: shown as 0
        "oldest_age_ms": None if oldest is None else max(now_ms - oldest, 0),
        "scheduled": stats.scheduled,
        "running": stats.running,
        "slots_held": stats.slots_held,
    }


COLUMNS = ("queue", "limits", "backlog", "oldest", "scheduled", "running", "slots")


def cells(row: dict[str, Any]) -> tuple[str, ...]:
    """A queue's row of the table, as the strings shown (the name made visible, cut)."""
    name = visible(row["name"])
    if len(name) > NAME_WIDTH:
        name = name[: NAME_WIDTH - 1] + "…"
    age = row["oldest_age_ms"]
    concurrency = row["concurrency"]
    return (
        name,
        row["limits"],
        str(row["backlog"]),
        "-" if age is None else render.fmt_duration(age),
        str(row["scheduled"]),
        str(row["running"]),
        "-" if concurrency is None else f"{row['slots_held']}/{concurrency}",
    )


def table(rows: list[dict[str, Any]]) -> list[Text]:
    """The header line and one line per queue, each column as wide as its widest cell."""
    shown = [cells(row) for row in rows]
    widths = [max(len(c[i]) for c in [COLUMNS, *shown]) for i in range(len(COLUMNS))]

    def joined(values: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return [Text(joined(COLUMNS), "dim"), *(Text(joined(values)) for values in shown)]

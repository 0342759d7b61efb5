"""What each page shows, read from the store: plain data for the templates.

The execution page draws the model ``hydra trace`` draws (``hydra_cli.render``: the
``View`` loaded by the same loaders, its header, ``timeline_rows`` with every attempt
and its details, ``execution_data`` for messages, events, children, input and output):
one model, two renderings. Everything that came from the database reaches the page
made visible (``hydra_cli.visible``) and HTML-escaped (Jinja2's autoescape, or
``richhtml.to_html``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup

from hydra import Engine, ExecutionNotFoundError
from hydra.clock import from_ms, to_ms
from hydra.records import Execution
from hydra.status import Status
from hydra_cli import childview, cron, mailview, queues, render
from hydra_cli.render import Style, View
from hydra_cli.visible import visible

from .richhtml import to_html

#: rows a page of the list shows, and the most it shows (paging reads newest first)
PAGE = 50
MAX_LIMIT = 1000
#: how many of the newest executions a queue, time or idempotency-key filter reads (the
#: store filters by status and workflow only)
SCAN = 1000
#: the "created within" choices of the list
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
#: the width the trace's notes are cut to (input, output and errors are shown in full)
STYLE = Style(unicode=True, width=160)
STATUSES = [s.value for s in Status] + ["parked"]


@dataclass
class ListQuery:
    status: str | None = None
    workflow: str | None = None
    queue: str | None = None
    since: str | None = None
    search: str | None = None
    limit: int = PAGE

    @classmethod
    def parse(cls, params: dict[str, str]) -> ListQuery:
        def text(key: str) -> str | None:
            value = params.get(key, "").strip()
            return value or None

        status = text("status")
        since = text("since")
        try:
            limit = int(params.get("limit", PAGE))
        except ValueError:
            limit = PAGE
        return cls(
            status=status if status in STATUSES else None,
            workflow=text("workflow"),
            queue=text("queue"),
            since=since if since in SINCE else None,
            search=text("q"),
            limit=min(max(limit, 1), MAX_LIMIT),
        )

    def params(self, **override: Any) -> dict[str, str]:
        values = {
            "status": self.status,
            "workflow": self.workflow,
            "queue": self.queue,
            "since": self.since,
            "q": self.search,
            "limit": self.limit if self.limit != PAGE else None,
        }
        values.update(override)
        return {k: str(v) for k, v in values.items() if v is not None}


@dataclass
class ListRow:
    id: str
    workflow: str
    status: str
    queue: str
    priority: int
    attempts: str
    created: str
    note: Markup


@dataclass
class ListPage:
    rows: list[ListRow]
    more: bool  # a next page may hold more
    notes: list[str] = field(default_factory=list)
    workflows: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)


def list_page(engine: Engine, query: ListQuery) -> ListPage:
    now = engine.clock.now_ms()
    notes: list[str] = []
    found = _matching(engine, query, now, notes)
    more = len(found) > query.limit
    found = found[: query.limit]
    rows = [
        ListRow(
            id=ex.id,
            workflow=visible(ex.workflow_name),
            status=render.shown_status(ex),
            queue=visible(ex.queue),
            priority=ex.priority,
            attempts=f"{ex.attempt}/{ex.max_attempts}",
            created=render.fmt_time(ex.created_at),
            note=to_html(render.execution_note(View(ex), max(now, to_ms(ex.created_at)))),
        )
        for ex in found
    ]
    stats = engine.store.queue_stats(engine.namespace, now_ms=now)
    return ListPage(
        rows,
        more,
        notes,
        workflows=sorted({r.workflow for r in rows} | {w for w in [query.workflow] if w}),
        queues=sorted({s.name for s in stats} | {r.queue for r in rows}),
    )


def _matching(engine: Engine, query: ListQuery, now: int, notes: list[str]) -> list[Execution]:
    """Up to ``limit + 1`` executions matching the query, newest first."""
    status = query.status
    stored = Status.PENDING if status == "parked" else (Status(status) if status else None)
    wanted = query.limit + 1
    if query.search is not None:
        return _search(engine, query, notes)
    # Status, workflow, queue and time are filtered by the database; "parked" (pending
    # with parks > 0 and its error) among the newest pending ones.
    read = SCAN if status == "parked" else wanted
    since = None
    if query.since is not None:
        since = from_ms(now - int(SINCE[query.since].total_seconds() * 1000))
    found = engine.list_executions(
        status=stored,
        workflow_name=query.workflow,
        limit=read,
        queue=query.queue,
        created_after=since,
    )
    if status == "parked":
        if len(found) >= SCAN:
            notes.append(f"parked executions are looked for among the newest {SCAN} pending")
        found = [ex for ex in found if ex.parked]
    return found[:wanted]


def _search(engine: Engine, query: ListQuery, notes: list[str]) -> list[Execution]:
    """Executions whose id starts with the search text (the CLI's id prefixes: from the
    primary key), then the one whose idempotency key is the search text (by the key's
    unique index), with the other filters applied."""
    text = query.search or ""
    ids = engine.store.find_execution_ids(engine.namespace, text, limit=query.limit + 1)
    found: list[Execution] = []
    for execution_id in ids:
        try:
            found.append(engine.get_execution(execution_id))
        except ExecutionNotFoundError:
            continue  # purged since
    seen = {ex.id for ex in found}
    keyed = [
        ex for ex in engine.list_executions(limit=1, idempotency_key=text) if ex.id not in seen
    ]
    found.extend(keyed)

    def keep(ex: Execution) -> bool:
        shown = render.shown_status(ex)
        return (
            (query.status is None or shown == query.status or ex.status.value == query.status)
            and (query.workflow is None or ex.workflow_name == query.workflow)
            and (query.queue is None or ex.queue == query.queue)
        )

    return [ex for ex in found if keep(ex)][: query.limit + 1]


# -- an execution -----------------------------------------------------------------------


@dataclass
class Row:
    """A timeline row as the page draws it: a bar placed in percent of the axis."""

    mark: str
    kind: str
    name: str
    attempts: str
    start: str
    took: str
    left: float | None
    width: float
    bar: str
    indent: int
    details: list[Markup]


@dataclass
class ExecutionPage:
    id: str
    view: View
    data: dict[str, Any]
    header: Markup
    rows: list[Row]
    axis: str
    terminal: bool
    parked: bool
    status: str
    input: str
    output: str | None
    error: str | None
    can_cancel: bool
    can_retry: bool


def load_view(engine: Engine, execution_id: str) -> View:
    """The execution and all ``hydra trace`` reads of it (messages, events, kin)."""
    view = View(engine.get_execution(execution_id))
    return childview.load(engine, mailview.load(engine, view))


def execution_page(engine: Engine, execution_id: str) -> ExecutionPage:
    now = engine.clock.now_ms()
    view = load_view(engine, execution_id)
    ex = view.execution
    timeline = render.with_attempts(render.timeline_rows(view, now, STYLE, STYLE.width - 8))
    t0, span = render.time_axis(view, timeline, now)
    rows = []
    for r in timeline:
        left = None if r.start is None else min(max((r.start - t0) / span * 100, 0.0), 100.0)
        end = r.end if r.end is not None else r.start
        width = 0.0
        if r.start is not None and end is not None and left is not None:
            width = min(max((end - r.start) / span * 100, 0.4), 100.0 - left)
        rows.append(
            Row(
                mark=r.mark,
                kind=r.kind,
                name=r.name,
                attempts=r.attempts,
                start="" if r.start is None else "+" + render.fmt_duration(r.start - t0),
                took=""
                if r.start is None or r.end is None
                else render.fmt_duration(r.end - r.start),
                left=left,
                width=width,
                bar=r.bar,
                indent=r.indent,
                details=[to_html(d) for d in r.details],
            )
        )
    data = render.execution_data(view, now)
    error = None
    if ex.error_type is not None:
        error = visible(f"{ex.error_type}: {ex.error_message or ''}", multiline=True)
    return ExecutionPage(
        id=ex.id,
        view=view,
        data=data,
        header=to_html(render.header(view, now)),
        rows=rows,
        axis=render.fmt_duration(span),
        terminal=ex.terminal,
        parked=ex.parked,
        status=render.shown_status(ex),
        input=block(ex.input),
        output=None if ex.status != Status.COMPLETED else block(ex.output),
        error=error,
        can_cancel=not ex.terminal,
        can_retry=ex.status in (Status.FAILED, Status.CANCELLED) or ex.parked,
    )


def block(value: Any) -> str:
    """A value in full, as indented JSON made visible (line breaks kept)."""
    return visible(render.dumps(value), multiline=True)


def messages(page: ExecutionPage) -> list[dict[str, Any]]:
    """The messages sent to the execution, as shown under its steps."""
    out = []
    for m in page.data.get("messages", []):
        end = m.get("child_end")
        out.append(
            {
                "topic": visible(m["topic"]),
                "sent_at": render.fmt_time(page_time(m["sent_at"])),
                "sender": m["sender"],
                "received_by": None if m["received_by"] is None else visible(m["received_by"]),
                "payload": block(end if end is not None else m["payload"]),
                "child_end": end is not None,
            }
        )
    return out


def page_time(iso: str | None) -> int | None:
    """A time of ``execution_data`` (ISO 8601 UTC) back in Unix ms, for ``fmt_time``."""
    if iso is None:
        return None
    return to_ms(datetime.fromisoformat(iso.replace("Z", "+00:00")))


def events(page: ExecutionPage) -> list[tuple[str, str]]:
    return [(visible(k), block(v)) for k, v in (page.data.get("events") or {}).items()]


def children(page: ExecutionPage) -> list[dict[str, Any]]:
    return [
        {
            "id": c["id"],
            "workflow": visible(c.get("workflow") or ""),
            "status": c["status"] or "-",
            "started_by": visible(c["started_by"]),
        }
        for c in page.data.get("children", [])
    ]


# -- cron, queues, workers --------------------------------------------------------------


def cron_jobs(engine: Engine) -> list[dict[str, Any]]:
    """``hydra cron list``'s rows, made visible."""
    rows = cron.job_rows(engine, engine.clock.now_ms())
    return [{k: visible(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]


def queue_rows(engine: Engine) -> list[dict[str, Any]]:
    """``hydra queues list``'s rows (limits from ``Queue.describe``), made visible."""
    now = engine.clock.now_ms()
    stats = engine.store.queue_stats(engine.namespace, now_ms=now)
    out = []
    for s in stats:
        row = queues.queue_data(s, now)
        age = row["oldest_age_ms"]
        concurrency = row["concurrency"]
        rate = row["rate_limit"]
        out.append(
            {
                "name": visible(row["name"]),
                "limits": visible(row["limits"]),
                "backlog": row["backlog"],
                "oldest": "-" if age is None else render.fmt_duration(age),
                "scheduled": row["scheduled"],
                "running": row["running"],
                "slots": "-" if concurrency is None else f"{row['slots_held']}/{concurrency}",
                "rate": "-"
                if rate is None
                else f"{rate['limit']} per {render.fmt_duration(rate['per_ms'])}",
            }
        )
    return out


#: how many running executions the workers page reads
WORKERS_SCAN = 1000


def workers(engine: Engine) -> list[dict[str, Any]]:
    """The workers seen recently: hydra keeps no table of workers, so these are the
    lease owners of the running executions (a worker holding none is not seen), and the
    workers that last fired a cron job."""
    now = engine.clock.now_ms()
    seen: dict[str, dict[str, Any]] = {}
    running = engine.store.list_executions(
        engine.namespace, status=Status.RUNNING, limit=WORKERS_SCAN
    )
    for row in running:
        if row.lease_owner is None:
            continue
        w = seen.setdefault(
            row.lease_owner, {"id": visible(row.lease_owner), "running": [], "last": None}
        )
        w["running"].append({"id": row.id, "workflow": visible(row.workflow_name)})
        expires = row.lease_expires_at
        if expires is not None:
            w["lease"] = render.relative(expires, now)
    for job in engine.store.list_cron_jobs(engine.namespace):
        last = engine.store.last_cron_fire(engine.namespace, job.name)
        if last is None or last.worker_id is None:
            continue
        w = seen.setdefault(
            last.worker_id, {"id": visible(last.worker_id), "running": [], "last": None}
        )
        fired = f"fired cron {visible(job.name)} {render.relative(last.fired_at, now)}"
        w["last"] = fired
    return sorted(seen.values(), key=lambda w: str(w["id"]))

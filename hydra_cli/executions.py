"""``hydra executions list|show|cancel|retry|send|export``."""

from __future__ import annotations

import json
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from hydra import ExecutionFinishedError, Status
from hydra.clock import to_ms
from hydra.records import Message, StepRecord
from hydra.testing.history import history_document

from . import childview, mailview, output, render
from .db import DEFAULT_NAMESPACE, DbOption, NamespaceOption
from .errors import CliError
from .render import View
from .session import IdArgument, connect, load_view, other_namespaces, resolve_execution_id
from .visible import visible

app = typer.Typer(
    name="executions",
    help="List, inspect, cancel, retry and export executions, and send them messages.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class StatusChoice(StrEnum):
    pending = "pending"
    running = "running"
    sleeping = "sleeping"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


@app.command(
    "list",
    help=(
        "List executions, newest first: id, workflow, status, attempt, creation time and what "
        "it is doing (a pending one shows how long it has waited for a worker: one that waits "
        "long may be of a workflow no running worker registered). A parked execution (its "
        "code no longer matches its history: NonDeterminismError) shows as parked, stored as "
        "pending: --status pending lists it too, with when it is tried again and the error. "
        "--parent lists the children an execution started (hydra.start_child). Queue and "
        "priority columns appear when an execution listed was started in a queue or with a "
        "priority (start_workflow(queue=..., priority=...))."
    ),
)
def list_(
    ctx: typer.Context,
    status: Annotated[
        StatusChoice | None,
        typer.Option("--status", "-s", help="Only executions with this status."),
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", metavar="NAME", help="Only this workflow.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, metavar="N", help="At most this many.")
    ] = 20,
    parent: Annotated[
        str | None,
        typer.Option(
            "--parent",
            metavar="EXECUTION_ID",
            help="Only the children of this execution (its id or the start of it).",
        ),
    ] = None,
    as_json: JsonOption = False,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    with connect(ctx, db, ns) as (engine, _):
        # "Now" on the time base the stored times were written on (the database's clock).
        now = engine.clock.now_ms()
        wanted = Status(status.value) if status is not None else None
        parent_id = resolve_execution_id(engine, parent) if parent is not None else None
        found = engine.list_executions(
            status=wanted, workflow_name=workflow, limit=limit, parent_id=parent_id
        )
        views = [View(ex) for ex in found]
        if as_json:
            data = [render.execution_data(v, now, with_steps=False) for v in views]
            output.raw(render.dumps(data) + "\n")
            return
        console = output.stdout()
        if not views:
            message = f"no executions in namespace {engine.namespace!r}"
            if parent_id is not None:
                message = f"no children of {parent_id}"
            if status is not None or workflow is not None:
                message += " matching the filters"
            elif parent_id is None:
                others = other_namespaces(engine.store)
                if others:
                    message += f" (namespaces with executions: {', '.join(others)}; "
                    message += "use --namespace NS)"
            console.print(Text(message))
            return
        names = {v.execution.id: visible(v.execution.workflow_name) for v in views}
        wf_w = min(max(len("workflow"), *(len(n) for n in names.values())), 30)
        created = {v.execution.id: render.fmt_time(v.execution.created_at) for v in views}
        # As wide as the timestamps really are ("2026-01-02 03:04:05.678 UTC"), so that
        # the note column starts under its header.
        created_w = max(len("created"), *(len(c) for c in created.values()))
        # Queue and priority columns only when an execution listed has them (issue 15).
        queues = render.queue_columns([v.execution for v in views])
        head = f"{'id':<36}  {'workflow':<{wf_w}}  {queues.head}{'status':<9}  {'attempt':<7}  "
        console.print(Text(head + f"{'created':<{created_w}}  note", "dim"))
        for v in views:
            ex = v.execution
            name = names[ex.id]
            name = name if len(name) <= wf_w else name[: wf_w - 1] + "…"
            line = Text(f"{visible(ex.id):<36}  {name:<{wf_w}}  {queues.cells(ex)}")
            line.append_text(render.status_text(f"{render.shown_status(ex):<9}"))
            line.append(f"  {f'{ex.attempt}/{ex.max_attempts}':<7}  ")
            line.append(f"{created[ex.id]:<{created_w}}  ")
            line.append_text(render.execution_note(v, max(now, to_ms(ex.created_at))))
            console.print(line, overflow="ignore", crop=False)


@app.command(
    help="Show everything stored about an execution: its fields (its queue, priority and "
    "concurrency key when not the defaults), input, output, error, and every step with its "
    "full output or error (and, for a step that took several attempts, each attempt with "
    "its start, duration and error)."
)
def show(
    ctx: typer.Context,
    execution_id: IdArgument,
    as_json: JsonOption = False,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    with connect(ctx, db, ns) as (engine, _):
        now = engine.clock.now_ms()  # the stored times' time base
        view = load_view(engine, resolve_execution_id(engine, execution_id))
        childview.load(engine, mailview.load(engine, view))
    data = render.execution_data(view, now)
    if as_json:
        output.raw(render.dumps(data) + "\n")
        return
    console = output.stdout()
    ex = view.execution
    console.print(render.header(view, now))
    keys = ("idempotency_key", "run_at", "sleep_until", "wait_topic", "next_retry_at", "timeout_at")
    for key in keys:
        if data[key] is not None:
            console.print(Text(f"  {key:<16}", "dim") + Text(visible(str(data[key]))))
    console.print(Text("  input", "dim"))
    console.print(Text(_block(render.dumps(ex.input), 4)))
    if ex.status == Status.COMPLETED:
        console.print(Text("  output", "dim"))
        console.print(Text(_block(render.dumps(ex.output), 4)))
    if ex.error_type is not None:
        console.print(Text("  error", "dim"))
        console.print(Text(_block(f"{ex.error_type}: {ex.error_message or ''}", 4), "red"))
    console.print(Text(f"  steps ({len(ex.steps)})", "dim"))
    for record, step in zip(ex.steps, data["steps"], strict=True):
        listed = render.shows_attempts(record)
        line = Text(f"    {step['order']:>2}. ")
        line.append(visible(step["name"]), "bold")
        line.append("  ")
        line.append_text(render.status_text(step["status"]))
        if step["kind"] == "sleep":
            line.append(f"  until {step['wake_at']}")
        elif step["kind"] in render.MAIL_KINDS:
            line.append("  ")
            line.append_text(_checkpoint_line(step))
        elif step["kind"] in render.CHILD_KINDS:
            line.append("  ")
            line.append_text(_child_line(view, record, step))
        else:
            line.append(f"  attempts {step['attempts']}")
            if step["duration_ms"] is not None:
                line.append(f"  took {render.fmt_duration(step['duration_ms'])}")
        if step["at"] is not None:  # where the code reached it: read a mismatch by it
            line.append(f"  at {visible(step['at'])}", "dim")
        console.print(line)
        if step["error"] is not None and not listed:
            error = f"{step['error']['type']}: {step['error']['message']}"
            console.print(Text(_block(error, 8), "red"))
        elif step["kind"] in ("step", "receive", "event") and step["status"] == "completed":
            console.print(Text(_block(render.dumps(step["output"]), 8)))
        elif step["kind"] == "child_wait" and step["status"] == "completed":
            end = render.child_end(view, record)
            if end is None or end.status == "completed":
                console.print(Text(_block(render.dumps(step["output"]), 8)))
            elif end.error_type is not None:
                error = f"{end.error_type}: {end.error_message or ''}"
                console.print(Text(_block(error, 8), "red"))
        if listed:
            _print_attempts(console, step["attempt_history"])
    _print_children(console, data.get("children", []))

    _print_messages(console, data["messages"])
    if data["events"]:
        console.print(Text(f"  events ({len(data['events'])})", "dim"))
        for key, value in data["events"].items():
            console.print(Text(f"    {visible(key)}", "bold"))
            console.print(Text(_block(render.dumps(value), 8)))


def _checkpoint_line(step: dict[str, Any]) -> Text:
    """What a receive, send or event checkpoint waited for or did (its output, the
    message received or the event's value, is printed in full under it)."""
    detail = step["detail"]
    if step["kind"] == "send":
        to = visible(str(detail.get("to")))
        return Text(f"sent {render.quoted(str(detail.get('topic')))} to {to}")
    if step["kind"] == "event":
        return Text(f"event {visible(str(detail.get('key')))}")
    topic = render.quoted(str(detail.get("topic")))
    if step["status"] == "completed":
        return Text(f"received {topic} at {step['completed_at']}")
    deadline = detail.get("deadline")
    until = f"until {deadline}" if deadline is not None else "no deadline"
    return Text(f"waiting for {topic}, {until}, since {step['started_at']}")


def _child_line(view: View, record: StepRecord, step: dict[str, Any]) -> Text:
    """What a child start or a wait for a child did or waits for (the child's output,
    or its error, is printed in full under it)."""
    child = visible(str(step["detail"].get("child")))
    if step["kind"] == "child":
        return Text(f"started child {child} ({visible(str(step['detail'].get('workflow')))})")
    if step["status"] == "completed":
        end = render.child_end(view, record)
        ended = "completed" if end is None else end.status
        return Text(f"child {child} {ended}, at {step['completed_at']}")
    if step["status"] == "timed_out":
        return Text(f"waited for child {child} until {step['detail'].get('deadline')}: timed out")
    deadline = step["detail"].get("deadline")
    until = f"until {deadline}" if deadline is not None else "no deadline"
    return Text(f"waiting for child {child}, {until}, since {step['started_at']}")


def _print_children(console: Console, children: list[dict[str, Any]]) -> None:
    """The children the execution started: id, workflow, status now, and the start
    checkpoint that started each."""
    if not children:
        return
    console.print(Text(f"  children ({len(children)})", "dim"))
    for c in children:
        line = Text(f"    {visible(c['id'])}  ")
        line.append(visible(c["workflow"]), "bold")
        line.append("  ")
        line.append_text(render.status_text(c["status"] or "-"))
        line.append(f"  started by {visible(c['started_by'])}", "dim")
        console.print(line)


def _print_messages(console: Console, messages: list[dict[str, Any]]) -> None:
    """The messages sent to the execution: topic, when, from whom, read by which receive
    (or unread), idempotency key, and the payload in full."""
    if not messages:
        return
    console.print(Text(f"  messages sent to it ({len(messages)})", "dim"))
    for m in messages:
        end = m.get("child_end")
        line = Text("    ")
        if end is not None:  # hydra's own message: a child's end, sent by the child
            line.append(f"end of child {visible(end['child'])}", "bold")
            line.append(f"  sent {m['sent_at']}  ")
        else:
            line.append(render.quoted(m["topic"]), "bold")
            line.append(f"  sent {m['sent_at']} ")
            line.append("from outside" if m["sender"] is None else f"by {visible(m['sender'])}")
            line.append("  ")
        if m["received_by"] is None:
            line.append("unread", "yellow")
        else:
            line.append(f"received by {visible(m['received_by'])} at {m['received_at']}")
        if m["idempotency_key"] is not None:
            line.append(f"  key {render.quoted(m['idempotency_key'])}", "dim")
        console.print(line)
        if end is None:
            console.print(Text(_block(render.dumps(m["payload"]), 8)))
        elif end["error"] is not None:
            error = f"{end['status']}: {end['error']['type']}: {end['error']['message']}"
            console.print(Text(_block(error, 8), "red"))
        else:
            console.print(Text(_block(f"{end['status']}: " + render.dumps(end["output"]), 8)))


def _print_attempts(console: Console, attempts: list[dict[str, Any]]) -> None:
    """Each attempt of a step that took several: number, outcome, start, duration, and
    the full error of a failed one (the step's own error is the last attempt's)."""
    for attempt in attempts:
        line = Text(f"        attempt {attempt['number']}  ")
        line.append_text(render.status_text(attempt["status"]))
        line.append(f"  started {attempt['started_at'] or '-'}")
        if attempt["duration_ms"] is not None:
            line.append(f"  took {render.fmt_duration(attempt['duration_ms'])}")
        console.print(line)
        if attempt["error"] is not None:
            error = f"{attempt['error']['type']}: {attempt['error']['message']}"
            console.print(Text(_block(error, 10), "red"))


def _block(text: str, n: int) -> str:
    """Stored text as an indented block: its lines kept, everything else made visible
    (``\\r``, ``\\x1b``; split on ``\\n`` only, as ``str.splitlines`` would also
    break at ``\\r``, ``\\x1c`` and ``\\u2028`` and so hide them)."""
    lines = visible(text, multiline=True).rstrip("\n").split("\n")
    return "\n".join(" " * n + line for line in lines)


@app.command(
    help=(
        "Cancel an execution that has not ended: it is marked cancelled at once, and a "
        "worker running it stops at its next step (the step in flight finishes, its result "
        "is discarded). Cancelling an execution that already ended changes nothing."
    )
)
def cancel(
    ctx: typer.Context,
    execution_id: IdArgument,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    with connect(ctx, db, ns) as (engine, _):
        execution_id = resolve_execution_id(engine, execution_id)
        if engine.cancel(execution_id):
            output.line("cancelled ", execution_id)
        else:
            status = engine.get_execution(execution_id).status.value
            output.line(execution_id, f" is already {status}: nothing to cancel")


@app.command(
    help=(
        "Re-run a failed or cancelled execution from its checkpoints: completed steps keep "
        "their results, failed steps get a fresh set of attempts, and the execution gets one "
        "more attempt. A worker that runs its workflow picks it up.\n\n"
        "A parked execution (its code no longer matched its history) is resumed at once "
        "instead of at its next try, with no attempt used: after deploying code that "
        "matches its history (a worker still running the old code parks it again)."
    )
)
def retry(
    ctx: typer.Context,
    execution_id: IdArgument,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    with connect(ctx, db, ns) as (engine, _):
        execution_id = resolve_execution_id(engine, execution_id)
        view = load_view(engine, execution_id)
        try:
            engine.retry(execution_id)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        ex = view.execution
        if ex.parked:
            output.line(
                "resuming ",
                execution_id,
                f" ({ex.workflow_name}): parked, now due at once (attempt {ex.attempt}, none used)",
            )
            return
        output.line(
            "retrying ",
            execution_id,
            f" ({view.execution.workflow_name}): pending, attempt {view.execution.attempt + 1}",
        )


@app.command(
    help=(
        "Send a message to an execution: its hydra.receive(ctx, TOPIC) gets it (the oldest "
        "unread first), and an execution waiting in that receive is woken at once. "
        "--data is the payload as JSON (default null). With --key, a message with that "
        "idempotency key already sent to the execution is not sent again (a webhook "
        "delivered twice is received once). Refused, with nothing stored, when the "
        "execution has ended."
    )
)
def send(
    ctx: typer.Context,
    execution_id: IdArgument,
    topic: Annotated[
        str,
        typer.Argument(metavar="TOPIC", help="The topic its receive waits on.", show_default=False),
    ],
    data: Annotated[
        str | None,
        typer.Option("--data", metavar="JSON", help="The payload, as JSON (default: null)."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", metavar="IDEMPOTENCY_KEY", help="Send at most once with this key."),
    ] = None,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    payload = _parse_data(data)  # before touching the database: a typo stores nothing
    with connect(ctx, db, ns) as (engine, _):
        execution_id = resolve_execution_id(engine, execution_id)
        # engine.send says nothing of a repeated key: a message holding it already, read
        # first, is the one the store recognises (nothing else deletes messages).
        earlier = _with_key(engine.list_messages(execution_id), key)
        try:
            engine.send(execution_id, topic, payload, idempotency_key=key)
        except ExecutionFinishedError as exc:
            status = engine.get_execution(execution_id).status.value
            raise CliError(
                f"execution {execution_id} is {status}: nothing was sent (no receive of it "
                "would ever read the message)"
            ) from exc
    if earlier is not None:
        output.line(
            f"already sent: {execution_id} has a message with idempotency key "
            f"{render.quoted(key or '')} (topic {render.quoted(earlier.topic)}, sent "
            f"{render.fmt_time(earlier.sent_at)}): nothing sent"
        )
        return
    with_key = f" (idempotency key {render.quoted(key)})" if key is not None else ""
    output.line(f"sent {render.quoted(topic)} to {execution_id}{with_key}")


def _parse_data(data: str | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError as exc:
        raise CliError(f"malformed --data JSON: {exc} (in {data!r})") from exc


def _with_key(messages: list[Message], key: str | None) -> Message | None:
    if key is None:
        return None
    return next((m for m in messages if m.idempotency_key == key), None)


@app.command(
    help=(
        "Print an execution's stored history as JSON: its row and every checkpoint (bytes "
        "as base64, with a format version). Saved to a file (hydra executions export ID > "
        "history.json) and committed, it lets hydra replay-check --history test new code "
        "against it with no database."
    )
)
def export(
    ctx: typer.Context,
    execution_id: IdArgument,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    with connect(ctx, db, ns) as (engine, _):
        execution_id = resolve_execution_id(engine, execution_id)
        row = engine.store.get_execution(engine.namespace, execution_id)
        if row is None:  # deleted since it was resolved
            raise CliError(f"no execution {execution_id!r} in namespace {engine.namespace!r}")
        document = history_document(row, engine.store.list_steps(execution_id))
    output.raw(json.dumps(document, indent=2) + "\n")


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (a number and a unit) as a timedelta."""
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    if unit not in _AGE_UNITS or not value.isdigit():
        raise CliError(
            f"--older-than takes a number and a unit (s, m, h, d, w), like 30d, not {text!r}"
        )
    return timedelta(seconds=int(value) * _AGE_UNITS[unit])


class FinishedStatus(StrEnum):
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


def _purge_progress(total: int) -> None:
    """A long purge says how far it is, on stderr (every 10,000 deleted)."""
    if total and total % 10_000 == 0:
        typer.echo(f"deleted {total} so far...", err=True)


@app.command(
    help=(
        "Delete finished executions that ended more than --older-than ago (30d, 12h, 90m, "
        "2w), each with everything stored for it: checkpoints, attempts, the messages sent "
        "to it, its events. Never an unfinished execution, nor one with an unfinished "
        "child. Runs in batches, each one transaction. --status (repeatable) limits it to "
        "completed, failed or cancelled ones (default: all three); --dry-run counts "
        "without deleting. A purged execution's idempotency key can be used again."
    )
)
def purge(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option("--older-than", metavar="AGE", help="how long ago they ended: 30d")
    ],
    status: Annotated[
        list[FinishedStatus] | None,
        typer.Option(
            "--status", "-s", metavar="STATUS", help="completed, failed or cancelled; repeatable"
        ),
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", metavar="NAME", help="only this workflow's")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count, delete nothing")] = False,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    age = parse_age(older_than)
    statuses = [s.value for s in status] if status else ["completed", "failed", "cancelled"]
    with connect(ctx, db, ns) as (engine, _):
        count = engine.purge(
            older_than=age,
            statuses=statuses,
            workflow_name=workflow,
            dry_run=dry_run,
            on_batch=_purge_progress,
        )
    what = "would delete" if dry_run else "deleted"
    output.line(
        f"{what} {count} finished execution{'s' if count != 1 else ''} "
        f"({', '.join(statuses)}) that ended more than {older_than} ago"
    )

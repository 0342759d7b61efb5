"""``hydra trace EXECUTION_ID [--json] [--follow]``: an execution's story."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import RenderableType
from rich.live import Live

from hydra import Engine

from . import childview, commands, mailview, output, render
from .db import DEFAULT_NAMESPACE, Database, DbOption, NamespaceOption
from .render import Style, View
from .session import IdArgument, connect, load_view, resolve_execution_id, style_for

FOLLOW_POLL_S = 0.5
EXIT_INTERRUPTED = 130

TRACE_HELP = (
    "Show an execution's story: a header (workflow, status, attempts, times, worker), then "
    "its steps in order with their status, attempts, start and duration, as bars on a common "
    "time axis; sleeps with their wake time, errors with the exception type and message, "
    "and a preview of each step's output (cut to one line). A step that took several "
    "attempts lists each one under it: its start, duration and error. A hydra.receive "
    "shows the topic it waits for and its deadline (or the message it received, or its "
    "timeout), a hydra.send whom it sent to, a hydra.set_event the value; then the messages "
    "sent to the execution (by whom, read by which receive or unread) and its events.\n\n"
    "A hydra.start_child shows the child it started and its status now, a "
    "hydra.wait_child what it waits for (or how the child ended: its output, or its "
    "error), and a section lists the children with the command that traces each; a "
    "child names its parent. Steps that ran at once (hydra.gather) overlap on the time "
    "axis.\n\n"
    "--json prints the same as JSON, untruncated. --follow redraws until the execution is "
    "completed, failed or cancelled (one line per change when not on a terminal; with "
    "--json, waits and prints the final JSON)."
)


def trace(
    ctx: typer.Context,
    execution_id: IdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Refresh until the execution ends.")
    ] = False,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    with connect(ctx, db, ns) as (engine, target):
        # Ages and countdowns on the time base the stored times were written on.
        clock = engine.clock
        execution_id = resolve_execution_id(engine, execution_id)
        view = _load(engine, execution_id)
        console = output.stdout()
        style = style_for(console)
        try:
            if follow and not view.execution.terminal:
                if as_json:
                    while not view.execution.terminal:
                        time.sleep(FOLLOW_POLL_S)
                        view = _load(engine, execution_id)
                elif console.is_terminal:
                    with Live(
                        _trace(view, clock.now_ms(), style, engine.namespace, target),
                        console=console,
                        auto_refresh=False,
                    ) as live:
                        while not view.execution.terminal:
                            time.sleep(FOLLOW_POLL_S)
                            view = _load(engine, execution_id)
                            live.update(
                                _trace(view, clock.now_ms(), style, engine.namespace, target),
                                refresh=True,
                            )
                    return
                else:
                    printer = render.ProgressPrinter()
                    while True:
                        for change in printer.changes(view, clock.now_ms()):
                            console.print(change)
                        if view.execution.terminal:
                            break
                        time.sleep(FOLLOW_POLL_S)
                        view = _load(engine, execution_id)
                    console.print()
        except KeyboardInterrupt:
            raise typer.Exit(EXIT_INTERRUPTED) from None
        if as_json:
            output.raw(render.dumps(render.execution_data(view, clock.now_ms())) + "\n")
        else:
            console.print(_trace(view, clock.now_ms(), style, engine.namespace, target))


def _load(engine: Engine, execution_id: str) -> View:
    """The execution, its messages and events, its parent and its children."""
    return childview.load(engine, mailview.load(engine, load_view(engine, execution_id)))


def _trace(view: View, now_ms: int, style: Style, ns: str, target: Database) -> RenderableType:
    """The trace, its children listed with the commands that trace them (on the same
    database and namespace as this one)."""
    count = sum(1 for s in view.execution.steps if s.kind == "child")
    children = childview.section(
        view,
        style,
        lambda child: commands.trace_command(child, target, ns),
        commands.children_command(view.execution.id, count, target, ns),
    )
    return mailview.trace(view, now_ms, style, children)

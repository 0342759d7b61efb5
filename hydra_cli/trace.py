"""``hydra trace EXECUTION_ID [--json] [--follow]``: an execution's story."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.live import Live

from . import mailview, output, render
from .db import DEFAULT_NAMESPACE, DbOption, NamespaceOption
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
    with connect(ctx, db, ns) as (engine, _):
        # Ages and countdowns on the time base the stored times were written on.
        clock = engine.clock
        execution_id = resolve_execution_id(engine, execution_id)
        view = mailview.load(engine, load_view(engine, execution_id))
        console = output.stdout()
        style = style_for(console)
        try:
            if follow and not view.execution.terminal:
                if as_json:
                    while not view.execution.terminal:
                        time.sleep(FOLLOW_POLL_S)
                        view = mailview.load(engine, load_view(engine, execution_id))
                elif console.is_terminal:
                    with Live(
                        mailview.trace(view, clock.now_ms(), style),
                        console=console,
                        auto_refresh=False,
                    ) as live:
                        while not view.execution.terminal:
                            time.sleep(FOLLOW_POLL_S)
                            view = mailview.load(engine, load_view(engine, execution_id))
                            live.update(mailview.trace(view, clock.now_ms(), style), refresh=True)
                    return
                else:
                    printer = render.ProgressPrinter()
                    while True:
                        for change in printer.changes(view, clock.now_ms()):
                            console.print(change)
                        if view.execution.terminal:
                            break
                        time.sleep(FOLLOW_POLL_S)
                        view = mailview.load(engine, load_view(engine, execution_id))
                    console.print()
        except KeyboardInterrupt:
            raise typer.Exit(EXIT_INTERRUPTED) from None
        if as_json:
            output.raw(render.dumps(render.execution_data(view, clock.now_ms())) + "\n")
        else:
            console.print(mailview.trace(view, clock.now_ms(), style))

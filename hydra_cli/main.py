"""The ``hydra`` command: the root app, global options and the ``main()`` entry point."""

from __future__ import annotations

from typing import Annotated

import typer

import hydra

from . import cron, dev, executions, migrate, output, queues
from .db import DEFAULT_URL, ENV_VAR
from .errors import EXIT_CODES_HELP, CliState, HydraGroup
from .replay_check import REPLAY_CHECK_HELP, replay_check_command
from .trace import TRACE_HELP, trace
from .ui import UI_HELP, ui
from .worker import WORKER_HELP, worker

app = typer.Typer(
    name="hydra",
    cls=HydraGroup,
    help=(
        "Hydra: durable Python workflows on SQLite, PostgreSQL and MySQL/MariaDB.\n\n"
        f"Commands that use a database take --db URL; without it they use ${ENV_VAR}, "
        f"else {DEFAULT_URL} (relative to the current directory)."
    ),
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    # Locals may hold database URLs with passwords.
    pretty_exceptions_show_locals=False,
)
app.add_typer(dev.app)
app.command("trace", help=TRACE_HELP, short_help="Show an execution's steps on a timeline.")(trace)
app.add_typer(executions.app)
app.command("worker", help=WORKER_HELP, short_help="Run a production worker process.")(worker)
app.add_typer(migrate.app)
app.add_typer(cron.app)
app.add_typer(queues.app)
app.command(
    "replay-check",
    help=REPLAY_CHECK_HELP,
    short_help="Check new code against stored executions before deploying it.",
)(replay_check_command)
app.command("ui", help=UI_HELP, short_help="Serve a web page of executions, updating live.")(ui)


def _print_version(value: bool) -> None:
    if value:
        output.line(f"hydra-workflows {hydra.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="HYDRA_DEBUG", help="Show the traceback of an error."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed hydra-workflows version and exit.",
        ),
    ] = False,
) -> None:
    ctx.obj = CliState(debug=debug)


def main() -> None:
    """Console-script entry point (``hydra``)."""
    app(prog_name="hydra")


if __name__ == "__main__":
    main()

"""``hydra migrate``: apply, print or inspect hydra's Alembic migrations."""

from __future__ import annotations

from typing import Annotated

import typer
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from hydra import SQLStore
from hydra.store.migrations import runner

from . import output
from .db import Database, DbOption, database, read_revision
from .errors import CliError

app = typer.Typer(name="migrate")

MIGRATE_HELP = (
    "Bring the database schema to hydra's head revision, printing the revision before and "
    "after.\n\n"
    "Safe to run on every deploy, and from several processes at once. Hydra's tables live "
    "next to your own; its Alembic history is kept in its own table, hydra_alembic_version.\n\n"
    "With --sql, print the DDL instead of applying it. 'hydra migrate status' shows the "
    "current revision without changing anything."
)
MIGRATE_SHORT_HELP = "Apply hydra's schema migrations (or print them as SQL, or show status)."
STATUS_HELP = (
    "Show the database's schema revision, the head revision, and whether a migration is "
    "needed.\n\n"
    "Read-only: a missing SQLite file is not created. Exit code 0 when the schema is at "
    "head, 1 when it is not (no hydra schema, behind, or migrated by a newer hydra): usable "
    "as a deploy check; 2 if the database cannot be reached."
)
#: ``hydra migrate status``'s exit code when the schema is not at this installation's head
EXIT_NOT_AT_HEAD = 1

SqlOption = Annotated[
    bool,
    typer.Option(
        "--sql",
        help=(
            "Print the DDL for the URL's dialect instead of applying it (offline: no "
            "connection is made), e.g. for a DBA to review or run."
        ),
    ),
]


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(runner.config())
    return {rev.revision for rev in script.walk_revisions()}


def check_known(revision: str | None, target: Database) -> None:
    """Refuse a database migrated by a newer hydra-workflows (a revision we do not ship)."""
    if revision is not None and revision not in known_revisions():
        raise CliError(
            f"database {target.display} is at revision {revision}, which this installation "
            f"does not know (its head is {runner.head_revision()}): it was migrated by a newer "
            "hydra-workflows; upgrade hydra-workflows"
        )


def offline_url(target: Database) -> str:
    """Only the dialect matters offline: leave out credentials and host."""
    return URL.create(target.parsed.drivername).render_as_string(hide_password=False)


def label(revision: str | None, head: str) -> str:
    if revision is None:
        return "none"
    return f"{revision} (head)" if revision == head else revision


@app.callback(invoke_without_command=True, help=MIGRATE_HELP, short_help=MIGRATE_SHORT_HELP)
def migrate(ctx: typer.Context, db: DbOption = None, sql: SqlOption = False) -> None:
    """``hydra migrate [--db URL] [--sql]``."""
    if ctx.invoked_subcommand is not None:
        if sql:
            raise typer.BadParameter(
                f"cannot be combined with `{ctx.invoked_subcommand}`", param_hint="'--sql'"
            )
        return
    target = database(ctx, db)
    if sql:
        output.raw(runner.offline_sql(offline_url(target)))
        return
    head = runner.head_revision()
    before = read_revision(target)
    check_known(before, target)
    store = SQLStore(target.url, auto_migrate=True)
    try:
        after = runner.current_revision(store.engine)
    finally:
        store.close()
    if before == after:
        output.line(target.display, " is already at ", (label(after, head), "bold"))
    else:
        output.line(
            "migrated ",
            target.display,
            ": ",
            label(before, head),
            " -> ",
            (label(after, head), "bold green"),
        )


@app.command(help=STATUS_HELP, short_help="Show the schema revision and whether it is at head.")
def status(ctx: typer.Context, db: DbOption = None) -> None:
    """``hydra migrate status [--db URL]``."""
    if db is None and ctx.parent is not None:
        db = ctx.parent.params.get("db")  # hydra migrate --db URL status
    target = database(ctx, db)
    current = read_revision(target)
    head = runner.head_revision()
    source = {"--db": "", "default": " (default)"}.get(target.source, f" (from {target.source})")
    if current == head:
        verdict: output.Part = ("up to date", "bold green")
    elif current is None:
        verdict = ("no hydra schema: run `hydra migrate`", "bold yellow")
    elif current in known_revisions():
        verdict = ("behind head: run `hydra migrate`", "bold yellow")
    else:
        verdict = ("ahead of this installation: upgrade hydra-workflows", "bold red")
    output.line("database  ", target.display, source)
    output.line("current   ", current or "none")
    output.line("head      ", head)
    output.line("status    ", verdict)
    if current != head:
        raise typer.Exit(EXIT_NOT_AT_HEAD)

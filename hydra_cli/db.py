"""Which database a command uses, and read-only probes of it.

Precedence: the ``--db URL`` option, else ``$HYDRA_DATABASE_URL``, else the embedded default
``sqlite:///.hydra/hydra.db`` (relative to the current directory). Commands that use a
database take ``db: DbOption = None`` and call ``database(ctx, db)``.

URLs are shown only through ``Database.display`` (``redact``: password replaced by ``***``);
the raw URL is used only to connect, and its password is registered with the error boundary
so it is scrubbed from error messages and tracebacks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, NoSuchModuleError
from sqlalchemy.pool import NullPool

from hydra.store.migrations.runner import current_revision, head_revision
from hydra.store.sql import SQLStore
from hydra.store.sql.urls import normalize, redact
from hydra.workflow import validate_name

from .errors import CliError, one_line, state

ENV_VAR = "HYDRA_DATABASE_URL"
DEFAULT_URL = "sqlite:///.hydra/hydra.db"
SUPPORTED_BACKENDS = ("sqlite", "postgresql", "mysql", "mariadb")
URL_FORMS = (
    "sqlite:///path.db, postgresql+psycopg://user:password@host/dbname "
    "or mysql+pymysql://user:password@host/dbname"
)
DRIVER_HINTS = {
    "postgresql": "pip install 'hydra-workflows[postgres]' for postgresql+psycopg://",
    "mysql": "pip install 'hydra-workflows[mysql]' for mysql+pymysql://",
    "mariadb": "pip install 'hydra-workflows[mysql]' for mariadb+pymysql://",
}

DB_HELP = (
    f"Database URL, e.g. {URL_FORMS}. "
    f"If not given: ${ENV_VAR}, else {DEFAULT_URL} (relative to the current directory)."
)

DbOption = Annotated[
    str | None,
    typer.Option("--db", metavar="URL", help=DB_HELP, show_default=False),
]

NAMESPACE_ENV_VAR = "HYDRA_NAMESPACE"
DEFAULT_NAMESPACE = "default"
NamespaceOption = Annotated[
    str,
    typer.Option(
        "--namespace",
        "-n",
        metavar="NS",
        envvar=NAMESPACE_ENV_VAR,
        help=(
            "The namespace the executions live in (Engine(namespace=...)). "
            f"If not given: ${NAMESPACE_ENV_VAR}, else {DEFAULT_NAMESPACE!r}."
        ),
        show_default=False,
    ),
]


def namespace(value: str) -> str:
    """A valid namespace name, or ``CliError``."""
    try:
        return validate_name(value, "namespace")
    except ValueError as exc:
        raise CliError(str(exc)) from exc


@dataclass(frozen=True)
class Database:
    url: str  # as given, password included: only for connecting, never for printing
    parsed: URL
    source: str  # "--db", "$HYDRA_DATABASE_URL" or "default"

    @property
    def display(self) -> str:
        """The URL with its password replaced by ``***``: the only form to print."""
        return redact(self.parsed)

    @property
    def backend(self) -> str:
        return self.parsed.get_backend_name()

    @property
    def sqlite_path(self) -> Path | None:
        if self.backend != "sqlite" or self.parsed.database is None:
            return None
        return Path(self.parsed.database).expanduser()


def resolve_url(db: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``(url, source)`` by precedence: ``--db``, ``$HYDRA_DATABASE_URL``, the default."""
    if db:
        return db, "--db"
    env = os.environ if environ is None else environ
    from_env = env.get(ENV_VAR, "").strip()
    if from_env:
        return from_env, f"${ENV_VAR}"
    return DEFAULT_URL, "default"


def parse(url: str, source: str = "--db") -> Database:
    """Validate ``url`` without connecting; ``CliError`` if hydra cannot use it."""
    try:
        # postgres://, postgresql:// and mysql:// use the drivers hydra installs.
        parsed = normalize(url)
    except Exception as exc:
        # The boundary scrubs user:password@ from the message.
        raise CliError(f"malformed database URL {url!r} (from {source}): use {URL_FORMS}") from exc
    database = Database(url=url, parsed=parsed, source=source)
    backend = database.backend
    if backend not in SUPPORTED_BACKENDS:
        raise CliError(
            f"unsupported database {backend!r} in {database.display}: "
            "hydra supports sqlite, postgresql and mysql/mariadb"
        )
    try:
        parsed.get_dialect()
    except NoSuchModuleError as exc:
        raise CliError(
            f"unknown driver {parsed.drivername!r} in {database.display}: use {URL_FORMS}"
        ) from exc
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise CliError(
            f"{database.display} is not a SQLite file: hydra needs sqlite:///path.db "
            "(an in-memory database vanishes when the command exits)"
        )
    return database


def database(ctx: typer.Context, db: str | None) -> Database:
    """The database a command uses (see the module docstring for the precedence)."""
    url, source = resolve_url(db)
    cli_state = state(ctx)
    # If unparseable, ``parse`` reports it and the boundary scrubs user:password@ anyway.
    with contextlib.suppress(Exception):
        cli_state.hide(make_url(url).password)
    return parse(url, source)


def open_engine(database: Database) -> Engine:
    """A pool-less engine for short probes; ``CliError`` if the driver is missing."""
    try:
        return create_engine(database.parsed, poolclass=NullPool)
    except ModuleNotFoundError as exc:
        hint = DRIVER_HINTS.get(database.backend)
        raise CliError(
            f"no driver for {database.display}: Python module {exc.name!r} is not installed"
            + (f" ({hint})" if hint else "")
        ) from exc


def read_revision(database: Database) -> str | None:
    """The schema revision hydra's migrations left in the database (None: no hydra schema).

    Read-only: a SQLite file that does not exist yet is reported as None, not created.
    """
    path = database.sqlite_path
    if path is not None and not path.exists():
        return None
    engine = open_engine(database)
    try:
        try:
            with engine.connect():
                pass
        except DBAPIError as exc:
            reason = one_line(str(exc.orig) if exc.orig is not None else str(exc))
            raise CliError(f"cannot connect to database {database.display}: {reason}") from exc
        return current_revision(engine)
    finally:
        engine.dispose()


def open_store(database: Database, *, create: bool) -> SQLStore:
    """A ``SQLStore`` on ``database``.

    ``create``: a SQLite file is created and migrated if needed (``hydra dev run``).
    Otherwise nothing is created: a missing SQLite file is an error rather than an empty
    database, and a database without hydra's schema fails with ``SchemaNotReadyError``.
    """
    path = database.sqlite_path
    if not create and path is not None and not path.exists():
        raise CliError(
            f"no hydra database at {database.display}: nothing has run there yet "
            "(start something with `hydra dev run FILE`, or pass --db URL)"
        )
    if not (create and database.backend == "sqlite"):
        # Checked here rather than left to SQLStore, whose failed constructor would leave
        # its pool's connection open.
        current = read_revision(database)
        head = head_revision()
        if current != head:
            state = "has no hydra schema" if current is None else f"is at revision {current}"
            raise CliError(
                f"database {database.display} {state}, hydra needs {head}: "
                "run `hydra migrate --db URL`"
            )
    try:
        return SQLStore(database.url, auto_migrate=None if create else False)
    except ModuleNotFoundError as exc:  # a driver imported lazily on first connect
        hint = DRIVER_HINTS.get(database.backend)
        raise CliError(
            f"no driver for {database.display}: Python module {exc.name!r} is not installed"
            + (f" ({hint})" if hint else "")
        ) from exc

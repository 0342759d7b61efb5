"""Opening an engine for a command, and reading executions with helpful errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from sqlalchemy import select

from hydra import Engine, ExecutionNotFoundError
from hydra.store.sql import SQLStore
from hydra.store.sql.schema import executions

from .db import Database, database, namespace, open_store
from .errors import CliError
from .render import Style, View


@contextmanager
def connect(
    ctx: typer.Context, db: str | None, ns: str, *, create: bool = False
) -> Iterator[tuple[Engine, Database]]:
    """An engine on the command's database and namespace; the store is closed after."""
    target = database(ctx, db)
    store = open_store(target, create=create)
    try:
        yield Engine(store, namespace=namespace(ns)), target
    finally:
        store.close()


def other_namespaces(store: SQLStore, execution_id: str | None = None) -> list[str]:
    """Namespaces holding that execution (or any execution): for "did you mean" hints."""
    query = select(executions.c.namespace).distinct()
    if execution_id is not None:
        query = query.where(executions.c.id == execution_id)
    with store.engine.connect() as conn:
        return sorted(str(ns) for ns in conn.execute(query.limit(20)).scalars())


def load_view(engine: Engine, execution_id: str) -> View:
    """The execution (with steps) and its row; ``CliError`` naming the namespace it is in
    if it is not in this one."""
    try:
        execution = engine.get_execution(execution_id)
    except ExecutionNotFoundError as exc:
        message = str(exc)
        if isinstance(engine.store, SQLStore):
            elsewhere = other_namespaces(engine.store, execution_id)
            if elsewhere:
                message += f"; it is in namespace {elsewhere[0]!r}: add --namespace {elsewhere[0]}"
        raise CliError(message) from exc
    row = engine.store.get_execution(engine.namespace, execution_id)
    return View(execution, row)


def style_for(console: Console) -> Style:
    encoding = (console.encoding or "").lower().replace("-", "")
    return Style(unicode=encoding.startswith("utf"), width=console.width)

"""Opening an engine for a command, and reading executions with helpful errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console

from hydra import Engine, ExecutionNotFoundError
from hydra.store.base import Store

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


#: the fewest characters of an id the commands look up as a prefix (dev run prints 8)
MIN_ID_PREFIX = 6
#: the EXECUTION_ID argument of every command that takes one (see resolve_execution_id)
IdArgument = Annotated[
    str,
    typer.Argument(
        metavar="EXECUTION_ID",
        help=f"An execution's id, or its first characters (at least {MIN_ID_PREFIX}) "
        "when they start no other id.",
        show_default=False,
    ),
]
#: how many of the executions an ambiguous prefix matches the error names
SHOWN_MATCHES = 5
# How many matches are read to count them (an index range: cheap whatever the table).
_MATCH_LIMIT = 100
# How many namespaces a hint reads (it names them all).
_NAMESPACE_LIMIT = 20


def other_namespaces(
    store: Store, execution_id: str | None = None, *, as_prefix: bool = False
) -> list[str]:
    """Namespaces holding that execution (``as_prefix``: one whose id starts with
    ``execution_id``), or any execution: for "did you mean" hints."""
    if execution_id is None:
        return sorted(store.list_namespaces(limit=_NAMESPACE_LIMIT))
    found = store.list_namespaces(id_prefix=execution_id, limit=_MATCH_LIMIT)
    if not as_prefix:
        # Those hold ids starting with it: keep the ones holding exactly this id.
        found = [ns for ns in found if store.get_execution(ns, execution_id) is not None]
    return sorted(found)


def not_found(engine: Engine, execution_id: str, *, as_prefix: bool = False) -> CliError:
    """The error for an id (``as_prefix``: an id prefix) with no execution in the engine's
    namespace, naming the namespace it is in if it is in another one."""
    message = f"no execution {execution_id!r} in namespace {engine.namespace!r}"
    if not as_prefix and len(execution_id) < MIN_ID_PREFIX:
        message += f" (an id prefix needs at least {MIN_ID_PREFIX} characters)"
    elsewhere = other_namespaces(engine.store, execution_id, as_prefix=as_prefix)
    if elsewhere:
        message += f"; it is in namespace {elsewhere[0]!r}: add --namespace {elsewhere[0]}"
    return CliError(message)


def resolve_execution_id(engine: Engine, given: str) -> str:
    """The id of the execution ``given`` names in the engine's namespace: every command
    that takes an EXECUTION_ID calls this first.

    ``given`` is an execution's whole id, or the start of exactly one id in the
    namespace, at least ``MIN_ID_PREFIX`` characters long (compared exactly: letter case
    counts, as in ids). ``CliError`` when no execution matches, or when several do (it
    names them).
    """
    if engine.store.get_execution(engine.namespace, given) is not None:
        return given  # a whole id: also when it is the prefix of longer ones
    if len(given) < MIN_ID_PREFIX:
        raise not_found(engine, given)
    matches = engine.store.find_execution_ids(engine.namespace, given, limit=_MATCH_LIMIT)
    if not matches:
        raise not_found(engine, given, as_prefix=True)
    if len(matches) == 1:
        return matches[0]
    raise CliError(f"id prefix {given!r} is ambiguous: {_describe_matches(engine, matches)}")


def _describe_matches(engine: Engine, matches: list[str]) -> str:
    shown = ", ".join(matches[:SHOWN_MATCHES])
    more = len(matches) - SHOWN_MATCHES
    at_least = "at least " if len(matches) >= _MATCH_LIMIT else ""
    if more > 0:
        shown += f" and {at_least}{more} more"
    return (
        f"{at_least}{len(matches)} executions in namespace {engine.namespace!r} start with "
        f"it ({shown}): give more of the id"
    )


def load_view(engine: Engine, execution_id: str) -> View:
    """The execution (with steps); ``CliError`` naming the namespace it is in if it is not
    in this one."""
    try:
        execution = engine.get_execution(execution_id)
    except ExecutionNotFoundError as exc:
        raise not_found(engine, execution_id) from exc
    return View(execution)


def style_for(console: Console) -> Style:
    encoding = (console.encoding or "").lower().replace("-", "")
    return Style(unicode=encoding.startswith("utf"), width=console.width)

"""``hydra ui``: the web UI (``hydra.ui``) on a database and namespace."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from . import output
from .db import DEFAULT_NAMESPACE, DbOption, NamespaceOption, database, namespace, open_store
from .errors import CliError

PASSWORD_ENV = "HYDRA_UI_PASSWORD"
USER_ENV = "HYDRA_UI_USER"
DEFAULT_USER = "hydra"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8077
MISSING_EXTRA = "the web UI needs the [ui] extra: pip install 'hydra-workflows[ui]'"

UI_HELP = (
    "Serve a web page of the namespace's executions: the list (filter by status, "
    "workflow, queue and time; search by id prefix or idempotency key), each execution's "
    "story (what hydra trace shows: steps on a time axis with every attempt and its error, "
    "sleeps, waits, messages, events, children, input and output in full), cron jobs, "
    "queues and the workers seen running executions. Pages update live.\n\n"
    "It binds to 127.0.0.1 (this machine only). With --host on another address, every "
    f"request must give HTTP basic auth: the password from ${PASSWORD_ENV} (required "
    f"then), the user from ${USER_ENV} (default {DEFAULT_USER!r}).\n\n"
    "--allow-actions adds cancel, retry and send-a-message buttons, each confirmed on a "
    "second page; without it the page only shows.\n\n"
    "Needs the \\[ui] extra: pip install 'hydra-workflows\\[ui]'."
)


def basic_auth(host: str, is_loopback: bool) -> tuple[str, str] | None:
    """The credentials to require: none on a loopback address unless a password is set;
    elsewhere the password is required (``CliError`` without it)."""
    password = os.environ.get(PASSWORD_ENV) or None
    if password is None:
        if is_loopback:
            return None
        raise CliError(
            f"--host {host} is reachable from other machines: set ${PASSWORD_ENV} (and "
            f"${USER_ENV}, default {DEFAULT_USER!r}) to require HTTP basic auth, or bind "
            "to 127.0.0.1"
        )
    return os.environ.get(USER_ENV) or DEFAULT_USER, password


def ui(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="The address to listen on.")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="The port.")] = DEFAULT_PORT,
    allow_actions: Annotated[
        bool,
        typer.Option("--allow-actions", help="Offer cancel, retry and send (each confirmed)."),
    ] = False,
    ns: NamespaceOption = DEFAULT_NAMESPACE,
    db: DbOption = None,
) -> None:
    try:
        from hydra.ui import create_app
        from hydra.ui.serve import bind, is_loopback, serve, url_of
    except ImportError as exc:
        raise CliError(f"{MISSING_EXTRA} ({exc})") from exc
    credentials = basic_auth(host, is_loopback(host))
    target = database(ctx, db)
    ns = namespace(ns)
    store = open_store(target, create=False)
    try:
        try:
            sock = bind(host, port)
        except (OSError, OverflowError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise CliError(f"cannot listen on {host}:{port}: {why}") from exc
        app = create_app(store, ns, allow_actions=allow_actions, basic_auth=credentials)
        actions = "actions on" if allow_actions else "read only (--allow-actions to act)"
        auth = f", basic auth as {credentials[0]!r}" if credentials else ""
        output.line(
            f"hydra ui: {url_of(sock)}  ({target.display}, namespace {ns}, {actions}{auth}); "
            "Ctrl-C stops it"
        )
        serve(app, sock)
    finally:
        store.close()

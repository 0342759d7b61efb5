"""The web UI as a Starlette app: ``create_app(store, namespace)``.

Pages are rendered on the server (Jinja2, autoescape on); ``static/hydra-ui.js`` (a few
lines, no build step) refreshes the parts of a page marked ``data-refresh`` by fetching
their fragment every second, or on PostgreSQL as soon as a LISTEN hears a start or an
end (a long poll: ``changes.py``). Links are built from the request's ``root_path``, so the app
works mounted under a prefix of the user's own ASGI app (``app.mount("/hydra", ...)``).

Actions (cancel, retry, send a message) exist only with ``allow_actions=True``; without
it their endpoints answer 403 and the pages show no buttons. Each one is confirmed (the
first POST shows what will happen; the form there does it) and checked against
cross-site requests: the form carries a token made for this process, and a request whose
``Origin`` (or ``Referer``) names another host is refused.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from hydra import Engine, ExecutionFinishedError, ExecutionNotFoundError
from hydra.store.base import Store
from hydra_cli import render
from hydra_cli.visible import visible

from . import pages
from .changes import Changes

HERE = Path(__file__).parent
#: how often the page's script fetches a fragment again (milliseconds)
REFRESH_MS = 1000


def create_app(
    store: Store,
    namespace: str = "default",
    *,
    allow_actions: bool = False,
    basic_auth: tuple[str, str] | None = None,
    engine: Engine | None = None,
) -> Starlette:
    """The web UI of ``namespace`` on ``store``, as an ASGI app.

    ``allow_actions``: show and accept cancel, retry and send (each confirmed).
    ``basic_auth``: ``(user, password)`` every request must present (HTTP basic auth).
    ``engine``: an engine to act and read through instead of a new one on ``store``
    (``hydra dev run --ui`` passes its own, whose clock may be virtual).
    """
    engine = engine if engine is not None else Engine(store, namespace=namespace)
    ui = _UI(engine, allow_actions)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # PostgreSQL: LISTEN while the app runs, so pages update at once (changes.py).
        ui.changes = await run_in_threadpool(Changes.open, store, engine.namespace)
        try:
            yield
        finally:
            if ui.changes is not None:
                await run_in_threadpool(ui.changes.close)
                ui.changes = None

    routes = [
        Route("/", ui.executions),
        Route("/fragments/executions", ui.executions_fragment),
        Route("/executions/{id}", ui.execution),
        Route("/fragments/executions/{id}", ui.execution_fragment),
        Route("/executions/{id}/{action:str}", ui.action, methods=["POST"]),
        Route("/cron", ui.cron),
        Route("/queues", ui.queues),
        Route("/workers", ui.workers),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    if basic_auth is not None:
        app.add_middleware(BasicAuth, user=basic_auth[0], password=basic_auth[1])
    return app


class BasicAuth:
    """HTTP basic auth on every request (compared in constant time)."""

    def __init__(self, app: ASGIApp, *, user: str, password: str) -> None:
        self.app = app
        self.expected = f"{user}:{password}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        response = Response(
            "authentication required",
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="hydra"'},
        )
        await response(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:6].lower() == b"basic ":
                try:
                    given = base64.b64decode(value[6:].strip(), validate=True)
                except (binascii.Error, ValueError):
                    return False
                return secrets.compare_digest(given, self.expected)
        return False


Handler = Callable[[Request], Awaitable[Response]]


class _UI:
    def __init__(self, engine: Engine, allow_actions: bool) -> None:
        self.engine = engine
        self.allow_actions = allow_actions
        #: the namespace's notifications while the app runs (PostgreSQL), else None
        self.changes: Changes | None = None
        #: the token every action form carries: made per process, so a page from another
        #: site cannot know it
        self.token = secrets.token_urlsafe(24)
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["visible"] = visible

    # -- rendering ------------------------------------------------------------------------

    def _render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        template = self.env.get_template(name)
        html = template.render(
            base=base,
            namespace=visible(self.engine.namespace),
            allow_actions=self.allow_actions,
            token=self.token,
            refresh_ms=REFRESH_MS,
            fmt_time=render.fmt_time,
            urlencode=urlencode,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    # -- executions -----------------------------------------------------------------------

    async def executions(self, request: Request) -> Response:
        return await self._list(request, "executions.html")

    async def executions_fragment(self, request: Request) -> Response:
        version = await self._wait_for_change(request)
        return _versioned(await self._list(request, "executions_table.html"), version)

    async def _list(self, request: Request, template: str) -> Response:
        query = pages.ListQuery.parse(dict(request.query_params))
        page = await run_in_threadpool(pages.list_page, self.engine, query)
        return self._render(
            request, template, query=query, page=page, statuses=pages.STATUSES, since=pages.SINCE
        )

    async def execution(self, request: Request) -> Response:
        return await self._execution(request, "execution.html")

    async def execution_fragment(self, request: Request) -> Response:
        version = await self._wait_for_change(request)
        return _versioned(await self._execution(request, "execution_body.html"), version)

    async def _wait_for_change(self, request: Request) -> int | None:
        """With notifications, a fragment request naming the count it saw (``after``)
        waits for the next one (at most LONG_POLL_S); the count to send back."""
        changes = self.changes
        if changes is None:
            return None
        after = request.query_params.get("after")
        if after is None or not after.isdigit():
            return changes.version
        return await run_in_threadpool(changes.wait, int(after))

    async def _execution(self, request: Request, template: str) -> Response:
        execution_id = request.path_params["id"]
        try:
            page = await run_in_threadpool(pages.execution_page, self.engine, execution_id)
        except ExecutionNotFoundError:
            return self._render(
                request,
                "message.html",
                404,
                title="not found",
                message=f"no execution {execution_id!r} in namespace {self.engine.namespace!r}",
            )
        return self._render(
            request,
            template,
            page=page,
            messages=pages.messages(page),
            events=pages.events(page),
            children=pages.children(page),
        )

    # -- actions --------------------------------------------------------------------------

    async def action(self, request: Request) -> Response:
        if not self.allow_actions:
            return self._render(
                request,
                "message.html",
                403,
                title="actions are off",
                message="this UI was started without --allow-actions: it only shows",
            )
        action = request.path_params["action"]
        if action not in ("cancel", "retry", "send"):
            return self._render(request, "message.html", 404, title="no such action", message="")
        # The forms are urlencoded (HTML's default): parsed here, so that Starlette's form
        # parsing (and the python-multipart it needs) is not a dependency.
        body = (await request.body()).decode("utf-8", "replace")
        fields = dict(parse_qsl(body, keep_blank_values=True))
        if not _same_origin(request) or not secrets.compare_digest(
            fields.get("token", ""), self.token
        ):
            return self._render(
                request,
                "message.html",
                403,
                title="refused",
                message="the request did not come from this UI's own page (cross-site)",
            )
        execution_id = request.path_params["id"]
        base = request.scope.get("root_path", "").rstrip("/")
        back = f"{base}/executions/{execution_id}"
        if fields.get("confirm") != "yes":
            return self._render(
                request,
                "confirm.html",
                action=action,
                execution_id=execution_id,
                fields=fields,
                back=back,
            )
        try:
            done = await run_in_threadpool(self._do, action, execution_id, fields)
        except (ValueError, ExecutionNotFoundError, ExecutionFinishedError) as exc:
            return self._render(
                request, "message.html", 409, title=f"{action} refused", message=str(exc)
            )
        return RedirectResponse(f"{back}?{urlencode({'done': done})}", status_code=303)

    def _do(self, action: str, execution_id: str, fields: dict[str, str]) -> str:
        engine = self.engine
        if action == "cancel":
            if engine.cancel(execution_id):
                return "cancelled"
            return "already ended: nothing to cancel"
        if action == "retry":
            engine.retry(execution_id)
            return "retrying"
        topic = fields.get("topic", "")
        if not topic:
            raise ValueError("a message needs a topic")
        try:
            payload = json.loads(fields.get("data") or "null")
        except json.JSONDecodeError as exc:
            raise ValueError(f"the payload is not JSON: {exc}") from exc
        key = fields.get("key") or None
        engine.send(execution_id, topic, payload, idempotency_key=key)
        return f"sent {render.quoted(topic)}"

    # -- cron, queues, workers ------------------------------------------------------------

    async def cron(self, request: Request) -> Response:
        jobs = await run_in_threadpool(pages.cron_jobs, self.engine)
        return self._render(request, "cron.html", jobs=jobs)

    async def queues(self, request: Request) -> Response:
        rows = await run_in_threadpool(pages.queue_rows, self.engine)
        return self._render(request, "queues.html", queues=rows)

    async def workers(self, request: Request) -> Response:
        rows = await run_in_threadpool(pages.workers, self.engine)
        return self._render(request, "workers.html", workers=rows)


def _versioned(response: Response, version: int | None) -> Response:
    """Tell the page's script the notification count (it then long-polls with it)."""
    if version is not None:
        response.headers["X-Hydra-Changes"] = str(version)
    return response


def _same_origin(request: Request) -> bool:
    """False when the request says it comes from a page of another host (its Origin, or
    without one its Referer); a request naming neither (curl) is let through: the form
    token still has to match."""
    host = request.headers.get("host", "")
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value:
            return urlsplit(value).netloc == host
    return True

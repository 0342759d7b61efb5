"""The web UI served for real (uvicorn on a free port of 127.0.0.1, over a SQLite store
with a worker running a few workflows), and a headless Chromium driving it.

The browser is Debian's ``chromium`` at ``/usr/bin/chromium`` (``.ci/run`` and
``scripts/bootstrap.sh`` install it when they can), launched by Playwright for Python
with ``executable_path``: Playwright's own browser downloads are never used. Without
that file the browser tests are skipped, saying why.

Each browser test writes a screenshot of its page to ``build/screenshots/`` (not
committed). ``HYDRA_UPDATE_SCREENSHOTS=1`` also rewrites the two in ``docs/images/``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import hydra
from hydra.store.sql import SQLStore

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "build" / "screenshots"
DOC_IMAGES = REPO / "docs" / "images"
UPDATE_DOC_IMAGES = os.environ.get("HYDRA_UPDATE_SCREENSHOTS") == "1"

pytest.importorskip("starlette", reason="the [ui] extra is not installed")
pytest.importorskip("uvicorn", reason="the [ui] extra is not installed")

from hydra.ui import create_app  # noqa: E402
from hydra.ui.serve import BackgroundServer  # noqa: E402


@dataclass
class Flows:
    """What the test workflows do, steered by the tests."""

    #: ``flaky``'s "charge" step fails while this is set
    failing: threading.Event = field(default_factory=threading.Event)
    #: ``slow``'s "wait-for-go" step blocks until this is set
    go: threading.Event = field(default_factory=threading.Event)


def workflows(flows: Flows) -> list[hydra.Workflow[Any]]:
    @hydra.workflow("order")
    def order(ctx: hydra.WorkflowContext, n: int) -> dict[str, Any]:
        total = hydra.step(ctx, "price", lambda: n * 10)
        hydra.sleep(ctx, timedelta(milliseconds=20))
        hydra.step(ctx, "ship", lambda: f"parcel {n}")
        return {"order": n, "total": total}

    @hydra.workflow("flaky")
    def flaky(ctx: hydra.WorkflowContext, n: int) -> str:
        def charge() -> str:
            if flows.failing.is_set():
                raise RuntimeError("card declined \x1b[31m<script>alert(1)</script>")
            return "charged"

        policy = hydra.RetryPolicy(max_attempts=2, initial_backoff=timedelta(milliseconds=10))
        return hydra.step(ctx, "charge", charge, retry=policy)

    @hydra.workflow("slow")
    def slow(ctx: hydra.WorkflowContext, n: int) -> str:
        hydra.step(ctx, "first", lambda: "one")

        def wait_for_go() -> str:
            if not flows.go.wait(timeout=30):
                raise RuntimeError("the test never let it go")
            return "went"

        return hydra.step(ctx, "wait-for-go", wait_for_go)

    return [order, flaky, slow]


@dataclass
class Setup:
    engine: hydra.Engine
    flows: Flows
    serve: Callable[..., str]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """A SQLite store, a worker running the test workflows, and ``serve(**options)``
    that starts the UI on it and returns its URL."""
    store = SQLStore(f"sqlite:///{tmp_path / 'ui.db'}")
    engine = hydra.Engine(store)
    flows = Flows()
    worker = hydra.Worker(engine, worker_id="ui-test-worker", poll_interval=0.02)
    for wf in workflows(flows):
        worker.register(wf)
    servers: list[BackgroundServer] = []

    def serve(**options: Any) -> str:
        server = BackgroundServer(create_app(store, "default", **options)).start()
        servers.append(server)
        return server.url

    worker.start()
    try:
        yield Setup(engine, flows, serve)
    finally:
        flows.go.set()
        worker.shutdown(timeout=10)
        for server in servers:
            server.stop()
        store.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # as root in a container Chromium needs --no-sandbox; /dev/shm may be small
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; its screenshot goes to build/screenshots/<test>.png at the end."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    try:
        yield opened
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()


def doc_image(page: Any, name: str) -> None:
    """With ``HYDRA_UPDATE_SCREENSHOTS=1``: the page as ``docs/images/<name>``."""
    if UPDATE_DOC_IMAGES:
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOC_IMAGES / name), full_page=True)

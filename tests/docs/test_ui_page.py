"""docs/ui.md: its block mounts the UI under /hydra of another app, and the page served
there (with its links under /hydra) lists the executions."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

import hydra
from tests.docs import pages

pytest.importorskip("starlette", reason="the [ui] extra is not installed")

from hydra.ui.serve import BackgroundServer


def test_the_mounting_block_serves_the_ui_under_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [block] = pages.blocks(pages.text("ui.md"))
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(compile(block, "docs/ui.md", "exec"), scope)
    store: hydra.SQLStore = scope["store"]
    try:
        eid = hydra.Engine(store, namespace="production").start_workflow("greet", "ada")
        with (
            BackgroundServer(scope["app"]) as server,
            urllib.request.urlopen(server.url + "hydra/", timeout=10) as response,
        ):
            body = response.read().decode()
        assert f'href="/hydra/executions/{eid}"' in body
        assert "namespace <b>production</b>" in body
        assert "act-retry" not in body
    finally:
        store.close()


def test_the_page_shows_the_screenshots_the_tests_take() -> None:
    text = pages.text("ui.md")
    for name in ("ui-executions.png", "ui-execution.png"):
        assert f"(images/{name})" in text
        assert (pages.DOCS / "images" / name).exists()

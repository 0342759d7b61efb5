"""Live pages on PostgreSQL: a fragment request that names the notifications it has seen
waits for the next one (a start, an end) and answers with it (hydra/ui/changes.py)."""

from __future__ import annotations

import threading
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hydra
import hydra.ui.changes as changes
from hydra.store.sql import SQLStore
from hydra.ui import create_app
from hydra.ui.serve import BackgroundServer


def get(url: str) -> tuple[dict[str, str], str]:
    with urllib.request.urlopen(url, timeout=90) as response:
        return {k.lower(): v for k, v in response.headers.items()}, response.read().decode()


def test_a_fragment_request_waits_for_a_start_and_answers_with_it(
    sql_store_factory: Callable[[], SQLStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sql_store_factory()
    if not store.supports_notify:
        pytest.skip("LISTEN/NOTIFY: PostgreSQL only (elsewhere the page polls every second)")
    monkeypatch.setattr(changes, "LONG_POLL_S", 60.0)  # only a notification ends the wait
    ns = f"live-{uuid.uuid4().hex[:10]}"
    engine = hydra.Engine(store, namespace=ns)
    with BackgroundServer(create_app(store, ns)) as server:
        headers, _ = get(f"{server.url}fragments/executions")
        seen = int(headers["x-hydra-changes"])
        answer: dict[str, Any] = {}
        waiting = threading.Thread(
            target=lambda: answer.update(r=get(f"{server.url}fragments/executions?after={seen}"))
        )
        waiting.start()
        eid = engine.start_workflow("live-one", 1)
        waiting.join(90)
        assert not waiting.is_alive(), "the request was woken by the start's notification"
        headers, body = answer["r"]
        assert int(headers["x-hydra-changes"]) > seen
        assert eid[:8] in body


def test_without_notifications_fragments_carry_no_count(tmp_path: Path) -> None:
    store = hydra.SQLStore(f"sqlite:///{tmp_path}/ui.db")
    try:
        with BackgroundServer(create_app(store)) as server:
            headers, _ = get(f"{server.url}fragments/executions?after=3")
            assert "x-hydra-changes" not in headers
    finally:
        store.close()

"""``hydra trace EXECUTION_ID [--json] [--follow]``."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import hydra
from hydra_cli import errors, output

from .helpers import (
    UNREACHABLE_PG,
    assert_one_error_line,
    engine_on,
    hydra_cli,
    sqlite_url,
)

LONG = {"items": [f"item-{i}" for i in range(50)], "note": "x" * 200}


@hydra.workflow("story")
def story(ctx: hydra.WorkflowContext, req: str) -> Any:
    data = hydra.step(ctx, "fetch", lambda: LONG)
    hydra.step(ctx, "count", lambda: len(data["items"]))
    if req == "fail":

        def fail() -> None:
            raise hydra.NonRetryableError("[bold red]the ledger is locked")

        hydra.step(ctx, "[bold red]x", fail)
    if req == "sleep":
        hydra.sleep(ctx, timedelta(hours=48), name="cool-off")
    return "done"


GATE = threading.Event()


@hydra.workflow("gated")
def gated(ctx: hydra.WorkflowContext, req: None) -> str:
    hydra.step(ctx, "before", lambda: "ok")
    hydra.step(ctx, "wait-for-gate", lambda: GATE.wait(10))
    return hydra.step(ctx, "after", lambda: "through")


def run_until_resting(url: str, *inputs: str, namespace: str = "default") -> list[str]:
    """Start ``story`` once per input and run a worker until each is terminal or asleep."""
    with engine_on(url, namespace) as engine:
        ids = [engine.start_workflow("story", i, max_attempts=1) for i in inputs]
        with hydra.Worker(engine, poll_interval=0.01) as worker:
            worker.register(story)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                states = [engine.get_execution(eid).status for eid in ids]
                if all(s in ("completed", "failed", "sleeping") for s in states):
                    break
                time.sleep(0.01)
    return ids


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "trace.db")


def test_completed_execution(url: str) -> None:
    (eid,) = run_until_resting(url, "ok")
    result = hydra_cli("trace", eid, "--db", url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    lines = out.splitlines()
    assert lines[0] == "story  completed"
    assert f"  execution  {eid}  (namespace default)" in lines
    assert "  attempts   1 of 1" in lines
    for label in ("created", "started", "completed", "worker", "output"):
        assert any(line.startswith(f"  {label} ") for line in lines), label
    assert '  output     "done"' in lines
    header = next(line for line in lines if line.strip().startswith("step"))
    assert "status" in header and "tries" in header and "took" in header and "0 ─" in header
    fetch = next(line for line in lines if "✔ fetch" in line)
    count = next(line for line in lines if "✔ count" in line)
    assert "completed  1" in fetch and "█" in fetch and "█" in count
    assert lines.index(fetch) < lines.index(count)  # in step order
    preview = lines[lines.index(fetch) + 1]
    assert preview.strip().startswith('→ {"items": ["item-0", "item-1"')
    assert preview.endswith("…") and len(preview) < 100  # a truncated preview
    assert lines[lines.index(count) + 1].strip() == "→ 50"


def test_failed_execution_shows_the_error_literally(url: str) -> None:
    (eid,) = run_until_resting(url, "fail")
    result = hydra_cli("trace", eid, "--db", url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("story  failed\n")
    assert "  error      StepFailedError: step '[bold red]x' failed after 1 attempt(s)" in out
    assert "✘ [bold red]x" in out
    assert "      NonRetryableError: [bold red]the ledger is locked\n" in out


def test_sleeping_execution_shows_the_wake_time(url: str) -> None:
    (eid,) = run_until_resting(url, "sleep")
    result = hydra_cli("trace", eid, "--db", url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("story  sleeping\n")
    assert "  now        until " in out
    sleep_line = next(line for line in out.splitlines() if "cool-off" in line)
    assert "☾ cool-off" in sleep_line and "sleeping" in sleep_line
    assert "48h 00m" in sleep_line and "░" in sleep_line
    assert "(in 47h 59m)" in out  # the wake time, relative to now


def test_json_has_the_same_story_untruncated(url: str) -> None:
    completed, failed, sleeping = run_until_resting(url, "ok", "fail", "sleep")
    data = json.loads(hydra_cli("trace", completed, "--json", "--db", url).stdout)
    assert data["id"] == completed
    assert data["workflow"] == "story" and data["status"] == "completed"
    assert data["attempt"] == 1 and data["max_attempts"] == 1
    assert data["duration_ms"] >= 0 and data["created_at"].endswith("Z")
    assert data["output"] == "done" and data["input"] == "ok" and data["error"] is None
    fetch, count = data["steps"]
    assert fetch["name"] == "fetch" and fetch["output"] == LONG  # untruncated
    assert fetch["kind"] == "step" and fetch["attempts"] == 1 and fetch["duration_ms"] >= 0
    assert count["offset_ms"] >= fetch["offset_ms"]

    data = json.loads(hydra_cli("trace", failed, "--json", "--db", url).stdout)
    assert data["error"]["type"] == "StepFailedError"
    assert data["steps"][-1]["error"] == {
        "type": "NonRetryableError",
        "message": "[bold red]the ledger is locked",
    }

    data = json.loads(hydra_cli("trace", sleeping, "--json", "--db", url).stdout)
    nap = data["steps"][-1]
    assert nap["kind"] == "sleep" and nap["status"] == "sleeping"
    assert nap["duration_ms"] == 48 * 3600 * 1000
    assert nap["wake_at"] == data["sleep_until"]


def test_follow_prints_changes_until_the_execution_ends(url: str) -> None:
    GATE.clear()
    with engine_on(url) as engine:
        eid = engine.start_workflow("gated")
        with hydra.Worker(engine, poll_interval=0.01) as worker:
            worker.register(gated)
            while not engine.get_execution(eid).steps:
                time.sleep(0.01)
            opener = threading.Timer(0.7, GATE.set)
            opener.start()
            result = hydra_cli("trace", eid, "--follow", "--db", url)
            opener.join()
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "gated  step before completed (attempt 1" in out
    assert "gated  step after completed (attempt 1" in out
    assert "gated  completed  took" in out
    assert out.index("step before completed") < out.index("step after completed")
    assert "\ngated  completed\n" in out  # then the whole trace


def test_follow_on_a_terminal_screen_redraws_in_place(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    GATE.clear()
    console = Console(record=True, force_terminal=True, width=100)
    monkeypatch.setattr(output, "stdout", lambda: console)
    with engine_on(url) as engine:
        eid = engine.start_workflow("gated")
        with hydra.Worker(engine, poll_interval=0.01) as worker:
            worker.register(gated)
            opener = threading.Timer(0.7, GATE.set)
            opener.start()
            result = hydra_cli("trace", eid, "-f", "--db", url)
            opener.join()
    assert result.exit_code == 0, result.output
    text = console.export_text()
    last = text[text.rindex("gated  ") :]
    assert last.startswith("gated  completed")
    assert "✔ after" in last


def test_follow_json_waits_for_the_end(url: str) -> None:
    GATE.clear()
    with engine_on(url) as engine:
        eid = engine.start_workflow("gated")
        with hydra.Worker(engine, poll_interval=0.01) as worker:
            worker.register(gated)
            opener = threading.Timer(0.3, GATE.set)
            opener.start()
            result = hydra_cli("trace", eid, "--follow", "--json", "--db", url)
            opener.join()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "completed"


def test_pending_execution(url: str) -> None:
    with engine_on(url) as engine:
        eid = engine.start_workflow("nobody-runs-this")
    out = hydra_cli("trace", eid, "--db", url).stdout
    assert out.startswith("nobody-runs-this  pending\n")
    assert "waiting" in out and "for a worker that runs nobody-runs-this" in out
    assert "no steps yet (no worker has started it)" in out


# -- errors -----------------------------------------------------------------------------


def test_unknown_execution(url: str) -> None:
    run_until_resting(url, "ok")
    result = hydra_cli("trace", "[bold]nope", "--db", url)
    assert_one_error_line(result, contains="no execution '[bold]nope' in namespace 'default'")


def test_execution_in_another_namespace(url: str) -> None:
    (eid,) = run_until_resting(url, "ok", namespace="examples")
    result = hydra_cli("trace", eid, "--db", url)
    assert_one_error_line(
        result, contains="it is in namespace 'examples': add --namespace examples"
    )
    assert hydra_cli("trace", eid, "-n", "examples", "--db", url).exit_code == 0


def test_missing_database_is_not_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = hydra_cli("trace", "abc")
    assert_one_error_line(result, contains="no hydra database at sqlite:///.hydra/hydra.db")
    assert list(tmp_path.iterdir()) == []


def test_uninitialised_database(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "other.db"
    sqlite3.connect(path).close()  # an empty SQLite file: some other program's
    result = hydra_cli("trace", "abc", "--db", sqlite_url(path))
    assert_one_error_line(result, contains="has no hydra schema")
    assert "hydra migrate" in result.stderr


def test_unreachable_database() -> None:
    result = hydra_cli("trace", "abc", "--db", UNREACHABLE_PG)
    line = assert_one_error_line(result, contains="cannot connect to database")
    assert "secret" not in line


def test_debug_shows_the_traceback(url: str) -> None:
    run_until_resting(url, "ok")
    result = hydra_cli("--debug", "trace", "nope", "--db", url)
    assert result.exit_code == errors.EXIT_ERROR
    assert "Traceback (most recent call last)" in result.stderr
    assert "in resolve_execution_id" in result.stderr  # where the id was looked up

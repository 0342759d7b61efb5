"""``hydra executions list|show|cancel|retry``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import hydra

from .helpers import UNREACHABLE_PG, assert_one_error_line, engine_on, hydra_cli, sqlite_url

FLAKY = {"fail": True}


@hydra.workflow("ledger")
def ledger(ctx: hydra.WorkflowContext, req: str) -> str:
    def post() -> str:
        if FLAKY["fail"]:
            raise hydra.NonRetryableError("[red]ledger closed")
        return f"posted {req}"

    hydra.step(ctx, "prepare", lambda: req.upper())
    return hydra.step(ctx, "post", post)


def run_all(url: str, ids: list[str]) -> None:
    with engine_on(url) as engine, hydra.Worker(engine, poll_interval=0.01) as worker:
        worker.register(ledger)
        for eid in ids:
            engine.wait(eid, timeout=20)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "ex.db")


@pytest.fixture
def three(url: str) -> dict[str, str]:
    """A failed and a completed ``ledger`` execution, and a pending one nobody runs."""
    with engine_on(url) as engine:
        failed = engine.start_workflow("ledger", "a", max_attempts=1)
        FLAKY["fail"] = True
        run_all(url, [failed])
        FLAKY["fail"] = False
        completed = engine.start_workflow("ledger", "b")
        run_all(url, [completed])
        pending = engine.start_workflow("[bold]unregistered", {"x": 1})
    return {"failed": failed, "completed": completed, "pending": pending}


def test_list_newest_first_with_what_each_is_doing(url: str, three: dict[str, str]) -> None:
    time.sleep(0.01)
    result = hydra_cli("executions", "list", "--db", url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "workflow", "status", "attempt", "created", "note"]
    assert [line.split()[0] for line in lines[1:]] == [
        three["pending"],
        three["completed"],
        three["failed"],
    ]
    pending, completed, failed = lines[1:]
    assert "[bold]unregistered" in pending and "pending" in pending
    assert "waiting" in pending and "for a worker that runs [bold]unregistered" in pending
    assert "completed  1/3" in completed and "took" in completed
    assert "failed     1/1" in failed
    assert "StepFailedError: step 'post' failed after 1 attempt(s): NonRetryableError: " in failed
    assert "[red]ledger closed" in failed
    # Every column starts under its header, the note included (issue 10).
    header = lines[0]
    for column, cell in (("created", "2"), ("note", "took")):
        assert completed.index(cell, header.index(column) - 1) == header.index(column), column
    assert completed[header.index("note") - 2 : header.index("note")] == "  "


def test_list_filters(url: str, three: dict[str, str]) -> None:
    out = hydra_cli("executions", "list", "--status", "failed", "--db", url).stdout
    assert three["failed"] in out and three["completed"] not in out
    out = hydra_cli("executions", "list", "-w", "ledger", "--limit", "1", "--db", url).stdout
    assert three["completed"] in out and three["failed"] not in out
    assert three["pending"] not in out
    out = hydra_cli("executions", "list", "--status", "running", "--db", url).stdout
    assert out == "no executions in namespace 'default' matching the filters\n"


def test_list_json(url: str, three: dict[str, str]) -> None:
    data = json.loads(hydra_cli("executions", "list", "--json", "--db", url).stdout)
    assert [d["id"] for d in data] == [three["pending"], three["completed"], three["failed"]]
    assert data[0]["status"] == "pending" and data[0]["input"] == {"x": 1}
    assert data[2]["error"]["type"] == "StepFailedError"
    assert "steps" not in data[0]


def test_list_bad_status_is_a_usage_error(url: str) -> None:
    result = hydra_cli("executions", "list", "--status", "asleep", "--db", url)
    assert result.exit_code == 2
    assert "asleep" in result.output
    limit = hydra_cli("executions", "list", "--limit", "0", "--db", url)
    assert limit.exit_code == 2


def test_empty_namespace_names_the_others(url: str, three: dict[str, str]) -> None:
    out = hydra_cli("executions", "list", "--namespace", "prod", "--db", url).stdout
    assert out == (
        "no executions in namespace 'prod' (namespaces with executions: default; "
        "use --namespace NS)\n"
    )


def test_show(url: str, three: dict[str, str]) -> None:
    result = hydra_cli("executions", "show", three["failed"], "--db", url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("ledger  failed\n")
    assert '  input\n    "a"\n' in out
    assert "  steps (2)\n" in out
    assert "     0. prepare  completed  attempts 1" in out
    assert '        "A"\n' in out  # the full output
    assert "     1. post  failed  attempts 1" in out
    assert "        NonRetryableError: [red]ledger closed\n" in out

    data = json.loads(
        hydra_cli("executions", "show", three["failed"], "--json", "--db", url).stdout
    )
    traced = json.loads(hydra_cli("trace", three["failed"], "--json", "--db", url).stdout)
    assert data == traced  # the same data as hydra trace --json


def test_cancel(url: str, three: dict[str, str]) -> None:
    result = hydra_cli("executions", "cancel", three["pending"], "--db", url)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"cancelled {three['pending']}\n"
    again = hydra_cli("executions", "cancel", three["pending"], "--db", url)
    assert again.exit_code == 0
    assert again.stdout == f"{three['pending']} is already cancelled: nothing to cancel\n"
    with engine_on(url) as engine:
        assert engine.get_execution(three["pending"]).status == "cancelled"


def test_retry_runs_a_failed_execution_again_from_its_checkpoints(
    url: str, three: dict[str, str]
) -> None:
    result = hydra_cli("executions", "retry", three["failed"], "--db", url)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"retrying {three['failed']} (ledger): pending, attempt 2\n"
    FLAKY["fail"] = False
    run_all(url, [three["failed"]])
    with engine_on(url) as engine:
        ex = engine.get_execution(three["failed"])
    assert ex.status == "completed" and ex.output == "posted a"
    assert [(s.name, s.attempts) for s in ex.steps] == [("prepare", 1), ("post", 1)]


def test_retry_of_a_completed_execution_is_refused(url: str, three: dict[str, str]) -> None:
    result = hydra_cli("executions", "retry", three["completed"], "--db", url)
    assert_one_error_line(
        result, contains="is completed: only failed, cancelled or parked executions"
    )


@pytest.mark.parametrize("command", ["show", "cancel", "retry"])
def test_unknown_id(url: str, three: dict[str, str], command: str) -> None:
    result = hydra_cli("executions", command, "nope", "--db", url)
    assert_one_error_line(result, contains="no execution 'nope' in namespace 'default'")


@pytest.mark.parametrize("args", [["list"], ["show", "x"], ["cancel", "x"], ["retry", "x"]])
def test_database_errors(args: list[str], tmp_path: Path) -> None:
    unreachable = hydra_cli("executions", *args, "--db", UNREACHABLE_PG)
    assert "secret" not in assert_one_error_line(unreachable, contains="cannot connect")
    missing = hydra_cli("executions", *args, "--db", sqlite_url(tmp_path / "none.db"))
    assert_one_error_line(missing, contains="no hydra database at")
    assert not (tmp_path / "none.db").exists()


def test_executions_without_a_subcommand_shows_help() -> None:
    result = hydra_cli("executions")
    assert "list" in result.output and "retry" in result.output


def test_real_servers(sql_store_factory: Any) -> None:
    """The commands on every SQL backend (PostgreSQL and MySQL when configured; each test
    session has its own database there, shared with other tests: keep to a namespace)."""
    url = sql_store_factory.url
    ns = ["--namespace", "cli-executions", "--db", url]
    assert hydra_cli("migrate", "--db", url).exit_code == 0
    with engine_on(url, "cli-executions") as engine:
        eid = engine.start_workflow("server-side", "x")
    out = hydra_cli("executions", "list", *ns).stdout
    assert eid in out and "waiting" in out
    assert hydra_cli("trace", eid, *ns).stdout.startswith("server-side  pending\n")
    assert hydra_cli("executions", "cancel", eid, *ns).stdout == f"cancelled {eid}\n"
    assert hydra_cli("executions", "retry", eid, *ns).exit_code == 0
    data = json.loads(hydra_cli("executions", "show", eid, "--json", *ns).stdout)
    assert data["status"] == "pending" and data["attempt"] == 1
    missing = hydra_cli("trace", "nope", *ns)
    assert_one_error_line(missing, contains="no execution 'nope' in namespace 'cli-executions'")

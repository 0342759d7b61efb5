"""``hydra queues list``, and the queue fields of ``executions list|show`` (issue 15)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

import hydra
from hydra.store.queues import QueueStats
from hydra.store.sql.schema import queues as queues_table
from hydra.testing import FakeClock, TestEnvironment
from hydra_cli import queues as queues_cli

from .helpers import UNREACHABLE_PG, assert_one_error_line, engine_on, hydra_cli, sqlite_url

EMAILS = hydra.Queue(
    "emails",
    concurrency=2,
    worker_concurrency=4,
    key_concurrency=1,
    rate_limit=hydra.RateLimit(100, per=timedelta(minutes=1)),
)


@hydra.workflow("send-email")
def send_email(ctx: hydra.WorkflowContext, to: str) -> str:
    return hydra.step(ctx, "send", lambda: f"sent to {to}")


def fill(engine: hydra.Engine) -> dict[str, str]:
    """In ``emails``: two running (claimed by worker w1, holding both slots), two due and
    waiting (no slot is free), one due in an hour; in ``default``: one due; ``idle``
    registered and empty. Returns the ids by role (``waiting``: a due one not claimed)."""
    engine.register_queue(EMAILS)
    engine.register_queue(hydra.Queue("idle"))
    ids = {
        "urgent": engine.start_workflow(
            "send-email", "a@x", queue="emails", priority=10, concurrency_key="acme"
        ),
        "b": engine.start_workflow("send-email", "b@x", queue="emails", concurrency_key="b"),
        "c": engine.start_workflow("send-email", "c@x", queue="emails"),
        "d": engine.start_workflow("send-email", "d@x", queue="emails"),
        "later": engine.start_workflow(
            "send-email", "e@x", queue="emails", run_at=engine.clock.now() + timedelta(hours=1)
        ),
        "default": engine.start_workflow("report", None),
    }
    claims = engine.store.claim(
        engine.namespace,
        ["send-email"],
        "w1",
        now_ms=engine.clock.now_ms(),
        lease_ms=600_000,
        limit=10,
    )
    # The concurrency of 2 let two of the four due ones in: the urgent one first, then
    # one of the three started in the same millisecond (in id order).
    assert len(claims) == 2 and claims[0].execution.id == ids["urgent"]
    running = claims[1].execution.id
    ids["waiting"] = next(ids[k] for k in "cd" if ids[k] != running)  # no key
    return ids


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "queues.db")


def rows_of(stdout: str) -> dict[str, list[str]]:
    """The table's rows by queue name, split on the two spaces between columns."""
    lines = stdout.splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    assert header == ["queue", "limits", "backlog", "oldest", "scheduled", "running", "slots"]
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", ln.strip()) for ln in lines[1:])}


def test_list_shows_each_queue_with_its_limits_and_what_is_in_it(url: str) -> None:
    with engine_on(url) as engine:
        fill(engine)

    result = hydra_cli("queues", "list", "--db", url)
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert list(rows) == ["default", "emails", "idle"]
    limits = "concurrency 2, per worker 4, per key 1, rate 100/min"
    name, shown_limits, backlog, oldest, scheduled, running, slots = rows["emails"]
    assert (name, shown_limits, backlog, scheduled, running, slots) == (
        "emails", limits, "2", "1", "2", "2/2"
    )  # fmt: skip
    assert re.fullmatch(r"\d+ ms|\d+\.\d s", oldest), oldest  # due since the start
    assert rows["default"][1:3] == ["no limits (default)", "1"]
    assert rows["default"][4:] == ["0", "0", "-"]
    assert rows["idle"] == ["idle", "no limits", "0", "-", "0", "0", "-"]
    # Every column starts under its header.
    header, *lines = result.stdout.splitlines()
    for line in lines:
        for column in ("backlog", "scheduled", "slots"):
            start = header.index(column)
            assert line[start - 2 : start] == "  " and line[start] != " ", (column, line)


def test_list_json(url: str) -> None:
    with engine_on(url) as engine:
        fill(engine)

    result = hydra_cli("queues", "list", "--json", "--db", url)
    assert result.exit_code == 0, result.output
    data = {q["name"]: q for q in json.loads(result.stdout)}
    emails = data["emails"]
    assert {k: v for k, v in emails.items() if k not in ("oldest_due_at", "oldest_age_ms")} == {
        "name": "emails",
        "registered": True,
        "limits": "concurrency 2, per worker 4, per key 1, rate 100/min",
        "concurrency": 2,
        "worker_concurrency": 4,
        "key_concurrency": 1,
        "rate_limit": {"limit": 100, "per_ms": 60_000},
        "backlog": 2,
        "scheduled": 1,
        "running": 2,
        "slots_held": 2,
    }
    assert emails["oldest_due_at"].endswith("Z") and emails["oldest_age_ms"] >= 0
    assert (data["default"]["registered"], data["default"]["limits"]) == (
        False,
        "no limits (default)",
    )
    assert data["idle"]["oldest_due_at"] is None and data["idle"]["oldest_age_ms"] is None


def test_the_oldest_due_execution_s_age(tmp_path: Path) -> None:
    """The age is the CLI's now less the oldest due time: written 10 minutes ago by a
    clock set back (the CLI reads the real one)."""
    url = sqlite_url(tmp_path / "old.db")
    start = datetime.now(UTC) - timedelta(minutes=10)
    env = TestEnvironment(store=hydra.SQLStore(url), namespace="ops", clock=FakeClock(start))
    env.engine.register_queue(hydra.Queue("emails", concurrency=1))
    env.start("send-email", "a@x", queue="emails")
    env.advance(timedelta(minutes=3))
    env.start("send-email", "b@x", queue="emails")  # younger: not the oldest
    env.store.close()

    (row,) = rows_of(hydra_cli("queues", "list", "--db", url, "-n", "ops").stdout).values()
    assert row[2] == "2"
    assert re.fullmatch(r"(10|11)m \d\ds", row[3]), row[3]


def test_the_table_from_stats_on_the_fake_clock() -> None:
    """The rows as drawn, on a fake clock: the oldest age in minutes and seconds, an
    unregistered queue's limits, the slots held out of the concurrency."""
    env = TestEnvironment()
    env.engine.register_queue(hydra.Queue("emails", concurrency=3, key_concurrency=1))
    env.start("send-email", "a@x", queue="emails")
    env.start("send-email", "b@x", run_at=env.clock.now() + timedelta(hours=1))
    env.advance(timedelta(minutes=3, seconds=12))  # no worker runs send-email: still due
    stats = env.store.queue_stats(env.engine.namespace, now_ms=env.clock.now_ms())
    gone = [replace_config(s) for s in stats if s.name == "emails"]
    rows = [queues_cli.queue_data(s, env.clock.now_ms()) for s in [*stats, *gone]]
    rows[-1]["name"] = "legacy"

    assert [line.plain for line in queues_cli.table(rows)] == [
        "queue    limits                           backlog  oldest  scheduled  running  slots",
        "default  no limits (default)              0        -       1          0        -",
        "emails   concurrency 3, per key 1         1        3m 12s  0          0        0/3",
        "legacy   not registered: no limits apply  1        3m 12s  0          0        -",
    ]


def replace_config(stats: QueueStats) -> QueueStats:
    """``stats`` as for a queue whose registration is gone."""
    return replace(stats, config=None)


def test_a_queue_whose_registration_is_gone_says_so(url: str) -> None:
    with engine_on(url) as engine:
        engine.register_queue(hydra.Queue("legacy", concurrency=1))
        engine.start_workflow("send-email", "a@x", queue="legacy")
        assert isinstance(engine.store, hydra.SQLStore)
        with engine.store.engine.begin() as conn:  # as if the row were lost: the claim ignores it
            conn.execute(delete(queues_table).where(queues_table.c.name == "legacy"))
    rows = rows_of(hydra_cli("queues", "list", "--db", url).stdout)
    assert rows["legacy"][1:3] == ["not registered: no limits apply", "1"]


def test_names_are_printed_literally(url: str) -> None:
    with engine_on(url) as engine:
        engine.register_queue(hydra.Queue("[bold red]q\u202e", concurrency=1))
    out = hydra_cli("queues", "list", "--db", url).stdout
    assert "[bold red]q\\u202e  concurrency 1" in out  # a right-to-left override, shown
    assert "\u202e" not in out


def test_an_empty_namespace_names_the_others(url: str) -> None:
    with engine_on(url) as engine:
        engine.start_workflow("report", None)
    result = hydra_cli("queues", "list", "--db", url, "--namespace", "prod")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "no queues in namespace 'prod' (none registered, no execution unfinished); "
        "namespaces with executions: default (use --namespace NS)\n"
    )
    data = hydra_cli("queues", "list", "--db", url, "-n", "prod", "--json").stdout
    assert json.loads(data) == []


def test_database_errors(tmp_path: Path) -> None:
    unreachable = hydra_cli("queues", "list", "--db", UNREACHABLE_PG)
    assert "secret" not in assert_one_error_line(unreachable, contains="cannot connect")
    missing = hydra_cli("queues", "list", "--db", sqlite_url(tmp_path / "none.db"))
    assert_one_error_line(missing, contains="no hydra database at")
    assert not (tmp_path / "none.db").exists()


def test_queues_without_a_subcommand_shows_help() -> None:
    result = hydra_cli("queues")
    assert "list" in result.output


def test_real_servers(sql_store_factory: Any, tmp_path: Path) -> None:
    """On every SQL backend (PostgreSQL and MySQL when configured; each test session has
    its own database there, shared with other tests: keep to a namespace)."""
    url = sql_store_factory.url
    ns = ["--namespace", "cli-queues", "--db", url]
    assert hydra_cli("migrate", "--db", url).exit_code == 0
    with engine_on(url, "cli-queues") as engine:
        ids = fill(engine)
    rows = rows_of(hydra_cli("queues", "list", *ns).stdout)
    assert [rows["emails"][i] for i in (2, 4, 5, 6)] == ["2", "1", "2", "2/2"]
    data = json.loads(hydra_cli("executions", "show", ids["urgent"], "--json", *ns).stdout)
    assert (data["queue"], data["priority"], data["concurrency_key"]) == ("emails", 10, "acme")
    # Cancelling a running one frees its slot at once.
    assert hydra_cli("executions", "cancel", ids["urgent"], *ns).exit_code == 0
    rows = rows_of(hydra_cli("queues", "list", *ns).stdout)
    assert [rows["emails"][i] for i in (2, 5, 6)] == ["2", "1", "1/2"]


# -- executions list and show ---------------------------------------------------------


def test_executions_list_has_queue_columns_only_when_one_is_listed(url: str) -> None:
    with engine_on(url) as engine:
        plain = engine.start_workflow("report", None)
    before = hydra_cli("executions", "list", "--db", url).stdout.splitlines()
    assert before[0].split() == ["id", "workflow", "status", "attempt", "created", "note"]

    with engine_on(url) as engine:
        ids = fill(engine)
    lines = hydra_cli("executions", "list", "--db", url, "--limit", "50").stdout.splitlines()
    assert lines[0].split() == [
        "id", "workflow", "queue", "priority", "status", "attempt", "created", "note",
    ]  # fmt: skip
    by_id = {line.split()[0]: line for line in lines[1:]}
    assert by_id[ids["urgent"]].split()[1:5] == ["send-email", "emails", "10", "running"]
    assert by_id[plain].split()[1:5] == ["report", "default", "0", "pending"]
    waiting = by_id[ids["waiting"]]
    assert waiting.split()[1:5] == ["send-email", "emails", "0", "pending"]
    assert "for a worker that runs send-email and room in queue 'emails'" in waiting
    assert by_id[plain].endswith("for a worker that runs report")
    # Every column starts under its header.
    for column in ("queue", "priority", "status"):
        start = lines[0].index(column)
        assert by_id[ids["urgent"]][start - 2 : start] == "  ", column


def test_executions_show_names_the_queue_when_not_the_default(url: str) -> None:
    with engine_on(url) as engine:
        ids = fill(engine)
        low = engine.start_workflow("report", None, priority=-5)
    out = hydra_cli("executions", "show", ids["urgent"], "--db", url).stdout
    assert "  queue      emails  (priority 10, concurrency key 'acme')\n" in out
    out = hydra_cli("executions", "show", ids["waiting"], "--db", url).stdout
    assert "  queue      emails\n" in out
    out = hydra_cli("trace", low, "--db", url).stdout
    assert "  queue      default  (priority -5)\n" in out
    out = hydra_cli("executions", "show", ids["default"], "--db", url).stdout
    assert "queue" not in out

    data = json.loads(hydra_cli("executions", "show", ids["default"], "--json", "--db", url).stdout)
    assert (data["queue"], data["priority"], data["concurrency_key"]) == ("default", 0, None)
    listed = json.loads(hydra_cli("executions", "list", "--json", "--db", url).stdout)
    assert {d["id"]: d["queue"] for d in listed}[ids["later"]] == "emails"

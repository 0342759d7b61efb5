"""``hydra replay-check TARGET`` and ``hydra executions export ID`` (issue 14)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import hydra
from hydra.testing import FakeClock, TestEnvironment
from tests.deploys.test_live_detection import CODE, VIOLATIONS, order, v1

from .helpers import assert_one_error_line, hydra_cli, sqlite_url, write

# A workflow file as a user would deploy it: "order", running one of the fixtures' codes.
APP = """
import hydra
from tests.deploys.test_live_detection import {code}


@hydra.workflow("order")
def order(ctx, _: None):
    return {code}(ctx)
"""


def sleeping_order(url: str, namespace: str = "default", count: int = 1) -> str:
    """Executions of the fixtures' "order" (v1) asleep in their "nap", stored at ``url``
    (the id of the last one)."""
    store = hydra.SQLStore(url, auto_migrate=True)
    try:
        env = TestEnvironment(
            store=store, namespace=namespace, clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
        )
        CODE["now"] = v1
        env.register(order)
        eids = [env.start(order, None) for _ in range(count)]
        env.run_until_idle()
        eid = eids[-1]
        assert env.execution(eid).status == "sleeping"
        return eid
    finally:
        store.close()


def app_file(tmp_path: Path, code: str) -> str:
    return str(write(tmp_path / f"app_{code}.py", APP.format(code=code)))


def stored(url: str, eid: str) -> tuple[Any, ...]:
    store = hydra.SQLStore(url)
    try:
        row = store.get_execution("default", eid)
        return row, store.list_steps(eid), store.list_step_attempts(eid)
    finally:
        store.close()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "hydra.db")


@pytest.mark.parametrize("kind", sorted(VIOLATIONS))
def test_each_mismatch_is_one_line_and_exit_code_1(tmp_path: Path, db: str, kind: str) -> None:
    changed, expected = VIOLATIONS[kind]
    eid = sleeping_order(db)
    before = stored(db, eid)
    result = hydra_cli("replay-check", app_file(tmp_path, changed.__name__), "--db", db)
    assert result.exit_code == 1, result.output
    violation, summary = result.stdout.splitlines()
    assert violation.startswith(f"order {eid}: execution {eid} no longer matches its code")
    for part in expected:
        assert part in violation
    assert summary == "failed: 1 execution checked, 1 violation"
    assert stored(db, eid) == before


@pytest.mark.parametrize("code", ["v1", "appended"])
def test_matching_code_exits_0(tmp_path: Path, db: str, code: str) -> None:
    sleeping_order(db, count=2)
    result = hydra_cli("replay-check", app_file(tmp_path, code), "--db", db)
    assert (result.exit_code, result.stdout) == (0, "ok: 2 executions checked, 0 violations\n")


def test_finished_executions_with_all_and_json(tmp_path: Path, db: str) -> None:
    eid = sleeping_order(db)
    store = hydra.SQLStore(db)
    try:
        hydra.Engine(store).cancel(eid)
    finally:
        store.close()
    renamed = app_file(tmp_path, "renamed")
    assert hydra_cli("replay-check", renamed, "--db", db).exit_code == 0
    result = hydra_cli("replay-check", renamed, "--db", db, "--all", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["ok"], report["checked"]) == (False, 1)
    (violation,) = report["violations"]
    assert (violation["execution_id"], violation["status"], violation["position"]) == (
        eid, "cancelled", 1,
    )  # fmt: skip


def test_an_exported_history_checks_as_the_database_does(tmp_path: Path, db: str) -> None:
    eid = sleeping_order(db)
    exported = hydra_cli("executions", "export", eid[:8], "--db", db)
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.stdout)
    assert (document["format"], document["version"]) == ("hydra-execution-history", 1)
    assert document["execution"]["id"] == eid
    assert [s["name"] for s in document["steps"]] == ["reserve", "charge", "nap"]
    history = write(tmp_path / "history.json", exported.stdout)
    for code in ("v1", "renamed", "inserted", "raising"):
        target = app_file(tmp_path, code)
        from_db = hydra_cli("replay-check", target, "--db", db, "--json")
        from_file = hydra_cli("replay-check", target, "--history", str(history), "--json")
        assert from_file.exit_code == from_db.exit_code
        assert json.loads(from_file.stdout) == json.loads(from_db.stdout)


def test_histories_need_no_database(
    tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    eid = sleeping_order(db)
    history = write(tmp_path / "h.json", hydra_cli("executions", "export", eid, "--db", db).stdout)
    monkeypatch.setenv("HYDRA_DATABASE_URL", "postgresql+psycopg://u:secret@127.0.0.1:1/db")
    result = hydra_cli("replay-check", app_file(tmp_path, "removed"), "--history", str(history))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "failed: 1 execution checked, 1 violation"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of the current directory (``MODULE:ATTR``), named uniquely."""
    monkeypatch.chdir(tmp_path)
    name = f"deploy_{uuid.uuid4().hex[:8]}"
    yield name


def test_module_attr_names_a_worker(tmp_path: Path, db: str, in_tmp: str) -> None:
    sleeping_order(db)
    write(
        tmp_path / f"{in_tmp}.py",
        APP.format(code="reordered")
        + "\n\ndef make_worker():\n"
        + f"    worker = hydra.Worker(hydra.Engine(hydra.SQLStore({db!r})))\n"
        + "    worker.register(order)\n    return worker\n",
    )
    result = hydra_cli("replay-check", f"{in_tmp}:make_worker", "--db", db)
    assert result.exit_code == 1, result.output
    assert "the history has step 'reserve'" in result.stdout


def test_other_workflows_are_skipped(tmp_path: Path, db: str) -> None:
    sleeping_order(db)
    other = write(
        tmp_path / "other.py",
        "import hydra\n\n@hydra.workflow('other')\ndef other(ctx, _: None):\n    return 1\n",
    )
    result = hydra_cli("replay-check", str(other), "--db", db)
    assert result.exit_code == 0
    assert result.stdout == (
        "ok: 0 executions checked, 0 violations, 1 skipped (no code given for workflow 'order')\n"
    )


def test_usage_errors_exit_2(tmp_path: Path, db: str) -> None:
    target = app_file(tmp_path, "v1")
    sleeping_order(db)
    assert_one_error_line(
        hydra_cli("replay-check", target, "--history", "h.json", "--db", db), contains="no --db"
    )
    assert_one_error_line(
        hydra_cli("replay-check", target, "--history", str(tmp_path / "missing.json")),
        contains="cannot read",
    )
    junk = write(tmp_path / "junk.json", '{"format": "something else"}')
    assert_one_error_line(
        hydra_cli("replay-check", target, "--history", str(junk)),
        contains="not an exported hydra execution history",
    )
    newer = write(tmp_path / "newer.json", '{"format": "hydra-execution-history", "version": 9}')
    assert_one_error_line(
        hydra_cli("replay-check", target, "--history", str(newer)), contains="version 9"
    )
    assert_one_error_line(hydra_cli("replay-check", "nosuch.py", "--db", db), contains="no such")
    assert_one_error_line(
        hydra_cli("replay-check", target, "--db", sqlite_url(tmp_path / "none.db")),
        contains="no hydra database",
    )


SERVERS = {
    "postgres": os.environ.get("HYDRA_TEST_POSTGRES_URL"),
    "mysql": os.environ.get("HYDRA_TEST_MYSQL_URL"),
}


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_on_a_database_server(tmp_path: Path, server: str) -> None:
    url = SERVERS[server]
    if not url:
        pytest.skip(f"no {server} URL (HYDRA_TEST_{server.upper()}_URL)")
    ns = f"replay-{uuid.uuid4().hex[:12]}"
    eid = sleeping_order(url, ns)
    result = hydra_cli("replay-check", app_file(tmp_path, "renamed"), "--db", url, "-n", ns)
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0].startswith(f"order {eid}: ")
    clean = hydra_cli("replay-check", app_file(tmp_path, "v1"), "--db", url, "-n", ns)
    assert (clean.exit_code, clean.stdout) == (0, "ok: 1 execution checked, 0 violations\n")

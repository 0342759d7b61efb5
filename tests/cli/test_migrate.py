"""``hydra`` CLI: global options, ``hydra migrate`` (apply, ``--sql``, ``status``) and errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

import hydra
from hydra.store.migrations import runner as migrations
from hydra_cli import errors
from hydra_cli.db import DEFAULT_URL, ENV_VAR, parse, resolve_url
from hydra_cli.main import app

HEAD = migrations.head_revision()
UNREACHABLE_PG = "postgresql+psycopg://u:secret@127.0.0.1:1/db"
HYDRA_TABLES = {"workflow_executions", "hydra_alembic_version"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_VAR, "HYDRA_DEBUG", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def hydra_cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_error_line(result: Result, *, contains: str = "") -> str:
    assert result.exit_code == errors.EXIT_ERROR, result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert contains in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    return lines[0]


# -- global options ---------------------------------------------------------------------


def test_help_lists_commands_and_database_precedence() -> None:
    result = hydra_cli("--help")
    assert result.exit_code == 0, result.output
    for text in ("migrate", "--debug", "--version", ENV_VAR, DEFAULT_URL, "Exit codes"):
        assert text in result.stdout


def test_no_arguments_shows_help() -> None:
    result = hydra_cli()
    assert "migrate" in result.output
    assert "Usage" in result.output


def test_version() -> None:
    result = hydra_cli("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"hydra-workflows {hydra.__version__}\n"


def test_migrate_and_status_help() -> None:
    result = hydra_cli("migrate", "--help")
    assert result.exit_code == 0, result.output
    for text in ("--db", "--sql", "status", ENV_VAR, DEFAULT_URL):
        assert text in result.stdout
    result = hydra_cli("migrate", "status", "--help")
    assert result.exit_code == 0, result.output
    assert "--db" in result.stdout
    assert "Exit code 0" in result.stdout


# -- hydra migrate ----------------------------------------------------------------------


def test_migrate_sqlite_then_already_at_head(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "x.db")

    before = hydra_cli("migrate", "status", "--db", url)
    assert before.exit_code == 1, before.output  # not at head
    assert before.stdout.splitlines() == [
        f"database  {url}",
        "current   none",
        f"head      {HEAD}",
        "status    no hydra schema: run `hydra migrate`",
    ]
    assert not (tmp_path / "x.db").exists()  # status is read-only

    first = hydra_cli("migrate", "--db", url)
    assert first.exit_code == 0, first.output
    assert first.stdout == f"migrated {url}: none -> {HEAD} (head)\n"
    assert tables(url) >= HYDRA_TABLES

    second = hydra_cli("migrate", "--db", url)
    assert second.exit_code == 0, second.output
    assert second.stdout == f"{url} is already at {HEAD} (head)\n"

    after = hydra_cli("migrate", "status", "--db", url)
    assert after.exit_code == 0, after.output
    assert f"current   {HEAD}" in after.stdout
    assert "status    up to date" in after.stdout


def test_status_takes_db_from_the_migrate_group(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "x.db")
    assert hydra_cli("migrate", "--db", url).exit_code == 0
    result = hydra_cli("migrate", "--db", url, "status")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout


def test_environment_variable_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sqlite_url(tmp_path / "env.db")
    monkeypatch.setenv(ENV_VAR, url)
    result = hydra_cli("migrate")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"migrated {url}: none -> {HEAD} (head)\n"
    assert tables(url) >= HYDRA_TABLES
    status = hydra_cli("migrate", "status")
    assert f"database  {url} (from ${ENV_VAR})" in status.stdout
    assert "up to date" in status.stdout


def test_db_option_overrides_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, sqlite_url(tmp_path / "env.db"))
    url = sqlite_url(tmp_path / "option.db")
    result = hydra_cli("migrate", "--db", url)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "option.db").exists()
    assert not (tmp_path / "env.db").exists()


def test_default_database_in_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    status = hydra_cli("migrate", "status")
    assert status.exit_code == 1, status.output  # no schema yet
    assert f"database  {DEFAULT_URL} (default)" in status.stdout
    assert not (tmp_path / ".hydra").exists()

    result = hydra_cli("migrate")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"migrated {DEFAULT_URL}: none -> {HEAD} (head)\n"
    assert tables(sqlite_url(tmp_path / ".hydra" / "hydra.db")) >= HYDRA_TABLES


def test_resolve_url_precedence() -> None:
    assert resolve_url("sqlite:///a.db", {ENV_VAR: "sqlite:///b.db"}) == ("sqlite:///a.db", "--db")
    assert resolve_url(None, {ENV_VAR: "sqlite:///b.db"}) == ("sqlite:///b.db", f"${ENV_VAR}")
    assert resolve_url(None, {ENV_VAR: "  "}) == (DEFAULT_URL, "default")
    assert resolve_url(None, {}) == (DEFAULT_URL, "default")


def test_user_text_is_not_rich_markup(tmp_path: Path) -> None:
    (tmp_path / "[bold red]x").mkdir()
    url = sqlite_url(tmp_path / "[bold red]x" / "[red]y.db")
    result = hydra_cli("migrate", "--db", url)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"migrated {parse(url).display}: none -> {HEAD} (head)\n"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE hydra_alembic_version SET version_num = '[bold]9999'"))
    engine.dispose()
    status = hydra_cli("migrate", "status", "--db", url)
    assert status.exit_code == 1, status.output  # an unknown revision is not head
    assert "current   [bold]9999" in status.stdout

    bad = hydra_cli("migrate", "--db", "[bold red]x")
    assert "'[bold red]x'" in assert_one_error_line(bad, contains="malformed database URL")


def test_database_migrated_by_a_newer_hydra(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "x.db")
    assert hydra_cli("migrate", "--db", url).exit_code == 0
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE hydra_alembic_version SET version_num = '9999'"))
    engine.dispose()

    result = hydra_cli("migrate", "--db", url)
    assert_one_error_line(result, contains="revision 9999")
    assert "upgrade hydra-workflows" in result.stderr

    status = hydra_cli("migrate", "status", "--db", url)
    assert status.exit_code == 1, status.output  # not at head: a deploy check fails
    assert "current   9999" in status.stdout
    assert "ahead of this installation" in status.stdout


# -- hydra migrate --sql ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:secret@nowhere/db",
        "mysql+pymysql://u:secret@nowhere/db",
        "mariadb+pymysql://u:secret@nowhere/db",
        "postgresql+psycopg://u:p%40ss%secret@nowhere/db",  # '%' must not break Alembic config
        "sqlite:///never/created.db",
    ],
)
def test_sql_prints_ddl_without_connecting(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    def no_connections(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("--sql must not connect")

    monkeypatch.setattr(sa.Engine, "raw_connection", no_connections)
    result = hydra_cli("migrate", "--sql", "--db", url)
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE workflow_executions" in result.stdout
    assert "CREATE TABLE hydra_alembic_version" in result.stdout
    assert "secret" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_sql_dialects_differ() -> None:
    pg = hydra_cli("migrate", "--sql", "--db", "postgresql+psycopg://nowhere/db").stdout
    my = hydra_cli("migrate", "--sql", "--db", "mysql+pymysql://nowhere/db").stdout
    assert "BYTEA" in pg
    assert "LONGBLOB" in my


def test_sql_cannot_be_combined_with_status() -> None:
    result = hydra_cli("migrate", "--sql", "status")
    assert result.exit_code == 2
    assert "--sql" in result.output


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["migrate"], ["migrate", "status"]])
def test_unreachable_database(args: list[str]) -> None:
    result = hydra_cli(*args, "--db", UNREACHABLE_PG)
    line = assert_one_error_line(result, contains="cannot connect to database")
    assert "postgresql+psycopg://u:***@127.0.0.1:1/db" in line
    assert "secret" not in result.output


def test_unreachable_database_with_debug_shows_traceback() -> None:
    result = hydra_cli("--debug", "migrate", "--db", UNREACHABLE_PG)
    assert result.exit_code == errors.EXIT_ERROR
    assert "Traceback (most recent call last)" in result.stderr
    assert error_lines(result)[-1].startswith("error: cannot connect to database")
    assert "secret" not in result.output


def test_debug_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYDRA_DEBUG", "1")
    result = hydra_cli("migrate", "--db", UNREACHABLE_PG)
    assert result.exit_code == errors.EXIT_ERROR
    assert "Traceback" in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://u:secret@host:notaport/db", "malformed database URL"),
        ("not a url", "malformed database URL"),
        ("oracle://u:secret@host/db", "unsupported database 'oracle'"),
        ("postgresql+nodriver://u:secret@host/db", "unknown driver 'postgresql+nodriver'"),
        ("mysql+mysqldb://u:secret@127.0.0.1:1/db", "no driver for mysql+mysqldb://u:***@"),
        ("sqlite://", "is not a SQLite file"),
        ("sqlite:///:memory:", "is not a SQLite file"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    for args in (["migrate"], ["migrate", "status"]):
        result = hydra_cli(*args, "--db", url)
        assert_one_error_line(result, contains=message)
        assert "secret" not in result.output


def test_unexpected_error_is_reported_as_a_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> str:
        raise RuntimeError("boom with postgresql://u:secret@h/db")

    monkeypatch.setattr(migrations, "head_revision", broken)
    result = hydra_cli("migrate", "--db", sqlite_url(tmp_path / "x.db"))
    assert result.exit_code == errors.EXIT_INTERNAL
    assert "Traceback (most recent call last)" in result.stderr
    assert error_lines(result)[-1].startswith("error: internal error: RuntimeError: boom")
    assert "secret" not in result.output


def test_scrub() -> None:
    state = errors.CliState()
    state.hide("hunter22")
    state.hide("pw")
    text = state.scrub("a://u:pw@h b://u:hunter22@h hunter22 c://user:password@host pwd")
    assert text == "a://u:***@h b://u:***@h *** c://user:password@host pwd"


# -- the installed command --------------------------------------------------------------


def subprocess_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "HYDRA_DEBUG")}


def test_python_dash_m_migrate(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "sub.db")
    cmd = [sys.executable, "-m", "hydra_cli.main", "migrate", "--db", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"migrated {url}: none -> {HEAD} (head)\n"
    assert tables(url) >= HYDRA_TABLES

    bad = [sys.executable, "-m", "hydra_cli.main", "migrate", "--db", UNREACHABLE_PG]
    proc = subprocess.run(bad, capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("error: cannot connect to database")
    assert "secret" not in proc.stderr


def test_console_script_help() -> None:
    script = shutil.which("hydra", path=str(Path(sys.executable).parent)) or shutil.which("hydra")
    assert script is not None, "the hydra console script is not installed"
    proc = subprocess.run(
        [script, "--help"], capture_output=True, text=True, env=subprocess_env(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "migrate" in proc.stdout
    proc = subprocess.run(
        [script, "--version"], capture_output=True, text=True, env=subprocess_env(), timeout=120
    )
    assert proc.stdout == f"hydra-workflows {hydra.__version__}\n"


# -- real servers (other tests share these databases: never drop anything) --------------


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_migrate_real_server(backend: str, store_urls: Any) -> None:
    # This session's own schema or database on the server (tests/conftest.py), not the
    # server's shared one, which a run of another branch may have migrated past this head.
    url = store_urls.url(backend)
    display = parse(url).display
    result = hydra_cli("migrate", "--db", url)
    assert result.exit_code == 0, result.output
    # Another session may have left the server at an earlier revision (e.g. 0001, before
    # the claim index of 0002): any starting point is fine, as long as it ends at head.
    assert result.stdout == f"{display} is already at {HEAD} (head)\n" or re.fullmatch(
        rf"migrated {re.escape(display)}: \w+ -> {HEAD} \(head\)\n", result.stdout
    ), result.stdout
    # No assertion on the tables' state afterwards: other tests may reset these databases.
    status = hydra_cli("migrate", "status", "--db", url)
    assert status.exit_code == 0, status.output
    assert f"head      {HEAD}" in status.stdout
    password = sa.make_url(url).password
    if password:
        assert password not in result.output + status.output

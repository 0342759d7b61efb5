"""Database URLs as users write them (issue 10): ``postgres://...`` (the usual
``DATABASE_URL`` form) and ``postgresql://`` without a driver use psycopg 3, ``mysql://``
uses PyMySQL, and ``sqlite:///:memory:`` is shown as written, through the real console
script and through ``SQLStore``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import hydra
from hydra.store.sql.urls import normalize, redact
from tests.conftest import StoreURLs

from .helpers import hydra_script, subprocess_env


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(hydra_script()), *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("mysql://root@h/db", "mysql+pymysql://root@h/db"),
        ("mariadb://root@h/db", "mariadb+pymysql://root@h/db"),
        ("mysql+pymysql://root@h/db", "mysql+pymysql://root@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_gives_the_drivers_hydra_installs(given: str, used: str) -> None:
    assert redact(normalize(given)) == used


def test_sqlite_paths_are_shown_as_written() -> None:
    assert redact("sqlite:///:memory:") == "sqlite:///:memory:"
    assert redact("sqlite:////abs/dir/x.db") == "sqlite:////abs/dir/x.db"
    assert redact("sqlite:///rel dir/x.db") == "sqlite:///rel dir/x.db"


def _as_written(url: str, scheme: str) -> str:
    assert url.startswith("postgresql+psycopg://"), url
    return scheme + url.removeprefix("postgresql+psycopg://")


@pytest.mark.parametrize("scheme", ["postgres://", "postgresql://"])
def test_postgres_urls_without_a_driver_work(
    store_urls: StoreURLs, tmp_path: Path, scheme: str
) -> None:
    url = store_urls.url("postgres")
    hydra.SQLStore(url, auto_migrate=True).close()
    written = _as_written(url, scheme)
    store = hydra.SQLStore(written)  # psycopg 3, not SQLAlchemy's default psycopg2
    try:
        assert store.engine.dialect.driver == "psycopg"
    finally:
        store.close()
    status = run("migrate", "status", "--db", written, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "up to date" in status.stdout
    assert "database  postgresql+psycopg://" in status.stdout


def test_an_in_memory_sqlite_url_is_refused_as_written(tmp_path: Path) -> None:
    result = run("migrate", "status", "--db", "sqlite:///:memory:", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: sqlite:///:memory: is not a SQLite file")
    assert "%3A" not in result.stderr

"""Store backends for the whole test suite.

``store_factory`` runs a test on every backend: ``memory`` and ``sqlite`` always,
``postgres`` when ``HYDRA_TEST_POSTGRES_URL`` is set and ``mysql`` (MySQL or MariaDB) when
``HYDRA_TEST_MYSQL_URL`` is set; otherwise those are skipped, naming the variable. A
variable that is set but whose server cannot be reached fails those tests: CI must not
go green by silently skipping the databases it was meant to test.

Each session works in its own PostgreSQL schema and MySQL database, created empty at the
start (so this run's migrations really run) and dropped at the end. Every store made
through these fixtures is closed at teardown (the suite runs with ``filterwarnings = error``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from hydra.store.base import Store
from hydra.store.sql import SQLStore
from hydra.store.sql.urls import redact
from hydra.testing.memory import MemoryStore

BACKENDS = ("memory", "sqlite", "postgres", "mysql")
SQL_BACKENDS = ("sqlite", "postgres", "mysql")
#: backend -> the environment variable holding its server's URL
SERVER_ENV = {"postgres": "HYDRA_TEST_POSTGRES_URL", "mysql": "HYDRA_TEST_MYSQL_URL"}
CONNECT_TIMEOUT_S = 10


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One line saying which database servers this run tests (their skips are counted in
    the summary; ``-rs`` lists them one by one)."""
    unset = [var for var in SERVER_ENV.values() if not os.environ.get(var, "").strip()]
    if not unset:
        return ["hydra: testing memory, SQLite, PostgreSQL and MySQL/MariaDB"]
    return [
        "hydra: testing memory and SQLite; "
        + " and ".join(unset)
        + " not set, so those servers' tests are skipped"
    ]


class StoreURLs:
    """The URL of each enabled SQL backend; servers are checked once, up front.

    Each test session gets its own empty PostgreSQL schema and MySQL database
    (``hydra_test_<random>``), dropped at the end: migrations really run from scratch, and
    concurrent sessions on one server (developers, helpers, CI) never see each other.
    """

    def __init__(self, sqlite_path: Path) -> None:
        self._urls: dict[str, str] = {"sqlite": f"sqlite:///{sqlite_path}"}
        self._errors: dict[str, str] = {}
        self._cleanups: list[Callable[[], None]] = []
        suffix = uuid.uuid4().hex[:10]
        for backend, var in SERVER_ENV.items():
            url = os.environ.get(var, "").strip()
            if not url:
                continue
            try:
                isolated, cleanup = _isolate(url, f"hydra_test_{suffix}")
            except Exception as exc:
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                self._errors[backend] = (
                    f"{var} is set but the {backend} server at {redact(url)} cannot be used: "
                    f"{type(exc).__name__}: {reason}"
                )
            else:
                self._urls[backend] = isolated
                self._cleanups.append(cleanup)

    def url(self, backend: str) -> str:
        """The backend's URL; fails the test if its server was configured but unreachable."""
        if backend in self._errors:
            pytest.fail(self._errors[backend], pytrace=False)
        if backend not in self._urls:
            pytest.skip(f"{SERVER_ENV[backend]} is not set")
        return self._urls[backend]

    def enabled(self) -> list[str]:
        """The SQL backends configured for this run (reachable or not)."""
        return [b for b in SQL_BACKENDS if b in self._urls or b in self._errors]

    def close(self) -> None:
        for cleanup in self._cleanups:
            cleanup()


def _admin_engine(url: URL) -> Engine:
    return create_engine(
        url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
    )


def _isolate(url: str, name: str) -> tuple[str, Callable[[], None]]:
    """A URL on a fresh schema (PostgreSQL) or database (MySQL) named ``name``."""
    parsed = make_url(url)
    admin = _admin_engine(parsed)
    try:
        with admin.begin() as conn:
            if parsed.get_backend_name() == "postgresql":
                conn.execute(text(f'CREATE SCHEMA "{name}"'))
            else:
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    finally:
        admin.dispose()
    if parsed.get_backend_name() == "postgresql":
        isolated = parsed.update_query_dict({"options": f"-csearch_path={name}"})
        drop = f'DROP SCHEMA IF EXISTS "{name}" CASCADE'
    else:
        isolated = parsed.set(database=name)
        drop = f"DROP DATABASE IF EXISTS `{name}`"

    def cleanup() -> None:
        engine = _admin_engine(parsed)
        try:
            with engine.begin() as conn:
                conn.execute(text(drop))
        finally:
            engine.dispose()

    return isolated.render_as_string(hide_password=False), cleanup


@pytest.fixture(scope="session", autouse=True)
def store_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreURLs]:
    """Session-wide backend URLs on this session's own schema/database (dropped at the end)."""
    urls = StoreURLs(tmp_path_factory.mktemp("hydra-sqlite") / "hydra.db")
    yield urls
    urls.close()


class BackendStoreFactory:
    """A zero-argument callable making fresh stores on one backend; see ``store_factory``."""

    def __init__(self, backend: str, url: str | None) -> None:
        self.backend = backend
        #: the database URL (None for the memory backend)
        self.url = url
        self._made: list[Store] = []

    def __call__(self) -> Store:
        store: Store = MemoryStore() if self.url is None else SQLStore(self.url, auto_migrate=True)
        self._made.append(store)
        return store

    def close_all(self) -> None:
        for store in self._made:
            store.close()

    def __repr__(self) -> str:
        return f"BackendStoreFactory({self.backend!r})"


def _param(backend: str) -> Any:
    var = SERVER_ENV.get(backend)
    if var is None:
        return pytest.param(backend, id=backend)
    return pytest.param(
        backend,
        id=backend,
        marks=pytest.mark.skipif(not os.environ.get(var, "").strip(), reason=f"{var} is not set"),
    )


def _factory(
    request: pytest.FixtureRequest, store_urls: StoreURLs
) -> Iterator[BackendStoreFactory]:
    backend: str = request.param
    factory = BackendStoreFactory(backend, None if backend == "memory" else store_urls.url(backend))
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture(params=[_param(b) for b in BACKENDS])
def store_factory(
    request: pytest.FixtureRequest, store_urls: StoreURLs
) -> Iterator[BackendStoreFactory]:
    """Makes fresh stores on each backend in turn (memory, sqlite, postgres, mysql).

    SQL stores are ``SQLStore(url, auto_migrate=True)`` on one database per backend per
    session, so tests must keep to their own namespace. All are closed at teardown.
    """
    yield from _factory(request, store_urls)


@pytest.fixture(params=[_param(b) for b in SQL_BACKENDS])
def sql_store_factory(
    request: pytest.FixtureRequest, store_urls: StoreURLs
) -> Iterator[BackendStoreFactory]:
    """``store_factory`` over the SQL backends only (sqlite, postgres, mysql)."""
    yield from _factory(request, store_urls)

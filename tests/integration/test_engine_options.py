"""The engine ``SQLStore(url)`` makes: each dialect's options (``Dialect.engine_options``),
seen on the connections the store really opens."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from hydra.store.sql import SQLStore
from tests.conftest import BackendStoreFactory


def _open(factory: BackendStoreFactory) -> SQLStore:
    store = factory()
    assert isinstance(store, SQLStore)
    return store


def test_pool_sizes(sql_store_factory: BackendStoreFactory) -> None:
    pool = _open(sql_store_factory).engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool.timeout()) == (20, 60)


def test_postgres_connects_with_a_timeout(sql_store_factory: BackendStoreFactory) -> None:
    """libpq would wait for a connection as long as the OS does: 10 s unless the URL
    says otherwise."""
    if sql_store_factory.backend != "postgres":
        pytest.skip("connect_timeout is PostgreSQL's (libpq)")
    assert sql_store_factory.url is not None

    def connect_timeout(store: SQLStore) -> str | None:
        with store.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            return raw.info.get_parameters().get("connect_timeout")  # type: ignore[no-any-return]

    assert connect_timeout(_open(sql_store_factory)) == "10"
    given = make_url(sql_store_factory.url).update_query_dict({"connect_timeout": "3"})
    store = SQLStore(given.render_as_string(hide_password=False))
    try:
        assert connect_timeout(store) == "3"
    finally:
        store.close()


def test_mysql_reads_committed(sql_store_factory: BackendStoreFactory) -> None:
    """READ COMMITTED: a plain read inside a transaction sees the latest commits."""
    if sql_store_factory.backend != "mysql":
        pytest.skip("the isolation level is set for MySQL/MariaDB only")
    store = _open(sql_store_factory)
    with store.engine.connect() as conn:
        # MySQL 8 and MariaDB 11.1+ name it transaction_isolation, older MariaDB tx_isolation.
        try:
            level = conn.execute(text("SELECT @@transaction_isolation")).scalar()
        except Exception:
            conn.rollback()
            level = conn.execute(text("SELECT @@tx_isolation")).scalar()
    assert level == "READ-COMMITTED"


def test_sqlite_creates_the_file_s_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "hydra.db"
    store = SQLStore(f"sqlite:///{path}")
    try:
        assert path.is_file()
    finally:
        store.close()

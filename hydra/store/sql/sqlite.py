"""SQLite: WAL, a busy timeout, and BEGIN IMMEDIATE for every writing transaction.

SQLite has no SKIP LOCKED and no row locks: ``BEGIN IMMEDIATE`` takes the database's
single write lock at the start of the transaction, which serialises claimers (threads and
processes alike), and the busy timeout makes the others wait instead of failing.
Reads use a plain deferred ``BEGIN``: in WAL mode they never block the writer.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    bindparam,
    event,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.dml import Insert

from hydra.store.sql.dialect import Dialect
from hydra.store.sql.driver import DriverOptions

BUSY_TIMEOUT_MS = 30_000


def _switch_to_wal(cur: sqlite3.Cursor) -> None:
    # Switching a fresh file to WAL takes an exclusive lock and does not wait out the busy
    # timeout: two processes opening a new database at once would see "database is
    # locked". Retry for as long as the busy timeout would have waited.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class SQLiteDialect(Dialect):
    name = "sqlite"
    one_writer = True

    def engine_options(self, url: URL) -> dict[str, Any]:
        database = url.database
        if not database or database == ":memory:":
            raise ValueError(
                "SQLStore needs a SQLite file (sqlite:///path.db): an in-memory SQLite "
                "database is private to one connection; use hydra.testing.MemoryStore instead"
            )
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return super().engine_options(url)

    def prepare_engine(self, engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            # Hand transaction control to us: pysqlite's own implicit BEGIN is deferred
            # and would let two writers both read, then deadlock on upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _switch_to_wal(cur)
            # NORMAL is durable across application crashes in WAL mode; only a power loss
            # can drop the last commits.
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("hydra_sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

    # No server clock (database_time_sql: None): every process using the file runs on this
    # machine and shares its clock. Values up to 1 GB (max_value_bytes: None): hydra's
    # max_payload_bytes is far below. No fused statements: RETURNING cannot read an
    # UPDATE ... FROM's other table here.

    def write_options(self) -> dict[str, Any]:
        return {"hydra_sqlite_begin": "IMMEDIATE"}

    def insert_ignoring(self, table: Any) -> Insert:
        return sqlite_insert(table).on_conflict_do_nothing()

    def insert_if_absent(self, table: Any, values: dict[str, Any]) -> Insert | None:
        # ON CONFLICT DO NOTHING ... RETURNING needs SQLite 3.35 (the one Python links).
        if sqlite3.sqlite_version_info < (3, 35):
            return None
        return sqlite_insert(table).values(values).on_conflict_do_nothing().returning(table.c.id)

    def ids_in(self, column: Any, name: str) -> ColumnElement[bool]:
        # One JSON array parameter, read by SQLite's json_each: a purge batch's ids as
        # one placeholder rather than one each (rendered and bound in Python).
        ids: Select[Any] = select(literal_column("value")).select_from(
            func.json_each(bindparam(name))
        )
        return cast("ColumnElement[bool]", column.in_(ids))

    def ids_param(self, ids: Sequence[str]) -> Any:
        return json.dumps(list(ids))

    # A purge's WAL: SQLite checkpoints the WAL into the database file when a commit takes
    # it past wal_autocheckpoint (1,000 pages), in the committing connection, as part of
    # its commit, with two fsyncs: measured at 30-90 ms while a purge ran, holding the
    # write lock all that time (docs/benchmarks.md). So a purge batch commits with
    # auto-checkpoint off on its connection (bulk_delete_session), and the purge
    # checkpoints its own pages between batches instead (settle_bulk_deletes), outside
    # any write transaction, every settle_after_rows rows: a purged row dirties pages
    # all over the id-keyed indexes, and the fewer of them a worker's own auto-checkpoint
    # finds to copy, the shorter its commit. Measured (300,000 finished rows, a claimer
    # beside the purge, 30 s each): every 200 rows, 105 of the claimer's 14,398 commits
    # over 20 ms; every 50 rows, 27 of 14,760, and none of the purge's checkpoints over
    # 16 ms.
    settle_after_rows = 50

    @contextmanager
    def bulk_delete_session(self, conn: Connection) -> Iterator[None]:
        # wal_autocheckpoint is the connection's own setting, read when a commit ends: off
        # for the batch's commit, restored before the connection goes back to the pool.
        raw = conn.connection.driver_connection
        assert raw is not None
        before = int(raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        raw.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            yield
        finally:
            with suppress(sqlite3.Error):
                raw.execute(f"PRAGMA wal_autocheckpoint = {before}")

    def settle_bulk_deletes(self, engine: Engine) -> None:
        # PASSIVE: waits for no one and takes no write lock (writers go on appending to
        # the WAL meanwhile), copies what no reader still needs.
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            raw.close()

    def lock_for_claim(self, query: Select[Any]) -> Select[Any]:
        return query  # BEGIN IMMEDIATE already holds the database's write lock

    def upsert(self, table: Any, values: dict[str, Any], keys: list[str]) -> Insert:
        stmt = sqlite_insert(table).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=keys,
            set_={k: stmt.excluded[k] for k in values if k not in keys},
        )

    def lock_migrations(self, conn: Connection) -> None:
        pass  # the migration runs inside one BEGIN IMMEDIATE transaction

    def unlock_migrations(self, conn: Connection) -> None:
        pass

    def is_driver_disconnect(self, exc: BaseException | None) -> bool:
        # A file has no connection to lose; SQLAlchemy flags the one case there is (a
        # connection closed under us: "Cannot operate on a closed database").
        return is_disconnect_error(exc)

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, OperationalError) and "database is locked" in str(exc)

    def driver_options(self) -> DriverOptions | None:
        # The engine's connect hook already put the connection in autocommit mode
        # (isolation_level None), so BEGIN IMMEDIATE / COMMIT are ours to send.
        return DriverOptions(
            begin_write="BEGIN IMMEDIATE",
            begin_read="BEGIN",
            single_statement_autocommit=False,
            on_checkout=_nothing,
            is_broken=_never,
            is_disconnect=is_disconnect_error,
            serialize_writes=self.one_writer,
        )


def is_disconnect_error(exc: BaseException | None) -> bool:
    """sqlite3's error for a connection that was closed (nothing else is a disconnect)."""
    return isinstance(exc, sqlite3.ProgrammingError) and "closed database" in str(exc)


def _nothing(conn: Any) -> None:
    pass


def _never(conn: Any) -> bool:
    return False

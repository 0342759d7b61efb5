"""The database under ``SQLStore``: its engine, dialect and connections, and transactions
on them with the store's retry rules.

``SQLDatabase`` is the lower layer of ``SQLStore`` (which adds the Store's operations):
it opens the engine (or adopts the caller's), checks at start-up that the database is
reachable and its schema current, migrates it, reports the server's clock, and runs
each store call's transaction on Core (``_run``) or, for the hot path, on the driver's
own connections where the dialect has them (``_run_hot``), retrying lost connections and
deadlocks for ``reconnect_window`` (``_retrying``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError

from hydra.clock import duration_ms
from hydra.errors import DatabaseUnavailableError, SchemaNotReadyError
from hydra.logs import HydraLogger
from hydra.store.sql.dialect import Dialect, create_store_engine, dialect_for
from hydra.store.sql.driver import CoreTx, DriverPool, Tx
from hydra.store.sql.urls import redact

# Store records carry the same fields as every hydra record (None here: no execution).
log = HydraLogger(logging.getLogger("hydra.store"))

T = TypeVar("T")

# How long a store call keeps retrying a lost or refused connection by default.
RECONNECT_WINDOW = timedelta(seconds=30)
# The longest pause between two tries of a call that met a lost connection or a deadlock.
_MAX_RETRY_PAUSE_S = 1.0


class SQLDatabase:
    """One database's engine and connections, and transactions on them (see the module
    docstring); ``SQLStore`` documents the arguments."""

    def __init__(
        self,
        url_or_engine: str | Engine,
        *,
        reconnect_window: timedelta | float = RECONNECT_WINDOW,
    ) -> None:
        self.reconnect_window_s = duration_ms(reconnect_window, "reconnect_window") / 1000
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
            self._owns_engine = False
        else:
            self.engine = create_store_engine(url_or_engine)
            self._owns_engine = True
        self.url = redact(self.engine.url)
        self._dialect: Dialect = dialect_for(self.engine)
        if self._owns_engine:
            self._dialect.prepare_engine(self.engine)
            event.listen(self.engine, "handle_error", _flag_disconnects(self._dialect))
        self.supports_notify = self._dialect.supports_notify
        #: calls retried after a dropped connection (see ``Store.reconnects``)
        self.reconnects = 0
        self._closed = False
        time_sql = self._dialect.database_time_sql()
        self._time_query = text(time_sql) if time_sql is not None else None
        #: the largest value one write may carry (MySQL/MariaDB: from max_allowed_packet,
        #: read at open); None elsewhere. See ``Store.max_value_bytes``.
        self.max_value_bytes: int | None = None
        # The hot path (claims, checkpoints, suspend/retry/finish, heartbeats) on the
        # driver's own connections where the dialect has one (driver.py); None: Core.
        options = self._dialect.driver_options()
        self._driver = DriverPool(self.engine, options) if options is not None else None

    def _open(self, auto_migrate: bool | None) -> None:
        """Check that the database is reachable, then migrate it (``auto_migrate``; by
        default on SQLite only) or check that its schema is current. On failure, close
        (a store that failed to open holds no connections) and raise."""
        if auto_migrate is None:
            auto_migrate = self._dialect.name == "sqlite"
        try:
            self._check_reachable()
            if auto_migrate:
                self.migrate()
            else:
                self._check_schema()
        except BaseException:
            self.close()
            raise

    # -- setup ------------------------------------------------------------------------
    def _check_reachable(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
                self.max_value_bytes = self._dialect.max_value_bytes(conn)
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise DatabaseUnavailableError(
                f"cannot connect to database {self.url}: {reason}"
            ) from exc

    def _check_schema(self) -> None:
        from hydra.store.migrations.runner import current_revision, head_revision

        current = current_revision(self.engine)
        if current != head_revision():
            state = "has no hydra schema" if current is None else f"is at revision {current}"
            raise SchemaNotReadyError(
                f"database {self.url} {state}, hydra needs {head_revision()}: "
                f"run `hydra migrate --db URL` or SQLStore(url, auto_migrate=True)"
            )

    def migrate(self) -> None:
        """Bring the schema to head (safe to call from several processes at once)."""
        from hydra.store.migrations.runner import upgrade

        with self.engine.connect() as conn:
            conn = conn.execution_options(**self._dialect.write_options())
            self._dialect.lock_migrations(conn)
            try:
                upgrade(conn)
                if conn.in_transaction():
                    conn.commit()
            finally:
                if conn.in_transaction():
                    conn.rollback()
                self._dialect.unlock_migrations(conn)
                if conn.in_transaction():
                    conn.commit()

    def close(self) -> None:
        self._closed = True
        if self._driver is not None:
            self._driver.close()
        if self._owns_engine:
            self.engine.dispose()

    def database_time_ms(self) -> int | None:
        """The server's clock (PostgreSQL, MySQL/MariaDB); None on SQLite. See ``Store``.

        One attempt, no retries (``DatabaseClock`` keeps its last offset on a failure),
        as a single autocommit statement on the driver path where there is one, so that
        the call is one round trip. A closed store raises rather than reconnecting: a
        clock's re-measurement must not reopen the pool after ``close()``.
        """
        query = self._time_query
        if query is None:
            return None
        if self._closed:
            raise DatabaseUnavailableError(f"{self!r} is closed")
        if self._driver is not None:
            with self._driver.transaction(write=False, single=True) as tx:
                value = tx.rows(query, {})[0][0]
        else:
            with self.engine.connect() as conn:
                value = conn.execute(query).scalar_one()
        return int(value) // 1000

    # -- transactions -----------------------------------------------------------------
    @contextmanager
    def _tx(self, write: bool, *, bulk_delete: bool = False) -> Iterator[Connection]:
        # A write takes this process's turn as the hot path's do (SQLite): otherwise a
        # worker's claim that finds a purge batch holding the database sleeps in SQLite's
        # busy handler, and wakes up to 20 ms after the batch ended.
        turn = self._driver.write_turn() if write and self._driver is not None else nullcontext()
        with turn, self.engine.connect() as conn:
            session = self._dialect.bulk_delete_session(conn) if bulk_delete else nullcontext()
            if write:
                conn = conn.execution_options(**self._dialect.write_options())
            with session, conn.begin():
                yield conn

    def _run(
        self, fn: Callable[[Connection], T], *, write: bool = True, bulk_delete: bool = False
    ) -> T:
        """Run ``fn`` in one transaction on Core, with ``_retrying``'s rules
        (``bulk_delete``: a purge batch, in the dialect's ``bulk_delete_session``)."""

        def once() -> T:
            with self._tx(write, bulk_delete=bulk_delete) as conn:
                return fn(conn)

        return self._retrying(once)

    def _run_hot(self, fn: Callable[[Tx], T], *, single: bool = False, write: bool = True) -> T:
        """Run the hot-path call ``fn`` in one transaction, on the driver path if there
        is one (``single``: ``fn`` issues one statement, which may then run without
        BEGIN/COMMIT), else on Core; with ``_retrying``'s rules either way."""
        driver = self._driver
        if driver is None:
            return self._run(lambda conn: fn(CoreTx(conn)), write=write)

        def once() -> T:
            with driver.transaction(write=write, single=single) as tx:
                return fn(tx)

        return self._retrying(once)

    def _retrying(self, once: Callable[[], T]) -> T:
        """Call ``once`` (one transaction), retrying deadlocks and lost connections.

        What is retried is the dialect's to say (``is_transient``: deadlocks, lock
        timeouts; ``is_disconnect``: a connection lost, refused or closed by the server),
        the same on the driver path and on Core, for ``reconnect_window``. Every write this
        store makes is safe to repeat even if its first try committed before the
        connection was lost: checkpoints are upserts, fenced updates match only while the
        lease is unchanged (``_fenced_transition`` recognises its own earlier commit), and
        inserts that meet their own row (``create_execution``, ``claim_cron_fire``) say so.
        """
        deadline = time.monotonic() + self.reconnect_window_s
        delay = 0.01
        while True:
            try:
                return once()
            except DBAPIError as exc:
                transient = self._dialect.is_transient(exc)
                dropped = self._dialect.is_disconnect(exc)
                if not (transient or dropped) or time.monotonic() > deadline:
                    raise
                if dropped:
                    self.reconnects += 1
                log.warning(
                    "retrying database call after %s: %s",
                    type(exc.orig).__name__,
                    str(exc.orig).strip().splitlines()[0] if exc.orig else exc,
                )
                # Never past the window: its end is the last try.
                time.sleep(max(min(delay, deadline - time.monotonic()), 0))
                delay = min(delay * 2, _MAX_RETRY_PAUSE_S)


def _flag_disconnects(dialect: Dialect) -> Callable[[ExceptionContext], None]:
    """A ``handle_error`` hook: Core flags (``connection_invalidated``), invalidates and
    un-pools the connections the dialect calls lost, as the driver path does. SQLAlchemy's
    own test misses some (psycopg: a refused connect is not a disconnect to it)."""

    def flag(ctx: ExceptionContext) -> None:
        if not ctx.is_disconnect and dialect.is_disconnect(ctx.original_exception):
            ctx.is_disconnect = True

    return flag

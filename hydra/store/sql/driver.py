"""The hot path's statements run on the database driver's connections, not through Core.

Why: profiles of a worker (docs/benchmarks.md) put most of its CPU in SQLAlchemy's
per-execution work (execution context, compiled-cache lookup, result machinery) for
statements that never change. The statements stay SQLAlchemy Core objects, defined once
next to the schema; ``DriverStatement`` compiles each one once for the engine's dialect,
and ``DriverTx`` sends the SQL text straight to the DBAPI cursor.

Store methods on the hot path (claim, checkpoint, suspend, retry, finish) are written once
against ``Tx``; ``CoreTx`` runs them on a SQLAlchemy ``Connection`` (MySQL/MariaDB, and
any store whose dialect has no driver path), ``DriverTx`` on a driver connection from a
``DriverPool`` (SQLite and PostgreSQL).

Errors keep SQLAlchemy's types: a driver exception, from a statement or from connecting
(a checkout that opens a new connection), is re-raised as the matching
``sqlalchemy.exc.DBAPIError`` subclass, with ``connection_invalidated`` set when the
connection is lost or could not be made (the dialect's ``is_disconnect``), so
``SQLStore._retrying``'s rules and every caller see the same exceptions whichever path ran
the statement.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import ClauseElement

from hydra.store.sql.write_turn import WriteTurn


class Tx(Protocol):
    """One transaction's statements, on whichever connection runs them."""

    def rows(self, stmt: ClauseElement, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        """Execute and fetch every row (a statement with RETURNING, or a SELECT)."""
        ...

    def rowcount(self, stmt: ClauseElement, params: dict[str, Any]) -> int:
        """Execute and return how many rows it changed."""
        ...

    def many(self, stmt: ClauseElement, params: list[dict[str, Any]]) -> None:
        """Execute once per parameter set."""
        ...


class CoreTx:
    """``Tx`` on a SQLAlchemy ``Connection`` (inside the caller's transaction)."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rows(self, stmt: ClauseElement, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        return self.conn.execute(stmt, params).all()  # type: ignore[call-overload, no-any-return]

    def rowcount(self, stmt: ClauseElement, params: dict[str, Any]) -> int:
        return int(self.conn.execute(stmt, params).rowcount)  # type: ignore[call-overload]

    def many(self, stmt: ClauseElement, params: list[dict[str, Any]]) -> None:
        self.conn.execute(stmt, params)  # type: ignore[call-overload]


class DriverStatement:
    """A Core statement compiled once for one dialect: its SQL text and how to bind it."""

    __slots__ = ("defaults", "order", "processors", "sql")

    def __init__(self, stmt: ClauseElement, engine: Engine) -> None:
        compiled = stmt.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        # Literal values in the statement (e.g. status = 'running') are binds too; the
        # required ones (bindparam("x") without a value) must come from the caller.
        binds: dict[str, Any] = getattr(compiled, "binds", {})
        self.defaults: dict[str, Any] = {
            k: v for k, v in compiled.params.items() if not binds[k].required
        }
        # qmark drivers (sqlite3) bind by position, pyformat ones (psycopg) by name.
        positional = getattr(compiled, "positional", False)
        self.order: list[str] | None = (
            list(getattr(compiled, "positiontup", None) or ()) if positional else None
        )
        self.processors: dict[str, Callable[[Any], Any]] = dict(
            getattr(compiled, "_bind_processors", {}) or {}
        )

    def bind(self, params: dict[str, Any]) -> Any:
        if self.defaults:
            params = {**self.defaults, **params}
        if self.processors:
            params = dict(params)
            for key, process in self.processors.items():
                if key in params and params[key] is not None:
                    params[key] = process(params[key])
        if self.order is not None:
            return tuple(params[name] for name in self.order)
        return params


class DriverTx:
    """``Tx`` on a DBAPI cursor; statements are compiled on first use and cached."""

    __slots__ = ("cursor", "pool")

    def __init__(self, cursor: Any, pool: DriverPool) -> None:
        self.cursor = cursor
        self.pool = pool

    def rows(self, stmt: ClauseElement, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        compiled = self.pool.statement(stmt)
        self.cursor.execute(compiled.sql, compiled.bind(params))
        return self.cursor.fetchall()  # type: ignore[no-any-return]

    def rowcount(self, stmt: ClauseElement, params: dict[str, Any]) -> int:
        compiled = self.pool.statement(stmt)
        self.cursor.execute(compiled.sql, compiled.bind(params))
        return int(self.cursor.rowcount)

    def many(self, stmt: ClauseElement, params: list[dict[str, Any]]) -> None:
        compiled = self.pool.statement(stmt)
        self.cursor.executemany(compiled.sql, [compiled.bind(p) for p in params])


@dataclass(frozen=True)
class DriverOptions:
    """How one backend runs transactions on its driver connections."""

    #: statement that opens a writing / a reading transaction
    begin_write: str
    begin_read: str
    #: a single writing statement may run without BEGIN/COMMIT (it is atomic on its own,
    #: and the connection is in autocommit mode): PostgreSQL. Not SQLite, whose writes
    #: must take the write lock up front (BEGIN IMMEDIATE). A single read always may.
    single_statement_autocommit: bool
    #: prepares a new driver connection for this pool (e.g. autocommit on)
    on_checkout: Callable[[Any], None]
    #: the connection can no longer be used (the server went away)
    is_broken: Callable[[Any], bool]
    #: a driver exception says the connection is gone or could not be made (the
    #: dialect's ``is_disconnect``)
    is_disconnect: Callable[[BaseException], bool]
    #: writing transactions of this process take turns on a lock first (SQLite: a
    #: writer that finds the database locked sleeps in SQLite's busy handler, 1, 2, 5,
    #: 10, 15, 20, 25 ms... per try, while a thread waiting on a lock is handed it at
    #: once); the store's writes on Core take the same turns (``write_turn``)
    serialize_writes: bool = False


class DriverPool:
    """Driver connections for the hot path, borrowed from the engine's pool for good.

    A connection is taken with ``engine.raw_connection()`` (so the engine's connect hooks,
    such as SQLite's pragmas, have run) and kept here until ``close()``; checking one out
    is a list pop under a lock. A connection that failed is dropped, never reused.

    A forked child (gunicorn, Celery prefork) starts with an empty pool: the connections
    it inherited belong to the parent, and two processes on one socket corrupt both.
    """

    def __init__(self, engine: Engine, options: DriverOptions) -> None:
        self.engine = engine
        self.options = options
        self._idle: list[Any] = []  # pool fairies
        self._lock = threading.Lock()
        _POOLS.add(self)
        self._statements: dict[int, tuple[ClauseElement, DriverStatement]] = {}
        self._closed = False
        # Reentrant: a write nested in another on the same thread would meet SQLite's
        # lock anyway (and its busy timeout), not hang here. Held without the cyclic GC
        # (write_turn.py says why).
        self._write_turn: contextlib.AbstractContextManager[Any] = (
            WriteTurn() if options.serialize_writes else contextlib.nullcontext()
        )
        #: connections this pool holds (idle or in use); the engine's pool counts them
        #: as checked out
        self.held = 0
        dbapi = engine.dialect.loaded_dbapi
        self._dbapi_error: type[Exception] = dbapi.Error

    def statement(self, stmt: ClauseElement) -> DriverStatement:
        # Keyed by identity: the hot statements are built once and live as long as the
        # store (the entry keeps the statement alive, so its id is never reused).
        entry = self._statements.get(id(stmt))
        if entry is None:
            entry = (stmt, DriverStatement(stmt, self.engine))
            self._statements[id(stmt)] = entry
        return entry[1]

    def write_turn(self) -> contextlib.AbstractContextManager[Any]:
        """This process's turn to write (``DriverOptions.serialize_writes``), for a writing
        transaction on Core (``SQLDatabase._tx``): a purge batch, anything off the hot
        path."""
        return self._write_turn

    @contextlib.contextmanager
    def transaction(self, *, write: bool, single: bool) -> Iterator[Tx]:
        """A transaction on a pooled driver connection (or none, for one autocommit
        statement). Driver errors come out as ``sqlalchemy.exc.DBAPIError``."""
        # One statement runs as its own transaction where that is safe: any read, and on
        # PostgreSQL any write (SQLite writes take the write lock up front instead).
        explicit = not (single and (self.options.single_statement_autocommit or not write))
        turn = self._write_turn if write else contextlib.nullcontext()
        with turn, self._transaction(write, explicit) as tx:
            yield tx

    @contextlib.contextmanager
    def _transaction(self, write: bool, explicit: bool) -> Iterator[Tx]:
        fairy = self._checkout()
        conn = fairy.driver_connection
        keep = False
        try:
            cursor = conn.cursor()
            try:
                if explicit:
                    cursor.execute(self.options.begin_write if write else self.options.begin_read)
                yield DriverTx(cursor, self)
                if explicit:
                    cursor.execute("COMMIT")
                keep = True
            except BaseException:
                if explicit:
                    keep = self._rollback(conn, cursor)
                else:
                    keep = not self.options.is_broken(conn)
                raise
            finally:
                with contextlib.suppress(Exception):
                    cursor.close()
        except self._dbapi_error as exc:
            dropped = self.options.is_broken(conn) or self.options.is_disconnect(exc)
            if dropped:
                keep = False
                self._invalidate_all(fairy, exc)
            raise self._error(exc, dropped) from exc
        finally:
            if keep and not self._closed:
                with self._lock:
                    self._idle.append(fairy)
            else:
                self._discard(fairy)

    def _error(self, exc: Exception, dropped: bool) -> StatementError:
        """``exc`` as the ``sqlalchemy.exc.DBAPIError`` subclass SQLAlchemy would raise
        (typed as its base: ``DBAPIError.instance`` returns one for a non-driver error)."""
        return DBAPIError.instance(
            None,
            None,
            exc,
            self._dbapi_error,
            connection_invalidated=dropped,
            dialect=self.engine.dialect,
        )

    def _invalidate_all(self, fairy: Any, exc: BaseException) -> None:
        """A connection was lost: the others opened before it most likely were too (a
        server restart, a network failure). Drop this pool's idle ones and mark the
        engine's older pooled connections stale, as SQLAlchemy does when Core meets a
        disconnect (``Pool._invalidate``), so the retry is not handed one dead connection
        after another."""
        with self._lock:
            idle, self._idle = self._idle, []
        for other in idle:
            self._discard(other)
        invalidate = getattr(self.engine.pool, "_invalidate", None)
        if invalidate is not None:
            with contextlib.suppress(Exception):
                invalidate(fairy, exc, _checkin=False)

    def _rollback(self, conn: Any, cursor: Any) -> bool:
        """Roll back after a failure; True if the connection is still fit for reuse."""
        if self.options.is_broken(conn):
            return False
        try:
            cursor.execute("ROLLBACK")
        except Exception:
            return False
        return True

    def _checkout(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            fairy = self.engine.raw_connection()
        except self._dbapi_error as exc:
            # Connecting failed (the server is down or unreachable, or refused us): the
            # same DBAPIError as Core's engine.connect() raises, so the store's retry rules
            # see one kind of error whichever path met it.
            raise self._error(exc, self.options.is_disconnect(exc)) from exc
        with self._lock:
            self.held += 1
        try:
            self.options.on_checkout(fairy.driver_connection)
        except self._dbapi_error as exc:
            # A pooled connection that died while idle in the engine's pool.
            dropped = self.options.is_broken(fairy.driver_connection)
            self._discard(fairy)
            raise self._error(exc, dropped or self.options.is_disconnect(exc)) from exc
        except BaseException:
            self._discard(fairy)
            raise
        return fairy

    def _discard(self, fairy: Any) -> None:
        with self._lock:
            self.held -= 1
        with contextlib.suppress(Exception):
            fairy.invalidate()

    def _forget_after_fork(self) -> None:
        """In a forked child: set the parent's connections aside without closing them and
        start with fresh locks. They are kept referenced for the child's lifetime: a
        collected connection is returned to the engine's pool or finalised by the driver,
        either of which can end the parent's session on the shared socket."""
        _INHERITED.extend(self._idle)
        self._idle = []
        self.held = 0
        self._lock = threading.Lock()
        if isinstance(self._write_turn, WriteTurn):
            self._write_turn = self._write_turn.for_forked_child()

    def close(self) -> None:
        """Close every idle connection (those in use are closed when they come back)."""
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for fairy in idle:
            self._discard(fairy)


# Every pool of this process, so that a forked child can make each forget its parent's
# connections (os.register_at_fork runs in the child right after fork()).
_POOLS: weakref.WeakSet[DriverPool] = weakref.WeakSet()
# In a forked child: the parent's connections, never used and never closed here.
_INHERITED: list[Any] = []


def _forget_connections_after_fork() -> None:
    for pool in list(_POOLS):
        pool._forget_after_fork()


os.register_at_fork(after_in_child=_forget_connections_after_fork)

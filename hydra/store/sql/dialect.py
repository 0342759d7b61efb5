"""What differs between databases: a base class with the defaults, one module per backend.

``Dialect`` supplies the behaviour of a database that lacks an optional capability (no
notifications, no one-statement fused writes, no driver path, no server clock, no value
limit of its own, no connection hooks), so a backend module states only what differs.
What every database must decide for itself (its upsert, how a claim locks rows, how
migrations are serialised, which errors are transient or a lost connection) has no
default. Backend modules are imported only when a URL or engine names them, so an unused
driver is never imported.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, cast

from sqlalchemy import ColumnElement, Connection, Engine, Select, bindparam, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert, Update

from hydra.errors import DatabaseUnavailableError
from hydra.store.base import WakeListener
from hydra.store.sql.driver import DriverOptions, Tx
from hydra.store.sql.urls import normalize, redact

SUPPORTED = "hydra supports sqlite, postgresql and mysql/mariadb"


class Dialect(ABC):
    """One database's SQL and behaviour, as ``SQLStore`` needs them."""

    #: SQLAlchemy's name for the backend
    name: ClassVar[str]
    #: the pip extra of hydra-workflows that installs the driver (None: in the stdlib)
    driver_extra: ClassVar[str | None] = None
    #: the database can wake idle workers in other processes (LISTEN/NOTIFY)
    supports_notify: ClassVar[bool] = False
    #: one write transaction at a time holds the whole database (SQLite)
    one_writer: ClassVar[bool] = False
    #: a UNION's parts may be parenthesized SELECTs with their own ORDER BY and LIMIT
    #: (SQLite's may not: there each is a derived table, which MySQL/MariaDB materialize)
    parenthesized_unions: ClassVar[bool] = False

    # -- the engine ---------------------------------------------------------------------
    def engine_options(self, url: URL) -> dict[str, Any]:
        """``create_engine``'s keyword arguments for an engine the store makes from ``url``
        (a backend may refuse a URL it cannot serve with ``ValueError``)."""
        # No pool_pre_ping: a connection the server dropped fails its first statement, and
        # the store retries the whole transaction on a fresh one
        # (tests/integration/test_reconnect.py).
        return {"pool_size": 20, "max_overflow": 40, "pool_timeout": 60}

    def prepare_engine(self, engine: Engine) -> None:
        """Install connection hooks (pragmas, transaction modes) on an engine the store
        made; none by default."""
        return None

    def write_options(self) -> dict[str, Any]:
        """Execution options for a connection that will write (SQLite: BEGIN IMMEDIATE);
        none by default."""
        return {}

    def driver_options(self) -> DriverOptions | None:
        """How the hot path runs on this driver's own connections (``driver.py``); None
        (the default) keeps it on SQLAlchemy Core."""
        return None

    # -- what the server reports --------------------------------------------------------
    def database_time_sql(self) -> str | None:
        """A one-row, one-column SELECT of the server's current time in Unix
        *microseconds* (evaluated when it runs, in UTC whatever the session's time zone),
        or None (the default) when the database has no server clock."""
        return None

    def max_value_bytes(self, conn: Connection) -> int | None:
        """The largest value one write may carry on this server (read once at open), or
        None (the default) if the database imposes no limit below hydra's own."""
        return None

    # -- statements every database must provide --------------------------------------------
    @abstractmethod
    def upsert(self, table: Any, values: dict[str, Any], keys: list[str]) -> Insert:
        """INSERT that replaces the non-key columns when the key exists."""

    @abstractmethod
    def lock_for_claim(self, query: Select[Any]) -> Select[Any]:
        """Make the claim's SELECT lock its rows against other claimers."""

    @abstractmethod
    def lock_migrations(self, conn: Connection) -> None:
        """Serialise concurrent ``migrate()`` calls from several processes."""

    @abstractmethod
    def unlock_migrations(self, conn: Connection) -> None:
        """Undo ``lock_migrations``."""

    # -- one-statement forms (None: the store runs separate statements) ------------------
    def fenced_upsert(
        self,
        fence: Update,
        table: Any,
        columns: Sequence[str],
        keys: list[str],
        also: tuple[Any, Sequence[str], list[str]] | None = None,
    ) -> Insert | None:
        """The fenced UPDATE ``fence`` and an upsert of ``table`` (bind parameters
        ``s_<column>``) as one statement returning one row if ``fence`` matched and
        none otherwise; None (the default) where the database cannot (then they run as
        separate statements). ``also`` = (table, columns, keys): a second upsert in the
        same statement, made only if ``fence`` matched too (bind parameters ``a_<column>``)."""
        return None

    def fused_claim(
        self, pick: Callable[[Any, Any], Select[Any]], pairs: Sequence[tuple[Any, Any]]
    ) -> Update | None:
        """The claim of the (workflow name, claim lane) pairs ``pairs`` (binds) as one
        statement: lock the first ``c_limit`` rows, in claim order, of those ``pick(name,
        lane)`` selects for any of the pairs, take their leases, and return the claimed
        rows plus their previous status, attempt and wake time; None (the default) where
        the database cannot (then: a locked SELECT per pair and an UPDATE per row, in one
        transaction). Used only for lanes that take no queue slot."""
        return None

    def insert_ignoring(self, table: Any) -> Insert:
        """An INSERT into ``table`` that inserts nothing, without an error, where a row of
        the same primary key exists (its rowcount then 0); where that row's transaction
        has not committed, it waits for it first."""
        raise NotImplementedError

    def lanes_query(self) -> Any:
        """One statement listing (workflow name, claim lane, the lane's earliest wake time
        or NULL) for the names ``l_names`` (a list) in namespace ``l_ns``, or None (the
        default: one probe per lane, ``statements.NEXT_LANE``, each its own statement)."""
        return None

    def ids_in(self, column: Any, name: str) -> ColumnElement[bool]:
        """``column`` is one of a list of ids bound as ``name`` (its value made by
        ``ids_param``). By default an expanding IN: SQLAlchemy writes one placeholder
        per id on each execution."""
        return cast("ColumnElement[bool]", column.in_(bindparam(name, expanding=True)))

    def ids_param(self, ids: Sequence[str]) -> Any:
        """The value of an ``ids_in`` bind for ``ids``."""
        return list(ids)

    #: how many rows a purge deletes between two ``settle_bulk_deletes``
    settle_after_rows: ClassVar[int] = 1000

    @contextmanager
    def bulk_delete_session(self, conn: Connection) -> Iterator[None]:
        """Around a purge batch's transaction, on its connection (held for the batch):
        whatever the batch should not do as part of its commit; nothing by default."""
        yield

    def settle_bulk_deletes(self, engine: Engine) -> None:
        """Between purge batches (their own transactions committed), every
        ``settle_after_rows`` rows and after the last batch: whatever the database should
        do now rather than in the middle of another writer's commit; nothing by default."""
        return None

    def try_lock_slot(self, tx: Tx, key: int) -> bool:
        """Before inserting a queue slot's row: False if another open transaction is
        inserting the same slot (skip it rather than wait for that transaction); True
        where the database does not need it (the default)."""
        return True

    def insert_if_absent(self, table: Any, values: dict[str, Any]) -> Insert | None:
        """An INSERT of one row (``values``: columns to binds) that inserts nothing when
        one of the table's unique keys is taken, returning the new row's ``id`` (no row:
        nothing inserted); None (the default) where the database cannot (then the store
        looks the row up before a plain INSERT)."""
        return None

    def waking_insert(self, insert: Insert, wake: Update) -> Any:
        """``insert`` (from ``insert_if_absent``), then ``wake`` if it inserted, then a
        notification to the namespace's workers if ``wake`` matched a row (bind parameters
        from ``notify_params``), as one statement returning the inserted id (no row:
        nothing inserted); None where the database has no notifications."""
        return None

    # -- notifications (the default: none) ------------------------------------------------
    def notify(self, tx: Tx, namespace: str) -> None:
        """Tell listening workers, on commit of ``tx``'s transaction, that work arrived."""
        return None

    def notifying_insert(self, insert: Insert) -> Any:
        """``insert`` made to also notify the namespace's workers (one statement, bind
        parameters from ``notify_params``), or None where there are no notifications."""
        return None

    def notify_params(self, namespace: str) -> dict[str, Any]:
        """The bind parameters ``notifying_insert``'s statement needs for ``namespace``."""
        return {}

    def notify_finished(self, conn: Connection, namespace: str, execution_id: str) -> None:
        """Tell the namespace's "finished" listeners, on commit, that this one ended."""
        return None

    def notifying_finish(self, finish: Update) -> Any:
        """``finish`` made to also notify the "finished" channel (one statement returning a
        row per execution updated), or None where the database has no notifications."""
        return None

    def notify_event(self, tx: Tx, execution_id: str) -> None:
        """Tell the "events" listeners of the execution's namespace, on commit, that it
        published an event (``set_event``)."""
        return None

    def open_listener(
        self, engine: Engine, namespace: str, channel: str = "work"
    ) -> WakeListener | None:
        """A listener on the namespace's ``work``, ``finished`` or ``events`` channel;
        None if none."""
        return None

    # -- errors -----------------------------------------------------------------------------
    def is_disconnect(self, exc: BaseException) -> bool:
        """The connection is gone or cannot be made (refused, reset, closed by the server,
        the server shutting down or starting up): a new connection may succeed, so the
        transaction may be retried on one. ``exc`` is a ``sqlalchemy.exc.DBAPIError`` from
        either path (flagged ``connection_invalidated``, or wrapping a driver error that
        ``is_driver_disconnect`` recognises), or the driver's own exception; anything
        else is False."""
        if isinstance(exc, DBAPIError):
            return bool(exc.connection_invalidated) or self.is_driver_disconnect(exc.orig)
        return self.is_driver_disconnect(exc)

    @abstractmethod
    def is_driver_disconnect(self, exc: BaseException | None) -> bool:
        """The driver's own exception ``exc`` says the connection is gone or could not
        be made."""

    @abstractmethod
    def is_transient(self, exc: BaseException) -> bool:
        """A deadlock, serialisation failure or lock timeout: the transaction may be retried."""


def dialect_named(backend: str) -> Dialect | None:
    """The dialect of SQLAlchemy backend ``backend``, its module imported only now; None
    for a database hydra does not support."""
    if backend == "sqlite":
        from hydra.store.sql.sqlite import SQLiteDialect

        return SQLiteDialect()
    if backend == "postgresql":
        from hydra.store.sql.postgresql import PostgreSQLDialect

        return PostgreSQLDialect()
    if backend in ("mysql", "mariadb"):
        from hydra.store.sql.mysql import MySQLDialect

        return MySQLDialect()
    return None


def dialect_for(engine: Engine) -> Dialect:
    """The dialect of this engine's database."""
    name = engine.dialect.name
    dialect = dialect_named(name)
    if dialect is None:
        raise ValueError(f"unsupported database {name!r}: {SUPPORTED}")
    return dialect


def create_store_engine(url: str) -> Engine:
    """The engine ``SQLStore(url)`` makes: the URL checked, its dialect's options applied.

    ``ValueError`` for a URL hydra cannot use, ``DatabaseUnavailableError`` when its
    driver is not installed (naming the extra that installs it).
    """
    try:
        parsed = normalize(url)  # postgres:// and postgresql:// -> psycopg 3
    except Exception as exc:
        raise ValueError(
            f"not a database URL: {redact(url)!r}; use sqlite:///path.db, "
            "postgresql+psycopg://user:password@host/db or mysql+pymysql://user:password@host/db"
        ) from exc
    backend = parsed.get_backend_name()
    dialect = dialect_named(backend)
    if dialect is None:
        raise ValueError(f"unsupported database {backend!r} in {redact(parsed)}: {SUPPORTED}")
    options = dialect.engine_options(parsed)
    try:
        return create_engine(parsed, **options)
    except ModuleNotFoundError as exc:
        extra = dialect.driver_extra
        hint = f": pip install 'hydra-workflows[{extra}]'" if extra else ""
        raise DatabaseUnavailableError(
            f"no driver for {redact(parsed)} ({exc.name} is not installed){hint}"
        ) from exc

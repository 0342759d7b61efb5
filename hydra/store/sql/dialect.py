"""What differs between databases, behind one small interface (one module per backend)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Select
from sqlalchemy.sql.dml import Insert, Update

from hydra.store.base import WakeListener
from hydra.store.sql.driver import DriverOptions


class Dialect(Protocol):
    name: str
    supports_notify: bool

    def prepare_engine(self, engine: Engine) -> None:
        """Install connection hooks (pragmas, transaction modes)."""
        ...

    def database_time_sql(self) -> str | None:
        """A one-row, one-column SELECT of the server's current time in Unix
        *microseconds* (evaluated when it runs, in UTC whatever the session's time zone),
        or None when the database has no server clock (SQLite)."""
        ...

    def write_options(self) -> dict[str, Any]:
        """Execution options for a connection that will write (SQLite: BEGIN IMMEDIATE)."""
        ...

    def lock_for_claim(self, query: Select[Any]) -> Select[Any]:
        """Make the claim's SELECT lock its rows against other claimers."""
        ...

    def upsert(self, table: Any, values: dict[str, Any], keys: list[str]) -> Insert:
        """INSERT that replaces the non-key columns when the key exists."""
        ...

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
        none otherwise; None where the database cannot (then they run as separate
        statements). ``also`` = (table, columns, keys): a second upsert in the same
        statement, made only if ``fence`` matched too (bind parameters ``a_<column>``)."""
        ...

    def fused_claim(
        self, pick: Callable[[Any], Select[Any]], names: Sequence[Any]
    ) -> Update | None:
        """The claim of the workflow names ``names`` (binds) as one statement: lock the
        first ``c_limit`` rows, in claim order, of those ``pick(name)`` selects for any of
        the names (``pick`` makes the claim's SELECT of one name), take their leases, and
        return the claimed rows plus their previous status, attempt and wake time; None
        where the database cannot (then: a locked SELECT per name and an UPDATE per row,
        in one transaction)."""
        ...

    def lock_migrations(self, conn: Connection) -> None:
        """Serialise concurrent ``migrate()`` calls from several processes."""
        ...

    def unlock_migrations(self, conn: Connection) -> None: ...

    def notify(self, conn: Connection, namespace: str) -> None:
        """Tell listening workers, on commit of ``conn``'s transaction, that work arrived."""
        ...

    def notifying_insert(self, insert: Insert) -> Any:
        """``insert`` made to also notify the namespace's workers (one statement, bind
        parameters from ``notify_params``), or None where there are no notifications."""
        ...

    def notify_params(self, namespace: str) -> dict[str, Any]:
        """The bind parameters ``notifying_insert``'s statement needs for ``namespace``."""
        ...

    def open_listener(
        self, engine: Engine, namespace: str, channel: str = "work"
    ) -> WakeListener | None:
        """A listener on the namespace's ``work`` or ``finished`` channel; None if none."""
        ...

    def notify_finished(self, conn: Connection, namespace: str, execution_id: str) -> None:
        """Tell the namespace's "finished" listeners, on commit, that this one ended."""
        ...

    def notifying_finish(self, finish: Update) -> Any:
        """``finish`` made to also notify the "finished" channel (one statement returning a
        row per execution updated), or None where the database has no notifications."""
        ...

    def is_disconnect(self, exc: BaseException) -> bool:
        """The connection is gone or cannot be made (refused, reset, closed by the server,
        the server shutting down or starting up): a new connection may succeed, so the
        transaction may be retried on one. ``exc`` is a ``sqlalchemy.exc.DBAPIError`` from
        either path, or the driver's own exception; anything else is False."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """A deadlock, serialisation failure or lock timeout: the transaction may be retried."""
        ...

    def max_value_bytes(self, conn: Connection) -> int | None:
        """The largest value one write may carry on this server (read once at open), or
        None if the database imposes no limit below hydra's own."""
        ...

    def driver_options(self) -> DriverOptions | None:
        """How the hot path runs on this driver's own connections (``driver.py``); None
        keeps it on SQLAlchemy Core."""
        ...


def dialect_for(engine: Engine) -> Dialect:
    """The backend module for this engine, imported only when used."""
    name = engine.dialect.name
    if name == "sqlite":
        from hydra.store.sql.sqlite import SQLiteDialect

        return SQLiteDialect()
    if name == "postgresql":
        from hydra.store.sql.postgresql import PostgreSQLDialect

        return PostgreSQLDialect()
    if name in ("mysql", "mariadb"):
        from hydra.store.sql.mysql import MySQLDialect

        return MySQLDialect()
    raise ValueError(
        f"unsupported database {name!r}: hydra supports sqlite, postgresql and mysql/mariadb"
    )

"""Each dialect's ``is_disconnect``: which driver errors ``SQLStore._retrying`` retries on a
new connection, and which it raises at once.

The texts are the drivers' own (recorded from psycopg 3 / libpq, PyMySQL against MariaDB,
and sqlite3); the live tests below also make the real errors (a refused port, a cut
connection, a server-side kill, a wrong user, a duplicate key) and classify them.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from hydra.store.sql.mysql import MySQLDialect
from hydra.store.sql.postgresql import PostgreSQLDialect
from hydra.store.sql.sqlite import SQLiteDialect
from hydra.testing.proxy import TCPProxy
from tests.conftest import StoreURLs

psycopg = pytest.importorskip("psycopg")
pymysql = pytest.importorskip("pymysql")
pg_errors = psycopg.errors

REFUSED_PG = (
    'connection failed: connection to server at "127.0.0.1", port 34453 failed: Connection '
    "refused\n\tIs the server running on that host and accepting TCP/IP connections?"
)
CLOSED_PG = (
    "consuming input failed: server closed the connection unexpectedly\n\tThis probably "
    "means the server terminated abnormally\n\tbefore or while processing the request."
)

PG_DISCONNECTS = [
    psycopg.OperationalError(REFUSED_PG),
    psycopg.OperationalError(CLOSED_PG),
    psycopg.OperationalError("the connection is closed"),
    psycopg.OperationalError("the connection is lost"),
    psycopg.OperationalError(
        "sending query failed: another command is already in progress\nconnection reset"
    ),
    psycopg.OperationalError(
        'connection failed: connection to server at "10.0.0.1", port 5432 failed: timeout expired'
    ),
    psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  '
        "the database system is starting up"
    ),
    psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  '
        "the database system is shutting down"
    ),
    psycopg.OperationalError("SSL SYSCALL error: EOF detected"),
    pg_errors.AdminShutdown("terminating connection due to administrator command"),
    pg_errors.CrashShutdown("terminating connection because of crash of another server process"),
    pg_errors.CannotConnectNow("the database system is starting up"),
    pg_errors.ConnectionFailure("connection failure"),
]
PG_OTHERS = [
    pg_errors.UniqueViolation('duplicate key value violates unique constraint "pk"'),
    pg_errors.InvalidTextRepresentation('invalid input syntax for type integer: "x"'),
    pg_errors.SyntaxError('syntax error at or near "SELEC"'),
    pg_errors.QueryCanceled("canceling statement due to statement timeout"),
    pg_errors.SerializationFailure("could not serialize access"),  # transient, not a drop
    pg_errors.DeadlockDetected("deadlock detected"),
    psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  '
        'password authentication failed for user "app"'
    ),
    psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  '
        'role "nosuchuser" does not exist'
    ),
    psycopg.ProgrammingError("the query has 2 placeholders but 1 parameters were passed"),
    ValueError("connection refused"),  # not the driver's: never a disconnect
]

MYSQL_DISCONNECTS = [
    pymysql.err.OperationalError(
        2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)"
    ),
    pymysql.err.OperationalError(
        2006, "MySQL server has gone away (ConnectionResetError(104, 'Connection reset by peer'))"
    ),
    pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
    pymysql.err.InterfaceError(0, ""),
    pymysql.err.OperationalError(1927, "Connection was killed"),
    pymysql.err.OperationalError(1053, "Server shutdown in progress"),
    pymysql.err.OperationalError(4031, "The client was disconnected by the server"),
]
MYSQL_OTHERS = [
    pymysql.err.IntegrityError(1062, "Duplicate entry 'x' for key 'PRIMARY'"),
    pymysql.err.OperationalError(1045, "Access denied for user 'x'@'127.0.0.1'"),
    pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"),
    pymysql.err.DataError(1406, "Data too long for column 'id' at row 1"),
    pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax"),
    ConnectionResetError(104, "Connection reset by peer"),  # not the driver's
]

SQLITE_DISCONNECTS: list[BaseException] = [
    sqlite3.ProgrammingError("Cannot operate on a closed database.")
]
SQLITE_OTHERS: list[BaseException] = [
    sqlite3.OperationalError("database is locked"),  # transient, not a drop
    sqlite3.IntegrityError("UNIQUE constraint failed: workflow_executions.id"),
    sqlite3.OperationalError("unable to open database file"),
]


def _wrapped(orig: Exception) -> DBAPIError:
    """How the store sees a driver error: wrapped by SQLAlchemy (or by the driver path)."""
    return DBAPIError.instance(None, None, orig, Exception)  # type: ignore[return-value]


CASES: list[tuple[Any, list[BaseException], list[BaseException]]] = [
    (PostgreSQLDialect(), PG_DISCONNECTS, PG_OTHERS),
    (MySQLDialect(), MYSQL_DISCONNECTS, MYSQL_OTHERS),
    (SQLiteDialect(), SQLITE_DISCONNECTS, SQLITE_OTHERS),
]


@pytest.mark.parametrize(
    ("dialect", "drops", "others"), CASES, ids=lambda c: getattr(c, "name", "")
)
def test_classification_of_real_error_texts(
    dialect: Any, drops: list[Exception], others: list[Exception]
) -> None:
    for exc in drops:
        assert dialect.is_disconnect(exc), exc
        assert dialect.is_disconnect(_wrapped(exc)), exc
    for exc in others:
        assert not dialect.is_disconnect(exc), exc
        if isinstance(exc, (psycopg.Error, pymysql.err.Error, sqlite3.Error)):
            assert not dialect.is_disconnect(_wrapped(exc)), exc


def test_a_connection_sqlalchemy_invalidated_is_a_disconnect_everywhere() -> None:
    exc = DBAPIError.instance(
        None, None, RuntimeError("whatever"), Exception, connection_invalidated=True
    )
    for dialect in (PostgreSQLDialect(), MySQLDialect(), SQLiteDialect()):
        assert dialect.is_disconnect(exc)


# -- live: the real errors, made on the servers --------------------------------------------
def _refused_port() -> tuple[socket.socket, int]:
    """A port that refuses connections (bound, not listening)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def _error(fn: Callable[[], Any]) -> DBAPIError:
    with pytest.raises(DBAPIError) as info:
        fn()
    return info.value


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_classification_of_live_errors(backend: str, store_urls: StoreURLs) -> None:
    url = store_urls.url(backend)
    dialect: Any = PostgreSQLDialect() if backend == "postgres" else MySQLDialect()
    drops: dict[str, DBAPIError] = {}
    others: dict[str, DBAPIError] = {}

    holder, port = _refused_port()
    try:
        engine = create_engine(make_url(url).set(host="127.0.0.1", port=port), poolclass=NullPool)
        drops["refused"] = _error(engine.connect)
        engine.dispose()
    finally:
        holder.close()

    with TCPProxy.for_url(url) as proxy:
        engine = create_engine(proxy.url_for(url), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                proxy.cut()
                drops["cut"] = _error(lambda: conn.execute(text("SELECT 1")))
            proxy.refuse(5)
            drops["refused by the proxy"] = _error(engine.connect)
        finally:
            engine.dispose()

    engine = create_engine(url, poolclass=NullPool)
    admin = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn, admin.connect() as other:
            if backend == "postgres":
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            else:
                pid = conn.execute(text("SELECT CONNECTION_ID()")).scalar_one()
                other.exec_driver_sql(f"KILL {int(pid)}")
            drops["killed by the server"] = _error(lambda: conn.execute(text("SELECT 1")))
        with engine.connect() as conn:
            table = "hydra_disconnect_probe"
            conn.execute(text(f"CREATE TEMPORARY TABLE {table} (id INTEGER PRIMARY KEY)"))
            conn.execute(text(f"INSERT INTO {table} VALUES (1)"))
            others["duplicate key"] = _error(
                lambda: conn.execute(text(f"INSERT INTO {table} VALUES (1)"))
            )
            conn.rollback()
            others["syntax"] = _error(lambda: conn.execute(text("SELEC 1")))
            conn.rollback()
        stranger = create_engine(
            make_url(url).set(username="nosuchuser", password="x"), poolclass=NullPool
        )
        others["unknown user"] = _error(stranger.connect)
        stranger.dispose()
    finally:
        engine.dispose()
        admin.dispose()

    for what, exc in drops.items():
        assert dialect.is_disconnect(exc), (what, exc.orig)
        assert dialect.is_disconnect(exc.orig), (what, exc.orig)  # the driver's own error too
    for what, exc in others.items():
        assert not dialect.is_disconnect(exc), (what, exc.orig)

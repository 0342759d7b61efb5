"""MySQL 8 / MariaDB 10.6+ (PyMySQL): SKIP LOCKED claims, GET_LOCK-serialised migrations.

The engine runs at READ COMMITTED (``engine_options``) so that a plain read inside a
transaction sees the latest commits, as on PostgreSQL; fenced UPDATEs and
``FOR UPDATE`` reads are locking reads and always see the newest row version.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, text
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from hydra.store.sql.dialect import Dialect

MIGRATION_LOCK = "hydra_migrate"

# The server's current time in Unix microseconds.
#
# SYSDATE(6), not NOW(6): NOW() (like UTC_TIMESTAMP(), CURRENT_TIMESTAMP) is the time the
# statement started (inside a stored routine or trigger, the calling statement's) and
# follows a session's ``SET timestamp``; SYSDATE() is read when it is evaluated and ignores
# ``SET timestamp`` (unless the server runs with --sysdate-is-now, when it is NOW(): still
# right for this one short statement).
#
# SYSDATE() is a local time in the session's time zone. Converting it back with
# UNIX_TIMESTAMP() is ambiguous in the hour a DST zone repeats (hydra's time would jump by
# an hour), so the session's UTC offset is taken from NOW(6) - UTC_TIMESTAMP(6): both are
# the same instant (the statement's start), so their difference is the offset in force,
# without ambiguity. TIMESTAMPDIFF from the epoch is plain calendar arithmetic.
_DATABASE_TIME_SQL = (
    "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', SYSDATE(6))"
    " - TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), NOW(6))"
)


def safe_value_bytes(max_allowed_packet: int) -> int:
    """The largest value hydra writes on a server with this ``max_allowed_packet``.

    Over the limit the server does not answer with an error the driver can report: it
    drops the connection ("MySQL server has gone away"), which looks like a restart and
    was retried for 30 s. Measured on MariaDB 10.11 with the 16 MiB default: a single
    value of half the packet or more is refused, and PyMySQL sends a value as an escaped
    string literal, up to twice its size. So: half the packet, less 512 KiB for the rest
    of the statement (names, an error message); a row holding two such values (input
    and output) is then still read back under the packet size.
    """
    return max(max_allowed_packet // 2 - 512 * 1024, max_allowed_packet // 4)


class MySQLDialect(Dialect):
    name = "mysql"
    driver_extra = "mysql"
    parenthesized_unions = True

    def engine_options(self, url: URL) -> dict[str, Any]:
        return {**super().engine_options(url), "isolation_level": "READ COMMITTED"}

    # The hot path stays on SQLAlchemy Core (driver_options: None, CoreTx): MySQL is not
    # the speed target, and keeping one backend on Core keeps that path tested by the
    # whole suite. No fused statements: there is no UPDATE ... RETURNING.

    def database_time_sql(self) -> str | None:
        return _DATABASE_TIME_SQL

    def lock_for_claim(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update(skip_locked=True)

    def insert_ignoring(self, table: Any) -> Insert:
        # IGNORE also turns other errors into warnings; the rows inserted this way (queue
        # slots) hold only values hydra validated.
        return mysql_insert(table).prefix_with("IGNORE")

    def upsert(self, table: Any, values: dict[str, Any], keys: list[str]) -> Insert:
        stmt = mysql_insert(table).values(**values)
        return stmt.on_duplicate_key_update({k: stmt.inserted[k] for k in values if k not in keys})

    def lock_migrations(self, conn: Connection) -> None:
        got = conn.execute(text("SELECT GET_LOCK(:n, 120)"), {"n": MIGRATION_LOCK}).scalar()
        if got != 1:
            raise TimeoutError("timed out waiting for another process's hydra migration")

    def unlock_migrations(self, conn: Connection) -> None:
        conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": MIGRATION_LOCK})

    def is_driver_disconnect(self, exc: BaseException | None) -> bool:
        return is_disconnect_error(exc)

    def is_transient(self, exc: BaseException) -> bool:
        args: tuple[Any, ...] = tuple(getattr(getattr(exc, "orig", None), "args", ()))
        # 1213 deadlock, 1205 lock wait timeout
        return isinstance(exc, DBAPIError) and len(args) > 0 and args[0] in (1213, 1205)

    def max_value_bytes(self, conn: Connection) -> int | None:
        packet = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar()
        return safe_value_bytes(int(packet)) if packet is not None else None


# Client and server error codes of a lost or refused connection (PyMySQL puts the code
# first in ``args``): 2002 can't connect (socket), 2003 can't connect to the server
# (refused, unreachable), 2006 server has gone away, 2013 lost connection during a query,
# 2014 commands out of sync (the connection is unusable), 2055 lost connection at a
# packet, 1053 server shutdown in progress, 1927 connection killed (MariaDB), 4031 the
# server closed an idle client (MySQL 8). tests/unit/test_disconnects.py holds real ones.
_DISCONNECT_CODES = frozenset({2002, 2003, 2006, 2013, 2014, 2055, 1053, 1927, 4031})


def is_disconnect_error(exc: BaseException | None) -> bool:
    """A driver exception (PyMySQL, or mysqlclient: the same codes) says the connection
    is gone or could not be made."""
    # PEP 249 exceptions, recognised by their class names: the driver is not imported
    # here (PyMySQL ships no type information, and this module serves any MySQL driver).
    if exc is None:
        return False
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Error" not in names:
        return False
    code = exc.args[0] if exc.args else None
    if code in _DISCONNECT_CODES:
        return True
    # PyMySQL raises InterfaceError(0, "") for any use of a connection it already closed
    # (after a lost connection).
    return "InterfaceError" in names and code in (0, None)

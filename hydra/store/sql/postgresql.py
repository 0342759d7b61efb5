"""PostgreSQL (psycopg 3): SKIP LOCKED claims, LISTEN/NOTIFY wake-ups, locked migrations."""

from __future__ import annotations

import contextlib
import hashlib
import select
import threading
from typing import Any

from sqlalchemy import Connection, Engine, Select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from hydra.store.base import WakeListener

# pg_advisory_lock key for migrations: any fixed 64-bit number unlikely to clash.
MIGRATION_LOCK_KEY = 0x687964726131  # "hydra1"


def channel_name(namespace: str) -> str:
    """A NOTIFY channel per namespace; hashed so any namespace string is a safe identifier."""
    return "hydra_" + hashlib.sha1(namespace.encode()).hexdigest()[:16]


class PostgreSQLDialect:
    name = "postgresql"
    supports_notify = True

    def prepare_engine(self, engine: Engine) -> None:
        pass

    def write_options(self) -> dict[str, Any]:
        return {}

    def lock_for_claim(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update(skip_locked=True)

    def upsert(self, table: Any, values: dict[str, Any], keys: list[str]) -> Insert:
        stmt = pg_insert(table).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=keys,
            set_={k: stmt.excluded[k] for k in values if k not in keys},
        )

    def lock_migrations(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})

    def unlock_migrations(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})

    def notify(self, conn: Connection, namespace: str) -> None:
        # Delivered only when the surrounding transaction commits, so a worker never wakes
        # for a row it cannot yet see.
        conn.execute(text("SELECT pg_notify(:c, '')"), {"c": channel_name(namespace)})

    def open_listener(self, engine: Engine, namespace: str) -> WakeListener | None:
        return PostgresListener(engine, channel_name(namespace))

    def is_transient(self, exc: BaseException) -> bool:
        code = getattr(getattr(exc, "orig", None), "sqlstate", None)
        # 40001 serialization_failure, 40P01 deadlock_detected, 55P03 lock_not_available
        return isinstance(exc, DBAPIError) and code in {"40001", "40P01", "55P03"}


class PostgresListener:
    """A dedicated autocommit connection that LISTENs on the namespace's channel."""

    def __init__(self, engine: Engine, channel: str) -> None:
        self._engine = engine
        self._channel = channel
        self._lock = threading.Lock()
        self._conn: Any = None
        self._raw: Any = None
        self._closed = False
        # Subscribe now, so work started before the first wait() still wakes us.
        try:
            self._conn = self._connect()
        except Exception:
            self._conn = None  # wait() reconnects; polling covers the gap

    def _connect(self) -> Any:
        raw = self._engine.raw_connection()
        dbapi = raw.driver_connection
        assert dbapi is not None
        dbapi.autocommit = True
        dbapi.execute(f'LISTEN "{self._channel}"')
        self._raw = raw
        return dbapi

    def wait(self, timeout_s: float) -> bool:
        with self._lock:
            if self._closed:
                return False
            try:
                if self._conn is None:
                    self._conn = self._connect()
                conn = self._conn
                # Drain what already arrived, then block on the socket.
                got = any(True for _ in conn.notifies(timeout=0))
                if got:
                    return True
                ready, _, _ = select.select([conn.fileno()], [], [], timeout_s)
                if not ready:
                    return False
                return any(True for _ in conn.notifies(timeout=0))
            except Exception:
                # The server restarted or the connection dropped: reconnect next time and
                # let the caller fall back to polling meanwhile.
                self._drop()
                return False

    def _drop(self) -> None:
        raw, self._conn = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.invalidate()
            self._raw = None

    def close(self) -> None:
        self._closed = True
        with self._lock:
            self._drop()

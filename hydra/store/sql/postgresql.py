"""PostgreSQL (psycopg 3): SKIP LOCKED claims, LISTEN/NOTIFY wake-ups, locked migrations."""

from __future__ import annotations

import contextlib
import hashlib
import select
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Update,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    text,
    update,
)
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from hydra.status import Status
from hydra.store.base import WakeListener
from hydra.store.sql.driver import DriverOptions

# pg_advisory_lock key for migrations: any fixed 64-bit number unlikely to clash.
MIGRATION_LOCK_KEY = 0x687964726131  # "hydra1"


def channel_name(namespace: str) -> str:
    """A NOTIFY channel per namespace; hashed so any namespace string is a safe identifier."""
    return "hydra_" + hashlib.sha1(namespace.encode()).hexdigest()[:16]


def finished_channel_name(namespace: str) -> str:
    """The namespace's channel for finished executions (payload: the execution id).

    md5, not sha1: the completion computes the same name in SQL (``md5`` is built in).
    """
    return FINISHED_PREFIX + hashlib.md5(namespace.encode()).hexdigest()[:16]


FINISHED_PREFIX = "hydra_done_"


class PostgreSQLDialect:
    name = "postgresql"
    supports_notify = True

    def prepare_engine(self, engine: Engine) -> None:
        pass

    def database_time_sql(self) -> str | None:
        # clock_timestamp(): the time when it is evaluated. now() (= transaction_timestamp())
        # and statement_timestamp() are frozen at the start of the transaction / statement.
        # A timestamptz's epoch is absolute: no session time zone is involved.
        return "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"

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

    def fenced_upsert(
        self, fence: Update, table: Any, columns: Sequence[str], keys: list[str]
    ) -> Insert | None:
        """``WITH owned AS (fence RETURNING id) INSERT INTO table SELECT :s_<col>... FROM
        owned ON CONFLICT (keys) DO UPDATE ... RETURNING``: one statement, returning one
        row if the fenced UPDATE matched, none otherwise. The UPDATE takes the execution's row lock
        (a concurrent takeover waits, or makes it re-check its WHERE and match nothing)
        and the INSERT only sees its RETURNING, so fencing is that of the UPDATE alone.
        """
        owned = fence.returning(fence.table.c.id).cte("owned")
        # Typed casts: in INSERT ... SELECT, PostgreSQL does not infer parameter types
        # from the target columns (a NULL bytea would otherwise be text).
        values = [cast(bindparam(f"s_{c}"), table.c[c].type) for c in columns]
        stmt = pg_insert(table).from_select(list(columns), sql_select(*values).select_from(owned))
        stmt = stmt.on_conflict_do_update(
            index_elements=keys,
            set_={c: stmt.excluded[c] for c in columns if c not in keys},
        )
        # RETURNING: the row count of this INSERT ... SELECT is not reported (-1).
        return stmt.add_cte(owned, nest_here=True).returning(table.c[keys[0]])

    def fused_claim(self, pick: Select[Any]) -> Update | None:
        """The claim as one statement: ``UPDATE ... FROM (pick FOR UPDATE SKIP LOCKED)
        RETURNING`` the claimed rows and, after them, each one's previous status, attempt
        and wake time (what ``take_lease`` reads).

        The SET clause is ``hydra.store.base.take_lease`` in SQL (PostgreSQL evaluates
        every SET expression on the old row); the store contract's
        ``check_claim_is_take_lease`` holds the two to the same result. Bind parameters:
        ``b_owner``, ``b_now``, ``b_expires``, and the pick's own.
        """
        table = pick.selected_columns.id.table
        c = table.c
        picked = (
            pick.with_only_columns(c.id, c.status, c.attempt, c.wake_at)
            .with_for_update(skip_locked=True)
            .subquery("picked")
        )
        now: Any = bindparam("b_now")
        expires: Any = bindparam("b_expires")
        started = func.coalesce(c.started_at, now)
        timeout_at = func.coalesce(c.timeout_at, started + c.timeout_ms)
        return (
            update(table)
            .where(c.id == picked.c.id)
            .values(
                status=Status.RUNNING.value,
                lease_owner=bindparam("b_owner"),
                lease_token=c.lease_token + 1,
                attempt=case(
                    (c.attempt == 0, 1),
                    (c.status == Status.RUNNING.value, c.attempt + 1),
                    else_=c.attempt,
                ),
                lease_expires_at=expires,
                started_at=started,
                timeout_at=timeout_at,
                # LEAST ignores NULLs: no timeout leaves the lease expiry.
                wake_at=func.least(expires, timeout_at),
                sleep_until=null(),
                next_retry_at=null(),
                updated_at=now,
            )
            .returning(*table.c, picked.c.status, picked.c.attempt, picked.c.wake_at)
        )

    def lock_migrations(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})

    def unlock_migrations(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})

    def notify(self, conn: Connection, namespace: str) -> None:
        # Delivered only when the surrounding transaction commits, so a worker never wakes
        # for a row it cannot yet see.
        conn.execute(text("SELECT pg_notify(:c, '')"), {"c": channel_name(namespace)})

    def notifying_insert(self, insert: Insert) -> Any:
        """``WITH ins AS (INSERT ... RETURNING id) SELECT pg_notify(:n_channel, '') FROM
        ins``: the row and the wake-up in one statement (delivered on commit)."""
        table = insert.table
        ins = insert.returning(table.c.id).cte("ins")
        return sql_select(func.pg_notify(bindparam("n_channel"), literal(""))).select_from(ins)

    def notify_params(self, namespace: str) -> dict[str, Any]:
        return {"n_channel": channel_name(namespace)}

    def notify_finished(self, conn: Connection, namespace: str, execution_id: str) -> None:
        conn.execute(
            text("SELECT pg_notify(:c, :id)"),
            {"c": finished_channel_name(namespace), "id": execution_id},
        )

    def notifying_finish(self, finish: Update) -> Any:
        """The completion UPDATE that also NOTIFYs the namespace's "finished" channel.

        One statement: ``WITH done AS (UPDATE ... RETURNING id, namespace) SELECT
        pg_notify(...) FROM done``; it returns one row per row updated (0 = not owned).
        The notification is delivered when the transaction commits.
        """
        table = finish.table
        done = finish.returning(table.c.id, table.c.namespace).cte("done")
        channel = literal(FINISHED_PREFIX) + func.left(func.md5(done.c.namespace), 16)
        return sql_select(func.pg_notify(channel, done.c.id)).select_from(done)

    def open_listener(
        self, engine: Engine, namespace: str, channel: str = "work"
    ) -> WakeListener | None:
        if channel == "finished":
            # One per engine (hydra.finished.FinishedWatch), closed when its waits stop: its
            # connection is closed then, not returned to a pool that may be disposed by now.
            return PostgresListener(engine, finished_channel_name(namespace))
        return PostgresListener(engine, channel_name(namespace))

    def is_transient(self, exc: BaseException) -> bool:
        code = getattr(getattr(exc, "orig", None), "sqlstate", None)
        # 40001 serialization_failure, 40P01 deadlock_detected, 55P03 lock_not_available
        return isinstance(exc, DBAPIError) and code in {"40001", "40P01", "55P03"}

    def max_value_bytes(self, conn: Connection) -> int | None:
        return None  # values up to 1 GB; hydra's max_payload_bytes is far below

    def driver_options(self) -> DriverOptions | None:
        return DriverOptions(
            begin_write="BEGIN",
            begin_read="BEGIN",
            # One statement needs no BEGIN/COMMIT round trips: in autocommit mode it is
            # its own transaction (a checkpoint, a completion).
            single_statement_autocommit=True,
            on_checkout=_autocommit,
            is_broken=_is_broken,
        )


def _autocommit(conn: Any) -> None:
    conn.autocommit = True


def _is_broken(conn: Any) -> bool:
    return bool(conn.closed or conn.broken)


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
            self._drop()  # closed, not pooled: its session is LISTENing

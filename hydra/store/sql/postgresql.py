"""PostgreSQL (psycopg 3): SKIP LOCKED claims, LISTEN/NOTIFY wake-ups, locked migrations."""

from __future__ import annotations

import contextlib
import hashlib
import select
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Text,
    Update,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    text,
    true,
    update,
)
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import NullType

from hydra.status import Status
from hydra.store.base import WakeListener
from hydra.store.queues import RUNNING_LANE
from hydra.store.sql.dialect import Dialect
from hydra.store.sql.driver import DriverOptions, Tx

# pg_advisory_lock key for migrations: any fixed 64-bit number unlikely to clash.
MIGRATION_LOCK_KEY = 0x687964726131  # "hydra1"
# libpq waits for a connection as long as the OS does (minutes, towards a host that drops
# packets): a try must fail in bounded time for the store's reconnect window to be
# bounded. PyMySQL's own default is the same 10 s.
CONNECT_TIMEOUT_S = 10


def channel_name(namespace: str) -> str:
    """A NOTIFY channel per namespace; hashed so any namespace string is a safe identifier."""
    return "hydra_" + hashlib.sha1(namespace.encode()).hexdigest()[:16]


def finished_channel_name(namespace: str) -> str:
    """The namespace's channel for finished executions (payload: the execution id).

    md5, not sha1: the completion computes the same name in SQL (``md5`` is built in).
    """
    return FINISHED_PREFIX + hashlib.md5(namespace.encode()).hexdigest()[:16]


FINISHED_PREFIX = "hydra_done_"


def events_channel_name(namespace: str) -> str:
    """The namespace's channel for published events (payload: the execution id); named
    as the finished channel is (``set_event`` computes it in SQL from the row)."""
    return EVENTS_PREFIX + hashlib.md5(namespace.encode()).hexdigest()[:16]


EVENTS_PREFIX = "hydra_events_"
# The "work" channel's NOTIFY (``notify``), built once: the driver path caches statements
# by identity.
# The claim lanes of several workflows in one statement, each with its earliest wake time
# (its first entry: NULLs sort last): a loose index scan of ix_workflow_executions_due
# written as a recursive CTE (PostgreSQL has no skip scan for this). Per name, each step
# is one index probe for the first entry after the last lane found; finished rows
# (claim_lane NULL) are never reached.
_LANES = text(
    """
    WITH RECURSIVE lanes(name, lane, wake) AS (
        SELECT n.name, f.claim_lane, f.wake_at
        FROM unnest(CAST(:l_names AS varchar[])) AS n(name)
        CROSS JOIN LATERAL (
            SELECT e.claim_lane, e.wake_at FROM workflow_executions e
            WHERE e.namespace = :l_ns AND e.workflow_name = n.name AND e.claim_lane > ''
            ORDER BY e.claim_lane, e.wake_at LIMIT 1) AS f
      UNION ALL
        SELECT l.name, f.claim_lane, f.wake_at
        FROM lanes l
        CROSS JOIN LATERAL (
            SELECT e.claim_lane, e.wake_at FROM workflow_executions e
            WHERE e.namespace = :l_ns AND e.workflow_name = l.name AND e.claim_lane > l.lane
            ORDER BY e.claim_lane, e.wake_at LIMIT 1) AS f
    )
    SELECT name, lane, wake FROM lanes
    """
)
_TRY_SLOT_LOCK = text("SELECT pg_try_advisory_xact_lock(:k)")
_NOTIFY_WORK = text("SELECT pg_notify(:c, '')")
# set_event's NOTIFY: the execution's namespace read from its row (the caller has only its
# id), the channel named as events_channel_name names it. Delivered on commit.
_NOTIFY_EVENT = text(
    "SELECT pg_notify(CAST(:prefix AS text) || left(md5(namespace), 16), id)"
    " FROM workflow_executions WHERE id = :id"
)


def _upsert_from(
    source: Any, table: Any, columns: Sequence[str], keys: list[str], prefix: str
) -> Insert:
    """``INSERT INTO table SELECT :<prefix><col>... FROM source ON CONFLICT (keys) DO
    UPDATE``: one row per row of ``source`` (a fenced UPDATE's RETURNING)."""
    # Typed casts: in INSERT ... SELECT, PostgreSQL does not infer parameter types
    # from the target columns (a NULL bytea would otherwise be text).
    values = [cast(bindparam(f"{prefix}{c}"), table.c[c].type) for c in columns]
    stmt = pg_insert(table).from_select(list(columns), sql_select(*values).select_from(source))
    return stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c: stmt.excluded[c] for c in columns if c not in keys},
    )


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    driver_extra = "postgres"
    supports_notify = True

    def engine_options(self, url: URL) -> dict[str, Any]:
        options = super().engine_options(url)
        if "connect_timeout" not in url.query:
            options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        return options

    def database_time_sql(self) -> str | None:
        # clock_timestamp(): the time when it is evaluated. now() (= transaction_timestamp())
        # and statement_timestamp() are frozen at the start of the transaction / statement.
        # A timestamptz's epoch is absolute: no session time zone is involved.
        return "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"

    def lock_for_claim(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update(skip_locked=True)

    def upsert(self, table: Any, values: dict[str, Any], keys: list[str]) -> Insert:
        stmt = pg_insert(table).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=keys,
            set_={k: stmt.excluded[k] for k in values if k not in keys},
        )

    def fenced_upsert(
        self,
        fence: Update,
        table: Any,
        columns: Sequence[str],
        keys: list[str],
        also: tuple[Any, Sequence[str], list[str]] | None = None,
    ) -> Insert | None:
        """``WITH owned AS (fence RETURNING id) INSERT INTO table SELECT :s_<col>... FROM
        owned ON CONFLICT (keys) DO UPDATE ... RETURNING``: one statement, returning one
        row if the fenced UPDATE matched, none otherwise. The UPDATE takes the execution's row lock
        (a concurrent takeover waits, or makes it re-check its WHERE and match nothing)
        and the INSERT only sees its RETURNING, so fencing is that of the UPDATE alone.

        ``also``: a second ``INSERT ... SELECT :a_<col>... FROM owned ON CONFLICT DO
        UPDATE`` as a data-modifying CTE after ``owned``. PostgreSQL runs every
        data-modifying CTE to completion whether or not the main statement reads it, and
        this one sees ``owned``'s rows only if the fence matched.
        """
        owned = fence.returning(fence.table.c.id).cte("owned")
        stmt = _upsert_from(owned, table, columns, keys, "s_")
        ctes = [owned]
        if also is not None:
            also_table, also_columns, also_keys = also
            written = _upsert_from(owned, also_table, also_columns, also_keys, "a_")
            ctes.append(written.cte("also_written"))
        # RETURNING: the row count of this INSERT ... SELECT is not reported (-1).
        return stmt.add_cte(*ctes, nest_here=True).returning(table.c[keys[0]])

    def fused_claim(
        self, pick: Callable[[Any, Any], Select[Any]], pairs: Sequence[tuple[Any, Any]]
    ) -> Update | None:
        """The claim as one statement: ``UPDATE ... FROM (picked) RETURNING`` the claimed
        rows and, after them, each one's previous status, attempt and wake time (what
        ``take_lease`` reads).

        ``picked`` locks the rows it returns with ``FOR UPDATE SKIP LOCKED``. One (name,
        lane) pair: ``pick(name, lane)`` itself, an ordered range scan of
        ix_workflow_executions_due (namespace, workflow_name, claim_lane, wake_at,
        created_at, id) stopped after ``c_limit`` rows. Several pairs::

            SELECT p.* FROM unnest(ARRAY[:c_name_0, ...], ARRAY[:c_lane_0, ...])
                              AS n(name, lane)
              CROSS JOIN LATERAL (SELECT ... WHERE namespace = :c_ns
                                    AND workflow_name = n.name AND claim_lane = n.lane
                                    AND wake_at <= :c_now
                                  ORDER BY wake_at, created_at, id LIMIT :c_limit
                                  FOR UPDATE SKIP LOCKED) AS p
            ORDER BY p.priority DESC, p.wake_at, p.created_at, p.id LIMIT :c_limit

        The same range scan per pair (a Nested Loop over the pairs, each an Index Scan
        of ix_workflow_executions_due under a LockRows and a Limit), then the first
        ``c_limit`` in claim order (``hydra.store.queues.order_key``). Rows locked but
        not among the first ``c_limit`` are released when the statement (its own
        transaction) ends; meanwhile a concurrent claimer skips them, as it skips any row
        being claimed. Only lanes that take no slot are claimed this way
        (``lane_is_unlimited``).

        The SET clause is ``hydra.store.base.take_lease`` in SQL (PostgreSQL evaluates
        every SET expression on the old row); the store contract's
        ``check_claim_is_take_lease`` holds the two to the same result. Bind parameters:
        ``b_owner``, ``b_now``, ``b_expires``, and the pick's own.
        """
        first = pick(*pairs[0])
        table = first.selected_columns.id.table
        c = table.c
        picked: Any
        if len(pairs) == 1:
            picked = (
                first.with_only_columns(c.id, c.status, c.attempt, c.wake_at, c.priority)
                .with_for_update(skip_locked=True)
                .subquery("picked")
            )
        else:
            n = (
                func.unnest(array([p[0] for p in pairs]), array([p[1] for p in pairs]))
                .table_valued("name", "lane")
                .render_derived(name="n")
            )
            p = (
                pick(n.c.name, n.c.lane)
                .with_only_columns(c.id, c.status, c.attempt, c.wake_at, c.created_at, c.priority)
                .with_for_update(skip_locked=True)
                .lateral("p")
            )
            picked = (
                sql_select(p.c.id, p.c.status, p.c.attempt, p.c.wake_at, p.c.priority)
                .select_from(n)
                .join(p, true())
                .order_by(p.c.priority.desc(), p.c.wake_at, p.c.created_at, p.c.id)
                .limit(bindparam("c_limit"))
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
                claim_lane=RUNNING_LANE,
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

    def notify(self, tx: Tx, namespace: str) -> None:
        # Delivered only when the surrounding transaction commits, so a worker never wakes
        # for a row it cannot yet see.
        tx.rows(_NOTIFY_WORK, {"c": channel_name(namespace)})

    def insert_ignoring(self, table: Any) -> Insert:
        return pg_insert(table).on_conflict_do_nothing()

    def ids_in(self, column: Any, name: str) -> ColumnElement[bool]:
        # One array parameter (= ANY), sent as the text of an array literal
        # (``ids_param``) that the server parses: a purge batch's thousand ids as one
        # placeholder. As an expanding IN, rendering and parsing a thousand placeholders
        # per statement cost a purge batch 78 ms of Python CPU, and psycopg's dump of a
        # list as an array 36 ms (measured), which a worker's claims in the same process
        # waited for on the GIL.
        # The bind has no type, so no ``::TEXT`` of its own: CAST($1 AS TEXT[]) makes
        # the server read the parameter as an array once, a constant the executor
        # hashes. Cast from text first, the array was parsed again for every row a scan
        # read: 6 s for a batch of 1,000 against 10,000 rows (measured).
        ids = cast(bindparam(name, type_=NullType()), ARRAY(Text))
        matched: ColumnElement[bool] = column == any_(ids)
        return matched

    def ids_param(self, ids: Sequence[str]) -> Any:
        # Each element double-quoted, with its backslashes and double quotes escaped.
        quoted = (i.replace("\\", "\\\\").replace('"', '\\"') for i in ids)
        return "{" + ",".join(f'"{q}"' for q in quoted) + "}"

    def lanes_query(self) -> Any:
        return _LANES

    def try_lock_slot(self, tx: Tx, key: int) -> bool:
        # A transaction-level advisory lock per slot, held until the claim commits. An
        # INSERT ... ON CONFLICT DO NOTHING of a slot another open transaction inserted
        # waits for that transaction; two claimers each holding one slot and inserting
        # the other's would wait for each other until deadlock_timeout (1 s) and one
        # aborts. Whoever does not get the lock tries the next number instead.
        return bool(tx.rows(_TRY_SLOT_LOCK, {"k": key})[0][0])

    def insert_if_absent(self, table: Any, values: dict[str, Any]) -> Insert | None:
        # No conflict target: any unique key (a message's id, its idempotency key).
        return pg_insert(table).values(values).on_conflict_do_nothing().returning(table.c.id)

    def waking_insert(self, insert: Insert, wake: Update) -> Any:
        """``WITH ins AS (insert RETURNING id), woke AS (wake AND EXISTS (SELECT FROM ins)
        RETURNING id) SELECT ins.id, (SELECT pg_notify(:n_channel, '') FROM woke) FROM
        ins``. ``woke`` reads ``ins``, so it runs after the insert and only if a row was
        inserted; the notification is sent only if it woke the execution, and delivered
        on commit. Every CTE shares the statement's snapshot: ``wake``'s WHERE must be
        true of a row this transaction has already locked (a later statement's snapshot
        then holds its latest committed version)."""
        ins = insert.cte("ins")
        woke = wake.where(exists(sql_select(ins.c.id))).returning(wake.table.c.id).cte("woke")
        notified = (
            sql_select(func.pg_notify(bindparam("n_channel"), literal("")))
            .select_from(woke)
            .scalar_subquery()
        )
        return sql_select(ins.c.id, notified)

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

    def notify_event(self, tx: Tx, execution_id: str) -> None:
        tx.rows(_NOTIFY_EVENT, {"prefix": EVENTS_PREFIX, "id": execution_id})

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
        if channel == "events":
            return PostgresListener(engine, events_channel_name(namespace))
        return PostgresListener(engine, channel_name(namespace))

    def is_driver_disconnect(self, exc: BaseException | None) -> bool:
        return is_disconnect_error(exc)

    def is_transient(self, exc: BaseException) -> bool:
        code = getattr(getattr(exc, "orig", None), "sqlstate", None)
        # 40001 serialization_failure, 40P01 deadlock_detected, 55P03 lock_not_available
        return isinstance(exc, DBAPIError) and code in {"40001", "40P01", "55P03"}

    # max_value_bytes: None, values up to 1 GB; hydra's max_payload_bytes is far below.

    def driver_options(self) -> DriverOptions | None:
        return DriverOptions(
            begin_write="BEGIN",
            begin_read="BEGIN",
            # One statement needs no BEGIN/COMMIT round trips: in autocommit mode it is
            # its own transaction (a checkpoint, a completion).
            single_statement_autocommit=True,
            on_checkout=_autocommit,
            is_broken=_is_broken,
            is_disconnect=is_disconnect_error,
        )


# SQLSTATEs of a lost or refused connection: class 08 (connection_exception, e.g. 08006
# connection_failure, 08001 sqlclient_unable_to_establish_sqlconnection), 57P01
# admin_shutdown (the server is stopping: "terminating connection due to administrator
# command"), 57P02 crash_shutdown, 57P03 cannot_connect_now ("the database system is
# starting up").
_DISCONNECT_STATES = ("57P01", "57P02", "57P03")
# libpq reports failures to connect and lost connections without a SQLSTATE, in these
# words (tests/unit/test_disconnects.py holds real examples). Other errors at connect time
# (a wrong password, an unknown database) match none of them and are not retried.
_DISCONNECT_TEXTS = (
    "connection refused",  # nothing listens (the server is down)
    "server closed the connection",  # the server went away mid-session
    "connection reset",
    "connection timed out",
    "timeout expired",  # connect_timeout
    "no route to host",
    "network is unreachable",
    "could not receive data from server",
    "could not send data to server",
    "consuming input failed",
    "sending query failed",
    "the connection is closed",  # psycopg: the connection was lost earlier
    "the connection is lost",
    "terminating connection",
    "the database system is",  # ... starting up / shutting down / in recovery mode
    "ssl syscall error",
    "ssl connection has been closed",
)


def is_disconnect_error(exc: BaseException | None) -> bool:
    """A psycopg exception says the connection is gone or could not be made."""
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is not None:
        return state.startswith("08") or state in _DISCONNECT_STATES
    if not isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return False
    text = str(exc).lower()
    return any(t in text for t in _DISCONNECT_TEXTS)


def _autocommit(conn: Any) -> None:
    conn.autocommit = True


def _is_broken(conn: Any) -> bool:
    return bool(conn.closed or conn.broken)


class PostgresListener:
    """A dedicated autocommit connection that LISTENs on the namespace's channel.

    It survives the server going away: a dropped connection is reopened on a later
    ``wait``, with pauses growing to 1 s while connecting fails (within ``wait``'s
    timeout, so a caller's loop does not spin). NOTIFYs sent while nobody listened are
    lost, so the first ``wait`` after a reconnect returns True: the caller looks for work
    it may have missed.
    """

    def __init__(self, engine: Engine, channel: str) -> None:
        self._engine = engine
        self._channel = channel
        self._lock = threading.Lock()
        self._conn: Any = None
        self._raw: Any = None
        self._closed = threading.Event()
        # Not listening since the last successful LISTEN: notifications may be lost.
        self._missed = False
        self._retry_pause = 0.0
        # Subscribe now, so work started before the first wait() still wakes us.
        try:
            self._conn = self._connect()
        except Exception:
            self._conn = None  # wait() reconnects; polling covers the gap
            self._missed = True

    def _connect(self) -> Any:
        raw = self._engine.raw_connection()
        try:
            dbapi = raw.driver_connection
            assert dbapi is not None
            dbapi.autocommit = True
            dbapi.execute(f'LISTEN "{self._channel}"')
        except BaseException:
            with contextlib.suppress(Exception):
                raw.invalidate()  # a pooled connection that died while idle: not reused
            raise
        self._raw = raw
        return dbapi

    def wait(self, timeout_s: float) -> bool:
        pause = 0.0
        with self._lock:
            if self._closed.is_set():
                return False
            try:
                if self._conn is None:
                    self._conn = self._connect()
                    self._retry_pause = 0.0
                    if self._missed:
                        self._missed = False
                        return True  # back after a gap: something may have come meanwhile
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
                # The server restarted or the connection dropped: reconnect on a later
                # wait, after a pause if reconnecting is what failed (the caller falls
                # back to polling meanwhile).
                reconnecting = self._conn is None
                self._drop()
                self._missed = True
                if reconnecting:
                    self._retry_pause = min(max(self._retry_pause * 2, 0.05), 1.0)
                    pause = min(self._retry_pause, timeout_s)
        # Outside the lock, so close() is not kept waiting.
        if pause > 0:
            self._closed.wait(pause)
        return False

    def _drop(self) -> None:
        raw, self._conn = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.invalidate()
            self._raw = None

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._drop()  # closed, not pooled: its session is LISTENing

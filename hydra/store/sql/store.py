"""``SQLStore``: the Store on SQLAlchemy for SQLite, PostgreSQL and MySQL/MariaDB.

Every statement is a SQLAlchemy Core object. The hot path (claims, checkpoints, suspend,
retry, finish, heartbeats, ``create_execution`` and the reads of one execution) runs them
on the driver's own connections where the dialect allows it (SQLite, PostgreSQL; see
``driver.py``), the rest on Core connections.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    and_,
    bindparam,
    case,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, IntegrityError

from hydra.clock import duration_ms
from hydra.errors import DatabaseUnavailableError, LeaseLostError, SchemaNotReadyError
from hydra.logs import HydraLogger
from hydra.status import Status, StepStatus
from hydra.store.base import (
    Claim,
    CronFire,
    CronJobRow,
    ExecutionRow,
    Lease,
    NewExecution,
    StepAttemptRow,
    StepRow,
    WakeListener,
    attempt_of,
    take_lease,
)
from hydra.store.sql.dialect import Dialect, dialect_for
from hydra.store.sql.driver import CoreTx, DriverPool, Tx
from hydra.store.sql.schema import (
    cron_fires,
    cron_jobs,
    executions,
    metadata,
    step_attempts,
    steps,
)
from hydra.store.sql.urls import normalize, redact

# Store records carry the same fields as every hydra record (None here: no execution).
log = HydraLogger(logging.getLogger("hydra.store"))

T = TypeVar("T")

NON_TERMINAL = (Status.PENDING.value, Status.RUNNING.value, Status.SLEEPING.value)
# How long a store call keeps retrying a lost or refused connection by default.
RECONNECT_WINDOW = timedelta(seconds=30)
# The longest pause between two tries of a call that met a lost connection or a deadlock.
_MAX_RETRY_PAUSE_S = 1.0
# libpq waits for a connection as long as the OS does (minutes, towards a host that drops
# packets): a try must fail in bounded time for the reconnect window to be bounded.
# PyMySQL's own default is the same 10 s.
_CONNECT_TIMEOUT_S = 10


class SQLStore:
    """The Store on a relational database.

    ``SQLStore("sqlite:///hydra.db")``, ``SQLStore("postgresql+psycopg://...")``,
    ``SQLStore("mysql+pymysql://...")`` or ``SQLStore(existing_sqlalchemy_engine)``.
    ``auto_migrate`` (default: True for SQLite, False elsewhere) brings the schema to head
    on construction; otherwise run ``hydra migrate`` (or ``store.migrate()``) once per
    deploy. Construction checks that the database is reachable and the schema is current,
    so a misconfiguration fails at start-up with one clear line.

    ``reconnect_window`` (a timedelta or seconds, default 30 s; 0 turns retries off) is how
    long one store call keeps retrying when its connection is lost or cannot be made
    (the server restarting, a network failure), and deadlocks: the whole transaction is
    run again on a new connection, with pauses growing to 1 s. Every write is safe to
    repeat (see ``_retrying``). After the window the last error is raised. A worker rides
    out an outage as long as the window and shorter than its ``claim_timeout`` without
    using an attempt or running a checkpointed step again.
    """

    shared_across_processes = True

    def __init__(
        self,
        url_or_engine: str | Engine,
        *,
        auto_migrate: bool | None = None,
        reconnect_window: timedelta | float = RECONNECT_WINDOW,
    ) -> None:
        self.reconnect_window_s = duration_ms(reconnect_window, "reconnect_window") / 1000
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
            self._owns_engine = False
        else:
            self.engine = _create_engine(url_or_engine)
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
        # The claim's locked SELECT of one workflow name (bind c_name), and the
        # one-statement claims (None where the dialect has none) by number of names.
        self._claim_one_name = self._dialect.lock_for_claim(_CLAIM_SELECT)
        self._fused_claims: dict[int, Any] = {}
        # Built once and reused with bind parameters (see _EXTEND).
        # PostgreSQL: start_workflow's INSERT with its NOTIFY in one statement; None elsewhere.
        self._notifying_insert = self._dialect.notifying_insert(_INSERT_EXECUTION)
        self._step_upsert = self._dialect.upsert(
            steps, {c: bindparam(f"s_{c}") for c in _STEP_COLUMNS}, ["execution_id", "step_name"]
        )
        # PostgreSQL: the completion also NOTIFYs the namespace's "finished" channel, in
        # the same statement and transaction (engine.wait listens); None elsewhere.
        self._notifying_finish = self._dialect.notifying_finish(_FENCED["finish"])
        # PostgreSQL: save_step's fenced lease extension and step upsert as one statement.
        self._fenced_step_upsert = self._dialect.fenced_upsert(
            _EXTEND, steps, _STEP_COLUMNS, ["execution_id", "step_name"]
        )
        # A step attempt's record, written with its step row (see _save_attempt); on
        # PostgreSQL also fused into save_step's one statement, so recording every attempt
        # costs no round trip there.
        self._attempt_upsert = self._dialect.upsert(
            step_attempts, {c: bindparam(f"a_{c}") for c in _ATTEMPT_COLUMNS}, _ATTEMPT_KEY
        )
        self._fenced_step_attempt_upsert = self._dialect.fenced_upsert(
            _EXTEND,
            steps,
            _STEP_COLUMNS,
            ["execution_id", "step_name"],
            also=(step_attempts, _ATTEMPT_COLUMNS, _ATTEMPT_KEY),
        )
        if auto_migrate is None:
            auto_migrate = self._dialect.name == "sqlite"
        try:
            self._check_reachable()
            if auto_migrate:
                self.migrate()
            else:
                self._check_schema()
        except BaseException:
            self.close()  # a store that failed to open holds no connections
            raise

    def __repr__(self) -> str:
        return f"SQLStore({self.url!r})"

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
    def _tx(self, write: bool) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if write:
                conn = conn.execution_options(**self._dialect.write_options())
            with conn.begin():
                yield conn

    def _run(self, fn: Callable[[Connection], T], *, write: bool = True) -> T:
        """Run ``fn`` in one transaction on Core, with ``_retrying``'s rules."""

        def once() -> T:
            with self._tx(write) as conn:
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

    # -- executions -------------------------------------------------------------------
    def create_execution(self, new: NewExecution) -> tuple[str, bool]:
        values = {
            "id": new.id,
            "namespace": new.namespace,
            "workflow_name": new.workflow_name,
            "status": Status.PENDING.value,
            "input_data": new.input,
            "attempt": 0,
            "max_attempts": new.max_attempts,
            "retry_backoff_ms": new.retry_backoff_ms,
            "timeout_ms": new.timeout_ms,
            "idempotency_key": new.idempotency_key,
            "created_at": new.created_at_ms,
            "updated_at": new.created_at_ms,
            "run_at": new.run_at_ms,
            "wake_at": new.run_at_ms,
            "lease_token": 0,
            "trigger_type": new.trigger_type,
            "trigger_source": new.trigger_source,
        }

        params = {f"n_{k}": v for k, v in values.items()}
        notifying = self._notifying_insert

        def insert(tx: Tx) -> tuple[str, bool]:
            if notifying is not None:
                # PostgreSQL: the INSERT and the NOTIFY to idle workers, one statement.
                tx.rows(notifying, {**params, **self._dialect.notify_params(new.namespace)})
            else:
                tx.rowcount(_INSERT_EXECUTION, params)
            return new.id, True

        try:
            return self._run_hot(insert, single=True)
        except IntegrityError:
            # Either the idempotency key is taken, or a retried insert already landed.
            def existing(conn: Connection) -> tuple[str, bool] | None:
                mine = conn.execute(
                    select(
                        executions.c.namespace, executions.c.workflow_name, executions.c.created_at
                    ).where(executions.c.id == new.id)
                ).first()
                if mine is not None:
                    if tuple(mine) == (new.namespace, new.workflow_name, new.created_at_ms):
                        return new.id, True  # our own insert, retried after a dropped connection
                    raise ValueError(
                        f"execution id {new.id!r} is already taken by another execution"
                    )
                if new.idempotency_key is None:
                    return None
                other = conn.execute(
                    select(executions.c.id).where(
                        executions.c.namespace == new.namespace,
                        executions.c.idempotency_key == new.idempotency_key,
                    )
                ).scalar()
                return (str(other), False) if other is not None else None

            found = self._run(existing, write=False)
            if found is None:
                raise
            return found

    def get_execution(self, namespace: str, execution_id: str) -> ExecutionRow | None:
        params = {"g_id": execution_id, "g_ns": namespace}

        def get(tx: Tx) -> ExecutionRow | None:
            rows = tx.rows(_GET_EXECUTION, params)
            return _execution(rows[0]) if rows else None

        return self._run_hot(get, single=True, write=False)

    def list_executions(
        self,
        namespace: str,
        *,
        status: Status | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
    ) -> list[ExecutionRow]:
        query = select(executions).where(executions.c.namespace == namespace)
        if status is not None:
            query = query.where(executions.c.status == Status(status).value)
        if workflow_name is not None:
            query = query.where(executions.c.workflow_name == workflow_name)
        query = query.order_by(executions.c.created_at.desc(), executions.c.id.desc()).limit(limit)
        return self._run(lambda conn: [_execution(r) for r in conn.execute(query)], write=False)

    # -- execution ids by prefix --------------------------------------------------------
    def find_execution_ids(self, namespace: str, prefix: str, *, limit: int) -> list[str]:
        query = (
            select(executions.c.id)
            .where(
                executions.c.namespace == namespace,
                _id_starts_with(self._dialect.name, prefix),
            )
            .order_by(executions.c.id)
            .limit(max(limit, 0))
        )
        return self._run(lambda conn: [str(i) for i in conn.execute(query).scalars()], write=False)

    def list_steps(self, execution_id: str) -> list[StepRow]:
        return self._run_hot(_replay_steps(execution_id), single=True, write=False)

    def list_step_attempts(self, execution_id: str) -> list[StepAttemptRow]:
        params = {"a_id": execution_id}

        def read(tx: Tx) -> list[StepAttemptRow]:
            return [_step_attempt(r) for r in tx.rows(_LIST_ATTEMPTS, params)]

        return self._run_hot(read, single=True, write=False)

    def cancel(self, namespace: str, execution_id: str, *, now_ms: int) -> bool:
        stmt = (
            update(executions)
            .where(
                executions.c.id == execution_id,
                executions.c.namespace == namespace,
                executions.c.status.in_(NON_TERMINAL),
            )
            .values(
                status=Status.CANCELLED.value,
                completed_at=now_ms,
                updated_at=now_ms,
                wake_at=None,
                sleep_until=None,
                next_retry_at=None,
                lease_owner=None,
                lease_expires_at=None,
                # Fences out a worker that is running it right now.
                lease_token=executions.c.lease_token + 1,
            )
        )

        def apply(conn: Connection) -> bool:
            if conn.execute(stmt).rowcount != 1:
                return False
            self._dialect.notify_finished(conn, namespace, execution_id)
            return True

        return self._run(apply)

    def retry_execution(self, namespace: str, execution_id: str, *, now_ms: int) -> bool:
        def retry(conn: Connection) -> bool:
            # FOR UPDATE waits for a worker's in-flight write (SQLite ignores it: the
            # transaction already holds the write lock).
            row = conn.execute(
                select(executions)
                .where(
                    executions.c.id == execution_id,
                    executions.c.namespace == namespace,
                    executions.c.status.in_((Status.FAILED.value, Status.CANCELLED.value)),
                )
                .with_for_update()
            ).first()
            if row is None:
                return False
            attempt = row.attempt + 1
            conn.execute(
                update(executions)
                .where(executions.c.id == execution_id)
                .values(
                    status=Status.PENDING.value,
                    attempt=attempt,
                    max_attempts=max(row.max_attempts, attempt),
                    run_at=now_ms,
                    wake_at=now_ms,
                    timeout_at=None if row.timeout_ms is None else now_ms + row.timeout_ms,
                    error_type=None,
                    error_message=None,
                    output_data=None,
                    completed_at=None,
                    sleep_until=None,
                    next_retry_at=None,
                    updated_at=now_ms,
                )
            )
            conn.execute(
                steps.delete().where(
                    steps.c.execution_id == execution_id,
                    steps.c.status == StepStatus.FAILED.value,
                )
            )
            self._dialect.notify(conn, namespace)
            return True

        return self._run(retry)

    def next_wake_at(self, namespace: str, workflow_names: Sequence[str]) -> int | None:
        names = list(dict.fromkeys(workflow_names))
        if not names:
            return None
        # The minimum per name, each the first non-NULL entry of its (namespace,
        # workflow_name) range of ix_workflow_executions_due: one index probe per name
        # (a min over an IN list would read every row of those names on some backends).
        per_name = [
            select(func.min(executions.c.wake_at).label("m")).where(
                executions.c.namespace == namespace,
                executions.c.workflow_name == name,
                executions.c.wake_at.is_not(None),
            )
            for name in names
        ]
        query: Any = per_name[0]
        if len(per_name) > 1:
            both = union_all(*per_name).subquery("per_name")
            query = select(func.min(both.c.m))
        value = self._run(lambda conn: conn.execute(query).scalar(), write=False)
        return int(value) if value is not None else None

    # -- leases -----------------------------------------------------------------------
    def claim(
        self,
        namespace: str,
        workflow_names: Sequence[str],
        worker_id: str,
        *,
        now_ms: int,
        lease_ms: int,
        limit: int,
    ) -> list[Claim]:
        if not workflow_names or limit <= 0:
            return []
        names = list(dict.fromkeys(workflow_names))
        fused = self._fused_claim_for(len(names))
        if fused is not None:
            picking = {"c_ns": namespace, "c_now": now_ms, "c_limit": limit}
            picking.update({f"c_name_{i}": name for i, name in enumerate(names)})
            return self._claim_fused(fused, picking, worker_id, now_ms, lease_ms)
        same = {"b_owner": worker_id, "b_now": now_ms}
        query = self._claim_one_name

        def claim_rows(tx: Tx) -> list[Claim]:
            # One ordered range scan of ix_workflow_executions_due per name (each reads
            # at most ``limit`` due rows of that workflow, locking them where the
            # database has row locks), then the first ``limit`` of them all in claim
            # order. Rows read past the first ``limit`` stay locked only until this
            # transaction ends (MySQL/MariaDB); SQLite's BEGIN IMMEDIATE locks everything.
            found: list[ExecutionRow] = []
            for name in names:
                # Only rows that can still make the first ``limit``: at or before the
                # ``limit``-th wake time found so far (ties are settled by the sort).
                bound = now_ms if len(found) < limit else min(now_ms, found[-1].wake_at or 0)
                picking = {"c_ns": namespace, "c_name": name, "c_now": bound, "c_limit": limit}
                found.extend(_execution(r) for r in tx.rows(query, picking))
                if len(names) > 1:
                    found.sort(key=_claim_order)
                    del found[limit:]
            if not found:
                return []
            claims: list[Claim] = []
            params: list[dict[str, Any]] = []
            replaying: dict[str, Claim] = {}
            for row in found:
                ran_before = row.attempt > 0
                claim = take_lease(row, worker_id, now_ms=now_ms, lease_ms=lease_ms)
                params.append(
                    {
                        "b_id": row.id,
                        "b_token": row.lease_token,
                        "b_expires": row.lease_expires_at,
                        "b_wake": row.wake_at,
                        "b_attempt": row.attempt,
                        "b_started": row.started_at,
                        "b_timeout_at": row.timeout_at,
                        **same,
                    }
                )
                claims.append(claim)
                # A first claim has no checkpoints yet; everything else replays from steps.
                if ran_before:
                    replaying[row.id] = claim
            tx.many(_CLAIM_UPDATE, params)
            for execution_id, claim in replaying.items():
                claim.steps.extend(_replay_steps(execution_id)(tx))
            return claims

        return self._run_hot(claim_rows)

    def _claim_fused(
        self,
        fused: Any,
        picking: dict[str, Any],
        worker_id: str,
        now_ms: int,
        lease_ms: int,
    ) -> list[Claim]:
        """PostgreSQL: the claim as one autocommit statement, then the replays' steps."""
        params = {**picking, "b_owner": worker_id, "b_now": now_ms, "b_expires": now_ms + lease_ms}
        width = len(executions.c)
        # Claimed in the pick's order (the previous wake time, then creation and id).
        rows = sorted(
            self._run_hot(lambda tx: tx.rows(fused, params), single=True),
            key=lambda r: (r[width + 2], r[_CREATED_AT], r[0]),
        )
        claims: list[Claim] = []
        for r in rows:
            row = _execution(r[:width])
            claim = Claim(row, Lease(row.id, row.lease_token, worker_id), Status(r[width]))
            claims.append(claim)
            if r[width + 1] > 0:  # ran before: replay from its checkpoints
                claim.steps.extend(self._run_hot(_replay_steps(row.id), single=True))
        return claims

    def _fused_claim_for(self, count: int) -> Any:
        """The one-statement claim of ``count`` workflow names (binds ``c_name_<i>``), or
        None where the dialect has none; built once per number of names."""
        if count in self._fused_claims:
            return self._fused_claims[count]
        if len(self._fused_claims) >= 64:
            self._fused_claims.clear()  # a worker with ever more names: rebuild as needed
        names: list[Any] = [
            bindparam(f"c_name_{i}", type_=executions.c.workflow_name.type) for i in range(count)
        ]
        fused = self._dialect.fused_claim(_claim_pick, names)
        self._fused_claims[count] = fused
        return fused

    def heartbeat(self, leases: Sequence[Lease], *, now_ms: int, lease_ms: int) -> list[str]:
        if not leases:
            return []

        def beat(tx: Tx) -> list[str]:
            return [
                lease.execution_id for lease in leases if not _extend(tx, lease, now_ms, lease_ms)
            ]

        return self._run_hot(beat, single=len(leases) == 1)

    def owned_leases(self, namespace: str, worker_id: str) -> list[Lease]:
        query = select(executions.c.id, executions.c.lease_token).where(
            executions.c.namespace == namespace,
            executions.c.status == Status.RUNNING.value,
            executions.c.lease_owner == worker_id,
        )
        rows = self._run(lambda conn: conn.execute(query).all(), write=False)
        return [Lease(str(r.id), int(r.lease_token), worker_id) for r in rows]

    def release(self, lease: Lease, *, now_ms: int) -> bool:
        stmt = (
            update(executions)
            .where(*_owned(lease))
            .values(
                status=Status.PENDING.value,
                wake_at=now_ms,
                updated_at=now_ms,
                lease_owner=None,
                lease_expires_at=None,
                lease_token=executions.c.lease_token + 1,
            )
        )
        return self._run(lambda conn: conn.execute(stmt).rowcount == 1)

    # -- fenced writes ----------------------------------------------------------------
    def save_step(self, lease: Lease, step: StepRow, *, now_ms: int, lease_ms: int) -> None:
        attempt = attempt_of(step, lease)
        fused = self._fenced_step_upsert if attempt is None else self._fenced_step_attempt_upsert
        if fused is not None:
            # PostgreSQL: the fenced UPDATE and the upsert(s) in one statement (the UPDATE
            # in the CTE row-locks the execution; the INSERTs read its RETURNING, so they
            # only happen if the lease matched): one round trip instead of two or three.
            params = _step_params(step, now_ms)
            if attempt is not None:
                params.update(_attempt_params(attempt))
            params.update(
                x_id=lease.execution_id,
                x_token=lease.token,
                x_expires=now_ms + lease_ms,
                x_now=now_ms,
            )

            def save_fused(tx: Tx) -> None:
                if len(tx.rows(fused, params)) != 1:
                    raise LeaseLostError(_lost(lease))

            self._run_hot(save_fused, single=True)
            return
        upsert = self._step_upsert

        def save(tx: Tx) -> None:
            # The fenced UPDATE comes first: it row-locks the execution (PostgreSQL, InnoDB)
            # or holds the write lock (SQLite), so a takeover cannot commit between the
            # check and the insert.
            if not _extend(tx, lease, now_ms, lease_ms):
                raise LeaseLostError(_lost(lease))
            tx.rowcount(upsert, _step_params(step, now_ms))
            self._save_attempt(tx, attempt)

        self._run_hot(save)

    def _save_attempt(self, tx: Tx, attempt: StepAttemptRow | None) -> None:
        """Record a step attempt inside the transaction that writes its step row, after
        the fence matched. An upsert, like the step's: writing it again (a transaction
        retried after its reply was lost) leaves one record."""
        if attempt is not None:
            tx.rowcount(self._attempt_upsert, _attempt_params(attempt))

    def suspend(
        self, lease: Lease, *, wake_at_ms: int, now_ms: int, step: StepRow | None = None
    ) -> None:
        params = {"f_wake_at": wake_at_ms, "f_now": now_ms}
        self._fenced_transition(lease, "suspend", params, Status.SLEEPING, step, now_ms)

    def schedule_retry(
        self,
        lease: Lease,
        *,
        run_at_ms: int,
        error_type: str,
        error_message: str,
        now_ms: int,
    ) -> None:
        params = {
            "f_run_at": run_at_ms,
            "f_error_type": error_type,
            "f_error_message": error_message,
            "f_now": now_ms,
        }
        self._fenced_transition(lease, "retry", params, Status.PENDING, None, now_ms)

    def finish(
        self,
        lease: Lease,
        *,
        status: Status,
        now_ms: int,
        output: bytes | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        if status not in (Status.COMPLETED, Status.FAILED):
            raise ValueError(f"finish() takes completed or failed, not {status!r}")
        params = {
            "f_status": status.value,
            "f_output": output,
            "f_error_type": error_type,
            "f_error_message": error_message,
            "f_now": now_ms,
        }
        self._fenced_transition(lease, "finish", params, status, None, now_ms)

    def _fenced_transition(
        self,
        lease: Lease,
        kind: str,
        params: dict[str, Any],
        target: Status,
        step: StepRow | None,
        now_ms: int,
    ) -> None:
        """Move an owned execution out of ``running``, optionally saving a step with it.

        ``kind`` names one of the prebuilt ``_FENCED`` statements, whose WHERE is
        ``id = :f_id AND lease_token = :f_token AND status = 'running'``.
        """
        stmt = _FENCED[kind]
        # The notifying completion is a SELECT over the UPDATE's RETURNING: count its rows.
        returns_rows = kind == "finish" and self._notifying_finish is not None
        if returns_rows:
            stmt = self._notifying_finish
        params = {"f_id": lease.execution_id, "f_token": lease.token, **params}
        upsert = self._step_upsert
        attempt = attempt_of(step, lease) if step is not None else None
        attempts = 0

        def apply(tx: Tx) -> None:
            nonlocal attempts
            attempts += 1
            matched = len(tx.rows(stmt, params)) if returns_rows else tx.rowcount(stmt, params)
            if matched != 1:
                # After a dropped connection the first try may have committed: the token is
                # unchanged (only claims and cancels change it) and the status is ours.
                if attempts > 1:
                    found = tx.rows(_STATUS_AND_TOKEN, {"f_id": lease.execution_id})
                    if found and tuple(found[0]) == (target.value, lease.token):
                        return
                raise LeaseLostError(_lost(lease))
            if step is not None:
                tx.rowcount(upsert, _step_params(step, now_ms))
            self._save_attempt(tx, attempt)

        self._run_hot(apply, single=step is None)

    # -- notifications ----------------------------------------------------------------
    def open_listener(self, namespace: str, channel: str = "work") -> WakeListener | None:
        return self._dialect.open_listener(self.engine, namespace, channel)

    # -- cron -------------------------------------------------------------------------
    def upsert_cron_job(
        self,
        namespace: str,
        name: str,
        *,
        spec: str,
        timezone: str | None,
        workflow_name: str | None,
        payload: bytes | None,
        now_ms: int,
    ) -> CronJobRow:
        definition = {
            "cron_spec": spec,
            "timezone": timezone,
            "workflow_name": workflow_name,
            "payload": payload,
        }
        key = (cron_jobs.c.namespace == namespace, cron_jobs.c.name == name)

        def upsert(conn: Connection) -> CronJobRow:
            # FOR UPDATE: two workers re-registering a changed job apply it one at a time
            # (SQLite ignores it: BEGIN IMMEDIATE already holds the write lock).
            row = conn.execute(select(cron_jobs).where(*key).with_for_update()).first()
            if row is None:
                conn.execute(
                    cron_jobs.insert().values(
                        namespace=namespace,
                        name=name,
                        enabled=True,
                        created_at=now_ms,
                        updated_at=now_ms,
                        next_run_at=None,
                        **definition,
                    )
                )
            elif _cron_job(row).definition() != (spec, timezone, workflow_name, payload):
                conn.execute(
                    update(cron_jobs)
                    .where(*key)
                    .values(updated_at=now_ms, next_run_at=None, **definition)
                )
            stored = conn.execute(select(cron_jobs).where(*key)).one()
            return _cron_job(stored)

        try:
            return self._run(upsert)
        except IntegrityError:
            # Another process inserted the same new job at the same moment: now it exists.
            return self._run(upsert)

    def list_cron_jobs(self, namespace: str) -> list[CronJobRow]:
        query = select(cron_jobs).where(cron_jobs.c.namespace == namespace)
        query = query.order_by(cron_jobs.c.name)
        return self._run(lambda conn: [_cron_job(r) for r in conn.execute(query)], write=False)

    def claim_cron_fire(
        self,
        namespace: str,
        job_name: str,
        slot_ms: int,
        *,
        now_ms: int,
        worker_id: str,
        execution_id: str | None = None,
    ) -> bool:
        stmt = cron_fires.insert().values(
            namespace=namespace,
            job_name=job_name,
            slot_at=slot_ms,
            fired_at=now_ms,
            worker_id=worker_id,
            execution_id=execution_id,
        )

        def insert(conn: Connection) -> bool:
            conn.execute(stmt)
            return True

        try:
            return self._run(insert)
        except IntegrityError:
            # The primary key (namespace, job_name, slot_at) is taken: the slot was fired.
            # Only if _run retried an insert whose commit was not acknowledged (a dropped
            # connection) is the existing record our own.
            fire = self._run(
                lambda conn: conn.execute(
                    select(cron_fires).where(
                        cron_fires.c.namespace == namespace,
                        cron_fires.c.job_name == job_name,
                        cron_fires.c.slot_at == slot_ms,
                    )
                ).first(),
                write=False,
            )
            return fire is not None and (fire.worker_id, fire.fired_at) == (worker_id, now_ms)

    def last_cron_fire(self, namespace: str, job_name: str) -> CronFire | None:
        query = (
            select(cron_fires)
            .where(cron_fires.c.namespace == namespace, cron_fires.c.job_name == job_name)
            .order_by(cron_fires.c.slot_at.desc())
            .limit(1)
        )

        def last(conn: Connection) -> CronFire | None:
            row = conn.execute(query).first()
            if row is None:
                return None
            return CronFire(
                namespace=row.namespace,
                job_name=row.job_name,
                slot_at=row.slot_at,
                fired_at=row.fired_at,
                worker_id=row.worker_id,
                execution_id=row.execution_id,
            )

        return self._run(last, write=False)

    def set_cron_next_run(self, namespace: str, job_name: str, next_run_ms: int | None) -> None:
        stmt = (
            update(cron_jobs)
            .where(cron_jobs.c.namespace == namespace, cron_jobs.c.name == job_name)
            .values(next_run_at=next_run_ms)
        )
        self._run(lambda conn: conn.execute(stmt))

    # -- introspection for tests and tools --------------------------------------------
    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())


def _create_engine(url: str) -> Engine:
    try:
        parsed = normalize(url)  # postgres:// and postgresql:// -> psycopg 3
    except Exception as exc:
        raise ValueError(
            f"not a database URL: {redact(url)!r}; use sqlite:///path.db, "
            "postgresql+psycopg://user:password@host/db or mysql+pymysql://user:password@host/db"
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise ValueError(
            f"unsupported database {backend!r} in {redact(parsed)}: hydra supports sqlite, "
            "postgresql and mysql/mariadb"
        )
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise ValueError(
                "SQLStore needs a SQLite file (sqlite:///path.db): an in-memory SQLite "
                "database is private to one connection; use hydra.testing.MemoryStore instead"
            )
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.update(pool_size=20, max_overflow=40, pool_timeout=60)
    else:
        # No pool_pre_ping: a connection the server dropped fails its first statement, and
        # _run retries the whole transaction on a fresh one (tests/integration/test_reconnect.py).
        kwargs.update(pool_size=20, max_overflow=40, pool_timeout=60)
        if backend == "postgresql" and "connect_timeout" not in parsed.query:
            kwargs["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT_S}
        if backend in ("mysql", "mariadb"):
            kwargs["isolation_level"] = "READ COMMITTED"
    try:
        return create_engine(parsed, **kwargs)
    except ModuleNotFoundError as exc:
        extra = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}.get(backend)
        hint = f": pip install 'hydra-workflows[{extra}]'" if extra else ""
        raise DatabaseUnavailableError(
            f"no driver for {redact(parsed)} ({exc.name} is not installed){hint}"
        ) from exc


def _flag_disconnects(dialect: Dialect) -> Callable[[ExceptionContext], None]:
    """A ``handle_error`` hook: Core flags (``connection_invalidated``), invalidates and
    un-pools the connections the dialect calls lost, as the driver path does. SQLAlchemy's
    own test misses some (psycopg: a refused connect is not a disconnect to it)."""

    def flag(ctx: ExceptionContext) -> None:
        if not ctx.is_disconnect and dialect.is_disconnect(ctx.original_exception):
            ctx.is_disconnect = True

    return flag


def _extend(tx: Tx, lease: Lease, now_ms: int, lease_ms: int) -> bool:
    """The fenced lease extension: False if the lease is no longer this one."""
    params = {
        "x_id": lease.execution_id,
        "x_token": lease.token,
        "x_expires": now_ms + lease_ms,
        "x_now": now_ms,
    }
    return tx.rowcount(_EXTEND, params) == 1


def _replay_steps(execution_id: str) -> Callable[[Tx], list[StepRow]]:
    """Reads an execution's checkpoints, in order, for a replay."""

    def read(tx: Tx) -> list[StepRow]:
        return [_step(r) for r in tx.rows(_REPLAY_STEPS, {"r_id": execution_id})]

    return read


def _owned(lease: Lease) -> tuple[Any, ...]:
    return (
        executions.c.id == lease.execution_id,
        executions.c.lease_token == lease.token,
        executions.c.status == Status.RUNNING.value,
    )


def _cap_sql(when: Any) -> Any:
    """``min(when, timeout_at)`` in SQL: a timed-out execution becomes claimable at once."""
    return case(
        (
            and_(executions.c.timeout_at.is_not(None), executions.c.timeout_at < when),
            executions.c.timeout_at,
        ),
        else_=when,
    )


_STEP_COLUMNS = (
    "execution_id",
    "step_name",
    "step_order",
    "status",
    "attempts",
    "output_data",
    "error_type",
    "error_message",
    "started_at",
    "completed_at",
    "updated_at",
)

# A step attempt's record (bind parameters a_<column>), keyed like the table.
_ATTEMPT_COLUMNS = (
    "execution_id",
    "step_name",
    "lease_token",
    "attempt",
    "status",
    "error_type",
    "error_message",
    "started_at",
    "completed_at",
)
_ATTEMPT_KEY = ["execution_id", "step_name", "lease_token", "attempt"]
# An execution's attempts in the primary key's order: a range scan of the key, no sort.
_LIST_ATTEMPTS = (
    select(step_attempts)
    .where(step_attempts.c.execution_id == bindparam("a_id"))
    .order_by(step_attempts.c.step_name, step_attempts.c.lease_token, step_attempts.c.attempt)
)

# The fenced lease extension (every checkpoint and heartbeat), built once: same WHERE as
# ``_owned``, with bind parameters.
_EXTEND = (
    update(executions)
    .where(
        executions.c.id == bindparam("x_id"),
        executions.c.lease_token == bindparam("x_token"),
        executions.c.status == Status.RUNNING.value,
    )
    .values(
        lease_expires_at=bindparam("x_expires"),
        wake_at=_cap_sql(bindparam("x_expires")),
        updated_at=bindparam("x_now"),
    )
)


# The fenced transitions out of ``running`` (suspend, retry, finish), built once with
# bind parameters; ``_build_fenced`` takes the WHERE so that the chaos run's negative
# control can rebuild them without the token.
_OWNED_PARAMS = (
    executions.c.id == bindparam("f_id"),
    executions.c.lease_token == bindparam("f_token"),
    executions.c.status == Status.RUNNING.value,
)


def _build_fenced(where: tuple[Any, ...]) -> dict[str, Any]:
    released: dict[str, Any] = {
        "updated_at": bindparam("f_now"),
        "lease_owner": None,
        "lease_expires_at": None,
    }
    return {
        "suspend": update(executions)
        .where(*where)
        .values(
            status=Status.SLEEPING.value,
            sleep_until=bindparam("f_wake_at"),
            wake_at=_cap_sql(bindparam("f_wake_at")),
            **released,
        ),
        "retry": update(executions)
        .where(*where)
        .values(
            status=Status.PENDING.value,
            attempt=executions.c.attempt + 1,
            next_retry_at=bindparam("f_run_at"),
            run_at=bindparam("f_run_at"),
            wake_at=_cap_sql(bindparam("f_run_at")),
            error_type=bindparam("f_error_type"),
            error_message=bindparam("f_error_message"),
            **released,
        ),
        "finish": update(executions)
        .where(*where)
        .values(
            status=bindparam("f_status"),
            output_data=bindparam("f_output"),
            error_type=bindparam("f_error_type"),
            error_message=bindparam("f_error_message"),
            completed_at=bindparam("f_now"),
            wake_at=None,
            sleep_until=None,
            next_retry_at=None,
            **released,
        ),
    }


_FENCED = _build_fenced(_OWNED_PARAMS)


def _claim_pick(name: Any) -> Select[Any]:
    """The claim's SELECT of one workflow name (``name``: a bind or a column): the due rows
    (pending/sleeping due, a running one's lease expired, a timeout passed: all of them
    have wake_at <= now; finished rows have wake_at NULL) in claim order.

    It relies on ix_workflow_executions_due (namespace, workflow_name, wake_at,
    created_at, id): equality on the first two columns and a range on the third make it
    one ordered range scan of that workflow's due entries, already in ORDER BY order (no
    sort), stopped after ``c_limit`` rows; rows of other workflows and finished rows are
    never read. With several names, the dialect runs one per name and merges
    (PostgreSQL in one statement, others in one transaction: ``SQLStore.claim``).
    """
    return (
        select(executions)
        .where(
            executions.c.namespace == bindparam("c_ns"),
            executions.c.workflow_name == name,
            executions.c.wake_at <= bindparam("c_now"),
        )
        # created_at and id break ties, so every store claims in the same order.
        .order_by(executions.c.wake_at, executions.c.created_at, executions.c.id)
        .limit(bindparam("c_limit"))
    )


def _claim_order(row: ExecutionRow) -> tuple[int, int, str]:
    """The claim's ORDER BY in Python (ids compare as the databases' binary collations do)."""
    return (row.wake_at or 0, row.created_at, row.id)


# The claim: its SELECT of one name (locked by the dialect: SKIP LOCKED where there is one)
# and the executemany UPDATE that takes the leases, and the replay's read of earlier steps.
_CLAIM_SELECT = _claim_pick(bindparam("c_name"))
_CLAIM_UPDATE = (
    update(executions)
    .where(executions.c.id == bindparam("b_id"))
    .values(
        status=Status.RUNNING.value,
        lease_owner=bindparam("b_owner"),
        lease_token=bindparam("b_token"),
        lease_expires_at=bindparam("b_expires"),
        wake_at=bindparam("b_wake"),
        attempt=bindparam("b_attempt"),
        started_at=bindparam("b_started"),
        timeout_at=bindparam("b_timeout_at"),
        sleep_until=None,
        next_retry_at=None,
        updated_at=bindparam("b_now"),
    )
)
_REPLAY_STEPS = (
    select(steps)
    .where(steps.c.execution_id == bindparam("r_id"))
    .order_by(steps.c.step_order, steps.c.step_name)
)
_CREATED_AT = list(executions.c.keys()).index("created_at")
# start_workflow's INSERT: the columns create_execution sets (bind parameters n_<column>).
_INSERTED_COLUMNS = (
    "id",
    "namespace",
    "workflow_name",
    "status",
    "input_data",
    "attempt",
    "max_attempts",
    "retry_backoff_ms",
    "timeout_ms",
    "idempotency_key",
    "created_at",
    "updated_at",
    "run_at",
    "wake_at",
    "lease_token",
    "trigger_type",
    "trigger_source",
)
_INSERT_EXECUTION = executions.insert().values({c: bindparam(f"n_{c}") for c in _INSERTED_COLUMNS})
_GET_EXECUTION = select(executions).where(
    executions.c.id == bindparam("g_id"), executions.c.namespace == bindparam("g_ns")
)
_STATUS_AND_TOKEN = select(executions.c.status, executions.c.lease_token).where(
    executions.c.id == bindparam("f_id")
)


def _id_starts_with(dialect: str, prefix: str) -> ColumnElement[bool]:
    """``workflow_executions.id`` starts with ``prefix``, exactly (case-sensitively, no
    wildcards), as a range of the primary key plus an exact test of the rows in it."""
    column = executions.c.id
    in_range = [column >= prefix]
    upper = _id_upper_bound(prefix)
    if upper is not None:
        in_range.append(column < upper)
    if dialect == "sqlite":
        # SQLite's LIKE ignores ASCII case; GLOB compares exactly. Its wildcards * ? [
        # are made literal as one-character sets.
        pattern = "".join(f"[{c}]" if c in "*?[" else c for c in prefix)
        exact = column.op("GLOB", is_comparison=True)(pattern + "*")
    else:
        # PostgreSQL's LIKE compares exactly; MySQL/MariaDB's too on the id column's
        # utf8mb4_bin collation.
        pattern = "".join(f"/{c}" if c in "/%_" else c for c in prefix)
        exact = column.like(pattern + "%", escape="/")
    return and_(*in_range, exact)


def _id_upper_bound(prefix: str) -> str | None:
    """A string that sorts after every id starting with ``prefix``, or None (no bound).

    With ``prefix <= id < bound`` the lookup is a range scan of the primary key on every
    backend (PostgreSQL's planner makes LIKE 'abc%' a range only under the C collation,
    not under C.UTF-8 or a linguistic one). In byte order (SQLite, MySQL's utf8mb4_bin,
    PostgreSQL's C) the prefix with its last character incremented would do, but
    PostgreSQL databases often use a linguistic collation (en_US.UTF-8, ICU), which
    compares letters without case first and skips or down-weights punctuation. So the
    bound comes from the leading run of ASCII letters and digits only, its trailing z/Z
    dropped (no next letter in both orders) and its last character incremented ('9' to
    'A': digits sort before letters in both): 'bd1839' -> 'bd183A', 'bd183f86-4e' ->
    'bd183f87', 'az' -> 'b'. The range may hold more than the matches (the exact test
    filters them), never fewer.
    """
    run = len(prefix)
    for i, char in enumerate(prefix):
        if not (char.isascii() and char.isalnum()):
            run = i
            break
    stem = prefix[:run].rstrip("zZ")
    if not stem:
        return None
    last = stem[-1]
    return stem[:-1] + ("A" if last == "9" else chr(ord(last) + 1))


def _step_params(step: StepRow, now_ms: int) -> dict[str, Any]:
    values = (
        step.execution_id,
        step.name,
        step.order,
        step.status.value,
        step.attempts,
        step.output,
        step.error_type,
        step.error_message,
        step.started_at,
        step.completed_at,
        now_ms,
    )
    return {f"s_{c}": v for c, v in zip(_STEP_COLUMNS, values, strict=True)}


def _attempt_params(attempt: StepAttemptRow) -> dict[str, Any]:
    values = (
        attempt.execution_id,
        attempt.step_name,
        attempt.lease_token,
        attempt.attempt,
        attempt.status.value,
        attempt.error_type,
        attempt.error_message,
        attempt.started_at,
        attempt.completed_at,
    )
    return {f"a_{c}": v for c, v in zip(_ATTEMPT_COLUMNS, values, strict=True)}


def _lost(lease: Lease) -> str:
    return (
        f"worker {lease.worker_id} lost the lease on execution {lease.execution_id} "
        f"(token {lease.token}): it was taken over or cancelled"
    )


def _execution(r: Sequence[Any]) -> ExecutionRow:
    """A full ``executions`` row (a Core ``Row`` or a driver tuple, in table order)."""
    (
        id_,
        namespace,
        workflow_name,
        status,
        input_data,
        output_data,
        error_type,
        error_message,
        attempt,
        max_attempts,
        retry_backoff_ms,
        timeout_ms,
        timeout_at,
        idempotency_key,
        created_at,
        started_at,
        completed_at,
        updated_at,
        run_at,
        sleep_until,
        next_retry_at,
        wake_at,
        lease_owner,
        lease_token,
        lease_expires_at,
        trigger_type,
        trigger_source,
    ) = r
    return ExecutionRow(
        id=id_,
        namespace=namespace,
        workflow_name=workflow_name,
        status=Status(status),
        input=bytes(input_data),
        output=bytes(output_data) if output_data is not None else None,
        error_type=error_type,
        error_message=error_message,
        attempt=attempt,
        max_attempts=max_attempts,
        retry_backoff_ms=retry_backoff_ms,
        timeout_ms=timeout_ms,
        timeout_at=timeout_at,
        idempotency_key=idempotency_key,
        created_at=created_at,
        started_at=started_at,
        completed_at=completed_at,
        updated_at=updated_at,
        run_at=run_at,
        sleep_until=sleep_until,
        next_retry_at=next_retry_at,
        wake_at=wake_at,
        lease_owner=lease_owner,
        lease_token=lease_token,
        lease_expires_at=lease_expires_at,
        trigger_type=trigger_type,
        trigger_source=trigger_source,
    )


def _cron_job(r: Row[Any]) -> CronJobRow:
    return CronJobRow(
        namespace=r.namespace,
        name=r.name,
        spec=r.cron_spec,
        timezone=r.timezone,
        workflow_name=r.workflow_name,
        payload=bytes(r.payload) if r.payload is not None else None,
        enabled=bool(r.enabled),
        created_at=r.created_at,
        updated_at=r.updated_at,
        next_run_at=r.next_run_at,
    )


def _step(r: Sequence[Any]) -> StepRow:
    """A full ``steps`` row (a Core ``Row`` or a driver tuple, in table order)."""
    (
        execution_id,
        step_name,
        step_order,
        status,
        attempts,
        output_data,
        error_type,
        error_message,
        started_at,
        completed_at,
        _updated_at,
    ) = r
    return StepRow(
        execution_id=execution_id,
        name=step_name,
        order=step_order,
        status=StepStatus(status),
        attempts=attempts,
        output=bytes(output_data) if output_data is not None else None,
        error_type=error_type,
        error_message=error_message,
        started_at=started_at,
        completed_at=completed_at,
    )


def _step_attempt(r: Sequence[Any]) -> StepAttemptRow:
    """A full ``step_attempts`` row (a Core ``Row`` or a driver tuple, in table order)."""
    (
        execution_id,
        step_name,
        lease_token,
        attempt,
        status,
        error_type,
        error_message,
        started_at,
        completed_at,
    ) = r
    return StepAttemptRow(
        execution_id=execution_id,
        step_name=step_name,
        lease_token=lease_token,
        attempt=attempt,
        status=StepStatus(status),
        error_type=error_type,
        error_message=error_message,
        started_at=started_at,
        completed_at=completed_at,
    )


__all__ = ["SQLStore", "metadata"]

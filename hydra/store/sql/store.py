"""``SQLStore``: the Store on SQLAlchemy for SQLite, PostgreSQL and MySQL/MariaDB.

In layers: the statements (``statements.py``, SQLAlchemy Core objects), the mapping
between rows and store records (``records.py``), the database's connections and
transactions with their retry rules (``database.py``), and this class, the Store's
operations on them. What differs between databases is the dialect's (``dialect.py``,
one module per backend). The hot path (claims, checkpoints, suspend, retry, finish,
heartbeats, ``create_execution``, messages and events, and the reads of one execution)
runs on the driver's own connections where the dialect allows it (SQLite, PostgreSQL; see
``driver.py``), the rest on Core connections.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, inspect
from sqlalchemy.exc import IntegrityError

from hydra.errors import ExecutionFinishedError, ExecutionNotFoundError, LeaseLostError
from hydra.status import Status, StepStatus
from hydra.store.base import (
    CHILD_END_WAKE_DELAY_MS,
    Claim,
    CronFire,
    CronJobRow,
    EventRow,
    ExecutionRow,
    Lease,
    MessageRow,
    NewExecution,
    NewMessage,
    StepAttemptRow,
    StepRow,
    WakeListener,
    attempt_of,
    child_ended,
    received_detail,
    take_lease,
)
from hydra.store.sql import statements
from hydra.store.sql.database import RECONNECT_WINDOW, SQLDatabase
from hydra.store.sql.driver import CoreTx, Tx
from hydra.store.sql.records import (
    attempt_params,
    cron_fire_row,
    cron_job_row,
    event_params,
    event_row,
    execution_row,
    message_row,
    message_values,
    new_execution_params,
    step_attempt_row,
    step_params,
    step_row,
)
from hydra.store.sql.schema import events, executions, messages, metadata, step_attempts, steps


class SQLStore(SQLDatabase):
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
        super().__init__(url_or_engine, reconnect_window=reconnect_window)
        # The claim's locked SELECT of one workflow name (bind c_name), and the
        # one-statement claims (None where the dialect has none) by number of names.
        self._claim_one_name = self._dialect.lock_for_claim(statements.CLAIM_SELECT)
        self._fused_claims: dict[int, Any] = {}
        # Built once and reused with bind parameters (see statements.EXTEND).
        # PostgreSQL: start_workflow's INSERT with its NOTIFY in one statement; None elsewhere.
        self._notifying_insert = self._dialect.notifying_insert(statements.INSERT_EXECUTION)
        self._step_upsert = self._dialect.upsert(
            steps, {c: bindparam(f"s_{c}") for c in statements.STEP_COLUMNS}, statements.STEP_KEY
        )
        # PostgreSQL: the completion also NOTIFYs the namespace's "finished" channel, in
        # the same statement and transaction (engine.wait listens); None elsewhere.
        self._notifying_finish = self._dialect.notifying_finish(statements.FENCED["finish"])
        # PostgreSQL: save_step's fenced lease extension and step upsert as one statement.
        self._fenced_step_upsert = self._dialect.fenced_upsert(
            statements.EXTEND, steps, statements.STEP_COLUMNS, statements.STEP_KEY
        )
        # A step attempt's record, written with its step row (see _save_attempt); on
        # PostgreSQL also fused into save_step's one statement, so recording every attempt
        # costs no round trip there.
        self._attempt_upsert = self._dialect.upsert(
            step_attempts,
            {c: bindparam(f"a_{c}") for c in statements.ATTEMPT_COLUMNS},
            statements.ATTEMPT_KEY,
        )
        self._fenced_step_attempt_upsert = self._dialect.fenced_upsert(
            statements.EXTEND,
            steps,
            statements.STEP_COLUMNS,
            statements.STEP_KEY,
            also=(step_attempts, statements.ATTEMPT_COLUMNS, statements.ATTEMPT_KEY),
        )
        # set_event's upsert of the latest value under a key.
        self._event_upsert = self._dialect.upsert(
            events,
            {c: bindparam(f"e_{c}") for c in statements.EVENT_COLUMNS},
            statements.EVENT_KEY,
        )
        # The messages' hot path (see send_message and receive): the insert that does
        # nothing for a taken id or key (PostgreSQL, SQLite 3.35+; None: look up, then
        # insert), on PostgreSQL with the wake-up and its NOTIFY in the same statement;
        # and the receive's take in one UPDATE ... RETURNING where there is one.
        self._insert_new_message = self._dialect.insert_if_absent(
            messages, statements.MESSAGE_VALUES
        )
        self._waking_insert = (
            None
            if self._insert_new_message is None
            else self._dialect.waking_insert(self._insert_new_message, statements.WAKE_RECEIVER)
        )
        self._take_message = (
            statements.TAKE_MESSAGE if self.engine.dialect.update_returning else None
        )
        self._open(auto_migrate)

    def __repr__(self) -> str:
        return f"SQLStore({self.url!r})"

    # -- executions -------------------------------------------------------------------
    def create_execution(self, new: NewExecution) -> tuple[str, bool]:
        params = new_execution_params(new)
        notifying = self._notifying_insert

        def insert(tx: Tx) -> tuple[str, bool]:
            if notifying is not None:
                # PostgreSQL: the INSERT and the NOTIFY to idle workers, one statement.
                tx.rows(notifying, {**params, **self._dialect.notify_params(new.namespace)})
            else:
                tx.rowcount(statements.INSERT_EXECUTION, params)
            return new.id, True

        try:
            return self._run_hot(insert, single=True)
        except IntegrityError:
            # Either the idempotency key is taken, or a retried insert already landed.
            found = self._run(lambda conn: _existing(conn, new), write=False)
            if found is None:
                raise
            return found

    def get_execution(self, namespace: str, execution_id: str) -> ExecutionRow | None:
        params = {"g_id": execution_id, "g_ns": namespace}

        def get(tx: Tx) -> ExecutionRow | None:
            rows = tx.rows(statements.GET_EXECUTION, params)
            return execution_row(rows[0]) if rows else None

        return self._run_hot(get, single=True, write=False)

    def list_executions(
        self,
        namespace: str,
        *,
        status: Status | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
        parent_id: str | None = None,
    ) -> list[ExecutionRow]:
        query = statements.list_executions(namespace, status, workflow_name, limit, parent_id)
        return self._run(lambda conn: [execution_row(r) for r in conn.execute(query)], write=False)

    # -- execution ids by prefix --------------------------------------------------------
    def find_execution_ids(self, namespace: str, prefix: str, *, limit: int) -> list[str]:
        query = statements.find_execution_ids(self._dialect.name, namespace, prefix, limit)
        return self._run(lambda conn: [str(i) for i in conn.execute(query).scalars()], write=False)

    def list_namespaces(self, *, id_prefix: str = "", limit: int = 100) -> list[str]:
        query = statements.list_namespaces(self._dialect.name, id_prefix, limit)
        return self._run(lambda conn: [str(n) for n in conn.execute(query).scalars()], write=False)

    def list_steps(self, execution_id: str) -> list[StepRow]:
        return self._run_hot(_replay_steps(execution_id), single=True, write=False)

    def list_step_attempts(self, execution_id: str) -> list[StepAttemptRow]:
        params = {"a_id": execution_id}

        def read(tx: Tx) -> list[StepAttemptRow]:
            return [step_attempt_row(r) for r in tx.rows(statements.LIST_ATTEMPTS, params)]

        return self._run_hot(read, single=True, write=False)

    def cancel(self, namespace: str, execution_id: str, *, now_ms: int) -> bool:
        stmt = statements.cancel(namespace, execution_id, now_ms)

        def apply(conn: Connection) -> bool:
            if conn.execute(stmt).rowcount != 1:
                return False
            self._dialect.notify_finished(conn, namespace, execution_id)
            # A child's end goes to its parent in this transaction, after the child's row
            # (locked by the UPDATE above): the lock order of every child's end.
            tx = CoreTx(conn)
            parent_id, status, output, error_type, error_message = tx.rows(
                statements.CHILD_END, {"c_id": execution_id}
            )[0]
            if parent_id is not None:
                self._tell_parent(
                    tx,
                    str(parent_id),
                    execution_id,
                    Status(status),
                    bytes(output) if output is not None else None,
                    error_type,
                    error_message,
                    now_ms,
                    "cancel",
                )
            return True

        return self._run(apply)

    def retry_execution(self, namespace: str, execution_id: str, *, now_ms: int) -> bool:
        def retry(conn: Connection) -> bool:
            row = conn.execute(statements.retryable(namespace, execution_id)).first()
            if row is None:
                resumed = statements.resume_parked(namespace, execution_id, now_ms)
                if conn.execute(resumed).rowcount != 1:
                    return False
                self._dialect.notify(CoreTx(conn), namespace)
                return True
            attempt = row.attempt + 1
            reset = statements.retry_execution(
                execution_id,
                attempt=attempt,
                max_attempts=max(row.max_attempts, attempt),
                timeout_at=None if row.timeout_ms is None else now_ms + row.timeout_ms,
                now_ms=now_ms,
            )
            conn.execute(reset)
            conn.execute(statements.delete_failed_steps(execution_id))
            self._dialect.notify(CoreTx(conn), namespace)
            return True

        return self._run(retry)

    def next_wake_at(self, namespace: str, workflow_names: Sequence[str]) -> int | None:
        names = list(dict.fromkeys(workflow_names))
        if not names:
            return None
        query = statements.next_wake_at(namespace, names)
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
                found.extend(execution_row(r) for r in tx.rows(query, picking))
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
            tx.many(statements.CLAIM_UPDATE, params)
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
            key=lambda r: (r[width + 2], r[statements.CREATED_AT], r[0]),
        )
        claims: list[Claim] = []
        for r in rows:
            row = execution_row(r[:width])
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
        names = statements.claim_name_binds(count)
        fused = self._dialect.fused_claim(statements.claim_pick, names)
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
        query = statements.owned_leases(namespace, worker_id)
        rows = self._run(lambda conn: conn.execute(query).all(), write=False)
        return [Lease(str(r.id), int(r.lease_token), worker_id) for r in rows]

    def release(self, lease: Lease, *, now_ms: int) -> bool:
        stmt = statements.release(lease, now_ms)
        return self._run(lambda conn: conn.execute(stmt).rowcount == 1)

    # -- fenced writes ----------------------------------------------------------------
    def save_step(self, lease: Lease, step: StepRow, *, now_ms: int, lease_ms: int) -> None:
        attempt = attempt_of(step, lease)
        fused = self._fenced_step_upsert if attempt is None else self._fenced_step_attempt_upsert
        if fused is not None:
            # PostgreSQL: the fenced UPDATE and the upsert(s) in one statement (the UPDATE
            # in the CTE row-locks the execution; the INSERTs read its RETURNING, so they
            # only happen if the lease matched): one round trip instead of two or three.
            params = step_params(step, now_ms)
            if attempt is not None:
                params.update(attempt_params(attempt))
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
            tx.rowcount(upsert, step_params(step, now_ms))
            self._save_attempt(tx, attempt)

        self._run_hot(save)

    def _save_attempt(self, tx: Tx, attempt: StepAttemptRow | None) -> None:
        """Record a step attempt inside the transaction that writes its step row, after
        the fence matched. An upsert, like the step's: writing it again (a transaction
        retried after its reply was lost) leaves one record."""
        if attempt is not None:
            tx.rowcount(self._attempt_upsert, attempt_params(attempt))

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

    def park(
        self,
        lease: Lease,
        *,
        wake_at_ms: int,
        error_type: str,
        error_message: str,
        now_ms: int,
    ) -> None:
        params = {
            "f_run_at": wake_at_ms,
            "f_error_type": error_type,
            "f_error_message": error_message,
            "f_now": now_ms,
        }
        self._fenced_transition(lease, "park", params, Status.PENDING, None, now_ms)

    def finish(
        self,
        lease: Lease,
        *,
        status: Status,
        now_ms: int,
        output: bytes | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        parent_id: str | None = None,
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
        then = None
        if parent_id is not None:

            def then(tx: Tx) -> None:
                # After the child's fenced UPDATE (its row locked), the parent's row.
                self._tell_parent(
                    tx,
                    parent_id,
                    lease.execution_id,
                    status,
                    output,
                    error_type,
                    error_message,
                    now_ms,
                    str(lease.token),
                )

        self._fenced_transition(lease, "finish", params, status, None, now_ms, then=then)

    def _fenced_transition(
        self,
        lease: Lease,
        kind: str,
        params: dict[str, Any],
        target: Status,
        step: StepRow | None,
        now_ms: int,
        then: Callable[[Tx], None] | None = None,
    ) -> None:
        """Move an owned execution out of ``running``, optionally saving a step with it.

        ``kind`` names one of the prebuilt ``statements.FENCED`` statements, whose WHERE is
        ``id = :f_id AND lease_token = :f_token AND status = 'running'``. ``then`` runs in
        the same transaction once the move matched (a child's end sent to its parent).
        """
        stmt = statements.FENCED[kind]
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
                    found = tx.rows(statements.STATUS_AND_TOKEN, {"f_id": lease.execution_id})
                    if found and tuple(found[0]) == (target.value, lease.token):
                        return
                raise LeaseLostError(_lost(lease))
            if step is not None:
                tx.rowcount(upsert, step_params(step, now_ms))
            self._save_attempt(tx, attempt)
            if then is not None:
                then(tx)

        self._run_hot(apply, single=step is None and then is None)

    # -- children ---------------------------------------------------------------------
    def start_child(
        self, lease: Lease, child: NewExecution, step: StepRow, *, now_ms: int, lease_ms: int
    ) -> tuple[str, bool]:
        params = new_execution_params(child)
        attempt = attempt_of(step, lease)

        def start(tx: Tx) -> tuple[str, bool]:
            # The parent's fenced extension first (its row locked): a parent whose lease
            # is gone starts nothing. The child's id is the parent's and the checkpoint's:
            # found, it is this start repeated (a lost reply, a replay without the
            # checkpoint).
            if not _extend(tx, lease, now_ms, lease_ms):
                raise LeaseLostError(_lost(lease))
            found = tx.rows(statements.PARENT_OF, {"p_id": child.id})
            if found and found[0][0] != lease.execution_id:
                raise ValueError(
                    f"execution id {child.id!r} is taken by an execution that is not a "
                    f"child of {lease.execution_id}"
                )
            if not found:
                tx.rowcount(statements.INSERT_EXECUTION, params)
                self._dialect.notify(tx, child.namespace)  # idle workers: work arrived
            tx.rowcount(self._step_upsert, step_params(step, now_ms))
            self._save_attempt(tx, attempt)
            return child.id, not found

        return self._run_hot(start)

    def _tell_parent(
        self,
        tx: Tx,
        parent_id: str,
        child_id: str,
        status: Status,
        output: bytes | None,
        error_type: str | None,
        error_message: str | None,
        now_ms: int,
        ending: str,
    ) -> None:
        """Send a child's end to its parent, in the transaction that ended the child (its
        row already locked), locking the parent's row next; nothing to an ended parent."""
        target = _lock_execution(tx, parent_id)
        if target is None or Status(target[1]).terminal:
            return
        message = child_ended(
            parent_id,
            child_id,
            str(target[0]),
            status=status,
            output=output,
            error_type=error_type,
            error_message=error_message,
            now_ms=now_ms,
            ending=ending,
        )
        self._store_message(tx, target, message, now_ms, now_ms + CHILD_END_WAKE_DELAY_MS)

    # -- messages and events ---------------------------------------------------------
    # On the hot path (driver connections where the dialect has them): a send and the
    # receive it wakes are most of a message's latency (docs/benchmarks.md). Lock order
    # (MessageStore): the receiving execution's row first, then its messages.
    def send_message(self, message: NewMessage, *, now_ms: int) -> tuple[str, bool]:
        def send(tx: Tx) -> tuple[str, bool]:
            target = _lock_execution(tx, message.execution_id)
            return self._store_message(tx, target, message, now_ms)

        try:
            return self._run_hot(send)
        except IntegrityError:
            # Without insert_if_absent (MySQL/MariaDB): a message with the same id or key
            # committed between our lookup and insert (only a send that locks another row,
            # or none, can interleave so): now the lookup finds it.
            return self._run_hot(send)

    def send_from_run(
        self, lease: Lease, message: NewMessage, step: StepRow, *, now_ms: int, lease_ms: int
    ) -> None:
        sender, receiver = lease.execution_id, message.execution_id
        attempt = attempt_of(step, lease)

        def send(tx: Tx) -> None:
            # Both rows locked in ascending id order before anything else: two executions
            # sending to each other at once then wait for one another instead of each
            # holding its own row while it waits for the other's (a deadlock).
            locked = {eid: _lock_execution(tx, eid) for eid in sorted({sender, receiver})}
            if not _extend(tx, lease, now_ms, lease_ms):
                raise LeaseLostError(_lost(lease))
            # Raises for a missing or ended target: the transaction rolls back, nothing
            # is written. Repeated after a lost reply, it finds its own message by id.
            self._store_message(tx, locked[receiver], message, now_ms)
            tx.rowcount(self._step_upsert, step_params(step, now_ms))
            self._save_attempt(tx, attempt)

        self._run_hot(send)

    def _store_message(
        self,
        tx: Tx,
        target: Sequence[Any] | None,
        message: NewMessage,
        now_ms: int,
        wake_ms: int | None = None,
    ) -> tuple[str, bool]:
        """Store ``message`` under the lock of its execution's row (``target``, as read
        by ``_lock_execution``: namespace, status, wait_topic): see
        ``MessageStore.send_message``. Every statement here runs after that lock was
        granted, so it sees the row's latest committed status and topic, and a receive
        of this execution cannot suspend or take a message until this commits."""
        if target is None or target[0] != message.namespace:
            raise ExecutionNotFoundError(
                f"no execution {message.execution_id!r} in namespace {message.namespace!r}"
            )
        status, wait_topic = Status(target[1]), target[2]
        insert_new = self._insert_new_message
        # A repeated send (a redelivery with its key, a retry after a lost reply) is
        # recognised first, even once the execution has ended: its first send got through.
        # With insert_if_absent the insert itself tells (it inserts nothing), so the
        # lookups are only needed when it did, or when the execution has ended.
        if insert_new is None or status.terminal:
            found = _stored_message(tx, message)
            if found is not None:
                return found, False
        if status.terminal:
            raise ExecutionFinishedError(
                f"execution {message.execution_id} is {status.value}: a message to it "
                "would never be received, so it was not stored"
            )
        params = {f"m_{k}": v for k, v in message_values(message).items()}
        # A receive of this topic waits: due now (WAKE_RECEIVER matches the row only if it
        # is sleeping on this topic). Under the row lock, so a suspension cannot commit
        # between the read above and this write: no lost wake-up.
        waits = status is Status.SLEEPING and wait_topic == message.topic
        wake = {
            "w_id": message.execution_id,
            "w_topic": message.topic,
            "w_now": now_ms if wake_ms is None else wake_ms,
        }
        if self._waking_insert is not None:
            # PostgreSQL: insert, wake and NOTIFY idle workers (delivered on commit), one
            # statement; its wake-up matches only the row locked above.
            params.update(wake, **self._dialect.notify_params(message.namespace))
            if not tx.rows(self._waking_insert, params):
                return _existing_message(tx, message), False
            return message.id, True
        if insert_new is not None:
            if not tx.rows(insert_new, params):
                return _existing_message(tx, message), False
        else:
            tx.rowcount(statements.INSERT_MESSAGE, params)
        if waits:
            tx.rowcount(statements.WAKE_RECEIVER, wake)
            self._dialect.notify(tx, message.namespace)
        return message.id, True

    def receive(
        self,
        lease: Lease,
        *,
        topic: str,
        waiting: StepRow,
        suspend: bool,
        deadline_ms: int | None,
        now_ms: int,
        lease_ms: int,
    ) -> MessageRow | None:
        eid = lease.execution_id
        lookup = {"r_id": eid, "r_name": waiting.name, "r_topic": topic, "r_now": now_ms}
        asleep = {
            "f_id": eid,
            "f_token": lease.token,
            "f_wake_at": deadline_ms,
            "f_topic": topic,
            "f_now": now_ms,
        }
        take = self._take_message
        tries = 0

        def apply(tx: Tx) -> MessageRow | None:
            nonlocal tries
            tries += 1
            # The fenced extension first, as a statement of its own: it row-locks the
            # execution (PostgreSQL, InnoDB; SQLite's BEGIN IMMEDIATE holds the write
            # lock), so a send to it waits for this receive's commit, or this receive for
            # the send's; the reads below are later statements, whose snapshot then holds
            # every message sent before (on PostgreSQL a statement's snapshot is taken
            # when it starts: fused with the extension, the reads would miss a send that
            # committed while the extension waited for the lock).
            if not _extend(tx, lease, now_ms, lease_ms):
                # After a dropped connection the first try may have suspended and
                # committed: sleeping under the same token (only claims and cancels
                # change it). A send meanwhile leaves it sleeping (and due).
                if suspend and tries > 1:
                    found = tx.rows(statements.STATUS_AND_TOKEN, {"f_id": eid})
                    if found and tuple(found[0]) == (Status.SLEEPING.value, lease.token):
                        return None
                raise LeaseLostError(_lost(lease))
            if take is not None:
                # The next message taken in one statement, unless this checkpoint already
                # consumed one: then (the call repeated after a lost reply) that one again.
                rows = tx.rows(take, lookup)
                if rows:
                    return self._received(tx, lease, waiting, message_row(rows[0]), now_ms)
                taken = tx.rows(statements.CONSUMED_BY, lookup)
                if taken:
                    return message_row(taken[0])
            else:
                taken = tx.rows(statements.CONSUMED_BY, lookup)
                if taken:
                    return message_row(taken[0])
                rows = tx.rows(statements.NEXT_MESSAGE, lookup)
                if rows:
                    row = message_row(rows[0])
                    consume = {"c_seq": row.seq, "c_name": waiting.name, "c_now": now_ms}
                    tx.rowcount(statements.CONSUME, consume)
                    row = replace(row, consumed_by=waiting.name, consumed_at=now_ms)
                    return self._received(tx, lease, waiting, row, now_ms)
            if not suspend:
                return None
            # Still under the row lock: a send from now on finds the execution sleeping on
            # this topic and makes it due.
            if tx.rowcount(statements.FENCED["receive"], asleep) != 1:
                raise LeaseLostError(_lost(lease))  # not reached: the row is locked and ours
            self._save_checkpoint(tx, lease, waiting, now_ms)
            return None

        return self._run_hot(apply)

    def _received(
        self, tx: Tx, lease: Lease, waiting: StepRow, message: MessageRow, now_ms: int
    ) -> MessageRow:
        """Checkpoint the receive ``waiting`` as completed with ``message``, just consumed."""
        received = replace(
            waiting,
            status=StepStatus.COMPLETED,
            output=message.payload,
            completed_at=now_ms,
            detail=received_detail(waiting.detail, message.id),
        )
        self._save_checkpoint(tx, lease, received, now_ms)
        return message

    def _save_checkpoint(self, tx: Tx, lease: Lease, step: StepRow, now_ms: int) -> None:
        """Upsert a checkpoint and the attempt record it ends (``attempt_of``), inside a
        transaction whose fence already matched."""
        tx.rowcount(self._step_upsert, step_params(step, now_ms))
        self._save_attempt(tx, attempt_of(step, lease))

    def list_messages(self, execution_id: str) -> list[MessageRow]:
        return self._read_messages(statements.LIST_MESSAGES, execution_id)

    def list_sent_messages(self, execution_id: str) -> list[MessageRow]:
        return self._read_messages(statements.LIST_SENT_MESSAGES, execution_id)

    def _read_messages(self, query: Any, execution_id: str) -> list[MessageRow]:
        params = {"q_id": execution_id}

        def read(tx: Tx) -> list[MessageRow]:
            return [message_row(r) for r in tx.rows(query, params)]

        return self._run_hot(read, single=True, write=False)

    def set_event(
        self, lease: Lease, event: EventRow, step: StepRow, *, now_ms: int, lease_ms: int
    ) -> None:
        upsert = self._event_upsert
        params = event_params(event)

        def publish(tx: Tx) -> None:
            if not _extend(tx, lease, now_ms, lease_ms):
                raise LeaseLostError(_lost(lease))
            tx.rowcount(upsert, params)
            self._save_checkpoint(tx, lease, step, now_ms)
            # PostgreSQL: the namespace's "events" listeners, on commit.
            self._dialect.notify_event(tx, lease.execution_id)

        self._run_hot(publish)

    def get_events(self, execution_id: str) -> list[EventRow]:
        params = {"q_id": execution_id}

        def read(tx: Tx) -> list[EventRow]:
            return [event_row(r) for r in tx.rows(statements.GET_EVENTS, params)]

        return self._run_hot(read, single=True, write=False)

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
        stored_job = statements.cron_job(namespace, name)

        def upsert(conn: Connection) -> CronJobRow:
            # FOR UPDATE: two workers re-registering a changed job apply it one at a time
            # (SQLite ignores it: BEGIN IMMEDIATE already holds the write lock).
            row = conn.execute(stored_job.with_for_update()).first()
            if row is None:
                conn.execute(statements.insert_cron_job(namespace, name, definition, now_ms))
            elif cron_job_row(row).definition() != (spec, timezone, workflow_name, payload):
                conn.execute(statements.redefine_cron_job(namespace, name, definition, now_ms))
            return cron_job_row(conn.execute(stored_job).one())

        try:
            return self._run(upsert)
        except IntegrityError:
            # Another process inserted the same new job at the same moment: now it exists.
            return self._run(upsert)

    def list_cron_jobs(self, namespace: str) -> list[CronJobRow]:
        query = statements.list_cron_jobs(namespace)
        return self._run(lambda conn: [cron_job_row(r) for r in conn.execute(query)], write=False)

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
        stmt = statements.insert_cron_fire(
            namespace, job_name, slot_ms, now_ms, worker_id, execution_id
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
            query = statements.cron_fire(namespace, job_name, slot_ms)
            fire = self._run(lambda conn: conn.execute(query).first(), write=False)
            return fire is not None and (fire.worker_id, fire.fired_at) == (worker_id, now_ms)

    def last_cron_fire(self, namespace: str, job_name: str) -> CronFire | None:
        query = statements.last_cron_fire(namespace, job_name)

        def last(conn: Connection) -> CronFire | None:
            row = conn.execute(query).first()
            return cron_fire_row(row) if row is not None else None

        return self._run(last, write=False)

    def set_cron_next_run(self, namespace: str, job_name: str, next_run_ms: int | None) -> None:
        stmt = statements.set_cron_next_run(namespace, job_name, next_run_ms)
        self._run(lambda conn: conn.execute(stmt))

    # -- introspection for tests and tools --------------------------------------------
    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())


def _existing(conn: Connection, new: NewExecution) -> tuple[str, bool] | None:
    """After ``create_execution``'s insert met a taken key: ``(new.id, True)`` if the row
    is its own (a retried insert that landed before its connection dropped), ``(id,
    False)`` for the execution holding its idempotency key, or None (the error stands).
    ``ValueError`` if another execution has its id."""
    mine = conn.execute(statements.creation_of(new.id)).first()
    if mine is not None:
        if tuple(mine) == (new.namespace, new.workflow_name, new.created_at_ms):
            return new.id, True  # our own insert, retried after a dropped connection
        raise ValueError(f"execution id {new.id!r} is already taken by another execution")
    if new.idempotency_key is None:
        return None
    other = conn.execute(statements.id_for_key(new.namespace, new.idempotency_key)).scalar()
    return (str(other), False) if other is not None else None


def _lock_execution(tx: Tx, execution_id: str) -> Sequence[Any] | None:
    """Lock an execution's row (see ``statements.LOCK_EXECUTION``) and read what a send
    checks: its namespace, status and the topic it waits in; None if there is none."""
    rows = tx.rows(statements.LOCK_EXECUTION, {"l_id": execution_id})
    return rows[0] if rows else None


def _stored_message(tx: Tx, message: NewMessage) -> str | None:
    """The id of the message already stored as ``message``: the same id (the send
    repeated), else the same idempotency key to the same execution; None if neither."""
    rows = tx.rows(statements.MESSAGE_BY_ID, {"m_id": message.id})
    if not rows and message.idempotency_key is not None:
        by_key = {"m_execution_id": message.execution_id, "m_key": message.idempotency_key}
        rows = tx.rows(statements.MESSAGE_BY_KEY, by_key)
    return str(rows[0][0]) if rows else None


def _existing_message(tx: Tx, message: NewMessage) -> str:
    """After an insert that did nothing (a unique key taken): the message holding it."""
    found = _stored_message(tx, message)
    if found is None:  # not reached: only the id and the key are unique
        raise RuntimeError(f"message {message.id} was not inserted, and none holds its keys")
    return found


def _extend(tx: Tx, lease: Lease, now_ms: int, lease_ms: int) -> bool:
    """The fenced lease extension: False if the lease is no longer this one."""
    params = {
        "x_id": lease.execution_id,
        "x_token": lease.token,
        "x_expires": now_ms + lease_ms,
        "x_now": now_ms,
    }
    return tx.rowcount(statements.EXTEND, params) == 1


def _replay_steps(execution_id: str) -> Callable[[Tx], list[StepRow]]:
    """Reads an execution's checkpoints, in order, for a replay."""

    def read(tx: Tx) -> list[StepRow]:
        return [step_row(r) for r in tx.rows(statements.REPLAY_STEPS, {"r_id": execution_id})]

    return read


def _claim_order(row: ExecutionRow) -> tuple[int, int, str]:
    """The claim's ORDER BY in Python (ids compare as the databases' binary collations do)."""
    return (row.wake_at or 0, row.created_at, row.id)


def _lost(lease: Lease) -> str:
    return (
        f"worker {lease.worker_id} lost the lease on execution {lease.execution_id} "
        f"(token {lease.token}): it was taken over or cancelled"
    )


__all__ = ["RECONNECT_WINDOW", "SQLStore", "metadata"]

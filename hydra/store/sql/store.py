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

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, inspect, select
from sqlalchemy.exc import IntegrityError

from hydra.errors import LeaseLostError
from hydra.status import Status
from hydra.store.admission import PICK_ROUNDS
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
from hydra.store.queues import DEFAULT_QUEUE, is_held, lane_is_unlimited, order_key
from hydra.store.sql import statements
from hydra.store.sql.database import RECONNECT_WINDOW
from hydra.store.sql.driver import CoreTx, Tx
from hydra.store.sql.fenced import extend_lease, lost_lease
from hydra.store.sql.queues import SQLQueues
from hydra.store.sql.records import (
    attempt_params,
    cron_fire_row,
    cron_job_row,
    execution_row,
    new_execution_params,
    step_attempt_row,
    step_params,
    step_row,
)
from hydra.store.sql.schema import (
    events,
    executions,
    messages,
    metadata,
    queue_slots,
    step_attempts,
    steps,
)


class SQLStore(SQLQueues):
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

    @property
    def one_writer(self) -> bool:
        """Whether one write transaction at a time holds the whole database (SQLite)."""
        return self._dialect.one_writer

    def __init__(
        self,
        url_or_engine: str | Engine,
        *,
        auto_migrate: bool | None = None,
        reconnect_window: timedelta | float = RECONNECT_WINDOW,
    ) -> None:
        super().__init__(url_or_engine, reconnect_window=reconnect_window)
        # The one-statement claims by number of (name, lane) pairs; None where the
        # dialect has none. The claim's other statements: _build_queue_statements.
        self._fused_claims: dict[int, Any] | None = (
            {}
            if self._dialect.fused_claim(statements.claim_pick, statements.claim_pair_binds(1))
            is not None
            else None
        )
        self._build_queue_statements()
        self._build_purge_statements()
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
        queue: str | None = None,
        created_after_ms: int | None = None,
        idempotency_key: str | None = None,
    ) -> list[ExecutionRow]:
        query = statements.list_executions(
            namespace,
            status,
            workflow_name,
            limit,
            parent_id,
            queue=queue,
            created_after_ms=created_after_ms,
            idempotency_key=idempotency_key,
        )
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
            # Its queue slots are free in the same transaction (a running one holds some).
            self._release_slots(CoreTx(conn), execution_id)
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

    def _build_purge_statements(self) -> None:
        """A purge batch's statements, its ids one bind (``Dialect.ids_in``): everything
        stored for the executions, then the rows themselves (re-checked: finished); and
        the read of their children."""
        #: rows purged since the last ``settle_purge`` that settled
        self._purged_unsettled = 0
        ids_in = self._dialect.ids_in
        self._purge_deletes = [
            delete(t).where(ids_in(t.c.execution_id, "p_ids"))
            for t in (step_attempts, steps, events, messages, queue_slots)
        ]
        self._purge_deletes.append(
            delete(executions).where(
                ids_in(executions.c.id, "p_ids"),
                executions.c.status.in_(bindparam("p_statuses", expanding=True)),
            )
        )
        # FORCE INDEX on MySQL/MariaDB: nearly every parent_id is NULL, and past
        # eq_range_index_dive_limit (200 values) the optimizer estimates from the index's
        # statistics that each value matches a great many rows and scans the table (a
        # purge batch took 3 s on 1.2 million rows).
        self._children_status = statements.force_index(
            select(executions.c.id, executions.c.status, executions.c.parent_id).where(
                ids_in(executions.c.parent_id, "p_ids")
            ),
            "ix_workflow_executions_parent",
        )

    def purge_executions(
        self,
        namespace: str,
        *,
        ended_before_ms: int,
        statuses: Sequence[Status],
        workflow_name: str | None = None,
        limit: int,
        dry_run: bool = False,
    ) -> list[str]:
        wanted = [Status(s).value for s in statuses if Status(s).terminal]
        if not wanted or limit <= 0:
            return []
        query = statements.purgeable(by_workflow=workflow_name is not None, lock=not dry_run)
        query_params = statements.purgeable_params(
            namespace, ended_before_ms, wanted, workflow_name, limit
        )

        def purge(conn: Connection) -> list[str]:
            found = [str(i) for i in conn.execute(query, query_params).scalars()]
            # A finished child may have unfinished children of its own: those are kept
            # with their ancestors (the query above sees one generation).
            blocked = self._with_unfinished_below(conn, found)
            ids = [eid for eid in found if eid not in blocked]
            if dry_run or not ids:
                return ids
            # Everything stored for them, then the rows themselves (re-checked: finished),
            # in this one transaction.
            params = {"p_ids": self._dialect.ids_param(ids), "p_statuses": wanted}
            for stmt in self._purge_deletes:
                conn.execute(stmt, params)
            return ids

        purged = self._run(purge, write=not dry_run, bulk_delete=not dry_run)
        if not dry_run:
            self._purged_unsettled += len(purged)
        return purged

    def settle_purge(self, *, finished: bool = False) -> None:
        """A purge's pause between batches (``Engine.purge`` calls it after each batch,
        outside the batch's transaction and its timing; ``finished``: after the last):
        what the database should do about the rows deleted so far, now rather than in
        some other writer's commit (``Dialect.settle_bulk_deletes``; SQLite checkpoints
        its WAL): every ``Dialect.settle_after_rows`` rows, and once at the end.
        Unsettled rows are counted per store, whichever thread purged them."""
        rows = self._purged_unsettled
        if rows == 0 or (rows < self._dialect.settle_after_rows and not finished):
            return
        self._purged_unsettled = 0
        self._dialect.settle_bulk_deletes(self.engine)

    def _with_unfinished_below(self, conn: Connection, execution_ids: Sequence[str]) -> set[str]:
        """Those of the executions with an unfinished descendant (a child's child, and so
        on): one query per generation for all of them (ix_workflow_executions_parent), not
        one per execution."""
        blocked: set[str] = set()
        # Each descendant found, with the execution of ``execution_ids`` it descends from.
        level = {eid: eid for eid in execution_ids}
        while level:
            below: dict[str, str] = {}
            params = {"p_ids": self._dialect.ids_param(list(level))}
            for r in conn.execute(self._children_status, params):
                root = level[str(r.parent_id)]
                if not Status(r.status).terminal:
                    blocked.add(root)
                below[str(r.id)] = root
            level = {child: root for child, root in below.items() if root not in blocked}
        return blocked

    def next_wake_at(
        self, namespace: str, workflow_names: Sequence[str], *, after_ms: int | None = None
    ) -> int | None:
        names = list(dict.fromkeys(workflow_names))
        if not names:
            return None
        after = -(2**62) if after_ms is None else after_ms

        def read(tx: Tx) -> int | None:
            # The minimum over the names' lanes. A lane's earliest wake, read with the
            # lane, is the one unless it is at or before after_ms; only then one more
            # probe reads the lane's first entry past after_ms in
            # ix_workflow_executions_due.
            found: int | None = None
            for name, lane, first in self._lane_wakes(tx, namespace, names):
                if is_held(lane) or first is None:
                    continue  # not due until a slot of their key frees; no wake time
                value = first
                if int(value) <= after:
                    params = {"l_ns": namespace, "l_name": name, "l_lane": lane, "l_after": after}
                    value = tx.rows(statements.LANE_WAKE, params)[0][0]
                if value is not None and (found is None or int(value) < found):
                    found = int(value)
            return found

        return self._run_hot(read, write=False)

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
        held: Mapping[str, int] | None = None,
    ) -> list[Claim]:
        if not workflow_names or limit <= 0:
            return []
        names = list(dict.fromkeys(workflow_names))
        known: list[tuple[str, str]] | None = None
        if self._fused_claims is not None:
            # PostgreSQL: the lanes with a due row first (one statement); if none of them
            # takes a queue slot, the claim is one statement too, else the transaction
            # below picks from those lanes. (A lane due meanwhile is the next claim's.)
            known = pairs = self._run_hot(
                lambda tx: self._due_lanes(tx, namespace, names, now_ms), write=False
            )
            if not pairs:
                return []
            if all(lane_is_unlimited(lane) for _, lane in pairs):
                fused = self._fused_claim_for(len(pairs))
                if fused is not None:
                    picking = {"c_ns": namespace, "c_now": now_ms, "c_limit": limit}
                    for i, (name, lane) in enumerate(pairs):
                        picking[f"c_name_{i}"] = name
                        picking[f"c_lane_{i}"] = lane
                    return self._claim_fused(fused, picking, worker_id, now_ms, lease_ms)

        def claim_rows(tx: Tx) -> list[Claim]:
            # One ordered range scan of ix_workflow_executions_due per lane of each name
            # (each reads at most ``limit`` due rows, locking them where the database has
            # row locks), then the queues' limits, in claim order (hydra.store.sql.queues).
            # Rows read but not claimed stay locked only until this transaction ends
            # (MySQL/MariaDB); SQLite's BEGIN IMMEDIATE locks everything.
            pairs = known if known is not None else self._due_lanes(tx, namespace, names, now_ms)
            claims: list[Claim] = []
            in_flight = dict(held or {})
            for _ in range(PICK_ROUNDS):
                candidates = self._pick(tx, namespace, pairs, now_ms, limit - len(claims))
                admitted, holds = self._admit(
                    tx,
                    namespace,
                    worker_id,
                    candidates,
                    limit=limit - len(claims),
                    held=in_flight,
                    now_ms=now_ms,
                )
                claims += self._take_leases(tx, admitted, worker_id, now_ms, lease_ms)
                for row in admitted:
                    in_flight[row.queue] = in_flight.get(row.queue, 0) + 1
                # Rows of a full concurrency key left their lanes: pick again.
                if len(claims) >= limit or not holds:
                    break
            return claims

        return self._run_hot(claim_rows)

    def _take_leases(
        self, tx: Tx, rows: list[ExecutionRow], worker_id: str, now_ms: int, lease_ms: int
    ) -> list[Claim]:
        """Take the leases of ``rows`` (``take_lease``, one executemany UPDATE) and load
        the checkpoints of those that ran before."""
        if not rows:
            return []
        claims: list[Claim] = []
        params: list[dict[str, Any]] = []
        replaying: dict[str, Claim] = {}
        for row in rows:
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
                    "b_owner": worker_id,
                    "b_now": now_ms,
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
        # Claimed in the pick's order (priority, the previous wake time, creation, id).
        rows = sorted(
            self._run_hot(lambda tx: tx.rows(fused, params), single=True),
            key=lambda r: order_key(
                int(r[statements.PRIORITY]), r[width + 2], r[statements.CREATED_AT], r[0]
            ),
        )
        claims: list[Claim] = []
        for r in rows:
            row = execution_row(r[:width])
            claim = Claim(
                row, Lease(row.id, row.lease_token, worker_id, row.queue), Status(r[width])
            )
            claims.append(claim)
            if r[width + 1] > 0:  # ran before: replay from its checkpoints
                claim.steps.extend(self._run_hot(_replay_steps(row.id), single=True))
        return claims

    def _fused_claim_for(self, count: int) -> Any:
        """The one-statement claim of ``count`` (name, lane) pairs (binds ``c_name_<i>``,
        ``c_lane_<i>``), or None where the dialect has none; built once per count."""
        assert self._fused_claims is not None
        if count in self._fused_claims:
            return self._fused_claims[count]
        if len(self._fused_claims) >= 64:
            self._fused_claims.clear()  # a worker with ever more lanes: rebuild as needed
        pairs = statements.claim_pair_binds(count)
        fused = self._dialect.fused_claim(statements.claim_pick, pairs)
        self._fused_claims[count] = fused
        return fused

    def heartbeat(self, leases: Sequence[Lease], *, now_ms: int, lease_ms: int) -> list[str]:
        if not leases:
            return []

        def beat(tx: Tx) -> list[str]:
            return [
                lease.execution_id
                for lease in leases
                if not extend_lease(tx, lease, now_ms, lease_ms)
            ]

        return self._run_hot(beat, single=len(leases) == 1)

    def owned_leases(self, namespace: str, worker_id: str) -> list[Lease]:
        query = statements.owned_leases(namespace, worker_id)
        rows = self._run(lambda conn: conn.execute(query).all(), write=False)
        return [Lease(str(r.id), int(r.lease_token), worker_id, str(r.queue_name)) for r in rows]

    def release(self, lease: Lease, *, now_ms: int) -> bool:
        stmt = statements.release(lease, now_ms)

        def apply(conn: Connection) -> bool:
            if conn.execute(stmt).rowcount != 1:
                return False
            self._free_slots(CoreTx(conn), lease)
            return True

        return self._run(apply)

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
                    raise LeaseLostError(lost_lease(lease))

            self._run_hot(save_fused, single=True)
            return
        upsert = self._step_upsert

        def save(tx: Tx) -> None:
            # The fenced UPDATE comes first: it row-locks the execution (PostgreSQL, InnoDB)
            # or holds the write lock (SQLite), so a takeover cannot commit between the
            # check and the insert.
            if not extend_lease(tx, lease, now_ms, lease_ms):
                raise LeaseLostError(lost_lease(lease))
            tx.rowcount(upsert, step_params(step, now_ms))
            self._save_attempt(tx, attempt)

        self._run_hot(save)

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
                raise LeaseLostError(lost_lease(lease))
            if step is not None:
                tx.rowcount(upsert, step_params(step, now_ms))
            self._save_attempt(tx, attempt)
            self._free_slots(tx, lease)
            if then is not None:
                then(tx)

        limited = lease.queue != DEFAULT_QUEUE
        self._run_hot(apply, single=step is None and then is None and not limited)

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


def _replay_steps(execution_id: str) -> Callable[[Tx], list[StepRow]]:
    """Reads an execution's checkpoints, in order, for a replay."""

    def read(tx: Tx) -> list[StepRow]:
        return [step_row(r) for r in tx.rows(statements.REPLAY_STEPS, {"r_id": execution_id})]

    return read


def _claim_order(row: ExecutionRow) -> tuple[int, int, str]:
    """The claim's ORDER BY in Python (ids compare as the databases' binary collations do)."""
    return (row.wake_at or 0, row.created_at, row.id)


__all__ = ["RECONNECT_WINDOW", "SQLStore", "metadata"]

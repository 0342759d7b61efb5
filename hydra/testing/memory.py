"""``MemoryStore``: the Store in process memory, for tests and quick experiments.

It has exactly ``SQLStore``'s semantics (the contract suite in ``hydra.testing.contract``
runs against both) but lives in one process: ``shared_across_processes`` is False and it
has no notifications. Every method holds one re-entrant lock, so it is thread-safe, and
it stores and hands out copies, so a caller can never change a stored record by mutating
an object it passed in or got back.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from hydra.errors import ExecutionFinishedError, ExecutionNotFoundError, LeaseLostError
from hydra.status import Status, StepStatus
from hydra.store.admission import PICK_ROUNDS
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
    Store,
    WakeListener,
    attempt_of,
    cap_wake,
    child_ended,
    received_detail,
    take_lease,
)
from hydra.store.queues import is_held, order_key
from hydra.testing.memory_queues import MemoryQueues

if TYPE_CHECKING:
    from hydra.clock import Clock


class MemoryStore(MemoryQueues):
    """The Store in a dict: ``MemoryStore()``.

    Like every store it never reads a clock: every time is passed in by the caller.
    ``clock`` is stored as the ``clock`` attribute and nothing in hydra reads it: the
    pytest plugin passes its ``FakeClock`` so that a test can see which clock its store
    was made with (``hydra_store.clock``). An engine on this store does not take its time
    from it: give the engine the same clock (``Engine(store, clock=clock)``), or it runs
    on this machine's clock.
    """

    supports_notify = False
    shared_across_processes = False
    #: process memory never drops a connection
    reconnects = 0
    #: no limit of its own: the engine's ``max_payload_bytes`` applies
    max_value_bytes: int | None = None

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self._executions: dict[str, ExecutionRow] = {}
        # execution id -> step name -> checkpoint
        self._steps: dict[str, dict[str, StepRow]] = {}
        # execution id -> (step name, lease token, attempt) -> attempt record
        self._attempts: dict[str, dict[tuple[str, int, int], StepAttemptRow]] = {}
        # (namespace, idempotency key) -> execution id
        self._idempotency: dict[tuple[str, str], str] = {}
        # Claim lane (hydra.store.queues.claim_lane) -> heap of (wake_at, created_at, id):
        # claims and next_wake_at read the earliest due rows of each lane without scanning
        # them all, as SQLStore reads each lane's range of its index. An entry is stale
        # once its row's wake_at or lane changed; stale entries are dropped when popped
        # (every change pushes a fresh entry).
        self._due: dict[str, list[tuple[int, int, str]]] = {}
        self._init_queues()
        # (namespace, job name) -> job; (namespace, job name) -> slot -> fire
        self._cron_jobs: dict[tuple[str, str], CronJobRow] = {}
        self._cron_fires: dict[tuple[str, str], dict[int, CronFire]] = {}
        # message id -> message, in send order (dicts keep insertion order); seq counter
        self._messages: dict[str, MessageRow] = {}
        self._seq = 0
        # execution id -> key -> event
        self._events: dict[str, dict[str, EventRow]] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._executions)} executions)"

    # -- setup ------------------------------------------------------------------------
    def migrate(self) -> None:
        """Nothing to migrate."""

    def close(self) -> None:
        """Nothing to release (the data stays readable until the store is dropped)."""

    def database_time_ms(self) -> int | None:
        """None: no clock of its own (the engine then runs on this machine's clock)."""
        return None

    # -- executions -------------------------------------------------------------------
    def create_execution(self, new: NewExecution) -> tuple[str, bool]:
        with self._lock:
            taken = self._executions.get(new.id)
            if taken is not None:
                # As SQLStore: a retried insert that already landed, or a clash.
                if (taken.namespace, taken.workflow_name, taken.created_at) == (
                    new.namespace,
                    new.workflow_name,
                    new.created_at_ms,
                ):
                    return new.id, True
                raise ValueError(f"execution id {new.id!r} is already taken by another execution")
            if new.idempotency_key is not None:
                existing = self._idempotency.get((new.namespace, new.idempotency_key))
                if existing is not None:
                    return existing, False
            self._executions[new.id] = ExecutionRow(
                id=new.id,
                namespace=new.namespace,
                workflow_name=new.workflow_name,
                status=Status.PENDING,
                input=bytes(new.input),
                output=None,
                error_type=None,
                error_message=None,
                attempt=0,
                max_attempts=new.max_attempts,
                retry_backoff_ms=new.retry_backoff_ms,
                timeout_ms=new.timeout_ms,
                timeout_at=None,
                idempotency_key=new.idempotency_key,
                created_at=new.created_at_ms,
                started_at=None,
                completed_at=None,
                updated_at=new.created_at_ms,
                run_at=new.run_at_ms,
                sleep_until=None,
                next_retry_at=None,
                wake_at=new.run_at_ms,
                lease_owner=None,
                lease_token=0,
                lease_expires_at=None,
                trigger_type=new.trigger_type,
                trigger_source=new.trigger_source,
                parent_id=new.parent_id,
                queue=new.queue,
                priority=new.priority,
                concurrency_key=new.concurrency_key,
                trace_context=new.trace_context,
            )
            if new.idempotency_key is not None:
                self._idempotency[(new.namespace, new.idempotency_key)] = new.id
            self._index(self._executions[new.id])
            return new.id, True

    def restore(self, execution: ExecutionRow, steps: Sequence[StepRow] = ()) -> None:
        """Hold ``execution`` and its checkpoints exactly as given (copies), replacing any
        execution of that id: one read from another store or an exported history
        (``hydra.testing.replay_check``, ``hydra replay-check --history``)."""
        with self._lock:
            row = replace(execution)
            self._executions[row.id] = row
            self._steps[row.id] = {s.name: replace(s) for s in steps}
            if row.idempotency_key is not None:
                self._idempotency[(row.namespace, row.idempotency_key)] = row.id
            self._index(row)

    def get_execution(self, namespace: str, execution_id: str) -> ExecutionRow | None:
        with self._lock:
            row = self._executions.get(execution_id)
            if row is None or row.namespace != namespace:
                return None
            return replace(row)

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
        wanted = Status(status) if status is not None else None
        with self._lock:
            rows = [
                r
                for r in self._executions.values()
                if r.namespace == namespace
                and (wanted is None or r.status == wanted)
                and (workflow_name is None or r.workflow_name == workflow_name)
                and (parent_id is None or r.parent_id == parent_id)
                and (queue is None or r.queue == queue)
                and (created_after_ms is None or r.created_at >= created_after_ms)
                and (idempotency_key is None or r.idempotency_key == idempotency_key)
            ]
            rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
            return [replace(r) for r in rows[: max(limit, 0)]]

    # -- execution ids by prefix --------------------------------------------------------
    def find_execution_ids(self, namespace: str, prefix: str, *, limit: int) -> list[str]:
        with self._lock:
            found = sorted(
                r.id
                for r in self._executions.values()
                if r.namespace == namespace and r.id.startswith(prefix)
            )
        return found[: max(limit, 0)]

    def list_namespaces(self, *, id_prefix: str = "", limit: int = 100) -> list[str]:
        with self._lock:
            found = {r.namespace for r in self._executions.values() if r.id.startswith(id_prefix)}
        return sorted(found)[: max(limit, 0)]

    def list_steps(self, execution_id: str) -> list[StepRow]:
        with self._lock:
            return self._ordered_steps(execution_id)

    def list_step_attempts(self, execution_id: str) -> list[StepAttemptRow]:
        with self._lock:
            found = self._attempts.get(execution_id, {})
            return [found[key] for key in sorted(found)]  # frozen records: no copy needed

    def cancel(self, namespace: str, execution_id: str, *, now_ms: int) -> bool:
        with self._lock:
            row = self._executions.get(execution_id)
            if row is None or row.namespace != namespace or row.status.terminal:
                return False
            row.status = Status.CANCELLED
            row.completed_at = now_ms
            row.updated_at = now_ms
            row.wake_at = row.sleep_until = row.next_retry_at = None
            row.lease_owner = None
            self._free_slots(row.id)
            row.lease_expires_at = None
            # Fences out a worker that is running it right now.
            row.lease_token += 1
            self._tell_parent(row, now_ms, "cancel")
            return True

    def retry_execution(self, namespace: str, execution_id: str, *, now_ms: int) -> bool:
        with self._lock:
            row = self._executions.get(execution_id)
            if row is None or row.namespace != namespace:
                return False
            if row.status == Status.PENDING and row.parks > 0:
                row.run_at = row.wake_at = now_ms  # a parked one: due now
                row.updated_at = now_ms
                self._index(row)
                return True
            if row.status not in (Status.FAILED, Status.CANCELLED):
                return False
            row.status = Status.PENDING
            row.attempt += 1
            row.max_attempts = max(row.max_attempts, row.attempt)
            row.run_at = row.wake_at = now_ms
            row.timeout_at = None if row.timeout_ms is None else now_ms + row.timeout_ms
            row.error_type = row.error_message = None
            row.output = None
            row.completed_at = row.sleep_until = row.next_retry_at = None
            row.updated_at = now_ms
            self._index(row)
            steps = self._steps.get(execution_id, {})
            # Spent steps and timed-out receives run (wait) again, with a fresh budget.
            reset = (StepStatus.FAILED, StepStatus.TIMED_OUT)
            for name in [n for n, s in steps.items() if s.status in reset]:
                del steps[name]
            return True

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
        wanted = {Status(s) for s in statuses if Status(s).terminal}
        with self._lock:
            candidates = sorted(
                (
                    r
                    for r in self._executions.values()
                    if r.namespace == namespace
                    and r.status in wanted
                    and r.completed_at is not None
                    and r.completed_at < ended_before_ms
                    and (workflow_name is None or r.workflow_name == workflow_name)
                ),
                key=lambda r: (r.completed_at or 0, r.id),
            )
            chosen = [r.id for r in candidates if not self._has_unfinished_descendant(r.id)]
            chosen = chosen[: max(limit, 0)]
            if not dry_run:
                for eid in chosen:
                    self._delete_execution(eid)
            return chosen

    def _has_unfinished_descendant(self, execution_id: str) -> bool:
        pending = [execution_id]
        while pending:
            parent = pending.pop()
            for row in self._executions.values():
                if row.parent_id == parent:
                    if not row.status.terminal:
                        return True
                    pending.append(row.id)
        return False

    def _delete_execution(self, execution_id: str) -> None:
        row = self._executions.pop(execution_id)
        self._free_slots(execution_id)
        if row.idempotency_key is not None:
            self._idempotency.pop((row.namespace, row.idempotency_key), None)
        self._steps.pop(execution_id, None)
        self._attempts.pop(execution_id, None)
        self._events.pop(execution_id, None)
        for mid in [m.id for m in self._messages.values() if m.execution_id == execution_id]:
            del self._messages[mid]

    def next_wake_at(
        self, namespace: str, workflow_names: Sequence[str], *, after_ms: int | None = None
    ) -> int | None:
        names = set(workflow_names)
        with self._lock:
            found: int | None = None
            if after_ms is not None:
                for row in self._executions.values():
                    if (
                        row.namespace == namespace
                        and row.workflow_name in names
                        and row.id not in self._held
                        and row.wake_at is not None
                        and row.wake_at > after_ms
                        and (found is None or row.wake_at < found)
                    ):
                        found = row.wake_at
                return found
            for lane, heap in self._due.items():
                if is_held(lane):
                    continue  # not due until a slot of their key frees
                popped: list[tuple[int, int, str]] = []
                while heap:
                    entry = heapq.heappop(heap)
                    current = self._current(entry, lane)
                    if current is None:
                        continue
                    popped.append(entry)
                    if current.namespace == namespace and current.workflow_name in names:
                        if found is None or entry[0] < found:
                            found = entry[0]
                        break
                for entry in popped:
                    heapq.heappush(heap, entry)
            return found

    def _pick_due(
        self, namespace: str, names: set[str], now_ms: int, limit: int
    ) -> list[ExecutionRow]:
        """The first ``limit`` due rows of each claimable lane, in claim order."""
        candidates: dict[str, ExecutionRow] = {}
        for lane, heap in self._due.items():
            if is_held(lane):
                continue  # held back by their concurrency key: never claimed from here
            popped: list[tuple[int, int, str]] = []
            found = 0
            while heap and heap[0][0] <= now_ms and found < limit:
                entry = heapq.heappop(heap)
                row = self._current(entry, lane)
                if row is None:
                    continue  # stale: dropped
                popped.append(entry)
                if (
                    row.namespace == namespace
                    and row.workflow_name in names
                    and row.id not in candidates
                ):
                    candidates[row.id] = row
                    found += 1
            for entry in popped:
                heapq.heappush(heap, entry)
        return sorted(
            candidates.values(),
            key=lambda r: order_key(r.priority, r.wake_at, r.created_at, r.id),
        )

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
        names = set(workflow_names)
        with self._lock:
            # The first ``limit`` due rows of each lane (SQLStore: one range scan each),
            # then all of them in claim order, admitted under the queues' limits. Rows a
            # full concurrency key held back leave their lane: pick again (a few times).
            claims: list[Claim] = []
            in_flight = dict(held or {})
            for _ in range(PICK_ROUNDS):
                ordered = self._pick_due(namespace, names, now_ms, limit - len(claims))
                held_before = len(self._held)
                admitted = self._admit(
                    namespace,
                    worker_id,
                    ordered,
                    limit=limit - len(claims),
                    held=in_flight,
                    now_ms=now_ms,
                )
                for row in admitted:
                    ran_before = row.attempt > 0
                    claim = take_lease(row, worker_id, now_ms=now_ms, lease_ms=lease_ms)
                    self._index(row)
                    claim.execution = replace(row)
                    # A first claim has no checkpoints yet; everything else replays.
                    claim.steps = self._ordered_steps(row.id) if ran_before else []
                    claims.append(claim)
                    in_flight[row.queue] = in_flight.get(row.queue, 0) + 1
                if len(claims) >= limit or len(self._held) == held_before:
                    break
            return claims

    def heartbeat(self, leases: Sequence[Lease], *, now_ms: int, lease_ms: int) -> list[str]:
        with self._lock:
            return [
                lease.execution_id for lease in leases if not self._extend(lease, now_ms, lease_ms)
            ]

    def owned_leases(self, namespace: str, worker_id: str) -> list[Lease]:
        with self._lock:
            return [
                Lease(row.id, row.lease_token, worker_id, row.queue)
                for row in self._executions.values()
                if row.namespace == namespace
                and row.status == Status.RUNNING
                and row.lease_owner == worker_id
            ]

    def release(self, lease: Lease, *, now_ms: int) -> bool:
        with self._lock:
            row = self._owned(lease)
            if row is None:
                return False
            row.status = Status.PENDING
            row.wake_at = now_ms
            row.updated_at = now_ms
            row.lease_owner = None
            self._free_slots(row.id)
            row.lease_expires_at = None
            row.lease_token += 1
            self._index(row)
            return True

    # -- fenced writes ----------------------------------------------------------------
    def save_step(self, lease: Lease, step: StepRow, *, now_ms: int, lease_ms: int) -> None:
        with self._lock:
            if not self._extend(lease, now_ms, lease_ms):
                raise LeaseLostError(_lost(lease))
            self._put_step(step, lease)

    def suspend(
        self, lease: Lease, *, wake_at_ms: int, now_ms: int, step: StepRow | None = None
    ) -> None:
        with self._lock:
            row = self._owned_or_raise(lease)
            row.status = Status.SLEEPING
            row.sleep_until = wake_at_ms
            row.wake_at = cap_wake(wake_at_ms, row.timeout_at)
            row.wait_topic = None
            self._index(row)
            row.updated_at = now_ms
            row.lease_owner = None
            self._free_slots(row.id)
            row.lease_expires_at = None
            if step is not None:
                self._put_step(step, lease)

    def schedule_retry(
        self,
        lease: Lease,
        *,
        run_at_ms: int,
        error_type: str,
        error_message: str,
        now_ms: int,
    ) -> None:
        with self._lock:
            row = self._owned_or_raise(lease)
            row.status = Status.PENDING
            row.attempt += 1
            row.next_retry_at = run_at_ms
            row.run_at = run_at_ms
            row.wake_at = cap_wake(run_at_ms, row.timeout_at)
            self._index(row)
            row.error_type = error_type
            row.error_message = error_message
            row.updated_at = now_ms
            row.lease_owner = None
            self._free_slots(row.id)
            row.lease_expires_at = None

    def park(
        self,
        lease: Lease,
        *,
        wake_at_ms: int,
        error_type: str,
        error_message: str,
        now_ms: int,
    ) -> None:
        with self._lock:
            row = self._owned_or_raise(lease)
            row.status = Status.PENDING
            row.parks += 1
            row.run_at = row.next_retry_at = wake_at_ms
            row.wake_at = cap_wake(wake_at_ms, row.timeout_at)
            self._index(row)
            row.error_type = error_type
            row.error_message = error_message
            row.updated_at = now_ms
            row.lease_owner = None
            self._free_slots(row.id)
            row.lease_expires_at = None

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
        with self._lock:
            row = self._owned_or_raise(lease)
            row.status = Status(status)
            row.output = bytes(output) if output is not None else None
            row.error_type = error_type
            row.error_message = error_message
            row.completed_at = now_ms
            row.updated_at = now_ms
            row.wake_at = row.sleep_until = row.next_retry_at = None
            row.lease_owner = None
            self._free_slots(row.id)
            row.lease_expires_at = None
            if parent_id is not None:
                self._tell_parent(row, now_ms, str(lease.token))

    # -- children ---------------------------------------------------------------------
    def start_child(
        self, lease: Lease, child: NewExecution, step: StepRow, *, now_ms: int, lease_ms: int
    ) -> tuple[str, bool]:
        with self._lock:
            if self._owned(lease) is None:
                raise LeaseLostError(_lost(lease))
            existing = self._executions.get(child.id)
            if existing is not None and existing.parent_id != lease.execution_id:
                raise ValueError(
                    f"execution id {child.id!r} is taken by an execution that is not a "
                    f"child of {lease.execution_id}"
                )
            created = existing is None
            if created:
                self.create_execution(child)
            self._extend(lease, now_ms, lease_ms)
            self._put_step(step, lease)
            return child.id, created

    # -- messages and events ----------------------------------------------------------
    # One lock serializes every call, so a send and a suspending receive cannot
    # interleave: the lock order the SQL stores follow (the receiver's row first) is moot.
    def send_message(self, message: NewMessage, *, now_ms: int) -> tuple[str, bool]:
        with self._lock:
            return self._send(message, now_ms)

    def send_from_run(
        self, lease: Lease, message: NewMessage, step: StepRow, *, now_ms: int, lease_ms: int
    ) -> None:
        with self._lock:
            if self._owned(lease) is None:
                raise LeaseLostError(_lost(lease))
            self._send(message, now_ms)  # raises (writing nothing) for a missing/ended target
            self._extend(lease, now_ms, lease_ms)
            self._put_step(step, lease)

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
        with self._lock:
            row = self._owned_or_raise(lease)
            mine = [m for m in self._messages.values() if m.execution_id == row.id]
            taken = next((m for m in mine if m.consumed_by == waiting.name), None)
            if taken is not None:
                self._extend(lease, now_ms, lease_ms)
                return replace(taken)
            found = next((m for m in mine if m.topic == topic and m.consumed_by is None), None)
            if found is not None:
                self._extend(lease, now_ms, lease_ms)
                found.consumed_by = waiting.name
                found.consumed_at = now_ms
                received = replace(
                    waiting,
                    status=StepStatus.COMPLETED,
                    output=found.payload,
                    completed_at=now_ms,
                    detail=received_detail(waiting.detail, found.id),
                )
                self._put_step(received, lease)
                return replace(found)
            if not suspend:
                self._extend(lease, now_ms, lease_ms)
                return None
            row.status = Status.SLEEPING
            row.sleep_until = deadline_ms
            row.wait_topic = topic
            row.wake_at = (
                row.timeout_at if deadline_ms is None else cap_wake(deadline_ms, row.timeout_at)
            )
            self._index(row)
            row.updated_at = now_ms
            row.lease_owner = None
            self._free_slots(row.id)
            row.lease_expires_at = None
            self._put_step(waiting, lease)
            return None

    def list_messages(self, execution_id: str) -> list[MessageRow]:
        with self._lock:
            return [replace(m) for m in self._messages.values() if m.execution_id == execution_id]

    def list_sent_messages(self, execution_id: str) -> list[MessageRow]:
        with self._lock:
            return [replace(m) for m in self._messages.values() if m.sender_id == execution_id]

    def set_event(
        self, lease: Lease, event: EventRow, step: StepRow, *, now_ms: int, lease_ms: int
    ) -> None:
        with self._lock:
            if not self._extend(lease, now_ms, lease_ms):
                raise LeaseLostError(_lost(lease))
            stored = replace(event, value=bytes(event.value))
            self._events.setdefault(event.execution_id, {})[event.key] = stored
            self._put_step(step, lease)

    def get_events(self, execution_id: str) -> list[EventRow]:
        with self._lock:
            found = self._events.get(execution_id, {})
            return [replace(found[key]) for key in sorted(found)]

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
        payload = bytes(payload) if payload is not None else None
        with self._lock:
            row = self._cron_jobs.get((namespace, name))
            if row is None:
                row = CronJobRow(
                    namespace=namespace,
                    name=name,
                    spec=spec,
                    timezone=timezone,
                    workflow_name=workflow_name,
                    payload=payload,
                    enabled=True,
                    created_at=now_ms,
                    updated_at=now_ms,
                    next_run_at=None,
                )
                self._cron_jobs[(namespace, name)] = row
            elif row.definition() != (spec, timezone, workflow_name, payload):
                row.spec, row.timezone = spec, timezone
                row.workflow_name, row.payload = workflow_name, payload
                row.updated_at = now_ms
                row.next_run_at = None
            return replace(row)

    def list_cron_jobs(self, namespace: str) -> list[CronJobRow]:
        with self._lock:
            return [
                replace(row) for (ns, _), row in sorted(self._cron_jobs.items()) if ns == namespace
            ]

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
        with self._lock:
            fires = self._cron_fires.setdefault((namespace, job_name), {})
            if slot_ms in fires:
                return False
            fires[slot_ms] = CronFire(namespace, job_name, slot_ms, now_ms, worker_id, execution_id)
            return True

    def last_cron_fire(self, namespace: str, job_name: str) -> CronFire | None:
        with self._lock:
            fires = self._cron_fires.get((namespace, job_name))
            return fires[max(fires)] if fires else None

    def set_cron_next_run(self, namespace: str, job_name: str, next_run_ms: int | None) -> None:
        with self._lock:
            row = self._cron_jobs.get((namespace, job_name))
            if row is not None:
                row.next_run_at = next_run_ms

    # -- notifications ----------------------------------------------------------------
    def open_listener(self, namespace: str, channel: str = "work") -> WakeListener | None:
        return None

    # -- internals (callers hold the lock) --------------------------------------------
    def _owned(self, lease: Lease) -> ExecutionRow | None:
        row = self._executions.get(lease.execution_id)
        if row is None or row.status != Status.RUNNING or row.lease_token != lease.token:
            return None
        return row

    def _owned_or_raise(self, lease: Lease) -> ExecutionRow:
        row = self._owned(lease)
        if row is None:
            raise LeaseLostError(_lost(lease))
        return row

    def _extend(self, lease: Lease, now_ms: int, lease_ms: int) -> bool:
        row = self._owned(lease)
        if row is None:
            return False
        row.lease_expires_at = now_ms + lease_ms
        row.wake_at = cap_wake(row.lease_expires_at, row.timeout_at)
        row.updated_at = now_ms
        self._index(row)
        return True

    def _index(self, row: ExecutionRow) -> None:
        """Record the row's (new) wake time in the due-heap of its (new) lane."""
        lane = self._lane_of(row)
        if row.wake_at is not None and lane is not None:
            heapq.heappush(self._due.setdefault(lane, []), (row.wake_at, row.created_at, row.id))

    def _current(self, entry: tuple[int, int, str], lane: str) -> ExecutionRow | None:
        """The row a heap entry of ``lane`` points at, if the entry is not stale."""
        row = self._executions.get(entry[2])
        if row is None or row.wake_at != entry[0]:
            return None
        return row if self._lane_of(row) == lane else None

    def _put_step(self, step: StepRow, lease: Lease) -> None:
        """Store the step's checkpoint and the record of the attempt it ends, if any."""
        stored = replace(step, output=bytes(step.output) if step.output is not None else None)
        self._steps.setdefault(step.execution_id, {})[step.name] = stored
        attempt = attempt_of(step, lease)
        if attempt is not None:
            key = (attempt.step_name, attempt.lease_token, attempt.attempt)
            self._attempts.setdefault(step.execution_id, {})[key] = attempt

    def _send(
        self, message: NewMessage, now_ms: int, wake_ms: int | None = None
    ) -> tuple[str, bool]:
        """Store a message (see ``MessageStore.send_message``); the caller holds the lock."""
        target = self._executions.get(message.execution_id)
        if target is None or target.namespace != message.namespace:
            raise ExecutionNotFoundError(
                f"no execution {message.execution_id!r} in namespace {message.namespace!r}"
            )
        # A repeated send is recognised first, even once the execution has ended.
        if message.id in self._messages:
            return message.id, False
        if message.idempotency_key is not None:
            for m in self._messages.values():
                if m.execution_id == target.id and m.idempotency_key == message.idempotency_key:
                    return m.id, False
        if target.status.terminal:
            raise ExecutionFinishedError(
                f"execution {target.id} is {target.status.value}: a message to it would "
                "never be received, so it was not stored"
            )
        self._seq += 1
        self._messages[message.id] = MessageRow(
            id=message.id,
            namespace=message.namespace,
            execution_id=message.execution_id,
            topic=message.topic,
            payload=bytes(message.payload),
            seq=self._seq,
            sent_at=message.sent_at_ms,
            idempotency_key=message.idempotency_key,
            sender_id=message.sender_id,
            consumed_at=None,
            consumed_by=None,
        )
        if target.status == Status.SLEEPING and target.wait_topic == message.topic:
            # the receive it waits in has a message now (capped: past its timeout, it is
            # claimable as of the timeout already)
            target.wake_at = cap_wake(now_ms if wake_ms is None else wake_ms, target.timeout_at)
            self._index(target)
        return message.id, True

    def _tell_parent(self, child: ExecutionRow, now_ms: int, ending: str) -> None:
        """Send a child's end to its parent (unless the parent has ended)."""
        parent = self._executions.get(child.parent_id or "")
        if parent is None or parent.status.terminal:
            return
        message = child_ended(
            parent,
            child.id,
            child.namespace,
            status=child.status,
            output=child.output,
            error_type=child.error_type,
            error_message=child.error_message,
            now_ms=now_ms,
            ending=ending,
        )
        self._send(message, now_ms, now_ms + CHILD_END_WAKE_DELAY_MS)

    def _ordered_steps(self, execution_id: str) -> list[StepRow]:
        found = self._steps.get(execution_id, {}).values()
        return [replace(s) for s in sorted(found, key=lambda s: (s.order, s.name))]


def _lost(lease: Lease) -> str:
    return (
        f"worker {lease.worker_id} lost the lease on execution {lease.execution_id} "
        f"(token {lease.token}): it was taken over or cancelled"
    )


if TYPE_CHECKING:
    # mypy checks here that MemoryStore satisfies the Store protocol.
    _conforms: type[Store] = MemoryStore


__all__ = ["MemoryStore"]

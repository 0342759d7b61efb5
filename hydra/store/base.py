"""The Store interface and the records that cross it.

A store is deliberately dumb: it keeps rows and makes each write atomic and *fenced*.
Policy (when to retry, when a takeover has used the last attempt, timeouts) lives in the
execution loop (``hydra.runner``), so every store implementation behaves the same.

All times are Unix milliseconds passed in by the caller: a store never reads a clock, so
the same store runs on the database's time in production and on a fake clock in tests.
The one exception is ``database_time_ms``, which *reports* the database server's clock so
that every worker of a database can share one time base (``hydra.clock.DatabaseClock``);
no other store call uses it.

Fencing: every claim gives the execution a fresh, larger ``lease_token``. Every write a
worker makes for an execution names the token it was given and the write matches only
while ``status = 'running'`` and the token is unchanged; otherwise it raises
``LeaseLostError`` and writes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from hydra.status import Status, StepStatus
from hydra.store.queues import DEFAULT_QUEUE, QueueStore


@dataclass(frozen=True, slots=True)
class NewExecution:
    """What ``start_workflow`` stores."""

    id: str
    namespace: str
    workflow_name: str
    input: bytes
    max_attempts: int
    retry_backoff_ms: int
    timeout_ms: int | None
    idempotency_key: str | None
    run_at_ms: int
    created_at_ms: int
    trigger_type: str = "api"
    trigger_source: str | None = None
    #: the execution that started this one (``hydra.start_child``), if any
    parent_id: str | None = None
    #: the queue it is in (``hydra.queues``), its priority there, its concurrency key
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    concurrency_key: str | None = None
    #: the trace context of whoever started it (a JSON object of propagation headers,
    #: ``hydra.tracecontext``), continued by its runs; None when there was none
    trace_context: str | None = None


@dataclass(slots=True)
class ExecutionRow:
    """One row of ``workflow_executions``.

    ``wake_at`` is the single time the claim query orders by: the run time of a pending
    execution, the wake time of a sleeping one (a durable sleep or a step's retry backoff),
    the lease expiry of a running one; capped by ``timeout_at``; NULL once terminal.
    ``attempt`` is the 1-based number of the current (or next) workflow attempt, 0 before
    the first claim.
    """

    id: str
    namespace: str
    workflow_name: str
    status: Status
    input: bytes
    output: bytes | None
    error_type: str | None
    error_message: str | None
    attempt: int
    max_attempts: int
    retry_backoff_ms: int
    timeout_ms: int | None
    timeout_at: int | None
    idempotency_key: str | None
    created_at: int
    started_at: int | None
    completed_at: int | None
    updated_at: int
    run_at: int
    sleep_until: int | None
    next_retry_at: int | None
    wake_at: int | None
    lease_owner: str | None
    lease_token: int
    lease_expires_at: int | None
    trigger_type: str | None
    trigger_source: str | None
    #: the topic of the ``hydra.receive`` a ``sleeping`` execution waits in (a message
    #: of it makes the execution due at once); None for any other sleep
    wait_topic: str | None = None
    #: the execution that started this one as its child (``hydra.start_child``), if any
    parent_id: str | None = None
    #: how many times a run found the code no longer matching the history and parked
    #: the execution (``park``); the delay before its next try grows with it
    parks: int = 0
    #: the queue it was started in (``hydra.queues``), its priority, its concurrency key
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    concurrency_key: str | None = None
    #: the trace context stored at its start (``NewExecution.trace_context``)
    trace_context: str | None = None


#: What a checkpoint is (``StepRow.kind``): a step's result, a durable sleep, a
#: ``hydra.receive``, a ``hydra.send``, a ``hydra.set_event``, a ``hydra.start_child``,
#: a ``hydra.wait_child``, a ``hydra.patched`` answer (outside the sequence of positions).
STEP_KINDS = ("step", "sleep", "receive", "send", "event", "child", "child_wait", "patch")


@dataclass(slots=True)
class StepRow:
    """One row of ``workflow_steps``: a checkpoint of a step, a sleep, a receive, a send or
    an event (``kind``).

    ``detail`` is a small JSON object saying what a checkpoint that is not a step waited
    for or did, for replay and display: a receive's ``{"topic", "deadline"}`` (deadline
    in Unix ms or null) and, once it received, the ``"message"`` id; a send's ``{"to",
    "topic", "message"}``; an event's ``{"key"}``. ``output`` is a step's result, a
    sleep's wake time, a received message's payload, an event's value.
    """

    execution_id: str
    name: str
    order: int
    status: StepStatus
    attempts: int
    output: bytes | None = None
    error_type: str | None = None
    error_message: str | None = None
    started_at: int | None = None
    completed_at: int | None = None
    kind: str = "step"
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to write for one execution: valid while its token is the current one."""

    execution_id: str
    token: int
    worker_id: str
    #: the execution's queue: leaving ``running`` frees the slots it holds there
    queue: str = DEFAULT_QUEUE


@dataclass(frozen=True, slots=True)
class StepAttemptRow:
    """One row of ``workflow_step_attempts``: one attempt of a step that reached a result
    or an error. An attempt in flight when its worker died leaves none.

    Never written on its own: a store derives it (``attempt_of``) from the step row that
    ``save_step`` or ``suspend`` writes, in the same transaction and under the same fence.
    ``lease_token`` is the lease that ran the attempt. It is part of the key because a
    retried execution (``retry_execution``) starts a failed step's count again at 1 under
    a new lease; ordered by (lease_token, attempt), a step's attempts are in the order
    they were made. ``status`` is ``completed`` or ``failed``.
    """

    execution_id: str
    step_name: str
    lease_token: int
    attempt: int
    status: StepStatus
    error_type: str | None = None
    error_message: str | None = None
    started_at: int | None = None
    completed_at: int | None = None


def attempt_of(step: StepRow, lease: Lease) -> StepAttemptRow | None:
    """The attempt record that writing ``step`` under ``lease`` adds, or None for a
    checkpoint that is not a step (a sleep, a receive, a send, an event).

    The one definition shared by every store: a ``completed`` row records a completed
    attempt; a ``failed`` row (attempts used up) and a ``retrying`` row (another attempt
    follows) each record a failed one, with the row's error. The attempt's number, times
    and error are the step row's (which describes its latest attempt).
    """
    if step.kind != "step":
        return None  # a sleep, receive, send or event: no attempt of a body to record
    if step.status == StepStatus.COMPLETED:
        outcome = StepStatus.COMPLETED
    elif step.status in (StepStatus.FAILED, StepStatus.RETRYING):
        outcome = StepStatus.FAILED
    else:
        return None
    return StepAttemptRow(
        execution_id=step.execution_id,
        step_name=step.name,
        lease_token=lease.token,
        attempt=step.attempts,
        status=outcome,
        error_type=step.error_type,
        error_message=step.error_message,
        started_at=step.started_at,
        completed_at=step.completed_at,
    )


@dataclass(slots=True)
class Claim:
    """An execution a worker has just claimed, with what it needs to replay it."""

    execution: ExecutionRow
    lease: Lease
    previous_status: Status
    steps: list[StepRow] = field(default_factory=list)

    @property
    def takeover(self) -> bool:
        """The previous owner's lease expired while it was running (it crashed or hung)."""
        return self.previous_status == Status.RUNNING


@dataclass(slots=True)
class CronJobRow:
    """One row of ``cron_jobs``: a registered cron job's schedule, as stored.

    ``updated_at`` is when the *definition* (spec, timezone, workflow, payload) last
    changed: registering the same definition again leaves the row alone, so a restart does
    not forget the slots missed while every worker was down. ``payload`` is the encoded
    payload of a workflow-starting job (None for a handler, or a payload computed per slot).
    ``next_run_at`` is the next slot as last computed by a worker (for display).
    """

    namespace: str
    name: str
    spec: str
    timezone: str | None
    workflow_name: str | None
    payload: bytes | None
    enabled: bool
    created_at: int
    updated_at: int
    next_run_at: int | None

    def definition(self) -> tuple[str, str | None, str | None, bytes | None]:
        """What registering the job sets; a change of any part bumps ``updated_at``."""
        return (self.spec, self.timezone, self.workflow_name, self.payload)


@dataclass(frozen=True, slots=True)
class CronFire:
    """One row of ``cron_fires``: the record that a slot of a cron job was fired."""

    namespace: str
    job_name: str
    slot_at: int
    fired_at: int
    worker_id: str | None
    execution_id: str | None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store: ``id`` is the caller's (a random UUID from ``Engine.send``,
    derived from the sender and its checkpoint name for ``hydra.send``), so a write
    repeated after a lost reply finds it instead of storing it twice."""

    id: str
    namespace: str
    execution_id: str
    topic: str
    payload: bytes
    sent_at_ms: int
    idempotency_key: str | None = None
    sender_id: str | None = None


@dataclass(slots=True)
class MessageRow:
    """One row of ``workflow_messages``: a message to one execution, on one topic.

    ``seq`` orders the messages (the store's insertion order): a receive takes the
    unconsumed message of its topic with the smallest. ``consumed_by`` is the name of the
    receive checkpoint that took it (in the same fenced transaction), None while unread.
    """

    id: str
    namespace: str
    execution_id: str
    topic: str
    payload: bytes
    seq: int
    sent_at: int
    idempotency_key: str | None
    sender_id: str | None
    consumed_at: int | None
    consumed_by: str | None


@dataclass(slots=True)
class EventRow:
    """One row of ``workflow_events``: the latest value published under a key."""

    execution_id: str
    key: str
    value: bytes
    updated_at: int


#: Topics that start with this are hydra's own (a child's end, sent to its parent):
#: ``hydra.workflow.user_topic`` refuses them in workflows and callers.
RESERVED_TOPIC_PREFIX = "hydra."
_CHILD_MESSAGES = uuid.UUID("3b0f5e5e-8a41-4f7b-9d3c-2f6f7f1c9a10")


#: A parent woken by a child's end is due this long after it (1 ms), not at once: the
#: claim takes due executions oldest wake time first, so its other children already due
#: run first, and a parent waiting for each of 1,000 children in turn finds most of them
#: ended when it is claimed, instead of being woken once per child.
CHILD_END_WAKE_DELAY_MS = 1


def child_topic(child_id: str) -> str:
    """The topic on which a child's end is sent to its parent (``hydra.wait_child``)."""
    return f"{RESERVED_TOPIC_PREFIX}child:{child_id}"


def child_ended(
    parent: ExecutionRow | str,
    child_id: str,
    namespace: str,
    *,
    status: Status,
    output: bytes | None,
    error_type: str | None,
    error_message: str | None,
    now_ms: int,
    ending: str,
) -> NewMessage:
    """The message that tells a parent its child ended: on ``child_topic``, its payload a
    JSON line (status, error) then the child's encoded output (``parse_child_end``).
    ``ending`` names the write that ended the child (a lease token, ``"cancel"``): the
    message's id is derived from it, so that write repeated stores it once."""
    parent_id = parent if isinstance(parent, str) else parent.id
    header = json.dumps(
        {"status": status.value, "error_type": error_type, "error_message": error_message}
    )
    return NewMessage(
        id=str(uuid.uuid5(_CHILD_MESSAGES, f"{child_id}/{ending}")),
        namespace=namespace,
        execution_id=parent_id,
        topic=child_topic(child_id),
        payload=header.encode() + b"\n" + (output or b""),
        sent_at_ms=now_ms,
        sender_id=child_id,
    )


def parse_child_end(payload: bytes) -> tuple[Status, bytes | None, str | None, str | None]:
    """``(status, output, error_type, error_message)`` of a ``child_ended`` payload."""
    header, _, output = payload.partition(b"\n")
    found = json.loads(header)
    status = Status(found["status"])
    return (
        status,
        (output if status == Status.COMPLETED else None),
        found.get("error_type"),
        found.get("error_message"),
    )


def detail_of(detail: str | None) -> dict[str, Any]:
    """A checkpoint's stored detail (``StepRow.detail``) as a dict; ``{}`` for none, or
    for one that is not a JSON object."""
    try:
        found = json.loads(detail) if detail else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def received_detail(detail: str | None, message_id: str) -> str:
    """A receive checkpoint's detail once it took ``message_id``: the waiting one's
    (topic, deadline) with ``"message"`` added."""
    return json.dumps({**detail_of(detail), "message": message_id})


def take_lease(row: ExecutionRow, worker_id: str, *, now_ms: int, lease_ms: int) -> Claim:
    """Apply a claim to ``row`` in place and return it as a ``Claim`` (steps not loaded).

    The one definition of what a claim does, shared by every store: ``running``, this
    owner, a fresh token, ``lease_expires_at = now + lease_ms``; ``attempt`` becomes 1 on
    a first claim and goes up by one on a takeover of an expired running lease (the
    crashed attempt is used up); the timeout starts counting at the first start.
    """
    previous = row.status
    if row.attempt == 0:
        row.attempt = 1
    elif previous == Status.RUNNING:
        row.attempt += 1
    row.status = Status.RUNNING
    row.lease_owner = worker_id
    row.lease_token += 1
    row.lease_expires_at = now_ms + lease_ms
    if row.started_at is None:
        row.started_at = now_ms
    if row.timeout_at is None and row.timeout_ms is not None:
        row.timeout_at = row.started_at + row.timeout_ms
    row.wake_at = cap_wake(row.lease_expires_at, row.timeout_at)
    row.sleep_until = row.next_retry_at = None
    row.updated_at = now_ms
    return Claim(row, Lease(row.id, row.lease_token, worker_id, row.queue), previous)


def cap_wake(when: int, timeout_at: int | None) -> int:
    """``wake_at`` never lies past the timeout: a timed-out execution is claimable then."""
    return when if timeout_at is None else min(when, timeout_at)


@runtime_checkable
class WakeListener(Protocol):
    """Tells an idle worker that new work may be claimable (PostgreSQL LISTEN/NOTIFY)."""

    def wait(self, timeout_s: float) -> bool:
        """Block until a notification arrives or ``timeout_s`` passes; True if notified."""
        ...

    def close(self) -> None: ...


class ExecutionStore(Protocol):
    """Executions as a whole: created by ``start_workflow``, read by the engine and the
    tools, cancelled and retried by an operator. None of these writes is fenced: they
    take the execution from whoever holds it (``cancel`` bumps the lease token)."""

    def create_execution(self, new: NewExecution) -> tuple[str, bool]:
        """Insert ``new``; with an idempotency key already used in the namespace, insert
        nothing and return the existing id. Returns ``(id, created)``."""
        ...

    def get_execution(self, namespace: str, execution_id: str) -> ExecutionRow | None: ...

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
        """Newest first; each filter given narrows it: ``parent_id`` that execution's
        children, ``queue`` its executions, ``created_after_ms`` those created at or
        after it, ``idempotency_key`` the one started with that key."""
        ...

    # -- looking executions up (``hydra trace bd183f86``, "did you mean" hints) -----------
    def find_execution_ids(self, namespace: str, prefix: str, *, limit: int) -> list[str]:
        """The ids of up to ``limit`` executions in ``namespace`` whose id starts with
        ``prefix``, in ascending id order.

        The prefix is compared character for character, as ids are: case-sensitively,
        with no wildcards (``%``, ``_``, ``*`` are plain characters). An empty prefix
        matches every id. Meant for a user typing the start of an id
        (``hydra trace bd183f86``): ``SQLStore`` answers it from its primary-key index.
        """
        ...

    def list_namespaces(self, *, id_prefix: str = "", limit: int = 100) -> list[str]:
        """Up to ``limit`` namespaces holding at least one execution, in ascending order
        (the database's collation); with ``id_prefix``, only executions whose id starts
        with it count, compared as ``find_execution_ids`` compares. For tools: the
        namespaces a user may have meant (``hydra list`` in an empty namespace, an id
        found in another one)."""
        ...

    def cancel(self, namespace: str, execution_id: str, *, now_ms: int) -> bool:
        """Mark a non-terminal execution ``cancelled`` and fence out its owner; a child's
        end is sent to its parent as ``finish`` sends it, in the same transaction.
        Returns False if it was already terminal (or does not exist)."""
        ...

    def retry_execution(self, namespace: str, execution_id: str, *, now_ms: int) -> bool:
        """Give a ``failed`` or ``cancelled`` execution one more attempt, from its
        checkpoints: ``pending`` and claimable at once, ``attempt + 1`` (and
        ``max_attempts`` raised to it if needed), its timeout counted again from now, the
        error cleared, and the records of steps that used up their attempts (``failed``)
        deleted so they run again with a fresh budget, and so are the records of receives
        that timed out (``timed_out``): they wait again, with a new deadline. Completed
        steps stay checkpointed, and every step attempt record is kept (a step run again
        starts at attempt 1 under its new lease, after the earlier ones).
        A parked execution (``pending``, ``parks > 0``) is made due at once instead, with
        nothing else changed. False if it is neither failed, cancelled nor parked (or
        does not exist)."""
        ...

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
        """Delete up to ``limit`` executions of the namespace whose status is one of
        ``statuses`` (terminal ones only) and that ended (``completed_at``) before
        ``ended_before_ms``, oldest first, each with everything stored for it (its
        checkpoints, their attempts, the messages sent to it, its events), in one
        transaction: an interrupted purge leaves no orphan. An execution with an
        unfinished descendant is kept. Rows are re-checked under their lock, so an
        execution retried meanwhile is not deleted. Returns the ids deleted; with
        ``dry_run``, those that would be, deleting nothing. Its idempotency key is free
        again once it is deleted. A store whose database has work to do after bulk
        deletes also has ``settle_purge(*, finished=False)``, which ``Engine.purge`` calls
        between batches and after the last (``SQLStore``: SQLite's WAL checkpoints)."""
        ...

    def next_wake_at(
        self, namespace: str, workflow_names: Sequence[str], *, after_ms: int | None = None
    ) -> int | None:
        """The earliest ``wake_at`` among non-terminal executions of these workflows
        (only those later than ``after_ms``, if given)."""
        ...


class StepStore(Protocol):
    """Step checkpoints and the record of every step attempt: written by the lease owner
    (fenced), read for a replay and for display."""

    def save_step(self, lease: Lease, step: StepRow, *, now_ms: int, lease_ms: int) -> None:
        """Insert or replace the step's checkpoint, extending the lease, and record the
        attempt it ends (``attempt_of``) in the same transaction. Writing the same
        attempt again (a retry after a lost reply) replaces its record: still one."""
        ...

    def list_steps(self, execution_id: str) -> list[StepRow]:
        """In step order."""
        ...

    def list_step_attempts(self, execution_id: str) -> list[StepAttemptRow]:
        """Every recorded attempt of the execution's steps: by step name (in the
        database's collation), then each step's in the order they were made
        (``lease_token``, ``attempt``). Steps checkpointed before attempts were recorded
        (schema revision 0003) have none; an unknown id has none."""
        ...


class LeaseStore(Protocol):
    """Claims and leases: who runs an execution now, and the owner's fenced moves out of
    ``running`` (each raises ``LeaseLostError`` if the lease is lost)."""

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
        """Atomically take up to ``limit`` claimable executions: pending and due, sleeping
        and due, or running with an expired lease (or past their timeout). Each gets
        ``status='running'``, this owner, a fresh token and ``lease_expires_at =
        now + lease_ms``; ``attempt`` becomes 1 on a first claim and goes up by one on a
        takeover. Steps are loaded for every execution that has run before.

        Order: higher ``priority`` first, then ``wake_at``, ``created_at``, ``id``. The
        limits of registered queues apply (``hydra.queues``): an execution of a limited
        queue that moves into ``running`` takes the slots and the rate row it needs in
        this transaction, or is left due; a takeover keeps the slots it holds.
        ``held``: this worker's runs in flight per queue (``worker_concurrency``)."""
        ...

    def heartbeat(self, leases: Sequence[Lease], *, now_ms: int, lease_ms: int) -> list[str]:
        """Extend these leases; return the ids whose lease was lost."""
        ...

    def owned_leases(self, namespace: str, worker_id: str) -> list[Lease]:
        """The leases of the namespace's ``running`` executions held under ``worker_id``.

        A worker compares them with the runs it has in flight: any other is a lease no
        run of it will ever extend (a claim whose reply was lost, a previous process with
        the same id), which it releases at once instead of letting it expire."""
        ...

    def release(self, lease: Lease, *, now_ms: int) -> bool:
        """Give an execution back unfinished (graceful shutdown): ``pending``, claimable
        at once, no attempt consumed. False if the lease was already lost."""
        ...

    def suspend(
        self, lease: Lease, *, wake_at_ms: int, now_ms: int, step: StepRow | None = None
    ) -> None:
        """``sleeping`` until ``wake_at_ms`` with the lease released, saving ``step`` (the
        sleep's checkpoint or a failed step attempt) in the same transaction, and the
        attempt record of a failed step attempt (``attempt_of``) as ``save_step`` does."""
        ...

    def schedule_retry(
        self,
        lease: Lease,
        *,
        run_at_ms: int,
        error_type: str,
        error_message: str,
        now_ms: int,
    ) -> None:
        """The workflow attempt failed and another is due at ``run_at_ms``: ``pending``,
        ``attempt + 1``, the error kept for display, the lease released."""
        ...

    def park(
        self,
        lease: Lease,
        *,
        wake_at_ms: int,
        error_type: str,
        error_message: str,
        now_ms: int,
    ) -> None:
        """The code no longer matches the execution's history: ``pending`` again, due at
        ``wake_at_ms``, ``parks + 1``, the error kept for display, the lease released; no
        attempt used (``attempt`` unchanged)."""
        ...

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
        """Terminal ``completed`` or ``failed``, the lease released.

        ``parent_id``: the execution's parent (``ExecutionRow.parent_id`` as claimed).
        In the same transaction, the child's end is sent to it as a message (see
        ``child_ended``), making a parent that waits for it due ``CHILD_END_WAKE_DELAY_MS``
        later; nothing is sent to a parent that has ended."""
        ...


class MessageStore(Protocol):
    """Messages to executions and the events they publish.

    Lock order (every store that has row locks): a transaction that sends a message locks
    the receiving execution's row before it reads or writes any message of it, and a
    receive locks it too (its fenced lease extension) before it looks for a message. So
    a send and a suspending receive are serialized on that row: either the send commits
    first and the receive finds the message, or the suspension commits first and the
    send, finding the execution ``sleeping`` on its topic, makes it due at once. No
    wake-up can be lost between the two. A ``hydra.send`` also holds its sender's lease:
    it locks both rows in ascending id order, so two executions sending to each other
    cannot deadlock.
    """

    def send_message(self, message: NewMessage, *, now_ms: int) -> tuple[str, bool]:
        """Store ``message`` for its execution and return ``(id, created)``.

        With an ``idempotency_key`` already used for a message to the same execution,
        or an id already stored (the same send repeated), nothing is stored and the
        existing message's id is returned with ``created`` False, also once the
        execution has ended (the first send got through; a redelivery is not an error).
        Otherwise ``ExecutionNotFoundError`` if the execution does not exist in the
        namespace, ``ExecutionFinishedError`` if it has ended; nothing is stored then.
        An execution ``sleeping`` in a receive of this topic becomes due at ``now_ms``;
        stores that notify wake idle workers (the ``"work"`` channel)."""
        ...

    def send_from_run(
        self, lease: Lease, message: NewMessage, step: StepRow, *, now_ms: int, lease_ms: int
    ) -> None:
        """``hydra.send``: store ``message`` (as ``send_message`` does) and the sender's
        checkpoint ``step`` in one transaction fenced by the sender's ``lease`` (extended).
        ``LeaseLostError``, ``ExecutionNotFoundError`` or ``ExecutionFinishedError`` write
        nothing. Repeated after a lost reply, it stores the message once."""
        ...

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
        """``hydra.receive``, in one transaction fenced by ``lease`` (extended).

        If a message was already consumed by the checkpoint ``waiting.name`` (the same
        call repeated after a lost reply), return it. Else take the oldest unconsumed
        message of ``topic`` for this execution: mark it consumed by ``waiting.name``,
        write the checkpoint as ``waiting`` with status ``completed``, the message's
        payload as output, ``completed_at = now_ms`` and the message's id added to its
        detail (``received_detail``), and return it. With no message:
        if ``suspend``, write ``waiting`` (status ``waiting``) and make the execution
        ``sleeping`` on ``topic``, lease released, due at ``deadline_ms`` (None: only a
        message or the execution's timeout wakes it); return None. Without ``suspend``
        (the deadline has passed) write nothing but the lease extension and return None.
        Repeated after a lost reply that had suspended, return None without error."""
        ...

    def list_messages(self, execution_id: str) -> list[MessageRow]:
        """Every message sent to the execution, consumed or not, in ``seq`` order."""
        ...

    def list_sent_messages(self, execution_id: str) -> list[MessageRow]:
        """The messages the execution sent (``hydra.send``), in ``seq`` order."""
        ...

    def set_event(
        self, lease: Lease, event: EventRow, step: StepRow, *, now_ms: int, lease_ms: int
    ) -> None:
        """``hydra.set_event``: replace the value under ``event.key`` and write the
        checkpoint ``step``, in one transaction fenced by ``lease`` (extended)."""
        ...

    def get_events(self, execution_id: str) -> list[EventRow]:
        """The execution's events, by key."""
        ...


class ChildStore(Protocol):
    """Child executions: started by a run of their parent as one of its checkpoints."""

    def start_child(
        self, lease: Lease, child: NewExecution, step: StepRow, *, now_ms: int, lease_ms: int
    ) -> tuple[str, bool]:
        """``hydra.start_child``: insert ``child`` (its ``parent_id`` the lease's
        execution) and write the parent's checkpoint ``step``, in one transaction fenced
        by the parent's ``lease`` (extended). ``LeaseLostError`` writes nothing. The
        child's id comes from the parent and the checkpoint name, so a start repeated
        (after a lost reply, or by a replay that lost the checkpoint) finds it: ``(id,
        False)``, nothing written but the checkpoint. ``ValueError`` if that id belongs
        to an execution that is not this parent's child."""
        ...


class CronStore(Protocol):
    """Cron jobs' stored definitions and the record of every fired slot."""

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
        """Store a cron job's definition and return the stored row.

        A new job is inserted enabled, with ``created_at = updated_at = now_ms``. For an
        existing one whose definition (spec, timezone, workflow_name, payload) differs, the
        definition is replaced, ``updated_at = now_ms`` and ``next_run_at`` cleared; an
        identical definition changes nothing. ``enabled`` and ``created_at`` are kept."""
        ...

    def list_cron_jobs(self, namespace: str) -> list[CronJobRow]:
        """The namespace's cron jobs, by name."""
        ...

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
        """Record that this slot of the job fired. True for exactly one caller per
        ``(namespace, job_name, slot_ms)``, across every process sharing the store: the
        record is unique, so whoever inserts it first fires the slot."""
        ...

    def last_cron_fire(self, namespace: str, job_name: str) -> CronFire | None:
        """The fire with the latest slot of this job, or None if it never fired."""
        ...

    def set_cron_next_run(self, namespace: str, job_name: str, next_run_ms: int | None) -> None:
        """Remember the job's next slot (display only; ``updated_at`` is not touched)."""
        ...


@runtime_checkable
class Store(
    ExecutionStore,
    StepStore,
    LeaseStore,
    MessageStore,
    ChildStore,
    CronStore,
    QueueStore,
    Protocol,
):
    """Where executions and their step checkpoints live. See the module docstring.

    The operations are grouped by aggregate in the protocols it combines
    (``ExecutionStore``, ``StepStore``, ``LeaseStore``, ``MessageStore``, ``ChildStore``,
    ``CronStore``); the store as a
    whole adds its capabilities, its lifecycle, its clock and its notifications. A piece
    of code that needs one group only can ask for that protocol.
    """

    #: the store can wake idle workers in other processes (``open_listener`` works)
    supports_notify: bool
    #: several processes can share this store (a database, not process memory)
    shared_across_processes: bool
    #: how many calls this store has retried after a dropped connection since it was
    #: opened. A retried write may have committed the first time (its reply was lost):
    #: a worker that sees this grow sweeps its leases (``owned_leases``) at once.
    reconnects: int
    #: the largest encoded value (an input, a step result, an output, a cron payload) this
    #: store can take in one write, or None when only the engine's ``max_payload_bytes``
    #: bounds it. The engine refuses larger values with ``PayloadError`` before writing.
    #: SQLStore on MySQL/MariaDB derives it from ``max_allowed_packet``; None elsewhere.
    max_value_bytes: int | None

    def migrate(self) -> None:
        """Bring the schema to the newest version."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def database_time_ms(self) -> int | None:
        """The database server's current time in Unix milliseconds, or None when the
        store has no clock of its own (SQLite, ``MemoryStore``: their users share this
        machine's clock).

        One quick round trip, read when the server executes it (not the start of a
        transaction or statement), no retries: ``hydra.clock.DatabaseClock`` times the
        call and uses the fastest of a few. Successive calls never go backwards unless the
        server's own clock is stepped back. Raises on a database error.
        """
        ...

    # -- notifications ----------------------------------------------------------------
    def open_listener(self, namespace: str, channel: str = "work") -> WakeListener | None:
        """A listener for the namespace's notifications, or None if the store has none.

        ``channel``: ``"work"`` (new work may be claimable: creations, retries, a
        message that wakes a receive), ``"finished"`` (an execution of the namespace was
        completed or failed by ``finish``; an engine's ``wait`` closes it when done) or
        ``"events"`` (an execution of the namespace published an event with
        ``set_event``). A store without finished or events notifications returns None for
        that channel.
        """
        ...

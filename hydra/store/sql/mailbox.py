"""``SQLStore``'s messages, events and children (``MessageStore``, ``ChildStore``).

On the hot path (driver connections where the dialect has them): a send and the receive
it wakes are most of a message's latency (docs/benchmarks.md). Lock order (see
``MessageStore``): the receiving execution's row first, then its messages; a child's end
goes to its parent after the child's row (locked by the write that ends it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import IntegrityError

from hydra.errors import ExecutionFinishedError, ExecutionNotFoundError, LeaseLostError
from hydra.status import Status, StepStatus
from hydra.store.base import (
    CHILD_END_WAKE_DELAY_MS,
    EventRow,
    Lease,
    MessageRow,
    NewExecution,
    NewMessage,
    StepAttemptRow,
    StepRow,
    attempt_of,
    child_ended,
    received_detail,
)
from hydra.store.sql import statements
from hydra.store.sql.database import SQLDatabase
from hydra.store.sql.driver import Tx
from hydra.store.sql.fenced import extend_lease, lock_execution, lost_lease
from hydra.store.sql.records import (
    attempt_params,
    event_params,
    event_row,
    message_row,
    message_values,
    new_execution_params,
    step_params,
)


class SQLMailbox(SQLDatabase):
    """The messages, events and children of ``SQLStore`` (its base class). The statements
    it writes with are built by ``SQLStore.__init__``."""

    _step_upsert: Any
    _attempt_upsert: Any
    _event_upsert: Any
    _insert_new_message: Any
    _waking_insert: Any
    _take_message: Any

    def _free_slots(self, tx: Tx, lease: Lease) -> None:
        """Free the queue slots of an execution leaving ``running`` (``SQLQueues``)."""
        raise NotImplementedError

    def _save_attempt(self, tx: Tx, attempt: StepAttemptRow | None) -> None:
        """Record a step attempt inside the transaction that writes its step row, after
        the fence matched. An upsert, like the step's: writing it again (a transaction
        retried after its reply was lost) leaves one record."""
        if attempt is not None:
            tx.rowcount(self._attempt_upsert, attempt_params(attempt))

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
            if not extend_lease(tx, lease, now_ms, lease_ms):
                raise LeaseLostError(lost_lease(lease))
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
        target = lock_execution(tx, parent_id)
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
            target = lock_execution(tx, message.execution_id)
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
            locked = {eid: lock_execution(tx, eid) for eid in sorted({sender, receiver})}
            if not extend_lease(tx, lease, now_ms, lease_ms):
                raise LeaseLostError(lost_lease(lease))
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
            if not extend_lease(tx, lease, now_ms, lease_ms):
                # After a dropped connection the first try may have suspended and
                # committed: sleeping under the same token (only claims and cancels
                # change it). A send meanwhile leaves it sleeping (and due).
                if suspend and tries > 1:
                    found = tx.rows(statements.STATUS_AND_TOKEN, {"f_id": eid})
                    if found and tuple(found[0]) == (Status.SLEEPING.value, lease.token):
                        return None
                raise LeaseLostError(lost_lease(lease))
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
                raise LeaseLostError(lost_lease(lease))  # not reached: the row is locked and ours
            self._free_slots(tx, lease)  # a waiting execution holds no queue slot
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
            if not extend_lease(tx, lease, now_ms, lease_ms):
                raise LeaseLostError(lost_lease(lease))
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

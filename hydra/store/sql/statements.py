"""``SQLStore``'s statements, as SQLAlchemy Core objects.

The hot path's statements (claims, checkpoints, the fenced transitions, creation and the
reads of one execution) are built once here, with bind parameters, and reused: Core
caches their compilation, and the driver path (``driver.py``) compiles each once per
dialect. The others are built per call by the functions below. Statements that differ
between databases are the dialect's to make from these (``dialect.py``).

Every write a lease owner makes is fenced: it matches only while the execution is
``running`` under the owner's ``lease_token`` (``owned``, ``EXTEND``, ``FENCED``).

``SQLStore`` reads them through this module (``statements.EXTEND``), not copies of its
own: the chaos run's negative control (``benchmarks/chaos.py``) replaces the fenced ones
here with versions that ignore the token, and must reach every use.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Delete,
    Insert,
    Integer,
    Select,
    String,
    Update,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    select,
    union_all,
    update,
)

from hydra.status import Status, StepStatus
from hydra.store.base import Lease
from hydra.store.queues import PRIORITY_BASE, RUNNING_LANE
from hydra.store.sql.schema import (
    cron_fires,
    cron_jobs,
    events,
    executions,
    messages,
    queue_slots,
    step_attempts,
    steps,
)

NON_TERMINAL = (Status.PENDING.value, Status.RUNNING.value, Status.SLEEPING.value)


# -- executions -------------------------------------------------------------------------
# start_workflow's INSERT: the columns create_execution sets (bind parameters n_<column>).
INSERTED_COLUMNS = (
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
    "parent_id",
    "queue_name",
    "priority",
    "concurrency_key",
    "claim_lane",
    "trace_context",
)
INSERT_EXECUTION = executions.insert().values({c: bindparam(f"n_{c}") for c in INSERTED_COLUMNS})
GET_EXECUTION = select(executions).where(
    executions.c.id == bindparam("g_id"), executions.c.namespace == bindparam("g_ns")
)
#: the position of created_at in a full executions row
CREATED_AT = list(executions.c.keys()).index("created_at")
PRIORITY = list(executions.c.keys()).index("priority")


def creation_of(execution_id: str) -> Select[Any]:
    """What identifies an insert as this one: its namespace, workflow and creation time."""
    return select(
        executions.c.namespace, executions.c.workflow_name, executions.c.created_at
    ).where(executions.c.id == execution_id)


def id_for_key(namespace: str, idempotency_key: str) -> Select[Any]:
    return select(executions.c.id).where(
        executions.c.namespace == namespace,
        executions.c.idempotency_key == idempotency_key,
    )


def list_executions(
    namespace: str,
    status: Status | None,
    workflow_name: str | None,
    limit: int,
    parent_id: str | None = None,
    queue: str | None = None,
    created_after_ms: int | None = None,
    idempotency_key: str | None = None,
) -> Select[Any]:
    """Newest first (a parent's children: by ix_workflow_executions_parent; a key: by
    uq_workflow_executions_idempotency; a time: a range of ix_workflow_executions_list)."""
    query = select(executions).where(executions.c.namespace == namespace)
    if parent_id is not None:
        query = query.where(executions.c.parent_id == parent_id)
    if queue is not None:
        query = query.where(executions.c.queue_name == queue)
    if created_after_ms is not None:
        query = query.where(executions.c.created_at >= created_after_ms)
    if idempotency_key is not None:
        query = query.where(executions.c.idempotency_key == idempotency_key)
    if status is not None:
        query = query.where(executions.c.status == Status(status).value)
    if workflow_name is not None:
        query = query.where(executions.c.workflow_name == workflow_name)
    return query.order_by(executions.c.created_at.desc(), executions.c.id.desc()).limit(limit)


def find_execution_ids(dialect: str, namespace: str, prefix: str, limit: int) -> Select[Any]:
    return (
        select(executions.c.id)
        .where(executions.c.namespace == namespace, id_starts_with(dialect, prefix))
        .order_by(executions.c.id)
        .limit(max(limit, 0))
    )


def list_namespaces(dialect: str, id_prefix: str, limit: int) -> Select[Any]:
    """The namespaces holding an execution whose id starts with ``id_prefix``, in order.

    With a prefix, a range of the primary key. Without one, every execution is read (at
    best the entries of an index led by namespace): meant for a tool's occasional call,
    such as the CLI's hint when a namespace has no executions.
    """
    query = select(executions.c.namespace).distinct()
    if id_prefix:
        query = query.where(id_starts_with(dialect, id_prefix))
    return query.order_by(executions.c.namespace).limit(max(limit, 0))


def cancel(namespace: str, execution_id: str, now_ms: int) -> Update:
    return (
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
            claim_lane=None,
            sleep_until=None,
            next_retry_at=None,
            lease_owner=None,
            lease_expires_at=None,
            # Fences out a worker that is running it right now.
            lease_token=executions.c.lease_token + 1,
        )
    )


@functools.cache
def purgeable(*, by_workflow: bool, lock: bool) -> Select[Any]:
    """The ids of up to ``p_limit`` finished executions a purge may delete, oldest end first
    (a range scan of ix_workflow_executions_ended in end order, stopped after the limit):
    those of namespace ``p_namespace`` with a status in ``p_statuses`` that ended before
    ``p_ended_before`` (and of workflow ``p_workflow``, ``by_workflow``), none with an
    unfinished child (NOT EXISTS on ix_workflow_executions_parent). Locked FOR UPDATE
    SKIP LOCKED when deleting: a row a retry holds is skipped (the retry wins), and a row
    the purge holds makes a retry wait, then find it gone (SQLite: its write transaction
    serializes both, and ignores the clause).

    Built once (per ``by_workflow`` and ``lock``), its values bound: built per batch, the
    statement with its alias of the executions table (some 35 columns, each in reference
    cycles) was garbage that only the cyclic garbage collector frees, and a purge made it
    run fifteen times as often, its full passes stopping every thread of the process for
    up to 100 ms (docs/benchmarks.md)."""
    child = executions.alias("child")
    unfinished_child = (
        select(child.c.id)
        .where(child.c.parent_id == executions.c.id, child.c.status.in_(NON_TERMINAL))
        .exists()
    )
    query = select(executions.c.id).where(
        executions.c.namespace == bindparam("p_namespace"),
        executions.c.status.in_(bindparam("p_statuses", expanding=True)),
        executions.c.completed_at < bindparam("p_ended_before"),
        ~unfinished_child,
    )
    if by_workflow:
        query = query.where(executions.c.workflow_name == bindparam("p_workflow"))
    query = query.order_by(executions.c.completed_at, executions.c.id).limit(
        bindparam("p_limit", type_=Integer)
    )
    return query.with_for_update(skip_locked=True) if lock else query


def purgeable_params(
    namespace: str,
    ended_before_ms: int,
    statuses: Sequence[str],
    workflow_name: str | None,
    limit: int,
) -> dict[str, Any]:
    """The values of ``purgeable``'s binds."""
    params: dict[str, Any] = {
        "p_namespace": namespace,
        "p_statuses": list(statuses),
        "p_ended_before": ended_before_ms,
        "p_limit": limit,
    }
    if workflow_name is not None:
        params["p_workflow"] = workflow_name
    return params


def retryable(namespace: str, execution_id: str) -> Select[Any]:
    """The execution if ``retry_execution`` may retry it (failed or cancelled), locked.

    FOR UPDATE waits for a worker's in-flight write (SQLite ignores it: the transaction
    already holds the write lock)."""
    return (
        select(executions)
        .where(
            executions.c.id == execution_id,
            executions.c.namespace == namespace,
            executions.c.status.in_((Status.FAILED.value, Status.CANCELLED.value)),
        )
        .with_for_update()
    )


def resume_parked(namespace: str, execution_id: str, now_ms: int) -> Update:
    """A parked execution (pending, parked at least once) due now."""
    return (
        update(executions)
        .where(
            executions.c.id == execution_id,
            executions.c.namespace == namespace,
            executions.c.status == Status.PENDING.value,
            executions.c.parks > 0,
        )
        .values(run_at=now_ms, wake_at=now_ms, updated_at=now_ms)
    )


def retry_execution(
    execution_id: str, *, attempt: int, max_attempts: int, timeout_at: int | None, now_ms: int
) -> Update:
    """``retry_execution``'s reset: pending and due now, the error and output cleared."""
    return (
        update(executions)
        .where(executions.c.id == execution_id)
        .values(
            status=Status.PENDING.value,
            attempt=attempt,
            max_attempts=max_attempts,
            run_at=now_ms,
            wake_at=now_ms,
            claim_lane=WAITING_LANE,
            timeout_at=timeout_at,
            error_type=None,
            error_message=None,
            output_data=None,
            completed_at=None,
            sleep_until=None,
            next_retry_at=None,
            updated_at=now_ms,
        )
    )


def delete_failed_steps(execution_id: str) -> Delete:
    """The checkpoints of steps that used up their attempts and of receives that timed
    out: after a retry they run (wait) again, with a fresh budget (deadline)."""
    return steps.delete().where(
        steps.c.execution_id == execution_id,
        steps.c.status.in_((StepStatus.FAILED.value, StepStatus.TIMED_OUT.value)),
    )


# -- execution ids by prefix --------------------------------------------------------------
def id_starts_with(dialect: str, prefix: str) -> ColumnElement[bool]:
    """``workflow_executions.id`` starts with ``prefix``, exactly (case-sensitively, no
    wildcards), as a range of the primary key plus an exact test of the rows in it."""
    column = executions.c.id
    in_range = [column >= prefix]
    upper = id_upper_bound(prefix)
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


def id_upper_bound(prefix: str) -> str | None:
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


# -- steps and their attempts ---------------------------------------------------------------
STEP_COLUMNS = (
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
    "kind",
    "detail",
)
STEP_KEY = ["execution_id", "step_name"]
# A step attempt's record (bind parameters a_<column>), keyed like the table.
ATTEMPT_COLUMNS = (
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
ATTEMPT_KEY = ["execution_id", "step_name", "lease_token", "attempt"]
# An execution's attempts in the primary key's order: a range scan of the key, no sort.
LIST_ATTEMPTS = (
    select(step_attempts)
    .where(step_attempts.c.execution_id == bindparam("a_id"))
    .order_by(step_attempts.c.step_name, step_attempts.c.lease_token, step_attempts.c.attempt)
)
# The replay's read of an execution's checkpoints, in order.
REPLAY_STEPS = (
    select(steps)
    .where(steps.c.execution_id == bindparam("r_id"))
    .order_by(steps.c.step_order, steps.c.step_name)
)


# -- children ----------------------------------------------------------------------------
# The parent of an execution (start_child: is the child with this id already ours?).
PARENT_OF = select(executions.c.parent_id).where(executions.c.id == bindparam("p_id"))
# What a cancelled child's end tells its parent.
CHILD_END = select(
    executions.c.parent_id,
    executions.c.status,
    executions.c.output_data,
    executions.c.error_type,
    executions.c.error_message,
).where(executions.c.id == bindparam("c_id"))


# -- leases and fenced writes -----------------------------------------------------------------
def owned(lease: Lease) -> tuple[Any, ...]:
    """The fence: the execution is running under this lease."""
    return (
        executions.c.id == lease.execution_id,
        executions.c.lease_token == lease.token,
        executions.c.status == Status.RUNNING.value,
    )


# The claim lane of a pending or sleeping row (hydra.store.queues.waiting_lane) in SQL,
# from its own columns: 'f' (never started) or 'w', PRIORITY_BASE - priority, ':', the
# queue (|| on PostgreSQL and SQLite, CONCAT on MySQL/MariaDB).
WAITING_LANE: Any = (
    case((executions.c.started_at.is_(None), literal("f", String)), else_=literal("w", String))
    + cast(literal(PRIORITY_BASE, BigInteger) - executions.c.priority, String)
    + literal(":", String)
) + executions.c.queue_name
# A lane held back by its concurrency key (hydra.store.queues.held_lane): 'h' and the rest.
HELD_LANE: Any = literal("h", String) + func.substr(executions.c.claim_lane, 2)


def cap_sql(when: Any) -> Any:
    """``min(when, timeout_at)`` in SQL: a timed-out execution becomes claimable at once."""
    return case(
        (
            and_(executions.c.timeout_at.is_not(None), executions.c.timeout_at < when),
            executions.c.timeout_at,
        ),
        else_=when,
    )


# The fenced lease extension (every checkpoint and heartbeat), built once: same WHERE as
# ``owned``, with bind parameters.
EXTEND = (
    update(executions)
    .where(
        executions.c.id == bindparam("x_id"),
        executions.c.lease_token == bindparam("x_token"),
        executions.c.status == Status.RUNNING.value,
    )
    .values(
        lease_expires_at=bindparam("x_expires"),
        wake_at=cap_sql(bindparam("x_expires")),
        updated_at=bindparam("x_now"),
    )
)


# The fenced transitions out of ``running`` (suspend, retry, finish), built once with
# bind parameters; ``build_fenced`` takes the WHERE so that the chaos run's negative
# control can rebuild them without the token.
OWNED_PARAMS = (
    executions.c.id == bindparam("f_id"),
    executions.c.lease_token == bindparam("f_token"),
    executions.c.status == Status.RUNNING.value,
)


def build_fenced(where: tuple[Any, ...]) -> dict[str, Any]:
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
            wake_at=cap_sql(bindparam("f_wake_at")),
            # A plain sleep (or a step's retry backoff) is not cut short by a message.
            wait_topic=None,
            claim_lane=WAITING_LANE,
            **released,
        ),
        # A receive with no message: sleeping on its topic until its deadline. Without
        # one (f_wake_at NULL: cap_sql gives NULL) only a message or the execution's
        # timeout wakes it, so wake_at is timeout_at (NULL if none).
        "receive": update(executions)
        .where(*where)
        .values(
            status=Status.SLEEPING.value,
            sleep_until=bindparam("f_wake_at"),
            wake_at=func.coalesce(cap_sql(bindparam("f_wake_at")), executions.c.timeout_at),
            wait_topic=bindparam("f_topic"),
            claim_lane=WAITING_LANE,
            **released,
        ),
        "retry": update(executions)
        .where(*where)
        .values(
            status=Status.PENDING.value,
            attempt=executions.c.attempt + 1,
            next_retry_at=bindparam("f_run_at"),
            run_at=bindparam("f_run_at"),
            wake_at=cap_sql(bindparam("f_run_at")),
            error_type=bindparam("f_error_type"),
            error_message=bindparam("f_error_message"),
            claim_lane=WAITING_LANE,
            **released,
        ),
        "park": update(executions)
        .where(*where)
        .values(
            status=Status.PENDING.value,
            parks=executions.c.parks + 1,
            run_at=bindparam("f_run_at"),
            next_retry_at=bindparam("f_run_at"),
            wake_at=cap_sql(bindparam("f_run_at")),
            error_type=bindparam("f_error_type"),
            error_message=bindparam("f_error_message"),
            claim_lane=WAITING_LANE,
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
            claim_lane=None,
            **released,
        ),
    }


FENCED = build_fenced(OWNED_PARAMS)
# What a fenced transition that matched nothing checks after a retried try: did the
# first try commit (the status it set, under the same token)?
STATUS_AND_TOKEN = select(executions.c.status, executions.c.lease_token).where(
    executions.c.id == bindparam("f_id")
)


def release(lease: Lease, now_ms: int) -> Update:
    """Give the execution back unfinished: pending, claimable at once, a new token."""
    return (
        update(executions)
        .where(*owned(lease))
        .values(
            status=Status.PENDING.value,
            wake_at=now_ms,
            claim_lane=WAITING_LANE,
            updated_at=now_ms,
            lease_owner=None,
            lease_expires_at=None,
            lease_token=executions.c.lease_token + 1,
        )
    )


def owned_leases(namespace: str, worker_id: str) -> Select[Any]:
    return select(executions.c.id, executions.c.lease_token, executions.c.queue_name).where(
        executions.c.namespace == namespace,
        executions.c.status == Status.RUNNING.value,
        executions.c.lease_owner == worker_id,
    )


# -- messages and events ---------------------------------------------------------------------
# The lock order of hydra.store.base.MessageStore: a send locks the receiving execution's
# row with this read before it reads or writes any message of it (FOR UPDATE on
# PostgreSQL and InnoDB; SQLite renders none: BEGIN IMMEDIATE already holds the database's
# write lock). A receive locks the row with its fenced lease extension (EXTEND) instead.
LOCK_EXECUTION: Select[Any] = (
    select(executions.c.namespace, executions.c.status, executions.c.wait_topic)
    .where(executions.c.id == bindparam("l_id"))
    .with_for_update()
)
# A message already stored: by its id (the same send repeated after a lost reply) ...
MESSAGE_BY_ID = select(messages.c.id).where(messages.c.id == bindparam("m_id"))
# ... or by its idempotency key, per receiving execution (uq_workflow_messages_idempotency).
MESSAGE_BY_KEY = select(messages.c.id).where(
    messages.c.execution_id == bindparam("m_execution_id"),
    messages.c.idempotency_key == bindparam("m_key"),
)
# A new message (bind parameters m_<column>); seq is the database's (autoincrement).
MESSAGE_COLUMNS = (
    "id",
    "namespace",
    "execution_id",
    "topic",
    "payload",
    "idempotency_key",
    "sender_id",
    "sent_at",
)
MESSAGE_VALUES = {c: bindparam(f"m_{c}", type_=messages.c[c].type) for c in MESSAGE_COLUMNS}
INSERT_MESSAGE = messages.insert().values(MESSAGE_VALUES)
# The message makes a receive waiting in its topic due at once. Run under the row lock
# taken by LOCK_EXECUTION, so the status and topic it matches cannot change meanwhile.
WAKE_RECEIVER = (
    update(executions)
    .where(
        executions.c.id == bindparam("w_id"),
        executions.c.status == Status.SLEEPING.value,
        executions.c.wait_topic == bindparam("w_topic"),
    )
    .values(wake_at=cap_sql(bindparam("w_now")))
)
# The message a receive checkpoint already consumed (its call repeated after a lost
# reply): at most one, by uq_workflow_messages_consumed_by.
CONSUMED_BY = select(messages).where(
    messages.c.execution_id == bindparam("r_id"),
    messages.c.consumed_by == bindparam("r_name"),
)
# The oldest unconsumed message of a topic: an ordered range scan of
# ix_workflow_messages_receive (execution_id, topic, seq); used where there is no UPDATE
# ... RETURNING (MySQL/MariaDB; elsewhere TAKE_MESSAGE below does this and CONSUME).
# Locked: the execution's row lock already serializes receives, and on MySQL/MariaDB a
# locking read also reads the newest committed version of the row (a plain read would use
# the transaction's snapshot under REPEATABLE READ, should the engine run at it).
NEXT_MESSAGE = (
    select(messages)
    .where(
        messages.c.execution_id == bindparam("r_id"),
        messages.c.topic == bindparam("r_topic"),
        messages.c.consumed_by.is_(None),
    )
    .order_by(messages.c.seq)
    .limit(1)
    .with_for_update()
)
CONSUME = (
    update(messages)
    .where(messages.c.seq == bindparam("c_seq"))
    .values(consumed_by=bindparam("c_name"), consumed_at=bindparam("c_now"))
)
# NEXT_MESSAGE and CONSUME as one statement, where the database has UPDATE ... RETURNING
# (PostgreSQL, SQLite 3.35+; not MySQL/MariaDB): the oldest unconsumed message of the topic
# marked consumed by checkpoint r_name and returned as it now is, unless that checkpoint
# already consumed one (uq_workflow_messages_consumed_by: the call repeated after a lost
# reply; the caller then reads that one with CONSUMED_BY). No row: nothing was taken.
#
# It relies on the execution's row lock, taken by the receive's fenced lease extension in
# an earlier statement of the same transaction: every send to this execution locks that
# row before it inserts, so all those that committed before the lock was granted are
# visible to this statement (PostgreSQL's READ COMMITTED takes a snapshot per statement,
# after the lock; SQLite's BEGIN IMMEDIATE holds the write lock), and none can commit
# before this transaction ends. Only the lease holder consumes messages, under the same
# lock, so the message picked cannot be taken meanwhile; the UPDATE locks it as well.
# The subqueries read the table under other names: a bare ``messages`` inside an UPDATE
# of ``messages`` would be correlated to the row being updated.
_unread = messages.alias("unread")
_taken_by = messages.alias("taken_by")
TAKE_MESSAGE = (
    update(messages)
    .where(
        messages.c.seq
        == select(_unread.c.seq)
        .where(
            _unread.c.execution_id == bindparam("r_id"),
            _unread.c.topic == bindparam("r_topic"),
            _unread.c.consumed_by.is_(None),
        )
        .order_by(_unread.c.seq)
        .limit(1)
        .scalar_subquery(),
        ~exists().where(
            _taken_by.c.execution_id == bindparam("r_id"),
            _taken_by.c.consumed_by == bindparam("r_name"),
        ),
    )
    .values(consumed_by=bindparam("r_name"), consumed_at=bindparam("r_now"))
    .returning(*messages.c)
)
LIST_MESSAGES = (
    select(messages).where(messages.c.execution_id == bindparam("q_id")).order_by(messages.c.seq)
)
LIST_SENT_MESSAGES = (
    select(messages).where(messages.c.sender_id == bindparam("q_id")).order_by(messages.c.seq)
)
EVENT_COLUMNS = ("execution_id", "event_key", "value", "updated_at")
EVENT_KEY = ["execution_id", "event_key"]
GET_EVENTS = (
    select(events).where(events.c.execution_id == bindparam("q_id")).order_by(events.c.event_key)
)


# -- claims -----------------------------------------------------------------------------------
def on_claim_index(query: Select[Any]) -> Select[Any]:
    """``query`` told to read workflow_executions through ix_workflow_executions_due on
    MySQL/MariaDB (other databases ignore the hint). It is the way the optimizer takes
    anyway (tests/contract/test_claim_plan.py), but for every statement it first weighs
    each index the WHERE could use, a dive into each (six of them here): measured on
    MariaDB 10.11, a lane probe took 0.39 ms without the hint and 0.33 ms with it, and
    a claim sends several."""
    return force_index(query, "ix_workflow_executions_due")


def force_index(query: Select[Any], index: str) -> Select[Any]:
    """``query`` told to read workflow_executions through ``index`` on MySQL/MariaDB
    (``FORCE INDEX``; other databases ignore the hint)."""
    for dialect in ("mysql", "mariadb"):
        query = query.with_hint(executions, f"FORCE INDEX ({index})", dialect_name=dialect)
    return query


def claim_pick(name: Any, lane: Any) -> Select[Any]:
    """The claim's SELECT of one workflow name in one claim lane (``name``, ``lane``: binds
    or columns): the due rows (pending/sleeping due, a running one's lease expired, a
    timeout passed: all of them have wake_at <= now; finished rows have no lane) in
    claim order.

    It relies on ix_workflow_executions_due (namespace, workflow_name, claim_lane,
    wake_at, created_at, id): equality on the first three columns and a range on the
    fourth make it one ordered range scan of that lane's due entries, already in ORDER
    BY order (no sort), stopped after ``c_limit`` rows; rows of other workflows and
    lanes, finished rows and rows due later are never read. With several (name, lane)
    pairs, the store runs one per pair and merges (PostgreSQL in one statement, others
    in one transaction: ``SQLStore.claim``).
    """
    return on_claim_index(
        select(executions)
        .where(
            executions.c.namespace == bindparam("c_ns"),
            executions.c.workflow_name == name,
            executions.c.claim_lane == lane,
            executions.c.wake_at <= bindparam("c_now"),
        )
        # created_at and id break ties, so every store claims in the same order.
        .order_by(executions.c.wake_at, executions.c.created_at, executions.c.id)
        .limit(bindparam("c_limit"))
    )


def claim_pair_binds(count: int) -> list[tuple[Any, Any]]:
    """The (workflow name, lane) binds of a one-statement claim of ``count`` pairs
    (``c_name_<i>``, ``c_lane_<i>``)."""
    return [
        (
            bindparam(f"c_name_{i}", type_=executions.c.workflow_name.type),
            bindparam(f"c_lane_{i}", type_=executions.c.claim_lane.type),
        )
        for i in range(count)
    ]


# The claim: its SELECT of one name in one lane (locked by the dialect: SKIP LOCKED where
# there is one) and the executemany UPDATE that takes the leases.
CLAIM_SELECT = claim_pick(bindparam("c_name"), bindparam("c_lane"))
# The first entry after lane ``l_after`` (in the index's order) of a workflow: the next
# lane it has rows in and that lane's first wake time (its earliest, but where NULL sorts
# first: MySQL/MariaDB, SQLite). One index probe of ix_workflow_executions_due; from
# l_after = '' they enumerate a workflow's lanes.
NEXT_LANE = on_claim_index(
    select(executions.c.claim_lane, executions.c.wake_at)
    .where(
        executions.c.namespace == bindparam("l_ns"),
        executions.c.workflow_name == bindparam("l_name"),
        executions.c.claim_lane > bindparam("l_after"),
    )
    .order_by(executions.c.claim_lane, executions.c.wake_at)
    .limit(1)
)


def lane_chain(count: int, wakes: int = 0, *, parenthesized: bool = False) -> Select[Any]:
    """``count`` NEXT_LANE probes and ``wakes`` LANE_WAKE probes of one workflow as one
    statement (binds ``l_ns``, ``l_name``). Probe ``i`` < ``count`` (the ``probe``
    column) gives the first entry after lane ``l_after_<i>``; probe ``count + j`` the
    earliest wake time after ``l_never`` in lane ``l_lane_<j>`` (its earliest that is
    not NULL). Each is one index probe, a UNION ALL part of its own: parenthesized
    (``parenthesized``: MySQL/MariaDB) or else a derived table (SQLite allows no ORDER BY
    or LIMIT in a part). With ``l_after_0 = ''`` and the lanes seen last time after it,
    it lists the lanes in one round trip as long as they have not changed; the claim
    checks that the answers chain (``SQLQueues._name_lanes``)."""
    e = executions.c
    ours = (e.namespace == bindparam("l_ns"), e.workflow_name == bindparam("l_name"))
    probes: list[Select[Any]] = [
        on_claim_index(
            select(e.claim_lane, e.wake_at)
            .where(*ours, e.claim_lane > bindparam(f"l_after_{i}"))
            .order_by(e.claim_lane, e.wake_at)
            .limit(1)
        )
        for i in range(count)
    ]
    probes += [
        on_claim_index(
            select(e.claim_lane, e.wake_at)
            .where(
                *ours, e.claim_lane == bindparam(f"l_lane_{j}"), e.wake_at > bindparam("l_never")
            )
            .order_by(e.wake_at)
            .limit(1)
        )
        for j in range(wakes)
    ]
    parts = []
    for k, probe in enumerate(probes):
        if parenthesized:
            parts.append(probe.add_columns(literal(k).label("probe")))
        else:
            sub = probe.subquery(f"p{k}")
            parts.append(select(sub.c.claim_lane, sub.c.wake_at, literal(k).label("probe")))
    if len(parts) == 1:
        return parts[0]
    return union_all(*parts)  # type: ignore[return-value]


# The earliest wake time after l_after in one lane of one workflow: the first entry of
# the lane's range of ix_workflow_executions_due past l_after (NULLs are never in it).
LANE_WAKE = on_claim_index(
    select(func.min(executions.c.wake_at)).where(
        executions.c.namespace == bindparam("l_ns"),
        executions.c.workflow_name == bindparam("l_name"),
        executions.c.claim_lane == bindparam("l_lane"),
        executions.c.wake_at > bindparam("l_after"),
    )
)
# An execution leaves running: the queue slots it holds are free (hydra.queues).
FREE_SLOTS = queue_slots.delete().where(queue_slots.c.execution_id == bindparam("q_id"))
CLAIM_UPDATE = (
    update(executions)
    .where(executions.c.id == bindparam("b_id"))
    .values(
        status=Status.RUNNING.value,
        claim_lane=RUNNING_LANE,
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


# -- cron ---------------------------------------------------------------------------------------
def cron_job_key(namespace: str, name: str) -> tuple[Any, ...]:
    return (cron_jobs.c.namespace == namespace, cron_jobs.c.name == name)


def cron_job(namespace: str, name: str) -> Select[Any]:
    return select(cron_jobs).where(*cron_job_key(namespace, name))


def insert_cron_job(namespace: str, name: str, definition: dict[str, Any], now_ms: int) -> Insert:
    """A new job: enabled, created and updated now, no next slot computed yet."""
    return cron_jobs.insert().values(
        namespace=namespace,
        name=name,
        enabled=True,
        created_at=now_ms,
        updated_at=now_ms,
        next_run_at=None,
        **definition,
    )


def redefine_cron_job(namespace: str, name: str, definition: dict[str, Any], now_ms: int) -> Update:
    """A changed definition: updated now, its next slot to be computed again."""
    return (
        update(cron_jobs)
        .where(*cron_job_key(namespace, name))
        .values(updated_at=now_ms, next_run_at=None, **definition)
    )


def list_cron_jobs(namespace: str) -> Select[Any]:
    return select(cron_jobs).where(cron_jobs.c.namespace == namespace).order_by(cron_jobs.c.name)


def set_cron_next_run(namespace: str, job_name: str, next_run_ms: int | None) -> Update:
    return (
        update(cron_jobs).where(*cron_job_key(namespace, job_name)).values(next_run_at=next_run_ms)
    )


def cron_fire_key(namespace: str, job_name: str) -> tuple[Any, ...]:
    return (cron_fires.c.namespace == namespace, cron_fires.c.job_name == job_name)


def insert_cron_fire(
    namespace: str,
    job_name: str,
    slot_ms: int,
    now_ms: int,
    worker_id: str,
    execution_id: str | None,
) -> Insert:
    return cron_fires.insert().values(
        namespace=namespace,
        job_name=job_name,
        slot_at=slot_ms,
        fired_at=now_ms,
        worker_id=worker_id,
        execution_id=execution_id,
    )


def cron_fire(namespace: str, job_name: str, slot_ms: int) -> Select[Any]:
    return select(cron_fires).where(
        *cron_fire_key(namespace, job_name), cron_fires.c.slot_at == slot_ms
    )


def last_cron_fire(namespace: str, job_name: str) -> Select[Any]:
    return (
        select(cron_fires)
        .where(*cron_fire_key(namespace, job_name))
        .order_by(cron_fires.c.slot_at.desc())
        .limit(1)
    )

"""The declared schema, as SQLAlchemy Core tables.

Migrations (``hydra/store/migrations``) create exactly this; a test compares the two.
Times are BIGINT Unix milliseconds so every backend orders and compares them alike.

Departure from the Go original: the lease lives on the execution row (``lease_owner``,
``lease_token``, ``lease_expires_at``) instead of a separate ``leases`` table, so that a
claim, a fenced checkpoint and a takeover each lock exactly one row; the separate table
is what let the original's claims race.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

# MySQL's BLOB and TEXT stop at 64 KiB; payloads and error texts may be larger.
Blob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
# Names and keys compare exactly: MySQL/MariaDB's default collation would make 'Fetch' and
# 'fetch' one step (and one idempotency key). utf8mb4_bin still ignores trailing spaces,
# so hydra rejects names with leading or trailing whitespace (hydra.workflow.validate_name).
Name = String(255).with_variant(mysql.VARCHAR(255, collation="utf8mb4_bin"), "mysql", "mariadb")
# A claim lane: 'w', a priority (at most 11 characters), ':', a queue name (at most 100).
# Short enough for MySQL's 3072-byte index key limit in ix_workflow_executions_due
# (utf8mb4: 4 bytes a character).
Lane = String(120).with_variant(mysql.VARCHAR(120, collation="utf8mb4_bin"), "mysql", "mariadb")
# A queue name (hydra.queues: at most 100 characters), short enough for MySQL's index key
# limit in ix_workflow_executions_key and the slot table's primary key.
QueueName = String(100).with_variant(
    mysql.VARCHAR(100, collation="utf8mb4_bin"), "mysql", "mariadb"
)
Id = String(36).with_variant(mysql.VARCHAR(36, collation="utf8mb4_bin"), "mysql", "mariadb")

executions = Table(
    "workflow_executions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("namespace", Name, nullable=False),
    Column("workflow_name", Name, nullable=False),
    Column("status", String(16), nullable=False),
    Column("input_data", Blob, nullable=False),
    Column("output_data", Blob, nullable=True),
    Column("error_type", String(255), nullable=True),
    Column("error_message", LongText, nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("retry_backoff_ms", BigInteger, nullable=False),
    Column("timeout_ms", BigInteger, nullable=True),
    Column("timeout_at", BigInteger, nullable=True),
    Column("idempotency_key", Name, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=True),
    Column("completed_at", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Column("run_at", BigInteger, nullable=False),
    Column("sleep_until", BigInteger, nullable=True),
    Column("next_retry_at", BigInteger, nullable=True),
    Column("wake_at", BigInteger, nullable=True),
    Column("lease_owner", Name, nullable=True),
    Column("lease_token", BigInteger, nullable=False),
    Column("lease_expires_at", BigInteger, nullable=True),
    Column("trigger_type", String(50), nullable=True),
    Column("trigger_source", String(255), nullable=True),
    # The topic of the receive a sleeping execution waits in (a message of it makes the
    # execution due at once); NULL for any other sleep. Last: rows are unpacked by
    # position (records.execution_row) and revision 0004 appended it.
    Column("wait_topic", Name, nullable=True),
    # The execution that started this one (hydra.start_child); revision 0005 appended it.
    Column("parent_id", Id, nullable=True),
    # How many times a run parked it (its code no longer matched its history); revision
    # 0006 appended it.
    Column("parks", Integer, nullable=False, server_default="0"),
    # The queue it was started in, its priority in it and its concurrency key
    # (hydra.queues); revision 0007 appended them.
    Column("queue_name", QueueName, nullable=False, server_default="default"),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("concurrency_key", Name, nullable=True),
    # Which run of the claim index the row is in (hydra.store.queues.claim_lane): 'r'
    # while running (a lease that may expire: a takeover, which needs no slot); while
    # pending or sleeping 'f' (first start to come) or 'w' (a resume), or 'h' (held back
    # by its concurrency key, not claimed), then the priority and the queue; NULL once
    # finished. Every write that changes the status sets it. Revision 0007 appended it.
    Column("claim_lane", Lane, nullable=True),
    # The trace context of whoever started it, a small JSON object of propagation
    # headers (hydra.tracecontext), continued by its runs; revision 0008 appended it.
    Column("trace_context", Text, nullable=True),
    # NULL keys never collide (SQL NULL semantics on every backend), so only executions
    # started with a key are deduplicated.
    UniqueConstraint("namespace", "idempotency_key", name="uq_workflow_executions_idempotency"),
    # The claim, per registered workflow name and claim lane: namespace = ? AND
    # workflow_name = ? AND claim_lane = ? AND wake_at <= now ORDER BY wake_at,
    # created_at, id LIMIT k is an ordered range scan of this index that reads only due
    # rows of that workflow in that lane (one queue at one priority, or the running rows)
    # and stops after k. Finished rows have claim_lane NULL and sleeping rows wake_at in
    # the future: neither is read. The lanes of a workflow are found by skipping through
    # the index (one probe per lane: hydra.store.sql.queues). Its (namespace,
    # workflow_name) prefix serves lookups by workflow. Revision 0007 put claim_lane
    # before wake_at (0002 made it per workflow).
    Index(
        "ix_workflow_executions_due",
        "namespace",
        "workflow_name",
        "claim_lane",
        "wake_at",
        "created_at",
        "id",
    ),
    # The executions of one concurrency key in one lane, in wake order: a claim that finds
    # the key's slots all held holds its due ones back (claim_lane 'h...'); a slot of the
    # key freeing moves the first held one back (hydra.store.sql.queues).
    Index(
        "ix_workflow_executions_key",
        "namespace",
        "queue_name",
        "concurrency_key",
        "claim_lane",
        "wake_at",
    ),
    Index("ix_workflow_executions_list", "namespace", "created_at"),
    # A purge's batch: namespace = ? AND completed_at < ? ORDER BY completed_at, id is a
    # range scan of the finished rows in end order (unfinished rows have completed_at
    # NULL, outside the range), stopped after a batch; without it every batch sorted
    # all finished rows. Revision 0007 added it.
    Index("ix_workflow_executions_ended", "namespace", "completed_at", "id"),
    Index("ix_workflow_executions_status", "namespace", "status"),
    # A parent's children: engine.cancel's cascade and `executions list --parent`.
    Index("ix_workflow_executions_parent", "parent_id"),
)

steps = Table(
    "workflow_steps",
    metadata,
    Column("execution_id", Id, nullable=False),
    Column("step_name", Name, nullable=False),
    Column("step_order", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("output_data", Blob, nullable=True),
    Column("error_type", String(255), nullable=True),
    Column("error_message", LongText, nullable=True),
    Column("started_at", BigInteger, nullable=True),
    Column("completed_at", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    # What the checkpoint is (hydra.store.base.STEP_KINDS) and, for a receive, send or
    # event, a small JSON object saying what it waited for or did. Appended by revision
    # 0004 (existing rows: 'step', or 'sleep' for a sleeping one).
    Column("kind", String(16), nullable=False, server_default="step"),
    Column("detail", LongText, nullable=True),
    # One checkpoint per step name per execution: replay finds it, a second write replaces it.
    PrimaryKeyConstraint("execution_id", "step_name", name="pk_workflow_steps"),
)

# Every attempt of a step that reached a result or an error (the step row above keeps
# only the latest), written with the step row in the same fenced transaction. The lease
# token is in the key: a retried execution starts a failed step's attempts at 1 again under
# a new lease, and (lease_token, attempt) orders a step's attempts as they were made.
step_attempts = Table(
    "workflow_step_attempts",
    metadata,
    Column("execution_id", Id, nullable=False),
    Column("step_name", Name, nullable=False),
    Column("lease_token", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error_type", String(255), nullable=True),
    Column("error_message", LongText, nullable=True),
    Column("started_at", BigInteger, nullable=True),
    Column("completed_at", BigInteger, nullable=True),
    PrimaryKeyConstraint(
        "execution_id", "step_name", "lease_token", "attempt", name="pk_workflow_step_attempts"
    ),
)

# Messages to executions (Engine.send, hydra.send), consumed by hydra.receive. ``seq`` is
# the store's insertion order: a receive takes the unconsumed message of its topic with
# the smallest. On SQLite it is INTEGER PRIMARY KEY, an alias of the rowid (a BIGINT key
# would be a separate column without autoincrement there).
messages = Table(
    "workflow_messages",
    metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("id", Id, nullable=False),
    Column("namespace", Name, nullable=False),
    Column("execution_id", Id, nullable=False),
    Column("topic", Name, nullable=False),
    Column("payload", Blob, nullable=False),
    Column("idempotency_key", Name, nullable=True),
    Column("sender_id", Id, nullable=True),
    Column("sent_at", BigInteger, nullable=False),
    Column("consumed_at", BigInteger, nullable=True),
    Column("consumed_by", Name, nullable=True),
    # The caller's id: a send repeated after a lost reply finds its own message.
    UniqueConstraint("id", name="uq_workflow_messages_id"),
    # A key is used once per receiving execution (NULL keys never collide).
    UniqueConstraint("execution_id", "idempotency_key", name="uq_workflow_messages_idempotency"),
    # A receive checkpoint consumes at most one message; its retry finds that one by this
    # key (unconsumed rows have NULL here and never collide).
    UniqueConstraint("execution_id", "consumed_by", name="uq_workflow_messages_consumed_by"),
    # The receive: the oldest message of a topic for an execution, an ordered range scan.
    Index("ix_workflow_messages_receive", "execution_id", "topic", "seq"),
    # list_sent_messages: a sender's messages in seq order.
    Index("ix_workflow_messages_sender", "sender_id", "seq"),
)

# The latest value an execution published under each key (hydra.set_event).
events = Table(
    "workflow_events",
    metadata,
    Column("execution_id", Id, nullable=False),
    Column("event_key", Name, nullable=False),
    Column("value", Blob, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("execution_id", "event_key", name="pk_workflow_events"),
)

cron_jobs = Table(
    "cron_jobs",
    metadata,
    Column("namespace", Name, nullable=False),
    Column("name", Name, nullable=False),
    Column("cron_spec", String(255), nullable=False),
    Column("timezone", String(64), nullable=True),
    Column("workflow_name", Name, nullable=True),
    Column("payload", Blob, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("next_run_at", BigInteger, nullable=True),
    PrimaryKeyConstraint("namespace", "name", name="pk_cron_jobs"),
    Index("ix_cron_jobs_next_run_at", "next_run_at", "enabled"),
)

# A cron slot fires once: whoever inserts its row first fires it.
cron_fires = Table(
    "cron_fires",
    metadata,
    Column("namespace", Name, nullable=False),
    Column("job_name", Name, nullable=False),
    Column("slot_at", BigInteger, nullable=False),
    Column("fired_at", BigInteger, nullable=False),
    Column("worker_id", Name, nullable=True),
    Column("execution_id", Id, nullable=True),
    PrimaryKeyConstraint("namespace", "job_name", "slot_at", name="pk_cron_fires"),
)


# A queue's limits as registered (hydra.Queue): every worker reads them from here, so all
# enforce the same ones whoever registered the queue last.
queues = Table(
    "workflow_queues",
    metadata,
    Column("namespace", Name, nullable=False),
    Column("name", QueueName, nullable=False),
    Column("concurrency", Integer, nullable=True),
    Column("worker_concurrency", Integer, nullable=True),
    Column("key_concurrency", Integer, nullable=True),
    Column("rate_limit", Integer, nullable=True),
    Column("rate_per_ms", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("namespace", "name", name="pk_workflow_queues"),
)

# The slots running executions of limited queues hold (hydra.queues): scope 'q' the
# queue's concurrency (slot_key ''), scope 'k' a concurrency key's. The primary key is
# the limit: a slot number below the limit is taken by inserting its row, and a second
# insert of it (even while the first is uncommitted) finds the key taken.
queue_slots = Table(
    "workflow_queue_slots",
    metadata,
    Column("namespace", Name, nullable=False),
    Column("queue_name", QueueName, nullable=False),
    Column("scope", String(1), nullable=False),
    Column("slot_key", Name, nullable=False),
    Column("slot_no", Integer, nullable=False),
    Column("execution_id", Id, nullable=False),
    Column("taken_at", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "namespace", "queue_name", "scope", "slot_key", "slot_no", name="pk_workflow_queue_slots"
    ),
    # Freeing an execution's slots when it leaves running.
    Index("ix_workflow_queue_slots_execution", "execution_id"),
)

# A rate-limited queue's last ``limit`` first starts, one row each (hydra.queues): a
# start takes the row used longest ago, if that was at least ``per`` ago.
queue_rate = Table(
    "workflow_queue_rate",
    metadata,
    Column("namespace", Name, nullable=False),
    Column("queue_name", QueueName, nullable=False),
    Column("slot_no", Integer, nullable=False),
    Column("used_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("namespace", "queue_name", "slot_no", name="pk_workflow_queue_rate"),
    # The row used longest ago: the first entry of the queue's range.
    Index("ix_workflow_queue_rate_used", "namespace", "queue_name", "used_at"),
)

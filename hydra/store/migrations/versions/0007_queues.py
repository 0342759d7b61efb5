"""Queues: flow control for executions (``hydra.Queue``).

``workflow_executions`` gets the queue an execution was started in, its priority and its
concurrency key, and ``claim_lane``: which run of the claim index the row is in ('r'
running, 'f'/'w'/'h' + priority + ':' + queue pending or sleeping, NULL finished). The claim index
becomes (namespace, workflow_name, claim_lane, wake_at, created_at, id), so a claim reads
each queue at each priority in order, and the running rows (takeovers) on their own.
Existing executions are in queue 'default' at priority 0. A new index (namespace,
completed_at, id) serves a purge's batches (before, each sorted every finished row).
``workflow_queues`` holds the
registered limits, ``workflow_queue_slots`` the slots running executions hold,
``workflow_queue_rate`` the last first starts of each rate-limited queue.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLE = "workflow_executions"
Name = sa.String(255).with_variant(
    mysql.VARCHAR(255, collation="utf8mb4_bin"), "mysql", "mariadb"
)
Id = sa.String(36).with_variant(mysql.VARCHAR(36, collation="utf8mb4_bin"), "mysql", "mariadb")
QueueName = sa.String(100).with_variant(
    mysql.VARCHAR(100, collation="utf8mb4_bin"), "mysql", "mariadb"
)
Lane = sa.String(120).with_variant(
    mysql.VARCHAR(120, collation="utf8mb4_bin"), "mysql", "mariadb"
)


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("queue_name", QueueName, nullable=False, server_default="default"))
    op.add_column(TABLE, sa.Column("priority", sa.Integer, nullable=False, server_default="0"))
    op.add_column(TABLE, sa.Column("concurrency_key", Name, nullable=True))
    op.add_column(TABLE, sa.Column("claim_lane", Lane, nullable=True))
    # Lanes (hydra.store.queues.claim_lane) of existing rows: all at priority 0 in queue
    # 'default' (PRIORITY_BASE - 0 = 12147483648); 'f' for a first start still to come.
    op.execute(f"UPDATE {TABLE} SET claim_lane = 'r' WHERE status = 'running'")
    op.execute(
        f"UPDATE {TABLE} SET claim_lane = 'f12147483648:default' "
        "WHERE status IN ('pending', 'sleeping') AND started_at IS NULL"
    )
    op.execute(
        f"UPDATE {TABLE} SET claim_lane = 'w12147483648:default' "
        "WHERE status IN ('pending', 'sleeping') AND started_at IS NOT NULL"
    )
    op.create_index(
        "ix_workflow_executions_due_lane",
        TABLE,
        ["namespace", "workflow_name", "claim_lane", "wake_at", "created_at", "id"],
    )
    op.create_index(
        "ix_workflow_executions_key",
        TABLE,
        ["namespace", "queue_name", "concurrency_key", "claim_lane", "wake_at"],
    )
    op.create_index(
        "ix_workflow_executions_ended", TABLE, ["namespace", "completed_at", "id"]
    )
    op.drop_index("ix_workflow_executions_due", table_name=TABLE)
    # The new index takes the old one's name (the schema declares it under it).
    _rename_index(
        "ix_workflow_executions_due_lane",
        "ix_workflow_executions_due",
        ["namespace", "workflow_name", "claim_lane", "wake_at", "created_at", "id"],
    )
    op.create_table(
        "workflow_queues",
        sa.Column("namespace", Name, nullable=False),
        sa.Column("name", QueueName, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=True),
        sa.Column("worker_concurrency", sa.Integer, nullable=True),
        sa.Column("key_concurrency", sa.Integer, nullable=True),
        sa.Column("rate_limit", sa.Integer, nullable=True),
        sa.Column("rate_per_ms", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("namespace", "name", name="pk_workflow_queues"),
    )
    op.create_table(
        "workflow_queue_slots",
        sa.Column("namespace", Name, nullable=False),
        sa.Column("queue_name", QueueName, nullable=False),
        sa.Column("scope", sa.String(1), nullable=False),
        sa.Column("slot_key", Name, nullable=False),
        sa.Column("slot_no", sa.Integer, nullable=False),
        sa.Column("execution_id", Id, nullable=False),
        sa.Column("taken_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "namespace",
            "queue_name",
            "scope",
            "slot_key",
            "slot_no",
            name="pk_workflow_queue_slots",
        ),
    )
    op.create_index("ix_workflow_queue_slots_execution", "workflow_queue_slots", ["execution_id"])
    op.create_table(
        "workflow_queue_rate",
        sa.Column("namespace", Name, nullable=False),
        sa.Column("queue_name", QueueName, nullable=False),
        sa.Column("slot_no", sa.Integer, nullable=False),
        sa.Column("used_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("namespace", "queue_name", "slot_no", name="pk_workflow_queue_rate"),
    )
    op.create_index(
        "ix_workflow_queue_rate_used", "workflow_queue_rate", ["namespace", "queue_name", "used_at"]
    )


def _rename_index(old: str, new: str, columns: list[str]) -> None:
    """Rename an index of ``TABLE``: in place where the database can, else recreate it."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(f"ALTER INDEX {old} RENAME TO {new}")
    elif dialect in ("mysql", "mariadb"):
        op.execute(f"ALTER TABLE {TABLE} RENAME INDEX {old} TO {new}")
    else:  # SQLite has no ALTER INDEX
        op.create_index(new, TABLE, columns)
        op.drop_index(old, table_name=TABLE)


def downgrade() -> None:
    op.drop_index("ix_workflow_queue_rate_used", table_name="workflow_queue_rate")
    op.drop_table("workflow_queue_rate")
    op.drop_index("ix_workflow_queue_slots_execution", table_name="workflow_queue_slots")
    op.drop_table("workflow_queue_slots")
    op.drop_table("workflow_queues")
    op.drop_index("ix_workflow_executions_key", table_name=TABLE)
    op.drop_index("ix_workflow_executions_ended", table_name=TABLE)
    columns = ["namespace", "workflow_name", "wake_at", "created_at", "id"]
    op.create_index("ix_workflow_executions_due_old", TABLE, columns)
    op.drop_index("ix_workflow_executions_due", table_name=TABLE)
    _rename_index("ix_workflow_executions_due_old", "ix_workflow_executions_due", columns)
    # SQLite 3.35+ drops a column in place (ALTER TABLE ... DROP COLUMN).
    for column in ("claim_lane", "concurrency_key", "priority", "queue_name"):
        op.drop_column(TABLE, column)

"""Messages to executions and the events they publish (``hydra.receive``, ``hydra.send``,
``hydra.set_event``).

``workflow_executions.wait_topic`` names the topic a sleeping execution waits in (a
message of it makes the execution due at once). ``workflow_steps`` says what each
checkpoint is (``kind``: existing rows are steps, or sleeps where they are sleeping) and,
for a receive, send or event, what it waited for or did (``detail``). The new columns are
appended: rows are unpacked by position. ``workflow_messages`` holds the messages (``seq``
orders them), ``workflow_events`` the latest value of each event key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
# Exact (binary) comparison of names on MySQL/MariaDB, as in workflow_steps.
Name = sa.String(255).with_variant(
    mysql.VARCHAR(255, collation="utf8mb4_bin"), "mysql", "mariadb"
)
Id = sa.String(36).with_variant(mysql.VARCHAR(36, collation="utf8mb4_bin"), "mysql", "mariadb")
# SQLite: INTEGER PRIMARY KEY, an alias of the rowid (so it autoincrements).
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("workflow_executions", sa.Column("wait_topic", Name, nullable=True))
    op.add_column(
        "workflow_steps",
        sa.Column("kind", sa.String(16), nullable=False, server_default="step"),
    )
    op.add_column("workflow_steps", sa.Column("detail", LongText, nullable=True))
    # Checkpoints written before this revision are steps, or sleeps (their own status).
    op.execute("UPDATE workflow_steps SET kind = 'sleep' WHERE status = 'sleeping'")
    op.create_table(
        "workflow_messages",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", Id, nullable=False),
        sa.Column("namespace", Name, nullable=False),
        sa.Column("execution_id", Id, nullable=False),
        sa.Column("topic", Name, nullable=False),
        sa.Column("payload", Blob, nullable=False),
        sa.Column("idempotency_key", Name, nullable=True),
        sa.Column("sender_id", Id, nullable=True),
        sa.Column("sent_at", sa.BigInteger, nullable=False),
        sa.Column("consumed_at", sa.BigInteger, nullable=True),
        sa.Column("consumed_by", Name, nullable=True),
        sa.UniqueConstraint("id", name="uq_workflow_messages_id"),
        sa.UniqueConstraint(
            "execution_id", "idempotency_key", name="uq_workflow_messages_idempotency"
        ),
        sa.UniqueConstraint(
            "execution_id", "consumed_by", name="uq_workflow_messages_consumed_by"
        ),
    )
    op.create_index(
        "ix_workflow_messages_receive", "workflow_messages", ["execution_id", "topic", "seq"]
    )
    op.create_index("ix_workflow_messages_sender", "workflow_messages", ["sender_id", "seq"])
    op.create_table(
        "workflow_events",
        sa.Column("execution_id", Id, nullable=False),
        sa.Column("event_key", Name, nullable=False),
        sa.Column("value", Blob, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "event_key", name="pk_workflow_events"),
    )


def downgrade() -> None:
    op.drop_table("workflow_events")
    op.drop_index("ix_workflow_messages_sender", table_name="workflow_messages")
    op.drop_index("ix_workflow_messages_receive", table_name="workflow_messages")
    op.drop_table("workflow_messages")
    # SQLite 3.35+ drops a column in place (ALTER TABLE ... DROP COLUMN).
    op.drop_column("workflow_steps", "detail")
    op.drop_column("workflow_steps", "kind")
    op.drop_column("workflow_executions", "wait_topic")

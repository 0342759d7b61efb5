"""Initial schema: executions with fenced leases, step checkpoints, cron jobs and fires.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
# Exact (binary) comparison of names and keys on MySQL/MariaDB.
Name = sa.String(255).with_variant(
    mysql.VARCHAR(255, collation="utf8mb4_bin"), "mysql", "mariadb"
)
Id = sa.String(36).with_variant(mysql.VARCHAR(36, collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "workflow_executions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("namespace", Name, nullable=False),
        sa.Column("workflow_name", Name, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input_data", Blob, nullable=False),
        sa.Column("output_data", Blob, nullable=True),
        sa.Column("error_type", sa.String(255), nullable=True),
        sa.Column("error_message", LongText, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("retry_backoff_ms", sa.BigInteger, nullable=False),
        sa.Column("timeout_ms", sa.BigInteger, nullable=True),
        sa.Column("timeout_at", sa.BigInteger, nullable=True),
        sa.Column("idempotency_key", Name, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=True),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("run_at", sa.BigInteger, nullable=False),
        sa.Column("sleep_until", sa.BigInteger, nullable=True),
        sa.Column("next_retry_at", sa.BigInteger, nullable=True),
        sa.Column("wake_at", sa.BigInteger, nullable=True),
        sa.Column("lease_owner", Name, nullable=True),
        sa.Column("lease_token", sa.BigInteger, nullable=False),
        sa.Column("lease_expires_at", sa.BigInteger, nullable=True),
        sa.Column("trigger_type", sa.String(50), nullable=True),
        sa.Column("trigger_source", sa.String(255), nullable=True),
        sa.UniqueConstraint(
            "namespace", "idempotency_key", name="uq_workflow_executions_idempotency"
        ),
    )
    op.create_index("ix_workflow_executions_claim", "workflow_executions", ["namespace", "wake_at"])
    op.create_index(
        "ix_workflow_executions_list", "workflow_executions", ["namespace", "created_at"]
    )
    op.create_index("ix_workflow_executions_status", "workflow_executions", ["namespace", "status"])
    op.create_index(
        "ix_workflow_executions_workflow", "workflow_executions", ["namespace", "workflow_name"]
    )

    op.create_table(
        "workflow_steps",
        sa.Column("execution_id", Id, nullable=False),
        sa.Column("step_name", Name, nullable=False),
        sa.Column("step_order", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("output_data", Blob, nullable=True),
        sa.Column("error_type", sa.String(255), nullable=True),
        sa.Column("error_message", LongText, nullable=True),
        sa.Column("started_at", sa.BigInteger, nullable=True),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "step_name", name="pk_workflow_steps"),
    )

    op.create_table(
        "cron_jobs",
        sa.Column("namespace", Name, nullable=False),
        sa.Column("name", Name, nullable=False),
        sa.Column("cron_spec", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("workflow_name", Name, nullable=True),
        sa.Column("payload", Blob, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("next_run_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("namespace", "name", name="pk_cron_jobs"),
    )
    op.create_index("ix_cron_jobs_next_run_at", "cron_jobs", ["next_run_at", "enabled"])

    op.create_table(
        "cron_fires",
        sa.Column("namespace", Name, nullable=False),
        sa.Column("job_name", Name, nullable=False),
        sa.Column("slot_at", sa.BigInteger, nullable=False),
        sa.Column("fired_at", sa.BigInteger, nullable=False),
        sa.Column("worker_id", Name, nullable=True),
        sa.Column("execution_id", Id, nullable=True),
        sa.PrimaryKeyConstraint("namespace", "job_name", "slot_at", name="pk_cron_fires"),
    )


def downgrade() -> None:
    op.drop_table("cron_fires")
    op.drop_index("ix_cron_jobs_next_run_at", table_name="cron_jobs")
    op.drop_table("cron_jobs")
    op.drop_table("workflow_steps")
    for name in ("workflow", "status", "list", "claim"):
        op.drop_index(f"ix_workflow_executions_{name}", table_name="workflow_executions")
    op.drop_table("workflow_executions")

"""Every attempt of a step is kept: ``workflow_step_attempts``.

``workflow_steps`` holds one row per step, replaced at each attempt, so the errors and
times of a retried step's earlier attempts were lost. The new table gets a row for every
attempt that reached a result or an error, written with the step row. Steps checkpointed
before this revision have no attempt rows (nothing is backfilled: only their latest
attempt is known, and it is the step row itself).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
# Exact (binary) comparison of names on MySQL/MariaDB, as in workflow_steps.
Name = sa.String(255).with_variant(
    mysql.VARCHAR(255, collation="utf8mb4_bin"), "mysql", "mariadb"
)
Id = sa.String(36).with_variant(mysql.VARCHAR(36, collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "workflow_step_attempts",
        sa.Column("execution_id", Id, nullable=False),
        sa.Column("step_name", Name, nullable=False),
        sa.Column("lease_token", sa.BigInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_type", sa.String(255), nullable=True),
        sa.Column("error_message", LongText, nullable=True),
        sa.Column("started_at", sa.BigInteger, nullable=True),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint(
            "execution_id",
            "step_name",
            "lease_token",
            "attempt",
            name="pk_workflow_step_attempts",
        ),
    )


def downgrade() -> None:
    op.drop_table("workflow_step_attempts")

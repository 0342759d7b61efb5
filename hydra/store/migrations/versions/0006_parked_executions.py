"""Parked executions: ``workflow_executions.parks``.

A run that finds the workflow's code no longer matching an execution's stored history
(``hydra.NonDeterminismError``) parks it: pending again, no attempt used, tried again
after a delay that grows with the number of parks, counted here. Appended (rows are
unpacked by position), 0 for every existing execution.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "workflow_executions",
        sa.Column("parks", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (ALTER TABLE ... DROP COLUMN).
    op.drop_column("workflow_executions", "parks")

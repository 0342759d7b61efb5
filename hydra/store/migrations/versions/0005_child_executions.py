"""Child executions: ``workflow_executions.parent_id`` (``hydra.start_child``).

A child is an ordinary execution that names the execution that started it; its end is
sent to that parent as a message (``workflow_messages``, revision 0004), so nothing
else is stored. The column is appended (rows are unpacked by position); the index
serves a parent's children (the cancel cascade, ``hydra executions list --parent``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.String(36).with_variant(mysql.VARCHAR(36, collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("workflow_executions", sa.Column("parent_id", Id, nullable=True))
    op.create_index("ix_workflow_executions_parent", "workflow_executions", ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_workflow_executions_parent", table_name="workflow_executions")
    # SQLite 3.35+ drops a column in place (ALTER TABLE ... DROP COLUMN).
    op.drop_column("workflow_executions", "parent_id")

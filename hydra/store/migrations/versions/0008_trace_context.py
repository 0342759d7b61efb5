"""Trace context: ``workflow_executions.trace_context``.

The trace context of whoever started an execution (``start_workflow``'s caller, or the
parent's run for a child), a small JSON object of propagation headers such as
``{"traceparent": "00-..."}``, stored so that whichever worker runs the execution can
link its runs to it (``hydra.otel``). Appended (rows are unpacked by position), NULL for
every existing execution.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workflow_executions", sa.Column("trace_context", sa.Text, nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (ALTER TABLE ... DROP COLUMN).
    op.drop_column("workflow_executions", "trace_context")

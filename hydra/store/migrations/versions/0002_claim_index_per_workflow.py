"""The claim walks an index per workflow name: (namespace, workflow_name, wake_at,
created_at, id) replaces (namespace, wake_at) and (namespace, workflow_name).

The claim used to range-scan (namespace, wake_at) and filter workflow_name row by row, so
every due row of a workflow no running worker registered was read (on InnoDB, locked and
unlocked) by every claim. With the new index a claim reads only due rows of the names it
claims, in claim order. (namespace, workflow_name) is a prefix of the new index, and
nothing else reads (namespace, wake_at); dropping both keeps one index on wake_at, which
every claim, checkpoint and heartbeat updates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "workflow_executions"


def upgrade() -> None:
    op.create_index(
        "ix_workflow_executions_due",
        TABLE,
        ["namespace", "workflow_name", "wake_at", "created_at", "id"],
    )
    op.drop_index("ix_workflow_executions_claim", table_name=TABLE)
    op.drop_index("ix_workflow_executions_workflow", table_name=TABLE)


def downgrade() -> None:
    op.create_index("ix_workflow_executions_workflow", TABLE, ["namespace", "workflow_name"])
    op.create_index("ix_workflow_executions_claim", TABLE, ["namespace", "wake_at"])
    op.drop_index("ix_workflow_executions_due", table_name=TABLE)

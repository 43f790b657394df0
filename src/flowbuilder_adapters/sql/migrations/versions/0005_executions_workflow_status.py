"""An index for a workflow's executions filtered by status.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_executions_owner_workflow_status",
        "executions",
        ["owner_id", "workflow_id", "status", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_executions_owner_workflow_status", table_name="executions")

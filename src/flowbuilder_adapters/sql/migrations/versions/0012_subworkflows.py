"""The engine's error policies and sub-workflows: how often a step's node was tried, and
which execution ran an execution as its sub-workflow.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "execution_steps",
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    op.add_column("executions", sa.Column("parent_execution_id", sa.Uuid(), nullable=True))
    children = sa.text("parent_execution_id IS NOT NULL")
    op.create_index(
        "ix_executions_owner_parent",
        "executions",
        ["owner_id", "parent_execution_id", "created_at", "id"],
        postgresql_where=children,
        sqlite_where=children,
    )


def downgrade() -> None:
    op.drop_index("ix_executions_owner_parent", table_name="executions")
    op.drop_column("executions", "parent_execution_id")
    op.drop_column("execution_steps", "attempts")

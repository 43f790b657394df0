"""Parked executions: queued, waiting for a free slot of their owner (MAX_RUNNING_PER_USER);
and an index for version pruning (VERSIONS_KEPT_PER_WORKFLOW): which versions executions ran.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
PARKED = sa.text("parked_at IS NOT NULL")


def upgrade() -> None:
    op.add_column("executions", sa.Column("parked_at", TIMESTAMP, nullable=True))
    op.create_index(
        "ix_executions_parked",
        "executions",
        ["owner_id", "created_at", "id"],
        postgresql_where=PARKED,
        sqlite_where=PARKED,
    )
    op.create_index(
        "ix_executions_workflow_version", "executions", ["workflow_id", "workflow_version"]
    )


def downgrade() -> None:
    op.drop_index("ix_executions_workflow_version", table_name="executions")
    op.drop_index("ix_executions_parked", table_name="executions")
    op.drop_column("executions", "parked_at")

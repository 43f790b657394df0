"""Schedules: the schedule book (the next due time of each active scheduled workflow), and
executions' `scheduled_for`, unique per workflow, so that each scheduled time runs once.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
SCHEDULED = sa.text("scheduled_for IS NOT NULL")


def upgrade() -> None:
    op.add_column("executions", sa.Column("scheduled_for", TIMESTAMP, nullable=True))
    op.create_index(
        "uq_executions_workflow_scheduled_for",
        "executions",
        ["workflow_id", "scheduled_for"],
        unique=True,
        postgresql_where=SCHEDULED,
        sqlite_where=SCHEDULED,
    )
    op.create_table(
        "schedules",
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("cron", sa.Text(), nullable=True),
        sa.Column("every_s", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("next_due_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name="fk_schedules_workflow_id_workflows",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", name="pk_schedules"),
    )
    op.create_index("ix_schedules_next_due_at", "schedules", ["next_due_at"])


def downgrade() -> None:
    op.drop_index("ix_schedules_next_due_at", table_name="schedules")
    op.drop_table("schedules")
    op.drop_index("uq_executions_workflow_scheduled_for", table_name="executions")
    op.drop_column("executions", "scheduled_for")

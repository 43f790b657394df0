"""Webhooks: one per workflow with a trigger.webhook node (its unguessable hook id and where
its signing secret is kept); executions keep a retry's original trigger in `retried_trigger`,
and are listed by trigger through an index of their own.

A retry's trigger becomes "retry": the retries already stored move their trigger to
`retried_trigger` (a retry of a retry kept its first execution's trigger, as it does now).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("hook_id", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("secret_ref", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("secret_set_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name="fk_webhooks_workflow_id_workflows",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", name="pk_webhooks"),
    )
    op.create_index("ix_webhooks_hook_id", "webhooks", ["hook_id"], unique=True)
    op.create_index("ix_webhooks_secret_ref", "webhooks", ["secret_ref"], unique=True)
    op.add_column("executions", sa.Column("retried_trigger", sa.Text(), nullable=True))
    op.execute(
        "UPDATE executions SET retried_trigger = trigger, trigger = 'retry' "
        "WHERE retry_of IS NOT NULL AND trigger <> 'retry'"
    )
    op.create_index(
        "ix_executions_owner_trigger",
        "executions",
        ["owner_id", "trigger", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_executions_owner_trigger", table_name="executions")
    op.execute(
        "UPDATE executions SET trigger = retried_trigger "
        "WHERE trigger = 'retry' AND retried_trigger IS NOT NULL"
    )
    op.drop_column("executions", "retried_trigger")
    op.drop_index("ix_webhooks_secret_ref", table_name="webhooks")
    op.drop_index("ix_webhooks_hook_id", table_name="webhooks")
    op.drop_table("webhooks")

"""Workflows, their version history and their tags.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types in tables.py: a migration must not change when the code does.
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", JSON_DOCUMENT, nullable=False),
        sa.Column("definition", JSON_DOCUMENT, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_workflows"),
        sa.CheckConstraint("version >= 1", name="ck_workflows_version_positive"),
    )
    op.create_index(
        "ix_workflows_owner_live",
        "workflows",
        ["owner_id", "created_at", "id"],
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    op.create_table(
        "workflow_versions",
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("definition", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "version", name="pk_workflow_versions"),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name="fk_workflow_versions_workflow_id_workflows",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("version >= 1", name="ck_workflow_versions_version_positive"),
    )
    op.create_table(
        "workflow_tags",
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "tag", name="pk_workflow_tags"),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name="fk_workflow_tags_workflow_id_workflows",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_workflow_tags_owner_tag",
        "workflow_tags",
        ["owner_id", "tag", "created_at", "workflow_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_tags_owner_tag", table_name="workflow_tags")
    op.drop_table("workflow_tags")
    op.drop_table("workflow_versions")
    op.drop_index("ix_workflows_owner_live", table_name="workflows")
    op.drop_table("workflows")

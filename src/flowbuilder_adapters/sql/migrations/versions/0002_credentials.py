"""Credentials, their encrypted secrets, and which workflows use which credential.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the types in tables.py: a migration must not change when the code does.
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workflow_credentials",
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("credential_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name="fk_workflow_credentials_workflow_id_workflows",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", "credential_id", name="pk_workflow_credentials"),
    )
    op.create_index(
        "ix_workflow_credentials_credential",
        "workflow_credentials",
        ["credential_id", "owner_id"],
    )
    op.create_table(
        "credentials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("fields", JSON_DOCUMENT, nullable=False),
        sa.Column("secret_ref", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credentials"),
    )
    op.create_index("ix_credentials_owner", "credentials", ["owner_id", "created_at", "id"])
    op.create_index(
        "ix_credentials_owner_type", "credentials", ["owner_id", "type", "created_at", "id"]
    )
    op.create_index("ix_credentials_secret_ref", "credentials", ["secret_ref"], unique=True)
    op.create_table(
        "credential_secrets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("credential_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credential_secrets"),
    )
    op.create_index("ix_credential_secrets_key", "credential_secrets", ["key_id"])
    # Workflows saved before this revision reference credentials too: index them.
    op.execute(_BACKFILL_POSTGRES if op.get_bind().dialect.name == "postgresql" else _BACKFILL)


def downgrade() -> None:
    op.drop_index("ix_credential_secrets_key", table_name="credential_secrets")
    op.drop_table("credential_secrets")
    op.drop_index("ix_credentials_secret_ref", table_name="credentials")
    op.drop_index("ix_credentials_owner_type", table_name="credentials")
    op.drop_index("ix_credentials_owner", table_name="credentials")
    op.drop_table("credentials")
    op.drop_index("ix_workflow_credentials_credential", table_name="workflow_credentials")
    op.drop_table("workflow_credentials")


_BACKFILL_POSTGRES = """
INSERT INTO workflow_credentials (workflow_id, credential_id, owner_id)
SELECT DISTINCT w.id, (node->>'credential_id')::uuid, w.owner_id
FROM workflows w, jsonb_array_elements(w.definition->'nodes') AS node
WHERE w.deleted_at IS NULL AND node ? 'credential_id'
"""

_BACKFILL = """
INSERT OR IGNORE INTO workflow_credentials (workflow_id, credential_id, owner_id)
SELECT w.id, replace(json_extract(node.value, '$.credential_id'), '-', ''), w.owner_id
FROM workflows w, json_each(w.definition, '$.nodes') AS node
WHERE w.deleted_at IS NULL AND json_extract(node.value, '$.credential_id') IS NOT NULL
"""

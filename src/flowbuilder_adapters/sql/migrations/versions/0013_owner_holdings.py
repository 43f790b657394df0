"""What each owner holds is counted in a row of its own, so a quota check stops scanning.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "owner_holdings",
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "kind"),
    )
    op.execute(
        "INSERT INTO owner_holdings (owner_id, kind, held) "
        "SELECT owner_id, 'workflows', count(*) FROM workflows "
        "WHERE deleted_at IS NULL GROUP BY owner_id"
    )
    op.execute(
        "INSERT INTO owner_holdings (owner_id, kind, held) "
        "SELECT owner_id, 'credentials', count(*) FROM credentials GROUP BY owner_id"
    )


def downgrade() -> None:
    op.drop_table("owner_holdings")

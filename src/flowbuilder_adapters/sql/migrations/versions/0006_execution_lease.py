"""The lease of the worker running an execution: its step records, heartbeats and finish are
conditional on it, so a worker that lost its run writes nothing more.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("lease", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("executions", "lease")

"""Idempotency keys keep an opaque result instead of an HTTP response's status, headers and body.

The store no longer knows what a result holds; the HTTP layer encodes its response into the
bytes. Completed rows (at most 24 hours of them) are converted, so that their retries still
replay across the upgrade.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import base64
import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen copies, as in 0003: a migration must not change when the code does.
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TABLE = sa.table(
    "idempotency_keys",
    sa.column("owner_id", sa.Text()),
    sa.column("key", sa.Text()),
    sa.column("status", sa.Integer()),
    sa.column("headers", JSON_DOCUMENT),
    sa.column("body", sa.LargeBinary()),
    sa.column("result", sa.LargeBinary()),
)


def _result(status: int, headers: list[list[str]], body: bytes) -> bytes:
    """The HTTP layer's recorded response as of this revision: JSON, the body in base64."""
    recorded = {"status": status, "headers": headers, "body": base64.b64encode(body).decode()}
    return json.dumps(recorded).encode()


def _response(result: bytes) -> dict[str, Any]:
    recorded = json.loads(result)
    return {
        "status": recorded["status"],
        "headers": recorded["headers"],
        "body": base64.b64decode(recorded["body"]),
    }


def _rewrite(rows: sa.Select[Any], values: Any) -> None:
    connection = op.get_bind()
    for row in connection.execute(rows).all():
        connection.execute(
            sa.update(_TABLE)
            .where(_TABLE.c.owner_id == row.owner_id, _TABLE.c.key == row.key)
            .values(**values(row))
        )


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("result", sa.LargeBinary(), nullable=True))
    _rewrite(
        sa.select(_TABLE).where(_TABLE.c.status.is_not(None)),
        lambda row: {"result": _result(row.status, row.headers, bytes(row.body))},
    )
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("status")
        batch.drop_column("headers")
        batch.drop_column("body")


def downgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("status", sa.Integer(), nullable=True))
    op.add_column("idempotency_keys", sa.Column("headers", JSON_DOCUMENT, nullable=True))
    op.add_column("idempotency_keys", sa.Column("body", sa.LargeBinary(), nullable=True))
    _rewrite(
        sa.select(_TABLE).where(_TABLE.c.result.is_not(None)),
        lambda row: _response(bytes(row.result)),
    )
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("result")

"""Keyset pagination, newest first on `(created_at, id)`: the one spelling every list uses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_

from flowbuilder_core.shared.pagination import PageRequest


def newest_first(
    query: Select[Any],
    created_at: ColumnElement[datetime],
    id_: ColumnElement[uuid.UUID],
    request: PageRequest,
) -> Select[Any]:
    """`query` ordered newest first, after the request's position, `limit + 1` rows (the extra
    row tells the caller a next page exists)."""
    if request.after is not None:
        after_created_at = datetime.fromisoformat(str(request.after[0]))
        query = query.where(
            keyset_before(created_at, id_, after_created_at, uuid.UUID(str(request.after[1])))
        )
    return query.order_by(created_at.desc(), id_.desc()).limit(request.limit + 1)


def keyset_before(
    created_at: ColumnElement[datetime],
    id_: ColumnElement[uuid.UUID],
    after_created_at: datetime,
    after_id: uuid.UUID,
) -> ColumnElement[bool]:
    """`(created_at, id) < (after_created_at, after_id)`, spelled so that SQLite understands it
    and both planners bound the index scan: the leading `created_at <=` is implied by the rest,
    but without it the OR would make Postgres read every newer row before the position."""
    return and_(
        created_at <= after_created_at,
        or_(created_at < after_created_at, and_(created_at == after_created_at, id_ < after_id)),
    )

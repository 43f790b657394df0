"""Keyset pagination, newest first on `(created_at, id)`: the one spelling every list uses.

Statements are built once per shape and take the position and the limit as bound parameters
(`page_parameters`): building a SQLAlchemy statement costs more than running a cached one.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, or_

from flowbuilder_core.shared.pagination import PageRequest

# Rendered into the SQL text when the statement runs, as SQLAlchemy does with `.limit(n)`: a
# server-side prepared statement's generic plan would not know how many rows are wanted.
LIMIT = bindparam("page_limit", type_=Integer, literal_execute=True)


def newest_first(
    query: Select[Any],
    created_at: ColumnElement[datetime],
    id_: ColumnElement[uuid.UUID],
    *,
    after: bool,
) -> Select[Any]:
    """`query` ordered newest first, `page_limit` rows; with `after`, only the rows after the
    position `(after_created_at, after_id)`. `page_parameters` gives all three."""
    if after:
        query = query.where(keyset_before(created_at, id_))
    return query.order_by(created_at.desc(), id_.desc()).limit(LIMIT)


def page_parameters(request: PageRequest) -> dict[str, Any]:
    """The bound parameters of a `newest_first` statement: `limit + 1` rows (the extra row
    tells the caller a next page exists), and the position when the request has one."""
    parameters: dict[str, Any] = {"page_limit": request.limit + 1}
    if request.after is not None:
        parameters["after_created_at"] = datetime.fromisoformat(str(request.after[0]))
        parameters["after_id"] = uuid.UUID(str(request.after[1]))
    return parameters


def keyset_before(
    created_at: ColumnElement[datetime], id_: ColumnElement[uuid.UUID]
) -> ColumnElement[bool]:
    """`(created_at, id) < (:after_created_at, :after_id)`, spelled so that SQLite understands
    it and both planners bound the index scan: the leading `created_at <=` is implied by the
    rest, but without it the OR would make Postgres read every newer row before the position."""
    after_created_at = bindparam("after_created_at", type_=created_at.type)
    after_id = bindparam("after_id", type_=id_.type)
    return and_(
        created_at <= after_created_at,
        or_(created_at < after_created_at, and_(created_at == after_created_at, id_ < after_id)),
    )

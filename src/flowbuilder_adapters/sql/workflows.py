"""The workflow repository over SQL tables (the row <-> entity mapping is in workflow_rows)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, String, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.dialect import insert_unless_exists
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.holdings import held, hold_one_fewer, hold_one_more
from flowbuilder_adapters.sql.keyset import LIMIT, newest_first, page_parameters
from flowbuilder_adapters.sql.tables import (
    executions,
    workflow_credentials,
    workflow_tags,
    workflow_versions,
    workflows,
)
from flowbuilder_adapters.sql.workflow_children import (
    NOTHING_STORED,
    StoredChildren,
    WorkflowChildren,
)
from flowbuilder_adapters.sql.workflow_rows import (
    SUMMARY_COLUMNS,
    definition_to_json,
    summary_from_row,
    version_from_row,
    version_to_row,
    workflow_from_row,
    workflow_to_row,
)
from flowbuilder_core.shared.errors import ConflictError, MalformedRequestError
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest
from flowbuilder_core.workflows.errors import ConcurrentUpdateError
from flowbuilder_core.workflows.model import (
    Workflow,
    WorkflowId,
    WorkflowSummary,
    WorkflowVersion,
)
from flowbuilder_core.workflows.ports import WorkflowFilter, WorkflowRef, WorkflowRepository


def like_contains(text: str) -> str:
    """A LIKE pattern (escape character `\\`) matching `text` anywhere, `%` and `_` literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ---------------------------------------------------------------------------------------------
# Statements, built once: building a statement costs more than running a cached one.
# Parameters that are not a column's new value are named `b_...`: in an INSERT or UPDATE,
# SQLAlchemy reserves a column's own name for the value written to it.
# ---------------------------------------------------------------------------------------------

_w = workflows.c
_LIVE = _w.deleted_at.is_(None)
_GET = select(workflows).where(_w.id == bindparam("b_id"), _LIVE)
_EXPECTED = (_w.id == bindparam("b_id"), _w.version == bindparam("b_expected_version"), _LIVE)
_UPDATE = (
    update(workflows)
    .where(*_EXPECTED)
    .values(
        name=bindparam("name"),
        description=bindparam("description"),
        tags=bindparam("tags"),
        definition=bindparam("definition"),
        version=bindparam("version"),
        updated_at=bindparam("updated_at"),
    )
)
_SOFT_DELETE = (
    update(workflows)
    .where(*_EXPECTED)
    .values(deleted_at=bindparam("deleted_at"))
    .returning(_w.owner_id)
)
_INSERT_VERSION = workflow_versions.insert()
_v = workflow_versions.c
_STORABLE_VERSIONS = range(-(2**31), 2**31)
"""Versions are 32-bit INTEGER columns: no stored version lies outside, and a driver refuses
such a number as a parameter."""
_VERSION = select(workflow_versions).where(
    _v.workflow_id == bindparam("b_id"), _v.version == bindparam("b_version")
)
_USING_CREDENTIAL = (
    select(_w.id, _w.name)
    .join(workflow_credentials, workflow_credentials.c.workflow_id == _w.id)
    .where(
        workflow_credentials.c.credential_id == bindparam("b_credential_id"),
        workflow_credentials.c.owner_id == bindparam("b_owner"),
    )
    .order_by(_w.created_at.desc(), _w.id.desc())
)


@functools.cache
def _listing(*, summaries: bool, by_tag: bool, search: bool, after: bool) -> Select[Any]:
    """A page of one owner's live workflows; parameters `b_owner`, `b_tag` (by_tag),
    `b_pattern` (search) and the keyset's (`page_parameters`)."""
    query = select(*SUMMARY_COLUMNS) if summaries else select(workflows)
    if by_tag:
        # Ordered by the tag row's copies of (created_at, id): ix_workflow_tags_owner_tag.
        tags = workflow_tags.c
        query = query.join(workflow_tags, tags.workflow_id == _w.id).where(
            tags.owner_id == bindparam("b_owner"), tags.tag == bindparam("b_tag"), _LIVE
        )
        created_at, id_ = tags.created_at, tags.workflow_id
    else:
        query = query.where(_w.owner_id == bindparam("b_owner"), _LIVE)
        created_at, id_ = _w.created_at, _w.id
    if search:
        pattern = func.lower(bindparam("b_pattern", type_=String))
        query = query.where(func.lower(_w.name).like(pattern, escape="\\"))
    return newest_first(query, created_at, id_, after=after)


@functools.cache
def _versions(*, after: bool) -> Select[Any]:
    query = select(workflow_versions).where(_v.workflow_id == bindparam("b_id"))
    if after:
        query = query.where(_v.version < bindparam("b_after_version"))
    return query.order_by(_v.version.desc()).limit(LIMIT)


# ---------------------------------------------------------------------------------------------
# Repository
# ---------------------------------------------------------------------------------------------


class SqlWorkflowRepository(WorkflowRepository):
    """Reads and writes in the scope's transaction (see `SqlUnitOfWork`).

    It remembers the child rows of the versions it read (see `workflow_children`), so an
    update rewrites only those that changed.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._children = WorkflowChildren(connection)
        self._read: dict[WorkflowId, StoredChildren] = {}

    async def set_active(self, workflow_id: WorkflowId, active: bool) -> None:
        statement = (
            update(workflows)
            .where(workflows.c.id == workflow_id, workflows.c.deleted_at.is_(None))
            .values(active=active)
        )
        async with translate_errors():
            await self._connection.execute(statement)

    async def count(self, owner: UserId, up_to: int) -> int:
        async with translate_errors():
            return min(await held(self._connection, owner, "workflows"), up_to)

    async def prune_versions(self, workflow: Workflow, keep: int) -> int:
        if workflow.version <= keep:
            return 0
        v = workflow_versions.c
        ran = (
            select(executions.c.id)
            .where(
                executions.c.workflow_id == workflow.id,
                executions.c.workflow_version == v.version,
            )
            .exists()
        )
        statement = delete(workflow_versions).where(
            v.workflow_id == workflow.id, v.version <= workflow.version - keep, ~ran
        )
        async with translate_errors():
            pruned = await self._connection.execute(statement)
        return int(pruned.rowcount)

    async def get(self, workflow_id: WorkflowId) -> Workflow | None:
        async with translate_errors():
            row = (await self._connection.execute(_GET, {"b_id": workflow_id})).one_or_none()
        if row is None:
            return None
        workflow = workflow_from_row(row)
        self._read[workflow.id] = StoredChildren.of(workflow)
        return workflow

    async def add(self, workflow: Workflow) -> None:
        async with translate_errors():
            added = await self._connection.execute(
                insert_unless_exists(self._connection, workflows), workflow_to_row(workflow)
            )
            if added.rowcount != 1:
                raise ConflictError("A workflow with this id already exists.")
            await hold_one_more(self._connection, workflow.owner_id, "workflows")
            await self._connection.execute(
                _INSERT_VERSION, version_to_row(workflow.current_version())
            )
            self._read[workflow.id] = await self._children.write(workflow, NOTHING_STORED)

    async def update(self, workflow: Workflow, *, expected_version: int) -> None:
        stored = self._read.get(workflow.id)
        if stored is not None and stored.version != expected_version:
            stored = None  # what was read is not what this update replaces: rewrite it all
        async with translate_errors():
            # On Postgres a concurrent writer's uncommitted update of the row makes this wait;
            # once it commits, the WHERE clause is checked again and matches nothing.
            updated = await self._connection.execute(
                _UPDATE,
                {
                    "b_id": workflow.id,
                    "b_expected_version": expected_version,
                    "name": workflow.name,
                    "description": workflow.description,
                    "tags": list(workflow.tags),
                    "definition": definition_to_json(workflow.definition),
                    "version": workflow.version,
                    "updated_at": workflow.updated_at,
                },
            )
            if updated.rowcount != 1:
                raise ConcurrentUpdateError(workflow.id)
            await self._connection.execute(
                _INSERT_VERSION, version_to_row(workflow.current_version())
            )
            self._read[workflow.id] = await self._children.write(workflow, stored)

    async def delete(self, workflow_id: WorkflowId, *, expected_version: int, at: datetime) -> None:
        async with translate_errors():
            deleted = await self._connection.execute(
                _SOFT_DELETE,
                {"b_id": workflow_id, "b_expected_version": expected_version, "deleted_at": at},
            )
            owner = deleted.scalar_one_or_none()
            if owner is None:
                raise ConcurrentUpdateError(workflow_id)
            await hold_one_fewer(self._connection, UserId(owner), "workflows")
            await self._children.delete_all(workflow_id)
        self._read.pop(workflow_id, None)

    async def page(
        self, owner: UserId, where: WorkflowFilter, request: PageRequest
    ) -> Sequence[Workflow]:
        rows = await self._list(owner, where, request, summaries=False)
        return [workflow_from_row(row) for row in rows]

    async def summaries(
        self, owner: UserId, where: WorkflowFilter, request: PageRequest
    ) -> Sequence[WorkflowSummary]:
        # The definition is most of a row, and lists mostly do not show it.
        rows = await self._list(owner, where, request, summaries=True)
        return [summary_from_row(row) for row in rows]

    async def _list(
        self, owner: UserId, where: WorkflowFilter, request: PageRequest, *, summaries: bool
    ) -> Sequence[Row[Any]]:
        query = _listing(
            summaries=summaries,
            by_tag=where.tag is not None,
            search=where.q is not None,
            after=request.after is not None,
        )
        parameters = {"b_owner": owner, **page_parameters(request)}
        if where.tag is not None:
            parameters["b_tag"] = where.tag
        if where.q is not None:
            parameters["b_pattern"] = like_contains(where.q)
        async with translate_errors():
            result = await self._connection.execute(query, parameters)
        return list(result)

    async def versions(
        self, workflow_id: WorkflowId, request: PageRequest
    ) -> Sequence[WorkflowVersion]:
        parameters: dict[str, Any] = {"b_id": workflow_id, "page_limit": request.limit + 1}
        if request.after is not None:
            after = int(request.after[0])
            if after not in _STORABLE_VERSIONS:
                raise MalformedRequestError("The cursor is malformed.")
            parameters["b_after_version"] = after
        query = _versions(after=request.after is not None)
        async with translate_errors():
            rows = (await self._connection.execute(query, parameters)).all()
        return [version_from_row(row) for row in rows]

    async def version(self, workflow_id: WorkflowId, version: int) -> WorkflowVersion | None:
        if version not in _STORABLE_VERSIONS:
            return None
        parameters = {"b_id": workflow_id, "b_version": version}
        async with translate_errors():
            row = (await self._connection.execute(_VERSION, parameters)).one_or_none()
        return None if row is None else version_from_row(row)

    async def using_credential(
        self, owner: UserId, credential_id: uuid.UUID
    ) -> Sequence[WorkflowRef]:
        parameters = {"b_owner": owner, "b_credential_id": credential_id}
        async with translate_errors():
            rows = (await self._connection.execute(_USING_CREDENTIAL, parameters)).all()
        return [WorkflowRef(WorkflowId(row.id), row.name) for row in rows]

"""The workflow repository over SQL tables, with explicit row <-> entity mapping."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.dialect import insert_unless_exists
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.keyset import newest_first
from flowbuilder_adapters.sql.tables import (
    workflow_credentials,
    workflow_tags,
    workflow_versions,
    workflows,
)
from flowbuilder_core.shared.errors import ConflictError
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest
from flowbuilder_core.workflows.errors import ConcurrentUpdateError
from flowbuilder_core.workflows.model import (
    Definition,
    Edge,
    Node,
    Position,
    Workflow,
    WorkflowId,
    WorkflowSummary,
    WorkflowVersion,
)
from flowbuilder_core.workflows.ports import WorkflowFilter, WorkflowRef, WorkflowRepository

# ---------------------------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------------------------


def definition_to_json(definition: Definition) -> dict[str, Any]:
    return definition.to_json()


def definition_from_json(raw: Mapping[str, Any]) -> Definition:
    """Rebuild a stored definition. It was validated when saved, so it is read back as it is,
    not validated again: a stored workflow stays readable if the save-time rules tighten later."""
    return Definition(
        nodes=tuple(_node_from_json(node) for node in raw.get("nodes", ())),
        edges=tuple(
            Edge(edge["source"], edge["target"], edge.get("source_output"))
            for edge in raw.get("edges", ())
        ),
    )


def _node_from_json(raw: Mapping[str, Any]) -> Node:
    credential_id = raw.get("credential_id")
    position = raw.get("position")
    return Node(
        id=raw["id"],
        type=raw["type"],
        parameters=raw.get("parameters", {}),
        credential_id=None if credential_id is None else uuid.UUID(credential_id),
        position=None if position is None else Position(position["x"], position["y"]),
    )


def workflow_to_row(workflow: Workflow) -> dict[str, Any]:
    return {
        "id": workflow.id,
        "owner_id": workflow.owner_id,
        "name": workflow.name,
        "description": workflow.description,
        "tags": list(workflow.tags),
        "definition": definition_to_json(workflow.definition),
        "version": workflow.version,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
        "deleted_at": workflow.deleted_at,
    }


def workflow_from_row(row: Row[Any]) -> Workflow:
    return Workflow(
        id=WorkflowId(row.id),
        owner_id=UserId(row.owner_id),
        name=row.name,
        description=row.description,
        tags=tuple(row.tags),
        definition=definition_from_json(row.definition),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


_SUMMARY_COLUMNS = [c for c in workflows.c if c.name != "definition"]


def summary_from_row(row: Row[Any]) -> WorkflowSummary:
    return WorkflowSummary(
        id=WorkflowId(row.id),
        owner_id=UserId(row.owner_id),
        name=row.name,
        description=row.description,
        tags=tuple(row.tags),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def version_to_row(version: WorkflowVersion) -> dict[str, Any]:
    return {
        "workflow_id": version.workflow_id,
        "version": version.version,
        "name": version.name,
        "definition": definition_to_json(version.definition),
        "created_at": version.created_at,
    }


def version_from_row(row: Row[Any]) -> WorkflowVersion:
    return WorkflowVersion(
        workflow_id=WorkflowId(row.workflow_id),
        version=row.version,
        name=row.name,
        definition=definition_from_json(row.definition),
        created_at=row.created_at,
    )


def tag_rows(workflow: Workflow) -> list[dict[str, Any]]:
    return [
        {
            "workflow_id": workflow.id,
            "owner_id": workflow.owner_id,
            "tag": tag,
            "created_at": workflow.created_at,
        }
        for tag in dict.fromkeys(workflow.tags)  # a tag counts once, in its first position
    ]


def like_contains(text: str) -> str:
    """A LIKE pattern (escape character `\\`) matching `text` anywhere, `%` and `_` literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ---------------------------------------------------------------------------------------------
# Repository
# ---------------------------------------------------------------------------------------------


class SqlWorkflowRepository(WorkflowRepository):
    """Reads and writes in the scope's transaction (see `SqlUnitOfWork`)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, workflow_id: WorkflowId) -> Workflow | None:
        query = select(workflows).where(
            workflows.c.id == workflow_id, workflows.c.deleted_at.is_(None)
        )
        async with translate_errors():
            row = (await self._connection.execute(query)).one_or_none()
        return None if row is None else workflow_from_row(row)

    async def add(self, workflow: Workflow) -> None:
        async with translate_errors():
            added = await self._connection.execute(
                insert_unless_exists(self._connection, workflows).values(workflow_to_row(workflow))
            )
            if added.rowcount != 1:
                raise ConflictError("A workflow with this id already exists.")
            await self._connection.execute(
                workflow_versions.insert().values(version_to_row(workflow.current_version()))
            )
            await self._insert_tags(workflow)
            await self._insert_credential_uses(workflow)

    async def update(self, workflow: Workflow, *, expected_version: int) -> None:
        async with translate_errors():
            # On Postgres a concurrent writer's uncommitted update of the row makes this wait;
            # once it commits, the WHERE clause is checked again and matches nothing.
            updated = await self._connection.execute(
                update(workflows)
                .where(*self._expected(workflow.id, expected_version))
                .values(
                    name=workflow.name,
                    description=workflow.description,
                    tags=list(workflow.tags),
                    definition=definition_to_json(workflow.definition),
                    version=workflow.version,
                    updated_at=workflow.updated_at,
                )
            )
            if updated.rowcount != 1:
                raise ConcurrentUpdateError(workflow.id)
            await self._connection.execute(
                workflow_versions.insert().values(version_to_row(workflow.current_version()))
            )
            await self._delete_tags(workflow.id)
            await self._insert_tags(workflow)
            await self._delete_credential_uses(workflow.id)
            await self._insert_credential_uses(workflow)

    async def delete(self, workflow_id: WorkflowId, *, expected_version: int, at: datetime) -> None:
        async with translate_errors():
            deleted = await self._connection.execute(
                update(workflows)
                .where(*self._expected(workflow_id, expected_version))
                .values(deleted_at=at)
            )
            if deleted.rowcount != 1:
                raise ConcurrentUpdateError(workflow_id)
            # Only live workflows have tag and credential rows: those indexes stay small.
            await self._delete_tags(workflow_id)
            await self._delete_credential_uses(workflow_id)

    async def page(
        self, owner: UserId, where: WorkflowFilter, request: PageRequest
    ) -> Sequence[Workflow]:
        query = self._listing(select(workflows), owner, where, request)
        async with translate_errors():
            rows = (await self._connection.execute(query)).all()
        return [workflow_from_row(row) for row in rows]

    async def summaries(
        self, owner: UserId, where: WorkflowFilter, request: PageRequest
    ) -> Sequence[WorkflowSummary]:
        # The definition is most of a row, and lists mostly do not show it.
        query = self._listing(select(*_SUMMARY_COLUMNS), owner, where, request)
        async with translate_errors():
            rows = (await self._connection.execute(query)).all()
        return [summary_from_row(row) for row in rows]

    @staticmethod
    def _listing(
        query: Select[Any], owner: UserId, where: WorkflowFilter, request: PageRequest
    ) -> Select[Any]:
        if where.tag is None:
            query = query.where(workflows.c.owner_id == owner, workflows.c.deleted_at.is_(None))
            created_at, id_ = workflows.c.created_at, workflows.c.id
        else:
            # Ordered by the tag row's copies of (created_at, id): ix_workflow_tags_owner_tag.
            query = query.join(workflow_tags, workflow_tags.c.workflow_id == workflows.c.id).where(
                workflow_tags.c.owner_id == owner,
                workflow_tags.c.tag == where.tag,
                workflows.c.deleted_at.is_(None),
            )
            created_at, id_ = workflow_tags.c.created_at, workflow_tags.c.workflow_id
        if where.q is not None:
            pattern = like_contains(where.q)
            query = query.where(func.lower(workflows.c.name).like(func.lower(pattern), escape="\\"))
        return newest_first(query, created_at, id_, request)

    async def versions(
        self, workflow_id: WorkflowId, request: PageRequest
    ) -> Sequence[WorkflowVersion]:
        query = select(workflow_versions).where(workflow_versions.c.workflow_id == workflow_id)
        if request.after is not None:
            query = query.where(workflow_versions.c.version < int(request.after[0]))
        query = query.order_by(workflow_versions.c.version.desc()).limit(request.limit + 1)
        async with translate_errors():
            rows = (await self._connection.execute(query)).all()
        return [version_from_row(row) for row in rows]

    async def version(self, workflow_id: WorkflowId, version: int) -> WorkflowVersion | None:
        query = select(workflow_versions).where(
            workflow_versions.c.workflow_id == workflow_id,
            workflow_versions.c.version == version,
        )
        async with translate_errors():
            row = (await self._connection.execute(query)).one_or_none()
        return None if row is None else version_from_row(row)

    async def using_credential(
        self, owner: UserId, credential_id: uuid.UUID
    ) -> Sequence[WorkflowRef]:
        query = (
            select(workflows.c.id, workflows.c.name)
            .join(workflow_credentials, workflow_credentials.c.workflow_id == workflows.c.id)
            .where(
                workflow_credentials.c.credential_id == credential_id,
                workflow_credentials.c.owner_id == owner,
            )
            .order_by(workflows.c.created_at.desc(), workflows.c.id.desc())
        )
        async with translate_errors():
            rows = (await self._connection.execute(query)).all()
        return [WorkflowRef(WorkflowId(row.id), row.name) for row in rows]

    @staticmethod
    def _expected(workflow_id: WorkflowId, expected_version: int) -> list[ColumnElement[bool]]:
        return [
            workflows.c.id == workflow_id,
            workflows.c.version == expected_version,
            workflows.c.deleted_at.is_(None),
        ]

    async def _insert_tags(self, workflow: Workflow) -> None:
        rows = tag_rows(workflow)
        if rows:
            await self._connection.execute(workflow_tags.insert(), rows)

    async def _insert_credential_uses(self, workflow: Workflow) -> None:
        used = {n.credential_id for n in workflow.definition.nodes if n.credential_id is not None}
        if used:
            await self._connection.execute(
                workflow_credentials.insert(),
                [
                    {"workflow_id": workflow.id, "credential_id": c, "owner_id": workflow.owner_id}
                    for c in sorted(used)
                ],
            )

    async def _delete_credential_uses(self, workflow_id: WorkflowId) -> None:
        await self._connection.execute(
            delete(workflow_credentials).where(workflow_credentials.c.workflow_id == workflow_id)
        )

    async def _delete_tags(self, workflow_id: WorkflowId) -> None:
        await self._connection.execute(
            delete(workflow_tags).where(workflow_tags.c.workflow_id == workflow_id)
        )

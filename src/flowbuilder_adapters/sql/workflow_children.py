"""The child rows of a live workflow: one per tag, one per credential its definition uses.

They copy the workflow's owner (and, for tags, its `created_at`) so that listing by tag and
finding the workflows that use a credential read one index each. Only live workflows have them,
which keeps those indexes small. `StoredChildren` remembers what the rows hold, so that a save
rewrites only the rows that changed (most saves change neither).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Delete, Insert, bindparam, delete
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.tables import workflow_credentials, workflow_tags
from flowbuilder_core.workflows.model import Workflow, WorkflowId


def tag_rows(workflow: Workflow, tags: Collection[str]) -> list[dict[str, Any]]:
    return [
        {
            "workflow_id": workflow.id,
            "owner_id": workflow.owner_id,
            "tag": tag,
            "created_at": workflow.created_at,
        }
        for tag in tags
    ]


def credential_use_rows(
    workflow: Workflow, credential_ids: Collection[uuid.UUID]
) -> list[dict[str, Any]]:
    return [
        {"workflow_id": workflow.id, "credential_id": c, "owner_id": workflow.owner_id}
        for c in credential_ids
    ]


def credential_uses(workflow: Workflow) -> frozenset[uuid.UUID]:
    return frozenset(
        node.credential_id for node in workflow.definition.nodes if node.credential_id is not None
    )


@dataclass(frozen=True, slots=True)
class StoredChildren:
    """What the tag and credential-use rows of a workflow hold at `version`."""

    version: int
    tags: frozenset[str]
    credential_uses: frozenset[uuid.UUID]

    @classmethod
    def of(cls, workflow: Workflow) -> StoredChildren:
        return cls(workflow.version, frozenset(workflow.tags), credential_uses(workflow))


NOTHING_STORED = StoredChildren(0, frozenset(), frozenset())
"""A new workflow's."""


@dataclass(frozen=True, slots=True)
class _ChildRows:
    """Rows a live workflow has one of per distinct key: its tags, the credentials it uses."""

    delete_all: Delete
    delete_some: Delete  # those whose key is in `b_keys`
    insert: Insert
    rows: Callable[[Workflow, Collection[Any]], list[dict[str, Any]]]


# Statements built once: building a statement costs more than running a cached one.
_DELETE_TAGS = delete(workflow_tags).where(workflow_tags.c.workflow_id == bindparam("b_id"))
_DELETE_CREDENTIAL_USES = delete(workflow_credentials).where(
    workflow_credentials.c.workflow_id == bindparam("b_id")
)
_TAGS = _ChildRows(
    _DELETE_TAGS,
    _DELETE_TAGS.where(workflow_tags.c.tag.in_(bindparam("b_keys", expanding=True))),
    workflow_tags.insert(),
    tag_rows,
)
_CREDENTIAL_USES = _ChildRows(
    _DELETE_CREDENTIAL_USES,
    _DELETE_CREDENTIAL_USES.where(
        workflow_credentials.c.credential_id.in_(bindparam("b_keys", expanding=True))
    ),
    workflow_credentials.insert(),
    credential_use_rows,
)


class WorkflowChildren:
    """Writes the child rows on the scope's connection, inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def write(self, workflow: Workflow, stored: StoredChildren | None) -> StoredChildren:
        """Bring the tag and credential-use rows from `stored` (None: unknown) to `workflow`;
        what they hold now."""
        new = StoredChildren.of(workflow)
        await self._write(_TAGS, workflow, None if stored is None else stored.tags, new.tags)
        await self._write(
            _CREDENTIAL_USES,
            workflow,
            None if stored is None else stored.credential_uses,
            new.credential_uses,
        )
        return new

    async def delete_all(self, workflow_id: WorkflowId) -> None:
        for children in (_TAGS, _CREDENTIAL_USES):
            await self._connection.execute(children.delete_all, {"b_id": workflow_id})

    async def _write(
        self,
        children: _ChildRows,
        workflow: Workflow,
        old: frozenset[Any] | None,
        new: frozenset[Any],
    ) -> None:
        if old is None:
            await self._connection.execute(children.delete_all, {"b_id": workflow.id})
            old = frozenset()
        elif removed := sorted(old - new):
            await self._connection.execute(
                children.delete_some, {"b_id": workflow.id, "b_keys": removed}
            )
        if added := sorted(new - old):
            await self._connection.execute(children.insert, children.rows(workflow, added))

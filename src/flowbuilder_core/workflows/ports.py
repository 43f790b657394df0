"""Ports of the workflows context."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest
from flowbuilder_core.workflows.model import (
    Workflow,
    WorkflowId,
    WorkflowSummary,
    WorkflowVersion,
)


@dataclass(frozen=True, slots=True)
class WorkflowFilter:
    """List filters: `tag` matches one tag exactly; `q` is a case-insensitive name substring."""

    tag: str | None = None
    q: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowRef:
    id: WorkflowId
    name: str


class WorkflowRepository(Protocol):
    """Workflows and their version history, in the unit of work of the current scope.

    Lists are newest first, ordered by `(created_at, id)`; a page is read after a keyset
    position `(created_at as RFC 3339 text, id as text)` and may return `limit + 1` rows so that
    the caller knows whether another page follows. Deleted workflows are invisible to every
    method but `version`, which keeps history readable for the executions that ran it.
    """

    async def get(self, workflow_id: WorkflowId) -> Workflow | None: ...

    async def add(self, workflow: Workflow) -> None:
        """Store a new workflow and its first version."""

    async def update(self, workflow: Workflow, *, expected_version: int) -> None:
        """Store `workflow` and its new version. Raises ConcurrentUpdateError if the stored
        version is no longer `expected_version`."""

    async def delete(self, workflow_id: WorkflowId, *, expected_version: int, at: datetime) -> None:
        """Soft-delete. Raises ConcurrentUpdateError on a version other than expected."""

    async def page(
        self, owner: UserId, where: WorkflowFilter, request: PageRequest
    ) -> Sequence[Workflow]: ...

    async def summaries(
        self, owner: UserId, where: WorkflowFilter, request: PageRequest
    ) -> Sequence[WorkflowSummary]:
        """As `page`, without reading any definition."""

    async def versions(
        self, workflow_id: WorkflowId, request: PageRequest
    ) -> Sequence[WorkflowVersion]:
        """Versions newest first, after the keyset position `(version,)`. A position this store
        cannot hold (no version it keeps could have issued it) is MalformedRequestError."""

    async def version(self, workflow_id: WorkflowId, version: int) -> WorkflowVersion | None:
        """None for a version the workflow does not have, whatever the number (one too large
        for the store included)."""

    async def set_active(self, workflow_id: WorkflowId, active: bool) -> None:
        """Switch a live workflow on or off for its webhook and schedule (no new version)."""

    async def count(self, owner: UserId, up_to: int) -> int:
        """The owner's live workflows, counted up to `up_to` (a bounded count)."""

    async def prune_versions(self, workflow: Workflow, keep: int) -> int:
        """Delete the workflow's versions older than its newest `keep`, except those an
        execution ran (their history stays readable); how many went."""

    async def using_credential(
        self, owner: UserId, credential_id: uuid.UUID
    ) -> Sequence[WorkflowRef]:
        """The owner's live workflows whose current version references the credential."""


class CredentialDirectory(Protocol):
    """Answers the runnability check's one question about credentials, so that workflows never
    import the credentials context: which of these ids does this owner have, and of what type?"""

    async def types_of(
        self, owner: UserId, credential_ids: Collection[uuid.UUID]
    ) -> Mapping[uuid.UUID, str]: ...

"""The workflow repository over the in-memory store."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_core.shared.errors import ConflictError
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


class MemoryWorkflowRepository(WorkflowRepository):
    """Reads see committed state plus this unit of work's own staged writes."""

    def __init__(self, store: MemoryStore, uow: MemoryUnitOfWork) -> None:
        self._store, self._uow = store, uow
        self._staged: dict[WorkflowId, Workflow] = {}
        self._staged_versions: dict[tuple[WorkflowId, int], WorkflowVersion] = {}

    async def get(self, workflow_id: WorkflowId) -> Workflow | None:
        found = self._current(workflow_id)
        return None if found is None or found.is_deleted else dataclasses.replace(found)

    async def add(self, workflow: Workflow) -> None:
        if self._current(workflow.id) is not None:
            raise ConflictError("A workflow with this id already exists.")
        self._write(workflow, expected_version=None)

    async def update(self, workflow: Workflow, *, expected_version: int) -> None:
        self._expect(workflow.id, expected_version)
        self._write(workflow, expected_version=expected_version)

    async def delete(self, workflow_id: WorkflowId, *, expected_version: int, at: datetime) -> None:
        current = self._expect(workflow_id, expected_version)
        deleted = dataclasses.replace(current, deleted_at=at)
        check = self._committed_check(workflow_id, expected_version)
        self._staged[workflow_id] = deleted
        self._uow.stage(lambda: self._store.workflows.__setitem__(workflow_id, deleted), check)

    async def page(
        self, owner: UserId, where: WorkflowFilter, request: PageRequest
    ) -> Sequence[Workflow]:
        rows = [
            w
            for w in self._all()
            if w.owner_id == owner
            and not w.is_deleted
            and (where.tag is None or where.tag in w.tags)
            and (where.q is None or where.q.lower() in w.name.lower())
        ]
        if request.after is not None:
            after = (datetime.fromisoformat(str(request.after[0])), str(request.after[1]))
            rows = [w for w in rows if (w.created_at, str(w.id)) < after]
        rows.sort(key=lambda w: (w.created_at, str(w.id)), reverse=True)
        return [dataclasses.replace(w) for w in rows[: request.limit + 1]]

    async def summaries(
        self, owner: UserId, where: WorkflowFilter, request: PageRequest
    ) -> Sequence[WorkflowSummary]:
        return [w.summary() for w in await self.page(owner, where, request)]

    async def versions(
        self, workflow_id: WorkflowId, request: PageRequest
    ) -> Sequence[WorkflowVersion]:
        found = [v for (wid, _), v in self._all_versions() if wid == workflow_id]
        if request.after is not None:
            found = [v for v in found if v.version < int(request.after[0])]
        found.sort(key=lambda v: v.version, reverse=True)
        return found[: request.limit + 1]

    async def version(self, workflow_id: WorkflowId, version: int) -> WorkflowVersion | None:
        key = (workflow_id, version)
        return self._staged_versions.get(key) or self._store.versions.get(key)

    async def using_credential(
        self, owner: UserId, credential_id: uuid.UUID
    ) -> Sequence[WorkflowRef]:
        return [
            WorkflowRef(w.id, w.name)
            for w in sorted(self._all(), key=lambda w: (w.created_at, str(w.id)), reverse=True)
            if w.owner_id == owner
            and not w.is_deleted
            and any(node.credential_id == credential_id for node in w.definition.nodes)
        ]

    async def set_active(self, workflow_id: WorkflowId, active: bool) -> None:
        current = self._current(workflow_id)
        if current is None or current.is_deleted:
            return
        self._staged[workflow_id] = dataclasses.replace(current, active=active)

        def apply() -> None:
            stored = self._store.workflows.get(workflow_id)
            if stored is not None:
                self._store.workflows[workflow_id] = dataclasses.replace(stored, active=active)

        self._uow.stage(apply)

    async def count(self, owner: UserId, up_to: int) -> int:
        live = [w for w in self._all() if w.owner_id == owner and not w.is_deleted]
        return min(len(live), up_to)

    async def prune_versions(self, workflow: Workflow, keep: int) -> int:
        ran = {
            e.workflow_version
            for e in self._store.executions.values()
            if e.workflow_id == workflow.id
        }
        old = [
            key
            for key, _ in self._all_versions()
            if key[0] == workflow.id and key[1] <= workflow.version - keep and key[1] not in ran
        ]

        def apply() -> None:
            for key in old:
                self._store.versions.pop(key, None)

        for key in old:
            self._staged_versions.pop(key, None)
        self._uow.stage(apply)
        return len(old)

    def _current(self, workflow_id: WorkflowId) -> Workflow | None:
        return self._staged.get(workflow_id) or self._store.workflows.get(workflow_id)

    def _all(self) -> list[Workflow]:
        return list({**self._store.workflows, **self._staged}.values())

    def _all_versions(self) -> list[tuple[tuple[WorkflowId, int], WorkflowVersion]]:
        return list({**self._store.versions, **self._staged_versions}.items())

    def _expect(self, workflow_id: WorkflowId, expected_version: int) -> Workflow:
        current = self._current(workflow_id)
        if current is None or current.is_deleted or current.version != expected_version:
            raise ConcurrentUpdateError(workflow_id)
        return current

    def _committed_check(
        self, workflow_id: WorkflowId, expected: int | None
    ) -> Callable[[], None] | None:
        """At commit, the committed row must still be the one this unit of work first changed
        (a later change of the same workflow in this unit of work builds on its own first)."""
        if workflow_id in self._staged:
            return None

        def check() -> None:
            stored = self._store.workflows.get(workflow_id)
            stored_version = None if stored is None else stored.version
            if stored_version != expected or (stored is not None and stored.is_deleted):
                raise ConflictError("The workflow was changed by another request; try again.")

        return check

    def _write(self, workflow: Workflow, *, expected_version: int | None) -> None:
        saved = dataclasses.replace(workflow)
        version = workflow.current_version()
        key = (workflow.id, workflow.version)
        check = self._committed_check(workflow.id, expected_version)
        self._staged[workflow.id] = saved
        self._staged_versions[key] = version

        def apply() -> None:
            self._store.workflows[workflow.id] = saved
            self._store.versions[key] = version

        self._uow.stage(apply, check)

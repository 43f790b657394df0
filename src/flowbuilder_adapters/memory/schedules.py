"""The schedule book over the in-memory store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_core.workflows.model import WorkflowId
from flowbuilder_core.workflows.schedules import ScheduledWorkflow, ScheduleRepository

_REMOVED = None


class MemoryScheduleRepository(ScheduleRepository):
    """Reads see committed entries plus this unit of work's own staged writes. One process
    holds the store, so a claim holds nothing: as on SQLite, one scheduler is enough."""

    def __init__(self, store: MemoryStore, uow: MemoryUnitOfWork) -> None:
        self._store, self._uow = store, uow
        self._staged: dict[WorkflowId, ScheduledWorkflow | None] = {}

    async def get(self, workflow_id: WorkflowId) -> ScheduledWorkflow | None:
        if workflow_id in self._staged:
            return self._staged[workflow_id]
        return self._store.schedules.get(workflow_id)

    async def put(self, entry: ScheduledWorkflow) -> None:
        self._staged[entry.workflow_id] = entry
        self._uow.stage(lambda: self._store.schedules.__setitem__(entry.workflow_id, entry))

    async def remove(self, workflow_id: WorkflowId) -> None:
        self._staged[workflow_id] = _REMOVED

        def apply() -> None:
            self._store.schedules.pop(workflow_id, None)

        self._uow.stage(apply)

    async def claim_due(self, now: datetime, limit: int) -> Sequence[ScheduledWorkflow]:
        entries = {**self._store.schedules, **self._staged}.values()
        due = [e for e in entries if e is not None and e.next_due_at <= now]
        return sorted(due, key=lambda e: (e.next_due_at, str(e.workflow_id)))[:limit]

"""Executions, outbox and rate limiting over the in-memory store."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TypeGuard

from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    ExecutionRequested,
    ExecutionStatus,
    StepResult,
)
from flowbuilder_core.executions.ports import (
    ExecutionFilter,
    ExecutionRepository,
    Outbox,
    RateLimiter,
)
from flowbuilder_core.executions.rate import Bucket, RateLimit
from flowbuilder_core.shared.errors import ConflictError
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest
from flowbuilder_core.shared.quotas import WriteRateLimiter
from flowbuilder_core.workflows.model import WorkflowId

_HELD = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.CANCELLED})


def _holder(stored: Execution | None, lease: uuid.UUID) -> Execution | None:
    """`stored` if it holds `lease` and is running or cancelled."""
    if stored is None or stored.lease != lease or stored.status not in _HELD:
        return None
    return stored


def _running_under(stored: Execution | None, lease: uuid.UUID) -> TypeGuard[Execution]:
    return stored is not None and stored.lease == lease and stored.status is ExecutionStatus.RUNNING


def _copy(execution: Execution) -> Execution:
    return dataclasses.replace(execution, steps=list(execution.steps))


class MemoryExecutionRepository(ExecutionRepository):
    """Writes take effect at the unit of work's commit; status moves are checked there too."""

    def __init__(self, store: MemoryStore, uow: MemoryUnitOfWork) -> None:
        self._store, self._uow = store, uow
        self._scheduled: set[tuple[WorkflowId, datetime | None]] = set()

    async def get(self, execution_id: ExecutionId) -> Execution | None:
        found = self._store.executions.get(execution_id)
        return None if found is None else _copy(found)

    async def add(self, execution: Execution) -> None:
        saved = _copy(execution)
        self._uow.stage(lambda: self._store.executions.__setitem__(saved.id, saved))

    async def add_scheduled(self, execution: Execution) -> bool:
        key = (execution.workflow_id, execution.scheduled_for)
        if key in self._scheduled or self._has_scheduled(*key):
            return False
        self._scheduled.add(key)
        saved = _copy(execution)

        def unique() -> None:  # the unique key, checked again at commit
            if self._has_scheduled(*key):
                raise ConflictError("This workflow already has a run for this scheduled time.")

        self._uow.stage(lambda: self._store.executions.__setitem__(saved.id, saved), unique)
        return True

    def _has_scheduled(self, workflow_id: WorkflowId, at: datetime | None) -> bool:
        return at is not None and any(
            e.workflow_id == workflow_id and e.scheduled_for == at
            for e in self._store.executions.values()
        )

    async def save(
        self, execution: Execution, *, expected: ExecutionStatus, lease: uuid.UUID | None = None
    ) -> bool:
        stored = self._store.executions.get(execution.id)
        if stored is None or stored.status is not expected:
            return False
        if lease is not None and stored.lease != lease:
            return False
        saved = dataclasses.replace(_copy(execution), steps=stored.steps)

        def apply() -> None:
            self._store.executions[saved.id] = saved
            self._store.parked.pop(saved.id, None)  # only a queued execution waits for a slot

        self._uow.stage(apply)
        return True

    async def record_step(
        self, execution_id: ExecutionId, lease: uuid.UUID, step: StepResult
    ) -> bool:
        if _holder(self._store.executions.get(execution_id), lease) is None:
            return False

        def apply() -> None:
            stored = _holder(self._store.executions.get(execution_id), lease)
            if stored is not None:  # checked again at commit, as the database's row lock does
                stored.record(step)

        self._uow.stage(apply)
        return True

    async def claim(
        self,
        execution_id: ExecutionId,
        at: datetime,
        lease: uuid.UUID,
        *,
        max_running: int | None = None,
    ) -> Execution | None:
        stored = self._store.executions.get(execution_id)
        if stored is None or stored.status is not ExecutionStatus.QUEUED:
            return None
        # No await from the checks to the change: atomic on the event loop.
        if max_running is not None and self._running(stored.owner_id) >= max_running:
            self._store.parked.setdefault(execution_id, at)
            return None
        self._store.parked.pop(execution_id, None)
        stored.start(at=at, lease=lease)
        return _copy(stored)

    async def release(self, execution_id: ExecutionId, lease: uuid.UUID) -> bool:
        if not _running_under(self._store.executions.get(execution_id), lease):
            return False

        def apply() -> None:
            current = self._store.executions.get(execution_id)
            # Checked again at commit, as the database's conditional update does.
            if _running_under(current, lease):
                current.release()

        self._uow.stage(apply)
        return True

    async def unpark(self, owner: UserId, max_running: int) -> Sequence[Execution]:
        free = max_running - self._running(owner)
        waiting = sorted(
            (e for i in self._store.parked if (e := self._store.executions[i]).owner_id == owner),
            key=lambda e: (e.created_at, str(e.id)),
        )
        resumed = [e for e in waiting if e.status is ExecutionStatus.QUEUED][: max(free, 0)]
        done = [e.id for e in resumed] + [e.id for e in waiting if e.status.finished]

        def apply() -> None:
            for execution_id in done:
                self._store.parked.pop(execution_id, None)

        self._uow.stage(apply)  # with the messages sent again, or not at all
        return [_copy(e) for e in resumed]

    async def has_parked(self, owner: UserId) -> bool:
        return any(self._store.executions[i].owner_id == owner for i in self._store.parked)

    async def parked_owners(self, limit: int) -> Sequence[UserId]:
        owners = {self._store.executions[i].owner_id for i in self._store.parked}
        return sorted(owners)[:limit]

    def _running(self, owner: UserId) -> int:
        return sum(
            1
            for e in self._store.executions.values()
            if e.owner_id == owner and e.status is ExecutionStatus.RUNNING
        )

    async def heartbeat(
        self, execution_id: ExecutionId, lease: uuid.UUID, at: datetime
    ) -> ExecutionStatus | None:
        stored = _holder(self._store.executions.get(execution_id), lease)
        if stored is None:
            return None
        if stored.status is ExecutionStatus.RUNNING:
            stored.heartbeat_at = at
        return stored.status

    async def stale(self, heartbeat_before: datetime, limit: int) -> Sequence[ExecutionId]:
        return [
            e.id
            for e in self._store.executions.values()
            if e.status is ExecutionStatus.RUNNING
            and e.heartbeat_at is not None
            and e.heartbeat_at < heartbeat_before
        ][:limit]

    async def page(
        self, owner: UserId, where: ExecutionFilter, request: PageRequest
    ) -> Sequence[Execution]:
        rows = [
            e
            for e in self._store.executions.values()
            if e.owner_id == owner
            and (not where.statuses or e.status in where.statuses)
            and (where.workflow_id is None or e.workflow_id == where.workflow_id)
            and (where.created_after is None or e.created_at >= where.created_after)
            and (where.created_before is None or e.created_at < where.created_before)
            and (where.parent_id is None or e.parent_execution_id == where.parent_id)
            and (not where.triggers or e.trigger in where.triggers)
        ]
        if request.after is not None:
            after = (datetime.fromisoformat(str(request.after[0])), str(request.after[1]))
            rows = [e for e in rows if (e.created_at, str(e.id)) < after]
        rows.sort(key=lambda e: (e.created_at, str(e.id)), reverse=True)
        return [dataclasses.replace(e, input={}, steps=[]) for e in rows[: request.limit + 1]]


class MemoryOutbox(Outbox):
    """Committed messages wait in `MemoryStore.outbox` for a relay (or a test) to take them."""

    def __init__(self, store: MemoryStore, uow: MemoryUnitOfWork) -> None:
        self._store, self._uow = store, uow

    async def add(self, message: ExecutionRequested) -> None:
        self._uow.stage(lambda: self._store.outbox.append(message))


class MemoryRateLimiter(RateLimiter, WriteRateLimiter):
    """A token bucket per user in the store (see `RateLimit`); `kind` tells the buckets of
    different limits apart, as `SqlRateLimiter`'s does."""

    def __init__(
        self, store: MemoryStore, rate_per_second: float = 20, burst: int = 100, kind: str = ""
    ) -> None:
        self._store, self._limit, self._kind = store, RateLimit(rate_per_second, burst), kind

    async def take(self, owner: UserId, now: datetime) -> float | None:
        owner = UserId(self._kind + owner)
        taken = self._limit.take(self._store.buckets.get(owner), now)
        if not isinstance(taken, Bucket):
            return taken
        self._store.buckets[owner] = taken
        return None

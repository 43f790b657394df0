"""Executions and their steps over SQL (the outbox and rate limits have modules of their own)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    bindparam,
    delete,
    insert,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.dialect import insert_unless_exists
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.execution_rows import error_to_json, execution_from_row
from flowbuilder_adapters.sql.execution_steps import record_step_statement
from flowbuilder_adapters.sql.keyset import LIMIT, newest_first, page_parameters
from flowbuilder_adapters.sql.run_claims import claimed_row, running_of, turn_of
from flowbuilder_adapters.sql.tables import execution_steps, executions
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    ExecutionStatus,
    StepResult,
)
from flowbuilder_core.executions.ports import (
    ExecutionFilter,
    ExecutionRepository,
)
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest

_SUMMARY = [c for c in executions.c if c.name != "input"]

# Statements built once: building a statement costs more than running a cached one.
_e = executions.c
_GET = select(executions).where(_e.id == bindparam("b_id"))
_STEPS = (
    select(execution_steps)
    .where(execution_steps.c.execution_id == bindparam("b_id"))
    .order_by(execution_steps.c.position)
)
_INSERT = insert(executions)


def _row(execution: Execution) -> dict[str, Any]:
    return {
        "id": execution.id,
        "owner_id": execution.owner_id,
        "workflow_id": execution.workflow_id,
        "workflow_version": execution.workflow_version,
        "status": execution.status.value,
        "trigger": execution.trigger,
        "input": dict(execution.input),
        "error": error_to_json(execution.error),
        "attempt": execution.attempt,
        "retry_of": execution.retry_of,
        "retried_trigger": execution.retried_trigger,
        "created_at": execution.created_at,
        "started_at": execution.started_at,
        "finished_at": execution.finished_at,
        "heartbeat_at": execution.heartbeat_at,
        "lease": execution.lease,
        "parent_execution_id": execution.parent_execution_id,
        "scheduled_for": execution.scheduled_for,
    }


class SqlExecutionRepository(ExecutionRepository):
    """Status moves are conditional UPDATEs on the status read, so concurrent writers (a cancel
    and a worker, two workers) can never move an execution backwards or twice."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, execution_id: ExecutionId) -> Execution | None:
        async with translate_errors():
            row = (await self._connection.execute(_GET, {"b_id": execution_id})).one_or_none()
            if row is None:
                return None
            steps = (await self._connection.execute(_STEPS, {"b_id": execution_id})).all()
        return execution_from_row(row, steps)

    async def add(self, execution: Execution) -> None:
        async with translate_errors():
            await self._connection.execute(_INSERT, _row(execution))

    async def add_scheduled(self, execution: Execution) -> bool:
        insert = insert_unless_exists(self._connection, executions)
        async with translate_errors():
            added = await self._connection.execute(insert, _row(execution))
        return bool(added.rowcount == 1)

    async def save(
        self, execution: Execution, *, expected: ExecutionStatus, lease: uuid.UUID | None = None
    ) -> bool:
        conditions = [executions.c.id == execution.id, executions.c.status == expected.value]
        if lease is not None:
            conditions.append(executions.c.lease == lease)
        async with translate_errors():
            moved = await self._connection.execute(
                update(executions)
                .where(*conditions)
                .values(
                    parked_at=None,  # only a queued execution waits for a slot
                    status=execution.status.value,
                    error=error_to_json(execution.error),
                    started_at=execution.started_at,
                    finished_at=execution.finished_at,
                    heartbeat_at=execution.heartbeat_at,
                )
            )
        return bool(moved.rowcount == 1)

    async def record_step(
        self, execution_id: ExecutionId, lease: uuid.UUID, step: StepResult
    ) -> bool:
        parameters = {
            "b_execution_id": execution_id,
            "b_lease": lease,
            "b_node_id": step.node_id,
            "b_status": step.status.value,
            "b_started_at": step.started_at,
            "b_finished_at": step.finished_at,
            "b_output": step.output,
            "b_error": error_to_json(step.error),
            "b_truncated": step.truncated,
            "b_attempts": step.attempts,
        }
        async with translate_errors():
            written = await self._connection.execute(
                record_step_statement(self._connection.dialect.name), parameters
            )
        return bool(written.rowcount)

    async def claim(
        self,
        execution_id: ExecutionId,
        at: datetime,
        lease: uuid.UUID,
        *,
        max_running: int | None = None,
    ) -> Execution | None:
        row = await claimed_row(self._connection, execution_id, at, lease, max_running)
        return None if row is None else execution_from_row(row)

    async def release(self, execution_id: ExecutionId, lease: uuid.UUID) -> bool:
        held = (
            _e.id == execution_id,
            _e.lease == lease,
            _e.status == ExecutionStatus.RUNNING.value,
        )
        async with translate_errors():
            released = await self._connection.execute(
                update(executions)
                .where(*held)
                .values(
                    status=ExecutionStatus.QUEUED.value,
                    started_at=None,
                    heartbeat_at=None,
                    lease=None,
                    parked_at=None,
                )
            )
            if released.rowcount != 1:
                return False
            await self._connection.execute(
                delete(execution_steps).where(execution_steps.c.execution_id == execution_id)
            )
        return True

    async def unpark(self, owner: UserId, max_running: int) -> Sequence[Execution]:
        parked = select(_e.id).where(_e.owner_id == owner, _e.parked_at.is_not(None)).limit(1)
        async with translate_errors():
            # The common case, nothing parked, is one read of a small partial index.
            if (await self._connection.execute(parked)).first() is None:
                return []
            await self._take_turn(owner)
            running = (await self._connection.execute(select(running_of(owner)))).scalar_one()
            if running >= max_running:
                return []
            oldest = (
                select(_e.id)
                .where(
                    _e.owner_id == owner,
                    _e.parked_at.is_not(None),
                    _e.status == ExecutionStatus.QUEUED.value,
                )
                .order_by(_e.created_at, _e.id)
                .limit(max_running - running)
            )
            rows = (
                await self._connection.execute(
                    update(executions)
                    .where(_e.id.in_(oldest))
                    .values(parked_at=None)
                    .returning(*_SUMMARY)
                )
            ).all()
        return sorted((execution_from_row(r) for r in rows), key=lambda e: e.created_at)

    async def has_parked(self, owner: UserId) -> bool:
        parked = select(_e.id).where(_e.owner_id == owner, _e.parked_at.is_not(None)).limit(1)
        async with translate_errors():
            return (await self._connection.execute(parked)).first() is not None

    async def parked_owners(self, limit: int) -> Sequence[UserId]:
        query = select(_e.owner_id).where(_e.parked_at.is_not(None)).distinct().limit(limit)
        async with translate_errors():
            return [UserId(o) for o in (await self._connection.execute(query)).scalars()]

    async def _take_turn(self, owner: Any) -> None:
        """Postgres: claims and unparks of one owner's executions take turns (a transaction
        lock on the owner), so counting their running executions and moving one is atomic.
        SQLite has one writer at a time anyway."""
        if self._connection.dialect.name == "postgresql":
            await self._connection.execute(turn_of(owner))

    async def heartbeat(
        self, execution_id: ExecutionId, lease: uuid.UUID, at: datetime
    ) -> ExecutionStatus | None:
        held = (executions.c.id == execution_id, executions.c.lease == lease)
        async with translate_errors():
            beaten = (
                await self._connection.execute(
                    update(executions)
                    .where(*held, executions.c.status == ExecutionStatus.RUNNING.value)
                    .values(heartbeat_at=at)
                    .returning(executions.c.status)
                )
            ).first()
            if beaten is not None:
                return ExecutionStatus.RUNNING
            status = (
                await self._connection.execute(select(executions.c.status).where(*held))
            ).scalar_one_or_none()
        return ExecutionStatus.CANCELLED if status == ExecutionStatus.CANCELLED.value else None

    async def stale(self, heartbeat_before: datetime, limit: int) -> Sequence[ExecutionId]:
        query = (
            select(executions.c.id)
            .where(
                executions.c.status == ExecutionStatus.RUNNING.value,
                executions.c.heartbeat_at < heartbeat_before,
            )
            .limit(limit)
        )
        async with translate_errors():
            rows = (await self._connection.execute(query)).all()
        return [ExecutionId(row.id) for row in rows]

    async def page(
        self, owner: UserId, where: ExecutionFilter, request: PageRequest
    ) -> Sequence[Execution]:
        statuses = sorted(s.value for s in where.statuses)
        triggers = sorted(where.triggers)
        query = _page(
            by_workflow=where.workflow_id is not None,
            created_after=where.created_after is not None,
            created_before=where.created_before is not None,
            by_parent=where.parent_id is not None,
            statuses=len(statuses),
            after=request.after is not None,
            triggers=len(triggers),
        )
        parameters = {
            "b_owner": owner,
            "b_workflow_id": where.workflow_id,
            "b_created_after": where.created_after,
            "b_created_before": where.created_before,
            "b_parent_id": where.parent_id,
            **{f"b_status_{i}": status for i, status in enumerate(statuses)},
            **{f"b_trigger_{i}": trigger for i, trigger in enumerate(triggers)},
            **page_parameters(request),
        }
        async with translate_errors():
            rows = (await self._connection.execute(query, parameters)).all()
        return [execution_from_row(row) for row in rows]


@functools.cache
def _page(
    *,
    by_workflow: bool,
    created_after: bool,
    created_before: bool,
    statuses: int,
    after: bool,
    by_parent: bool = False,
    triggers: int = 0,
) -> Select[Any]:
    """A page of one owner's executions (`b_owner`), filtered by `b_workflow_id`,
    `b_created_after`, `b_created_before`, `b_parent_id`, `statuses` statuses (`b_status_0`,
    ...) and `triggers` triggers (`b_trigger_0`, ...)."""
    query = select(*_SUMMARY).where(_e.owner_id == bindparam("b_owner"))
    if by_parent:
        query = query.where(_e.parent_execution_id == bindparam("b_parent_id"))
    if triggers:
        query = query.where(_e.trigger.in_([bindparam(f"b_trigger_{i}") for i in range(triggers)]))
    if by_workflow:
        query = query.where(_e.workflow_id == bindparam("b_workflow_id"))
    if created_after:
        query = query.where(_e.created_at >= bindparam("b_created_after"))
    if created_before:
        query = query.where(_e.created_at < bindparam("b_created_before"))
    if statuses > 1:
        return _merged_by_status(query, statuses, after=after)
    if statuses:
        query = query.where(_e.status == bindparam("b_status_0"))
    return newest_first(query, _e.created_at, _e.id, after=after)


def _merged_by_status(query: Select[Any], statuses: int, *, after: bool) -> Select[Any]:
    """Several statuses: one newest-first page per status, each read in order from the
    (owner, [workflow,] status, created_at, id) index, merged and cut again. An `IN` list
    instead would walk the owner's whole history when the chosen statuses are rare."""
    branches = [
        select(
            newest_first(
                query.where(_e.status == bindparam(f"b_status_{i}")),
                _e.created_at,
                _e.id,
                after=after,
            ).subquery()
        )
        for i in range(statuses)
    ]
    merged = union_all(*branches).subquery("page")
    return select(merged).order_by(merged.c.created_at.desc(), merged.c.id.desc()).limit(LIMIT)

"""The schedule book over SQL: one row per active scheduled workflow, read by due time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.dialect import upsert
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.tables import schedules
from flowbuilder_core.nodes.schedule import Schedule
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import WorkflowId
from flowbuilder_core.workflows.schedules import ScheduledWorkflow, ScheduleRepository

_s = schedules.c
_GET = select(schedules).where(_s.workflow_id == bindparam("b_id"))
_REMOVE = delete(schedules).where(_s.workflow_id == bindparam("b_id"))
_DUE = (
    select(schedules)
    .where(_s.next_due_at <= bindparam("b_now"))
    .order_by(_s.next_due_at)
    .limit(bindparam("b_limit"))
)


def _from_row(row: Row[Any]) -> ScheduledWorkflow:
    return ScheduledWorkflow(
        workflow_id=WorkflowId(row.workflow_id),
        owner_id=UserId(row.owner_id),
        schedule=Schedule(cron=row.cron, every_s=row.every_s, timezone=row.timezone),
        next_due_at=row.next_due_at,
    )


class SqlScheduleRepository(ScheduleRepository):
    """Postgres claims due rows with `FOR UPDATE SKIP LOCKED`: schedulers in several processes
    share the due rows instead of queueing on them. SQLite (embedded mode, one process, one
    writer at a time) reads them plainly."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, workflow_id: WorkflowId) -> ScheduledWorkflow | None:
        async with translate_errors():
            row = (await self._connection.execute(_GET, {"b_id": workflow_id})).one_or_none()
        return None if row is None else _from_row(row)

    async def put(self, entry: ScheduledWorkflow) -> None:
        row = {
            "workflow_id": entry.workflow_id,
            "owner_id": entry.owner_id,
            "cron": entry.schedule.cron,
            "every_s": entry.schedule.every_s,
            "timezone": entry.schedule.timezone,
            "next_due_at": entry.next_due_at,
        }
        statement = upsert(self._connection, schedules).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=[_s.workflow_id],
            set_={name: statement.excluded[name] for name in row if name != "workflow_id"},
        )
        async with translate_errors():
            await self._connection.execute(statement)

    async def remove(self, workflow_id: WorkflowId) -> None:
        async with translate_errors():
            await self._connection.execute(_REMOVE, {"b_id": workflow_id})

    async def claim_due(self, now: datetime, limit: int) -> Sequence[ScheduledWorkflow]:
        query = _DUE
        if self._connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        async with translate_errors():
            rows = (await self._connection.execute(query, {"b_now": now, "b_limit": limit})).all()
        return [_from_row(row) for row in rows]

"""Claiming an execution for a run: the statements, built once, and the claim with the
workflow version it runs in one statement (Postgres)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.execution_rows import execution_from_row
from flowbuilder_adapters.sql.tables import executions, workflow_versions
from flowbuilder_adapters.sql.workflow_rows import definition_from_json
from flowbuilder_core.executions.model import Execution, ExecutionId, ExecutionStatus
from flowbuilder_core.executions.ports import ClaimedRun
from flowbuilder_core.workflows.model import WorkflowVersion

_e = executions.c

QUEUED_ID = (_e.id == bindparam("b_id"), _e.status == ExecutionStatus.QUEUED.value)
AT = bindparam("b_at", type_=executions.c.started_at.type)
CLAIM = (
    update(executions)
    .where(*QUEUED_ID)
    .values(
        status=ExecutionStatus.RUNNING.value,
        started_at=AT,
        heartbeat_at=AT,
        lease=bindparam("b_lease", type_=executions.c.lease.type),
        parked_at=None,
    )
    .returning(*executions.c)
)
PARK = update(executions).where(*QUEUED_ID, _e.parked_at.is_(None)).values(parked_at=AT)


def running_of(owner: Any) -> Any:
    """How many executions `owner` (a value or a column) has running."""
    running = executions.alias("running")
    return (
        select(func.count())
        .select_from(running)
        .where(
            running.c.owner_id == owner,
            running.c.status == ExecutionStatus.RUNNING.value,
        )
        .scalar_subquery()
    )


CLAIM_WITHIN_LIMIT = CLAIM.where(running_of(_e.owner_id).correlate(executions) < bindparam("b_max"))


def turn_of(owner: Any) -> Any:
    """Postgres: the statement that makes claims and unparks of `owner`'s executions take
    turns (a transaction lock on the owner)."""
    return select(func.pg_advisory_xact_lock(func.hashtextextended(owner, 0)))


TAKE_TURN_OF_EXECUTION = turn_of(
    select(_e.owner_id).where(_e.id == bindparam("b_id")).scalar_subquery()
)


def claiming(statement: Any) -> Any:
    """`statement` (a claim, returning the claimed row) with the workflow version the claimed
    execution runs joined to it (null columns when the version is gone)."""
    claimed = statement.cte("claimed")
    version = workflow_versions.c
    return select(
        claimed,
        version.name.label("v_name"),
        version.definition.label("v_definition"),
        version.created_at.label("v_created_at"),
        version.version.label("v_version"),
    ).outerjoin(
        workflow_versions,
        and_(
            version.workflow_id == claimed.c.workflow_id,
            version.version == claimed.c.workflow_version,
        ),
    )


_CLAIM_RUN = claiming(CLAIM)
_CLAIM_RUN_WITHIN_LIMIT = claiming(CLAIM_WITHIN_LIMIT)


async def claimed_row(
    connection: AsyncConnection,
    execution_id: ExecutionId,
    at: datetime,
    lease: uuid.UUID,
    max_running: int | None,
    *,
    with_version: bool = False,
) -> Row[Any] | None:
    """The claim of `ExecutionRepository.claim`, in the caller's transaction (which commits
    the owner's turn and a parking with it): the claimed row, or None, the execution then
    still queued (and parked, when the owner had no free slot). `with_version` joins the
    workflow version it runs (`claiming`). A claimed execution has no steps to read: a claim
    follows its creation or a release."""
    parameters = {"b_id": execution_id, "b_at": at, "b_lease": lease, "b_max": max_running}
    async with translate_errors():
        if max_running is None:
            plain = _CLAIM_RUN if with_version else CLAIM
            return (await connection.execute(plain, parameters)).first()
        if connection.dialect.name == "postgresql":
            await connection.execute(TAKE_TURN_OF_EXECUTION, parameters)
        limited = _CLAIM_RUN_WITHIN_LIMIT if with_version else CLAIM_WITHIN_LIMIT
        row = (await connection.execute(limited, parameters)).first()
        if row is None:  # still queued: the owner has no free slot
            await connection.execute(PARK, parameters)
    return row


async def claim_run(
    connection: AsyncConnection,
    execution_id: ExecutionId,
    at: datetime,
    lease: uuid.UUID,
    max_running: int | None,
) -> ClaimedRun | None:
    """Postgres: `ExecutionRepository.claim` and the version read in one statement after the
    owner's turn (a transaction the caller commits)."""
    row = await claimed_row(connection, execution_id, at, lease, max_running, with_version=True)
    if row is None:
        return None
    execution: Execution = execution_from_row(row)
    version = None
    if row.v_version is not None:
        version = WorkflowVersion(
            workflow_id=execution.workflow_id,
            version=row.v_version,
            name=row.v_name,
            definition=definition_from_json(row.v_definition),
            created_at=row.v_created_at,
        )
    return ClaimedRun(execution, version)

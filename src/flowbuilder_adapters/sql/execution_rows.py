"""Executions and their steps as rows, and back (the repository is in executions.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

from flowbuilder_core.executions.model import (
    Execution,
    ExecutionError,
    ExecutionId,
    ExecutionStatus,
    StepResult,
    StepStatus,
)
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import WorkflowId


def error_to_json(error: ExecutionError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"code": error.code, "message": error.message, "node_id": error.node_id}


def error_from_json(raw: Any) -> ExecutionError | None:
    if raw is None:
        return None
    return ExecutionError(raw["code"], raw["message"], raw.get("node_id"))


def execution_from_row(row: Row[Any], steps: Sequence[Row[Any]] = ()) -> Execution:
    mapping = row._mapping
    return Execution(
        id=ExecutionId(row.id),
        owner_id=UserId(row.owner_id),
        workflow_id=WorkflowId(row.workflow_id),
        workflow_version=row.workflow_version,
        status=ExecutionStatus(row.status),
        trigger=row.trigger,
        input=mapping.get("input", {}),
        steps=[step_from_row(step) for step in steps],
        error=error_from_json(row.error),
        attempt=row.attempt,
        retry_of=None if row.retry_of is None else ExecutionId(row.retry_of),
        parent_execution_id=(
            None if row.parent_execution_id is None else ExecutionId(row.parent_execution_id)
        ),
        retried_trigger=row.retried_trigger,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        scheduled_for=mapping.get("scheduled_for"),
    )


def step_from_row(row: Row[Any]) -> StepResult:
    return StepResult(
        node_id=row.node_id,
        status=StepStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        output=row.output,
        error=error_from_json(row.error),
        truncated=row.truncated,
        attempts=row.attempts,
    )

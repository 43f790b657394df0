"""The statements that record the steps of a run, under the run's lease (fencing)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    Text,
    bindparam,
    case,
    column,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import CTE, ColumnClause

from flowbuilder_adapters.sql.dialect import dialect_insert
from flowbuilder_adapters.sql.driver import DriverStatement
from flowbuilder_adapters.sql.execution_rows import error_to_json
from flowbuilder_adapters.sql.tables import UtcDateTime, execution_steps, executions
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    ExecutionStatus,
    StepResult,
)

_e = executions.c


@functools.cache
def record_step_statement(dialect: str) -> Any:
    """One statement: the step is written only while the execution holds the run's lease and
    is running or cancelled; a new step goes last, a node's second record replaces its first.
    On Postgres the EXISTS reads the execution's row as the heartbeat before it (in the same
    transaction) locked it, so a sweep cannot slip in between."""
    steps = execution_steps.c
    held = (
        select(_e.id)
        .where(
            _e.id == bindparam("b_execution_id"),
            _e.lease == bindparam("b_lease"),
            _e.status.in_([ExecutionStatus.RUNNING.value, ExecutionStatus.CANCELLED.value]),
        )
        .exists()
    )
    position = (
        select(func.count())
        .where(steps.execution_id == bindparam("b_execution_id"))
        .scalar_subquery()
    )
    columns = ["status", "started_at", "finished_at", "output", "error", "truncated", "attempts"]
    row = select(
        bindparam("b_execution_id", type_=steps.execution_id.type),
        bindparam("b_node_id", type_=steps.node_id.type),
        position,
        *(bindparam(f"b_{name}", type_=steps[name].type) for name in columns),
    ).where(held)
    names = ["execution_id", "node_id", "position", *columns]
    statement = dialect_insert(dialect, execution_steps).from_select(names, row)
    return statement.on_conflict_do_update(
        index_elements=[steps.execution_id, steps.node_id],
        set_={name: statement.excluded[name] for name in columns},
    )


_HELD = (ExecutionStatus.RUNNING.value, ExecutionStatus.CANCELLED.value)
_RUNNING = _e.status == ExecutionStatus.RUNNING.value
_HELD_BY_LEASE = (
    _e.id == bindparam("b_execution_id"),
    _e.lease == bindparam("b_lease"),
    # Two equalities, not IN: an IN list is expanded again at every execution.
    or_(*(_e.status == status for status in _HELD)),
)
"""The execution is `b_execution_id`, `b_lease` holds it, and it is running or cancelled."""
_STEP_COLUMNS: list[ColumnClause[Any]] = [
    column("node_id", Text()),
    column("status", Text()),
    column("started_at", DateTime(timezone=True)),
    column("finished_at", DateTime(timezone=True)),
    column("output", JSONB()),
    column("error", JSONB()),
    column("truncated", Boolean()),
    column("attempts", Integer()),
    column("ordinal", Integer()),  # 1, 2, ... in the order given
]


@functools.cache
def beat_and_record_statement() -> Any:
    """Postgres: a run's heartbeat and its new steps in one statement, atomic on its own, so
    it needs no transaction around it (one round trip instead of BEGIN, two statements and
    COMMIT). It answers the execution's status while `b_lease` holds it (running or
    cancelled), no row otherwise.

    The heartbeat's UPDATE locks the execution's row and re-reads it if a sweep or a cancel
    committed meanwhile; the steps are inserted from what that UPDATE returned, so they are
    written only while the lease holds, as `record_step_statement` writes one. The steps come
    as one JSON array (`b_steps`), read in order; a new step goes after the stored ones, a
    node's second record replaces its first."""
    beat = (
        update(executions)
        .where(*_HELD_BY_LEASE)
        .values(
            heartbeat_at=case(
                (_RUNNING, bindparam("b_at", type_=UtcDateTime())), else_=_e.heartbeat_at
            )
        )
        .returning(_e.status)
        .cte("beat")
    )
    written = _steps_written(beat)
    return select(beat.c.status).add_cte(written)


def _steps_written(holder: CTE) -> CTE:
    """The data-modifying CTE that writes the steps of `b_steps` (a JSON array, in order) for
    `b_execution_id`, only if `holder` (the UPDATE that proved the lease) returned a row; a
    new step goes after the stored ones, a node's second record replaces its first."""
    given = (
        func.jsonb_to_recordset(bindparam("b_steps", type_=JSONB()))
        .table_valued(*_STEP_COLUMNS)
        .render_derived(name="given", with_types=True)
    )
    steps = execution_steps.c
    stored = (
        select(func.count())
        .where(steps.execution_id == bindparam("b_execution_id"))
        .scalar_subquery()
    )
    names = [c.name for c in _STEP_COLUMNS if c.name != "ordinal"]
    rows = select(
        bindparam("b_execution_id", type_=steps.execution_id.type),
        stored + given.c.ordinal,
        *(given.c[name] for name in names),
    ).where(select(holder).exists())
    insert = postgresql.insert(execution_steps).from_select(
        ["execution_id", "position", *names], rows
    )
    return insert.on_conflict_do_update(
        index_elements=[steps.execution_id, steps.node_id],
        set_={name: insert.excluded[name] for name in names if name != "node_id"},
    ).cte("written")


@functools.cache
def finish_statement() -> Any:
    """Postgres: a run's last steps and its end in one statement, atomic on its own: the
    steps are written while `b_lease` holds the execution (running or cancelled), the end
    (`b_status`, `b_error`, `b_finished_at`) only while it is running, since a cancel wins.
    It answers whether the owner has executions parked, waiting for a slot, or no row when
    the lease no longer held."""

    def if_running(value: Any, column: Any) -> Any:
        return case((_RUNNING, value), else_=column)

    ended = (
        update(executions)
        .where(*_HELD_BY_LEASE)
        .values(
            status=if_running(bindparam("b_status"), _e.status),
            error=if_running(bindparam("b_error", type_=executions.c.error.type), _e.error),
            finished_at=if_running(bindparam("b_finished_at", type_=UtcDateTime()), _e.finished_at),
        )
        .returning(_e.owner_id)
        .cte("ended")
    )
    written = _steps_written(ended)
    parked = executions.alias("parked")
    waiting = (
        select(parked.c.id)
        .where(parked.c.owner_id == ended.c.owner_id, parked.c.parked_at.is_not(None))
        .exists()
    )
    return select(waiting.label("waiting")).select_from(ended).add_cte(written)


def steps_document(steps: Sequence[StepResult]) -> list[dict[str, Any]]:
    """The steps as `beat_and_record_statement` reads them (one record per node: a node
    given twice keeps its last)."""
    last = {step.node_id: step for step in steps}
    return [
        {
            "node_id": step.node_id,
            "status": step.status.value,
            "started_at": None if step.started_at is None else step.started_at.isoformat(),
            "finished_at": None if step.finished_at is None else step.finished_at.isoformat(),
            "output": step.output,
            "error": error_to_json(step.error),
            "truncated": step.truncated,
            "attempts": step.attempts,
            "ordinal": ordinal,
        }
        for ordinal, step in enumerate(last.values(), start=1)
    ]


async def beat_and_record(
    connection: AsyncConnection,
    execution_id: ExecutionId,
    lease: uuid.UUID,
    at: datetime,
    steps: Sequence[StepResult],
) -> ExecutionStatus | None:
    """Run `beat_and_record_statement` (Postgres): the status while `lease` holds, or None."""
    parameters = {
        "b_execution_id": execution_id,
        "b_lease": lease,
        "b_at": at,
        "b_steps": steps_document(steps),
    }
    row = await _on_driver(beat_and_record_statement, connection.dialect).fetchrow(
        connection, parameters
    )
    return None if row is None else ExecutionStatus(row["status"])


async def finish_run(
    connection: AsyncConnection, ended: Execution, lease: uuid.UUID, steps: Sequence[StepResult]
) -> bool:
    """Run `finish_statement` (Postgres) for `ended`, an execution moved to how its run ended:
    whether its owner has executions parked (False when the lease no longer held)."""
    parameters = {
        "b_execution_id": ended.id,
        "b_lease": lease,
        "b_status": ended.status.value,
        "b_error": error_to_json(ended.error),
        "b_finished_at": ended.finished_at,
        "b_steps": steps_document(steps),
    }
    row = await _on_driver(finish_statement, connection.dialect).fetchrow(connection, parameters)
    return row is not None and bool(row["waiting"])


@functools.cache
def _on_driver(statement: Callable[[], Any], dialect: Dialect) -> DriverStatement:
    """`statement()` compiled once for `dialect`, to run on the driver: a run's records are
    the worker's most frequent statements."""
    return DriverStatement(statement(), dialect)

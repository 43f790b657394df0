"""The statement that records a step of a run, under the run's lease (fencing)."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, func, select

from flowbuilder_adapters.sql.dialect import dialect_insert
from flowbuilder_adapters.sql.tables import execution_steps, executions
from flowbuilder_core.executions.model import ExecutionStatus

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

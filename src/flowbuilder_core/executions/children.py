"""Sub-workflows run inline: a `flow.subworkflow` or `flow.for_each` node's child executions
run in the task of their parent's run, on the same worker, and the node waits for them.

Why inline rather than through the queue: a parent waiting on a child that waits for a worker
slot (or for one of its owner's MAX_RUNNING_PER_USER slots, which its parent holds) would
deadlock as soon as every slot held a waiting parent. Inline, a child needs no slot: it is a
real execution (its own row, `parent_execution_id`, steps, events, heartbeat, lease), but it
is created already running, never queued nor parked, and runs under its parent's deadline.
While it runs it counts among its owner's running executions, so the owner's other queued
executions wait for it as they would for any run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    ExecutionStatus,
    Json,
    RunOutcome,
)
from flowbuilder_core.executions.ports import ChildRuns, RunTransactions
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.ids import new_uuid
from flowbuilder_core.workflows.model import Definition, WorkflowId
from flowbuilder_core.workflows.subworkflows import MAX_SUBWORKFLOW_DEPTH

SUBWORKFLOW_TRIGGER = "subworkflow"
"""The `trigger` of a child execution."""

Stop = Callable[[], Awaitable[bool]]
Drive = Callable[[Execution, Definition, int, Stop], Awaitable[RunOutcome]]
"""Runs a child execution already started, at a depth, stopping when told; its outcome."""


class InlineChildRuns(ChildRuns):
    """The children of one run at `depth` (0 for a run from the queue). Each child starts in
    a unit of work of its own (created running, under a new lease; the workflow version a call
    names is read once per run, so every item of a for-each runs the same one), is run by `drive` at
    `depth` + 1, and stops when its parent would (`parent_stopped`): so cancelling the parent
    cancels its children before their next node."""

    def __init__(
        self,
        *,
        transactions: RunTransactions,
        clock: Clock,
        parent: Execution,
        depth: int,
        parent_stopped: Stop,
        drive: Drive,
    ) -> None:
        self._transactions, self._clock = transactions, clock
        self._parent, self._depth = parent, depth
        self._parent_stopped, self._drive = parent_stopped, drive
        self._called: dict[tuple[WorkflowId, int | None], tuple[int, Definition]] = {}
        """What each call resolved to, so that a for-each reads its workflow once."""

    async def run(
        self, workflow_id: WorkflowId, version: int | None, input: Mapping[str, Json]
    ) -> Json:
        if self._depth >= MAX_SUBWORKFLOW_DEPTH:
            message = f"Sub-workflows nest at most {MAX_SUBWORKFLOW_DEPTH} levels deep."
            raise NodeFailedError("subworkflow_depth", message)
        if await self._parent_stopped():
            raise NodeFailedError("subworkflow_failed", "The run stopped before the sub-workflow.")
        child, definition = await self._start(workflow_id, version, input)
        outcome = await self._drive(child, definition, self._depth + 1, self._parent_stopped)
        if outcome.status is ExecutionStatus.SUCCEEDED:
            return outcome.result
        error = outcome.error
        if error is not None and error.code == "subworkflow_depth":
            raise NodeFailedError("subworkflow_depth", error.message)
        what = "was cancelled" if error is None else f"failed ({error.code}): {error.message}"
        left = {
            "execution_id": str(child.id),
            "error": None if error is None else {"code": error.code, "message": error.message},
        }
        raise NodeFailedError("subworkflow_failed", f"The sub-workflow {what}", left)

    async def _start(
        self, workflow_id: WorkflowId, version: int | None, input: Mapping[str, Json]
    ) -> tuple[Execution, Definition]:
        owner = self._parent.owner_id
        async with self._transactions() as tx:
            called = self._called.get((workflow_id, version))
            if called is None:
                workflow = await tx.workflows.get(workflow_id)
                if workflow is None or workflow.owner_id != owner:
                    raise NodeFailedError(
                        "subworkflow_not_found", "The sub-workflow is not a workflow of this owner."
                    )
                chosen = workflow.version if version is None else version
                found = await tx.workflows.version(workflow_id, chosen)
                if found is None:
                    message = f"The sub-workflow has no version {chosen}."
                    raise NodeFailedError("subworkflow_not_found", message)
                called = self._called[(workflow_id, version)] = (chosen, found.definition)
            chosen, definition = called
            now = self._clock.now()
            child = Execution(
                id=ExecutionId(new_uuid()),
                owner_id=owner,
                workflow_id=workflow_id,
                workflow_version=chosen,
                trigger=SUBWORKFLOW_TRIGGER,
                input=dict(input),
                parent_execution_id=self._parent.id,
                created_at=now,
            )
            child.start(at=now, lease=new_uuid())
            await tx.executions.add(child)
            await tx.uow.commit()
        return child, definition

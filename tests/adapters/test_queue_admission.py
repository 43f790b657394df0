"""Embedded mode's in-process queue admits executions up to its bound, counting those a worker
holds, and again as soon as one is acknowledged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from flowbuilder_adapters.queues.memory import BoundedQueueAdmission, InMemoryExecutionQueue
from flowbuilder_core.executions.model import ExecutionId, ExecutionRequested
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import WorkflowId


def requested() -> ExecutionRequested:
    return ExecutionRequested(
        ExecutionId(uuid.uuid4()), WorkflowId(uuid.uuid4()), 1, UserId("alice"), datetime.now(UTC)
    )


async def test_the_queue_admits_up_to_its_bound_and_again_once_a_run_is_acknowledged() -> None:
    queue = InMemoryExecutionQueue()
    admission = BoundedQueueAdmission(queue, 2)
    await queue.send(requested())
    open_before_the_bound = admission.retry_after()
    await queue.send(requested())

    full = admission.retry_after()
    delivery = (await queue.receive(1, 0))[0]
    still_full_while_running = admission.retry_after()
    await queue.ack(delivery)

    assert open_before_the_bound is None
    assert (full, still_full_while_running) == (1, 1)
    assert admission.retry_after() is None


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        BoundedQueueAdmission(InMemoryExecutionQueue(), 0)

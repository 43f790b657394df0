"""Following an execution's progress: events derived from its state, polled as it runs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from flowbuilder_adapters.memory import MemoryRunTransactions, MemoryStore
from flowbuilder_core.executions.errors import ExecutionNotFoundError
from flowbuilder_core.executions.events import ExecutionEvent, FollowExecution
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    RunLimits,
    StepResult,
    StepStatus,
)
from flowbuilder_core.shared.errors import RateLimitedError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import WorkflowId

ALICE, BOB = Principal(UserId("user_alice")), Principal(UserId("user_bob"))
NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def queued(store: MemoryStore) -> Execution:
    execution = Execution(
        id=ExecutionId(uuid.uuid4()),
        owner_id=ALICE.user_id,
        workflow_id=WorkflowId(uuid.uuid4()),
        workflow_version=1,
        created_at=NOW,
    )
    store.executions[execution.id] = execution
    return execution


def described(events: list[ExecutionEvent]) -> list[tuple[int, str, str]]:
    return [
        (e.id, e.kind, (e.step.node_id + ":" + e.step.status) if e.step else str(e.status))
        for e in events
    ]


async def test_a_follower_sees_every_step_start_and_end_once_as_the_run_goes_on() -> None:
    store = MemoryStore()
    execution = queued(store)
    follow = FollowExecution(MemoryRunTransactions(store), RunLimits(), poll_s=0.01)
    seen: list[ExecutionEvent] = []

    async def watch() -> None:
        async for event in await follow(ALICE, execution.id):
            seen.append(event)

    watcher = asyncio.create_task(watch())
    for change in (
        lambda: execution.start(at=NOW),
        lambda: execution.record(StepResult("a", StepStatus.RUNNING, NOW)),
        lambda: execution.record(StepResult("a", StepStatus.SUCCEEDED, NOW, NOW, 1)),
        lambda: execution.record(StepResult("b", StepStatus.SKIPPED)),
        lambda: execution.succeed(at=NOW),
    ):
        await asyncio.sleep(0.03)
        change()
    await asyncio.wait_for(watcher, 5)

    assert described(seen) == [
        (0, "status", "running"),
        (1, "step", "a:running"),
        (2, "step", "a:succeeded"),
        (3, "step", "b:skipped"),
        (4, "status", "succeeded"),
        (5, "end", "None"),
    ]


async def test_another_users_execution_is_not_found_and_streams_are_bounded_per_user() -> None:
    store = MemoryStore()
    execution = queued(store)
    execution.start(at=NOW)  # so that the stream has an event to give at once
    follow = FollowExecution(MemoryRunTransactions(store), RunLimits(max_event_streams=1))

    with pytest.raises(ExecutionNotFoundError):
        await follow(BOB, execution.id)
    first = await follow(ALICE, execution.id)
    await anext(first)  # the stream runs: it counts
    with pytest.raises(RateLimitedError):
        await follow(ALICE, execution.id)
    await first.aclose()
    assert await follow(ALICE, execution.id) is not None, "a closed stream frees its place"

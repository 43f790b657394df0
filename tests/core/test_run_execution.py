"""`RunExecution` over the in-memory adapters, a fake clock and node runners of the test's own:
how a claimed run goes, node by node, and when it must stop writing."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from dishka import AsyncContainer, make_async_container

from flowbuilder_adapters.memory import MemoryRunTransactions, MemoryStore, MemoryUnitOfWork
from flowbuilder_adapters.memory.executions import MemoryExecutionRepository
from flowbuilder_adapters.nodes import JmesPathEvaluator
from flowbuilder_adapters.queues.memory import InMemoryDeadLetters, InMemoryExecutionQueue
from flowbuilder_adapters.wiring import CoreProvider, MemoryProvider
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionError,
    ExecutionId,
    ExecutionStatus,
    Json,
    RunLimits,
    RunOutcome,
    StepStatus,
)
from flowbuilder_core.executions.ports import NodeCall, ResolvedSecret
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.executions.use_cases import (
    UNDELIVERED,
    ExecuteCommand,
    ExecuteWorkflow,
    FailUndeliveredExecutions,
)
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.use_cases import CreateWorkflow, WorkflowInput

from support.contract import SteppingClock

ALICE = Principal(UserId("user_alice"))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class NoCredentials:
    async def resolve(self, owner: UserId, credential_id: uuid.UUID) -> ResolvedSecret:
        raise AssertionError("no node of these tests uses a credential")


@dataclass
class Probe:
    """A node runner (serving `data.set`) that calls the test's `during` and outputs its
    parameter `value`."""

    during: Callable[[], Awaitable[None]] | None = None
    fail_with: str | None = None

    async def run(self, call: NodeCall) -> Json:
        if self.during is not None:
            await self.during()
        if self.fail_with is not None:
            raise NodeFailedError(self.fail_with, "The probe failed as told.")
        return call.parameters.get("value")


@dataclass
class World:
    container: AsyncContainer
    store: MemoryStore
    clock: SteppingClock
    probe: Probe

    def run_execution(self, **options: Any) -> RunExecution:
        engine = Engine({"data.set": self.probe}, JmesPathEvaluator(), self.clock)
        transactions = MemoryRunTransactions(self.store)
        return RunExecution(transactions, engine, NoCredentials(), self.clock, **options)

    async def request(self, *node_ids: str) -> ExecutionId:
        """A queued execution of a chain: a manual trigger, then one probe per id."""
        nodes: list[dict[str, Any]] = [{"id": "start", "type": "trigger.manual"}]
        nodes += [{"id": i, "type": "data.set", "parameters": {"value": i}} for i in node_ids]
        edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]
        return await self.request_definition(nodes, edges)

    async def request_definition(
        self, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]
    ) -> ExecutionId:
        """A queued execution of a workflow of these nodes and edges."""
        async with self.container() as scope:
            workflow = await (await scope.get(CreateWorkflow))(
                ALICE, WorkflowInput("w", definition={"nodes": nodes, "edges": edges})
            )
        async with self.container() as scope:
            execution = await (await scope.get(ExecuteWorkflow))(
                ALICE, ExecuteCommand(workflow.id, {})
            )
        return ExecutionId(execution.id)

    def execution(self, execution_id: ExecutionId) -> Execution:
        return self.store.executions[execution_id]

    def steps(self, execution_id: ExecutionId) -> dict[str, StepStatus]:
        return {step.node_id: step.status for step in self.execution(execution_id).steps}

    async def move(self, execution_id: ExecutionId, change: Callable[[Execution], None]) -> None:
        """Another party's write to the execution (its owner, the lost-run sweep)."""
        async with MemoryRunTransactions(self.store)() as tx:
            execution = await tx.executions.get(execution_id)
            assert execution is not None
            seen = execution.status
            change(execution)
            assert await tx.executions.save(execution, expected=seen)
            await tx.uow.commit()


@pytest.fixture(name="world")
async def world_fixture() -> AsyncIterator[World]:
    store, clock = MemoryStore(), SteppingClock(T0)
    container = make_async_container(CoreProvider(clock=clock), MemoryProvider(store))
    yield World(container, store, clock, Probe())
    await container.close()


async def test_a_claimed_run_records_every_step_and_succeeds(world: World) -> None:
    execution_id = await world.request("a", "b")

    outcome = await world.run_execution()(execution_id)

    assert outcome == RunOutcome(ExecutionStatus.SUCCEEDED)
    execution = world.execution(execution_id)
    assert execution.status is ExecutionStatus.SUCCEEDED
    assert [(s.node_id, s.status, s.output) for s in execution.steps] == [
        ("start", StepStatus.SUCCEEDED, {}),
        ("a", StepStatus.SUCCEEDED, "a"),
        ("b", StepStatus.SUCCEEDED, "b"),
    ]


async def test_a_run_is_claimed_once_however_often_it_is_delivered(world: World) -> None:
    execution_id = await world.request("a")
    run = world.run_execution()
    await run(execution_id)

    assert await run(execution_id) is None
    assert len(world.execution(execution_id).steps) == 2


async def test_a_failing_node_fails_the_run_and_skips_the_nodes_after_it(world: World) -> None:
    world.probe.fail_with = "boom"
    execution_id = await world.request("a", "b")

    outcome = await world.run_execution()(execution_id)

    failure = ExecutionError("boom", "The probe failed as told.", "a")
    assert outcome == RunOutcome(ExecutionStatus.FAILED, failure)
    execution = world.execution(execution_id)
    assert (execution.status, execution.error) == (ExecutionStatus.FAILED, failure)
    assert world.steps(execution_id) == {
        "start": StepStatus.SUCCEEDED,
        "a": StepStatus.FAILED,
        "b": StepStatus.SKIPPED,
    }


async def test_a_run_cancelled_during_a_node_stops_before_the_next_one(world: World) -> None:
    execution_id = await world.request("a", "b")
    cancelled = False

    async def cancel_once() -> None:
        nonlocal cancelled
        if not cancelled:
            cancelled = True
            await world.move(execution_id, lambda e: e.cancel(at=world.clock.now()))

    world.probe.during = cancel_once

    outcome = await world.run_execution()(execution_id)

    assert outcome == RunOutcome(ExecutionStatus.CANCELLED)
    assert world.execution(execution_id).status is ExecutionStatus.CANCELLED
    assert world.steps(execution_id) == {
        "start": StepStatus.SUCCEEDED,
        "a": StepStatus.SUCCEEDED,
        "b": StepStatus.SKIPPED,
    }


async def test_a_run_that_is_no_longer_ours_writes_nothing_more(world: World) -> None:
    execution_id = await world.request("a", "b")
    lost = ExecutionError("worker_lost", "The worker running this execution stopped.")
    calls = 0

    async def swept_meanwhile() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await world.move(execution_id, lambda e: e.fail(lost, at=world.clock.now()))

    world.probe.during = swept_meanwhile

    outcome = await world.run_execution()(execution_id)

    assert outcome is None
    assert calls == 1, "node b must not run once the run is no longer ours"
    execution = world.execution(execution_id)
    assert (execution.status, execution.error) == (ExecutionStatus.FAILED, lost)
    # Node a was running when the run stopped being ours: its end, and b, are not recorded.
    assert world.steps(execution_id) == {"start": StepStatus.SUCCEEDED, "a": StepStatus.RUNNING}


async def run_until_cancelled_in_node(world: World, execution_id: ExecutionId) -> None:
    """Run `execution_id` and cancel the run's task while its first probe node works, as a
    stopping worker does past its grace period."""
    in_node = asyncio.Event()

    async def hang() -> None:
        in_node.set()
        await asyncio.sleep(30)

    world.probe.during = hang
    task = asyncio.create_task(world.run_execution()(execution_id))
    await in_node.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_run_cancelled_by_its_stopping_worker_is_released_back_to_the_queue(
    world: World,
) -> None:
    execution_id = await world.request("a", "b")

    await run_until_cancelled_in_node(world, execution_id)

    execution = world.execution(execution_id)
    assert execution.status is ExecutionStatus.QUEUED
    assert (execution.started_at, execution.heartbeat_at, execution.lease) == (None, None, None)
    assert (execution.steps, execution.error) == ([], None)
    world.probe.during = None
    outcome = await world.run_execution()(execution_id)
    assert outcome == RunOutcome(ExecutionStatus.SUCCEEDED)
    assert world.steps(execution_id) == dict.fromkeys(("start", "a", "b"), StepStatus.SUCCEEDED)


async def test_a_run_cancelled_by_its_owner_is_not_released_by_the_stopping_worker(
    world: World,
) -> None:
    execution_id = await world.request("a")
    in_node = asyncio.Event()

    async def cancelled_then_hang() -> None:
        await world.move(execution_id, lambda e: e.cancel(at=world.clock.now()))
        in_node.set()
        await asyncio.sleep(30)

    world.probe.during = cancelled_then_hang
    task = asyncio.create_task(world.run_execution()(execution_id))
    await in_node.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert world.execution(execution_id).status is ExecutionStatus.CANCELLED


async def test_a_run_past_its_deadline_fails_with_run_timeout_at_the_node_it_was_running(
    world: World,
) -> None:
    async def hang() -> None:
        await asyncio.sleep(30)

    world.probe.during = hang
    execution_id = await world.request("slow", "after")

    outcome = await world.run_execution(limits=RunLimits(timeout_s=0.2))(execution_id)

    assert outcome is not None
    assert outcome.status is ExecutionStatus.FAILED
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.node_id) == ("run_timeout", "slow")
    execution = world.execution(execution_id)
    assert (execution.status, execution.error) == (ExecutionStatus.FAILED, outcome.error)
    assert world.steps(execution_id) == {"start": StepStatus.SUCCEEDED, "slow": StepStatus.FAILED}


async def test_waiting_to_retry_a_node_counts_against_the_run_deadline(world: World) -> None:
    world.probe.fail_with = "http_status"
    retry = {"max_attempts": 10, "backoff_s": 60, "max_backoff_s": 60}
    nodes: list[dict[str, Any]] = [
        {"id": "start", "type": "trigger.manual"},
        {"id": "flaky", "type": "data.set", "parameters": {"value": 1}, "retry": retry},
    ]
    execution_id = await world.request_definition(nodes, [{"source": "start", "target": "flaky"}])

    outcome = await world.run_execution(limits=RunLimits(timeout_s=0.2))(execution_id)

    assert outcome is not None
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.node_id) == ("run_timeout", "flaky")
    assert world.steps(execution_id) == {"start": StepStatus.SUCCEEDED, "flaky": StepStatus.FAILED}


async def test_an_owner_past_their_running_limit_waits_queued_and_runs_when_a_slot_frees(
    world: World,
) -> None:
    release = asyncio.Event()

    async def hold_first_run() -> None:
        await release.wait()

    world.probe.during = hold_first_run
    first, second = await world.request("a"), await world.request("b")
    world.store.outbox.clear()
    run = world.run_execution(limits=RunLimits(max_running=1))

    running = asyncio.create_task(run(first))
    while world.execution(first).status is not ExecutionStatus.RUNNING:  # noqa: ASYNC110
        await asyncio.sleep(0)
    refused = await run(second)
    waiting = world.execution(second).status
    sent_while_busy = list(world.store.outbox)
    release.set()
    await running
    sent = [m.execution_id for m in world.store.outbox]
    world.probe.during = None
    outcome = await run(second)

    assert (refused, waiting, sent_while_busy) == (None, ExecutionStatus.QUEUED, [])
    assert sent == [second], "the finish hands its slot to the parked execution"
    assert outcome == RunOutcome(ExecutionStatus.SUCCEEDED)


async def test_a_queued_execution_whose_message_was_dead_lettered_fails_as_undelivered(
    world: World,
) -> None:
    execution_id = await world.request("a")
    cancelled_id = await world.request("b")
    await world.move(cancelled_id, lambda e: e.cancel(at=world.clock.now()))
    queue = InMemoryExecutionQueue(visibility_timeout=0, max_receives=1)
    await queue.send_many(world.store.outbox)
    await queue.receive(10, 0)  # received once and never acknowledged
    await queue.receive(10, 0)  # past the maximum: both move to the dead letters
    dead = InMemoryDeadLetters(queue)
    sweep = FailUndeliveredExecutions(
        dead, MemoryExecutionRepository(world.store, uow := MemoryUnitOfWork()), uow, world.clock
    )

    failed = await sweep()

    execution = world.execution(execution_id)
    assert failed == 1
    assert (execution.status, execution.error) == (ExecutionStatus.FAILED, UNDELIVERED)
    assert world.execution(cancelled_id).status is ExecutionStatus.CANCELLED
    assert await dead.receive(10) == [], "accounted-for dead letters are deleted"

"""The worker over the in-memory adapters and queue, wired as a process wires it: each message
run once, acknowledged after its run, and a stopping worker releasing what it interrupted."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dishka import AsyncContainer, make_async_container

from flowbuilder_adapters.memory import MemoryRunTransactions, MemoryStore
from flowbuilder_adapters.metrics import REGISTRY, observe_slots
from flowbuilder_adapters.queues.memory import InMemoryExecutionQueue
from flowbuilder_adapters.wiring import CoreProvider, MemoryProvider, RunsProvider, ScopesProvider
from flowbuilder_adapters.worker import Worker
from flowbuilder_core.executions.model import (
    ExecutionId,
    ExecutionRequested,
    ExecutionStatus,
    StepStatus,
)
from flowbuilder_core.executions.ports import Delivery
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.executions.use_cases import (
    CancelExecution,
    ExecuteCommand,
    ExecuteWorkflow,
    FinishLostExecutions,
)
from flowbuilder_core.shared.clock import SystemClock
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.use_cases import CreateWorkflow, WorkflowInput

ALICE = Principal(UserId("user_alice"))


def chain(*nodes: dict[str, Any]) -> dict[str, Any]:
    all_nodes = [{"id": "start", "type": "trigger.manual"}, *nodes]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(all_nodes)]
    return {"nodes": all_nodes, "edges": edges}


@dataclass
class Harness:
    container: AsyncContainer
    store: MemoryStore
    queue: InMemoryExecutionQueue

    async def use(self, kind: type[Any]) -> Any:
        async with self.container() as scope:
            return await scope.get(kind)

    async def request(self, definition: dict[str, Any], execution_input: Any = None) -> uuid.UUID:
        async with self.container() as scope:
            workflow = await (await scope.get(CreateWorkflow))(
                ALICE, WorkflowInput("w", definition=definition)
            )
        async with self.container() as scope:
            execution = await (await scope.get(ExecuteWorkflow))(
                ALICE, ExecuteCommand(workflow.id, execution_input)
            )
        for message in self.store.outbox:
            await self.queue.send(message)
        self.store.outbox.clear()
        return execution.id

    def status(self, execution_id: uuid.UUID) -> ExecutionStatus:
        return next(e for i, e in self.store.executions.items() if i == execution_id).status


@pytest.fixture(name="h")
async def harness() -> AsyncIterator[Harness]:
    store = MemoryStore()
    container = make_async_container(
        CoreProvider(),
        MemoryProvider(store),
        RunsProvider(allow_private_network=False),
        ScopesProvider(),
    )
    yield Harness(container, store, InMemoryExecutionQueue(visibility_timeout=5))
    await container.close()


async def eventually(condition: Any, seconds: float = 10) -> None:
    """Poll a condition another task makes true (no event exists to wait on)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the state lives in another task's store
            await asyncio.sleep(0.01)


async def run_worker(h: Harness, until: Any, **options: Any) -> None:
    stop = asyncio.Event()
    worker = Worker(h.queue, await h.container.get(RunExecution), on_slots=observe_slots, **options)
    task = asyncio.create_task(worker.run(stop))
    try:
        await eventually(until)
    finally:
        stop.set()
        await task


async def test_a_queued_execution_runs_to_success_with_every_step_recorded(h: Harness) -> None:
    execution_id = await h.request(
        chain({"id": "set", "type": "data.set", "parameters": {"value": "{{ input.n }}"}}),
        {"n": 7},
    )

    await run_worker(h, lambda: h.status(execution_id).finished, poll_seconds=0.05)

    execution = h.store.executions[execution_id]  # type: ignore[index]
    assert execution.status is ExecutionStatus.SUCCEEDED
    assert [(s.node_id, s.status, s.output) for s in execution.steps] == [
        ("start", StepStatus.SUCCEEDED, {"n": 7}),
        ("set", StepStatus.SUCCEEDED, 7),
    ]
    assert len(h.queue) == 0


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_runs_and_their_steps_are_counted_and_timed_by_type_and_status(h: Harness) -> None:
    execution_id = await h.request(
        chain(
            {"id": "set", "type": "data.set", "parameters": {"value": 1}},
            {"id": "bad", "type": "data.transform", "parameters": {"expression": "nodes.."}},
        )
    )
    failed = {"status": "failed", "trigger": "manual"}
    transform_failed = {"node_type": "data.transform", "status": "failed"}
    before = {
        "started": sample("flowbuilder_executions_started_total", trigger="manual"),
        "failed": sample("flowbuilder_executions_finished_total", **failed),
        "steps": sample("flowbuilder_step_duration_seconds_count", **transform_failed),
        "set": sample(
            "flowbuilder_step_duration_seconds_count", node_type="data.set", status="succeeded"
        ),
    }

    await run_worker(h, lambda: h.status(execution_id).finished, poll_seconds=0.05, concurrency=3)

    assert sample("flowbuilder_executions_started_total", trigger="manual") == before["started"] + 1
    assert sample("flowbuilder_executions_finished_total", **failed) == before["failed"] + 1
    assert (
        sample("flowbuilder_step_duration_seconds_count", **transform_failed) == before["steps"] + 1
    )
    assert (
        sample("flowbuilder_step_duration_seconds_count", node_type="data.set", status="succeeded")
        == before["set"] + 1
    )
    assert sample("flowbuilder_worker_slots", state="free") == 3
    assert sample("flowbuilder_worker_slots", state="busy") == 0


async def test_a_busy_slot_is_shown_while_a_run_is_in_progress(h: Harness) -> None:
    execution_id = await h.request(
        chain({"id": "wait", "type": "util.delay", "parameters": {"seconds": 0.5}})
    )
    seen: list[float] = []

    def running_and_counted() -> bool:
        seen.append(sample("flowbuilder_worker_slots", state="busy"))
        return h.status(execution_id).finished

    await run_worker(h, running_and_counted, poll_seconds=0.05, concurrency=2)

    assert 1 in seen
    assert sample("flowbuilder_worker_slots", state="free") == 2


async def test_a_message_delivered_twice_runs_once(h: Harness) -> None:
    execution_id = await h.request(
        chain({"id": "set", "type": "data.set", "parameters": {"value": 1}})
    )
    await h.queue.send(ExecutionRequested.of(h.store.executions[execution_id]))  # type: ignore[index]

    await run_worker(h, lambda: len(h.queue) == 0, poll_seconds=0.05)

    run = await h.container.get(RunExecution)
    assert await run(ExecutionId(execution_id)) is None
    assert h.status(execution_id) is ExecutionStatus.SUCCEEDED
    assert len(h.store.executions[execution_id].steps) == 2  # type: ignore[index]


async def test_a_cancelled_run_stops_before_its_next_node(h: Harness) -> None:
    execution_id = await h.request(
        chain(
            {"id": "wait", "type": "util.delay", "parameters": {"seconds": 0.3}},
            {"id": "after", "type": "data.set", "parameters": {"value": 1}},
        )
    )

    async def cancel_when_waiting() -> None:
        await eventually(lambda: h.status(execution_id) is ExecutionStatus.RUNNING)
        await (await h.use(CancelExecution))(ALICE, execution_id)

    canceller = asyncio.create_task(cancel_when_waiting())
    await run_worker(h, lambda: len(h.queue) == 0 and canceller.done(), poll_seconds=0.05)

    execution = h.store.executions[execution_id]  # type: ignore[index]
    assert execution.status is ExecutionStatus.CANCELLED
    assert {s.node_id: s.status for s in execution.steps}["after"] is StepStatus.SKIPPED


async def test_a_stopping_worker_lets_a_run_that_ends_within_its_grace_finish(
    h: Harness,
) -> None:
    execution_id = await h.request(
        chain({"id": "wait", "type": "util.delay", "parameters": {"seconds": 0.3}})
    )

    await run_worker(
        h,
        lambda: h.status(execution_id) is ExecutionStatus.RUNNING,
        poll_seconds=0.05,
        grace_seconds=10,
    )

    assert h.status(execution_id) is ExecutionStatus.SUCCEEDED
    assert len(h.queue) == 0


async def test_a_stopping_worker_releases_a_run_past_its_grace_and_another_runs_it_once(
    h: Harness,
) -> None:
    execution_id = await h.request(
        chain({"id": "wait", "type": "util.delay", "parameters": {"seconds": 0.5}})
    )

    await run_worker(
        h,
        lambda: h.status(execution_id) is ExecutionStatus.RUNNING,
        poll_seconds=0.05,
        grace_seconds=0.05,
    )
    stored = h.store.executions[execution_id]  # type: ignore[index]
    released = (stored.status, list(stored.steps), stored.started_at)
    visible_now = await h.queue.receive(1, 0)  # its visibility timeout is 5 s: not expired
    await h.queue.extend(visible_now[0], 0)
    await run_worker(h, lambda: h.status(execution_id).finished, poll_seconds=0.05)

    assert released == (ExecutionStatus.QUEUED, [], None)
    assert [d.message.execution_id for d in visible_now if d.message] == [execution_id]
    execution = h.store.executions[execution_id]  # type: ignore[index]
    assert (execution.status, execution.attempt) == (ExecutionStatus.SUCCEEDED, 1)
    assert [(s.node_id, s.status) for s in execution.steps] == [
        ("start", StepStatus.SUCCEEDED),
        ("wait", StepStatus.SUCCEEDED),
    ]
    assert len(h.queue) == 0


async def test_a_run_whose_heartbeat_stopped_is_finished_as_worker_lost(h: Harness) -> None:
    execution_id = await h.request(chain())
    async with MemoryRunTransactions(h.store)() as claiming:
        lease = uuid.uuid4()
        assert await claiming.executions.claim(ExecutionId(execution_id), datetime.now(UTC), lease)
        await claiming.uow.commit()

    class Later(SystemClock):
        def now(self) -> datetime:
            return datetime.now(UTC) + timedelta(minutes=2)

    later = make_async_container(CoreProvider(clock=Later()), MemoryProvider(h.store))
    async with later() as scope:
        finished = await (await scope.get(FinishLostExecutions))()
    await later.close()

    execution = h.store.executions[execution_id]  # type: ignore[index]
    assert finished == 1
    assert (execution.status, execution.error and execution.error.code) == (
        ExecutionStatus.FAILED,
        "worker_lost",
    )


class CountingQueue(InMemoryExecutionQueue):
    """The in-process queue, recording its calls; the first `ack_many` waits for `release`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.received: list[int] = []
        self.acked: list[int] = []
        self.extended: list[int] = []
        self.release = asyncio.Event()

    async def receive(self, max_messages: int, wait_seconds: float) -> Sequence[Delivery]:
        deliveries = await super().receive(max_messages, wait_seconds)
        if deliveries:
            self.received.append(len(deliveries))
        return deliveries

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        self.acked.append(len(deliveries))
        if len(self.acked) == 1:
            await self.release.wait()
        await super().ack_many(deliveries)

    async def extend_many(self, deliveries: Sequence[Delivery], seconds: int) -> None:
        self.extended.append(len(deliveries))
        await super().extend_many(deliveries, seconds)


async def test_free_slots_take_prefetched_messages_and_acks_waiting_on_one_go_together(
    h: Harness,
) -> None:
    h.queue = CountingQueue(visibility_timeout=5)
    ids = [await h.request(chain()) for _ in range(4)]

    def all_finished() -> bool:
        return all(h.status(i).finished for i in ids)

    stop = asyncio.Event()
    run = await h.container.get(RunExecution)
    worker = Worker(h.queue, run, concurrency=1, prefetch=3, poll_seconds=0.05)
    task = asyncio.create_task(worker.run(stop))
    await eventually(all_finished)
    await eventually(lambda: len(h.queue.acked) == 1)
    h.queue.release.set()
    await eventually(lambda: len(h.queue) == 0)
    stop.set()
    await task

    assert h.queue.received == [4], "one receive brought the slot and its prefetch"
    assert h.queue.acked == [1, 3], "the acks that came while the first was in flight: one call"


async def test_held_messages_are_extended_together_and_a_long_run_is_not_delivered_again(
    h: Harness,
) -> None:
    h.queue = CountingQueue(visibility_timeout=0.3)
    slow = await h.request(chain({"id": "w", "type": "util.delay", "parameters": {"seconds": 1}}))
    quick = await h.request(chain({"id": "w", "type": "util.delay", "parameters": {"seconds": 1}}))
    h.queue.release.set()

    await run_worker(
        h,
        lambda: h.status(slow).finished and h.status(quick).finished and len(h.queue) == 0,
        poll_seconds=0.05,
        extend_seconds=0.1,
        visibility_seconds=1,
    )

    assert h.queue.received == [2]
    assert 2 in h.queue.extended, "both held messages in one call"
    assert all(n <= 2 for n in h.queue.extended)


async def test_a_stopping_worker_gives_its_prefetched_messages_back_at_once(h: Harness) -> None:
    h.queue = CountingQueue(visibility_timeout=30)
    h.queue.release.set()
    running = await h.request(
        chain({"id": "w", "type": "util.delay", "parameters": {"seconds": 0.3}})
    )
    waiting = [await h.request(chain()) for _ in range(2)]

    await run_worker(
        h,
        lambda: h.status(running) is ExecutionStatus.RUNNING,
        concurrency=1,
        prefetch=2,
        poll_seconds=0.05,
    )
    visible_again = await h.queue.receive(10, 0)  # their visibility timeout has 30 s to go

    assert h.status(running) is ExecutionStatus.SUCCEEDED
    assert sorted(d.message.execution_id for d in visible_again if d.message) == sorted(waiting)
    assert all(h.status(i) is ExecutionStatus.QUEUED for i in waiting)

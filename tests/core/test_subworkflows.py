"""`flow.subworkflow` run by `RunExecution` over the in-memory adapters: children are real
executions, run inline, bounded in depth, and cancelled with their parent."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dishka import AsyncContainer, make_async_container

from flowbuilder_adapters.memory import MemoryRunTransactions, MemoryStore
from flowbuilder_adapters.nodes import JmesPathEvaluator, basic_runners
from flowbuilder_adapters.wiring import CoreProvider, MemoryProvider
from flowbuilder_core.executions.bounds import EngineLimits
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    ExecutionStatus,
    Json,
    RunLimits,
    StepStatus,
)
from flowbuilder_core.executions.ports import NodeCall, ResolvedSecret
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.executions.use_cases import (
    CancelExecution,
    ExecuteCommand,
    ExecuteWorkflow,
)
from flowbuilder_core.shared.errors import InvalidInputError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.errors import NotRunnableError
from flowbuilder_core.workflows.use_cases import (
    CreateWorkflow,
    ReplaceWorkflow,
    ReplaceWorkflowCommand,
    ValidateDefinition,
    WorkflowInput,
)

from support.contract import SteppingClock

ALICE = Principal(UserId("user_alice"))
BOB = Principal(UserId("user_bob"))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
START = {"id": "start", "type": "trigger.manual"}


class NoCredentials:
    async def resolve(self, owner: UserId, credential_id: uuid.UUID) -> ResolvedSecret:
        raise AssertionError("no node of these tests uses a credential")


class Gate:
    """Serves `util.delay`: waits until opened, and says when a node first waits."""

    def __init__(self) -> None:
        self.opened, self.waiting = asyncio.Event(), asyncio.Event()

    async def run(self, call: NodeCall) -> Json:
        self.waiting.set()
        await self.opened.wait()
        return {}


def definition(*nodes: dict[str, Any]) -> dict[str, Any]:
    """A chain: the manual trigger, then `nodes` in order."""
    chain = [START, *nodes]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(chain)]
    return {"nodes": chain, "edges": edges}


def call(workflow_id: object, on_error: str | None = None, **parameters: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": "call",
        "type": "flow.subworkflow",
        "parameters": {"workflow_id": str(workflow_id), **parameters},
    }
    if on_error is not None:
        node["on_error"] = on_error
    return node


def set_node(node_id: str, value: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "data.set", "parameters": {"value": value}}


@dataclass
class World:
    container: AsyncContainer
    store: MemoryStore
    clock: SteppingClock
    gate: Gate

    def run_execution(
        self, limits: EngineLimits | None = None, run_limits: RunLimits | None = None
    ) -> RunExecution:
        runners = {**basic_runners(), "util.delay": self.gate}
        engine = Engine(runners, JmesPathEvaluator(), self.clock, limits=limits)
        transactions = MemoryRunTransactions(self.store)
        # Every question between two nodes reads the status afresh: a cancel is seen at once.
        fresh = timedelta(0)
        return RunExecution(transactions, engine, NoCredentials(), self.clock, status_fresh=fresh)

    async def workflow(self, raw: dict[str, Any], actor: Principal = ALICE) -> uuid.UUID:
        async with self.container() as scope:
            created = await (await scope.get(CreateWorkflow))(
                actor, WorkflowInput("w", definition=raw)
            )
        return created.id

    async def replace(self, workflow_id: uuid.UUID, raw: dict[str, Any]) -> None:
        async with self.container() as scope:
            command = ReplaceWorkflowCommand(workflow_id, WorkflowInput("w", definition=raw))
            await (await scope.get(ReplaceWorkflow))(ALICE, command)

    async def execute(self, workflow_id: uuid.UUID, input: dict[str, Any]) -> ExecutionId:
        async with self.container() as scope:
            execution = await (await scope.get(ExecuteWorkflow))(
                ALICE, ExecuteCommand(workflow_id, input)
            )
        return ExecutionId(execution.id)

    def execution(self, execution_id: ExecutionId) -> Execution:
        return self.store.executions[execution_id]

    def children(self, parent: ExecutionId) -> list[Execution]:
        found = [e for e in self.store.executions.values() if e.parent_execution_id == parent]
        return sorted(found, key=lambda e: e.created_at)


@pytest.fixture(name="world")
async def world_fixture() -> AsyncIterator[World]:
    store, clock = MemoryStore(), SteppingClock(T0)
    container = make_async_container(CoreProvider(clock=clock), MemoryProvider(store))
    yield World(container, store, clock, Gate())
    await container.close()


async def test_a_subworkflow_runs_as_a_child_execution_and_outputs_its_result(
    world: World,
) -> None:
    child = await world.workflow(
        definition(
            set_node("double", "{{ input.n }}{{ input.n }}"),
            {"id": "out", "type": "flow.output", "parameters": {"value": "{{ nodes.double }}"}},
            set_node("after", "ignored"),
        )
    )
    parent = await world.workflow(definition(call(child, input={"n": "{{ input.n }}"})))
    execution_id = await world.execute(parent, {"n": 4})

    outcome = await world.run_execution()(execution_id)

    assert outcome is not None
    assert outcome.status is ExecutionStatus.SUCCEEDED
    step = world.execution(execution_id).steps[-1]
    assert (step.node_id, step.status, step.output) == ("call", StepStatus.SUCCEEDED, "44")
    [run] = world.children(execution_id)
    assert (run.status, run.trigger, run.workflow_id, run.input) == (
        ExecutionStatus.SUCCEEDED,
        "subworkflow",
        child,
        {"n": 4},
    )
    assert [s.node_id for s in run.steps] == ["start", "double", "out", "after"]


async def test_without_an_output_node_the_result_is_the_last_node_s_output(world: World) -> None:
    child = await world.workflow(definition(set_node("a", 1), set_node("b", [2])))
    parent = await world.workflow(definition(call(child)))
    execution_id = await world.execute(parent, {})

    await world.run_execution()(execution_id)

    assert world.execution(execution_id).steps[-1].output == [2]


async def test_a_failed_child_fails_the_node_naming_the_child_and_its_error(world: World) -> None:
    child = await world.workflow(definition(set_node("bad", "{{ input.( }}")))
    parent = await world.workflow(
        definition(call(child, on_error="continue"), set_node("after", "{{ nodes.call }}"))
    )
    execution_id = await world.execute(parent, {})

    outcome = await world.run_execution()(execution_id)

    assert outcome is not None
    assert outcome.status is ExecutionStatus.SUCCEEDED
    [run] = world.children(execution_id)
    steps = {s.node_id: s for s in world.execution(execution_id).steps}
    assert run.status is ExecutionStatus.FAILED
    assert steps["call"].error is not None
    assert steps["call"].error.code == "subworkflow_failed"
    assert steps["call"].output == {
        "execution_id": str(run.id),
        "error": {"code": "expression_error", "message": run.error.message if run.error else ""},
    }
    assert steps["after"].output["error"]["code"] == "subworkflow_failed"


async def test_sub_workflows_nest_at_most_five_deep_at_run_time(world: World) -> None:
    # The workflow calls whatever `input.next` names: itself, so the cycle is invisible at
    # save time and only the run can stop it.
    looping = await world.workflow(
        definition(
            {
                "id": "call",
                "type": "flow.subworkflow",
                "parameters": {
                    "workflow_id": "{{ input.next }}",
                    "input": {"next": "{{ input.next }}"},
                },
            }
        )
    )
    execution_id = await world.execute(looping, {"next": str(looping)})

    outcome = await world.run_execution()(execution_id)

    assert outcome is not None
    assert outcome.error is not None
    assert outcome.error.code == "subworkflow_depth"
    depth, parent = 0, execution_id
    while children := world.children(parent):
        [child] = children
        depth, parent = depth + 1, child.id
    assert depth == 5


async def test_cancelling_the_parent_cancels_its_running_child(world: World) -> None:
    child = await world.workflow(
        definition(
            {"id": "wait", "type": "util.delay", "parameters": {"seconds": 1}}, set_node("x", 1)
        )
    )
    parent = await world.workflow(definition(call(child), set_node("after", 1)))
    execution_id = await world.execute(parent, {})

    running = asyncio.create_task(world.run_execution()(execution_id))
    await world.gate.waiting.wait()
    async with world.container() as scope:
        await (await scope.get(CancelExecution))(ALICE, execution_id)
    world.gate.opened.set()
    outcome = await running

    assert outcome is not None
    assert outcome.status is ExecutionStatus.CANCELLED
    [run] = world.children(execution_id)
    assert run.status is ExecutionStatus.CANCELLED
    assert {s.node_id: s.status for s in run.steps}["x"] is StepStatus.SKIPPED
    assert {s.node_id: s.status for s in world.execution(execution_id).steps}["after"] is (
        StepStatus.SKIPPED
    )


async def test_another_owner_s_workflow_cannot_be_called(world: World) -> None:
    theirs = await world.workflow(definition(set_node("a", 1)), BOB)

    with pytest.raises(NotRunnableError) as refused:
        await world.execute(await world.workflow(definition(call(theirs))), {})
    async with world.container() as scope:
        report = await (await scope.get(ValidateDefinition))(ALICE, definition(call(theirs)))

    assert refused.value.errors[0].field == "/definition/nodes/1/parameters/workflow_id"
    assert [(p.field, p.message) for p in report.problems] == [
        ("/definition/nodes/1/parameters/workflow_id", "is not a workflow of yours")
    ]


async def test_a_cycle_through_sub_workflows_is_refused_at_save_time(world: World) -> None:
    first = await world.workflow(definition(set_node("a", 1)))
    second = await world.workflow(definition(call(first)))

    with pytest.raises(InvalidInputError) as refused:
        await world.replace(first, definition(call(second)))

    assert [(e.field, e.message) for e in refused.value.errors] == [
        ("/definition/nodes/1/parameters/workflow_id", "calls this workflow back (a cycle)")
    ]


def each(workflow_id: object, on_error: str | None = None, **parameters: Any) -> dict[str, Any]:
    node = call(workflow_id, on_error, **parameters)
    node["type"] = "flow.for_each"
    return node


async def test_for_each_runs_the_workflow_once_per_item_and_outputs_results_in_order(
    world: World,
) -> None:
    child = await world.workflow(definition(set_node("twice", "{{ input.item }}{{ input.item }}")))
    parent = await world.workflow(definition(each(child, items="input.words", concurrency=2)))
    execution_id = await world.execute(parent, {"words": ["a", "b", "c", "d", "e"]})

    outcome = await world.run_execution()(execution_id)

    assert outcome is not None
    assert outcome.status is ExecutionStatus.SUCCEEDED
    assert world.execution(execution_id).steps[-1].output == ["aa", "bb", "cc", "dd", "ee"]
    children = world.children(execution_id)
    assert sorted(c.input["index"] for c in children) == [0, 1, 2, 3, 4]
    assert {c.input["item"] for c in children} == {"a", "b", "c", "d", "e"}


async def test_for_each_refuses_more_items_than_the_limit(world: World) -> None:
    child = await world.workflow(definition(set_node("a", 1)))
    parent = await world.workflow(definition(each(child, items="input.words")))
    execution_id = await world.execute(parent, {"words": [1, 2, 3, 4]})

    outcome = await world.run_execution(EngineLimits(max_for_each_items=3))(execution_id)

    assert outcome is not None
    assert outcome.error is not None
    assert outcome.error.code == "too_many_items"
    assert world.children(execution_id) == []


async def test_under_continue_a_failed_item_is_an_error_entry(world: World) -> None:
    child = await world.workflow(definition(set_node("check", "{{ input.item.( }}")))
    ok = await world.workflow(definition(set_node("fine", "{{ input.index }}")))
    parent = await world.workflow(
        definition(
            each(child, "continue", items="input.items"),
            {**each(ok, items="input.items"), "id": "good"},
        )
    )
    execution_id = await world.execute(parent, {"items": [1, 2]})

    outcome = await world.run_execution()(execution_id)

    assert outcome is not None
    assert outcome.status is ExecutionStatus.SUCCEEDED
    steps = {s.node_id: s for s in world.execution(execution_id).steps}
    failed = steps["call"].output
    assert [entry["error"]["code"] for entry in failed] == ["subworkflow_failed"] * 2
    assert steps["good"].output == [0, 1]


async def test_under_fail_the_first_failed_item_fails_the_node_and_no_more_start(
    world: World,
) -> None:
    child = await world.workflow(
        definition(set_node("check", "{{ input.item.( }}"), set_node("never", 1))
    )
    parent = await world.workflow(definition(each(child, items="input.items")))
    execution_id = await world.execute(parent, {"items": [1, 2, 3]})

    outcome = await world.run_execution()(execution_id)

    assert outcome is not None
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.node_id) == ("subworkflow_failed", "call")
    assert outcome.error.message.startswith("Item 0: The sub-workflow failed (expression_error)")
    assert len(world.children(execution_id)) == 1


async def test_for_each_results_are_bounded_by_the_node_output_limit(world: World) -> None:
    child = await world.workflow(definition(set_node("big", "x" * 400)))
    parent = await world.workflow(definition(each(child, items="input.items", concurrency=1)))
    execution_id = await world.execute(parent, {"items": list(range(10))})

    limits = EngineLimits(max_node_output_bytes=1_000)
    outcome = await world.run_execution(limits)(execution_id)

    assert outcome is not None
    assert outcome.error is not None
    assert outcome.error.code == "output_too_large"
    assert len(world.children(execution_id)) == 3  # the third result is the one too many


async def test_children_run_inline_even_when_their_owner_has_no_free_running_slot(
    world: World,
) -> None:
    child = await world.workflow(definition(set_node("a", 1)))
    parent = await world.workflow(definition(each(child, items="input.items", concurrency=3)))
    execution_id = await world.execute(parent, {"items": [1, 2, 3]})

    # The parent holds its owner's only slot; its children, never claimed, need none.
    outcome = await world.run_execution(run_limits=RunLimits(max_running=1))(execution_id)

    assert outcome is not None
    assert outcome.status is ExecutionStatus.SUCCEEDED
    assert [c.status for c in world.children(execution_id)] == [ExecutionStatus.SUCCEEDED] * 3

"""The library's factory: FlowBuilder over a Storage, build_use_cases, validate_definition."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from typing import Any

import pytest

from flowbuilder_adapters.memory import MemoryStorage
from flowbuilder_adapters.nodes import JmesPathEvaluator, basic_runners
from flowbuilder_core import (
    CreateCredentialCommand,
    ExecuteCommand,
    ExecutionStatus,
    FlowBuilder,
    Json,
    ListExecutionsQuery,
    NodeCall,
    OverloadedError,
    Principal,
    ResolvedSecret,
    StepStatus,
    SystemClock,
    UserId,
    Workflow,
    WorkflowId,
    WorkflowInput,
    build_use_cases,
    validate_definition,
)

ALICE = Principal(UserId("user_alice"))


def make_definition(*nodes: dict[str, Any]) -> dict[str, Any]:
    """A trigger followed by `nodes`, in a line."""
    chain = [{"id": "start", "type": "trigger.manual"}, *nodes]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(chain)]
    return {"nodes": chain, "edges": edges}


class RecordingRunner:
    """An `http.request` runner that records what it was called with."""

    def __init__(self) -> None:
        self.calls: list[NodeCall] = []

    async def run(self, call: NodeCall) -> Json:
        self.calls.append(call)
        return {"status": 204}


def make_flow(storage: MemoryStorage, runner: RecordingRunner | None = None) -> FlowBuilder:
    runners = {**basic_runners(), "http.request": runner or RecordingRunner()}
    return FlowBuilder(storage, runners=runners, expressions=JmesPathEvaluator())


async def create(flow: FlowBuilder, definition: dict[str, Any]) -> Workflow:
    async with flow.use_cases() as use:
        return await use.create_workflow(ALICE, WorkflowInput("Flow", definition=definition))


async def test_a_workflow_created_in_one_block_is_read_in_the_next() -> None:
    flow = make_flow(MemoryStorage())

    created = await create(flow, make_definition())

    async with flow.use_cases() as use:
        assert await use.get_workflow(ALICE, created.id) == created


async def test_use_cases_built_over_adapters_write_through_their_unit_of_work() -> None:
    storage = MemoryStorage()

    async with storage() as adapters:
        use = build_use_cases(adapters, SystemClock())
        created = await use.create_workflow(ALICE, WorkflowInput("Flow"))
        uncommitted = dataclasses.replace(created, id=WorkflowId(uuid.uuid4()))
        await adapters.workflows.add(uncommitted)  # discarded at the block's end

    assert list(storage.store.workflows) == [created.id]


async def test_a_requested_execution_runs_to_its_end_and_records_every_step() -> None:
    storage = MemoryStorage()
    flow = make_flow(storage)
    workflow = await create(
        flow,
        make_definition(
            {"id": "set", "type": "data.set", "parameters": {"value": "{{ input.n }}"}}
        ),
    )
    async with flow.use_cases() as use:
        requested = await use.execute_workflow(ALICE, ExecuteCommand(workflow.id, {"n": 7}))

    outcome = await flow.run(requested.id)

    assert outcome is not None
    assert outcome.status is ExecutionStatus.SUCCEEDED
    async with flow.use_cases() as use:
        execution = await use.get_execution(ALICE, requested.id)
    assert execution.status is ExecutionStatus.SUCCEEDED
    assert [(s.node_id, s.output) for s in execution.steps] == [("start", {"n": 7}), ("set", 7)]


async def test_an_execution_runs_once_however_often_it_is_run() -> None:
    storage = MemoryStorage()
    flow = make_flow(storage)
    workflow = await create(flow, make_definition())
    async with flow.use_cases() as use:
        requested = await use.execute_workflow(ALICE, ExecuteCommand(workflow.id))

    first, second = await flow.run(requested.id), await flow.run(requested.id)

    assert first is not None
    assert second is None


async def test_a_run_hands_the_node_its_credential_resolved_from_the_storage() -> None:
    runner = RecordingRunner()
    flow = make_flow(MemoryStorage(), runner)
    async with flow.use_cases() as use:
        credential = await use.create_credential(
            ALICE, CreateCredentialCommand("API", "http_bearer", {"token": "s3cr3t"})
        )
    node = {
        "id": "call",
        "type": "http.request",
        "credential_id": str(credential.id),
        "parameters": {"method": "GET", "url": "https://api.example.com/"},
    }
    workflow = await create(flow, make_definition(node))
    async with flow.use_cases() as use:
        requested = await use.execute_workflow(ALICE, ExecuteCommand(workflow.id))

    await flow.run(requested.id)

    assert len(runner.calls) == 1
    resolved = runner.calls[0].credential
    assert isinstance(resolved, ResolvedSecret)
    assert (resolved.type, dict(resolved.data.values)) == ("http_bearer", {"token": "s3cr3t"})


async def test_following_a_finished_run_gives_its_steps_then_its_end() -> None:
    storage = MemoryStorage()
    flow = make_flow(storage)
    workflow = await create(flow, make_definition())
    async with flow.use_cases() as use:
        requested = await use.execute_workflow(ALICE, ExecuteCommand(workflow.id))
    await flow.run(requested.id)

    events = [event async for event in await flow.follow(ALICE, requested.id)]

    assert [e.kind for e in events][-2:] == ["status", "end"]
    steps = [(e.step.node_id, e.step.status) for e in events if e.step is not None]
    assert steps == [("start", StepStatus.RUNNING), ("start", StepStatus.SUCCEEDED)]


async def test_the_memory_outbox_hands_over_each_request_once_oldest_first() -> None:
    storage = MemoryStorage()
    flow = make_flow(storage)
    workflow = await create(flow, make_definition())
    async with flow.use_cases() as use:
        first = await use.execute_workflow(ALICE, ExecuteCommand(workflow.id))
        second = await use.execute_workflow(ALICE, ExecuteCommand(workflow.id))

    taken = storage.take_requests()

    assert [m.execution_id for m in taken] == [first.id, second.id]
    assert storage.take_requests() == []


async def test_without_an_expression_evaluator_a_run_is_refused_and_says_what_to_pass() -> None:
    flow = FlowBuilder(MemoryStorage())

    with pytest.raises(RuntimeError, match="JmesPathEvaluator"):
        await flow.run(uuid.uuid4())


def test_validation_points_into_the_definition_itself() -> None:
    report = validate_definition({"nodes": [{"id": "start", "type": "trigger.cron"}]})

    assert not report.valid
    assert [(p.field, p.message) for p in report.problems] == [
        ("/nodes/0/type", "is not a known node type")
    ]


def test_validation_checks_credentials_against_the_types_it_is_given() -> None:
    credential_id = uuid.uuid4()
    node = {
        "id": "call",
        "type": "http.request",
        "credential_id": str(credential_id),
        "parameters": {"method": "GET", "url": "https://api.example.com/"},
    }
    definition = make_definition(node)

    unknown = validate_definition(definition)
    known = validate_definition(definition, {credential_id: "http_bearer"})

    assert unknown.valid
    assert [p.field for p in unknown.problems] == ["/nodes/1/credential_id"]
    assert known.runnable


class FullQueue:
    """A queue admission that refuses: the queue behind the outbox holds its bound."""

    def retry_after(self) -> int | None:
        return 3


async def test_a_full_queue_refuses_execute_storing_nothing_and_taking_no_token() -> None:
    storage = MemoryStorage(rate_per_second=1, burst=2)
    workflow = await create(make_flow(storage), make_definition())

    async with storage() as adapters:
        use = build_use_cases(dataclasses.replace(adapters, admission=FullQueue()), SystemClock())
        with pytest.raises(OverloadedError) as refused:
            await use.execute_workflow(ALICE, ExecuteCommand(workflow.id))
        for _ in range(2):  # each refusal took no rate-limit token: both of these are taken
            with pytest.raises(OverloadedError):
                await use.execute_workflow(ALICE, ExecuteCommand(workflow.id))
        listed = await use.list_executions(ALICE, ListExecutionsQuery())

    assert (refused.value.code, refused.value.retry_after) == ("overloaded", 3)
    assert list(listed.items) == []
    assert storage.take_requests() == []
    async with storage() as adapters:
        use = build_use_cases(adapters, SystemClock())
        for _ in range(2):
            await use.execute_workflow(ALICE, ExecuteCommand(workflow.id))
        await adapters.uow.commit()
    assert len(storage.take_requests()) == 2

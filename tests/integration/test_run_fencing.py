"""Fencing on Postgres: a worker whose run was swept as lost writes nothing more, while its
owner's retry runs to the end on another worker."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dishka import AsyncContainer, make_async_container
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.nodes import JmesPathEvaluator
from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.sql.tables import outbox
from flowbuilder_adapters.wiring import (
    CoreProvider,
    DatabaseSecretsProvider,
    OutboxProvider,
    QueueProvider,
    ScopesProvider,
    SqlProvider,
)
from flowbuilder_adapters.wiring.scopes import ScopedCredentialResolver, ScopedRunTransactions
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.model import (
    ExecutionId,
    ExecutionRequested,
    ExecutionStatus,
    Json,
    RunLimits,
    StepStatus,
)
from flowbuilder_core.executions.ports import ExecutionRepository, NodeCall
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.executions.use_cases import (
    ExecuteCommand,
    ExecuteWorkflow,
    FinishLostExecutions,
    GetExecution,
    RetryExecution,
)
from flowbuilder_core.shared.clock import Clock, SystemClock
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.use_cases import CreateWorkflow, WorkflowInput

ALICE = Principal(UserId("user_alice"))
KEYRING = Keyring.generate()[0]


class Later(SystemClock):
    """The clock of a sweeper two minutes ahead: every running heartbeat looks stale to it."""

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(minutes=2)


class GatedSet:
    """Serves `data.set`; a node whose id is `gated` waits for `release` before it answers.
    Counts the nodes it ran, by id."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.ran: list[str] = []

    async def run(self, call: NodeCall) -> Json:
        self.ran.append(call.node.id)
        if call.node.id == "gated":
            self.entered.set()
            await self.release.wait()
        return call.parameters.get("value")


def container(database_url: str, clock: Clock | None = None) -> AsyncContainer:
    """What a worker process builds: its own engine pool on the same database."""
    return make_async_container(
        CoreProvider(clock=clock),
        SqlProvider(database_url),
        DatabaseSecretsProvider(KEYRING),
        QueueProvider(None),
        OutboxProvider(1000, 1000),
        ScopesProvider(),
    )


def worker(container: AsyncContainer, runner: GatedSet) -> RunExecution:
    clock = SystemClock()
    engine = Engine({"data.set": runner}, JmesPathEvaluator(), clock)
    return RunExecution(
        ScopedRunTransactions(container),
        engine,
        ScopedCredentialResolver(container),
        clock,
        heartbeat_s=0.2,
    )


async def use(container: AsyncContainer, kind: type[Any], *args: Any) -> Any:
    async with container() as scope:
        return await (await scope.get(kind))(*args)


@pytest.fixture
async def database(postgres_url: str) -> str:
    await upgrade(postgres_url)
    return postgres_url


async def test_a_worker_that_lost_its_run_to_the_sweep_writes_nothing_more(
    database: str,
) -> None:
    api, first, second = (container(database) for _ in range(3))
    sweeper = container(database, Later())
    runner_a, runner_b = GatedSet(), GatedSet()
    runner_b.release.set()
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "trigger.manual"}]
    nodes += [{"id": i, "type": "data.set", "parameters": {"value": i}} for i in ("gated", "after")]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]
    try:
        workflow = await use(
            api,
            CreateWorkflow,
            ALICE,
            WorkflowInput("w", definition={"nodes": nodes, "edges": edges}),
        )
        execution = await use(api, ExecuteWorkflow, ALICE, ExecuteCommand(workflow.id, {}))
        lost_id = ExecutionId(execution.id)

        run_a = asyncio.create_task(worker(first, runner_a)(lost_id))
        await asyncio.wait_for(runner_a.entered.wait(), 10)
        assert await use(sweeper, FinishLostExecutions) == 1
        retry = await use(api, RetryExecution, ALICE, execution.id)
        outcome_b = await worker(second, runner_b)(ExecutionId(retry.id))
        runner_a.release.set()
        outcome_a = await asyncio.wait_for(run_a, 10)

        lost = await use(api, GetExecution, ALICE, execution.id)
        retried = await use(api, GetExecution, ALICE, retry.id)
    finally:
        for each in (api, first, second, sweeper):
            await each.close()

    assert outcome_a is None
    assert (lost.status, lost.error.code) == (ExecutionStatus.FAILED, "worker_lost")
    assert {s.node_id: s.status for s in lost.steps} == {
        "start": StepStatus.SUCCEEDED,
        "gated": StepStatus.RUNNING,
    }, "the lost run recorded the end of its node, or went on to the next"
    assert runner_a.ran == ["gated"]
    assert outcome_b is not None
    assert outcome_b.status is ExecutionStatus.SUCCEEDED
    assert retried.status is ExecutionStatus.SUCCEEDED
    assert [s.status for s in retried.steps] == [StepStatus.SUCCEEDED] * 3
    assert uuid.UUID(str(retried.retry_of)) == execution.id


async def test_a_run_refused_for_want_of_a_slot_is_parked_durably_and_sent_again(
    database: str,
) -> None:
    api, worker_container = container(database), container(database)
    runner = GatedSet()
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "trigger.manual"}]
    nodes.append({"id": "gated", "type": "data.set", "parameters": {"value": 1}})
    definition = {"nodes": nodes, "edges": [{"source": "start", "target": "gated"}]}
    clock = SystemClock()
    engine = Engine({"data.set": runner}, JmesPathEvaluator(), clock)
    run = RunExecution(
        ScopedRunTransactions(worker_container),
        engine,
        ScopedCredentialResolver(worker_container),
        clock,
        limits=RunLimits(max_running=1),
    )
    try:
        workflow = await use(api, CreateWorkflow, ALICE, WorkflowInput("w", definition=definition))
        first = await use(api, ExecuteWorkflow, ALICE, ExecuteCommand(workflow.id, {}))
        second = await use(api, ExecuteWorkflow, ALICE, ExecuteCommand(workflow.id, {}))
        async with api() as scope:  # the relay's part: the requests leave the outbox
            await (await scope.get(AsyncConnection)).execute(delete(outbox))
            await (await scope.get(UnitOfWork)).commit()

        running = asyncio.create_task(run(ExecutionId(first.id)))
        await asyncio.wait_for(runner.entered.wait(), 10)
        refused = await run(ExecutionId(second.id))
        async with api() as scope:
            parked = await (await scope.get(ExecutionRepository)).has_parked(ALICE.user_id)
        runner.release.set()
        await asyncio.wait_for(running, 10)
        async with api() as scope:
            rows = (await (await scope.get(AsyncConnection)).execute(select(outbox))).all()
    finally:
        await api.close()
        await worker_container.close()

    assert refused is None
    assert parked, "the parking was rolled back with the claim's unit of work"
    sent = [ExecutionRequested.from_json(row.message).execution_id for row in rows]
    assert sent == [second.id]

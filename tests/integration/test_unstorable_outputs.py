"""A node output that Postgres cannot keep as it is (a NUL character: JSONB refuses `\\u0000`)
is recorded escaped, and the run ends as it should, instead of its step write failing and the
run being swept as `worker_lost` 90 s later.

Wired as the worker wires it (tests/integration/test_execution_delivery.py), on Postgres, with
`RunExecution` called directly instead of through a queue."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dishka import AsyncContainer, make_async_container

from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.wiring import (
    CoreProvider,
    DatabaseSecretsProvider,
    OutboxProvider,
    QueueProvider,
    RunsProvider,
    ScopesProvider,
    SqlProvider,
)
from flowbuilder_core.executions.model import Execution, ExecutionStatus, StepStatus
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.executions.use_cases import ExecuteCommand, ExecuteWorkflow, GetExecution
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.use_cases import CreateWorkflow, WorkflowInput

pytestmark = pytest.mark.postgres

ALICE = Principal(UserId("user_alice"))

# A JMESPath literal is JSON, so the six characters \u0000 in it are a NUL in its value: the
# definition itself holds no NUL (which saving refuses), the output does.
NUL_LITERAL = '`{"text": "before\\u0000after", "key\\u0000": ["\\\\u0000 is text"]}`'


@pytest.fixture
async def container(postgres_url: str) -> AsyncIterator[AsyncContainer]:
    await upgrade(postgres_url)
    keyring, _ = Keyring.generate()
    container = make_async_container(
        CoreProvider(),
        SqlProvider(postgres_url),
        DatabaseSecretsProvider(keyring),
        QueueProvider(None),  # in process: the test runs the execution itself
        OutboxProvider(1000, 1000),
        RunsProvider(allow_private_network=False),
        ScopesProvider(),
    )
    try:
        yield container
    finally:
        await container.close()


async def run_to_the_end(container: AsyncContainer, *nodes: dict[str, Any]) -> Execution:
    chain = [{"id": "start", "type": "trigger.manual"}, *nodes]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(chain)]
    definition = {"nodes": chain, "edges": edges}
    async with container() as scope:
        create = await scope.get(CreateWorkflow)
        workflow = await create(ALICE, WorkflowInput(name="NUL", definition=definition))
    async with container() as scope:
        execute = await scope.get(ExecuteWorkflow)
        execution = await execute(ALICE, ExecuteCommand(workflow.id, {}))
    run = await container.get(RunExecution)
    await run(execution.id)
    async with container() as scope:
        get = await scope.get(GetExecution)
        return await get(ALICE, execution.id)


async def test_an_output_with_a_nul_is_stored_escaped_and_the_run_succeeds(
    container: AsyncContainer,
) -> None:
    execution = await run_to_the_end(
        container,
        {"id": "nul", "type": "data.transform", "parameters": {"expression": NUL_LITERAL}},
        {"id": "after", "type": "data.set", "parameters": {"value": "{{ nodes.nul.text }}"}},
    )

    assert execution.status is ExecutionStatus.SUCCEEDED
    steps = {step.node_id: step for step in execution.steps}
    assert steps["nul"].output == {
        "text": "before\ufffdafter",
        "key\ufffd": ["\\u0000 is text"],
    }
    assert steps["after"].status is StepStatus.SUCCEEDED
    assert steps["after"].output == "before\ufffdafter"

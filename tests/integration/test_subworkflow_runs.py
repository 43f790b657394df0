"""Sub-workflows over SQL (SQLite and Postgres): a for-each of child executions runs through
the real unit-of-work wiring, with children committed, listed by parent and finished."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from dishka import AsyncContainer, make_async_container

from flowbuilder_adapters.nodes import JmesPathEvaluator, basic_runners
from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.sql.migrate import upgrade
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
from flowbuilder_core.executions.model import ExecutionId, ExecutionStatus, StepStatus
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.executions.use_cases import (
    ExecuteCommand,
    ExecuteWorkflow,
    GetExecution,
    ListExecutions,
    ListExecutionsQuery,
)
from flowbuilder_core.shared.clock import SystemClock
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.use_cases import CreateWorkflow, WorkflowInput

ALICE = Principal(UserId("user_alice"))
KEYRING = Keyring.generate()[0]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'flowbuilder.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def container(database_url: str) -> AsyncContainer:
    return make_async_container(
        CoreProvider(),
        SqlProvider(database_url),
        DatabaseSecretsProvider(KEYRING),
        QueueProvider(None),
        OutboxProvider(1000, 1000),
        ScopesProvider(),
    )


async def use(scopes: AsyncContainer, kind: type[Any], *args: Any) -> Any:
    async with scopes() as scope:
        return await (await scope.get(kind))(*args)


def chain(*nodes: dict[str, Any]) -> dict[str, Any]:
    everything = [{"id": "start", "type": "trigger.manual"}, *nodes]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(everything)]
    return {"nodes": everything, "edges": edges}


async def test_a_for_each_of_sub_workflows_runs_and_records_every_child(database: str) -> None:
    await upgrade(database)
    scopes = container(database)
    clock = SystemClock()
    engine = Engine(basic_runners(), JmesPathEvaluator(), clock)
    run = RunExecution(
        ScopedRunTransactions(scopes), engine, ScopedCredentialResolver(scopes), clock
    )
    child_definition = chain(
        {"id": "square", "type": "data.transform", "parameters": {"expression": "input.item"}},
        {"id": "out", "type": "flow.output", "parameters": {"value": "{{ nodes.square }}"}},
    )
    try:
        child = await use(
            scopes, CreateWorkflow, ALICE, WorkflowInput("c", definition=child_definition)
        )
        each = {
            "id": "each",
            "type": "flow.for_each",
            "parameters": {"items": "input.items", "workflow_id": str(child.id), "concurrency": 3},
        }
        parent = await use(
            scopes, CreateWorkflow, ALICE, WorkflowInput("p", definition=chain(each))
        )
        requested = await use(
            scopes, ExecuteWorkflow, ALICE, ExecuteCommand(parent.id, {"items": [3, 1, 2, 5]})
        )

        outcome = await run(ExecutionId(requested.id))

        finished = await use(scopes, GetExecution, ALICE, requested.id)
        children = await use(
            scopes, ListExecutions, ALICE, ListExecutionsQuery(parent_id=requested.id)
        )
        one = await use(scopes, GetExecution, ALICE, children.items[0].id)
    finally:
        await scopes.close()

    assert outcome is not None
    assert outcome.status is ExecutionStatus.SUCCEEDED
    assert finished.steps[-1].output == [3, 1, 2, 5]
    assert len(children.items) == 4
    assert {c.status for c in children.items} == {ExecutionStatus.SUCCEEDED}
    assert {c.parent_execution_id for c in children.items} == {requested.id}
    assert {c.trigger for c in children.items} == {"subworkflow"}
    assert [s.status for s in one.steps] == [StepStatus.SUCCEEDED] * 3

"""Quotas over SQL read a count kept as workflows and credentials come and go (the
`owner_holdings` row), so they must follow every create, refusal and delete exactly, on
SQLite and on Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
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
from flowbuilder_core.credentials.use_cases import (
    CreateCredential,
    CreateCredentialCommand,
    DeleteCredential,
)
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.quotas import QuotaExceededError, Quotas
from flowbuilder_core.workflows.use_cases import (
    CreateWorkflow,
    DeleteWorkflow,
    DeleteWorkflowCommand,
    WorkflowInput,
)

ALICE, BOB = Principal(UserId("user_alice")), Principal(UserId("user_bob"))
DEFINITION = {"nodes": [{"id": "start", "type": "trigger.manual"}], "edges": []}
SECRET = {"token": "s3cret"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'flowbuilder.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def container(database_url: str) -> AsyncIterator[AsyncContainer]:
    url = database_url
    await upgrade(url)
    keyring, _ = Keyring.generate()
    container = make_async_container(
        CoreProvider(quotas=Quotas(max_workflows=2, max_credentials=1)),
        SqlProvider(url),
        DatabaseSecretsProvider(keyring),
        QueueProvider(None),
        OutboxProvider(1000, 1000),
        RunsProvider(allow_private_network=False),
        ScopesProvider(),
    )
    try:
        yield container
    finally:
        await container.close()


async def call(container: AsyncContainer, use_case: type[Any], *args: Any) -> Any:
    async with container() as scope:
        return await (await scope.get(use_case))(*args)


async def test_a_deleted_workflow_frees_its_place_and_a_refused_create_takes_none(
    container: AsyncContainer,
) -> None:
    first = await call(container, CreateWorkflow, ALICE, WorkflowInput("a", definition=DEFINITION))
    await call(container, CreateWorkflow, ALICE, WorkflowInput("b", definition=DEFINITION))
    with pytest.raises(QuotaExceededError):
        await call(container, CreateWorkflow, ALICE, WorkflowInput("c", definition=DEFINITION))
    await call(container, CreateWorkflow, BOB, WorkflowInput("bob's", definition=DEFINITION))

    await call(container, DeleteWorkflow, ALICE, DeleteWorkflowCommand(first.id))
    await call(container, CreateWorkflow, ALICE, WorkflowInput("d", definition=DEFINITION))

    with pytest.raises(QuotaExceededError):
        await call(container, CreateWorkflow, ALICE, WorkflowInput("e", definition=DEFINITION))


async def test_a_deleted_credential_frees_its_place_and_a_refused_create_takes_none(
    container: AsyncContainer,
) -> None:
    command = CreateCredentialCommand("token", "http_bearer", SECRET)
    first = await call(container, CreateCredential, ALICE, command)
    with pytest.raises(QuotaExceededError):
        await call(container, CreateCredential, ALICE, command)
    await call(container, CreateCredential, BOB, command)

    await call(container, DeleteCredential, ALICE, first.id)
    await call(container, CreateCredential, ALICE, command)

    with pytest.raises(QuotaExceededError):
        await call(container, CreateCredential, ALICE, command)

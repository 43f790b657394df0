"""Where a long-lived object needs something of a short scope: the only container lookups
below the entrypoints, kept here so that nothing else holds a container.

A run lasts longer than any scope should (a scope holds a database connection), so each piece
of its bookkeeping opens a REQUEST scope of its own; the same goes for resolving a credential
and for the periodic sweeps.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from dishka import AsyncContainer, Provider, Scope, provide

from flowbuilder_adapters.log_context import hide_in_this_run
from flowbuilder_core.credentials.use_cases import ResolveCredential
from flowbuilder_core.executions.ports import (
    CredentialResolver,
    ExecutionRepository,
    Outbox,
    ResolvedSecret,
    RunTransaction,
    RunTransactions,
)
from flowbuilder_core.executions.use_cases import (
    FailUndeliveredExecutions,
    FinishLostExecutions,
    ResumeParkedExecutions,
)
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.triggers.schedules import StartDueSchedules
from flowbuilder_core.webhooks.model import Received, WebhookAnswer, WebhookRequest
from flowbuilder_core.webhooks.ports import WebhookSteps
from flowbuilder_core.webhooks.use_cases import ReceiveWebhook, RecordWebhookAnswer
from flowbuilder_core.workflows.ports import WorkflowRepository


class ScopedRunTransactions(RunTransactions):
    """Each unit of work of a run in a REQUEST scope of its own (one connection, briefly)."""

    def __init__(self, container: AsyncContainer) -> None:
        self._container = container

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[RunTransaction]:
        async with self._container() as scope:
            yield RunTransaction(
                await scope.get(ExecutionRepository),
                await scope.get(WorkflowRepository),
                await scope.get(Outbox),
                await scope.get(UnitOfWork),
            )


class ScopedCredentialResolver(CredentialResolver):
    """Resolves a credential in a scope of its own (a short transaction, never held by a run)."""

    def __init__(self, container: AsyncContainer) -> None:
        self._container = container

    async def resolve(self, owner: UserId, credential_id: uuid.UUID) -> ResolvedSecret:
        async with self._container() as scope:
            resolved = await (await scope.get(ResolveCredential))(owner, credential_id)
        hide_in_this_run(resolved.data.values.values())
        return ResolvedSecret(resolved.credential.type, resolved.data)


class ScopedWebhookSteps(WebhookSteps):
    """Each unit of work of a webhook request in a REQUEST scope of its own: the connection
    goes back to the pool before a `when_finished` request starts waiting."""

    def __init__(self, container: AsyncContainer) -> None:
        self._container = container

    async def receive(self, request: WebhookRequest) -> Received:
        async with self._container() as scope:
            return await (await scope.get(ReceiveWebhook))(request)

    async def record(self, hook_id: str, delivery_key: str, answer: WebhookAnswer) -> None:
        async with self._container() as scope:
            await (await scope.get(RecordWebhookAnswer))(hook_id, delivery_key, answer)


Sweep = (
    FinishLostExecutions | ResumeParkedExecutions | FailUndeliveredExecutions | StartDueSchedules
)
"""The use cases run periodically, each taking no argument and answering how many it moved."""


def in_scope(container: AsyncContainer, kind: type[Sweep]) -> Callable[[], Awaitable[int]]:
    """The use case `kind`, called in a REQUEST scope of its own each time."""

    async def call() -> int:
        async with container() as scope:
            return await (await scope.get(kind))()

    return call


class ScopesProvider(Provider):
    """The credential resolver above, for whichever process runs executions (the storage
    providers give `RunTransactions`)."""

    @provide(scope=Scope.APP)
    def credentials(self, container: AsyncContainer) -> CredentialResolver:
        return ScopedCredentialResolver(container)

"""The contract suites' door for adapters written outside this project.

`FLOWBUILDER_CONTRACT_STORAGE=module:function` names a function that takes no argument and
returns a fresh, empty `flowbuilder_core.Storage` (called once per test; an `aclose()`
coroutine on what it returns is awaited after the test). The suites over the Storage's ports
then run against it too, as adapter `custom`, in a dishka container like every other adapter:
the workflow repository, the execution repository and the rate limiter (docs/library.md,
"Checking your adapter").
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Callable

from dishka import Provider, Scope, provide

from flowbuilder_adapters.queues.memory import NoDeadLetters
from flowbuilder_core import (
    Adapters,
    CredentialDirectory,
    CredentialRepository,
    DeadLetters,
    ExecutionRepository,
    NoScheduleBook,
    Outbox,
    QueueAdmission,
    RateLimiter,
    RunTransactions,
    ScheduleRepository,
    SecretStore,
    Storage,
    StorageRunTransactions,
    UnitOfWork,
    WorkflowRepository,
    WriteRateLimiter,
)

VARIABLE = "FLOWBUILDER_CONTRACT_STORAGE"
CUSTOM = "custom"
STORAGE_SUITES = frozenset(
    {"test_workflow_repository", "test_execution_repository", "test_rate_limiter"}
)
"""The suites whose ports are all in `Adapters` (not the idempotency store, the secret stores
chosen by settings, or the queues)."""


def custom_storage_factory() -> Callable[[], Storage] | None:
    """The function the variable names, or None when it is unset. A malformed value or a
    missing function is an error at once, naming the variable."""
    target = os.environ.get(VARIABLE, "").strip()
    if not target:
        return None
    module_name, _, function_name = target.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"{VARIABLE} must be module:function, not {target!r}")
    factory = getattr(importlib.import_module(module_name), function_name, None)
    if not callable(factory):
        raise ValueError(f"{VARIABLE}: {target} is not a function")
    return factory  # type: ignore[no-any-return]


class StorageProvider(Provider):
    """Each REQUEST scope one block of the storage; every port of `Adapters` from it. No
    queue stands behind a Storage, so it has no dead letters either."""

    def __init__(self, storage: Storage) -> None:
        super().__init__()
        self._storage = storage

    @provide(scope=Scope.REQUEST)
    async def adapters(self) -> AsyncIterator[Adapters]:
        async with self._storage() as adapters:
            yield adapters

    @provide(scope=Scope.REQUEST)
    def uow(self, adapters: Adapters) -> UnitOfWork:
        return adapters.uow

    @provide(scope=Scope.REQUEST)
    def workflows(self, adapters: Adapters) -> WorkflowRepository:
        return adapters.workflows

    @provide(scope=Scope.REQUEST)
    def credential_directory(self, adapters: Adapters) -> CredentialDirectory:
        return adapters.credential_directory

    @provide(scope=Scope.REQUEST)
    def credentials(self, adapters: Adapters) -> CredentialRepository:
        return adapters.credentials

    @provide(scope=Scope.REQUEST)
    def secrets(self, adapters: Adapters) -> SecretStore:
        return adapters.secrets

    @provide(scope=Scope.REQUEST)
    def executions(self, adapters: Adapters) -> ExecutionRepository:
        return adapters.executions

    @provide(scope=Scope.REQUEST)
    def outbox(self, adapters: Adapters) -> Outbox:
        return adapters.outbox

    @provide(scope=Scope.REQUEST)
    def rate_limiter(self, adapters: Adapters) -> RateLimiter:
        return adapters.rate_limiter

    @provide(scope=Scope.REQUEST)
    def write_rate_limiter(self, adapters: Adapters) -> WriteRateLimiter:
        return adapters.write_rate_limiter

    @provide(scope=Scope.REQUEST)
    def admission(self, adapters: Adapters) -> QueueAdmission:
        return adapters.admission

    @provide(scope=Scope.REQUEST)
    def schedules(self, adapters: Adapters) -> ScheduleRepository:
        """The storage's schedule book, or one that keeps nothing when it has none."""
        return adapters.schedules if adapters.schedules is not None else NoScheduleBook()

    @provide(scope=Scope.APP)
    def dead_letters(self) -> DeadLetters:
        return NoDeadLetters()

    @provide(scope=Scope.APP)
    def transactions(self) -> RunTransactions:
        return StorageRunTransactions(self._storage)

"""dishka wiring of the in-memory adapters."""

from __future__ import annotations

from dishka import Provider, Scope, alias, provide

from flowbuilder_adapters.background import Background
from flowbuilder_adapters.memory.credentials import (
    MemoryCredentialDirectory,
    MemoryCredentialRepository,
)
from flowbuilder_adapters.memory.executions import (
    MemoryExecutionRepository,
    MemoryOutbox,
    MemoryRateLimiter,
)
from flowbuilder_adapters.memory.health import MemoryHealthProbe
from flowbuilder_adapters.memory.idempotency import MemoryIdempotencyStore
from flowbuilder_adapters.memory.secrets import MemorySecretStore
from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_adapters.memory.workflows import MemoryWorkflowRepository
from flowbuilder_core.credentials.ports import CredentialRepository, SecretStore
from flowbuilder_core.executions.ports import ExecutionRepository, Outbox, RateLimiter
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.health import HealthProbe
from flowbuilder_core.shared.idempotency import IdempotencyStore
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.ports import CredentialDirectory, WorkflowRepository


class MemoryProvider(Provider):
    """The store lives for the container (APP); units of work and repositories per request."""

    def __init__(
        self, store: MemoryStore | None = None, *, rate_per_second: float = 20, burst: int = 100
    ) -> None:
        super().__init__()
        self._store = store if store is not None else MemoryStore()
        self._rate_per_second, self._burst = rate_per_second, burst

    @provide(scope=Scope.APP)
    def store(self) -> MemoryStore:
        return self._store

    uow = provide(MemoryUnitOfWork, scope=Scope.REQUEST)
    uow_port = alias(source=MemoryUnitOfWork, provides=UnitOfWork)
    workflows = provide(MemoryWorkflowRepository, scope=Scope.REQUEST, provides=WorkflowRepository)
    credential_directory = provide(
        MemoryCredentialDirectory, scope=Scope.REQUEST, provides=CredentialDirectory
    )
    credentials = provide(
        MemoryCredentialRepository, scope=Scope.REQUEST, provides=CredentialRepository
    )

    @provide(scope=Scope.APP)
    def secrets(self, clock: Clock) -> SecretStore:
        return MemorySecretStore(clock)

    executions = provide(
        MemoryExecutionRepository, scope=Scope.REQUEST, provides=ExecutionRepository
    )
    outbox = provide(MemoryOutbox, scope=Scope.REQUEST, provides=Outbox)

    @provide(scope=Scope.APP)
    def rate_limiter(self, store: MemoryStore) -> RateLimiter:
        return MemoryRateLimiter(store, self._rate_per_second, self._burst)

    @provide(scope=Scope.APP)
    def background(self) -> Background:
        return Background()

    idempotency = provide(MemoryIdempotencyStore, scope=Scope.REQUEST, provides=IdempotencyStore)
    health = provide(MemoryHealthProbe, scope=Scope.APP, provides=HealthProbe)

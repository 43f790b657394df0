"""Where the data lives: the SQL database (Postgres or SQLite) or the in-memory store, with
the unit of work and repositories of each scope."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from dishka import AsyncContainer, Provider, Scope, alias, provide
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
from flowbuilder_adapters.memory.runs import MemoryRunTransactions
from flowbuilder_adapters.memory.schedules import MemoryScheduleRepository
from flowbuilder_adapters.memory.secrets import MemorySecretStore
from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_adapters.memory.webhooks import MemoryWebhookRepository
from flowbuilder_adapters.memory.workflows import MemoryWorkflowRepository
from flowbuilder_adapters.queues.memory import NoDeadLetters
from flowbuilder_adapters.relay import OutboxRelay
from flowbuilder_adapters.sql.connections import (
    Access,
    ConnectionGate,
    ReadingEngine,
    reading_engine,
    scope_connection,
)
from flowbuilder_adapters.sql.credentials import SqlCredentialDirectory, SqlCredentialRepository
from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.execution_steps import beat_and_record, finish_run
from flowbuilder_adapters.sql.executions import SqlExecutionRepository
from flowbuilder_adapters.sql.health import SqlHealthProbe
from flowbuilder_adapters.sql.idempotency import SqlIdempotencyStore
from flowbuilder_adapters.sql.run_claims import claim_run
from flowbuilder_adapters.sql.schedules import SqlScheduleRepository
from flowbuilder_adapters.sql.uow import SqlUnitOfWork
from flowbuilder_adapters.sql.webhooks import SqlWebhookRepository
from flowbuilder_adapters.sql.workflows import SqlWorkflowRepository
from flowbuilder_adapters.wiring.scopes import ScopedRunTransactions
from flowbuilder_core.credentials.ports import CredentialRepository, SecretStore
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    ExecutionStatus,
    StepResult,
)
from flowbuilder_core.executions.ports import (
    AdmitAll,
    ClaimedRun,
    DeadLetters,
    ExecutionRepository,
    Outbox,
    QueueAdmission,
    RateLimiter,
    RunTransactions,
)
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.health import HealthProbe
from flowbuilder_core.shared.idempotency import IdempotencyStore
from flowbuilder_core.shared.quotas import Quotas, WriteRateLimiter
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.webhooks.model import WebhookLimits
from flowbuilder_core.webhooks.ports import HookRateLimiter, WebhookRepository
from flowbuilder_core.workflows.ports import CredentialDirectory, WorkflowRepository
from flowbuilder_core.workflows.schedules import ScheduleRepository


class SqlProvider(Provider):
    """The engine for the container (APP); one connection, in one transaction, per REQUEST
    scope, shared by the scope's unit of work and repositories.

    Give it a database URL, or an `engine_factory` to build the engine another way.
    """

    def __init__(
        self, url: str | None = None, *, engine_factory: Callable[[], AsyncEngine] | None = None
    ) -> None:
        super().__init__()
        if (url is None) == (engine_factory is None):
            raise ValueError("give SqlProvider either a url or an engine_factory")
        self._engine_factory: Callable[[], AsyncEngine] = (
            engine_factory if engine_factory is not None else lambda: create_engine(str(url))
        )

    @provide(scope=Scope.APP)
    async def engine(self) -> AsyncIterator[AsyncEngine]:
        engine = self._engine_factory()
        try:
            yield engine
        finally:
            await engine.dispose()

    @provide(scope=Scope.APP)
    def gate(self, engine: AsyncEngine) -> ConnectionGate:
        return ConnectionGate.for_engine(engine)

    @provide(scope=Scope.APP)
    def reading_engine(self, engine: AsyncEngine) -> ReadingEngine:
        return reading_engine(engine)

    @provide(scope=Scope.APP)
    def transactions(
        self,
        container: AsyncContainer,
        engine: AsyncEngine,
        reading: ReadingEngine,
        gate: ConnectionGate,
    ) -> RunTransactions:
        """A run's (and a follower's) short units of work, each a REQUEST scope of its own;
        on Postgres a step's record is one statement."""
        return SqlRunTransactions(container, engine, reading, gate)

    @provide(scope=Scope.REQUEST)
    def access(self) -> Access:
        """Scopes write unless their driver knows better (the HTTP adapter, for GETs)."""
        return Access.READ_WRITE

    @provide(scope=Scope.REQUEST)
    async def connection(
        self, engine: AsyncEngine, reading: ReadingEngine, gate: ConnectionGate, access: Access
    ) -> AsyncIterator[AsyncConnection]:
        async with scope_connection(engine, reading, gate, access) as connection:
            yield connection

    uow = provide(SqlUnitOfWork, scope=Scope.REQUEST)
    uow_port = alias(source=SqlUnitOfWork, provides=UnitOfWork)
    workflows = provide(SqlWorkflowRepository, scope=Scope.REQUEST, provides=WorkflowRepository)
    executions = provide(SqlExecutionRepository, scope=Scope.REQUEST, provides=ExecutionRepository)
    schedules = provide(SqlScheduleRepository, scope=Scope.REQUEST, provides=ScheduleRepository)
    idempotency = provide(SqlIdempotencyStore, scope=Scope.REQUEST, provides=IdempotencyStore)
    credentials = provide(
        SqlCredentialRepository, scope=Scope.REQUEST, provides=CredentialRepository
    )
    credential_directory = provide(
        SqlCredentialDirectory, scope=Scope.REQUEST, provides=CredentialDirectory
    )
    webhooks = provide(SqlWebhookRepository, scope=Scope.REQUEST, provides=WebhookRepository)


class SqlRunTransactions(ScopedRunTransactions):
    """A run's units of work in REQUEST scopes; on Postgres its own ones go straight to a
    connection, with no dishka scope: the claim with its version read (after the owner's turn,
    in a transaction), and each heartbeat with the steps since the last (`record`) and the
    finish, as single statements on an autocommit connection, with no BEGIN or COMMIT.
    SQLite writes them in units of work, as the port's defaults do."""

    def __init__(
        self,
        container: AsyncContainer,
        engine: AsyncEngine,
        reading: ReadingEngine,
        gate: ConnectionGate,
    ) -> None:
        super().__init__(container)
        self._engine, self._reading, self._gate = engine, reading, gate
        self._postgres = engine.dialect.name == "postgresql"

    async def record(
        self,
        execution_id: ExecutionId,
        lease: uuid.UUID,
        at: datetime,
        steps: Sequence[StepResult] = (),
    ) -> ExecutionStatus | None:
        if not self._postgres:
            return await super().record(execution_id, lease, at, steps)
        async with self._one_statement_connection() as connection:
            return await beat_and_record(connection, execution_id, lease, at, steps)

    async def claim(
        self,
        execution_id: ExecutionId,
        at: datetime,
        lease: uuid.UUID,
        *,
        max_running: int | None = None,
    ) -> ClaimedRun | None:
        if not self._postgres:
            return await super().claim(execution_id, at, lease, max_running=max_running)
        writing = Access.READ_WRITE
        async with scope_connection(self._engine, self._reading, self._gate, writing) as connection:
            claimed = await claim_run(connection, execution_id, at, lease, max_running)
            async with translate_errors():
                await connection.commit()
        return claimed

    async def finish(
        self, ended: Execution, lease: uuid.UUID, steps: Sequence[StepResult] = ()
    ) -> bool:
        if not self._postgres:
            return await super().finish(ended, lease, steps)
        async with self._one_statement_connection() as connection:
            return await finish_run(connection, ended, lease, steps)

    def _one_statement_connection(self) -> AbstractAsyncContextManager[AsyncConnection]:
        single = Access.ONE_STATEMENT
        return scope_connection(self._engine, self._reading, self._gate, single)


class SqlHealthProvider(Provider):
    """Readiness: the database answers, and what the outbox relay knows of the queue."""

    @provide(scope=Scope.APP)
    def health(self, engine: AsyncEngine, relay: OutboxRelay) -> HealthProbe:
        return SqlHealthProbe(engine, relay)


class MemoryProvider(Provider):
    """Every store in memory: the store lives for the container (APP); units of work and
    repositories per request. For tests and library users."""

    def __init__(
        self,
        store: MemoryStore | None = None,
        *,
        rate_per_second: float = 20,
        burst: int = 100,
        hooks: WebhookLimits | None = None,
    ) -> None:
        super().__init__()
        self._store = store if store is not None else MemoryStore()
        self._rate_per_second, self._burst = rate_per_second, burst
        self._hooks = hooks if hooks is not None else WebhookLimits()

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
    admission = provide(AdmitAll, scope=Scope.APP, provides=QueueAdmission)
    schedules = provide(MemoryScheduleRepository, scope=Scope.REQUEST, provides=ScheduleRepository)

    @provide(scope=Scope.APP)
    def rate_limiter(self, store: MemoryStore) -> RateLimiter:
        return MemoryRateLimiter(store, self._rate_per_second, self._burst)

    @provide(scope=Scope.APP)
    def write_rate_limiter(self, store: MemoryStore, quotas: Quotas) -> WriteRateLimiter:
        return MemoryRateLimiter(store, quotas.writes_per_second, quotas.write_burst, "writes:")

    @provide(scope=Scope.APP)
    def hook_rate_limiter(self, store: MemoryStore) -> HookRateLimiter:
        hooks = self._hooks
        return MemoryRateLimiter(store, hooks.rate_per_second, hooks.burst, "hooks:")

    webhooks = provide(MemoryWebhookRepository, scope=Scope.REQUEST, provides=WebhookRepository)
    idempotency = provide(MemoryIdempotencyStore, scope=Scope.REQUEST, provides=IdempotencyStore)
    health = provide(MemoryHealthProbe, scope=Scope.APP, provides=HealthProbe)

    @provide(scope=Scope.APP)
    def transactions(self, store: MemoryStore) -> RunTransactions:
        return MemoryRunTransactions(store)

    @provide(scope=Scope.APP)
    def dead_letters(self) -> DeadLetters:
        """No queue stands behind the store alone."""
        return NoDeadLetters()

    @provide(scope=Scope.APP)
    def background(self) -> Background:
        """Nothing runs beside the requests: there is no outbox to relay."""
        return Background()

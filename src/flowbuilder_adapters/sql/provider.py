"""dishka wiring of the SQL adapters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from enum import Enum
from typing import NewType

from dishka import Provider, Scope, alias, provide
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowbuilder_adapters.sql.credentials import SqlCredentialDirectory, SqlCredentialRepository
from flowbuilder_adapters.sql.engine import POOL_TIMEOUT_S, create_engine
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.executions import SqlExecutionRepository
from flowbuilder_adapters.sql.idempotency import SqlIdempotencyStore
from flowbuilder_adapters.sql.uow import SqlUnitOfWork
from flowbuilder_adapters.sql.workflows import SqlWorkflowRepository
from flowbuilder_core.credentials.ports import CredentialRepository
from flowbuilder_core.executions.ports import ExecutionRepository
from flowbuilder_core.shared.errors import DependencyUnavailableError
from flowbuilder_core.shared.idempotency import IdempotencyStore
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.ports import CredentialDirectory, WorkflowRepository

_log = logging.getLogger(__name__)


class Access(Enum):
    """What a scope does with the database: a read-only scope runs without a transaction."""

    READ_ONLY = "read-only"
    READ_WRITE = "read-write"


ReadingEngine = NewType("ReadingEngine", AsyncEngine)
"""The engine's pool with autocommit connections: a scope that only reads needs no BEGIN and
no ROLLBACK round trips."""


class ConnectionGate:
    """Scopes wait here for one of the pool's connections, first come, first served.

    SQLAlchemy's pool hands a returned connection to whichever coroutine asks next, so under
    load a waiter can lose it to newcomers again and again: in `make bench` (32 clients, 10
    connections) that made p99 six to eight times p50. asyncio's Semaphore hands a released
    permit straight to the longest waiter. There are as many permits as the pool keeps open;
    the pool's overflow stays free for background work (the outbox relay, the health check).
    """

    def __init__(self, permits: int, timeout_s: float = POOL_TIMEOUT_S) -> None:
        self._permits = asyncio.Semaphore(permits)
        self._timeout_s = timeout_s

    async def acquire(self) -> None:
        """Wait for a permit; TimeoutError (a 503 through `translate_errors`) after the timeout."""
        if not self._permits.locked():
            await self._permits.acquire()  # free and nobody waiting: taken without suspending
            return
        async with asyncio.timeout(self._timeout_s):
            await self._permits.acquire()

    def release(self) -> None:
        self._permits.release()

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> ConnectionGate:
        size = getattr(engine.pool, "size", None)
        return cls(max(1, size()) if callable(size) else 1)


class SqlProvider(Provider):
    """The engine for the container (APP); one connection, in one transaction, per REQUEST scope,
    shared by the scope's unit of work and repositories.

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
        return ReadingEngine(engine.execution_options(isolation_level="AUTOCOMMIT"))

    @provide(scope=Scope.REQUEST)
    def access(self) -> Access:
        """Scopes write unless their driver knows better (the HTTP adapter, for GETs)."""
        return Access.READ_WRITE

    @provide(scope=Scope.REQUEST)
    async def connection(
        self, engine: AsyncEngine, reading: ReadingEngine, gate: ConnectionGate, access: Access
    ) -> AsyncIterator[AsyncConnection]:
        read_only = access is Access.READ_ONLY
        async with translate_errors():
            await gate.acquire()
        try:
            async with translate_errors():
                connection = await (reading if read_only else engine).connect()
                if not read_only:
                    try:
                        await connection.begin()
                    except BaseException:
                        await connection.close()
                        raise
            try:
                yield connection
            finally:
                await _release(connection, rollback=not read_only)
        finally:
            gate.release()

    uow = provide(SqlUnitOfWork, scope=Scope.REQUEST)
    uow_port = alias(source=SqlUnitOfWork, provides=UnitOfWork)
    workflows = provide(SqlWorkflowRepository, scope=Scope.REQUEST, provides=WorkflowRepository)
    executions = provide(SqlExecutionRepository, scope=Scope.REQUEST, provides=ExecutionRepository)
    idempotency = provide(SqlIdempotencyStore, scope=Scope.REQUEST, provides=IdempotencyStore)
    credentials = provide(
        SqlCredentialRepository, scope=Scope.REQUEST, provides=CredentialRepository
    )
    credential_directory = provide(
        SqlCredentialDirectory, scope=Scope.REQUEST, provides=CredentialDirectory
    )


async def _release(connection: AsyncConnection, *, rollback: bool) -> None:
    """Roll back whatever the scope did not commit (`rollback`: an autocommit connection has
    nothing to roll back) and return the connection to the pool.

    A lost database must not turn the scope's exit into a second error that hides the first
    (usually the DependencyUnavailableError the request already answers with): the pool
    discards a connection it cannot reset, and the failure goes to the log.
    """
    try:
        async with translate_errors():
            try:
                if rollback:
                    await connection.rollback()
            finally:
                await connection.close()
    except DependencyUnavailableError:
        _log.warning("database connection lost at the end of a scope; the pool discards it")

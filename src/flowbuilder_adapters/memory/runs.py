"""A run's short units of work over the in-memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from flowbuilder_adapters.memory.executions import MemoryExecutionRepository, MemoryOutbox
from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_adapters.memory.workflows import MemoryWorkflowRepository
from flowbuilder_core.executions.ports import RunTransaction, RunTransactions


class MemoryRunTransactions(RunTransactions):
    """Each call a fresh unit of work with its repositories; uncommitted writes are dropped."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[RunTransaction]:
        uow = MemoryUnitOfWork()
        yield RunTransaction(
            MemoryExecutionRepository(self._store, uow),
            MemoryWorkflowRepository(self._store, uow),
            MemoryOutbox(self._store, uow),
            uow,
        )

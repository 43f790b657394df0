"""Every port in memory, as one `Storage`: what a library user hands `FlowBuilder` first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from flowbuilder_adapters.memory.credentials import (
    MemoryCredentialDirectory,
    MemoryCredentialRepository,
)
from flowbuilder_adapters.memory.executions import (
    MemoryExecutionRepository,
    MemoryOutbox,
    MemoryRateLimiter,
)
from flowbuilder_adapters.memory.schedules import MemoryScheduleRepository
from flowbuilder_adapters.memory.secrets import MemorySecretStore
from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_adapters.memory.workflows import MemoryWorkflowRepository
from flowbuilder_core.executions.model import ExecutionRequested
from flowbuilder_core.library import Adapters, Storage
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.quotas import Quotas


class MemoryStorage(Storage):
    """The in-memory adapters over one `MemoryStore`: each call opens a `MemoryUnitOfWork`
    with repositories bound to it. The secret store and the rate limiters are shared by every
    unit of work, as a store outside the database is: executions requested at
    `rate_per_second` with `burst` per user, writes at the rate of `quotas`
    (`writes_per_second`, `write_burst`; give FlowBuilder the same `quotas`).

    Nothing is relayed: the outbox's committed messages (executions requested, retried, or
    handed a free slot) wait in `store.outbox` until `take_requests()` takes them.
    """

    def __init__(
        self,
        store: MemoryStore | None = None,
        *,
        clock: Clock | None = None,
        rate_per_second: float = 20,
        burst: int = 100,
        quotas: Quotas | None = None,
    ) -> None:
        quotas = quotas if quotas is not None else Quotas()
        self.store = store if store is not None else MemoryStore()
        self.secrets = MemorySecretStore(clock)
        self.rate_limiter = MemoryRateLimiter(self.store, rate_per_second, burst)
        self.write_rate_limiter = MemoryRateLimiter(
            self.store, quotas.writes_per_second, quotas.write_burst, "writes:"
        )

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Adapters]:
        uow = MemoryUnitOfWork()
        yield Adapters(
            uow=uow,
            workflows=MemoryWorkflowRepository(self.store, uow),
            credential_directory=MemoryCredentialDirectory(self.store),
            credentials=MemoryCredentialRepository(self.store, uow),
            secrets=self.secrets,
            executions=MemoryExecutionRepository(self.store, uow),
            outbox=MemoryOutbox(self.store, uow),
            rate_limiter=self.rate_limiter,
            write_rate_limiter=self.write_rate_limiter,
            schedules=MemoryScheduleRepository(self.store, uow),
        )

    def take_requests(self) -> list[ExecutionRequested]:
        """The outbox's committed messages, oldest first, removed from it: the executions to
        hand to `FlowBuilder.run`, as a relay and a worker would."""
        taken = list(self.store.outbox)
        self.store.outbox.clear()
        return taken

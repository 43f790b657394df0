"""A unit of work over the in-memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from flowbuilder_core.shared.uow import UnitOfWork


class MemoryUnitOfWork(UnitOfWork):
    """Collects staged changes and applies them all on `commit()`, or none if any check fails.

    Checks and changes run with no `await` between them, so on one event loop a commit is
    atomic, as a database transaction is. Inside `deferring_commit()` a `commit()` waits for
    the block's end.
    """

    def __init__(self) -> None:
        self._checks: list[Callable[[], None]] = []
        self._changes: list[Callable[[], None]] = []
        self._deferring = False

    def stage(self, change: Callable[[], None], check: Callable[[], None] | None = None) -> None:
        if check is not None:
            self._checks.append(check)
        self._changes.append(change)

    @asynccontextmanager
    async def deferring_commit(self) -> AsyncIterator[None]:
        self._deferring = True
        try:
            yield
        except BaseException:
            self._checks, self._changes = [], []
            raise
        finally:
            self._deferring = False
        await self.commit()

    async def commit(self) -> None:
        if self._deferring:
            return  # the block commits at its end
        checks, changes = self._checks, self._changes
        self._checks, self._changes = [], []
        for run_check in checks:
            run_check()
        for apply in changes:
            apply()

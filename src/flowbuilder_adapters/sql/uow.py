"""The unit of work over the scope's database connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_core.shared.uow import UnitOfWork


class SqlUnitOfWork(UnitOfWork):
    """One transaction on the scope's connection.

    `commit()` makes the scope's writes durable; the connection then begins a fresh transaction
    on its next statement (SQLAlchemy's autobegin), so the scope may keep working and commit
    again. Whatever is not committed when the scope ends is rolled back (`SqlProvider`).
    Inside `deferring_commit()` a `commit()` waits for the block's end.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._deferring = False
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the next commit succeeds (an outbox relay's wake-up, say)."""
        self._after_commit.append(callback)

    @asynccontextmanager
    async def deferring_commit(self) -> AsyncIterator[None]:
        self._deferring = True
        try:
            yield
        except BaseException:
            async with translate_errors():
                await self._connection.rollback()
            raise
        finally:
            self._deferring = False
        await self.commit()

    async def commit(self) -> None:
        if self._deferring:
            return  # the block commits at its end
        async with translate_errors():
            await self._connection.commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

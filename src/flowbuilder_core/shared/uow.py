"""The unit of work: nothing persists without `commit()`."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol


class UnitOfWork(Protocol):
    """One atomic change. Writes made through the repositories of the same scope become
    durable on `commit()`; leaving the scope without it discards them."""

    async def commit(self) -> None:
        """Make the scope's writes durable; inside `deferring_commit()`, at that block's end."""

    def deferring_commit(self) -> AbstractAsyncContextManager[None]:
        """A block whose writes all commit together when it ends, or roll back if it raises.

        Inside it, `commit()` is deferred to the end of the block. A driving adapter uses it to
        add writes of its own to the transaction of a use case that commits by itself: the
        recorded result of an idempotent request commits with the use case's writes, or
        neither does.
        """
        ...

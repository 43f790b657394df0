"""The unit of work: nothing persists without `commit()`."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol


class UnitOfWork(Protocol):
    """One atomic change. Writes made through the repositories of the same scope become
    durable on `commit()`; leaving the scope without it discards them."""

    async def commit(self) -> None: ...

    def held(self) -> AbstractAsyncContextManager[None]:
        """A block whose writes commit together when it ends, or roll back if it raises.

        Inside it `commit()` commits nothing yet, so a caller can add its own writes (the
        recorded response of an idempotent request) to the transaction of a use case's.
        """
        ...

"""The unit of work: nothing persists without `commit()`."""

from __future__ import annotations

from typing import Protocol


class UnitOfWork(Protocol):
    """One atomic change. Writes made through the repositories of the same scope become
    durable on `commit()`; leaving the scope without it discards them."""

    async def commit(self) -> None: ...

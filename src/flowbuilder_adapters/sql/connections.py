"""Connections for scopes: one per scope, handed out first come, first served."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum
from typing import NewType

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowbuilder_adapters.sql.database import POOL_TIMEOUT_S
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_core.shared.errors import DependencyUnavailableError

_log = logging.getLogger(__name__)


class Access(Enum):
    """What a scope does with the database: a read-only scope, or one whose single statement
    is atomic on its own, runs without a transaction (no BEGIN and COMMIT round trips)."""

    READ_ONLY = "read-only"
    READ_WRITE = "read-write"
    ONE_STATEMENT = "one-statement"


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


@asynccontextmanager
async def scope_connection(
    engine: AsyncEngine, reading: ReadingEngine, gate: ConnectionGate, access: Access
) -> AsyncIterator[AsyncConnection]:
    """One connection for a scope, after waiting at the gate: in one transaction that is
    rolled back unless committed, or, for a read-only or one-statement scope, an autocommit
    one."""
    read_only = access is not Access.READ_WRITE
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


def reading_engine(engine: AsyncEngine) -> ReadingEngine:
    return ReadingEngine(engine.execution_options(isolation_level="AUTOCOMMIT"))


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

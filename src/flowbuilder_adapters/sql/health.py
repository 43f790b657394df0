"""Readiness of the SQL database, and what the outbox relay knows of the queue."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbuilder_adapters.relay import OutboxRelay
from flowbuilder_core.shared.health import HealthProbe, Readiness

_log = logging.getLogger(__name__)


class SqlHealthProbe(HealthProbe):
    """`SELECT 1` through the pool, bounded in time so that a hung database answers False."""

    def __init__(
        self, engine: AsyncEngine, relay: OutboxRelay | None = None, timeout_s: float = 2.0
    ) -> None:
        self._engine, self._relay, self._timeout_s = engine, relay, timeout_s

    async def check(self) -> Readiness:
        try:
            async with asyncio.timeout(self._timeout_s), self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means not ready; the reason goes to the log
            _log.warning("database readiness check failed: %s", type(exc).__name__)
            return Readiness(database=False)
        if self._relay is None:
            return Readiness(database=True)
        queue = {None: "unknown", True: "up", False: "down"}[self._relay.queue_up]
        try:
            async with asyncio.timeout(self._timeout_s):
                backlog = await self._relay.backlog()
        except Exception:
            backlog = None
        return Readiness(database=True, queue=queue, outbox_backlog=backlog)

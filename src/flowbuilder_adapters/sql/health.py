"""Readiness of the SQL database."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbuilder_core.shared.health import HealthProbe

_log = logging.getLogger(__name__)


class SqlHealthProbe(HealthProbe):
    """`SELECT 1` through the pool, bounded in time so that a hung database answers False."""

    def __init__(self, engine: AsyncEngine, timeout_s: float = 2.0) -> None:
        self._engine, self._timeout_s = engine, timeout_s

    async def database_ready(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s), self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means not ready; the reason goes to the log
            _log.warning("database readiness check failed: %s", type(exc).__name__)
            return False
        return True

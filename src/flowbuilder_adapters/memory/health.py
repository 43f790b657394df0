"""Readiness of the in-memory adapters: memory is always there."""

from __future__ import annotations

from flowbuilder_core.shared.health import HealthProbe


class MemoryHealthProbe(HealthProbe):
    async def database_ready(self) -> bool:
        return True

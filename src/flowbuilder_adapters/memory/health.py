"""Readiness of the in-memory adapters: memory is always there."""

from __future__ import annotations

from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_core.shared.health import HealthProbe, Readiness


class MemoryHealthProbe(HealthProbe):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def check(self) -> Readiness:
        return Readiness(database=True, outbox_backlog=len(self._store.outbox))

"""Idempotency keys in memory."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from flowbuilder_adapters.memory.store import IdempotencyEntry, MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_core.shared.idempotency import (
    LEASE,
    RETENTION,
    IdempotencyStore,
    IdempotentRequest,
    RecordedResult,
    Refusal,
)


class MemoryIdempotencyStore(IdempotencyStore):
    """Claims take effect with the unit of work's commit, as in the database."""

    def __init__(self, store: MemoryStore, uow: MemoryUnitOfWork) -> None:
        self._entries, self._uow = store.idempotency, uow

    async def claim(
        self, request: IdempotentRequest, now: datetime
    ) -> RecordedResult | Refusal | None:
        key = (request.owner, request.key)
        entry = self._entries.get(key)
        fresh = entry is None or entry.claimed_at < now - RETENTION
        abandoned = entry is not None and entry.result is None and entry.claimed_at < now - LEASE
        if fresh or abandoned:
            self._put(key, IdempotencyEntry(request.fingerprint, now))
            return None
        assert entry is not None
        if entry.fingerprint != request.fingerprint:
            return Refusal.KEY_REUSED
        if entry.result is None:
            return Refusal.IN_FLIGHT
        return entry.result

    async def complete(
        self, request: IdempotentRequest, result: RecordedResult, now: datetime
    ) -> None:
        key = (request.owner, request.key)
        entry = self._entries.get(key) or IdempotencyEntry(request.fingerprint, now)
        self._put(key, dataclasses.replace(entry, result=result))

    async def release(self, request: IdempotentRequest) -> None:
        key = (request.owner, request.key)

        def forget() -> None:
            self._entries.pop(key, None)

        self._uow.stage(forget)

    def _put(self, key: tuple[str, str], entry: IdempotencyEntry) -> None:
        self._uow.stage(lambda: self._entries.__setitem__(key, entry))

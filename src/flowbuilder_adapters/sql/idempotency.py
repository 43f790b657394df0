"""Idempotency keys over SQL, in the scope's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.dialect import insert_unless_exists
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.tables import idempotency_keys
from flowbuilder_core.shared.idempotency import (
    LEASE,
    RETENTION,
    IdempotencyStore,
    IdempotentRequest,
    RecordedResult,
    Refusal,
)

_TABLE = idempotency_keys


class SqlIdempotencyStore(IdempotencyStore):
    """A claim is an INSERT that does nothing when the key exists; taking over an expired or
    abandoned claim is an UPDATE conditional on the claim time read, so two racing requests
    cannot both win."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def claim(
        self, request: IdempotentRequest, now: datetime
    ) -> RecordedResult | Refusal | None:
        key = _key(request)
        async with translate_errors():
            await self._connection.execute(
                delete(_TABLE).where(
                    _TABLE.c.owner_id == request.owner, _TABLE.c.claimed_at < now - RETENTION
                )
            )
            inserted = await self._connection.execute(
                insert_unless_exists(self._connection, _TABLE).values(
                    **key, fingerprint=request.fingerprint, claimed_at=now
                )
            )
            if inserted.rowcount == 1:
                return None
            row = (await self._connection.execute(select(_TABLE).where(*_where(key)))).one()
            if row.completed_at is None and row.claimed_at < now - LEASE:
                return await self._take_over(request, row, now)
        return _decide(request, row)

    async def _take_over(
        self, request: IdempotentRequest, row: Row[Any], now: datetime
    ) -> Refusal | None:
        taken = await self._connection.execute(
            update(_TABLE)
            .where(*_where(_key(request)), _TABLE.c.claimed_at == row.claimed_at)
            .values(fingerprint=request.fingerprint, claimed_at=now)
        )
        if taken.rowcount == 1:
            return None
        return Refusal.IN_FLIGHT

    async def complete(
        self, request: IdempotentRequest, result: RecordedResult, now: datetime
    ) -> None:
        async with translate_errors():
            await self._connection.execute(
                update(_TABLE)
                .where(*_where(_key(request)), _TABLE.c.fingerprint == request.fingerprint)
                .values(completed_at=now, result=result.payload)
            )

    async def release(self, request: IdempotentRequest) -> None:
        async with translate_errors():
            await self._connection.execute(
                delete(_TABLE).where(
                    *_where(_key(request)),
                    _TABLE.c.fingerprint == request.fingerprint,
                    _TABLE.c.completed_at.is_(None),
                )
            )


def _key(request: IdempotentRequest) -> dict[str, str]:
    return {"owner_id": request.owner, "key": request.key}


def _where(key: dict[str, str]) -> list[Any]:
    return [and_(_TABLE.c.owner_id == key["owner_id"], _TABLE.c.key == key["key"])]


def _decide(request: IdempotentRequest, row: Row[Any]) -> RecordedResult | Refusal:
    if row.fingerprint != request.fingerprint:
        return Refusal.KEY_REUSED
    if row.completed_at is None:
        return Refusal.IN_FLIGHT
    return RecordedResult(bytes(row.result))

"""The per-user token buckets over SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, bindparam, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningInsert

from flowbuilder_adapters.sql.dialect import insert_unless_exists
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.tables import rate_limit_buckets
from flowbuilder_core.executions.ports import RateLimiter
from flowbuilder_core.executions.rate import Bucket, RateLimit
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.quotas import WriteRateLimiter


def _take_token() -> ReturningInsert[Any]:
    """Postgres: create the owner's bucket with one token taken, or refill it by the time
    since `updated_at` and take one if there is one (no row comes back when there is not).
    This is `RateLimit.take`'s formula (see `flowbuilder_core.executions.rate`), in SQL."""
    bucket = rate_limit_buckets.c
    now = bindparam("b_now", type_=DateTime(timezone=True))
    burst, rate = bindparam("b_burst", type_=Float), bindparam("b_rate", type_=Float)
    elapsed = func.greatest(0.0, func.extract("epoch", now - bucket.updated_at))
    refilled = func.least(burst, bucket.tokens + elapsed * rate)
    return (
        postgresql.insert(rate_limit_buckets)
        .values(tokens=burst - 1)
        .on_conflict_do_update(
            index_elements=[bucket.owner_id],
            set_={"tokens": refilled - 1, "updated_at": func.greatest(now, bucket.updated_at)},
            where=refilled >= 1,
        )
        .returning(bucket.tokens)
    )


_TAKE_TOKEN = _take_token()


class SqlRateLimiter(RateLimiter, WriteRateLimiter):
    """A token bucket row per user, read and written in the scope's transaction (the row lock
    on Postgres makes concurrent requests of one user take turns). `kind` tells the buckets of
    different limits apart: a bucket's key is `<kind><owner>` (Clerk user ids never hold a
    colon, so the keys of two kinds never meet)."""

    def __init__(
        self, connection: AsyncConnection, rate_per_second: float, burst: int, kind: str = ""
    ) -> None:
        self._connection, self._limit = connection, RateLimit(rate_per_second, burst)
        self._kind = kind

    async def take(self, owner: UserId, now: datetime) -> float | None:
        owner = UserId(self._kind + owner)
        async with translate_errors():
            if self._connection.dialect.name == "postgresql":
                if await self._take_in_one_statement(owner, now):
                    return None
            else:
                await self._connection.execute(
                    insert_unless_exists(self._connection, rate_limit_buckets).values(
                        owner_id=owner, tokens=float(self._limit.burst), updated_at=now
                    )
                )
            row = (
                await self._connection.execute(
                    select(rate_limit_buckets).where(rate_limit_buckets.c.owner_id == owner)
                )
            ).one()
            taken = self._limit.take(Bucket(row.tokens, row.updated_at), now)
            if not isinstance(taken, Bucket):
                return taken
            await self._connection.execute(
                update(rate_limit_buckets)
                .where(rate_limit_buckets.c.owner_id == owner)
                .values(tokens=taken.tokens, updated_at=taken.updated_at)
            )
        return None

    async def _take_in_one_statement(self, owner: UserId, now: datetime) -> bool:
        """Postgres: create, refill and take in one upsert (one round trip, and the row lock
        makes concurrent requests of one user take turns). False when the bucket is empty."""
        parameters = {
            "owner_id": owner,
            "updated_at": now,
            "b_now": now,
            "b_burst": float(self._limit.burst),
            "b_rate": float(self._limit.per_second),
        }
        return (await self._connection.execute(_TAKE_TOKEN, parameters)).first() is not None

"""The token bucket behind the execution rate limit: its one formula, as a pure function.

A bucket holds at most `burst` tokens and gains `per_second` tokens a second. Holding `tokens`
as of `updated_at`, at `now` it holds

    refilled = min(burst, tokens + max(0, now - updated_at) * per_second)

Taking a token needs `refilled >= 1` and leaves `refilled - 1` as of `max(now, updated_at)`, so
a clock that steps back never refills the same time twice. Otherwise the caller waits
`(1 - refilled) / per_second` seconds. A bucket never used before is full.

The adapters take tokens through `RateLimit.take`, but for one place: Postgres takes a token in
a single upsert, which writes this formula in SQL (`flowbuilder_adapters.sql.executions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Bucket:
    """One user's bucket: `tokens` left as of `updated_at`."""

    tokens: float
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_second: float
    burst: float

    def take(self, bucket: Bucket | None, now: datetime) -> Bucket | float:
        """`bucket` (None: never used) after taking one token at `now`; or, when it has none,
        the seconds until it has one."""
        if bucket is None:
            bucket = Bucket(self.burst, now)
        elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
        refilled = min(self.burst, bucket.tokens + elapsed * self.per_second)
        if refilled < 1:
            return (1 - refilled) / self.per_second
        return Bucket(refilled - 1, max(now, bucket.updated_at))

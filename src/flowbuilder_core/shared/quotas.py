"""What one user may store, and how fast they may change it (docs/API.md §4, "Limits").

A signed-in user is not trusted to be gentle: every stored object is bounded per user, and
writes are rate-limited per user, so that one user's workload cannot grow without end at the
others' (and the operator's) expense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from flowbuilder_core.shared.errors import ConflictError, RateLimitedError
from flowbuilder_core.shared.ids import UserId


@dataclass(frozen=True, slots=True)
class Quotas:
    """Per-user limits: live workflows and credentials held, versions kept per workflow (older
    ones are pruned, except those an execution ran), and the write rate."""

    max_workflows: int = 1000
    max_credentials: int = 500
    versions_kept: int = 100
    writes_per_second: float = 10.0
    write_burst: int = 100


class QuotaExceededError(ConflictError):
    """The caller holds as many objects of a kind as their quota allows; `limit` says how
    many that is."""

    code = "quota-exceeded"

    def __init__(self, detail: str, limit: int) -> None:
        super().__init__(detail)
        self.limit = limit

    def extensions(self) -> dict[str, object]:
        return {"limit": self.limit}


class WriteRateLimiter(Protocol):
    """A token bucket per user for creates, replaces and deletes, shared by every replica.
    Taking a token also makes one user's writes take turns (a row lock on a database), so a
    quota counted after it holds."""

    async def take(self, owner: UserId, now: datetime) -> float | None:
        """Take one token: None when taken, else the seconds until one is available."""


def refuse_if_limited(wait: float | None, what: str) -> None:
    """RateLimitedError when a limiter answered a wait (`Retry-After` in whole seconds)."""
    if wait is not None:
        raise RateLimitedError(f"Too many {what}; slow down.", retry_after=max(1, math.ceil(wait)))


async def take_write(limiter: WriteRateLimiter, owner: UserId, now: datetime) -> None:
    """Take one of the owner's write tokens, or refuse the write."""
    refuse_if_limited(await limiter.take(owner, now), "changes requested")


def refuse_past(count: int, limit: int, kind: str) -> None:
    """QuotaExceededError when an owner already holds `limit` objects of `kind`."""
    if count >= limit:
        raise QuotaExceededError(
            f"You have {limit} {kind}, the most allowed; delete one first.", limit
        )

"""Readiness: can the service reach what its requests need?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Readiness:
    """The database decides readiness; the queue and the outbox backlog are reported only (the
    outbox exists so that a queue outage does not take the API down). `queue` is "up", "down"
    or "unknown" (nothing sent yet); `outbox_backlog` counts undelivered messages, up to a cap."""

    database: bool
    queue: str = "unknown"
    outbox_backlog: int | None = None


class HealthProbe(Protocol):
    """Answers within a couple of seconds and never raises."""

    async def check(self) -> Readiness: ...

"""Readiness: can the service reach what every request needs?"""

from __future__ import annotations

from typing import Protocol


class HealthProbe(Protocol):
    """Answers quickly (within a couple of seconds) whether the database can serve requests.
    Never raises: an unreachable database is `False`."""

    async def database_ready(self) -> bool: ...

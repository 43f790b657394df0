"""Time, behind a port so that tests control it. The core never calls `datetime.now()`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """The source of the current time: an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)

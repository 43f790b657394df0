"""Long-running tasks of a process (the outbox relay; in embedded mode the worker too)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

_log = logging.getLogger(__name__)

Service = Callable[[asyncio.Event], Awaitable[None]]
"""Runs until the event is set, then returns."""


class Background:
    """Starts services with the application and stops them with it: every service is told to
    stop at once, each gets `grace_seconds` to return (then it is cancelled), and once all have
    returned the `afterwards` steps run, in order."""

    def __init__(
        self,
        services: Sequence[Service] = (),
        *,
        grace_seconds: float = 30.0,
        afterwards: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._services = list(services)
        self._grace, self._afterwards = grace_seconds, list(afterwards)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(_guarded(s, self._stop)) for s in self._services]

    async def stop(self) -> None:
        self._stop.set()
        for task in reversed(self._tasks):
            try:
                await asyncio.wait_for(asyncio.shield(task), self._grace)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []
        for step in self._afterwards:
            try:
                await step()
            except Exception:
                _log.exception("a shutdown step failed")


async def _guarded(service: Service, stop: asyncio.Event) -> None:
    try:
        await service(stop)
    except asyncio.CancelledError:
        raise
    except Exception:
        _log.exception("background service stopped by an error")


def every(seconds: float, call: Callable[[], Awaitable[object]], what: str) -> Service:
    """A service that awaits `call()` every `seconds` until stopped. A failed call is logged
    and tried again next time: a periodic job must outlive a database failover."""

    async def service(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await call()
            except Exception:
                _log.warning("%s failed; will try again", what, exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)

    return service

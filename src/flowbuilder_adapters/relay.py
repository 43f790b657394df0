"""The outbox relay: delivers queued-execution messages from the outbox table to the queue."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.outbox import delete_outbox_rows
from flowbuilder_adapters.sql.tables import outbox
from flowbuilder_core.executions.model import ExecutionRequested
from flowbuilder_core.executions.ports import ExecutionQueue
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.errors import DependencyUnavailableError

_log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(minutes=5)


def _backoff(attempts: int) -> timedelta:
    return min(MAX_BACKOFF, timedelta(seconds=2 ** min(attempts, 12)))


class OutboxRelay:
    """Delivers outbox rows to the queue, at least once.

    - `kick()` after an execute commits delivers at once; a sweep every `sweep_seconds` picks
      up whatever failed, each row retried with exponential backoff (1 s, 2 s, ... 5 min), so
      a queue outage delays messages and loses none.
    - Several API replicas may relay one outbox: on Postgres each batch is claimed with
      `FOR UPDATE SKIP LOCKED`, so a row is sent by one relay at a time; a crash after sending
      and before deleting the row sends it again, which consumers tolerate (they are
      idempotent: an execution no longer queued is skipped).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        queue: ExecutionQueue,
        clock: Clock,
        *,
        batch_size: int = 50,
        sweep_seconds: float = 2.0,
    ) -> None:
        self._engine, self._queue, self._clock = engine, queue, clock
        self._batch_size, self._sweep_seconds = batch_size, sweep_seconds
        self._wake = asyncio.Event()
        self.queue_up: bool | None = None

    def kick(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set, then flush; never raises (failures are logged and
        retried)."""
        await self._relay(stop)
        await self.flush()

    async def flush(self, seconds: float = 5.0) -> None:
        """Deliver what is due now, within `seconds`: on the way out, so that the executions
        the last requests committed do not wait for another replica's sweep (or, with one
        replica, for the next start). What is left stays in the outbox for the next relay."""
        try:
            async with asyncio.timeout(seconds):
                while await self.deliver_due() == self._batch_size:
                    pass
        except Exception:  # the queue or the database is down, or time is up: the rows stay
            _log.warning("outbox relay: could not flush on the way out", exc_info=True)

    async def _relay(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                while await self.deliver_due() == self._batch_size and not stop.is_set():
                    pass
            except DependencyUnavailableError as exc:
                _log.warning("outbox relay: %s Retrying.", exc.detail)
            except Exception:
                _log.warning("outbox relay pass failed; retrying", exc_info=True)
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(
                waiters, timeout=self._sweep_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()

    async def deliver_due(self) -> int:
        """Send one batch of due rows; the number sent."""
        now = self._clock.now()
        query = (
            select(outbox)
            .where(outbox.c.available_at <= now)
            .order_by(outbox.c.available_at)
            .limit(self._batch_size)
        )
        if self._engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        sent = []
        async with translate_errors(), self._engine.begin() as connection:
            rows = (await connection.execute(query)).all()
            messages = {row.id: ExecutionRequested.from_json(row.message) for row in rows}
            try:
                delivered = await self._queue.send_many(list(messages.values())) if rows else set()
            except Exception as exc:
                _log.warning("queue send failed (%s); will retry", type(exc).__name__)
                delivered = set()
            if rows:
                self.queue_up = bool(delivered)
            sent = [row.id for row in rows if messages[row.id].execution_id in delivered]
            for row in rows:
                if messages[row.id].execution_id in delivered:
                    continue
                await connection.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id)
                    .values(attempts=row.attempts + 1, available_at=now + _backoff(row.attempts))
                )
            if sent:
                await delete_outbox_rows(connection, sent)
        return len(sent)

    async def backlog(self, cap: int = 1000) -> int:
        """Undelivered rows, counted up to `cap` (a bounded count, whatever the backlog)."""
        async with translate_errors(), self._engine.connect() as connection:
            rows = (await connection.execute(select(outbox.c.id).limit(cap))).all()
        return len(rows)

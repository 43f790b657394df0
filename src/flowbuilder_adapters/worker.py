"""The queue consumer: hands each message's execution to `RunExecution` (a driving adapter,
like HTTP). How a run goes is the core's business; this module only deals with the queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from flowbuilder_adapters.log_context import running
from flowbuilder_core.executions.model import ExecutionId, RunOutcome
from flowbuilder_core.executions.ports import Delivery, ExecutionQueue
from flowbuilder_core.shared.errors import DependencyUnavailableError

_log = logging.getLogger(__name__)

RunById = Callable[[ExecutionId], Awaitable[RunOutcome | None]]
"""Runs one execution to its end (`RunExecution`): how it ended, or None when it did not run
(not queued any more, or parked)."""


class Worker:
    """Runs up to `concurrency` executions at once from `queue`.

    - While a run is in progress its message stays invisible (`extend` every
      `extend_seconds`); the message is acknowledged only once the run has returned, so a
      worker that dies loses no run: the message comes back, and a claimed run whose heartbeat
      stopped is finished as `worker_lost` by the lost-run sweep (run by every API and worker).
    - `stop` set (SIGTERM): no new messages (those a long poll still brings are given back at
      once); runs in progress get `grace_seconds` to finish, then are cancelled, which releases
      them (their executions go back to queued), and their messages are made visible again at
      once (not acknowledged) for another worker to take.
    - A message that cannot be decoded is left alone: after the queue's maximum receive count
      it goes to the dead-letter queue. A run that fails outside its nodes (a lost database)
      is not acknowledged either, so its message comes back.
    """

    def __init__(
        self,
        queue: ExecutionQueue,
        run: RunById,
        *,
        concurrency: int = 4,
        visibility_seconds: int = 60,
        extend_seconds: float = 15.0,
        poll_seconds: float = 10.0,
        grace_seconds: float = 25.0,
        cancellable_polls: bool = False,
        on_slots: Callable[[int, int], None] | None = None,
    ) -> None:
        """`cancellable_polls`: the queue takes nothing for a receive cancelled on our side
        (the in-process queue), so a stopping worker need not wait for its last poll.
        `on_slots(busy, concurrency)` hears each change of the busy run slots (metrics)."""
        self._on_slots = on_slots if on_slots is not None else (lambda busy, of: None)
        self._queue, self._run = queue, run
        self._concurrency = concurrency
        self._visibility, self._extend_every = visibility_seconds, extend_seconds
        self._poll, self._grace = poll_seconds, grace_seconds
        self._cancellable_polls = cancellable_polls

    async def run(self, stop: asyncio.Event) -> None:
        runs: set[asyncio.Task[None]] = set()
        last_poll: list[asyncio.Future[Sequence[Delivery]]] = []
        stopping = asyncio.ensure_future(stop.wait())

        def finished(task: asyncio.Task[None]) -> None:
            runs.discard(task)
            self._on_slots(len(runs), self._concurrency)

        self._on_slots(0, self._concurrency)
        try:
            while not stop.is_set():
                if len(runs) >= self._concurrency:
                    await asyncio.wait({*runs, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    continue
                deliveries = await self._receive(self._concurrency - len(runs), stop, last_poll)
                for delivery in deliveries:
                    task = asyncio.create_task(self._handle(delivery))
                    runs.add(task)
                    task.add_done_callback(finished)
                self._on_slots(len(runs), self._concurrency)
        finally:
            stopping.cancel()
            returned = asyncio.gather(*(self._give_back_polled(poll) for poll in last_poll))
            if runs:
                _, late = await asyncio.wait(runs, timeout=self._grace)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            await returned

    async def _receive(
        self,
        room: int,
        stop: asyncio.Event,
        last_poll: list[asyncio.Future[Sequence[Delivery]]],
    ) -> list[Delivery]:
        """The next messages, or none when told to stop. A long poll still open then is not
        cancelled but left in `last_poll`: a poll cancelled on our side may still take
        messages on the queue's side, which would stay hidden for a whole visibility timeout
        (a released run's among them); what it brings is given back instead."""
        receiving = asyncio.ensure_future(self._queue.receive(min(room, 10), self._poll))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not receiving.done():
            if self._cancellable_polls:
                receiving.cancel()
            last_poll.append(receiving)
            return []
        try:
            return list(receiving.result())
        except DependencyUnavailableError:
            _log.warning("the queue is unavailable; retrying in a few seconds")
        except Exception:  # a misconfigured queue, say: keep saying so rather than go idle
            _log.exception("receiving from the queue failed; retrying in a few seconds")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)
        return []

    async def _give_back_polled(self, poll: asyncio.Future[Sequence[Delivery]]) -> None:
        """The messages of the poll that was open when the worker stopped, visible again."""
        await asyncio.wait({poll})  # raises only if this task is cancelled, not the poll
        if poll.cancelled() or poll.exception() is not None:
            return  # the poll failed or was cancelled: it took nothing
        for delivery in poll.result():
            await self._give_back(delivery)

    async def _handle(self, delivery: Delivery) -> None:
        message = delivery.message
        if message is None:
            _log.error("an undecodable queue message was received; leaving it to the DLQ")
            return
        with running(message.execution_id):  # every line about the run names its execution
            keep_invisible = asyncio.create_task(self._keep_invisible(delivery))
            try:
                outcome = await self._run(message.execution_id)
            except asyncio.CancelledError:
                # The run released its execution first (RunExecution), so whoever receives the
                # message next finds it queued and runs it.
                await asyncio.shield(self._give_back(delivery))
                _log.info("run released: back in the queue")
                raise
            except Exception:
                _log.exception("a run failed outside its nodes; the message will come back")
                return
            finally:
                keep_invisible.cancel()
            ended = "not run (no longer queued, or parked)" if outcome is None else outcome.status
            _log.info("run ended: %s", ended)
            await self._queue.ack(delivery)

    async def _give_back(self, delivery: Delivery) -> None:
        """Make the message visible again now. If the queue cannot be reached, it comes back
        anyway when its visibility timeout ends."""
        try:
            await self._queue.extend(delivery, 0)
        except Exception:
            _log.warning("could not give a message back; it returns after its timeout")

    async def _keep_invisible(self, delivery: Delivery) -> None:
        """Each extension on its own: a queue outage must not make a live run look lost."""
        while True:
            try:
                await self._queue.extend(delivery, self._visibility)
            except Exception:
                _log.warning("could not extend the message's visibility; will try again")
            await asyncio.sleep(self._extend_every)

"""The queue consumer: hands each message's execution to `RunExecution` (a driving adapter,
like HTTP). How a run goes is the core's business; this module only deals with the queue."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from flowbuilder_adapters.log_context import running
from flowbuilder_core.executions.model import ExecutionId, RunOutcome
from flowbuilder_core.executions.ports import Delivery, ExecutionQueue
from flowbuilder_core.shared.errors import DependencyUnavailableError

_log = logging.getLogger(__name__)

MAX_RECEIVE = 10
"""Messages asked for in one receive: SQS's most."""

RunById = Callable[[ExecutionId], Awaitable[RunOutcome | None]]
"""Runs one execution to its end (`RunExecution`): how it ended, or None when it did not run
(not queued any more, or parked)."""


class Worker:
    """Runs up to `concurrency` executions at once from `queue`.

    - Messages are received up to ten a call, `prefetch` more than the free run slots, so a
      slot that frees starts its next run without waiting for the queue.
    - While a message is held (running, or prefetched) it stays invisible: one call every
      `extend_seconds` extends all of them (`extend_many`). It is acknowledged only once its
      run has returned, so a worker that dies loses no run: the message comes back, and a
      claimed run whose heartbeat stopped is finished as `worker_lost` by the lost-run sweep
      (run by every API and worker). Acknowledgements that pile up while one is in flight go
      together in the next call (`ack_many`).
    - `stop` set (SIGTERM): no new messages (those a long poll still brings, and those
      prefetched, are given back at once); runs in progress get `grace_seconds` to finish,
      then are cancelled, which releases them (their executions go back to queued), and their
      messages are made visible again at once (not acknowledged) for another worker to take.
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
        prefetch: int = 2,
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
        self._concurrency, self._prefetch = concurrency, max(prefetch, 0)
        self._visibility, self._extend_every = visibility_seconds, extend_seconds
        self._poll, self._grace = poll_seconds, grace_seconds
        self._cancellable_polls = cancellable_polls
        self._held: dict[int, Delivery] = {}  # by id(): received, not yet acked or given back
        self._acks: list[Delivery] = []
        self._acking: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        runs: set[asyncio.Task[None]] = set()
        ready: collections.deque[Delivery] = collections.deque()
        receiving: asyncio.Future[Sequence[Delivery]] | None = None
        stopping = asyncio.ensure_future(stop.wait())
        keeping = asyncio.create_task(self._keep_invisible())

        def finished(task: asyncio.Task[None]) -> None:
            runs.discard(task)
            self._on_slots(len(runs), self._concurrency)

        self._on_slots(0, self._concurrency)
        try:
            while not stop.is_set():
                while ready and len(runs) < self._concurrency:
                    task = asyncio.create_task(self._handle(ready.popleft()))
                    runs.add(task)
                    task.add_done_callback(finished)
                self._on_slots(len(runs), self._concurrency)
                room = self._concurrency + self._prefetch - len(runs) - len(ready)
                if receiving is None and room > 0:
                    receiving = asyncio.ensure_future(
                        self._queue.receive(min(room, MAX_RECEIVE), self._poll)
                    )
                # A run ending matters when a prefetched message waits for its slot, or when
                # there is no room to receive into until one does.
                waking = {t for t in runs if not t.done()} if ready or receiving is None else set()
                waits: set[asyncio.Future[Any]] = {stopping, *waking}
                if receiving is not None:
                    waits.add(receiving)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if receiving is not None and receiving.done():
                    received, receiving = await self._received(receiving, stop), None
                    self._held.update((id(d), d) for d in received)
                    ready.extend(received)
        finally:
            stopping.cancel()
            returned = None
            if receiving is not None:
                if not receiving.done() and self._cancellable_polls:
                    receiving.cancel()
                returned = asyncio.ensure_future(self._give_back_polled(receiving))
            await self._give_back(list(ready))
            if runs:
                _, late = await asyncio.wait(runs, timeout=self._grace)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            keeping.cancel()  # only now: runs in their grace period are held too
            if returned is not None:
                await returned
            if self._acking is not None:
                await asyncio.gather(self._acking, return_exceptions=True)

    async def _received(
        self, receiving: asyncio.Future[Sequence[Delivery]], stop: asyncio.Event
    ) -> list[Delivery]:
        """What a finished receive brought; after a failure, nothing, once a pause has passed
        (or the worker is told to stop)."""
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
        """The messages of the poll that was open when the worker stopped, visible again. The
        poll is not cancelled (unless the queue takes nothing for a cancelled one): a poll
        cancelled on our side may still take messages on the queue's side, which would stay
        hidden for a whole visibility timeout (a released run's among them)."""
        await asyncio.wait({poll})  # raises only if this task is cancelled, not the poll
        if poll.cancelled() or poll.exception() is not None:
            return  # the poll failed or was cancelled: it took nothing
        await self._give_back(list(poll.result()))

    async def _handle(self, delivery: Delivery) -> None:
        message = delivery.message
        if message is None:
            self._held.pop(id(delivery), None)  # left alone, for the dead-letter queue
            _log.error("an undecodable queue message was received; leaving it to the DLQ")
            return
        with running(message.execution_id):  # every line about the run names its execution
            try:
                outcome = await self._run(message.execution_id)
            except asyncio.CancelledError:
                # The run released its execution first (RunExecution), so whoever receives the
                # message next finds it queued and runs it.
                await asyncio.shield(self._give_back([delivery]))
                _log.info("run released: back in the queue")
                raise
            except Exception:
                self._held.pop(id(delivery), None)
                _log.exception("a run failed outside its nodes; the message will come back")
                return
            ended = "not run (no longer queued, or parked)" if outcome is None else outcome.status
            _log.info("run ended: %s", ended)
            self._ack(delivery)

    def _ack(self, delivery: Delivery) -> None:
        """Acknowledge now, or with the next batch if an acknowledgement is in flight."""
        self._held.pop(id(delivery), None)
        self._acks.append(delivery)
        if self._acking is None or self._acking.done():
            self._acking = asyncio.create_task(self._send_acks())

    async def _send_acks(self) -> None:
        while self._acks:
            batch, self._acks = self._acks, []
            try:
                await self._queue.ack_many(batch)
            except Exception:
                _log.warning("could not acknowledge %d message(s); they will come back", len(batch))

    async def _give_back(self, deliveries: list[Delivery]) -> None:
        """Make the messages visible again now. If the queue cannot be reached, they come back
        anyway when their visibility timeout ends."""
        for delivery in deliveries:
            self._held.pop(id(delivery), None)
        if not deliveries:
            return
        try:
            await self._queue.extend_many(deliveries, 0)
        except Exception:
            _log.warning("could not give messages back; they return after their timeout")

    async def _keep_invisible(self) -> None:
        """Every held message extended together; a failure is retried at the next turn, well
        before the timeout: a queue outage must not make a live run look lost."""
        while True:
            await asyncio.sleep(self._extend_every)
            held = list(self._held.values())
            if not held:
                continue
            try:
                await self._queue.extend_many(held, self._visibility)
            except Exception:
                _log.warning("could not extend the messages' visibility; will try again")

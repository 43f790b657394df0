"""The queue consumer: claims executions and runs them (a driving adapter, like HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from dishka import AsyncContainer

from flowbuilder_core.credentials.use_cases import ResolveCredential
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.model import (
    ExecutionError,
    ExecutionId,
    ExecutionStatus,
    StepResult,
)
from flowbuilder_core.executions.ports import (
    CredentialResolver,
    Delivery,
    ExecutionQueue,
    ResolvedSecret,
)
from flowbuilder_core.executions.use_cases import (
    FinishExecution,
    FinishLostExecutions,
    Outcome,
    RecordStep,
    StartExecution,
)
from flowbuilder_core.shared.errors import DependencyUnavailableError
from flowbuilder_core.shared.ids import UserId

_log = logging.getLogger(__name__)
_STATUS_FRESH_SECONDS = 0.5
T = TypeVar("T")
U = TypeVar("U")


@dataclass
class _Seen:
    status: ExecutionStatus | None
    at: float


class ScopedCredentialResolver(CredentialResolver):
    """Resolves a credential in a scope of its own (a short transaction, never held by a run)."""

    def __init__(self, container: AsyncContainer) -> None:
        self._container = container

    async def resolve(self, owner: UserId, credential_id: uuid.UUID) -> ResolvedSecret:
        async with self._container() as scope:
            resolved = await (await scope.get(ResolveCredential))(owner, credential_id)
        return ResolvedSecret(resolved.credential.type, resolved.data)


class Worker:
    """Runs up to `concurrency` executions at once from `queue`.

    - A run holds no database connection: each step, heartbeat and status change is its own
      short transaction, so a slow node blocks nobody (embedded SQLite has one connection).
    - While a run is in progress its message stays invisible (`extend`) and its heartbeat
      fresh; the message is acknowledged only after the outcome is recorded, so a worker that
      dies loses no run: the message returns, and a claimed run whose heartbeat stops is
      finished as `worker_lost` by `sweep_lost_executions` (run by every API and worker).
    - `stop` set (SIGTERM): no new messages; runs in progress get `grace_seconds` to finish,
      then are recorded as failed (`worker_stopped`, retryable) and acknowledged.
    """

    def __init__(
        self,
        container: AsyncContainer,
        queue: ExecutionQueue,
        engine: Engine,
        *,
        concurrency: int = 4,
        visibility_seconds: int = 60,
        heartbeat_seconds: float = 15.0,
        poll_seconds: float = 10.0,
        grace_seconds: float = 25.0,
    ) -> None:
        self._container, self._queue, self._engine = container, queue, engine
        self._concurrency = concurrency
        self._visibility, self._heartbeat = visibility_seconds, heartbeat_seconds
        self._poll, self._grace = poll_seconds, grace_seconds
        self._credentials = ScopedCredentialResolver(container)

    async def run(self, stop: asyncio.Event) -> None:
        runs: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                if len(runs) >= self._concurrency:
                    await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED)
                    continue
                deliveries = await self._receive(self._concurrency - len(runs), stop)
                for delivery in deliveries:
                    task = asyncio.create_task(self._handle(delivery))
                    runs.add(task)
                    task.add_done_callback(runs.discard)
        finally:
            if runs:
                _, late = await asyncio.wait(runs, timeout=self._grace)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)

    async def _receive(self, room: int, stop: asyncio.Event) -> list[Delivery]:
        receiving = asyncio.ensure_future(self._queue.receive(min(room, 10), self._poll))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not receiving.done():
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiving
            return []
        try:
            return list(receiving.result())
        except DependencyUnavailableError:
            _log.warning("the queue is unavailable; retrying in a few seconds")
        except Exception:  # a misconfigured queue, say: keep saying so rather than go idle
            _log.exception("receiving from the queue failed; retrying in a few seconds")
        await _sleep_unless(stop, 5)
        return []

    async def _handle(self, delivery: Delivery) -> None:
        message = delivery.message
        if message is None:
            # Not acknowledged: after the queue's maximum receive count it goes to the DLQ.
            _log.error("an undecodable queue message was received; leaving it to the DLQ")
            return
        keep_alive = asyncio.create_task(self._keep_alive(delivery, message.execution_id))
        try:
            await self._run(delivery, message.execution_id)
        except asyncio.CancelledError:
            stopped = ExecutionError("worker_stopped", "The worker stopped before the run ended.")
            await asyncio.shield(
                self._finish(message.execution_id, ExecutionStatus.FAILED, stopped)
            )
            await asyncio.shield(self._queue.ack(delivery))
            raise
        except Exception:
            _log.exception("a run failed outside its nodes; the message will come back")
        finally:
            keep_alive.cancel()

    async def _run(self, delivery: Delivery, execution_id: ExecutionId) -> None:
        message = delivery.message
        assert message is not None
        started = await self._use(StartExecution, lambda start: start(message))
        if started is None:  # a duplicate delivery, or cancelled before it started
            await self._queue.ack(delivery)
            return
        execution = started.execution

        # Recording a step also answers the execution's current status: between nodes that
        # answer is fresh, and asking again would cost a transaction per node.
        seen = _Seen(ExecutionStatus.RUNNING, time.monotonic())

        async def record(step: StepResult | None) -> None:
            status = await self._use(RecordStep, lambda use: use(execution_id, step))
            seen.status, seen.at = status, time.monotonic()

        async def on_step(step: StepResult) -> None:
            await record(step)

        async def cancelled() -> bool:
            if time.monotonic() - seen.at > _STATUS_FRESH_SECONDS:
                await record(None)
            return seen.status is ExecutionStatus.CANCELLED

        outcome = await self._engine.run(
            owner=execution.owner_id,
            definition=started.definition,
            input=execution.input,
            credentials=self._credentials,
            on_step=on_step,
            cancelled=cancelled,
        )
        await self._finish(execution_id, outcome.status, outcome.error)
        await self._queue.ack(delivery)

    async def _finish(
        self, execution_id: ExecutionId, status: ExecutionStatus, error: ExecutionError | None
    ) -> None:
        await self._use(
            FinishExecution, lambda finish: finish(execution_id, Outcome(status, error))
        )

    async def _keep_alive(self, delivery: Delivery, execution_id: ExecutionId) -> None:
        """Each beat on its own: a queue outage must not make a live run look lost."""
        while True:
            try:
                await self._queue.extend(delivery, self._visibility)
            except Exception:
                _log.warning("could not extend the message's visibility; will try again")
            await asyncio.sleep(self._heartbeat)
            try:
                await self._use(RecordStep, lambda record: record(execution_id, None))
            except Exception:
                _log.warning("heartbeat failed; will try again", exc_info=True)

    async def _use(self, kind: type[U], call: Callable[[U], Awaitable[T]]) -> T:
        return await _use(self._container, kind, call)


async def sweep_lost_executions(
    container: AsyncContainer, stop: asyncio.Event, every_seconds: float = 30.0
) -> None:
    """Finish lost runs as `worker_lost` until `stop`; the API runs it too, so that runs are
    finished even while no worker is alive."""
    while not stop.is_set():
        try:
            lost = await _use(container, FinishLostExecutions, lambda sweep: sweep())
            if lost:
                _log.warning("finished %d execution(s) whose worker was lost", lost)
        except Exception:
            _log.warning("the lost-execution sweep failed", exc_info=True)
        await _sleep_unless(stop, every_seconds)


async def _use(container: AsyncContainer, kind: type[U], call: Callable[[U], Awaitable[T]]) -> T:
    async with container() as scope:
        return await call(await scope.get(kind))


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

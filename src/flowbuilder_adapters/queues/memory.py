"""An in-process execution queue with the delivery semantics of SQS, for embedded mode and
tests."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flowbuilder_core.executions.model import ExecutionId, ExecutionRequested
from flowbuilder_core.executions.ports import DeadLetters, Delivery, ExecutionQueue, QueueAdmission


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that was received `receive_count` times without being acknowledged."""

    body: str
    message: ExecutionRequested | None
    receive_count: int


@dataclass(frozen=True, slots=True)
class _Receipt:
    message_id: uuid.UUID
    token: uuid.UUID


@dataclass(slots=True)
class _Entry:
    id: uuid.UUID
    body: str
    visible_at: float = 0.0
    receive_count: int = 0
    receipt: uuid.UUID | None = None  # of the latest receive


class InMemoryExecutionQueue(ExecutionQueue):
    """At least once, like SQS: a received message stays invisible for `visibility_timeout`
    seconds and comes back unless acknowledged; `extend` keeps it invisible longer; a message
    received more than `max_receives` times moves to `dead_letters` instead.

    Bodies are stored as the JSON of the queue message, so a body that does not decode
    (see `send_raw`) is delivered with `message=None`, as SQS delivers it. A stale handle (the
    message was received again since) neither extends nor deletes. `clock` is monotonic
    seconds. One event loop at a time.
    """

    def __init__(
        self,
        *,
        visibility_timeout: float = 60.0,
        max_receives: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if visibility_timeout < 0 or max_receives < 1:
            raise ValueError("visibility_timeout must be >= 0 and max_receives >= 1.")
        self._visibility_timeout = visibility_timeout
        self._max_receives = max_receives
        self._clock = clock
        self._entries: dict[uuid.UUID, _Entry] = {}  # in sending order
        self._changed = asyncio.Event()
        self.dead_letters: list[DeadLetter] = []

    def __repr__(self) -> str:
        return f"InMemoryExecutionQueue(messages={len(self._entries)})"

    def __len__(self) -> int:
        """Messages in the queue, in flight or not (dead letters excluded)."""
        return len(self._entries)

    async def send(self, message: ExecutionRequested) -> None:
        self.send_raw(json.dumps(message.to_json(), separators=(",", ":")))

    def send_raw(self, body: str) -> None:
        """Enqueue any body, as another producer could: a test's way to a poison message."""
        entry = _Entry(uuid.uuid4(), body)
        self._entries[entry.id] = entry
        self._wake()

    async def send_many(self, messages: Sequence[ExecutionRequested]) -> set[ExecutionId]:
        for message in messages:
            await self.send(message)
        return {message.execution_id for message in messages}

    async def receive(self, max_messages: int, wait_seconds: float) -> Sequence[Delivery]:
        deadline = self._clock() + max(wait_seconds, 0.0)
        while True:
            # Taken before looking, so that a send after the look still wakes this waiter.
            changed = self._changed
            deliveries = self._take(max(max_messages, 1))
            now = self._clock()
            if deliveries or now >= deadline:
                return deliveries
            timeout = deadline - now
            upcoming = [e.visible_at for e in self._entries.values() if e.visible_at > now]
            if upcoming:
                timeout = min(timeout, min(upcoming) - now)
            try:
                async with asyncio.timeout(timeout):
                    await changed.wait()
            except TimeoutError:
                pass

    async def extend(self, delivery: Delivery, seconds: int) -> None:
        entry = self._current(delivery)
        if entry is None:
            return
        entry.visible_at = self._clock() + max(seconds, 0)
        if seconds <= 0:
            self._wake()

    async def ack(self, delivery: Delivery) -> None:
        entry = self._current(delivery)
        if entry is not None:
            del self._entries[entry.id]

    def drain(self) -> list[ExecutionRequested]:
        """Take every message out of the queue, in flight or not (the process is stopping and
        the queue ends with it); undecodable ones are dropped."""
        bodies = [entry.body for entry in self._entries.values()]
        self._entries.clear()
        return [message for body in bodies if (message := _decode(body)) is not None]

    def _take(self, limit: int) -> list[Delivery]:
        now = self._clock()
        deliveries: list[Delivery] = []
        for entry in list(self._entries.values()):
            if len(deliveries) >= limit:
                break
            if entry.visible_at > now:
                continue
            if entry.receive_count >= self._max_receives:
                del self._entries[entry.id]
                message = _decode(entry.body)
                self.dead_letters.append(DeadLetter(entry.body, message, entry.receive_count))
                continue
            entry.receive_count += 1
            entry.receipt = uuid.uuid4()
            entry.visible_at = now + self._visibility_timeout
            handle = _Receipt(entry.id, entry.receipt)
            deliveries.append(Delivery(_decode(entry.body), handle, entry.receive_count))
        return deliveries

    def _current(self, delivery: Delivery) -> _Entry | None:
        handle = delivery.handle
        if not isinstance(handle, _Receipt):
            raise TypeError("Not a delivery of an in-memory queue.")
        entry = self._entries.get(handle.message_id)
        if entry is None or entry.receipt != handle.token:
            return None
        return entry

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _decode(body: str) -> ExecutionRequested | None:
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            return None
        return ExecutionRequested.from_json(document)
    except (ValueError, TypeError, OverflowError):
        return None


class InMemoryDeadLetters(DeadLetters):
    """The dead letters of an `InMemoryExecutionQueue`: each received once until acknowledged
    (no visibility timeout: an unacknowledged one is received again)."""

    def __init__(self, queue: InMemoryExecutionQueue) -> None:
        self._queue = queue

    async def receive(self, max_messages: int) -> Sequence[Delivery]:
        letters = self._queue.dead_letters[: max(max_messages, 0)]
        return [Delivery(letter.message, letter, letter.receive_count) for letter in letters]

    async def ack(self, delivery: Delivery) -> None:
        letters = self._queue.dead_letters
        letters[:] = [letter for letter in letters if letter is not delivery.handle]


class NoDeadLetters(DeadLetters):
    """For a process with no queue of its own (the in-memory store alone): nothing is ever
    dead-lettered."""

    async def receive(self, max_messages: int) -> Sequence[Delivery]:
        return []

    async def ack(self, delivery: Delivery) -> None:
        return None


class BoundedQueueAdmission(QueueAdmission):
    """Admits new executions while the in-process queue holds fewer than `limit` messages
    (MAX_QUEUED_EXECUTIONS): its backlog is this process's memory. The outbox rows of requests
    committing at that moment still reach it, so it may pass `limit` by those few; a refusal
    asks for a second's wait, about what a worker takes to free a place."""

    def __init__(self, queue: InMemoryExecutionQueue, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1.")
        self._queue, self._limit = queue, limit

    def retry_after(self) -> int | None:
        return None if len(self._queue) < self._limit else 1

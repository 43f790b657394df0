"""Live progress of an execution, for a builder that watches a run light up node by node.

The events are derived from the execution's stored state (its status and steps), read again
every `poll_s` in a short unit of work of its own: this works whichever process or machine
runs the worker, with no notification channel to keep, and costs one small read per open
stream per poll (and streams are bounded per user). As a run goes on its events are only ever
appended, never changed, so an event's position in the list is a stable id: a client that
reconnects with the last id it saw resumes with no repeat and no gap.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from flowbuilder_core.executions.errors import ExecutionNotFoundError
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    ExecutionStatus,
    RunLimits,
    StepResult,
    StepStatus,
)
from flowbuilder_core.executions.ports import RunTransactions
from flowbuilder_core.shared.errors import RateLimitedError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ownership import owned_by


@dataclass(frozen=True, slots=True)
class ExecutionEvent:
    """`kind` is `status` (with `status`), `step` (with `step`, as it was at that moment) or
    `end` (the run is over; nothing follows)."""

    id: int
    kind: str
    status: ExecutionStatus | None = None
    step: StepResult | None = None


def events_of(execution: Execution) -> list[ExecutionEvent]:
    """Every event of the execution so far, in order: `running` once it started, each step's
    start and end (a skipped step only ends), then its final status and `end`."""
    events: list[ExecutionEvent] = []

    def add(
        kind: str, status: ExecutionStatus | None = None, step: StepResult | None = None
    ) -> None:
        events.append(ExecutionEvent(len(events), kind, status, step))

    if execution.started_at is not None:
        add("status", ExecutionStatus.RUNNING)
    for step in execution.steps:
        if step.status is not StepStatus.SKIPPED:
            add("step", step=StepResult(step.node_id, StepStatus.RUNNING, step.started_at))
        if step.status is not StepStatus.RUNNING:
            add("step", step=step)
    if execution.status.finished:
        add("status", execution.status)
        add("end")
    return events


class FollowExecution:
    """Stream the events of one of the caller's executions after `after` (the last id seen, or
    -1), until it ends. ExecutionNotFoundError before any event for another user's or a
    missing execution; RateLimitedError past `limits.max_event_streams` open streams of one
    user (in this process)."""

    def __init__(
        self, transactions: RunTransactions, limits: RunLimits, *, poll_s: float = 0.5
    ) -> None:
        self._transactions, self._limits, self._poll_s = transactions, limits, poll_s
        self._open: Counter[str] = Counter()

    async def __call__(
        self, actor: Principal, execution_id: uuid.UUID, after: int = -1
    ) -> AsyncGenerator[ExecutionEvent, None]:
        """Checks ownership and the stream limit now, then answers the stream."""
        first = await self._read(actor, execution_id)
        if self._open[actor.user_id] >= self._limits.max_event_streams:
            raise RateLimitedError("Too many open event streams; close one first.", 5)
        return self._stream(actor, execution_id, first, after)

    async def _stream(
        self, actor: Principal, execution_id: uuid.UUID, execution: Execution, after: int
    ) -> AsyncGenerator[ExecutionEvent, None]:
        # Counted while the stream runs (a stream never started holds nothing); one that
        # starts past the limit after all (several opened at once) ends at once.
        self._open[actor.user_id] += 1
        try:
            if self._open[actor.user_id] > self._limits.max_event_streams:
                return
            while True:
                events = events_of(execution)
                for event in events[after + 1 :]:
                    yield event
                after = max(after, len(events) - 1)
                if execution.status.finished:
                    return
                await asyncio.sleep(self._poll_s)
                execution = await self._read(actor, execution_id)
        finally:
            self._open[actor.user_id] -= 1

    async def _read(self, actor: Principal, execution_id: uuid.UUID) -> Execution:
        async with self._transactions() as tx:
            found = await tx.executions.get(ExecutionId(execution_id))
        return owned_by(actor.user_id, found, ExecutionNotFoundError)

"""Ports of the executions context."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from flowbuilder_core.credentials.model import SecretData
from flowbuilder_core.executions.bounds import Budget
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    ExecutionRequested,
    ExecutionStatus,
    Json,
    RunOutcome,
    StepResult,
)
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.model import Node, WorkflowId, WorkflowVersion
from flowbuilder_core.workflows.ports import WorkflowRepository


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """List filters: any of `statuses`; one workflow; `created_after` inclusive and
    `created_before` exclusive; the children of one execution (`parent_id`); any of
    `triggers` (a retry's is "retry")."""

    statuses: frozenset[ExecutionStatus] = frozenset()
    workflow_id: WorkflowId | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    parent_id: ExecutionId | None = None
    triggers: frozenset[str] = frozenset()


class ExecutionRepository(Protocol):
    """Executions and their steps, in the unit of work of the current scope.

    Lists are newest first on `(created_at, id)`, after a keyset position `(created_at as
    RFC 3339 text, id as text)`, `limit + 1` rows at most, without `input` or `steps` (they are
    left empty). `claim` is the one conditional move that makes a duplicate or concurrent
    delivery run once: queued -> running, or nothing. It writes the claiming run's `lease`;
    from then on the run's heartbeats, steps and finish are conditional on that lease (a run
    that lost it, to the lost-run sweep say, writes nothing more).
    """

    async def get(self, execution_id: ExecutionId) -> Execution | None: ...

    async def add(self, execution: Execution) -> None: ...

    async def add_scheduled(self, execution: Execution) -> bool:
        """Add an execution that has `scheduled_for`, unless its workflow already has one for
        that time (a unique key: however many schedulers try, one is added); whether it was."""

    async def save(
        self, execution: Execution, *, expected: ExecutionStatus, lease: uuid.UUID | None = None
    ) -> bool:
        """Store status, error and timestamps (not the steps: see `record_step`) if the stored
        status is still `expected` (and, given a `lease`, the execution still holds it); False
        when another writer moved it first."""

    async def record_step(
        self, execution_id: ExecutionId, lease: uuid.UUID, step: StepResult
    ) -> bool:
        """Add the step, or replace the one of the same node, if the execution holds `lease`
        and is running or cancelled (its remaining nodes are then recorded skipped); whether it
        was written."""

    async def claim(
        self,
        execution_id: ExecutionId,
        at: datetime,
        lease: uuid.UUID,
        *,
        max_running: int | None = None,
    ) -> Execution | None:
        """Move a queued execution to running (started and heartbeat at `at`, holding `lease`)
        and return it; None when it is not queued (another worker has it, or it was
        cancelled). With `max_running`, an owner who already has that many running keeps this
        one queued and parked (None too): its message is done with, and `unpark` hands it
        back when a slot frees. Claims of one owner's executions take turns, so the limit
        holds however many workers claim at once."""

    async def release(self, execution_id: ExecutionId, lease: uuid.UUID) -> bool:
        """Put an execution that is running under `lease` back to queued, as it was before its
        claim: no start, heartbeat or lease, and its steps deleted. False (and nothing done)
        when it is not running under that lease (cancelled, finished, or someone else's)."""

    async def unpark(self, owner: UserId, max_running: int) -> Sequence[Execution]:
        """As many of the owner's parked executions as they have free slots, oldest first, no
        longer parked: their messages must be sent again (in the same unit of work)."""

    async def has_parked(self, owner: UserId) -> bool:
        """Whether the owner has executions parked, waiting for a slot."""

    async def parked_owners(self, limit: int) -> Sequence[UserId]:
        """Owners who have parked executions, at most `limit`."""

    async def heartbeat(
        self, execution_id: ExecutionId, lease: uuid.UUID, at: datetime
    ) -> ExecutionStatus | None:
        """Refresh the heartbeat of a running execution that holds `lease`. Its status as far
        as that lease's holder is concerned: running or cancelled while the lease is held;
        None when the execution is gone, held under another lease, or finished otherwise."""

    async def stale(self, heartbeat_before: datetime, limit: int) -> Sequence[ExecutionId]:
        """Running executions whose heartbeat is older than `heartbeat_before`."""

    async def page(
        self, owner: UserId, where: ExecutionFilter, request: PageRequest
    ) -> Sequence[Execution]: ...


class RunObserver(Protocol):
    """Told how runs go, for metrics. Nothing it does changes a run: it must not raise."""

    def run_started(self, execution: Execution) -> None:
        """The run claimed `execution` and starts its nodes."""

    def run_finished(self, execution: Execution, outcome: RunOutcome) -> None:
        """The run of `execution` ended with `outcome`, as it recorded it."""

    def step_finished(self, node_type: str, step: StepResult) -> None:
        """A node of type `node_type` ran and ended (`step` succeeded or failed)."""


class QueueAdmission(Protocol):
    """Whether the queue takes new work now. SQS always does (each user's rate and running
    limits bound what they add); an in-process queue, whose backlog lives in the process's
    memory, refuses past its bound so that a burst becomes refusals instead of memory."""

    def retry_after(self) -> int | None:
        """None when new work is taken; else the whole seconds to wait before asking again."""


class AdmitAll(QueueAdmission):
    """The admission of a queue without a bound of its own."""

    def retry_after(self) -> int | None:
        return None


class Outbox(Protocol):
    """Messages written in the same transaction as the execution they announce, delivered to
    the queue after commit (at least once) by a relay."""

    async def add(self, message: ExecutionRequested) -> None: ...


@dataclass(frozen=True, slots=True)
class RunTransaction:
    """The repositories of one short unit of work in a run's bookkeeping."""

    executions: ExecutionRepository
    workflows: WorkflowRepository
    outbox: Outbox
    uow: UnitOfWork


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A claimed execution and the workflow version it runs (None when that is gone)."""

    execution: Execution
    version: WorkflowVersion | None


class RunTransactions(Protocol):
    """Opens a unit of work of its own for each piece of a run's bookkeeping (the claim, one
    step, the finish), so that a run holds no transaction, and no connection, while its nodes
    run: a slow node blocks nobody (embedded SQLite has one connection)."""

    def __call__(self) -> AbstractAsyncContextManager[RunTransaction]: ...

    async def claim(
        self,
        execution_id: ExecutionId,
        at: datetime,
        lease: uuid.UUID,
        *,
        max_running: int | None = None,
    ) -> ClaimedRun | None:
        """`ExecutionRepository.claim`, and the workflow version the claimed execution runs,
        in one unit of work (a parking is durable too). This default reads them one after the
        other; a database adapter may read both in one statement."""
        async with self() as tx:
            execution = await tx.executions.claim(execution_id, at, lease, max_running=max_running)
            version = None
            if execution is not None:
                version = await tx.workflows.version(
                    execution.workflow_id, execution.workflow_version
                )
            await tx.uow.commit()
        return None if execution is None else ClaimedRun(execution, version)

    async def record(
        self,
        execution_id: ExecutionId,
        lease: uuid.UUID,
        at: datetime,
        steps: Sequence[StepResult] = (),
    ) -> ExecutionStatus | None:
        """Beat the heart of the run holding `lease` (at `at`) and record `steps`, in order,
        while it holds it, as one write that is durable when this returns; the status as
        `ExecutionRepository.heartbeat` answers it (steps are written only when that is
        running or cancelled). This default is a unit of work of its own; a database adapter
        may write it in one statement with no transaction around it."""
        async with self() as tx:
            status = await tx.executions.heartbeat(execution_id, lease, at)
            if status in (ExecutionStatus.RUNNING, ExecutionStatus.CANCELLED):
                for step in steps:
                    await tx.executions.record_step(execution_id, lease, step)
            await tx.uow.commit()
        return status

    async def finish(
        self, ended: Execution, lease: uuid.UUID, steps: Sequence[StepResult] = ()
    ) -> bool:
        """Record a run's last `steps` and its end: `ended` is the execution as claimed, moved
        to how the run ended. The steps are written while `lease` holds it (running or
        cancelled), the end (status, error, finish time) only while it is still running (a
        cancel wins), as one write that is durable when this returns. Whether the owner has
        executions parked, waiting for a slot (False when the lease no longer held). This
        default is a unit of work of its own; a database adapter may write it in one
        statement."""
        assert ended.finished_at is not None, "an ended execution has its finish time"
        async with self() as tx:
            status = await tx.executions.heartbeat(ended.id, lease, ended.finished_at)
            if status not in (ExecutionStatus.RUNNING, ExecutionStatus.CANCELLED):
                return False
            for step in steps:
                await tx.executions.record_step(ended.id, lease, step)
            await tx.executions.save(ended, expected=ExecutionStatus.RUNNING, lease=lease)
            waiting = await tx.executions.has_parked(ended.owner_id)
            await tx.uow.commit()
        return waiting


@dataclass(frozen=True, slots=True)
class Delivery:
    """A received queue message. `message` is None when the body is not a valid
    execution.requested message (poison); `handle` is the queue's own receipt."""

    message: ExecutionRequested | None
    handle: object = field(repr=False)
    receive_count: int = 1


class ExecutionQueue(Protocol):
    """The queue between API and workers (SQS in production).

    Delivery is at least once: a message not acknowledged within its visibility timeout comes
    back, and after the queue's maximum receive count goes to its dead-letter queue.
    """

    async def send(self, message: ExecutionRequested) -> None: ...

    async def send_many(self, messages: Sequence[ExecutionRequested]) -> set[ExecutionId]:
        """Send several at once (a relay's batch); the execution ids of those sent. Raises
        DependencyUnavailableError when the queue cannot be reached at all."""

    async def receive(self, max_messages: int, wait_seconds: float) -> Sequence[Delivery]: ...

    async def extend(self, delivery: Delivery, seconds: int) -> None:
        """Keep a message invisible while its run is in progress."""

    async def ack(self, delivery: Delivery) -> None:
        """Delete the message: only once its run is recorded."""

    async def extend_many(self, deliveries: Sequence[Delivery], seconds: int) -> None:
        """`extend` for several messages in as few calls as the queue allows (SQS: ten a
        call). One that cannot be extended (a stale handle) does not stop the others; raises
        DependencyUnavailableError when the queue cannot be reached at all. A subclass that
        has no batch call inherits this one message at a time."""
        for delivery in deliveries:
            await self.extend(delivery, seconds)

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """`ack` for several messages in as few calls as the queue allows; as `extend_many`,
        one that cannot be deleted (it comes back) does not stop the others."""
        for delivery in deliveries:
            await self.ack(delivery)


class DeadLetters(Protocol):
    """The messages the queue gave up on after its maximum receive count (its dead-letter
    queue), so that their executions do not stay queued forever."""

    async def receive(self, max_messages: int) -> Sequence[Delivery]:
        """Up to `max_messages` dead letters, without waiting; each comes back later unless
        acknowledged."""

    async def ack(self, delivery: Delivery) -> None:
        """Delete the dead letter: only once its execution's fate is recorded."""


class RateLimiter(Protocol):
    """A token bucket per user, shared by every API replica."""

    async def take(self, owner: UserId, now: datetime) -> float | None:
        """Take one token: None when taken, else the seconds until one is available."""


class ExpressionEvaluator(Protocol):
    """Evaluates JMESPath expressions over JSON data. Raises ExpressionError.

    Called in a worker thread. It must keep within `budget` (see `bounds.Budget`): call
    `budget.tick()` at least every few milliseconds of work and `budget.charge(n)` for every
    array, object or string of size n it builds, let the NodeFailedError they raise through,
    and never spend long in one step that cannot check (a C routine over a value of unbounded
    size holds the GIL, and with it every other thread, the event loop's included).
    """

    def evaluate(self, expression: str, data: Json, budget: Budget) -> Json: ...


@dataclass(frozen=True, slots=True)
class ResolvedSecret:
    """A node's credential at run time: its type and values (never logged or recorded)."""

    type: str
    data: SecretData


class CredentialResolver(Protocol):
    """The values of the owner's credential, for the node that uses it."""

    async def resolve(self, owner: UserId, credential_id: uuid.UUID) -> ResolvedSecret: ...


@dataclass(frozen=True, slots=True)
class NodeCall:
    """What a node runner gets: the node, its parameters with every template resolved, and its
    credential when it has one."""

    node: Node
    parameters: Mapping[str, Json]
    credential: ResolvedSecret | None = None


class ChildRuns(Protocol):
    """Runs a workflow of the run's owner as a child execution of the run, and waits for it
    (`flow.subworkflow`, `flow.for_each`): a real execution, with `parent_execution_id` and its
    own steps, ended when the call returns."""

    async def run(
        self, workflow_id: WorkflowId, version: int | None, input: Mapping[str, Json]
    ) -> Json:
        """The child's result (`RunOutcome.result`) when it succeeded. Raises NodeFailedError:
        `subworkflow_not_found` (not the owner's workflow, or no such version),
        `subworkflow_depth` (nested too deep) or `subworkflow_failed` (it failed, or was
        cancelled)."""


class NodeRunner(Protocol):
    """Runs one node type. Returns the node's output (JSON); raises NodeFailedError."""

    async def run(self, call: NodeCall) -> Json: ...

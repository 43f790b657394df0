"""Use cases of the executions context: requesting runs, reading them, cancelling and retrying
them, and finishing the runs whose worker was lost (the worker's side of a run is `run.py`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from flowbuilder_core.executions.errors import (
    ExecutionNotFoundError,
    IllegalTransitionError,
)
from flowbuilder_core.executions.model import (
    EXECUTION_TRIGGERS,
    MAX_INPUT_BYTES,
    Execution,
    ExecutionError,
    ExecutionId,
    ExecutionRequested,
    ExecutionStatus,
    Json,
    RunLimits,
)
from flowbuilder_core.executions.ports import (
    DeadLetters,
    ExecutionFilter,
    ExecutionRepository,
    Outbox,
    QueueAdmission,
    RateLimiter,
)
from flowbuilder_core.executions.run import resume_parked
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.errors import FieldError, InvalidInputError, OverloadedError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId, new_uuid
from flowbuilder_core.shared.ownership import owned_by
from flowbuilder_core.shared.pagination import (
    Page,
    PageRequest,
    check_limit,
    decode_time_id_cursor,
    page_of,
    time_id_position,
)
from flowbuilder_core.shared.quotas import refuse_if_limited
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.checks import owned_workflow
from flowbuilder_core.workflows.model import Definition, WorkflowId
from flowbuilder_core.workflows.ports import CredentialDirectory, WorkflowRepository
from flowbuilder_core.workflows.runnability import refuse_unless_runnable
from flowbuilder_core.workflows.validation import unstorable_values

LOST_AFTER = timedelta(seconds=60)
"""A running execution whose worker has not beaten its heart for this long is lost."""


@dataclass(frozen=True, slots=True)
class ExecuteCommand:
    workflow_id: uuid.UUID
    input: object = None


@dataclass(frozen=True, slots=True)
class ListExecutionsQuery:
    limit: int = 20
    cursor: str | None = None
    statuses: tuple[str, ...] = ()
    workflow_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    parent_id: uuid.UUID | None = None
    triggers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ListWorkflowExecutionsQuery:
    workflow_id: uuid.UUID
    limit: int = 20
    cursor: str | None = None
    statuses: tuple[str, ...] = ()
    parent_id: uuid.UUID | None = None
    triggers: tuple[str, ...] = ()


async def _owned(
    executions: ExecutionRepository, owner: UserId, execution_id: uuid.UUID
) -> Execution:
    return owned_by(owner, await executions.get(ExecutionId(execution_id)), ExecutionNotFoundError)


async def _take_token(rate: RateLimiter, owner: UserId, now: datetime) -> None:
    refuse_if_limited(await rate.take(owner, now), "executions requested")


def _check_input(raw: object) -> Mapping[str, Json]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInputError([FieldError("/input", "must be an object")])
    unstorable = unstorable_values(raw, "/input")  # first: it bounds the depth json.dumps sees
    if unstorable:
        raise InvalidInputError(unstorable)
    size = len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_INPUT_BYTES:
        raise InvalidInputError([FieldError("/input", "must be at most 64 KiB of JSON")])
    return raw


async def add_requested(
    executions: ExecutionRepository, outbox: Outbox, execution: Execution
) -> None:
    """Write a requested execution and its queue message (the outbox), for the caller to commit
    together: the one way every trigger requests a run (execute, retry, a webhook)."""
    await executions.add(execution)
    await outbox.add(ExecutionRequested.of(execution))


def refuse_unless_admitted(admission: QueueAdmission) -> None:
    """OverloadedError while the queue takes no new work; asked before anything is written."""
    if (wait := admission.retry_after()) is not None:
        raise OverloadedError("Too many executions are waiting to run; try again shortly.", wait)


class _Requesting:
    """What execute and retry share: runnability, the rate limit, the outbox."""

    def __init__(
        self,
        workflows: WorkflowRepository,
        credentials: CredentialDirectory,
        executions: ExecutionRepository,
        outbox: Outbox,
        rate: RateLimiter,
        uow: UnitOfWork,
        clock: Clock,
        admission: QueueAdmission,
    ) -> None:
        self._workflows, self._credentials = workflows, credentials
        self._executions, self._outbox, self._rate = executions, outbox, rate
        self._uow, self._clock, self._admission = uow, clock, admission

    async def _check_runnable(self, actor: Principal, definition: Definition) -> None:
        await refuse_unless_runnable(self._credentials, actor, definition, self._workflows)

    async def _request(self, execution: Execution) -> Execution:
        refuse_unless_admitted(self._admission)
        await add_requested(self._executions, self._outbox, execution)
        # Last before the commit: the bucket's row lock is then held as briefly as possible.
        await _take_token(self._rate, execution.owner_id, self._clock.now())
        await self._uow.commit()
        return execution


class ExecuteWorkflow(_Requesting):
    """Request a run of one of the caller's workflows.

    - The current definition must be runnable; NotRunnableError lists every problem.
    - `input` is a JSON object of at most 64 KiB, without NUL characters (keys included) and
      nested at most 64 levels; InvalidInputError names every such value by pointer.
    - It takes a token from the caller's bucket (shared with retry): RateLimitedError when empty.
    - OverloadedError when the queue takes no new work (see `QueueAdmission`); nothing is stored.
    - The execution pins the current version and is queued; it commits with its queue message
      (the outbox), which a relay delivers after commit, at least once.
    """

    async def __call__(self, actor: Principal, command: ExecuteCommand) -> Execution:
        workflow = await owned_workflow(self._workflows, actor.user_id, command.workflow_id)
        execution_input = _check_input(command.input)
        await self._check_runnable(actor, workflow.definition)
        return await self._request(
            Execution(
                id=ExecutionId(new_uuid()),
                owner_id=actor.user_id,
                workflow_id=workflow.id,
                workflow_version=workflow.version,
                input=execution_input,
                created_at=self._clock.now(),
            )
        )


class RetryExecution(_Requesting):
    """Run a failed or cancelled execution again: a new execution of the same version and
    input, `attempt` + 1. Anything else is a conflict. Shares execute's rate limit."""

    async def __call__(self, actor: Principal, execution_id: uuid.UUID) -> Execution:
        previous = await _owned(self._executions, actor.user_id, execution_id)
        retry = previous.retried(id=ExecutionId(new_uuid()), at=self._clock.now())
        version = await self._workflows.version(previous.workflow_id, previous.workflow_version)
        if version is None:
            raise IllegalTransitionError("The workflow version of this execution is gone.")
        await self._check_runnable(actor, version.definition)
        return await self._request(retry)


class GetExecution:
    """Read one of the caller's executions with its steps."""

    def __init__(self, executions: ExecutionRepository) -> None:
        self._executions = executions

    async def __call__(self, actor: Principal, execution_id: uuid.UUID) -> Execution:
        return await _owned(self._executions, actor.user_id, execution_id)


class ListExecutions:
    """List the caller's executions newest first (without input or steps), filtered by any of
    several statuses, any of several triggers, one workflow, a creation window (after
    inclusive, before exclusive), and one execution's children (`parent_id`)."""

    def __init__(self, executions: ExecutionRepository) -> None:
        self._executions = executions

    async def __call__(self, actor: Principal, query: ListExecutionsQuery) -> Page[Execution]:
        limit, where = check_limit(query.limit), _filter(query)
        return await _page(self._executions, actor, where, limit, query.cursor)


class ListWorkflowExecutions:
    """List the executions of one of the caller's workflows, as ListExecutions does; the
    workflow must be the caller's (and not deleted), else WorkflowNotFoundError."""

    def __init__(self, executions: ExecutionRepository, workflows: WorkflowRepository) -> None:
        self._executions, self._workflows = executions, workflows

    async def __call__(
        self, actor: Principal, query: ListWorkflowExecutionsQuery
    ) -> Page[Execution]:
        listing = ListExecutionsQuery(
            query.limit,
            query.cursor,
            query.statuses,
            query.workflow_id,
            parent_id=query.parent_id,
            triggers=query.triggers,
        )
        # The query is checked first: a malformed one is refused whichever workflow it names.
        limit, where = check_limit(listing.limit), _filter(listing)
        await owned_workflow(self._workflows, actor.user_id, query.workflow_id)
        return await _page(self._executions, actor, where, limit, query.cursor)


async def _page(
    executions: ExecutionRepository,
    actor: Principal,
    where: ExecutionFilter,
    limit: int,
    cursor: str | None,
) -> Page[Execution]:
    scope = (
        f"executions|{actor.user_id}|{sorted(where.statuses)}|{where.workflow_id}|"
        f"{where.created_after}|{where.created_before}"
    )
    if where.parent_id is not None:  # kept out otherwise: cursors issued before stay valid
        scope += f"|parent={where.parent_id}"
    if where.triggers:  # kept out of the scope otherwise: cursors issued before it stay good
        scope += f"|triggers={sorted(where.triggers)}"
    after = decode_time_id_cursor(cursor, scope) if cursor else None
    request = PageRequest(limit, after)
    rows = await executions.page(actor.user_id, where, request)
    return page_of(rows, request, lambda e: time_id_position(e.created_at, e.id), scope)


def _filter(query: ListExecutionsQuery) -> ExecutionFilter:
    errors: list[FieldError] = []
    statuses: set[ExecutionStatus] = set()
    for value in query.statuses:
        try:
            statuses.add(ExecutionStatus(value))
        except ValueError:
            errors.append(
                FieldError.query(
                    "status", "must be one of: " + ", ".join(s.value for s in ExecutionStatus)
                )
            )
    for value in query.triggers:
        if value not in EXECUTION_TRIGGERS:
            errors.append(
                FieldError.query("trigger", "must be one of: " + ", ".join(EXECUTION_TRIGGERS))
            )
    for name, moment in (
        ("created_after", query.created_after),
        ("created_before", query.created_before),
    ):
        if moment is not None and moment.utcoffset() is None:
            errors.append(FieldError.query(name, "must carry a time zone (use Z for UTC)"))
    if errors:
        raise InvalidInputError(list({e.field: e for e in errors}.values()))
    return ExecutionFilter(
        frozenset(statuses),
        None if query.workflow_id is None else WorkflowId(query.workflow_id),
        query.created_after,
        query.created_before,
        None if query.parent_id is None else ExecutionId(query.parent_id),
        frozenset(query.triggers),
    )


class CancelExecution:
    """Cancel a queued or running execution of the caller's; a finished one is a conflict. A
    running one stops before its next node (the worker checks between nodes)."""

    def __init__(self, executions: ExecutionRepository, uow: UnitOfWork, clock: Clock) -> None:
        self._executions, self._uow, self._clock = executions, uow, clock

    async def __call__(self, actor: Principal, execution_id: uuid.UUID) -> Execution:
        for _ in range(3):
            execution = await _owned(self._executions, actor.user_id, execution_id)
            seen = execution.status
            execution.cancel(at=self._clock.now())
            if await self._executions.save(execution, expected=seen):
                await self._uow.commit()
                return execution
        raise IllegalTransitionError("The execution keeps changing; try again.")


class FinishLostExecutions:
    """Fail running executions whose worker stopped beating its heart (`worker_lost`); `retry`
    runs them again. Safe from several processes at once: each move is conditional."""

    def __init__(self, executions: ExecutionRepository, uow: UnitOfWork, clock: Clock) -> None:
        self._executions, self._uow, self._clock = executions, uow, clock

    async def __call__(self, limit: int = 100) -> int:
        now = self._clock.now()
        finished = 0
        for execution_id in await self._executions.stale(now - LOST_AFTER, limit):
            execution = await self._executions.get(execution_id)
            if execution is None or execution.status is not ExecutionStatus.RUNNING:
                continue
            execution.fail(
                ExecutionError("worker_lost", "The worker running this execution stopped."),
                at=now,
            )
            finished += await self._executions.save(execution, expected=ExecutionStatus.RUNNING)
        await self._uow.commit()
        return finished


class ResumeParkedExecutions:
    """Send again the parked executions whose owners have free slots: the safety net behind
    the finish of each run (which hands its own slot on), for slots freed otherwise (the
    lost-run sweep, a crash between a finish and its commit). Run periodically."""

    def __init__(
        self,
        executions: ExecutionRepository,
        outbox: Outbox,
        uow: UnitOfWork,
        limits: RunLimits,
    ) -> None:
        self._executions, self._outbox, self._uow, self._limits = executions, outbox, uow, limits

    async def __call__(self, owners: int = 100) -> int:
        resumed = 0
        for owner in await self._executions.parked_owners(owners):
            resumed += await resume_parked(self._executions, self._outbox, owner, self._limits)
        await self._uow.commit()
        return resumed


UNDELIVERED = ExecutionError(
    "delivery_failed", "The execution's queue message could not be delivered to a worker."
)


class FailUndeliveredExecutions:
    """Fail, with `delivery_failed`, the queued executions whose messages the queue gave up
    on (they went to its dead-letter queue), instead of leaving them queued forever; `retry`
    runs them again. Dead letters that are not execution messages are left for an operator.
    Run periodically; safe from several processes at once."""

    def __init__(
        self,
        dead_letters: DeadLetters,
        executions: ExecutionRepository,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._dead, self._executions, self._uow, self._clock = dead_letters, executions, uow, clock

    async def __call__(self, batch: int = 10) -> int:
        letters = [d for d in await self._dead.receive(batch) if d.message is not None]
        failed = 0
        for letter in letters:
            assert letter.message is not None
            execution = await self._executions.get(letter.message.execution_id)
            if execution is None or execution.status is not ExecutionStatus.QUEUED:
                continue  # it ran, or was cancelled, after all: nothing to account for
            execution.fail(UNDELIVERED, at=self._clock.now())
            failed += await self._executions.save(execution, expected=ExecutionStatus.QUEUED)
        await self._uow.commit()
        for letter in letters:
            await self._dead.ack(letter)
        return failed

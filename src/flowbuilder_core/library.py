"""The core as a library: a set of adapters in, the use cases out, with no container.

- `Adapters` are the ports of one unit of work; a `Storage` opens one unit of work at a time
  and hands out its adapters. `flowbuilder_adapters.memory.MemoryStorage` is one; a service
  writes its own to keep the data in its own database.
- `build_use_cases` is the factory: every use case over one set of adapters.
- `FlowBuilder` is what a service holds: the use cases over a fresh unit of work each time it
  asks, and `run()`, which runs a requested execution to its end in this process.
- `validate_definition` checks a definition with no storage at all.

The HTTP service builds the same objects through its dishka container
(`flowbuilder_adapters.wiring`); nothing here knows of it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from flowbuilder_core.credentials.ports import CredentialRepository, SecretStore
from flowbuilder_core.credentials.use_cases import (
    CreateCredential,
    DeleteCredential,
    GetCredential,
    ListCredentials,
    ReplaceCredential,
    ResolveCredential,
    SweepSecrets,
)
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.events import FollowExecution
from flowbuilder_core.executions.model import ExecutionId, RunLimits, RunOutcome
from flowbuilder_core.executions.ports import (
    AdmitAll,
    CredentialResolver,
    ExecutionRepository,
    ExpressionEvaluator,
    NodeRunner,
    Outbox,
    QueueAdmission,
    RateLimiter,
    ResolvedSecret,
    RunTransaction,
    RunTransactions,
)
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.executions.use_cases import (
    CancelExecution,
    ExecuteWorkflow,
    FinishLostExecutions,
    GetExecution,
    ListExecutions,
    ListWorkflowExecutions,
    ResumeParkedExecutions,
    RetryExecution,
)
from flowbuilder_core.nodes.schedule import ScheduleRules
from flowbuilder_core.shared.clock import Clock, SystemClock
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.quotas import Quotas, WriteRateLimiter
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.triggers.schedules import GetSchedule, SchedulerLimits, StartDueSchedules
from flowbuilder_core.workflows.activation import ActivateWorkflow, DeactivateWorkflow
from flowbuilder_core.workflows.ports import CredentialDirectory, WorkflowRepository
from flowbuilder_core.workflows.schedules import (
    NoScheduleBook,
    ScheduleRepository,
    WorkflowSchedules,
)
from flowbuilder_core.workflows.use_cases import (
    CreateWorkflow,
    DeleteWorkflow,
    GetWorkflow,
    GetWorkflowVersion,
    ListWorkflows,
    ListWorkflowVersions,
    ReplaceWorkflow,
    ValidateDefinition,
)
from flowbuilder_core.workflows.validation import (
    ValidationReport,
    parse_definition,
    report,
    runnability_problems,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Adapters:
    """The ports of one unit of work: every repository here writes through `uow`, and nothing
    they write persists until `uow.commit()`.

    `secrets` and the rate limiters may be shared by every unit of work (a store outside the
    database writes at once); the others belong to this one. `rate_limiter` meters executions
    requested, `write_rate_limiter` creates, replaces and deletes, both per user.
    `schedules` is the schedule book a scheduler reads (None: none is kept, and
    `start_due_schedules` starts nothing).
    """

    uow: UnitOfWork
    workflows: WorkflowRepository
    credential_directory: CredentialDirectory
    credentials: CredentialRepository
    secrets: SecretStore
    executions: ExecutionRepository
    outbox: Outbox
    rate_limiter: RateLimiter
    write_rate_limiter: WriteRateLimiter
    admission: QueueAdmission = field(default_factory=AdmitAll)
    """Whether the queue takes new executions now (see `QueueAdmission`): always, unless the
    queue is in this process and bounded."""
    schedules: ScheduleRepository | None = None


class Storage(Protocol):
    """Where the data lives. Each call opens a unit of work and yields its adapters; leaving
    the block without `commit()` discards what it wrote.

    Blocks may be open at the same time (a run records each step in a short block of its own
    while the caller goes on), and each sees only what the others committed.
    """

    def __call__(self) -> AbstractAsyncContextManager[Adapters]: ...


@dataclass(frozen=True, slots=True)
class UseCases:
    """Every use case over one set of adapters (all but `FailUndeliveredExecutions`, which
    reads a queue's dead letters). Each call commits its own unit of work. A service that
    schedules calls `start_due_schedules` every second or so (as a worker process does)."""

    create_workflow: CreateWorkflow
    get_workflow: GetWorkflow
    list_workflows: ListWorkflows
    replace_workflow: ReplaceWorkflow
    delete_workflow: DeleteWorkflow
    activate_workflow: ActivateWorkflow
    deactivate_workflow: DeactivateWorkflow
    validate_definition: ValidateDefinition
    list_workflow_versions: ListWorkflowVersions
    get_workflow_version: GetWorkflowVersion
    create_credential: CreateCredential
    get_credential: GetCredential
    list_credentials: ListCredentials
    replace_credential: ReplaceCredential
    delete_credential: DeleteCredential
    resolve_credential: ResolveCredential
    sweep_secrets: SweepSecrets
    execute_workflow: ExecuteWorkflow
    retry_execution: RetryExecution
    get_execution: GetExecution
    list_executions: ListExecutions
    list_workflow_executions: ListWorkflowExecutions
    cancel_execution: CancelExecution
    finish_lost_executions: FinishLostExecutions
    resume_parked_executions: ResumeParkedExecutions
    get_schedule: GetSchedule
    start_due_schedules: StartDueSchedules


def build_use_cases(
    adapters: Adapters,
    clock: Clock,
    *,
    limits: RunLimits | None = None,
    quotas: Quotas | None = None,
    schedule_rules: ScheduleRules | None = None,
    scheduler: SchedulerLimits | None = None,
) -> UseCases:
    """The factory: every use case, built over `adapters` (one unit of work) and `clock`.
    `limits` are the per-user run limits that resuming parked executions respects; `quotas`
    what each user may store; `schedule_rules` check schedule triggers (give them a
    `CronsimCalendar` for cron expressions); `scheduler` bounds a scheduler's tick. The
    defaults of each when None."""
    a = adapters
    limits = limits if limits is not None else RunLimits()
    quotas = quotas if quotas is not None else Quotas()
    rules = schedule_rules or ScheduleRules()
    book = a.schedules if a.schedules is not None else NoScheduleBook()
    schedules = WorkflowSchedules(book, rules)
    writes = a.write_rate_limiter
    return UseCases(
        create_workflow=CreateWorkflow(a.workflows, writes, quotas, a.uow, clock, schedules),
        get_workflow=GetWorkflow(a.workflows),
        list_workflows=ListWorkflows(a.workflows),
        replace_workflow=ReplaceWorkflow(
            a.workflows, a.credential_directory, writes, quotas, a.uow, clock, schedules
        ),
        delete_workflow=DeleteWorkflow(a.workflows, writes, a.uow, clock, schedules),
        activate_workflow=ActivateWorkflow(
            a.workflows, a.credential_directory, writes, a.uow, clock, schedules
        ),
        deactivate_workflow=DeactivateWorkflow(a.workflows, writes, a.uow, clock, schedules),
        validate_definition=ValidateDefinition(a.credential_directory, a.workflows, schedules),
        list_workflow_versions=ListWorkflowVersions(a.workflows),
        get_workflow_version=GetWorkflowVersion(a.workflows),
        create_credential=CreateCredential(a.credentials, a.secrets, writes, quotas, a.uow, clock),
        get_credential=GetCredential(a.credentials),
        list_credentials=ListCredentials(a.credentials),
        replace_credential=ReplaceCredential(a.credentials, a.secrets, writes, a.uow, clock),
        delete_credential=DeleteCredential(
            a.credentials, a.workflows, a.secrets, writes, a.uow, clock
        ),
        resolve_credential=ResolveCredential(a.credentials, a.secrets),
        sweep_secrets=SweepSecrets(a.credentials, a.secrets, a.uow, clock),
        execute_workflow=ExecuteWorkflow(
            a.workflows,
            a.credential_directory,
            a.executions,
            a.outbox,
            a.rate_limiter,
            a.uow,
            clock,
            a.admission,
        ),
        retry_execution=RetryExecution(
            a.workflows,
            a.credential_directory,
            a.executions,
            a.outbox,
            a.rate_limiter,
            a.uow,
            clock,
            a.admission,
        ),
        get_execution=GetExecution(a.executions),
        list_executions=ListExecutions(a.executions),
        list_workflow_executions=ListWorkflowExecutions(a.executions, a.workflows),
        cancel_execution=CancelExecution(a.executions, a.uow, clock),
        finish_lost_executions=FinishLostExecutions(a.executions, a.uow, clock),
        resume_parked_executions=ResumeParkedExecutions(a.executions, a.outbox, a.uow, limits),
        get_schedule=GetSchedule(a.workflows, rules, clock),
        start_due_schedules=StartDueSchedules(
            book,
            a.workflows,
            a.executions,
            a.outbox,
            a.uow,
            clock,
            rules,
            scheduler or SchedulerLimits(),
        ),
    )


class StorageRunTransactions(RunTransactions):
    """A run's short units of work, each a block of the storage of its own."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[RunTransaction]:
        async with self._storage() as adapters:
            yield RunTransaction(
                adapters.executions, adapters.workflows, adapters.outbox, adapters.uow
            )


class StorageCredentialResolver(CredentialResolver):
    """Resolves a node's credential in a block of the storage of its own, so that a run holds
    no unit of work while its nodes run."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def resolve(self, owner: UserId, credential_id: uuid.UUID) -> ResolvedSecret:
        async with self._storage() as adapters:
            resolve = ResolveCredential(adapters.credentials, adapters.secrets)
            resolved = await resolve(owner, credential_id)
        return ResolvedSecret(resolved.credential.type, resolved.data)


class FlowBuilder:
    """The core over a `Storage`, for a Python service: use cases, and runs in this process.

    - `use_cases()` opens a unit of work and gives every use case over it, with `quotas` (what
      each user may store). Each use case commits its own changes; what is left uncommitted
      at the block's end is discarded.
    - `run(execution_id)` runs an execution requested by `execute_workflow` or
      `retry_execution` to its end, node by node, with `runners` (node type -> runner) and
      `expressions` (templates, `logic.if`, `data.transform`), and answers how it ended.
      Running needs `expressions`; the use cases alone do not.
    - `follow` streams an execution's events as it runs (`FollowExecution`), each read in a
      unit of work of its own.
    - `schedule_rules` check schedule triggers when workflows are saved (see
      `build_use_cases`).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        runners: Mapping[str, NodeRunner] | None = None,
        expressions: ExpressionEvaluator | None = None,
        clock: Clock | None = None,
        limits: RunLimits | None = None,
        quotas: Quotas | None = None,
        schedule_rules: ScheduleRules | None = None,
    ) -> None:
        self._storage = storage
        self._schedule_rules = schedule_rules
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._limits = limits if limits is not None else RunLimits()
        self._quotas = quotas if quotas is not None else Quotas()
        self.follow = FollowExecution(StorageRunTransactions(storage), self._limits)
        self._run: RunExecution | None = None
        if expressions is not None:
            engine = Engine(runners or {}, expressions, self._clock)
            self._run = RunExecution(
                StorageRunTransactions(storage),
                engine,
                StorageCredentialResolver(storage),
                self._clock,
                limits=self._limits,
            )

    @asynccontextmanager
    async def use_cases(self) -> AsyncIterator[UseCases]:
        """Every use case over one unit of work of the storage."""
        async with self._storage() as adapters:
            yield build_use_cases(
                adapters,
                self._clock,
                limits=self._limits,
                quotas=self._quotas,
                schedule_rules=self._schedule_rules,
            )

    async def run(self, execution_id: uuid.UUID) -> RunOutcome | None:
        """Run a requested execution to its end; None when there was nothing to run (it ran
        already, was cancelled first, or waits for a free slot of its owner: see `RunLimits`)."""
        if self._run is None:
            raise RuntimeError(
                "FlowBuilder runs nothing without an expression evaluator: "
                "pass expressions=JmesPathEvaluator() (flowbuilder_adapters.nodes)"
            )
        return await self._run(ExecutionId(execution_id))


def validate_definition(
    definition: object,
    credential_types: Mapping[uuid.UUID, str] | None = None,
    schedule_rules: ScheduleRules | None = None,
) -> ValidationReport:
    """Every problem of a definition given as raw JSON (dicts and lists, as a client sends
    it), with no storage: what `ValidateDefinition` answers.

    Save-time problems come first and alone (a definition that is not well formed is not
    checked further); otherwise the execute-time ones. Each problem's `field` is a JSON
    pointer into `definition` itself (`/nodes/1/parameters/url`). `credential_types` maps the
    ids of the credentials the definition may use to their types; an id missing from it is a
    credential that does not exist. `schedule_rules` check schedule triggers (see
    `build_use_cases`).
    """
    parsed, save_errors = parse_definition(definition, at="", rules=schedule_rules)
    if save_errors:
        return report(save_errors, [])
    return report([], runnability_problems(parsed, credential_types or {}, at=""))

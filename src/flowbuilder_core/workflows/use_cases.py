"""Use cases of the workflows context. Each checks ownership: another user's workflow is
indistinguishable from a missing one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.errors import FieldError, InvalidInputError, MalformedRequestError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import new_uuid
from flowbuilder_core.shared.pagination import (
    Page,
    PageRequest,
    Position,
    check_limit,
    decode_cursor,
    decode_time_id_cursor,
    page_of,
    time_id_position,
)
from flowbuilder_core.shared.quotas import Quotas, WriteRateLimiter, refuse_past, take_write
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.checks import owned_workflow
from flowbuilder_core.workflows.errors import (
    ConcurrentUpdateError,
    StaleWorkflowVersionError,
    WorkflowVersionNotFoundError,
)
from flowbuilder_core.workflows.model import (
    Workflow,
    WorkflowId,
    WorkflowSummary,
    WorkflowVersion,
)
from flowbuilder_core.workflows.ports import CredentialDirectory, WorkflowFilter, WorkflowRepository
from flowbuilder_core.workflows.runnability import refuse_unless_runnable, runnability_of
from flowbuilder_core.workflows.schedules import WorkflowSchedules
from flowbuilder_core.workflows.subworkflows import cycle_problems
from flowbuilder_core.workflows.validation import (
    MAX_NAME,
    MAX_TAG,
    ValidationReport,
    parse_definition,
    parse_fields,
    report,
)

_MAX_RACE_RETRIES = 3


@dataclass(frozen=True, slots=True)
class WorkflowInput:
    """What a client sends to create or replace a workflow; `definition` is raw JSON."""

    name: str
    description: str = ""
    tags: Sequence[str] = ()
    definition: object = None


@dataclass(frozen=True, slots=True)
class ReplaceWorkflowCommand:
    """`if_match` holds the versions of the client's `If-Match` (None: no precondition, or `*`);
    `version` is the body's own version, if it carried one."""

    workflow_id: uuid.UUID
    fields: WorkflowInput
    if_match: Sequence[int] | None = None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteWorkflowCommand:
    workflow_id: uuid.UUID
    if_match: Sequence[int] | None = None


@dataclass(frozen=True, slots=True)
class ListWorkflowsQuery:
    limit: int = 20
    cursor: str | None = None
    where: WorkflowFilter = field(default_factory=WorkflowFilter)
    include_definition: bool = True


@dataclass(frozen=True, slots=True)
class ListVersionsQuery:
    workflow_id: uuid.UUID
    limit: int = 20
    cursor: str | None = None


def _check_preconditions(
    workflow: Workflow, if_match: Sequence[int] | None, version: int | None
) -> None:
    if if_match is not None and workflow.version not in if_match:
        raise StaleWorkflowVersionError(workflow.version)
    if version is not None and version != workflow.version:
        raise StaleWorkflowVersionError(workflow.version)


def _is_version_number(version: int) -> bool:
    return version >= 1  # how large a number may be is the repository's to say


def _workflow_position(workflow: Workflow | WorkflowSummary) -> Position:
    return time_id_position(workflow.created_at, workflow.id)


class CreateWorkflow:
    """Create a workflow owned by the caller.

    - The fields must be valid and the definition well formed (it need not be runnable).
    - The new workflow starts at version 1, which is also its first history entry.
    - A write takes one of the caller's write tokens (RateLimitedError when there is none), and
      a caller who holds `quotas.max_workflows` live workflows gets QuotaExceededError.
    """

    def __init__(
        self,
        workflows: WorkflowRepository,
        writes: WriteRateLimiter,
        quotas: Quotas,
        uow: UnitOfWork,
        clock: Clock,
        schedules: WorkflowSchedules,
    ) -> None:
        self._workflows, self._writes, self._quotas = workflows, writes, quotas
        self._uow, self._clock, self._schedules = uow, clock, schedules

    async def __call__(self, actor: Principal, command: WorkflowInput) -> Workflow:
        fields = parse_fields(
            name=command.name,
            description=command.description,
            tags=command.tags,
            definition=command.definition,
            rules=self._schedules.rules,
        )
        await take_write(self._writes, actor.user_id, self._clock.now())
        limit = self._quotas.max_workflows
        refuse_past(await self._workflows.count(actor.user_id, limit), limit, "workflows")
        workflow = Workflow.create(
            id=WorkflowId(new_uuid()), owner_id=actor.user_id, fields=fields, at=self._clock.now()
        )
        await self._workflows.add(workflow)
        await self._uow.commit()
        return workflow


class GetWorkflow:
    """Read one of the caller's workflows."""

    def __init__(self, workflows: WorkflowRepository) -> None:
        self._workflows = workflows

    async def __call__(self, actor: Principal, workflow_id: uuid.UUID) -> Workflow:
        return await owned_workflow(self._workflows, actor.user_id, workflow_id)


class ListWorkflows:
    """List the caller's workflows, newest first, optionally by tag or name substring.

    - Without `include_definition` the items are summaries: no definition is read.
    - The cursor is bound to the caller and to the filters; any other cursor is refused.
    """

    def __init__(self, workflows: WorkflowRepository) -> None:
        self._workflows = workflows

    async def __call__(
        self, actor: Principal, query: ListWorkflowsQuery
    ) -> Page[Workflow] | Page[WorkflowSummary]:
        limit = check_limit(query.limit)
        where = _check_filter(query.where)
        scope = f"workflows|{actor.user_id}|tag={where.tag!r}|q={where.q!r}"
        after = decode_time_id_cursor(query.cursor, scope) if query.cursor else None
        request = PageRequest(limit, after)
        if query.include_definition:
            rows = await self._workflows.page(actor.user_id, where, request)
            return page_of(rows, request, _workflow_position, scope)
        summaries = await self._workflows.summaries(actor.user_id, where, request)
        return page_of(summaries, request, _workflow_position, scope)


def _check_filter(where: WorkflowFilter) -> WorkflowFilter:
    errors = [
        FieldError.query(name, f"must be at most {limit} characters, without NUL")
        for name, value, limit in (("tag", where.tag, MAX_TAG), ("q", where.q, MAX_NAME))
        if value is not None and (len(value) > limit or "\x00" in value)
    ]
    if errors:
        raise InvalidInputError(errors)
    return WorkflowFilter(tag=where.tag, q=where.q or None)


class ReplaceWorkflow:
    """Replace a workflow's name, description, tags and definition (a full replace).

    - Omitted optional fields take their defaults; the definition must be well formed.
    - A stale `If-Match` or body `version` is StaleWorkflowVersionError.
    - Without a precondition the last write wins, even against a concurrent writer.
    - Every replace is a new version, kept in the history: the newest `quotas.versions_kept`,
      and every older one an execution ran.
    - An active workflow stays active, so its new definition must be runnable
      (NotRunnableError otherwise: deactivate it first); its schedule follows the new one.
    - A write takes one of the caller's write tokens (RateLimitedError when there is none).
    """

    def __init__(
        self,
        workflows: WorkflowRepository,
        credentials: CredentialDirectory,
        writes: WriteRateLimiter,
        quotas: Quotas,
        uow: UnitOfWork,
        clock: Clock,
        schedules: WorkflowSchedules,
    ) -> None:
        self._workflows, self._credentials = workflows, credentials
        self._writes, self._quotas = writes, quotas
        self._uow, self._clock, self._schedules = uow, clock, schedules

    async def __call__(self, actor: Principal, command: ReplaceWorkflowCommand) -> Workflow:
        await take_write(self._writes, actor.user_id, self._clock.now())
        workflow = await owned_workflow(self._workflows, actor.user_id, command.workflow_id)
        _check_preconditions(workflow, command.if_match, command.version)
        data = command.fields
        fields = parse_fields(
            name=data.name,
            description=data.description,
            tags=data.tags,
            definition=data.definition,
            rules=self._schedules.rules,
        )
        cycles = await cycle_problems(
            self._workflows, actor.user_id, workflow.id, fields.definition
        )
        if cycles:
            raise InvalidInputError(cycles)
        if workflow.active:
            await refuse_unless_runnable(
                self._credentials, actor, fields.definition, self._workflows
            )
        for _ in range(_MAX_RACE_RETRIES):
            expected = workflow.version
            workflow.replace(fields, at=self._clock.now())
            try:
                await self._workflows.update(workflow, expected_version=expected)
                break
            except ConcurrentUpdateError:
                # Someone saved in between. With a precondition that is the client's conflict;
                # without one, the last write wins: read the new version and write over it.
                workflow = await owned_workflow(self._workflows, actor.user_id, command.workflow_id)
                if command.if_match is not None or command.version is not None:
                    raise StaleWorkflowVersionError(workflow.version) from None
        else:
            raise StaleWorkflowVersionError(workflow.version)
        await self._workflows.prune_versions(workflow, self._quotas.versions_kept)
        await self._schedules.keep(workflow, self._clock.now())
        await self._uow.commit()
        return workflow


class DeleteWorkflow:
    """Soft-delete a workflow: it disappears from every workflow call, its history stays for
    the executions that ran it. A stale `If-Match` is StaleWorkflowVersionError. A write takes
    one of the caller's write tokens (RateLimitedError when there is none)."""

    def __init__(
        self,
        workflows: WorkflowRepository,
        writes: WriteRateLimiter,
        uow: UnitOfWork,
        clock: Clock,
        schedules: WorkflowSchedules,
    ) -> None:
        self._workflows, self._writes, self._uow, self._clock = workflows, writes, uow, clock
        self._schedules = schedules

    async def __call__(self, actor: Principal, command: DeleteWorkflowCommand) -> None:
        await take_write(self._writes, actor.user_id, self._clock.now())
        for _ in range(_MAX_RACE_RETRIES):
            workflow = await owned_workflow(self._workflows, actor.user_id, command.workflow_id)
            _check_preconditions(workflow, command.if_match, None)
            try:
                await self._workflows.delete(
                    workflow.id, expected_version=workflow.version, at=self._clock.now()
                )
                break
            except ConcurrentUpdateError:
                continue  # re-read: the precondition decides, or the delete wins the race
        else:
            raise StaleWorkflowVersionError(workflow.version)
        await self._schedules.drop(workflow.id)
        await self._uow.commit()


class ValidateDefinition:
    """Check a definition without saving it: every save-time problem, and, when it is well
    formed, every execute-time problem (including the caller's credentials and the workflows
    it calls)."""

    def __init__(
        self,
        credentials: CredentialDirectory,
        workflows: WorkflowRepository,
        schedules: WorkflowSchedules,
    ) -> None:
        self._credentials, self._workflows = credentials, workflows
        self._rules = schedules.rules

    async def __call__(self, actor: Principal, definition: object) -> ValidationReport:
        parsed, save_errors = parse_definition(definition, rules=self._rules)
        if save_errors:
            return report(save_errors, [])
        problems = await runnability_of(self._credentials, actor, parsed, self._workflows)
        return report([], problems)


class ListWorkflowVersions:
    """List every version of one of the caller's workflows, the current one included, newest
    first."""

    def __init__(self, workflows: WorkflowRepository) -> None:
        self._workflows = workflows

    async def __call__(self, actor: Principal, query: ListVersionsQuery) -> Page[WorkflowVersion]:
        limit = check_limit(query.limit)
        workflow = await owned_workflow(self._workflows, actor.user_id, query.workflow_id)
        scope = f"versions|{actor.user_id}|{workflow.id}"
        after = decode_cursor(query.cursor, scope, (int,)) if query.cursor else None
        if after is not None and not _is_version_number(int(after[0])):
            raise MalformedRequestError("The cursor is malformed.")
        request = PageRequest(limit, after)
        rows = await self._workflows.versions(workflow.id, request)
        return page_of(rows, request, lambda v: (v.version,), scope)


class GetWorkflowVersion:
    """Read one version of one of the caller's workflows."""

    def __init__(self, workflows: WorkflowRepository) -> None:
        self._workflows = workflows

    async def __call__(
        self, actor: Principal, workflow_id: uuid.UUID, version: int
    ) -> WorkflowVersion:
        workflow = await owned_workflow(self._workflows, actor.user_id, workflow_id)
        found = (
            await self._workflows.version(workflow.id, version)
            if _is_version_number(version)
            else None
        )
        if found is None:
            raise WorkflowVersionNotFoundError
        return found

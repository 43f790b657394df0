"""Checks the workflow use cases share with other contexts: ownership and runnability."""

from __future__ import annotations

import uuid

from flowbuilder_core.shared.errors import FieldError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.ownership import owned_by
from flowbuilder_core.workflows.errors import NotRunnableError, WorkflowNotFoundError
from flowbuilder_core.workflows.model import Definition, Workflow, WorkflowId
from flowbuilder_core.workflows.ports import CredentialDirectory, WorkflowRepository
from flowbuilder_core.workflows.validation import referenced_credentials, runnability_problems


async def owned_workflow(
    workflows: WorkflowRepository, owner: UserId, workflow_id: uuid.UUID
) -> Workflow:
    """The workflow, if `owner` has it (see `owned_by`); else WorkflowNotFoundError."""
    return owned_by(owner, await workflows.get(WorkflowId(workflow_id)), WorkflowNotFoundError)


async def runnability_of(
    credentials: CredentialDirectory, actor: Principal, definition: Definition
) -> list[FieldError]:
    """Every execute-time problem of a well-formed definition of the caller's."""
    ids = referenced_credentials(definition)
    types = await credentials.types_of(actor.user_id, ids) if ids else {}
    return runnability_problems(definition, types)


async def refuse_unless_runnable(
    credentials: CredentialDirectory, actor: Principal, definition: Definition
) -> None:
    """NotRunnableError naming every problem, unless `definition` can run as it is."""
    problems = await runnability_of(credentials, actor, definition)
    if problems:
        raise NotRunnableError(problems, "The workflow cannot run: " + problems[0].message)

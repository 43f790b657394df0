"""Whether a well-formed definition of the caller's can run: the checks that need storage
(credentials, the workflows it calls) on top of `validation.runnability_problems`."""

from __future__ import annotations

from flowbuilder_core.shared.errors import FieldError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.workflows.errors import NotRunnableError
from flowbuilder_core.workflows.model import Definition
from flowbuilder_core.workflows.ports import CredentialDirectory, WorkflowRepository
from flowbuilder_core.workflows.subworkflows import subworkflow_problems
from flowbuilder_core.workflows.validation import referenced_credentials, runnability_problems


async def runnability_of(
    credentials: CredentialDirectory,
    actor: Principal,
    definition: Definition,
    workflows: WorkflowRepository | None = None,
) -> list[FieldError]:
    """Every execute-time problem of a well-formed definition of the caller's. Given
    `workflows`, the workflows it calls are checked too: the caller's, and runnable
    themselves (their own calls only for how deep they nest, which bounds the reading)."""
    ids = referenced_credentials(definition)
    types = await credentials.types_of(actor.user_id, ids) if ids else {}
    problems = runnability_problems(definition, types)
    if workflows is not None:

        async def problems_of(called: Definition) -> list[FieldError]:
            return await runnability_of(credentials, actor, called)

        problems += await subworkflow_problems(workflows, actor.user_id, definition, problems_of)
    return problems


async def refuse_unless_runnable(
    credentials: CredentialDirectory,
    actor: Principal,
    definition: Definition,
    workflows: WorkflowRepository | None = None,
) -> None:
    """NotRunnableError naming every problem, unless `definition` can run as it is."""
    problems = await runnability_of(credentials, actor, definition, workflows)
    if problems:
        raise NotRunnableError(problems, "The workflow cannot run: " + problems[0].message)

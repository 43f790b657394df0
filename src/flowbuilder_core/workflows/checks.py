"""The lookup every use case on one of the caller's workflows starts with."""

from __future__ import annotations

import uuid

from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.ownership import owned_by
from flowbuilder_core.workflows.errors import WorkflowNotFoundError
from flowbuilder_core.workflows.model import Workflow, WorkflowId
from flowbuilder_core.workflows.ports import WorkflowRepository


async def owned_workflow(
    workflows: WorkflowRepository, owner: UserId, workflow_id: uuid.UUID
) -> Workflow:
    """The workflow, if `owner` has it (see `owned_by`); else WorkflowNotFoundError."""
    return owned_by(owner, await workflows.get(WorkflowId(workflow_id)), WorkflowNotFoundError)

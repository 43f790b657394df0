"""Switching a workflow on and off for the doors that start it by themselves: its webhook and
its schedule."""

from __future__ import annotations

import dataclasses
import uuid

from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.quotas import WriteRateLimiter, take_write
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.checks import owned_workflow
from flowbuilder_core.workflows.model import Workflow
from flowbuilder_core.workflows.ports import CredentialDirectory, WorkflowRepository
from flowbuilder_core.workflows.runnability import refuse_unless_runnable
from flowbuilder_core.workflows.schedules import WorkflowSchedules


class ActivateWorkflow:
    """Switch one of the caller's workflows on for its webhook and schedule. Its current
    definition must be runnable (NotRunnableError, as execute gives). Idempotent: activating
    an active workflow leaves its schedule's next time as it was."""

    def __init__(
        self,
        workflows: WorkflowRepository,
        credentials: CredentialDirectory,
        writes: WriteRateLimiter,
        uow: UnitOfWork,
        clock: Clock,
        schedules: WorkflowSchedules,
    ) -> None:
        self._workflows, self._credentials, self._writes = workflows, credentials, writes
        self._uow, self._clock, self._schedules = uow, clock, schedules

    async def __call__(self, actor: Principal, workflow_id: uuid.UUID) -> Workflow:
        await take_write(self._writes, actor.user_id, self._clock.now())
        workflow = await owned_workflow(self._workflows, actor.user_id, workflow_id)
        await refuse_unless_runnable(self._credentials, actor, workflow.definition, self._workflows)
        await self._workflows.set_active(workflow.id, True)
        workflow = dataclasses.replace(workflow, active=True)
        await self._schedules.keep(workflow, self._clock.now())
        await self._uow.commit()
        return workflow


class DeactivateWorkflow:
    """Switch one of the caller's workflows off: its webhook and schedule start nothing more.
    `execute` still runs it. Idempotent."""

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

    async def __call__(self, actor: Principal, workflow_id: uuid.UUID) -> Workflow:
        await take_write(self._writes, actor.user_id, self._clock.now())
        workflow = await owned_workflow(self._workflows, actor.user_id, workflow_id)
        await self._workflows.set_active(workflow.id, False)
        await self._schedules.drop(workflow.id)
        await self._uow.commit()
        return dataclasses.replace(workflow, active=False)

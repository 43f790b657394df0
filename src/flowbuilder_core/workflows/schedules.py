"""The schedule book: the next due time of every active workflow that has a schedule trigger,
kept in step by the workflow use cases and read by the scheduler (`triggers/schedules.py`).

One entry per such workflow, indexed by its due time, is what keeps a scheduler's tick cheap
however many workflows there are: it reads the entries that are due, not the workflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from flowbuilder_core.nodes.schedule import SCHEDULE_TRIGGER, Schedule, ScheduleRules
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import Definition, Workflow, WorkflowId


@dataclass(frozen=True, slots=True)
class ScheduledWorkflow:
    """An active workflow's schedule and the next time it is due (aware UTC)."""

    workflow_id: WorkflowId
    owner_id: UserId
    schedule: Schedule
    next_due_at: datetime


class ScheduleRepository(Protocol):
    """The schedule book, in the unit of work of the current scope: at most one entry per
    workflow."""

    async def get(self, workflow_id: WorkflowId) -> ScheduledWorkflow | None: ...

    async def put(self, entry: ScheduledWorkflow) -> None:
        """Add the workflow's entry, or replace the one it has."""

    async def remove(self, workflow_id: WorkflowId) -> None:
        """Remove the workflow's entry, if it has one."""

    async def claim_due(self, now: datetime, limit: int) -> Sequence[ScheduledWorkflow]:
        """Up to `limit` entries due at `now` (`next_due_at <= now`), earliest first. Each is
        held by this unit of work until it ends: a claim in another unit of work passes over
        the held ones instead of waiting for them (Postgres: `FOR UPDATE SKIP LOCKED`)."""


class NoScheduleBook(ScheduleRepository):
    """A book that keeps nothing, for a library user who runs no scheduler."""

    async def get(self, workflow_id: WorkflowId) -> ScheduledWorkflow | None:
        return None

    async def put(self, entry: ScheduledWorkflow) -> None:
        return None

    async def remove(self, workflow_id: WorkflowId) -> None:
        return None

    async def claim_due(self, now: datetime, limit: int) -> Sequence[ScheduledWorkflow]:
        return ()


def schedule_of(definition: Definition) -> Schedule | None:
    """The schedule of the definition's `trigger.schedule` node; None without one, or while
    it has neither `cron` nor `every_s`."""
    for node in definition.nodes:
        if node.type == SCHEDULE_TRIGGER:
            return Schedule.of(node.parameters)
    return None


class WorkflowSchedules:
    """What the workflow use cases need of schedules: the `rules` that check a schedule
    trigger when a definition is saved, and the book, kept in step with each workflow.

    - A live, active workflow whose definition has a complete schedule trigger has an entry;
      any other has none.
    - A new entry, or one whose schedule changed, is next due at the first time after now; a
      save that keeps the schedule keeps the entry's due time (nothing skipped, nothing twice).
    """

    def __init__(self, book: ScheduleRepository, rules: ScheduleRules) -> None:
        self._book, self.rules = book, rules

    async def keep(self, workflow: Workflow, now: datetime) -> None:
        """Bring the workflow's entry in step with `workflow` as it is now saved."""
        if not workflow.active:
            return  # it has no entry: deactivating and deleting remove it (see `drop`)
        schedule = schedule_of(workflow.definition)
        if workflow.is_deleted or schedule is None:
            await self._book.remove(workflow.id)
            return
        current = await self._book.get(workflow.id)
        if current is not None and current.schedule == schedule:
            return
        due = schedule.next_after(now, self.rules.calendar)
        if due is None:
            await self._book.remove(workflow.id)
            return
        await self._book.put(ScheduledWorkflow(workflow.id, workflow.owner_id, schedule, due))

    async def drop(self, workflow_id: WorkflowId) -> None:
        """The workflow is switched off or deleted: no entry."""
        await self._book.remove(workflow_id)

"""Schedules: the scheduler's tick, which starts the runs that are due, and a workflow's
schedule as the API shows it.

Any number of schedulers may tick at once (one in every worker process). The unique key on
(workflow, scheduled time) of `ExecutionRepository.add_scheduled` is what makes one run per
time; the claim that passes over entries another scheduler holds only spares the work.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flowbuilder_core.executions.model import Execution, ExecutionId, ExecutionRequested
from flowbuilder_core.executions.ports import ExecutionRepository, Outbox
from flowbuilder_core.nodes.schedule import Schedule, ScheduleRules
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.errors import NotFoundError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import new_uuid
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.checks import owned_workflow
from flowbuilder_core.workflows.model import Workflow
from flowbuilder_core.workflows.ports import WorkflowRepository
from flowbuilder_core.workflows.schedules import (
    ScheduledWorkflow,
    ScheduleRepository,
    schedule_of,
)

_log = logging.getLogger(__name__)

SCHEDULE_TRIGGER_NAME = "schedule"
"""The `trigger` of the executions a schedule starts."""
UPCOMING = 5
"""How many next times the API shows."""
LATE_S = 10
"""A time due less than this long ago is late, not missed: it runs, however many such times
there are (a tick that came a little late, a busy database). Older ones were missed."""


class ScheduleNotFoundError(NotFoundError):
    """The caller's workflow has no schedule: its current version has no `trigger.schedule`
    node with `cron` or `every_s`."""

    code = "schedule-not-found"

    def __init__(self) -> None:
        super().__init__("This workflow has no schedule trigger with cron or every_s.")


@dataclass(frozen=True, slots=True)
class SchedulerLimits:
    """What one scheduler tick does: at most `batch` due schedules (SCHEDULE_BATCH), and after
    downtime one run for the latest missed time if it is younger than `catch_up_s`
    (SCHEDULE_CATCHUP_S)."""

    batch: int = 100
    catch_up_s: int = 3600


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """A workflow's schedule: its parameters, whether it is active, and its next times."""

    workflow_id: uuid.UUID
    schedule: Schedule
    active: bool
    upcoming: tuple[datetime, ...]


class GetSchedule:
    """Read the schedule of one of the caller's workflows, with its next five times after now
    (whether it is active or not). A workflow without one is ScheduleNotFoundError."""

    def __init__(self, workflows: WorkflowRepository, rules: ScheduleRules, clock: Clock) -> None:
        self._workflows, self._rules, self._clock = workflows, rules, clock

    async def __call__(self, actor: Principal, workflow_id: uuid.UUID) -> ScheduleView:
        workflow = await owned_workflow(self._workflows, actor.user_id, workflow_id)
        schedule = schedule_of(workflow.definition)
        if schedule is None:
            raise ScheduleNotFoundError
        upcoming = schedule.upcoming(self._clock.now(), UPCOMING, self._rules.calendar)
        return ScheduleView(workflow.id, schedule, workflow.active, tuple(upcoming))


@dataclass(frozen=True, slots=True)
class _Due:
    """What an entry that is due comes to at `now`."""

    run_for: tuple[datetime, ...]  # the times to run now, oldest first
    following: datetime | None  # its next time after now (None: it has no more)
    missed_from: datetime | None = None  # times were missed (downtime) from this one on


class StartDueSchedules:
    """One tick of a scheduler: start the runs of the schedules that are due.

    - At most `limits.batch` due entries, earliest first; those another scheduler holds are
      passed over. Everything the tick does commits at once.
    - Each of an entry's times due within the last `LATE_S` (10 s) runs: in normal operation
      that is its one due time. Older times were missed (downtime): unless a later time runs,
      the latest of them runs, once, if it is younger than `limits.catch_up_s`; the others
      are skipped, and logged.
    - A run is an execution of the workflow's current version with trigger `schedule`,
      `scheduled_for` its time and input `{"scheduled_for": "<time>"}`, added with its queue
      message (the outbox), unless that (workflow, time) has one already (the unique key).
      It takes no token of execute's rate limit; the owner's running limit applies as to any.
    - The entry moves to its first time after now. An entry whose workflow is gone, inactive
      or no longer scheduled, or whose schedule has no time left, is removed.
    """

    def __init__(
        self,
        schedules: ScheduleRepository,
        workflows: WorkflowRepository,
        executions: ExecutionRepository,
        outbox: Outbox,
        uow: UnitOfWork,
        clock: Clock,
        rules: ScheduleRules,
        limits: SchedulerLimits,
    ) -> None:
        self._schedules, self._workflows = schedules, workflows
        self._executions, self._outbox, self._uow = executions, outbox, uow
        self._clock, self._rules, self._limits = clock, rules, limits

    async def __call__(self) -> int:
        """How many runs it started."""
        now = self._clock.now()
        started = 0
        for entry in await self._schedules.claim_due(now, self._limits.batch):
            started += await self._fire(entry, now)
        await self._uow.commit()
        return started

    async def _fire(self, entry: ScheduledWorkflow, now: datetime) -> int:
        workflow = await self._workflows.get(entry.workflow_id)
        schedule = None if workflow is None else schedule_of(workflow.definition)
        if workflow is None or not workflow.active or schedule is None:
            await self._schedules.remove(entry.workflow_id)
            return 0
        if schedule != entry.schedule:  # saved behind the book's back: count from now
            due = _Due((), schedule.next_after(now, self._rules.calendar))
            entry = dataclasses.replace(entry, schedule=schedule)
        else:
            due = self._due(schedule, entry.next_due_at, now)
        if due.missed_from is not None:
            _log.warning(
                "schedule of workflow %s: times from %s on were missed; %s",
                entry.workflow_id,
                due.missed_from.isoformat(),
                "runs for " + ", ".join(t.isoformat() for t in due.run_for)
                if due.run_for
                else f"none younger than {self._limits.catch_up_s} s (SCHEDULE_CATCHUP_S) runs",
            )
        started = 0
        for run_for in due.run_for:
            started += await self._start(workflow, run_for)
        if due.following is None:
            await self._schedules.remove(entry.workflow_id)
        else:
            await self._schedules.put(dataclasses.replace(entry, next_due_at=due.following))
        return started

    async def _start(self, workflow: Workflow, run_for: datetime) -> int:
        execution = Execution(
            id=ExecutionId(new_uuid()),
            owner_id=workflow.owner_id,
            workflow_id=workflow.id,
            workflow_version=workflow.version,
            trigger=SCHEDULE_TRIGGER_NAME,
            input={"scheduled_for": run_for.isoformat().replace("+00:00", "Z")},
            created_at=self._clock.now(),
            scheduled_for=run_for,
        )
        if not await self._executions.add_scheduled(execution):
            return 0  # another scheduler started this time
        await self._outbox.add(ExecutionRequested.of(execution))
        return 1

    def _due(self, schedule: Schedule, next_due: datetime, now: datetime) -> _Due:
        calendar = self._rules.calendar
        late_from = now - timedelta(seconds=LATE_S)
        moment = next_due if next_due > late_from else schedule.next_after(late_from, calendar)
        late: list[datetime] = []
        while moment is not None and moment <= now:  # at most LATE_S / the shortest interval
            late.append(moment)
            moment = schedule.next_after(moment, calendar)
        if next_due > late_from or late:  # nothing missed, or a later time runs
            return _Due(tuple(late), moment, None if next_due > late_from else next_due)
        caught = self._latest_missed(schedule, next_due, late_from, now)
        return _Due(() if caught is None else (caught,), moment, next_due)

    def _latest_missed(
        self, schedule: Schedule, next_due: datetime, late_from: datetime, now: datetime
    ) -> datetime | None:
        """The latest time from `next_due` to `late_from` younger than the catch-up window."""
        calendar = self._rules.calendar
        window = now - timedelta(seconds=self._limits.catch_up_s)
        moment = next_due if next_due > window else schedule.next_after(window, calendar)
        if moment is None or moment > late_from:
            return None
        if schedule.every_s is not None:  # straight to the latest, without counting up
            steps = int((late_from - moment).total_seconds() // schedule.every_s)
            return moment + timedelta(seconds=steps * schedule.every_s)
        latest: datetime = moment
        following = schedule.next_after(latest, calendar)
        while following is not None and following <= late_from:  # the window / a minute, at most
            latest, following = following, schedule.next_after(following, calendar)
        return latest

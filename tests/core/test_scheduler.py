"""The scheduler's tick (`StartDueSchedules`) and the schedule book's upkeep, over the
in-memory adapters on a fake clock."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowbuilder_adapters.cron import CronsimCalendar
from flowbuilder_adapters.memory import MemoryStorage
from flowbuilder_core import (
    DeleteWorkflowCommand,
    Execution,
    ExecutionError,
    Principal,
    ReplaceWorkflowCommand,
    ScheduleNotFoundError,
    SchedulerLimits,
    ScheduleRules,
    UseCases,
    UserId,
    WorkflowInput,
    build_use_cases,
)

ALICE = Principal(UserId("user_alice"))
START = datetime(2026, 3, 28, 23, 59, 30, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now_is = now

    def now(self) -> datetime:
        return self.now_is

    def advance(self, **delta: float) -> None:
        self.now_is += timedelta(**delta)


def scheduled(**parameters: Any) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "tick", "type": "trigger.schedule", "parameters": parameters},
            {"id": "note", "type": "data.set", "parameters": {"value": 1}},
        ],
        "edges": [{"source": "tick", "target": "note"}],
    }


class Scheduling:
    """The use cases over one in-memory storage and a fake clock, each call in its own unit
    of work, with a one-second minimum interval."""

    def __init__(self, *, catch_up_s: int = 3600, batch: int = 100) -> None:
        self.storage, self.clock = MemoryStorage(), FakeClock()
        self._limits = SchedulerLimits(batch=batch, catch_up_s=catch_up_s)

    async def use(self) -> UseCases:
        async with self.storage() as adapters:
            return build_use_cases(
                adapters,
                self.clock,
                schedule_rules=ScheduleRules(CronsimCalendar(), min_interval_s=1),
                scheduler=self._limits,
            )

    async def active_workflow(self, **parameters: Any) -> uuid.UUID:
        created = await (await self.use()).create_workflow(
            ALICE, WorkflowInput("Nightly", definition=scheduled(**parameters))
        )
        await (await self.use()).activate_workflow(ALICE, created.id)
        return created.id

    async def tick(self) -> int:
        return await (await self.use()).start_due_schedules()

    def runs(self) -> list[Execution]:
        return sorted(
            self.storage.store.executions.values(), key=lambda e: e.scheduled_for or START
        )

    def run_times(self) -> list[datetime | None]:
        return [e.scheduled_for for e in self.runs()]


@pytest.fixture
def app() -> Scheduling:
    return Scheduling()


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


async def test_a_due_schedule_starts_one_run_for_its_time_through_the_outbox(
    app: Scheduling,
) -> None:
    workflow_id = await app.active_workflow(every_s=60)
    app.clock.advance(seconds=31)  # 00:00:01

    started = await app.tick()

    assert started == 1
    [run] = app.runs()
    assert (run.workflow_id, run.trigger, run.status.value) == (workflow_id, "schedule", "queued")
    assert run.scheduled_for == at(2026, 3, 29, 0, 0)
    assert run.input == {"scheduled_for": "2026-03-29T00:00:00Z"}
    assert [m.execution_id for m in app.storage.take_requests()] == [run.id]


async def test_nothing_is_due_before_the_first_time_after_activation(app: Scheduling) -> None:
    await app.active_workflow(every_s=60)
    app.clock.advance(seconds=29)  # 23:59:59

    assert await app.tick() == 0
    assert app.runs() == []


async def test_ticking_again_at_the_same_time_starts_nothing_more(app: Scheduling) -> None:
    await app.active_workflow(every_s=60)
    app.clock.advance(seconds=31)

    first, again = await app.tick(), await app.tick()

    assert (first, again) == (1, 0)
    assert len(app.runs()) == 1


async def test_each_tick_runs_each_time_once_without_gaps(app: Scheduling) -> None:
    await app.active_workflow(every_s=1)

    for _ in range(20):
        app.clock.advance(seconds=0.5)
        await app.tick()

    assert app.run_times() == [START + timedelta(seconds=s) for s in range(1, 11)]


async def test_a_second_scheduler_that_read_the_entry_before_the_first_committed_starts_nothing(
    app: Scheduling,
) -> None:
    workflow_id = await app.active_workflow(every_s=1)
    app.clock.advance(seconds=1)
    stale = app.storage.store.schedules[workflow_id]
    assert await app.tick() == 1
    # What the other scheduler read: the entry as it was, due at the time just run.
    app.storage.store.schedules[workflow_id] = stale

    started = await app.tick()

    assert started == 0  # its insert met the unique key on (workflow, scheduled time)
    assert app.run_times() == [START + timedelta(seconds=1)]
    assert app.storage.store.schedules[workflow_id].next_due_at > stale.next_due_at


async def test_after_downtime_only_the_latest_missed_time_runs(
    app: Scheduling, caplog: pytest.LogCaptureFixture
) -> None:
    await app.active_workflow(cron="*/10 * * * *")
    app.clock.now_is = at(2026, 3, 29, 0, 35, 20)  # 00:00, 00:10, 00:20 and 00:30 missed

    with caplog.at_level(logging.WARNING):
        started = await app.tick()

    assert started == 1
    assert app.run_times() == [at(2026, 3, 29, 0, 30)]
    assert "times from 2026-03-29T00:00:00+00:00 on were missed; runs for 2026-03-29T00:30" in (
        caplog.text
    )
    app.clock.now_is = at(2026, 3, 29, 0, 40)
    assert await app.tick() == 1
    assert app.run_times()[-1] == at(2026, 3, 29, 0, 40)


async def test_a_missed_time_older_than_the_catch_up_window_is_skipped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Scheduling(catch_up_s=300)
    await app.active_workflow(cron="0 * * * *")
    app.clock.now_is = at(2026, 3, 29, 2, 10)  # 00:00 to 02:00 missed; 02:00 is 600 s old

    with caplog.at_level(logging.WARNING):
        started = await app.tick()

    assert started == 0
    assert app.runs() == []
    assert "none younger than 300 s (SCHEDULE_CATCHUP_S) runs" in caplog.text
    app.clock.now_is = at(2026, 3, 29, 3, 0, 1)
    assert await app.tick() == 1
    assert app.run_times() == [at(2026, 3, 29, 3, 0)]


async def test_an_interval_catches_up_with_its_latest_time_only(app: Scheduling) -> None:
    await app.active_workflow(every_s=60)
    app.clock.advance(minutes=30, seconds=5)  # 00:29:35: 00:00 to 00:29 were missed

    assert await app.tick() == 1
    assert app.run_times() == [at(2026, 3, 29, 0, 29)]
    app.clock.now_is = at(2026, 3, 29, 0, 30, 1)
    assert await app.tick() == 1
    assert app.run_times()[-1] == at(2026, 3, 29, 0, 30)


async def test_a_tick_that_comes_late_runs_each_time_it_is_late_for(
    app: Scheduling, caplog: pytest.LogCaptureFixture
) -> None:
    await app.active_workflow(every_s=1)
    app.clock.advance(seconds=3.5)  # due 23:59:31; 32 and 33 are due too, none 10 s old

    with caplog.at_level(logging.WARNING):
        started = await app.tick()

    assert started == 3
    assert app.run_times() == [START + timedelta(seconds=s) for s in (1, 2, 3)]
    assert "missed" not in caplog.text


async def test_after_a_short_stop_the_recent_times_run_and_the_older_ones_are_skipped(
    app: Scheduling,
) -> None:
    await app.active_workflow(every_s=1)
    app.clock.advance(seconds=30.5)  # 31 times due; the last 10 are late, the rest missed

    assert await app.tick() == 10
    assert app.run_times() == [START + timedelta(seconds=s) for s in range(21, 31)]


async def test_a_tick_handles_at_most_its_batch() -> None:
    app = Scheduling(batch=2)
    for _ in range(3):
        await app.active_workflow(every_s=60)
    app.clock.advance(seconds=31)

    assert [await app.tick(), await app.tick()] == [2, 1]


async def test_a_deactivated_or_deleted_workflow_is_no_longer_scheduled(app: Scheduling) -> None:
    switched_off = await app.active_workflow(every_s=60)
    deleted = await app.active_workflow(every_s=60)
    await (await app.use()).deactivate_workflow(ALICE, switched_off)
    await (await app.use()).delete_workflow(ALICE, DeleteWorkflowCommand(deleted))
    app.clock.advance(seconds=31)

    assert await app.tick() == 0
    assert app.storage.store.schedules == {}


async def test_an_inactive_workflow_is_not_scheduled(app: Scheduling) -> None:
    await (await app.use()).create_workflow(
        ALICE, WorkflowInput("Draft", definition=scheduled(every_s=60))
    )
    app.clock.advance(minutes=5)

    assert await app.tick() == 0


async def test_a_new_schedule_counts_from_its_save_and_an_unchanged_one_keeps_its_time(
    app: Scheduling,
) -> None:
    workflow_id = await app.active_workflow(every_s=60)

    async def replace(definition: dict[str, Any]) -> None:
        command = ReplaceWorkflowCommand(workflow_id, WorkflowInput("Nightly", "", (), definition))
        await (await app.use()).replace_workflow(ALICE, command)

    await replace(scheduled(every_s=60))
    assert app.storage.store.schedules[workflow_id].next_due_at == at(2026, 3, 29, 0, 0)
    await replace(scheduled(every_s=3600))
    assert app.storage.store.schedules[workflow_id].next_due_at == at(2026, 3, 29, 0, 0)
    app.clock.advance(minutes=5)
    await replace(scheduled(cron="0 12 * * *"))
    assert app.storage.store.schedules[workflow_id].next_due_at == at(2026, 3, 29, 12, 0)
    await replace({"nodes": [{"id": "go", "type": "trigger.manual"}]})
    assert app.storage.store.schedules == {}


async def test_the_schedule_shows_its_next_five_times_and_whether_it_is_active(
    app: Scheduling,
) -> None:
    workflow_id = await app.active_workflow(cron="30 2 * * *", timezone="Europe/Berlin")

    view = await (await app.use()).get_schedule(ALICE, workflow_id)

    assert (view.schedule.cron, view.schedule.timezone, view.active) == (
        "30 2 * * *",
        "Europe/Berlin",
        True,
    )
    assert view.upcoming == (
        at(2026, 3, 29, 1, 0),  # spring forward: 02:30 does not exist, it runs at the jump
        at(2026, 3, 30, 0, 30),
        at(2026, 3, 31, 0, 30),
        at(2026, 4, 1, 0, 30),
        at(2026, 4, 2, 0, 30),
    )


async def test_a_workflow_without_a_schedule_trigger_has_no_schedule(app: Scheduling) -> None:
    created = await (await app.use()).create_workflow(
        ALICE,
        WorkflowInput("Manual", definition={"nodes": [{"id": "a", "type": "trigger.manual"}]}),
    )

    with pytest.raises(ScheduleNotFoundError):
        await (await app.use()).get_schedule(ALICE, created.id)


async def test_a_retried_scheduled_run_is_a_retry_of_a_schedule_for_no_scheduled_time(
    app: Scheduling,
) -> None:
    await app.active_workflow(every_s=60)
    app.clock.advance(seconds=31)
    await app.tick()
    [run] = app.runs()
    run.fail(ExecutionError("http_status", "boom"), at=app.clock.now())
    app.storage.store.executions[run.id] = run

    retry = await (await app.use()).retry_execution(ALICE, run.id)

    assert (retry.trigger, retry.retried_trigger) == ("retry", "schedule")
    assert (retry.scheduled_for, retry.retry_of) == (None, run.id)


async def test_a_schedule_saved_behind_the_books_back_counts_again_from_now(
    app: Scheduling,
) -> None:
    workflow_id = await app.active_workflow(every_s=60)
    stored = app.storage.store.workflows[workflow_id]
    changed = {**stored.definition.nodes[0].parameters, "every_s": 3600}
    nodes = (dataclasses.replace(stored.definition.nodes[0], parameters=changed),)
    definition = dataclasses.replace(stored.definition, nodes=nodes + stored.definition.nodes[1:])
    app.storage.store.workflows[workflow_id] = dataclasses.replace(stored, definition=definition)
    app.clock.advance(seconds=31)

    started = await app.tick()

    assert started == 0, "a time of the old schedule is not run"
    assert app.storage.store.schedules[workflow_id].next_due_at == at(2026, 3, 29, 1, 0)

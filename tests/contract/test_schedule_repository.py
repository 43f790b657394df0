"""The ScheduleRepository contract (the schedule book) over every adapter, and
`ExecutionRepository.add_scheduled`'s unique key on (workflow, scheduled time).

Postgres keeps one database for the session, so each test books its entries in a year of its
own, long past, and removes them at its end: a claim sees only its own test's entries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from dishka import AsyncContainer, make_async_container

from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.wiring import CoreProvider, SqlProvider
from flowbuilder_core.executions.model import Execution, ExecutionId
from flowbuilder_core.executions.ports import ExecutionRepository
from flowbuilder_core.nodes.schedule import Schedule
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.model import Workflow, WorkflowFields, WorkflowId
from flowbuilder_core.workflows.ports import WorkflowRepository
from flowbuilder_core.workflows.schedules import ScheduledWorkflow, ScheduleRepository

from support.contract import T0, sql_extras

OWNER = UserId("user_owner")


async def make_workflows(container: AsyncContainer, count: int) -> list[WorkflowId]:
    made = [
        Workflow.create(
            id=WorkflowId(uuid.uuid4()), owner_id=OWNER, fields=WorkflowFields("w"), at=T0
        )
        for _ in range(count)
    ]
    async with container() as scope:
        for workflow in made:
            await (await scope.get(WorkflowRepository)).add(workflow)
        await (await scope.get(UnitOfWork)).commit()
    return [w.id for w in made]


def entry(workflow_id: WorkflowId, due: datetime, **schedule: object) -> ScheduledWorkflow:
    return ScheduledWorkflow(
        workflow_id,
        OWNER,
        Schedule(**schedule or {"every_s": 60}),
        due,  # type: ignore[arg-type]
    )


async def put(container: AsyncContainer, *entries: ScheduledWorkflow) -> None:
    async with container() as scope:
        book = await scope.get(ScheduleRepository)
        for one in entries:
            await book.put(one)
        await (await scope.get(UnitOfWork)).commit()


async def get(container: AsyncContainer, workflow_id: WorkflowId) -> ScheduledWorkflow | None:
    async with container() as scope:
        return await (await scope.get(ScheduleRepository)).get(workflow_id)


async def claim(container: AsyncContainer, now: datetime, limit: int) -> list[WorkflowId]:
    async with container() as scope:
        due = await (await scope.get(ScheduleRepository)).claim_due(now, limit)
        return [e.workflow_id for e in due]


async def remove(container: AsyncContainer, workflow_ids: Sequence[WorkflowId]) -> None:
    async with container() as scope:
        book = await scope.get(ScheduleRepository)
        for workflow_id in workflow_ids:
            await book.remove(workflow_id)
        await (await scope.get(UnitOfWork)).commit()


def era(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=UTC)


async def test_an_entry_reads_back_as_it_was_put_and_a_second_put_replaces_it(
    container: AsyncContainer,
) -> None:
    [workflow_id] = await make_workflows(container, 1)
    first = entry(workflow_id, era(1901), cron="30 2 * * *", timezone="Europe/Berlin")
    second = entry(workflow_id, era(1901) + timedelta(hours=1), every_s=3600)

    await put(container, first)
    read_first = await get(container, workflow_id)
    await put(container, second)
    read_second = await get(container, workflow_id)
    await remove(container, [workflow_id])

    assert (read_first, read_second) == (first, second)
    assert await get(container, workflow_id) is None


async def test_an_entry_not_committed_is_not_kept(container: AsyncContainer) -> None:
    [workflow_id] = await make_workflows(container, 1)

    async with container() as scope:
        await (await scope.get(ScheduleRepository)).put(entry(workflow_id, era(1902)))

    assert await get(container, workflow_id) is None


async def test_removing_an_entry_the_workflow_does_not_have_is_no_error(
    container: AsyncContainer,
) -> None:
    [workflow_id] = await make_workflows(container, 1)

    await remove(container, [workflow_id])

    assert await get(container, workflow_id) is None


async def test_a_claim_gives_the_due_entries_earliest_first_up_to_its_limit(
    container: AsyncContainer,
) -> None:
    ids = await make_workflows(container, 4)
    base = era(1903)
    dues = [base + timedelta(seconds=s) for s in (30, 10, 20, 100)]
    await put(container, *(entry(w, due) for w, due in zip(ids, dues, strict=True)))

    first_two = await claim(container, base + timedelta(seconds=60), 2)
    all_due = await claim(container, base + timedelta(seconds=60), 10)
    at_its_time = await claim(container, base + timedelta(seconds=10), 10)
    await remove(container, ids)

    assert first_two == [ids[1], ids[2]]
    assert all_due == [ids[1], ids[2], ids[0]]
    assert at_its_time == [ids[1]]  # due at its time exactly


async def test_a_scheduled_execution_is_added_once_per_workflow_and_time(
    container: AsyncContainer,
) -> None:
    one, other = await make_workflows(container, 2)
    when = era(1904)

    def run(workflow_id: WorkflowId, at: datetime | None) -> Execution:
        return Execution(
            id=ExecutionId(uuid.uuid4()),
            owner_id=OWNER,
            workflow_id=workflow_id,
            workflow_version=1,
            trigger="schedule",
            created_at=T0,
            scheduled_for=at,
        )

    async def add_scheduled(execution: Execution) -> bool:
        async with container() as scope:
            added = await (await scope.get(ExecutionRepository)).add_scheduled(execution)
            await (await scope.get(UnitOfWork)).commit()
            return added

    first = run(one, when)
    added = [
        await add_scheduled(first),
        await add_scheduled(run(one, when)),
        await add_scheduled(run(one, when + timedelta(seconds=1))),
        await add_scheduled(run(other, when)),
    ]
    async with container() as scope:
        read = await (await scope.get(ExecutionRepository)).get(first.id)

    assert added == [True, False, True, True]
    assert read is not None
    assert (read.trigger, read.scheduled_for) == ("schedule", when)


async def test_executions_without_a_scheduled_time_never_meet_the_key(
    container: AsyncContainer,
) -> None:
    [workflow_id] = await make_workflows(container, 1)
    manual = [
        Execution(
            id=ExecutionId(uuid.uuid4()),
            owner_id=OWNER,
            workflow_id=workflow_id,
            workflow_version=1,
            created_at=T0,
        )
        for _ in range(2)
    ]

    async with container() as scope:
        executions = await scope.get(ExecutionRepository)
        for execution in manual:
            await executions.add(execution)
        await (await scope.get(UnitOfWork)).commit()
        found = [await executions.get(e.id) for e in manual]

    assert [f.scheduled_for if f else "missing" for f in found] == [None, None]


@pytest.fixture
async def postgres_container(postgres_url: str) -> AsyncIterator[AsyncContainer]:
    await upgrade(postgres_url)
    container = make_async_container(CoreProvider(), SqlProvider(postgres_url), *sql_extras())
    yield container
    await container.close()


@pytest.mark.postgres
async def test_on_postgres_a_claim_passes_over_the_entries_another_unit_of_work_holds(
    postgres_container: AsyncContainer,
) -> None:
    container = postgres_container
    ids = await make_workflows(container, 3)
    base = era(1905)
    await put(container, *(entry(w, base + timedelta(seconds=i)) for i, w in enumerate(ids)))
    held = asyncio.Event()
    release = asyncio.Event()

    async def first_scheduler() -> list[WorkflowId]:
        async with container() as scope:
            due = await (await scope.get(ScheduleRepository)).claim_due(base + timedelta(1), 2)
            held.set()
            await release.wait()
            return [e.workflow_id for e in due]

    first = asyncio.create_task(first_scheduler())
    await held.wait()
    second = await asyncio.wait_for(claim(container, base + timedelta(days=1), 10), 10)
    release.set()
    first_claimed = await first
    await remove(container, ids)

    assert first_claimed == ids[:2]
    assert second == ids[2:]  # without waiting for the first to end

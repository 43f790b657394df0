"""The ExecutionRepository contract over every adapter: status moves are conditional, steps
keep their order, lists page newest first with every filter."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from dishka import AsyncContainer

from flowbuilder_core.executions.model import (
    Execution,
    ExecutionError,
    ExecutionId,
    ExecutionStatus,
    StepResult,
    StepStatus,
)
from flowbuilder_core.executions.ports import ExecutionFilter, ExecutionRepository
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.model import Workflow, WorkflowFields, WorkflowId
from flowbuilder_core.workflows.ports import WorkflowRepository

from support.contract import T0

OWNER = UserId("user_owner")
LEASE = uuid.UUID("00000000-0000-4000-8000-00000000000a")


async def make_workflow(container: AsyncContainer) -> WorkflowId:
    workflow = Workflow.create(
        id=WorkflowId(uuid.uuid4()), owner_id=OWNER, fields=WorkflowFields("w"), at=T0
    )
    async with container() as scope:
        await (await scope.get(WorkflowRepository)).add(workflow)
        await (await scope.get(UnitOfWork)).commit()
    return workflow.id


def make_execution(workflow_id: WorkflowId, seconds: int = 0, **overrides: Any) -> Execution:
    values: dict[str, Any] = {
        "id": ExecutionId(uuid.uuid4()),
        "owner_id": OWNER,
        "workflow_id": workflow_id,
        "workflow_version": 1,
        "input": {"n": seconds},
        "created_at": T0 + timedelta(seconds=seconds),
    }
    values.update(overrides)
    return Execution(**values)


async def add(container: AsyncContainer, *executions: Execution) -> None:
    async with container() as scope:
        repository = await scope.get(ExecutionRepository)
        for execution in executions:
            await repository.add(execution)
        await (await scope.get(UnitOfWork)).commit()


async def in_scope(container: AsyncContainer, call: Any) -> Any:
    async with container() as scope:
        result = await call(await scope.get(ExecutionRepository))
        await (await scope.get(UnitOfWork)).commit()
        return result


async def test_an_execution_reads_back_as_it_was_added(container: AsyncContainer) -> None:
    execution = make_execution(await make_workflow(container), input={"a": [1, "two", None]})
    await add(container, execution)

    found = await in_scope(container, lambda r: r.get(execution.id))

    assert found == execution


async def test_a_queued_execution_is_claimed_once(container: AsyncContainer) -> None:
    execution = make_execution(await make_workflow(container))
    await add(container, execution)

    first = await in_scope(container, lambda r: r.claim(execution.id, T0, LEASE))
    second = await in_scope(container, lambda r: r.claim(execution.id, T0, LEASE))

    assert first is not None
    assert first.status is ExecutionStatus.RUNNING
    assert second is None


async def test_a_save_from_a_status_that_moved_on_changes_nothing(
    container: AsyncContainer,
) -> None:
    execution = make_execution(await make_workflow(container))
    await add(container, execution)
    running = await in_scope(container, lambda r: r.claim(execution.id, T0, LEASE))
    execution.cancel(at=T0)

    stale = await in_scope(container, lambda r: r.save(execution, expected=ExecutionStatus.QUEUED))
    running.cancel(at=T0)
    current = await in_scope(container, lambda r: r.save(running, expected=ExecutionStatus.RUNNING))
    found = await in_scope(container, lambda r: r.get(execution.id))

    assert (stale, current) == (False, True)
    assert found.status is ExecutionStatus.CANCELLED


async def test_steps_keep_their_order_and_a_second_record_replaces_the_first(
    container: AsyncContainer,
) -> None:
    execution = make_execution(await make_workflow(container))
    await add(container, execution)
    await in_scope(container, lambda r: r.claim(execution.id, T0, LEASE))

    for step in (
        StepResult("start", StepStatus.RUNNING, T0),
        StepResult("start", StepStatus.SUCCEEDED, T0, T0, {"n": 0}),
        StepResult("fetch", StepStatus.RUNNING, T0),
        StepResult(
            "fetch",
            StepStatus.FAILED,
            T0,
            T0,
            {"status": 500},
            ExecutionError("http_status", "500", "fetch"),
            attempts=3,
        ),
        StepResult("after", StepStatus.SKIPPED),
    ):
        await in_scope(container, lambda r, s=step: r.record_step(execution.id, LEASE, s))
    found = await in_scope(container, lambda r: r.get(execution.id))

    assert [(s.node_id, s.status, s.output) for s in found.steps] == [
        ("start", StepStatus.SUCCEEDED, {"n": 0}),
        ("fetch", StepStatus.FAILED, {"status": 500}),
        ("after", StepStatus.SKIPPED, None),
    ]
    assert found.steps[1].error == ExecutionError("http_status", "500", "fetch")
    assert [s.attempts for s in found.steps] == [1, 3, 1]


async def test_a_heartbeat_answers_the_status_and_stale_runs_are_found(
    container: AsyncContainer,
) -> None:
    workflow_id = await make_workflow(container)
    beating, silent, cancelled = (make_execution(workflow_id, s) for s in (1, 2, 3))
    await add(container, beating, silent, cancelled)
    for execution in (beating, silent):
        await in_scope(container, lambda r, e=execution: r.claim(e.id, T0, LEASE))
    cancelled.cancel(at=T0)
    await in_scope(container, lambda r: r.save(cancelled, expected=ExecutionStatus.QUEUED))

    later = T0 + timedelta(minutes=5)
    status = await in_scope(container, lambda r: r.heartbeat(beating.id, LEASE, later))
    never_held = await in_scope(container, lambda r: r.heartbeat(cancelled.id, LEASE, T0))
    stale = await in_scope(container, lambda r: r.stale(T0 + timedelta(minutes=1), 10))

    assert (status, never_held) == (ExecutionStatus.RUNNING, None)
    assert stale == [silent.id]


async def test_a_run_cancelled_while_held_still_hears_cancelled_and_records_its_skips(
    container: AsyncContainer,
) -> None:
    execution = make_execution(await make_workflow(container))
    await add(container, execution)
    running = await in_scope(container, lambda r: r.claim(execution.id, T0, LEASE))
    running.cancel(at=T0)
    await in_scope(container, lambda r: r.save(running, expected=ExecutionStatus.RUNNING))

    status = await in_scope(container, lambda r: r.heartbeat(execution.id, LEASE, T0))
    skipped = StepResult("after", StepStatus.SKIPPED)
    written = await in_scope(container, lambda r: r.record_step(execution.id, LEASE, skipped))
    found = await in_scope(container, lambda r: r.get(execution.id))

    assert (status, written) == (ExecutionStatus.CANCELLED, True)
    assert found.steps == [skipped]


async def test_nothing_is_written_under_a_lease_the_execution_does_not_hold(
    container: AsyncContainer,
) -> None:
    execution = make_execution(await make_workflow(container))
    await add(container, execution)
    running = await in_scope(container, lambda r: r.claim(execution.id, T0, LEASE))
    other = uuid.uuid4()
    step = StepResult("start", StepStatus.RUNNING, T0)
    later = T0 + timedelta(minutes=5)

    beat = await in_scope(container, lambda r: r.heartbeat(execution.id, other, later))
    written = await in_scope(container, lambda r: r.record_step(execution.id, other, step))
    running.succeed(at=later)
    saved = await in_scope(
        container, lambda r: r.save(running, expected=ExecutionStatus.RUNNING, lease=other)
    )
    found = await in_scope(container, lambda r: r.get(execution.id))

    assert (beat, written, saved) == (None, False, False)
    assert (found.status, found.heartbeat_at, found.steps) == (ExecutionStatus.RUNNING, T0, [])


async def test_a_run_swept_as_lost_loses_its_lease(container: AsyncContainer) -> None:
    execution = make_execution(await make_workflow(container))
    await add(container, execution)
    running = await in_scope(container, lambda r: r.claim(execution.id, T0, LEASE))
    running.fail(ExecutionError("worker_lost", "lost"), at=T0)
    await in_scope(container, lambda r: r.save(running, expected=ExecutionStatus.RUNNING))
    step = StepResult("start", StepStatus.SUCCEEDED, T0, T0, {})

    beat = await in_scope(container, lambda r: r.heartbeat(execution.id, LEASE, T0))
    written = await in_scope(container, lambda r: r.record_step(execution.id, LEASE, step))
    found = await in_scope(container, lambda r: r.get(execution.id))

    assert (beat, written, found.steps) == (None, False, [])


async def test_a_released_run_is_queued_again_unstarted_and_claimable(
    container: AsyncContainer,
) -> None:
    execution = make_execution(await make_workflow(container))
    await add(container, execution)
    await in_scope(container, lambda r: r.claim(execution.id, T0, LEASE))
    step = StepResult("start", StepStatus.SUCCEEDED, T0, T0, {})
    await in_scope(container, lambda r: r.record_step(execution.id, LEASE, step))

    released = await in_scope(container, lambda r: r.release(execution.id, LEASE))
    found = await in_scope(container, lambda r: r.get(execution.id))
    stale_write = await in_scope(container, lambda r: r.record_step(execution.id, LEASE, step))
    next_lease = uuid.uuid4()
    claimed = await in_scope(container, lambda r: r.claim(execution.id, T0, next_lease))

    assert released is True
    assert (found.status, found.started_at, found.heartbeat_at) == (
        ExecutionStatus.QUEUED,
        None,
        None,
    )
    assert found.steps == []
    assert stale_write is False
    assert claimed is not None
    assert claimed.status is ExecutionStatus.RUNNING


async def test_only_the_lease_holder_releases_and_only_a_running_execution(
    container: AsyncContainer,
) -> None:
    workflow_id = await make_workflow(container)
    held, cancelled, queued = (make_execution(workflow_id, s) for s in (1, 2, 3))
    await add(container, held, cancelled, queued)
    for execution in (held, cancelled):
        await in_scope(container, lambda r, e=execution: r.claim(e.id, T0, LEASE))
    cancelling = await in_scope(container, lambda r: r.get(cancelled.id))
    cancelling.cancel(at=T0)
    await in_scope(container, lambda r: r.save(cancelling, expected=ExecutionStatus.RUNNING))

    by_another = await in_scope(container, lambda r: r.release(held.id, uuid.uuid4()))
    after_cancel = await in_scope(container, lambda r: r.release(cancelled.id, LEASE))
    never_claimed = await in_scope(container, lambda r: r.release(queued.id, LEASE))
    statuses = [
        (await in_scope(container, lambda r, e=e: r.get(e.id))).status
        for e in (held, cancelled, queued)
    ]

    assert (by_another, after_cancel, never_claimed) == (False, False, False)
    assert statuses == [ExecutionStatus.RUNNING, ExecutionStatus.CANCELLED, ExecutionStatus.QUEUED]


async def test_lists_page_newest_first_with_every_filter(container: AsyncContainer) -> None:
    one, two = await make_workflow(container), await make_workflow(container)
    executions = [make_execution(one if i % 2 else two, i) for i in range(12)]
    await add(container, *executions)
    for execution in executions[::3]:
        await in_scope(container, lambda r, e=execution: r.claim(e.id, T0, LEASE))
    other = make_execution(one, 99, owner_id=UserId("user_other"))
    await add(container, other)

    async def ids(where: ExecutionFilter, limit: int = 100) -> list[int]:
        names, after = [], None
        while True:
            page = await in_scope(
                container, lambda r, a=after: r.page(OWNER, where, PageRequest(limit, a))
            )
            names += [e.created_at.second for e in page[:limit]]
            if len(page) <= limit:
                return names
            last = page[limit - 1]
            after = (last.created_at.isoformat(), str(last.id))

    running, queued = ExecutionStatus.RUNNING, ExecutionStatus.QUEUED
    assert await ids(ExecutionFilter(), limit=5) == list(range(11, -1, -1))
    assert await ids(ExecutionFilter(frozenset({running}))) == [9, 6, 3, 0]
    assert await ids(ExecutionFilter(frozenset({running, queued})), limit=3) == list(
        range(11, -1, -1)
    )
    assert await ids(ExecutionFilter(workflow_id=one), limit=2) == [11, 9, 7, 5, 3, 1]
    assert await ids(ExecutionFilter(frozenset({running}), workflow_id=one)) == [9, 3]
    window = ExecutionFilter(
        created_after=T0 + timedelta(seconds=3), created_before=T0 + timedelta(seconds=6)
    )
    assert await ids(window) == [5, 4, 3]
    summaries = await in_scope(
        container, lambda r: r.page(OWNER, ExecutionFilter(), PageRequest(1, None))
    )
    assert (summaries[0].input, summaries[0].steps) == ({}, [])


async def test_a_claim_past_the_owners_running_limit_parks_the_execution_until_a_slot_frees(
    container: AsyncContainer,
) -> None:
    workflow_id = await make_workflow(container)
    first, second = (make_execution(workflow_id, s) for s in (1, 2))
    stranger = make_execution(workflow_id, 3, owner_id=UserId("user_stranger"))
    await add(container, first, second, stranger)

    def claim(e: Execution) -> Any:
        return in_scope(container, lambda r: r.claim(e.id, T0, LEASE, max_running=1))

    running = await claim(first)
    refused = await claim(second)
    others = await claim(stranger)
    waiting = await in_scope(container, lambda r: r.get(second.id))
    owners = await in_scope(container, lambda r: r.parked_owners(10))
    while_busy = await in_scope(container, lambda r: r.unpark(OWNER, 1))
    running.succeed(at=T0)
    await in_scope(container, lambda r: r.save(running, expected=ExecutionStatus.RUNNING))
    resumed = await in_scope(container, lambda r: r.unpark(OWNER, 1))
    again = await in_scope(container, lambda r: r.unpark(OWNER, 1))
    owners_after = await in_scope(container, lambda r: r.parked_owners(10))
    claimed = await claim(second)

    assert running is not None
    assert refused is None
    assert others is not None, "another user's limit is their own"
    assert waiting.status is ExecutionStatus.QUEUED
    assert owners == [OWNER]
    assert while_busy == []
    assert [e.id for e in resumed] == [second.id]
    assert (again, owners_after) == ([], [])
    assert claimed is not None


async def test_concurrent_claims_never_run_more_than_the_owners_limit(
    container: AsyncContainer,
) -> None:
    workflow_id = await make_workflow(container)
    executions = [make_execution(workflow_id, s) for s in range(8)]
    await add(container, *executions)

    claims = await asyncio.gather(
        *(
            in_scope(container, lambda r, e=e: r.claim(e.id, T0, LEASE, max_running=3))
            for e in executions
        )
    )

    assert sum(c is not None for c in claims) == 3
    assert len(await in_scope(container, lambda r: r.unpark(OWNER, 3))) == 0


async def test_a_parked_execution_that_is_cancelled_is_parked_no_more(
    container: AsyncContainer,
) -> None:
    workflow_id = await make_workflow(container)
    first, second = (make_execution(workflow_id, s) for s in (1, 2))
    await add(container, first, second)
    await in_scope(container, lambda r: r.claim(first.id, T0, LEASE, max_running=1))
    await in_scope(container, lambda r: r.claim(second.id, T0, LEASE, max_running=1))
    second.cancel(at=T0)
    await in_scope(container, lambda r: r.save(second, expected=ExecutionStatus.QUEUED))

    assert await in_scope(container, lambda r: r.parked_owners(10)) == []


async def test_children_read_back_their_parent_and_list_by_it(container: AsyncContainer) -> None:
    workflow_id = await make_workflow(container)
    parent = make_execution(workflow_id, 0)
    first = make_execution(workflow_id, 1, parent_execution_id=parent.id)
    second = make_execution(
        workflow_id, 2, parent_execution_id=parent.id, status=ExecutionStatus.FAILED
    )
    other = make_execution(workflow_id, 3, parent_execution_id=ExecutionId(uuid.uuid4()))
    await add(container, parent, first, second, other)

    def listing(**where: Any) -> Any:
        return lambda r: r.page(OWNER, ExecutionFilter(**where), PageRequest(10, None))

    children = await in_scope(container, listing(parent_id=parent.id))
    failed = await in_scope(
        container,
        listing(
            parent_id=parent.id,
            statuses=frozenset({ExecutionStatus.FAILED, ExecutionStatus.SUCCEEDED}),
        ),
    )
    found = await in_scope(container, lambda r: r.get(first.id))

    assert [e.id for e in children] == [second.id, first.id]
    assert {e.parent_execution_id for e in children} == {parent.id}
    assert [e.id for e in failed] == [second.id]
    assert found.parent_execution_id == parent.id
    assert (await in_scope(container, lambda r: r.get(parent.id))).parent_execution_id is None


async def test_lists_filter_by_trigger_and_a_retry_keeps_its_first_trigger(
    container: AsyncContainer,
) -> None:
    workflow = await make_workflow(container)
    manual = make_execution(workflow, 1)
    hooked = make_execution(workflow, 2, trigger="webhook")
    retry = make_execution(
        workflow, 3, trigger="retry", retried_trigger="webhook", retry_of=hooked.id, attempt=2
    )
    await add(container, manual, hooked, retry)

    async def seconds(*triggers: str) -> list[int]:
        where = ExecutionFilter(triggers=frozenset(triggers))
        page = await in_scope(container, lambda r: r.page(OWNER, where, PageRequest(10, None)))
        return [e.created_at.second for e in page]

    found = await in_scope(container, lambda r: r.get(retry.id))
    assert await seconds("webhook") == [2]
    assert await seconds("retry", "manual") == [3, 1]
    assert await seconds("schedule") == []
    running = ExecutionFilter(frozenset({ExecutionStatus.QUEUED}), triggers=frozenset({"retry"}))
    listed = await in_scope(container, lambda r: r.page(OWNER, running, PageRequest(10, None)))
    assert [(e.trigger, e.retried_trigger) for e in listed] == [("retry", "webhook")]
    assert (found.trigger, found.retried_trigger, found.retry_of) == ("retry", "webhook", hooked.id)

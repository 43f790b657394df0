"""The RunTransactions contract over every adapter: `record`, a run's heartbeat with the steps
since its last, written together only while the run holds its lease (one statement on
Postgres, a unit of work elsewhere), answering the status as a heartbeat does."""

from __future__ import annotations

import uuid
from datetime import timedelta

from dishka import AsyncContainer
from test_execution_repository import LEASE, add, in_scope, make_execution, make_workflow

from flowbuilder_core.executions.model import (
    Execution,
    ExecutionError,
    ExecutionStatus,
    StepResult,
    StepStatus,
)
from flowbuilder_core.executions.ports import RunTransactions

from support.contract import T0

LATER = T0 + timedelta(minutes=5)


async def claimed(container: AsyncContainer) -> tuple[RunTransactions, uuid.UUID]:
    execution = make_execution(await make_workflow(container))
    await add(container, execution)
    await in_scope(container, lambda r: r.claim(execution.id, T0, LEASE))
    return await container.get(RunTransactions), execution.id


async def succeeded_with_one_parked(
    container: AsyncContainer,
) -> tuple[RunTransactions, Execution]:
    """A claimed execution moved to succeeded (not yet finished), whose owner has a second
    execution parked: the owner's one slot is taken, so its claim parked it."""
    transactions, execution_id = await claimed(container)
    parked = make_execution(await make_workflow(container), 1)
    await add(container, parked)
    running = await in_scope(container, lambda r: r.get(execution_id))
    assert await in_scope(container, lambda r: r.claim(parked.id, T0, LEASE, max_running=1)) is None
    running.succeed(at=LATER)
    return transactions, running


async def test_a_record_beats_the_heart_and_writes_its_steps_in_the_order_given(
    container: AsyncContainer,
) -> None:
    transactions, execution_id = await claimed(container)
    failed = StepResult(
        "fetch",
        StepStatus.FAILED,
        T0,
        LATER,
        {"status": 500, "body": "a\u00e9\U0001f600"},
        ExecutionError("http_status", "500", "fetch"),
        attempts=3,
    )

    first = await transactions.record(
        execution_id, LEASE, T0, [StepResult("start", StepStatus.RUNNING, T0)]
    )
    second = await transactions.record(
        execution_id,
        LEASE,
        LATER,
        [
            StepResult("start", StepStatus.SUCCEEDED, T0, T0, {"n": [1, None, True]}),
            StepResult("fetch", StepStatus.RUNNING, T0),
        ],
    )
    third = await transactions.record(
        execution_id, LEASE, LATER, [failed, StepResult("after", StepStatus.SKIPPED)]
    )
    found = await in_scope(container, lambda r: r.get(execution_id))

    assert (first, second, third) == (ExecutionStatus.RUNNING,) * 3
    assert found.heartbeat_at == LATER
    assert found.steps == [
        StepResult("start", StepStatus.SUCCEEDED, T0, T0, {"n": [1, None, True]}),
        failed,
        StepResult("after", StepStatus.SKIPPED),
    ]


async def test_a_record_with_no_steps_is_a_heartbeat(container: AsyncContainer) -> None:
    transactions, execution_id = await claimed(container)

    status = await transactions.record(execution_id, LEASE, LATER)
    found = await in_scope(container, lambda r: r.get(execution_id))

    assert (status, found.heartbeat_at, found.steps) == (ExecutionStatus.RUNNING, LATER, [])


async def test_a_cancelled_run_hears_it_and_still_records_its_skips(
    container: AsyncContainer,
) -> None:
    transactions, execution_id = await claimed(container)
    running = await in_scope(container, lambda r: r.get(execution_id))
    running.cancel(at=T0)
    await in_scope(container, lambda r: r.save(running, expected=ExecutionStatus.RUNNING))
    skipped = StepResult("after", StepStatus.SKIPPED)

    status = await transactions.record(execution_id, LEASE, LATER, [skipped])
    found = await in_scope(container, lambda r: r.get(execution_id))

    assert (status, found.steps) == (ExecutionStatus.CANCELLED, [skipped])
    assert found.heartbeat_at == T0  # a cancelled run's heartbeat no longer moves


async def test_nothing_is_written_under_a_lease_the_execution_does_not_hold(
    container: AsyncContainer,
) -> None:
    transactions, execution_id = await claimed(container)
    step = StepResult("start", StepStatus.RUNNING, T0)

    status = await transactions.record(execution_id, uuid.uuid4(), LATER, [step])
    found = await in_scope(container, lambda r: r.get(execution_id))

    assert (status, found.heartbeat_at, found.steps) == (None, T0, [])


async def test_a_run_swept_as_lost_records_nothing_more(container: AsyncContainer) -> None:
    transactions, execution_id = await claimed(container)
    running = await in_scope(container, lambda r: r.get(execution_id))
    running.fail(ExecutionError("worker_lost", "lost"), at=T0)
    await in_scope(container, lambda r: r.save(running, expected=ExecutionStatus.RUNNING))
    step = StepResult("start", StepStatus.SUCCEEDED, T0, T0, {})

    status = await transactions.record(execution_id, LEASE, LATER, [step])
    found = await in_scope(container, lambda r: r.get(execution_id))

    assert (status, found.status, found.steps) == (None, ExecutionStatus.FAILED, [])


async def test_a_finish_writes_the_last_steps_and_the_end_and_hears_of_parked_runs(
    container: AsyncContainer,
) -> None:
    transactions, execution_id = await claimed(container)
    running = await in_scope(container, lambda r: r.get(execution_id))
    failure = ExecutionError("boom", "it broke", "fetch")
    running.fail(failure, at=LATER)
    last = [StepResult("fetch", StepStatus.FAILED, T0, LATER, None, failure)]

    waiting = await transactions.finish(running, LEASE, last)
    found = await in_scope(container, lambda r: r.get(execution_id))

    assert waiting is False
    assert (found.status, found.error, found.finished_at) == (
        ExecutionStatus.FAILED,
        failure,
        LATER,
    )
    assert found.steps == last


async def test_a_finish_answers_whether_the_owner_has_runs_parked(
    container: AsyncContainer,
) -> None:
    transactions, running = await succeeded_with_one_parked(container)

    waiting = await transactions.finish(running, LEASE)

    assert waiting is True


async def test_a_cancel_wins_over_a_finish_which_still_writes_its_steps(
    container: AsyncContainer,
) -> None:
    transactions, execution_id = await claimed(container)
    running = await in_scope(container, lambda r: r.get(execution_id))
    cancelled = await in_scope(container, lambda r: r.get(execution_id))
    cancelled.cancel(at=T0)
    await in_scope(container, lambda r: r.save(cancelled, expected=ExecutionStatus.RUNNING))
    running.succeed(at=LATER)
    skipped = StepResult("after", StepStatus.SKIPPED)

    await transactions.finish(running, LEASE, [skipped])
    found = await in_scope(container, lambda r: r.get(execution_id))

    assert (found.status, found.finished_at, found.steps) == (
        ExecutionStatus.CANCELLED,
        T0,
        [skipped],
    )


async def test_a_finish_under_a_lease_not_held_writes_nothing(container: AsyncContainer) -> None:
    transactions, execution_id = await claimed(container)
    running = await in_scope(container, lambda r: r.get(execution_id))
    running.succeed(at=LATER)

    waiting = await transactions.finish(
        running, uuid.uuid4(), [StepResult("start", StepStatus.SKIPPED)]
    )
    found = await in_scope(container, lambda r: r.get(execution_id))

    assert (waiting, found.status, found.steps) == (False, ExecutionStatus.RUNNING, [])


async def test_a_finish_under_a_lease_not_held_hears_of_no_parked_runs(
    container: AsyncContainer,
) -> None:
    transactions, running = await succeeded_with_one_parked(container)

    assert await transactions.finish(running, uuid.uuid4()) is False


async def test_a_claim_answers_the_execution_running_and_the_version_it_runs(
    container: AsyncContainer,
) -> None:
    execution = make_execution(await make_workflow(container))
    await add(container, execution)
    transactions = await container.get(RunTransactions)

    claimed = await transactions.claim(execution.id, LATER, LEASE, max_running=10)
    again = await transactions.claim(execution.id, LATER, uuid.uuid4(), max_running=10)

    assert claimed is not None
    assert again is None
    assert (claimed.execution.id, claimed.execution.status) == (
        execution.id,
        ExecutionStatus.RUNNING,
    )
    assert (claimed.execution.started_at, claimed.execution.steps) == (LATER, [])
    assert claimed.version is not None
    assert (claimed.version.workflow_id, claimed.version.version) == (execution.workflow_id, 1)
    assert claimed.version.name == "w"


async def test_a_claim_of_a_version_that_is_gone_answers_no_version(
    container: AsyncContainer,
) -> None:
    execution = make_execution(await make_workflow(container), workflow_version=7)
    await add(container, execution)
    transactions = await container.get(RunTransactions)

    claimed = await transactions.claim(execution.id, LATER, LEASE)

    assert claimed is not None
    assert (claimed.execution.status, claimed.version) == (ExecutionStatus.RUNNING, None)


async def test_a_claim_past_the_owners_limit_parks_the_execution_durably(
    container: AsyncContainer,
) -> None:
    workflow_id = await make_workflow(container)
    first, second = make_execution(workflow_id, 1), make_execution(workflow_id, 2)
    await add(container, first, second)
    transactions = await container.get(RunTransactions)

    assert await transactions.claim(first.id, T0, LEASE, max_running=1) is not None
    parked = await transactions.claim(second.id, T0, LEASE, max_running=1)

    assert parked is None
    assert await in_scope(container, lambda r: r.has_parked(first.owner_id)) is True
    found = await in_scope(container, lambda r: r.get(second.id))
    assert found.status is ExecutionStatus.QUEUED

"""The execution's status machine (forward only, but for a stopping worker's release) and its
queue message."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from flowbuilder_core.executions.errors import ExecutionFinishedError, IllegalTransitionError
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionError,
    ExecutionId,
    ExecutionRequested,
    ExecutionStatus,
    StepResult,
    StepStatus,
)
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import WorkflowId

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ERROR = ExecutionError("boom", "it broke", "fetch")


def make_execution(status: ExecutionStatus = ExecutionStatus.QUEUED) -> Execution:
    execution = Execution(
        id=ExecutionId(uuid.uuid4()),
        owner_id=UserId("user_alice"),
        workflow_id=WorkflowId(uuid.uuid4()),
        workflow_version=3,
        input={"x": 1},
        created_at=NOW,
    )
    moves = {
        ExecutionStatus.QUEUED: [],
        ExecutionStatus.RUNNING: [lambda e: e.start(at=NOW)],
        ExecutionStatus.SUCCEEDED: [lambda e: e.start(at=NOW), lambda e: e.succeed(at=NOW)],
        ExecutionStatus.FAILED: [lambda e: e.start(at=NOW), lambda e: e.fail(ERROR, at=NOW)],
        ExecutionStatus.CANCELLED: [lambda e: e.cancel(at=NOW)],
    }
    for move in moves[status]:
        move(execution)
    return execution


MOVES = {
    "start": lambda e: e.start(at=NOW),
    "succeed": lambda e: e.succeed(at=NOW),
    "fail": lambda e: e.fail(ERROR, at=NOW),
    "cancel": lambda e: e.cancel(at=NOW),
    "release": lambda e: e.release(),
}
ALLOWED = {
    (ExecutionStatus.QUEUED, "start"),
    (ExecutionStatus.QUEUED, "cancel"),
    (ExecutionStatus.QUEUED, "fail"),  # its message was never delivered
    (ExecutionStatus.RUNNING, "succeed"),
    (ExecutionStatus.RUNNING, "fail"),
    (ExecutionStatus.RUNNING, "cancel"),
    (ExecutionStatus.RUNNING, "release"),  # a stopping worker hands it back to the queue
}


@pytest.mark.parametrize("status", list(ExecutionStatus))
@pytest.mark.parametrize("move", list(MOVES))
def test_status_moves_forward_or_a_running_one_back_to_the_queue(
    status: ExecutionStatus, move: str
) -> None:
    execution = make_execution(status)

    if (status, move) in ALLOWED:
        MOVES[move](execution)
        assert execution.status is not status
    else:
        with pytest.raises(IllegalTransitionError):
            MOVES[move](execution)
        assert execution.status is status


@pytest.mark.parametrize(
    "status", [ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED]
)
def test_cancelling_a_finished_execution_says_it_is_finished(status: ExecutionStatus) -> None:
    with pytest.raises(ExecutionFinishedError):
        make_execution(status).cancel(at=NOW)


def test_a_released_execution_is_queued_as_if_it_had_never_started() -> None:
    execution = make_execution(ExecutionStatus.RUNNING)
    execution.lease = uuid.uuid4()
    execution.record(StepResult("start", StepStatus.SUCCEEDED, started_at=NOW, finished_at=NOW))

    execution.release()

    assert execution.status is ExecutionStatus.QUEUED
    assert (execution.started_at, execution.heartbeat_at, execution.lease) == (None, None, None)
    assert execution.steps == []
    assert (execution.finished_at, execution.error) == (None, None)


def test_finishing_records_the_time_and_the_error() -> None:
    execution = make_execution(ExecutionStatus.RUNNING)

    execution.fail(ERROR, at=NOW)

    assert (execution.finished_at, execution.error) == (NOW, ERROR)


@pytest.mark.parametrize("status", [ExecutionStatus.FAILED, ExecutionStatus.CANCELLED])
def test_a_retry_is_a_new_queued_execution_of_the_same_version_and_input(
    status: ExecutionStatus,
) -> None:
    previous = make_execution(status)

    retry = previous.retried(id=ExecutionId(uuid.uuid4()), at=NOW)

    assert (retry.status, retry.attempt, retry.retry_of) == (ExecutionStatus.QUEUED, 2, previous.id)
    assert (retry.workflow_version, retry.input) == (3, {"x": 1})
    assert retry.steps == []


@pytest.mark.parametrize(
    "status", [ExecutionStatus.QUEUED, ExecutionStatus.RUNNING, ExecutionStatus.SUCCEEDED]
)
def test_only_failed_or_cancelled_executions_can_be_retried(status: ExecutionStatus) -> None:
    with pytest.raises(IllegalTransitionError):
        make_execution(status).retried(id=ExecutionId(uuid.uuid4()), at=NOW)


def test_recording_a_step_again_replaces_its_running_record() -> None:
    execution = make_execution(ExecutionStatus.RUNNING)

    execution.record(StepResult("a", StepStatus.RUNNING, started_at=NOW))
    execution.record(StepResult("b", StepStatus.SKIPPED))
    execution.record(StepResult("a", StepStatus.SUCCEEDED, NOW, NOW, {"ok": True}))

    assert [(s.node_id, s.status) for s in execution.steps] == [
        ("a", StepStatus.SUCCEEDED),
        ("b", StepStatus.SKIPPED),
    ]


def test_the_queue_message_has_exactly_the_keys_of_the_contract_and_round_trips() -> None:
    message = ExecutionRequested.of(make_execution())

    body = message.to_json()

    assert set(body) == {
        "type",
        "version",
        "execution_id",
        "workflow_id",
        "workflow_version",
        "owner_id",
        "requested_at",
    }
    assert (body["type"], body["version"]) == ("execution.requested", 1)
    assert body["requested_at"] == "2026-11-25T12:00:00.000000Z"
    assert ExecutionRequested.from_json(body) == message


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"type": "other", "version": 1},
        {"type": "execution.requested", "version": 2},
        {"type": "execution.requested", "version": 1, "execution_id": "nope"},
    ],
)
def test_anything_else_on_the_queue_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - ValueError is the documented contract
        ExecutionRequested.from_json(body)

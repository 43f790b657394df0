"""The execution aggregate, its forward-only status machine, its steps, and the queue message."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NewType

from flowbuilder_core.executions.errors import ExecutionFinishedError, IllegalTransitionError
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import WorkflowId

ExecutionId = NewType("ExecutionId", uuid.UUID)
Json = Any
"""A JSON value: None, bool, int, float, str, list of Json, or dict of str to Json."""

MAX_INPUT_BYTES = 64 * 1024
MAX_OUTPUT_BYTES = 64 * 1024

EXECUTION_TRIGGERS = ("manual", "webhook", "schedule", "retry", "subworkflow")
"""How an execution was started: `execute`, a webhook, a schedule, `retry` of another (which
keeps the trigger of the execution that started the chain in `retried_trigger`), or a
`flow.subworkflow` or `flow.for_each` node of its parent."""


class ExecutionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset(
    {ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)
_MOVES: Mapping[ExecutionStatus, frozenset[ExecutionStatus]] = {
    ExecutionStatus.QUEUED: frozenset(
        {ExecutionStatus.RUNNING, ExecutionStatus.CANCELLED, ExecutionStatus.FAILED}
    ),
    ExecutionStatus.RUNNING: frozenset(
        {
            ExecutionStatus.SUCCEEDED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
            ExecutionStatus.QUEUED,  # released by a worker that stops (`Execution.release`)
        }
    ),
}


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class ExecutionError:
    """Why a step or an execution failed. `message` is for people and never holds a secret."""

    code: str
    message: str
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunLimits:
    """What one user's runs may take (docs/API.md §4): `max_running` executions running at
    once (the rest wait, queued), each for at most `timeout_s` seconds, watched by at most
    `max_event_streams` open event streams (per API process)."""

    max_running: int = 10
    timeout_s: float = 900.0
    max_event_streams: int = 10


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended: `succeeded`, `failed` (with `error`) or `cancelled`. A run that
    succeeded has a `result`: its `flow.output` node's output, else its last node's."""

    status: ExecutionStatus
    error: ExecutionError | None = None
    result: Json = field(default=None, compare=False)
    """Not part of equality: two runs end alike whatever they produced."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """One node's part of a run. `output` is stored truncated past MAX_OUTPUT_BYTES of JSON."""

    node_id: str
    status: StepStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: Json = None
    error: ExecutionError | None = None
    truncated: bool = False
    attempts: int = 1
    """How often the node was tried (more than once only under a retry policy)."""


@dataclass(kw_only=True, slots=True)
class Execution:
    """A run of one pinned workflow version. Status moves forward: queued -> running ->
    succeeded | failed; queued | running -> cancelled; and queued -> failed when its message
    could not be delivered to any worker. The one move back, running -> queued, is a release:
    a stopping worker hands the run back to the queue, as if it had never started."""

    id: ExecutionId
    owner_id: UserId
    workflow_id: WorkflowId
    workflow_version: int
    status: ExecutionStatus = ExecutionStatus.QUEUED
    trigger: str = "manual"
    input: Mapping[str, Json] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    error: ExecutionError | None = None
    attempt: int = 1
    retry_of: ExecutionId | None = None
    parent_execution_id: ExecutionId | None = None
    """The execution whose `flow.subworkflow` or `flow.for_each` node ran this one."""
    retried_trigger: str | None = None
    """For a retry (`trigger` "retry"): the trigger of the first execution of its chain."""
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    lease: uuid.UUID | None = field(default=None, repr=False)
    """Set by the claim: the run holding it is the only one whose writes count."""
    scheduled_for: datetime | None = None
    """The schedule's time this run is for (trigger `schedule`); one run per workflow and time."""

    def start(self, *, at: datetime, lease: uuid.UUID | None = None) -> None:
        self._move(ExecutionStatus.RUNNING)
        self.started_at = self.heartbeat_at = at
        self.lease = lease

    def release(self) -> None:
        """Back to queued, unstarted: no start, heartbeat, lease or step is left of the run,
        which the next worker runs from its first node."""
        self._move(ExecutionStatus.QUEUED)
        self.started_at = self.heartbeat_at = self.lease = None
        self.steps = []

    def succeed(self, *, at: datetime) -> None:
        self._move(ExecutionStatus.SUCCEEDED)
        self.finished_at = at

    def fail(self, error: ExecutionError, *, at: datetime) -> None:
        self._move(ExecutionStatus.FAILED)
        self.error, self.finished_at = error, at

    def cancel(self, *, at: datetime) -> None:
        if self.status.finished:
            raise ExecutionFinishedError(self.status.value)
        self._move(ExecutionStatus.CANCELLED)
        self.finished_at = at

    def record(self, step: StepResult) -> None:
        """Add a step, or replace the running record of the same node."""
        for index, existing in enumerate(self.steps):
            if existing.node_id == step.node_id:
                self.steps[index] = step
                return
        self.steps.append(step)

    def retried(self, *, id: ExecutionId, at: datetime) -> Execution:
        """A new run of the same version with the same input, `attempt` + 1, triggered by
        "retry"; `retried_trigger` keeps the trigger that started the chain (a retry of a
        retry keeps the first execution's)."""
        if self.status not in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED):
            raise IllegalTransitionError(
                f"Only a failed or cancelled execution can be retried; this one is {self.status}."
            )
        return Execution(
            id=id,
            owner_id=self.owner_id,
            workflow_id=self.workflow_id,
            workflow_version=self.workflow_version,
            trigger="retry",
            input=self.input,
            attempt=self.attempt + 1,
            retry_of=self.id,
            retried_trigger=self.retried_trigger or self.trigger,
            created_at=at,
        )

    def _move(self, to: ExecutionStatus) -> None:
        if to not in _MOVES.get(self.status, frozenset()):
            raise IllegalTransitionError(f"An execution cannot go from {self.status} to {to}.")
        self.status = to


@dataclass(frozen=True, slots=True)
class ExecutionRequested:
    """The queue message of docs/API.md (§7): what a worker (in any language) needs to run one."""

    execution_id: ExecutionId
    workflow_id: WorkflowId
    workflow_version: int
    owner_id: UserId
    requested_at: datetime

    TYPE = "execution.requested"
    VERSION = 1

    @classmethod
    def of(cls, execution: Execution) -> ExecutionRequested:
        return cls(
            execution.id,
            execution.workflow_id,
            execution.workflow_version,
            execution.owner_id,
            execution.created_at,
        )

    def to_json(self) -> dict[str, Json]:
        return {
            "type": self.TYPE,
            "version": self.VERSION,
            "execution_id": str(self.execution_id),
            "workflow_id": str(self.workflow_id),
            "workflow_version": self.workflow_version,
            "owner_id": self.owner_id,
            "requested_at": self.requested_at.isoformat(timespec="microseconds").replace(
                "+00:00", "Z"
            ),
        }

    @classmethod
    def from_json(cls, body: Mapping[str, Json]) -> ExecutionRequested:
        """Raises ValueError for anything but a version-1 execution.requested message."""
        if body.get("type") != cls.TYPE or body.get("version") != cls.VERSION:
            raise ValueError("not an execution.requested message of version 1")
        try:
            return cls(
                ExecutionId(uuid.UUID(str(body["execution_id"]))),
                WorkflowId(uuid.UUID(str(body["workflow_id"]))),
                int(body["workflow_version"]),
                UserId(str(body["owner_id"])),
                datetime.fromisoformat(str(body["requested_at"]).replace("Z", "+00:00")),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError("malformed execution.requested message") from exc

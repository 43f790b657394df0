"""Running a definition in the Engine with memory-only fakes, for the engine's unit tests."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flowbuilder_adapters.nodes import JmesPathEvaluator, basic_runners
from flowbuilder_core.executions.bounds import EngineLimits
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import Json, RunOutcome, StepResult, StepStatus
from flowbuilder_core.executions.ports import NodeCall, NodeRunner, ResolvedSecret
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import Definition, Edge, Node, OnError, RetryPolicy

ALICE = UserId("user_alice")
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class SteppingClock:
    """Each reading is one second after the last."""

    def __init__(self) -> None:
        self._now = T0

    def now(self) -> datetime:
        self._now += timedelta(seconds=1)
        return self._now


class FlakyRunner(NodeRunner):
    """Fails each node's first `failures[node id]` calls with `error`, then answers
    `{"call": n}`; remembers the calls."""

    def __init__(
        self,
        failures: Mapping[str, int] | None = None,
        error: NodeFailedError | None = None,
    ) -> None:
        self.failures = dict(failures or {})
        self.error = error or NodeFailedError("http_status", "The server answered 503.", {"s": 1})
        self.calls: list[str] = []

    async def run(self, call: NodeCall) -> Json:
        self.calls.append(call.node.id)
        count = self.calls.count(call.node.id)
        if count <= self.failures.get(call.node.id, 0):
            raise self.error
        return {"call": count}


class NoCredentials:
    async def resolve(self, owner: UserId, credential_id: uuid.UUID) -> ResolvedSecret:
        raise AssertionError("no credential is used here")


@dataclass
class Run:
    outcome: RunOutcome
    steps: list[StepResult] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def final(self, node_id: str) -> StepResult:
        return [step for step in self.steps if step.node_id == node_id][-1]

    def statuses(self) -> dict[str, StepStatus]:
        return {s.node_id: s.status for s in self.steps if s.status is not StepStatus.RUNNING}


def node(
    node_id: str,
    node_type: str = "data.set",
    *,
    retry: RetryPolicy | None = None,
    on_error: OnError = OnError.FAIL,
    **parameters: Any,
) -> Node:
    return Node(node_id, node_type, parameters, retry=retry, on_error=on_error)


def chain(*node_ids: str) -> tuple[Edge, ...]:
    return tuple(Edge(a, b) for a, b in itertools.pairwise(node_ids))


START = node("start", "trigger.manual")


async def run(
    nodes: tuple[Node, ...],
    edges: tuple[Edge, ...],
    *,
    input: Mapping[str, Json] | None = None,
    runners: Mapping[str, NodeRunner] | None = None,
    stop_after: int | None = None,
    jitter: float = 0.5,
    limits: EngineLimits | None = None,
) -> Run:
    """Runs the graph with no real waiting (the waits are recorded in `Run.sleeps`);
    `stop_after=n` answers "stop" from the n+1-th question on."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    all_runners: dict[str, NodeRunner] = {**basic_runners(sleep=sleep), **(runners or {})}
    engine = Engine(
        all_runners,
        JmesPathEvaluator(),
        SteppingClock(),
        limits=limits,
        sleep=sleep,
        jitter=lambda: jitter,
    )
    steps: list[StepResult] = []
    questions = 0

    async def on_step(step: StepResult) -> None:
        steps.append(step)

    async def should_stop() -> bool:
        nonlocal questions
        questions += 1
        return stop_after is not None and questions > stop_after

    outcome = await engine.run(
        owner=ALICE,
        definition=Definition(nodes, edges),
        input=input or {},
        credentials=NoCredentials(),
        on_step=on_step,
        should_stop=should_stop,
    )
    return Run(outcome, steps, sleeps)

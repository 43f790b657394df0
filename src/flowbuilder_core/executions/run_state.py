"""What the engine keeps of one run as it goes, and of one node's attempt."""

from __future__ import annotations

from dataclasses import dataclass

from flowbuilder_core.executions.graph import Routes
from flowbuilder_core.executions.model import ExecutionError, Json
from flowbuilder_core.executions.ports import ChildRuns
from flowbuilder_core.executions.templates import OUTPUT
from flowbuilder_core.workflows.model import Edge, Node


@dataclass
class RunState:
    """One run's state as the engine goes: what later nodes see, and what is live."""

    context: dict[str, Json]
    outputs: dict[str, Json]
    used: int
    routes: Routes
    incoming: dict[str, list[Edge]]
    children: ChildRuns | None
    result: Json = None
    output_ran: bool = False

    def keep(self, node: Node, output: Json, size: int) -> None:
        self.outputs[node.id] = output
        self.used += size
        if node.type == OUTPUT or not self.output_ran:
            self.result = output
            self.output_ran = node.type == OUTPUT


@dataclass(frozen=True, slots=True)
class NodeResult:
    output: Json = None
    size: int = 0
    stored: Json = None
    truncated: bool = False
    error: ExecutionError | None = None

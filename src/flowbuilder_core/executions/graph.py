"""The shape of a run: the order its nodes run in, and which edges are live as it goes."""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Iterable, Sequence

from flowbuilder_core.executions.model import StepResult, StepStatus
from flowbuilder_core.workflows.model import Definition, Edge, Node


class InvalidDefinitionError(ValueError):
    """The graph cannot be ordered: a cycle, a duplicate node id or an edge to nowhere."""


def execution_order(definition: Definition) -> tuple[Node, ...]:
    """The nodes in topological order, ties broken by declaration order (Kahn's algorithm
    with the ready nodes in a heap of their indexes). Raises InvalidDefinitionError."""
    nodes = definition.nodes
    index = {node.id: position for position, node in enumerate(nodes)}
    if len(index) != len(nodes):
        raise InvalidDefinitionError("The workflow has duplicate node ids.")
    waiting = [0] * len(nodes)
    successors: list[list[int]] = [[] for _ in nodes]
    for edge in definition.edges:
        if edge.source not in index or edge.target not in index:
            raise InvalidDefinitionError("An edge of the workflow refers to a missing node.")
        successors[index[edge.source]].append(index[edge.target])
        waiting[index[edge.target]] += 1
    ready = [position for position, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        position = heapq.heappop(ready)
        order.append(nodes[position])
        for successor in successors[position]:
            waiting[successor] -= 1
            if waiting[successor] == 0:
                heapq.heappush(ready, successor)
    if len(order) != len(nodes):
        raise InvalidDefinitionError("The workflow graph has a cycle.")
    return tuple(order)


class Routes:
    """Which edges of a run are live. An edge is dead when its source was skipped, or when
    its source chose outputs (`follow`) and the edge is not among them: a `logic.if`'s
    branch, a `logic.switch`'s cases, an `on_error: branch` node's success or `error` edges.
    The edges of a node that chose nothing are all live."""

    def __init__(self) -> None:
        self._skipped: set[str] = set()
        self._chosen: dict[str, tuple[frozenset[str], bool]] = {}

    def skip(self, node_id: str) -> None:
        self._skipped.add(node_id)

    def follow(self, node_id: str, outputs: Iterable[str], *, unnamed: bool) -> None:
        """`node_id` follows its edges naming one of `outputs`, and those naming none if
        `unnamed`."""
        self._chosen[node_id] = (frozenset(outputs), unnamed)

    def live(self, edge: Edge) -> bool:
        if edge.source in self._skipped:
            return False
        chosen = self._chosen.get(edge.source)
        if chosen is None:
            return True
        outputs, unnamed = chosen
        return unnamed if edge.source_output is None else edge.source_output in outputs

    def dead(self, edges: Sequence[Edge]) -> bool:
        """A node with incoming edges, none of them live: it is skipped. Nodes without any
        always run, and one live path is enough for a join to run."""
        return bool(edges) and not any(self.live(edge) for edge in edges)

    def live_sources(self, edges: Sequence[Edge]) -> list[str]:
        """The sources of the live `edges`, each once, in edge order (what a merge joins)."""
        return list(dict.fromkeys(edge.source for edge in edges if self.live(edge)))


async def skip(nodes: Sequence[Node], on_step: Callable[[StepResult], Awaitable[None]]) -> None:
    for node in nodes:
        await on_step(StepResult(node.id, StepStatus.SKIPPED))

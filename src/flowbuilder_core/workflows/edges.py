"""Save-time and execute-time rules of a definition's edges, each problem with a pointer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from flowbuilder_core.nodes.schema import pointer_join
from flowbuilder_core.shared.errors import FieldError
from flowbuilder_core.workflows.model import Definition, Edge
from flowbuilder_core.workflows.policies import edge_outputs, output_required

_EDGE_KEYS: Final = frozenset({"source", "target", "source_output"})


def parse_edges(
    raw_edges: list[Any], at: str, nodes: Mapping[str, object], errors: list[FieldError]
) -> list[Edge]:
    """The edges, each between two of `nodes` (raw nodes by id); problems go to `errors`."""
    edges: list[Edge] = []
    seen: set[Edge] = set()
    for index, raw in enumerate(raw_edges):
        edge_at = pointer_join(at, index)
        edge = _parse_edge(raw, edge_at, nodes, errors)
        if edge is None:
            continue
        if edge in seen:
            errors.append(FieldError(edge_at, "repeats an earlier edge"))
            continue
        seen.add(edge)
        edges.append(edge)
    return edges


def _parse_edge(
    raw: object, at: str, nodes: Mapping[str, object], errors: list[FieldError]
) -> Edge | None:
    if not isinstance(raw, dict):
        errors.append(FieldError(at, "must be an object"))
        return None
    before = len(errors)
    errors.extend(
        FieldError(pointer_join(at, key), "is not a known field")
        for key in raw
        if key not in _EDGE_KEYS
    )
    source, target = raw.get("source"), raw.get("target")
    for key, end in (("source", source), ("target", target)):
        if not isinstance(end, str) or end not in nodes:
            errors.append(FieldError(pointer_join(at, key), "must be the id of a node"))
    if isinstance(source, str) and source == target:
        errors.append(FieldError(pointer_join(at, "target"), "an edge cannot loop to its source"))
    output = raw.get("source_output")
    if output is not None and isinstance(source, str) and source in nodes:
        error = _output_problem(output, nodes[source])
        if error is not None:
            errors.append(FieldError(pointer_join(at, "source_output"), error))
    elif output is not None and not isinstance(output, str):
        errors.append(FieldError(pointer_join(at, "source_output"), "must be a string"))
    if len(errors) > before:
        return None
    assert isinstance(source, str)
    assert isinstance(target, str)
    return Edge(source, target, output)


def _output_problem(output: object, source: object) -> str | None:
    allowed = edge_outputs(source)
    if allowed is None:
        return (
            "is only allowed on edges leaving logic.if, logic.switch, "
            "or a node whose on_error is branch"
        )
    if output in allowed:
        return None
    if isinstance(source, dict) and source.get("type") == "logic.if":
        return 'must be "true" or "false"'
    return "must be one of: " + ", ".join(sorted(allowed))


def edge_runnability(
    definition: Definition, raw_nodes: Mapping[str, object], at: str
) -> list[FieldError]:
    """Edges leaving a logic.if or logic.switch must each name the output they follow."""
    errors: list[FieldError] = []
    for index, edge in enumerate(definition.edges):
        source = raw_nodes.get(edge.source)
        if edge.source_output is None and output_required(source):
            assert isinstance(source, dict)
            where = pointer_join(pointer_join(pointer_join(at, "edges"), index), "source_output")
            if source.get("type") == "logic.if":
                message = 'must be "true" or "false" on an edge leaving a logic.if node'
            else:
                message = 'must be a case name or "default" on an edge leaving a logic.switch node'
            errors.append(FieldError(where, message))
    return errors

"""Save-time and execute-time validation of workflows, reporting every problem with a pointer.

Save-time checks make a definition well formed (it may be stored); execute-time checks make it
runnable. Both read raw JSON values, as a client sent them, so that library users and the HTTP
API get the same answers.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flowbuilder_core.nodes.catalogue import NODE_TYPES
from flowbuilder_core.nodes.schedule import (
    SCHEDULE_TRIGGER,
    ScheduleRules,
    schedule_problems,
    schedule_runnability,
)
from flowbuilder_core.nodes.schema import check, missing_required, pointer_join
from flowbuilder_core.shared.errors import FieldError, InvalidInputError
from flowbuilder_core.workflows.edges import edge_runnability, parse_edges
from flowbuilder_core.workflows.model import Definition, Node, Position, WorkflowFields
from flowbuilder_core.workflows.node_rules import parameter_problems
from flowbuilder_core.workflows.policies import parse_on_error, parse_retry, policy_problems
from flowbuilder_core.workflows.storable import MAX_DEPTH, unstorable_values

__all__ = ["MAX_DEPTH", "unstorable_values"]  # imported from here by other modules

MAX_NODES = 500
MAX_EDGES = 2_000
MAX_NAME = 200
MAX_DESCRIPTION = 2_000
MAX_TAGS = 20
MAX_TAG = 50

_NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NODE_KEYS = frozenset(
    {"id", "type", "parameters", "credential_id", "position", "retry", "on_error"}
)
_DEFINITION_KEYS = frozenset({"nodes", "edges"})


class Blocks(StrEnum):
    """What a problem prevents: saving the workflow, or only running it."""

    SAVE = "save"
    EXECUTE = "execute"


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    message: str
    blocks: Blocks


@dataclass(frozen=True, slots=True)
class ValidationReport:
    problems: tuple[Problem, ...]

    @property
    def valid(self) -> bool:
        return not any(p.blocks is Blocks.SAVE for p in self.problems)

    @property
    def runnable(self) -> bool:
        return not self.problems


def parse_fields(
    *,
    name: str,
    description: str,
    tags: Sequence[str],
    definition: object,
    rules: ScheduleRules | None = None,
) -> WorkflowFields:
    """The checked, normalised fields of a workflow, or InvalidInputError listing every problem.

    Names and tags are trimmed; repeated tags are kept once, in their first position.
    `definition=None` is the empty graph. `rules` check schedule triggers (see
    `parse_definition`).
    """
    errors: list[FieldError] = []
    clean_name = name.strip()
    if not 1 <= len(clean_name) <= MAX_NAME:
        errors.append(FieldError("/name", f"must be 1 to {MAX_NAME} characters after trimming"))
    if len(description) > MAX_DESCRIPTION:
        errors.append(FieldError("/description", f"must be at most {MAX_DESCRIPTION} characters"))
    if len(tags) > MAX_TAGS:
        errors.append(FieldError("/tags", f"must have at most {MAX_TAGS} tags"))
    clean_tags: list[str] = []
    for index, tag in enumerate(tags):
        clean = tag.strip()
        if not 1 <= len(clean) <= MAX_TAG or "\x00" in clean:
            errors.append(
                FieldError(f"/tags/{index}", f"must be 1 to {MAX_TAG} characters, without NUL")
            )
        elif clean not in clean_tags:
            clean_tags.append(clean)
    for where, text in (("/name", name), ("/description", description)):
        if "\x00" in text:
            errors.append(FieldError(where, "must not contain the NUL character"))
    parsed, definition_errors = parse_definition(definition, rules=rules)
    errors += definition_errors
    if errors:
        raise InvalidInputError(errors)
    return WorkflowFields(clean_name, description, tuple(clean_tags), parsed)


def parse_definition(
    raw: object, at: str = "/definition", rules: ScheduleRules | None = None
) -> tuple[Definition, list[FieldError]]:
    """The definition in `raw` and every save-time problem with it (the definition is only
    meaningful when the list is empty). `rules` check `trigger.schedule` nodes (their defaults
    when None: no cron calendar, so a `cron` parameter is refused)."""
    if raw is None:
        return Definition(), []
    if not isinstance(raw, dict):
        return Definition(), [FieldError(at, "must be an object with nodes and edges")]
    unstorable = unstorable_values(raw, at)
    if unstorable:
        return Definition(), unstorable
    errors = _unknown_keys(raw, _DEFINITION_KEYS, at)
    raw_nodes, raw_edges = raw.get("nodes", []), raw.get("edges", [])
    nodes = _parse_list(raw_nodes, pointer_join(at, "nodes"), MAX_NODES, errors)
    edges = _parse_list(raw_edges, pointer_join(at, "edges"), MAX_EDGES, errors)
    parsed_nodes = _parse_nodes(nodes, pointer_join(at, "nodes"), errors)
    errors += _schedule_problems(nodes, pointer_join(at, "nodes"), rules or ScheduleRules())
    # Edges are checked against every declared node, valid or not, so that one bad node is
    # reported once rather than again on each of its edges.
    declared = {
        node["id"]: node
        for node in nodes
        if isinstance(node, dict) and isinstance(node.get("id"), str)
    }
    parsed_edges = parse_edges(edges, pointer_join(at, "edges"), declared, errors)
    return Definition(tuple(parsed_nodes), tuple(parsed_edges)), errors


def runnability_problems(
    definition: Definition, credential_types: Mapping[uuid.UUID, str], at: str = "/definition"
) -> list[FieldError]:
    """Every execute-time problem of a well-formed definition.

    `credential_types` maps the ids of the owner's credentials that the definition references to
    their types; an id missing from it does not exist for this owner.
    """
    errors: list[FieldError] = []
    nodes_at = pointer_join(at, "nodes")
    index_of = {node.id: index for index, node in enumerate(definition.nodes)}
    triggers = [node for node in definition.nodes if NODE_TYPES[node.type].is_trigger]
    if len(triggers) != 1:
        errors.append(
            FieldError(nodes_at, f"must have exactly one trigger node, found {len(triggers)}")
        )
    trigger_ids = {node.id for node in triggers}
    for index, edge in enumerate(definition.edges):
        if edge.target in trigger_ids:
            where = pointer_join(pointer_join(pointer_join(at, "edges"), index), "target")
            errors.append(FieldError(where, "a trigger node cannot have incoming edges"))
    for node_id in _nodes_on_cycles(definition):
        where = pointer_join(pointer_join(nodes_at, index_of[node_id]), "id")
        errors.append(FieldError(where, "is part of a cycle; workflows must be acyclic"))
    for index, node in enumerate(definition.nodes):
        errors += _node_runnability(node, pointer_join(nodes_at, index), credential_types)
    raw_nodes = {node.id: node.to_json() for node in definition.nodes}
    errors += edge_runnability(definition, raw_nodes, at)
    return errors


def referenced_credentials(definition: Definition) -> set[uuid.UUID]:
    return {node.credential_id for node in definition.nodes if node.credential_id is not None}


def report(
    save_errors: Sequence[FieldError], execute_errors: Sequence[FieldError]
) -> ValidationReport:
    return ValidationReport(
        tuple(Problem(e.field, e.message, Blocks.SAVE) for e in save_errors)
        + tuple(Problem(e.field, e.message, Blocks.EXECUTE) for e in execute_errors)
    )


def _unknown_keys(raw: Mapping[str, object], allowed: frozenset[str], at: str) -> list[FieldError]:
    return [
        FieldError(pointer_join(at, key), "is not a known field")
        for key in raw
        if key not in allowed
    ]


def _schedule_problems(raw_nodes: list[Any], at: str, rules: ScheduleRules) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, raw in enumerate(raw_nodes):
        if isinstance(raw, dict) and raw.get("type") == SCHEDULE_TRIGGER:
            parameters = raw.get("parameters", {})
            if isinstance(parameters, dict):
                where = pointer_join(pointer_join(at, index), "parameters")
                errors += schedule_problems(parameters, where, rules)
    return errors


def _parse_list(raw: object, at: str, limit: int, errors: list[FieldError]) -> list[Any]:
    if not isinstance(raw, list):
        errors.append(FieldError(at, "must be an array"))
        return []
    if len(raw) > limit:
        errors.append(FieldError(at, f"must have at most {limit} items"))
        return []
    return raw


def _parse_nodes(raw_nodes: list[Any], at: str, errors: list[FieldError]) -> list[Node]:
    nodes: list[Node] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_nodes):
        node_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(node_id, str) and node_id in seen:
            errors.append(FieldError(pointer_join(pointer_join(at, index), "id"), "is not unique"))
            continue
        if isinstance(node_id, str):
            seen.add(node_id)
        node = _parse_node(raw, pointer_join(at, index), errors)
        if node is not None:
            nodes.append(node)
    return nodes


def _parse_node(raw: object, at: str, errors: list[FieldError]) -> Node | None:
    if not isinstance(raw, dict):
        errors.append(FieldError(at, "must be an object"))
        return None
    before = len(errors)
    errors += _unknown_keys(raw, _NODE_KEYS, at)
    node_id, node_type = raw.get("id"), raw.get("type")
    if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
        errors.append(
            FieldError(pointer_join(at, "id"), "must be 1 to 64 characters of A-Z a-z 0-9 _ -")
        )
    if not isinstance(node_type, str) or node_type not in NODE_TYPES:
        errors.append(FieldError(pointer_join(at, "type"), "is not a known node type"))
    parameters = raw.get("parameters", {})
    if not isinstance(parameters, dict):
        errors.append(FieldError(pointer_join(at, "parameters"), "must be an object"))
    elif isinstance(node_type, str) and node_type in NODE_TYPES:
        schema = NODE_TYPES[node_type].parameters_schema
        errors += check(parameters, schema, pointer_join(at, "parameters"))
        errors += parameter_problems(node_type, parameters, pointer_join(at, "parameters"))
    retry = parse_retry(raw.get("retry"), pointer_join(at, "retry"), errors)
    on_error = parse_on_error(raw.get("on_error"), node_type, pointer_join(at, "on_error"), errors)
    errors += policy_problems(raw, node_type, at)
    credential_id = _parse_credential_id(raw.get("credential_id"), at, errors)
    position = _parse_position(raw.get("position"), pointer_join(at, "position"), errors)
    if len(errors) > before:
        return None
    assert isinstance(node_id, str)
    assert isinstance(node_type, str)
    return Node(node_id, node_type, parameters, credential_id, position, retry, on_error)


def _parse_credential_id(raw: object, at: str, errors: list[FieldError]) -> uuid.UUID | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            return uuid.UUID(raw)
        except ValueError:
            pass
    errors.append(FieldError(pointer_join(at, "credential_id"), "must be a UUID or null"))
    return None


def _parse_position(raw: object, at: str, errors: list[FieldError]) -> Position | None:
    if raw is None:
        return None
    if (
        isinstance(raw, dict)
        and set(raw) == {"x", "y"}
        and all(_is_number(raw[axis]) for axis in ("x", "y"))
    ):
        return Position(raw["x"], raw["y"])
    errors.append(FieldError(at, "must be an object with numbers x and y"))
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _nodes_on_cycles(definition: Definition) -> list[str]:
    """Ids of the nodes that Kahn's algorithm cannot order, in definition order."""
    incoming: dict[str, int] = {node.id: 0 for node in definition.nodes}
    outgoing: defaultdict[str, list[str]] = defaultdict(list)
    for edge in definition.edges:
        incoming[edge.target] += 1
        outgoing[edge.source].append(edge.target)
    ready = deque(node_id for node_id, count in incoming.items() if count == 0)
    while ready:
        node_id = ready.popleft()
        for target in outgoing[node_id]:
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    return [node.id for node in definition.nodes if incoming[node.id] > 0]


def _node_runnability(
    node: Node, at: str, credential_types: Mapping[uuid.UUID, str]
) -> list[FieldError]:
    node_type = NODE_TYPES[node.type]
    errors = missing_required(
        node.parameters, node_type.parameters_schema, pointer_join(at, "parameters")
    )
    if node.type == SCHEDULE_TRIGGER:
        errors += schedule_runnability(node.parameters, pointer_join(at, "parameters"))
    if node.credential_id is None:
        return errors
    where = pointer_join(at, "credential_id")
    found = credential_types.get(node.credential_id)
    if not node_type.credential_types:
        errors.append(FieldError(where, f"{node.type} nodes take no credential"))
    elif found is None:
        errors.append(FieldError(where, "is not a credential of yours"))
    elif found not in node_type.credential_types:
        accepted = ", ".join(node_type.credential_types)
        errors.append(FieldError(where, f"is a {found} credential; {node.type} accepts {accepted}"))
    return errors

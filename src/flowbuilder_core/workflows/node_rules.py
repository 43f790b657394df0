"""Save-time rules of node parameters that a JSON Schema cannot say (unique case names)."""

from __future__ import annotations

from flowbuilder_core.nodes.schema import pointer_join
from flowbuilder_core.shared.errors import FieldError
from flowbuilder_core.workflows.policies import DEFAULT_OUTPUT


def parameter_problems(node_type: str, parameters: dict[str, object], at: str) -> list[FieldError]:
    """The problems of a node's parameters beyond its schema (already checked)."""
    if node_type == "logic.switch":
        return _switch_problems(parameters, at)
    return []


def _switch_problems(parameters: dict[str, object], at: str) -> list[FieldError]:
    cases = parameters.get("cases")
    if not isinstance(cases, list):
        return []
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, case in enumerate(cases):
        name = case.get("name") if isinstance(case, dict) else None
        if not isinstance(name, str):
            continue
        where = pointer_join(pointer_join(pointer_join(at, "cases"), index), "name")
        if name == DEFAULT_OUTPUT:
            errors.append(FieldError(where, f'"{DEFAULT_OUTPUT}" names the edges of no match'))
        elif name in seen:
            errors.append(FieldError(where, "is not unique"))
        seen.add(name)
    return errors

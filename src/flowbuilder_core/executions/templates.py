"""One node's templates and expression, evaluated within the node's budget and room."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from flowbuilder_core.executions.bounds import Budget, json_size, too_large
from flowbuilder_core.executions.errors import ExpressionError, NodeFailedError
from flowbuilder_core.executions.model import Json
from flowbuilder_core.executions.outputs import Room, dumps
from flowbuilder_core.executions.ports import ExpressionEvaluator
from flowbuilder_core.nodes.catalogue import NODE_TYPES
from flowbuilder_core.nodes.schema import WHOLE_TEMPLATE, check, missing_required, pointer_join
from flowbuilder_core.workflows.model import Node

TRIGGER, IF, TRANSFORM = "trigger.manual", "logic.if", "data.transform"
SWITCH, MERGE, OUTPUT = "logic.switch", "flow.merge", "flow.output"
SUBWORKFLOW, FOR_EACH = "flow.subworkflow", "flow.for_each"
TRIGGERS: Final = frozenset(name for name, kind in NODE_TYPES.items() if kind.is_trigger)
"""Every trigger type: the engine runs each itself, its output the execution input."""
EXPRESSION_PARAMETER: Final = {
    IF: "condition",
    TRANSFORM: "expression",
    SWITCH: "cases",
    FOR_EACH: "items",
}
"""The parameter of a node type that is JMESPath already (a switch's cases hold conditions),
so it is evaluated, not templated."""
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_MAX_REPORTED_PROBLEMS = 5


class Expressions:
    """One node's templates and expression, evaluated in a worker thread within its budget.

    Every value an expression answers (but a `logic.if` condition's, of which only the
    truthiness is kept) is measured against what is left of the node's room, so that the
    resolved parameters cannot grow past it either, however often a template repeats a value.
    """

    def __init__(
        self,
        evaluator: ExpressionEvaluator,
        context: Mapping[str, Json],
        budget: Budget,
        room: Room,
    ) -> None:
        self._evaluator, self._context = evaluator, context
        self._budget, self._room = budget, room
        self._spent = 0

    def prepare(self, node: Node) -> tuple[dict[str, Json], Json]:
        """The resolved parameters, and the value of a built-in node (None for the others)."""
        parameters = self._resolve_parameters(node)
        name = EXPRESSION_PARAMETER.get(node.type)
        if name is None:
            return parameters, None
        if node.type == SWITCH:
            return parameters, self._switch(parameters)
        expression, at = unwrap(parameters[name]), pointer_join("", name)
        if node.type == IF:
            return parameters, {"result": truthy(self._evaluate(expression, at, measure=False))}
        if node.type == FOR_EACH:
            return parameters, self._evaluate(expression, at)
        # A transform's value is its output: too large, it is the output that is.
        return parameters, self._evaluate(expression, at, too_large_as=self._room.output_message)

    def _switch(self, parameters: Mapping[str, Json]) -> Json:
        """`{"matched": [...]}`: the names of the cases whose condition is truthy, in order;
        only the first in mode `first`."""
        matched: list[str] = []
        for index, case in enumerate(parameters["cases"]):
            at = pointer_join(pointer_join("/cases", index), "condition")
            if not isinstance(case, Mapping) or "condition" not in case or "name" not in case:
                where = pointer_join("/cases", index)
                raise NodeFailedError(
                    "invalid_parameters",
                    f"Invalid parameters: {where} needs a name and a condition.",
                )
            if truthy(self._evaluate(unwrap(case["condition"]), at, measure=False)):
                matched.append(case["name"])
                if parameters.get("mode", "first") == "first":
                    break
        return {"matched": matched}

    def _resolve_parameters(self, node: Node) -> dict[str, Json]:
        keep_as_is = EXPRESSION_PARAMETER.get(node.type)
        resolved: dict[str, Json] = {
            name: value if name == keep_as_is else self._resolve(value, pointer_join("", name))
            for name, value in node.parameters.items()
        }
        node_type = NODE_TYPES.get(node.type)
        if node_type is not None:
            schema = node_type.parameters_schema
            problems = missing_required(resolved, schema, "") + check(resolved, schema, "")
            if problems:
                shown = problems[:_MAX_REPORTED_PROBLEMS]
                detail = "; ".join(f"{problem.field} {problem.message}" for problem in shown)
                raise NodeFailedError("invalid_parameters", f"Invalid parameters: {detail}.")
        return resolved

    def _resolve(self, value: Json, at: str) -> Json:
        if isinstance(value, str):
            return self._render(value, at)
        if isinstance(value, Mapping):
            return {key: self._resolve(item, pointer_join(at, key)) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [
                self._resolve(item, pointer_join(at, index)) for index, item in enumerate(value)
            ]
        return value

    def _render(self, text: str, at: str) -> Json:
        whole = WHOLE_TEMPLATE.fullmatch(text)
        if whole is not None:
            return self._evaluate(whole.group(1), at)
        if "{{" not in text:
            return text
        return _TEMPLATE.sub(lambda match: as_text(self._evaluate(match.group(1), at)), text)

    def _evaluate(
        self, expression: str, at: str, *, measure: bool = True, too_large_as: str | None = None
    ) -> Json:
        try:
            value = self._evaluator.evaluate(expression.strip(), self._context, self._budget)
        except ExpressionError as exc:
            raise ExpressionError(f"The expression in {at} cannot be evaluated: {exc}") from None
        if measure:
            size = json_size(value, self._room.bytes - self._spent, self._budget.tick)
            if size is None:
                raise too_large(too_large_as or self._room.values_message)
            self._spent += size
        return value


def unwrap(expression: Json) -> Json:
    """`{{ expr }}` in an expression parameter means `expr`."""
    if isinstance(expression, str):
        whole = WHOLE_TEMPLATE.fullmatch(expression)
        if whole is not None:
            return whole.group(1)
    return expression


def truthy(value: Json) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; numbers are all true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True


def as_text(value: Json) -> str:
    """A string as itself; anything else as compact JSON (which writes numbers plainly)."""
    return value if isinstance(value, str) else dumps(value)


def has_template(value: Json) -> bool:
    """Whether a `{{` appears in any string of `value` (iteratively: depth cannot hurt)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "{{" in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False

"""The engine: runs one workflow definition, node by node, and reports every step.

Rules (docs/API.md, §6 "Node types" and §7 "Execution lifecycle"):

- Nodes run one at a time in topological order; ties go to the node declared first.
- Every node sees the context `{"input": <execution input>, "nodes": {<id>: <output>}}`
  holding the outputs of the nodes that ran before it (skipped nodes have none, so a path
  into one is null, as any unknown JMESPath path is).
- String values anywhere in the parameters (nested objects and arrays included; keys are
  never templated) may hold `{{ expr }}` templates, JMESPath over that context. A string
  that is one whole template (surrounding whitespace allowed) takes the value with its
  JSON type; otherwise each template is replaced by its value as text: strings and numbers
  plainly, everything else (objects, arrays, booleans, null) as compact JSON. An expression
  cannot contain `}}` (write `} }`).
- After resolving, the parameters are checked against the node type's schema (required ones
  included): a failure fails the node with `invalid_parameters`, naming the parameter by JSON
  pointer and never showing its value. Node types outside the catalogue are not checked.
- `logic.if` outputs `{"result": <truthiness of condition>}` (JMESPath truthiness: false,
  null, "", [] and {} are false; every number is true). Its edges carrying `source_output`
  "true" or "false" are live only when they match the result. A node with incoming edges
  is `skipped` (no output) when every one of them is dead: it comes from a skipped node or
  is the branch not taken. So skips propagate, yet a join reachable by a live path runs.
- `should_stop()` is awaited before each node that would run; when it says yes (the run was
  cancelled, or is no longer this worker's), that node and all later ones are reported
  `skipped` and the outcome is `cancelled`.
- The first failing node fails the run with `error.node_id`; every node not yet run is
  recorded `skipped`. Error codes: the runner's NodeFailedError code; `expression_error`
  for a template or expression that cannot be evaluated; `invalid_parameters`;
  `credential_unavailable` when the node's credential cannot be resolved; `unknown_node_type`
  when no runner serves the type; `internal_error` (generic message, logged with its stack)
  for anything else. A definition whose edges name unknown nodes, or which has a cycle or
  duplicate node ids, fails with `invalid_definition` before any node runs.
- A node sends a `running` step when it starts and its final step when it ends, with
  `started_at`/`finished_at` from the clock. Skipped steps carry no timestamps.
- A stored output whose compact JSON (UTF-8) is over MAX_OUTPUT_BYTES becomes
  `{"truncated_json": <the longest prefix of that JSON text that keeps the stored value
  within MAX_OUTPUT_BYTES>}` with `truncated=True`. Later nodes still see the full output:
  only the record is truncated.

Which node types are built in: the engine itself runs the types whose work needs the
execution context, which a `NodeCall` deliberately does not carry: `trigger.manual` (its
output is the execution input), `logic.if` and `data.transform`. Their expression parameter
(`condition`, `expression`) is JMESPath over the context already, so it is not templated; a
value written as one whole template, `{{ expr }}`, is read as `expr`. Every other type
(`data.set`, `util.delay`, `http.request`, ...) is a NodeRunner from the `runners` mapping,
which sees only its resolved parameters and credential. Registering a runner for a built-in
type is a configuration error (ValueError), so a wiring mistake cannot pass unnoticed.

Credentials: a runner node with `credential_id` gets `credentials.resolve(owner, id)` in
`NodeCall.credential`; any failure to resolve fails the node with `credential_unavailable`
and a message that holds no secret. Exceptions from `on_step` and `should_stop` (a lost
database, say) are not node failures: they propagate to the caller, as does cancellation
of the task itself.
"""

from __future__ import annotations

import heapq
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from flowbuilder_core.executions.errors import ExpressionError, NodeFailedError
from flowbuilder_core.executions.model import (
    MAX_OUTPUT_BYTES,
    ExecutionError,
    ExecutionStatus,
    Json,
    RunOutcome,
    StepResult,
    StepStatus,
)
from flowbuilder_core.executions.ports import (
    CredentialResolver,
    ExpressionEvaluator,
    NodeCall,
    NodeRunner,
)
from flowbuilder_core.nodes.catalogue import NODE_TYPES
from flowbuilder_core.nodes.schema import WHOLE_TEMPLATE, check, missing_required, pointer_join
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import Definition, Edge, Node

_log = logging.getLogger(__name__)

TRIGGER, IF, TRANSFORM = "trigger.manual", "logic.if", "data.transform"
BUILT_IN_TYPES: Final = frozenset({TRIGGER, IF, TRANSFORM})
"""Node types the engine runs itself, because they need the execution context."""

_EXPRESSION_PARAMETER: Final = {IF: "condition", TRANSFORM: "expression"}
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_MAX_REPORTED_PROBLEMS = 5
_TRUNCATED = "truncated_json"


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


class Engine:
    """Runs definitions; see the module docstring for the rules. Holds no per-run state, so
    one engine serves any number of concurrent runs."""

    def __init__(
        self,
        runners: Mapping[str, NodeRunner],
        expressions: ExpressionEvaluator,
        clock: Clock,
    ) -> None:
        clashes = sorted(BUILT_IN_TYPES.intersection(runners))
        if clashes:
            raise ValueError(f"The engine runs these node types itself: {', '.join(clashes)}")
        self._runners = dict(runners)
        self._expressions = expressions
        self._clock = clock

    async def run(
        self,
        *,
        owner: UserId,
        definition: Definition,
        input: Mapping[str, Json],
        credentials: CredentialResolver,
        on_step: Callable[[StepResult], Awaitable[None]],
        should_stop: Callable[[], Awaitable[bool]],
    ) -> RunOutcome:
        try:
            order = execution_order(definition)
        except InvalidDefinitionError as exc:
            await _skip(definition.nodes, on_step)
            return RunOutcome(
                ExecutionStatus.FAILED, ExecutionError("invalid_definition", str(exc))
            )
        incoming: dict[str, list[Edge]] = {node.id: [] for node in order}
        for edge in definition.edges:
            incoming[edge.target].append(edge)
        outputs: dict[str, Json] = {}
        context: dict[str, Json] = {"input": _plain(input), "nodes": outputs}
        branch_taken: dict[str, str] = {}
        skipped: set[str] = set()
        for position, node in enumerate(order):
            if _is_dead(incoming[node.id], skipped, branch_taken):
                skipped.add(node.id)
                await on_step(StepResult(node.id, StepStatus.SKIPPED))
                continue
            if await should_stop():
                await _skip(order[position:], on_step)
                return RunOutcome(ExecutionStatus.CANCELLED)
            started_at = self._clock.now()
            await on_step(StepResult(node.id, StepStatus.RUNNING, started_at=started_at))
            result = await self._run_node(node, owner, context, credentials)
            stored, truncated = _storable(result.output_json)
            await on_step(
                StepResult(
                    node.id,
                    StepStatus.FAILED if result.error else StepStatus.SUCCEEDED,
                    started_at=started_at,
                    finished_at=self._clock.now(),
                    output=stored,
                    error=result.error,
                    truncated=truncated,
                )
            )
            if result.error is not None:
                await _skip(order[position + 1 :], on_step)
                return RunOutcome(ExecutionStatus.FAILED, result.error)
            outputs[node.id] = result.output
            if node.type == IF:
                branch_taken[node.id] = "true" if result.output["result"] else "false"
        return RunOutcome(ExecutionStatus.SUCCEEDED)

    async def _run_node(
        self,
        node: Node,
        owner: UserId,
        context: Mapping[str, Json],
        credentials: CredentialResolver,
    ) -> _NodeResult:
        try:
            output = await self._execute(node, owner, context, credentials)
            text = _dumps(output)
        except NodeFailedError as exc:
            error = ExecutionError(exc.code, exc.message, node.id)
            try:
                return _NodeResult(None, _dumps(exc.output), error)
            except (TypeError, ValueError):
                return _NodeResult(None, None, error)
        except ExpressionError as exc:
            return _NodeResult(None, None, ExecutionError("expression_error", str(exc), node.id))
        except Exception:
            _log.exception("node %s of type %s failed unexpectedly", node.id, node.type)
            message = "The node failed unexpectedly."
            return _NodeResult(None, None, ExecutionError("internal_error", message, node.id))
        # The round trip through JSON gives later nodes plain dicts and lists, detached from
        # whatever the runner keeps.
        return _NodeResult(json.loads(text), text, None)

    async def _execute(
        self,
        node: Node,
        owner: UserId,
        context: Mapping[str, Json],
        credentials: CredentialResolver,
    ) -> Json:
        runner = self._runners.get(node.type)
        if runner is None and node.type not in BUILT_IN_TYPES:
            raise NodeFailedError(
                "unknown_node_type", f"No runner is configured for node type {node.type!r}."
            )
        parameters = self._resolve_parameters(node, context)
        if node.type == TRIGGER:
            return context["input"]
        if node.type in _EXPRESSION_PARAMETER:
            name = _EXPRESSION_PARAMETER[node.type]
            value = self._evaluate(_unwrap(parameters[name]), context, pointer_join("", name))
            return {"result": _truthy(value)} if node.type == IF else value
        assert runner is not None
        credential = None
        if node.credential_id is not None:
            try:
                credential = await credentials.resolve(owner, node.credential_id)
            except Exception:
                # The cause goes to the log (store errors hold no secret), never to the step.
                _log.warning("credential of node %s could not be resolved", node.id, exc_info=True)
                raise NodeFailedError(
                    "credential_unavailable", "The node's credential could not be read."
                ) from None
        return await runner.run(NodeCall(node, parameters, credential))

    def _resolve_parameters(self, node: Node, context: Mapping[str, Json]) -> dict[str, Json]:
        keep_as_is = _EXPRESSION_PARAMETER.get(node.type)
        resolved: dict[str, Json] = {
            name: value
            if name == keep_as_is
            else self._resolve(value, context, pointer_join("", name))
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

    def _resolve(self, value: Json, context: Mapping[str, Json], at: str) -> Json:
        if isinstance(value, str):
            return self._render(value, context, at)
        if isinstance(value, Mapping):
            return {
                key: self._resolve(item, context, pointer_join(at, key))
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [
                self._resolve(item, context, pointer_join(at, index))
                for index, item in enumerate(value)
            ]
        return value

    def _render(self, text: str, context: Mapping[str, Json], at: str) -> Json:
        whole = WHOLE_TEMPLATE.fullmatch(text)
        if whole is not None:
            return self._evaluate(whole.group(1), context, at)
        if "{{" not in text:
            return text
        return _TEMPLATE.sub(
            lambda match: _as_text(self._evaluate(match.group(1), context, at)), text
        )

    def _evaluate(self, expression: str, context: Mapping[str, Json], at: str) -> Json:
        try:
            return self._expressions.evaluate(expression.strip(), context)
        except ExpressionError as exc:
            raise ExpressionError(f"The expression in {at} cannot be evaluated: {exc}") from None


@dataclass(frozen=True, slots=True)
class _NodeResult:
    output: Json
    output_json: str | None
    error: ExecutionError | None


def _is_dead(edges: Sequence[Edge], skipped: set[str], branch_taken: Mapping[str, str]) -> bool:
    """A node with incoming edges, none of them live. Nodes without any always run."""

    def live(edge: Edge) -> bool:
        if edge.source in skipped:
            return False
        taken = branch_taken.get(edge.source)
        return taken is None or edge.source_output is None or edge.source_output == taken

    return bool(edges) and not any(live(edge) for edge in edges)


async def _skip(nodes: Sequence[Node], on_step: Callable[[StepResult], Awaitable[None]]) -> None:
    for node in nodes:
        await on_step(StepResult(node.id, StepStatus.SKIPPED))


def _unwrap(expression: Json) -> Json:
    """`{{ expr }}` in an expression parameter means `expr`."""
    if isinstance(expression, str):
        whole = WHOLE_TEMPLATE.fullmatch(expression)
        if whole is not None:
            return whole.group(1)
    return expression


def _truthy(value: Json) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; numbers are all true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True


def _as_text(value: Json) -> str:
    """A string as itself; anything else as compact JSON (which writes numbers plainly)."""
    return value if isinstance(value, str) else _dumps(value)


def _dumps(value: Json) -> str:
    """Compact JSON; raises TypeError or ValueError for what is not JSON (NaN included)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _plain(value: Mapping[str, Json]) -> Json:
    return json.loads(_dumps(dict(value)))


def _storable(text: str | None) -> tuple[Json, bool]:
    """The output as recorded, and whether it was truncated (see the module docstring)."""
    if text is None:
        return None, False
    if _size(text) <= MAX_OUTPUT_BYTES:
        return json.loads(text), False
    # The longest prefix whose stored form fits: a binary search, as escaping makes the
    # stored size of a prefix grow unevenly. Slicing by code point never splits a character.
    overhead = _size(_dumps({_TRUNCATED: ""}))
    low, high = 0, min(len(text), MAX_OUTPUT_BYTES)
    while low < high:
        middle = (low + high + 1) // 2
        if overhead + _size(_dumps(text[:middle])) - 2 <= MAX_OUTPUT_BYTES:
            low = middle
        else:
            high = middle - 1
    return {_TRUNCATED: text[:low]}, True


def _size(text: str) -> int:
    """UTF-8 bytes; a lone surrogate (which json.loads lets through) counts, never raises."""
    return len(text.encode("utf-8", "surrogatepass"))

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
  for a template or expression that cannot be evaluated; `output_too_large` and
  `expression_timeout` (see "Bounds" below); `invalid_parameters`;
  `credential_unavailable` when the node's credential cannot be resolved; `unknown_node_type`
  when no runner serves the type; `internal_error` (generic message, logged with its stack)
  for anything else. A definition whose edges name unknown nodes, or which has a cycle or
  duplicate node ids, fails with `invalid_definition` before any node runs.
- A node sends a `running` step when it starts and its final step when it ends, with
  `started_at`/`finished_at` from the clock. Skipped steps carry no timestamps.
- A stored output whose compact JSON (UTF-8) is over MAX_OUTPUT_BYTES becomes
  `{"truncated_json": <the longest prefix of that JSON text that keeps the stored value
  within MAX_OUTPUT_BYTES>}` with `truncated=True`. A NUL character, which no database
  stores in JSON, is recorded as U+FFFD (in keys too, and in error messages). Later nodes
  still see the full output: only the record is truncated or escaped.

Bounds (`bounds.EngineLimits`, docs/API.md §4): a node whose output, or whose templates' and
expression's values together, are over `max_node_output_bytes` of JSON, or whose output would
take the run's context (the input and every output so far) over `max_run_context_bytes`, fails
with `output_too_large`; one whose expressions take longer than `expression_timeout_s` fails
with `expression_timeout`. Sizes are measured by `json_size`, which stops at the first byte
over the limit, before anything is serialized.

How the event loop is kept free: everything whose cost grows with the data runs in a worker
thread (`asyncio.to_thread`), never on the loop: resolving a node's templates and evaluating
its expression, measuring, serializing and truncating its output. (Two things stay on the
loop, because a thread would cost more than they do: an output of at most 16 KiB, which a
walk that stops at 16 KiB tells, and the parameters of a node without any template, a copy
of its definition.) The evaluator gets the node's `Budget` and checks it as it goes, so a
runaway expression stops itself at the deadline (a thread cannot be killed); since its steps
are Python code, the thread gives the GIL up every few milliseconds meanwhile, and the loop
(other runs, the API's probes in embedded mode) keeps going. Large outputs are serialized by
Python code for the same reason (see `settle`). Should an evaluator ignore its budget, the
engine stops waiting for it at twice the timeout and fails the node all the same.

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

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from flowbuilder_core.executions.bounds import Budget, EngineLimits, timed_out, too_large
from flowbuilder_core.executions.errors import ExpressionError, NodeFailedError
from flowbuilder_core.executions.model import (
    ExecutionError,
    ExecutionStatus,
    Json,
    RunOutcome,
    StepResult,
    StepStatus,
)
from flowbuilder_core.executions.outputs import (
    Room,
    printable,
    settle_beside_the_loop,
)
from flowbuilder_core.executions.ports import (
    CredentialResolver,
    ExpressionEvaluator,
    NodeCall,
    NodeRunner,
)
from flowbuilder_core.executions.templates import (
    EXPRESSION_PARAMETER,
    IF,
    TRANSFORM,
    TRIGGER,
    Expressions,
    has_template,
)
from flowbuilder_core.nodes.schedule import SCHEDULE_TRIGGER
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import Definition, Edge, Node

_log = logging.getLogger(__name__)

# Every trigger's output is the execution input (a schedule's holds its `scheduled_for`).
TRIGGERS: Final = frozenset({TRIGGER, SCHEDULE_TRIGGER})
BUILT_IN_TYPES: Final = frozenset({*TRIGGERS, IF, TRANSFORM})
"""Node types the engine runs itself, because they need the execution context."""

_T = TypeVar("_T")


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
    one engine serves any number of concurrent runs. `monotonic` is the clock of expression
    deadlines (tests pass a fake one)."""

    def __init__(
        self,
        runners: Mapping[str, NodeRunner],
        expressions: ExpressionEvaluator,
        clock: Clock,
        *,
        limits: EngineLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        clashes = sorted(BUILT_IN_TYPES.intersection(runners))
        if clashes:
            raise ValueError(f"The engine runs these node types itself: {', '.join(clashes)}")
        self._runners = dict(runners)
        self._expressions = expressions
        self._clock = clock
        self._limits = limits if limits is not None else EngineLimits()
        self._monotonic = monotonic

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
        limit = self._limits.max_run_context_bytes
        start = await settle_beside_the_loop(dict(input), Room(limit, True, limit))
        if start is None:
            await _skip(order, on_step)
            message = f"The execution input is over {limit} bytes of JSON."
            return RunOutcome(ExecutionStatus.FAILED, ExecutionError("output_too_large", message))
        incoming: dict[str, list[Edge]] = {node.id: [] for node in order}
        for edge in definition.edges:
            incoming[edge.target].append(edge)
        outputs: dict[str, Json] = {}
        context: dict[str, Json] = {"input": start.output, "nodes": outputs}
        used = start.size
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
            room = Room.left(self._limits, used)
            result = await self._run_node(node, owner, context, credentials, room)
            await on_step(
                StepResult(
                    node.id,
                    StepStatus.FAILED if result.error else StepStatus.SUCCEEDED,
                    started_at=started_at,
                    finished_at=self._clock.now(),
                    output=result.stored,
                    error=result.error,
                    truncated=result.truncated,
                )
            )
            if result.error is not None:
                await _skip(order[position + 1 :], on_step)
                return RunOutcome(ExecutionStatus.FAILED, result.error)
            outputs[node.id] = result.output
            used += result.size
            if node.type == IF:
                branch_taken[node.id] = "true" if result.output["result"] else "false"
        return RunOutcome(ExecutionStatus.SUCCEEDED)

    async def _run_node(
        self,
        node: Node,
        owner: UserId,
        context: Mapping[str, Json],
        credentials: CredentialResolver,
        room: Room,
    ) -> _NodeResult:
        try:
            output = await self._execute(node, owner, context, credentials, room)
            settled = await settle_beside_the_loop(output, room)
            if settled is None:
                raise too_large(room.output_message)
        except NodeFailedError as exc:
            error = ExecutionError(exc.code, printable(exc.message), node.id)
            try:
                # What a failed node leaves (an HTTP error response) is kept when it fits.
                kept = await settle_beside_the_loop(exc.output, room)
            except (TypeError, ValueError, RecursionError):  # not JSON, or nested too deeply
                kept = None
            if kept is None:
                return _NodeResult(error=error)
            return _NodeResult(stored=kept.stored, truncated=kept.truncated, error=error)
        except ExpressionError as exc:
            message = printable(str(exc))
            return _NodeResult(error=ExecutionError("expression_error", message, node.id))
        except Exception:
            _log.exception("node %s of type %s failed unexpectedly", node.id, node.type)
            message = "The node failed unexpectedly."
            return _NodeResult(error=ExecutionError("internal_error", message, node.id))
        return _NodeResult(settled.output, settled.size, settled.stored, settled.truncated)

    async def _execute(
        self,
        node: Node,
        owner: UserId,
        context: Mapping[str, Json],
        credentials: CredentialResolver,
        room: Room,
    ) -> Json:
        runner = self._runners.get(node.type)
        if runner is None and node.type not in BUILT_IN_TYPES:
            raise NodeFailedError(
                "unknown_node_type", f"No runner is configured for node type {node.type!r}."
            )
        budget = Budget(
            seconds=self._limits.expression_timeout_s,
            build_limit=self._limits.max_run_context_bytes,
            monotonic=self._monotonic,
        )
        expressions = Expressions(self._expressions, context, budget, room)
        if node.type in EXPRESSION_PARAMETER or has_template(node.parameters):
            parameters, value = await self._off_loop(lambda: expressions.prepare(node), budget)
        else:
            # Nothing to evaluate: a copy of the definition's own parameters, checked. Its cost
            # is bounded by the definition's size, less than a thread would cost.
            parameters, value = expressions.prepare(node)
        if node.type in TRIGGERS:
            return context["input"]
        if node.type in EXPRESSION_PARAMETER:
            return value
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

    async def _off_loop(self, work: Callable[[], _T], budget: Budget) -> _T:
        """`work()` in a worker thread. It stops itself at the budget's deadline; should it
        not, the node fails at twice the timeout all the same, and `stop()` makes the thread's
        next check fail (it cannot be killed). Cancellation stops it the same way."""
        seconds = self._limits.expression_timeout_s
        try:
            return await asyncio.wait_for(asyncio.to_thread(work), timeout=2 * seconds)
        except TimeoutError:
            raise timed_out(seconds) from None
        finally:
            budget.stop()


@dataclass(frozen=True, slots=True)
class _NodeResult:
    output: Json = None
    size: int = 0
    stored: Json = None
    truncated: bool = False
    error: ExecutionError | None = None


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

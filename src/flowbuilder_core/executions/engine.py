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
  "true" or "false" are live only when they match the result. `logic.switch` outputs
  `{"matched": [<case names>]}` and follows the edges naming a matched case, or "default"
  when none matched. A node with incoming edges is `skipped` (no output) when every one of
  them is dead (`graph.Routes`): it comes from a skipped node or names an output not
  chosen. So skips propagate, yet a join reachable by a live path runs. `flow.merge` is such
  a join: as nodes run in topological order, every branch into it has finished (or been
  skipped) when it runs, and it joins the outputs of its live incoming edges' sources.
- Error policies (`retries.py`): a node with `retry` that fails in a way another attempt
  could change is run again after a jittered exponential wait (in this task: no transaction
  is held, and the run's deadline counts it), up to `max_attempts`; `should_stop()` is asked
  before each new attempt, and after a failure (a run stopped meanwhile ends `cancelled`).
  Its final step has `attempts`. A node with `on_error` continue or
  branch that fails is recorded `failed`, and the run goes on with `{"error": {"code",
  "message"}}` as its output; under branch only its `"error"` edges are followed then, and
  only its other edges when it succeeds.
- `should_stop()` is awaited before each node that would run, and again once its `running`
  step is reported (reporting may be what hears of a cancel); when it says yes (the run was
  cancelled, or is no longer this worker's), that node and all later ones are reported
  `skipped` (a node reported running is reported again, skipped) and the outcome is
  `cancelled`.
- The first failing node (under `on_error` fail, the default) fails the run with
  `error.node_id`; every node not yet run is recorded `skipped`. Error codes: the runner's
  NodeFailedError code; `expression_error` for a template or expression that cannot be
  evaluated; `output_too_large` and `expression_timeout` (see "Bounds" below); `invalid_parameters`;
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

Bounds: see `bounds.py` (a node over them fails with `output_too_large` or
`expression_timeout`). How the event loop is kept free: see `outputs.py`.

Which node types are built in: the engine itself runs the types whose work needs the
execution context, which a `NodeCall` deliberately does not carry: the triggers
(`trigger.manual`, `trigger.webhook`, ...: their output is the execution input), `logic.if`,
`logic.switch`, `data.transform`, `flow.merge` and `flow.output` (whose output is the run's
result, `RunOutcome.result`; without one the result is the output of the last node that ran),
and `flow.subworkflow` and `flow.for_each`, which run other workflows through `children`
(`ChildRuns`, given by RunExecution; see `children.py` and `built_ins.py`). Their expression
parameter (`condition`, `cases`, `items`, `expression`) is JMESPath over the context already,
so it is not templated; a value written as one whole template, `{{ expr }}`, is read as
`expr`. Every other type
(`data.set`, `util.delay`, `http.request`, ...) is a NodeRunner from the `runners` mapping,
which sees only its resolved parameters and credential. Registering a runner for a built-in
type is a configuration error (ValueError), so a wiring mistake cannot pass unnoticed.

Credentials: a runner node with `credential_id` gets `credentials.resolve(owner, id)` in
`NodeCall.credential` (failing: `credential_unavailable`, with no secret). Exceptions from
`on_step` and `should_stop` (a lost database, say) are not node failures: they propagate to
the caller, as does cancellation of the task itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, TypeVar

from flowbuilder_core.executions.bounds import Budget, EngineLimits, timed_out, too_large
from flowbuilder_core.executions.built_ins import ForEach, for_each, merge, subworkflow
from flowbuilder_core.executions.errors import ExpressionError, NodeFailedError
from flowbuilder_core.executions.graph import (
    InvalidDefinitionError,
    Routes,
    execution_order,
    skip,
)
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
    dumps,
    printable,
    settle_beside_the_loop,
    utf8_size,
)
from flowbuilder_core.executions.ports import (
    ChildRuns,
    CredentialResolver,
    ExpressionEvaluator,
    NodeCall,
    NodeRunner,
)
from flowbuilder_core.executions.retries import backoff_s, error_output, retried
from flowbuilder_core.executions.run_state import NodeResult, RunState
from flowbuilder_core.executions.templates import (
    EXPRESSION_PARAMETER,
    FOR_EACH,
    IF,
    MERGE,
    OUTPUT,
    SUBWORKFLOW,
    SWITCH,
    TRANSFORM,
    TRIGGERS,
    Expressions,
    has_template,
)
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import Definition, Edge, Node, OnError

__all__ = ["BUILT_IN_TYPES", "Engine", "InvalidDefinitionError", "execution_order"]

_log = logging.getLogger(__name__)

BUILT_IN_TYPES: Final = frozenset(
    {*TRIGGERS, IF, SWITCH, TRANSFORM, MERGE, OUTPUT, SUBWORKFLOW, FOR_EACH}
)
"""Node types the engine runs itself, because they need the execution context."""

_T = TypeVar("_T")
OnStep = Callable[[StepResult], Awaitable[None]]


class Engine:
    """Runs definitions; see the module docstring for the rules. Holds no per-run state, so
    one engine serves any number of concurrent runs. `monotonic` is the clock of expression
    deadlines, `sleep` and `jitter` (in [0, 1)) those of retries (tests pass fake ones)."""

    def __init__(
        self,
        runners: Mapping[str, NodeRunner],
        expressions: ExpressionEvaluator,
        clock: Clock,
        *,
        limits: EngineLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        clashes = sorted(BUILT_IN_TYPES.intersection(runners))
        if clashes:
            raise ValueError(f"The engine runs these node types itself: {', '.join(clashes)}")
        self._runners = dict(runners)
        self._expressions = expressions
        self._clock = clock
        self._limits = limits if limits is not None else EngineLimits()
        self._monotonic, self._sleep, self._jitter = monotonic, sleep, jitter

    async def run(
        self,
        *,
        owner: UserId,
        definition: Definition,
        input: Mapping[str, Json],
        credentials: CredentialResolver,
        on_step: OnStep,
        should_stop: Callable[[], Awaitable[bool]],
        children: ChildRuns | None = None,
    ) -> RunOutcome:
        try:
            order = execution_order(definition)
        except InvalidDefinitionError as exc:
            await skip(definition.nodes, on_step)
            return RunOutcome(
                ExecutionStatus.FAILED, ExecutionError("invalid_definition", str(exc))
            )
        limit = self._limits.max_run_context_bytes
        start = await settle_beside_the_loop(dict(input), Room(limit, True, limit))
        if start is None:
            await skip(order, on_step)
            message = f"The execution input is over {limit} bytes of JSON."
            return RunOutcome(ExecutionStatus.FAILED, ExecutionError("output_too_large", message))
        incoming: dict[str, list[Edge]] = {node.id: [] for node in order}
        for edge in definition.edges:
            incoming[edge.target].append(edge)
        outputs: dict[str, Json] = {}
        run = RunState(
            {"input": start.output, "nodes": outputs},
            outputs,
            start.size,
            Routes(),
            incoming,
            children,
        )
        for position, node in enumerate(order):
            if run.routes.dead(incoming[node.id]):
                run.routes.skip(node.id)
                await on_step(StepResult(node.id, StepStatus.SKIPPED))
                continue
            if await should_stop():
                await skip(order[position:], on_step)
                return RunOutcome(ExecutionStatus.CANCELLED)
            started_at = self._clock.now()
            await on_step(StepResult(node.id, StepStatus.RUNNING, started_at=started_at))
            if await should_stop():  # asked again: recording the start may have heard a cancel
                await skip(order[position:], on_step)
                return RunOutcome(ExecutionStatus.CANCELLED)
            result, attempts, stopped = await self._attempts(
                node, owner, run, credentials, should_stop
            )
            # A node may fail because the run was stopped meanwhile (its child execution was
            # cancelled with it): the run then ends cancelled, not failed.
            stopped = stopped or (result.error is not None and await should_stop())
            await on_step(
                StepResult(
                    node.id,
                    StepStatus.FAILED if result.error else StepStatus.SUCCEEDED,
                    started_at=started_at,
                    finished_at=self._clock.now(),
                    output=result.stored,
                    error=result.error,
                    truncated=result.truncated,
                    attempts=attempts,
                )
            )
            if stopped:
                await skip(order[position + 1 :], on_step)
                return RunOutcome(ExecutionStatus.CANCELLED)
            if result.error is None:
                run.keep(node, result.output, result.size)
                self._route(node, result.output, run.routes)
            elif node.on_error is OnError.FAIL:
                await skip(order[position + 1 :], on_step)
                return RunOutcome(ExecutionStatus.FAILED, result.error)
            else:
                seen = error_output(result.error)
                run.keep(node, seen, utf8_size(dumps(seen)))
                if node.on_error is OnError.BRANCH:
                    run.routes.follow(node.id, ("error",), unnamed=False)
        return RunOutcome(ExecutionStatus.SUCCEEDED, result=run.result)

    @staticmethod
    def _route(node: Node, output: Json, routes: Routes) -> None:
        """The outputs a node that succeeded chose, if it chooses."""
        if node.type == IF:
            routes.follow(node.id, ("true" if output["result"] else "false",), unnamed=True)
        elif node.type == SWITCH:
            routes.follow(node.id, output["matched"] or ("default",), unnamed=True)
        elif node.on_error is OnError.BRANCH:
            routes.follow(node.id, (), unnamed=True)

    async def _attempts(
        self,
        node: Node,
        owner: UserId,
        run: RunState,
        credentials: CredentialResolver,
        should_stop: Callable[[], Awaitable[bool]],
    ) -> tuple[NodeResult, int, bool]:
        """The node run under its retry policy: its last result, how many attempts it took,
        and whether the run was stopped while it waited to try again."""
        attempts = 1
        while True:
            room = Room.left(self._limits, run.used)
            result = await self._run_node(node, owner, run, credentials, room)
            if result.error is None or not retried(node.retry, result.error, attempts):
                return result, attempts, False
            assert node.retry is not None
            await self._sleep(backoff_s(node.retry, attempts, self._jitter()))
            if await should_stop():
                return result, attempts, True
            attempts += 1

    async def _run_node(
        self,
        node: Node,
        owner: UserId,
        run: RunState,
        credentials: CredentialResolver,
        room: Room,
    ) -> NodeResult:
        try:
            output = await self._execute(node, owner, run, credentials, room)
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
                return NodeResult(error=error)
            return NodeResult(stored=kept.stored, truncated=kept.truncated, error=error)
        except ExpressionError as exc:
            message = printable(str(exc))
            return NodeResult(error=ExecutionError("expression_error", message, node.id))
        except Exception:
            _log.exception("node %s of type %s failed unexpectedly", node.id, node.type)
            message = "The node failed unexpectedly."
            return NodeResult(error=ExecutionError("internal_error", message, node.id))
        return NodeResult(settled.output, settled.size, settled.stored, settled.truncated)

    async def _execute(
        self,
        node: Node,
        owner: UserId,
        run: RunState,
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
        expressions = Expressions(self._expressions, run.context, budget, room)
        if node.type in EXPRESSION_PARAMETER or has_template(node.parameters):
            parameters, value = await self._off_loop(lambda: expressions.prepare(node), budget)
        else:
            # Nothing to evaluate: a copy of the definition's own parameters, checked. Its cost
            # is bounded by the definition's size, less than a thread would cost.
            parameters, value = expressions.prepare(node)
        if node.type in TRIGGERS:
            return run.context["input"]
        if node.type == FOR_EACH:
            keep = node.on_error is OnError.CONTINUE
            limit, message = self._limits.max_for_each_items, room.output_message
            each = ForEach(value, parameters, limit, room.bytes, message, keep)
            return await for_each(each, run.children)
        if node.type in EXPRESSION_PARAMETER:
            return value
        if node.type == OUTPUT:
            return parameters["value"]
        if node.type == MERGE:
            return merge(parameters, run.routes.live_sources(run.incoming[node.id]), run.outputs)
        if node.type == SUBWORKFLOW:
            return await subworkflow(parameters, run.children)
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

"""The work of the built-in node types that join, or that run other workflows (the engine
runs them itself)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from flowbuilder_core.executions.bounds import json_size, too_large
from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import MAX_INPUT_BYTES, Json
from flowbuilder_core.executions.ports import ChildRuns
from flowbuilder_core.workflows.model import WorkflowId
from flowbuilder_core.workflows.validation import unstorable_values

NO_CHILDREN: Final = "This engine was given no way to run sub-workflows (see RunExecution)."


def merge(
    parameters: Mapping[str, Json], sources: Sequence[str], outputs: Mapping[str, Json]
) -> Json:
    """`flow.merge`: `{<source id>: output}` (mode object), or the sources' outputs
    concatenated in edge order (mode append; an output that is not an array is one item)."""
    if parameters.get("mode", "object") == "object":
        return {source: outputs.get(source) for source in sources}
    joined: list[Json] = []
    for source in sources:
        output = outputs.get(source)
        if isinstance(output, list):
            joined.extend(output)
        else:
            joined.append(output)
    return joined


async def subworkflow(parameters: Mapping[str, Json], children: ChildRuns | None) -> Json:
    """`flow.subworkflow`: the called workflow's result."""
    if children is None:
        raise NodeFailedError("unknown_node_type", NO_CHILDREN)
    workflow_id, version = called(parameters)
    return await children.run(workflow_id, version, child_input(parameters.get("input", {})))


def called(parameters: Mapping[str, Json]) -> tuple[WorkflowId, int | None]:
    """The workflow and pinned version a node names (checked against the schema already)."""
    try:
        workflow_id = WorkflowId(uuid.UUID(str(parameters["workflow_id"])))
    except ValueError:
        raise NodeFailedError(
            "invalid_parameters", "Invalid parameters: /workflow_id must be a UUID."
        ) from None
    version = parameters.get("version")
    return workflow_id, version if isinstance(version, int) else None


def child_input(value: Json, at: str = "/input") -> Mapping[str, Json]:
    """A child execution's input, bounded as the API bounds an execution's: an object of at
    most MAX_INPUT_BYTES of JSON that a database can store."""
    if not isinstance(value, dict):
        raise NodeFailedError("invalid_parameters", f"Invalid parameters: {at} must be an object.")
    problems = unstorable_values(value, at)
    if problems:
        detail = f"{problems[0].field} {problems[0].message}"
        raise NodeFailedError("invalid_parameters", f"Invalid parameters: {detail}.")
    if json_size(value, MAX_INPUT_BYTES) is None:
        message = f"Invalid parameters: {at} must be at most {MAX_INPUT_BYTES} bytes of JSON."
        raise NodeFailedError("invalid_parameters", message)
    return value


@dataclass(frozen=True, slots=True)
class ForEach:
    """One `flow.for_each` node's run: its items, how many children at once, what the list of
    results may weigh (`room_bytes`, the node's output room), and whether a failed item is an
    `{"error": ...}` entry (`on_error` continue) or fails the node."""

    items: Json
    parameters: Mapping[str, Json]
    max_items: int
    room_bytes: int
    too_large_message: str
    keep_failures: bool


async def for_each(run: ForEach, children: ChildRuns | None) -> Json:
    """`flow.for_each`: the called workflow's result for each item, in item order, each child
    run with `{"item": <item>, "index": <its position>}` as input, `concurrency` at a time.

    Bounded as it goes: the results are measured as they come, and the node fails with
    `output_too_large` as soon as they would pass the node's room, before the rest start.
    Under `fail` (or `branch`) the first failed item stops new ones from starting; the
    children already running finish, then the node fails with that item's error."""
    if children is None:
        raise NodeFailedError("unknown_node_type", NO_CHILDREN)
    if not isinstance(run.items, list):
        raise NodeFailedError(
            "invalid_parameters", "Invalid parameters: /items must give an array."
        )
    if len(run.items) > run.max_items:
        message = (
            f"/items gave {len(run.items)} items; at most {run.max_items} run (MAX_FOR_EACH_ITEMS)."
        )
        raise NodeFailedError("too_many_items", message)
    workflow_id, version = called(run.parameters)
    inputs = [
        child_input({"item": item, "index": i}, f"/items/{i}") for i, item in enumerate(run.items)
    ]
    concurrency = run.parameters.get("concurrency", 1)
    results: list[Json] = [None] * len(inputs)
    state = _Progress(room=run.room_bytes)

    async def worker() -> None:
        while state.failure is None and state.next < len(inputs):
            index = state.next
            state.next += 1
            try:
                result = await children.run(workflow_id, version, inputs[index])
            except NodeFailedError as exc:
                if not run.keep_failures:
                    state.failure = state.failure or _item_failure(index, exc)
                    return
                result = {"error": {"code": exc.code, "message": exc.message}}
            size = json_size(result, state.room + 1)  # +1: the comma between items
            if size is None or size + 1 > state.room:
                state.failure = state.failure or too_large(run.too_large_message)
                return
            state.room -= size + 1
            results[index] = result

    workers = min(int(concurrency) if isinstance(concurrency, int) else 1, len(inputs))
    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())
    if state.failure is not None:
        raise state.failure
    return results


@dataclass
class _Progress:
    room: int
    next: int = 0
    failure: NodeFailedError | None = None


def _item_failure(index: int, exc: NodeFailedError) -> NodeFailedError:
    return NodeFailedError(
        exc.code,
        f"Item {index}: {exc.message}",
        {"index": index, **(exc.output if isinstance(exc.output, dict) else {})},
    )

"""The workflows a definition calls (`flow.subworkflow`, `flow.for_each`): that they are the
owner's and runnable, like credentials (execute-time problems), and that they never call the
workflow back (a save-time problem, where the store lets it be seen)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from flowbuilder_core.nodes.catalogue import UUID_PATTERN
from flowbuilder_core.nodes.schema import pointer_join
from flowbuilder_core.shared.errors import FieldError
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import Definition, WorkflowId
from flowbuilder_core.workflows.ports import WorkflowRepository

MAX_SUBWORKFLOW_DEPTH: Final = 5
"""How deep sub-workflows nest: a top-level run's children are at depth 1."""
CALLING_TYPES: Final = frozenset({"flow.subworkflow", "flow.for_each"})
_MAX_VISITS: Final = 100
"""Workflows read at most while looking for a cycle, however wide the calls fan out."""
_UUID = re.compile(UUID_PATTERN)


@dataclass(frozen=True, slots=True)
class Call:
    """A node of a definition that runs another workflow, as far as it names it plainly (a
    `workflow_id` given by a template is only known when the node runs)."""

    index: int
    workflow_id: WorkflowId
    version: int | None


def calls(definition: Definition) -> list[Call]:
    found = []
    for index, node in enumerate(definition.nodes):
        target = node.parameters.get("workflow_id")
        if node.type not in CALLING_TYPES or not isinstance(target, str) or not _UUID.match(target):
            continue
        version = node.parameters.get("version")
        pinned = version if isinstance(version, int) and not isinstance(version, bool) else None
        found.append(Call(index, WorkflowId(uuid.UUID(target)), pinned))
    return found


async def called_definition(
    workflows: WorkflowRepository, owner: UserId, call: Call
) -> Definition | str:
    """The definition `call` runs, or why there is none to run."""
    target = await workflows.get(call.workflow_id)
    if target is None or target.owner_id != owner:
        return "is not a workflow of yours"
    if call.version is None or call.version == target.version:
        return target.definition
    pinned = await workflows.version(call.workflow_id, call.version)
    if pinned is None:
        return f"has no version {call.version}"
    return pinned.definition


async def subworkflow_problems(
    workflows: WorkflowRepository,
    owner: UserId,
    definition: Definition,
    problems_of: Callable[[Definition], Awaitable[list[FieldError]]],
    at: str = "/definition",
) -> list[FieldError]:
    """Execute-time problems of the workflows `definition` calls: each must be the owner's, of
    a version it has, and runnable itself (`problems_of`), and the calls must not nest deeper
    than MAX_SUBWORKFLOW_DEPTH."""
    errors: list[FieldError] = []
    for call in calls(definition):
        where = pointer_join(pointer_join(pointer_join(at, "nodes"), call.index), "parameters")
        called = await called_definition(workflows, owner, call)
        if isinstance(called, str):
            field = "version" if called.startswith("has no version") else "workflow_id"
            errors.append(FieldError(pointer_join(where, field), called))
            continue
        problems = await problems_of(called)
        if problems:
            message = f"names a workflow that cannot run: {problems[0].message}"
            errors.append(FieldError(pointer_join(where, "workflow_id"), message))
        elif await _depth(workflows, owner, called, MAX_SUBWORKFLOW_DEPTH - 1) is None:
            message = f"nests sub-workflows deeper than {MAX_SUBWORKFLOW_DEPTH} levels"
            errors.append(FieldError(pointer_join(where, "workflow_id"), message))
    return errors


async def _depth(
    workflows: WorkflowRepository, owner: UserId, definition: Definition, allowed: int
) -> int | None:
    """How deep `definition`'s own calls nest, or None past `allowed` (or past _MAX_VISITS
    workflows read, or on a cycle, which nests without end)."""
    visits = 0

    async def depth(current: Definition, left: int, path: frozenset[WorkflowId]) -> int | None:
        nonlocal visits
        deepest = 0
        for call in calls(current):
            if left == 0 or call.workflow_id in path or visits >= _MAX_VISITS:
                return None
            visits += 1
            called = await called_definition(workflows, owner, call)
            if isinstance(called, str):
                continue  # the run would fail on it; that workflow reports it itself
            below = await depth(called, left - 1, path | {call.workflow_id})
            if below is None:
                return None
            deepest = max(deepest, below + 1)
        return deepest

    return await depth(definition, allowed, frozenset())


async def cycle_problems(
    workflows: WorkflowRepository,
    owner: UserId,
    workflow_id: WorkflowId,
    definition: Definition,
    at: str = "/definition",
) -> list[FieldError]:
    """Save-time: the calls of `definition`, saved as workflow `workflow_id`, that lead back to
    it (through the current or pinned versions of the workflows they call)."""
    errors: list[FieldError] = []
    visits = 0

    async def reaches(current: Definition, left: int) -> bool:
        nonlocal visits
        for call in calls(current):
            if call.workflow_id == workflow_id:
                return True
            if left == 0 or visits >= _MAX_VISITS:
                continue
            visits += 1
            called = await called_definition(workflows, owner, call)
            if not isinstance(called, str) and await reaches(called, left - 1):
                return True
        return False

    for call in calls(definition):
        where = pointer_join(pointer_join(pointer_join(at, "nodes"), call.index), "parameters")
        looped = call.workflow_id == workflow_id
        if not looped and visits < _MAX_VISITS:
            visits += 1
            called = await called_definition(workflows, owner, call)
            looped = not isinstance(called, str) and await reaches(called, MAX_SUBWORKFLOW_DEPTH)
        if looped:
            errors.append(
                FieldError(pointer_join(where, "workflow_id"), "calls this workflow back (a cycle)")
            )
    return errors

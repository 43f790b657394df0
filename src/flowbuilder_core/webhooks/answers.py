"""The answer to a `when_finished` request, from its run as it ended (docs/API.md, Webhooks).

- A failed or cancelled run: 502 with the execution id.
- A run whose `webhook.respond` node ran: that node's `status`, `headers` and `body` (the
  first such node in the order the nodes ran).
- Otherwise 200 with the output of the last node that ran (as recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

from flowbuilder_core.executions.events import FollowExecution
from flowbuilder_core.executions.model import ExecutionId, ExecutionStatus, StepResult, StepStatus
from flowbuilder_core.nodes.webhooks import DEFAULT_STATUS
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.webhooks.model import AnswerKind, Awaited, WebhookAnswer


def answer_of(
    execution_id: ExecutionId,
    status: ExecutionStatus,
    steps: Sequence[StepResult],
    respond_nodes: frozenset[str],
) -> WebhookAnswer:
    """The answer to a run that ended with `status` after `steps` (in the order they ran)."""
    if status is not ExecutionStatus.SUCCEEDED:
        return WebhookAnswer.failed(execution_id)
    ran = [step for step in steps if step.status is StepStatus.SUCCEEDED]
    for step in ran:
        if step.node_id in respond_nodes and isinstance(step.output, Mapping):
            output = step.output
            headers = output.get("headers") or {}
            return WebhookAnswer(
                AnswerKind.RESPONSE,
                execution_id,
                int(output.get("status", DEFAULT_STATUS)),
                tuple((str(name), str(value)) for name, value in headers.items()),
                output.get("body"),
            )
    last = ran[-1].output if ran else None
    return WebhookAnswer(AnswerKind.RESPONSE, execution_id, 200, (), last)


async def wait_for_answer(
    follow: FollowExecution, awaited: Awaited, wait_s: float
) -> WebhookAnswer | None:
    """The answer of the awaited run once it ends, read as its events are (a short unit of
    work per poll, no transaction held in between); None if it has not ended within `wait_s`."""
    steps: dict[str, StepResult] = {}
    status: ExecutionStatus | None = None
    events = await follow(Principal(awaited.owner_id), awaited.execution_id)
    async with contextlib.aclosing(events):
        try:
            async with asyncio.timeout(wait_s):
                async for event in events:
                    if event.step is not None and event.step.status is not StepStatus.RUNNING:
                        steps[event.step.node_id] = event.step
                    if event.status is not None:
                        status = event.status
        except TimeoutError:
            return None
    if status is None or not status.finished:
        return None
    return answer_of(awaited.execution_id, status, list(steps.values()), awaited.respond_nodes)

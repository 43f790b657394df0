"""Engine benchmark: a `flow.for_each` over 1,000 items, concurrency 10, of a one-node
sub-workflow; from the ExecuteWorkflow call to the moment the worker has committed the parent
`succeeded` (its queue message acknowledged). Every item is a real child execution: created
running, its steps recorded, finished, each in units of work of its own. Target: < 5 s, with
the cost per item (the time over the items).

    python -m benchmarks.engine --only for-each [--for-each-items N] [DATABASE_URL]
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.engine import (
    RUN_TIMEOUT_S,
    USER,
    SignallingQueue,
    container_for,
    create,
    services,
    status_of,
)
from flowbuilder_core.executions.model import ExecutionStatus
from flowbuilder_core.executions.ports import ExecutionQueue
from flowbuilder_core.executions.use_cases import (
    ExecuteCommand,
    ExecuteWorkflow,
    ListExecutions,
    ListExecutionsQuery,
)

ITEMS = 1000
CONCURRENCY = 10
TARGET_S = 5.0
WARMUP_ITEMS = 20


def child_flow() -> dict[str, Any]:
    """The one-node sub-workflow: its trigger, then one `data.set` of the item."""
    return {
        "nodes": [
            {"id": "start", "type": "trigger.manual", "parameters": {}},
            {"id": "echo", "type": "data.set", "parameters": {"value": "{{ input.item }}"}},
        ],
        "edges": [{"source": "start", "target": "echo"}],
    }


def parent_flow(child_id: str, concurrency: int) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "trigger.manual", "parameters": {}},
            {
                "id": "each",
                "type": "flow.for_each",
                "parameters": {
                    "items": "input.items",
                    "workflow_id": child_id,
                    "concurrency": concurrency,
                },
            },
        ],
        "edges": [{"source": "start", "target": "each"}],
    }


async def measure(database_url: str, items: int = ITEMS) -> dict[str, float]:
    """One warm-up run of a few items, then one timed run of `items` items."""
    container = container_for(database_url)
    try:
        queue = SignallingQueue(await container.get(ExecutionQueue))
        child = await create(container, "for-each child", child_flow())
        parent = await create(container, "for-each", parent_flow(str(child.id), CONCURRENCY))
        seconds = 0.0
        async with services(container, queue, worker=True):
            for count in (WARMUP_ITEMS, items):
                started = time.perf_counter()
                async with container() as scope:
                    execute = await scope.get(ExecuteWorkflow)
                    command = ExecuteCommand(parent.id, {"items": list(range(count))})
                    execution = await execute(USER, command)
                done = queue.expect(execution.id)
                finished = await asyncio.wait_for(done, RUN_TIMEOUT_S * 10)
                status = await status_of(container, execution.id)
                if status is not ExecutionStatus.SUCCEEDED:
                    raise RuntimeError(f"the for-each of {count} items ended {status}")
                seconds = finished - started
        async with container() as scope:
            listing = await scope.get(ListExecutions)
            page = await listing(USER, ListExecutionsQuery(limit=1, parent_id=execution.id))
        if not page.items:
            raise RuntimeError("the timed run recorded no child execution")
        return {"items": items, "seconds": seconds, "per_item_ms": seconds * 1000 / items}
    finally:
        await container.close()


def section(result: dict[str, float]) -> list[str]:
    verdict = "holds" if result["seconds"] < TARGET_S else "MISSED"
    items = int(result["items"])
    return [
        f"### `flow.for_each` over {items:,} items, concurrency {CONCURRENCY}, "
        "of a one-node sub-workflow, execute to `succeeded`",
        "",
        "Each item is a child execution run inline by the parent's worker: created running "
        "(one unit of work), one write for its trigger and its node's start, and a finish "
        "that carries the node's end (one statement each on Postgres).",
        "",
        f"| items | seconds | per item ms | target < {TARGET_S:.0f} s |",
        "|---:|---:|---:|---|",
        f"| {items:,} | {result['seconds']:.2f} | {result['per_item_ms']:.2f} | {verdict} |",
        "",
    ]

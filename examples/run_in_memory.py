"""Store a workflow and run it to completion in memory, with a node runner of your own.

This service sends the `http.request` nodes of its workflows through a client of its own
instead of the built-in runner (which goes out to the network behind an SSRF guard). Here that
client answers from a table, so the example needs no network.

Run it: python examples/run_in_memory.py
"""

import asyncio

from flowbuilder_adapters.memory import MemoryStorage
from flowbuilder_adapters.nodes import JmesPathEvaluator, basic_runners
from flowbuilder_core import (
    ExecuteCommand,
    FlowBuilder,
    Json,
    NodeCall,
    NodeFailedError,
    Principal,
    UserId,
    WorkflowInput,
)

ORDERS = {"https://orders.internal/orders/42": {"id": 42, "total": 120.5}}


class OrdersClient:
    """Runs `http.request` nodes: a `NodeRunner` gets the node's parameters with every
    template resolved, and returns its output as JSON or raises NodeFailedError."""

    async def run(self, call: NodeCall) -> Json:
        url = call.parameters["url"]
        if url not in ORDERS:
            raise NodeFailedError("http_status", f"{url} answered 404")
        return {"status": 200, "headers": {}, "body": ORDERS[url]}


DEFINITION = {
    "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {
            "id": "order",
            "type": "http.request",
            "parameters": {
                "method": "GET",
                "url": "https://orders.internal/orders/{{ input.order_id }}",
            },
        },
        {
            "id": "big",
            "type": "logic.if",
            "parameters": {"condition": "nodes.order.body.total > `100`"},
        },
        {
            "id": "review",
            "type": "data.set",
            "parameters": {"value": {"order": "{{ nodes.order.body.id }}", "reason": "over 100"}},
        },
        {"id": "ship", "type": "data.set", "parameters": {"value": "ship it"}},
    ],
    "edges": [
        {"source": "start", "target": "order"},
        {"source": "order", "target": "big"},
        {"source": "big", "target": "review", "source_output": "true"},
        {"source": "big", "target": "ship", "source_output": "false"},
    ],
}


async def main() -> None:
    storage = MemoryStorage()
    flow = FlowBuilder(
        storage,
        runners={**basic_runners(), "http.request": OrdersClient()},
        expressions=JmesPathEvaluator(),
    )
    alice = Principal(UserId("user_alice"))

    async with flow.use_cases() as use:
        workflow = await use.create_workflow(
            alice, WorkflowInput("Review big orders", definition=DEFINITION)
        )
        requested = await use.execute_workflow(alice, ExecuteCommand(workflow.id, {"order_id": 42}))
    print(f"{workflow.name} v{workflow.version}: execution {requested.status}")

    # In memory the outbox is the queue: take what was requested and run it, as a worker does.
    for request in storage.take_requests():
        outcome = await flow.run(request.execution_id)
        print(f"outcome: {outcome.status if outcome else 'nothing to run'}")

    async with flow.use_cases() as use:
        execution = await use.get_execution(alice, requested.id)
    for step in execution.steps:
        print(f"  {step.node_id}: {step.status} {step.output}")


if __name__ == "__main__":
    asyncio.run(main())

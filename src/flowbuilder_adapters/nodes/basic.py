"""Runners of the node types that need neither I/O nor the execution context.

`trigger.manual`, `logic.if` and `data.transform` have no runner here: they read the
execution context, which a NodeCall does not carry, so the Engine runs them itself (see
`flowbuilder_core.executions.engine`). A runner trusts the engine to have checked its
parameters against the catalogue, yet refuses nonsense itself, for library users who
call it directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from flowbuilder_adapters.nodes.webhook_respond import WebhookRespondRunner
from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import Json
from flowbuilder_core.executions.ports import NodeCall, NodeRunner

MAX_DELAY_SECONDS = 300

Sleep = Callable[[float], Awaitable[None]]


class DataSetRunner(NodeRunner):
    """`data.set`: the output is the `value` parameter, templates already resolved."""

    async def run(self, call: NodeCall) -> Json:
        if "value" not in call.parameters:
            raise NodeFailedError("invalid_parameters", "Invalid parameters: /value is required.")
        return call.parameters["value"]


class DelayRunner(NodeRunner):
    """`util.delay`: waits `seconds` (0..300) without blocking the event loop; output `{}`."""

    def __init__(self, sleep: Sleep = asyncio.sleep) -> None:
        self._sleep = sleep

    async def run(self, call: NodeCall) -> Json:
        seconds = call.parameters.get("seconds")
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not 0 <= seconds <= MAX_DELAY_SECONDS
        ):
            raise NodeFailedError(
                "invalid_parameters",
                f"Invalid parameters: /seconds must be a number from 0 to {MAX_DELAY_SECONDS}.",
            )
        await self._sleep(float(seconds))
        return {}


def basic_runners(*, sleep: Sleep = asyncio.sleep) -> dict[str, NodeRunner]:
    """The runners that need no I/O (this module's, and `webhook.respond`) by node type, to
    merge with the I/O runners (http.request)."""
    return {
        "data.set": DataSetRunner(),
        "util.delay": DelayRunner(sleep),
        "webhook.respond": WebhookRespondRunner(),
    }

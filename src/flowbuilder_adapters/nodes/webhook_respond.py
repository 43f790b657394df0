"""The `webhook.respond` node: the answer a `when_finished` webhook request gets.

Its output is `{"status", "headers", "body"}`, its parameters with templates resolved and
defaults applied. The receiver reads it from the step the run records, so it must fit in a
recorded step whole: more than MAX_OUTPUT_BYTES (64 KiB) of JSON fails the node.
"""

from __future__ import annotations

from flowbuilder_core.executions.bounds import json_size
from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import MAX_OUTPUT_BYTES, Json
from flowbuilder_core.executions.ports import NodeCall, NodeRunner
from flowbuilder_core.nodes.webhooks import (
    DEFAULT_STATUS,
    FINAL_STATUS,
    MAX_STATUS,
    MIN_STATUS,
    RESERVED_RESPONSE_HEADERS,
)


class WebhookRespondRunner(NodeRunner):
    """`webhook.respond`: checks and answers its status, headers and body."""

    async def run(self, call: NodeCall) -> Json:
        parameters = call.parameters
        status = parameters.get("status", DEFAULT_STATUS)
        if (
            not isinstance(status, int)
            or isinstance(status, bool)
            or not MIN_STATUS <= status <= MAX_STATUS
        ):
            raise NodeFailedError(
                "invalid_parameters",
                f"Invalid parameters: /status must be an integer from {MIN_STATUS} to "
                f"{MAX_STATUS}.",
            )
        if status < FINAL_STATUS:
            # A 1xx is no answer; sent as one, a 101 would tell a proxy in front to switch the
            # connection to another protocol, at the request of whoever templated the status.
            raise NodeFailedError(
                "invalid_parameters",
                f"Invalid parameters: /status {status} is informational (1xx), not an answer.",
            )
        headers = parameters.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(value, str) for value in headers.values()
        ):
            raise NodeFailedError(
                "invalid_parameters", "Invalid parameters: /headers must map names to strings."
            )
        reserved = sorted(name for name in headers if name.lower() in RESERVED_RESPONSE_HEADERS)
        if reserved:
            raise NodeFailedError(
                "invalid_parameters",
                f"Invalid parameters: /headers/{reserved[0]} is set by the server.",
            )
        output = {"status": status, "headers": dict(headers), "body": parameters.get("body")}
        if json_size(output, MAX_OUTPUT_BYTES) is None:
            raise NodeFailedError(
                "output_too_large",
                f"A webhook answer is limited to {MAX_OUTPUT_BYTES // 1024} KiB of JSON.",
            )
        return output

"""The node catalogue: every node type, its parameter schema and accepted credential types.

Validation, the engine and `GET /api/node-types` all read this one table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from flowbuilder_core.nodes import http_request as http
from flowbuilder_core.nodes import schedule, webhooks
from flowbuilder_core.nodes.schema import JsonSchema


class NodeCategory(StrEnum):
    TRIGGER = "trigger"
    ACTION = "action"
    LOGIC = "logic"
    DATA = "data"
    UTILITY = "utility"
    FLOW = "flow"


@dataclass(frozen=True, slots=True)
class NodeType:
    """A kind of node: its parameters (a JSON Schema object) and the credentials it accepts."""

    type: str
    category: NodeCategory
    title: str
    parameters_schema: JsonSchema
    credential_types: tuple[str, ...] = ()

    @property
    def is_trigger(self) -> bool:
        return self.category is NodeCategory.TRIGGER


def _object(properties: dict[str, Any], required: list[str]) -> JsonSchema:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


_EXPRESSION = {"type": "string", "minLength": 1, "maxLength": 10_000}
MAX_SWITCH_CASES = 50
MAX_FOR_EACH_CONCURRENCY = 10
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_WORKFLOW_ID = {"type": "string", "pattern": UUID_PATTERN, "x-pattern-message": "must be a UUID"}
_VERSION = {"type": "integer", "minimum": 1}
_CASE_NAME = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_-]{1,64}$",
    "x-pattern-message": "must be 1 to 64 characters of A-Z a-z 0-9 _ -",
}

NODE_TYPES: Mapping[str, NodeType] = MappingProxyType(
    {
        node.type: node
        for node in (
            NodeType(
                type="trigger.manual",
                category=NodeCategory.TRIGGER,
                title="Manual trigger",
                parameters_schema=_object({}, []),
            ),
            NodeType(
                type=schedule.SCHEDULE_TRIGGER,
                category=NodeCategory.TRIGGER,
                title="Schedule",
                # `cron` or `every_s` (not both; one is needed to run); the minimum interval
                # and the cron syntax are checked against the settings (schedule.py).
                parameters_schema=_object(
                    {
                        "cron": {"type": "string", "maxLength": schedule.MAX_CRON_LENGTH},
                        "every_s": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": schedule.MAX_EVERY_S,
                        },
                        "timezone": {
                            "type": "string",
                            "maxLength": schedule.MAX_TIMEZONE_LENGTH,
                            "default": schedule.DEFAULT_TIMEZONE,
                        },
                    },
                    [],
                ),
            ),
            NodeType(
                type="http.request",
                category=NodeCategory.ACTION,
                title="HTTP request",
                parameters_schema=_object(
                    {
                        "method": {"type": "string", "enum": list(http.METHODS)},
                        "url": {
                            "type": "string",
                            "maxLength": http.MAX_URL_LENGTH,
                            "pattern": rf"^({'|'.join(http.URL_SCHEMES)})://[^\s/?#]+",
                            "x-pattern-message": "must be an http or https URL with a host",
                        },
                        "headers": {
                            "type": "object",
                            "propertyNames": http.HEADER_NAME_SCHEMA,
                            "additionalProperties": http.HEADER_VALUE_SCHEMA,
                            "maxProperties": http.MAX_HEADERS,
                        },
                        "query": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "maxProperties": http.MAX_QUERY_PARAMETERS,
                        },
                        "body": {},
                        "timeout_s": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": http.MAX_TIMEOUT_S,
                            "default": http.DEFAULT_TIMEOUT_S,
                        },
                    },
                    ["method", "url"],
                ),
                credential_types=("http_bearer", "http_basic", "http_header"),
            ),
            NodeType(
                type=webhooks.TRIGGER_TYPE,
                category=NodeCategory.TRIGGER,
                title="Webhook trigger",
                parameters_schema=_object(webhooks.TRIGGER_PARAMETERS, []),
            ),
            NodeType(
                type=webhooks.RESPOND_TYPE,
                category=NodeCategory.ACTION,
                title="Respond to webhook",
                parameters_schema=_object(webhooks.RESPOND_PARAMETERS, []),
            ),
            NodeType(
                type="logic.if",
                category=NodeCategory.LOGIC,
                title="If",
                parameters_schema=_object({"condition": _EXPRESSION}, ["condition"]),
            ),
            NodeType(
                type="logic.switch",
                category=NodeCategory.LOGIC,
                title="Switch",
                parameters_schema=_object(
                    {
                        "cases": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_SWITCH_CASES,
                            "items": _object(
                                {"name": _CASE_NAME, "condition": _EXPRESSION},
                                ["name", "condition"],
                            ),
                        },
                        "mode": {"type": "string", "enum": ["first", "all"], "default": "first"},
                    },
                    ["cases"],
                ),
            ),
            NodeType(
                type="flow.merge",
                category=NodeCategory.FLOW,
                title="Merge",
                parameters_schema=_object(
                    {"mode": {"type": "string", "enum": ["object", "append"], "default": "object"}},
                    [],
                ),
            ),
            NodeType(
                type="flow.output",
                category=NodeCategory.FLOW,
                title="Output",
                parameters_schema=_object({"value": {}}, ["value"]),
            ),
            NodeType(
                type="flow.subworkflow",
                category=NodeCategory.FLOW,
                title="Sub-workflow",
                parameters_schema=_object(
                    {"workflow_id": _WORKFLOW_ID, "version": _VERSION, "input": {"type": "object"}},
                    ["workflow_id"],
                ),
            ),
            NodeType(
                type="flow.for_each",
                category=NodeCategory.FLOW,
                title="For each",
                parameters_schema=_object(
                    {
                        "items": _EXPRESSION,
                        "workflow_id": _WORKFLOW_ID,
                        "version": _VERSION,
                        "concurrency": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_FOR_EACH_CONCURRENCY,
                            "default": 1,
                        },
                    },
                    ["items", "workflow_id"],
                ),
            ),
            NodeType(
                type="data.transform",
                category=NodeCategory.DATA,
                title="Transform",
                parameters_schema=_object({"expression": _EXPRESSION}, ["expression"]),
            ),
            NodeType(
                type="data.set",
                category=NodeCategory.DATA,
                title="Set data",
                parameters_schema=_object({"value": {}}, ["value"]),
            ),
            NodeType(
                type="util.delay",
                category=NodeCategory.UTILITY,
                title="Delay",
                parameters_schema=_object(
                    {"seconds": {"type": "number", "minimum": 0, "maximum": 300}}, ["seconds"]
                ),
            ),
        )
    }
)

BRANCH_OUTPUTS = ("true", "false")
"""The `source_output` values of edges leaving a `logic.if` node."""

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
from flowbuilder_core.nodes import schedule
from flowbuilder_core.nodes.schema import JsonSchema


class NodeCategory(StrEnum):
    TRIGGER = "trigger"
    ACTION = "action"
    LOGIC = "logic"
    DATA = "data"
    UTILITY = "utility"


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
                type="logic.if",
                category=NodeCategory.LOGIC,
                title="If",
                parameters_schema=_object({"condition": _EXPRESSION}, ["condition"]),
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

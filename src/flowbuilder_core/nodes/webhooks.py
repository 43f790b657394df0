"""The rules of the `trigger.webhook` and `webhook.respond` nodes, defined once.

The catalogue's parameter schemas, the webhook receiver (which reads a trigger's parameters
before any run) and the `webhook.respond` runner all read these.
"""

from __future__ import annotations

from typing import Any, Final

from flowbuilder_core.nodes.http_request import HEADER_NAME_SCHEMA, HEADER_VALUE_SCHEMA, MAX_HEADERS

TRIGGER_TYPE: Final = "trigger.webhook"
RESPOND_TYPE: Final = "webhook.respond"

METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_METHODS: Final = ("POST",)
AUTH_MODES: Final = ("signature", "token", "github", "none")
RESPOND_MODES: Final = ("immediately", "when_finished")
MAX_DEDUPE_HEADER: Final = 256

MIN_STATUS: Final = 100
MAX_STATUS: Final = 599
DEFAULT_STATUS: Final = 200
FINAL_STATUS: Final = 200
"""The schema takes 100 to 599; the node fails on a 1xx, which is not a final answer."""
MAX_RESPOND_HEADERS: Final = MAX_HEADERS

RESERVED_RESPONSE_HEADERS: Final = frozenset(
    {
        "connection",
        "content-length",
        "date",
        "keep-alive",
        "proxy-connection",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "x-request-id",
    }
)
"""Headers a `webhook.respond` node may not set: the server frames the response itself."""

_NO_TEMPLATE: Final = {"x-no-template": True}

TRIGGER_PARAMETERS: Final[dict[str, Any]] = {
    "methods": {
        "type": "array",
        "items": {"type": "string", "enum": list(METHODS)},
        "minItems": 1,
        "uniqueItems": True,
        "default": list(DEFAULT_METHODS),
        **_NO_TEMPLATE,
    },
    "auth": {"type": "string", "enum": list(AUTH_MODES), "default": "signature", **_NO_TEMPLATE},
    "respond": {
        "type": "string",
        "enum": list(RESPOND_MODES),
        "default": "immediately",
        **_NO_TEMPLATE,
    },
    "dedupe_header": {
        **HEADER_NAME_SCHEMA,
        "minLength": 1,
        "maxLength": MAX_DEDUPE_HEADER,
        **_NO_TEMPLATE,
    },
}

RESPOND_PARAMETERS: Final[dict[str, Any]] = {
    "status": {
        "type": "integer",
        "minimum": MIN_STATUS,
        "maximum": MAX_STATUS,
        "default": DEFAULT_STATUS,
    },
    "headers": {
        "type": "object",
        "propertyNames": HEADER_NAME_SCHEMA,
        "additionalProperties": HEADER_VALUE_SCHEMA,
        "maxProperties": MAX_RESPOND_HEADERS,
    },
    "body": {},
}

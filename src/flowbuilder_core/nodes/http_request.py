"""The limits and rules of the `http.request` node, defined once.

The catalogue's parameter schema, the credential types the node sends as headers and the
adapter that builds the request all read these, so that a value one of them accepts the
others accept too (a credential that saves can be sent; a parameter that validates can run).
"""

from __future__ import annotations

import re
from typing import Any, Final

METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
URL_SCHEMES: Final = ("http", "https")
MAX_URL_LENGTH: Final = 2048
MAX_HEADERS: Final = 100
MAX_QUERY_PARAMETERS: Final = 100
DEFAULT_TIMEOUT_S: Final = 10
MAX_TIMEOUT_S: Final = 30
"""Seconds; the timeout must be above 0 and at most this, for the whole call."""

HEADER_NAME_PATTERN: Final = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
"""A header name: an RFC 9110 token."""

HEADER_VALUE_PATTERN: Final = r"^[\t\x20-\x7e]*$"
"""A header value: printable ASCII and tab. No CR, LF or NUL, so no header injection; and no
other byte, because RFC 9110 leaves the meaning of bytes above 0x7e (obs-text) to each
recipient and httpx encodes header values as ASCII."""

HEADER_NAME_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "pattern": HEADER_NAME_PATTERN,
    "x-pattern-message": "must be an HTTP header name",
}
HEADER_VALUE_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "pattern": HEADER_VALUE_PATTERN,
    "x-pattern-message": "must be printable ASCII on one line",
}

_HEADER_NAME: Final = re.compile(HEADER_NAME_PATTERN)
_HEADER_VALUE: Final = re.compile(HEADER_VALUE_PATTERN)


def is_header_name(text: str) -> bool:
    return _HEADER_NAME.fullmatch(text) is not None


def is_header_value(text: str) -> bool:
    # fullmatch: with `search`, Python's `$` would also accept a value ending in a newline.
    return _HEADER_VALUE.fullmatch(text) is not None

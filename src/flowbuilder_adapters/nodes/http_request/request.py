"""Building the outbound request of an `http.request` node from its parameters.

The engine has checked the parameters against the catalogue's schema; they are checked again
here, by the same rules (`flowbuilder_core.nodes.http_request`), because a runner may be called
directly. A failure is `invalid_parameters`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx

from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import Json
from flowbuilder_core.nodes.http_request import (
    DEFAULT_TIMEOUT_S,
    MAX_HEADERS,
    MAX_QUERY_PARAMETERS,
    MAX_TIMEOUT_S,
    MAX_URL_LENGTH,
    METHODS,
    URL_SCHEMES,
    is_header_name,
    is_header_value,
)

DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(slots=True)
class OutboundRequest:
    """What to send: the URL carries the query and no user info; `headers` are final but for
    the credential's, which replace any of the same name."""

    method: str
    url: httpx.URL
    headers: dict[str, str]
    content: bytes | None
    timeout_s: float


def _invalid(message: str) -> NodeFailedError:
    return NodeFailedError("invalid_parameters", message)


def _string_map(parameters: Mapping[str, Json], name: str, most: int) -> dict[str, str]:
    value = parameters.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _invalid(f"`{name}` must be an object of strings.")
    if len(value) > most:
        raise _invalid(f"`{name}` must have at most {most} entries.")
    return dict(value)


def build_request(parameters: Mapping[str, Json]) -> OutboundRequest:
    """The request the parameters describe, or `invalid_parameters`."""
    method = parameters.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _invalid(f"`method` must be one of {', '.join(sorted(METHODS))}.")
    raw_url = parameters.get("url")
    if not isinstance(raw_url, str):
        raise _invalid("`url` must be a string.")
    if len(raw_url) > MAX_URL_LENGTH:
        raise _invalid(f"`url` must be at most {MAX_URL_LENGTH} characters.")
    try:
        url = httpx.URL(raw_url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise _invalid("`url` is not a valid URL.") from None
    if url.scheme not in URL_SCHEMES or not url.raw_host:
        raise _invalid("`url` must be an http or https URL with a host.")

    headers = _string_map(parameters, "headers", MAX_HEADERS)
    for name, value in headers.items():
        if not is_header_name(name):
            raise _invalid(f"`headers` has an invalid header name: {name!r}.")
        if not is_header_value(value):
            raise _invalid(f"`headers.{name}` must be printable ASCII on one line.")
    if url.userinfo:  # user:password@ in the URL: basic auth, below headers and credentials
        if not any(k.lower() == "authorization" for k in headers):
            user_pass = f"{url.username}:{url.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(user_pass).decode("ascii")
        url = url.copy_with(username=None, password=None)
    query = _string_map(parameters, "query", MAX_QUERY_PARAMETERS)
    if query:
        url = url.copy_merge_params(query)

    body = parameters.get("body")
    content: bytes | None = None
    has_content_type = any(k.lower() == "content-type" for k in headers)
    if isinstance(body, str):
        content = body.encode("utf-8")
        if not has_content_type:
            headers["Content-Type"] = "text/plain; charset=utf-8"
    elif body is not None:
        try:
            content = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError):
            raise _invalid("`body` must be JSON.") from None
        if not has_content_type:
            headers["Content-Type"] = "application/json"

    timeout = parameters.get("timeout_s", DEFAULT_TIMEOUT_S)
    if timeout is None:
        timeout = DEFAULT_TIMEOUT_S
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT_S
    ):
        raise _invalid(
            f"`timeout_s` must be a number of seconds above 0, at most {MAX_TIMEOUT_S:g}."
        )
    return OutboundRequest(method.upper(), url, headers, content, float(timeout))

"""Guards that run before a request body is read."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def require_json_body(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A request that carries a body must say it is JSON (`application/json` or `+json`)."""
    if connection.scope.get("method") not in _BODY_METHODS:
        return
    headers = connection.headers
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if not has_body:
        return
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(status_code=415, detail="Unsupported media type")

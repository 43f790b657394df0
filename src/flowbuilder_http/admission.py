"""What every `/api` request must show before anything else of it is read: a bearer token that
verifies, and, when it carries a body, a JSON media type.

It is router middleware rather than Litestar guards: a guard is handed a copy of the route
handler and a sync one runs in a worker thread, which together cost more than the token check.
Errors raised here still go through the application's exception handlers (problem+json).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Receive, Scope, Send

from flowbuilder_core.shared.errors import UnauthenticatedError
from flowbuilder_core.shared.identity import TokenVerifier

PRINCIPAL_STATE_KEY = "principal"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class Admission:
    """Router middleware: authenticate the request (401 first, before any body is read), then
    refuse a body that does not say it is JSON (`application/json` or `+json`) with a 415.

    Cookies are never read: no ambient authority. `verifier` gives the token verifier; it is
    asked once, on the first request (a server may take requests before its start-up hooks
    have finished).
    """

    def __init__(self, verifier: Callable[[], Awaitable[TokenVerifier]]) -> None:
        self._source = verifier
        self._verifier: TokenVerifier | None = None

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def admit(scope: Scope, receive: Receive, send: Send) -> None:
            authorization = b""
            media_type = b""
            has_body = False
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value
                elif name == b"content-type":
                    media_type = value
                elif name == b"content-length":
                    has_body = has_body or value != b"0"
                elif name == b"transfer-encoding":
                    has_body = True
            scheme, _sep, token = authorization.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise UnauthenticatedError("missing or non-bearer Authorization header")
            verifier = self._verifier
            if verifier is None:
                verifier = self._verifier = await self._source()
            scope["state"][PRINCIPAL_STATE_KEY] = await verifier.verify(token)
            if has_body and scope.get("method") in _BODY_METHODS and not _is_json(media_type):
                raise HTTPException(status_code=415, detail="Unsupported media type")
            await app(scope, receive, send)

        return admit


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")

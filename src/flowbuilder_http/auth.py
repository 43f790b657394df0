"""Authentication at the edge: a guard that verifies the bearer token before anything else of
the request is read, and the provider that hands the Principal to handlers."""

from __future__ import annotations

from typing import Any

from dishka import AsyncContainer, Provider, Scope, provide
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from flowbuilder_adapters.sql.provider import Access
from flowbuilder_core.shared.errors import UnauthenticatedError
from flowbuilder_core.shared.identity import Principal, TokenVerifier
from flowbuilder_http.observability import current_request_method

_STATE_KEY = "principal"


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for every `/api` route. Cookies are never read: no ambient authority."""
    header = connection.headers.get("authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("missing or non-bearer Authorization header")
    container: AsyncContainer = connection.state.dishka_container
    verifier = await container.get(TokenVerifier)
    connection.state[_STATE_KEY] = await verifier.verify(token.strip())


class PrincipalProvider(Provider):
    """The request's Principal, established by the `authenticate` guard, and what the request
    does with the database (GET and HEAD only read)."""

    @provide(scope=Scope.REQUEST, override=True)
    def access(self) -> Access:
        # From the request being served, not from the container: background scopes of the
        # same container (the relay, the sweep, the embedded worker) have no request.
        method = current_request_method()
        return Access.READ_ONLY if method in ("GET", "HEAD") else Access.READ_WRITE

    @provide(scope=Scope.REQUEST)
    def principal(self, request: Request) -> Principal:  # type: ignore[type-arg]
        principal = request.state.get(_STATE_KEY)
        if not isinstance(principal, Principal):
            raise UnauthenticatedError("route reached without authentication")
        return principal

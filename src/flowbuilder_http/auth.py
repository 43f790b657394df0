"""The provider that hands handlers the Principal the `Admission` middleware established."""

from __future__ import annotations

from dishka import Provider, Scope, provide
from litestar import Request

from flowbuilder_adapters.wiring import Access
from flowbuilder_core.shared.errors import UnauthenticatedError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_http.admission import PRINCIPAL_STATE_KEY
from flowbuilder_http.observability import current_request_method, current_request_path

HOOKS_PREFIX = "/hooks/"
"""Webhook requests write whatever their method: a GET to a hook starts a run."""


class PrincipalProvider(Provider):
    """The request's Principal, established by the `Admission` middleware, and what the request
    does with the database (GET and HEAD only read, but on a webhook)."""

    @provide(scope=Scope.REQUEST, override=True)
    def access(self) -> Access:
        # From the request being served, not from the container: background scopes of the
        # same container (the relay, the sweep, the embedded worker) have no request.
        method = current_request_method()
        if method in ("GET", "HEAD") and not current_request_path().startswith(HOOKS_PREFIX):
            return Access.READ_ONLY
        return Access.READ_WRITE

    @provide(scope=Scope.REQUEST)
    def principal(self, request: Request) -> Principal:  # type: ignore[type-arg]
        principal = request.state.get(PRINCIPAL_STATE_KEY)
        if not isinstance(principal, Principal):
            raise UnauthenticatedError("route reached without authentication")
        return principal

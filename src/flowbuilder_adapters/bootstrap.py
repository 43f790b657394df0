"""The composition root: dishka providers, chosen from Settings."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dishka import Provider, Scope, provide, provide_all
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbuilder_adapters.clerk import ClerkTokenVerifier
from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.settings import Settings
from flowbuilder_adapters.sql.health import SqlHealthProbe
from flowbuilder_adapters.sql.provider import SqlProvider
from flowbuilder_core.shared.clock import Clock, SystemClock
from flowbuilder_core.shared.health import HealthProbe
from flowbuilder_core.shared.identity import TokenVerifier
from flowbuilder_core.workflows.use_cases import (
    CreateWorkflow,
    DeleteWorkflow,
    GetWorkflow,
    GetWorkflowVersion,
    ListWorkflows,
    ListWorkflowVersions,
    ReplaceWorkflow,
    ValidateDefinition,
)


class CoreProvider(Provider):
    """The clock (APP) and every use case (REQUEST), whatever adapters stand behind them."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__()
        self._clock = clock if clock is not None else SystemClock()

    @provide(scope=Scope.APP)
    def clock(self) -> Clock:
        return self._clock

    use_cases = provide_all(
        CreateWorkflow,
        GetWorkflow,
        ListWorkflows,
        ReplaceWorkflow,
        DeleteWorkflow,
        ValidateDefinition,
        ListWorkflowVersions,
        GetWorkflowVersion,
        scope=Scope.REQUEST,
    )


class AuthProvider(Provider):
    """The TokenVerifier the settings call for: Clerk's JWKS, or the embedded dev issuer."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings

    @provide(scope=Scope.APP)
    async def verifier(self) -> AsyncIterator[TokenVerifier]:
        settings = self._settings
        if settings.embedded:
            yield DevTokenIssuer.load_or_create(settings.data_dir).verifier()
            return
        headers = (
            {"Authorization": f"Bearer {settings.clerk_secret_key}"}
            if settings.jwks_uses_backend_api and settings.clerk_secret_key
            else None
        )
        verifier = ClerkTokenVerifier(
            settings.jwks_url,
            issuer=settings.clerk_frontend_url,
            authorized_parties=settings.clerk_authorized_parties,
            headers=headers,
        )
        try:
            yield verifier
        finally:
            await verifier.aclose()


class SqlHealthProvider(Provider):
    @provide(scope=Scope.APP)
    def health(self, engine: AsyncEngine) -> HealthProbe:
        return SqlHealthProbe(engine)


def providers_for(settings: Settings) -> list[Provider]:
    """Every provider a server process needs, chosen from `settings`."""
    return [
        CoreProvider(),
        SqlProvider(settings.database_url),
        SqlHealthProvider(),
        AuthProvider(settings),
    ]

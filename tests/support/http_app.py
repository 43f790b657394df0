"""An API app over the adapters a test chooses, with tokens from a real RS256 dev issuer."""

from __future__ import annotations

import os

from dishka import Provider, Scope, provide
from litestar import Litestar

from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.settings import Mode, Settings
from flowbuilder_adapters.wiring import CoreProvider, WebhooksProvider
from flowbuilder_core.shared.identity import TokenVerifier
from flowbuilder_core.shared.quotas import Quotas
from flowbuilder_core.webhooks.model import WebhookLimits
from flowbuilder_http.app import create_app


class VerifierProvider(Provider):
    def __init__(self, verifier: TokenVerifier) -> None:
        super().__init__()
        self._verifier = verifier

    @provide(scope=Scope.APP)
    def verifier(self) -> TokenVerifier:
        return self._verifier


def make_test_app(
    issuer: DevTokenIssuer,
    *providers: Provider,
    quotas: Quotas | None = None,
    metrics: bool = True,
    webhooks: WebhookLimits | None = None,
) -> Litestar:
    settings = Settings(
        mode=Mode.EMBEDDED,
        database_url="sqlite+aiosqlite:///:memory:",
        idempotency_hmac_key=os.urandom(32),
        metrics_enabled=metrics,
    )
    core = CoreProvider(quotas=quotas)
    hooks = WebhooksProvider(webhooks)
    return create_app(settings, core, hooks, *providers, VerifierProvider(issuer.verifier()))

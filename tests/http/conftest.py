"""An API over the in-memory adapters, with tokens from a real RS256 dev issuer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from dishka import Provider, Scope, provide
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_adapters.bootstrap import CoreProvider
from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.memory import MemoryProvider, MemoryStore
from flowbuilder_adapters.settings import Mode, Settings
from flowbuilder_core.shared.identity import TokenVerifier
from flowbuilder_http.app import create_app

Headers = dict[str, str]


class VerifierProvider(Provider):
    def __init__(self, verifier: TokenVerifier) -> None:
        super().__init__()
        self._verifier = verifier

    @provide(scope=Scope.APP)
    def verifier(self) -> TokenVerifier:
        return self._verifier


@pytest.fixture
def issuer(tmp_path: Path) -> DevTokenIssuer:
    return DevTokenIssuer.load_or_create(tmp_path)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def make_test_app(issuer: DevTokenIssuer, *providers: Provider) -> Litestar:
    settings = Settings(mode=Mode.EMBEDDED, database_url="sqlite+aiosqlite:///:memory:")
    return create_app(settings, CoreProvider(), *providers, VerifierProvider(issuer.verifier()))


@pytest.fixture
async def client(
    issuer: DevTokenIssuer, store: MemoryStore
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = make_test_app(issuer, MemoryProvider(store))
    async with AsyncTestClient(app) as client:
        yield client


@pytest.fixture
def auth(issuer: DevTokenIssuer) -> Callable[[str], Headers]:
    """Headers of a signed-in user."""

    def headers(user: str = "user_alice") -> Headers:
        return {"Authorization": f"Bearer {issuer.issue(user)}"}

    return headers

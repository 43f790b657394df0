"""An API over the in-memory adapters, with tokens from a real RS256 dev issuer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.memory import MemoryStore
from flowbuilder_adapters.wiring import MemoryProvider

from support.http_app import make_test_app

Headers = dict[str, str]


@pytest.fixture
def issuer(tmp_path: Path) -> DevTokenIssuer:
    return DevTokenIssuer.load_or_create(tmp_path)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


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

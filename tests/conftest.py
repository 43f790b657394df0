"""Shared fixtures. Keep this file small: add fixtures for one area in their own module under
`tests/support/` (or a conftest.py in the sub-folder that needs them) and only wire them here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from support.aws_fixtures import moto_endpoint  # noqa: F401 - a fixture, wired for every test
from support.postgres import create_database, drop_database, postgres_server

# ---------------------------------------------------------------------------------------------
# PostgreSQL
#
# One server per test session, started on first use only (TEST_DATABASE_URL, else a Docker
# container, else a throwaway local cluster), and one fresh empty database per test.
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """SQLAlchemy URL (postgresql+asyncpg://...) of the session's PostgreSQL server."""
    with postgres_server() as url:
        yield url


@pytest.fixture
async def postgres_url(postgres_server_url: str) -> AsyncIterator[str]:
    """SQLAlchemy URL of a fresh, empty database for this test; dropped afterwards."""
    url = await create_database(postgres_server_url)
    try:
        yield url
    finally:
        await drop_database(postgres_server_url, url)

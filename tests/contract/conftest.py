"""Every contract suite runs against every adapter of its port, each through a real dishka
container: memory, SQLite and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dishka import AsyncContainer, make_async_container

from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.wiring import CoreProvider, MemoryProvider, SqlProvider

from support.contract import T0, SteppingClock, sql_extras


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """The adapter's name and database URL (None for memory)."""
    name: str = request.param
    if name == "memory":
        return name, None
    if name == "sqlite":
        return name, f"sqlite+aiosqlite:///{tmp_path / 'data' / 'flowbuilder.db'}"
    return name, request.getfixturevalue("postgres_url")


@pytest.fixture
def adapter_name(adapter: tuple[str, str | None]) -> str:
    return adapter[0]


@pytest.fixture
async def container(adapter: tuple[str, str | None]) -> AsyncIterator[AsyncContainer]:
    _, url = adapter
    if url is None:
        providers: list[Any] = [MemoryProvider()]
    else:
        await upgrade(url)
        providers = [SqlProvider(url), *sql_extras()]
    container = make_async_container(CoreProvider(clock=SteppingClock(T0)), *providers)
    yield container
    await container.close()

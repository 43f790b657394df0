"""Every contract suite runs against every adapter of its port, each through a real dishka
container: memory, SQLite and Postgres; and, when FLOWBUILDER_CONTRACT_STORAGE names one, a
third party's `Storage` as adapter `custom` (support/storage_hook.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dishka import AsyncContainer, make_async_container

from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.wiring import CoreProvider, MemoryProvider, SqlProvider

from support.contract import T0, SteppingClock, sql_extras
from support.storage_hook import CUSTOM, STORAGE_SUITES, StorageProvider, custom_storage_factory

BUILT_IN: list[Any] = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The built-in adapters for every suite; a third party's Storage too for the suites over
    its ports, when one is named."""
    if "adapter" not in metafunc.fixturenames:
        return
    names = list(BUILT_IN)
    suite = metafunc.module.__name__.rpartition(".")[2]
    if suite in STORAGE_SUITES and custom_storage_factory() is not None:
        names.append(CUSTOM)
    metafunc.parametrize("adapter", names, indirect=True)


@pytest.fixture
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """The adapter's name and database URL (None for memory and a third party's)."""
    name: str = request.param
    if name in ("memory", CUSTOM):
        return name, None
    if name == "sqlite":
        return name, f"sqlite+aiosqlite:///{tmp_path / 'data' / 'flowbuilder.db'}"
    return name, request.getfixturevalue("postgres_url")


@pytest.fixture
def adapter_name(adapter: tuple[str, str | None]) -> str:
    return adapter[0]


@pytest.fixture
async def container(adapter: tuple[str, str | None]) -> AsyncIterator[AsyncContainer]:
    name, url = adapter
    storage: Any = None
    if name == CUSTOM:
        factory = custom_storage_factory()
        assert factory is not None
        storage = factory()
        providers: list[Any] = [StorageProvider(storage)]
    elif url is None:
        providers = [MemoryProvider()]
    else:
        await upgrade(url)
        providers = [SqlProvider(url), *sql_extras()]
    container = make_async_container(CoreProvider(clock=SteppingClock(T0)), *providers)
    yield container
    await container.close()
    if hasattr(storage, "aclose"):
        await storage.aclose()

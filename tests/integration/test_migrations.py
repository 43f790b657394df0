"""The Alembic migrations build exactly the schema of `tables.py`, and take it down again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from flowbuilder_adapters.sql.engine import create_engine
from flowbuilder_adapters.sql.migrate import current_revision, downgrade, upgrade
from flowbuilder_adapters.sql.tables import metadata

TABLES = {"workflows", "workflow_versions", "workflow_tags"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'flowbuilder.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def inspect_with(url: str, look: Any) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(look)
    finally:
        await engine.dispose()


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def index_names(connection: Connection) -> set[str]:
    inspector = inspect(connection)
    return {
        index["name"]
        for table in inspector.get_table_names()
        for index in inspector.get_indexes(table)
        if index["name"] is not None
    }


def differences(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_upgrade_to_head_creates_the_tables_and_their_indexes(database_url: str) -> None:
    await upgrade(database_url)

    assert await inspect_with(database_url, table_names) == TABLES | {"alembic_version"}
    assert await inspect_with(database_url, index_names) >= {
        "ix_workflows_owner_live",
        "ix_workflow_tags_owner_tag",
    }
    assert await current_revision(database_url) == "0001"


async def test_downgrade_to_base_removes_the_tables_and_upgrade_works_again(
    database_url: str,
) -> None:
    await upgrade(database_url)

    await downgrade(database_url, "base")

    assert await inspect_with(database_url, table_names) == {"alembic_version"}
    assert await current_revision(database_url) is None
    await upgrade(database_url)
    assert await inspect_with(database_url, table_names) == TABLES | {"alembic_version"}


async def test_a_database_never_migrated_has_no_revision(database_url: str) -> None:
    assert await current_revision(database_url) is None


async def test_the_migrated_schema_matches_the_tables_module(database_url: str) -> None:
    await upgrade(database_url)

    assert await inspect_with(database_url, differences) == []


async def test_upgrade_twice_is_harmless(database_url: str) -> None:
    await upgrade(database_url)

    await upgrade(database_url)

    assert await current_revision(database_url) == "0001"

"""The PostgreSQL test support gives each test a real server and a database of its own."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import NullPool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from support.postgres import create_database, drop_database

pytestmark = pytest.mark.postgres


def engine_for(url: str) -> AsyncEngine:
    return create_async_engine(url, poolclass=NullPool)


async def table_names(url: str) -> set[str]:
    engine = engine_for(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("select tablename from pg_tables where schemaname = 'public'")
            )
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


async def test_the_server_is_a_real_postgresql_reached_through_sqlalchemy_and_asyncpg(
    postgres_url: str,
) -> None:
    engine = engine_for(postgres_url)
    try:
        async with engine.connect() as connection:
            version = (await connection.execute(text("select version()"))).scalar_one()
            database = (await connection.execute(text("select current_database()"))).scalar_one()
    finally:
        await engine.dispose()

    assert engine.dialect.driver == "asyncpg"
    assert version.startswith("PostgreSQL ")
    assert database == make_url(postgres_url).database


async def test_each_test_starts_with_an_empty_database(postgres_url: str) -> None:
    assert await table_names(postgres_url) == set()


async def test_two_databases_do_not_see_each_others_tables(
    postgres_server_url: str, postgres_url: str
) -> None:
    other_url = await create_database(postgres_server_url)
    try:
        engine = engine_for(postgres_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("create table only_here (id int primary key)"))
                await connection.execute(text("insert into only_here values (1)"))
        finally:
            await engine.dispose()

        assert other_url != postgres_url
        assert await table_names(postgres_url) == {"only_here"}
        assert await table_names(other_url) == set()
    finally:
        await drop_database(postgres_server_url, other_url)


async def test_a_dropped_database_is_gone_even_with_a_connection_still_open(
    postgres_server_url: str,
) -> None:
    url = await create_database(postgres_server_url, name="test_dropped_while_in_use")
    assert make_url(url).database == "test_dropped_while_in_use"
    lingering = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        await drop_database(postgres_server_url, url)
    finally:
        await lingering.close()

    admin = await asyncpg.connect(
        make_url(postgres_server_url)
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )
    try:
        exists = await admin.fetchval(
            "select exists (select 1 from pg_database where datname = $1)",
            "test_dropped_while_in_use",
        )
    finally:
        await admin.close()
    assert exists is False

"""Alembic environment. `flowbuilder_adapters.sql.migrate` passes an open connection through
`config.attributes["connection"]`; the `alembic` command line (with `sqlalchemy.url` set) gets an
async engine of its own."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite alters tables by copying them; batch mode does that for later migrations.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError(
            "set sqlalchemy.url, or run migrations with flowbuilder_adapters.sql.migrate"
        )
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_with_own_engine(url))


_main()

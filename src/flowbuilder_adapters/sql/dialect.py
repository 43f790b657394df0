"""The few statements whose SQL differs between Postgres and SQLite, decided in one place."""

from __future__ import annotations

import functools

from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def upsert(connection: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, for `.on_conflict_do_update(...)`."""
    return dialect_insert(connection.dialect.name, table)


def insert_unless_exists(connection: AsyncConnection, table: Table) -> Insert:
    """INSERT that skips a row whose key exists (rowcount 0), rather than raising: on Postgres a
    failed statement would abort the whole transaction, not just this one. Built once per
    dialect and table; give it the row as execution parameters."""
    return _insert_unless_exists(connection.dialect.name, table)


@functools.cache
def _insert_unless_exists(dialect: str, table: Table) -> Insert:
    return dialect_insert(dialect, table).on_conflict_do_nothing()


def dialect_insert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The INSERT of the dialect named `dialect` (a connection's `dialect.name`)."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)

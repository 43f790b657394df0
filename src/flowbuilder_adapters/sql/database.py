"""The async engine, for Postgres (asyncpg) and SQLite (aiosqlite): the dialect differences of
connection set-up live here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

POSTGRES_POOL_SIZE = 10
POSTGRES_MAX_OVERFLOW = 5
CONNECT_TIMEOUT_S = 5
# A request that waits this long for a pooled connection gets a 503 instead of hanging.
POOL_TIMEOUT_S = 10
# Recycle connections before a proxy or firewall silently drops them (many idle out at 1 h).
POOL_RECYCLE_S = 1800
SQLITE_BUSY_TIMEOUT_MS = 5000


def _json_dumps(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _json_loads(text: str | bytes) -> Any:
    return msgspec.json.decode(text)


def create_engine(url: str) -> AsyncEngine:
    """An engine for `postgresql+asyncpg://...` or `sqlite+aiosqlite:///...` URLs."""
    parsed = make_url(url)
    common: dict[str, Any] = {
        "json_serializer": _json_dumps,
        "json_deserializer": _json_loads,
        # Errors and logs never carry statement parameters (names, definitions, ids).
        "hide_parameters": True,
    }
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, common)
    return create_async_engine(
        parsed,
        pool_size=POSTGRES_POOL_SIZE,
        max_overflow=POSTGRES_MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
        pool_recycle=POOL_RECYCLE_S,
        # No pre-ping: it costs a round trip on every checkout. A connection the server dropped
        # fails its request with a 503 once and is invalidated; the pool then opens a new one.
        connect_args={"timeout": CONNECT_TIMEOUT_S},
        **common,
    )


def _sqlite_engine(url: URL, common: dict[str, Any]) -> AsyncEngine:
    in_memory = url.database in (None, "", ":memory:")
    if in_memory:
        # One shared connection (SQLAlchemy's StaticPool default): each would be its own database.
        engine = create_async_engine(url, **common)
    else:
        Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        # SQLite allows one writer at a time. Embedded mode is a single process, so one pooled
        # connection serialises every unit of work in the process: a second request waits for
        # the connection (up to POOL_TIMEOUT_S) instead of failing with "database is locked"
        # halfway through a transaction. The cost: a scope must not open a second scope while it
        # holds the connection, or it waits on itself.
        engine = create_async_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=POOL_TIMEOUT_S, **common
        )
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (`_on_sqlite_begin`):
    # the module would only begin before writes, leaving reads outside the transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # other processes (CLI)
    finally:
        cursor.close()
    # SQLite's own lower() folds ASCII only; Python's folds every script, as Postgres does with
    # a UTF-8 locale, so the case-insensitive `q` filter agrees across engines.
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _on_sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: a deferred transaction that read first and then
    # writes after another process (a CLI command) committed fails at once with "database is
    # locked", whatever the busy timeout. In-process every scope is serialised anyway.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value

"""Statements compiled once and run on the asyncpg driver itself (Postgres).

SQLAlchemy Core still writes the statement and processes its parameters: the SQL, the order
of its `$n` parameters and each parameter's bind processing (UTC times, JSON documents) are
the compiled statement's own. What this skips is SQLAlchemy's work at every execution (the
cache key, the execution context, the result wrapping and the greenlet hop), which costs
about four times what asyncpg itself does for a short statement on this code's hot paths.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.errors import translate_errors


class DriverStatement:
    """A Core statement compiled for the Postgres dialect once, run with `fetchrow`.

    Fit for statements without expanding parameters (no `IN` over a list), whose result, if
    any, needs no result processing (text, numbers, booleans)."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError("a driver statement needs a positional parameter style")
        self._compiled = compiled
        self.sql: str = compiled.string
        self._names: list[str] = list(compiled.positiontup)
        self._processors: list[Callable[[Any], Any] | None] = [
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self._names
        ]

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        """The statement's `$1, $2, ...` values for `parameters` (its literals included)."""
        values = self._compiled.construct_params(dict(parameters))
        return [
            values[name] if process is None else process(values[name])
            for name, process in zip(self._names, self._processors, strict=True)
        ]

    async def fetchrow(
        self, connection: AsyncConnection, parameters: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """Run it on `connection`'s asyncpg connection, outside any transaction SQLAlchemy
        would begin (so on an autocommit connection: atomic on its own); its first row."""
        arguments = self.arguments(parameters)
        async with translate_errors():
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            row: Mapping[str, Any] | None = await raw.fetchrow(self.sql, *arguments)
        return row

"""SQL adapters (SQLAlchemy Core): Postgres through asyncpg, SQLite through aiosqlite.

Alembic owns the schema (`migrate.upgrade`); `SqlProvider` wires the engine, the per-scope
connection, the unit of work and the repositories into dishka.
"""

from flowbuilder_adapters.sql.credentials import SqlCredentialDirectory, SqlCredentialRepository
from flowbuilder_adapters.sql.engine import create_engine
from flowbuilder_adapters.sql.provider import SqlProvider
from flowbuilder_adapters.sql.uow import SqlUnitOfWork
from flowbuilder_adapters.sql.workflows import SqlWorkflowRepository

__all__ = [
    "SqlCredentialDirectory",
    "SqlCredentialRepository",
    "SqlProvider",
    "SqlUnitOfWork",
    "SqlWorkflowRepository",
    "create_engine",
]

"""SQL adapters (SQLAlchemy Core): Postgres through asyncpg, SQLite through aiosqlite.

Alembic owns the schema (`migrate.upgrade`); `connections.scope_connection` gives each scope its
connection (the wiring's SqlProvider puts it, the unit of work and the repositories in dishka).
"""

from flowbuilder_adapters.sql.credentials import SqlCredentialDirectory, SqlCredentialRepository
from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.uow import SqlUnitOfWork
from flowbuilder_adapters.sql.workflows import SqlWorkflowRepository

__all__ = [
    "SqlCredentialDirectory",
    "SqlCredentialRepository",
    "SqlUnitOfWork",
    "SqlWorkflowRepository",
    "create_engine",
]

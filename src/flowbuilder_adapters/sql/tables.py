"""The SQL schema, as SQLAlchemy Core tables. Alembic owns the database: every change here needs
a migration in `migrations/versions/` (the migration tests compare the two)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in, an aware UTC datetime out, on every dialect.

    Postgres stores `timestamptz`. SQLite has no time type: SQLAlchemy stores text with a fixed
    width (`YYYY-MM-DD HH:MM:SS.ffffff`), which sorts and compares correctly only if every value
    is in the same zone, so values are converted to UTC and stored without an offset.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on Postgres (binary, indexable); JSON text elsewhere. Encoded with msgspec (engine.py).
JsonDocument: Any = JSON().with_variant(JSONB(), "postgresql")

LIVE = text("deleted_at IS NULL")

workflows = Table(
    "workflows",
    metadata,
    Column("id", Uuid(), nullable=False),
    Column("owner_id", Text(), nullable=False),
    Column("name", Text(), nullable=False),
    Column("description", Text(), nullable=False),
    Column("tags", JsonDocument, nullable=False),
    Column("definition", JsonDocument, nullable=False),
    Column("version", Integer(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime(), nullable=True),
    # Started by webhooks and schedules only while active (not versioned: a switch, not a save).
    Column("active", Boolean(), nullable=False, server_default=false()),
    PrimaryKeyConstraint("id"),
    CheckConstraint("version >= 1", name="version_positive"),
    # Keyset pagination of an owner's live workflows, newest first on (created_at, id): both
    # engines scan the index backwards for the DESC order. The `q` filter (name contains,
    # case-insensitive) reads the owner's rows through this index, filters the names and sorts
    # (bounded by one owner's list); a trigram index would need the pg_trgm extension.
    Index(
        "ix_workflows_owner_live",
        "owner_id",
        "created_at",
        "id",
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    ),
)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column("workflow_id", Uuid(), ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("name", Text(), nullable=False),
    Column("definition", JsonDocument, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # The primary key serves the version history's keyset (version DESC) too.
    PrimaryKeyConstraint("workflow_id", "version"),
    CheckConstraint("version >= 1", name="version_positive"),
)

# One row per tag of a live workflow, for the `?tag=` filter. `owner_id` and `created_at` are
# copies of the workflow's (both never change), so that the index alone orders a tag's page.
workflow_tags = Table(
    "workflow_tags",
    metadata,
    Column("workflow_id", Uuid(), ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
    Column("owner_id", Text(), nullable=False),
    Column("tag", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("workflow_id", "tag"),
    Index("ix_workflow_tags_owner_tag", "owner_id", "tag", "created_at", "workflow_id"),
)

# The credentials whose ids a live workflow's current version references, for "which workflows
# use this credential?" (a credential in use cannot be deleted). Rewritten on every save.
workflow_credentials = Table(
    "workflow_credentials",
    metadata,
    Column("workflow_id", Uuid(), ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
    Column("credential_id", Uuid(), nullable=False),
    Column("owner_id", Text(), nullable=False),
    PrimaryKeyConstraint("workflow_id", "credential_id"),
    Index("ix_workflow_credentials_credential", "credential_id", "owner_id"),
)

# Credential metadata. The values live in a SecretStore; `secret_ref` says where.
credentials = Table(
    "credentials",
    metadata,
    Column("id", Uuid(), nullable=False),
    Column("owner_id", Text(), nullable=False),
    Column("name", Text(), nullable=False),
    Column("type", Text(), nullable=False),
    Column("fields", JsonDocument, nullable=False),
    Column("secret_ref", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("id"),
    Index("ix_credentials_owner", "owner_id", "created_at", "id"),
    Index("ix_credentials_owner_type", "owner_id", "type", "created_at", "id"),
    Index("ix_credentials_secret_ref", "secret_ref", unique=True),
)

# Secret values encrypted with AES-256-GCM (USE_DB_SECRETS=true). No foreign key to
# `credentials`: the secret is written before the row that points at it, and deleted after.
credential_secrets = Table(
    "credential_secrets",
    metadata,
    Column("id", Uuid(), nullable=False),
    Column("owner_id", Text(), nullable=False),
    Column("credential_id", Uuid(), nullable=False),
    Column("key_id", Text(), nullable=False),
    Column("nonce", LargeBinary(), nullable=False),
    Column("ciphertext", LargeBinary(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("id"),
    Index("ix_credential_secrets_key", "key_id"),
)

# Idempotency keys of the last RETENTION (24 h): a claim while the first request runs, then its
# recorded result. Keyed per user; the fingerprint covers the operation and its input.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("owner_id", Text(), nullable=False),
    Column("key", Text(), nullable=False),
    Column("fingerprint", Text(), nullable=False),
    Column("claimed_at", UtcDateTime(), nullable=False),
    Column("completed_at", UtcDateTime(), nullable=True),
    Column("result", LargeBinary(), nullable=True),  # the caller's bytes, kept as they are
    PrimaryKeyConstraint("owner_id", "key"),
    Index("ix_idempotency_keys_claimed_at", "claimed_at"),
)

RUNNING = text("status = 'running'")
PARKED = text("parked_at IS NOT NULL")
SCHEDULED = text("scheduled_for IS NOT NULL")

# Executions: one pinned workflow version each. Keyset pagination on (created_at, id) with an
# index per list filter (owner; owner + workflow; owner + status).
executions = Table(
    "executions",
    metadata,
    Column("id", Uuid(), nullable=False),
    Column("owner_id", Text(), nullable=False),
    Column("workflow_id", Uuid(), ForeignKey("workflows.id"), nullable=False),
    Column("workflow_version", Integer(), nullable=False),
    Column("status", Text(), nullable=False),
    Column("trigger", Text(), nullable=False),
    Column("input", JsonDocument, nullable=False),
    Column("error", JsonDocument, nullable=True),
    Column("attempt", Integer(), nullable=False),
    Column("retry_of", Uuid(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("heartbeat_at", UtcDateTime(), nullable=True),
    # The worker that claimed it; its writes are conditional on this (fencing).
    Column("lease", Uuid(), nullable=True),
    # Queued but waiting for a free slot of its owner (MAX_RUNNING_PER_USER), since when.
    Column("parked_at", UtcDateTime(), nullable=True),
    # The execution whose flow.subworkflow or flow.for_each node ran this one (0012).
    Column("parent_execution_id", Uuid(), nullable=True),
    # A retry's trigger is "retry"; this keeps the trigger of the first execution of its chain.
    Column("retried_trigger", Text(), nullable=True),
    # The schedule's time a run started by a schedule is for (trigger 'schedule').
    Column("scheduled_for", UtcDateTime(), nullable=True),
    PrimaryKeyConstraint("id"),
    Index("ix_executions_owner", "owner_id", "created_at", "id"),
    # The children of one execution (`?parent_id=`), newest first.
    Index(
        "ix_executions_owner_parent",
        "owner_id",
        "parent_execution_id",
        "created_at",
        "id",
        postgresql_where=text("parent_execution_id IS NOT NULL"),
        sqlite_where=text("parent_execution_id IS NOT NULL"),
    ),
    Index("ix_executions_owner_workflow", "owner_id", "workflow_id", "created_at", "id"),
    Index("ix_executions_owner_status", "owner_id", "status", "created_at", "id"),
    Index(
        "ix_executions_owner_workflow_status",
        "owner_id",
        "workflow_id",
        "status",
        "created_at",
        "id",
    ),
    # The lost-worker sweep reads running executions by heartbeat age.
    Index(
        "ix_executions_running_heartbeat",
        "heartbeat_at",
        postgresql_where=RUNNING,
        sqlite_where=RUNNING,
    ),
    # Version pruning asks whether any execution ran a version.
    Index("ix_executions_workflow_version", "workflow_id", "workflow_version"),
    Index(
        "ix_executions_parked",
        "owner_id",
        "created_at",
        "id",
        postgresql_where=PARKED,
        sqlite_where=PARKED,
    ),
    # The `?trigger=` filter: an owner's webhook runs, say, among many more manual ones.
    Index("ix_executions_owner_trigger", "owner_id", "trigger", "created_at", "id"),
    # One run per workflow and scheduled time, however many schedulers try (the key, not the
    # timing, is the guarantee).
    Index(
        "uq_executions_workflow_scheduled_for",
        "workflow_id",
        "scheduled_for",
        unique=True,
        postgresql_where=SCHEDULED,
        sqlite_where=SCHEDULED,
    ),
)

execution_steps = Table(
    "execution_steps",
    metadata,
    Column("execution_id", Uuid(), ForeignKey("executions.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer(), nullable=False),
    Column("node_id", Text(), nullable=False),
    Column("status", Text(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("output", JsonDocument, nullable=True),
    Column("error", JsonDocument, nullable=True),
    Column("truncated", Boolean(), nullable=False),
    # How often the node was tried (its retry policy); 1 for every step before 0012.
    Column("attempts", Integer(), nullable=False, server_default=text("1")),
    PrimaryKeyConstraint("execution_id", "node_id"),
)

# Messages written with the execution they announce and deleted once the queue has them.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Uuid(), nullable=False),
    Column("message", JsonDocument, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("available_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer(), nullable=False),
    PrimaryKeyConstraint("id"),
    Index("ix_outbox_available_at", "available_at"),
)

owner_holdings = Table(
    "owner_holdings",
    metadata,
    Column("owner_id", Text(), nullable=False),
    Column("kind", Text(), nullable=False),
    Column("held", Integer(), nullable=False),
    PrimaryKeyConstraint("owner_id", "kind"),
)
"""How many live workflows and credentials each owner holds (sql/holdings.py): a quota check
reads this row instead of counting the owner's rows."""

# One token bucket per user for execute and retry, shared by every API replica.
rate_limit_buckets = Table(
    "rate_limit_buckets",
    metadata,
    Column("owner_id", Text(), nullable=False),
    Column("tokens", Float(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("owner_id"),
)

# One webhook per workflow with a `trigger.webhook` node, made when it is first asked for:
# `hook_id` is the unguessable last segment of its URL, stable across versions. Its signing
# secret lives in the SecretStore, like a credential's values; `secret_ref` says where.
webhooks = Table(
    "webhooks",
    metadata,
    Column("workflow_id", Uuid(), ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
    Column("hook_id", Text(), nullable=False),
    Column("owner_id", Text(), nullable=False),
    Column("secret_ref", Text(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("secret_set_at", UtcDateTime(), nullable=True),
    PrimaryKeyConstraint("workflow_id"),
    Index("ix_webhooks_hook_id", "hook_id", unique=True),
    Index("ix_webhooks_secret_ref", "secret_ref", unique=True),
)

# The schedule book: one entry per active workflow with a schedule trigger, and when it is due
# next. A scheduler's tick reads the due entries through the index, however many workflows
# there are. The schedule is a copy of the trigger's parameters, to notice a changed one.
schedules = Table(
    "schedules",
    metadata,
    Column("workflow_id", Uuid(), ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
    Column("owner_id", Text(), nullable=False),
    Column("cron", Text(), nullable=True),
    Column("every_s", Integer(), nullable=True),
    Column("timezone", Text(), nullable=False),
    Column("next_due_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("workflow_id"),
    Index("ix_schedules_next_due_at", "next_due_at"),
)

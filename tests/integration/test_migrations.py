"""The Alembic migrations build exactly the schema of `tables.py`, and take it down again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, select

from flowbuilder_adapters.sql.credentials import credential_to_row
from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.idempotency import SqlIdempotencyStore
from flowbuilder_adapters.sql.migrate import current_revision, downgrade, upgrade
from flowbuilder_adapters.sql.tables import (
    JsonDocument,
    UtcDateTime,
    credentials,
    metadata,
    owner_holdings,
    workflow_credentials,
    workflows,
)
from flowbuilder_adapters.sql.workflow_rows import workflow_to_row
from flowbuilder_core.credentials.model import Credential, CredentialId, SecretRef
from flowbuilder_core.shared.idempotency import IdempotentRequest, RecordedResult
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import (
    Definition,
    Node,
    Workflow,
    WorkflowFields,
    WorkflowId,
)
from flowbuilder_http.idempotency import replay

TABLES = {
    "workflows",
    "workflow_versions",
    "workflow_tags",
    "workflow_credentials",
    "credentials",
    "credential_secrets",
    "idempotency_keys",
    "executions",
    "execution_steps",
    "outbox",
    "rate_limit_buckets",
    "owner_holdings",
    "webhooks",
    "schedules",
}
HEAD = "0013"
BEFORE_HOLDINGS = "0012"
"""The revision 0013 (owner_holdings) follows."""


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
        "ix_workflow_credentials_credential",
        "ix_credentials_owner",
        "ix_credentials_owner_type",
        "ix_schedules_next_due_at",
        "uq_executions_workflow_scheduled_for",
    }
    assert await current_revision(database_url) == HEAD


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

    assert await current_revision(database_url) == HEAD


async def test_credential_references_of_existing_workflows_are_indexed_on_upgrade(
    database_url: str,
) -> None:
    await upgrade(database_url, "0001")
    credential_id, workflow_id = uuid.uuid4(), uuid.uuid4()
    workflow = Workflow.create(
        id=WorkflowId(workflow_id),
        owner_id=UserId("user_alice"),
        fields=WorkflowFields(
            name="old",
            definition=Definition(
                nodes=(
                    Node("start", "trigger.manual"),
                    Node("fetch", "http.request", credential_id=credential_id),
                )
            ),
        ),
        at=datetime.now(UTC),
    )
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        row = workflow_to_row(workflow)
        del row["active"]  # a column of 0009: this is the 0001 schema
        await connection.execute(workflows.insert().values(row))
    await engine.dispose()

    await upgrade(database_url)

    engine = create_engine(database_url)
    async with engine.connect() as connection:
        rows = (await connection.execute(select(workflow_credentials))).all()
    await engine.dispose()
    assert [(r.workflow_id, r.credential_id, r.owner_id) for r in rows] == [
        (workflow_id, credential_id, "user_alice")
    ]


OLD_IDEMPOTENCY_KEYS = sa.table(  # as revisions 0003 to 0005 have it
    "idempotency_keys",
    *(sa.column(name, sa.Text()) for name in ("owner_id", "key", "fingerprint")),
    *(sa.column(name, UtcDateTime()) for name in ("claimed_at", "completed_at")),
    sa.column("status", sa.Integer()),
    sa.column("headers", JsonDocument),
    sa.column("body", sa.LargeBinary()),
)


async def test_a_response_recorded_before_0007_replays_the_same_after_it_and_after_a_downgrade(
    database_url: str,
) -> None:
    await upgrade(database_url, "0006")
    now = datetime.now(UTC)
    old_row = {
        "owner_id": "user_alice",
        "key": "retry-1",
        "fingerprint": "f",
        "claimed_at": now,
        "completed_at": now,
        "status": 201,
        "headers": [["Location", "/api/workflows/1"], ["ETag", '"1"']],
        "body": b'{"id":"1","name":"caf\xc3\xa9"}',
    }
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(OLD_IDEMPOTENCY_KEYS.insert().values(old_row))
    await engine.dispose()

    await upgrade(database_url)
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        request = IdempotentRequest(UserId("user_alice"), "retry-1", "f")
        result = await SqlIdempotencyStore(connection).claim(request, now)
    await engine.dispose()
    await downgrade(database_url, "0006")
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        restored = (await connection.execute(sa.select(OLD_IDEMPOTENCY_KEYS))).one()
    await engine.dispose()

    assert isinstance(result, RecordedResult)
    answer = replay(result)
    assert (answer.status_code, answer.content) == (201, old_row["body"])
    assert answer.headers["Location"] == "/api/workflows/1"
    assert answer.headers["ETag"] == '"1"'
    assert (restored.status, restored.headers, bytes(restored.body)) == (
        201,
        old_row["headers"],
        old_row["body"],
    )


async def test_upgrade_counts_what_each_owner_already_holds_so_quotas_go_on_from_there(
    database_url: str,
) -> None:
    await upgrade(database_url, BEFORE_HOLDINGS)
    now = datetime.now(UTC)

    def workflow(owner: str, *, deleted: bool = False) -> dict[str, Any]:
        created = Workflow.create(
            id=WorkflowId(uuid.uuid4()),
            owner_id=UserId(owner),
            fields=WorkflowFields(name="w", definition=Definition(nodes=())),
            at=now,
        )
        return {**workflow_to_row(created), "deleted_at": now if deleted else None}

    def credential(owner: str) -> dict[str, Any]:
        held = Credential(
            id=CredentialId(uuid.uuid4()),
            owner_id=UserId(owner),
            name="c",
            type="bearer",
            fields=("token",),
            secret_ref=SecretRef(f"db:{uuid.uuid4()}"),
            created_at=now,
            updated_at=now,
        )
        return credential_to_row(held)

    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            workflows.insert(),
            [
                workflow("alice"),
                workflow("alice"),
                workflow("alice", deleted=True),
                workflow("bob"),
            ],
        )
        await connection.execute(credentials.insert(), [credential("alice")])
    await engine.dispose()

    await upgrade(database_url)

    engine = create_engine(database_url)
    async with engine.connect() as connection:
        rows = (await connection.execute(select(owner_holdings))).all()
    await engine.dispose()
    assert {(r.owner_id, r.kind, r.held) for r in rows} == {
        ("alice", "workflows", 2),
        ("bob", "workflows", 1),
        ("alice", "credentials", 1),
    }


async def test_retries_before_0010_are_triggered_by_retry_after_it_and_as_before_after_downgrade(
    database_url: str,
) -> None:
    await upgrade(database_url, "0009")
    workflow = Workflow.create(
        id=WorkflowId(uuid.uuid4()),
        owner_id=UserId("user_alice"),
        fields=WorkflowFields(name="w"),
        at=datetime.now(UTC),
    )
    first, retry = uuid.uuid4(), uuid.uuid4()
    executions = sa.table(  # as revision 0009 has it: no retried_trigger
        "executions",
        *(sa.column(name, sa.Uuid()) for name in ("id", "workflow_id", "retry_of")),
        *(sa.column(name, sa.Text()) for name in ("owner_id", "status", "trigger")),
        *(sa.column(name, sa.Integer()) for name in ("workflow_version", "attempt")),
        sa.column("input", JsonDocument),
        sa.column("created_at", UtcDateTime()),
    )
    common = {
        "workflow_id": workflow.id,
        "owner_id": "user_alice",
        "status": "failed",
        "trigger": "manual",
        "workflow_version": 1,
        "input": {},
        "created_at": datetime.now(UTC),
    }
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(workflows.insert().values(workflow_to_row(workflow)))
        await connection.execute(
            executions.insert(),
            [
                {**common, "id": first, "retry_of": None, "attempt": 1},
                {**common, "id": retry, "retry_of": first, "attempt": 2},
            ],
        )
    await engine.dispose()

    async def triggers() -> dict[uuid.UUID, tuple[str, ...]]:
        engine = create_engine(database_url)
        async with engine.connect() as connection:
            columns = [c for c in ("trigger", "retried_trigger") if c in await _columns(connection)]
            query = sa.text(f"SELECT id, {', '.join(columns)} FROM executions")
            rows = (await connection.execute(query)).all()
        await engine.dispose()
        return {uuid.UUID(str(r[0])): tuple(r[1:]) for r in rows}

    await upgrade(database_url)
    after = await triggers()
    await downgrade(database_url, "0009")
    before_again = await triggers()

    assert after == {first: ("manual", None), retry: ("retry", "manual")}
    assert before_again == {first: ("manual",), retry: ("manual",)}


async def _columns(connection: Any) -> set[str]:
    return await connection.run_sync(
        lambda sync: {c["name"] for c in inspect(sync).get_columns("executions")}
    )

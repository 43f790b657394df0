"""A scheduler's claim reads the due entries of the schedule book through its due-time index,
however many workflows are scheduled: Postgres plans it as an index scan in due order under
`FOR UPDATE SKIP LOCKED`, with no sequential scan and no sort, so a tick's cost follows what is
due, not the number of workflows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.sql.schedules import SqlScheduleRepository

from support.postgres import create_database, drop_database

pytestmark = pytest.mark.postgres

SCHEDULED = 20_000
# Entries due every 30 minutes over about a year from 2026-01-01 00:30; at NOW, 48 are due.
SEED = [
    f"""
    INSERT INTO workflows
        (id, owner_id, name, description, tags, definition, version, created_at, updated_at,
         active)
    SELECT
        ('00000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid,
        'user_' || (g % 20), 'Workflow ' || g, '', '[]'::jsonb,
        '{{"nodes": [], "edges": []}}'::jsonb, 1,
        timestamptz '2025-01-01 00:00:00+00', timestamptz '2025-01-01 00:00:00+00', true
    FROM generate_series(1, {SCHEDULED}) AS g
    """,
    f"""
    INSERT INTO schedules (workflow_id, owner_id, cron, every_s, timezone, next_due_at)
    SELECT
        ('00000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid,
        'user_' || (g % 20), NULL, 60, 'UTC',
        timestamptz '2026-01-01 00:00:00+00' + g * interval '30 minutes'
    FROM generate_series(1, {SCHEDULED}) AS g
    """,
    "ANALYZE workflows",
    "ANALYZE schedules",
]
NOW = datetime(2026, 1, 2, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def engine(postgres_server_url: str) -> AsyncIterator[AsyncEngine]:
    url = await create_database(postgres_server_url)
    engine = create_engine(url)
    try:
        await upgrade(url)
        async with engine.begin() as connection:
            for statement in SEED:
                await connection.execute(text(statement))
        yield engine
    finally:
        await engine.dispose()
        await drop_database(postgres_server_url, url)


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", ()) for n in nodes(child))]


async def test_a_claim_is_an_index_scan_in_due_order_that_skips_locked_rows(
    engine: AsyncEngine,
) -> None:
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    async with engine.connect() as connection:
        event.listen(engine.sync_engine, "before_cursor_execute", record)
        try:
            due = await SqlScheduleRepository(connection).claim_due(NOW, 100)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", record)
        [(statement, parameters)] = sent
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        result = await raw.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *parameters)
        await connection.rollback()

    plan = (json.loads(result) if isinstance(result, str) else result)[0]["Plan"]
    kinds = [(n["Node Type"], n.get("Index Name")) for n in nodes(plan)]
    times = [e.next_due_at for e in due]
    assert (len(times), times == sorted(times)) == (48, True)  # 00:30 to 24:00, earliest first
    assert "FOR UPDATE SKIP LOCKED" in statement
    assert ("Index Scan", "ix_schedules_next_due_at") in kinds, kinds
    assert not any(kind in ("Seq Scan", "Sort") for kind, _ in kinds), kinds

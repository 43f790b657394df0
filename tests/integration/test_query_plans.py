"""Every list query of the API, as the repositories really build it, is planned by Postgres as an
index scan that matches its filter and its order: no Sort over a large input, no OFFSET, no COUNT.

The database is migrated and filled in bulk (INSERT ... SELECT generate_series) with enough rows
over several owners, workflows and statuses that the planner has a real choice, then ANALYZEd.
Each case runs the repository's own `page()` on a connection whose engine records the statements
it sends (`before_cursor_execute`), then EXPLAINs each of them with its own parameters.

Why an index and not the other: lists are newest first on `(created_at, id)` after a keyset
position, `limit + 1` rows. An index whose leading columns are the equality filters and whose
next columns are `(created_at, id)` returns the page in order and stops after `limit + 1` rows,
however deep the position and however many rows match: the cost of a page is flat as history
grows. Any other plan reads every matching row (a bitmap scan and a sort) or every row of the
owner (a walk of the owner's index that filters on the way); both grow with history.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowbuilder_adapters.sql.credentials import SqlCredentialRepository
from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.executions import SqlExecutionRepository
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.sql.workflows import SqlWorkflowRepository
from flowbuilder_core.executions.model import ExecutionId, ExecutionStatus
from flowbuilder_core.executions.ports import ExecutionFilter
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import DEFAULT_LIMIT, PageRequest
from flowbuilder_core.workflows.model import WorkflowId
from flowbuilder_core.workflows.ports import WorkflowFilter

from support.postgres import create_database, drop_database

pytestmark = pytest.mark.postgres

OWNER = UserId("user_0")
OWNERS = 20
WORKFLOWS = 20_000
CREDENTIALS = 40_000
EXECUTIONS = 20_000
VERSIONS_OF_ONE = 300
# Workflow numbers are 1..WORKFLOWS and owned by `user_{n % OWNERS}`: user_0 owns 20, 40, ...
BUSY_WORKFLOW = WorkflowId(uuid.UUID(int=OWNERS))
VERSIONED_WORKFLOW = WorkflowId(uuid.UUID(int=2 * OWNERS))
PARENT = ExecutionId(uuid.UUID("00000000-0000-0000-0003-000000000001"))

# Executions: half are user_0's (the rest user_1..user_4's), over 50 workflows of each owner,
# half of user_0's in one workflow (BUSY_WORKFLOW);
# statuses 75 % succeeded, 10 % failed, 5 % each queued, running and cancelled. Of an owner's
# workflows (and credentials) in order, every tenth is deleted, every seventh is named
# "Report n" (the others "Workflow n"), tags are `all` and one of ten `tag{i}`, and credential
# types cycle through four.
SEED = [
    f"""
    INSERT INTO workflows
        (id, owner_id, name, description, tags, definition, version, created_at, updated_at,
         deleted_at)
    SELECT
        ('00000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid,
        'user_' || (g % {OWNERS}),
        CASE WHEN g / {OWNERS} % 7 = 0 THEN 'Report ' ELSE 'Workflow ' END || g,
        '',
        jsonb_build_array('all', 'tag' || (g / {OWNERS} % 10)),
        '{{"nodes": [], "edges": []}}'::jsonb,
        CASE WHEN g = {VERSIONED_WORKFLOW.int} THEN {VERSIONS_OF_ONE} ELSE 1 END,
        timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute',
        timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute',
        CASE WHEN g / {OWNERS} % 10 = 3
            THEN timestamptz '2026-03-01 00:00:00+00' END
    FROM generate_series(1, {WORKFLOWS}) AS g
    """,
    """
    INSERT INTO workflow_versions (workflow_id, version, name, definition, created_at)
    SELECT w.id, v, w.name, w.definition, w.created_at + v * interval '1 second'
    FROM workflows AS w, generate_series(1, w.version) AS v
    """,
    """
    INSERT INTO workflow_tags (workflow_id, owner_id, tag, created_at)
    SELECT w.id, w.owner_id, t.tag, w.created_at
    FROM workflows AS w, jsonb_array_elements_text(w.tags) AS t(tag)
    WHERE w.deleted_at IS NULL
    """,
    f"""
    INSERT INTO credentials
        (id, owner_id, name, type, fields, secret_ref, created_at, updated_at)
    SELECT
        ('00000000-0000-0000-0001-' || lpad(to_hex(g), 12, '0'))::uuid,
        'user_' || (g % {OWNERS}),
        'Credential ' || g,
        (ARRAY['http.basic', 'http.bearer', 'http.header', 'api.key'])[1 + g / {OWNERS} % 4],
        '["token"]'::jsonb,
        'db:' || g,
        timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute',
        timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute'
    FROM generate_series(1, {CREDENTIALS}) AS g
    """,
    f"""
    INSERT INTO executions
        (id, owner_id, workflow_id, workflow_version, status, trigger, input, error, attempt,
         retry_of, created_at, started_at, finished_at, heartbeat_at)
    SELECT
        ('00000000-0000-0000-0002-' || lpad(to_hex(g), 12, '0'))::uuid,
        'user_' || k,
        ('00000000-0000-0000-0000-' || lpad(to_hex({OWNERS} * w + k), 12, '0'))::uuid,
        1,
        CASE abs(hashtext(g::text)) % 20 WHEN 0 THEN 'queued' WHEN 1 THEN 'running'
            WHEN 2 THEN 'failed' WHEN 3 THEN 'failed' WHEN 4 THEN 'cancelled'
            ELSE 'succeeded' END,
        'manual',
        '{{}}'::jsonb,
        NULL,
        1,
        NULL,
        timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second',
        NULL,
        NULL,
        NULL
    FROM generate_series(1, {EXECUTIONS}) AS g,
        LATERAL (SELECT CASE WHEN g % 2 = 0 THEN 0 ELSE 1 + g % 4 END AS k) AS owner,
        LATERAL (SELECT CASE WHEN g % 4 = 0 THEN 1 ELSE 2 + g / 2 % 49 END AS w) AS workflow
    """,
    # Children: a tenth of user_0's executions, half of them of one parent (PARENT).
    f"""
    UPDATE executions
    SET parent_execution_id = CASE WHEN random() < 0.5 THEN '{PARENT}'::uuid
        ELSE gen_random_uuid() END
    WHERE owner_id = 'user_0' AND abs(hashtext(id::text)) % 10 = 0
    """,
    "ANALYZE",
]


# ---------------------------------------------------------------------------------------------
# The database, and the statements a repository sends
# ---------------------------------------------------------------------------------------------


@dataclass
class Recorder:
    """The statements (with their parameters) sent on the engine while `recording`."""

    statements: list[tuple[str, Sequence[Any]]] = field(default_factory=list)
    on: bool = False

    def __call__(
        self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        if self.on:
            self.statements.append((statement, tuple(parameters or ())))


@dataclass
class Database:
    engine: AsyncEngine
    recorder: Recorder
    positions: dict[str, tuple[str, str]]


@pytest.fixture(scope="module")
async def database(postgres_server_url: str) -> AsyncIterator[Database]:
    url = await create_database(postgres_server_url)
    engine = create_engine(url)
    try:
        await upgrade(url)
        async with engine.begin() as connection:
            for statement in SEED:
                await connection.execute(text(statement))
        positions = {
            # A position far down each list, as a cursor many pages deep carries.
            "executions": await _position(
                engine,
                "SELECT created_at, id FROM executions WHERE owner_id = :owner "
                "ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 6000",
            ),
            "workflows": await _position(
                engine,
                "SELECT created_at, id FROM workflows WHERE owner_id = :owner "
                "ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 300",
            ),
            "credentials": await _position(
                engine,
                "SELECT created_at, id FROM credentials WHERE owner_id = :owner "
                "ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 300",
            ),
        }
        recorder = Recorder()
        event.listen(engine.sync_engine, "before_cursor_execute", recorder)
        yield Database(engine, recorder, positions)
    finally:
        await engine.dispose()
        await drop_database(postgres_server_url, url)


async def _position(engine: AsyncEngine, sql: str) -> tuple[str, str]:
    async with engine.connect() as connection:
        row = (await connection.execute(text(sql), {"owner": OWNER})).one()
    created_at: datetime = row.created_at
    return (created_at.isoformat(), str(row.id))


# ---------------------------------------------------------------------------------------------
# The cases: each list query of the API, the index it must use, and whether a sort is fine
# ---------------------------------------------------------------------------------------------

Page = Callable[[AsyncConnection, PageRequest], Awaitable[Sequence[Any]]]


@dataclass(frozen=True)
class Case:
    name: str
    run: Page
    table: str  # the main table of the list
    index: str  # the index its scan must use
    cursor_of: str  # which list's position a cursor of this case carries
    also: tuple[tuple[str, str], ...] = ()  # other (table, index) pairs of the plan (joins)
    # Why a bitmap scan of `index` and a sort of its matches is acceptable here (else neither).
    bounded_sort: str | None = None


def workflows_page(where: WorkflowFilter) -> Page:
    async def run(connection: AsyncConnection, request: PageRequest) -> Sequence[Any]:
        return await SqlWorkflowRepository(connection).page(OWNER, where, request)

    return run


def versions_page(workflow_id: WorkflowId) -> Page:
    async def run(connection: AsyncConnection, request: PageRequest) -> Sequence[Any]:
        if request.after is not None:  # the version list's position is a version number
            request = PageRequest(request.limit, (VERSIONS_OF_ONE // 2,))
        return await SqlWorkflowRepository(connection).versions(workflow_id, request)

    return run


def credentials_page(credential_type: str | None) -> Page:
    async def run(connection: AsyncConnection, request: PageRequest) -> Sequence[Any]:
        return await SqlCredentialRepository(connection).page(OWNER, credential_type, request)

    return run


def executions_page(where: ExecutionFilter) -> Page:
    async def run(connection: AsyncConnection, request: PageRequest) -> Sequence[Any]:
        return await SqlExecutionRepository(connection).page(OWNER, where, request)

    return run


FAILED, CANCELLED = ExecutionStatus.FAILED, ExecutionStatus.CANCELLED
WINDOW = (
    datetime.fromisoformat("2026-01-01T01:00:00+00:00"),
    datetime.fromisoformat("2026-01-01T04:00:00+00:00"),
)

CASES = [
    Case(
        "workflows",
        workflows_page(WorkflowFilter()),
        "workflows",
        "ix_workflows_owner_live",
        "workflows",
    ),
    Case(
        "workflows?tag",
        workflows_page(WorkflowFilter(tag="tag5")),
        "workflow_tags",
        "ix_workflow_tags_owner_tag",
        "workflows",
        also=(("workflows", "pk_workflows"),),
    ),
    Case(
        "workflows?q",
        workflows_page(WorkflowFilter(q="report")),
        "workflows",
        "ix_workflows_owner_live",
        "workflows",
        bounded_sort=(
            "a substring of the name cannot bound a btree scan: whether the owner's live "
            "workflows are walked in order and filtered (what tables.py intends) or all read "
            "through the owner's index, filtered and top-N sorted (what the planner picks, as "
            "it guesses few names match), the work is bounded by one owner's live workflows, "
            "not by the table"
        ),
    ),
    Case(
        "workflows/{id}/versions",
        versions_page(VERSIONED_WORKFLOW),
        "workflow_versions",
        "pk_workflow_versions",
        "workflows",
    ),
    Case(
        "credentials", credentials_page(None), "credentials", "ix_credentials_owner", "credentials"
    ),
    Case(
        "credentials?type",
        credentials_page("http.bearer"),
        "credentials",
        "ix_credentials_owner_type",
        "credentials",
    ),
    Case(
        "executions",
        executions_page(ExecutionFilter()),
        "executions",
        "ix_executions_owner",
        "executions",
    ),
    Case(
        "executions?status",
        executions_page(ExecutionFilter(statuses=frozenset({FAILED}))),
        "executions",
        "ix_executions_owner_status",
        "executions",
    ),
    Case(
        "executions?status&status",
        executions_page(ExecutionFilter(statuses=frozenset({FAILED, CANCELLED}))),
        "executions",
        "ix_executions_owner_status",
        "executions",
    ),
    Case(
        "executions?workflow_id",
        executions_page(ExecutionFilter(workflow_id=BUSY_WORKFLOW)),
        "executions",
        "ix_executions_owner_workflow",
        "executions",
    ),
    Case(
        "executions?workflow_id&status",
        executions_page(ExecutionFilter(statuses=frozenset({FAILED}), workflow_id=BUSY_WORKFLOW)),
        "executions",
        "ix_executions_owner_workflow_status",
        "executions",
    ),
    Case(
        "executions?parent_id",
        executions_page(ExecutionFilter(parent_id=PARENT)),
        "executions",
        "ix_executions_owner_parent",
        "executions",
    ),
    Case(
        "executions?created_after&created_before",
        executions_page(ExecutionFilter(created_after=WINDOW[0], created_before=WINDOW[1])),
        "executions",
        "ix_executions_owner",
        "executions",
    ),
]
XFAIL: dict[str, str] = {}
"""Cases known not to use their index yet (`xfail(strict=True)`, so they flip when fixed)."""


def _params() -> Iterator[Any]:
    for case in CASES:
        for deep in (False, True):
            marks = []
            if case.name in XFAIL:
                marks.append(pytest.mark.xfail(strict=True, reason=XFAIL[case.name]))
            label = f"{case.name}{' after cursor' if deep else ''}"
            yield pytest.param(case, deep, id=label, marks=marks)


# ---------------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------------


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def scans_of(plan: dict[str, Any], table: str) -> list[tuple[str, str | None]]:
    """(node type, index) of every scan of `table`; a bitmap heap scan names its index scans'."""
    found: list[tuple[str, str | None]] = []
    for node in nodes(plan):
        if node.get("Relation Name") != table:
            continue
        kind = node["Node Type"]
        if kind == "Bitmap Heap Scan":
            for inner in nodes(node):
                if inner["Node Type"] == "Bitmap Index Scan":
                    found.append((kind, inner["Index Name"]))
        else:
            found.append((kind, node.get("Index Name")))
    return found


def outline(plan: dict[str, Any], depth: int = 0) -> str:
    """A readable plan for failure messages."""
    details = [
        f"{key}: {plan[key]}"
        for key in ("Relation Name", "Index Name", "Index Cond", "Filter", "Sort Key")
        if key in plan
    ]
    line = (
        "  " * depth + f"{plan['Node Type']} (rows={plan.get('Plan Rows')}) " + "; ".join(details)
    )
    return "\n".join([line, *(outline(child, depth + 1) for child in plan.get("Plans", ()))])


async def explain(connection: AsyncConnection, statement: str, parameters: Sequence[Any]) -> Any:
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    result = await raw.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *parameters)
    return (json.loads(result) if isinstance(result, str) else result)[0]["Plan"]


INDEX_SCANS = {"Index Scan", "Index Only Scan"}


@pytest.mark.parametrize(("case", "deep"), list(_params()))
async def test_a_list_query_is_an_index_scan_in_the_order_of_its_page(
    database: Database, case: Case, deep: bool
) -> None:
    after = database.positions[case.cursor_of] if deep else None
    request = PageRequest(DEFAULT_LIMIT, after)
    recorder = database.recorder
    async with database.engine.connect() as connection:
        recorder.statements.clear()
        recorder.on = True
        try:
            rows = await case.run(connection, request)
        finally:
            recorder.on = False
        statements = list(recorder.statements)
        assert len(statements) == 1, f"one query per page, not {statements}"
        statement, parameters = statements[0]
        plan = await explain(connection, statement, parameters)
    shown = f"\n{statement}\n{parameters}\n{outline(plan)}"

    assert rows, "the case must list something, or its plan proves nothing"
    assert not re.search(r"\bOFFSET\b", statement, re.IGNORECASE), shown
    assert not re.search(r"\bCOUNT\s*\(", statement, re.IGNORECASE), shown
    assert all(n["Node Type"] != "Seq Scan" for n in nodes(plan)), f"a sequential scan:{shown}"
    for table, index in ((case.table, case.index), *case.also):
        scans = scans_of(plan, table)
        assert scans, f"{table} is not read:{shown}"
        # One scan, or one per branch of a UNION ALL (merged in order by a Merge Append).
        assert {i for _, i in scans} == {index}, f"{table} must be read through {index}:{shown}"
        if case.bounded_sort is None or table != case.table:
            assert {k for k, _ in scans} <= INDEX_SCANS, f"{table}: a bitmap scan:{shown}"
    assert plan["Node Type"] == "Limit", shown
    if case.bounded_sort is not None:
        return  # justified in the case
    # The index gives the order: no Sort (top-N or not) anywhere, and the Limit sits on the scan
    # (or the join it drives), so the page stops after limit + 1 index entries.
    sorts = [n for n in nodes(plan) if "Sort" in n["Node Type"]]
    assert not sorts, f"a sort, the index does not give the order:{shown}"

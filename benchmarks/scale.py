"""Scale benchmark: the executions list at 1,000,000 executions, first page against 500 pages deep.

Loads (once per database) 1,000,000 executions with INSERT ... SELECT generate_series into a
migrated database: 100,000 of them for one user across 50 workflows (70 % of them in one busy
workflow, so that its list is 500 pages deep too) with mixed statuses (70 % succeeded, 15 %
failed, 5 % each cancelled, running and queued), the rest spread over 1,000 other users; then
ANALYZE. For each filter it follows the cursor 500 pages deep (limit 20),
then times the first page and the page after that cursor, `SAMPLES` times each, interleaved.

Each page is one request's worth of work on the repository, as the API does it: a pooled
connection, BEGIN, `SqlExecutionRepository.page`, the rows mapped to entities, ROLLBACK. With
`--api URL --token T --user-id U` it times `GET /api/executions` on a running server instead
(the data is then loaded for user U, the token's subject).

Target: the deep page's p99 within 1.5x of the first page's, and under 20 ms.

    python -m benchmarks.scale [DATABASE_URL] [--api URL --token T --user-id U]

Without a URL it uses a throwaway local cluster. `run(url)` returns a Markdown section.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.executions import SqlExecutionRepository
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_core.executions.model import ExecutionStatus
from flowbuilder_core.executions.ports import ExecutionFilter
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest, time_id_position
from flowbuilder_core.workflows.model import WorkflowId

TOTAL = 1_000_000
MAIN_USER_EVERY = 10  # every tenth execution is the main user's: 100,000
MAIN_WORKFLOWS = 50
OTHER_USERS = 1_000
OTHER_WORKFLOWS_EACH = 5
LIMIT = 20
DEEP_PAGES = 500
SAMPLES = 1000
WARMUP = 30
P99_RATIO_TARGET = 1.5
P99_TARGET_MS = 20.0
DEFAULT_USER = "user_scale_bench"
TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"  # tests/support/postgres.py


def _load_statements(user: str) -> list[str]:
    # Ids are two 16-hex-digit halves: (1, n) the main user's workflows, (2, user * 5 + n) the
    # others', (4, g) executions. Rows are created one second apart, the main user's every
    # tenth; a status comes from a hash of g, independent of the owner and the workflow.
    # Only module constants are interpolated; the user is a bound parameter (:user).
    return [
        f"""
        INSERT INTO workflows (id, owner_id, name, description, tags, definition, version,
                               created_at, updated_at, deleted_at)
        SELECT (lpad(to_hex(1), 16, '0') || lpad(to_hex(n), 16, '0'))::uuid,
               :user, 'Scale ' || n, '', '[]', '{{"nodes": [], "edges": []}}', 1,
               now() - interval '30 days', now() - interval '30 days', NULL
        FROM generate_series(0, {MAIN_WORKFLOWS - 1}) AS n
        """,  # noqa: S608 - constants only
        f"""
        INSERT INTO workflows (id, owner_id, name, description, tags, definition, version,
                               created_at, updated_at, deleted_at)
        SELECT (lpad(to_hex(2), 16, '0') || lpad(to_hex(n), 16, '0'))::uuid,
               'user_other_' || (n / {OTHER_WORKFLOWS_EACH}), 'Other ' || n, '', '[]',
               '{{"nodes": [], "edges": []}}', 1,
               now() - interval '30 days', now() - interval '30 days', NULL
        FROM generate_series(0, {OTHER_USERS * OTHER_WORKFLOWS_EACH - 1}) AS n
        """,  # noqa: S608 - constants only
        f"""
        INSERT INTO executions (id, owner_id, workflow_id, workflow_version, status, trigger,
                                input, error, attempt, retry_of, created_at, started_at,
                                finished_at, heartbeat_at)
        SELECT (lpad(to_hex(4), 16, '0') || lpad(to_hex(g), 16, '0'))::uuid,
               CASE WHEN main THEN :user ELSE 'user_other_' || (g % {OTHER_USERS}) END,
               CASE WHEN main
                   THEN (lpad(to_hex(1), 16, '0')
                         || lpad(to_hex(wf), 16, '0'))::uuid
                   ELSE (lpad(to_hex(2), 16, '0') || lpad(to_hex(
                         (g % {OTHER_USERS}) * {OTHER_WORKFLOWS_EACH}
                         + g / {OTHER_USERS} % {OTHER_WORKFLOWS_EACH}), 16, '0'))::uuid
               END,
               1,
               CASE WHEN h < 70 THEN 'succeeded' WHEN h < 85 THEN 'failed'
                    WHEN h < 90 THEN 'cancelled' WHEN h < 95 THEN 'running'
                    ELSE 'queued' END,
               'manual', '{{}}', NULL, 1, NULL,
               created, created, CASE WHEN h < 90 THEN created + interval '1 second' END,
               NULL
        FROM generate_series(1, {TOTAL}) AS g,
             LATERAL (SELECT g % {MAIN_USER_EVERY} = 0 AS main,
                             abs(hashtext(g::text)) % 100 AS h,
                             CASE WHEN g / {MAIN_USER_EVERY} % 10 < 7 THEN 0
                                  ELSE 1 + g / {MAIN_USER_EVERY} % {MAIN_WORKFLOWS - 1}
                             END AS wf,
                             timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'
                                 AS created) AS x
        """,  # noqa: S608 - constants only
    ]


def main_workflow_id(n: int) -> uuid.UUID:
    return uuid.UUID(f"{1:016x}{n:016x}")


async def load(engine: AsyncEngine, user: str) -> tuple[bool, float]:
    """Load the data unless this user's executions are there already; (loaded, seconds)."""
    async with engine.connect() as connection:
        present = (
            await connection.execute(
                text(
                    "SELECT count(*) FROM (SELECT 1 FROM executions WHERE owner_id = :u LIMIT 1) x"
                ),
                {"u": user},
            )
        ).scalar_one()
    if present:
        return False, 0.0
    started = time.perf_counter()
    async with engine.begin() as connection:
        for statement in _load_statements(user):
            await connection.execute(text(statement), {"user": user})
        await connection.execute(text("ANALYZE"))
    return True, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------

Position = tuple[str | int, ...]
Fetch = Callable[[Position | None], Awaitable[tuple[Position | None, int]]]


@dataclass(frozen=True)
class Scenario:
    name: str
    where: ExecutionFilter
    query: dict[str, Any]  # the same filter as API query parameters


def scenarios() -> list[Scenario]:
    wf = WorkflowId(main_workflow_id(0))  # the busy one
    failed, cancelled = ExecutionStatus.FAILED, ExecutionStatus.CANCELLED
    running, queued = ExecutionStatus.RUNNING, ExecutionStatus.QUEUED
    return [
        Scenario("no filter", ExecutionFilter(), {}),
        Scenario("status=failed", ExecutionFilter(frozenset({failed})), {"status": ["failed"]}),
        Scenario(
            "status=failed,cancelled",
            ExecutionFilter(frozenset({failed, cancelled})),
            {"status": ["failed", "cancelled"]},
        ),
        Scenario(
            "status=cancelled,running,queued",
            ExecutionFilter(frozenset({cancelled, running, queued})),
            {"status": ["cancelled", "running", "queued"]},
        ),
        Scenario("workflow_id", ExecutionFilter(workflow_id=wf), {"workflow_id": str(wf)}),
        Scenario(
            "workflow_id&status=failed",
            ExecutionFilter(frozenset({failed}), workflow_id=wf),
            {"workflow_id": str(wf), "status": ["failed"]},
        ),
    ]


def repository_fetch(engine: AsyncEngine, user: str, where: ExecutionFilter) -> Fetch:
    """One page as a request does it: a pooled connection, a transaction, the query."""
    owner = UserId(user)

    async def fetch(after: Position | None) -> tuple[Position | None, int]:
        request = PageRequest(LIMIT, after)
        async with engine.connect() as connection:
            await connection.begin()
            rows = await SqlExecutionRepository(connection).page(owner, where, request)
            await connection.rollback()
        if len(rows) <= LIMIT:
            return None, len(rows)
        last = rows[LIMIT - 1]
        return time_id_position(last.created_at, last.id), LIMIT

    return fetch


def api_fetch(client: Any, query: dict[str, Any]) -> Callable[[str | None], Awaitable[Any]]:
    async def fetch(cursor: str | None) -> tuple[str | None, int]:
        params = {**query, "limit": LIMIT, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/executions", params=params)
        response.raise_for_status()
        body = response.json()
        return body.get("next_cursor"), len(body.get("items", ()))

    return fetch


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Result:
    scenario: str
    first_p50: float
    first_p99: float
    deep_p50: float
    deep_p99: float
    walk_s: float
    pages: int

    @property
    def ratio(self) -> float:
        return self.deep_p99 / self.first_p99

    @property
    def holds(self) -> bool:
        return self.ratio <= P99_RATIO_TARGET and self.deep_p99 < P99_TARGET_MS


async def measure(name: str, fetch: Callable[[Any], Awaitable[tuple[Any, int]]]) -> Result:
    # Follow the cursor DEEP_PAGES pages deep, as a client does.
    started = time.perf_counter()
    position, pages = None, 0
    for _ in range(DEEP_PAGES):
        position, _count = await fetch(position)
        pages += 1
        if position is None:
            break
    walk = time.perf_counter() - started
    if position is None:
        raise RuntimeError(f"{name}: the list ended after {pages} pages")
    first: list[float] = []
    deep: list[float] = []
    # Sub-millisecond pages: a collection of this process's garbage would be the slowest
    # sample, and it says nothing about how the query scales. Collected before, not during.
    gc.collect()
    gc.disable()
    try:
        for i in range(WARMUP + SAMPLES):
            for after, into in ((None, first), (position, deep)):
                t0 = time.perf_counter()
                await fetch(after)
                if i >= WARMUP:
                    into.append((time.perf_counter() - t0) * 1000)
    finally:
        gc.enable()
    return Result(
        name,
        statistics.median(first),
        percentile(first, 99),
        statistics.median(deep),
        percentile(deep, 99),
        walk,
        pages,
    )


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


async def run(
    database_url: str,
    *,
    api_url: str | None = None,
    token: str | None = None,
    user_id: str | None = None,
) -> str:
    """Migrate, load (once), measure; the results as a Markdown section."""
    user = user_id or DEFAULT_USER
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        loaded, load_s = await load(engine, user)
        async with engine.connect() as connection:
            total = (await connection.execute(text("SELECT count(*) FROM executions"))).scalar()
            size = (
                await connection.execute(
                    text("SELECT pg_size_pretty(pg_total_relation_size('executions'))")
                )
            ).scalar()
            server_version = (await connection.execute(text("SHOW server_version"))).scalar()
        results: list[Result] = []
        if api_url is not None:
            import httpx

            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
                for scenario in scenarios():
                    results.append(await measure(scenario.name, api_fetch(client, scenario.query)))
            through = f"`GET /api/executions` on {api_url} (httpx, one connection)"
        else:
            for scenario in scenarios():
                fetch = repository_fetch(engine, user, scenario.where)
                results.append(await measure(scenario.name, fetch))
            through = "`SqlExecutionRepository.page` in a request-like transaction"
    finally:
        await engine.dispose()
    return _markdown(results, through, total, size, server_version, loaded, load_s)


def _markdown(
    results: list[Result],
    through: str,
    total: Any,
    size: Any,
    server_version: Any,
    loaded: bool,
    load_s: float,
) -> str:
    loaded_text = f"loaded in {load_s:.0f} s" if loaded else "already loaded"
    lines = [
        "## Scale: executions list at 1,000,000 executions",
        "",
        f"{total:,} executions ({size}, {loaded_text}); the user has 100,000 across "
        f"{MAIN_WORKFLOWS} workflows. Measured through {through}; limit {LIMIT}; first page "
        f"and the page after following the cursor {DEEP_PAGES} pages deep, {SAMPLES} samples "
        f"each (interleaved, after {WARMUP} warm-up, with the benchmark process's garbage "
        f"collector paused). PostgreSQL {server_version} on "
        f"{platform.node()}, {os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "| filter | first p50 ms | first p99 ms | deep p50 ms | deep p99 ms | deep/first p99 "
        "| 500-page walk s | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.scenario} | {r.first_p50:.2f} | {r.first_p99:.2f} | {r.deep_p50:.2f} "
            f"| {r.deep_p99:.2f} | {r.ratio:.2f}x | {r.walk_s:.1f} "
            f"| {'holds' if r.holds else 'MISSED'} |"
        )
    held = all(r.holds for r in results)
    lines += [
        "",
        f"Target (deep p99 <= {P99_RATIO_TARGET}x first p99 and < {P99_TARGET_MS:.0f} ms): "
        f"**{'holds' if held else 'missed'}**"
        + ("" if held else f" for {', '.join(r.scenario for r in results if not r.holds)}")
        + ".",
        "",
    ]
    return "\n".join(lines)


async def main() -> str:
    """Entry point for the `make bench` runner (arguments from sys.argv; all optional)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    parser.add_argument("database_url", nargs="?")
    parser.add_argument("--api", help="base URL of a running server to time instead")
    parser.add_argument("--token", help="bearer token for --api")
    parser.add_argument("--user-id", help="the token's user: the data is loaded for it")
    args, _unknown = parser.parse_known_args()
    options = {"api_url": args.api, "token": args.token, "user_id": args.user_id}
    if args.database_url:
        return await run(args.database_url, **options)
    sys.path.insert(0, str(TESTS_DIR))
    from support.postgres import create_database, local_cluster

    with local_cluster() as server:
        return await run(await create_database(server), **options)


if __name__ == "__main__":
    print(asyncio.run(main()))

"""Schedules end to end: two `flowbuilder worker` processes, each with its own scheduler, and
`flowbuilder serve`, on Postgres, the queue a standard SQS queue on the local moto server.

An every-second schedule (SCHEDULE_MIN_INTERVAL_S lowered to 1) watched for 14 s gives one
execution per second, no gap and no duplicate. Fourteen seconds rather than a minute: with two
schedulers ticking five times a second each, that is some hundred and forty ticks racing for
fourteen times already, and the test's cost (two cores, shared with the rest of the suite, which
must stay within ten minutes) grows with every second it watches, while what it shows does
not.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aioboto3
import httpx
import pytest
from sqlalchemy import select

from flowbuilder_adapters.queues.sqs import ensure_queue, sqs_client
from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.tables import executions

from support.aws_fixtures import AWS_REGION
from support.jwks import JwksServer
from support.processes import bearer, free_port, run, seed_env, server, workers
from support.tokens import SigningKey, make_rsa_key

pytestmark = pytest.mark.postgres

WATCH_S = 14
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


@pytest.fixture
def jwks() -> Iterator[tuple[JwksServer, SigningKey]]:
    key = make_rsa_key("schedules-e2e")
    with JwksServer(key) as served:
        yield served, key


async def scheduling_env(postgres_url: str, frontend: str, moto_endpoint: str) -> dict[str, str]:
    async with sqs_client(aioboto3.Session(), AWS_REGION, moto_endpoint) as client:
        queue = await ensure_queue(client, f"fb-sched-{uuid.uuid4().hex}", fifo=False)
    env = seed_env(postgres_url, frontend)
    env.update(
        WORKFLOW_QUEUE_URL=queue,
        SQS_ENDPOINT_URL=moto_endpoint,
        USE_DB_SECRETS="true",
        SECRETS_ENCRYPTION_KEY="k1:" + base64.b64encode(os.urandom(32)).decode(),
        METRICS_ENABLED="false",
        SCHEDULE_MIN_INTERVAL_S="1",
        SCHEDULE_TICK_S="0.2",
        **{name: os.environ[name] for name in AWS_VARIABLES},
    )
    migrated = run(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    return env


async def scheduled_runs(database_url: str, workflow_id: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(executions.c.scheduled_for, executions.c.trigger, executions.c.status)
                .where(executions.c.workflow_id == uuid.UUID(workflow_id))
                .order_by(executions.c.scheduled_for)
            )
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


async def test_two_workers_start_exactly_one_run_per_second_of_an_every_second_schedule(
    postgres_url: str,
    jwks: tuple[JwksServer, SigningKey],
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    served, key = jwks
    frontend = served.url.removesuffix("/.well-known/jwks.json")
    env = await scheduling_env(postgres_url, frontend, moto_endpoint)
    port = free_port()
    definition = {
        "nodes": [
            {"id": "tick", "type": "trigger.schedule", "parameters": {"every_s": 1}},
            {"id": "note", "type": "data.set", "parameters": {"value": {"ok": True}}},
        ],
        "edges": [{"source": "tick", "target": "note"}],
    }

    with ExitStack() as stack:
        base = stack.enter_context(server(["serve", "--port", str(port)], env, port, tmp_path))
        logs = stack.enter_context(workers(2, ["--concurrency", "8"], env, tmp_path))
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            auth = bearer(key, frontend, "user_ada")
            created = await http.post(
                "/api/workflows",
                json={"name": "Every second", "definition": definition},
                headers=auth,
            )
            assert created.status_code == 201, created.text
            workflow_id = created.json()["id"]
            activated_from = datetime.now(UTC)
            activated = await http.post(f"/api/workflows/{workflow_id}/activate", headers=auth)
            activated_by = datetime.now(UTC)
            assert activated.status_code == 200, activated.text
            schedule = await http.get(f"/api/workflows/{workflow_id}/schedule", headers=auth)
            await asyncio.sleep(WATCH_S)
            deactivated_from = datetime.now(UTC)
            deactivated = await http.post(f"/api/workflows/{workflow_id}/deactivate", headers=auth)
            deactivated_by = datetime.now(UTC)
            assert deactivated.status_code == 200, deactivated.text
            await asyncio.sleep(2)  # nothing more may start now
            listed = await http.get(
                f"/api/workflows/{workflow_id}/executions?limit=5", headers=auth
            )
            runs = await scheduled_runs(postgres_url, workflow_id)
            deadline = time.monotonic() + 30
            while any(r["status"] != "succeeded" for r in runs) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                runs = await scheduled_runs(postgres_url, workflow_id)

    assert schedule.json()["every_s"] == 1
    assert schedule.json()["active"] is True
    times = [r["scheduled_for"] for r in runs]
    assert len(times) == len(set(times)), "a scheduled time ran twice"
    first, last = times[0], times[-1]
    assert times == [first + timedelta(seconds=s) for s in range(len(times))], "a gap"
    # The first time after activation, and the last one before deactivation: nothing missed.
    assert activated_from < first <= _next_second(activated_by)
    assert deactivated_from - timedelta(seconds=2) <= last <= deactivated_by
    assert len(times) >= WATCH_S - 2
    assert {r["trigger"] for r in runs} == {"schedule"}
    assert {r["status"] for r in runs} == {"succeeded"}
    shown = listed.json()["items"][0]
    assert (shown["trigger"], shown["scheduled_for"] is not None) == ("schedule", True)
    for log in logs:
        assert "the scheduler failed" not in log.read_text()


def _next_second(moment: datetime) -> datetime:
    return datetime.fromtimestamp(math.floor(moment.timestamp()) + 1, UTC)

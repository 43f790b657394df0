"""Engine throughput with `flowbuilder worker` *processes*: Postgres and SQS (a moto server).

N executions of a 3-node flow are requested and relayed to the SQS queue first; then one or
two `flowbuilder worker` processes (default concurrency) drain it. The rate is taken from the
database, N over the span from the first run's `started_at` to the last one's `finished_at`, so
process start-up is not counted. Called by `benchmarks/engine.py`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import boto3  # type: ignore[import-untyped]
from dishka import AsyncContainer

from benchmarks.procs import moto_process
from benchmarks.run import dsn
from flowbuilder_adapters.relay import OutboxRelay
from flowbuilder_adapters.wiring import QueueProvider

from support.processes import clean_env, worker

REGION = "us-east-1"
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
FINISHED = ("succeeded", "failed", "cancelled")
DRAIN_TIMEOUT_S = 180.0
Execute = Callable[[int], Awaitable[uuid.UUID]]


async def measure(
    database_url: str,
    container_for: Callable[[QueueProvider], AsyncContainer],
    workflow_and_execute: Callable[[AsyncContainer], Awaitable[Execute]],
    runs: int,
    processes: list[int],
) -> dict[int, dict[str, float]]:
    """For each count in `processes`: queue `runs` executions, drain them with that many worker
    processes, and return {count: {"runs", "seconds", "per_second"}}.

    `container_for(queue)` wires the benchmark's container around a queue provider;
    `workflow_and_execute(container)` creates the flow and returns an async `execute(n)`.
    """
    for name, value in DUMMY_AWS.items():
        os.environ.setdefault(name, value)
    results: dict[int, dict[str, float]] = {}
    with moto_process() as endpoint, tempfile.TemporaryDirectory() as workdir:
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
        for count in processes:
            queue_url = sqs.create_queue(QueueName=f"fb-bench-{uuid.uuid4().hex[:12]}")["QueueUrl"]
            container = container_for(QueueProvider(queue_url, REGION, endpoint))
            try:
                execute = await workflow_and_execute(container)
                ids = [await execute(n) for n in range(runs)]
                await _relayed(container)
            finally:
                await container.close()
            env = _worker_env(database_url, queue_url, endpoint)
            with contextlib.ExitStack() as stack:
                for index in range(count):
                    stack.enter_context(worker([], env, Path(workdir), name=f"w{count}-{index}"))
                results[count] = await _drained(database_url, ids)
    return results


async def _relayed(container: AsyncContainer) -> None:
    """Run the outbox relay until every requested execution is on the queue."""
    relay = await container.get(OutboxRelay)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while await relay.backlog() > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the outbox was not relayed in time")
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def _worker_env(database_url: str, queue_url: str, endpoint: str) -> dict[str, str]:
    key = "bench:" + base64.b64encode(os.urandom(32)).decode()
    return clean_env(
        DATABASE_URL=database_url,
        WORKFLOW_QUEUE_URL=queue_url,
        SQS_ENDPOINT_URL=endpoint,
        USE_DB_SECRETS="true",
        SECRETS_ENCRYPTION_KEY=key,
        **DUMMY_AWS,
    )


async def _drained(database_url: str, ids: list[uuid.UUID]) -> dict[str, float]:
    connection = await asyncpg.connect(dsn(database_url))
    try:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            row = await connection.fetchrow(
                "SELECT count(*) FILTER (WHERE status = ANY($2::text[])) AS done,"
                " count(*) FILTER (WHERE status = 'succeeded') AS succeeded,"
                " min(started_at) AS first, max(finished_at) AS last"
                " FROM executions WHERE id = ANY($1::uuid[])",
                ids,
                list(FINISHED),
            )
            if row["done"] == len(ids):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{row['done']} of {len(ids)} runs finished in time")
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    if row["succeeded"] != len(ids):
        raise RuntimeError(f"only {row['succeeded']} of {len(ids)} runs succeeded")
    seconds = (row["last"] - row["first"]).total_seconds()
    return {"runs": float(len(ids)), "seconds": seconds, "per_second": len(ids) / seconds}

"""Engine benchmark: how long a run takes from execute to `succeeded`, and how many runs a
worker finishes per second.

- Latency: a 40-node linear flow (a manual trigger, then 39 nodes alternating `data.set` and
  `data.transform`, each reading its predecessor's output), executed 50 times one after the
  other (after warm-up runs); each from the ExecuteWorkflow call to the moment the worker has
  committed `succeeded` (it acknowledges the queue message right after). Target: p50 < 150 ms.
- For-each: `flow.for_each` over 1,000 items, concurrency 10, of a one-node sub-workflow
  (`benchmarks/for_each.py`); target < 5 s, reported with its cost per item.
- Throughput: a 3-node flow (trigger, data.set, data.transform). N executions are requested
  and relayed to the queue first; then a worker is started and the clock runs until the last
  one is acknowledged. Executions per second, with worker concurrency 1 and 2; and with one
  and two `flowbuilder worker` processes on SQS (`benchmarks/worker_processes.py`).

Wiring as the processes do it (tests/integration/test_execution_delivery.py): CoreProvider,
SqlProvider, DatabaseSecretsProvider, QueueProvider(None) (the in-memory queue), OutboxProvider,
RunsProvider, ScopesProvider; an OutboxRelay and a Worker running in this process, on Postgres.

    python -m benchmarks.engine [DATABASE_URL]     # no URL: a throwaway local cluster
    python -m benchmarks.engine --only for-each --for-each-items 100   # that scenario alone

The database must be migrated or empty (it is migrated here). `run(url)` returns Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dishka import AsyncContainer, make_async_container
from sqlalchemy import event
from sqlalchemy.engine import Engine

from benchmarks import worker_processes
from flowbuilder_adapters.relay import OutboxRelay
from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.sql.driver import DriverStatement
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.wiring import (
    CoreProvider,
    DatabaseSecretsProvider,
    OutboxProvider,
    QueueProvider,
    RunsProvider,
    ScopesProvider,
    SqlProvider,
)
from flowbuilder_adapters.worker import Worker
from flowbuilder_core.executions.model import ExecutionStatus
from flowbuilder_core.executions.ports import Delivery, ExecutionQueue
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.executions.use_cases import ExecuteCommand, ExecuteWorkflow, GetExecution
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import Workflow
from flowbuilder_core.workflows.use_cases import CreateWorkflow, WorkflowInput

USER = Principal(UserId("user_engine_bench"))
LATENCY_NODES = 40
LATENCY_RUNS = 50
LATENCY_WARMUP = 5
LATENCY_TARGET_MS = 150.0
THROUGHPUT_RUNS = 300
THROUGHPUT_WARMUP = 20
THROUGHPUT_CONCURRENCY = (1, 2, 4)
RUN_TIMEOUT_S = 30.0
TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"  # tests/support/postgres.py
WORKER_CONCURRENCY = 4  # `flowbuilder worker`'s default


def linear_flow(nodes: int) -> dict[str, Any]:
    """A manual trigger and `nodes - 1` nodes in a chain, alternating data.set/data.transform."""
    chain: list[dict[str, Any]] = [{"id": "start", "type": "trigger.manual", "parameters": {}}]
    for i in range(1, nodes):
        previous = chain[-1]["id"]
        if i % 2:
            chain.append(
                {
                    "id": f"set{i}",
                    "type": "data.set",
                    "parameters": {
                        "value": {
                            "step": i,
                            "n": "{{ input.n }}",
                            "from": f"{{{{ nodes.{previous} }}}}",
                        }
                    },
                }
            )
        else:
            chain.append(
                {
                    "id": f"transform{i}",
                    "type": "data.transform",
                    "parameters": {"expression": f"{{step: nodes.{previous}.step, n: input.n}}"},
                }
            )
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(chain)]
    return {"nodes": chain, "edges": edges}


class SignallingQueue(ExecutionQueue):
    """The container's queue; `ack` (the worker's last act, after `succeeded` is committed)
    resolves the future waiting for that execution."""

    def __init__(self, inner: ExecutionQueue) -> None:
        self._inner = inner
        self.waiting: dict[uuid.UUID, asyncio.Future[float]] = {}
        self.early: dict[uuid.UUID, float] = {}  # acknowledged before anyone expected them

    async def send(self, message: Any) -> None:
        await self._inner.send(message)

    async def receive(self, max_messages: int, wait_seconds: float) -> Sequence[Delivery]:
        return await self._inner.receive(max_messages, wait_seconds)

    async def extend(self, delivery: Delivery, seconds: int) -> None:
        await self._inner.extend(delivery, seconds)

    async def ack(self, delivery: Delivery) -> None:
        await self._inner.ack(delivery)
        if delivery.message is not None:
            now = time.perf_counter()
            done = self.waiting.pop(delivery.message.execution_id, None)
            if done is None:
                self.early[delivery.message.execution_id] = now
            elif not done.done():
                done.set_result(now)

    def expect(self, execution_id: uuid.UUID) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if execution_id in self.early:
            future.set_result(self.early.pop(execution_id))
        else:
            self.waiting[execution_id] = future
        return future


def container_for(database_url: str, queue: QueueProvider | None = None) -> AsyncContainer:
    """The engine's dependencies as the processes wire them; the in-memory queue by default."""
    return make_async_container(
        CoreProvider(),
        SqlProvider(database_url),
        DatabaseSecretsProvider(Keyring.generate()[0]),
        queue or QueueProvider(None),
        OutboxProvider(1_000_000.0, 1_000_000),  # no rate limit in a benchmark
        RunsProvider(allow_private_network=False),
        ScopesProvider(),
    )


@contextlib.asynccontextmanager
async def services(
    container: AsyncContainer, queue: ExecutionQueue, *, worker: bool, concurrency: int = 1
) -> AsyncIterator[None]:
    """The outbox relay, and a worker when `worker`, running until the block ends."""
    stop = asyncio.Event()
    relay = await container.get(OutboxRelay)
    tasks = [asyncio.create_task(relay.run(stop))]
    if worker:
        run = await container.get(RunExecution)
        runner = Worker(queue, run, concurrency=concurrency, poll_seconds=1.0)
        tasks.append(asyncio.create_task(runner.run(stop)))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


async def create(container: AsyncContainer, name: str, definition: dict[str, Any]) -> Workflow:
    async with container() as scope:
        create_workflow = await scope.get(CreateWorkflow)
        return await create_workflow(USER, WorkflowInput(name=name, definition=definition))


async def execute(container: AsyncContainer, workflow: Workflow, n: int) -> uuid.UUID:
    async with container() as scope:
        execute_workflow = await scope.get(ExecuteWorkflow)
        execution = await execute_workflow(USER, ExecuteCommand(workflow.id, {"n": n}))
    return execution.id


async def status_of(container: AsyncContainer, execution_id: uuid.UUID) -> ExecutionStatus:
    async with container() as scope:
        get_execution = await scope.get(GetExecution)
        return (await get_execution(USER, execution_id)).status


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def latency(database_url: str) -> dict[str, float]:
    container = container_for(database_url)
    try:
        queue = SignallingQueue(await container.get(ExecutionQueue))
        workflow = await create(container, "40 nodes", linear_flow(LATENCY_NODES))
        timings: list[float] = []
        async with services(container, queue, worker=True):
            for n in range(LATENCY_WARMUP + LATENCY_RUNS):
                started = time.perf_counter()
                # The id is known once execute returns; an earlier ack is kept (`early`).
                execution_id = await execute(container, workflow, n)
                done = queue.expect(execution_id)
                finished = await asyncio.wait_for(done, RUN_TIMEOUT_S)
                status = await status_of(container, execution_id)
                if status is not ExecutionStatus.SUCCEEDED:
                    raise RuntimeError(f"run {n} ended {status}, not succeeded")
                if n >= LATENCY_WARMUP:
                    timings.append((finished - started) * 1000)
        return {
            "p50": statistics.median(timings),
            "p99": percentile(timings, 99),
            "min": min(timings),
            "max": max(timings),
        }
    finally:
        await container.close()


async def throughput(database_url: str, concurrency: int) -> dict[str, float]:
    container = container_for(database_url)
    try:
        queue = SignallingQueue(await container.get(ExecutionQueue))
        workflow = await create(container, f"3 nodes c{concurrency}", linear_flow(3))
        async with services(container, queue, worker=True, concurrency=concurrency):
            warmup = [await execute(container, workflow, n) for n in range(THROUGHPUT_WARMUP)]
            await _all_done(container, warmup)
        # Request every run first (the relay puts them on the queue), then time the worker.
        ids: list[uuid.UUID] = []
        async with services(container, queue, worker=False):
            for n in range(THROUGHPUT_RUNS):
                ids.append(await execute(container, workflow, n))
            relay = await container.get(OutboxRelay)
            while await relay.backlog() > 0:  # noqa: ASYNC110 - a poll of the database
                await asyncio.sleep(0.01)
        waits = [queue.expect(execution_id) for execution_id in ids]
        with counting_round_trips() as trips:
            started, cpu = time.perf_counter(), time.process_time()
            async with services(container, queue, worker=True, concurrency=concurrency):
                finished = await asyncio.wait_for(asyncio.gather(*waits), 120)
                cpu = time.process_time() - cpu
        elapsed = max(finished) - started
        statuses = {await status_of(container, execution_id) for execution_id in ids}
        if statuses != {ExecutionStatus.SUCCEEDED}:
            raise RuntimeError(f"throughput runs ended {statuses}")
        return {
            "runs": len(ids),
            "seconds": elapsed,
            "per_second": len(ids) / elapsed,
            "cpu_ms_per_run": cpu * 1000 / len(ids),
            "statements_per_run": trips["statements"] / len(ids),
            "transactions_per_run": trips["transactions"] / len(ids),
        }
    finally:
        await container.close()


@contextlib.contextmanager
def counting_round_trips() -> Iterator[collections.Counter[str]]:
    """Count what this process sends the database meanwhile: statements (through SQLAlchemy
    or straight to the driver, the outbox relay's idle polls included) and transactions (each
    a BEGIN and a COMMIT or ROLLBACK more; an autocommit statement has none)."""
    seen: collections.Counter[str] = collections.Counter()

    def statement(*_: Any) -> None:
        seen["statements"] += 1

    def transaction(connection: Any) -> None:
        # SQLAlchemy announces a "begin" on autocommit connections too, where none is sent.
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            seen["transactions"] += 1

    on_driver = DriverStatement.fetchrow

    async def fetchrow(self: DriverStatement, *arguments: Any) -> Any:
        seen["statements"] += 1  # run on asyncpg itself: SQLAlchemy's events do not see them
        return await on_driver(self, *arguments)

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "begin", transaction)
    DriverStatement.fetchrow = fetchrow  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        DriverStatement.fetchrow = on_driver  # type: ignore[method-assign]
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "begin", transaction)


async def _all_done(container: AsyncContainer, ids: Sequence[uuid.UUID]) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    for execution_id in ids:
        while await status_of(container, execution_id) is not ExecutionStatus.SUCCEEDED:
            if time.monotonic() > deadline:
                async with container() as scope:
                    stuck = await (await scope.get(GetExecution))(USER, execution_id)
                raise RuntimeError(f"warm-up runs did not finish: {stuck}")
            await asyncio.sleep(0.01)


async def run(database_url: str, only: str | None = None, items: int | None = None) -> str:
    """Migrate, measure, and return the results as a Markdown section (`only="for-each"`:
    that scenario alone, over `items` items)."""
    from benchmarks import for_each  # it imports this module

    await upgrade(database_url)
    if only == "for-each":
        each = await for_each.measure(database_url, items or for_each.ITEMS)
        return "\n".join(["## Engine (for-each only)", "", *for_each.section(each)])
    lat = await latency(database_url)
    if only == "latency":
        return "\n".join(["## Engine (latency only)", "", *latency_section(lat)])
    by_concurrency = {c: await throughput(database_url, c) for c in THROUGHPUT_CONCURRENCY}

    async def three_node_flow(container: AsyncContainer) -> worker_processes.Execute:
        workflow = await create(container, "3 nodes, worker processes", linear_flow(3))
        return lambda n: execute(container, workflow, n)

    each = await for_each.measure(database_url)
    by_processes = await worker_processes.measure(
        database_url,
        lambda queue: container_for(database_url, queue),
        three_node_flow,
        THROUGHPUT_RUNS,
        [1, 2],
    )

    loop = type(asyncio.get_running_loop()).__module__
    lines = [
        "## Engine",
        "",
        f"Postgres, in-memory queue, one in-process worker and outbox relay; {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()} ({loop} loop), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        *latency_section(lat),
        f"### 3-node flow throughput ({THROUGHPUT_RUNS} runs queued first, then drained)",
        "",
        "Per run: the worker process's CPU time, the SQL statements it sent and the "
        "transactions it opened (each costs a BEGIN and a COMMIT round trip more; a step's "
        "record and the finish are single autocommit statements on Postgres).",
        "",
        "| workers | executions/s | runs | seconds | CPU ms/run | statements/run "
        "| transactions/run |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| 1 process, concurrency {c} | {r['per_second']:.1f} | {r['runs']:.0f} "
            f"| {r['seconds']:.2f} | {r['cpu_ms_per_run']:.2f} | {r['statements_per_run']:.1f} "
            f"| {r['transactions_per_run']:.2f} |"
            for c, r in by_concurrency.items()
        ),
        "",
        *for_each.section(each),
        f"### 3-node flow throughput, `flowbuilder worker` processes on Postgres and SQS "
        f"({THROUGHPUT_RUNS} runs queued first, then drained)",
        "",
        "The queue is a moto server (in a process of its own); each worker runs with its "
        f"default concurrency ({WORKER_CONCURRENCY}). The rate is runs over the span from the "
        "first `started_at` to the last `finished_at`, so process start-up is not counted.",
        "",
        "| worker processes | executions/s | runs | seconds |",
        "|---|---:|---:|---:|",
        *(
            f"| {count} | {result['per_second']:.1f} | {result['runs']:.0f} "
            f"| {result['seconds']:.2f} |"
            for count, result in by_processes.items()
        ),
        "",
        "Here the queue is the bound, not the workers: every run costs at least a receive and "
        "a delete call, and moto answers each in Python on the same two CPUs as the workers and "
        "Postgres. The in-memory queue above lets one process run several times as many.",
        "",
    ]
    return "\n".join(lines)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine")
    parser.add_argument("database_url", nargs="?", help="a Postgres URL; none: a local cluster")
    parser.add_argument("--markdown-out", type=Path, help="write the section here too")
    parser.add_argument("--only", choices=["latency", "for-each"], help="one scenario alone")
    parser.add_argument("--for-each-items", type=int, help="items of the for-each scenario")
    return parser.parse_args()


def latency_section(lat: dict[str, float]) -> list[str]:
    def verdict(value: float) -> str:
        return "holds" if value < LATENCY_TARGET_MS else "MISSED"

    return [
        f"### {LATENCY_NODES}-node linear flow, execute to `succeeded` "
        f"({LATENCY_RUNS} runs, one at a time, after {LATENCY_WARMUP} warm-up runs)",
        "",
        f"| p50 ms | p99 ms | min ms | max ms | target < {LATENCY_TARGET_MS:.0f} ms |",
        "|---:|---:|---:|---:|---|",
        f"| {lat['p50']:.1f} | {lat['p99']:.1f} | {lat['min']:.1f} | {lat['max']:.1f} "
        f"| p50 {verdict(lat['p50'])}, p99 {verdict(lat['p99'])} |",
        "",
    ]


async def main(arguments: argparse.Namespace) -> str:
    """Entry point for the `make bench` runner: a throwaway cluster unless a URL is given."""
    url = arguments.database_url
    only, items = arguments.only, arguments.for_each_items
    if url is not None and url.startswith("postgres"):
        return await run(url, only, items)
    sys.path.insert(0, str(TESTS_DIR))
    from support.postgres import create_database, local_cluster

    with local_cluster() as server:
        return await run(await create_database(server), only, items)


if __name__ == "__main__":
    arguments = _arguments()
    markdown = asyncio.run(main(arguments))
    if arguments.markdown_out is not None:
        arguments.markdown_out.write_text(markdown)
    print(markdown)

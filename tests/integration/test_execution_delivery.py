"""Delivery of executions end to end, on Postgres and SQS (the session's moto server): the
outbox survives a queue outage, concurrent relays lose nothing, duplicate deliveries run once,
and a killed worker's run is finished as `worker_lost` and can be retried.

The app is wired through a real dishka container, as `flowbuilder serve` and `worker` wire
it, minus the background services: each test drives the relay and the worker itself."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import aioboto3
import pytest
from dishka import AsyncContainer, make_async_container
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbuilder_adapters.queues.sqs import SqsExecutionQueue, ensure_queue, sqs_client
from flowbuilder_adapters.relay import OutboxRelay
from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.sql.tables import outbox
from flowbuilder_adapters.wiring import (
    CoreProvider,
    DatabaseSecretsProvider,
    OutboxProvider,
    QueueProvider,
    RunsProvider,
    ScopesProvider,
    SqlProvider,
)
from flowbuilder_adapters.wiring.scopes import ScopedCredentialResolver, ScopedRunTransactions
from flowbuilder_adapters.worker import Worker
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    ExecutionRequested,
    ExecutionStatus,
    Json,
    RunOutcome,
    StepStatus,
)
from flowbuilder_core.executions.ports import Delivery, ExecutionQueue
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.executions.use_cases import (
    ExecuteCommand,
    ExecuteWorkflow,
    FinishLostExecutions,
    GetExecution,
    RetryExecution,
)
from flowbuilder_core.shared.clock import Clock, SystemClock
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import Workflow
from flowbuilder_core.workflows.use_cases import CreateWorkflow, WorkflowInput

from support.aws_fixtures import AWS_REGION
from support.processes import FLOWBUILDER, clean_env, free_port

pytestmark = pytest.mark.postgres

ALICE = Principal(UserId("user_alice"))
KEYRING, KEYRING_TEXT = Keyring.generate()
# High enough that no test here meets the execute rate limit (it has tests of its own).
RATE_PER_SECOND, BURST = 1000, 1000
VISIBILITY_S = 10
U = TypeVar("U")
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Clocks, queues and an HTTP server that the tests control
# ---------------------------------------------------------------------------------------------


class ManualClock:
    """Stands still until moved."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class AheadClock:
    """The system's time, `ahead` in the future."""

    def __init__(self, ahead: timedelta) -> None:
        self._ahead = ahead

    def now(self) -> datetime:
        return datetime.now(UTC) + self._ahead


class RecordingQueue(ExecutionQueue):
    """Another queue, with what passed through it counted by execution id."""

    def __init__(self, inner: ExecutionQueue) -> None:
        self._inner = inner
        self.sent: Counter[uuid.UUID] = Counter()
        self.received: Counter[uuid.UUID] = Counter()
        self.acked: Counter[uuid.UUID] = Counter()

    async def send(self, message: ExecutionRequested) -> None:
        await self._inner.send(message)
        self.sent[message.execution_id] += 1

    async def send_many(self, messages: Sequence[ExecutionRequested]) -> set[ExecutionId]:
        sent = await self._inner.send_many(messages)
        self.sent.update(sent)
        return sent

    async def receive(self, max_messages: int, wait_seconds: float) -> Sequence[Delivery]:
        deliveries = await self._inner.receive(max_messages, wait_seconds)
        for delivery in deliveries:
            assert delivery.message is not None, "only valid messages are sent here"
            self.received[delivery.message.execution_id] += 1
        return deliveries

    async def extend(self, delivery: Delivery, seconds: int) -> None:
        await self._inner.extend(delivery, seconds)

    async def ack(self, delivery: Delivery) -> None:
        await self._inner.ack(delivery)
        assert delivery.message is not None
        self.acked[delivery.message.execution_id] += 1

    async def extend_many(self, deliveries: Sequence[Delivery], seconds: int) -> None:
        await self._inner.extend_many(deliveries, seconds)  # SQS's batch call, not one by one


class CountingEngine(Engine):
    """The container's engine, with its runs counted by the execution input's `n`."""

    def __init__(self, inner: Engine) -> None:  # no super().__init__: it only delegates
        self._inner = inner
        self.runs: Counter[Json] = Counter()

    async def run(self, *, input: Mapping[str, Json], **arguments: Any) -> RunOutcome:
        self.runs[input.get("n")] += 1
        return await self._inner.run(input=input, **arguments)


@dataclass
class Hook:
    """A loopback HTTP endpoint that counts its hits and answers once `release` is set."""

    url: str
    hits: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def hook_server() -> Iterator[Hook]:
    hook = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with hook.lock:
                hook.hits += 1
            hook.release.wait(timeout=20)
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# The app, a database and a queue per test
# ---------------------------------------------------------------------------------------------


@pytest.fixture
async def database(postgres_url: str) -> str:
    await upgrade(postgres_url)
    return postgres_url


@pytest.fixture
async def sqs(moto_endpoint: str) -> AsyncIterator[Any]:
    """An aioboto3 SQS client on the moto server."""
    async with sqs_client(aioboto3.Session(), AWS_REGION, moto_endpoint) as client:
        yield client


@pytest.fixture
async def queue_url(sqs: Any) -> str:
    """A standard queue of this test's own (with its dead-letter queue). Its visibility timeout
    is short, so that a message whose acknowledgement failed comes back within the test."""
    return await ensure_queue(
        sqs, f"delivery-{uuid.uuid4().hex[:12]}", fifo=False, visibility_timeout=VISIBILITY_S
    )


def app(database_url: str, queue_url: str, endpoint: str, clock: Clock | None = None) -> Any:
    """The app's container, as the processes build it (without their background services)."""
    return make_async_container(
        CoreProvider(clock=clock),
        SqlProvider(database_url),
        DatabaseSecretsProvider(KEYRING),
        QueueProvider(queue_url, AWS_REGION, endpoint),
        OutboxProvider(RATE_PER_SECOND, BURST),
        RunsProvider(allow_private_network=True),
        ScopesProvider(),
    )


@asynccontextmanager
async def running(container: AsyncContainer) -> AsyncIterator[AsyncContainer]:
    try:
        yield container
    finally:
        await container.close()


async def use(container: AsyncContainer, kind: type[U], call: Callable[[U], Awaitable[T]]) -> T:
    async with container() as scope:
        return await call(await scope.get(kind))


async def create_workflow(container: AsyncContainer, *actions: dict[str, Any]) -> Workflow:
    """A workflow of a manual trigger followed by `actions` in a chain."""
    nodes = [{"id": "start", "type": "trigger.manual", "parameters": {}}, *actions]
    edges = [
        {"source": source["id"], "target": target["id"]}
        for source, target in itertools.pairwise(nodes)
    ]
    command = WorkflowInput(name="Delivery", definition={"nodes": nodes, "edges": edges})
    return await use(container, CreateWorkflow, lambda create: create(ALICE, command))


async def execute(
    container: AsyncContainer, workflow: Workflow, execution_input: object = None
) -> Execution:
    command = ExecuteCommand(workflow.id, execution_input)
    return await use(container, ExecuteWorkflow, lambda run: run(ALICE, command))


async def get(container: AsyncContainer, execution: Execution) -> Execution:
    return await use(container, GetExecution, lambda read: read(ALICE, execution.id))


async def outbox_messages(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(outbox.c.message, outbox.c.attempts))).all()
    return [{"message": row.message, "attempts": row.attempts} for row in rows]


async def queue_depth(sqs: Any, queue_url: str) -> int:
    """Messages in the queue, visible, in flight or delayed."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    response = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
    return sum(int(response["Attributes"].get(name, 0)) for name in names)


async def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Receive (and delete) every message in the queue; their bodies."""
    bodies: list[dict[str, Any]] = []
    while True:
        response = await sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        messages = response.get("Messages") or []
        if not messages:
            if await queue_depth(sqs, queue_url) == 0:
                return bodies
            await asyncio.sleep(0.1)
            continue
        for raw in messages:
            bodies.append(json.loads(raw["Body"]))
            await sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=raw["ReceiptHandle"])


async def eventually(
    check: Callable[[], Awaitable[bool]],
    within: float,
    what: str,
    state: Callable[[], object] = lambda: "",
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what} {state()}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def worker_running(
    container: AsyncContainer, queue: ExecutionQueue, engine: Engine, concurrency: int
) -> AsyncIterator[None]:
    run = RunExecution(
        ScopedRunTransactions(container),
        engine,
        ScopedCredentialResolver(container),
        await container.get(Clock),
        heartbeat_s=2,
    )
    worker = Worker(
        queue,
        run,
        concurrency=concurrency,
        poll_seconds=1,
        visibility_seconds=VISIBILITY_S,
        extend_seconds=2,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def closed_port_url() -> str:
    """An endpoint where nothing listens: connections to it are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------


async def test_an_execution_requested_while_sqs_is_down_is_delivered_once_when_it_is_back(
    database: str, sqs: Any, queue_url: str, moto_endpoint: str
) -> None:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    async with running(app(database, queue_url, closed_port_url(), clock)) as down:
        workflow = await create_workflow(
            down, {"id": "set", "type": "data.set", "parameters": {"value": 1}}
        )
        execution = await execute(down, workflow)
        engine = await down.get(AsyncEngine)
        stored = await get(down, execution)
        pending = await outbox_messages(engine)

        relay_while_down = OutboxRelay(engine, await down.get(ExecutionQueue), clock)
        sent_while_down = await relay_while_down.deliver_due()
        after_failure = await outbox_messages(engine)

        async with running(app(database, queue_url, moto_endpoint, clock)) as up:
            relay = OutboxRelay(await up.get(AsyncEngine), await up.get(ExecutionQueue), clock)
            clock.advance(0.999)
            sent_during_backoff = await relay.deliver_due()
            clock.advance(0.001)
            sent_when_due = await relay.deliver_due()
            clock.advance(60)
            sent_after = await relay.deliver_due()
            left = await outbox_messages(engine)
            on_queue = await drain(sqs, queue_url)

    expected = ExecutionRequested.of(execution).to_json()
    assert (stored.status, stored.attempt) == (ExecutionStatus.QUEUED, 1)
    assert pending == [{"message": expected, "attempts": 0}]
    assert (sent_while_down, relay_while_down.queue_up) == (0, False)
    assert after_failure == [{"message": expected, "attempts": 1}]
    assert sent_during_backoff == 0, "the row waits out its 1 s backoff"
    assert (sent_when_due, relay.queue_up) == (1, True)
    assert sent_after == 0
    assert left == []
    assert on_queue == [expected], "on the queue exactly once"


async def test_a_stopping_relay_delivers_what_is_due_before_it_returns(
    database: str, sqs: Any, queue_url: str, moto_endpoint: str
) -> None:
    async with running(app(database, queue_url, moto_endpoint)) as container:
        workflow = await create_workflow(
            container, {"id": "set", "type": "data.set", "parameters": {"value": 1}}
        )
        executions = [await execute(container, workflow) for _ in range(3)]
        engine = await container.get(AsyncEngine)
        relay = OutboxRelay(engine, await container.get(ExecutionQueue), SystemClock())
        stopped = asyncio.Event()
        stopped.set()  # told to stop before it ever ran: the last requests just committed

        await relay.run(stopped)
        left = await outbox_messages(engine)
        on_queue = await drain(sqs, queue_url)

    assert left == []
    assert sorted(m["execution_id"] for m in on_queue) == sorted(str(e.id) for e in executions)


async def test_two_relays_deliver_every_execution_and_each_runs_exactly_once(
    database: str, sqs: Any, queue_url: str, moto_endpoint: str
) -> None:
    count, duplicated = 200, 20
    async with running(app(database, queue_url, moto_endpoint)) as container:
        workflow = await create_workflow(
            container, {"id": "set", "type": "data.set", "parameters": {"value": "{{ input.n }}"}}
        )
        executions = [await execute(container, workflow, {"n": n}) for n in range(count)]
        ids = {e.id for e in executions}

        # Two relays, as two API replicas have: an engine (pool) and an SQS client each.
        queue_a = RecordingQueue(await container.get(ExecutionQueue))
        relay_a = OutboxRelay(
            await container.get(AsyncEngine), queue_a, SystemClock(), batch_size=20
        )
        engine_b = create_engine(database)
        async with sqs_client(aioboto3.Session(), AWS_REGION, moto_endpoint) as client_b:
            queue_b = RecordingQueue(SqsExecutionQueue(client_b, queue_url))
            relay_b = OutboxRelay(engine_b, queue_b, SystemClock(), batch_size=20)

            async def relay_all(relay: OutboxRelay) -> None:
                while await relay.backlog() > 0:
                    await relay.deliver_due()
                    await asyncio.sleep(0)

            try:
                await asyncio.wait_for(asyncio.gather(relay_all(relay_a), relay_all(relay_b)), 20)
                backlog = await relay_a.backlog()
            finally:
                await engine_b.dispose()
        sent = queue_a.sent + queue_b.sent
        # And a queue that delivers some twice, as SQS may (or a relay that crashed mid-batch).
        producer = await container.get(ExecutionQueue)
        for execution in executions[:duplicated]:
            await producer.send(ExecutionRequested.of(execution))

        consumer = RecordingQueue(await container.get(ExecutionQueue))
        engine = CountingEngine(await container.get(Engine))

        async def all_done() -> bool:
            # The queue may deliver a message more than once: all are done when every message
            # sent was acknowledged (some perhaps twice) and nothing is left in the queue.
            return (
                sum(consumer.acked.values()) >= sum(sent.values()) + duplicated
                and await queue_depth(sqs, queue_url) == 0
            )

        def progress() -> str:
            return (
                f"(sent {sum(sent.values())} + {duplicated}, received "
                f"{sum(consumer.received.values())}, acknowledged {sum(consumer.acked.values())})"
            )

        async with worker_running(container, consumer, engine, concurrency=10):
            await eventually(all_done, 45, "the worker to consume every message", progress)
        finished = [await get(container, e) for e in executions]

    assert backlog == 0
    assert queue_a.sent, "both relays took part"
    assert queue_b.sent, "both relays took part"
    assert set(sent) == ids, "every execution reached the queue"
    assert all(times >= 1 for times in sent.values())
    assert set(consumer.received) == ids
    assert all(consumer.received[e.id] >= 2 for e in executions[:duplicated])
    assert engine.runs == Counter(range(count)), "each execution ran exactly once"
    for n, execution in enumerate(finished):
        assert execution.status is ExecutionStatus.SUCCEEDED
        assert [(s.node_id, s.status, s.output) for s in execution.steps] == [
            ("start", StepStatus.SUCCEEDED, {"n": n}),
            ("set", StepStatus.SUCCEEDED, n),
        ]


async def test_a_message_delivered_twice_runs_once(
    database: str, sqs: Any, queue_url: str, moto_endpoint: str
) -> None:
    with hook_server() as hook:
        async with running(app(database, queue_url, moto_endpoint)) as container:
            workflow = await create_workflow(
                container,
                {
                    "id": "call",
                    "type": "http.request",
                    "parameters": {"method": "GET", "url": hook.url},
                },
            )
            execution = await execute(container, workflow)
            queue = RecordingQueue(await container.get(ExecutionQueue))
            message = ExecutionRequested.of(execution)
            await queue.send(message)
            await queue.send(message)

            async def hit() -> bool:
                return hook.hits >= 1

            async def duplicate_skipped() -> bool:
                return queue.received[execution.id] == 2 and queue.acked[execution.id] == 1

            async def finished() -> bool:
                return queue.acked[execution.id] == 2 and await queue_depth(sqs, queue_url) == 0

            engine = await container.get(Engine)
            async with worker_running(container, queue, engine, concurrency=2):
                await eventually(hit, 15, "the run to call the hook")
                during = await get(container, execution)
                # The second delivery arrives while the first run holds the hook: it is
                # acknowledged and skipped.
                await eventually(duplicate_skipped, 15, "the duplicate to be skipped")
                hook.release.set()
                await eventually(finished, 15, "the run to finish")
            after = await get(container, execution)

    assert hook.hits == 1
    assert during.status is ExecutionStatus.RUNNING
    assert after.status is ExecutionStatus.SUCCEEDED
    assert after.started_at == during.started_at is not None
    assert [(s.node_id, s.status) for s in after.steps] == [
        ("start", StepStatus.SUCCEEDED),
        ("call", StepStatus.SUCCEEDED),
    ]
    assert after.steps[1].output["status"] == 200


async def test_a_killed_worker_leaves_its_execution_failed_as_worker_lost_and_retryable(
    database: str, sqs: Any, queue_url: str, moto_endpoint: str, tmp_path: Path
) -> None:
    env = clean_env(
        DATABASE_URL=database,
        WORKFLOW_QUEUE_URL=queue_url,
        SQS_ENDPOINT_URL=moto_endpoint,
        AWS_REGION=AWS_REGION,
        USE_DB_SECRETS="true",
        SECRETS_ENCRYPTION_KEY=KEYRING_TEXT,
        HTTP_NODE_ALLOW_PRIVATE_NETWORK="true",
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
    )
    async with running(app(database, queue_url, moto_endpoint)) as container:
        workflow = await create_workflow(
            container, {"id": "wait", "type": "util.delay", "parameters": {"seconds": 30}}
        )
        execution = await execute(container, workflow)
        relay = OutboxRelay(
            await container.get(AsyncEngine), await container.get(ExecutionQueue), SystemClock()
        )
        assert await relay.deliver_due() == 1

        log = tmp_path / "worker.log"
        with log.open("w") as out:
            process = await asyncio.create_subprocess_exec(
                FLOWBUILDER, "worker", env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:

            async def waiting() -> bool:
                assert process.returncode is None, f"the worker exited:\n{log.read_text()}"
                current = await get(container, execution)
                return current.status is ExecutionStatus.RUNNING and any(
                    s.node_id == "wait" and s.status is StepStatus.RUNNING for s in current.steps
                )

            await eventually(waiting, 20, "the worker to be in the middle of the delay")
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(process.wait(), 10)
        killed = await get(container, execution)
        lost_now = await use(container, FinishLostExecutions, lambda sweep: sweep())

    ahead = app(database, queue_url, moto_endpoint, AheadClock(timedelta(minutes=2)))
    async with running(ahead):
        lost_later = await use(ahead, FinishLostExecutions, lambda sweep: sweep())
        failed = await get(ahead, execution)
        retry = await use(ahead, RetryExecution, lambda again: again(ALICE, execution.id))
        queued = await get(ahead, retry)
        pending = await outbox_messages(await ahead.get(AsyncEngine))

    assert process.returncode == -signal.SIGKILL
    assert killed.status is ExecutionStatus.RUNNING, "nothing finished it yet"
    assert lost_now == 0, "a fresh heartbeat is not lost"
    assert lost_later == 1
    assert failed.status is ExecutionStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "worker_lost"
    assert failed.finished_at is not None
    assert (queued.status, queued.attempt, queued.retry_of) == (
        ExecutionStatus.QUEUED,
        2,
        execution.id,
    )
    assert queued.workflow_version == execution.workflow_version
    assert pending == [{"message": ExecutionRequested.of(retry).to_json(), "attempts": 0}]

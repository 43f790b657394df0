"""The ExecutionQueue contract, run against every adapter: in memory, and SQS standard and FIFO
queues on the session's local moto server.

Each SQS test gets queues of its own (a unique name, with its dead-letter queue and redrive
policy, made by `ensure_queue`), so tests never see each other's messages."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aioboto3
import pytest

from flowbuilder_adapters.queues.memory import (
    InMemoryDeadLetters,
    InMemoryExecutionQueue,
    NoDeadLetters,
)
from flowbuilder_adapters.queues.sqs import (
    SqsDeadLetters,
    SqsExecutionQueue,
    ensure_queue,
    sqs_client,
)
from flowbuilder_core.executions.model import ExecutionId, ExecutionRequested
from flowbuilder_core.executions.ports import DeadLetters, Delivery, ExecutionQueue
from flowbuilder_core.shared.errors import DependencyUnavailableError
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import WorkflowId

from support.aws_fixtures import AWS_REGION

MAX_RECEIVES = 2
MEMORY_VISIBILITY_S = 0.3
SQS_VISIBILITY_S = 1  # SQS counts whole seconds
API_KEYS = {
    "type",
    "version",
    "execution_id",
    "workflow_id",
    "workflow_version",
    "owner_id",
    "requested_at",
}
POISON_BODIES = {
    "not-json": "this is not JSON {",
    "json-array": "[1, 2, 3]",
    "other-type": json.dumps({"type": "workflow.deleted", "version": 1}),
    "other-version": json.dumps({"type": "execution.requested", "version": 2}),
    "missing-fields": json.dumps(
        {"type": "execution.requested", "version": 1, "execution_id": str(uuid.uuid4())}
    ),
    "bad-uuid": json.dumps(
        {
            "type": "execution.requested",
            "version": 1,
            "execution_id": "nope",
            "workflow_id": str(uuid.uuid4()),
            "workflow_version": 1,
            "owner_id": "user_1",
            "requested_at": "2026-03-01T12:00:00.000000Z",
        }
    ),
}


@dataclass
class Harness:
    """The queue under test and the test's ways around its port."""

    kind: str
    queue: ExecutionQueue
    visibility_timeout: float
    send_raw: Callable[[str], Awaitable[None]]
    dead_letters: Callable[[], Awaitable[list[str]]]
    client: Any = None  # the raw SQS client
    queue_url: str = ""
    dead: DeadLetters = field(default_factory=NoDeadLetters)  # the adapter's own view


# ---------------------------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------------------------


@asynccontextmanager
async def memory_harness() -> AsyncIterator[Harness]:
    queue = InMemoryExecutionQueue(
        visibility_timeout=MEMORY_VISIBILITY_S, max_receives=MAX_RECEIVES
    )

    async def send_raw(body: str) -> None:
        queue.send_raw(body)

    async def dead_letters() -> list[str]:
        return [letter.body for letter in queue.dead_letters]

    yield Harness(
        "memory",
        queue,
        MEMORY_VISIBILITY_S,
        send_raw,
        dead_letters,
        dead=InMemoryDeadLetters(queue),
    )


@asynccontextmanager
async def sqs_harness(endpoint: str, *, fifo: bool) -> AsyncIterator[Harness]:
    async with sqs_client(aioboto3.Session(), AWS_REGION, endpoint) as client:
        name = f"fb-test-{uuid.uuid4().hex}"
        suffix = ".fifo" if fifo else ""
        url = await ensure_queue(
            client,
            name,
            fifo=fifo,
            dead_letter_after=MAX_RECEIVES,
            visibility_timeout=SQS_VISIBILITY_S,
        )
        dlq_url = (await client.get_queue_url(QueueName=f"{name}-dlq{suffix}"))["QueueUrl"]

        async def send_raw(body: str) -> None:
            ids = {"MessageGroupId": "raw", "MessageDeduplicationId": uuid.uuid4().hex}
            await client.send_message(QueueUrl=url, MessageBody=body, **(ids if fifo else {}))

        async def dead_letters() -> list[str]:
            response = await client.receive_message(
                QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            return [message["Body"] for message in response.get("Messages", [])]

        kind = "sqs-fifo" if fifo else "sqs-standard"
        queue = SqsExecutionQueue(client, url)
        try:
            dead = SqsDeadLetters(client, url)
            yield Harness(kind, queue, SQS_VISIBILITY_S, send_raw, dead_letters, client, url, dead)
        finally:
            await client.delete_queue(QueueUrl=url)
            await client.delete_queue(QueueUrl=dlq_url)


def make_factory(
    request: pytest.FixtureRequest,
) -> Callable[[], AbstractAsyncContextManager[Harness]]:
    """The adapter's factory. Resolves the moto server here, outside the event loop."""
    name: str = request.param
    if name == "memory":
        return memory_harness
    endpoint: str = request.getfixturevalue("moto_endpoint")
    return lambda: sqs_harness(endpoint, fifo=name == "sqs-fifo")


@pytest.fixture(params=["memory", "sqs-standard", "sqs-fifo"])
def make_harness(
    request: pytest.FixtureRequest,
) -> Callable[[], AbstractAsyncContextManager[Harness]]:
    return make_factory(request)


@pytest.fixture(params=["sqs-standard", "sqs-fifo"])
def make_sqs_harness(
    request: pytest.FixtureRequest,
) -> Callable[[], AbstractAsyncContextManager[Harness]]:
    return make_factory(request)


@pytest.fixture
async def harness(
    make_harness: Callable[[], AbstractAsyncContextManager[Harness]],
) -> AsyncIterator[Harness]:
    async with make_harness() as harness:
        yield harness


@pytest.fixture
async def sqs(
    make_sqs_harness: Callable[[], AbstractAsyncContextManager[Harness]],
) -> AsyncIterator[Harness]:
    async with make_sqs_harness() as harness:
        yield harness


@pytest.fixture
def queue(harness: Harness) -> ExecutionQueue:
    return harness.queue


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def make_message(**overrides: Any) -> ExecutionRequested:
    fields: dict[str, Any] = {
        "execution_id": ExecutionId(uuid.uuid4()),
        "workflow_id": WorkflowId(uuid.uuid4()),
        "workflow_version": 3,
        "owner_id": UserId("user_2abcDEF"),
        "requested_at": datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
    }
    fields.update(overrides)
    return ExecutionRequested(**fields)


async def receive_one(queue: ExecutionQueue, wait_seconds: float = 5) -> Delivery:
    deliveries = await queue.receive(10, wait_seconds)
    assert len(deliveries) == 1, deliveries
    return deliveries[0]


# ---------------------------------------------------------------------------------------------
# send / receive / ack
# ---------------------------------------------------------------------------------------------


async def test_a_sent_message_is_received_whole_with_receive_count_1(
    queue: ExecutionQueue,
) -> None:
    message = make_message()
    await queue.send(message)

    delivery = await receive_one(queue)

    assert delivery.message == message
    assert delivery.message is not None
    assert delivery.message.requested_at == message.requested_at
    assert delivery.message.owner_id == message.owner_id
    assert delivery.receive_count == 1


async def test_messages_sent_many_at_once_all_arrive_and_are_reported_sent(
    queue: ExecutionQueue,
) -> None:
    messages = [make_message() for _ in range(13)]  # more than one SQS batch of ten

    sent = await queue.send_many(messages)
    received: list[Delivery] = []
    for _ in range(10):
        received += await queue.receive(10, 1)
        if len(received) >= len(messages):
            break

    assert sent == {m.execution_id for m in messages}
    assert sorted(str(d.message.execution_id) for d in received if d.message) == sorted(
        str(m.execution_id) for m in messages
    )


async def test_an_empty_queue_gives_nothing_after_the_wait(queue: ExecutionQueue) -> None:
    started = time.perf_counter()
    assert await queue.receive(10, 1) == []
    assert 0.5 <= time.perf_counter() - started < 5


async def test_receive_waits_for_a_message_sent_meanwhile(queue: ExecutionQueue) -> None:
    message = make_message()
    started = time.perf_counter()
    receiving = asyncio.create_task(queue.receive(1, 10))
    await asyncio.sleep(0.3)
    await queue.send(message)

    deliveries = await asyncio.wait_for(receiving, 15)

    assert [delivery.message for delivery in deliveries] == [message]
    assert time.perf_counter() - started < 5


async def test_receive_returns_at_most_max_messages(queue: ExecutionQueue) -> None:
    messages = [make_message() for _ in range(3)]
    for message in messages:
        await queue.send(message)

    received: list[Delivery] = []
    for _ in range(10):
        batch = await queue.receive(2, 1)
        assert len(batch) <= 2
        received += batch
        if len(received) >= 3:
            break

    assert sorted(str(d.message.execution_id) for d in received if d.message) == sorted(
        str(m.execution_id) for m in messages
    )


async def test_an_acknowledged_message_does_not_come_back(harness: Harness) -> None:
    await harness.queue.send(make_message())
    delivery = await receive_one(harness.queue)

    await harness.queue.ack(delivery)

    assert await harness.queue.receive(10, harness.visibility_timeout + 1) == []


# ---------------------------------------------------------------------------------------------
# Visibility
# ---------------------------------------------------------------------------------------------


async def test_an_unacknowledged_message_comes_back_after_its_visibility_timeout(
    harness: Harness,
) -> None:
    message = make_message()
    await harness.queue.send(message)
    first = await receive_one(harness.queue)
    assert await harness.queue.receive(10, 0) == []  # invisible for now

    again = await receive_one(harness.queue, harness.visibility_timeout + 3)

    assert again.message == message
    assert again.receive_count == 2
    await harness.queue.ack(again)
    assert first.receive_count == 1


async def test_extend_by_zero_makes_the_message_visible_at_once(queue: ExecutionQueue) -> None:
    message = make_message()
    await queue.send(message)
    first = await receive_one(queue)

    await queue.extend(first, 0)

    again = await receive_one(queue, 1)
    assert again.message == message
    assert again.receive_count == 2


async def test_extend_keeps_the_message_invisible(harness: Harness) -> None:
    await harness.queue.send(make_message())
    delivery = await receive_one(harness.queue)

    await harness.queue.extend(delivery, 30)
    await asyncio.sleep(harness.visibility_timeout + 0.5)

    assert await harness.queue.receive(10, 0) == []
    # The handle is still the message's: it can be released, and then it comes back.
    await harness.queue.extend(delivery, 0)
    assert (await receive_one(harness.queue, 1)).receive_count == 2


async def receive_all(queue: ExecutionQueue, count: int) -> list[Delivery]:
    received: list[Delivery] = []
    for _ in range(10):
        received += await queue.receive(10, 1)
        if len(received) >= count:
            break
    return received


async def test_ack_many_deletes_every_message_given_more_than_ten_at_once(
    harness: Harness,
) -> None:
    await harness.queue.send_many([make_message() for _ in range(12)])
    received = await receive_all(harness.queue, 12)

    await harness.queue.ack_many(received)

    assert len(received) == 12
    assert await harness.queue.receive(10, harness.visibility_timeout + 1) == []


async def test_extend_many_keeps_every_message_given_hidden_then_gives_them_back(
    harness: Harness,
) -> None:
    await harness.queue.send_many([make_message() for _ in range(12)])
    received = await receive_all(harness.queue, 12)

    await harness.queue.extend_many(received, 30)
    await asyncio.sleep(harness.visibility_timeout + 0.5)
    kept_hidden = await harness.queue.receive(10, 0)
    await harness.queue.extend_many(received, 0)
    back = await receive_all(harness.queue, 12)

    assert kept_hidden == []
    assert sorted(str(d.message.execution_id) for d in back if d.message) == sorted(
        str(d.message.execution_id) for d in received if d.message
    )


async def test_a_stale_handle_in_extend_many_changes_nothing_and_stops_none_of_the_others(
    queue: ExecutionQueue,
) -> None:
    await queue.send_many([make_message() for _ in range(3)])
    first, *others = await receive_all(queue, 3)
    await queue.extend(first, 0)
    again = await receive_one(queue, 1)  # the message's latest handle; `first`'s is stale

    await queue.extend_many([first, *others], 0)
    back = await receive_all(queue, 2)

    assert again.message == first.message
    assert sorted(str(d.message.execution_id) for d in back if d.message) == sorted(
        str(d.message.execution_id) for d in others if d.message
    )
    assert await queue.receive(10, 0) == [], "the stale handle did not give the message back"


# ---------------------------------------------------------------------------------------------
# Poison messages and the dead-letter queue
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", POISON_BODIES.values(), ids=POISON_BODIES.keys())
async def test_a_body_that_is_no_queue_message_is_delivered_as_poison(
    harness: Harness, body: str
) -> None:
    await harness.send_raw(body)

    delivery = await receive_one(harness.queue)

    assert delivery.message is None
    assert delivery.receive_count == 1
    await harness.queue.ack(delivery)  # a poison delivery can still be acknowledged
    assert await harness.queue.receive(10, 0) == []


@pytest.mark.parametrize("poison", [False, True], ids=["message", "poison"])
async def test_after_the_maximum_receive_count_a_message_goes_to_the_dead_letter_queue(
    harness: Harness, poison: bool
) -> None:
    message = make_message()
    if poison:
        body = "not a message"
        await harness.send_raw(body)
    else:
        body = json.dumps(message.to_json(), separators=(",", ":"))
        await harness.queue.send(message)

    for count in range(1, MAX_RECEIVES + 1):
        delivery = await receive_one(harness.queue)
        assert delivery.receive_count == count
        assert delivery.message == (None if poison else message)
        await harness.queue.extend(delivery, 0)  # given up on: visible again at once

    assert await harness.queue.receive(10, 1) == []
    assert await harness.dead_letters() == [body]


# ---------------------------------------------------------------------------------------------
# SQS only: the wire format, FIFO ids, queue setup and an unreachable endpoint
# ---------------------------------------------------------------------------------------------


async def test_the_sqs_body_is_exactly_the_api_message_with_its_type_attribute(
    sqs: Harness,
) -> None:
    message = make_message()
    await sqs.queue.send(message)

    response = await sqs.client.receive_message(
        QueueUrl=sqs.queue_url, WaitTimeSeconds=5, MessageAttributeNames=["All"]
    )

    [raw] = response["Messages"]
    body = json.loads(raw["Body"])
    assert set(body) == API_KEYS
    assert body == {
        "type": "execution.requested",
        "version": 1,
        "execution_id": str(message.execution_id),
        "workflow_id": str(message.workflow_id),
        "workflow_version": 3,
        "owner_id": "user_2abcDEF",
        "requested_at": "2026-03-01T12:00:00.123456Z",
    }
    assert raw["Body"] == json.dumps(body, separators=(",", ":"))  # compact
    assert raw["MessageAttributes"] == {
        "type": {"DataType": "String", "StringValue": "execution.requested"}
    }


async def test_fifo_groups_by_workflow_and_deduplicates_by_execution(
    moto_endpoint: str,
) -> None:
    async with sqs_harness(moto_endpoint, fifo=True) as sqs:
        assert sqs.queue_url.endswith(".fifo")
        message = make_message()
        await sqs.queue.send(message)
        await sqs.queue.send(message)  # the same execution again: deduplicated

        response = await sqs.client.receive_message(
            QueueUrl=sqs.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
        )

        [raw] = response["Messages"]
        assert raw["Attributes"]["MessageGroupId"] == str(message.workflow_id)
        assert raw["Attributes"]["MessageDeduplicationId"] == str(message.execution_id)


async def test_ensure_queue_sets_up_a_dead_letter_queue_and_can_run_again(
    moto_endpoint: str,
) -> None:
    async with sqs_client(aioboto3.Session(), AWS_REGION, moto_endpoint) as client:
        for fifo in (False, True):
            name = f"fb-test-{uuid.uuid4().hex}"
            url = await ensure_queue(client, name, fifo=fifo)
            again = await ensure_queue(client, name, fifo=fifo, dead_letter_after=3)
            suffix = ".fifo" if fifo else ""

            attributes = (await client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))[
                "Attributes"
            ]
            dlq_url = (await client.get_queue_url(QueueName=f"{name}-dlq{suffix}"))["QueueUrl"]
            dlq_arn = (
                await client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
            )["Attributes"]["QueueArn"]

            assert again == url
            assert url.endswith(f"/{name}{suffix}")
            assert attributes["VisibilityTimeout"] == "60"
            assert attributes.get("FifoQueue", "false") == str(fifo).lower()
            redrive = json.loads(attributes["RedrivePolicy"])
            assert redrive["deadLetterTargetArn"] == dlq_arn
            assert int(redrive["maxReceiveCount"]) == 3
            await client.delete_queue(QueueUrl=url)
            await client.delete_queue(QueueUrl=dlq_url)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.usefixtures("moto_endpoint")  # dummy credentials
async def test_an_unreachable_endpoint_is_a_dependency_unavailable_error_soon() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    async with sqs_client(aioboto3.Session(), AWS_REGION, endpoint) as client:
        queue = SqsExecutionQueue(client, f"{endpoint}/123456789012/nowhere")
        calls: list[Awaitable[object]] = [
            queue.send(make_message()),
            queue.receive(10, 20),
            queue.ack(Delivery(None, "receipt")),
            queue.extend(Delivery(None, "receipt"), 30),
            ensure_queue(client, "nowhere", fifo=False),
        ]
        started = time.perf_counter()
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        elapsed = time.perf_counter() - started

    # Three attempts with standard backoff in between: seconds, not the default minutes.
    assert elapsed < 10
    for outcome in outcomes:
        assert isinstance(outcome, DependencyUnavailableError), outcome
        assert str(outcome) == "The queue is unavailable."


async def test_a_dead_letter_is_read_back_through_the_port_and_gone_once_acknowledged(
    harness: Harness,
) -> None:
    message = make_message()
    await harness.queue.send(message)
    for _ in range(MAX_RECEIVES):
        await harness.queue.extend(await receive_one(harness.queue), 0)
    assert await harness.queue.receive(10, 1) == []  # this receive moves it aside

    letters = await harness.dead.receive(10)

    assert [letter.message for letter in letters] == [message]
    await harness.dead.ack(letters[0])
    await asyncio.sleep(harness.visibility_timeout + 0.2)
    assert await harness.dead.receive(10) == []

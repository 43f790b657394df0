"""The execution queue on Amazon SQS (standard or FIFO), over an open aioboto3 client."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from flowbuilder_core.executions.model import ExecutionId, ExecutionRequested
from flowbuilder_core.executions.ports import DeadLetters, Delivery, ExecutionQueue
from flowbuilder_core.shared.errors import DependencyUnavailableError

MAX_WAIT_SECONDS = 20  # SQS long polling waits 20 s at most
MAX_BATCH = 10  # SQS returns 10 messages at most per receive
MAX_VISIBILITY_SECONDS = 12 * 60 * 60
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = MAX_WAIT_SECONDS + 10  # a long poll must not time out the read
MAX_ATTEMPTS = 3  # in all, the first try included
DLQ_RETENTION_SECONDS = 14 * 24 * 60 * 60

UNAVAILABLE = "The queue is unavailable."

_log = logging.getLogger(__name__)

_TYPE_ATTRIBUTE = "type"
_FIFO_SUFFIX = ".fifo"
_QUEUE_EXISTS = frozenset({"QueueAlreadyExists", "QueueNameExists"})
_THROTTLING = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "KmsThrottled",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServiceError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def default_client_config() -> Config:
    """Bounded timeouts and retries: a request waits seconds, not minutes, for a dead endpoint,
    and a long poll (up to 20 s) still fits in the read timeout."""
    return Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    )


def sqs_client(
    session: aioboto3.Session,
    region: str,
    endpoint_url: str | None,
    *,
    config: Config | None = None,
) -> Any:
    """The async context manager of an SQS client; `endpoint_url` None means AWS itself."""
    return session.client(
        "sqs",
        region_name=region,
        endpoint_url=endpoint_url,
        config=config or default_client_config(),
    )


class SqsExecutionQueue(ExecutionQueue):
    """`ExecutionRequested` messages on one SQS queue, standard or FIFO (URL ends `.fifo`).

    The body is the compact JSON of docs/API.md (§7, "The queue message"), with the message
    attribute `type`; on a FIFO queue the message group is the workflow and the deduplication
    id the execution. A body that is not such a message is delivered as
    `Delivery(message=None)`: left unacknowledged, the queue's redrive policy moves it to the
    dead-letter queue. `handle` is the receipt handle.
    `client` is an open aioboto3 SQS client (see `sqs_client`).
    """

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url
        self._fifo = queue_url.endswith(_FIFO_SUFFIX)

    def __repr__(self) -> str:
        return f"SqsExecutionQueue(queue_url={self._queue_url!r})"

    async def send(self, message: ExecutionRequested) -> None:
        async with _translated():
            await self._client.send_message(QueueUrl=self._queue_url, **self._entry(message))

    async def send_many(self, messages: Sequence[ExecutionRequested]) -> set[ExecutionId]:
        sent: set[ExecutionId] = set()
        for start in range(0, len(messages), MAX_BATCH):
            chunk = {str(i): m for i, m in enumerate(messages[start : start + MAX_BATCH])}
            entries = [{"Id": key, **self._entry(m)} for key, m in chunk.items()]
            async with _translated():
                response = await self._client.send_message_batch(
                    QueueUrl=self._queue_url, Entries=entries
                )
            sent |= {chunk[ok["Id"]].execution_id for ok in response.get("Successful") or ()}
        return sent

    def _entry(self, message: ExecutionRequested) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "MessageBody": json.dumps(message.to_json(), separators=(",", ":")),
            "MessageAttributes": {
                _TYPE_ATTRIBUTE: {"DataType": "String", "StringValue": ExecutionRequested.TYPE}
            },
        }
        if self._fifo:
            entry["MessageGroupId"] = str(message.workflow_id)
            entry["MessageDeduplicationId"] = str(message.execution_id)
        return entry

    async def receive(self, max_messages: int, wait_seconds: float) -> Sequence[Delivery]:
        async with _translated():
            response = await self._client.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(max(max_messages, 1), MAX_BATCH),
                WaitTimeSeconds=min(max(math.ceil(wait_seconds), 0), MAX_WAIT_SECONDS),
                AttributeNames=["ApproximateReceiveCount"],
                MessageAttributeNames=["All"],
            )
        return [_delivery(raw) for raw in response.get("Messages") or ()]

    async def extend(self, delivery: Delivery, seconds: int) -> None:
        async with _translated():
            await self._client.change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=_receipt(delivery),
                VisibilityTimeout=min(max(seconds, 0), MAX_VISIBILITY_SECONDS),
            )

    async def ack(self, delivery: Delivery) -> None:
        async with _translated():
            await self._client.delete_message(
                QueueUrl=self._queue_url, ReceiptHandle=_receipt(delivery)
            )

    async def extend_many(self, deliveries: Sequence[Delivery], seconds: int) -> None:
        timeout = min(max(seconds, 0), MAX_VISIBILITY_SECONDS)
        for batch in _batches(deliveries):
            entries = [
                {"Id": str(i), "ReceiptHandle": _receipt(d), "VisibilityTimeout": timeout}
                for i, d in enumerate(batch)
            ]
            async with _translated():
                response = await self._client.change_message_visibility_batch(
                    QueueUrl=self._queue_url, Entries=entries
                )
            _log_refused("extend", response)

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        for batch in _batches(deliveries):
            entries = [{"Id": str(i), "ReceiptHandle": _receipt(d)} for i, d in enumerate(batch)]
            async with _translated():
                response = await self._client.delete_message_batch(
                    QueueUrl=self._queue_url, Entries=entries
                )
            _log_refused("delete", response)


class SqsDeadLetters(DeadLetters):
    """The dead-letter queue that the redrive policy of the queue at `queue_url` names, found
    on first use (and again after a failure); none when the queue has no redrive policy."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client, self._queue_url = client, queue_url
        self._dead: SqsExecutionQueue | None = None
        self._checked = False

    async def receive(self, max_messages: int) -> Sequence[Delivery]:
        dead = await self._dead_queue()
        return [] if dead is None else await dead.receive(max_messages, 0)

    async def ack(self, delivery: Delivery) -> None:
        dead = await self._dead_queue()
        if dead is not None:
            await dead.ack(delivery)

    async def _dead_queue(self) -> SqsExecutionQueue | None:
        if not self._checked:
            async with _translated():
                attributes = await self._client.get_queue_attributes(
                    QueueUrl=self._queue_url, AttributeNames=["RedrivePolicy"]
                )
                policy = (attributes.get("Attributes") or {}).get("RedrivePolicy")
                if policy is not None:
                    name = json.loads(policy)["deadLetterTargetArn"].rsplit(":", 1)[-1]
                    found = await self._client.get_queue_url(QueueName=name)
                    self._dead = SqsExecutionQueue(self._client, found["QueueUrl"])
            self._checked = True
            if self._dead is None:
                _log.warning("the queue has no redrive policy: no dead letters to account for")
        return self._dead


async def ensure_queue(
    client: Any,
    name: str,
    *,
    fifo: bool,
    dead_letter_after: int = 5,
    visibility_timeout: int = 60,
) -> str:
    """Create (or update) the queue `name` and its dead-letter queue `<name>-dlq` (FIFO:
    `<name>.fifo` and `<name>-dlq.fifo`): a message received more than `dead_letter_after`
    times moves to the dead-letter queue. Returns the queue URL.

    For tests, development and the LocalStack init: production queues are provisioned by the
    infrastructure."""
    base = name.removesuffix(_FIFO_SUFFIX)
    if name.endswith(_FIFO_SUFFIX) and not fifo:
        raise ValueError("Only a FIFO queue's name ends with .fifo.")
    if dead_letter_after < 1:
        raise ValueError("dead_letter_after must be at least 1.")
    suffix = _FIFO_SUFFIX if fifo else ""
    kind: dict[str, str] = {"FifoQueue": "true"} if fifo else {}
    async with _translated():
        dlq_url = await _create_or_update(
            client,
            f"{base}-dlq{suffix}",
            {**kind, "MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)},
        )
        attributes = await client.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["QueueArn"]
        )
        redrive = {
            "deadLetterTargetArn": attributes["Attributes"]["QueueArn"],
            "maxReceiveCount": str(dead_letter_after),
        }
        return await _create_or_update(
            client,
            f"{base}{suffix}",
            {
                **kind,
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(redrive, separators=(",", ":")),
            },
        )


async def _create_or_update(client: Any, name: str, attributes: Mapping[str, str]) -> str:
    try:
        response = await client.create_queue(QueueName=name, Attributes=dict(attributes))
        return str(response["QueueUrl"])
    except ClientError as error:
        if _code(error) not in _QUEUE_EXISTS:
            raise
    # It exists with other attributes: bring them up to date (FifoQueue cannot change).
    url = str((await client.get_queue_url(QueueName=name))["QueueUrl"])
    changeable = {key: value for key, value in attributes.items() if key != "FifoQueue"}
    await client.set_queue_attributes(QueueUrl=url, Attributes=changeable)
    return url


def _batches(deliveries: Sequence[Delivery]) -> list[Sequence[Delivery]]:
    return [deliveries[i : i + MAX_BATCH] for i in range(0, len(deliveries), MAX_BATCH)]


def _log_refused(action: str, response: Mapping[str, Any]) -> None:
    """A batch call's entries refused one by one (a stale receipt handle, mostly): their
    messages come back after their visibility timeout, which at-least-once delivery allows."""
    for failed in response.get("Failed") or ():
        _log.warning("SQS refused to %s a message: %s", action, failed.get("Code", "unknown"))


def _delivery(raw: Mapping[str, Any]) -> Delivery:
    count = int(raw.get("Attributes", {}).get("ApproximateReceiveCount") or 1)
    return Delivery(_decode(raw.get("Body")), raw["ReceiptHandle"], count)


def _decode(body: object) -> ExecutionRequested | None:
    if not isinstance(body, str):
        return None
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            return None
        return ExecutionRequested.from_json(document)
    except (ValueError, TypeError, OverflowError):
        return None


def _receipt(delivery: Delivery) -> str:
    if not isinstance(delivery.handle, str):
        raise TypeError("Not a delivery of an SQS queue.")
    return delivery.handle


def _code(error: ClientError) -> str:
    code = str(error.response.get("Error", {}).get("Code", ""))
    # The query protocol spells codes `AWS.SimpleQueueService.<Code>`.
    return code.removeprefix("AWS.SimpleQueueService.")


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """An unreachable, failing or throttling service is DependencyUnavailableError; any other
    client error (a missing queue, a bad receipt handle) stays as it is."""
    try:
        yield
    except ClientError as error:
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500 or _code(error) in _THROTTLING:
            raise DependencyUnavailableError(UNAVAILABLE) from error
        raise
    except (BotocoreConnectionError, HTTPClientError, NoCredentialsError) as error:
        raise DependencyUnavailableError(UNAVAILABLE) from error

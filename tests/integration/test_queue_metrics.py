"""Failed calls to the queue are counted by operation: SQS on the local moto server, its queue
deleted under the process."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import aioboto3
import pytest

from flowbuilder_adapters.metrics import REGISTRY, MeteredQueue
from flowbuilder_adapters.queues.sqs import SqsExecutionQueue, ensure_queue, sqs_client
from flowbuilder_core.executions.model import ExecutionId, ExecutionRequested
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import WorkflowId

from support.aws_fixtures import AWS_REGION

GONE = r"NonExistentQueue|QueueDoesNotExist"


def errors(operation: str) -> float:
    return (
        REGISTRY.get_sample_value("flowbuilder_queue_errors_total", {"operation": operation}) or 0.0
    )


async def test_failed_sends_and_receives_are_counted_and_still_raise(moto_endpoint: str) -> None:
    message = ExecutionRequested(
        ExecutionId(uuid.uuid4()), WorkflowId(uuid.uuid4()), 1, UserId("user_a"), datetime.now(UTC)
    )
    async with sqs_client(aioboto3.Session(), AWS_REGION, moto_endpoint) as client:
        url = await ensure_queue(client, f"fb-metrics-{uuid.uuid4().hex}", fifo=False)
        queue = MeteredQueue(SqsExecutionQueue(client, url))
        await queue.send_many([message])
        before = {operation: errors(operation) for operation in ("send", "receive")}
        await client.delete_queue(QueueUrl=url)

        with pytest.raises(Exception, match=GONE):
            await queue.receive(1, 0)
        with pytest.raises(Exception, match=GONE):
            await queue.send_many([message])

    assert errors("receive") == before["receive"] + 1
    assert errors("send") == before["send"] + 1

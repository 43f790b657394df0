"""A `when_finished` webhook request whose owner has no stream left to wait with is answered
the 202 of a requested run, never a 429 that would have the sender deliver it again."""

from __future__ import annotations

import uuid
from typing import Any, cast

from flowbuilder_core.executions.events import FollowExecution
from flowbuilder_core.executions.model import ExecutionId
from flowbuilder_core.shared.errors import RateLimitedError
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.webhooks.model import (
    Awaited,
    Received,
    WebhookAnswer,
    WebhookRequest,
)
from flowbuilder_core.webhooks.use_cases import DeliverWebhook

EXECUTION = ExecutionId(uuid.uuid4())


class Steps:
    """The request's units of work: it was taken, its run requested, and is to be awaited."""

    def __init__(self) -> None:
        self.recorded: list[WebhookAnswer] = []

    async def receive(self, request: WebhookRequest) -> Received:
        awaited = Awaited(UserId("user_alice"), EXECUTION, frozenset(), "hook-1", "delivery-1")
        return Received(WebhookAnswer.accepted(EXECUTION), awaited=awaited)

    async def record(self, hook_id: str, delivery_key: str, answer: WebhookAnswer) -> None:
        self.recorded.append(answer)


class NoStreamLeft:
    """FollowExecution for an owner who holds `max_event_streams` open streams already."""

    async def __call__(self, *_: Any) -> Any:
        raise RateLimitedError("Too many open event streams; close one first.", 5)


async def test_a_wait_refused_for_want_of_a_stream_answers_the_202_of_the_requested_run() -> None:
    steps = Steps()
    deliver = DeliverWebhook(steps, cast(FollowExecution, NoStreamLeft()), wait_s=5)

    received = await deliver(WebhookRequest("hook-1", "POST", "/hooks/hook-1", [], [], b"{}"))

    assert received.answer == WebhookAnswer.accepted(EXECUTION)
    assert received.answer.status == 202
    assert steps.recorded == [], "the 202 recorded with the run stays the delivery's answer"

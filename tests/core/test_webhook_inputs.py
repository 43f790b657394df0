"""What a webhook's run gets as input, and what a `when_finished` request is answered."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    ExecutionStatus,
    StepResult,
    StepStatus,
)
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.webhooks.answers import answer_of
from flowbuilder_core.webhooks.inputs import run_input
from flowbuilder_core.webhooks.model import AnswerKind, WebhookAnswer, WebhookRequest
from flowbuilder_core.workflows.model import WorkflowId

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EXECUTION = ExecutionId(uuid.uuid4())


def request(body: bytes, content_type: str = "application/json", **extra: str) -> WebhookRequest:
    headers = [("content-type", content_type), *extra.items()]
    return WebhookRequest("h", "POST", "/hooks/h", [("a", "1")], headers, body)


def test_the_input_has_the_documented_shape() -> None:
    made = run_input(request(b'{"x": [1, 2.5, null]}', **{"x-a": "1"}), AT)

    assert made == {
        "method": "POST",
        "path": "/hooks/h",
        "query": {"a": "1"},
        "headers": {"content-type": "application/json", "x-a": "1"},
        "body": {"x": [1, 2.5, None]},
        "received_at": "2026-03-01T12:00:00.000000Z",
    }


def test_credentials_signatures_and_tokens_never_reach_the_input() -> None:
    secret_headers = {
        "authorization": "Bearer t",
        "cookie": "c=1",
        "x-flowbuilder-signature": "t=1,v1=00",
        "x-flowbuilder-token": "tok",
        "x-hub-signature-256": "sha256=00",
        "x-hub-signature": "sha1=00",
    }

    made = run_input(request(b"{}", **secret_headers), AT)

    assert set(made["headers"]) == {"content-type"}


def test_repeated_headers_are_joined_and_repeated_query_names_listed() -> None:
    req = WebhookRequest(
        "h", "GET", "/hooks/h", [("a", "1"), ("a", "2"), ("b", "")], [("x", "1"), ("x", "2")], b""
    )

    made = run_input(req, AT)

    assert made["query"] == {"a": ["1", "2"], "b": ""}
    assert made["headers"] == {"x": "1, 2"}
    assert made["body"] is None


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"a": 1}', "application/vnd.api+json; charset=utf-8", {"a": 1}),
        (b'{"a": 1}', "text/plain", '{"a": 1}'),
        (b"not json", "application/json", "not json"),
        (b"\xff\xfe", "application/octet-stream", "\ufffd\ufffd"),
        (b'{"a": 1e999}', "application/json", '{"a": 1e999}'),
        (b'{"a": NaN}', "application/json", '{"a": NaN}'),
        (b'{"a": 123456789012345678901234567890}', "application/json", None),
        (b"[" * 66 + b"]" * 66, "application/json", "[" * 66 + "]" * 66),
        (b"[" * 100_000, "application/json", "[" * 100_000),
        (b'{"k\\u0000": "v\\u0000"}', "application/json", {"k\ufffd": "v\ufffd"}),
        (b"nul \x00 text", "text/plain", "nul \ufffd text"),
    ],
)
def test_a_body_is_json_the_database_keeps_or_else_text(
    body: bytes, content_type: str, expected: object
) -> None:
    made = run_input(request(body, content_type), AT)["body"]

    if expected is None:
        expected = body.decode()
    assert made == expected
    assert "\x00" not in json.dumps(made)


def test_nesting_at_the_limit_stays_json() -> None:
    body = b"[" * 65 + b"]" * 65  # the innermost value 64 levels below the body

    assert isinstance(run_input(request(body), AT)["body"], list)


def step(node: str, output: object, status: StepStatus = StepStatus.SUCCEEDED) -> StepResult:
    return StepResult(node, status, output=output)


def test_a_respond_node_decides_the_answer() -> None:
    answer = answer_of(
        EXECUTION,
        ExecutionStatus.SUCCEEDED,
        [
            step("hook", {}),
            step("reply", {"status": 201, "headers": {"X-A": "1"}, "body": {"ok": True}}),
            step("later", "last"),
        ],
        frozenset({"reply", "other"}),
    )

    assert answer == WebhookAnswer(
        AnswerKind.RESPONSE, EXECUTION, 201, (("X-A", "1"),), {"ok": True}
    )


def test_without_a_respond_node_that_ran_the_last_output_is_a_200() -> None:
    steps = [step("hook", {}), step("reply", None, StepStatus.SKIPPED), step("last", [1])]

    answer = answer_of(EXECUTION, ExecutionStatus.SUCCEEDED, steps, frozenset({"reply"}))

    assert (answer.kind, answer.status, answer.body) == (AnswerKind.RESPONSE, 200, [1])


@pytest.mark.parametrize("status", [ExecutionStatus.FAILED, ExecutionStatus.CANCELLED])
def test_a_run_that_did_not_succeed_is_a_502(status: ExecutionStatus) -> None:
    answer = answer_of(EXECUTION, status, [step("reply", {"status": 200})], frozenset({"reply"}))

    assert (answer.kind, answer.status, answer.execution_id) == (AnswerKind.FAILED, 502, EXECUTION)


def test_an_answer_survives_its_record() -> None:
    answer = WebhookAnswer(AnswerKind.RESPONSE, EXECUTION, 418, (("A", "b"),), {"é": [None]})

    assert WebhookAnswer.from_bytes(answer.to_bytes()) == answer


def test_a_retry_is_triggered_by_retry_and_keeps_the_first_trigger() -> None:
    first = Execution(
        id=EXECUTION,
        owner_id=UserId("u"),
        workflow_id=WorkflowId(uuid.uuid4()),
        workflow_version=1,
        trigger="webhook",
        status=ExecutionStatus.FAILED,
        created_at=AT,
    )

    retry = first.retried(id=ExecutionId(uuid.uuid4()), at=AT)
    retry.status = ExecutionStatus.CANCELLED
    again = retry.retried(id=ExecutionId(uuid.uuid4()), at=AT)

    assert (retry.trigger, retry.retried_trigger, retry.retry_of) == ("retry", "webhook", first.id)
    assert (again.trigger, again.retried_trigger, again.attempt) == ("retry", "webhook", 3)

"""Per-node error policies in the engine: `retry` with jittered exponential backoff, and
`on_error` fail, continue and branch."""

from __future__ import annotations

import pytest

from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import ExecutionError, ExecutionStatus, StepStatus
from flowbuilder_core.executions.retries import backoff_s
from flowbuilder_core.workflows.model import Edge, OnError, RetryPolicy

from support.engine_runs import START, FlakyRunner, chain, node, run

RETRY_3 = RetryPolicy(max_attempts=3, backoff_s=1.0, max_backoff_s=30.0)


def http(node_id: str, **policy: object) -> object:
    return node(node_id, "http.request", method="GET", url="https://example.com", **policy)


async def test_a_failing_node_is_tried_again_and_its_step_records_the_attempts() -> None:
    flaky = FlakyRunner({"fetch": 2})

    result = await run(
        (START, http("fetch", retry=RETRY_3)),
        chain("start", "fetch"),
        runners={"http.request": flaky},
    )

    assert result.outcome.status is ExecutionStatus.SUCCEEDED
    step = result.final("fetch")
    assert (step.status, step.attempts, step.output, step.error) == (
        StepStatus.SUCCEEDED,
        3,
        {"call": 3},
        None,
    )
    assert flaky.calls == ["fetch", "fetch", "fetch"]
    # Equal jitter at 0.5: half the doubling backoff, plus half of the other half.
    assert result.sleeps == [0.75, 1.5]


async def test_a_node_that_fails_every_attempt_fails_the_run_with_its_last_error() -> None:
    flaky = FlakyRunner({"fetch": 5})

    result = await run(
        (START, http("fetch", retry=RETRY_3), node("after", value=1)),
        chain("start", "fetch", "after"),
        runners={"http.request": flaky},
    )

    step = result.final("fetch")
    assert (step.status, step.attempts) == (StepStatus.FAILED, 3)
    assert step.error == ExecutionError("http_status", "The server answered 503.", "fetch")
    assert step.output == {"s": 1}  # what the last attempt left
    assert result.outcome.error == step.error
    assert result.statuses()["after"] is StepStatus.SKIPPED
    assert len(flaky.calls) == 3


def test_the_wait_doubles_up_to_its_ceiling_and_jitter_spreads_the_upper_half() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_s=2.0, max_backoff_s=5.0)

    waits = [backoff_s(policy, attempt, 0.0) for attempt in (1, 2, 3, 4)]

    assert waits == [1.0, 2.0, 2.5, 2.5]
    assert backoff_s(policy, 4, 0.999) == pytest.approx(4.9975)


async def test_failures_another_attempt_would_repeat_are_not_retried() -> None:
    flaky = FlakyRunner({"fetch": 9}, NodeFailedError("invalid_parameters", "Bad."))
    broken = node("broken", value="{{ input.a.b( }}", retry=RETRY_3, on_error=OnError.CONTINUE)

    result = await run(
        (START, broken, http("fetch", retry=RETRY_3)),
        chain("start", "broken", "fetch"),
        runners={"http.request": flaky},
    )

    broken_step, fetch_step = result.final("broken"), result.final("fetch")
    assert broken_step.error is not None
    assert (broken_step.error.code, broken_step.attempts) == ("expression_error", 1)
    assert fetch_step.error is not None
    assert (fetch_step.error.code, fetch_step.attempts) == ("invalid_parameters", 1)
    assert result.sleeps == []
    assert flaky.calls == ["fetch"]


async def test_a_run_stopped_while_a_node_waits_to_retry_ends_cancelled_at_once() -> None:
    flaky = FlakyRunner({"fetch": 5})

    # Questions: two for start, two for fetch (before it starts, once its start is
    # reported), after fetch's first failure (stop).
    result = await run(
        (START, http("fetch", retry=RETRY_3), node("after", value=1)),
        chain("start", "fetch", "after"),
        runners={"http.request": flaky},
        stop_after=4,
    )

    assert result.outcome.status is ExecutionStatus.CANCELLED
    assert flaky.calls == ["fetch"]
    step = result.final("fetch")
    assert (step.status, step.attempts) == (StepStatus.FAILED, 1)
    assert result.statuses()["after"] is StepStatus.SKIPPED


async def test_under_continue_a_failed_node_lets_the_run_go_on_with_its_error_as_output() -> None:
    flaky = FlakyRunner({"fetch": 1})

    result = await run(
        (
            START,
            http("fetch", on_error=OnError.CONTINUE),
            node("after", value="{{ nodes.fetch }}"),
        ),
        chain("start", "fetch", "after"),
        runners={"http.request": flaky},
    )

    assert result.outcome.status is ExecutionStatus.SUCCEEDED
    assert result.statuses() == {
        "start": StepStatus.SUCCEEDED,
        "fetch": StepStatus.FAILED,
        "after": StepStatus.SUCCEEDED,
    }
    assert result.final("after").output == {
        "error": {"code": "http_status", "message": "The server answered 503."}
    }


async def test_under_branch_a_failure_follows_only_the_error_edges() -> None:
    flaky = FlakyRunner({"fetch": 1})
    nodes = (
        START,
        http("fetch", on_error=OnError.BRANCH),
        node("ok", value=1),
        node("handle", value="{{ nodes.fetch.error.code }}"),
    )
    edges = (*chain("start", "fetch"), Edge("fetch", "ok"), Edge("fetch", "handle", "error"))

    failed = await run(nodes, edges, runners={"http.request": flaky})
    succeeded = await run(nodes, edges, runners={"http.request": FlakyRunner()})

    assert failed.outcome.status is ExecutionStatus.SUCCEEDED
    assert failed.statuses()["ok"] is StepStatus.SKIPPED
    assert failed.final("handle").output == "http_status"
    assert succeeded.statuses()["ok"] is StepStatus.SUCCEEDED
    assert succeeded.statuses()["handle"] is StepStatus.SKIPPED


async def test_a_retried_node_under_continue_goes_on_only_after_its_last_attempt() -> None:
    flaky = FlakyRunner({"fetch": 9})

    result = await run(
        (START, http("fetch", retry=RETRY_3, on_error=OnError.CONTINUE), node("after", value=1)),
        chain("start", "fetch", "after"),
        runners={"http.request": flaky},
    )

    assert result.outcome.status is ExecutionStatus.SUCCEEDED
    assert result.final("fetch").attempts == 3
    assert result.statuses()["after"] is StepStatus.SUCCEEDED

"""The executions API over the in-memory adapters (no worker: executions stay queued unless a
test moves them)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.memory import MemoryStore
from flowbuilder_adapters.wiring import MemoryProvider
from flowbuilder_core.executions.model import (
    ExecutionError,
    ExecutionId,
    ExecutionStatus,
    StepResult,
    StepStatus,
)

from support.factories import make_workflow_body
from support.http_app import make_test_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]

RUNNABLE = {
    "name": "Runnable",
    "definition": {
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "set", "type": "data.set", "parameters": {"value": "{{ input.x }}"}},
        ],
        "edges": [{"source": "start", "target": "set"}],
    },
}


async def workflow(client: Client, auth: Auth, user: str = "user_alice", body: Any = None) -> str:
    response = await client.post("/api/workflows", json=body or RUNNABLE, headers=auth(user))
    return str(response.headers["location"])


async def execute(client: Client, auth: Auth, url: str, **kwargs: Any) -> Any:
    return await client.post(f"{url}/execute", headers=kwargs.pop("headers", auth()), **kwargs)


def finish(store: MemoryStore, execution_id: str, status: ExecutionStatus) -> None:
    execution = store.executions[ExecutionId(uuid.UUID(execution_id))]
    now = datetime.now(UTC)
    execution.start(at=now)
    if status is ExecutionStatus.FAILED:
        execution.fail(ExecutionError("boom", "it failed", "set"), at=now)
    else:
        execution.succeed(at=now)


async def test_execute_answers_202_with_the_queued_execution_and_its_location(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    url = await workflow(client, auth)

    response = await execute(client, auth, url, json={"input": {"x": 1}})

    body = response.json()
    assert response.status_code == 202
    assert response.headers["location"] == f"/api/executions/{body['id']}"
    assert (body["status"], body["workflow_version"], body["attempt"]) == ("queued", 1, 1)
    assert (body["input"], body["steps"], body["trigger"]) == ({"x": 1}, [], "manual")
    assert [m.execution_id for m in store.outbox] == [uuid.UUID(body["id"])]


async def test_execute_needs_no_body_at_all(client: Client, auth: Auth) -> None:
    url = await workflow(client, auth)

    response = await client.post(f"{url}/execute", headers=auth())

    assert (response.status_code, response.json()["input"]) == (202, {})


async def test_a_workflow_that_cannot_run_is_422_listing_every_problem(
    client: Client, auth: Auth
) -> None:
    url = await workflow(
        client, auth, body=make_workflow_body(definition={"nodes": [], "edges": []})
    )

    response = await execute(client, auth, url)

    assert response.status_code == 422
    assert response.json()["type"].endswith("workflow-not-runnable")
    assert response.json()["errors"][0]["field"] == "/definition/nodes"


async def test_input_must_be_an_object_of_at_most_64_kib(client: Client, auth: Auth) -> None:
    url = await workflow(client, auth)

    too_big = await execute(client, auth, url, json={"input": {"x": "y" * 70_000}})
    not_object = await execute(client, auth, url, json={"input": [1]})
    unknown = await execute(client, auth, url, json={"inputs": {}})

    assert [r.status_code for r in (too_big, not_object, unknown)] == [422, 422, 422]
    assert too_big.json()["errors"][0]["field"] == "/input"


async def test_input_with_a_nul_or_nested_too_deeply_is_422_naming_each_value(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    url = await workflow(client, auth)
    deep: Any = "bottom"
    for _ in range(70):
        deep = [deep]

    response = await execute(
        client,
        auth,
        url,
        json={"input": {"note": "a\u0000b", "items": [{"ok": 1}, {"k\u0000": 2}], "deep": deep}},
    )

    assert response.status_code == 422
    assert [(e["field"], e["message"]) for e in response.json()["errors"]] == [
        ("/input/deep" + "/0" * 64, "must not be nested deeper than 64 levels"),
        ("/input/items/1", "keys must not contain the NUL character"),
        ("/input/note", "must not contain the NUL character"),
    ]
    assert store.executions == {}


async def test_get_and_lists_show_an_execution_lists_without_input_or_steps(
    client: Client, auth: Auth
) -> None:
    url = await workflow(client, auth)
    created = (await execute(client, auth, url, json={"input": {"x": 1}})).json()

    one = await client.get(f"/api/executions/{created['id']}", headers=auth())
    listed = await client.get("/api/executions", headers=auth())
    of_workflow = await client.get(f"{url}/executions", headers=auth())

    assert one.json() == created
    for page in (listed.json(), of_workflow.json()):
        assert [e["id"] for e in page["items"]] == [created["id"]]
        assert "input" not in page["items"][0]
        assert "steps" not in page["items"][0]


async def test_lists_filter_by_status_workflow_and_creation_window(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    first_url, second_url = await workflow(client, auth), await workflow(client, auth)
    a = (await execute(client, auth, first_url)).json()
    b = (await execute(client, auth, second_url)).json()
    c = (await execute(client, auth, second_url)).json()
    finish(store, a["id"], ExecutionStatus.FAILED)
    finish(store, c["id"], ExecutionStatus.SUCCEEDED)

    async def ids(query: str) -> list[str]:
        return [
            e["id"]
            for e in (await client.get(f"/api/executions?{query}", headers=auth())).json()["items"]
        ]

    second_id = second_url.rsplit("/", 1)[1]
    assert await ids("status=failed&status=succeeded") == [c["id"], a["id"]]
    assert await ids(f"workflow_id={second_id}") == [c["id"], b["id"]]
    assert await ids(f"created_after={b['created_at']}") == [c["id"], b["id"]]
    assert await ids(f"created_before={b['created_at']}") == [a["id"]]
    assert await ids("status=queued") == [b["id"]]


async def test_bad_list_filters_are_422_naming_the_parameter(client: Client, auth: Auth) -> None:
    for query, field in (
        ("status=done", "query:status"),
        ("workflow_id=nope", "query:workflow_id"),
        ("created_after=yesterday", "query:created_after"),
        ("created_before=2026-01-01T00:00:00", "query:created_before"),
        ("limit=0", "query:limit"),
    ):
        response = await client.get(f"/api/executions?{query}", headers=auth())
        assert response.status_code == 422, query
        assert response.json()["errors"][0]["field"] == field


async def test_cancel_is_202_once_and_409_when_finished(client: Client, auth: Auth) -> None:
    url = await workflow(client, auth)
    created = (await execute(client, auth, url)).json()
    cancel_url = f"/api/executions/{created['id']}/cancel"

    cancelled = await client.post(cancel_url, headers=auth())
    again = await client.post(cancel_url, headers=auth())

    assert (cancelled.status_code, cancelled.json()["status"]) == (202, "cancelled")
    assert cancelled.json()["finished_at"] is not None
    assert again.status_code == 409


async def test_retry_runs_a_failed_or_cancelled_execution_again_and_refuses_others(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    url = await workflow(client, auth)
    queued = (await execute(client, auth, url, json={"input": {"x": 2}})).json()
    failed = (await execute(client, auth, url)).json()
    finish(store, failed["id"], ExecutionStatus.FAILED)

    refused = await client.post(f"/api/executions/{queued['id']}/retry", headers=auth())
    retried = await client.post(f"/api/executions/{failed['id']}/retry", headers=auth())
    await client.post(f"/api/executions/{queued['id']}/cancel", headers=auth())
    after_cancel = await client.post(f"/api/executions/{queued['id']}/retry", headers=auth())

    assert refused.status_code == 409
    assert retried.status_code == 202
    assert retried.headers["location"] == f"/api/executions/{retried.json()['id']}"
    assert (retried.json()["attempt"], retried.json()["workflow_version"]) == (2, 1)
    assert (after_cancel.status_code, after_cancel.json()["input"]) == (202, {"x": 2})


async def test_retry_keeps_the_version_it_pinned(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    url = await workflow(client, auth)
    failed = (await execute(client, auth, url)).json()
    finish(store, failed["id"], ExecutionStatus.FAILED)
    await client.put(url, json=RUNNABLE, headers=auth())

    retried = await client.post(f"/api/executions/{failed['id']}/retry", headers=auth())

    assert retried.json()["workflow_version"] == 1


async def test_another_users_executions_are_404_like_missing_ones(
    client: Client, auth: Auth
) -> None:
    url = await workflow(client, auth)
    execution_id = (await execute(client, auth, url)).json()["id"]

    for method, path in (
        ("GET", f"/api/executions/{execution_id}"),
        ("POST", f"/api/executions/{execution_id}/cancel"),
        ("POST", f"/api/executions/{execution_id}/retry"),
        ("POST", f"{url}/execute"),
        ("GET", f"{url}/executions"),
    ):
        theirs = await client.request(method, path, headers=auth("user_bob"))
        assert theirs.status_code == 404, path
    assert (await client.get("/api/executions", headers=auth("user_bob"))).json()["items"] == []


@pytest.fixture
async def limited(issuer: DevTokenIssuer) -> AsyncIterator[tuple[Client, MemoryStore]]:
    store = MemoryStore()
    app = make_test_app(issuer, MemoryProvider(store, rate_per_second=1, burst=2))
    async with AsyncTestClient(app) as client:
        yield client, store


async def test_execute_and_retry_share_a_rate_limit_answered_with_429_and_retry_after(
    limited: tuple[Client, MemoryStore], auth: Auth
) -> None:
    client, store = limited
    url = await workflow(client, auth)
    first = (await execute(client, auth, url, headers={**auth(), "Idempotency-Key": "once"})).json()
    finish(store, first["id"], ExecutionStatus.FAILED)

    replay = await execute(client, auth, url, headers={**auth(), "Idempotency-Key": "once"})
    retried = await client.post(f"/api/executions/{first['id']}/retry", headers=auth())
    limited_execute = await execute(client, auth, url)
    limited_retry = await client.post(f"/api/executions/{first['id']}/retry", headers=auth())
    other_user = await execute(
        client, auth, await workflow(client, auth, "user_bob"), headers=auth("user_bob")
    )

    assert replay.headers["idempotent-replayed"] == "true"
    assert retried.status_code == 202
    assert limited_execute.status_code == 429
    assert int(limited_execute.headers["retry-after"]) >= 1
    assert limited_execute.headers["content-type"] == "application/problem+json"
    assert limited_retry.status_code == 429
    assert other_user.status_code == 202


def parse_events(text: str) -> list[dict[str, str]]:
    """The events of an SSE body, each as its fields (comments dropped)."""
    events = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":")
        )
        if fields:
            events.append(fields)
    return events


async def test_the_events_of_a_finished_run_stream_in_order_and_resume_after_the_last_id(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    url = await workflow(client, auth)
    execution_id = (await execute(client, auth, url)).json()["id"]
    execution = store.executions[ExecutionId(uuid.UUID(execution_id))]
    now = datetime.now(UTC)
    execution.start(at=now)
    execution.record(StepResult("start", StepStatus.SUCCEEDED, now, now, {}))
    execution.record(StepResult("set", StepStatus.SUCCEEDED, now, now, 1))
    execution.succeed(at=now)
    events_url = f"/api/executions/{execution_id}/events"

    whole = await client.get(events_url, headers=auth())
    resumed = await client.get(events_url, headers={**auth(), "Last-Event-ID": "3"})
    foreign = await client.get(events_url, headers=auth("user_bob"))

    assert whole.status_code == 200
    assert whole.headers["content-type"].startswith("text/event-stream")
    events = parse_events(whole.text)
    assert [(e["id"], e["event"]) for e in events] == [
        ("0", "status"),
        ("1", "step"),
        ("2", "step"),
        ("3", "step"),
        ("4", "step"),
        ("5", "status"),
        ("6", "end"),
    ]
    assert [json.loads(events[i]["data"])["status"] for i in (0, 1, 2, 5)] == [
        "running",
        "running",
        "succeeded",
        "succeeded",
    ]
    assert [e["id"] for e in parse_events(resumed.text)] == ["4", "5", "6"]
    assert foreign.status_code == 404

"""The engine's node types and error policies as the HTTP API shows them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_adapters.memory import MemoryStore
from flowbuilder_core.executions.model import (
    ExecutionError,
    ExecutionId,
    StepResult,
    StepStatus,
)

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]

FLAKY = {
    "id": "fetch",
    "type": "http.request",
    "parameters": {"method": "GET", "url": "https://example.com"},
    "retry": {"max_attempts": 5, "backoff_s": 0.5, "max_backoff_s": 10.0},
    "on_error": "branch",
}
DEFINITION = {
    "nodes": [
        {"id": "start", "type": "trigger.manual", "parameters": {}},
        FLAKY,
        {"id": "alert", "type": "flow.output", "parameters": {"value": "{{ nodes.fetch }}"}},
    ],
    "edges": [
        {"source": "start", "target": "fetch"},
        {"source": "fetch", "target": "alert", "source_output": "error"},
    ],
}


async def test_a_node_s_error_policy_round_trips_through_the_api(
    client: Client, auth: Auth
) -> None:
    created = await client.post(
        "/api/workflows", json={"name": "w", "definition": DEFINITION}, headers=auth()
    )

    assert created.status_code == 201, created.text
    read = await client.get(created.headers["location"], headers=auth())
    assert read.json()["definition"] == DEFINITION


async def test_a_bad_error_policy_is_422_naming_it_by_pointer(client: Client, auth: Auth) -> None:
    bad = {**DEFINITION, "nodes": [DEFINITION["nodes"][0], {**FLAKY, "retry": {"max_attempts": 0}}]}

    response = await client.post(
        "/api/workflows", json={"name": "w", "definition": bad}, headers=auth()
    )

    assert response.status_code == 422
    fields = {error["field"]: error["message"] for error in response.json()["errors"]}
    assert fields["/definition/nodes/1/retry/max_attempts"] == "must be an integer from 1 to 10"


async def test_node_types_list_the_switch_merge_and_output_with_their_schemas(
    client: Client, auth: Auth
) -> None:
    response = await client.get("/api/node-types", headers=auth())

    types = {item["type"]: item for item in response.json()["items"]}
    switch = types["logic.switch"]["parameters_schema"]
    assert switch["properties"]["cases"]["maxItems"] == 50
    assert switch["required"] == ["cases"]
    assert types["flow.merge"]["category"] == "flow"
    assert types["flow.merge"]["parameters_schema"]["properties"]["mode"]["enum"] == [
        "object",
        "append",
    ]
    assert types["flow.output"]["parameters_schema"]["required"] == ["value"]


async def test_a_step_tried_more_than_once_shows_its_attempts(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    created = await client.post(
        "/api/workflows", json={"name": "w", "definition": DEFINITION}, headers=auth()
    )
    executed = await client.post(f"{created.headers['location']}/execute", headers=auth())
    execution = store.executions[ExecutionId(uuid.UUID(executed.json()["id"]))]
    now = datetime.now(UTC)
    execution.start(at=now)
    error = ExecutionError("timeout", "The call did not complete.", "fetch")
    execution.record(StepResult("start", StepStatus.SUCCEEDED, now, now, {}))
    execution.record(StepResult("fetch", StepStatus.FAILED, now, now, None, error, attempts=5))

    response = await client.get(f"/api/executions/{execution.id}", headers=auth())

    steps: list[dict[str, Any]] = response.json()["steps"]
    assert "attempts" not in steps[0]
    assert (steps[1]["status"], steps[1]["attempts"]) == ("failed", 5)


async def test_executions_show_their_parent_and_list_by_it(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    created = await client.post(
        "/api/workflows", json={"name": "w", "definition": DEFINITION}, headers=auth()
    )
    url = f"{created.headers['location']}/execute"
    parent, child, other = [(await client.post(url, headers=auth())).json()["id"] for _ in "abc"]
    parent_id = ExecutionId(uuid.UUID(parent))
    store.executions[ExecutionId(uuid.UUID(child))].parent_execution_id = parent_id

    children = await client.get(f"/api/executions?parent_id={parent}", headers=auth())
    of_workflow = await client.get(
        f"{created.headers['location']}/executions?parent_id={parent}", headers=auth()
    )
    one = await client.get(f"/api/executions/{child}", headers=auth())
    top = await client.get(f"/api/executions/{other}", headers=auth())
    bad = await client.get("/api/executions?parent_id=nope", headers=auth())

    assert [e["id"] for e in children.json()["items"]] == [child]
    assert children.json()["items"][0]["parent_execution_id"] == parent
    assert [e["id"] for e in of_workflow.json()["items"]] == [child]
    assert one.json()["parent_execution_id"] == parent
    assert top.json()["parent_execution_id"] is None
    assert bad.status_code == 422


def calling(workflow_id: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "trigger.manual", "parameters": {}},
            {"id": "call", "type": "flow.subworkflow", "parameters": {"workflow_id": workflow_id}},
        ],
        "edges": [{"source": "start", "target": "call"}],
    }


async def test_a_save_that_makes_sub_workflows_call_back_is_422_at_the_node(
    client: Client, auth: Auth
) -> None:
    first = await client.post("/api/workflows", json={"name": "a"}, headers=auth())
    first_id = first.json()["id"]
    second = await client.post(
        "/api/workflows", json={"name": "b", "definition": calling(first_id)}, headers=auth()
    )

    response = await client.put(
        f"/api/workflows/{first_id}",
        json={"name": "a", "definition": calling(second.json()["id"])},
        headers=auth(),
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "/definition/nodes/1/parameters/workflow_id",
            "message": "calls this workflow back (a cycle)",
        }
    ]


async def test_validate_reports_a_call_to_a_workflow_that_is_not_yours(
    client: Client, auth: Auth
) -> None:
    theirs = await client.post("/api/workflows", json={"name": "b"}, headers=auth("user_bob"))

    response = await client.post(
        "/api/workflows/validate",
        json={"definition": calling(theirs.json()["id"])},
        headers=auth(),
    )

    assert response.json()["runnable"] is False
    assert response.json()["errors"] == [
        {
            "field": "/definition/nodes/1/parameters/workflow_id",
            "message": "is not a workflow of yours",
            "blocks": "execute",
        }
    ]

"""Schedules over HTTP: `GET /api/workflows/{id}/schedule`, the save-time checks of a
`trigger.schedule` node, the node type in the catalogue, and `scheduled_for` on executions."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.settings import Mode, Settings
from flowbuilder_adapters.wiring import CoreProvider, MemoryProvider
from flowbuilder_http.app import create_app

from support.factories import make_http_node
from support.http_app import VerifierProvider

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
NOW = datetime(2026, 3, 28, 12, 0, 5, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


@pytest.fixture
async def client(issuer: DevTokenIssuer) -> AsyncIterator[Client]:
    settings = Settings(
        mode=Mode.EMBEDDED,
        database_url="sqlite+aiosqlite:///:memory:",
        idempotency_hmac_key=os.urandom(32),
        metrics_enabled=False,
    )
    app = create_app(
        settings,
        CoreProvider(clock=FixedClock()),
        MemoryProvider(),
        VerifierProvider(issuer.verifier()),
    )
    async with AsyncTestClient(app) as client:
        yield client


def scheduled(**parameters: Any) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "tick", "type": "trigger.schedule", "parameters": parameters},
            make_http_node(),
        ],
        "edges": [{"source": "tick", "target": "fetch"}],
    }


async def create(client: Client, auth: Auth, definition: dict[str, Any]) -> Any:
    return await client.post(
        "/api/workflows", json={"name": "Nightly", "definition": definition}, headers=auth()
    )


async def test_a_cron_schedule_shows_its_zone_activity_and_next_five_utc_times(
    client: Client, auth: Auth
) -> None:
    created = await create(client, auth, scheduled(cron="30 2 * * *", timezone="Europe/Berlin"))
    url = f"/api/workflows/{created.json()['id']}/schedule"

    inactive = await client.get(url, headers=auth())
    await client.post(f"/api/workflows/{created.json()['id']}/activate", headers=auth())
    active = await client.get(url, headers=auth())

    assert inactive.status_code == 200
    assert inactive.json() == {
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "active": False,
        "next": [
            "2026-03-29T01:00:00.000000Z",  # 02:30 does not exist that day: at the jump
            "2026-03-30T00:30:00.000000Z",
            "2026-03-31T00:30:00.000000Z",
            "2026-04-01T00:30:00.000000Z",
            "2026-04-02T00:30:00.000000Z",
        ],
    }
    assert active.json()["active"] is True


async def test_an_interval_schedule_shows_every_s_and_the_default_zone(
    client: Client, auth: Auth
) -> None:
    created = await create(client, auth, scheduled(every_s=3600))

    response = await client.get(f"/api/workflows/{created.json()['id']}/schedule", headers=auth())

    assert response.json() == {
        "every_s": 3600,
        "timezone": "UTC",
        "active": False,
        "next": [f"2026-03-28T{hour}:00:00.000000Z" for hour in range(13, 18)],
    }


async def test_a_workflow_without_a_schedule_trigger_is_a_404_of_its_own(
    client: Client, auth: Auth
) -> None:
    manual = await create(client, auth, {"nodes": [{"id": "go", "type": "trigger.manual"}]})
    draft = await create(client, auth, scheduled(timezone="UTC"))  # neither cron nor every_s

    responses = [
        await client.get(f"/api/workflows/{created.json()['id']}/schedule", headers=auth())
        for created in (manual, draft)
    ]

    assert [r.status_code for r in responses] == [404, 404]
    assert {r.json()["type"] for r in responses} == {"urn:flowbuilder:problem:schedule-not-found"}
    assert responses[0].headers["content-type"].startswith("application/problem+json")


async def test_a_missing_or_someone_elses_workflow_is_the_workflows_404(
    client: Client, auth: Auth
) -> None:
    created = await create(client, auth, scheduled(every_s=60))
    url = f"/api/workflows/{created.json()['id']}/schedule"

    theirs = await client.get(url, headers=auth("user_bob"))
    missing = await client.get(
        "/api/workflows/00000000-0000-4000-8000-000000000000/schedule", headers=auth()
    )

    assert (theirs.status_code, missing.status_code) == (404, 404)
    assert theirs.json()["type"] == missing.json()["type"]
    assert missing.json()["type"] == "urn:flowbuilder:problem:workflow-not-found"


async def test_the_schedule_needs_a_token(client: Client) -> None:
    response = await client.get("/api/workflows/00000000-0000-4000-8000-000000000000/schedule")

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"cron": "0 25 * * *"}, "cron"),
        ({"cron": "every day"}, "cron"),
        ({"every_s": 30}, "every_s"),  # under SCHEDULE_MIN_INTERVAL_S, 60 by default
        ({"every_s": 60, "timezone": "Europe/Atlantis"}, "timezone"),
        ({"every_s": "60"}, "every_s"),
        ({"every_s": 60, "at": "noon"}, "at"),
    ],
)
async def test_a_bad_schedule_is_a_422_naming_the_parameter(
    client: Client, auth: Auth, parameters: dict[str, Any], field: str
) -> None:
    response = await create(client, auth, scheduled(**parameters))

    assert response.status_code == 422
    assert response.json()["type"] == "urn:flowbuilder:problem:invalid-input"
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == [f"/definition/nodes/0/parameters/{field}"]


async def test_validate_reports_a_bad_cron_expression_as_a_save_problem(
    client: Client, auth: Auth
) -> None:
    response = await client.post(
        "/api/workflows/validate",
        json={"definition": scheduled(cron="* * * *")},
        headers=auth(),
    )

    assert response.status_code == 200
    assert response.json()["valid"] is False
    [problem] = response.json()["errors"]
    assert problem["field"] == "/definition/nodes/0/parameters/cron"
    assert problem["blocks"] == "save"
    assert "five fields" in problem["message"]


async def test_the_catalogue_lists_the_schedule_trigger_and_its_parameters(
    client: Client, auth: Auth
) -> None:
    response = await client.get("/api/node-types", headers=auth())

    [schedule] = [t for t in response.json()["items"] if t["type"] == "trigger.schedule"]
    assert schedule["category"] == "trigger"
    assert set(schedule["parameters_schema"]["properties"]) == {"cron", "every_s", "timezone"}


async def test_every_execution_representation_has_scheduled_for(client: Client, auth: Auth) -> None:
    created = await create(client, auth, scheduled(every_s=60))
    workflow_id = created.json()["id"]
    executed = await client.post(f"/api/workflows/{workflow_id}/execute", headers=auth())

    one = await client.get(f"/api/executions/{executed.json()['id']}", headers=auth())
    listed = await client.get("/api/executions", headers=auth())
    of_workflow = await client.get(f"/api/workflows/{workflow_id}/executions", headers=auth())

    assert executed.status_code == 202
    assert executed.json()["scheduled_for"] is None
    assert executed.json()["trigger"] == "manual"  # execute runs it whatever its trigger
    assert one.json()["scheduled_for"] is None
    assert [e["scheduled_for"] for e in listed.json()["items"]] == [None]
    assert [e["scheduled_for"] for e in of_workflow.json()["items"]] == [None]

"""The credentials API: values go in and never come out."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.memory import MemoryStore
from flowbuilder_adapters.wiring import MemoryProvider
from flowbuilder_core.shared.quotas import Quotas

from support.factories import make_http_node, make_node
from support.http_app import make_test_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
CANARY = "canary-5f3a9c1e-secret-value"


async def create(
    client: Client, auth: Auth, user: str = "user_alice", **body: Any
) -> dict[str, Any]:
    payload = {"name": "Orders API", "type": "http_bearer", "data": {"token": CANARY}, **body}
    response = await client.post("/api/credentials", json=payload, headers=auth(user))
    assert response.status_code == 201, response.text
    return dict(response.json())


def workflow_using(credential_id: str) -> dict[str, Any]:
    return {
        "name": "Uses the credential",
        "definition": {
            "nodes": [make_node(), {**make_http_node(), "credential_id": credential_id}],
            "edges": [{"source": "start", "target": "fetch"}],
        },
    }


async def test_creating_a_credential_answers_its_field_names_and_never_the_value(
    client: Client, auth: Auth
) -> None:
    response = await client.post(
        "/api/credentials",
        json={
            "name": " Orders API ",
            "type": "http_basic",
            "data": {"username": "u", "password": CANARY},
        },
        headers=auth(),
    )

    body = response.json()
    assert response.status_code == 201
    assert response.headers["location"] == f"/api/credentials/{body['id']}"
    assert set(body) == {"id", "name", "type", "fields", "created_at", "updated_at"}
    assert (body["name"], body["type"], body["fields"]) == (
        "Orders API",
        "http_basic",
        ["password", "username"],
    )
    assert CANARY not in response.text


async def test_get_list_and_filter_show_metadata_only(client: Client, auth: Auth) -> None:
    bearer = await create(client, auth)
    header = await create(
        client, auth, type="http_header", data={"name": "X-Api-Key", "value": CANARY}
    )

    one = await client.get(f"/api/credentials/{bearer['id']}", headers=auth())
    listed = await client.get("/api/credentials", headers=auth())
    only_headers = await client.get("/api/credentials?type=http_header", headers=auth())

    assert one.json() == bearer
    assert [c["id"] for c in listed.json()["items"]] == [header["id"], bearer["id"]]
    assert [c["id"] for c in only_headers.json()["items"]] == [header["id"]]
    for response in (one, listed, only_headers):
        assert CANARY not in response.text


async def test_the_list_pages_with_a_cursor_bound_to_its_filter(client: Client, auth: Auth) -> None:
    for index in range(3):
        await create(client, auth, name=f"c{index}")

    first = (await client.get("/api/credentials?limit=2", headers=auth())).json()
    second = (
        await client.get(f"/api/credentials?limit=2&cursor={first['next_cursor']}", headers=auth())
    ).json()
    foreign = await client.get(
        f"/api/credentials?type=generic&cursor={first['next_cursor']}", headers=auth()
    )

    assert [c["name"] for c in first["items"] + second["items"]] == ["c2", "c1", "c0"]
    assert second["next_cursor"] is None
    assert foreign.status_code == 400


async def test_the_types_endpoint_serves_each_types_json_schema(client: Client, auth: Auth) -> None:
    response = await client.get("/api/credentials/types", headers=auth())

    items = {item["type"]: item for item in response.json()["items"]}
    assert set(items) == {"http_bearer", "http_basic", "http_header", "generic"}
    assert items["http_basic"]["schema"]["required"] == ["username", "password"]
    assert items["generic"]["schema"]["maxProperties"] == 50


async def test_invalid_data_names_the_field_and_never_echoes_the_value(
    client: Client, auth: Auth
) -> None:
    cases = [
        ({"type": "http_bearer", "data": {"token": CANARY, "extra": CANARY}}, "/data/extra"),
        ({"type": "http_bearer", "data": {}}, "/data/token"),
        ({"type": "http_bearer", "data": {"token": 42}}, "/data/token"),
        (
            {"type": "http_header", "data": {"name": "bad header " + CANARY, "value": "v"}},
            "/data/name",
        ),
        (
            {"type": "http_header", "data": {"name": "X", "value": CANARY + "\r\nInjected: 1"}},
            "/data/value",
        ),
        ({"type": "generic", "data": {f"k{i}": CANARY for i in range(51)}}, "/data"),
        ({"type": "generic", "data": {"k": CANARY + "\u0000"}}, "/data/k"),
        ({"type": "generic", "data": {"k\u0000": CANARY}}, "/data"),
        ({"type": "nope " + CANARY, "data": {"token": CANARY}}, "/type"),
    ]

    for body, field in cases:
        response = await client.post("/api/credentials", json={"name": "n", **body}, headers=auth())
        assert response.status_code == 422, body
        assert field in [e["field"] for e in response.json()["errors"]], response.text
        assert CANARY not in response.text


@pytest.mark.parametrize(
    ("credential_type", "data", "field"),
    [
        pytest.param(
            "http_header",
            {"name": "X-Api-Key", "value": CANARY + "\u00e9"},
            "/data/value",
            id="a header value with a non-ASCII letter",
        ),
        pytest.param(
            "http_header",
            {"name": "X-Api-Key", "value": CANARY + "\x07"},
            "/data/value",
            id="a header value with a control character",
        ),
        pytest.param(
            "http_header",
            {"name": "X-Api-Key", "value": CANARY + "\n"},
            "/data/value",
            id="a header value ending in a newline",
        ),
        pytest.param(
            "http_bearer", {"token": CANARY + "\u2028"}, "/data/token", id="a non-ASCII token"
        ),
    ],
)
async def test_a_value_the_http_node_could_not_send_is_refused_when_saved(
    client: Client, auth: Auth, credential_type: str, data: dict[str, str], field: str
) -> None:
    response = await client.post(
        "/api/credentials",
        json={"name": "n", "type": credential_type, "data": data},
        headers=auth(),
    )

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["field"], e["message"]) for e in errors] == [
        (field, "must be printable ASCII on one line")
    ]
    assert CANARY not in response.text


async def test_put_renames_and_rotates_without_showing_values(client: Client, auth: Auth) -> None:
    created = await create(client, auth)
    url = f"/api/credentials/{created['id']}"

    renamed = await client.put(url, json={"name": "Renamed"}, headers=auth())
    rotated = await client.put(url, json={"data": {"token": CANARY + "-2"}}, headers=auth())
    round_trip = await client.put(url, json={**rotated.json(), "name": "Again"}, headers=auth())

    assert (renamed.status_code, renamed.json()["name"]) == (200, "Renamed")
    assert rotated.status_code == 200
    assert rotated.json()["updated_at"] >= renamed.json()["updated_at"]
    assert (round_trip.status_code, round_trip.json()["name"]) == (200, "Again")
    for response in (renamed, rotated, round_trip):
        assert CANARY not in response.text


async def test_put_refuses_an_empty_change_a_new_type_and_invalid_data(
    client: Client, auth: Auth
) -> None:
    url = f"/api/credentials/{(await create(client, auth))['id']}"

    for body in ({}, {"type": "generic", "name": "x"}, {"data": {"tokn": CANARY}}):
        response = await client.put(url, json=body, headers=auth())
        assert response.status_code == 422, body
        assert CANARY not in response.text


async def test_a_credential_in_use_cannot_be_deleted_and_the_409_names_the_workflows(
    client: Client, auth: Auth
) -> None:
    credential = await create(client, auth)
    workflow = await client.post(
        "/api/workflows", json=workflow_using(credential["id"]), headers=auth()
    )
    url = f"/api/credentials/{credential['id']}"

    refused = await client.delete(url, headers=auth())
    await client.put(
        workflow.headers["location"], json={"name": "No longer uses it"}, headers=auth()
    )
    deleted = await client.delete(url, headers=auth())

    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["workflows"] == [
        {"id": workflow.json()["id"], "name": "Uses the credential"}
    ]
    assert deleted.status_code == 204
    assert (await client.get(url, headers=auth())).status_code == 404


async def test_a_workflow_can_run_only_with_its_owners_credentials_of_an_accepted_type(
    client: Client, auth: Auth
) -> None:
    mine = await create(client, auth)
    generic = await create(client, auth, type="generic", data={"k": CANARY})
    bobs = await create(client, auth, "user_bob")

    answers = {}
    for label, credential in (("mine", mine), ("generic", generic), ("bobs", bobs)):
        definition = workflow_using(credential["id"])["definition"]
        response = await client.post(
            "/api/workflows/validate", json={"definition": definition}, headers=auth()
        )
        answers[label] = response.json()

    assert answers["mine"]["runnable"] is True
    assert answers["generic"]["errors"] == [
        {
            "field": "/definition/nodes/1/credential_id",
            "message": (
                "is a generic credential; http.request accepts http_bearer, http_basic, http_header"
            ),
            "blocks": "execute",
        }
    ]
    assert answers["bobs"]["errors"][0]["message"] == "is not a credential of yours"


async def test_another_users_credential_is_404_exactly_like_a_missing_one(
    client: Client, auth: Auth
) -> None:
    theirs = f"/api/credentials/{(await create(client, auth))['id']}"
    missing = f"/api/credentials/{uuid.uuid4()}"

    for method, kwargs in (("GET", {}), ("PUT", {"json": {"name": "mine"}}), ("DELETE", {})):
        answers = [
            await client.request(method, url, headers=auth("user_bob"), **kwargs)
            for url in (theirs, missing)
        ]
        bodies = [{k: v for k, v in r.json().items() if k != "request_id"} for r in answers]
        assert [r.status_code for r in answers] == [404, 404]
        assert bodies[0] == bodies[1]
    assert (await client.get("/api/credentials", headers=auth("user_bob"))).json()["items"] == []


@pytest.mark.parametrize("level", [logging.DEBUG])
async def test_a_whole_session_leaks_the_value_into_no_response_or_log_line(
    client: Client, auth: Auth, caplog: pytest.LogCaptureFixture, level: int
) -> None:
    caplog.set_level(level)
    responses = []

    created = await client.post(
        "/api/credentials",
        json={"name": "c", "type": "http_bearer", "data": {"token": CANARY}},
        headers=auth(),
    )
    url = created.headers["location"]
    responses += [
        created,
        await client.get(url, headers=auth()),
        await client.get("/api/credentials", headers=auth()),
        await client.put(url, json={"data": {"token": CANARY}}, headers=auth()),
        await client.put(url, json={"data": {"token": CANARY, "x": CANARY}}, headers=auth()),
        await client.post(
            "/api/credentials",
            json={"name": "c", "type": "http_bearer", "data": {"token": CANARY}, "zz": CANARY},
            headers=auth(),
        ),
        await client.post(
            "/api/credentials",
            content=b'{"data": {"token": "' + CANARY.encode() + b'"',
            headers={**auth(), "content-type": "application/json"},
        ),
        await client.get(url, headers=auth("user_bob")),
        await client.delete(url, headers=auth()),
        await client.get("/docs/openapi.json"),
    ]

    for response in responses:
        assert CANARY not in response.text
        assert CANARY not in str(response.headers)
    assert CANARY not in caplog.text


async def test_a_credential_past_the_quota_is_409_with_the_limit_and_nothing_stored(
    issuer: DevTokenIssuer, auth: Auth
) -> None:
    store = MemoryStore()
    app = make_test_app(issuer, MemoryProvider(store), quotas=Quotas(max_credentials=1))
    body = {"name": "n", "type": "http_bearer", "data": {"token": CANARY}}
    async with AsyncTestClient(app) as client:
        first = await client.post("/api/credentials", json=body, headers=auth())
        refused = await client.post("/api/credentials", json=body, headers=auth())
        listed = await client.get("/api/credentials", headers=auth())

    assert first.status_code == 201
    assert (refused.status_code, refused.json()["limit"]) == (409, 1)
    assert refused.json()["type"] == "urn:flowbuilder:problem:quota-exceeded"
    assert CANARY not in refused.text
    assert len(listed.json()["items"]) == 1

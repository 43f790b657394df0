"""The workflows API over HTTP: every route, its headers and its answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.wiring import MemoryProvider
from flowbuilder_core.shared.quotas import Quotas

from support.factories import make_definition, make_workflow_body
from support.http_app import make_test_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]


async def create(
    client: Client, auth: Auth, user: str = "user_alice", **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/workflows", json=make_workflow_body(**body), headers=auth(user)
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_creating_a_workflow_answers_201_with_location_etag_and_the_workflow(
    client: Client, auth: Auth
) -> None:
    response = await client.post("/api/workflows", json=make_workflow_body(), headers=auth())

    body = response.json()
    assert response.status_code == 201
    assert response.headers["location"] == f"/api/workflows/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert response.headers["content-type"] == "application/json"
    assert body["version"] == 1
    assert body["definition"] == make_definition()
    assert body["created_at"].endswith("Z")
    assert body["created_at"] == body["updated_at"]


async def test_a_workflow_needs_only_a_name(client: Client, auth: Auth) -> None:
    response = await client.post("/api/workflows", json={"name": "Bare"}, headers=auth())

    assert response.status_code == 201
    assert response.json()["definition"] == {"nodes": [], "edges": []}
    assert (response.json()["tags"], response.json()["description"]) == ([], "")


async def test_getting_a_workflow_answers_it_with_its_etag(client: Client, auth: Auth) -> None:
    created = await create(client, auth)

    response = await client.get(f"/api/workflows/{created['id']}", headers=auth())

    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json() == created


async def test_get_then_put_round_trips_with_the_server_owned_fields(
    client: Client, auth: Auth
) -> None:
    created = await create(client, auth)
    fetched = (await client.get(f"/api/workflows/{created['id']}", headers=auth())).json()
    fetched["name"] = "Renamed"

    response = await client.put(
        f"/api/workflows/{created['id']}", json=fetched, headers={**auth(), "If-Match": '"1"'}
    )

    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'
    assert response.json()["name"] == "Renamed"
    assert response.json()["version"] == 2
    assert response.json()["definition"] == created["definition"]


async def test_a_stale_if_match_is_412_and_changes_nothing(client: Client, auth: Auth) -> None:
    created = await create(client, auth)
    url = f"/api/workflows/{created['id']}"
    await client.put(url, json={"name": "Second"}, headers=auth())

    stale = await client.put(url, json={"name": "Third"}, headers={**auth(), "If-Match": '"1"'})
    foreign_tag = await client.put(url, json={"name": "X"}, headers={**auth(), "If-Match": '"abc"'})

    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["type"] == "urn:flowbuilder:problem:stale-workflow-version"
    assert foreign_tag.status_code == 412
    assert (await client.get(url, headers=auth())).json()["name"] == "Second"


async def test_a_stale_body_version_is_412_like_a_stale_if_match(
    client: Client, auth: Auth
) -> None:
    created = await create(client, auth)
    url = f"/api/workflows/{created['id']}"
    await client.put(url, json={"name": "Second"}, headers=auth())

    response = await client.put(url, json={**created, "name": "Stale"}, headers=auth())

    assert response.status_code == 412


async def test_if_match_accepts_a_star_a_weak_tag_or_a_list(client: Client, auth: Auth) -> None:
    url = f"/api/workflows/{(await create(client, auth))['id']}"

    for header, version in (("*", 2), ('W/"2"', 3), ('"9", "3"', 4)):
        response = await client.put(url, json={"name": "n"}, headers={**auth(), "If-Match": header})
        assert (response.status_code, response.json()["version"]) == (200, version)


async def test_a_malformed_if_match_is_422_on_the_header(client: Client, auth: Auth) -> None:
    url = f"/api/workflows/{(await create(client, auth))['id']}"

    response = await client.put(url, json={"name": "n"}, headers={**auth(), "If-Match": "1"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "header:If-Match"


async def test_without_if_match_the_last_write_wins(client: Client, auth: Auth) -> None:
    url = f"/api/workflows/{(await create(client, auth))['id']}"

    await client.put(url, json={"name": "First"}, headers=auth())
    response = await client.put(url, json={"name": "Last"}, headers=auth())

    assert (response.status_code, response.json()["version"]) == (200, 3)


async def test_put_resets_omitted_optional_fields_to_their_defaults(
    client: Client, auth: Auth
) -> None:
    url = f"/api/workflows/{(await create(client, auth))['id']}"

    response = await client.put(url, json={"name": "Only a name"}, headers=auth())

    body = response.json()
    assert (body["description"], body["tags"], body["definition"]) == (
        "",
        [],
        {"nodes": [], "edges": []},
    )


async def test_deleting_a_workflow_is_204_and_it_is_gone(client: Client, auth: Auth) -> None:
    url = f"/api/workflows/{(await create(client, auth))['id']}"

    response = await client.delete(url, headers=auth())

    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(url, headers=auth())).status_code == 404
    assert (await client.get(f"{url}/versions", headers=auth())).status_code == 404
    assert (await client.delete(url, headers=auth())).status_code == 404
    assert (await client.get("/api/workflows", headers=auth())).json()["items"] == []


async def test_delete_honours_if_match(client: Client, auth: Auth) -> None:
    url = f"/api/workflows/{(await create(client, auth))['id']}"
    await client.put(url, json={"name": "v2"}, headers=auth())

    stale = await client.delete(url, headers={**auth(), "If-Match": '"1"'})
    current = await client.delete(url, headers={**auth(), "If-Match": '"2"'})

    assert (stale.status_code, current.status_code) == (412, 204)


async def test_the_list_is_newest_first_without_definitions_unless_asked(
    client: Client, auth: Auth
) -> None:
    for name in ("one", "two"):
        await create(client, auth, name=name)

    plain = (await client.get("/api/workflows", headers=auth())).json()
    full = (await client.get("/api/workflows?include=definition", headers=auth())).json()

    assert [w["name"] for w in plain["items"]] == ["two", "one"]
    assert all("definition" not in w for w in plain["items"])
    assert all(w["definition"] == make_definition() for w in full["items"])
    assert plain["next_cursor"] is None


async def test_the_list_pages_with_an_opaque_cursor(client: Client, auth: Auth) -> None:
    for index in range(5):
        await create(client, auth, name=f"w{index}")

    names: list[str] = []
    url = "/api/workflows?limit=2"
    while url:
        page = (await client.get(url, headers=auth())).json()
        names += [w["name"] for w in page["items"]]
        url = f"/api/workflows?limit=2&cursor={page['next_cursor']}" if page["next_cursor"] else ""

    assert names == ["w4", "w3", "w2", "w1", "w0"]


async def test_the_list_filters_by_tag_and_name(client: Client, auth: Auth) -> None:
    await create(client, auth, name="Sync orders", tags=["orders"])
    await create(client, auth, name="Report", tags=["reports"])

    by_tag = (await client.get("/api/workflows?tag=reports", headers=auth())).json()
    by_name = (await client.get("/api/workflows?q=ORDERS", headers=auth())).json()

    assert [w["name"] for w in by_tag["items"]] == ["Report"]
    assert [w["name"] for w in by_name["items"]] == ["Sync orders"]


async def test_bad_list_parameters_are_422_on_the_query(client: Client, auth: Auth) -> None:
    for query, field in (
        ("limit=0", "query:limit"),
        ("limit=101", "query:limit"),
        ("limit=ten", "query:limit"),
        ("include=steps", "query:include"),
    ):
        response = await client.get(f"/api/workflows?{query}", headers=auth())
        assert response.status_code == 422, query
        assert response.json()["errors"][0]["field"] == field


async def test_a_tampered_or_foreign_cursor_is_400(client: Client, auth: Auth) -> None:
    for index in range(3):
        await create(client, auth, name=f"w{index}")
    cursor = (await client.get("/api/workflows?limit=1", headers=auth())).json()["next_cursor"]

    tampered = await client.get(f"/api/workflows?cursor={cursor[:-2]}xx", headers=auth())
    foreign = await client.get(f"/api/workflows?cursor={cursor}", headers=auth("user_bob"))
    other_list = await client.get(f"/api/workflows?tag=x&cursor={cursor}", headers=auth())

    for response in (tampered, foreign, other_list):
        assert response.status_code == 400
        assert response.json()["type"] == "urn:flowbuilder:problem:malformed-request"


async def test_versions_list_every_version_newest_first(client: Client, auth: Auth) -> None:
    url = f"/api/workflows/{(await create(client, auth, name='v1'))['id']}"
    await client.put(url, json={"name": "v2"}, headers=auth())
    await client.put(url, json={"name": "v3"}, headers=auth())

    first = (await client.get(f"{url}/versions?limit=2", headers=auth())).json()
    rest = (
        await client.get(f"{url}/versions?limit=2&cursor={first['next_cursor']}", headers=auth())
    ).json()
    one = await client.get(f"{url}/versions/1", headers=auth())

    assert [v["version"] for v in first["items"] + rest["items"]] == [3, 2, 1]
    assert rest["next_cursor"] is None
    assert set(first["items"][0]) == {"version", "name", "definition", "created_at"}
    assert (one.status_code, one.json()["name"]) == (200, "v1")
    assert one.json()["definition"] == make_definition()


async def test_a_missing_or_malformed_version_is_404(client: Client, auth: Auth) -> None:
    url = f"/api/workflows/{(await create(client, auth))['id']}"

    for version in ("2", "0", "-1", "abc", "1.5"):
        assert (await client.get(f"{url}/versions/{version}", headers=auth())).status_code == 404


async def test_validate_reports_every_problem_without_saving(client: Client, auth: Auth) -> None:
    definition = {
        "nodes": [{"id": "a", "type": "data.set"}, {"id": "b", "type": "nope"}],
        "edges": [],
    }

    invalid = await client.post(
        "/api/workflows/validate", json={"definition": definition}, headers=auth()
    )
    not_runnable = await client.post(
        "/api/workflows/validate",
        json={"definition": {"nodes": [{"id": "a", "type": "data.set"}], "edges": []}},
        headers=auth(),
    )
    runnable = await client.post(
        "/api/workflows/validate", json={"definition": make_definition()}, headers=auth()
    )

    assert invalid.status_code == 200
    assert invalid.json() == {
        "valid": False,
        "runnable": False,
        "errors": [
            {
                "field": "/definition/nodes/1/type",
                "message": "is not a known node type",
                "blocks": "save",
            }
        ],
    }
    assert not_runnable.json()["valid"] is True
    assert not_runnable.json()["runnable"] is False
    assert {e["blocks"] for e in not_runnable.json()["errors"]} == {"execute"}
    assert runnable.json() == {"valid": True, "runnable": True, "errors": []}
    assert (await client.get("/api/workflows", headers=auth())).json()["items"] == []


async def test_the_node_catalogue_lists_every_type_with_its_schema(
    client: Client, auth: Auth
) -> None:
    response = await client.get("/api/node-types", headers=auth())

    items = {item["type"]: item for item in response.json()["items"]}
    assert response.status_code == 200
    assert set(items) == {
        "trigger.manual",
        "trigger.schedule",
        "http.request",
        "logic.if",
        "data.transform",
        "data.set",
        "util.delay",
        "logic.switch",
        "flow.merge",
        "flow.output",
        "flow.subworkflow",
        "flow.for_each",
        "trigger.webhook",
        "webhook.respond",
    }
    assert items["http.request"]["credential_types"] == ["http_bearer", "http_basic", "http_header"]
    assert items["http.request"]["parameters_schema"]["required"] == ["method", "url"]
    assert items["util.delay"]["parameters_schema"]["properties"]["seconds"]["maximum"] == 300


async def test_a_create_past_the_quota_is_409_quota_exceeded_with_the_limit(
    issuer: DevTokenIssuer, auth: Auth
) -> None:
    app = make_test_app(issuer, MemoryProvider(), quotas=Quotas(max_workflows=1))
    async with AsyncTestClient(app) as client:
        await create(client, auth)
        refused = await client.post("/api/workflows", json=make_workflow_body(), headers=auth())
        listed = await client.get("/api/workflows", headers=auth())

    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert (problem["type"], problem["limit"]) == ("urn:flowbuilder:problem:quota-exceeded", 1)
    assert len(listed.json()["items"]) == 1, "nothing was stored"


async def test_writes_past_the_write_rate_are_429_with_retry_after(
    issuer: DevTokenIssuer, auth: Auth
) -> None:
    quotas = Quotas(writes_per_second=1, write_burst=2)
    app = make_test_app(issuer, MemoryProvider(), quotas=quotas)
    async with AsyncTestClient(app) as client:
        created = await create(client, auth)
        url = f"/api/workflows/{created['id']}"
        replaced = await client.put(url, json=make_workflow_body(name="B"), headers=auth())
        limited = await client.put(url, json=make_workflow_body(name="C"), headers=auth())
        read = await client.get(url, headers=auth())

    assert replaced.status_code == 200
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert read.json()["name"] == "B", "the refused write changed nothing"


async def test_a_workflow_starts_inactive_and_activates_only_when_runnable(
    client: Client, auth: Auth
) -> None:
    runnable = await create(client, auth)
    draft = await create(client, auth, definition={"nodes": [], "edges": []})

    activated = await client.post(f"/api/workflows/{runnable['id']}/activate", headers=auth())
    refused = await client.post(f"/api/workflows/{draft['id']}/activate", headers=auth())
    listed = (await client.get("/api/workflows", headers=auth())).json()["items"]
    deactivated = await client.post(f"/api/workflows/{runnable['id']}/deactivate", headers=auth())

    assert (runnable["active"], draft["active"]) == (False, False)
    assert activated.status_code == 200
    assert activated.json()["active"] is True
    assert activated.headers["etag"] == '"1"', "switching creates no version"
    assert refused.status_code == 422
    assert refused.json()["type"] == "urn:flowbuilder:problem:workflow-not-runnable"
    assert {w["id"]: w["active"] for w in listed} == {runnable["id"]: True, draft["id"]: False}
    assert (deactivated.status_code, deactivated.json()["active"]) == (200, False)


async def test_an_active_workflow_accepts_only_a_runnable_new_version(
    client: Client, auth: Auth
) -> None:
    created = await create(client, auth)
    url = f"/api/workflows/{created['id']}"
    await client.post(f"{url}/activate", headers=auth())

    broken = await client.put(
        url, json=make_workflow_body(definition={"nodes": [], "edges": []}), headers=auth()
    )
    fine = await client.put(url, json=make_workflow_body(name="Still runs"), headers=auth())
    other_user = await client.post(f"{url}/activate", headers=auth("user_bob"))

    assert broken.status_code == 422
    assert (fine.status_code, fine.json()["active"], fine.json()["version"]) == (200, True, 2)
    assert other_user.status_code == 404
